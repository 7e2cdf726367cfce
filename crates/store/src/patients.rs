//! Patients: create, read, update, find by identifier.

use crate::catalog::{claim_identifier, find_by_identifier, release_identifiers};
use crate::outbox::{Seq, append, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::patient::{ContactSystem, Patient};
use polyclinic_core::{CoreError, PatientId, TenantId};

const ENTITY: &str = "patient";

/// Creates a patient; its identifiers must be free. Emits `PatientCreated`.
pub async fn create(conn: &mut Conn, tenant: TenantId, mut patient: Patient, now: Timestamp) -> StoreResult<Patient> {
    patient.validate()?;
    let id = next_id(conn, Seq::Entity).await?;
    patient.id = Some(PatientId(id));
    for i in &patient.identifiers {
        claim_identifier(conn, tenant, ENTITY, &i.system, &i.value, id).await?;
    }
    sqlx::query(
        "INSERT INTO patients (tenant_id, id, version, created_at, updated_at, doc) VALUES ($1, $2, 1, $3, $3, $4)",
    )
    .bind(tenant.get())
    .bind(id)
    .bind(secs(now))
    .bind(serde_json::to_string(&patient)?)
    .execute(&mut *conn)
    .await?;
    index_contacts(conn, tenant, id, &patient).await?;
    append(
        conn,
        tenant,
        now,
        &[NewEvent::new(
            EventKind::PatientCreated,
            ENTITY,
            id,
            serde_json::json!({"patient_id": id.to_string(), "active": patient.active}),
        )],
    )
    .await?;
    Ok(patient)
}

/// Reads a patient.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: PatientId) -> StoreResult<Option<Patient>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM patients WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Reads a patient or answers not found.
pub async fn require(conn: &mut Conn, tenant: TenantId, id: PatientId) -> StoreResult<Patient> {
    get(conn, tenant, id).await?.ok_or_else(|| CoreError::not_found(ENTITY, id).into())
}

/// Replaces a patient's data (identifiers re-registered). Emits `PatientUpdated`
/// (with `active` and `previous_active`, so targets can tell a deactivation).
pub async fn update(conn: &mut Conn, tenant: TenantId, mut patient: Patient, now: Timestamp) -> StoreResult<Patient> {
    patient.validate()?;
    let id = patient.id.ok_or_else(|| CoreError::invalid("id", "an update needs the patient's id"))?;
    let before = require(conn, tenant, id).await?;
    release_identifiers(conn, tenant, ENTITY, id.get()).await?;
    for i in &patient.identifiers {
        claim_identifier(conn, tenant, ENTITY, &i.system, &i.value, id.get()).await?;
    }
    sqlx::query(
        "UPDATE patients SET doc = $1, version = version + 1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
    )
    .bind(serde_json::to_string(&patient)?)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id.get())
    .execute(&mut *conn)
    .await?;
    index_contacts(conn, tenant, id.get(), &patient).await?;
    append(
        conn,
        tenant,
        now,
        &[NewEvent::new(
            EventKind::PatientUpdated,
            ENTITY,
            id,
            // `active` and `previous_active` tell a deactivation (Solo `patient:deactivated`).
            serde_json::json!({"patient_id": id.to_string(), "active": patient.active, "previous_active": before.active}),
        )],
    )
    .await?;
    Ok(patient)
}

/// Finds a patient by identifier `system|value`.
pub async fn find_by(conn: &mut Conn, tenant: TenantId, system: &str, value: &str) -> StoreResult<Option<Patient>> {
    match find_by_identifier(conn, tenant, ENTITY, system, value).await? {
        Some(id) => get(conn, tenant, PatientId(id)).await,
        None => Ok(None),
    }
}

