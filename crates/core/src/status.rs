//! The one appointment status machine, and its mapping to each dialect's
//! vocabulary. `docs/domain.md` carries the same table for readers.
//!
//! The statuses are the union of FHIR's Appointment statuses and Solo's
//! twelve encounter statuses; the progress statuses are ordered, and an
//! appointment only moves forward through them.

use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Status of an appointment, shared by every dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppointmentStatus {
    /// Suggested, not yet agreed (FHIR `proposed`).
    Proposed,
    /// Waiting for confirmation (FHIR `pending`).
    Pending,
    /// On a waitlist, no time held (FHIR `waitlist`).
    Waitlist,
    /// Booked (FHIR `booked`, Solo `scheduled`, Docplanner `booked`).
    Booked,
    /// The patient has arrived (FHIR `arrived`, Solo `arrived`).
    Arrived,
    /// Checked in for a video visit (FHIR `checked-in`).
    CheckedIn,
    /// Solo `in progress.intake.ready`.
    IntakeReady,
    /// Solo `in progress.intake.progress`.
    IntakeInProgress,
    /// Solo `in progress.exam.ready`.
    ExamReady,
    /// Solo `in progress.exam.progress`.
    ExamInProgress,
    /// Solo `discharge.ready`.
    DischargeReady,
    /// Solo `discharge.progress`.
    DischargeInProgress,
    /// Done (FHIR `fulfilled`, Solo `completed`).
    Completed,
    /// Signed off after completion (Solo `sign off`; FHIR `fulfilled`).
    SignedOff,
    /// Cancelled by anyone (FHIR `cancelled`, Solo `cancelled`, Docplanner `canceled`).
    Cancelled,
    /// The patient did not come (FHIR `noshow`, Solo `not showed up`).
    NoShow,
    /// Recorded by mistake (FHIR `entered-in-error`).
    EnteredInError,
}

use AppointmentStatus as S;

impl AppointmentStatus {
    /// Every status, in the order of the progress chain.
    pub const ALL: [AppointmentStatus; 17] = [
        S::Proposed,
        S::Pending,
        S::Waitlist,
        S::Booked,
        S::Arrived,
        S::CheckedIn,
        S::IntakeReady,
        S::IntakeInProgress,
        S::ExamReady,
        S::ExamInProgress,
        S::DischargeReady,
        S::DischargeInProgress,
        S::Completed,
        S::SignedOff,
        S::Cancelled,
        S::NoShow,
        S::EnteredInError,
    ];

    /// The stable name stored in the database and used in events.
    pub fn as_str(self) -> &'static str {
        match self {
            S::Proposed => "proposed",
            S::Pending => "pending",
            S::Waitlist => "waitlist",
            S::Booked => "booked",
            S::Arrived => "arrived",
            S::CheckedIn => "checked-in",
            S::IntakeReady => "intake-ready",
            S::IntakeInProgress => "intake-in-progress",
            S::ExamReady => "exam-ready",
            S::ExamInProgress => "exam-in-progress",
            S::DischargeReady => "discharge-ready",
            S::DischargeInProgress => "discharge-in-progress",
            S::Completed => "completed",
            S::SignedOff => "signed-off",
            S::Cancelled => "cancelled",
            S::NoShow => "no-show",
            S::EnteredInError => "entered-in-error",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Position in the progress chain, for statuses on it.
    fn progress(self) -> Option<u8> {
        Some(match self {
            S::Proposed | S::Pending => 0,
            S::Booked => 1,
            S::Arrived => 2,
            S::CheckedIn => 3,
            S::IntakeReady => 4,
            S::IntakeInProgress => 5,
            S::ExamReady => 6,
            S::ExamInProgress => 7,
            S::DischargeReady => 8,
            S::DischargeInProgress => 9,
            S::Completed => 10,
            S::SignedOff => 11,
            S::Waitlist | S::Cancelled | S::NoShow | S::EnteredInError => return None,
        })
    }

    /// No further change is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, S::SignedOff | S::Cancelled | S::NoShow | S::EnteredInError)
    }

    /// The visit has started (anything after arrival).
    pub fn has_started(self) -> bool {
        self.progress().is_some_and(|p| p >= 2)
    }

    /// The appointment holds its time: it blocks slots and counts for double booking.
    pub fn occupies_time(self) -> bool {
        !matches!(self, S::Waitlist | S::Cancelled | S::NoShow | S::EnteredInError)
    }

    /// Whether the appointment may still be moved to another time.
    pub fn can_reschedule(self) -> bool {
        matches!(self, S::Proposed | S::Pending | S::Waitlist | S::Booked)
    }

