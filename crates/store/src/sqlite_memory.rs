//! The memory SQLite holds in this process: what `/metrics` reports, and the
//! budget its page caches share.
//!
//! Every SQLite connection of the process (the writer, the pool's readers,
//! the point readers) allocates its page cache from the C library's heap,
//! each up to its own `cache_size`. Without a common ceiling those caches
//! fill one page at a time as the database grows and the load touches new
//! pages, which reads as a slow climb of resident memory for as long as the
//! caches are not full (docs/storage.md). The soft heap limit caps the sum:
//! near it, a cache that needs a page recycles its least recently used one
//! instead of allocating another.

use rusqlite::ffi;

/// The SQLite heap's ceiling, in bytes, unless configured otherwise
/// ([`crate::StoreOptions::sqlite_heap_limit`]).
pub const DEFAULT_HEAP_LIMIT: u64 = 24 * 1024 * 1024;

/// SQLite's heap in this process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    /// Allocated now.
    pub used: i64,
    /// The most ever allocated at once.
    pub highwater: i64,
    /// The soft limit in force (0: none).
    pub soft_limit: i64,
}

/// SQLite's heap now (all connections of the process count).
pub fn heap() -> Heap {
    // SAFETY: these functions take no pointers and are safe to call from any
    // thread at any time (SQLite is built thread-safe); a negative argument
    // to the soft heap limit only reads it.
    unsafe {
        Heap {
            used: ffi::sqlite3_memory_used(),
            highwater: ffi::sqlite3_memory_highwater(0),
            soft_limit: ffi::sqlite3_soft_heap_limit64(-1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;

    #[test]
    fn the_heap_counts_the_page_caches_of_the_process() {
        // An in-memory database lives in its page cache: 20,000 rows of
        // 200 bytes.
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT i, printf('%.200c', 'x') FROM n;",
        )
        .unwrap();
        let sum: i64 = conn.query_row("SELECT sum(length(v)) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(sum, 20000 * 200);
        // The connection's cache holds the table's 4 MB (other tests of
        // this process only add to the sum).
        let now = heap();
        assert!(now.used >= 4_000_000, "{now:?}");
        assert!(now.highwater >= now.used, "{now:?}");
    }
}
