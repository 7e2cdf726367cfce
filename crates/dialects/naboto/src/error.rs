//! The Naboto dialect's one error type and its mapping table. The guide
//! publishes no error format; every error is a FHIR OperationOutcome with one
//! issue: `severity` `error`, `code` the FHIR IssueType, `details.coding[0].code`
//! the stable code below, `diagnostics` the human message. The statuses
//! follow FHIR's RESTful API: 400 for a body that is not a resource of the
//! expected type, 422 for a resource that breaks the profile or a business
//! rule, 409 for a clash with what exists.
//!
//! | cause | status | issue | code |
//! |---|---|---|---|
//! | no `Authorization: Bearer`, unknown token | 401 | `login` | `Unauthorized` |
//! | too many failed tokens from one peer | 429 | `throttled` | `TooManyRequests` |
//! | body not JSON, wrong `resourceType`, an element of the wrong JSON type | 400 | `structure` | `InvalidResource` |
//! | search without `identifier=system\|value` | 400 | `invalid` | `InvalidSearch` |
//! | a NabotoPatient / NabotoAppointment profile rule | 422 | `invariant` | `ProfileViolation` |
//! | no e-mail or mobile number | 422 | `required` | `ContactPointRequired` |
//! | `id` on create, none on update, body and path ids differ | 422 | `invariant` | `IdMismatch` |
//! | a referenced patient or practitioner the tenant lacks, no default practitioner | 422 | `not-found` | `ReferenceNotFound` |
//! | `CoreError::Invalid` (a phone, an e-mail, a text too long) | 422 | `value` | `InvalidValue` |
//! | addressed patient or appointment not found (other tenants' too) | 404 | `not-found` | `NotFound` |
//! | an identifier already used in the tenant (`AlreadyExists`) | 409 | `duplicate` | `DuplicateIdentifier` |
//! | `SchedulingError::Taken` (another booking holds the time) | 409 | `conflict` | `SlotTaken` |
//! | `SchedulingError::NotOffered`, `ServiceNotOffered`, `Declined` | 409 | `conflict` | `SlotNotAvailable` |
//! | `SchedulingError::Conflict` (a stale or repeated change) | 409 | `conflict` | `Conflict` |
//! | `SchedulingError::Time` (a tenant time rule, its message) | 422 | `business-rule` | `TimeRuleViolated` |
//! | `SchedulingError::TooLate` (a cut-off) | 422 | `business-rule` | `TooLate` |
//! | `SchedulingError::NotAllowed` (the status machine) | 422 | `business-rule` | `StatusChangeNotAllowed` |
//! | `SchedulingError::InThePast`, `InTheFuture` | 422 | `business-rule` | `TimeRuleViolated` |
//! | `SchedulingError::ManagedElsewhere` (a patient another dialect owns) | 422 | `business-rule` | `PatientManagedByAnotherSystem` |
//! | `SchedulingError::NotFound` | 404 | `not-found` | `NotFound` |
//! | a text PostgreSQL cannot hold (NUL) | 422 | `value` | `InvalidValue` |
//! | any other store failure | 500 | `exception` | `InternalError` (cause logged, never shown) |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use polyclinic_core::CoreError;
use polyclinic_fhir::operation_outcome;
use polyclinic_scheduling::SchedulingError;
use polyclinic_store::StoreError;

/// A Naboto error: an OperationOutcome with a stable code.
#[derive(Debug)]
pub struct NabotoError {
    pub status: StatusCode,
    /// FHIR IssueType (`invalid`, `invariant`, `not-found`, ...).
    pub issue: &'static str,
    /// The stable code (`details.coding[0].code`).
    pub code: &'static str,
    pub message: String,
}

impl NabotoError {
    /// An error with status, FHIR issue type, code and message.
    pub fn new(status: StatusCode, issue: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        NabotoError { status, issue, code, message: message.into() }
    }

    /// 400: the body is not a resource of the expected type.
    pub fn structure(message: impl Into<String>) -> Self {
        NabotoError::new(StatusCode::BAD_REQUEST, "structure", "InvalidResource", message)
    }

