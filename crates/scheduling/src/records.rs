//! Patient records: the patients and related persons a dialect registers
//! itself (Embassy `POST /Patient`, `PATCH /Patient`), as opposed to those a
//! booking introduces ([`crate::booking`]). The core validates them; the
//! store keeps their identifiers unique and their contacts indexed.

use crate::Scheduling;
use crate::error::{SchedulingError, SchedulingResult};
use jiff::Timestamp;
use polyclinic_core::patient::Patient;
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_store::patients;

impl Scheduling {
    /// Registers a patient; its identifiers must be free (else the store's
    /// `AlreadyExists`, in [`crate::SchedulingError::Store`]).
    pub async fn create_patient(&self, tenant: &Tenant, patient: Patient, now: Timestamp) -> SchedulingResult<Patient> {
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(patients::create(c, tid, patient, now).await?)) })).await
    }

    /// Replaces a patient's data (its id says which), through the dialect
    /// `through`: a patient that another dialect owns
    /// ([`Patient::owner`]) is refused with
    /// [`SchedulingError::ManagedElsewhere`], the one rule for every dialect
    /// that edits patients. The owner stays what it was.
    pub async fn update_patient(
        &self,
        tenant: &Tenant,
        mut patient: Patient,
        through: Dialect,
        now: Timestamp,
    ) -> SchedulingResult<Patient> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(id) = patient.id else { return Ok(Err(SchedulingError::NotFound("patient"))) };
                let Some(current) = patients::get(c, tid, id).await? else {
                    return Ok(Err(SchedulingError::NotFound("patient")));
                };
                if let Some(owner) = current.owner.filter(|o| *o != through) {
                    return Ok(Err(SchedulingError::ManagedElsewhere { owner }));
                }
                patient.owner = current.owner;
                Ok(Ok(patients::update(c, tid, patient, now).await?))
            })
        })
        .await
    }
}
