//! The Docplanner dialect (integrations API v3): `/oauth/v2/token` and
//! `/api/v3/integration`.
//!
//! Conventions: success bodies are `application/vnd.docplanner+json;
//! charset=UTF-8`; errors `application/vnd.error+docplanner+json` with
//! `{"errors": [...], "message": "..."}` and the document's messages
//! verbatim; collections are `{"_items": [...]}`; ids are strings. An API
//! client sees only the facilities assigned to it (others: 403 "You are not
//! authorized to see this facility").
//!
//! Modules: `oauth` (tokens), `catalog` (facilities, doctors, addresses,
//! the service dictionary), `address_services` (address services, address
//! update and integration, insurance), `calendar` (calendar status, breaks),
//! `slots` (work periods, computed slots, booking), `bookings` (list, get,
//! cancel, move, confirm, presence, opinion request), `notifications` (PULL
//! queue, PUSH router, release) and `ratelimit`.

pub mod address_services;
pub mod bookings;
pub mod calendar;
pub mod catalog;
pub mod notifications;
pub mod oauth;
pub mod ratelimit;
pub mod realtime;
mod refusals;
pub mod slots;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use polyclinic_core::tenant::{Credential, Tenant};
use polyclinic_http::AppState;
use polyclinic_store::tenants::TokenProblem;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Success media type.
pub const CONTENT_TYPE: &str = "application/vnd.docplanner+json; charset=UTF-8";
/// Error media type.
pub const ERROR_CONTENT_TYPE: &str = "application/vnd.error+docplanner+json";

/// The API routes (mounted under `/api/v3/integration`), limited per client
/// by `limits`.
pub fn router(state: AppState, limits: ratelimit::Limits) -> Router<AppState> {
    Router::new()
        .merge(catalog::routes())
        .merge(address_services::routes())
        .merge(calendar::routes())
        .merge(slots::routes())
        .merge(bookings::routes())
        .merge(notifications::routes())
        .fallback(|| async { DocplannerError::not_found() })
        .method_not_allowed_fallback(|| async {
            DocplannerError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        })
        // Layers run outside in: authentication first, then the client's rate limits.
        .layer(middleware::from_fn_with_state((state.clone(), ratelimit::RateLimiter::new(limits)), ratelimit::limit))
        .layer(middleware::from_fn_with_state(state, authenticate))
}

/// The authenticated API client.
#[derive(Clone)]
pub struct Client {
    pub tenant: Tenant,
    pub credential: Credential,
}

impl Client {
    /// Whether this client may see `facility`.
    pub fn sees(&self, facility: i64) -> bool {
        self.credential.config.facilities.iter().any(|f| f.get() == facility)
    }
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_owned());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return oauth::error(StatusCode::UNAUTHORIZED, "access_denied", "OAuth2 authentication required");
    };
    let subjects: Vec<_> = polyclinic_http::throttle::peer_of(&req).into_iter().collect();
    if let Err(retry_after) = state.auth_locked(&subjects) {
        return too_many_failures(retry_after);
    }
    match state.check_token(&token).await {
        Ok(Ok((tenant, credential))) => {
            let client = Client { tenant: *tenant, credential };
            // A facility that is not the client's answers 403 before anything
            // else about the request (its body included) is looked at.
            if let Some(f) = path_facility(req.uri().path())
                && !f.parse::<i64>().is_ok_and(|n| client.sees(n))
            {
                return DocplannerError::forbidden("You are not authorized to see this facility").into_response();
            }
            req.extensions_mut().insert(client);
            next.run(req).await
        }
        Ok(Err(TokenProblem::Expired)) => {
            oauth::error(StatusCode::UNAUTHORIZED, "invalid_grant", "The access token provided has expired.")
        }
        Ok(Err(TokenProblem::Unknown)) => {
            state.auth_failed(&subjects);
            oauth::error(StatusCode::UNAUTHORIZED, "invalid_grant", "The access token provided is invalid.")
        }
        Err(e) => DocplannerError::from(e).into_response(),
    }
}

