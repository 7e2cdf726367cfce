//! `polyclinic-bench`: measures Polyclinic the way its users load it, with
//! the ceilings of the same machine measured in the same invocation.
//!
//! It starts Polyclinic in-process on 127.0.0.1:0 against a fresh database
//! (a SQLite file by default, `--synchronous full|normal`; `--postgres URL`
//! creates a fresh database on that server), or loads a running server
//! (`--url`, seeded through its admin API with `--admin-token`). Every
//! scenario of `--scenario` then runs with `--connections` keep-alive
//! HTTP/1.1 connections for `--duration` after a `--warmup`, and prints its
//! rate, latency percentiles, answers by status, and its ratio to its
//! ceiling: reads to `baseline` (the same generator against a bare axum
//! route in this binary), bookings to `sqlite-commit` (single-row durable
//! SQLite commits on the same disk). After every booking scenario, every
//! appointment booked so far is read back through the API, and the run
//! fails if two of one practitioner overlap. `--out FILE.json` writes it
//! all, with the machine, the date, the engine and the commit.
//!
//! Modules: [`load`] (the generator), [`scenarios`] (requests, answers, the
//! overlap check), [`world`] (the seeded tenant and the slot pool),
//! [`ceilings`], [`stats`]. See docs/benchmarks.md.

mod bulk;
mod ceilings;
mod child;
mod deliver;
mod load;
mod scenarios;
mod search;
mod slots;
mod soak;
mod stats;
mod world;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use load::{Plan, Stop, Target};
use polyclinic::{Application, Config};
use scenarios::{DocplannerBook, EmbassyBook, Gets, ReadBack, ReadResult};
use serde_json::{Value, json};
use stats::{Ceiling, Report, thousands_u};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use world::{Booked, Setup, World};

