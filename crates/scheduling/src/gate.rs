//! Gates: parties asked, at once, before a booking or a move lands, that may
//! decline it. Docplanner's real-time approvals (`slot-booking`,
//! `booking-moving`) are one; a dialect implements [`BookingGate`] and the
//! server registers it at start. Every booking and move of every dialect
//! passes every registered gate, so no dialect needs to know another's.

use futures_util::future::BoxFuture;
use polyclinic_core::appointment::{ActorKind, Appointment};
use polyclinic_core::facility::Address;
use polyclinic_core::patient::Patient;
use polyclinic_core::schedule::Interval;
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_store::StoreResult;
use std::sync::Arc;

/// What is about to happen at an address.
pub struct Proposal<'a> {
    /// The address the booking lands at.
    pub address: &'a Address,
    pub interval: Interval,
    pub patient: Option<&'a Patient>,
    pub comment: Option<&'a str>,
    /// Who is booking.
    pub by: ActorKind,
    /// The dialect the request came through (a gate does not ask its own
    /// clients about what they do themselves).
    pub through: Dialect,
    /// The booking being moved; `None` for a new booking.
    pub moving: Option<&'a Appointment>,
}

/// A party that approves or declines bookings before they land.
pub trait BookingGate: Send + Sync {
    /// Whether `proposal` may go ahead. An error is a failure to ask, not a
    /// refusal.
    fn approve<'a>(&'a self, tenant: &'a Tenant, proposal: &'a Proposal<'a>) -> BoxFuture<'a, StoreResult<bool>>;
}

/// The registered gates; cheap to clone.
#[derive(Clone, Default)]
pub struct Gates(Arc<[Arc<dyn BookingGate>]>);

impl Gates {
    /// These gates, asked in order.
    pub fn new(gates: Vec<Arc<dyn BookingGate>>) -> Self {
        Gates(gates.into())
    }

    /// Whether every gate approves `proposal` (true when none is registered);
    /// stops at the first that declines.
    pub async fn approve(&self, tenant: &Tenant, proposal: &Proposal<'_>) -> StoreResult<bool> {
        for gate in self.0.iter() {
            if !gate.approve(tenant, proposal).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
