//! The Embassy dialect (Visiba Care's FHIR R4 API), mounted at `/embassy`.
//!
//! Every response carries `X-Request-Id`. Requests authenticate with
//! `X-Visiba-Care-API-Key` (missing: 401, unknown: 403). Errors are FHIR
//! OperationOutcomes whose `issue[0].details.coding[0].code` is the spec's
//! error code. Responses are FHIR JSON, or FHIR XML when `Accept` (or
//! `_format`) asks for `application/fhir+xml`.
//!
//! Error statuses, decided where the spec is silent (see docs/dialects/embassy.md):
//! 400 when the body is not a valid FHIR resource of the expected type or a
//! value is not a valid FHIR code; 401/403 for the key; 404 when the addressed
//! resource does not exist for the customer; 422 for every other listed code.

pub mod appointments;
pub mod capability;
pub mod catalog;
pub mod communication;
pub mod notify;
pub mod patients;
pub mod search;
pub mod subscriptions;
pub mod systems;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::{Credential, Dialect, Tenant};
use polyclinic_fhir::{FHIR_JSON, Format, ParametersError, PatchOperation, operation_outcome, patch_operations};
use polyclinic_http::AppState;
use polyclinic_http::auth::SecretCheck;
use serde_json::Value;

/// The API key header.
pub const API_KEY_HEADER: &str = "x-visiba-care-api-key";

/// The Embassy routes (mounted under `/embassy`).
pub fn router(state: AppState) -> Router<AppState> {
    let authenticated = Router::new()
        .merge(subscriptions::routes())
        .merge(catalog::routes())
        .merge(patients::routes())
        .merge(appointments::routes())
        .merge(communication::routes())
        .fallback(|| async { EmbassyError::new(StatusCode::NOT_FOUND, "not-found", "NotFound", "no such endpoint") })
        .layer(middleware::from_fn_with_state(state, authenticate));
    Router::new()
        .route("/metadata", axum::routing::get(capability::metadata))
        .merge(authenticated)
        .layer(middleware::from_fn(request_id_and_format))
}

/// The authenticated caller: its tenant and the API key's credential.
#[derive(Clone)]
pub struct Caller {
    pub tenant: Tenant,
    pub credential: Credential,
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let key = req.headers().get(API_KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if key.is_empty() {
        return EmbassyError::new(
            StatusCode::UNAUTHORIZED,
            "login",
            "MissingApiKey",
            "the X-Visiba-Care-API-Key header is missing",
        )
        .into_response();
    }
    let key = key.to_owned();
    match state.check_secret(Dialect::Embassy, &key, polyclinic_http::throttle::peer_of(&req)).await {
        SecretCheck::Valid { tenant, credential } => {
            req.extensions_mut().insert(Caller { tenant: *tenant, credential });
            next.run(req).await
        }
        SecretCheck::Invalid => {
            EmbassyError::new(StatusCode::FORBIDDEN, "forbidden", "InvalidApiKey", "the API key is not valid")
                .into_response()
        }
        SecretCheck::Locked { retry_after } => {
            let mut r = EmbassyError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "TooManyRequests",
                "too many requests with an invalid API key; try again later",
            )
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            r
        }
        SecretCheck::Failed(e) => EmbassyError::from(polyclinic_http::error::ApiError::from(e)).into_response(),
    }
}

/// Sets `X-Request-Id` on every response and renders FHIR JSON bodies as FHIR
/// XML when the client asked for XML.
async fn request_id_and_format(req: Request, next: Next) -> Response {
    let wants = response_format(&req);
    let mut response = next.run(req).await;
    if wants == Format::Xml && is_fhir_json(&response) {
        response = to_xml_response(response).await;
    }
    let id = request_id();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The format the client asked for: `_format` first, then `Accept`; JSON when
/// neither names a FHIR format.
fn response_format(req: &Request) -> Format {
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("_format="))
            .and_then(|v| Format::from_media_type(&v.replace("%2B", "+").replace("%2b", "+")))
    });
    from_query
        .or_else(|| {
            let accept = req.headers().get(header::ACCEPT)?.to_str().ok()?;
            accept.split(',').find_map(Format::from_media_type)
        })
        .unwrap_or(Format::Json)
}

fn is_fhir_json(r: &Response) -> bool {
    r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with(FHIR_JSON))
}

async fn to_xml_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, polyclinic_http::MAX_BODY_BYTES * 16).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "response too large").into_response(),
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+xml; charset=utf-8"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(Format::Xml.render(&value)))
}

/// A FHIR JSON response (rendered as XML by the middleware when asked).
pub fn fhir(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, Format::Json.content_type())], body.to_string()).into_response()
}

/// The client's `Prefer: return=...` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefer {
    /// `minimal`: no body.
    Minimal,
    /// `representation` (the default): the resource.
    #[default]
    Representation,
    /// `OperationOutcome`: an informational OperationOutcome.
    OperationOutcome,
}

impl<S: Send + Sync> FromRequestParts<S> for Prefer {
    type Rejection = std::convert::Infallible;