    /// 422: the resource breaks a rule of its Naboto profile.
    pub fn profile(message: impl Into<String>) -> Self {
        NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "invariant", "ProfileViolation", message)
    }

    /// 422: the `id` does not fit the operation.
    pub fn id_mismatch(message: impl Into<String>) -> Self {
        NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "invariant", "IdMismatch", message)
    }

    /// 422: a reference names nothing of the tenant's.
    pub fn reference(message: impl Into<String>) -> Self {
        NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "not-found", "ReferenceNotFound", message)
    }

    /// 404: the addressed resource does not exist for the tenant.
    pub fn not_found(message: impl Into<String>) -> Self {
        NabotoError::new(StatusCode::NOT_FOUND, "not-found", "NotFound", message)
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "naboto: internal failure");
        NabotoError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "InternalError",
            "internal error; see the server log",
        )
    }
}

impl From<CoreError> for NabotoError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Invalid { .. } => {
                NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "value", "InvalidValue", message)
            }
            CoreError::AlreadyExists { .. } => {
                NabotoError::new(StatusCode::CONFLICT, "duplicate", "DuplicateIdentifier", message)
            }
            CoreError::NotFound { .. } => NabotoError::not_found(message),
            CoreError::SlotTaken { .. } => NabotoError::new(StatusCode::CONFLICT, "conflict", "SlotTaken", message),
            CoreError::Conflict { .. } => NabotoError::new(StatusCode::CONFLICT, "conflict", "Conflict", message),
            CoreError::InvalidTransition { .. } => {
                NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", "StatusChangeNotAllowed", message)
            }
            CoreError::PolicyViolation(_) => {
                NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", "TooLate", message)
            }
        }
    }
}

impl From<StoreError> for NabotoError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(c) => c.into(),
            other if other.is_unstorable_text() => NabotoError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "value",
                "InvalidValue",
                "text must not contain NUL (U+0000) characters",
            ),
            other => NabotoError::internal(&other),
        }
    }
}

impl From<SchedulingError> for NabotoError {
    fn from(e: SchedulingError) -> Self {
        let message = e.to_string();
        let rule = |code| NabotoError::new(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", code, message.clone());
        let clash = |code| NabotoError::new(StatusCode::CONFLICT, "conflict", code, message.clone());
        match e {
            SchedulingError::Time(_) | SchedulingError::InThePast | SchedulingError::InTheFuture => {
                rule("TimeRuleViolated")
            }
            SchedulingError::TooLate(_) => rule("TooLate"),
            SchedulingError::NotAllowed { .. } => rule("StatusChangeNotAllowed"),
            SchedulingError::Taken { .. } => clash("SlotTaken"),
            SchedulingError::NotOffered | SchedulingError::ServiceNotOffered | SchedulingError::Declined => {
                clash("SlotNotAvailable")
            }
            SchedulingError::Conflict(_) => clash("Conflict"),
            SchedulingError::ManagedElsewhere { .. } => rule("PatientManagedByAnotherSystem"),
            SchedulingError::NotFound(_) => NabotoError::not_found(message),
            SchedulingError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for NabotoError {
    fn into_response(self) -> Response {
        crate::fhir(self.status, operation_outcome("error", self.issue, self.code, &self.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_core::time_rules::TimeRule;

    #[test]
    fn the_table_holds_for_scheduling_refusals() {
        let taken = NabotoError::from(SchedulingError::Taken { resource: "practitioner" });
        assert_eq!((taken.status, taken.code), (StatusCode::CONFLICT, "SlotTaken"));
        let gone = NabotoError::from(SchedulingError::NotFound("appointment"));
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let dup = NabotoError::from(SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists {
            entity: "patient",
            key: "k".into(),
        })));
        assert_eq!((dup.status, dup.code), (StatusCode::CONFLICT, "DuplicateIdentifier"));
        let late = NabotoError::from(SchedulingError::TooLate("too late".into()));
        assert_eq!(
            (late.status, late.code, late.message.as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "TooLate", "too late")
        );
        let past = NabotoError::from(SchedulingError::Time(TimeRule::InThePast));
        assert_eq!((past.status, past.code), (StatusCode::UNPROCESSABLE_ENTITY, "TimeRuleViolated"));
        assert_eq!(past.message, "the start must be in the future");
    }
}
