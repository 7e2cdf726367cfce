//! Configuration: command-line flags, each with a `POLYCLINIC_*` environment
//! twin, over an optional TOML file (`--config`), over defaults.
//! Precedence: flag, then environment, then file, then default.

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
pub use polyclinic_docplanner::ratelimit::Limits as DocplannerLimits;
pub use polyclinic_store::Synchronous;
use serde::Deserialize;
use std::path::PathBuf;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default database: an SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://polyclinic.db";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "polyclinic",
    version,
    about = "Self-hosted telehealth scheduling server speaking several partner API dialects"
)]
pub struct Cli {
    /// A TOML configuration file (keys as the long flags, with `_` for `-`).
    #[arg(long, global = true, env = "POLYCLINIC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://FILE` (default `sqlite://polyclinic.db`) or `postgres://...`.
    #[arg(long, global = true, env = "POLYCLINIC_DATABASE")]
    pub database: Option<String>,
    /// Log format.
    #[arg(long, global = true, env = "POLYCLINIC_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Key (64 hex characters) that seals the secrets protocols need back
    /// (webhook keys, PUSH API keys). Every node on one database needs the same.
    #[arg(long, global = true, env = "POLYCLINIC_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// File holding the secret key; created when missing. Default: beside the
    /// SQLite file (`polyclinic.db.key`), or `polyclinic.key` for PostgreSQL.
    #[arg(long, global = true, env = "POLYCLINIC_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// SQLite `synchronous`: `full` (every commit durable) or `normal`.
    #[arg(long, global = true, env = "POLYCLINIC_SQLITE_SYNCHRONOUS", value_enum)]
    pub sqlite_synchronous: Option<SyncArg>,
    /// SQLite: MiB of memory that all of SQLite's page caches share (a soft
    /// limit: near it, caches recycle pages instead of growing); 0: none.
    /// Default: 24.
    #[arg(long, global = true, env = "POLYCLINIC_SQLITE_HEAP_MIB")]
    pub sqlite_heap_mib: Option<u64>,
    /// Let delivery targets (subscription endpoints, PUSH URLs) be loopback,
    /// private, link-local or other internal addresses. Default: on under
    /// `--test-clock`, off otherwise; `--delivery-allow-private=false` turns
    /// it off under the test clock too. Checked when a seed or an API client
    /// registers a target, and at every send.
    #[arg(
        long,
        global = true,
        env = "POLYCLINIC_DELIVERY_ALLOW_PRIVATE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub delivery_allow_private: Option<bool>,
    /// Host names (or IP literals) that delivery targets may name even when
    /// they resolve to internal addresses; a comma-separated list.
    #[arg(long, global = true, env = "POLYCLINIC_DELIVERY_ALLOW_HOSTS", value_delimiter = ',')]
    pub delivery_allow_hosts: Vec<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Load a seed document (JSON, as `POST /admin/seed` takes) and print the ids.
    Seed {
        /// The seed file.
        file: PathBuf,
    },
    /// Import a clinic's patients and appointments from a JSON Lines file
    /// (docs/import.md), many rows per transaction; prints the counts.
    Import(ImportArgs),
}

/// Flags of `polyclinic import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The JSON Lines file: one `{"type": "patient" | "appointment", ...}` object per line.
    pub file: PathBuf,
    /// Lines per transaction: a refused line rolls back its whole batch.
    #[arg(long, default_value_t = polyclinic_store::import::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// Show progress on stderr even when it is not a terminal (a bar is
    /// shown on a terminal anyway).
    #[arg(long)]
    pub progress: bool,
    /// Show no progress.
    #[arg(long, conflicts_with = "progress")]
    pub quiet: bool,
}

