//! The scheduling layer: what every dialect calls to change appointments,
//! calendars and patients, below the dialects and above the store. Dialects
//! translate; this layer decides; the store persists; delivery sends.
//!
//! [`Scheduling`] holds the commands. Each is one transaction that writes
//! its outbox events (the store's functions do that), runs every rule that
//! holds for all dialects, and wakes the delivery engine once it committed,
//! here and nowhere else. A refusal is a [`SchedulingError`], which each
//! dialect maps to its own wire format in one table.
//!
//! Modules: [`booking`] (book, reschedule, move), [`visits`] (cancel,
//! confirm, presence, opinion requests), [`calendar`] (work periods,
//! breaks, calendar status), [`records`] (patients), [`conversations`]
//! (a clinic's conversations with its patients), [`sync`] (whole-appointment
//! replacement and status changes),
//! [`availability`] (free starts of an address, a practitioner or a
//! service), [`gate`] (real-time approvals), [`patients`] (patient
//! matching), [`video`] (whether a visit is digital, and its keys).

pub mod availability;
pub mod availability_cache;
pub mod booking;
pub mod calendar;
pub mod conversations;
pub mod episodes;
pub mod error;
pub mod gate;
pub mod patients;
pub mod records;
pub mod sync;
pub mod video;
pub mod visits;

pub use booking::{BookedPatient, Booking, Move, Place};
pub use error::{SchedulingError, SchedulingResult};
pub use gate::{BookingGate, Gates, Proposal};

use futures_util::future::BoxFuture;
use polyclinic_store::{Conn, Store, StoreResult};
use std::sync::Arc;

/// Told after every command that committed: the delivery engine's wake-up.
pub type AfterCommit = Arc<dyn Fn() + Send + Sync>;

/// The scheduling commands, over a store, the registered gates and the
/// delivery engine's wake-up; cheap to clone.
#[derive(Clone)]
pub struct Scheduling {
    store: Store,
    gates: Gates,
    after_commit: AfterCommit,
}

impl Scheduling {
    /// Commands over `store`, with no gates, that call `after_commit` once a
    /// command has committed.
    pub fn new(store: Store, after_commit: AfterCommit) -> Self {
        Scheduling { store, gates: Gates::default(), after_commit }
    }

    /// The same commands, asking `gates` before a booking or a move lands.
    pub fn with_gates(mut self, gates: Gates) -> Self {
        self.gates = gates;
        self
    }

    /// The store the commands write (dialects read through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs `f` as one write transaction and, once it committed, wakes the
    /// delivery engine. A refusal (`Ok(Err(_))`) found before anything was
    /// written commits nothing and wakes nobody.
    async fn commit<T, F>(&self, f: F) -> SchedulingResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, StoreResult<SchedulingResult<T>>> + Send + 'static,
    {
        let out = self.store.write(f).await??;
        (self.after_commit)();
        Ok(out)
    }
}
