//! Connections, the SQLite group-commit writer and transaction helpers.

use crate::availability_generation::{self, Touched, noting};
use crate::blobs::{BlobStore, DirBlobs, TableBlobs};
use crate::outbox::{IdBlocks, reserve_blocks, with_blocks};
use crate::point_read::PointReaders;
use crate::seal::SecretKey;
use crate::{StoreError, StoreResult, delivery_work, migrate};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use polyclinic_core::CoreError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection};
use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};

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
    /// SQLite: how long the writer waits for more commands before it begins
    /// a batch, when commands are arriving (its last batch or the one it
    /// holds has more than one) and the batch is under `writer_linger_batch`.
    /// A lone command on an idle server is never kept waiting; zero turns
    /// lingering off. See docs/storage.md.
    pub writer_linger: Duration,
    /// SQLite: the batch size at which the writer stops lingering.
    pub writer_linger_batch: usize,
    /// SQLite: run the writer on a thread of its own (a current-thread
    /// runtime) rather than as a task among the request handlers. On by
    /// default: measured faster (docs/storage.md).
    pub writer_thread: bool,
    /// Apply migrations on open.
    pub migrate: bool,
    /// SQLite: how long a statement waits for a lock another process holds
    /// before it fails (`PRAGMA busy_timeout`).
    pub busy_timeout: Duration,
    /// Key that seals secrets stored for the protocols (see [`crate::seal`]).
    /// Must be the same for every node and every start on one database.
    pub secret_key: SecretKey,
    /// SQLite: the blob store's directory (default: beside the database
    /// file, see [`crate::blobs::DirBlobs::beside`]). PostgreSQL keeps blobs
    /// in its `blobs` table.
    pub blob_dir: Option<std::path::PathBuf>,
    /// SQLite: the bytes all SQLite connections of the process may hold
    /// before their page caches recycle pages instead of growing (`PRAGMA
    /// soft_heap_limit`, process-wide; zero: no limit). See
    /// [`crate::sqlite_memory`].
    pub sqlite_heap_limit: u64,
}

impl StoreOptions {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        StoreOptions {
            url: url.into(),
            synchronous: Synchronous::Full,
            max_connections: 16,
            max_batch: 128,
            writer_linger: Duration::from_micros(500),
            writer_linger_batch: 32,
            writer_thread: true,
            migrate: true,
            busy_timeout: Duration::from_secs(10),
            secret_key: SecretKey::generate(),
            blob_dir: None,
            sqlite_heap_limit: crate::sqlite_memory::DEFAULT_HEAP_LIMIT,
        }
    }
}

/// SQLite readers: bytes of the database file each maps into memory
/// (`PRAGMA mmap_size`). None: the resident set counts a mapped page once
/// per connection that touched it, and searches over a large database
/// touch pages all over it; reads through `pread` were as fast (see
/// docs/storage.md).
const READER_MMAP_BYTES: u64 = 0;
/// SQLite readers: each connection's page cache, in KiB (`PRAGMA
/// cache_size`; SQLite's default is 2,000): the pages it read last, from
/// the file or the WAL (see docs/storage.md).
const READER_CACHE_KIB: u64 = 1024;

/// The store: clone freely, all clones share the pools and the writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    /// Reads (SQLite: read-only connections; PostgreSQL: the only pool).
    pool: AnyPool,
    /// SQLite only: the writer task.
    writer: Option<Writer>,
    secret_key: SecretKey,
    /// Where file bytes live (see [`crate::blobs`]).
    blobs: Arc<dyn BlobStore>,
    /// SQLite only: point reads on the calling thread (see
    /// [`crate::point_read`]).
    points: Option<PointReaders>,
    /// Told after every write that committed (the delivery engine's
    /// wake-up: new events and deliveries are never left waiting for a
    /// poll on this node).
    committed: Notify,
    /// Tenants with new delivery work committed on this node.
    new_work: delivery_work::Pending,
}

/// The handles of the SQLite writer task.
struct Writer {
    queue: mpsc::Sender<Msg>,
    /// Asks the writer to stop taking commands and end once the queued ones ran.
    stop: Arc<Notify>,
    /// Answered when the writer has ended (with the panic that ended it, if
    /// one did); awaited by [`Store::close`].
    task: Mutex<Option<oneshot::Receiver<Option<String>>>>,
}

/// What the SQLite writer's queue carries.
enum Msg {
    Job(Job),
    /// Makes the writer task panic outside any command, as a bug in the
    /// writer itself would (tests of what callers see then).
    #[cfg(test)]
    Crash,
}

