//! The engine: dispatch (fan-out) and send loops, retries, leases.
//!
//! A pass visits the tenants with work (due jobs, events not yet fanned
//! out, deliveries due). After a commit of this node it visits only the
//! tenants the committed commands gave new work (the store's set, filled
//! after commit); the first pass, a pass after the idle timer or a
//! [`Engine::wake`], and at least one pass every `max_sleep` while busy
//! sweep every tenant, the backstop for retries coming due, leases running
//! out and other nodes' events. Each tenant's dispatch and send stand on
//! their own: an error in one (a corrupt row, a failing router, a store
//! error) is logged with the tenant id, counted in [`RunSummary::errors`],
//! and the pass goes on with the next.
//!
//! A tenant's dispatch and claim are one transaction: its events fanned out,
//! then a batch claimed from each target queue whose head is due
//! ([`deliveries::claim_batches`]). A batch is leased to its worker
//! (`lease_seconds`, wall clock) and handed to a send task in memory. It may
//! wait there for a send slot; while it waits its lease is kept alive, and
//! before each send the lease is taken afresh once a second of it has passed
//! (and the rest of the batch let go if another worker has taken it
//! meanwhile), so that a whole lease covers every send however long the
//! wait was, and a delivery is never sent twice because it waited. The
//! batch is sent in order, stops at the first failed attempt, and its
//! outcomes are recorded (the unsent rest let go) in one transaction.

use crate::senders::{SendResult, Senders};
use futures_util::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::TenantId;
use polyclinic_core::clock::Clock;
use polyclinic_store::deliveries::{self, Attempt, Batch, Channel, Delivery, NewDelivery, Outcome};
use polyclinic_store::jobs::{self, Job};
use polyclinic_store::outbox::StoredEvent;
use polyclinic_store::{Conn, Store, StoreError, StoreResult};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, Semaphore};

/// A dialect's delivery targets.
pub trait Router: Send + Sync + 'static {
    /// The deliveries `event` causes for `tenant` (inside the dispatch
    /// transaction); by default none (a router that only runs jobs).
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        let _ = (conn, tenant, event, now);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// The deliveries a run of events causes for `tenant`, each with the
    /// sequence number of the event that caused it: the events in order,
    /// each event's deliveries in the order [`Router::route`] gives them
    /// (inside the dispatch transaction). By default one [`Router::route`]
    /// per event; a router that can do a run's work in fewer statements
    /// does it here.
    fn route_all<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        events: &'a [StoredEvent],
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<(i64, NewDelivery)>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for event in events {
                out.extend(self.route(conn, tenant, event, now).await?.into_iter().map(|d| (event.seq, d)));
            }
            Ok(out)
        })
    }

    /// Hears the final or interim outcomes (`delivered`, `failed`, `dead`)
    /// of deliveries to its own targets, in the order they were attempted
    /// (inside the recording transaction; a batch of one target queue, or
    /// a delivery sent at once); by default it keeps no record of its own.
    fn on_outcomes<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        outcomes: &'a [(&'a Delivery, &'static str)],
    ) -> BoxFuture<'a, StoreResult<()>> {
        let _ = (conn, tenant, outcomes);
        Box::pin(async { Ok(()) })
    }

    /// Whether `target_key` is one of this router's targets; by default
    /// none (a router that only runs jobs).
    fn owns(&self, target_key: &str) -> bool {
        let _ = target_key;
        false
    }

    /// The kinds of time-driven job (`store::jobs`) this router runs.
    fn job_kinds(&self) -> &'static [&'static str] {
        &[]
    }

    /// Runs a due job of one of its [`Router::job_kinds`], inside the
    /// transaction that then finishes it: the deliveries it causes.
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        job: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        let _ = (conn, tenant, job, now);
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Tuning of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Attempts before a delivery is dead (targets with their own retry
    /// schedule use that schedule's length plus one).
    pub max_attempts: i64,
    /// First retry delay; doubled on each further failure.
    pub backoff_base_seconds: i64,
    /// Longest retry delay.
    pub backoff_cap_seconds: i64,
    /// How long a delivery stays leased to its worker once its send starts
    /// (wall clock; at least the send timeout). Kept alive while the
    /// delivery waits for a send slot.
    pub lease_seconds: i64,
    /// Events fanned out, and due jobs run, per tenant and pass. A pass
    /// must fan out faster than a busy tenant books: at 100, a tenant
    /// booking 1,250 a second on SQLite fell a second behind in ten
    /// (docs/benchmarks.md).
    pub batch: i64,
    /// Deliveries claimed at once from one target queue: sent one after the
    /// other in order, their outcomes recorded in one transaction.
    pub per_target: i64,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Longest sleep between passes when idle. The engine sleeps until the
    /// next due job, delivery or lease, or until a commit on this node
    /// wakes it; this bounds the sleep for work only another node (sharing
    /// PostgreSQL) committed.
    pub max_sleep: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_attempts: 8,
            backoff_base_seconds: 30,
            backoff_cap_seconds: 3600,
            lease_seconds: 120,
            batch: 500,
            per_target: 200,
            concurrency: 32,
            max_sleep: Duration::from_secs(1),
        }
    }
}

