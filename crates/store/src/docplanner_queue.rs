//! Docplanner notifications: the PULL queue of each API client, the release
//! of failed PUSH deliveries, and the lookup of a tenant's Docplanner clients.
//!
//! A client without a push URL gets its notifications queued here, in the
//! dispatch transaction that turned the domain event into a notification; a
//! client with one gets them as deliveries of the queue [`target_key`].
//!
//! Pulling removes what it answers in the same transaction. On PostgreSQL the
//! rows are taken `FOR UPDATE SKIP LOCKED`, so two nodes pulling at once never
//! answer the same notification (SQLite has one writer). Notifications
//! [`RETENTION_SECONDS`] old are expired: never answered, and purged.

use crate::outbox::{Seq, is_postgres, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::tenant::{Credential, Dialect};
use polyclinic_core::{CredentialId, TenantId};
use sqlx::{AssertSqlSafe, Row};

/// How long a notification waits to be pulled: 72 hours.
pub const RETENTION_SECONDS: i64 = 72 * 3600;

/// The delivery queue of a PUSH client.
pub fn target_key(credential: CredentialId) -> String {
    format!("docplanner-client:{credential}")
}

/// The tenant's Docplanner API clients, by id.
pub async fn clients(conn: &mut Conn, tenant: TenantId) -> StoreResult<Vec<Credential>> {
    let rows =
        sqlx::query("SELECT id, client_id, doc FROM credentials WHERE tenant_id = $1 AND dialect = $2 ORDER BY id")
            .bind(tenant.get())
            .bind(Dialect::Docplanner.as_str())
            .fetch_all(&mut *conn)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Credential {
                id: CredentialId(r.try_get("id")?),
                tenant_id: tenant,
                dialect: Dialect::Docplanner,
                client_id: r.try_get("client_id")?,
                config: serde_json::from_str(&r.try_get::<String, _>("doc")?)?,
            })
        })
        .collect()
}

/// Queues a notification (`body`, rendered JSON) for a PULL client. `at` is
/// when it happened: it expires [`RETENTION_SECONDS`] later.
pub async fn enqueue(
    conn: &mut Conn,
    tenant: TenantId,
    credential: CredentialId,
    event_seq: i64,
    name: &str,
    body: &str,
    at: Timestamp,
) -> StoreResult<i64> {
    let id = next_id(conn, Seq::Delivery).await?;
    sqlx::query(
        "INSERT INTO docplanner_notifications (tenant_id, id, credential_id, event_seq, name, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.get())
    .bind(id)
    .bind(credential.get())
    .bind(event_seq)
    .bind(name)
    .bind(body)
    .bind(secs(at))
    .execute(&mut *conn)
    .await?;
    crate::jobs::arm_earliest(conn, tenant, PURGE_JOB, PURGE_SUBJECT, crate::ts(secs(at) + RETENTION_SECONDS)?).await?;
    Ok(id)
}

/// What a pull took from the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The notifications' bodies, oldest first.
    pub notifications: Vec<String>,
    /// Live notifications still queued after these.
    pub remaining: i64,
}

/// Takes the `limit` oldest live notifications of a client off its queue.
pub async fn pull(
    conn: &mut Conn,
    tenant: TenantId,
    credential: CredentialId,
    now: Timestamp,
    limit: i64,
) -> StoreResult<Pulled> {
    let cutoff = secs(now) - RETENTION_SECONDS;
    let lock = if is_postgres(conn) { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT id, body FROM docplanner_notifications WHERE tenant_id = $1 AND credential_id = $2 AND created_at > $3 \
         ORDER BY id LIMIT $4{lock}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.get())
        .bind(credential.get())
        .bind(cutoff)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut notifications = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = r.try_get("id")?;
        let gone = sqlx::query("DELETE FROM docplanner_notifications WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.get())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        // Locked by this transaction, so it is ours to answer; a row another
        // transaction removed meanwhile is not answered twice.
        if gone.rows_affected() == 1 {
            notifications.push(r.try_get("body")?);
        }
    }
    let remaining: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM docplanner_notifications WHERE tenant_id = $1 AND credential_id = $2 AND created_at > $3",
    )
    .bind(tenant.get())
    .bind(credential.get())
    .bind(cutoff)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Pulled { notifications, remaining })
}

