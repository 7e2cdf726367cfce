//! Housekeeping that belongs to no dialect, run as due jobs
//! (`store::jobs`) like every other piece of time-driven work:
//!
//! - the expiry of access tokens (Docplanner's OAuth tokens today). Each
//!   tenant has one `token-expiry` job, armed for its earliest expiry when a
//!   token is issued and again, after each run, for the next one;
//! - the retention of the delivery history (`store::retention`): dispatched
//!   outbox events and final deliveries with their attempts older than
//!   `--retention-days` are deleted in bounded batches. Each tenant has one
//!   `retention` job that re-arms itself after every run; it is armed when
//!   the tenant's events are dispatched (see [`Housekeeping::route`]).

use crate::engine::Router;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_store::deliveries::NewDelivery;
use polyclinic_store::jobs::Job;
use polyclinic_store::outbox::StoredEvent;
use polyclinic_store::{Conn, StoreResult, retention, tenants};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens one run deletes at most (more expired ones re-arm the job at once).
const TOKEN_BATCH: i64 = 1000;

/// Rows of each table one retention run deletes at most, by default.
pub const RETENTION_BATCH: i64 = 1000;

/// The default retention of the delivery history, in days.
pub const RETENTION_DAYS: i64 = 30;

/// How long this node trusts that it armed a tenant's retention job before
/// it arms it again (idempotent): a dispatch that armed it and then rolled
/// back costs at most this long.
const ARMED_TRUST: Duration = Duration::from_secs(600);

/// The router of housekeeping jobs: it queues no deliveries and owns no target.
pub struct Housekeeping {
    retention_secs: i64,
    batch: i64,
    /// Tenants whose retention job this node armed, and when (wall clock).
    armed: Mutex<HashMap<TenantId, Instant>>,
}

impl Default for Housekeeping {
    fn default() -> Self {
        Housekeeping::new(RETENTION_DAYS, RETENTION_BATCH)
    }
}

impl Housekeeping {
    /// Housekeeping keeping the delivery history `retention_days` (at least
    /// one) and deleting at most `batch` rows of each table per run.
    pub fn new(retention_days: i64, batch: i64) -> Self {
        Housekeeping {
            retention_secs: retention_days.max(1).saturating_mul(24 * 3600),
            batch: batch.max(1),
            armed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node should arm the tenant's retention job now (and
    /// notes that it does).
    fn should_arm(&self, tenant: TenantId) -> bool {
        let mut armed = self.armed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match armed.get(&tenant) {
            Some(at) if now.duration_since(*at) < ARMED_TRUST => false,
            _ => {
                armed.insert(tenant, now);
                true
            }
        }
    }
}

impl Router for Housekeeping {
    /// Arms the tenant's retention job for when this event comes due (the
    /// job keeps itself armed from then on): once per tenant and node every
    /// [`ARMED_TRUST`], so the dispatch of most events costs nothing. The job
    /// row is taken after the events, in the dispatch transaction; the job
    /// itself never waits on events being dispatched (`store::retention`).
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            if self.should_arm(tenant) {
                let born = event.created_at.min(now.as_second());
                let due = Timestamp::from_second(born.saturating_add(self.retention_secs)).unwrap_or(now);
                retention::arm(conn, tenant, due).await?;
            }
            Ok(Vec::new())
        })
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[tenants::TOKEN_EXPIRY_JOB, retention::RETENTION_JOB]
    }

    /// Deletes the tenant's expired tokens, or its delivery history past the
    /// retention (the store re-arms each job).
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        job: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            if job.kind == retention::RETENTION_JOB {
                let p = retention::prune(conn, tenant, now, self.retention_secs, self.batch, job.due).await?;
                if p != retention::Pruned::default() {
                    tracing::debug!(
                        tenant = tenant.get(),
                        outbox = p.outbox,
                        deliveries = p.deliveries,
                        attempts = p.attempts,
                        "delivery history past the retention deleted"
                    );
                }
                return Ok(Vec::new());
            }
            let gone = tenants::expire_tokens(conn, tenant, now, TOKEN_BATCH).await?;
            if gone > 0 {
                tracing::debug!(tenant = tenant.get(), tokens = gone, "expired access tokens deleted");
            }
            Ok(Vec::new())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_armed_once_per_node_then_trusted() {
        let h = Housekeeping::new(30, 10);
        assert!(h.should_arm(TenantId(1)));
        assert!(!h.should_arm(TenantId(1)), "armed a moment ago");
        assert!(h.should_arm(TenantId(2)), "each tenant on its own");
        assert_eq!(Housekeeping::new(0, 0).retention_secs, 24 * 3600, "at least one day");
    }
}