impl EngineConfig {
    /// The delay before attempt `failed + 1`, after `failed` failures: the
    /// target's schedule, or `base * 2^(failed-1)` capped, times a jitter
    /// factor in [0.8, 1.2]. `None` when attempts are exhausted.
    pub fn retry_delay(&self, failed: i64, schedule: Option<&[i64]>, jitter: f64) -> Option<i64> {
        match schedule {
            Some(s) => s.get(usize::try_from(failed - 1).ok()?).copied(),
            None => {
                if failed >= self.max_attempts {
                    return None;
                }
                let exp = u32::try_from(failed - 1).unwrap_or(0).min(30);
                let raw = self.backoff_base_seconds.saturating_mul(1i64 << exp).min(self.backoff_cap_seconds);
                Some(((raw as f64) * jitter.clamp(0.8, 1.2)).round() as i64)
            }
        }
    }
}

/// What one `run_due` did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct RunSummary {
    /// Events fanned out.
    pub dispatched: usize,
    /// Deliveries queued (events and heartbeats).
    pub queued: usize,
    /// Deliveries claimed and handed to their send tasks (a batch stops at
    /// its first failed attempt: the rest is let go and claimed again).
    pub attempted: usize,
    /// Tenant dispatches or sends that failed (logged; the other tenants'
    /// went on).
    pub errors: usize,
    /// Due jobs run (reminders, heartbeats, token expiry, ...).
    pub jobs: usize,
}

/// The delivery engine. One per process; cheap to share in an `Arc`.
pub struct Engine {
    store: Store,
    clock: Arc<dyn Clock>,
    routers: Vec<Arc<dyn Router>>,
    senders: Senders,
    config: EngineConfig,
    permits: Arc<Semaphore>,
    inflight: Arc<(AtomicUsize, Notify)>,
    pass: Mutex<()>,
    wake: Notify,
    /// Set once the background loop stops: batches not yet sent are let go
    /// (their deliveries wait in the database for the next start).
    stopping: Arc<AtomicBool>,
}