#[derive(Parser, Debug)]
#[command(name = "polyclinic-bench", about = "Polyclinic under load, with its ceilings measured in the same run")]
struct Args {
    /// Scenarios to run, comma-separated. The ceilings the others are
    /// compared with run first (and are added when missing, unless
    /// `--no-ceilings`).
    #[arg(long, value_delimiter = ',', default_value = "baseline,sqlite-commit,read,dp-read,book,dp-book")]
    scenario: Vec<Scenario>,
    /// Keep-alive HTTP/1.1 connections, one task each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured window (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Threads of the load generator (one current_thread runtime each);
    /// default: one per core, as `wrk -t<cores>`.
    #[arg(long)]
    threads: Option<usize>,
    /// Worker threads of the in-process server's runtime; default: one per
    /// core, as `polyclinic serve`.
    #[arg(long)]
    server_threads: Option<usize>,
    /// SQLite `synchronous` of the in-process server.
    #[arg(long, value_enum, default_value = "full")]
    synchronous: Synchronous,
    /// Run the in-process server on PostgreSQL: a fresh database is created
    /// on this server (and dropped at the end).
    #[arg(long, conflicts_with = "url")]
    postgres: Option<String>,
    /// Load a running Polyclinic at this URL instead of starting one
    /// (http only). Needs `--admin-token`: a fresh tenant is seeded through
    /// its admin API.
    #[arg(long, env = "POLYCLINIC_BENCH_URL", requires = "admin_token")]
    url: Option<String>,
    /// The admin token of the server of `--url`.
    #[arg(long, env = "POLYCLINIC_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Where the bench's SQLite files go (the database and the
    /// `sqlite-commit` file beside it); default: the system's temp dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Appointments booked beforehand for `read` (and bookings for `dp-read`).
    #[arg(long, default_value_t = 10_000)]
    read_set: usize,
    /// Bookings in a hundred that aim at a slot just handed out, to race
    /// the double-booking guard (their refusals count as conflicts).
    #[arg(long, default_value_t = 2)]
    conflict_percent: u32,
    /// Requests of the `memory` scenario.
    #[arg(long, default_value_t = 500_000)]
    memory_requests: usize,
    /// Seconds the `soak` scenario runs.
    #[arg(long, default_value_t = 600)]
    soak_seconds: u64,
    /// Run the server in a process of its own (this binary, started again
    /// as a child), so that its memory and descriptors are measured apart
    /// from the load generator's; the `soak` scenario always does.
    #[arg(long, conflicts_with = "url")]
    server_process: bool,
    /// Internal: serve as the child of `--server-process`, on this database.
    #[arg(long, hide = true)]
    child_database: Option<String>,
    /// Internal: the secret key file of the child server.
    #[arg(long, hide = true)]
    child_key_file: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Install the server's log subscriber (`info,sqlx=warn`, or
    /// `POLYCLINIC_LOG`) for the in-process server, writing to this file;
    /// without it the in-process server logs nothing.
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Only serve the bare `baseline` route (on `--listen`), print its URL,
    /// and wait for Ctrl-C: for comparing with `wrk` on the same server.
    #[arg(long)]
    serve_baseline: bool,
    /// Address of `--serve-baseline`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Run the `baseline` scenario against this already served baseline
    /// (e.g. another process's `--serve-baseline`) instead of its own.
    #[arg(long)]
    baseline_url: Option<String>,
    /// Do not add the ceilings the scenarios are compared with.
    #[arg(long)]
    no_ceilings: bool,
    /// Patients of the large dataset loaded into the bench tenant through
    /// the bulk import path before the scenarios (in-process server only).
    #[arg(long, default_value_t = 0)]
    patients: usize,
    /// Appointments of the large dataset (past, completed), see `--patients`.
    #[arg(long, default_value_t = 0)]
    appointments: usize,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// The same generator against a bare axum route answering a small fixed JSON body.
    Baseline,
    /// Raw single-row durable SQLite commits (WAL, FULL) on the same disk; batched rows alongside.
    SqliteCommit,
    /// Embassy `GET /embassy/Appointment/{id}`, random of `--read-set`.
    Read,
    /// Docplanner `GET .../bookings/{id}`, random of `--read-set`.
    DpRead,
    /// Embassy `POST /embassy/Appointment` (`Prefer: return=minimal`), random free 15-minute slots.
    Book,
    /// Docplanner `POST .../slots/{start}/book`, random free 15-minute slots.
    DpBook,
    /// Docplanner `GET .../slots` of 30 days of one address with their services.
    DpSlots,
    /// `--memory-requests` Embassy reads; fails when resident memory grows by more than 10 MB.
    Memory,
    /// A mixed load (reads, bookings of two dialects, slot reads, deliveries) for `--soak-seconds`; fails when memory or descriptors grow after the first minute (see `soak`)
    Soak,
    /// Bookings delivered to webhook subscribers on a receiver inside the bench (see `deliver`).
    Deliver,
    /// Embassy appointment search by healthcare service over one week (see `search`).
    SearchService,
    /// Embassy appointment search by patient.
    SearchPatient,
    /// Embassy appointment search by practitioner over one week.
    SearchPractitioner,
    /// Embassy appointment search by patient phone.
    SearchPhone,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::SqliteCommit => "sqlite-commit",
            Scenario::Read => "read",
            Scenario::DpRead => "dp-read",
            Scenario::Book => "book",
            Scenario::DpBook => "dp-book",
            Scenario::DpSlots => "dp-slots",
            Scenario::Memory => "memory",
            Scenario::Soak => "soak",
            Scenario::Deliver => "deliver",
            Scenario::SearchService => "search-service",
            Scenario::SearchPatient => "search-patient",
            Scenario::SearchPractitioner => "search-practitioner",
            Scenario::SearchPhone => "search-phone",
        }
    }

    /// The ceiling this scenario's figure is a ratio of.
    fn ceiling(self) -> Option<Ceiling> {
        match self {
            Scenario::Read | Scenario::DpRead | Scenario::DpSlots | Scenario::Memory => Some(Ceiling::Baseline),
            Scenario::SearchService
            | Scenario::SearchPatient
            | Scenario::SearchPractitioner
            | Scenario::SearchPhone => Some(Ceiling::Baseline),
            Scenario::Book | Scenario::DpBook => Some(Ceiling::SqliteCommit),
            Scenario::Baseline | Scenario::SqliteCommit | Scenario::Deliver | Scenario::Soak => None,
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Synchronous {
    Full,
    Normal,
}

/// The order scenarios run in: the ceilings first, then the others as given
/// (each once).
fn ordered(asked: &[Scenario], add_ceilings: bool) -> Vec<Scenario> {
    let mut wanted: Vec<Scenario> = Vec::new();
    for &s in asked {
        if !wanted.contains(&s) {
            wanted.push(s);
        }
    }
    let mut out = Vec::new();
    for (ceiling, scenario) in
        [(Ceiling::Baseline, Scenario::Baseline), (Ceiling::SqliteCommit, Scenario::SqliteCommit)]
    {
        let needed = add_ceilings && wanted.iter().any(|s| s.ceiling() == Some(ceiling));
        if wanted.contains(&scenario) || needed {
            out.push(scenario);
        }
    }
    out.extend(wanted.into_iter().filter(|s| !matches!(s, Scenario::Baseline | Scenario::SqliteCommit)));
    out
}

/// mimalloc (its version 2, see the workspace manifest), not glibc's malloc:
/// allocation was the largest user-space cost under load, and glibc's
/// per-thread arenas let resident memory wander (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // The server runs in this process: the same allocator settings as `polyclinic`.
    polyclinic::limit_malloc_arenas();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("polyclinic-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.duration > 0.0 && args.warmup >= 0.0, "--duration must be positive, --warmup not negative");
    // The server's runtime, built as `polyclinic serve` builds it; the load
    // generator has threads of its own (see `load`).
    let server_threads = args.server_threads.unwrap_or_else(cores).max(1);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    if args.serve_baseline {
        return server_rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(&args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            println!("baseline: http://{}/ (Ctrl-C to stop)", listener.local_addr()?);
            ceilings::serve_baseline(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        });
    }
    polyclinic_delivery::install_tls_provider();
    if let Some(database) = &args.child_database {
        return server_rt.block_on(child::serve(args, database));
    }
    let scenarios = ordered(&args.scenario, !args.no_ceilings);
    let threads = args.threads.unwrap_or_else(cores).max(1);
    let plan = Plan {
        connections: args.connections,
        threads,
        stop: Stop::Timed {
            warmup: Duration::from_secs_f64(args.warmup),
            duration: Duration::from_secs_f64(args.duration),
        },
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let needs_server = scenarios.iter().any(|s| !matches!(s, Scenario::Baseline | Scenario::SqliteCommit));
    // The soak judges the server's own memory: the load generator's (the
    // bookings and deliveries it keeps to check afterwards) grows with it.
    let own_process = args.server_process || scenarios.contains(&Scenario::Soak);
    let mut server = if needs_server { Some(Server::start(args, &server_rt, &data_dir, own_process)?) } else { None };
    let engine = server.as_ref().map(|s| s.engine.clone()).unwrap_or_else(|| "none (ceilings only)".into());
    println!(
        "polyclinic-bench: {} connections on {threads} load threads, {} s after {} s of warm-up; server: {engine}, {} runtime workers; {} cores",
        args.connections,
        args.duration,
        args.warmup,
        if args.url.is_some() { "its own".to_owned() } else { server_threads.to_string() },
        cores()
    );
    println!("scenarios: {}\n", scenarios.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "));

    let mut session = Session {
        args,
        plan,
        server_rt: &server_rt,
        reports: Vec::new(),
        failures: Vec::new(),
        world: None,
        baseline: None,
        commits: None,
        setup: None,
    };
    let outcome = (|| -> anyhow::Result<()> {
        for &scenario in &scenarios {
            session.scenario(scenario, server.as_ref(), &data_dir)?;
        }
        Ok(())
    })();
    if let Err(e) = &outcome {
        session.failures.push(format!("{e:#}"));
    }
    print_summary(&session.reports);
    if let Some((pid, what)) = server.as_ref().and_then(Server::measured)
        && let Ok(kb) = rss_kb(pid)
    {
        println!("resident memory (VmRSS) of {what}: {} MB", kb / 1024);
    }
    if let Some(out) = &args.out {
        let doc = results_json(args, &session, server.as_ref(), &engine, threads, server_threads);
        std::fs::write(out, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        println!("results written to {}", out.display());
    }
    if let Some(s) = server.take() {
        s.stop(&server_rt);
    }
    if session.failures.is_empty() { Ok(()) } else { anyhow::bail!("{}", session.failures.join("; ")) }
}

/// The server the scenarios load: in-process, in a child process of its
/// own, or running elsewhere.
struct Server {
    target: Target,
    admin_token: String,
    engine: String,
    /// Where it runs, and so whose memory is measured.
    place: Place,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    sqlite_file: Option<String>,
    key_file: Option<PathBuf>,
    /// PostgreSQL: the server URL and the database created.
    postgres: Option<(String, String)>,
    /// The in-process server's store (the bulk import writes through it).
    store: Option<polyclinic_store::Store>,
}

/// Where the loaded server runs.
enum Place {
    /// In this process, beside the load generator.
    InProcess,
    /// In a child process (`--server-process`): its standard input is held
    /// open, and closing it stops the child.
    Child(std::process::Child),
    /// Elsewhere (`--url`): its memory is not measured.
    Remote,
}

impl Server {
    fn start(
        args: &Args,
        rt: &tokio::runtime::Runtime,
        data_dir: &std::path::Path,
        own_process: bool,
    ) -> anyhow::Result<Server> {
        if let Some(url) = &args.url {
            let admin_token = args.admin_token.clone().context("--url needs --admin-token")?;
            return Ok(Server {
                target: Target::parse(url)?,
                admin_token,
                engine: format!("running server at {url}"),
                place: Place::Remote,
                stop: None,
                serving: None,
                sqlite_file: None,
                key_file: None,
                postgres: None,
                store: None,
            });
        }
        if !own_process {
            init_server_log(args)?;
        }
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let (database, postgres, sqlite_file) = match &args.postgres {
            Some(server) => {
                let name = format!("polyclinic_bench_{run_id}");
                rt.block_on(async {
                    sqlx::any::install_default_drivers();
                    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(server)
                        .await
                        .context("connecting to PostgreSQL")?;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
                    anyhow::Ok(())
                })?;
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(server);
                (format!("{base}/{name}"), Some((server.clone(), name)), None)
            }
            None => {
                let file = data_dir.join(format!("polyclinic-bench-{run_id}.db")).display().to_string();
                (format!("sqlite://{file}"), None, Some(file))
            }
        };
        let admin_token = format!("bench-admin-{run_id}");
        let key_file = std::env::temp_dir().join(format!("polyclinic-bench-{run_id}.key"));
        let mut engine = match (&postgres, args.synchronous) {
            (Some(_), _) => "PostgreSQL".to_owned(),
            (None, Synchronous::Full) => "SQLite synchronous=FULL".to_owned(),
            (None, Synchronous::Normal) => "SQLite synchronous=NORMAL".to_owned(),
        };
        let mut server = Server {
            target: Target::local(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            admin_token: admin_token.clone(),
            engine: String::new(),
            place: Place::InProcess,
            stop: None,
            serving: None,
            sqlite_file,
            key_file: Some(key_file.clone()),
            postgres,
            store: None,
        };
        if own_process {
            let (child, port) = child::start(args, &database, &admin_token, &key_file)?;
            server.place = Place::Child(child);
            server.target = Target::local(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
            engine = format!("child process, {engine}");
        } else {
            let config = server_config(args, &database, &admin_token, &key_file);
            let app = rt.block_on(Application::build(&config)).context("starting Polyclinic")?;
            server.target = Target::local(std::net::SocketAddr::from(([127, 0, 0, 1], app.port())));
            server.store = Some(app.state().store.clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            server.serving = Some(rt.spawn(app.run_until(async move {
                let _ = stopped.await;
            })));
            server.stop = Some(stop);
            engine = format!("in-process, {engine}");
        }
        server.engine = engine;
        Ok(server)
    }

    /// The process whose memory is the server's, and how to name it; none
    /// for a server running elsewhere.
    fn measured(&self) -> Option<(u32, &'static str)> {
        match &self.place {
            Place::InProcess => {
                Some((std::process::id(), "this process, the in-process server with the load generator"))
            }
            Place::Child(child) => Some((child::server_pid(child.id()), "the server's process")),
            Place::Remote => None,
        }
    }

    /// Stops the server and removes what the run created.
    fn stop(mut self, rt: &tokio::runtime::Runtime) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), serving).await });
        }
        if let Place::Child(child) = &mut self.place {
            child::stop(child);
        }
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
        }
        if let Some(key) = &self.key_file {
            let _ = std::fs::remove_file(key);
        }
        if let Some((server, name)) = &self.postgres {
            let dropped = rt.block_on(async {
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(server).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut conn)
                    .await?;
                anyhow::Ok(())
            });
            if let Err(e) = dropped {
                eprintln!("note: the database {name} was not dropped: {e:#}");
            }
        }
    }
}

