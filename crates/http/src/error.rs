//! The admin API's error type and the JSON extractor that reports malformed
//! bodies in the same shape. Each dialect has its own error type, mapped in
//! its own module; this one also serves health and metrics.
//!
//! Shape: `{"error": {"code": "...", "message": "..."}}`.
//!
//! | cause | status | code |
//! |---|---|---|
//! | malformed JSON / wrong field types | 400 | `invalid_json` |
//! | `CoreError::Invalid`, `PolicyViolation` | 400 | `invalid`, `policy_violation` |
//! | missing or wrong admin token | 401 | `unauthorized` |
//! | `CoreError::NotFound`, unknown tenant key | 404 | `not_found` |
//! | `AlreadyExists`, `SlotTaken`, `Conflict`, `InvalidTransition` | 409 | their core code |
//! | a text PostgreSQL cannot hold (a NUL character) | 400 | `invalid` |
//! | database failure | 500 | `internal` (cause logged, never shown) |

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use polyclinic_core::CoreError;
use polyclinic_store::StoreError;
use serde::de::DeserializeOwned;
use serde_json::json;

/// An admin API error.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    /// An error with a status, a stable code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let status = match &e {
            CoreError::Invalid { .. } | CoreError::PolicyViolation(_) => StatusCode::BAD_REQUEST,
            CoreError::NotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::SlotTaken { .. }
            | CoreError::AlreadyExists { .. }
            | CoreError::Conflict { .. }
            | CoreError::InvalidTransition { .. } => StatusCode::CONFLICT,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Core(c) => c.into(),
            // The client's text, not the database, is at fault: PostgreSQL
            // cannot hold a NUL in text (SQLite can; there such a text simply
            // matches nothing). The statement failed, so nothing was written.
            other if other.is_unstorable_text() => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", "text must not contain NUL (U+0000) characters")
            }
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

/// A JSON body whose rejection answers an [`ApiError`].
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(rejection_to_error(rejection)),
        }
    }
}

fn rejection_to_error(r: JsonRejection) -> ApiError {
    let status = match &r {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, "invalid_json", r.body_text())
}