/// Flags of `polyclinic serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "POLYCLINIC_LISTEN")]
    pub listen: Option<String>,
    /// Admin API token; generated and printed at start when unset.
    #[arg(long, env = "POLYCLINIC_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Run on a settable clock (`POST /admin/clock`, `POST /admin/run-due`).
    #[arg(long, env = "POLYCLINIC_TEST_CLOCK")]
    pub test_clock: bool,
    /// Load the demo seed and print a ready-to-paste curl line per dialect.
    #[arg(long, env = "POLYCLINIC_DEMO")]
    pub demo: bool,
    /// How clients reach this server (`https://polyclinic.example`); the base of
    /// the full URLs in notifications. Default: `http://` + the listen address.
    #[arg(long, env = "POLYCLINIC_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Milliseconds a node keeps credentials, tenants and catalogues in memory
    /// without a change of its own (default 2000; 0: no caching). A change
    /// made through another node on the same database is seen within this time.
    #[arg(long, env = "POLYCLINIC_CACHE_TTL_MS")]
    pub cache_ttl_ms: Option<u64>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub docplanner: DocplannerArgs,
}

/// Docplanner rate limits, per API client and node (0 turns a limit off).
#[derive(Debug, Args, Default, Clone)]
pub struct DocplannerArgs {
    /// Docplanner GET requests per API client and clock hour (default 8000; 0: unlimited).
    #[arg(long, env = "POLYCLINIC_DOCPLANNER_GET_LIMIT_PER_HOUR")]
    pub docplanner_get_limit_per_hour: Option<u32>,
    /// Docplanner POST, PUT, PATCH and DELETE requests per API client and clock
    /// minute (default 40; 0: unlimited).
    #[arg(long, env = "POLYCLINIC_DOCPLANNER_WRITE_LIMIT_PER_MINUTE")]
    pub docplanner_write_limit_per_minute: Option<u32>,
    /// Turn the Docplanner rate limits (and their headers) off.
    #[arg(long, env = "POLYCLINIC_DOCPLANNER_NO_RATE_LIMITS")]
    pub docplanner_no_rate_limits: bool,
}

/// Delivery engine settings.
#[derive(Debug, Args, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryArgs {
    /// Seconds before an outgoing HTTP request gives up.
    #[arg(long, env = "POLYCLINIC_DELIVERY_TIMEOUT_SECONDS")]
    pub delivery_timeout_seconds: Option<u64>,
    /// Attempts before a delivery is dead.
    #[arg(long, env = "POLYCLINIC_DELIVERY_MAX_ATTEMPTS")]
    pub delivery_max_attempts: Option<i64>,
    /// First retry delay in seconds (doubled after each failure, with jitter).
    #[arg(long, env = "POLYCLINIC_DELIVERY_BACKOFF_SECONDS")]
    pub delivery_backoff_seconds: Option<i64>,
    /// Longest retry delay in seconds.
    #[arg(long, env = "POLYCLINIC_DELIVERY_BACKOFF_CAP_SECONDS")]
    pub delivery_backoff_cap_seconds: Option<i64>,
    /// Seconds a worker holds a delivery it is sending; after a crash, another
    /// worker sends it again once this has passed. At least the timeout + 5.
    #[arg(long, env = "POLYCLINIC_DELIVERY_LEASE_SECONDS")]
    pub delivery_lease_seconds: Option<i64>,
    /// Default heartbeat period of FHIR subscriptions, in seconds (0: none).
    #[arg(long, env = "POLYCLINIC_HEARTBEAT_SECONDS")]
    pub heartbeat_seconds: Option<i64>,
    /// Days the delivery history (dispatched events, delivered and dead
    /// deliveries with their attempts) is kept before it is deleted.
    #[arg(long, env = "POLYCLINIC_RETENTION_DAYS")]
    pub retention_days: Option<i64>,
    /// SMTP server for e-mail (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://user:pass@host:465`); without it, e-mail stays local.
    #[arg(long, env = "POLYCLINIC_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of e-mail.
    #[arg(long, env = "POLYCLINIC_MAIL_FROM")]
    pub mail_from: Option<String>,
    /// HTTP gateway that sends text messages (POST `{"to", "body"}`); without
    /// it, messages stay local.
    #[arg(long, env = "POLYCLINIC_SMS_GATEWAY_URL")]
    pub sms_gateway_url: Option<String>,
    /// Folder of patient message templates (`{language}/{kind}.txt`) that
    /// override the built-in ones.
    #[arg(long, env = "POLYCLINIC_MESSAGE_TEMPLATES")]
    pub message_templates: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `--sqlite-synchronous` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncArg {
    Full,
    Normal,
}

