//! The Polyclinic server as a library: configuration, wiring and the serve
//! loop. `main.rs` only parses the command line; tests and benchmarks start
//! the same [`Application`] on `127.0.0.1:0`.

pub mod app;
pub mod config;
pub mod demo;
pub mod import;

use anyhow::Context;
use polyclinic_delivery::{Engine, EngineConfig, ReqwestSender, Router, Senders, SmsGateway, TargetPolicy};
use polyclinic_http::{AppState, Clock, SystemClock, TestClock};
use polyclinic_store::seal::SecretKey;
use polyclinic_store::{Store, StoreOptions};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub use app::{MOUNTED_DIALECTS, Routing, app};
pub use config::{Config, LogFormat};

/// Caps glibc's malloc arenas at one per core, unless `MALLOC_ARENA_MAX` says
/// otherwise. Call it first thing in `main`, before any thread starts.
///
/// glibc gives up to eight arenas per core to the threads that allocate, and
/// the server has many (tokio's workers, one per SQLite connection): freed
/// memory then scatters over arenas that rarely hand it back, and resident
/// memory creeps up under steady load (measured: +18 MB over 450,000 reads at
/// the default, flat at one arena per core; see docs/benchmarks.md).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes a tuning parameter of the allocator;
        // it is called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

/// A built server: bound, migrated, seeded when asked, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    routing: Routing,
    admin_token: String,
    admin_token_generated: bool,
}

impl Application {
    /// Opens and migrates the database, binds the listener, and loads the
    /// demo seed with `--demo`.
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        let mut opts = StoreOptions::new(&config.database);
        opts.synchronous = config.sqlite_synchronous;
        opts.sqlite_heap_limit = config.sqlite_heap_limit;
        opts.secret_key = secret_key(config)?;
        let store = Store::open(opts).await.with_context(|| "opening the database")?;
        let (clock, test_clock): (Arc<dyn Clock>, Option<Arc<TestClock>>) = if config.test_clock {
            let tc = Arc::new(TestClock::new(SystemClock.now()));
            (tc.clone(), Some(tc))
        } else {
            (Arc::new(SystemClock), None)
        };
        let (admin_token, admin_token_generated) = match &config.admin_token {
            Some(t) if !t.is_empty() => (t.clone(), false),
            _ => (random_token(), true),
        };
        let listener = TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let local = listener.local_addr().context("reading the bound address")?;
        let public_url = match &config.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None if local.ip().is_unspecified() => format!("http://localhost:{}", local.port()),
            None => format!("http://{local}"),
        };
        let d = &config.delivery;
        let allow_private = d.allows_private(config.test_clock);
        if allow_private {
            tracing::info!("delivery targets may be internal addresses (--delivery-allow-private)");
        }
        let targets = TargetPolicy::new(allow_private, &d.allow_hosts);
        let mut senders = Senders::local(std::time::Duration::from_secs(d.timeout_seconds), targets)
            .map_err(|e| anyhow::anyhow!("delivery: {e}"))?;
        if let Some(url) = &d.smtp_url {
            let mailer = polyclinic_delivery::SmtpMailer::new(
                url,
                &d.mail_from,
                std::time::Duration::from_secs(d.timeout_seconds),
            )
            .map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?;
            senders.mail = Arc::new(mailer);
        }
        if let Some(url) = &d.sms_gateway_url {
            // The operator's own gateway: not subject to the target check.
            let http = Arc::new(ReqwestSender::new(std::time::Duration::from_secs(d.timeout_seconds)));
            senders.sms = Arc::new(SmsGateway { url: url.clone(), http });
        }
        let templates = polyclinic_messaging::templates::Templates::load(d.message_templates.as_deref())
            .map_err(|e| anyhow::anyhow!("patient message templates: {e}"))?;
        let routers: Vec<Arc<dyn Router>> = vec![
            Arc::new(polyclinic_embassy::notify::SubscriptionRouter { base: format!("{public_url}/embassy") }),
            Arc::new(polyclinic_docplanner::notifications::NotificationRouter::new(store.secret_key().clone())),
            Arc::new(polyclinic_solo::notify::WebhookRouter::new(store.secret_key().clone())),
            // Solo encounter reports, built by their scheduler jobs.
            Arc::new(polyclinic_solo::reports::EncounterReports::new(store.blobs(), store.secret_key().clone())),
            // Patient messages: one shared service, for every dialect's bookings.
            Arc::new(polyclinic_messaging::PatientMessages::new(store.secret_key().clone(), &public_url, templates)),
            // Housekeeping jobs no dialect owns (token expiry, retention).
            Arc::new(polyclinic_delivery::Housekeeping::new(d.retention_days, d.retention_batch)),
        ];
        let engine_config = EngineConfig {
            max_attempts: d.max_attempts,
            backoff_base_seconds: d.backoff_seconds,
            backoff_cap_seconds: d.backoff_cap_seconds,
            lease_seconds: d.lease_seconds,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::new(store.clone(), clock.clone(), routers, senders, engine_config));
        let mut state = AppState::new(store, clock, test_clock, &admin_token, engine, &public_url, local.port());
        state.heartbeat_seconds = d.heartbeat_seconds;
        state.caches.set_ttl(config.cache_ttl);
        // The gates every booking of every dialect passes before it lands.
        let approvals = polyclinic_docplanner::realtime::RealtimeApprovals {
            store: state.store.clone(),
            clock: state.clock.clone(),
            engine: state.engine.clone(),
        };
        state.scheduling =
            state.scheduling.clone().with_gates(polyclinic_scheduling::Gates::new(vec![Arc::new(approvals)]));
        let routing = Routing { docplanner_limits: config.docplanner_limits };
        if config.demo {
            polyclinic_admin::apply_seed(&state, demo::seed_doc()?)
                .await
                .map_err(|e| anyhow::anyhow!("loading the demo seed: {}", e.message))?;
        }
        Ok(Application { listener, state, routing, admin_token, admin_token_generated })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The admin token in force.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Whether the admin token was generated at start (and must be printed).
    pub fn admin_token_generated(&self) -> bool {
        self.admin_token_generated
    }

    /// The shared state (store, clock).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The public base URL (`http://host:port`).
    pub fn public_url(&self) -> &str {
        &self.state.public_url
    }

    /// Serves HTTP and runs the delivery engine until `shutdown` completes,
    /// then stops taking connections, finishes the requests and sends in
    /// flight, and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let engine = self.state.engine.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let delivery = tokio::spawn(engine.run(async move {
            let mut rx = stop_rx;
            let _ = rx.wait_for(|stop| *stop).await;
        }));
        let router = app(self.state, self.routing);
        // Connection info gives handlers the peer address (failed
        // authentications are throttled per address).
        let served = axum::serve(self.listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP");
        let _ = stop_tx.send(true);
        let _ = delivery.await;
        store.close().await;
        served
    }
}

/// The secret key: given directly, else read from the key file, else
/// generated and written there (mode 0600).
pub fn secret_key(config: &Config) -> anyhow::Result<SecretKey> {
    if let Some(hex) = &config.secret_key {
        return SecretKey::from_hex(hex).context("--secret-key / POLYCLINIC_SECRET_KEY");
    }
    let path = config.key_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            SecretKey::from_hex(&text).with_context(|| format!("reading the secret key from {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate();
            write_private(&path, &key.to_hex())
                .with_context(|| format!("writing a new secret key to {}", path.display()))?;
            tracing::warn!(path = %path.display(), "generated a new secret key; back it up, and give every node the same one");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading the secret key from {}", path.display())),
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// 32 random bytes, hex encoded.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
