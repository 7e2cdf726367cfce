//! `polyclinic-bench`: measures the real server over HTTP.
//!
//! It starts Polyclinic in-process on 127.0.0.1:0 against a fresh SQLite file
//! or a fresh PostgreSQL database (`--postgres URL`), seeds one tenant with a
//! practitioner per worker, and then, with `--concurrency` workers:
//!
//! - **book**: each worker books `--bookings` Embassy appointments (POST
//!   `/embassy/Appointment`, 15-minute slots on distinct times) — every booking
//!   is a durable commit through the double-booking guard and the outbox;
//! - **read**: each worker reads appointments back by id (GET);
//! - **dp-book**: each worker, one Docplanner address each (work periods of
//!   08:00-16:00 on 28 days, services of 20 and 60 minutes), books
//!   `--bookings` slots through `POST .../slots/{start}/book`: every booking
//!   first recomputes the day's free slots, then commits;
//! - **dp-slots**: each worker asks `--slot-reads` times for the free slots of
//!   all 28 days (`GET .../slots`, with `slot.services`), computed from the
//!   work periods, the bookings and the breaks at each request.
//!
//! - **memory**: `--memory-requests` reads (default 500,000) with nobody
//!   scraping `/metrics`; it prints the process's resident memory after the
//!   first 50,000 and at the end, and fails when it grew by more than 10 MB
//!   (the load generator shares the process, and its own memory is flat).
//!
//! It prints throughput and latency percentiles per phase. Apart from the
//! memory ceiling nothing here is an assertion: the numbers go to
//! `docs/benchmarks.md` with the machine and date.

use anyhow::Context;
use clap::Parser;
use polyclinic::{Application, Config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "polyclinic-bench", about = "Booking and read throughput of Polyclinic over HTTP")]
struct Args {
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Bookings per client.
    #[arg(long, default_value_t = 200)]
    bookings: usize,
    /// Run against PostgreSQL at this server URL (a fresh database is created).
    #[arg(long)]
    postgres: Option<String>,
    /// SQLite `synchronous`: full or normal.
    #[arg(long, default_value = "full")]
    synchronous: String,
    /// 28-day slot reads per client (Docplanner phase).
    #[arg(long, default_value_t = 50)]
    slot_reads: usize,
    /// Reads of the memory phase (0 skips it).
    #[arg(long, default_value_t = 500_000)]
    memory_requests: usize,
}

/// Reads after which the memory phase takes its first RSS reading.
const MEMORY_WARMUP: usize = 50_000;
/// Most growth of resident memory allowed over the memory phase.
const MEMORY_GROWTH_LIMIT_KB: i64 = 10 * 1024;

const KEY: &str = "bench-embassy-key";

