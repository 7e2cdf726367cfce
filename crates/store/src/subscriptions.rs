//! FHIR topic-based subscriptions (Embassy): one per API key and topic, with
//! the counter of events sent and the list of those events (for `$events`).

use crate::outbox::{Seq, next_id};
use crate::rows::{chunked, params};
use crate::{Conn, StoreError, StoreResult, secs, ts};
use jiff::Timestamp;
use polyclinic_core::{CoreError, CredentialId, TenantId};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: i64,
    pub credential_id: CredentialId,
    pub topic: i64,
    /// `requested`, `active`, `error` or `off`.
    pub status: String,
    pub reason: Option<String>,
    /// `rest-hook` or `email`.
    pub channel_type: String,
    pub endpoint: String,
    /// Media type of notifications (`application/fhir+json` or `application/fhir+xml`).
    pub payload: String,
    /// The `channel.header` entries as (name, value) pairs. Values are
    /// stored sealed ([`crate::deliveries::sealed_header`]): copied sealed into
    /// every delivery, opened only at send time and to answer the API key that
    /// set them. (Rows written before sealing hold clear values, which are
    /// sent as they are.)
    pub headers: Vec<(String, String)>,
    /// The criteria URL as given.
    pub criteria: String,
    pub heartbeat_seconds: i64,
    pub events_since_start: i64,
    pub error_count: i64,
    pub last_sent_at: Timestamp,
    pub created_at: Timestamp,
}

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Subscription> {
    let mut s: Subscription = serde_json::from_str(&r.try_get::<String, _>("doc")?)?;
    // Columns are the truth for what changes after creation.
    s.status = r.try_get("status")?;
    s.events_since_start = r.try_get("events_since_start")?;
    s.error_count = r.try_get("error_count")?;
    s.last_sent_at = ts(r.try_get("last_sent_at")?)?;
    Ok(s)
}

const COLUMNS: &str = "status, events_since_start, error_count, last_sent_at, doc";

/// Stores a new subscription (its id is drawn here). A second subscription of
/// the same API key to the same topic answers `AlreadyExists`.
pub async fn create(conn: &mut Conn, tenant: TenantId, mut s: Subscription) -> StoreResult<Subscription> {
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT id FROM subscriptions WHERE tenant_id = $1 AND credential_id = $2 AND topic = $3")
            .bind(tenant.get())
            .bind(s.credential_id.get())
            .bind(s.topic)
            .fetch_optional(&mut *conn)
            .await?;
    if taken.is_some() {
        return Err(CoreError::AlreadyExists { entity: "subscription", key: format!("topic {}", s.topic) }.into());
    }
    s.id = next_id(conn, Seq::Entity).await?;
    sqlx::query(
        "INSERT INTO subscriptions (tenant_id, id, credential_id, topic, status, channel_type, endpoint, events_since_start, \
         heartbeat_seconds, last_sent_at, error_count, created_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(tenant.get())
    .bind(s.id)
    .bind(s.credential_id.get())
    .bind(s.topic)
    .bind(&s.status)
    .bind(&s.channel_type)
    .bind(&s.endpoint)
    .bind(s.events_since_start)
    .bind(s.heartbeat_seconds)
    .bind(secs(s.last_sent_at))
    .bind(s.error_count)
    .bind(secs(s.created_at))
    .bind(serde_json::to_string(&s)?)
    .execute(&mut *conn)
    .await
    .map_err(crate::db::map_constraint)?;
    arm_heartbeat(conn, tenant, s.id).await?;
    Ok(s)
}

/// The job kind of a subscription's heartbeat (`store::jobs`).
pub const HEARTBEAT_JOB: &str = "subscription-heartbeat";

/// Arms the heartbeat job of subscription `id` for when its next heartbeat
/// is due (its last notification plus its period), or disarms it when the
/// subscription takes none (gone, not listening, e-mail, no period). Called
/// by every change of what decides it, in the same transaction.
pub async fn arm_heartbeat(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<()> {
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT status, channel_type, heartbeat_seconds, last_sent_at FROM subscriptions WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant.get())
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((status, channel, period, last))
            if matches!(status.as_str(), "active" | "error") && channel == "rest-hook" && period > 0 =>
        {
            let due = crate::ts(last.saturating_add(period))?;
            crate::jobs::arm(conn, tenant, HEARTBEAT_JOB, &id.to_string(), due, &serde_json::json!({})).await
        }
        _ => crate::jobs::disarm(conn, tenant, HEARTBEAT_JOB, &id.to_string()).await,
    }
}