/// 429 in the Docplanner shape, for a caller locked out by
/// [`polyclinic_http::throttle`] after too many failed authentications.
pub fn too_many_failures(retry_after: i64) -> Response {
    let mut r = DocplannerError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response();
    r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after));
    r
}

/// The facility segment of `/facilities/{facility_id}/...` (the router's
/// paths, with or without the mount prefix).
fn path_facility(path: &str) -> Option<&str> {
    let mut segments = path.split('/').skip_while(|s| *s != "facilities");
    segments.next()?;
    segments.next().filter(|s| !s.is_empty())
}

/// A success body.
pub fn ok(body: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
}

/// 201 Created with the new resource's relative `Location` and an optional body.
pub fn created(location: &str, body: Option<Value>) -> Response {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    (StatusCode::CREATED, [(header::CONTENT_TYPE, CONTENT_TYPE), (header::LOCATION, location)], body).into_response()
}

/// 204 No Content.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The relative path of a facility (`/api/v3/integration/facilities/{f}`).
pub fn facility_path(f: impl std::fmt::Display) -> String {
    format!("{BASE}/facilities/{f}")
}

/// The relative path of a doctor of a facility.
pub fn doctor_path(f: impl std::fmt::Display, d: impl std::fmt::Display) -> String {
    format!("{BASE}/facilities/{f}/doctors/{d}")
}

/// The relative path of an address of a doctor of a facility.
pub fn address_path(f: impl std::fmt::Display, d: impl std::fmt::Display, a: impl std::fmt::Display) -> String {
    format!("{BASE}/facilities/{f}/doctors/{d}/addresses/{a}")
}

/// Where the API is mounted; `_links` and `Location` are relative to the host.
pub const BASE: &str = "/api/v3/integration";

/// A `_links` entry: `{"href": ..., "method": "get"}`.
pub fn link(href: impl Into<String>) -> Value {
    json!({"href": href.into(), "method": "get"})
}

/// An instant as the API writes it: ISO 8601 with the tenant's offset,
/// seconds precision (`2020-12-01T00:00:00+01:00`).
pub fn format_time(t: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Parses an ISO 8601 instant with an offset, as clients send it: `+01:00`,
/// `+0100` or `Z`; a space where a `+` was (an unencoded `+` in a query
/// string) is read as `+`. `None` when it is not such an instant, or lies
/// outside the years 1900 to 9000 ([`polyclinic_core::clock::in_range`]), so
/// that no visit length or window added to it can overflow.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    parse_any_time(s).filter(|t| polyclinic_core::clock::in_range(*t))
}

fn parse_any_time(s: &str) -> Option<Timestamp> {
    let s = s.trim_start().replace(' ', "+");
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t);
    }
    // `+0100`: insert the colon jiff wants.
    let bytes = s.as_bytes();
    let n = bytes.len();
    if n > 5 && (bytes[n - 5] == b'+' || bytes[n - 5] == b'-') && bytes[n - 4..].iter().all(u8::is_ascii_digit) {
        let fixed = format!("{}:{}", &s[..n - 2], &s[n - 2..]);
        return fixed.parse().ok();
    }
    None
}

/// A JSON request body, read whatever the `Content-Type` (clients send
/// `application/json; charset=utf-8`, some nothing). A body that is not JSON,
/// or not the expected shape, answers 400 "Invalid arguments" with the reason.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = DocplannerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| DocplannerError::bad_request("Request body could not be read"))?;
        let raw: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        // Every request body of the document is an object (serde would take
        // an array for a struct).
        if raw.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(DocplannerError::invalid_arguments([("body", "The body must be a JSON object.")]));
        }
        let mut de = serde_json::Deserializer::from_slice(raw);
        serde_path_to_error::deserialize(&mut de).map(Body).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "body".to_owned() } else { path };
            DocplannerError::invalid_arguments([(field, e.inner().to_string())])
        })
    }
}

/// Path parameters, as `axum::extract::Path`; a segment that cannot be read
/// (percent-encoded bytes that are not UTF-8) names nothing: 404 "Object not
/// found", in this dialect's shape.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = DocplannerError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(_) => Err(DocplannerError::not_found()),
        }
    }
}

