//! The `deliver` scenario: how fast, and how completely, bookings reach the
//! webhook subscribers that asked for them.
//!
//! A webhook receiver runs inside the bench (axum on 127.0.0.1:0, on the
//! server's runtime). Through the Embassy dialect, [`HEALTHY`] rest-hook
//! subscribers (one API key each) subscribe to `AppointmentCreated` at
//! `/hook/{i}`, beside two failing ones: `/fail` answers 503 and `/slow`
//! answers after the server's send timeout has passed. The handshakes are
//! answered 200 by every path, so the failing subscriptions are created.
//! Then:
//!
//! 1. **burst**: Embassy bookings as fast as `--connections` can book, for
//!    `--duration`; the receiver counts, per subscriber, when each booked
//!    appointment arrived. Reported: deliveries per second (all healthy
//!    subscribers, and the first alone) from the burst's start to the last
//!    receipt, the best one-second rate, and how long after the burst's end
//!    the last delivery arrived.
//! 2. **paced**: [`PACED_RATE`] bookings per second for `--duration`; the
//!    enqueue-to-receive latency of every delivery: from the booking's
//!    request to the delivery's receipt. The event is committed between the
//!    request and the 201, and a delivery often arrives before the 201
//!    does: the figure is an upper bound, the booking's own commit
//!    included.
//!
//! 3. **backlog**: the healthy subscribers stop answering (each holds the
//!    one notification it was sent, and the engine sends a target's queue
//!    in order, so the rest wait in the database) while bookings are made
//!    for [`BACKLOG_FOR`]; then they answer again, and the engine drains the
//!    backlog with nothing else to do. Reported: deliveries per second (all
//!    healthy subscribers, and the first alone) from the release to the last
//!    receipt. The burst's rates are bounded by the bookings made at the
//!    same time on the same cores; this one is the engine's own.
//!
//! Every booked appointment must reach every healthy subscriber: the
//! scenario fails when one is missing after [`DRAIN_DEADLINE`]. Duplicates
//! (an appointment received twice by one subscriber, allowed by
//! at-least-once delivery) are counted and reported, as are the attempts
//! the failing targets saw.

use crate::load::{self, Conn, Load, Outcome, Paced, Plan, Stop};
use crate::scenarios::EmbassyBook;
use crate::stats::{Latency, Report, thousands, thousands_u};
use crate::world::{Booked, Setup, World};
use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper::{HeaderMap, Request};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Healthy subscribers (each receives every booking).
pub const HEALTHY: usize = 4;
/// Bookings per second of the paced phase.
pub const PACED_RATE: f64 = 500.0;
/// How long the backlog phase books while the subscribers are held (well
/// under the send timeout, so that the held sends do not fail).
pub const BACKLOG_FOR: Duration = Duration::from_secs(3);
/// How long after the last booking every delivery must have arrived.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

/// One notification received.
struct Receipt {
    /// The healthy subscriber's index.
    subscriber: usize,
    appointment: String,
    at: Instant,
}

