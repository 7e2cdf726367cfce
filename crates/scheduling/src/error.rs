//! The scheduling layer's one error type: why a command did not happen.
//!
//! Every dialect maps these, in one table next to its error type, to its own
//! wire format (Embassy's OperationOutcome codes, Docplanner's status and
//! message, ...). Store failures that are no refusal (a lost database, a
//! corrupt row) stay [`SchedulingError::Store`] and answer the dialect's
//! generic server error.

use polyclinic_core::CoreError;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::time_rules::TimeRule;
use polyclinic_store::StoreError;

/// Why a scheduling command was refused.
#[derive(Debug, thiserror::Error)]
pub enum SchedulingError {
    /// The time breaks one of the tenant's time rules (`core::time_rules`).
    #[error("{0}")]
    Time(TimeRule),
    /// The start is no free slot of the address's calendar.
    #[error("the start is not a free slot of the calendar")]
    NotOffered,
    /// The start is a free slot, but not one for the booked service.
    #[error("the slot does not take the service")]
    ServiceNotOffered,
    /// Another booking holds the time of a practitioner or of the address.
    #[error("the {resource} is not available at that time")]
    Taken { resource: &'static str },
    /// A gate (a real-time approval) declined.
    #[error("the calendar's owner declined")]
    Declined,
    /// Too close to the start under the tenant's cut-off rules.
    #[error("{0}")]
    TooLate(String),
    /// The appointment's state does not allow the change: `from` is its
    /// state now (`cancelled`, `moved`, `fulfilled`, ...).
    #[error("the appointment is {from} and cannot be {to}")]
    NotAllowed { from: String, to: String },
    /// The change was already made (a booking already confirmed), or the
    /// caller's copy is stale (an update with an old version).
    #[error("{0}")]
    Conflict(String),
    /// The visit has already started (confirming needs a visit to come).
    #[error("the visit is in the past")]
    InThePast,
    /// The visit has not started yet (presence needs a visit that began).
    #[error("the visit is in the future")]
    InTheFuture,
    /// The patient is kept by the system of another dialect (one created
    /// through Naboto's API): it is edited there only, so that the two
    /// copies do not drift apart.
    #[error("the patient is managed through the {} API and cannot be edited here", owner.as_str())]
    ManagedElsewhere { owner: Dialect },
    /// The appointment (or the visit a request names) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Anything else from the store: an invalid value the core refused, a
    /// uniqueness clash, or an internal failure.
    #[error(transparent)]
    Store(StoreError),
}

pub type SchedulingResult<T> = Result<T, SchedulingError>;

impl From<StoreError> for SchedulingError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(CoreError::SlotTaken { resource, .. }) => SchedulingError::Taken { resource },
            StoreError::Core(CoreError::InvalidTransition { from, to }) => SchedulingError::NotAllowed { from, to },
            StoreError::Core(CoreError::PolicyViolation(m)) => SchedulingError::TooLate(m),
            StoreError::Core(CoreError::NotFound { entity, .. }) => SchedulingError::NotFound(entity),
            StoreError::Core(e @ CoreError::Conflict { .. }) => SchedulingError::Conflict(e.to_string()),
            other => SchedulingError::Store(other),
        }
    }
}

impl From<TimeRule> for SchedulingError {
    fn from(rule: TimeRule) -> Self {
        SchedulingError::Time(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_become_scheduling_refusals_and_failures_stay_failures() {
        let taken = CoreError::SlotTaken { resource: "address", start: "a".into(), end: "b".into() };
        assert!(matches!(
            SchedulingError::from(StoreError::Core(taken)),
            SchedulingError::Taken { resource: "address" }
        ));
        let moved = CoreError::InvalidTransition { from: "cancelled".into(), to: "rescheduled".into() };
        assert!(
            matches!(SchedulingError::from(StoreError::Core(moved)), SchedulingError::NotAllowed { from, .. } if from == "cancelled")
        );
        let late = CoreError::PolicyViolation("too late".into());
        assert!(
            matches!(SchedulingError::from(StoreError::Core(late)), SchedulingError::TooLate(m) if m == "too late")
        );
        let gone = CoreError::not_found("appointment", 7);
        assert!(matches!(SchedulingError::from(StoreError::Core(gone)), SchedulingError::NotFound("appointment")));
        let clash = CoreError::AlreadyExists { entity: "patient", key: "k".into() };
        assert!(matches!(
            SchedulingError::from(StoreError::Core(clash)),
            SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists { entity: "patient", .. }))
        ));
        assert!(matches!(SchedulingError::from(StoreError::Corrupt("x".into())), SchedulingError::Store(_)));
    }
}