/// A command's result, type-erased for the writer's queue: a `StoreResult<T>`.
type Outcome = Box<dyn Any + Send>;

/// Runs a command on the writer's connection inside its savepoint; answers
/// whether it succeeded, and its result.
type Run = Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, (bool, Outcome)> + Send>;

/// A unit of work for the SQLite writer.
struct Job {
    run: Run,
    /// Answers the caller: the command's result once its transaction has
    /// committed (or its own refusal), or why the write failed.
    reply: Box<dyn FnOnce(Result<Outcome, String>) + Send>,
}

/// What became of one command of a batch.
enum Ran {
    /// Succeeded in its savepoint: answered once the batch commits.
    Done(Outcome),
    /// Refused (its savepoint rolled back): answered with its own error.
    Refused(Outcome),
    /// Panicked (its savepoint rolled back).
    Panicked(String),
}

/// The error of a write the SQLite writer cannot take.
fn writer_gone() -> StoreError {
    StoreError::Aborted("the SQLite writer is not running".into())
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
                    // No ping before each acquire (a round trip per command):
                    // a broken connection fails its statement instead, and
                    // sqlx still tests it when it is released.
                    .test_before_acquire(false)
                    .connect(&url)
                    .await?;
                Store {
                    inner: Arc::new(Inner {
                        engine,
                        pool,
                        writer: None,
                        secret_key: opts.secret_key.clone(),
                        blobs: Arc::new(TableBlobs::new(opts.secret_key.clone())),
                        points: None,
                        committed: Notify::new(),
                        new_work: delivery_work::Pending::default(),
                    }),
                }
            }
            Engine::Sqlite => {
                let sync = match opts.synchronous {
                    Synchronous::Full => "FULL",
                    Synchronous::Normal => "NORMAL",
                };
                let busy_ms = opts.busy_timeout.as_millis().min(i32::MAX as u128);
                let blob_dir = opts.blob_dir.clone().unwrap_or_else(|| DirBlobs::beside(&sqlite_path(&url)));
                let options = AnyConnectOptions::from_str(&url)?;
                let mut writer = AnyConnection::connect_with(&options).await?;
                for pragma in [
                    "PRAGMA journal_mode=WAL".to_string(),
                    format!("PRAGMA synchronous={sync}"),
                    format!("PRAGMA busy_timeout={busy_ms}"),
                    "PRAGMA foreign_keys=ON".to_string(),
                    format!("PRAGMA soft_heap_limit={}", opts.sqlite_heap_limit),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(pragma)).execute(&mut writer).await?;
                }
                if opts.migrate {
                    migrate::run(&mut writer, Engine::Sqlite).await?;
                }
                let read_url = url.replace("mode=rwc", "mode=ro");
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    // No ping before each acquire: a read is then one hand-off
                    // to the connection's thread, not two (see docs/storage.md).
                    .test_before_acquire(false)
                    .after_connect(move |conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                format!("PRAGMA busy_timeout={busy_ms}"),
                                // No memory map (docs/storage.md).
                                format!("PRAGMA mmap_size={READER_MMAP_BYTES}"),
                                format!("PRAGMA cache_size=-{READER_CACHE_KIB}"),
                            ] {
                                sqlx::query(sqlx::AssertSqlSafe(pragma)).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&read_url)
                    .await?;
                let (queue, rx) = mpsc::channel::<Msg>(4096);
                let stop = Arc::new(Notify::new());
                let task = spawn_writer(writer, rx, stop.clone(), WriterConfig::of(&opts));
                let writer = Writer { queue, stop, task: Mutex::new(Some(task)) };
                return Ok(Store {
                    inner: Arc::new(Inner {
                        engine,
                        pool,
                        writer: Some(writer),
                        blobs: Arc::new(DirBlobs::new(blob_dir, opts.secret_key.clone())),
                        points: Some(PointReaders::new(
                            sqlite_path(&url),
                            u64::try_from(busy_ms).unwrap_or(u64::MAX),
                            READER_MMAP_BYTES,
                            READER_CACHE_KIB,
                        )),
                        secret_key: opts.secret_key,
                        committed: Notify::new(),
                        new_work: delivery_work::Pending::default(),
                    }),
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

    /// SQLite's point readers (see [`crate::point_read`]); `None` on
    /// PostgreSQL, where reads go through the pool.
    pub fn point_reads(&self) -> Option<&PointReaders> {
        self.inner.points.as_ref()
    }

    /// The blob store (file bytes).
    pub fn blobs(&self) -> Arc<dyn BlobStore> {
        self.inner.blobs.clone()
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// Runs `f` as one command: one transaction (SQLite: one savepoint of a
    /// group-committed transaction). Answers only after the commit is durable.
    ///
    /// A command that panics is rolled back and answers
    /// [`StoreError::Aborted`]; so does every command of a SQLite batch whose
    /// transaction could not begin or commit, and every command once the
    /// SQLite writer has stopped. No caller waits for an answer that cannot
    /// come.
    pub async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        match &self.inner.writer {
            Some(writer) => {
                let (tx, rx) = oneshot::channel::<StoreResult<T>>();
                let touched = Touched::default();
                let work = delivery_work::Noted::default();
                let (noted, noted_work) = (touched.clone(), work.clone());
                let job = Job {
                    run: Box::new(move |conn| {
                        Box::pin(async move {
                            let out = delivery_work::noting(noted_work, noting(noted, f(conn)))
                                .await
                                .map_err(map_store_constraint);
                            (out.is_ok(), Box::new(out) as Outcome)
                        })
                    }),
                    reply: Box::new(move |answer| {
                        let result = match answer {
                            Ok(out) => match out.downcast::<StoreResult<T>>() {
                                Ok(out) => *out,
                                Err(_) => Err(StoreError::Aborted("the writer answered another type".into())),
                            },
                            Err(why) => Err(StoreError::Aborted(why)),
                        };
                        let _ = tx.send(result);
                    }),
                };
                writer.queue.send(Msg::Job(job)).await.map_err(|_| writer_gone())?;
                // A job the writer dropped unanswered (it stopped or crashed
                // with the job still queued) drops `tx`: an error, not a hang.
                let out = rx.await.map_err(|_| writer_gone())?;
                if out.is_ok() {
                    availability_generation::committed(&touched);
                    self.inner.new_work.committed(&work);
                    self.inner.committed.notify_one();
                }
                out
            }
            None => {
                let mut tx = self.inner.pool.begin().await?;
                let touched = Touched::default();
                let work = delivery_work::Noted::default();
                let out = AssertUnwindSafe(delivery_work::noting(work.clone(), noting(touched.clone(), f(&mut tx))))
                    .catch_unwind()
                    .await;
                let out = match out {
                    Ok(Ok(v)) => match availability_generation::step_rows(&mut tx, &touched).await {
                        Ok(()) => Ok(Ok(v)),
                        Err(e) => Ok(Err(e)),
                    },
                    other => other,
                };
                match out {
                    Ok(Ok(v)) => {
                        tx.commit().await.map_err(map_constraint)?;
                        availability_generation::committed(&touched);
                        self.inner.new_work.committed(&work);
                        self.inner.committed.notify_one();
                        Ok(v)
                    }
                    Ok(Err(e)) => {
                        let _ = tx.rollback().await;
                        Err(map_store_constraint(e))
                    }
                    Err(panic) => {
                        let _ = tx.rollback().await;
                        let why = panic_message(panic.as_ref());
                        tracing::error!(panic = %why, "a write command panicked; rolled back");
                        Err(StoreError::Aborted(format!("the command panicked: {why}")))
                    }
                }
            }
        }
    }

    /// Notified after every write that committed on this node (a permit is
    /// kept when nobody waits, so a wait begun after a commit still ends).
    pub fn commits(&self) -> &Notify {
        &self.inner.committed
    }

    /// Takes the tenants that this node's committed commands gave new
    /// delivery work (events, queued deliveries, recorded attempts) since
    /// the last take, in id order (see `delivery_work`).
    pub fn take_tenants_with_new_work(&self) -> Vec<polyclinic_core::TenantId> {
        self.inner.new_work.take()
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

    /// Whether writes can be taken: the SQLite writer task is running
    /// (always true on PostgreSQL, which has no writer task). Once it has
    /// ended, every write answers [`StoreError::Aborted`] at once.
    pub fn writer_alive(&self) -> bool {
        self.inner.writer.as_ref().is_none_or(|w| !w.queue.is_closed())
    }

    /// Closes the store: the SQLite writer takes no more commands and ends
    /// once every queued one ran (later writes answer
    /// [`StoreError::Aborted`]), then the pools close.
    pub async fn close(&self) {
        if let Some(writer) = &self.inner.writer {
            writer.stop.notify_one();
            let task = writer.task.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(task) = task
                && let Ok(Some(why)) = task.await
            {
                tracing::error!(panic = %why, "the SQLite writer failed");
            }
        }
        self.inner.pool.close().await;
    }

    /// Test hook: makes the writer task panic outside any command.
    #[cfg(test)]
    async fn crash_writer(&self) {
        if let Some(writer) = &self.inner.writer {
            let _ = writer.queue.send(Msg::Crash).await;
        }
    }

    /// Test hook: how many messages wait in the writer's queue.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.inner.writer.as_ref().map_or(0, |w| w.queue.max_capacity() - w.queue.capacity())
    }
}

/// The file of a normalised SQLite URL (`sqlite://path?mode=rwc`).
fn sqlite_path(url: &str) -> std::path::PathBuf {
    let path = url.strip_prefix("sqlite://").unwrap_or(url);
    std::path::PathBuf::from(path.split('?').next().unwrap_or(path))
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

/// How the SQLite writer forms its batches (from [`StoreOptions`]).
#[derive(Debug, Clone, Copy)]
struct WriterConfig {
    max_batch: usize,
    linger: Duration,
    linger_batch: usize,
    /// Run on a thread of its own (a current-thread runtime) rather than as
    /// a task of the server's runtime.
    own_thread: bool,
}

impl WriterConfig {
    fn of(opts: &StoreOptions) -> WriterConfig {
        let max_batch = opts.max_batch.max(1);
        WriterConfig {
            max_batch,
            linger: opts.writer_linger,
            linger_batch: opts.writer_linger_batch.clamp(1, max_batch),
            own_thread: opts.writer_thread,
        }
    }
}

/// Starts the SQLite writer; answers the receiver told when it has ended.
fn spawn_writer(
    conn: AnyConnection,
    rx: mpsc::Receiver<Msg>,
    stop: Arc<Notify>,
    cfg: WriterConfig,
) -> oneshot::Receiver<Option<String>> {
    let (done_tx, done_rx) = oneshot::channel();
    let run = async move {
        let out = AssertUnwindSafe(writer_loop(conn, rx, stop, cfg)).catch_unwind().await;
        let _ = done_tx.send(out.err().map(|p| panic_message(p.as_ref())));
    };
    if cfg.own_thread {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match runtime {
            Ok(runtime) => {
                let spawned =
                    std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || runtime.block_on(run));
                if let Err(e) = spawned {
                    // The closure (and the queue's receiver) is dropped:
                    // every write answers that the writer is not running.
                    tracing::error!(error = %e, "could not start the SQLite writer thread");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not build the SQLite writer's runtime"),
        }
    } else {
        tokio::spawn(run);
    }
    done_rx
}

/// The SQLite writer: takes the first queued job, then whatever else is
/// already queued (up to `max_batch`), lingers briefly for more when
/// commands are arriving, runs each in its own savepoint inside one
/// `BEGIN IMMEDIATE` transaction, commits once, then answers every job.
///
/// Lingering: when the last batch or the one just taken holds more than one
/// command (so more are likely on their way) and the batch is under
/// `linger_batch`, the writer waits up to `linger` for more before it
/// begins, so that one commit (one fsync) serves more commands. A lone
/// command after an idle spell is never kept waiting.
///
/// It outlives the failures of a batch: a job that panics is rolled back to
/// its savepoint and answered with an error while the others commit; a batch
/// whose `BEGIN`, savepoint or `COMMIT` fails answers every job of it with an
/// error (sqlx rolls the open transaction back before the connection's next
/// use) and the writer goes on with the next batch. On `stop` it closes the
/// queue, runs what is still queued and ends. If it ends any other way (a bug
/// panicking here), the queue and every job in it are dropped, which every
/// waiting caller sees as an error.
async fn writer_loop(mut conn: AnyConnection, mut rx: mpsc::Receiver<Msg>, stop: Arc<Notify>, cfg: WriterConfig) {
    let mut batch: Vec<Job> = Vec::with_capacity(cfg.max_batch);
    let ids = Arc::new(Mutex::new(IdBlocks::default()));
    let mut last_batch = 0;
    loop {
        let first = tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                Some(msg) => msg,
                None => break,
            },
            () = stop.notified() => {
                // Senders now fail at once; what is queued still runs.
                rx.close();
                continue;
            }
        };
        take(first, &mut batch);
        while batch.len() < cfg.max_batch
            && let Ok(msg) = rx.try_recv()
        {
            take(msg, &mut batch);
        }
        if !cfg.linger.is_zero() && batch.len() < cfg.linger_batch && (batch.len() > 1 || last_batch > 1) {
            linger(&mut rx, &mut batch, &cfg).await;
        }
        last_batch = batch.len();
        let (runs, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|j| (j.run, j.reply)).unzip();
        let mut ran = Vec::with_capacity(runs.len());
        let result = run_batch(&mut conn, runs, &mut ran, &ids).await;
        {
            let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
            match &result {
                Ok(()) => ids.batch_committed(),
                Err(_) => ids.batch_failed(),
            }
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, commands = replies.len(), "sqlite write transaction failed");
        }
        let mut ran = ran.into_iter();
        for reply in replies {
            let answer = match (ran.next(), &result) {
                (Some(Ran::Done(out)), Ok(())) => Ok(out),
                (Some(Ran::Refused(out)), _) => Ok(out),
                (Some(Ran::Panicked(why)), _) => Err(format!("the command panicked: {why}")),
                (Some(Ran::Done(_)) | None, Err(e)) => Err(format!("the write transaction failed: {e}")),
                (None, Ok(())) => Err("the command did not run".into()),
            };
            reply(answer);
        }
    }
}

