//! The `soak` scenario: a mixed load held for a long time, to show that
//! memory and open files stay flat.
//!
//! Four loads run at once, each on a quarter of `--connections`, for
//! `--soak-seconds` (ten minutes by default):
//! - Embassy reads (`GET /embassy/Appointment/{id}` of the read set);
//! - Embassy bookings and Docplanner bookings of random free slots;
//! - Docplanner slot reads of 30 days (`dp-slots`);
//!
//! while every Embassy booking is delivered to the `deliver` scenario's
//! webhook subscribers (four healthy ones, one answering 503, one timing
//! out) on a receiver inside the bench.
//!
//! Every [`SAMPLE_EVERY`] while the loads run, the resident memory (VmRSS)
//! and the open file descriptors of the server's process are recorded, with
//! SQLite's heap in it (its `/metrics`) and the deliveries received so far. The server runs in a child process of
//! its own for this scenario (see `child`): the load generator keeps every
//! booking and every delivery it receives, to check them afterwards, and
//! its memory grows with them. The scenario fails when the anonymous
//! resident memory (RssAnon: heap and stacks) or the descriptors of the
//! last minute (their median) exceed those of the minute after the first
//! [`SETTLE`] by more than [`GROWTH_LIMIT`]. VmRSS is reported beside it
//! but not judged: it also counts file pages. The bookings are paced so
//! that the pool of free slots lasts the run.
//! The bookings are read back afterwards like every booking scenario's
//! (no two of one practitioner may overlap).

use crate::deliver;
use crate::load::{self, Paced, Plan, Stop};
use crate::scenarios::{DocplannerBook, EmbassyBook, Gets};
use crate::slots;
use crate::stats::{Report, Tally, thousands_u};
use crate::world::{Setup, World};
use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often memory and descriptors are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The warm-up whose growth is not judged (caches and pools fill).
pub const SETTLE: Duration = Duration::from_secs(60);
/// The growth allowed after [`SETTLE`], as a fraction.
pub const GROWTH_LIMIT: f64 = 0.10;

/// One reading of the process.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: Duration,
    /// VmRSS: all resident pages, the memory-mapped database's included.
    rss_kb: i64,
    /// RssAnon: the heap and stacks, what a leak grows.
    anon_kb: i64,
    fds: usize,
    deliveries: usize,
    /// SQLite's heap in the server (its `/metrics`), KB; `None` on
    /// PostgreSQL. Part of the anonymous memory above: the page caches.
    sqlite_heap_kb: Option<i64>,
}

/// The gauge `name` of a Prometheus text exposition.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// SQLite's heap in the server at `base`, KB (its `/metrics`).
async fn sqlite_heap_kb(client: &reqwest::Client, base: &str) -> anyhow::Result<Option<i64>> {
    let text = client.get(format!("{base}/metrics")).send().await?.error_for_status()?.text().await?;
    Ok(gauge(&text, "sqlite_heap_bytes").map(|b| (b / 1024.0).round() as i64))
}

/// A field of a `/proc/<pid>/status`, in KB.
fn status_kb(status: &str, field: &str) -> anyhow::Result<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in the process status"))
}

/// The resident memory (VmRSS and RssAnon, KB) and open file descriptors
/// of process `pid`.
pub fn reading(pid: u32) -> anyhow::Result<(i64, i64, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("reading /proc/{pid}/fd"))?.count();
    Ok((status_kb(&status, "VmRSS")?, status_kb(&status, "RssAnon")?, fds))
}

