//! Point reads on SQLite without a hand-off to another thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every
//! statement to it over a channel, then pings the connection when it goes
//! back to the pool: two cross-thread round trips, whose futex waits and
//! wakes were the largest cost of a read under load (docs/benchmarks.md).
//! A lookup by primary key takes microseconds in SQLite itself, so the hot
//! point reads run it right on the calling thread, on a read-only
//! connection of their own ([`PointReaders`]), synchronously.
//!
//! This is safe for short, indexed lookups only: the connection is in WAL
//! mode, so a reader never waits for the writer (it reads the last
//! committed state as of its statement's start), and the pages it needs
//! are a few, mostly in its cache. Anything that scans or joins goes through
//! [`crate::Store::read`], but for the appointment search's pages of bounded
//! work ([`crate::appointments::read_page`]). On PostgreSQL there are none:
//! callers fall back to the pool.

use crate::catalog::Table;
use crate::{StoreError, StoreResult};
use polyclinic_core::TenantId;
pub use rusqlite::Connection;
use rusqlite::{OpenFlags, OptionalExtension};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Mutex;

/// Idle connections kept for reuse (one per thread that reads at once is
/// enough; more are opened on demand and closed after use).
const MAX_IDLE: usize = 16;

/// Read-only SQLite connections for point reads, opened on demand.
pub struct PointReaders {
    path: PathBuf,
    busy_ms: u64,
    mmap_bytes: u64,
    cache_kib: u64,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for PointReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointReaders").field("path", &self.path).finish_non_exhaustive()
    }
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    StoreError::Aborted(format!("SQLite point read: {e}"))
}

impl PointReaders {
    /// Readers of the database file at `path`, with the pragmas of the
    /// store's other readers.
    pub(crate) fn new(path: PathBuf, busy_ms: u64, mmap_bytes: u64, cache_kib: u64) -> Self {
        PointReaders { path, busy_ms, mmap_bytes, cache_kib, idle: Mutex::new(Vec::new()) }
    }

    fn connect(&self) -> StoreResult<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(sqlite_error)?;
        conn.busy_timeout(std::time::Duration::from_millis(self.busy_ms)).map_err(sqlite_error)?;
        conn.execute_batch(&format!("PRAGMA mmap_size={}; PRAGMA cache_size=-{};", self.mmap_bytes, self.cache_kib))
            .map_err(sqlite_error)?;
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one), on this thread.
    pub fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        self.run(|c| f(c).map_err(sqlite_error))
    }

    /// Like [`PointReaders::with`], for a closure that reads several
    /// documents with [`doc`] and answers the store's errors.
    pub fn run<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => self.connect()?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        out
    }
}

/// The tables whose rows are one JSON document (`tenant_id`, `id`, `doc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Docs {
    Appointments,
    Patients,
    Catalog(Table),
}

impl Docs {
    fn select(self) -> String {
        let table = match self {
            Docs::Appointments => "appointments",
            Docs::Patients => "patients",
            Docs::Catalog(t) => t.name(),
        };
        format!("SELECT doc FROM {table} WHERE tenant_id = ?1 AND id = ?2")
    }
}

/// The document of row `id` of `tenant` in `docs`, read on `c` (a
/// connection lent by [`PointReaders::run`]); `None` when there is none.
pub fn doc<T: DeserializeOwned>(c: &Connection, docs: Docs, tenant: TenantId, id: i64) -> StoreResult<Option<T>> {
    let doc: Option<String> = c
        .prepare_cached(&docs.select())
        .and_then(|mut s| s.query_row((tenant.get(), id), |row| row.get(0)).optional())
        .map_err(sqlite_error)?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_reads_see_each_commit_and_reuse_their_connection() {
        let path = std::env::temp_dir().join(format!("polyclinic-point-{}.db", uuid::Uuid::new_v4()));
        let writer = Connection::open(&path).unwrap();
        writer.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);").unwrap();
        let readers = PointReaders::new(path.clone(), 1000, 1 << 20, 1024);
        let read = |id: i64| -> Option<String> {
            readers.with(|c| c.query_row("SELECT v FROM t WHERE id = ?1", [id], |r| r.get(0)).optional()).unwrap()
        };
        assert_eq!(read(1), None);
        writer.execute("INSERT INTO t VALUES (1, 'a')", []).unwrap();
        assert_eq!(read(1).as_deref(), Some("a"), "a pooled connection sees the later commit");
        writer.execute("UPDATE t SET v = 'b' WHERE id = 1", []).unwrap();
        assert_eq!(read(1).as_deref(), Some("b"));
        assert_eq!(readers.idle.lock().unwrap().len(), 1, "one connection, reused");
        // A read-only connection cannot write.
        assert!(readers.with(|c| c.execute("DELETE FROM t", [])).is_err());
        drop(readers);
        drop(writer);
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