/// Adds a queued message to the batch.
fn take(msg: Msg, batch: &mut Vec<Job>) {
    match msg {
        Msg::Job(job) => batch.push(job),
        #[cfg(test)]
        Msg::Crash => panic!("writer crash injected by a test"),
    }
}

/// Waits up to `cfg.linger` for more commands, until the batch holds
/// `cfg.linger_batch`. On its own thread the writer sleeps in short steps
/// (precise to tens of microseconds, and nothing else runs there); as a
/// task it waits on the queue with tokio's timer (millisecond ticks).
async fn linger(rx: &mut mpsc::Receiver<Msg>, batch: &mut Vec<Job>, cfg: &WriterConfig) {
    let deadline = std::time::Instant::now() + cfg.linger;
    while batch.len() < cfg.linger_batch {
        match rx.try_recv() {
            Ok(msg) => take(msg, batch),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                if cfg.own_thread {
                    std::thread::sleep((deadline - now).min(Duration::from_micros(50)));
                } else {
                    match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                        Ok(Some(msg)) => take(msg, batch),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }
}

/// Runs one batch in one transaction, recording in `ran` what became of each
/// job that ran; an error means the transaction did not commit. Before each
/// command it reserves the id blocks a command found empty (in the batch's
/// transaction, outside every savepoint: see [`crate::outbox`]).
async fn run_batch(
    conn: &mut AnyConnection,
    runs: Vec<Run>,
    ran: &mut Vec<Ran>,
    ids: &Arc<Mutex<IdBlocks>>,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for run in runs {
        reserve_blocks(&mut tx, ids).await.map_err(|e| match e {
            StoreError::Db(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
        let mut sp = tx.begin().await?;
        match AssertUnwindSafe(with_blocks(ids.clone(), run(&mut sp))).catch_unwind().await {
            Ok((true, out)) => {
                sp.commit().await?;
                ran.push(Ran::Done(out));
            }
            Ok((false, out)) => {
                sp.rollback().await?;
                ran.push(Ran::Refused(out));
            }
            Err(panic) => {
                let why = panic_message(panic.as_ref());
                tracing::error!(panic = %why, "a write command panicked; rolled back to its savepoint");
                sp.rollback().await?;
                ran.push(Ran::Panicked(why));
            }
        }
    }
    tx.commit().await
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
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

#[cfg(test)]
mod tests {
    //! The SQLite writer under faults: a panicking command, a failed `BEGIN`,
    //! a failed `COMMIT`, the writer task ending. Timeouts only turn a hang
    //! into a failure.

    use super::*;
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    /// Long enough for any step here; reaching it means something hangs.
    const HANG: Duration = Duration::from_secs(60);

    async fn open(busy_timeout: Duration) -> (Store, String) {
        let dir = std::env::temp_dir().join("polyclinic-store-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display().to_string();
        let mut opts = StoreOptions::new(format!("sqlite://{path}"));
        opts.migrate = false;
        opts.busy_timeout = busy_timeout;
        let store = Store::open(opts).await.unwrap();
        store
            .write(|c| {
                Box::pin(async move {
                    sqlx::query("CREATE TABLE t (v TEXT NOT NULL)").execute(&mut *c).await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        (store, path)
    }

    /// A command inserting `v`.
    fn insert(store: &Store, v: &'static str) -> JoinHandle<StoreResult<()>> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(move |c| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO t (v) VALUES ($1)").bind(v).execute(&mut *c).await?;
                        Ok(())
                    })
                })
                .await
        })
    }

    /// What the table holds.
    async fn rows(store: &Store) -> Vec<String> {
        store
            .read(|c| {
                Box::pin(async move { Ok(sqlx::query_scalar("SELECT v FROM t ORDER BY v").fetch_all(&mut *c).await?) })
            })
            .await
            .unwrap()
    }

    /// Keeps the writer inside a command until the answered sender fires, so
    /// that the commands queued meanwhile form the next batch together.
    async fn hold_writer(store: &Store) -> (oneshot::Sender<()>, JoinHandle<StoreResult<()>>) {
        let (started_tx, started_rx) = oneshot::channel::<()>();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let s = store.clone();
        let held = tokio::spawn(async move {
            s.write(move |_| {
                Box::pin(async move {
                    let _ = started_tx.send(());
                    let _ = release_rx.await;
                    Ok(())
                })
            })
            .await
        });
        timeout(HANG, started_rx).await.unwrap().unwrap();
        (release_tx, held)
    }

    /// Waits until `n` messages wait in the writer's queue.
    async fn until_queued(store: &Store, n: usize) {
        timeout(HANG, async {
            while store.queued() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap();
    }

    async fn answer<T>(h: JoinHandle<StoreResult<T>>) -> StoreResult<T> {
        timeout(HANG, h).await.expect("the caller hangs").expect("the caller's task")
    }

    fn aborted<T: std::fmt::Debug>(r: StoreResult<T>, why: &str) {
        match r {
            Err(StoreError::Aborted(m)) => assert!(m.contains(why), "{m:?} does not say {why:?}"),
            other => panic!("expected Aborted({why}), got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_command_fails_alone_and_the_rest_of_its_batch_commits() {
        let (store, _) = open(Duration::from_secs(10)).await;
        let (release, held) = hold_writer(&store).await;
        let a = insert(&store, "a");
        let s = store.clone();
        let p = tokio::spawn(async move {
            s.write::<(), _>(|c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (v) VALUES ('p')").execute(&mut *c).await?;
                    panic!("a bug in a command");
                })
            })
            .await
        });
        let c = insert(&store, "c");
        until_queued(&store, 3).await;
        release.send(()).unwrap();
        answer(held).await.unwrap();
        answer(a).await.unwrap();
        aborted(answer(p).await, "a bug in a command");
        answer(c).await.unwrap();
        assert_eq!(rows(&store).await, ["a", "c"], "the panicking command's insert is rolled back");
        assert!(store.writer_alive());
        answer(insert(&store, "d")).await.unwrap();
        assert_eq!(rows(&store).await, ["a", "c", "d"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_begin_fails_every_command_of_its_batch_and_the_writer_goes_on() {
        let (store, path) = open(Duration::from_millis(100)).await;
        // Another connection holds the write lock: BEGIN IMMEDIATE fails
        // (SQLITE_BUSY) once the busy timeout has passed.
        let mut other = AnyConnection::connect(&format!("sqlite://{path}")).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
        // However they are batched, every one of them waits on a failed BEGIN.
        let waiting = [insert(&store, "a"), insert(&store, "b"), insert(&store, "c")];
        for w in waiting {
            aborted(answer(w).await, "database is locked");
        }
        assert!(store.writer_alive());
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        answer(insert(&store, "d")).await.unwrap();
        assert_eq!(rows(&store).await, ["d"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_commit_fails_every_command_of_its_batch_and_the_writer_goes_on() {
        let (store, _) = open(Duration::from_secs(10)).await;
        let (release, held) = hold_writer(&store).await;
        let a = insert(&store, "a");
        // A deferred foreign key is checked at COMMIT only: this command
        // succeeds in its savepoint and makes its batch's COMMIT fail.
        let s = store.clone();
        let breaks_commit = tokio::spawn(async move {
            s.write(|c| {
                Box::pin(async move {
                    sqlx::query("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)").execute(&mut *c).await?;
                    sqlx::query(
                        "CREATE TEMP TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
                    )
                    .execute(&mut *c)
                    .await?;
                    sqlx::query("INSERT INTO child (p) VALUES (1)").execute(&mut *c).await?;
                    Ok(())
                })
            })
            .await
        });
        until_queued(&store, 2).await;
        release.send(()).unwrap();
        answer(held).await.unwrap();
        aborted(answer(a).await, "FOREIGN KEY constraint failed");
        aborted(answer(breaks_commit).await, "FOREIGN KEY constraint failed");
        // The failed transaction was rolled back: the next batch begins afresh.
        assert!(store.writer_alive());
        answer(insert(&store, "b")).await.unwrap();
        assert_eq!(rows(&store).await, ["b"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn once_the_writer_has_ended_every_caller_gets_an_error_at_once() {
        let (store, _) = open(Duration::from_secs(10)).await;
        let (release, held) = hold_writer(&store).await;
        store.crash_writer().await;
        let queued_behind = insert(&store, "a");
        until_queued(&store, 2).await;
        release.send(()).unwrap();
        answer(held).await.unwrap();
        aborted(answer(queued_behind).await, "not running");
        assert!(!store.writer_alive());
        aborted(answer(insert(&store, "b")).await, "not running");
        assert!(rows(&store).await.is_empty());
        store.close().await;
    }

    /// PostgreSQL has no writer task; a panicking command still answers an
    /// error and leaves nothing behind. Skipped without a local PostgreSQL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_command_on_postgres_is_rolled_back_and_answers_an_error() {
        let server = std::env::var("POLYCLINIC_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
        sqlx::any::install_default_drivers();
        let Ok(mut admin) = AnyConnection::connect(&server).await else {
            eprintln!("note: no PostgreSQL at {server}; test skipped");
            return;
        };
        let name = format!("polyclinic_store_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let base = server.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        let mut opts = StoreOptions::new(format!("{base}/{name}"));
        opts.migrate = false;
        opts.max_connections = 2;
        let store = Store::open(opts).await.unwrap();
        assert!(store.writer_alive());
        store
            .write(|c| {
                Box::pin(async move {
                    sqlx::query("CREATE TABLE t (v TEXT NOT NULL)").execute(&mut *c).await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        let s = store.clone();
        let p = tokio::spawn(async move {
            s.write::<(), _>(|c| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (v) VALUES ('p')").execute(&mut *c).await?;
                    panic!("a bug in a command");
                })
            })
            .await
        });
        aborted(answer(p).await, "a bug in a command");
        answer(insert(&store, "a")).await.unwrap();
        assert_eq!(rows(&store).await, ["a"]);
        store.close().await;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).execute(&mut admin).await.unwrap();
    }

    /// A migrated store (the id sequences) with a table of drawn ids.
    async fn open_migrated(path: &str, linger: Duration) -> Store {
        open_migrated_on(path, linger, true).await
    }

    async fn open_migrated_on(path: &str, linger: Duration, own_thread: bool) -> Store {
        let mut opts = StoreOptions::new(format!("sqlite://{path}"));
        opts.writer_linger = linger;
        opts.writer_thread = own_thread;
        let store = Store::open(opts).await.unwrap();
        store
            .write(|c| {
                Box::pin(async move {
                    sqlx::query("CREATE TABLE IF NOT EXISTS drawn (id INTEGER NOT NULL)").execute(&mut *c).await?;
                    Ok(())
                })
            })
            .await
            .unwrap();
        store
    }

    fn fresh_path() -> String {
        let dir = std::env::temp_dir().join("polyclinic-store-tests");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(format!("{}.db", uuid::Uuid::new_v4().simple())).display().to_string()
    }

    /// A command drawing `n` entity ids and storing them; refused (after
    /// drawing) when `refuse`.
    fn draw(store: &Store, n: usize, refuse: bool) -> JoinHandle<StoreResult<Vec<i64>>> {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write(move |c| {
                    Box::pin(async move {
                        let mut ids = Vec::new();
                        for _ in 0..n {
                            let id = crate::outbox::next_id(c, crate::outbox::Seq::Entity).await?;
                            sqlx::query("INSERT INTO drawn (id) VALUES ($1)").bind(id).execute(&mut *c).await?;
                            ids.push(id);
                        }
                        if refuse {
                            return Err(StoreError::Core(CoreError::invalid("drawn", "refused on purpose")));
                        }
                        Ok(ids)
                    })
                })
                .await
        })
    }

    /// A command whose batch's COMMIT fails (a deferred foreign key).
    fn breaks_commit(store: &Store) -> JoinHandle<StoreResult<()>> {
        let s = store.clone();
        tokio::spawn(async move {
            s.write(|c| {
                Box::pin(async move {
                    sqlx::query("CREATE TEMP TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY)").execute(&mut *c).await?;
                    sqlx::query(
                        "CREATE TEMP TABLE IF NOT EXISTS child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
                    )
                    .execute(&mut *c)
                    .await?;
                    sqlx::query("INSERT INTO child (p) VALUES (1)").execute(&mut *c).await?;
                    Ok(())
                })
            })
            .await
        })
    }

    async fn committed_ids(store: &Store) -> Vec<i64> {
        store
            .read(|c| {
                Box::pin(async move {
                    Ok(sqlx::query_scalar("SELECT id FROM drawn ORDER BY rowid").fetch_all(&mut *c).await?)
                })
            })
            .await
            .unwrap()
    }

    fn strictly_increasing(ids: &[i64]) {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not unique and increasing: {ids:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ids_stay_unique_and_increasing_across_refused_commands_failed_batches_and_restarts() {
        let path = fresh_path();
        let store = open_migrated(&path, Duration::from_micros(500)).await;
        // The first id comes from the counter row; the writer then reserves
        // a block in the next batch.
        let first = answer(draw(&store, 1, false)).await.unwrap();
        // A batch that reserves a block and then fails to commit: its
        // reservation rolls back with it, so the block must be dropped. (The
        // held command's batch reserves the first block; the first command
        // below empties it, so the writer reserves another before `lost`.)
        let (release, held) = hold_writer(&store).await;
        let empties = draw(&store, crate::outbox::ID_BLOCK as usize + 1, false);
        let lost = draw(&store, 3, false);
        let breaker = breaks_commit(&store);
        until_queued(&store, 3).await;
        release.send(()).unwrap();
        answer(held).await.unwrap();
        aborted(answer(empties).await, "FOREIGN KEY constraint failed");
        aborted(answer(lost).await, "FOREIGN KEY constraint failed");
        aborted(answer(breaker).await, "FOREIGN KEY constraint failed");
        // A refused command in a batch that commits: its ids are not stored.
        let (release, held) = hold_writer(&store).await;
        let a = draw(&store, 2, false);
        let refused = draw(&store, 2, true);
        let b = draw(&store, 2, false);
        until_queued(&store, 3).await;
        release.send(()).unwrap();
        answer(held).await.unwrap();
        let a = answer(a).await.unwrap();
        assert!(answer(refused).await.is_err());
        let b = answer(b).await.unwrap();
        // More ids than a block holds, in one command.
        let many = answer(draw(&store, crate::outbox::ID_BLOCK as usize + 5, false)).await.unwrap();
        store.close().await;
        // A restart: the rest of the reserved block is a gap, never reused.
        let store = open_migrated(&path, Duration::from_micros(500)).await;
        let after = answer(draw(&store, 3, false)).await.unwrap();
        // `a` and `b` are queued by tasks of their own, in either order.
        let mut answered: Vec<i64> = [first, a, b, many, after].concat();
        answered.sort_unstable();
        let stored = committed_ids(&store).await;
        assert_eq!(stored, answered, "every answered id is stored, and only those");
        strictly_increasing(&stored);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lingering_writer_commits_a_batch_around_a_refused_command() {
        // On its own thread and as a task of the runtime.
        for own_thread in [true, false] {
            lingering_batch_around_a_refused_command(own_thread).await;
        }
    }

    async fn lingering_batch_around_a_refused_command(own_thread: bool) {
        let path = fresh_path();
        // A long linger: the batch is closed by its size or by the linger
        // running out after a burst.
        let store = open_migrated_on(&path, Duration::from_millis(20), own_thread).await;
        let calls: Vec<_> = (0..40).map(|i| draw(&store, 1, i % 7 == 3)).collect();
        let mut answered = Vec::new();
        for (i, call) in calls.into_iter().enumerate() {
            match answer(call).await {
                Ok(ids) => answered.extend(ids),
                Err(StoreError::Core(_)) => assert_eq!(i % 7, 3, "only the refused commands fail"),
                Err(e) => panic!("command {i}: {e}"),
            }
        }
        assert_eq!(answered.len(), 40 - 6);
        let mut stored = committed_ids(&store).await;
        stored.sort_unstable();
        answered.sort_unstable();
        assert_eq!(stored, answered, "the others committed");
        strictly_increasing(&stored);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_command_is_answered_however_long_the_linger() {
        let path = fresh_path();
        // An hour: a writer that waited for company would hang this test.
        let store = open_migrated(&path, Duration::from_secs(3600)).await;
        for _ in 0..3 {
            answer(draw(&store, 1, false)).await.unwrap();
        }
        assert_eq!(committed_ids(&store).await.len(), 3);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_runs_the_queued_commands_then_refuses_new_ones() {
        let (store, _) = open(Duration::from_secs(10)).await;
        let (release, held) = hold_writer(&store).await;
        let queued = insert(&store, "a");
        until_queued(&store, 1).await;
        let s = store.clone();
        let closing = tokio::spawn(async move { s.close().await });
        release.send(()).unwrap();
        answer(held).await.unwrap();
        answer(queued).await.unwrap();
        timeout(HANG, closing).await.unwrap().unwrap();
        assert!(!store.writer_alive());
        aborted(answer(insert(&store, "b")).await, "not running");
    }
}
