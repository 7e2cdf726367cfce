//! Files of the care record: appointment attachments and patient documents
//! (`attachments`, migration 0011). The bytes are in the blob store
//! ([`crate::blobs`], sealed); a row holds the metadata a query needs in
//! clear (the appointment or patient, the type, the size, the order) and the
//! rest sealed in `doc` (the title, the document's date).
//!
//! [`create`] is one command: it puts the bytes in the blob store, then
//! inserts the row, through the command's connection. On PostgreSQL the
//! blob row is in the same transaction, so the bytes and their metadata
//! commit or roll back together; on SQLite the blob file is written whole
//! (temporary file, fsync, rename) before the row commits, so a crash
//! leaves at most an unlisted blob, never a listed file without its bytes.
//!
//! A deleted file keeps its row (`deleted = 1`) and its blob, and leaves
//! every read here.

use crate::blobs::BlobStore;
use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, secs, ts};
use polyclinic_core::care::Attachment;
use polyclinic_core::{AppointmentId, PatientId, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// What the sealed `doc` column holds.
#[derive(Serialize, Deserialize)]
struct Doc {
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dated: Option<i64>,
}

const COLUMNS: &str = "id, appointment_id, patient_id, mime_type, size, deleted, created_at, doc";

fn from_row(key: &SecretKey, r: &sqlx::any::AnyRow) -> StoreResult<Attachment> {
    let sealed: String = r.try_get("doc")?;
    let doc = key.open(&sealed).map_err(|e| StoreError::Corrupt(format!("an attachment's doc: {e}")))?;
    let doc: Doc = serde_json::from_str(&doc)?;
    let id: String = r.try_get("id")?;
    Ok(Attachment {
        id: id.parse().map_err(|_| StoreError::Corrupt(format!("attachment id {id}")))?,
        appointment_id: r.try_get::<Option<i64>, _>("appointment_id")?.map(AppointmentId),
        patient_id: r.try_get::<Option<i64>, _>("patient_id")?.map(PatientId),
        title: doc.title,
        mime_type: r.try_get("mime_type")?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or(0),
        dated: doc.dated.map(ts).transpose()?,
        deleted: r.try_get::<i64, _>("deleted")? != 0,
        created_at: ts(r.try_get("created_at")?)?,
    })
}

/// Stores a file: `bytes` in the blob store, then its row `a` (its id
/// chosen by the caller), after the tenant's other files (`seq`: the order
/// of every listing). `a.size` is taken from `bytes`.
pub async fn create(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    key: &SecretKey,
    tenant: TenantId,
    a: &Attachment,
    bytes: &[u8],
) -> StoreResult<()> {
    let blob_id = blobs.put(conn, tenant, bytes, a.created_at).await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM attachments WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?;
    let doc = serde_json::to_string(&Doc { title: a.title.clone(), dated: a.dated.map(secs) })?;
    sqlx::query(
        "INSERT INTO attachments (tenant_id, id, seq, appointment_id, patient_id, blob_id, mime_type, size, deleted, created_at, doc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(tenant.get())
    .bind(a.id.as_str())
    .bind(last.unwrap_or(0).saturating_add(1))
    .bind(a.appointment_id.map(|i| i.get()))
    .bind(a.patient_id.map(|i| i.get()))
    .bind(&blob_id)
    .bind(&a.mime_type)
    .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
    .bind(0_i64)
    .bind(secs(a.created_at))
    .bind(key.seal(&doc))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The appointment's files, in the order they were added (deleted ones left out).
pub async fn for_appointment(
    conn: &mut Conn,
    key: &SecretKey,
    tenant: TenantId,
    appointment: AppointmentId,
) -> StoreResult<Vec<Attachment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments WHERE tenant_id = $1 AND appointment_id = $2 AND deleted = 0 \
         ORDER BY seq, created_at, id"
    );
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(appointment.get()).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| from_row(key, r)).collect()
}

/// The patient's documents (files kept for the patient, not attached to an
/// appointment), in the order they were added (deleted ones left out).
pub async fn for_patient(
    conn: &mut Conn,
    key: &SecretKey,
    tenant: TenantId,
    patient: PatientId,
) -> StoreResult<Vec<Attachment>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments WHERE tenant_id = $1 AND patient_id = $2 AND appointment_id IS NULL \
         AND deleted = 0 ORDER BY seq, created_at, id"
    );
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(patient.get()).fetch_all(&mut *conn).await?;
    rows.iter().map(|r| from_row(key, r)).collect()
}

/// One file of the tenant that is not deleted, with its bytes.
pub async fn get_with_bytes(
    conn: &mut Conn,
    blobs: &dyn BlobStore,
    key: &SecretKey,
    tenant: TenantId,
    id: &str,
) -> StoreResult<Option<(Attachment, Vec<u8>)>> {
    let sql = format!("SELECT {COLUMNS}, blob_id FROM attachments WHERE tenant_id = $1 AND id = $2 AND deleted = 0");
    let Some(row) =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?
    else {
        return Ok(None);
    };
    let a = from_row(key, &row)?;
    let blob_id: Option<String> = row.try_get("blob_id")?;
    let blob_id = blob_id.ok_or_else(|| StoreError::Corrupt(format!("attachment {id} has no blob")))?;
    let bytes = blobs
        .get(conn, tenant, &blob_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("the blob of attachment {id} is missing")))?;
    Ok(Some((a, bytes)))
}

/// Marks a file of the appointment deleted (the row and its bytes are
/// kept); answers the file as it now is, or `None` when the appointment has
/// no such file that is not deleted.
pub async fn delete_of_appointment(
    conn: &mut Conn,
    key: &SecretKey,
    tenant: TenantId,
    appointment: AppointmentId,
    id: &str,
) -> StoreResult<Option<Attachment>> {
    let r = sqlx::query(
        "UPDATE attachments SET deleted = 1 WHERE tenant_id = $1 AND appointment_id = $2 AND id = $3 AND deleted = 0",
    )
    .bind(tenant.get())
    .bind(appointment.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    let sql = format!("SELECT {COLUMNS} FROM attachments WHERE tenant_id = $1 AND id = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_one(&mut *conn).await?;
    from_row(key, &row).map(Some)
}
