//! Connections, the SQLite group-commit writer and transaction helpers.

use crate::seal::SecretKey;
use crate::{StoreError, StoreResult, migrate};
use futures_util::future::BoxFuture;
use polyclinic_core::CoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The connection a command runs on (inside its transaction or savepoint).
pub type Conn = AnyConnection;

/// The database engine behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// SQLite `synchronous` setting: FULL makes every commit durable on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` (or a plain file path) or `postgres://...`.
    pub url: String,
    pub synchronous: Synchronous,
    /// Connections in the PostgreSQL pool, and SQLite read connections.
    pub max_connections: u32,
    /// Most commands the SQLite writer groups into one transaction.
    pub max_batch: usize,
    /// Apply migrations on open.
    pub migrate: bool,
    /// Key that seals secrets stored for the protocols (see [`crate::seal`]).
    /// Must be the same for every node and every start on one database.
    pub secret_key: SecretKey,
}

impl StoreOptions {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            synchronous: Synchronous::Full,
            max_connections: 16,
            max_batch: 128,
            migrate: true,
            secret_key: SecretKey::generate(),
        }
    }
}

/// The store: clone freely, all clones share the pools and the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Reads (SQLite: read-only connections; PostgreSQL: the only pool).
    pool: AnyPool,
    /// SQLite only: the writer task's queue.
    writer: Option<mpsc::Sender<Job>>,
    secret_key: SecretKey,
}

/// A unit of work for the SQLite writer: runs on the writer's connection
/// inside a savepoint and says whether it succeeded, with a reply to send once
/// the enclosing transaction has committed (or failed to).
type Job = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, JobDone> + Send>;

struct JobDone {
    ok: bool,
    reply: Box<dyn FnOnce(Result<(), String>) + Send>,
}

impl Store {
    /// Opens (and by default migrates) the database at `opts.url`. A plain
    /// path or `sqlite://path` opens or creates a SQLite file.
    pub async fn open(opts: StoreOptions) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let (engine, url) = normalise_url(&opts.url)?;
        let store = match engine {
            Engine::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&url)
                    .await?;
                Store { inner: Arc::new(Inner { engine, pool, writer: None, secret_key: opts.secret_key.clone() }) }
            }
            Engine::Sqlite => {
                let sync = match opts.synchronous {
                    Synchronous::Full => "FULL",
                    Synchronous::Normal => "NORMAL",
                };
                let options = AnyConnectOptions::from_str(&url)?;
                let mut writer = AnyConnection::connect_with(&options).await?;
                for pragma in [
                    "PRAGMA journal_mode=WAL".to_string(),
                    format!("PRAGMA synchronous={sync}"),
                    "PRAGMA busy_timeout=10000".to_string(),
                    "PRAGMA foreign_keys=ON".to_string(),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(pragma)).execute(&mut writer).await?;
                }
                if opts.migrate {
                    migrate::run(&mut writer, Engine::Sqlite).await?;
                }
                let read_url = url.replace("mode=rwc", "mode=ro");
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA busy_timeout=10000").execute(&mut *conn).await?;
                            Ok(())
                        })
                    })
                    .connect(&read_url)
                    .await?;
                let (tx, rx) = mpsc::channel::<Job>(4096);
                tokio::spawn(writer_loop(writer, rx, opts.max_batch.max(1)));
                return Ok(Store {
                    inner: Arc::new(Inner { engine, pool, writer: Some(tx), secret_key: opts.secret_key }),
                });
            }
        };
        if opts.migrate {
            let mut conn = store.inner.pool.acquire().await?;
            migrate::run(&mut conn, Engine::Postgres).await?;
        }
        Ok(store)
    }

    /// The key that seals protocol secrets.
    pub fn secret_key(&self) -> &SecretKey {
        &self.inner.secret_key
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// Runs `f` as one command: one transaction (SQLite: one savepoint of a
    /// group-committed transaction). Answers only after the commit is durable.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        match &self.inner.writer {
            Some(queue) => {
                let (tx, rx) = oneshot::channel::<StoreResult<T>>();
                let job: Job = Box::new(move |conn| {
                    Box::pin(async move {
                        match f(conn).await {
                            Ok(value) => JobDone {
                                ok: true,
                                reply: Box::new(move |committed| {
                                    let _ = tx.send(committed.map(|()| value).map_err(|e| {
                                        StoreError::Db(sqlx::Error::Protocol(format!("commit failed: {e}")))
                                    }));
                                }),
                            },
                            Err(e) => JobDone {
                                ok: false,
                                reply: Box::new(move |_| drop(tx.send(Err(map_store_constraint(e))))),
                            },
                        }
                    })
                });
                queue.send(job).await.map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?;
                rx.await.map_err(|_| StoreError::Db(sqlx::Error::PoolClosed))?
            }
            None => {
                let mut tx = self.inner.pool.begin().await?;
                let out = f(&mut tx).await;
                match out {
                    Ok(v) => {
                        tx.commit().await.map_err(map_constraint)?;
                        Ok(v)
                    }
                    Err(e) => {
                        let _ = tx.rollback().await;
                        Err(map_store_constraint(e))
                    }
                }
            }
        }
    }

    /// Runs `f` on a read connection (no transaction: each statement sees
    /// committed data).
    pub async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let mut conn = self.inner.pool.acquire().await?;
        f(&mut conn).await
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.inner.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pools; the SQLite writer stops once every queued command ran.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }
}

fn normalise_url(url: &str) -> StoreResult<(Engine, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Engine::Postgres, url.to_owned()));
    }
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Core(CoreError::invalid(
            "database",
            "SQLite needs a file path (an in-memory database cannot be shared by the writer and readers)",
        )));
    }
    Ok((Engine::Sqlite, format!("sqlite://{path}?mode=rwc")))
}

/// The SQLite writer: takes the first queued job, then whatever else is
/// already queued (up to `max_batch`), runs each in its own savepoint inside
/// one `BEGIN IMMEDIATE` transaction, commits once, then answers every job.
async fn writer_loop(mut conn: AnyConnection, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(batch.len());
        let result: Result<(), sqlx::Error> = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            for job in batch.drain(..) {
                let mut sp = tx.begin().await?;
                let done = job(&mut sp).await;
                if done.ok {
                    sp.commit().await?;
                } else {
                    sp.rollback().await?;
                }
                replies.push(done.reply);
            }
            tx.commit().await
        }
        .await;
        let committed = result.map_err(|e| {
            tracing::error!(error = %e, "sqlite write transaction failed");
            e.to_string()
        });
        // Jobs that never ran because the transaction failed early were
        // dropped with the drain; their callers see the writer's failure.
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Turns database constraint violations into domain errors.
pub(crate) fn map_constraint(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.code().as_deref() == Some("23P01") {
            return StoreError::Core(CoreError::SlotTaken {
                resource: "practitioner or address",
                start: String::new(),
                end: String::new(),
            });
        }
        if db.is_unique_violation() {
            return StoreError::Core(CoreError::AlreadyExists { entity: "record", key: db.message().to_owned() });
        }
    }
    StoreError::Db(e)
}

fn map_store_constraint(e: StoreError) -> StoreError {
    match e {
        StoreError::Db(db) => map_constraint(db),
        other => other,
    }
}
