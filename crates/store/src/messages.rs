//! Patient messages: what the patient messaging service sent (or is
//! sending) to a patient or a practitioner, as `GET /admin/messages` lists
//! it. A message is recorded once per appointment, kind, occasion and
//! recipient (a unique index), so a cause seen twice sends nothing twice.
//! The address, subject and body are patient data: sealed under the server
//! key, opened only for the admin API.

use crate::outbox::{Seq, next_id};
use crate::seal::SecretKey;
use crate::{Conn, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use sqlx::Row;

/// A message to record.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// `email` or `sms`.
    pub channel: &'static str,
    pub to: String,
    /// `appointment-confirmed`, `appointment-reminder`, ...
    pub kind: &'static str,
    pub appointment_id: i64,
    /// What makes this message one of its own: the start it is about for a
    /// reminder, a check-in or a change of time; empty for the others.
    pub occasion: String,
    /// `patient`, or `practitioner:{id}`.
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

/// A message as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MessageRow {
    pub id: String,
    pub channel: String,
    pub to: String,
    pub kind: String,
    pub appointment_id: Option<String>,
    pub subject: String,
    pub body: String,
    pub status: String,
    pub created_at: String,
}

/// Records `m` as `queued`; answers its id, or `None` when the same message
/// was recorded before (and nothing is written).
pub async fn record(
    conn: &mut Conn,
    tenant: TenantId,
    key: &SecretKey,
    m: &NewMessage,
    now: Timestamp,
) -> StoreResult<Option<i64>> {
    let id = next_id(conn, Seq::Message).await?;
    let inserted = sqlx::query(
        "INSERT INTO patient_messages (tenant_id, id, channel, to_addr, kind, appointment_id, subject, body, status, \
         created_at, occasion, recipient) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', $9, $10, $11) \
         ON CONFLICT (tenant_id, appointment_id, kind, occasion, recipient) DO NOTHING",
    )
    .bind(tenant.get())
    .bind(id)
    .bind(m.channel)
    .bind(key.seal(&m.to))
    .bind(m.kind)
    .bind(m.appointment_id)
    .bind(key.seal(&m.subject))
    .bind(key.seal(&m.body))
    .bind(secs(now))
    .bind(&m.occasion)
    .bind(&m.recipient)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(id))
}

/// Sets a message's status (`queued`, `sent`, `failed`).
pub async fn set_status(conn: &mut Conn, tenant: TenantId, id: i64, status: &str) -> StoreResult<()> {
    sqlx::query("UPDATE patient_messages SET status = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tenant's messages, oldest first, opened with `key`.
pub async fn list(conn: &mut Conn, tenant: TenantId, key: &SecretKey) -> StoreResult<Vec<MessageRow>> {
    let rows = sqlx::query(
        "SELECT id, channel, to_addr, kind, appointment_id, subject, body, status, created_at FROM patient_messages \
         WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant.get())
    .fetch_all(&mut *conn)
    .await?;
    let open = |v: String| key.open(&v).map_err(|_| crate::StoreError::Corrupt("a message cannot be opened".into()));
    rows.iter()
        .map(|r| {
            Ok(MessageRow {
                id: r.try_get::<i64, _>("id")?.to_string(),
                channel: r.try_get("channel")?,
                to: open(r.try_get("to_addr")?)?,
                kind: r.try_get("kind")?,
                appointment_id: r.try_get::<Option<i64>, _>("appointment_id")?.map(|v| v.to_string()),
                subject: open(r.try_get("subject")?)?,
                body: open(r.try_get("body")?)?,
                status: r.try_get("status")?,
                created_at: crate::ts(r.try_get("created_at")?)?.to_string(),
            })
        })
        .collect()
}
