//! Patient matching, the same for every dialect that books for a patient it
//! describes rather than names: the patient with the same national id (or
//! any other identifier), else the one with the same phone and name, else the
//! one with the same e-mail address, else a new patient. National ids are
//! normalised by the core's one rule (`NationalId`) before they get here;
//! phones and e-mail addresses are looked up in the indexed contact table.

use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::patient::{ContactSystem, Patient};
use polyclinic_store::{Conn, StoreResult, patients};

/// The patient `patient` describes, found or created, inside the caller's
/// transaction.
pub async fn find_or_create(
    conn: &mut Conn,
    tenant: TenantId,
    patient: Patient,
    now: Timestamp,
) -> StoreResult<Patient> {
    for i in &patient.identifiers {
        if let Some(found) = patients::find_by(conn, tenant, &i.system, &i.value).await? {
            return Ok(found);
        }
    }
    let same_name = |p: &Patient| {
        let (a, b) = (p.names.first(), patient.names.first());
        matches!((a, b), (Some(a), Some(b)) if a.given == b.given && a.family == b.family)
    };
    for phone in patient.telecom.iter().filter(|t| matches!(t.system, ContactSystem::Phone | ContactSystem::Sms)) {
        if let Some(found) = patients::find_by_contact(conn, tenant, &phone.value).await?.into_iter().find(same_name) {
            return Ok(found);
        }
    }
    for email in patient.telecom.iter().filter(|t| t.system == ContactSystem::Email) {
        let found = patients::find_by_email(conn, tenant, &email.value).await?;
        // An address shared by several patients (a family's) names none of them.
        if let [one] = found.as_slice() {
            return Ok(one.clone());
        }
    }
    patients::create(conn, tenant, patient, now).await
}
