//! Test harness: starts the real server in-process on port 0 against a fresh
//! SQLite file or a fresh PostgreSQL database, seeds it through the admin API
//! and hands back an HTTP client.
//!
//! PostgreSQL tests use `POLYCLINIC_TEST_POSTGRES_URL` (a server URL whose
//! user may create databases), else `postgres://postgres@127.0.0.1:5432/postgres`
//! when a server listens there. Without either they skip with a note, except
//! under `CI=true`, where they fail.

use polyclinic::{Application, Config};
use polyclinic_store::Store;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The engines a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per engine for an `async fn(Engine)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Engine::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if $crate::helpers::postgres_url().is_some() {
                    super::$name($crate::helpers::Engine::Postgres).await;
                }
            }
        }
    )*};
}

/// Where the PostgreSQL tests look when `POLYCLINIC_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The PostgreSQL server URL for tests: `POLYCLINIC_TEST_POSTGRES_URL`, else
/// the local default when something listens on 127.0.0.1:5432. `None` skips
/// the test with a note, except under `CI=true`, where it fails.
pub fn postgres_url() -> Option<String> {
    static URL: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var("POLYCLINIC_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let addr: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("address");
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1))
                .ok()
                .map(|_| DEFAULT_POSTGRES_URL.to_owned())
        }
    });
    if url.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!(
                "no PostgreSQL for the tests under CI: set POLYCLINIC_TEST_POSTGRES_URL; PostgreSQL tests may not be skipped"
            );
        }
        eprintln!("note: no PostgreSQL (set POLYCLINIC_TEST_POSTGRES_URL); PostgreSQL test skipped");
    }
    url.clone()
}

/// A fresh, empty database URL for `engine`.
pub async fn fresh_database(engine: Engine) -> String {
    let name = format!("polyclinic_test_{}", uuid::Uuid::new_v4().simple());
    match engine {
        Engine::Sqlite => {
            let dir: PathBuf = std::env::temp_dir().join("polyclinic-tests");
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}", dir.join(format!("{name}.db")).display())
        }
        Engine::Postgres => {
            let server = postgres_url().expect("postgres url");
            sqlx::any::install_default_drivers();
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect(&server).await.expect("connect to postgres");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = server.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(server);
            format!("{base}/{name}")
        }
    }
}

fn key_file_stem(database: &str) -> String {
    let name = database.rsplit('/').next().unwrap_or("db");
    std::fs::create_dir_all(std::env::temp_dir().join("polyclinic-tests")).expect("temp dir");
    std::env::temp_dir().join("polyclinic-tests").join(name).display().to_string()
}

/// An HTTP client for the tests. Installs the TLS provider first: reqwest
/// is built without a default one (the server installs ring at start).
pub fn http_client() -> reqwest::Client {
    polyclinic_delivery::install_tls_provider();
    reqwest::Client::new()
}

/// A running server.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub store: Store,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Options for [`spawn_app_with`].
#[derive(Clone, Default)]
pub struct Spawn {
    pub test_clock: bool,
    pub database: Option<String>,
    /// Delivery settings; default: the server's defaults.
    pub delivery: Option<polyclinic::config::Delivery>,
    /// Docplanner rate limits; default: off, so that suites writing more than
    /// 40 times within one frozen test-clock minute are not throttled.
    pub docplanner_limits: Option<polyclinic::config::DocplannerLimits>,
    /// `--delivery-allow-private`; default: the server's (on under the test
    /// clock, so receivers on 127.0.0.1 work).
    pub allow_private: Option<bool>,
    /// `--delivery-allow-hosts`.
    pub allow_hosts: Vec<String>,
    /// `--cache-ttl-ms`; default: the server's.
    pub cache_ttl: Option<std::time::Duration>,
}

/// Starts a server with the test clock on a fresh database.
pub async fn spawn_app(engine: Engine) -> TestApp {
    spawn_app_with(engine, Spawn { test_clock: true, ..Default::default() }).await
}