/// A subscription by id, if its heartbeat is due at `now`.
pub async fn heartbeat_due_one(
    conn: &mut Conn,
    tenant: TenantId,
    id: i64,
    now: Timestamp,
) -> StoreResult<Option<Subscription>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND id = $2 AND status IN ('active', 'error') \
         AND channel_type = 'rest-hook' AND heartbeat_seconds > 0 AND last_sent_at + heartbeat_seconds <= $3"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.get())
        .bind(id)
        .bind(secs(now))
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// One subscription of an API key.
pub async fn get(
    conn: &mut Conn,
    tenant: TenantId,
    credential: CredentialId,
    id: i64,
) -> StoreResult<Option<Subscription>> {
    let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND credential_id = $2 AND id = $3");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.get())
        .bind(credential.get())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every subscription of an API key, by id.
pub async fn list(conn: &mut Conn, tenant: TenantId, credential: CredentialId) -> StoreResult<Vec<Subscription>> {
    let sql = format!("SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND credential_id = $2 ORDER BY id");
    let rows =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(credential.get()).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// The tenant's subscriptions to `topic` that take notifications (`active`,
/// and `error`, which keeps receiving so that it can recover).
pub async fn listening(conn: &mut Conn, tenant: TenantId, topic: i64) -> StoreResult<Vec<Subscription>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM subscriptions WHERE tenant_id = $1 AND topic = $2 AND status IN ('active', 'error') ORDER BY id"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(topic).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// Deletes one subscription; answers whether it existed.
pub async fn delete(conn: &mut Conn, tenant: TenantId, credential: CredentialId, id: i64) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM subscriptions WHERE tenant_id = $1 AND credential_id = $2 AND id = $3")
        .bind(tenant.get())
        .bind(credential.get())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM subscription_events WHERE tenant_id = $1 AND subscription_id = $2")
        .bind(tenant.get())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    crate::jobs::disarm(conn, tenant, HEARTBEAT_JOB, &id.to_string()).await?;
    Ok(r.rows_affected() > 0)
}

/// Deletes every subscription of an API key; answers how many.
pub async fn delete_all(conn: &mut Conn, tenant: TenantId, credential: CredentialId) -> StoreResult<u64> {
    let mut n = 0;
    for s in list(conn, tenant, credential).await? {
        if delete(conn, tenant, credential, s.id).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Sets the status (and resets the error count when it becomes active).
pub async fn set_status(conn: &mut Conn, tenant: TenantId, id: i64, status: &str) -> StoreResult<()> {
    sqlx::query(
        "UPDATE subscriptions SET status = $1, error_count = CASE WHEN $1 = 'active' THEN 0 ELSE error_count END \
         WHERE tenant_id = $2 AND id = $3",
    )
    .bind(status)
    .bind(tenant.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    arm_heartbeat(conn, tenant, id).await
}

/// Numbers the next events of a subscription (each an event's sequence
/// number and focus, in order), remembers them for `$events`, and marks the
/// subscription as just notified. Answers the first event's number (the
/// others follow it). One `UPDATE` and multi-row inserts, however many.
pub async fn record_events(
    conn: &mut Conn,
    tenant: TenantId,
    id: i64,
    events: &[(i64, String)],
    now: Timestamp,
) -> StoreResult<i64> {
    let count = i64::try_from(events.len()).map_err(|_| StoreError::Corrupt("too many events at once".into()))?;
    let last: i64 = sqlx::query_scalar(
        "UPDATE subscriptions SET events_since_start = events_since_start + $1, last_sent_at = $2 \
         WHERE tenant_id = $3 AND id = $4 RETURNING events_since_start",
    )
    .bind(count)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    let first = last - count + 1;
    let mut number = first;
    for chunk in chunked(events) {
        let rows = (0..chunk.len()).map(|i| format!("({})", params(i * 6 + 1, 6))).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO subscription_events (tenant_id, subscription_id, event_number, event_seq, focus, at) VALUES {rows}"
        );
        let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, focus) in chunk {
            insert = insert.bind(tenant.get()).bind(id).bind(number).bind(*seq).bind(focus.clone()).bind(secs(now));
            number += 1;
        }
        insert.execute(&mut *conn).await?;
    }
    // The heartbeat job stays armed for the earlier instant: when it runs,
    // it finds the heartbeat not due and arms itself for then (one job per
    // period, however many notifications went out meanwhile).
    Ok(first)
}

/// Marks a subscription as just notified (heartbeats).
pub async fn touch(conn: &mut Conn, tenant: TenantId, id: i64, now: Timestamp) -> StoreResult<()> {
    sqlx::query("UPDATE subscriptions SET last_sent_at = $1 WHERE tenant_id = $2 AND id = $3")
        .bind(secs(now))
        .bind(tenant.get())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    arm_heartbeat(conn, tenant, id).await
}

/// Notes the outcome of a notification: a delivered one makes an `error`
/// subscription `active` again; a dead one counts an error and sets `error`.
pub async fn note_delivery(conn: &mut Conn, tenant: TenantId, id: i64, delivered: bool) -> StoreResult<()> {
    let sql = if delivered {
        "UPDATE subscriptions SET status = 'active', error_count = 0 WHERE tenant_id = $1 AND id = $2 AND status = 'error'"
    } else {
        "UPDATE subscriptions SET status = CASE WHEN status = 'off' THEN status ELSE 'error' END, error_count = error_count + 1 \
         WHERE tenant_id = $1 AND id = $2"
    };
    let changed = sqlx::query(sql).bind(tenant.get()).bind(id).execute(&mut *conn).await?.rows_affected();
    // A delivery to an active subscription changes nothing its heartbeat
    // depends on.
    if delivered && changed == 0 {
        return Ok(());
    }
    arm_heartbeat(conn, tenant, id).await
}

/// A notified event, for `$events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifiedEvent {
    pub number: i64,
    pub focus: String,
    pub at: Timestamp,
}

/// The events of a subscription numbered in `[since, until]`.
pub async fn events(
    conn: &mut Conn,
    tenant: TenantId,
    id: i64,
    since: i64,
    until: i64,
) -> StoreResult<Vec<NotifiedEvent>> {
    let rows = sqlx::query(
        "SELECT event_number, focus, at FROM subscription_events WHERE tenant_id = $1 AND subscription_id = $2 \
         AND event_number >= $3 AND event_number <= $4 ORDER BY event_number",
    )
    .bind(tenant.get())
    .bind(id)
    .bind(since)
    .bind(until)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok(NotifiedEvent { number: r.try_get(0)?, focus: r.try_get(1)?, at: ts(r.try_get(2)?)? }))
        .collect::<Result<_, StoreError>>()
}
