//! The ceilings, measured in the same invocation as the scenarios they bound
//! (the machines are shared and noisy; a ratio to a ceiling of the same
//! minute survives what an absolute figure does not):
//!
//! - `baseline`: the same load generator against a bare axum route in this
//!   binary, on a runtime built like the server's, answering a small fixed
//!   JSON body: what HTTP alone costs on this machine;
//! - `sqlite-commit`: raw durable commits on the same disk as the bench's
//!   database: a fresh SQLite file, WAL, `synchronous=FULL`, one row per
//!   transaction for the duration (what one booking per fsync could reach),
//!   and, alongside, rows per second when many go in one transaction.

use crate::stats::{Report, Tally};
use anyhow::Context;
use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use serde_json::json;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

/// The baseline's answer: small, fixed, JSON.
pub const BASELINE_BODY: &str = r#"{"resourceType":"Appointment","id":"1","status":"booked"}"#;

/// The bare route: `GET /` (and any other path) answers [`BASELINE_BODY`].
pub fn baseline_router() -> Router {
    let answer = || async { ([(CONTENT_TYPE, "application/json")], BASELINE_BODY) };
    Router::new().route("/", get(answer)).fallback(answer)
}

/// Serves the bare route on `listener` until `shutdown` completes.
pub async fn serve_baseline(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, baseline_router()).with_graceful_shutdown(shutdown).await.context("serving the baseline")
}

/// Rows per transaction of the batched measurement.
const BATCH: usize = 1000;
/// How long the batched measurement runs.
const BATCHED_FOR: Duration = Duration::from_secs(2);

/// Measures raw durable SQLite commits in a fresh file in `dir` (removed
/// afterwards): single-row transactions for `duration` (the report's rate
/// and latencies), then batches of 1,000 rows for 2 s (`batched_rows_per_s`).
pub fn sqlite_commit(dir: &Path, duration: Duration) -> anyhow::Result<Report> {
    let file = dir.join(format!("polyclinic-bench-commit-{}.db", uuid::Uuid::new_v4().simple()));
    let measured = measure_commits(&file, duration);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
    measured
}

fn measure_commits(file: &Path, duration: Duration) -> anyhow::Result<Report> {
    let mut db = rusqlite::Connection::open(file).with_context(|| format!("opening {}", file.display()))?;
    // The store's settings for the writer: WAL, FULL (see crates/store).
    let mode: String = db.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "{}: journal_mode is {mode}, not WAL", file.display());
    db.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE booking (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL,
             practitioner_id INTEGER NOT NULL, start_s INTEGER NOT NULL, end_s INTEGER NOT NULL, body TEXT NOT NULL);
         CREATE INDEX booking_practitioner ON booking (tenant_id, practitioner_id, start_s);",
    )?;
    let body = "x".repeat(400);
    let mut next = 0i64;
    let mut insert = |tx: &rusqlite::Transaction<'_>, n: i64| -> rusqlite::Result<()> {
        let mut st = tx.prepare(
            "INSERT INTO booking (tenant_id, practitioner_id, start_s, end_s, body) VALUES (1, ?1, ?2, ?3, ?4)",
        )?;
        for _ in 0..n {
            next += 1;
            let start = next.wrapping_mul(7919) % 10_000_000 * 900;
            st.execute(rusqlite::params![next % 50, start, start + 900, body])?;
        }
        Ok(())
    };
    let mut tally = Tally::default();
    let started = Instant::now();
    while started.elapsed() < duration {
        let t = Instant::now();
        let tx = db.transaction()?;
        insert(&tx, 1)?;
        tx.commit()?;
        tally.answer(200, t.elapsed());
    }
    let window = started.elapsed();
    let started = Instant::now();
    let mut rows = 0usize;
    while started.elapsed() < BATCHED_FOR {
        let tx = db.transaction()?;
        insert(&tx, BATCH as i64)?;
        tx.commit()?;
        rows += BATCH;
    }
    let batched = rows as f64 / started.elapsed().as_secs_f64();
    let mut report = Report::of_run(
        "sqlite-commit",
        &format!(
            "single-row durable commits, SQLite WAL synchronous=FULL, in {}",
            file.parent().unwrap_or(file).display()
        ),
        "commits/s",
        &tally,
        window,
    );
    // Every commit is a success: the status column means nothing here.
    report.statuses.clear();
    report.extra.insert("batched_rows_per_s".into(), json!(batched.round()));
    report.extra.insert("batch_size".into(), json!(BATCH));
    Ok(report)
}
