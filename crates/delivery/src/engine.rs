//! The engine: dispatch (fan-out) and send loops, retries, leases.

use crate::senders::{SendResult, Senders};
use futures_util::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::TenantId;
use polyclinic_core::clock::Clock;
use polyclinic_store::deliveries::{self, Attempt, Channel, Delivery, NewDelivery};
use polyclinic_store::outbox::StoredEvent;
use polyclinic_store::{Conn, Store, StoreResult};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify, Semaphore};

/// A dialect's delivery targets.
pub trait Router: Send + Sync + 'static {
    /// The deliveries `event` causes for `tenant` (inside the dispatch transaction).
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>>;

    /// Deliveries due by time alone (heartbeats), checked on every pass.
    fn scheduled<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>>;

    /// Hears the final or interim outcome (`delivered`, `failed`, `dead`) of a
    /// delivery to one of its own targets (inside the recording transaction).
    fn on_outcome<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        delivery: &'a Delivery,
        state: &'a str,
    ) -> BoxFuture<'a, StoreResult<()>>;

    /// Whether `target_key` is one of this router's targets.
    fn owns(&self, target_key: &str) -> bool;
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
    /// How long a claimed delivery stays claimed (wall clock).
    pub lease_seconds: i64,
    /// Deliveries claimed per tenant and pass.
    pub batch: i64,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Pause between passes when idle.
    pub poll_interval: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_attempts: 8,
            backoff_base_seconds: 30,
            backoff_cap_seconds: 3600,
            lease_seconds: 120,
            batch: 100,
            concurrency: 32,
            poll_interval: Duration::from_millis(200),
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
    /// Attempts made.
    pub attempted: usize,
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
    /// Wall-clock second of the last time-driven check (heartbeats).
    last_scheduled: std::sync::atomic::AtomicI64,
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
            last_scheduled: std::sync::atomic::AtomicI64::new(0),
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
    /// sends in flight.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let busy = {
                let _pass = self.pass.lock().await;
                match self.pass_once(false).await {
                    Ok(summary) => summary.dispatched + summary.attempted > 0,
                    Err(e) => {
                        tracing::error!(error = %e, "delivery pass failed");
                        false
                    }
                }
            };
            if busy {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {},
                _ = tokio::time::sleep(self.config.poll_interval) => {},
            }
        }
        self.wait_idle().await;
    }

    /// Runs every due dispatch and send at once, and waits until the sends it
    /// started (and any the background loop had in flight) have finished.
    pub async fn run_due(&self) -> StoreResult<RunSummary> {
        let _pass = self.pass.lock().await;
        self.wait_idle().await;
        let mut total = RunSummary::default();
        loop {
            let s = self.pass_once(true).await?;
            self.wait_idle().await;
            total.dispatched += s.dispatched;
            total.queued += s.queued;
            total.attempted += s.attempted;
            if s.dispatched == 0 && s.attempted == 0 {
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

    /// One pass over every tenant. Reads first, and opens a write only where
    /// there is work: new events, deliveries due, or (at most once a second,
    /// and always when `force`) time-driven work such as heartbeats.
    async fn pass_once(&self, force: bool) -> StoreResult<RunSummary> {
        let now = self.clock.now();
        let wall = wall_now();
        let scheduled = force || self.last_scheduled.load(Ordering::SeqCst) < wall;
        if scheduled {
            self.last_scheduled.store(wall, Ordering::SeqCst);
        }
        let tenants = self.store.read(|c| Box::pin(async move { deliveries::tenant_ids(c).await })).await?;
        let mut summary = RunSummary::default();
        for tenant in tenants {
            let (events, due) = self
                .store
                .read(move |c| {
                    Box::pin(async move {
                        Ok((
                            deliveries::has_undispatched(c, tenant).await?,
                            deliveries::has_due(c, tenant, now, wall).await?,
                        ))
                    })
                })
                .await?;
            let mut queued = 0;
            if events || scheduled {
                let (dispatched, q) = self.dispatch_tenant(tenant, now, scheduled).await?;
                summary.dispatched += dispatched;
                summary.queued += q;
                queued = q;
            }
            if due || queued > 0 {
                summary.attempted += self.send_tenant(tenant, now).await?;
            }
        }
        Ok(summary)
    }

    async fn dispatch_tenant(&self, tenant: TenantId, now: Timestamp, scheduled: bool) -> StoreResult<(usize, usize)> {
        let routers = self.routers.clone();
        let batch = self.config.batch;
        self.store
            .write(move |c| {
                Box::pin(async move {
                    if !deliveries::lock_tenant_for_dispatch(c, tenant).await? {
                        return Ok((0, 0));
                    }
                    let events = deliveries::undispatched(c, tenant, batch).await?;
                    let mut queued = 0;
                    for event in &events {
                        for router in &routers {
                            for d in router.route(c, tenant, event, now).await? {
                                deliveries::enqueue(c, tenant, event.seq, &d, now).await?;
                                queued += 1;
                            }
                        }
                        deliveries::mark_dispatched(c, tenant, event.seq).await?;
                    }
                    if scheduled {
                        for router in &routers {
                            for d in router.scheduled(c, tenant, now).await? {
                                deliveries::enqueue(c, tenant, 0, &d, now).await?;
                                queued += 1;
                            }
                        }
                    }
                    Ok((events.len(), queued))
                })
            })
            .await
    }

    async fn send_tenant(&self, tenant: TenantId, now: Timestamp) -> StoreResult<usize> {
        let (lease, batch) = (self.config.lease_seconds, self.config.batch);
        let claimed = self
            .store
            .write(move |c| {
                Box::pin(async move { deliveries::claim_due(c, tenant, now, wall_now(), lease, batch).await })
            })
            .await?;
        let n = claimed.len();
        for delivery in claimed {
            self.spawn_send(delivery);
        }
        Ok(n)
    }

    fn spawn_send(&self, delivery: Delivery) {
        // Decrements the count however the send ends (a panic, or a task
        // dropped unpolled, included): `run_due` and shutdown wait for zero.
        let inflight = InFlight::start(self.inflight.clone());
        let permits = self.permits.clone();
        let worker = Worker {
            store: self.store.clone(),
            clock: self.clock.clone(),
            routers: self.routers.clone(),
            senders: self.senders.clone(),
            config: self.config.clone(),
        };
        tokio::spawn(async move {
            let _inflight = inflight;
            let _permit = permits.acquire_owned().await;
            if let Err(e) = worker.deliver(delivery).await {
                tracing::error!(error = %e, "recording a delivery attempt failed; the lease will expire and it is retried");
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
        let until = wall_now() + self.config.lease_seconds;
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
        let worker = Worker {
            store: self.store.clone(),
            clock: self.clock.clone(),
            routers: Vec::new(),
            senders: self.senders.clone(),
            config: self.config.clone(),
        };
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
        worker.deliver(delivery).await
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
fn wall_now() -> i64 {
    Timestamp::now().as_second()
}

struct Worker {
    store: Store,
    clock: Arc<dyn Clock>,
    routers: Vec<Arc<dyn Router>>,
    senders: Senders,
    config: EngineConfig,
}

impl Worker {
    async fn deliver(&self, delivery: Delivery) -> StoreResult<Attempt> {
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
        let routers: Vec<Arc<dyn Router>> =
            self.routers.iter().filter(|r| r.owns(&delivery.target_key)).cloned().collect();
        let recorded = attempt.clone();
        let tenant = delivery.tenant_id;
        self.store
            .write(move |c| {
                Box::pin(async move {
                    let state = deliveries::record_attempt(c, tenant, delivery.id, &recorded, now, retry_at).await?;
                    for r in &routers {
                        r.on_outcome(c, tenant, &delivery, &state).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(attempt)
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
