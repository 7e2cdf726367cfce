//! Retention of the delivery history: outbox events once fanned out, and
//! deliveries once final (`delivered` or `dead`) with their attempts, are
//! deleted when older than the operator's retention (`--retention-days`).
//!
//! One job per tenant ([`RETENTION_JOB`], `store::jobs`) does it, in bounded
//! batches: a run deletes at most `batch` outbox rows and `batch` deliveries
//! (with their attempts, a handful each), oldest first, and arms itself again
//! at once while eligible rows remain, else for when the next row comes due
//! (at least [`PRUNE_INTERVAL_SECS`] later, so a steady stream of events
//! costs one run an interval, not one per event). Once armed the job always
//! re-arms itself, so it needs arming once per tenant ([`arm`]); arming is
//! idempotent and keeps the earlier instant.
//!
//! What is never deleted: an event not yet dispatched (`dispatched = 0`), a
//! delivery still `pending` or `failed` (retrying), and anything of another
//! table. Nothing reads an outbox row once dispatched: deliveries, Docplanner
//! PULL notifications (`docplanner_queue`, with their own 72-hour expiry) and
//! Embassy `$events` (`subscription_events`) keep copies of what they need,
//! and only refer to the event's `seq` as a number.
//!
//! Age: an outbox row's `created_at`; a final delivery's `next_attempt_at`,
//! which holds the instant it became final (`deliveries::record_attempts`).
//! Rows are taken in id (`seq`) order and a batch stops at the first row
//! still too young, so each run reads at most `batch` rows of each table
//! through an index (the partial `deliveries_final` of migration 0016, the
//! existing `outbox_dispatch`); a row that became final late holds back those
//! after it until it ages out too (at most the longest retry span).
//!
//! Lock order on PostgreSQL (see `jobs`): the running job holds its row, then
//! takes rows to delete with `FOR UPDATE SKIP LOCKED` (deliveries) or rows no
//! one else writes (dispatched outbox rows, attempts of final deliveries), so
//! it never waits on a lock held by a transaction that waits for the job.
//! The delete re-checks the state, so a dead delivery that a Docplanner
//! client released meanwhile (back to `pending`) stays.

use crate::{Conn, StoreResult, secs, ts};
use jiff::Timestamp;
use polyclinic_core::TenantId;
use sqlx::{AssertSqlSafe, Row};

/// The job kind, one per tenant.
pub const RETENTION_JOB: &str = "retention";
const RETENTION_SUBJECT: &str = "delivery-history";

/// The shortest wait between two runs that found nothing more to delete.
pub const PRUNE_INTERVAL_SECS: i64 = 3600;

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub outbox: u64,
    pub deliveries: u64,
    pub attempts: u64,
}

/// Arms the tenant's retention job for `due`, unless it is armed earlier.
pub async fn arm(conn: &mut Conn, tenant: TenantId, due: Timestamp) -> StoreResult<()> {
    crate::jobs::arm_earliest(conn, tenant, RETENTION_JOB, RETENTION_SUBJECT, due).await
}

/// When the tenant's retention job is due, if armed.
pub async fn due(conn: &mut Conn, tenant: TenantId) -> StoreResult<Option<Timestamp>> {
    crate::jobs::due_of(conn, tenant, RETENTION_JOB, RETENTION_SUBJECT).await
}

/// One run of the job armed for `job_due` (seconds): deletes up to `batch`
/// dispatched outbox rows and up to `batch` final deliveries (with their
/// attempts) older than `retention_secs` at `now`, then re-arms the job.
pub async fn prune(
    conn: &mut Conn,
    tenant: TenantId,
    now: Timestamp,
    retention_secs: i64,
    batch: i64,
    job_due: i64,
) -> StoreResult<Pruned> {
    let now_s = secs(now);
    let cutoff = now_s.saturating_sub(retention_secs);
    let batch = batch.max(1);
    let mut pruned = Pruned::default();

    // Outbox: dispatched rows, oldest seq first, up to the first young one.
    let rows =
        sqlx::query("SELECT seq, created_at FROM outbox WHERE tenant_id = $1 AND dispatched = 1 ORDER BY seq LIMIT $2")
            .bind(tenant.get())
            .bind(batch)
            .fetch_all(&mut *conn)
            .await?;
    let (old, next_event) = split_old(&rows, "seq", "created_at", cutoff)?;
    if !old.is_empty() {
        let sql = format!("DELETE FROM outbox WHERE tenant_id = $1 AND dispatched = 1 AND seq IN ({})", id_list(&old));
        pruned.outbox = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).execute(&mut *conn).await?.rows_affected();
    }
    // A full batch, all of it old: more may be old too.
    let mut more = next_event.is_none() && rows.len() as i64 == batch;

    // Deliveries: final ones, oldest id first, up to the first young one.
    let lock = if crate::outbox::is_postgres(conn) { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "SELECT id, next_attempt_at FROM deliveries WHERE tenant_id = $1 AND state IN ('delivered', 'dead') \
         ORDER BY id LIMIT $2{lock}"
    );
    let rows = sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).bind(batch).fetch_all(&mut *conn).await?;
    let (old, next_delivery) = split_old(&rows, "id", "next_attempt_at", cutoff)?;
    if !old.is_empty() {
        let sql = format!(
            "DELETE FROM deliveries WHERE tenant_id = $1 AND state IN ('delivered', 'dead') AND id IN ({}) RETURNING id",
            id_list(&old)
        );
        let gone: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(sql)).bind(tenant.get()).fetch_all(&mut *conn).await?;
        pruned.deliveries = gone.len() as u64;
        if !gone.is_empty() {
            let sql =
                format!("DELETE FROM delivery_attempts WHERE tenant_id = $1 AND delivery_id IN ({})", id_list(&gone));
            pruned.attempts =
                sqlx::query(AssertSqlSafe(sql)).bind(tenant.get()).execute(&mut *conn).await?.rows_affected();
        }
    }
    more |= next_delivery.is_none() && rows.len() as i64 == batch;

    // Re-arm: at once while eligible rows remain (an instant other than the
    // job's own, which `jobs::finish` would take for this run's and delete);
    // else when the oldest row left comes due, but not before the interval;
    // else (nothing left) when a row made now would come due.
    let next = match [next_event, next_delivery].into_iter().flatten().min() {
        _ if more => job_due.min(now_s) - 1,
        Some(age) => (age.saturating_add(retention_secs)).max(now_s.saturating_add(PRUNE_INTERVAL_SECS)),
        None => now_s.saturating_add(retention_secs.max(PRUNE_INTERVAL_SECS)),
    };
    crate::jobs::arm(conn, tenant, RETENTION_JOB, RETENTION_SUBJECT, ts(next)?, &serde_json::json!({})).await?;
    Ok(pruned)
}

/// Splits rows read in id order into the ids old enough (age column at or
/// before `cutoff`), up to the first one that is not, and that one's age.
fn split_old(rows: &[sqlx::any::AnyRow], id: &str, age: &str, cutoff: i64) -> StoreResult<(Vec<i64>, Option<i64>)> {
    let mut old = Vec::with_capacity(rows.len());
    for r in rows {
        let at: i64 = r.try_get(age)?;
        if at > cutoff {
            return Ok((old, Some(at)));
        }
        old.push(r.try_get(id)?);
    }
    Ok((old, None))
}

/// Ids as a SQL list (integers only, so safe to inline).
fn id_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_plain_integers() {
        assert_eq!(id_list(&[1, 22, -3]), "1, 22, -3");
        assert_eq!(id_list(&[]), "");
    }
}