/// Starts a server with explicit options.
pub async fn spawn_app_with(engine: Engine, opts: Spawn) -> TestApp {
    let database = match opts.database {
        Some(d) => d,
        None => fresh_database(engine).await,
    };
    let mut config = Config::for_database(&database);
    config.test_clock = opts.test_clock;
    if let Some(d) = opts.delivery {
        config.delivery = d;
    }
    if opts.allow_private.is_some() {
        config.delivery.allow_private = opts.allow_private;
    }
    if !opts.allow_hosts.is_empty() {
        config.delivery.allow_hosts = opts.allow_hosts;
    }
    config.docplanner_limits = opts.docplanner_limits.unwrap_or(polyclinic::config::DocplannerLimits::OFF);
    if let Some(ttl) = opts.cache_ttl {
        config.cache_ttl = ttl;
    }
    config.admin_token = Some("test-admin-token".into());
    // One key per database, as a deployment would keep it.
    config.secret_key_file = Some(std::path::PathBuf::from(format!("{}.key", key_file_stem(&database))));
    let app = Application::build(&config).await.expect("build application");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: http_client(),
        admin_token: "test-admin-token".into(),
        store,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

impl TestApp {
    /// Full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An admin request with the token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.admin_token)
    }

    /// An Embassy request with the `acme` tenant's API key.
    pub fn embassy(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(&format!("/embassy{path}"))).header("X-Visiba-Care-API-Key", "emb-acme-1")
    }

    /// Runs all due work (`POST /admin/run-due`) and answers its summary.
    pub async fn run_due(&self) -> Value {
        let r = self.admin(reqwest::Method::POST, "/admin/run-due").send().await.expect("run-due");
        assert_eq!(r.status(), 200);
        r.json().await.expect("run-due answers JSON")
    }

    /// Moves the test clock.
    pub async fn advance(&self, seconds: i64) {
        let r = self
            .admin(reqwest::Method::POST, "/admin/clock")
            .json(&json!({"advance_seconds": seconds}))
            .send()
            .await
            .expect("clock");
        assert_eq!(r.status(), 200);
    }

    /// Sets the test clock.
    pub async fn set_clock(&self, now: &str) {
        let r =
            self.admin(reqwest::Method::POST, "/admin/clock").json(&json!({"now": now})).send().await.expect("clock");
        assert_eq!(r.status(), 200);
    }

    /// The tenant's deliveries (`GET /admin/deliveries`).
    pub async fn deliveries(&self, tenant: &str) -> Vec<Value> {
        let r = self
            .admin(reqwest::Method::GET, &format!("/admin/deliveries?tenant={tenant}"))
            .send()
            .await
            .expect("deliveries");
        r.json().await.expect("deliveries JSON")
    }

    /// Loads a seed document; answers the admin API's result.
    pub async fn seed(&self, doc: &Value) -> Value {
        let r = self.admin(reqwest::Method::POST, "/admin/seed").json(doc).send().await.expect("seed request");
        let status = r.status();
        let body: Value = r.json().await.expect("seed answer is JSON");
        assert_eq!(status, 200, "seed failed: {body}");
        body
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The admin contract's example seed, with one tenant under `key`.
pub fn acme_seed(key: &str) -> Value {
    json!({
        "services": [{"id": "1", "name": "ablacja"}],
        "insurance_providers": [{"id": "3", "name": "NFZ"}],
        "tenants": [{
            "key": key, "name": "Acme Clinic",
            "country": "SE", "language": "sv", "timezone": "Europe/Stockholm",
            "settings": {"national_id_required": false, "phone_is_identifier": false,
                         "min_booking_notice_minutes": 0, "cancel_cutoff_minutes": 0,
                         "reschedule_cutoff_minutes": 0},
            "credentials": [
                {"dialect": "embassy", "api_key": format!("emb-{key}-1")},
                {"dialect": "naboto", "token": format!("nab-{key}-1")},
                {"dialect": "solo", "api_key": format!("solo-{key}-1"), "webhook_secret": "optional"},
                {"dialect": "docplanner", "client_id": format!("dp-{key}"), "client_secret": "dp-secret",
                 "facilities": ["hosp"], "push_url": "http://127.0.0.1:9/push", "push_api_key": "optional"},
                {"dialect": "fhir", "token": format!("fhir-{key}-1")}
            ],
            "practitioners": [{"key": "ann", "given": "Ann", "family": "Berg",
                "email": "ann@acme.test", "hsa_id": "SE2321000016-0001",
                "national_ids": {"se": "197001011233"}, "communication_privileges": true}],
            "healthcare_services": [{"key": "gp", "name": "GP online",
                "practitioners": ["ann"], "reason_codes": [{"code": "1", "display": "Cough"}],
                "slot_seconds": 900, "service_line": "Demo", "service_type": "Demo",
                "opening_hours": [{"weekday": "mon", "from": "08:00", "to": "16:00"}]}],
            "facilities": [{"key": "hosp", "name": "Test Hospital",
                "addresses": [{"key": "obrzezna", "doctor": "ann", "name": "Test Hospital",
                               "street": "Obrzezna", "city": "Warszawa",
                               "healthcare_service": "gp"}]}],
            "care_locations": [{"key": "cl1", "name": "ICC-CL-01-02", "building": "hospital",
                "floor": "floor 2", "room": "431", "bed": "bed 2",
                "department": "emergency department", "device_serial": "123457"}],
            "report_presets": [{"key": "visits", "id": "a2c6e3fc-c2f7-4a24-a0d6-eb2343a15469"}]
        }]
    })
}

/// Sends a POST to `path` over a plain TCP connection that announces
/// `announced` body bytes but sends only `body`, then reads the answer:
/// the way to test a body limit without a race. (A client that keeps
/// sending after the server has answered and closed may see the
/// connection reset before it reads the answer; sending exactly one byte
/// over the limit lets the server read all that was sent, so its close is
/// clean.) Answers the status and the body as text.
pub async fn post_over_limit(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    announced: usize,
    body: Vec<u8>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {announced}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = s.read(&mut buf).expect("an answer before the body is complete");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok());
                if n == 0 || length.is_some_and(|l| body.len() >= l) {
                    return text;
                }
            }
            assert!(n > 0, "closed without an answer: {text}");
        }
    })
    .await
    .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), body.to_owned())
}