pub(crate) struct Hooks {
    receipts: Mutex<Vec<Receipt>>,
    handshakes: Mutex<usize>,
    failed: Mutex<BTreeMap<&'static str, usize>>,
    /// How long `/slow` waits before answering.
    slow: Duration,
    /// While true, the healthy subscribers do not answer (backlog phase).
    held: tokio::sync::watch::Sender<bool>,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            receipts: Mutex::default(),
            handshakes: Mutex::default(),
            failed: Mutex::default(),
            slow: Duration::ZERO,
            held: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// The appointment id a rest-hook notification is about.
fn focus(body: &Value) -> Option<String> {
    let status = &body["entry"][0]["resource"];
    if status["type"] != "event-notification" {
        return None;
    }
    let reference = status["notificationEvent"][0]["focus"]["reference"].as_str()?;
    Some(reference.rsplit('/').next()?.to_owned())
}

async fn healthy(State(hooks): State<Arc<Hooks>>, Path(i): Path<usize>, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if focus(&parsed).is_some() {
        // Held while the backlog phase books: answered once released.
        let mut held = hooks.held.subscribe();
        let _ = held.wait_for(|h| !*h).await;
    }
    let at = Instant::now();
    match focus(&parsed) {
        Some(appointment) => {
            hooks.receipts.lock().unwrap_or_else(|p| p.into_inner()).push(Receipt { subscriber: i, appointment, at })
        }
        None => *hooks.handshakes.lock().unwrap_or_else(|p| p.into_inner()) += 1,
    }
    StatusCode::OK
}

async fn failing(State(hooks): State<Arc<Hooks>>, Path(kind): Path<String>, body: Bytes) -> StatusCode {
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if focus(&parsed).is_none() {
        return StatusCode::OK;
    }
    let kind = if kind == "slow" { "slow" } else { "fail" };
    *hooks.failed.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    if kind == "slow" {
        tokio::time::sleep(hooks.slow).await;
    }
    StatusCode::SERVICE_UNAVAILABLE
}

/// Embassy bookings that note when each was sent, optionally paced to
/// `rate` a second (a load thread sleeps until the next booking is due:
/// run it on one thread). The booking's event is committed between the
/// send and the answer, and its deliveries may arrive before the answer
/// does: latencies are taken from the send, an upper bound that includes
/// the booking's own commit.
struct Stamped {
    inner: Paced<EmbassyBook>,
    sent: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Load for Stamped {
    type Ctx = (Instant, <EmbassyBook as Load>::Ctx);
    type Kept = Booked;

    fn request(&self, ticket: usize, conn: &mut Conn) -> (Request<Full<Bytes>>, Self::Ctx) {
        let (request, ctx) = self.inner.request(ticket, conn);
        (request, (Instant::now(), ctx))
    }

    fn answer(
        &self,
        ctx: Self::Ctx,
        status: StatusCode,
        headers: &HeaderMap,
        body: &Bytes,
        kept: &mut Vec<Booked>,
    ) -> Outcome {
        let (at, ctx) = ctx;
        let before = kept.len();
        let outcome = self.inner.answer(ctx, status, headers, body, kept);
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        for b in &kept[before..] {
            sent.insert(b.id.clone(), at);
        }
        outcome
    }
}

/// What became of one phase's bookings at the receiver.
struct Drained {
    /// Deliveries received by the healthy subscribers (duplicates included).
    received: usize,
    /// ... by the first subscriber alone.
    received_first: usize,
    duplicates: usize,
    lost: usize,
    /// The first receipt of each (subscriber, appointment).
    first: HashMap<(usize, String), Instant>,
    last: Option<Instant>,
}

/// Waits until each of `ids` reached every healthy subscriber (or the
/// deadline passed), then counts what arrived since `from` (an index into
/// the receipts).
fn drain(hooks: &Hooks, from: usize, ids: &[String]) -> Drained {
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    loop {
        let got = {
            let receipts = hooks.receipts.lock().unwrap_or_else(|p| p.into_inner());
            receipts[from.min(receipts.len())..]
                .iter()
                .filter(|r| wanted.contains(r.appointment.as_str()))
                .map(|r| (r.subscriber, r.appointment.clone()))
                .collect::<HashSet<_>>()
                .len()
        };
        if got >= ids.len() * HEALTHY || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let receipts = hooks.receipts.lock().unwrap_or_else(|p| p.into_inner());
    let mut first = HashMap::new();
    let (mut received, mut received_first, mut duplicates, mut last) = (0, 0, 0, None);
    for r in receipts[from.min(receipts.len())..].iter().filter(|r| wanted.contains(r.appointment.as_str())) {
        received += 1;
        if r.subscriber == 0 {
            received_first += 1;
        }
        last = Some(last.map_or(r.at, |l: Instant| l.max(r.at)));
        if first.insert((r.subscriber, r.appointment.clone()), r.at).is_some() {
            duplicates += 1;
        }
    }
    let lost = ids.len() * HEALTHY - first.len();
    Drained { received, received_first, duplicates, lost, first, last }
}

/// The receipts per second in the best whole second of `times`.
fn best_second(times: &[Instant], from: Instant) -> usize {
    let mut buckets: BTreeMap<u64, usize> = BTreeMap::new();
    for t in times {
        *buckets.entry(t.saturating_duration_since(from).as_secs()).or_default() += 1;
    }
    buckets.values().copied().max().unwrap_or(0)
}

/// The tenant key the bench world was seeded under (the world names its
/// Embassy key after the same run id).
fn tenant_key(world: &World) -> anyhow::Result<String> {
    let run = world.embassy_key.strip_prefix("bench-embassy-").context("the bench world's Embassy key")?;
    Ok(format!("bench-{}", run.get(..12).context("the bench world's run id")?))
}

async fn subscribe(setup: &Setup, world: &World, key: &str, endpoint: &str) -> anyhow::Result<()> {
    let r = setup
        .http
        .post(format!("{}/embassy/Subscription", world.target.base))
        .header("X-Visiba-Care-API-Key", key)
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Subscription", "status": "requested", "reason": "polyclinic-bench deliver",
            "criteria": "http://example.com/SubscriptionTopic/1",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
        }))
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(status.as_u16() == 201, "subscribing {endpoint} answered {status}: {}", r.text().await?);
    Ok(())
}