/// The growth of `of` over the run after [`SETTLE`]: the median of the
/// last minute's samples against the median of the minute after
/// [`SETTLE`]; `None` when the run was too short to judge. Medians, not a
/// peak against one sample: the heap of a server under mixed load swings by
/// several MB from one sample to the next (a burst of deliveries in flight,
/// the allocator's pages), and a leak moves the whole last minute.
fn growth(samples: &[Sample], of: impl Fn(&Sample) -> f64) -> Option<f64> {
    const MINUTE: Duration = Duration::from_secs(60);
    let last = samples.last()?.at;
    if last <= SETTLE {
        return None;
    }
    let first: Vec<f64> = samples.iter().filter(|s| s.at >= SETTLE && s.at < SETTLE + MINUTE).map(&of).collect();
    let end: Vec<f64> = samples.iter().filter(|s| s.at + MINUTE > last && s.at >= SETTLE).map(&of).collect();
    let (base, now) = (median(first)?, median(end)?);
    Some(if base > 0.0 { (now - base) / base } else { 0.0 })
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Bookings a second for each of the two booking loads: 80 % of a pool of
/// `slots` over `duration`, at most 150.
fn booking_rate(slots: usize, duration: Duration) -> f64 {
    (0.8 * slots as f64 / (2.0 * duration.as_secs_f64().max(1.0))).min(150.0)
}

/// A load thread's result (a panic as an error).
fn joined<T>(h: std::thread::ScopedJoinHandle<'_, anyhow::Result<T>>) -> anyhow::Result<T> {
    h.join().unwrap_or_else(|_| anyhow::bail!("a load panicked"))
}

/// Runs the soak on `world` for `duration`, with the server's default send
/// timeout for the subscriber that never answers in time, sampling the
/// memory of the server's process `pid`.
pub fn run(
    rt: &tokio::runtime::Runtime,
    world: &mut World,
    setup: &Setup,
    plan: &Plan,
    duration: Duration,
    pid: u32,
) -> anyhow::Result<Report> {
    let send_timeout = Duration::from_secs(polyclinic::config::Delivery::default().timeout_seconds);
    let hooks = rt.block_on(deliver::prepare(setup, world, send_timeout))?;
    let slot_reads = Arc::new(rt.block_on(slots::prepare(setup, world))?);
    let reads = Arc::new(Gets::embassy(world)?);
    let shared = world.booking_world();
    // The bookings of both dialects are paced so that the pool of free
    // slots lasts the run (at most 80 % of it is booked): a pool used up
    // turns the rest of the run into conflicts, another load.
    let rate = booking_rate(world.pool.size(), duration);
    let book = Arc::new(Paced::new(EmbassyBook::new(world, shared.clone(), 0)?, rate));
    let dp_book = Arc::new(Paced::new(DocplannerBook::new(world, shared, 0), rate));
    let part = Plan {
        connections: (plan.connections / 4).max(1),
        threads: 1,
        stop: Stop::Timed { warmup: Duration::ZERO, duration },
    };
    let target = world.target.clone();
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let client = reqwest::Client::new();
    let sample = || -> anyhow::Result<Sample> {
        let (rss_kb, anon_kb, fds) = reading(pid)?;
        let sqlite_heap_kb = rt.block_on(sqlite_heap_kb(&client, &target.base)).context("reading /metrics")?;
        Ok(Sample {
            at: started.elapsed(),
            rss_kb,
            anon_kb,
            fds,
            deliveries: deliver::received(&hooks),
            sqlite_heap_kb,
        })
    };
    let (samples, r, b, d, s) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| -> anyhow::Result<Vec<Sample>> {
            let mut samples = vec![sample()?];
            let mut next = SAMPLE_EVERY;
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(100));
                if started.elapsed() >= next {
                    samples.push(sample()?);
                    next += SAMPLE_EVERY;
                }
            }
            Ok(samples)
        });
        let r = scope.spawn(|| load::run(&target, reads.clone(), &part));
        let b = scope.spawn(|| load::run(&target, book.clone(), &part));
        let d = scope.spawn(|| load::run(&target, dp_book.clone(), &part));
        let s = scope.spawn(|| load::run(&target, slot_reads.clone(), &part));
        let (r, b, d, s) = (joined(r), joined(b), joined(d), joined(s));
        done.store(true, Ordering::Release);
        (joined(sampler), r, b, d, s)
    });
    let (samples, r, b, d, s) = (samples?, r?, b?, d?, s?);
    world.ledger.extend(b.kept.iter().cloned());
    world.ledger.extend(d.kept.iter().cloned());

    let mut tally = Tally::default();
    for t in [&r.tally, &b.tally, &d.tally, &s.tally] {
        tally.merge(t);
    }
    let window = [r.window, b.window, d.window, s.window].into_iter().max().unwrap_or(duration);
    let what = "Embassy reads, Embassy and Docplanner bookings, Docplanner slot reads at once, \
                Embassy bookings delivered to webhook subscribers; memory and descriptors every 10 s";
    let mut report = Report::of_run("soak", what, "req/s", &tally, window);
    let rate = |t: &Tally, w: Duration| t.succeeded() as f64 / w.as_secs_f64().max(f64::MIN_POSITIVE);
    report.extra.insert("reads_per_s".into(), json!(rate(&r.tally, r.window).round()));
    report.extra.insert("bookings_per_s".into(), json!(rate(&b.tally, b.window).round()));
    report.extra.insert("dp_bookings_per_s".into(), json!(rate(&d.tally, d.window).round()));
    report.extra.insert("slot_reads_per_s".into(), json!(rate(&s.tally, s.window).round()));
    let last = samples.last().copied();
    report.extra.insert("deliveries_received".into(), json!(last.map_or(0, |l| l.deliveries)));
    report.extra.insert(
        "samples".into(),
        json!(
            samples
                .iter()
                .map(|s| json!({"at_s": s.at.as_secs(), "rss_kb": s.rss_kb, "anon_kb": s.anon_kb, "fds": s.fds,
                    "deliveries": s.deliveries, "sqlite_heap_kb": s.sqlite_heap_kb}))
                .collect::<Vec<_>>()
        ),
    );
    let rss = growth(&samples, |s| s.anon_kb as f64);
    let fds = growth(&samples, |s| s.fds as f64);
    report.extra.insert("vmrss_growth_after_first_minute".into(), json!(growth(&samples, |s| s.rss_kb as f64)));
    report.extra.insert("anon_growth_after_first_minute".into(), json!(rss));
    report.extra.insert("fd_growth_after_first_minute".into(), json!(fds));
    let sqlite = growth(&samples, |s| s.sqlite_heap_kb.unwrap_or(0) as f64);
    report.extra.insert("sqlite_heap_growth_after_first_minute".into(), json!(sqlite));
    if let Some(l) = last {
        println!(
            "  soak: {} s, resident {} KB ({} KB anonymous, {} KB of it SQLite's), {} descriptors, {} deliveries received; growth after the first minute: anonymous memory {}, descriptors {}",
            l.at.as_secs(),
            thousands_u(l.rss_kb.max(0) as u64),
            thousands_u(l.anon_kb.max(0) as u64),
            l.sqlite_heap_kb.map_or("none".into(), |k| thousands_u(k.max(0) as u64)),
            l.fds,
            thousands_u(l.deliveries as u64),
            rss.map_or("not judged (run shorter than 70 s)".into(), |g| format!("{:.1} %", g * 100.0)),
            fds.map_or("not judged".into(), |g| format!("{:.1} %", g * 100.0)),
        );
    }
    // A failed soak still reports its samples and rates (`failed` says why).
    let failed: Vec<String> = [("anonymous resident memory", rss), ("open file descriptors", fds)]
        .into_iter()
        .filter_map(|(what, g)| g.filter(|g| *g > GROWTH_LIMIT).map(|g| (what, g)))
        .map(|(what, g)| {
            format!(
                "soak: {what} grew by {:.1} % after the first minute (limit {:.0} %)",
                g * 100.0,
                GROWTH_LIMIT * 100.0
            )
        })
        .collect();
    if !failed.is_empty() {
        report.extra.insert("failed".into(), json!(failed.join("; ")));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, rss_kb: i64) -> Sample {
        Sample { at: Duration::from_secs(secs), rss_kb, anon_kb: rss_kb, fds: 10, deliveries: 0, sqlite_heap_kb: None }
    }

    #[test]
    fn growth_is_judged_after_the_first_minute_only() {
        // Doubling during the first minute is the warm-up: not judged.
        let samples =
            [at(0, 100), at(30, 200), at(60, 200), at(70, 210), at(80, 205), at(200, 210), at(210, 215), at(220, 205)];
        let g = growth(&samples, |s| s.rss_kb as f64).unwrap();
        assert!((g - 5.0 / 205.0).abs() < 1e-9, "{g}");
        // Too short a run is not judged at all.
        assert_eq!(growth(&[at(0, 100), at(60, 500)], |s| s.rss_kb as f64), None);
        assert_eq!(growth(&[at(0, 100), at(10, 500)], |s| s.rss_kb as f64), None);
    }

    #[test]
    fn a_leak_fails_and_a_swing_does_not() {
        // A steady climb: the last minute sits 20 % above the first.
        let leak: Vec<Sample> =
            (6..=60u64).map(|t| at(t * 10, 100 + i64::try_from((t - 6) * 40 / 54).unwrap_or(0))).collect();
        let g = growth(&leak, |s| s.rss_kb as f64).unwrap();
        assert!(g > GROWTH_LIMIT, "{g}");
        // A high sample in the last minute of a flat run does not move its
        // median.
        let mut swing: Vec<Sample> = (6..=60u64).map(|t| at(t * 10, 100)).collect();
        swing[52].rss_kb = 150;
        let g = growth(&swing, |s| s.rss_kb as f64).unwrap();
        assert!(g.abs() < 1e-9, "{g}");
    }

    #[test]
    fn bookings_are_paced_to_last_the_run() {
        let rate = booking_rate(187_200, Duration::from_secs(600));
        assert!((rate - 124.8).abs() < 1e-9, "{rate}");
        assert_eq!(booking_rate(187_200, Duration::from_secs(60)), 150.0);
    }

    #[test]
    fn gauges_are_read_from_the_exposition() {
        let text = "# TYPE sqlite_heap_bytes gauge\nsqlite_heap_bytes 2048\nsqlite_heap_bytes_total 7\n";
        assert_eq!(gauge(text, "sqlite_heap_bytes"), Some(2048.0));
        assert_eq!(gauge(text, "sqlite_heap"), None);
    }
}