    /// Whether the status machine allows `self -> to`.
    ///
    /// - along the progress chain only forward (skipping steps is allowed);
    /// - to `cancelled` from anything not finished (before `completed`);
    /// - to `no-show` from proposed, pending or booked (the visit never started);
    /// - to `entered-in-error` from anything not terminal;
    /// - a proposed or pending appointment may go to the waitlist, and from there
    ///   only be booked or cancelled;
    /// - staying in the same status is not a transition (callers treat it as a no-op).
    pub fn can_move_to(self, to: AppointmentStatus) -> bool {
        if self == to || self.is_terminal() {
            return false;
        }
        match to {
            S::Cancelled => !matches!(self, S::Completed),
            S::NoShow => matches!(self, S::Proposed | S::Pending | S::Booked),
            S::EnteredInError => true,
            S::Waitlist => matches!(self, S::Proposed | S::Pending),
            _ if self == S::Waitlist => to == S::Booked,
            _ => match (self.progress(), to.progress()) {
                (Some(a), Some(b)) => b > a,
                _ => false,
            },
        }
    }

    /// Checks a transition, answering the domain error when it is refused.
    pub fn transition(self, to: AppointmentStatus) -> Result<AppointmentStatus, CoreError> {
        if self.can_move_to(to) {
            Ok(to)
        } else {
            Err(CoreError::InvalidTransition { from: self.as_str().into(), to: to.as_str().into() })
        }
    }

    /// FHIR R4 `Appointment.status` (Naboto, Embassy, standard FHIR).
    pub fn fhir(self) -> &'static str {
        match self {
            S::Proposed => "proposed",
            S::Pending => "pending",
            S::Waitlist => "waitlist",
            S::Booked => "booked",
            S::Arrived | S::IntakeReady | S::IntakeInProgress | S::ExamReady | S::ExamInProgress => "arrived",
            S::CheckedIn => "checked-in",
            S::DischargeReady | S::DischargeInProgress => "arrived",
            S::Completed | S::SignedOff => "fulfilled",
            S::Cancelled => "cancelled",
            S::NoShow => "noshow",
            S::EnteredInError => "entered-in-error",
        }
    }

    /// The core status for a FHIR status.
    pub fn from_fhir(s: &str) -> Option<Self> {
        Some(match s {
            "proposed" => S::Proposed,
            "pending" => S::Pending,
            "waitlist" => S::Waitlist,
            "booked" => S::Booked,
            "arrived" => S::Arrived,
            "checked-in" => S::CheckedIn,
            "fulfilled" => S::Completed,
            "cancelled" => S::Cancelled,
            "noshow" => S::NoShow,
            "entered-in-error" => S::EnteredInError,
            _ => return None,
        })
    }

    /// Naboto `Appointment.status` (value set naboto-appointment-status of
    /// IG 0.1.4: `booked | arrived | fulfilled | cancelled | noshow |
    /// entered-in-error | checked-in`). A status the value set lacks is shown
    /// as the nearest one it has: not yet held (proposed, pending, waitlist)
    /// as `booked`, the visit under way as `arrived`.
    pub fn naboto(self) -> &'static str {
        match self {
            S::Proposed | S::Pending | S::Waitlist => "booked",
            other => other.fhir(),
        }
    }

    /// The core status for a Naboto status; `None` for a code outside the
    /// value set (`pending` was removed in IG 0.1.4).
    pub fn from_naboto(s: &str) -> Option<Self> {
        match s {
            "booked" | "arrived" | "fulfilled" | "cancelled" | "noshow" | "entered-in-error" | "checked-in" => {
                Self::from_fhir(s)
            }
            _ => None,
        }
    }

    /// Embassy only shows `booked` and `cancelled` on its Appointment; a
    /// finished visit is still `booked` there (its completion is the
    /// AppointmentCompleted event).
    pub fn embassy(self) -> &'static str {
        match self {
            S::Cancelled | S::NoShow | S::EnteredInError => "cancelled",
            _ => "booked",
        }
    }

    /// Docplanner booking status: `booked` or `canceled`.
    pub fn docplanner(self) -> &'static str {
        match self {
            S::Cancelled | S::NoShow | S::EnteredInError => "canceled",
            _ => "booked",
        }
    }

    /// Solo's twelve statuses.
    pub fn solo(self) -> &'static str {
        match self {
            S::Proposed | S::Pending | S::Waitlist | S::Booked => "scheduled",
            S::Arrived | S::CheckedIn => "arrived",
            S::IntakeReady => "in progress.intake.ready",
            S::IntakeInProgress => "in progress.intake.progress",
            S::ExamReady => "in progress.exam.ready",
            S::ExamInProgress => "in progress.exam.progress",
            S::DischargeReady => "discharge.ready",
            S::DischargeInProgress => "discharge.progress",
            S::Completed => "completed",
            S::SignedOff => "sign off",
            S::Cancelled | S::EnteredInError => "cancelled",
            S::NoShow => "not showed up",
        }
    }

    /// Solo's twelve statuses, in the order of a visit.
    pub const SOLO: [&'static str; 12] = [
        "scheduled",
        "arrived",
        "in progress.intake.ready",
        "in progress.intake.progress",
        "in progress.exam.ready",
        "in progress.exam.progress",
        "discharge.ready",
        "discharge.progress",
        "completed",
        "sign off",
        "cancelled",
        "not showed up",
    ];

    /// The core status for one of Solo's statuses.
    pub fn from_solo(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => S::Booked,
            "arrived" => S::Arrived,
            "in progress.intake.ready" => S::IntakeReady,
            "in progress.intake.progress" => S::IntakeInProgress,
            "in progress.exam.ready" => S::ExamReady,
            "in progress.exam.progress" => S::ExamInProgress,
            "discharge.ready" => S::DischargeReady,
            "discharge.progress" => S::DischargeInProgress,
            "completed" => S::Completed,
            "sign off" => S::SignedOff,
            "cancelled" => S::Cancelled,
            "not showed up" => S::NoShow,
            _ => return None,
        })
    }
}