impl Engine {
    /// An engine over `store`, reading "now" from `clock`.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        routers: Vec<Arc<dyn Router>>,
        senders: Senders,
        config: EngineConfig,
    ) -> Self {
        Engine {
            store,
            clock,
            routers,
            senders,
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            inflight: Arc::new((AtomicUsize::new(0), Notify::new())),
            pass: Mutex::new(()),
            wake: Notify::new(),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The senders (for synchronous sends such as subscription handshakes).
    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// Asks the background loop to look for work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the background loop until `shutdown` completes, then waits for the
    /// sends in flight: each finishes the send it is in and records it; the
    /// rest of its batch, and every batch still waiting for a send slot, is
    /// let go, to be sent after the next start (or by another node once
    /// their lease passes).
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        // The first pass, and a pass after the timer or a `wake`, sweeps
        // every tenant; a pass after a commit of this node visits only the
        // tenants it gave new work, with a sweep at most every `max_sleep`
        // as the backstop while passes follow each other.
        let mut sweep = true;
        let mut last_sweep = Instant::now();
        loop {
            let full = sweep || last_sweep.elapsed() >= self.config.max_sleep;
            if full {
                last_sweep = Instant::now();
            }
            let busy = {
                let _pass = self.pass.lock().await;
                match self.pass_once(full).await {
                    Ok(summary) => summary.dispatched + summary.attempted + summary.jobs > 0,
                    Err(e) => {
                        tracing::error!(error = %loggable(&e), "delivery pass failed");
                        false
                    }
                }
            };
            if busy {
                sweep = false;
                // A backlog keeps the passes coming: shutdown is still
                // heard between them.
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    _ = tokio::task::yield_now() => continue,
                }
            }
            let sleep = self.idle_sleep().await;
            sweep = tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => true,
                _ = self.store.commits().notified() => false,
                _ = tokio::time::sleep(sleep) => true,
            };
        }
        // The batches in flight finish the send they are in, record it and
        // let go of the rest; those waiting for a send slot let go at once.
        self.stopping.store(true, Ordering::SeqCst);
        self.permits.close();
        self.wait_idle().await;
    }

    /// How long an idle loop sleeps: until the earliest due job, delivery
    /// attempt (both on the injected clock) or lease (wall clock), at most
    /// [`EngineConfig::max_sleep`], and never less than a tenth of a second
    /// (work due but held elsewhere, by another node's lock, is not spun on).
    async fn idle_sleep(&self) -> Duration {
        let (now, wall) = (self.clock.now().as_second(), wall_now());
        let next = self
            .store
            .read(move |c| {
                Box::pin(async move { Ok((jobs::next_due(c).await?, deliveries::next_due(c, wall).await?)) })
            })
            .await;
        let (job, (attempt, lease)) = match next {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %loggable(&e), "reading the next due instant failed");
                return self.config.max_sleep;
            }
        };
        let until =
            [job.map(|d| d - now), attempt.map(|d| d - now), lease.map(|d| d - wall)].into_iter().flatten().min();
        next_sleep(until, self.config.max_sleep)
    }

    /// Runs every due dispatch and send at once, and waits until the sends it
    /// started (and any the background loop had in flight) have finished.
    pub async fn run_due(&self) -> StoreResult<RunSummary> {
        let _pass = self.pass.lock().await;
        self.wait_idle().await;
        let mut total = RunSummary::default();
        // A stopped engine lets go of what it claims: it sends nothing more.
        while !self.stopping.load(Ordering::SeqCst) {
            let s = self.pass_once(true).await?;
            self.wait_idle().await;
            total.dispatched += s.dispatched;
            total.queued += s.queued;
            total.attempted += s.attempted;
            total.errors += s.errors;
            total.jobs += s.jobs;
            if s.dispatched == 0 && s.attempted == 0 && s.jobs == 0 {
                break;
            }
        }
        Ok(total)
    }

    async fn wait_idle(&self) {
        let (count, notify) = &*self.inflight;
        loop {
            let notified = notify.notified();
            if count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// One pass over the tenants that have work: due jobs first (one look at
    /// the earliest, then only the tenants with one due), then the tenants
    /// with events not yet fanned out or deliveries due: when `sweep`, every
    /// tenant with such work; otherwise only those this node's commands gave
    /// new work since the last pass ([`Store::take_tenants_with_new_work`]).
    /// An idle tenant costs nothing. Fails only when those tenants cannot be
    /// read; a tenant's own failures are logged and counted, and the pass
    /// goes on (see [`Engine::pass_tenant`]).
    async fn pass_once(&self, sweep: bool) -> StoreResult<RunSummary> {
        let now = self.clock.now();
        let wall = wall_now();
        let mut summary = RunSummary::default();
        let with_jobs = self.store.read(move |c| Box::pin(async move { jobs::tenants_due(c, now).await })).await?;
        for tenant in with_jobs {
            match self.run_jobs(tenant, now).await {
                Ok((ran, q)) => {
                    summary.jobs += ran;
                    summary.queued += q;
                }
                Err(e) => tenant_failed(tenant, "running due jobs", &e, &mut summary),
            }
        }
        // Taken before the sweep reads: work committed meanwhile is noted
        // for the next pass.
        let mut tenants = self.store.take_tenants_with_new_work();
        if sweep {
            let all = self.store.read(move |c| Box::pin(async move { deliveries::tenants_with_work(c).await })).await?;
            tenants.extend(all);
            tenants.sort_unstable();
            tenants.dedup();
        }
        for tenant in tenants {
            self.pass_tenant(tenant, now, wall, &mut summary).await;
        }
        Ok(summary)
    }

    /// One tenant's share of a pass, added to `summary`: its events fanned
    /// out and its due batches claimed in one transaction, each batch handed
    /// in memory to a send task. A failed dispatch still sends what was
    /// queued before (the claim is then tried alone). Failures are logged
    /// with the tenant id and the kind of error (never its data) and counted,
    /// never returned, so that one tenant's corrupt row, failing router or
    /// store error never stops the others.
    async fn pass_tenant(&self, tenant: TenantId, now: Timestamp, wall: i64, summary: &mut RunSummary) {
        let work = self
            .store
            .read(move |c| {
                Box::pin(async move {
                    Ok((
                        deliveries::has_undispatched(c, tenant).await?,
                        deliveries::has_due(c, tenant, now, wall).await?,
                    ))
                })
            })
            .await;
        let (events, due) = match work {
            Ok(work) => work,
            Err(e) => {
                tenant_failed(tenant, "checking for work", &e, summary);
                return;
            }
        };
        if !events && !due {
            return;
        }
        let mut claimed = self.dispatch_and_claim(tenant, now, events).await;
        if events && let Err(e) = &claimed {
            tenant_failed(tenant, "dispatch", e, summary);
            claimed = self.dispatch_and_claim(tenant, now, false).await;
        }
        match claimed {
            Ok((dispatched, queued, batches)) => {
                summary.dispatched += dispatched;
                summary.queued += queued;
                for batch in batches {
                    summary.attempted += batch.deliveries.len();
                    self.spawn_batch(batch);
                }
            }
            Err(e) => tenant_failed(tenant, "claiming due deliveries", &e, summary),
        }
    }

    /// Runs the tenant's due jobs, each by the router that owns its kind, in
    /// one transaction with the deliveries they cause; answers how many were
    /// queued. A job of a kind no router owns is dropped (and logged).
    async fn run_jobs(&self, tenant: TenantId, now: Timestamp) -> StoreResult<(usize, usize)> {
        let routers = self.routers.clone();
        let batch = self.config.batch;
        self.store
            .write(move |c| {
                Box::pin(async move {
                    // Before the jobs lock rows of their own (see
                    // deliveries::lock_tenant_for_enqueue).
                    deliveries::lock_tenant_for_enqueue(c, tenant).await?;
                    let mut caused = Vec::new();
                    let due = jobs::due(c, tenant, now, batch).await?;
                    let ran = due.len();
                    for job in due {
                        match routers.iter().find(|r| r.job_kinds().contains(&job.kind.as_str())) {
                            Some(router) => {
                                caused.extend(router.run_job(c, tenant, &job, now).await?.into_iter().map(|d| (0, d)));
                            }
                            None => tracing::warn!(tenant = tenant.get(), kind = %job.kind, "a job no router runs"),
                        }
                        jobs::finish(c, tenant, &job).await?;
                    }
                    deliveries::enqueue_many(c, tenant, &caused, now).await?;
                    Ok((ran, caused.len()))
                })
            })
            .await
    }

    /// In one transaction: fans out the tenant's events not yet dispatched
    /// (when `dispatch`), then claims a batch from each of its target queues
    /// whose head is due ([`deliveries::claim_batches`]), the deliveries just
    /// queued included. Answers the events dispatched, the deliveries
    /// queued, and the batches claimed.
    async fn dispatch_and_claim(
        &self,
        tenant: TenantId,
        now: Timestamp,
        dispatch: bool,
    ) -> StoreResult<(usize, usize, Vec<Batch>)> {
        let routers = self.routers.clone();
        let (batch, per_target, lease) = (self.config.batch, self.config.per_target, self.config.lease());
        self.store
            .write(move |c| {
                Box::pin(async move {
                    let (mut dispatched, mut queued) = (0, 0);
                    if dispatch && deliveries::lock_tenant_for_dispatch(c, tenant).await? {
                        let events = deliveries::undispatched(c, tenant, batch).await?;
                        let mut caused = Vec::new();
                        for router in &routers {
                            caused.extend(router.route_all(c, tenant, &events, now).await?);
                        }
                        deliveries::enqueue_many(c, tenant, &caused, now).await?;
                        let seqs = events.iter().map(|e| e.seq).collect::<Vec<_>>();
                        deliveries::mark_dispatched(c, tenant, &seqs).await?;
                        (dispatched, queued) = (events.len(), caused.len());
                    }
                    let batches = deliveries::claim_batches(c, tenant, now, wall_now(), lease, per_target).await?;
                    Ok((dispatched, queued, batches))
                })
            })
            .await
    }

    fn worker(&self, routers: Vec<Arc<dyn Router>>) -> Worker {
        Worker {
            store: self.store.clone(),
            clock: self.clock.clone(),
            routers,
            senders: self.senders.clone(),
            config: self.config.clone(),
            stopping: self.stopping.clone(),
        }
    }

    /// Sends `batch` once a send slot is free: its deliveries one after the
    /// other, in queue order, stopping at the first failure; then records
    /// every outcome in one transaction. While it waits for the slot, its
    /// lease is kept alive (other workers see it taken); the lease is taken
    /// afresh before a send whenever a second of it has passed, and the rest
    /// of the batch is dropped (not sent here) if another worker has taken
    /// it meanwhile.
    fn spawn_batch(&self, batch: Batch) {
        // Decrements the count however the send ends (a panic, or a task
        // dropped unpolled, included): `run_due` and shutdown wait for zero.
        let inflight = InFlight::start(self.inflight.clone());
        let permits = self.permits.clone();
        let worker = self.worker(self.routers.clone());
        tokio::spawn(async move {
            let _inflight = inflight;
            let mut held = batch.held;
            // The wait keeps its place in the semaphore's queue across the
            // checks of the lease.
            let acquire = permits.acquire_owned();
            tokio::pin!(acquire);
            let _permit = loop {
                tokio::select! {
                    permit = &mut acquire => match permit {
                        Ok(permit) => break permit,
                        // Closed: the engine is stopping.
                        Err(_) => {
                            worker.let_go(&batch, held).await;
                            return;
                        }
                    },
                    _ = tokio::time::sleep(worker.config.lease_check()) => {
                        if !worker.keep_lease(&batch, &mut held).await {
                            return;
                        }
                    }
                }
            };
            // The queue's next batch, claimed as this one is recorded, is
            // sent by this task too (it holds a send slot already).
            let mut next = Some((batch, held));
            while let Some((batch, held)) = next.take() {
                next = worker.send_batch(batch, held).await.map(|b| {
                    let held = b.held;
                    (b, held)
                });
            }
        });
    }

    /// Queues `d` and sends it at once, waiting for the outcome (subscription
    /// handshakes). The attempt is recorded like any other; a failure is not
    /// retried. Answers the attempt.
    pub async fn send_now(&self, tenant: TenantId, mut d: NewDelivery) -> StoreResult<Attempt> {
        d.retry_schedule = Some(Vec::new());
        let now = self.clock.now();
        let spec = d.clone();
        // Leased from the start: the background workers must not send it too.
        let until = wall_now() + self.config.lease();
        let id = self
            .store
            .write(move |c| {
                Box::pin(async move {
                    let id = deliveries::enqueue(c, tenant, 0, &spec, now).await?;
                    deliveries::hold(c, tenant, id, until).await?;
                    Ok(id)
                })
            })
            .await?;
        let worker = self.worker(Vec::new());
        let delivery = Delivery {
            tenant_id: tenant,
            id,
            event_seq: 0,
            target_key: d.target_key.clone(),
            event: d.event.clone(),
            state: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            spec: d,
        };
        let sent = worker.send(&delivery).await;
        let attempt = sent.attempt.clone();
        worker.record(tenant, vec![sent], None, None).await?;
        Ok(attempt)
    }
}

impl EngineConfig {
    /// The lease, at least a second (a claim must set a later lease than the
    /// one that passed, see [`deliveries::renew_range`]).
    fn lease(&self) -> i64 {
        self.lease_seconds.max(1)
    }

    /// How often a delivery waiting for a send slot checks its lease: four
    /// times per lease, so that it is renewed well before it passes.
    fn lease_check(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.lease()).unwrap_or(u64::MAX).saturating_mul(250))
    }
}