/// Notifications received so far by the healthy subscribers.
pub(crate) fn received(hooks: &Hooks) -> usize {
    hooks.receipts.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Sets up the receiver and the subscriptions; answers the receiver.
pub(crate) async fn prepare(setup: &Setup, world: &World, send_timeout: Duration) -> anyhow::Result<Arc<Hooks>> {
    let hooks = Arc::new(Hooks { slow: send_timeout + Duration::from_secs(1), ..Default::default() });
    let app = axum::Router::new()
        .route("/hook/{i}", axum::routing::post(healthy))
        .route("/bad/{kind}", axum::routing::post(failing))
        .with_state(hooks.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    // One Embassy API key per subscriber (a key holds one subscription per
    // topic), added to the bench tenant: seeding is an upsert per key.
    let keys: Vec<String> = (0..HEALTHY + 2).map(|i| format!("{}-deliver-{i}", world.embassy_key)).collect();
    let credentials: Vec<Value> = keys.iter().map(|k| json!({"dialect": "embassy", "api_key": k})).collect();
    let doc = json!({"tenants": [{"key": tenant_key(world)?, "name": "Bench", "country": "SE", "language": "sv",
                                  "timezone": "UTC", "credentials": credentials}]});
    let r = setup
        .http
        .post(format!("{}/admin/seed", world.target.base))
        .bearer_auth(&setup.admin_token)
        .json(&doc)
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(status.is_success(), "adding the subscribers' API keys answered {status}: {}", r.text().await?);
    for (i, key) in keys.iter().take(HEALTHY).enumerate() {
        subscribe(setup, world, key, &format!("{base}/hook/{i}")).await?;
    }
    subscribe(setup, world, &keys[HEALTHY], &format!("{base}/bad/fail")).await?;
    subscribe(setup, world, &keys[HEALTHY + 1], &format!("{base}/bad/slow")).await?;
    Ok(hooks)
}

/// Runs the scenario on `world` (bookings through its Embassy key).
pub fn run(
    rt: &tokio::runtime::Runtime,
    world: &mut World,
    setup: &Setup,
    plan: &Plan,
    duration: Duration,
    send_timeout: Duration,
) -> anyhow::Result<Report> {
    let hooks = rt.block_on(prepare(setup, world, send_timeout))?;
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let stamped = |rate: Option<f64>, world: &World| -> anyhow::Result<Arc<Stamped>> {
        let book = EmbassyBook::new(world, world.booking_world(), 0)?;
        Ok(Arc::new(Stamped { inner: Paced::new(book, rate.unwrap_or(f64::INFINITY)), sent: sent.clone() }))
    };

    // 1. The burst.
    let from = hooks.receipts.lock().unwrap_or_else(|p| p.into_inner()).len();
    let burst_start = Instant::now();
    let burst_plan = Plan { stop: Stop::Timed { warmup: Duration::ZERO, duration }, ..*plan };
    let burst = load::run(&world.target, stamped(None, world)?, &burst_plan)?;
    let burst_end = Instant::now();
    let burst_ids: Vec<String> = burst.kept.iter().map(|b| b.id.clone()).collect();
    anyhow::ensure!(!burst_ids.is_empty(), "deliver: no booking of the burst succeeded: {:?}", burst.tally.statuses);
    world.ledger.extend(burst.kept.iter().cloned());
    let b = drain(&hooks, from, &burst_ids);
    let last = b.last.unwrap_or(burst_end);
    let window = last.saturating_duration_since(burst_start).as_secs_f64().max(f64::MIN_POSITIVE);
    let times: Vec<Instant> = b.first.values().copied().collect();
    let first_times: Vec<Instant> = b.first.iter().filter(|((s, _), _)| *s == 0).map(|(_, t)| *t).collect();
    let after_burst_ms = last.saturating_duration_since(burst_end).as_secs_f64() * 1000.0;

    // 2. Paced bookings: enqueue-to-receive latency.
    let from = hooks.receipts.lock().unwrap_or_else(|p| p.into_inner()).len();
    let count = (PACED_RATE * duration.as_secs_f64()).round() as usize;
    let paced_plan = Plan { connections: plan.connections.min(16), threads: 1, stop: Stop::Count(count) };
    let paced = load::run(&world.target, stamped(Some(PACED_RATE), world)?, &paced_plan)?;
    let paced_ids: Vec<String> = paced.kept.iter().map(|b| b.id.clone()).collect();
    world.ledger.extend(paced.kept.iter().cloned());
    let p = drain(&hooks, from, &paced_ids);
    let mut latency = Histogram::<u64>::new(3).context("a latency histogram")?;
    {
        let sent_at = sent.lock().unwrap_or_else(|e| e.into_inner());
        for ((_, id), at) in &p.first {
            if let Some(sent) = sent_at.get(id) {
                let us = u64::try_from(at.saturating_duration_since(*sent).as_micros()).unwrap_or(u64::MAX);
                latency.record(us.max(1)).context("recording a latency")?;
            }
        }
    }
    let paced_window = paced.window.as_secs_f64().max(f64::MIN_POSITIVE);

    // 3. A backlog held back from the subscribers, then drained.
    let from = hooks.receipts.lock().unwrap_or_else(|p| p.into_inner()).len();
    hooks.held.send_replace(true);
    let backlog_plan = Plan { stop: Stop::Timed { warmup: Duration::ZERO, duration: BACKLOG_FOR }, ..*plan };
    let backlog = load::run(&world.target, stamped(None, world)?, &backlog_plan);
    let released = Instant::now();
    hooks.held.send_replace(false);
    let backlog = backlog?;
    let backlog_ids: Vec<String> = backlog.kept.iter().map(|b| b.id.clone()).collect();
    anyhow::ensure!(
        !backlog_ids.is_empty(),
        "deliver: no booking of the backlog succeeded: {:?}",
        backlog.tally.statuses
    );
    world.ledger.extend(backlog.kept.iter().cloned());
    let k = drain(&hooks, from, &backlog_ids);
    let drained_in = k.last.map_or(Duration::ZERO, |l| l.saturating_duration_since(released));
    let drain_window = drained_in.as_secs_f64().max(f64::MIN_POSITIVE);

    let failed = hooks.failed.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let what = format!(
        "Embassy bookings to {HEALTHY} rest-hook subscribers (+ one answering 503, one timing out): a {:.0} s burst at {} connections, then {PACED_RATE:.0} bookings/s",
        duration.as_secs_f64(),
        plan.connections
    );
    let mut report = Report::of_run("deliver", &what, "deliveries/s", &burst.tally, duration);
    report.rate = b.received as f64 / window;
    report.succeeded = b.received as u64;
    report.seconds = window;
    report.latency = Latency::of(&latency);
    let e = &mut report.extra;
    e.insert("burst_bookings".into(), json!(burst_ids.len()));
    e.insert("burst_bookings_per_s".into(), json!(burst_ids.len() as f64 / duration.as_secs_f64()));
    e.insert("deliveries_per_s_one_subscriber".into(), json!(b.received_first as f64 / window));
    e.insert("best_second_all_subscribers".into(), json!(best_second(&times, burst_start)));
    e.insert("best_second_one_subscriber".into(), json!(best_second(&first_times, burst_start)));
    e.insert("last_delivery_after_burst_end_ms".into(), json!(after_burst_ms.round()));
    e.insert("paced_bookings".into(), json!(paced_ids.len()));
    e.insert("paced_bookings_per_s".into(), json!(paced_ids.len() as f64 / paced_window));
    e.insert(
        "paced_latency".into(),
        json!(format!("enqueue-to-receive over {} deliveries (the latency line above)", thousands_u(latency.len()))),
    );
    e.insert("backlog_bookings".into(), json!(backlog_ids.len()));
    e.insert("backlog_drained_ms".into(), json!((drain_window * 1000.0).round()));
    e.insert("backlog_deliveries_per_s".into(), json!((k.received as f64 / drain_window).round()));
    e.insert("backlog_deliveries_per_s_one_subscriber".into(), json!((k.received_first as f64 / drain_window).round()));
    e.insert("lost".into(), json!(b.lost + p.lost + k.lost));
    e.insert("duplicates".into(), json!(b.duplicates + p.duplicates + k.duplicates));
    e.insert("attempts_at_503_target".into(), json!(failed.get("fail").copied().unwrap_or(0)));
    e.insert("attempts_at_timing_out_target".into(), json!(failed.get("slow").copied().unwrap_or(0)));
    e.insert("handshakes".into(), json!(*hooks.handshakes.lock().unwrap_or_else(|e| e.into_inner())));
    let lost = b.lost + p.lost + k.lost;
    anyhow::ensure!(
        lost == 0,
        "deliver: {lost} deliveries never arrived within {} s ({} of the burst, {} paced, {} of the backlog); {} received at {} deliveries/s",
        DRAIN_DEADLINE.as_secs(),
        b.lost,
        p.lost,
        k.lost,
        thousands_u(b.received as u64),
        thousands(report.rate)
    );
    Ok(report)
}
