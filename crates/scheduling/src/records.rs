//! Patient records: the patients and related persons a dialect registers
//! itself (Embassy `POST /Patient`, `PATCH /Patient`), as opposed to those a
//! booking introduces ([`crate::booking`]). The core validates them; the
//! store keeps their identifiers unique and their contacts indexed.

use crate::Scheduling;
use crate::error::SchedulingResult;
use jiff::Timestamp;
use polyclinic_core::patient::Patient;
use polyclinic_core::tenant::Tenant;
use polyclinic_store::patients;

impl Scheduling {
    /// Registers a patient; its identifiers must be free (else the store's
    /// `AlreadyExists`, in [`crate::SchedulingError::Store`]).
    pub async fn create_patient(&self, tenant: &Tenant, patient: Patient, now: Timestamp) -> SchedulingResult<Patient> {
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(patients::create(c, tid, patient, now).await?)) })).await
    }

    /// Replaces a patient's data (its id says which).
    pub async fn update_patient(&self, tenant: &Tenant, patient: Patient, now: Timestamp) -> SchedulingResult<Patient> {
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(patients::update(c, tid, patient, now).await?)) })).await
    }
}
