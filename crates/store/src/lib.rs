//! Polyclinic's storage: one SQL schema on two engines.
//!
//! - **SQLite** (the embedded default): WAL mode, one file, `synchronous=FULL`
//!   unless configured otherwise. Every write goes through one writer task that
//!   batches concurrent commands into one transaction (group commit), each
//!   command in its own savepoint so that one failure does not sink the others.
//!   Reads use a separate pool of read-only connections.
//! - **PostgreSQL**: each command is its own transaction from a pool; several
//!   Polyclinic nodes may share the database. Double booking is excluded by an
//!   exclusion constraint.
//!
//! Both engines are spoken to through sqlx's `Any` driver with `$N`
//! placeholders, so each statement is written once. Entity rows keep the
//! entity as a JSON document next to the columns that queries filter, sort or
//! constrain on (the layout FHIR servers use), which keeps the schema stable
//! while the dialects grow. Every table carries `tenant_id` first in its
//! primary key and indexes, and every query filters by it.
//!
//! A command is one transaction that also appends its domain events to the
//! outbox ([`outbox`]).

pub mod appointments;
pub mod assistance;
pub mod attachments;
pub mod availability_generation;
pub mod blobs;
pub mod breaks;
pub mod catalog;
pub mod conversations;
mod db;
pub mod deliveries;
mod delivery_work;
pub mod docplanner_queue;
pub mod episodes;
pub mod estimates;
pub mod import;
pub mod jobs;
pub mod messages;
pub mod migrate;
pub mod outbox;
pub mod patients;
pub mod point_read;
pub mod related;
pub mod report_jobs;
pub mod retention;
mod rows;
pub mod seal;
pub mod seed;
pub mod solo_webhooks;
pub mod sqlite_memory;
pub mod subscriptions;
pub mod tenants;
pub mod visit_notes;
pub mod work_periods;

pub use db::{Conn, Engine, Store, StoreOptions, Synchronous};

use polyclinic_core::CoreError;

/// What a store command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A domain rule refused the command: a client error.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The database failed: a server error, logged, never shown to clients.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// Stored data could not be decoded: a bug or hand-edited data.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The command did not commit for a reason outside it: it panicked, its
    /// transaction could not begin or commit, or the SQLite writer is not
    /// running. A server error, logged, never shown to clients.
    #[error("write aborted: {0}")]
    Aborted(String),
}

impl StoreError {
    /// Whether the database refused a client's text it cannot hold
    /// (PostgreSQL's `character_not_in_repertoire`: a NUL character; SQLite
    /// holds it). A client error: the statement failed, nothing was written.
    pub fn is_unstorable_text(&self) -> bool {
        matches!(self, StoreError::Db(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22021"))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// Result of a store command.
pub type StoreResult<T> = Result<T, StoreError>;

/// Seconds since the epoch, as stored.
pub(crate) fn secs(t: jiff::Timestamp) -> i64 {
    t.as_second()
}

/// The instant for stored seconds.
pub(crate) fn ts(s: i64) -> StoreResult<jiff::Timestamp> {
    jiff::Timestamp::from_second(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}