/// Replaces a patient's rows in the contact index with its contact points.
pub(crate) async fn index_contacts(conn: &mut Conn, tenant: TenantId, id: i64, patient: &Patient) -> StoreResult<()> {
    sqlx::query("DELETE FROM patient_contacts WHERE tenant_id = $1 AND patient_id = $2")
        .bind(tenant.get())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let mut seen = std::collections::BTreeSet::new();
    for c in &patient.telecom {
        let system = contact_system(c.system);
        if !seen.insert((system, c.value.as_str())) {
            continue;
        }
        sqlx::query("INSERT INTO patient_contacts (tenant_id, system, value, patient_id) VALUES ($1, $2, $3, $4)")
            .bind(tenant.get())
            .bind(system)
            .bind(&c.value)
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A contact system as the index (and the documents) spell it.
fn contact_system(system: ContactSystem) -> &'static str {
    match system {
        ContactSystem::Phone => "phone",
        ContactSystem::Sms => "sms",
        ContactSystem::Email => "email",
        ContactSystem::Other => "other",
    }
}

/// Patients with a contact point of one of `systems` whose value is `value`
/// (already normalised), by id: an index probe of the contact table.
async fn find_by_contact_of(
    conn: &mut Conn,
    tenant: TenantId,
    systems: &[ContactSystem],
    value: &str,
) -> StoreResult<Vec<Patient>> {
    let mut ids: Vec<i64> = Vec::new();
    for s in systems {
        let found: Vec<i64> = sqlx::query_scalar(
            "SELECT patient_id FROM patient_contacts WHERE tenant_id = $1 AND system = $2 AND value = $3",
        )
        .bind(tenant.get())
        .bind(contact_system(*s))
        .bind(value)
        .fetch_all(&mut *conn)
        .await?;
        ids.extend(found);
    }
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = get(conn, tenant, PatientId(id)).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Patients whose phone (any phone or SMS contact point) is `phone`, already
/// normalised. Used when phone numbers are not unique identifiers.
pub async fn find_by_contact(conn: &mut Conn, tenant: TenantId, phone: &str) -> StoreResult<Vec<Patient>> {
    find_by_contact_of(conn, tenant, &[ContactSystem::Phone, ContactSystem::Sms], phone).await
}

/// The stored forms a normalised phone number may have been kept in: as
/// given, and with the international `+` added or taken away. A number typed
/// into a URL query as `+46...` arrives as ` 46...` (a `+` means a space
/// there), and patients are kept with the number as they gave it, so a
/// search tries both forms (two probes of the same index).
pub fn phone_forms(phone: &str) -> Vec<String> {
    let other = match phone.strip_prefix('+') {
        Some(digits) => digits.to_owned(),
        None => format!("+{phone}"),
    };
    vec![phone.to_owned(), other]
}

/// The ids of the patients with a phone or SMS contact point in one of the
/// [`phone_forms`] of `phone` (normalised): probes of the primary key of
/// `patient_contacts`, never a text scan (plan in docs/storage.md).
pub async fn ids_by_phone(conn: &mut Conn, tenant: TenantId, phone: &str) -> StoreResult<Vec<i64>> {
    let forms = phone_forms(phone);
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "SELECT patient_id FROM patient_contacts WHERE tenant_id = $1 AND system IN ('phone', 'sms') \
         AND value IN ($2, $3)",
    )
    .bind(tenant.get())
    .bind(&forms[0])
    .bind(&forms[1])
    .fetch_all(&mut *conn)
    .await?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The patients of [`ids_by_phone`], by id.
pub async fn find_by_phone(conn: &mut Conn, tenant: TenantId, phone: &str) -> StoreResult<Vec<Patient>> {
    let mut out = Vec::new();
    for id in ids_by_phone(conn, tenant, phone).await? {
        if let Some(p) = get(conn, tenant, PatientId(id)).await? {
            out.push(p);
        }
    }
    Ok(out)
}

/// Patients whose e-mail address is `email`, as given (addresses are kept as
/// entered).
pub async fn find_by_email(conn: &mut Conn, tenant: TenantId, email: &str) -> StoreResult<Vec<Patient>> {
    find_by_contact_of(conn, tenant, &[ContactSystem::Email], email).await
}

/// A page of the tenant's patients by id, and the total.
pub async fn page(conn: &mut Conn, tenant: TenantId, offset: i64, limit: i64) -> StoreResult<(Vec<Patient>, i64)> {
    let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM patients WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?;
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc FROM patients WHERE tenant_id = $1 ORDER BY id LIMIT $2 OFFSET $3")
            .bind(tenant.get())
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
    let items = docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect::<StoreResult<_>>()?;
    Ok((items, total))
}