/// The configuration file's keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub database: Option<String>,
    pub admin_token: Option<String>,
    pub test_clock: Option<bool>,
    pub demo: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub sqlite_synchronous: Option<SyncArg>,
    pub sqlite_heap_mib: Option<u64>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub public_url: Option<String>,
    pub cache_ttl_ms: Option<u64>,
    pub docplanner_get_limit_per_hour: Option<u32>,
    pub docplanner_write_limit_per_minute: Option<u32>,
    pub docplanner_no_rate_limits: Option<bool>,
    pub delivery_allow_private: Option<bool>,
    pub delivery_allow_hosts: Option<Vec<String>>,
    #[serde(flatten)]
    pub delivery: Option<DeliveryArgs>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub database: String,
    pub admin_token: Option<String>,
    pub test_clock: bool,
    pub demo: bool,
    pub log_format: LogFormat,
    pub sqlite_synchronous: Synchronous,
    /// SQLite: bytes all page caches share (see `--sqlite-heap-mib`).
    pub sqlite_heap_limit: u64,
    /// The secret key given directly (hex); takes precedence over the file.
    pub secret_key: Option<String>,
    /// Where the secret key is kept when not given directly.
    pub secret_key_file: Option<PathBuf>,
    pub public_url: Option<String>,
    /// How long credentials, tenants and catalogues stay in memory
    /// (`polyclinic_http::cache`; zero: no caching).
    pub cache_ttl: std::time::Duration,
    pub delivery: Delivery,
    /// Docplanner rate limits per API client (in memory, per node).
    pub docplanner_limits: DocplannerLimits,
}

/// Resolved delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub timeout_seconds: u64,
    pub max_attempts: i64,
    pub backoff_seconds: i64,
    pub backoff_cap_seconds: i64,
    pub lease_seconds: i64,
    pub heartbeat_seconds: i64,
    /// `--retention-days` (at least 1).
    pub retention_days: i64,
    /// Rows of each table one retention run deletes at most (no flag).
    pub retention_batch: i64,
    pub sms_gateway_url: Option<String>,
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// The clinic's own patient message templates.
    pub message_templates: Option<PathBuf>,
    /// Whether targets may be internal addresses; `None` follows the test
    /// clock (on with it, off without).
    pub allow_private: Option<bool>,
    /// Hosts exempt from the internal-address check.
    pub allow_hosts: Vec<String>,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            timeout_seconds: 10,
            max_attempts: 8,
            backoff_seconds: 30,
            backoff_cap_seconds: 3600,
            lease_seconds: 120,
            heartbeat_seconds: 3600,
            retention_days: polyclinic_delivery::housekeeping::RETENTION_DAYS,
            retention_batch: polyclinic_delivery::housekeeping::RETENTION_BATCH,
            sms_gateway_url: None,
            smtp_url: None,
            mail_from: "Polyclinic <polyclinic@localhost>".into(),
            message_templates: None,
            allow_private: None,
            allow_hosts: Vec::new(),
        }
    }
}

impl Delivery {
    /// Whether delivery targets may be internal addresses, for a server with
    /// or without the test clock.
    pub fn allows_private(&self, test_clock: bool) -> bool {
        self.allow_private.unwrap_or(test_clock)
    }
}

