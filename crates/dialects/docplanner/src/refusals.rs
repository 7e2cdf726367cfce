//! The one table from the scheduling layer's refusals to Docplanner's
//! answers. The document words the same refusal differently per endpoint,
//! so the table has a column per command:
//!
//! | refusal | book / move | cancel | confirm | presence | opinion request |
//! |---|---|---|---|---|---|
//! | `Time(duration rule)` | 400 `duration` field error | | | | |
//! | `Time(start rule)`: past, notice, horizon, range | 404 "Requested target slot (…) not found" | | | | |
//! | `NotOffered`, `Taken`, `Declined` | 404 "Requested target slot (…) not found" | | | | |
//! | `ServiceNotOffered` | 404 "Slot (…) does not support service …" | | | | |
//! | `NotAllowed` (cancelled, moved) | 409 "The visit has already been canceled or moved" (move) | 400 "Visit … cannot be canceled because it is not booked" | 409 "Visit has been deleted" (moved) / "Visit has been canceled" | 409 "Visit is marked as canceled" | 403 "Visit not found" |
//! | `TooLate` (cut-off) | 400 with the rule's message | 400 with the rule's message | | | |
//! | `Conflict` | | | 409 "Visit has already been confirmed" | | 409 "Opinion already exists" |
//! | `InThePast` / `InTheFuture` | | | 409 "Visit is in the past" | 400 "Visit is in the future" | |
//! | `NotFound` | 404 "Object not found" | same | same | same | 403 "Visit not found" |
//! | `ManagedElsewhere` (a patient another dialect owns; no Docplanner command edits patients today) | 403 with the refusal's message | same | same | same | same |
//! | `Store(_)` | the store error's answer (a 500 for an internal failure, logged) | | | | |

use super::{DocplannerError, format_time};
use axum::http::StatusCode;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use polyclinic_core::AppointmentId;
use polyclinic_core::facility::AddressService;
use polyclinic_core::time_rules::TimeRule;
use polyclinic_scheduling::SchedulingError;

/// The command a refusal answers.
pub(super) enum Op<'a> {
    /// Booking or moving to `start` for `service`.
    Book {
        start: Timestamp,
        service: &'a AddressService,
        tz: &'a TimeZone,
        moving: bool,
    },
    Cancel {
        id: AppointmentId,
    },
    Confirm,
    Presence,
    Opinion,
}

/// The answer for a start that is not offered (or no longer is).
pub(super) fn slot_not_found(start: Timestamp, tz: &TimeZone) -> DocplannerError {
    DocplannerError::new(
        StatusCode::NOT_FOUND,
        format!("Unable to perform booking. Requested target slot ({}) not found", format_time(start, tz)),
    )
}

/// Docplanner's answer to a refusal of `op`.
pub(super) fn refused(op: Op<'_>, e: SchedulingError) -> DocplannerError {
    use SchedulingError as E;
    match (op, e) {
        (_, E::Store(e)) => e.into(),
        (_, e @ E::ManagedElsewhere { .. }) => DocplannerError::forbidden(&e.to_string()),
        (Op::Opinion, E::NotFound(_) | E::NotAllowed { .. }) => DocplannerError::forbidden("Visit not found"),
        (Op::Opinion, E::Conflict(_)) => DocplannerError::conflict("Opinion already exists"),
        (_, E::NotFound(_)) => DocplannerError::not_found(),
        (_, E::TooLate(m)) => DocplannerError::bad_request(m),
        (Op::Book { .. }, E::Time(rule @ (TimeRule::TooShort { .. } | TimeRule::TooLong { .. })))
        | (Op::Book { .. }, E::Time(rule @ TimeRule::EndNotAfterStart)) => {
            DocplannerError::invalid_arguments([("duration", rule.to_string())])
        }
        (Op::Book { moving: true, .. }, E::NotAllowed { .. }) => {
            DocplannerError::conflict("The visit has already been canceled or moved")
        }
        (Op::Book { start, service, tz, .. }, E::ServiceNotOffered) => DocplannerError::new(
            StatusCode::NOT_FOUND,
            format!(
                "Unable to perform booking. Slot ({}) does not support service {}",
                format_time(start, tz),
                service.id
            ),
        ),
        (Op::Book { start, tz, .. }, _) => slot_not_found(start, tz),
        (Op::Cancel { id }, _) => {
            DocplannerError::bad_request(format!("Visit {id} cannot be canceled because it is not booked"))
        }
        (Op::Confirm, E::NotAllowed { from, .. }) if from == "moved" => {
            DocplannerError::conflict("Visit has been deleted")
        }
        (Op::Confirm, E::NotAllowed { .. }) => DocplannerError::conflict("Visit has been canceled"),
        (Op::Confirm, E::Conflict(_)) => DocplannerError::conflict("Visit has already been confirmed"),
        (Op::Confirm, E::InThePast) => DocplannerError::conflict("Visit is in the past"),
        (Op::Presence, E::InTheFuture) => DocplannerError::bad_request("Visit is in the future"),
        (Op::Presence, E::NotAllowed { .. }) => DocplannerError::conflict("Visit is marked as canceled"),
        (_, other) => DocplannerError::from(polyclinic_store::StoreError::Corrupt(other.to_string())),
    }
}
