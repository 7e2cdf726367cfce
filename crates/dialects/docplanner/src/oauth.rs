//! `POST /oauth/v2/token`: OAuth2 client credentials. Credentials by HTTP
//! Basic, or `client_id`/`client_secret` in a form (urlencoded or multipart)
//! or JSON body; `grant_type=client_credentials`, `scope=integration`.
//! Tokens last one hour (`expires_in: 3600`) on the server's clock and are
//! stored as hashes, so they survive restarts and work on every node.
//!
//! A client holds at most [`MAX_LIVE_TOKENS`] live tokens: a new one expires
//! the oldest. Expired tokens are deleted when their client asks for a new
//! one, and by the scheduled sweep. Wrong secrets are throttled per client id
//! and per remote address ([`polyclinic_http::throttle`]): past the limit, 429
//! `temporarily_unavailable` with `Retry-After`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::Dialect;
use polyclinic_http::AppState;
use polyclinic_http::throttle::Subject;
use polyclinic_store::tenants;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Token lifetime.
pub const EXPIRES_IN: i64 = 3600;
/// Most live tokens one client holds; a new token expires the oldest.
pub const MAX_LIVE_TOKENS: i64 = 20;

/// An OAuth error (RFC 6749 §5.2).
pub fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": code, "error_description": description}).to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"Service\""));
    }
    r
}

/// Largest number of form fields read from a token request.
const MAX_FIELDS: usize = 32;
/// Largest single form field read from a token request.
const MAX_FIELD_BYTES: u64 = 4096;

/// The body's fields; `Err` holds the `invalid_request` description.
async fn form_fields(headers: &HeaderMap, body: Bytes) -> Result<HashMap<String, String>, &'static str> {
    // The media type is case-insensitive; a multipart boundary is not.
    let raw_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let content_type = raw_type.to_ascii_lowercase();
    if body.is_empty() {
        return Ok(HashMap::new());
    }
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body).map_err(|_| "The request body is not valid JSON.")?;
        let obj = v.as_object().ok_or("The request body must be a JSON object.")?;
        return Ok(obj.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect());
    }
    if content_type.starts_with("multipart/form-data") {
        return multipart_fields(raw_type, body).await;
    }
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// The text fields of a multipart/form-data body, read by `multer` (parts
/// may carry their own headers, such as the `Content-Length` that Guzzle
/// writes; file parts and unknown fields are read and ignored by the caller).
async fn multipart_fields(content_type: &str, body: Bytes) -> Result<HashMap<String, String>, &'static str> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| "The multipart boundary is missing.")?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new().whole_stream(polyclinic_http::MAX_BODY_BYTES as u64).per_field(MAX_FIELD_BYTES),
    );
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut out = HashMap::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| "The multipart body is malformed.")? {
        if out.len() >= MAX_FIELDS {
            return Err("The multipart body has too many parts.");
        }
        let name = field.name().map(str::to_owned);
        let value = field.text().await.map_err(|_| "The multipart body is malformed.")?;
        if let Some(name) = name {
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The token endpoint.
pub async fn token(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match form_fields(&headers, body).await {
        Ok(f) => f,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    match fields.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only the client_credentials grant type is supported.",
            );
        }
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid grant_type parameter or parameter missing",
            );
        }
    }
    let scope = fields.get("scope").cloned().unwrap_or_else(|| "integration".into());
    if scope.split_whitespace().any(|s| s != "integration") {
        return error(StatusCode::BAD_REQUEST, "invalid_scope", "An unsupported scope was requested.");
    }
    let creds = basic_credentials(&headers)
        .or_else(|| Some((fields.get("client_id")?.clone(), fields.get("client_secret")?.clone())));
    let Some((client_id, secret)) = creds else {
        return error(StatusCode::BAD_REQUEST, "invalid_client", "The client credentials are missing.");
    };
    let mut subjects = vec![Subject::Client(client_id.clone())];
    subjects.extend(polyclinic_http::throttle::peer_in(&extensions));
    if let Err(retry_after) = state.auth_locked(&subjects) {
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            "Too many failed authentications; try again later.",
        );
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
        return r;
    }
    let (id, s) = (client_id.clone(), secret.clone());
    let found = state
        .store
        .read(move |c| Box::pin(async move { tenants::authenticate_client(c, Dialect::Docplanner, &id, &s).await }))
        .await;
    let credential = match found {
        Ok(Some(c)) => c,
        Ok(None) => {
            state.auth_failed(&subjects);
            return error(StatusCode::UNAUTHORIZED, "invalid_client", "The client credentials are invalid");
        }
        // A client id PostgreSQL cannot hold (a NUL) names no client.
        Err(e) if e.is_unstorable_text() => {
            state.auth_failed(&subjects);
            return error(StatusCode::UNAUTHORIZED, "invalid_client", "The client credentials are invalid");
        }
        Err(e) => return super::DocplannerError::from(e).into_response(),
    };
    let bytes: [u8; 32] = rand::random();
    let access_token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now = state.now();
    let expires = now + jiff::SignedDuration::from_secs(EXPIRES_IN);
    let t = access_token.clone();
    let stored = state
        .store
        .write(move |c| {
            Box::pin(async move { tenants::issue_token(c, &credential, &t, now, expires, MAX_LIVE_TOKENS).await })
        })
        .await;
    if let Err(e) = stored {
        return super::DocplannerError::from(e).into_response();
    }
    // Committed: tokens it removed (expired, or beyond the live ones a client
    // may hold) must not stay cached on this node (polyclinic_http::cache).
    tenants::auth_changed();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        json!({"access_token": access_token, "expires_in": EXPIRES_IN, "token_type": "bearer", "scope": "integration"})
            .to_string(),
    )
        .into_response()
}