impl std::fmt::Display for AppointmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn booked_visits_progress_forward_only() {
        assert!(S::Booked.can_move_to(S::Arrived));
        assert!(S::Booked.can_move_to(S::ExamInProgress));
        assert!(!S::ExamInProgress.can_move_to(S::IntakeReady));
        assert!(S::Completed.can_move_to(S::SignedOff));
        assert!(!S::SignedOff.can_move_to(S::Cancelled));
    }

    #[test]
    fn cancellation_and_no_show() {
        assert!(S::Booked.can_move_to(S::Cancelled));
        assert!(S::ExamInProgress.can_move_to(S::Cancelled));
        assert!(!S::Completed.can_move_to(S::Cancelled));
        assert!(!S::Cancelled.can_move_to(S::Booked));
        assert!(S::Booked.can_move_to(S::NoShow));
        assert!(!S::Arrived.can_move_to(S::NoShow));
        assert_eq!(
            S::Cancelled.transition(S::Booked),
            Err(CoreError::InvalidTransition { from: "cancelled".into(), to: "booked".into() })
        );
    }

    #[test]
    fn every_solo_status_round_trips() {
        for s in S::SOLO {
            assert_eq!(S::from_solo(s).unwrap().solo(), s);
        }
    }

    #[test]
    fn every_fhir_status_round_trips() {
        for s in [
            "proposed",
            "pending",
            "waitlist",
            "booked",
            "arrived",
            "checked-in",
            "fulfilled",
            "cancelled",
            "noshow",
            "entered-in-error",
        ] {
            assert_eq!(S::from_fhir(s).unwrap().fhir(), s);
        }
    }

    #[test]
    fn every_naboto_status_round_trips_and_pending_is_refused() {
        for s in ["booked", "arrived", "fulfilled", "cancelled", "noshow", "entered-in-error", "checked-in"] {
            assert_eq!(S::from_naboto(s).unwrap().naboto(), s);
        }
        assert_eq!(S::from_naboto("pending"), None);
        for s in S::ALL {
            assert!(S::from_naboto(s.naboto()).is_some(), "{s} shows as a code of the value set");
        }
    }

    #[test]
    fn stored_names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        /// No path through allowed transitions leaves a terminal status, and
        /// no path revisits a status: the machine has no cycles.
        #[test]
        fn the_machine_has_no_cycles(steps in proptest::collection::vec(0usize..17, 0..40)) {
            let mut current = S::Booked;
            let mut seen = vec![current];
            for i in steps {
                let to = S::ALL[i];
                if current.can_move_to(to) {
                    prop_assert!(!current.is_terminal());
                    prop_assert!(!seen.contains(&to), "revisited {to}");
                    current = to;
                    seen.push(current);
                }
            }
        }

        /// Only statuses that hold time block slots; terminal cancellations free them.
        #[test]
        fn dialect_names_agree_on_cancellation(i in 0usize..17) {
            let s = S::ALL[i];
            let cancelled = matches!(s, S::Cancelled | S::NoShow | S::EnteredInError);
            prop_assert_eq!(s.docplanner() == "canceled", cancelled);
            prop_assert_eq!(s.embassy() == "cancelled", cancelled);
            prop_assert_eq!(!s.occupies_time(), cancelled || s == S::Waitlist);
        }
    }
}
