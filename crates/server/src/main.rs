//! `polyclinic`: parses the command line and hands over to the library.

use anyhow::Context;
use clap::Parser;
use polyclinic::config::{Cli, Command};
use polyclinic::{Application, Config, LogFormat, demo, shutdown_signal};
use polyclinic_store::{Store, StoreOptions};
use tracing_subscriber::EnvFilter;

/// mimalloc (its version 2, see the workspace manifest), not glibc's malloc:
/// allocation was the largest user-space cost under load, and glibc's
/// per-thread arenas let resident memory wander (docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    polyclinic::limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let serve_args = match &cli.command {
        Command::Serve(a) => Some(a.as_ref()),
        _ => None,
    };
    let config = Config::resolve(&cli, serve_args)?;
    init_logging(config.log_format);
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Migrate => {
            let mut opts = StoreOptions::new(&config.database);
            opts.secret_key = polyclinic::secret_key(&config)?;
            let store = Store::open(opts).await.context("opening the database")?;
            store.close().await;
            println!("migrations applied to {}", redact_url(&config.database));
            Ok(())
        }
        Command::Seed { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let doc = serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
            let app = Application::build(&Config { listen: "127.0.0.1:0".into(), ..config }).await?;
            let result =
                polyclinic_admin::apply_seed(app.state(), doc).await.map_err(|e| anyhow::anyhow!(e.message))?;
            app.state().store.close().await;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(())
        }
        Command::Import(args) => import(&config, &args).await,
    }
}

/// `polyclinic import FILE`: the summary on stdout; a refused line fails
/// the command with its number (see `polyclinic::import`).
async fn import(config: &Config, args: &polyclinic::config::ImportArgs) -> anyhow::Result<()> {
    let mut opts = StoreOptions::new(&config.database);
    opts.secret_key = polyclinic::secret_key(config)?;
    let store = Store::open(opts).await.context("opening the database")?;
    let progress = match (args.progress, args.quiet) {
        (true, _) => polyclinic::import::Progress::Always,
        (_, true) => polyclinic::import::Progress::Never,
        _ => polyclinic::import::Progress::Auto,
    };
    let options = polyclinic::import::Options { batch: args.batch_size, progress };
    let outcome = polyclinic::import::import_file(&store, &args.file, options).await;
    store.close().await;
    let summary = outcome?.with_context(|| format!("importing {}", args.file.display()))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(&config).await?;
    let base = format!(
        "http://{}",
        config.listen.rsplit_once(':').map(|(h, _)| format!("{h}:{}", app.port())).unwrap_or_default()
    );
    tracing::info!(listen = %base, database = %redact_url(&config.database), test_clock = config.test_clock, "polyclinic started");
    if app.admin_token_generated() {
        // Printed once to the terminal, not logged.
        println!(
            "admin token (generated; set --admin-token or POLYCLINIC_ADMIN_TOKEN to choose one): {}",
            app.admin_token()
        );
    }
    if config.demo {
        println!("demo data loaded; try:");
        for (dialect, line) in demo::curl_lines(&base) {
            println!("  {dialect:<10} {line}");
        }
        println!("  {:<10} curl -s -H 'Authorization: Bearer {}' '{base}/admin/tenants'", "admin", app.admin_token());
    }
    app.run_until(shutdown_signal()).await?;
    tracing::info!("polyclinic stopped");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("POLYCLINIC_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// A database URL without its password, for logs.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