    /// Accepts `return=minimal`, `return=representation`,
    /// `return=OperationOutcome`, and the spec's bare `minimal`,
    /// `representation`, `operationOutcome`, in any case.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.headers.get("prefer").and_then(|v| v.to_str().ok()).unwrap_or("");
        for item in raw.split([',', ';']) {
            let v = item.trim();
            let v = v.strip_prefix("return=").unwrap_or(v).trim_matches('"').to_ascii_lowercase();
            match v.as_str() {
                "minimal" => return Ok(Prefer::Minimal),
                "representation" => return Ok(Prefer::Representation),
                "operationoutcome" => return Ok(Prefer::OperationOutcome),
                _ => {}
            }
        }
        Ok(Prefer::Representation)
    }
}

/// Answers a created or changed resource as the client preferred. `Location`
/// is set when given.
pub fn respond(prefer: Prefer, status: StatusCode, resource: Value, location: Option<String>, what: &str) -> Response {
    let mut response = match prefer {
        Prefer::Representation => fhir(status, resource),
        Prefer::Minimal => status.into_response(),
        Prefer::OperationOutcome => fhir(status, operation_outcome("information", "informational", "Success", what)),
    };
    if let Some(l) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, l);
    }
    response
}

/// Reads the operations of a PATCH `Parameters` body, with the spec's codes.
pub fn patch_ops(body: &Value) -> Result<Vec<PatchOperation>, EmbassyError> {
    patch_operations(body).map_err(|e| match e {
        ParametersError::NotParameters => {
            EmbassyError::invalid("InvalidFhirResource", "the body must be a Parameters resource")
        }
        ParametersError::Empty => {
            EmbassyError::unprocessable("ParametersCannotBeEmpty", "the patch did not include any parameter")
        }
        ParametersError::NotOperation(name) => EmbassyError::unprocessable(
            "OnlyOperationParametersSupported",
            format!("only parameters named `operation` are supported, not `{name}`"),
        ),
    })
}

/// Path parameters, as `axum::extract::Path`; a segment that cannot be read
/// (percent-encoded bytes that are not UTF-8) names no resource: 404
/// `NotFound`, as an OperationOutcome.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = EmbassyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(e) => Err(EmbassyError::not_found("NotFound", e.body_text())),
        }
    }
}

/// Query parameters, as `axum::extract::Query`; a query that does not fit
/// (a parameter given twice) answers 400 `InvalidParameter`, as an
/// OperationOutcome.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = EmbassyError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(EmbassyError::invalid("InvalidParameter", e.body_text())),
        }
    }
}

/// An Embassy error: an OperationOutcome with the spec's error code.
#[derive(Debug)]
pub struct EmbassyError {
    pub status: StatusCode,
    /// FHIR IssueType (`invalid`, `not-found`, `processing`, ...).
    pub issue: &'static str,
    /// The spec's error code.
    pub code: &'static str,
    pub message: String,
}

impl EmbassyError {
    /// An error with status, FHIR issue type, spec code and message.
    pub fn new(status: StatusCode, issue: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        EmbassyError { status, issue, code, message: message.into() }
    }

    /// 400: the body failed FHIR validation.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        EmbassyError::new(StatusCode::BAD_REQUEST, "invalid", code, message)
    }

    /// 404: not found on the customer.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        EmbassyError::new(StatusCode::NOT_FOUND, "not-found", code, message)
    }

    /// 422: the input could not be processed.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        EmbassyError::new(StatusCode::UNPROCESSABLE_ENTITY, "processing", code, message)
    }
}

impl From<polyclinic_http::error::ApiError> for EmbassyError {
    fn from(e: polyclinic_http::error::ApiError) -> Self {
        let (issue, code) = match e.status {
            StatusCode::NOT_FOUND => ("not-found", "NotFound"),
            StatusCode::BAD_REQUEST => ("invalid", "InvalidInput"),
            StatusCode::CONFLICT => ("conflict", "Conflict"),
            StatusCode::INTERNAL_SERVER_ERROR => ("exception", "InternalError"),
            _ => ("processing", "ProcessingError"),
        };
        EmbassyError { status: e.status, issue, code, message: e.message }
    }
}

impl From<polyclinic_store::StoreError> for EmbassyError {
    fn from(e: polyclinic_store::StoreError) -> Self {
        polyclinic_http::error::ApiError::from(e).into()
    }
}

impl IntoResponse for EmbassyError {
    fn into_response(self) -> Response {
        fhir(self.status, operation_outcome("error", self.issue, self.code, &self.message))
    }
}

/// A FHIR body, JSON or (by `Content-Type`) XML, as FHIR JSON; anything
/// else answers 400 with an OperationOutcome.
pub struct FhirJson(pub Value);

impl<S: Send + Sync> FromRequest<S> for FhirJson {
    type Rejection = EmbassyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|_| {
            EmbassyError::new(StatusCode::PAYLOAD_TOO_LARGE, "too-costly", "BodyTooLarge", "the body is too large")
        })?;
        if bytes.is_empty() {
            return Err(EmbassyError::invalid("InvalidFhirResource", "the request body is empty"));
        }
        if Format::from_media_type(&content_type) == Some(Format::Xml) {
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| EmbassyError::invalid("InvalidFhirResource", "the XML body is not UTF-8"))?;
            return polyclinic_fhir::xml::from_xml(text).map(FhirJson).map_err(|e| {
                EmbassyError::invalid("InvalidFhirResource", format!("the body is not valid FHIR XML: {e}"))
            });
        }
        serde_json::from_slice::<Value>(&bytes)
            .map(FhirJson)
            .map_err(|e| EmbassyError::invalid("InvalidFhirResource", format!("the body is not valid FHIR JSON: {e}")))
    }
}