/// Query parameters, as `axum::extract::Query`, except that a parameter
/// given twice counts with its last value, as PHP (the platform's language)
/// reads a query string. A query that still does not fit answers 400 in this
/// dialect's shape.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = DocplannerError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let last: std::collections::BTreeMap<_, _> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).collect();
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&last).finish();
        let uri: axum::http::Uri =
            format!("/?{query}").parse().map_err(|_| DocplannerError::bad_request("Invalid query"))?;
        match axum::extract::Query::<T>::try_from_uri(&uri) {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(DocplannerError::bad_request(e.body_text())),
        }
    }
}

/// The last value of query parameter `name` (see [`Query`]).
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == name)
        .last()
        .map(|(_, v)| v.into_owned())
}

/// A Docplanner error: `{"errors": [...], "message": "..."}`.
#[derive(Debug)]
pub struct DocplannerError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<Value>,
}

impl DocplannerError {
    /// An error with a status and the document's message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        DocplannerError { status, message: message.into(), errors: Vec::new() }
    }

    /// 404 "Object not found".
    pub fn not_found() -> Self {
        DocplannerError::new(StatusCode::NOT_FOUND, "Object not found")
    }

    /// 403 with the document's message.
    pub fn forbidden(message: &str) -> Self {
        DocplannerError::new(StatusCode::FORBIDDEN, message)
    }

    /// 400 with a message and no field errors.
    pub fn bad_request(message: impl Into<String>) -> Self {
        DocplannerError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        DocplannerError::new(StatusCode::CONFLICT, message)
    }

    /// 400 "Invalid arguments" with field errors, as the document's example:
    /// `{"errors": {"slots[1].end": ["..."]}, "message": "Invalid arguments"}`.
    pub fn invalid_arguments<F: Into<String>, M: Into<String>>(fields: impl IntoIterator<Item = (F, M)>) -> Self {
        let mut map: Map<String, Value> = Map::new();
        for (f, m) in fields {
            let entry = map.entry(f.into()).or_insert_with(|| json!([]));
            if let Value::Array(a) = entry {
                a.push(Value::String(m.into()));
            }
        }
        DocplannerError {
            status: StatusCode::BAD_REQUEST,
            message: "Invalid arguments".into(),
            errors: if map.is_empty() { Vec::new() } else { vec![Value::Object(map)] },
        }
    }
}

impl From<polyclinic_store::StoreError> for DocplannerError {
    fn from(e: polyclinic_store::StoreError) -> Self {
        match e {
            polyclinic_store::StoreError::Core(core) => core.into(),
            other => {
                let api = polyclinic_http::error::ApiError::from(other);
                DocplannerError::new(api.status, api.message)
            }
        }
    }
}

impl From<polyclinic_core::CoreError> for DocplannerError {
    fn from(e: polyclinic_core::CoreError) -> Self {
        use polyclinic_core::CoreError;
        match e {
            CoreError::Invalid { field, message } => DocplannerError::invalid_arguments([(field, message)]),
            CoreError::PolicyViolation(m) => DocplannerError::bad_request(m),
            CoreError::NotFound { .. } => DocplannerError::not_found(),
            other => {
                let api = polyclinic_http::error::ApiError::from(polyclinic_store::StoreError::Core(other));
                DocplannerError::new(api.status, api.message)
            }
        }
    }
}

impl IntoResponse for DocplannerError {
    fn into_response(self) -> Response {
        // Field errors are one object (the document's 400 example); otherwise `[]`.
        let errors = match self.errors.as_slice() {
            [Value::Object(map)] => Value::Object(map.clone()),
            other => Value::Array(other.to_vec()),
        };
        let body = json!({"errors": errors, "message": self.message});
        (self.status, [(header::CONTENT_TYPE, ERROR_CONTENT_TYPE)], body.to_string()).into_response()
    }
}

/// The `with` scopes of a request (`?with=a,b` or repeated `with`/`with[]`).
pub fn scopes(query: Option<&str>) -> Vec<String> {
    let Some(q) = query else { return Vec::new() };
    url::form_urlencoded::parse(q.as_bytes())
        .filter(|(k, _)| k == "with" || k == "with[]")
        .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_owned()).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect()
}
