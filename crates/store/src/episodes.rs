//! Episodes of care (Solo): a patient's course of care, which appointments
//! belong to (`appointments.episode_id`).
//!
//! An episode is a row of `episodes` (migration 0011): its UUID, the order
//! it was made in (`seq`), its patient and instants in clear for the
//! queries, and the whole [`EpisodeOfCare`] in `doc`, sealed under the
//! server key ([`SecretKey`]): its name, type, dates, objective and reason
//! are patient data. Every query filters by the tenant.
//!
//! [`create`] and [`update`] write the episode and its event
//! (`EpisodeCreated`, `EpisodeUpdated`) to the outbox in the caller's
//! transaction. Which appointment belongs to which episode is the
//! appointment's own field, changed through the appointment commands; this
//! module only reads it ([`appointments`]).

use crate::outbox::{append, is_postgres};
use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::appointment::Appointment;
use polyclinic_core::care::EpisodeOfCare;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::{PatientId, TenantId, Uuid};
use serde_json::json;
use sqlx::Row;

const ENTITY: &str = "episode";

/// A fresh episode id (a random UUID).
pub fn new_id() -> Uuid {
    uuid::Uuid::new_v4().hyphenated().to_string().parse().expect("a v4 UUID is a UUID")
}

fn event(kind: EventKind, e: &EpisodeOfCare) -> NewEvent {
    // Ids and the status only: the rest is patient data.
    let data = json!({
        "episode_id": e.id.to_string(),
        "patient_id": e.patient_id.to_string(),
        "status": e.status.as_str(),
    });
    NewEvent::new(kind, ENTITY, &e.id, data)
}

fn open(key: &SecretKey, sealed: &str) -> StoreResult<EpisodeOfCare> {
    let plain = key.open(sealed).map_err(|_| StoreError::Corrupt("an episode cannot be opened".into()))?;
    Ok(serde_json::from_str(&plain)?)
}

fn seal(key: &SecretKey, e: &EpisodeOfCare) -> StoreResult<String> {
    Ok(key.seal(&serde_json::to_string(e)?))
}

/// Stores a new episode (its id from [`new_id`]) after the tenant's others,
/// and appends `EpisodeCreated`.
pub async fn create(
    conn: &mut Conn,
    tenant: TenantId,
    key: &SecretKey,
    e: &EpisodeOfCare,
    now: Timestamp,
) -> StoreResult<()> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM episodes WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO episodes (tenant_id, id, seq, patient_id, created_at, updated_at, doc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.get())
    .bind(e.id.as_str())
    .bind(last.unwrap_or(0).saturating_add(1))
    .bind(e.patient_id.get())
    .bind(secs(e.created_at))
    .bind(secs(e.updated_at))
    .bind(seal(key, e)?)
    .execute(&mut *conn)
    .await?;
    append(conn, tenant, now, &[event(EventKind::EpisodeCreated, e)]).await
}

/// Replaces an existing episode's content (its id, patient and creation
/// instant stay as stored) and appends `EpisodeUpdated`; answers whether
/// the tenant had it.
pub async fn update(
    conn: &mut Conn,
    tenant: TenantId,
    key: &SecretKey,
    e: &EpisodeOfCare,
    now: Timestamp,
) -> StoreResult<bool> {
    let r = sqlx::query("UPDATE episodes SET updated_at = $1, doc = $2 WHERE tenant_id = $3 AND id = $4")
        .bind(secs(e.updated_at))
        .bind(seal(key, e)?)
        .bind(tenant.get())
        .bind(e.id.as_str())
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() == 0 {
        return Ok(false);
    }
    append(conn, tenant, now, &[event(EventKind::EpisodeUpdated, e)]).await?;
    Ok(true)
}

/// One episode of the tenant.
pub async fn get(conn: &mut Conn, tenant: TenantId, key: &SecretKey, id: &Uuid) -> StoreResult<Option<EpisodeOfCare>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM episodes WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| open(key, &d)).transpose()
}

/// One episode, read to change it inside a write: PostgreSQL locks the row
/// until the transaction ends (two updates run one after the other);
/// SQLite's single writer already does.
pub async fn get_for_update(
    conn: &mut Conn,
    tenant: TenantId,
    key: &SecretKey,
    id: &Uuid,
) -> StoreResult<Option<EpisodeOfCare>> {
    let sql = if is_postgres(conn) {
        "SELECT doc FROM episodes WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT doc FROM episodes WHERE tenant_id = $1 AND id = $2"
    };
    let doc: Option<String> =
        sqlx::query_scalar(sql).bind(tenant.get()).bind(id.as_str()).fetch_optional(&mut *conn).await?;
    doc.map(|d| open(key, &d)).transpose()
}

/// The patient of one of the tenant's episodes (nothing opened), or `None`.
/// An episode is never deleted and never changes patient, so the answer
/// holds for the rest of the caller's transaction.
pub async fn patient_of(conn: &mut Conn, tenant: TenantId, id: &Uuid) -> StoreResult<Option<PatientId>> {
    let p: Option<i64> = sqlx::query_scalar("SELECT patient_id FROM episodes WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(p.map(PatientId))
}

/// The patient's episodes, in the order they were made.
pub async fn of_patient(
    conn: &mut Conn,
    tenant: TenantId,
    key: &SecretKey,
    patient: PatientId,
) -> StoreResult<Vec<EpisodeOfCare>> {
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc FROM episodes WHERE tenant_id = $1 AND patient_id = $2 ORDER BY seq, id")
            .bind(tenant.get())
            .bind(patient.get())
            .fetch_all(&mut *conn)
            .await?;
    docs.iter().map(|d| open(key, d)).collect()
}

/// An appointment of an episode, and whether it has a visit note.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeAppointment {
    pub appointment: Appointment,
    /// Whether any version of a visit note exists for it.
    pub has_notes: bool,
}

/// The appointments that belong to the episode (whatever their status), by
/// start and then id.
pub async fn appointments(conn: &mut Conn, tenant: TenantId, id: &Uuid) -> StoreResult<Vec<EpisodeAppointment>> {
    let rows = sqlx::query(
        "SELECT a.doc, CAST(CASE WHEN EXISTS (SELECT 1 FROM visit_note_versions v \
         WHERE v.tenant_id = a.tenant_id AND v.appointment_id = a.id) THEN 1 ELSE 0 END AS BIGINT) AS has_notes \
         FROM appointments a WHERE a.tenant_id = $1 AND a.episode_id = $2 ORDER BY a.start_s, a.id",
    )
    .bind(tenant.get())
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EpisodeAppointment {
                appointment: serde_json::from_str(&r.try_get::<String, _>("doc")?)?,
                has_notes: r.try_get::<i64, _>("has_notes")? != 0,
            })
        })
        .collect()
}