/// The job (`store::jobs`) that purges a tenant's expired PULL
/// notifications, armed for the earliest expiry; one per tenant.
pub const PURGE_JOB: &str = "docplanner-pull-purge";
const PURGE_SUBJECT: &str = "pull-queue";

/// Drops the tenant's expired notifications and arms the purge job for the
/// next expiry, if any notification is left; answers how many went.
pub async fn purge_expired(conn: &mut Conn, tenant: TenantId, now: Timestamp) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM docplanner_notifications WHERE tenant_id = $1 AND created_at <= $2")
        .bind(tenant.get())
        .bind(secs(now) - RETENTION_SECONDS)
        .execute(&mut *conn)
        .await?;
    let oldest: Option<i64> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM docplanner_notifications WHERE tenant_id = $1")
            .bind(tenant.get())
            .fetch_one(&mut *conn)
            .await?;
    if let Some(oldest) = oldest {
        let due = crate::ts(oldest + RETENTION_SECONDS)?;
        crate::jobs::arm(conn, tenant, PURGE_JOB, PURGE_SUBJECT, due, &serde_json::json!({})).await?;
    }
    Ok(r.rows_affected())
}

/// The outcome of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Released: this many deliveries were queued again.
    Done { requeued: u64 },
    /// The last release was too recent: try again in this many seconds.
    TooSoon { retry_after: i64 },
}

/// Releases a PUSH client's notifications that were not delivered: those
/// `dead` are queued again (one more attempt each), those `failed` are retried
/// now rather than at their scheduled time. Allowed once per
/// `period_seconds`; the check and the record are one atomic upsert, so two
/// nodes cannot both release within the period.
pub async fn release(
    conn: &mut Conn,
    tenant: TenantId,
    credential: CredentialId,
    now: Timestamp,
    period_seconds: i64,
) -> StoreResult<Release> {
    let now_s = secs(now);
    let claimed = sqlx::query(
        "INSERT INTO docplanner_releases (tenant_id, credential_id, released_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, credential_id) DO UPDATE SET released_at = excluded.released_at \
         WHERE docplanner_releases.released_at <= $4 OR docplanner_releases.released_at > $3",
    )
    .bind(tenant.get())
    .bind(credential.get())
    .bind(now_s)
    .bind(now_s - period_seconds)
    .execute(&mut *conn)
    .await?;
    if claimed.rows_affected() == 0 {
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT released_at FROM docplanner_releases WHERE tenant_id = $1 AND credential_id = $2",
        )
        .bind(tenant.get())
        .bind(credential.get())
        .fetch_optional(&mut *conn)
        .await?;
        let last = last.ok_or_else(|| StoreError::Corrupt("release record vanished".into()))?;
        return Ok(Release::TooSoon { retry_after: (last + period_seconds - now_s).max(1) });
    }
    let key = target_key(credential);
    let dead = sqlx::query(
        "UPDATE deliveries SET state = 'pending', next_attempt_at = $1 \
         WHERE tenant_id = $2 AND target_key = $3 AND state = 'dead'",
    )
    .bind(now_s)
    .bind(tenant.get())
    .bind(&key)
    .execute(&mut *conn)
    .await?;
    if dead.rows_affected() > 0 {
        // Dead deliveries lie below the queue's bound: it goes back to them.
        crate::deliveries::requeue(conn, tenant, &key).await?;
    }
    let failed = sqlx::query(
        "UPDATE deliveries SET next_attempt_at = $1 \
         WHERE tenant_id = $2 AND target_key = $3 AND state = 'failed' AND next_attempt_at > $1",
    )
    .bind(now_s)
    .bind(tenant.get())
    .bind(&key)
    .execute(&mut *conn)
    .await?;
    Ok(Release::Done { requeued: dead.rows_affected() + failed.rows_affected() })
}
