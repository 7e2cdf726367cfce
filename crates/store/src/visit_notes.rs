//! Visit notes with their versions (migration 0011, `visit_note_versions`),
//! and the look-up behind Solo's perfect-answer 24-hour rule.
//!
//! Every change to an appointment's note appends a version; the newest is
//! the note. A version's `doc` is the whole note after the change, as JSON
//! sealed under the server key ([`SecretKey`]): it is patient data and no
//! query needs to look inside it. This module seals on the way in and opens
//! on the way out, so no caller can store a note in clear.
//!
//! The version number is `MAX(version) + 1` read inside the write
//! transaction, after the appointment's row lock ([`change`]): on PostgreSQL
//! two changes of one note run one after the other, each on top of what the
//! other wrote; SQLite's single writer runs them one at a time anyway. The
//! primary key `(tenant_id, appointment_id, version)` is the last guard: a
//! version is never overwritten.

use crate::outbox::is_postgres;
use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, appointments, secs, ts};
use jiff::Timestamp;
use polyclinic_core::{AppointmentId, CredentialId, PatientId, TenantId};
use serde_json::Value;
use sqlx::Row;

/// One version of a note, opened.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteVersion {
    /// 1 for the first change, then one more for each.
    pub version: i64,
    /// The credential that made the change (none for one made by the server).
    pub credential_id: Option<CredentialId>,
    pub created_at: Timestamp,
    /// The whole note after the change (the dialect's JSON).
    pub doc: Value,
}

fn from_row(r: &sqlx::any::AnyRow, key: &SecretKey) -> StoreResult<NoteVersion> {
    let sealed: String = r.try_get("doc")?;
    let plain = key.open(&sealed).map_err(|e| StoreError::Corrupt(format!("visit note: {e}")))?;
    Ok(NoteVersion {
        version: r.try_get("version")?,
        credential_id: r.try_get::<Option<i64>, _>("credential_id")?.map(CredentialId),
        created_at: ts(r.try_get("created_at")?)?,
        doc: serde_json::from_str(&plain)?,
    })
}

/// The newest version of the appointment's note: the note; `None` while
/// nothing was written to it.
pub async fn latest(
    conn: &mut Conn,
    tenant: TenantId,
    appointment: AppointmentId,
    key: &SecretKey,
) -> StoreResult<Option<NoteVersion>> {
    let row = sqlx::query(
        "SELECT version, credential_id, created_at, doc FROM visit_note_versions \
         WHERE tenant_id = $1 AND appointment_id = $2 ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant.get())
    .bind(appointment.get())
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(|r| from_row(r, key)).transpose()
}

/// Every version of the appointment's note, oldest first.
pub async fn history(
    conn: &mut Conn,
    tenant: TenantId,
    appointment: AppointmentId,
    key: &SecretKey,
) -> StoreResult<Vec<NoteVersion>> {
    let rows = sqlx::query(
        "SELECT version, credential_id, created_at, doc FROM visit_note_versions \
         WHERE tenant_id = $1 AND appointment_id = $2 ORDER BY version",
    )
    .bind(tenant.get())
    .bind(appointment.get())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| from_row(r, key)).collect()
}

/// Changes the appointment's note inside the caller's write: locks the
/// appointment's row (PostgreSQL), reads the newest version, hands its doc
/// (`None` for a note never written) to `apply`, and appends what `apply`
/// answers as the next version. Answers `None` when the tenant has no such
/// appointment, `Some(Err(_))` when `apply` refused (nothing is written),
/// else the new version.
pub async fn change<E>(
    conn: &mut Conn,
    tenant: TenantId,
    appointment: AppointmentId,
    credential: Option<CredentialId>,
    now: Timestamp,
    key: &SecretKey,
    apply: impl FnOnce(Option<Value>) -> Result<Value, E>,
) -> StoreResult<Option<Result<NoteVersion, E>>> {
    if appointments::get_for_update(conn, tenant, appointment).await?.is_none() {
        return Ok(None);
    }
    let current = latest(conn, tenant, appointment, key).await?;
    let next = current.as_ref().map_or(1, |v| v.version.saturating_add(1));
    let doc = match apply(current.map(|v| v.doc)) {
        Ok(doc) => doc,
        Err(refusal) => return Ok(Some(Err(refusal))),
    };
    sqlx::query(
        "INSERT INTO visit_note_versions (tenant_id, appointment_id, version, credential_id, created_at, doc) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.get())
    .bind(appointment.get())
    .bind(next)
    .bind(credential.map(|c| c.get()))
    .bind(secs(now))
    .bind(key.seal(&serde_json::to_string(&doc)?))
    .execute(&mut *conn)
    .await?;
    Ok(Some(Ok(NoteVersion { version: next, credential_id: credential, created_at: now, doc })))
}

/// Locks the patient's row until the caller's transaction ends
/// (PostgreSQL; SQLite's single writer serialises anyway), so that two
/// commands asking [`visits_created_after`] about one patient run one after
/// the other and the second sees the first's booking. Answers whether the
/// tenant has the patient.
pub async fn lock_patient(conn: &mut Conn, tenant: TenantId, patient: PatientId) -> StoreResult<bool> {
    let sql = if is_postgres(conn) {
        "SELECT id FROM patients WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT id FROM patients WHERE tenant_id = $1 AND id = $2"
    };
    let found: Option<i64> =
        sqlx::query_scalar(sql).bind(tenant.get()).bind(patient.get()).fetch_optional(&mut *conn).await?;
    Ok(found.is_some())
}

/// How many visits of the patient, booked through any dialect, were created
/// after `since` (not at it) and are not cancelled (nor entered in error): the
/// visits Solo's perfect-answer 24-hour rule counts. A visit moved to
/// another time keeps its creation time; a Docplanner move cancels the old
/// booking and creates a new one.
pub async fn visits_created_after(
    conn: &mut Conn,
    tenant: TenantId,
    patient: PatientId,
    since: Timestamp,
) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM appointments WHERE tenant_id = $1 AND patient_id = $2 AND created_at > $3 \
         AND status NOT IN ('cancelled', 'entered-in-error')",
    )
    .bind(tenant.get())
    .bind(patient.get())
    .bind(secs(since))
    .fetch_one(&mut *conn)
    .await?)
}