/// Installs the server's log subscriber when `--server-log` asks for it.
fn init_server_log(args: &Args) -> anyhow::Result<()> {
    if let Some(path) = &args.server_log {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let filter = tracing_subscriber::EnvFilter::try_from_env("POLYCLINIC_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    Ok(())
}

/// The configuration of the server under load, in this process or a child.
fn server_config(args: &Args, database: &str, admin_token: &str, key_file: &std::path::Path) -> Config {
    let mut config = Config::for_database(database);
    config.admin_token = Some(admin_token.to_owned());
    config.secret_key_file = Some(key_file.to_owned());
    if args.synchronous == Synchronous::Normal {
        config.sqlite_synchronous = polyclinic::config::Synchronous::Normal;
    }
    // A bench is one API client at thousands of requests per second.
    config.docplanner_limits = polyclinic::config::DocplannerLimits::OFF;
    // The `deliver` scenario's webhook receiver listens on 127.0.0.1.
    config.delivery.allow_private = Some(true);
    config
}

/// The state of one invocation.
struct Session<'a> {
    args: &'a Args,
    plan: Plan,
    server_rt: &'a tokio::runtime::Runtime,
    reports: Vec<Report>,
    failures: Vec<String>,
    world: Option<World>,
    /// The ceilings' figures, once measured.
    baseline: Option<f64>,
    commits: Option<f64>,
    setup: Option<Setup>,
}

impl Session<'_> {
    fn scenario(
        &mut self,
        scenario: Scenario,
        server: Option<&Server>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        let name = scenario.name();
        let mut report = match scenario {
            Scenario::Baseline => {
                let (target, stop, serving) = match &self.args.baseline_url {
                    Some(url) => (Target::parse(url)?, None, None),
                    None => {
                        let listener = self.server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
                        let target = Target::local(listener.local_addr()?);
                        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                        let serving = self.server_rt.spawn(ceilings::serve_baseline(listener, async move {
                            let _ = stopped.await;
                        }));
                        (target, Some(stop), Some(serving))
                    }
                };
                let run = load::run(&target, Arc::new(Gets::baseline(&target)?), &self.plan)?;
                if let Some(stop) = stop {
                    let _ = stop.send(());
                }
                if let Some(serving) = serving {
                    let _ = self.server_rt.block_on(serving);
                }
                let what = format!(
                    "GET / on a bare axum route ({} bytes of JSON), {}",
                    ceilings::BASELINE_BODY.len(),
                    target.base
                );
                let r = Report::of_run(name, &what, "req/s", &run.tally, run.window);
                self.baseline = Some(r.rate);
                r
            }
            Scenario::SqliteCommit => {
                let r = ceilings::sqlite_commit(data_dir, Duration::from_secs_f64(self.args.duration))?;
                self.commits = Some(r.rate);
                r
            }
            _ => {
                let server = server.context("no server")?;
                self.ensure_world(server)?;
                self.server_scenario(scenario, server)?
            }
        };
        match (scenario.ceiling(), self.baseline, self.commits) {
            (Some(Ceiling::Baseline), Some(rate), _) => report.compare(Ceiling::Baseline, rate),
            (Some(Ceiling::SqliteCommit), _, Some(rate)) => report.compare(Ceiling::SqliteCommit, rate),
            _ => {}
        }
        if let Some((pid, _)) = server.and_then(Server::measured)
            && let Ok(kb) = rss_kb(pid)
        {
            // The server's resident memory after the scenario (with the
            // generator's, when in-process).
            report.extra.insert("rss_after_kb".into(), json!(kb));
        }
        println!("{}", report.text());
        let nothing = report.succeeded == 0 && scenario != Scenario::SqliteCommit;
        let failed = report.extra.get("failed").and_then(Value::as_str).map(str::to_owned);
        self.reports.push(report);
        anyhow::ensure!(!nothing, "{name}: no request succeeded (see the answers above)");
        if let Some(why) = failed {
            anyhow::bail!("{why}");
        }
        Ok(())
    }

    fn ensure_world(&mut self, server: &Server) -> anyhow::Result<()> {
        if self.world.is_none() {
            let setup = Setup {
                http: reqwest::Client::builder().build().context("the setup's HTTP client")?,
                admin_token: server.admin_token.clone(),
            };
            let started = Instant::now();
            let mut world = self.server_rt.block_on(World::seed(&setup, server.target.clone()))?;
            let size = bulk::Size { patients: self.args.patients, appointments: self.args.appointments };
            if size.patients + size.appointments > 0 {
                let store = server.store.as_ref().context("--patients/--appointments need the in-process server")?;
                let dir = self.args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
                let today = world.pool.first_day() - 2 * 86_400;
                world.bulk = Some(self.server_rt.block_on(bulk::seed(store, &world.tenant, size, &dir, today))?);
            }
            println!(
                "seeded a tenant: {} practitioners, {} patients, {} free 15-minute slots, in {:.1} s",
                world.practitioners.len(),
                world.patients.len(),
                thousands_u(world.pool.size() as u64),
                started.elapsed().as_secs_f64()
            );
            self.world = Some(world);
            self.setup = Some(setup);
        }
        Ok(())
    }

    fn world(&mut self) -> anyhow::Result<&mut World> {
        self.world.as_mut().context("no world")
    }

    fn docplanner(&mut self) -> anyhow::Result<()> {
        let setup = self.setup.as_ref().context("no setup")?;
        let world = self.world.as_mut().context("no world")?;
        if world.docplanner.is_none() {
            let started = Instant::now();
            self.server_rt.block_on(world.docplanner(setup))?;
            println!(
                "set up Docplanner: {} addresses with work periods on {} days, in {:.1} s",
                world::PRACTITIONERS,
                world::DAYS,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Books `n` appointments through `via` (not measured), for a read set.
    fn book_read_set(&mut self, via: world::Via) -> anyhow::Result<Vec<Booked>> {
        let n = self.args.read_set;
        let plan = Plan { stop: Stop::Count(n), ..self.plan };
        let world = self.world()?;
        let shared = world.booking_world();
        let started = Instant::now();
        let run = match via {
            world::Via::Embassy => load::run(&world.target, Arc::new(EmbassyBook::new(world, shared, 0)?), &plan)?,
            world::Via::Docplanner => load::run(&world.target, Arc::new(DocplannerBook::new(world, shared, 0)), &plan)?,
        };
        anyhow::ensure!(
            run.kept.len() == n,
            "booking the read set: {} of {n} booked; answers {:?}; {}",
            run.kept.len(),
            run.tally.statuses,
            run.tally.samples.join(" | ")
        );
        world.ledger.extend(run.kept.iter().cloned());
        println!(
            "booked a read set of {} through {:?} in {:.1} s",
            thousands_u(n as u64),
            via,
            started.elapsed().as_secs_f64()
        );
        Ok(run.kept)
    }

    fn server_scenario(&mut self, scenario: Scenario, server: &Server) -> anyhow::Result<Report> {
        let name = scenario.name();
        let (plan, args) = (self.plan, self.args);
        match scenario {
            Scenario::Read | Scenario::Memory => {
                if self.world()?.read_set.is_empty() {
                    let set = self.book_read_set(world::Via::Embassy)?;
                    self.world()?.read_set = set;
                }
                let world = self.world()?;
                let load = Arc::new(Gets::embassy(world)?);
                if scenario == Scenario::Memory {
                    let (pid, _) = server.measured().context("memory: reads the server's memory; not with --url")?;
                    return memory(&world.target, load, &plan, args.memory_requests, pid);
                }
                let run = load::run(&world.target, load, &plan)?;
                let what = format!(
                    "Embassy GET /embassy/Appointment/{{id}}, random of {}",
                    thousands_u(world.read_set.len() as u64)
                );
                Ok(Report::of_run(name, &what, "req/s", &run.tally, run.window))
            }
            Scenario::DpRead => {
                self.docplanner()?;
                if self.world()?.dp_read_set.is_empty() {
                    let set = self.book_read_set(world::Via::Docplanner)?;
                    self.world()?.dp_read_set = set;
                }
                let world = self.world()?;
                let run = load::run(&world.target, Arc::new(Gets::docplanner(world)?), &plan)?;
                let what = format!(
                    "Docplanner GET .../bookings/{{id}}, random of {}",
                    thousands_u(world.dp_read_set.len() as u64)
                );
                Ok(Report::of_run(name, &what, "req/s", &run.tally, run.window))
            }
            Scenario::SearchService
            | Scenario::SearchPatient
            | Scenario::SearchPractitioner
            | Scenario::SearchPhone => {
                let kind = match scenario {
                    Scenario::SearchService => search::Kind::Service,
                    Scenario::SearchPatient => search::Kind::Patient,
                    Scenario::SearchPractitioner => search::Kind::Practitioner,
                    _ => search::Kind::Phone,
                };
                if self.world()?.read_set.is_empty() {
                    let set = self.book_read_set(world::Via::Embassy)?;
                    self.world()?.read_set = set;
                }
                let (setup, world) =
                    (self.setup.as_ref().context("no setup")?, self.world.as_ref().context("no world")?);
                let load = self.server_rt.block_on(search::prepare(setup, world, kind))?;
                let run = load::run(&world.target, Arc::new(load), &plan)?;
                Ok(Report::of_run(name, kind.what(), "req/s", &run.tally, run.window))
            }
            Scenario::DpSlots => {
                self.docplanner()?;
                let (setup, world) =
                    (self.setup.as_ref().context("no setup")?, self.world.as_ref().context("no world")?);
                let load = self.server_rt.block_on(slots::prepare(setup, world))?;
                let run = load::run(&world.target, Arc::new(load), &plan)?;
                Ok(Report::of_run(name, slots::WHAT, "req/s", &run.tally, run.window))
            }
            Scenario::Book | Scenario::DpBook => {
                if scenario == Scenario::DpBook {
                    self.docplanner()?;
                }
                let conflict_percent = args.conflict_percent;
                let world = self.world()?;
                let shared = world.booking_world();
                let (run, what) = if scenario == Scenario::Book {
                    let load = Arc::new(EmbassyBook::new(world, shared, conflict_percent)?);
                    (
                        load::run(&world.target, load, &plan)?,
                        "Embassy POST /embassy/Appointment, Prefer: return=minimal",
                    )
                } else {
                    let load = Arc::new(DocplannerBook::new(world, shared, conflict_percent));
                    (load::run(&world.target, load, &plan)?, "Docplanner POST .../slots/{start}/book")
                };
                let what = format!(
                    "{what}; {} practitioners, random free 15-minute slots, {conflict_percent} in 100 aimed at a slot just taken",
                    world::PRACTITIONERS
                );
                world.ledger.extend(run.kept);
                let mut report = Report::of_run(name, &what, "bookings/s", &run.tally, run.window);
                let checked = self.read_back_check()?;
                report.extra.insert("overlap_check".into(), json!(checked));
                Ok(report)
            }
            Scenario::Deliver => {
                let setup = self.setup.as_ref().context("no setup")?;
                let world = self.world.as_mut().context("no world")?;
                let timeout = Duration::from_secs(polyclinic::config::Delivery::default().timeout_seconds);
                deliver::run(self.server_rt, world, setup, &plan, Duration::from_secs_f64(args.duration), timeout)
            }
            Scenario::Soak => {
                self.docplanner()?;
                if self.world()?.read_set.is_empty() {
                    let set = self.book_read_set(world::Via::Embassy)?;
                    self.world()?.read_set = set;
                }
                let setup = self.setup.as_ref().context("no setup")?;
                let world = self.world.as_mut().context("no world")?;
                let (pid, _) = server.measured().context("soak: reads the server's memory; not with --url")?;
                let mut report =
                    soak::run(self.server_rt, world, setup, &plan, Duration::from_secs(args.soak_seconds), pid)?;
                let checked = self.read_back_check()?;
                report.extra.insert("overlap_check".into(), json!(checked));
                Ok(report)
            }
            Scenario::Baseline | Scenario::SqliteCommit => unreachable!("ceilings run in `scenario`"),
        }
    }

    /// Reads back every appointment booked so far, through the dialect that
    /// booked it, and fails when one is missing or two of one practitioner
    /// overlap.
    fn read_back_check(&mut self) -> anyhow::Result<String> {
        let plan = self.plan;
        let world = self.world()?;
        let load = Arc::new(ReadBack::new(world)?);
        let n = load.len();
        let started = Instant::now();
        let run = load::run(&world.target, load, &Plan { stop: Stop::Count(n), ..plan })?;
        let mut seen = Vec::with_capacity(n);
        let mut missing = Vec::new();
        for r in run.kept {
            match r {
                ReadResult::Seen(s) => seen.push(s),
                ReadResult::Missing(status, id, body) => missing.push(format!("{id} ({status}: {body})")),
            }
        }
        if !missing.is_empty() || seen.len() != n {
            let message = format!(
                "READ-BACK FAILED: {} of {n} booked appointments did not read back (transport errors: {}), e.g. {}",
                n - seen.len(),
                run.tally.transport_errors,
                missing.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            );
            eprintln!("{message}");
            anyhow::bail!(message);
        }
        let overlaps = scenarios::overlaps(&seen);
        if !overlaps.is_empty() {
            let shown: Vec<String> = overlaps
                .iter()
                .take(5)
                .map(|(a, b)| {
                    format!(
                        "practitioner {}: appointment {} [{} - {}] and {} [{} - {}]",
                        a.practitioner,
                        a.id,
                        world::rfc3339(a.start),
                        world::rfc3339(a.end),
                        b.id,
                        world::rfc3339(b.start),
                        world::rfc3339(b.end)
                    )
                })
                .collect();
            let message = format!(
                "DOUBLE BOOKING: {} overlapping pairs among {n} booked appointments: {}",
                overlaps.len(),
                shown.join("; ")
            );
            eprintln!("{message}");
            anyhow::bail!(message);
        }
        Ok(format!(
            "passed: {} booked appointments read back in {:.1} s, none of one practitioner overlapping",
            thousands_u(n as u64),
            started.elapsed().as_secs_f64()
        ))
    }
}

/// Reads after which the memory scenario takes its first reading.
const MEMORY_WARMUP: usize = 50_000;
/// Most growth of resident memory allowed after that.
const MEMORY_GROWTH_LIMIT_KB: i64 = 10 * 1024;

/// `requests` reads in steps of 50,000 with nobody scraping `/metrics`;
/// resident memory is read after each step, and the scenario fails when it
/// grew by more than 10 MB from the first reading to the last (the load
/// generator shares the process; its own memory is flat).
fn memory(target: &Target, load: Arc<Gets>, plan: &Plan, requests: usize, pid: u32) -> anyhow::Result<Report> {
    let mut tally = stats::Tally::default();
    let mut window = Duration::ZERO;
    let mut readings = Vec::new();
    let mut done = 0;
    let total = requests.max(MEMORY_WARMUP);
    while done < total {
        let step = MEMORY_WARMUP.min(total - done);
        let run = load::run(target, load.clone(), &Plan { stop: Stop::Count(step), ..*plan })?;
        tally.merge(&run.tally);
        window += run.window;
        done += step;
        readings.push((done, rss_kb(pid)?));
    }
    let mut report = Report::of_run(
        "memory",
        "Embassy reads with no /metrics scrape; resident memory per 50,000",
        "req/s",
        &tally,
        window,
    );
    let shown: Vec<String> =
        readings.iter().map(|(n, kb)| format!("{}k: {} KB", n / 1000, thousands_u(*kb as u64))).collect();
    let growth = readings.last().map(|l| l.1).unwrap_or(0) - readings.first().map(|f| f.1).unwrap_or(0);
    report.extra.insert("rss".into(), json!(shown.join(", ")));
    report.extra.insert("rss_growth_kb".into(), json!(growth));
    anyhow::ensure!(
        growth <= MEMORY_GROWTH_LIMIT_KB,
        "memory: resident memory grew by {growth} KB (more than {MEMORY_GROWTH_LIMIT_KB} KB) after the first {MEMORY_WARMUP} requests: {}",
        shown.join(", ")
    );
    Ok(report)
}

/// The resident set size of process `pid`, in KB (Linux `/proc`).
fn rss_kb(pid: u32) -> anyhow::Result<i64> {
    Ok(soak::reading(pid)?.0)
}

fn print_summary(reports: &[Report]) {
    if reports.is_empty() {
        return;
    }
    println!(
        "{:<14} {:>12} {:<10} {:>9} {:>9} {:>9} {:>22}",
        "scenario", "rate", "", "p50 ms", "p99 ms", "max ms", "ratio"
    );
    for r in reports {
        let l = r.latency;
        let ms = |f: fn(&stats::Latency) -> f64| l.as_ref().map(|l| format!("{:.2}", f(l))).unwrap_or_default();
        let ratio = r.ratio.map(|(c, x)| format!("{x:.2} of {}", c.name())).unwrap_or_default();
        println!(
            "{:<14} {:>12} {:<10} {:>9} {:>9} {:>9} {:>22}",
            r.scenario,
            stats::thousands(r.rate),
            r.unit,
            ms(|l| l.p50),
            ms(|l| l.p99),
            ms(|l| l.max),
            ratio
        );
    }
    println!();
}

/// The machine: cores and the CPU's model.
fn machine() -> Value {
    let model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
    });
    json!({"cores": cores(), "cpu_model": model, "os": std::env::consts::OS, "arch": std::env::consts::ARCH})
}

/// The commit of the checkout the bench runs in (the working directory's,
/// else the binary's, as in `target/release`), `+dirty` when tracked files
/// differ from it.
fn git_commit() -> Option<String> {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(PathBuf::from));
    let dirs = [std::env::current_dir().ok(), exe_dir];
    dirs.into_iter().flatten().find_map(|dir| {
        let git = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(&dir).args(args).output().ok();
        let out = git(&["rev-parse", "HEAD"]).filter(|o| o.status.success())?;
        let commit = String::from_utf8(out.stdout).ok()?.trim().to_owned();
        let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
        Some(if dirty { format!("{commit}+dirty") } else { commit })
    })
}