/// Logs a tenant's failed dispatch or send, and counts it.
fn tenant_failed(tenant: TenantId, stage: &'static str, e: &StoreError, summary: &mut RunSummary) {
    summary.errors += 1;
    tracing::error!(
        tenant = tenant.get(),
        stage,
        error = %loggable(e),
        "a tenant's delivery pass failed; the other tenants' deliveries go on"
    );
}

/// What may be logged of a store error: its kind and codes, never its text
/// where that may quote stored data (a corrupt row's decoding error quotes
/// the value, a domain error names the input, a database message may hold a
/// bound value).
fn loggable(e: &StoreError) -> String {
    match e {
        StoreError::Core(c) => format!("refused by a domain rule ({})", c.code()),
        StoreError::Db(sqlx::Error::Database(db)) => format!(
            "database error (code {}, constraint {})",
            db.code().as_deref().unwrap_or("none"),
            db.constraint().unwrap_or("none")
        ),
        StoreError::Db(
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::Encode(_)
            | sqlx::Error::TypeNotFound { .. },
        ) => "database error (a value could not be encoded or decoded)".into(),
        StoreError::Db(other) => format!("database error: {other}"),
        StoreError::Corrupt(_) => "corrupt stored data".into(),
        StoreError::Aborted(_) => "the write was aborted".into(),
    }
}

