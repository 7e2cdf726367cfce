//! Housekeeping that belongs to no dialect, run as due jobs
//! (`store::jobs`) like every other piece of time-driven work: the expiry
//! of access tokens (Docplanner's OAuth tokens today). Each tenant has one
//! `token-expiry` job, armed for its earliest expiry when a token is issued
//! and again, after each run, for the next one.

use crate::engine::Router;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_store::deliveries::NewDelivery;
use polyclinic_store::jobs::Job;
use polyclinic_store::{Conn, StoreResult, tenants};

/// Tokens one run deletes at most (more expired ones re-arm the job at once).
const TOKEN_BATCH: i64 = 1000;

/// The router of housekeeping jobs: it routes no events and owns no target.
pub struct Housekeeping;

impl Router for Housekeeping {
    fn job_kinds(&self) -> &'static [&'static str] {
        &[tenants::TOKEN_EXPIRY_JOB]
    }

    /// Deletes the tenant's expired tokens (the store re-arms the job).
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        _: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            let gone = tenants::expire_tokens(conn, tenant, now, TOKEN_BATCH).await?;
            if gone > 0 {
                tracing::debug!(tenant = tenant.get(), tokens = gone, "expired access tokens deleted");
            }
            Ok(Vec::new())
        })
    }
}