fn main() -> anyhow::Result<()> {
    // The server runs in this process: the same allocator settings as `polyclinic`.
    polyclinic::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let database = match &args.postgres {
        Some(server) => {
            let name = format!("polyclinic_bench_{}", uuid::Uuid::new_v4().simple());
            sqlx::any::install_default_drivers();
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect(server).await.context("connecting to PostgreSQL")?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
            format!("{}/{name}", server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server))
        }
        None => format!(
            "sqlite://{}",
            std::env::temp_dir().join(format!("polyclinic-bench-{}.db", uuid::Uuid::new_v4().simple())).display()
        ),
    };
    let mut config = Config::for_database(&database);
    config.admin_token = Some("bench-admin".into());
    config.test_clock = true;
    config.secret_key_file =
        Some(std::env::temp_dir().join(format!("polyclinic-bench-{}.key", uuid::Uuid::new_v4().simple())));
    if args.synchronous == "normal" {
        config.sqlite_synchronous = polyclinic::config::Synchronous::Normal;
    }
    config.docplanner_limits = polyclinic::config::DocplannerLimits::OFF;
    let app = Application::build(&config).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    polyclinic_delivery::install_tls_provider();
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;

    // One practitioner per worker, so bookings do not collide.
    let practitioners: Vec<Value> = (0..args.concurrency)
        .map(|i| json!({"key": format!("p{i}"), "given": "Doc", "family": format!("Bench{i}"), "email": format!("p{i}@bench.test")}))
        .collect();
    let keys: Vec<String> = (0..args.concurrency).map(|i| format!("p{i}")).collect();
    // And one Docplanner address per worker, in one facility.
    let addresses: Vec<Value> = (0..args.concurrency)
        .map(|i| json!({"key": format!("a{i}"), "doctor": format!("p{i}"), "name": "Bench clinic", "street": "Bench 1", "city": "Warszawa"}))
        .collect();
    let seed = json!({
        "services": [{"id": "1", "name": "ablacja"}, {"id": "3", "name": "ablacja serca"}],
        "tenants": [{
        "key": "bench", "name": "Bench", "country": "SE", "language": "sv", "timezone": "Europe/Stockholm",
        "credentials": [{"dialect": "embassy", "api_key": KEY},
                        {"dialect": "docplanner", "client_id": "bench-dp", "client_secret": "bench-dp-secret", "facilities": ["clinic"]}],
        "practitioners": practitioners,
        "healthcare_services": [{"key": "gp", "name": "GP", "practitioners": keys}],
        "facilities": [{"key": "clinic", "name": "Bench clinic", "addresses": addresses}]
    }]});
    let ids: Value =
        client.post(format!("{base}/admin/seed")).bearer_auth("bench-admin").json(&seed).send().await?.json().await?;
    let gp = ids["tenants"]["bench"]["healthcare_services"]["gp"].as_str().context("seed ids")?.to_owned();
    client
        .post(format!("{base}/admin/clock"))
        .bearer_auth("bench-admin")
        .json(&json!({"now": "2030-01-01T00:00:00Z"}))
        .send()
        .await?;
    let patient = client
        .post(format!("{base}/embassy/Patient"))
        .header("X-Visiba-Care-API-Key", KEY)
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Bench"], "family": "Patient"}],
                      "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]}))
        .send()
        .await?;
    anyhow::ensure!(patient.status().is_success(), "creating the patient failed: {}", patient.text().await?);

    println!(
        "polyclinic-bench: {} clients x {} bookings, {}",
        args.concurrency,
        args.bookings,
        engine_name(&database, &args.synchronous)
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..args.concurrency {
        let (client, base, gp) = (client.clone(), base.clone(), gp.clone());
        let n = args.bookings;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            let mut ids = Vec::with_capacity(n);
            for i in 0..n {
                let start = jiff::Timestamp::from_second(1_899_999_960 + (i as i64) * 900).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                let body = json!({
                    "resourceType": "Appointment", "status": "booked",
                    "start": start.to_string(), "end": (start + jiff::SignedDuration::from_mins(15)).to_string(),
                    "participant": [
                        {"type": [{"coding": [{"code": "PPRF"}]}], "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/email", "value": format!("p{w}@bench.test")}}},
                        {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}}},
                        {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": gp}}}
                    ]
                });
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/embassy/Appointment"))
                    .header("X-Visiba-Care-API-Key", KEY)
                    .header("content-type", "application/fhir+json")
                    .header("prefer", "return=minimal")
                    .json(&body)
                    .send()
                    .await?;
                lat.push(t.elapsed());
                if r.status().as_u16() != 201 {
                    anyhow::bail!("booking answered {}: {}", r.status(), r.text().await.unwrap_or_default());
                }
                let loc = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                ids.push(loc.rsplit('/').next().unwrap_or_default().to_owned());
            }
            Ok::<_, anyhow::Error>((lat, ids))
        }));
    }
    let mut latencies = Vec::new();
    let mut all_ids = Vec::new();
    for t in tasks {
        let (l, ids) = t.await??;
        latencies.extend(l);
        all_ids.push(ids);
    }
    report("book (POST /embassy/Appointment)", started.elapsed(), &mut latencies);

    let first_ids: Vec<String> = all_ids.iter().flatten().take(1000).cloned().collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for ids in all_ids {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ids.len());
            for id in ids {
                let t = Instant::now();
                let r = client
                    .get(format!("{base}/embassy/Appointment/{id}"))
                    .header("X-Visiba-Care-API-Key", KEY)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "read answered {}", r.status());
                let _ = r.bytes().await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    report("read (GET /embassy/Appointment/{id})", started.elapsed(), &mut latencies);
    let read_ids: Vec<String> = first_ids;
    let mut outcome = docplanner(&args, &client, &base, &ids["tenants"]["bench"]).await;
    if outcome.is_ok() && args.memory_requests > 0 {
        outcome = memory(&args, &client, &base, &read_ids).await;
    }
    // The SQLite files and the key file are the run's own: leave nothing behind.
    if let Some(path) = database.strip_prefix("sqlite://") {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    if let Some(key) = &config.secret_key_file {
        let _ = std::fs::remove_file(key);
    }
    outcome
}