fn results_json(
    args: &Args,
    session: &Session<'_>,
    server: Option<&Server>,
    engine: &str,
    threads: usize,
    server_threads: usize,
) -> Value {
    json!({
        "bench": "polyclinic-bench",
        "date": jiff::Timestamp::now().to_string(),
        "machine": machine(),
        "git_commit": git_commit(),
        "engine": engine,
        "target": match server.map(|s| &s.place) {
            Some(Place::Remote) => "url",
            Some(Place::Child(_)) => "child process",
            _ => "in-process",
        },
        "connections": args.connections,
        "load_threads": threads,
        "server_threads": if args.url.is_some() { Value::Null } else { json!(server_threads) },
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "conflict_percent": args.conflict_percent,
        "scenarios": session.reports.iter().map(Report::json).collect::<Vec<_>>(),
        "failures": session.failures,
        "seeding": session.world.as_ref().and_then(|w| w.bulk.as_ref()).map(bulk::Seeded::json),
        "rss_end_kb": server.and_then(Server::measured).and_then(|(pid, _)| rss_kb(pid).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_run_first_and_are_added_when_needed() {
        assert_eq!(
            ordered(&[Scenario::Read, Scenario::Book], true),
            vec![Scenario::Baseline, Scenario::SqliteCommit, Scenario::Read, Scenario::Book]
        );
        assert_eq!(
            ordered(&[Scenario::Book, Scenario::Baseline, Scenario::Book], true),
            vec![Scenario::Baseline, Scenario::SqliteCommit, Scenario::Book]
        );
        assert_eq!(ordered(&[Scenario::Read], false), vec![Scenario::Read]);
    }

    #[test]
    fn the_command_line_takes_a_list_of_scenarios() {
        let args = Args::try_parse_from(["polyclinic-bench", "--scenario", "read,dp-book", "--duration", "1"])
            .expect("parses");
        assert_eq!(args.scenario, vec![Scenario::Read, Scenario::DpBook]);
        assert_eq!(args.connections, 64);
        assert!(
            Args::try_parse_from(["polyclinic-bench", "--url", "http://127.0.0.1:1"]).is_err(),
            "--url needs --admin-token"
        );
    }

    /// The whole harness, quickly: the scenarios on a fresh in-process
    /// SQLite server with 2 connections, a small read set, 1 s each (long
    /// enough for a slow, busy machine to answer some). It checks that the
    /// scenarios run and the overlap check passes; no timing is asserted.
    #[test]
    fn a_short_run_of_every_scenario_passes() {
        polyclinic_delivery::install_tls_provider();
        let dir = std::env::temp_dir().join(format!("polyclinic-bench-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let out = dir.join("out.json");
        let args = Args::try_parse_from([
            "polyclinic-bench",
            "--scenario",
            "baseline,sqlite-commit,read,dp-read,book,dp-book",
            "--connections",
            "2",
            "--threads",
            "1",
            "--server-threads",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--read-set",
            "20",
            "--conflict-percent",
            "20",
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
        ])
        .expect("parses");
        run(&args).expect("the run passes");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("written")).expect("JSON");
        let names: Vec<&str> =
            doc["scenarios"].as_array().expect("list").iter().filter_map(|s| s["scenario"].as_str()).collect();
        assert_eq!(names, ["baseline", "sqlite-commit", "read", "dp-read", "book", "dp-book"]);
        let book = &doc["scenarios"][4];
        assert!(book["overlap_check"].as_str().is_some_and(|c| c.starts_with("passed")), "{book}");
        assert_eq!(book["ratio"]["to"], "sqlite-commit");
        assert_eq!(doc["scenarios"][2]["ratio"]["to"], "baseline");
        assert!(doc["machine"]["cores"].as_u64().is_some_and(|c| c > 0));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