/// One send in flight, counted from its spawn until it is dropped.
struct InFlight(Arc<(AtomicUsize, Notify)>);

impl InFlight {
    fn start(counter: Arc<(AtomicUsize, Notify)>) -> Self {
        counter.0.fetch_add(1, Ordering::SeqCst);
        InFlight(counter)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (count, notify) = &*self.0;
        count.fetch_sub(1, Ordering::SeqCst);
        notify.notify_waiters();
    }
}

/// When a retry `delay_seconds` after `now` is due: saturating, so that a
/// "now" near the end of the time range never panics.
fn retry_at(now: Timestamp, delay_seconds: i64) -> Timestamp {
    now.saturating_add(SignedDuration::from_secs(delay_seconds)).unwrap_or(Timestamp::MAX)
}

/// Seconds of the wall clock (leases are about real process liveness, so they
/// never follow the test clock).
/// The idle sleep for work due in `until` seconds (none known: the
/// longest), between a tenth of a second and `max`.
fn next_sleep(until: Option<i64>, max: Duration) -> Duration {
    let floor = Duration::from_millis(100).min(max);
    match until {
        None => max,
        Some(s) if s <= 0 => floor,
        Some(s) => Duration::from_secs(u64::try_from(s).unwrap_or(u64::MAX)).clamp(floor, max),
    }
}

fn wall_now() -> i64 {
    Timestamp::now().as_second()
}

struct Worker {
    store: Store,
    clock: Arc<dyn Clock>,
    routers: Vec<Arc<dyn Router>>,
    senders: Senders,
    config: EngineConfig,
    stopping: Arc<AtomicBool>,
}

/// One attempt made, before it is recorded.
struct Sent {
    delivery: Delivery,
    attempt: Attempt,
    /// When to try again (`None`: delivered, or attempts exhausted).
    retry_at: Option<Timestamp>,
    /// When the attempt ended, on the injected clock.
    at: Timestamp,
}

/// The queue of a batch being recorded.
struct Queue {
    target_key: String,
    /// The batch's first delivery (the queue's head when it was claimed).
    head: i64,
    /// Claim the queue's next batch in the same transaction.
    claim_next: bool,
}

/// The part of a batch that was not sent, let go when the batch is recorded.
struct Unsent {
    target_key: String,
    from: i64,
    to: i64,
    held: i64,
}

impl Worker {
    /// While `batch` waits for a send slot: renews its lease `held` once at
    /// least a second of it has passed. `false` when another worker has
    /// taken part of it meanwhile (it must not be sent here). A failed
    /// renewal is logged and waited out: the lease is taken again, and
    /// checked, before each send.
    async fn keep_lease(&self, batch: &Batch, held: &mut i64) -> bool {
        if *held - wall_now() >= self.config.lease() {
            return true;
        }
        match self.renew_lease(batch, batch.range().0, *held).await {
            Ok(Some(until)) => {
                *held = until;
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(
                    tenant = batch.tenant_id.get(),
                    error = %loggable(&e),
                    "renewing the lease of a waiting batch failed"
                );
                true
            }
        }
    }

    /// Takes the lease of the deliveries of `batch` from id `from` on afresh
    /// from `held`: a full lease from now (always later than `held`). `None`
    /// when another worker has taken one of them meanwhile, or one was
    /// settled: those still held are then let go, and none is sent here.
    async fn renew_lease(&self, batch: &Batch, from: i64, held: i64) -> StoreResult<Option<i64>> {
        let until = (wall_now() + self.config.lease()).max(held + 1);
        let (tenant, key, to) = (batch.tenant_id, batch.target_key.clone(), batch.range().1);
        let expected = u64::try_from(batch.deliveries.iter().filter(|d| d.id >= from).count()).unwrap_or(u64::MAX);
        let renewed = self
            .store
            .write(move |c| {
                Box::pin(async move {
                    let n = deliveries::renew_range(c, tenant, &key, (from, to), held, until).await?;
                    if n != expected {
                        deliveries::release(c, tenant, &key, from, to, until).await?;
                    }
                    Ok(n == expected)
                })
            })
            .await?;
        if !renewed {
            tracing::debug!(tenant = tenant.get(), "a waiting batch was taken by another worker; not sent here");
        }
        Ok(renewed.then_some(until))
    }

