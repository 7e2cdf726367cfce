//! Time-driven work: one durable row per job kind and subject (an
//! appointment's reminder, its check-in invitation), due at an instant of
//! the injected clock. Arming a job again moves it; a job is run and
//! finished inside one write transaction, so it runs once however many
//! nodes look for it: PostgreSQL's `FOR UPDATE SKIP LOCKED` gives each due
//! row to one of them, SQLite's single writer runs one pass at a time.
//!
//! Lock order on PostgreSQL: a running job holds its row first, then the
//! rows it works on. A command that both changes such rows and arms the
//! job must arm it first (as `tenants::issue_token` does), or the two can
//! deadlock.

use crate::outbox::is_postgres;
use crate::{Conn, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use sqlx::Row;

/// A due job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub kind: String,
    pub subject: String,
    pub due: i64,
    pub data: serde_json::Value,
}

/// Arms (or re-arms) the job `kind` of `subject` for `due`.
pub async fn arm(
    conn: &mut Conn,
    tenant: TenantId,
    kind: &str,
    subject: &str,
    due: Timestamp,
    data: &serde_json::Value,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, subject, due_s, data) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, kind, subject) DO UPDATE SET due_s = excluded.due_s, data = excluded.data",
    )
    .bind(tenant.get())
    .bind(kind)
    .bind(subject)
    .bind(secs(due))
    .bind(serde_json::to_string(data)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Arms the job `kind` of `subject` for `due`, unless it is armed for an
/// earlier instant already (a job that stands for many things, such as the
/// expiry of a tenant's tokens, runs at the earliest of them).
pub async fn arm_earliest(
    conn: &mut Conn,
    tenant: TenantId,
    kind: &str,
    subject: &str,
    due: Timestamp,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO jobs (tenant_id, kind, subject, due_s, data) VALUES ($1, $2, $3, $4, '{}') \
         ON CONFLICT (tenant_id, kind, subject) DO UPDATE SET due_s = \
         CASE WHEN excluded.due_s < jobs.due_s THEN excluded.due_s ELSE jobs.due_s END",
    )
    .bind(tenant.get())
    .bind(kind)
    .bind(subject)
    .bind(secs(due))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The earliest instant a job of any tenant is due, if any: the scheduler
/// sleeps until then (or a wake-up).
pub async fn next_due(conn: &mut Conn) -> StoreResult<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MIN(due_s) FROM jobs").fetch_one(&mut *conn).await?)
}

/// When the job `kind` of `subject` is due, if it is armed.
pub async fn due_of(conn: &mut Conn, tenant: TenantId, kind: &str, subject: &str) -> StoreResult<Option<Timestamp>> {
    let due: Option<i64> =
        sqlx::query_scalar("SELECT due_s FROM jobs WHERE tenant_id = $1 AND kind = $2 AND subject = $3")
            .bind(tenant.get())
            .bind(kind)
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    due.map(crate::ts).transpose()
}

/// Disarms the job `kind` of `subject`, if armed.
pub async fn disarm(conn: &mut Conn, tenant: TenantId, kind: &str, subject: &str) -> StoreResult<()> {
    sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND kind = $2 AND subject = $3")
        .bind(tenant.get())
        .bind(kind)
        .bind(subject)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Up to `limit` of the tenant's jobs due at `now`, oldest first, locked
/// for this transaction on PostgreSQL (rows another node holds are skipped).
pub async fn due(conn: &mut Conn, tenant: TenantId, now: Timestamp, limit: i64) -> StoreResult<Vec<Job>> {
    let sql = if is_postgres(conn) {
        "SELECT kind, subject, due_s, data FROM jobs WHERE tenant_id = $1 AND due_s <= $2 \
         ORDER BY due_s, kind, subject LIMIT $3 FOR UPDATE SKIP LOCKED"
    } else {
        "SELECT kind, subject, due_s, data FROM jobs WHERE tenant_id = $1 AND due_s <= $2 \
         ORDER BY due_s, kind, subject LIMIT $3"
    };
    let rows = sqlx::query(sql).bind(tenant.get()).bind(secs(now)).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter()
        .map(|r| {
            Ok(Job {
                kind: r.try_get("kind")?,
                subject: r.try_get("subject")?,
                due: r.try_get("due_s")?,
                data: serde_json::from_str(&r.try_get::<String, _>("data")?)?,
            })
        })
        .collect()
}

/// Finishes a job that ran: deletes it, unless it was re-armed for another
/// instant meanwhile.
pub async fn finish(conn: &mut Conn, tenant: TenantId, job: &Job) -> StoreResult<()> {
    sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND kind = $2 AND subject = $3 AND due_s = $4")
        .bind(tenant.get())
        .bind(&job.kind)
        .bind(&job.subject)
        .bind(job.due)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The tenants with a job due at `now`: none without a look at each tenant
/// when the earliest job lies ahead.
pub async fn tenants_due(conn: &mut Conn, now: Timestamp) -> StoreResult<Vec<TenantId>> {
    let earliest: Option<i64> = sqlx::query_scalar("SELECT MIN(due_s) FROM jobs").fetch_one(&mut *conn).await?;
    if earliest.is_none_or(|e| e > secs(now)) {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM jobs WHERE due_s <= $1 ORDER BY tenant_id")
        .bind(secs(now))
        .fetch_all(&mut *conn)
        .await?;
    Ok(ids.into_iter().map(TenantId).collect())
}
