//! The Naboto dialect (Naboto IG 0.1.4: NabotoPatient and NabotoAppointment),
//! mounted at `/naboto`: a clinic's own system pushes its patients and its
//! appointments (video calls among them) one way, and keeps them.
//!
//! Requests authenticate with `Authorization: Bearer <token>`, the tenant's
//! `naboto` credential (missing or unknown: 401; too many failures from one
//! peer: 429). Bodies and answers are FHIR R4 JSON; every error is an
//! OperationOutcome (see [`error`] for the one mapping table). The guide
//! leaves authentication, statuses and the error format open; the decisions
//! are in `docs/dialects/naboto.md`.
//!
//! Modules: [`patients`] (NabotoPatient), [`appointments`]
//! (NabotoAppointment, video calls), [`canonical`] (the IG's three spellings
//! of its canonical URLs), [`error`] (the error type and its table).

pub mod appointments;
pub mod canonical;
pub mod error;
pub mod patients;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_fhir::Format;
use polyclinic_http::AppState;
use polyclinic_http::auth::SecretCheck;
use serde_json::{Value, json};

pub use error::NabotoError;

/// The Naboto routes (mounted under `/naboto`).
pub fn router(state: AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .merge(patients::routes())
        .merge(appointments::routes())
        .fallback(|| async { NabotoError::not_found("no such endpoint") })
        .layer(middleware::from_fn_with_state(state, authenticate));
    Router::new().route("/metadata", axum::routing::get(metadata)).merge(authenticated)
}

/// The authenticated caller: the tenant of the bearer token.
#[derive(Clone)]
pub struct Caller {
    pub tenant: Tenant,
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::trim);
    let token = match presented {
        None | Some("") => return unauthorized("the Authorization header with a bearer token is missing"),
        Some(v) => match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
                token.trim().to_owned()
            }
            _ => return unauthorized("the Authorization header must be `Bearer <token>`"),
        },
    };
    match state.check_secret(Dialect::Naboto, &token, polyclinic_http::throttle::peer_of(&req)).await {
        SecretCheck::Valid { tenant, .. } => {
            req.extensions_mut().insert(Caller { tenant: *tenant });
            next.run(req).await
        }
        SecretCheck::Invalid => unauthorized("the bearer token is not valid"),
        SecretCheck::Locked { retry_after } => {
            let mut r = NabotoError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "TooManyRequests",
                "too many requests with an invalid token; try again later",
            )
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        SecretCheck::Failed(e) => NabotoError::from(e).into_response(),
    }
}

/// 401 with the bearer challenge (RFC 6750).
fn unauthorized(message: &str) -> Response {
    let mut r = NabotoError::new(StatusCode::UNAUTHORIZED, "login", "Unauthorized", message).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"naboto\""));
    r
}

/// `GET /naboto/metadata`: a CapabilityStatement naming the two resources,
/// their profiles and interactions (no token needed).
async fn metadata(State(state): State<AppState>) -> Response {
    let profile = |name: &str| canonical::Base::default().structure_definition(name);
    let resource = |kind: &str, name: &str| {
        json!({
            "type": kind,
            "supportedProfile": [profile(name)],
            "interaction": [{"code": "create"}, {"code": "update"}, {"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": "identifier", "type": "token"}]
        })
    };
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": state.now().strftime("%Y-%m-%d").to_string(),
            "kind": "instance",
            "implementation": {"description": "Polyclinic, Naboto dialect", "url": format!("{}/naboto", state.public_url)},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [{
                "mode": "server",
                "security": {"description": "Authorization: Bearer <token>"},
                "resource": [resource("Patient", "naboto-patient"), resource("Appointment", "naboto-appointment")]
            }]
        }),
    )
}

/// A FHIR JSON response.
pub fn fhir(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, Format::Json.content_type())], body.to_string()).into_response()
}

/// A FHIR JSON body as a JSON value; a body that is not JSON (or too large)
/// answers an OperationOutcome.
pub struct FhirJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for FhirJson {
    type Rejection = NabotoError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| {
            NabotoError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "BodyTooLarge", "the body is too large")
        })?;
        if bytes.is_empty() {
            return Err(NabotoError::structure("the request body is empty"));
        }
        serde_json::from_slice::<Value>(&bytes)
            .map(FhirJson)
            .map_err(|e| NabotoError::structure(format!("the body is not valid JSON: {e}")))
    }
}

/// Path parameters, as `axum::extract::Path`; a segment that cannot be read
/// names no resource: 404 as an OperationOutcome.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = NabotoError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(NabotoError::not_found(e.body_text())),
        }
    }
}

/// Query parameters, as `axum::extract::Query`; a query that does not fit
/// answers 400 as an OperationOutcome.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = NabotoError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(NabotoError::new(StatusCode::BAD_REQUEST, "invalid", "InvalidSearch", e.body_text())),
        }
    }
}

/// A token search parameter `system|value` (both parts required: the
/// identifiers this dialect keeps are unique per system).
pub fn token_search(raw: Option<&str>) -> Result<(String, String), NabotoError> {
    let bad = || {
        NabotoError::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "InvalidSearch",
            "search needs `identifier=system|value`, with both a system and a value",
        )
    };
    let raw = raw.ok_or_else(bad)?;
    match raw.split_once('|') {
        Some((system, value)) if !system.trim().is_empty() && !value.trim().is_empty() => {
            Ok((system.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(bad()),
    }
}