    /// Sends `batch` in queue order, stopping at the first failed attempt,
    /// and records the outcomes (and lets go of the rest) in one
    /// transaction. Before each send the lease is taken afresh once a second
    /// of it has passed, so that a full lease covers every send. When every
    /// delivery went through, the same transaction claims the queue's next
    /// batch, answered to be sent next.
    async fn send_batch(&self, batch: Batch, mut held: i64) -> Option<Batch> {
        let lease = self.config.lease();
        let to = batch.range().1;
        let mut sent: Vec<Sent> = Vec::with_capacity(batch.deliveries.len());
        let mut stopped_at = None;
        for d in &batch.deliveries {
            if self.stopping.load(Ordering::SeqCst) {
                stopped_at = Some(d.id);
                break;
            }
            if held - wall_now() < lease {
                match self.renew_lease(&batch, d.id, held).await {
                    Ok(Some(until)) => held = until,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(
                            tenant = batch.tenant_id.get(),
                            delivery = d.id,
                            error = %loggable(&e),
                            "taking the lease of a batch failed; not sent now, it is retried once the lease passes"
                        );
                        break;
                    }
                }
            }
            let one = self.send(d).await;
            let ok = one.attempt.ok;
            sent.push(one);
            if !ok {
                stopped_at = batch.deliveries.get(sent.len()).map(|next| next.id);
                break;
            }
        }
        let unsent = stopped_at.map(|from| Unsent { target_key: batch.target_key.clone(), from, to, held });
        let all_sent = sent.len() == batch.deliveries.len() && sent.iter().all(|s| s.attempt.ok);
        let queue = Queue {
            target_key: batch.target_key.clone(),
            head: batch.range().0,
            claim_next: all_sent && !self.stopping.load(Ordering::SeqCst),
        };
        match self.record(batch.tenant_id, sent, unsent, Some(queue)).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %loggable(&e), "recording delivery attempts failed; the lease will expire and they are retried");
                None
            }
        }
    }

    /// Sends one delivery through its channel's sender; the attempt, not yet
    /// recorded.
    async fn send(&self, delivery: &Delivery) -> Sent {
        let started = Instant::now();
        let result: SendResult = match &delivery.spec.channel {
            Channel::Http { url, headers, content_type, body } => {
                match deliveries::open_headers(self.store.secret_key(), headers) {
                    Ok(headers) => self.senders.http.post(url, &headers, content_type, body).await,
                    Err(e) => Err(format!("a sealed header could not be opened: {e}")),
                }
            }
            Channel::Email { to, subject, body } => self.senders.mail.send(to, subject, body).await,
            Channel::Sms { to, body } => self.senders.sms.send(to, body).await,
        };
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let attempt = match result {
            Ok(None) => Attempt { status: None, error: None, duration_ms, ok: true },
            Ok(Some(status)) if (200..300).contains(&status) => {
                Attempt { status: Some(i64::from(status)), error: None, duration_ms, ok: true }
            }
            Ok(Some(status)) => Attempt {
                status: Some(i64::from(status)),
                error: Some(format!("the target answered {status}")),
                duration_ms,
                ok: false,
            },
            Err(e) => Attempt { status: None, error: Some(e), duration_ms, ok: false },
        };
        let now = self.clock.now();
        let failed = delivery.attempts + 1;
        let retry_at = if attempt.ok {
            None
        } else {
            let jitter = rand::random_range(0.8..=1.2);
            self.config
                .retry_delay(failed, delivery.spec.retry_schedule.as_deref(), jitter)
                .map(|secs| retry_at(now, secs))
        };
        if !attempt.ok {
            tracing::warn!(
                delivery = delivery.id,
                target = %delivery.target_key,
                attempt = failed,
                error = attempt.error.as_deref().unwrap_or(""),
                "delivery attempt failed"
            );
        }
        Sent { delivery: delivery.clone(), attempt, retry_at, at: now }
    }

    /// Lets go of a whole batch not sent (the engine is stopping).
    async fn let_go(&self, batch: &Batch, held: i64) {
        let (from, to) = batch.range();
        let unsent = Unsent { target_key: batch.target_key.clone(), from, to, held };
        if let Err(e) = self.record(batch.tenant_id, Vec::new(), Some(unsent), None).await {
            tracing::warn!(error = %loggable(&e), "letting go of a batch failed; it is sent once its lease passes");
        }
    }

    /// Records attempts, and tells each target's router their outcome, in
    /// one transaction; lets go of `unsent` in the same. For a batch of
    /// `queue`, the queue's bound then rises to the first of its deliveries
    /// left waiting (one that failed, or the first not sent), or past the
    /// last one sent; and its next batch is claimed when asked.
    async fn record(
        &self,
        tenant: TenantId,
        sent: Vec<Sent>,
        unsent: Option<Unsent>,
        queue: Option<Queue>,
    ) -> StoreResult<Option<Batch>> {
        if sent.is_empty() && unsent.is_none() {
            return Ok(None);
        }
        let routers = self.routers.clone();
        let (per_target, lease) = (self.config.per_target, self.config.lease());
        let now = self.clock.now();
        self.store
            .write(move |c| {
                Box::pin(async move {
                    let outcomes = sent
                        .iter()
                        .map(|s| Outcome { id: s.delivery.id, attempt: &s.attempt, at: s.at, retry_at: s.retry_at })
                        .collect::<Vec<_>>();
                    let states = deliveries::record_attempts(c, tenant, &outcomes).await?;
                    for r in routers.iter() {
                        let mine = sent
                            .iter()
                            .zip(&states)
                            .filter(|(s, _)| r.owns(&s.delivery.target_key))
                            .map(|(s, state)| (&s.delivery, *state))
                            .collect::<Vec<_>>();
                        if !mine.is_empty() {
                            r.on_outcomes(c, tenant, &mine).await?;
                        }
                    }
                    if let Some(u) = &unsent {
                        deliveries::release(c, tenant, &u.target_key, u.from, u.to, u.held).await?;
                    }
                    let Some(q) = &queue else { return Ok(None) };
                    let unsent_from = unsent.as_ref().map(|u| u.from);
                    deliveries::advance_queue(c, tenant, &q.target_key, q.head, &outcomes, unsent_from).await?;
                    if !q.claim_next {
                        return Ok(None);
                    }
                    deliveries::claim_queue(c, tenant, &q.target_key, now, wall_now(), lease, per_target).await
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops() {
        let c =
            EngineConfig { max_attempts: 4, backoff_base_seconds: 30, backoff_cap_seconds: 100, ..Default::default() };
        assert_eq!(c.retry_delay(1, None, 1.0), Some(30));
        assert_eq!(c.retry_delay(2, None, 1.0), Some(60));
        assert_eq!(c.retry_delay(3, None, 1.0), Some(100), "capped");
        assert_eq!(c.retry_delay(4, None, 1.0), None, "four attempts, then dead");
        assert_eq!(c.retry_delay(1, None, 0.8), Some(24));
        assert_eq!(c.retry_delay(1, None, 5.0), Some(36), "jitter is clamped to 20%");
    }

    #[test]
    fn a_retry_past_the_end_of_time_saturates() {
        assert_eq!(retry_at(Timestamp::MAX, 3600), Timestamp::MAX);
        assert_eq!(retry_at(Timestamp::MAX - SignedDuration::from_secs(10), i64::MAX), Timestamp::MAX);
        let t: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(retry_at(t, 60).to_string(), "2030-01-01T00:01:00Z");
    }

    #[tokio::test]
    async fn a_send_that_panics_still_leaves_the_in_flight_count() {
        let counter = Arc::new((AtomicUsize::new(0), Notify::new()));
        let sends: Vec<InFlight> = (0..3).map(|_| InFlight::start(counter.clone())).collect();
        assert_eq!(counter.0.load(Ordering::SeqCst), 3);
        let mut tasks = Vec::new();
        for (i, send) in sends.into_iter().enumerate() {
            tasks.push(tokio::spawn(async move {
                let _send = send;
                if i == 0 {
                    panic!("a sender panicked");
                }
            }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.is_ok());
        }
        assert_eq!(results, [false, true, true], "the first send panicked");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "every send, the panicked one too, is let go");
        // A send dropped before it ever ran is let go too.
        drop(InFlight::start(counter.clone()));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    /// Runs a due job into one local e-mail per tenant (once, as a heartbeat
    /// would), and fails for `failing` as a corrupt row would.
    struct FailsForOneTenant {
        failing: TenantId,
        routed: std::sync::Mutex<std::collections::HashSet<TenantId>>,
    }

    impl Router for FailsForOneTenant {
        fn route<'a>(
            &'a self,
            _: &'a mut Conn,
            _: TenantId,
            _: &'a StoredEvent,
            _: Timestamp,
        ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn job_kinds(&self) -> &'static [&'static str] {
            &["test-job"]
        }

        fn run_job<'a>(
            &'a self,
            _: &'a mut Conn,
            tenant: TenantId,
            _: &'a Job,
            _: Timestamp,
        ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
            Box::pin(async move {
                if tenant == self.failing {
                    return Err(StoreError::Corrupt("a row that does not decode".into()));
                }
                if !self.routed.lock().unwrap().insert(tenant) {
                    return Ok(Vec::new());
                }
                Ok(vec![NewDelivery {
                    target_key: format!("test:{}", tenant.get()),
                    event: "test".into(),
                    channel: Channel::Email { to: "desk@clinic.test".into(), subject: "s".into(), body: "b".into() },
                    retry_schedule: None,
                }])
            })
        }

        fn on_outcomes<'a>(
            &'a self,
            _: &'a mut Conn,
            _: TenantId,
            _: &'a [(&'a Delivery, &'static str)],
        ) -> BoxFuture<'a, StoreResult<()>> {
            Box::pin(async { Ok(()) })
        }

        fn owns(&self, target_key: &str) -> bool {
            target_key.starts_with("test:")
        }
    }

    /// A fresh SQLite store with tenants `a` and `b` (in that order), each with
    /// a job due, and its file.
    async fn store_with_two_tenants() -> (Store, std::path::PathBuf, TenantId, TenantId) {
        let path = std::env::temp_dir().join(format!(
            "polyclinic-delivery-{}-{}.db",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        ));
        let store = Store::open(polyclinic_store::StoreOptions::new(format!("sqlite://{}", path.display())))
            .await
            .expect("open a SQLite store");
        let mut ids = Vec::new();
        for key in ["a", "b"] {
            let mut tenant: polyclinic_core::tenant::Tenant = serde_json::from_value(serde_json::json!({
                "id": 0, "key": key, "name": key, "country": "SE", "language": "sv",
                "timezone": "Europe/Stockholm", "settings": {}
            }))
            .expect("a tenant");
            let now = Timestamp::now();
            let id = store
                .write(move |c| Box::pin(async move { polyclinic_store::tenants::upsert(c, &mut tenant, now).await }))
                .await
                .expect("insert a tenant");
            let due = Timestamp::now() - SignedDuration::from_secs(1);
            store
                .write(move |c| {
                    Box::pin(async move { jobs::arm(c, id, "test-job", "x", due, &serde_json::json!({})).await })
                })
                .await
                .expect("arm a job");
            ids.push(id);
        }
        (store, path, ids[0], ids[1])
    }

    #[tokio::test]
    async fn stopping_lets_go_of_a_backlog_that_the_next_start_sends() {
        let (store, path, a, _) = store_with_two_tenants().await;
        let now = Timestamp::now();
        store
            .write(move |c| {
                Box::pin(async move {
                    for i in 0..1_000 {
                        let d = NewDelivery {
                            target_key: "test:backlog".into(),
                            event: "test".into(),
                            channel: Channel::Email {
                                to: "desk@clinic.test".into(),
                                subject: format!("{i}"),
                                body: "b".into(),
                            },
                            retry_schedule: None,
                        };
                        deliveries::enqueue(c, a, 0, &d, now).await?;
                    }
                    Ok(())
                })
            })
            .await
            .unwrap();
        let engine = || {
            Arc::new(Engine::new(
                store.clone(),
                Arc::new(polyclinic_core::clock::SystemClock),
                Vec::new(),
                Senders::local(Duration::from_secs(5), crate::TargetPolicy::allow_all()).unwrap(),
                EngineConfig::default(),
            ))
        };
        let states = || async {
            let rows = store
                .read(move |c| Box::pin(async move { polyclinic_store::tenants::deliveries(c, a).await }))
                .await
                .unwrap();
            let delivered = rows.iter().filter(|r| r.state == "delivered").count();
            (delivered, rows.len())
        };
        // Asked to stop at once: the loop claims a first batch (one queue,
        // 100 deliveries), hears the shutdown before the next pass, and
        // returns without draining the backlog.
        engine().run(async {}).await;
        let (delivered, all) = states().await;
        assert_eq!(all, 1_000);
        assert!(delivered <= 100, "at most the batch in flight went out, not the backlog: {delivered}");
        // What the stopped engine claimed and did not send was let go (not
        // left leased for two minutes): the next start sends all of it.
        let summary = engine().run_due().await.unwrap();
        assert_eq!(summary.errors, 0, "{summary:?}");
        assert_eq!(states().await, (1_000, 1_000));
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn one_tenants_failing_router_never_stops_another_tenants_deliveries() {
        let (store, path, a, b) = store_with_two_tenants().await;
        assert!(a.get() < b.get(), "the failing tenant is walked first");
        let router = Arc::new(FailsForOneTenant { failing: a, routed: Default::default() });
        let engine = Engine::new(
            store.clone(),
            Arc::new(polyclinic_core::clock::SystemClock),
            vec![router],
            Senders::local(Duration::from_secs(5), crate::TargetPolicy::allow_all()).unwrap(),
            EngineConfig::default(),
        );
        let summary = engine.run_due().await.expect("run_due still answers");
        assert_eq!(summary.queued, 1, "{summary:?}");
        assert_eq!(summary.attempted, 1, "{summary:?}");
        // Tenant a failed in both passes run_due made (the second found
        // nothing more to do for b).
        assert_eq!(summary.errors, 2, "{summary:?}");
        let sent = store
            .read(move |c| Box::pin(async move { polyclinic_store::tenants::deliveries(c, b).await }))
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].state.as_str(), sent[0].attempts), ("delivered", 1), "b's delivery went out");
        let none = store
            .read(move |c| Box::pin(async move { polyclinic_store::tenants::deliveries(c, a).await }))
            .await
            .unwrap();
        assert!(none.is_empty(), "a's failed dispatch queued nothing");
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn an_idle_engine_sleeps_until_the_next_due_work() {
        let max = Duration::from_secs(1);
        assert_eq!(next_sleep(None, max), max, "nothing due: the longest sleep");
        assert_eq!(next_sleep(Some(30), max), max, "work far ahead: the longest sleep");
        assert_eq!(next_sleep(Some(0), max), Duration::from_millis(100), "due now but held elsewhere: no spinning");
        assert_eq!(next_sleep(Some(-5), max), Duration::from_millis(100));
        let long = Duration::from_secs(60);
        assert_eq!(next_sleep(Some(7), long), Duration::from_secs(7), "until the next due instant");
        assert_eq!(next_sleep(Some(i64::MAX), long), long);
    }

    #[test]
    fn logged_store_errors_never_quote_their_data() {
        let corrupt = StoreError::Corrupt("invalid type: string \"197001011233\", expected i64".into());
        assert_eq!(loggable(&corrupt), "corrupt stored data");
        let refused = StoreError::Core(polyclinic_core::CoreError::invalid("national_id", "197001011233 is not valid"));
        assert_eq!(loggable(&refused), "refused by a domain rule (invalid)");
        assert!(!loggable(&StoreError::Aborted("the command panicked: secret".into())).contains("secret"));
    }

    #[test]
    fn a_target_schedule_overrides_backoff() {
        let c = EngineConfig::default();
        let schedule = [60, 300, 900];
        assert_eq!(c.retry_delay(1, Some(&schedule), 1.2), Some(60), "schedules are exact");
        assert_eq!(c.retry_delay(3, Some(&schedule), 1.0), Some(900));
        assert_eq!(c.retry_delay(4, Some(&schedule), 1.0), None);
        assert_eq!(c.retry_delay(1, Some(&[]), 1.0), None, "an empty schedule means one attempt");
    }
}