impl Config {
    /// Defaults for a database URL: listen on an ephemeral local port, test
    /// clock off. Handy for tests and benchmarks.
    pub fn for_database(database: impl Into<String>) -> Self {
        Config {
            listen: "127.0.0.1:0".into(),
            database: database.into(),
            admin_token: None,
            test_clock: false,
            demo: false,
            log_format: LogFormat::Human,
            sqlite_synchronous: Synchronous::Full,
            sqlite_heap_limit: polyclinic_store::sqlite_memory::DEFAULT_HEAP_LIMIT,
            secret_key: None,
            secret_key_file: None,
            public_url: None,
            cache_ttl: polyclinic_http::cache::DEFAULT_TTL,
            delivery: Delivery::default(),
            docplanner_limits: DocplannerLimits::default(),
        }
    }

    /// The key file in force: the configured one, else beside the SQLite
    /// file, else `polyclinic.key` in the working directory.
    pub fn key_file(&self) -> PathBuf {
        if let Some(f) = &self.secret_key_file {
            return f.clone();
        }
        let db = &self.database;
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return PathBuf::from("polyclinic.key");
        }
        let path = db.strip_prefix("sqlite://").or_else(|| db.strip_prefix("sqlite:")).unwrap_or(db);
        let path = path.split('?').next().unwrap_or(path);
        PathBuf::from(format!("{path}.key"))
    }

    /// Resolves flags and environment (already merged by clap) over the file.
    pub fn resolve(cli: &Cli, serve: Option<&ServeArgs>) -> anyhow::Result<Config> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let default_serve = ServeArgs::default();
        let serve = serve.unwrap_or(&default_serve);
        let sync = cli.sqlite_synchronous.or(file.sqlite_synchronous).unwrap_or(SyncArg::Full);
        Ok(Config {
            listen: serve.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.into()),
            database: cli.database.clone().or(file.database).unwrap_or_else(|| DEFAULT_DATABASE.into()),
            admin_token: serve.admin_token.clone().or(file.admin_token),
            test_clock: serve.test_clock || file.test_clock.unwrap_or(false),
            demo: serve.demo || file.demo.unwrap_or(false),
            log_format: cli.log_format.or(file.log_format).unwrap_or_default(),
            sqlite_synchronous: match sync {
                SyncArg::Full => Synchronous::Full,
                SyncArg::Normal => Synchronous::Normal,
            },
            sqlite_heap_limit: cli
                .sqlite_heap_mib
                .or(file.sqlite_heap_mib)
                .map_or(polyclinic_store::sqlite_memory::DEFAULT_HEAP_LIMIT, |mib| mib.saturating_mul(1024 * 1024)),
            secret_key: cli.secret_key.clone().or(file.secret_key),
            secret_key_file: cli.secret_key_file.clone().or(file.secret_key_file),
            public_url: serve.public_url.clone().or(file.public_url),
            cache_ttl: serve
                .cache_ttl_ms
                .or(file.cache_ttl_ms)
                .map_or(polyclinic_http::cache::DEFAULT_TTL, std::time::Duration::from_millis),
            docplanner_limits: {
                let a = &serve.docplanner;
                if a.docplanner_no_rate_limits || file.docplanner_no_rate_limits.unwrap_or(false) {
                    DocplannerLimits::OFF
                } else {
                    let d = DocplannerLimits::default();
                    DocplannerLimits {
                        get_per_hour: a
                            .docplanner_get_limit_per_hour
                            .or(file.docplanner_get_limit_per_hour)
                            .unwrap_or(d.get_per_hour),
                        writes_per_minute: a
                            .docplanner_write_limit_per_minute
                            .or(file.docplanner_write_limit_per_minute)
                            .unwrap_or(d.writes_per_minute),
                    }
                }
            },
            delivery: {
                let d = Delivery::default();
                let f = file.delivery.unwrap_or_default();
                let a = &serve.delivery;
                Delivery {
                    timeout_seconds: a
                        .delivery_timeout_seconds
                        .or(f.delivery_timeout_seconds)
                        .unwrap_or(d.timeout_seconds)
                        .max(1),
                    max_attempts: a.delivery_max_attempts.or(f.delivery_max_attempts).unwrap_or(d.max_attempts).max(1),
                    backoff_seconds: a
                        .delivery_backoff_seconds
                        .or(f.delivery_backoff_seconds)
                        .unwrap_or(d.backoff_seconds)
                        .max(1),
                    backoff_cap_seconds: a
                        .delivery_backoff_cap_seconds
                        .or(f.delivery_backoff_cap_seconds)
                        .unwrap_or(d.backoff_cap_seconds)
                        .max(1),
                    lease_seconds: {
                        let timeout = a
                            .delivery_timeout_seconds
                            .or(f.delivery_timeout_seconds)
                            .unwrap_or(d.timeout_seconds)
                            .max(1);
                        let lease = a.delivery_lease_seconds.or(f.delivery_lease_seconds).unwrap_or(d.lease_seconds);
                        lease.max(i64::try_from(timeout).unwrap_or(i64::MAX).saturating_add(5))
                    },
                    heartbeat_seconds: a
                        .heartbeat_seconds
                        .or(f.heartbeat_seconds)
                        .unwrap_or(d.heartbeat_seconds)
                        .max(0),
                    retention_days: a.retention_days.or(f.retention_days).unwrap_or(d.retention_days).max(1),
                    retention_batch: d.retention_batch,
                    sms_gateway_url: a.sms_gateway_url.clone().or(f.sms_gateway_url),
                    smtp_url: a.smtp_url.clone().or(f.smtp_url),
                    mail_from: a.mail_from.clone().or(f.mail_from).unwrap_or(d.mail_from),
                    message_templates: a.message_templates.clone().or(f.message_templates),
                    allow_private: cli.delivery_allow_private.or(file.delivery_allow_private),
                    allow_hosts: if cli.delivery_allow_hosts.is_empty() {
                        file.delivery_allow_hosts.unwrap_or_default()
                    } else {
                        cli.delivery_allow_hosts.clone()
                    }
                    .into_iter()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect(),
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (Cli, Config) {
        let cli = Cli::try_parse_from(args).unwrap();
        let serve = match &cli.command {
            Command::Serve(s) => Some(s.as_ref()),
            _ => None,
        };
        let config = Config::resolve(&cli, serve).unwrap();
        (cli, config)
    }

    #[test]
    fn defaults_are_the_embedded_sqlite_on_localhost() {
        let (_, c) = parse(&["polyclinic", "serve"]);
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.database, "sqlite://polyclinic.db");
        assert!(!c.test_clock && !c.demo && c.admin_token.is_none());
        assert_eq!(c.sqlite_synchronous, Synchronous::Full);
        assert_eq!(c.sqlite_heap_limit, 24 * 1024 * 1024);
    }

    #[test]
    fn the_sqlite_heap_is_given_in_mib_and_zero_lifts_the_limit() {
        assert_eq!(parse(&["polyclinic", "--sqlite-heap-mib", "8", "serve"]).1.sqlite_heap_limit, 8 * 1024 * 1024);
        assert_eq!(parse(&["polyclinic", "serve", "--sqlite-heap-mib", "0"]).1.sqlite_heap_limit, 0);
    }

    #[test]
    fn flags_win_over_the_file() {
        let path = std::env::temp_dir().join(format!("polyclinic-config-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\ndatabase = \"sqlite://file.db\"\ntest_clock = true\nlog_format = \"json\"\nsqlite_synchronous = \"normal\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let (_, from_file) = parse(&["polyclinic", "--config", p, "serve"]);
        assert_eq!(from_file.listen, "0.0.0.0:9000");
        assert_eq!(from_file.database, "sqlite://file.db");
        assert!(from_file.test_clock);
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(from_file.sqlite_synchronous, Synchronous::Normal);
        let (_, flags) =
            parse(&["polyclinic", "--config", p, "serve", "--listen", "127.0.0.1:1", "--database", "sqlite://flag.db"]);
        assert_eq!(flags.listen, "127.0.0.1:1");
        assert_eq!(flags.database, "sqlite://flag.db");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn docplanner_rate_limits_come_from_flags_file_or_defaults() {
        let (_, c) = parse(&["polyclinic", "serve"]);
        assert_eq!(c.docplanner_limits, DocplannerLimits { get_per_hour: 8000, writes_per_minute: 40 });
        let path = std::env::temp_dir().join(format!("polyclinic-config-dp-{}.toml", std::process::id()));
        std::fs::write(&path, "docplanner_get_limit_per_hour = 100\ndocplanner_write_limit_per_minute = 5\n").unwrap();
        let p = path.to_str().unwrap();
        let (_, from_file) = parse(&["polyclinic", "--config", p, "serve"]);
        assert_eq!(from_file.docplanner_limits, DocplannerLimits { get_per_hour: 100, writes_per_minute: 5 });
        let (_, flags) = parse(&["polyclinic", "--config", p, "serve", "--docplanner-write-limit-per-minute", "0"]);
        assert_eq!(flags.docplanner_limits, DocplannerLimits { get_per_hour: 100, writes_per_minute: 0 });
        let (_, off) = parse(&["polyclinic", "--config", p, "serve", "--docplanner-no-rate-limits"]);
        assert_eq!(off.docplanner_limits, DocplannerLimits::OFF);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn retention_days_default_to_thirty_and_are_at_least_one() {
        assert_eq!(parse(&["polyclinic", "serve"]).1.delivery.retention_days, 30);
        assert_eq!(parse(&["polyclinic", "serve", "--retention-days", "7"]).1.delivery.retention_days, 7);
        assert_eq!(parse(&["polyclinic", "serve", "--retention-days", "0"]).1.delivery.retention_days, 1);
    }

    #[test]
    fn delivery_allow_private_follows_the_test_clock_unless_set() {
        let (_, plain) = parse(&["polyclinic", "serve"]);
        assert!(!plain.delivery.allows_private(plain.test_clock), "off by default");
        let (_, sandbox) = parse(&["polyclinic", "serve", "--test-clock"]);
        assert!(sandbox.delivery.allows_private(sandbox.test_clock), "on under --test-clock");
        let (_, off) = parse(&["polyclinic", "serve", "--test-clock", "--delivery-allow-private=false"]);
        assert!(!off.delivery.allows_private(off.test_clock), "turned off explicitly");
        let (_, on) = parse(&["polyclinic", "serve", "--delivery-allow-private"]);
        assert!(on.delivery.allows_private(on.test_clock));
        let (_, hosts) =
            parse(&["polyclinic", "seed", "x.json", "--delivery-allow-hosts", "receiver.internal, 10.0.0.5"]);
        assert_eq!(hosts.delivery.allow_hosts, ["receiver.internal", "10.0.0.5"]);
        let path = std::env::temp_dir().join(format!("polyclinic-config-ssrf-{}.toml", std::process::id()));
        std::fs::write(&path, "delivery_allow_private = true\ndelivery_allow_hosts = [\"hooks.lan\"]\n").unwrap();
        let (_, file) = parse(&["polyclinic", "--config", path.to_str().unwrap(), "serve"]);
        assert!(file.delivery.allows_private(false));
        assert_eq!(file.delivery.allow_hosts, ["hooks.lan"]);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let path = std::env::temp_dir().join(format!("polyclinic-config-bad-{}.toml", std::process::id()));
        std::fs::write(&path, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let cli = Cli::try_parse_from(["polyclinic", "--config", path.to_str().unwrap(), "migrate"]).unwrap();
        let err = Config::resolve(&cli, None).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        std::fs::remove_file(path).unwrap();
    }
}
