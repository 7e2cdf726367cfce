//! The Teladoc Health Solo dialect (the Solo external API), mounted at
//! `/qapi/v1`, with context-aware linking at `/integrations/linking`.
//!
//! Requests authenticate with the `Api-Key` header, the tenant's `solo`
//! credential (missing or unknown: 401; too many failures from one peer:
//! 429). Bodies and answers are JSON; times are unix seconds. Every error is
//! one of the document's two shapes ([`error`] holds the one mapping table).
//! The decisions where the document is silent are in `docs/dialects/solo.md`.
//!
//! Modules: [`waiting_rooms`] (the tenant's healthcare services as waiting
//! rooms), [`webhooks`] (the tenant's webhooks) and [`notify`] (the
//! delivery router that calls them), [`linking`] (context-aware links, a
//! router of its own), [`crypto`] (the AES-256-CBC recipe both share),
//! [`error`] (the error type and its table), [`patients`] (patient
//! demographics by external id or SPID), [`appointments`] (waiting-room
//! bookings, their changes and video links), [`slots`] (a waiting room's
//! free visits).

pub mod appointments;
pub mod assistance;
pub mod attachments;
pub mod crypto;
pub mod episodes;
pub mod error;
pub mod linking;
pub mod notify;
pub mod patients;
pub mod perfect_answer;
pub mod reports;
pub mod slots;
pub mod visit_notes;
pub mod waiting_rooms;
pub mod webhooks;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::{Credential, Dialect, Tenant};
use polyclinic_http::AppState;
use polyclinic_http::auth::SecretCheck;
use serde::de::DeserializeOwned;

pub use error::{Shape, SoloError};

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "Api-Key";

/// The Solo API routes (mounted under `/qapi/v1`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(waiting_rooms::routes())
        .merge(patients::routes())
        .merge(appointments::routes())
        .merge(slots::routes())
        .merge(webhooks::routes())
        .merge(visit_notes::routes())
        .merge(attachments::routes())
        .merge(episodes::routes())
        .merge(reports::routes())
        .merge(perfect_answer::routes())
        .merge(assistance::routes())
        .fallback(|| async { SoloError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(state, authenticate))
}

/// The authenticated caller: the tenant and the credential of the API key.
#[derive(Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub credential: Credential,
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = req.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if key.is_empty() {
        return SoloError::new(StatusCode::UNAUTHORIZED, "the Api-Key header is missing").into_response();
    }
    let key = key.to_owned();
    match state.check_secret(Dialect::Solo, &key, polyclinic_http::throttle::peer_of(&req)).await {
        SecretCheck::Valid { tenant, credential } => {
            req.extensions_mut().insert(Caller { tenant: *tenant, credential });
            next.run(req).await
        }
        SecretCheck::Invalid => SoloError::new(StatusCode::UNAUTHORIZED, "the API key is not valid").into_response(),
        SecretCheck::Locked { retry_after } => {
            let mut r = SoloError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests with an invalid API key; try again later",
            )
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        SecretCheck::Failed(e) => SoloError::from(e).into_response(),
    }
}

/// A JSON body, as `axum::Json`: a body that is not JSON, not
/// `application/json`, too large, or not of the expected shape answers a
/// Solo error (400, 415 or 413) naming the field at fault.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = SoloError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !json_type {
            return Err(SoloError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| SoloError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"))?;
        if bytes.is_empty() {
            return Err(SoloError::bad_request("the request body is empty"));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de).map(Json).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                SoloError::bad_request(format!("Bad parameters [{inner}]"))
            } else {
                SoloError::bad_request(format!("Bad parameters [{path}: {inner}]"))
            }
        })
    }
}

/// Path parameters, as `axum::extract::Path`; a segment that cannot be read
/// names no resource: 404.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = SoloError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(SoloError::not_found(e.body_text())),
        }
    }
}

/// Query parameters, as `axum::extract::Query`; a query that does not fit
/// answers 400.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = SoloError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(SoloError::bad_request(format!("Bad parameters [{}]", e.body_text()))),
        }
    }
}
