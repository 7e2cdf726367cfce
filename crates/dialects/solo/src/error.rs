//! The Solo dialect's one error type and its mapping table. The document
//! shows two error bodies: `{"error": {"message": "..."}}` for the API at
//! large (attachments, perfect answer) and `{"message": "..."}` for the
//! assistance requests. [`Shape`] picks one; every other part of an error is
//! its status and its message. The statuses follow what the document shows
//! (400 for bad parameters) and HTTP's usual meaning where it shows none;
//! the decisions are in `docs/dialects/solo.md`.
//!
//! | cause | status |
//! |---|---|
//! | no `Api-Key` header, unknown key | 401 |
//! | too many failed keys from one peer | 429 (with `Retry-After`) |
//! | body not JSON, a field of the wrong JSON type, a missing required field, a value outside its set | 400 |
//! | a body that is not `application/json` where JSON is expected | 415 |
//! | a body larger than the limit | 413 |
//! | an unknown or malformed id in the path (other tenants' ids too) | 404 |
//! | `CoreError::Invalid` (a phone, an e-mail, a date, a text too long) | 400 |
//! | `CoreError::AlreadyExists` (an MRN or external id already used) | 409 |
//! | `CoreError::Conflict`: a second perfect answer for a patient within 24 hours, a visit note over its limits, a report not yet built | 409 |
//! | `SchedulingError::Taken`, `NotOffered`, `ServiceNotOffered`, `Declined`, `Conflict` | 409 |
//! | `SchedulingError::Time`, `InThePast`, `InTheFuture`, `TooLate` | 422 |
//! | `SchedulingError::NotAllowed` / `CoreError::InvalidTransition` (the status machine) | 422 |
//! | `SchedulingError::NotFound` | 404 |
//! | `SchedulingError::ManagedElsewhere`: a patient another dialect owns (Naboto) | 403 |
//! | `SchedulingError::NotAllowed` between two statuses | 422 `Status change from "x" to "y" is not allowed` (Solo's names) |
//! | a text PostgreSQL cannot hold (NUL) | 400 |
//! | `AttachmentError` (a file's type, content or size; messages in `attachments.rs`) | 415 a type outside the five, none, or content not of the declared type; 400 empty; 413 over 5 MiB |
//! | any other store failure | 500 (cause logged, never shown) |

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use polyclinic_core::CoreError;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_scheduling::SchedulingError;
use polyclinic_store::StoreError;
use serde_json::json;

/// Which of the document's two error bodies an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// `{"error": {"message": "..."}}`.
    #[default]
    Nested,
    /// `{"message": "..."}` (assistance requests).
    Flat,
}

/// A Solo error: a status and a human message.
#[derive(Debug)]
pub struct SoloError {
    pub status: StatusCode,
    pub message: String,
    pub shape: Shape,
}

impl SoloError {
    /// An error with a status and a message, in the nested shape.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        SoloError { status, message: message.into(), shape: Shape::Nested }
    }

    /// The same error in the flat shape (`{"message": ...}`).
    pub fn flat(mut self) -> Self {
        self.shape = Shape::Flat;
        self
    }

    /// 400: bad input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        SoloError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: the addressed resource does not exist for the tenant.
    pub fn not_found(message: impl Into<String>) -> Self {
        SoloError::new(StatusCode::NOT_FOUND, message)
    }

    /// 409: a clash with what exists.
    pub fn conflict(message: impl Into<String>) -> Self {
        SoloError::new(StatusCode::CONFLICT, message)
    }

    /// 422: a rule refused the change.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        SoloError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "solo: internal failure");
        SoloError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
    }
}

impl From<CoreError> for SoloError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Invalid { .. } => SoloError::bad_request(message),
            CoreError::AlreadyExists { .. } | CoreError::SlotTaken { .. } | CoreError::Conflict { .. } => {
                SoloError::conflict(message)
            }
            CoreError::NotFound { .. } => SoloError::not_found(message),
            CoreError::InvalidTransition { .. } | CoreError::PolicyViolation(_) => SoloError::unprocessable(message),
        }
    }
}

impl From<StoreError> for SoloError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(c) => c.into(),
            other if other.is_unstorable_text() => {
                SoloError::bad_request("text must not contain NUL (U+0000) characters")
            }
            other => SoloError::internal(&other),
        }
    }
}

impl From<SchedulingError> for SoloError {
    fn from(e: SchedulingError) -> Self {
        let message = e.to_string();
        match e {
            SchedulingError::NotAllowed { from, to } => {
                match (AppointmentStatus::parse(&from), AppointmentStatus::parse(&to)) {
                    (Some(f), Some(t)) => SoloError::unprocessable(format!(
                        "Status change from \"{}\" to \"{}\" is not allowed",
                        f.solo(),
                        t.solo()
                    )),
                    _ => SoloError::unprocessable(message),
                }
            }
            SchedulingError::ManagedElsewhere { .. } => SoloError::new(StatusCode::FORBIDDEN, message),
            SchedulingError::Time(_)
            | SchedulingError::InThePast
            | SchedulingError::InTheFuture
            | SchedulingError::TooLate(_) => SoloError::unprocessable(message),
            SchedulingError::Taken { .. }
            | SchedulingError::NotOffered
            | SchedulingError::ServiceNotOffered
            | SchedulingError::Declined
            | SchedulingError::Conflict(_) => SoloError::conflict(message),
            SchedulingError::NotFound(_) => SoloError::not_found(message),
            SchedulingError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for SoloError {
    fn into_response(self) -> Response {
        let body = match self.shape {
            Shape::Nested => json!({"error": {"message": self.message}}),
            Shape::Flat => json!({"message": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_core::time_rules::TimeRule;

    #[test]
    fn the_table_holds_for_scheduling_refusals() {
        assert_eq!(SoloError::from(SchedulingError::Taken { resource: "practitioner" }).status, StatusCode::CONFLICT);
        assert_eq!(SoloError::from(SchedulingError::NotFound("appointment")).status, StatusCode::NOT_FOUND);
        let past = SoloError::from(SchedulingError::Time(TimeRule::InThePast));
        assert_eq!(
            (past.status, past.message.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "the start must be in the future")
        );
        let dup = SoloError::from(StoreError::Core(CoreError::AlreadyExists { entity: "patient", key: "k".into() }));
        assert_eq!(dup.status, StatusCode::CONFLICT);
    }
}