/// The Docplanner phases: booking computed slots, and reading 28 days of them.
async fn docplanner(args: &Args, client: &reqwest::Client, base: &str, ids: &Value) -> anyhow::Result<()> {
    let token: Value = client
        .post(format!("{base}/oauth/v2/token"))
        .basic_auth("bench-dp", Some("bench-dp-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=integration")
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().context("token")?.to_owned();
    let facility = ids["facilities"]["clinic"].as_str().context("facility id")?.to_owned();
    // Work periods: 28 days from 2030-01-02, 08:00-16:00 local (+01:00).
    let day = |d: i64| jiff::civil::date(2030, 1, 2).checked_add(jiff::Span::new().days(d)).unwrap_or_default();
    let mut paths = Vec::new();
    for w in 0..args.concurrency {
        let (doctor, address) = (
            ids["practitioners"][format!("p{w}")].as_str().context("doctor id")?,
            ids["addresses"][format!("a{w}")].as_str().context("address id")?,
        );
        let at = format!("{base}/api/v3/integration/facilities/{facility}/doctors/{doctor}/addresses/{address}");
        let mut services = Vec::new();
        for service in ["1", "3"] {
            let r = client
                .post(format!("{at}/services"))
                .bearer_auth(&token)
                .json(&json!({"service_id": service, "price": 100}))
                .send()
                .await?;
            anyhow::ensure!(r.status().as_u16() == 201, "adding a service answered {}", r.status());
            let location = r.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
            services.push(location.rsplit('/').next().unwrap_or_default().to_owned());
        }
        let slots: Vec<Value> = (0..28)
            .map(|d| {
                json!({"start": format!("{}T08:00:00+01:00", day(d)), "end": format!("{}T16:00:00+01:00", day(d)),
                "address_services": [{"address_service_id": services[0], "duration": 20},
                                     {"address_service_id": services[1], "duration": 60}]})
            })
            .collect();
        let r = client.put(format!("{at}/slots")).bearer_auth(&token).json(&json!({"slots": slots})).send().await?;
        anyhow::ensure!(r.status().as_u16() == 201, "replacing slots answered {}: {}", r.status(), r.text().await?);
        paths.push((at, services[0].clone()));
    }
    // 24 starts a day on the 20-minute grid: bookings go day by day.
    let n = args.bookings.min(28 * 24);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (at, service) in paths.clone() {
        let (client, token) = (client.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(n);
            for i in 0..n {
                let (d, k) = ((i / 24) as i64, (i % 24) as i64);
                let start = format!("{}T{:02}:{:02}:00%2B01:00", day(d), 8 + k * 20 / 60, k * 20 % 60);
                let body = json!({"address_service_id": service, "duration": 20,
                    "patient": {"name": "Bench", "surname": format!("Patient{i}"), "phone": format!("+4670{:07}", i)}});
                let t = Instant::now();
                let r = client.post(format!("{at}/slots/{start}/book")).bearer_auth(&token).json(&body).send().await?;
                lat.push(t.elapsed());
                anyhow::ensure!(r.status().is_success(), "booking answered {}: {}", r.status(), r.text().await?);
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    report("dp-book (POST .../slots/{start}/book)", started.elapsed(), &mut latencies);

    let range = format!("start={}T00:00:00%2B01:00&end={}T00:00:00%2B01:00&with=slot.services", day(0), day(28));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (at, _) in paths {
        let (client, token, range, reads) = (client.clone(), token.clone(), range.clone(), args.slot_reads);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(reads);
            for _ in 0..reads {
                let t = Instant::now();
                let r = client.get(format!("{at}/slots?{range}")).bearer_auth(&token).send().await?;
                anyhow::ensure!(r.status().is_success(), "slots answered {}", r.status());
                let _ = r.bytes().await?;
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    report("dp-slots (GET .../slots, 28 days)", started.elapsed(), &mut latencies);
    Ok(())
}

/// The memory phase: `--memory-requests` reads with no scrape of `/metrics`;
/// fails when resident memory grows by more than 10 MB after the warm-up.
async fn memory(args: &Args, client: &reqwest::Client, base: &str, ids: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(!ids.is_empty(), "the memory phase reads booked appointments; none were booked");
    let total = args.memory_requests.max(MEMORY_WARMUP);
    let run = |count: usize| {
        let per_worker = count.div_ceil(args.concurrency);
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|w| {
                let (client, base) = (client.clone(), base.to_owned());
                let ids: Vec<String> = ids.iter().skip(w).step_by(args.concurrency).cloned().collect();
                let ids = if ids.is_empty() { vec![String::new()] } else { ids };
                tokio::spawn(async move {
                    for i in 0..per_worker {
                        let id = &ids[i % ids.len()];
                        let r = client
                            .get(format!("{base}/embassy/Appointment/{id}"))
                            .header("X-Visiba-Care-API-Key", KEY)
                            .send()
                            .await?;
                        anyhow::ensure!(r.status().is_success(), "read answered {}", r.status());
                        let _ = r.bytes().await?;
                    }
                    Ok::<_, anyhow::Error>(per_worker)
                })
            })
            .collect();
        async move {
            let mut done = 0;
            for t in tasks {
                done += t.await??;
            }
            Ok::<_, anyhow::Error>(done)
        }
    };
    let started = Instant::now();
    let warm = run(MEMORY_WARMUP).await?;
    let after_warmup = rss_kb()?;
    // The rest in steps, with a reading after each, so that a leak (steady
    // growth) shows apart from caches filling up (growth that levels off).
    let mut rest = 0;
    let mut readings = Vec::new();
    while rest < total - MEMORY_WARMUP {
        rest += run(MEMORY_WARMUP.min(total - MEMORY_WARMUP - rest)).await?;
        readings.push(format!("{}k: {} KB", (warm + rest) / 1000, rss_kb()?));
    }
    println!("memory: RSS after {}", readings.join(", "));
    let at_end = rss_kb()?;
    let growth = at_end - after_warmup;
    println!(
        "memory (no /metrics scrape): {} requests in {:.1} s; RSS {} KB after {warm}, {} KB at the end: {}{} KB",
        warm + rest,
        started.elapsed().as_secs_f64(),
        after_warmup,
        at_end,
        if growth >= 0 { "+" } else { "" },
        growth
    );
    anyhow::ensure!(
        growth <= MEMORY_GROWTH_LIMIT_KB,
        "resident memory grew by {growth} KB (more than {MEMORY_GROWTH_LIMIT_KB} KB) over {rest} requests"
    );
    Ok(())
}

/// This process's resident set size, in KB (Linux `/proc`).
fn rss_kb() -> anyhow::Result<i64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/self/status")
}

fn engine_name(database: &str, sync: &str) -> String {
    if database.starts_with("postgres") { "PostgreSQL".into() } else { format!("SQLite (synchronous={sync})") }
}

fn report(phase: &str, total: Duration, latencies: &mut [Duration]) {
    latencies.sort();
    let pct =
        |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default();
    println!(
        "{phase}: {} requests in {:.2} s = {:.0}/s; latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1000.0,
        pct(0.95).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
    );
}
