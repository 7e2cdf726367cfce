//! `POST /oauth/v2/token`: OAuth2 client credentials. Credentials by HTTP
//! Basic, or `client_id`/`client_secret` in a form (urlencoded or multipart)
//! or JSON body; `grant_type=client_credentials`, `scope=integration`.
//! Tokens last one hour (`expires_in: 3600`) on the server's clock and are
//! stored as hashes, so they survive restarts and work on every node.

use crate::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::Dialect;
use polyclinic_store::tenants;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Token lifetime.
pub const EXPIRES_IN: i64 = 3600;

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

/// The body's fields; `Err` holds the `invalid_request` description.
fn form_fields(headers: &HeaderMap, body: &Bytes) -> Result<HashMap<String, String>, &'static str> {
    // The media type is case-insensitive; a multipart boundary is not.
    let raw_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let content_type = raw_type.to_ascii_lowercase();
    if body.is_empty() {
        return Ok(HashMap::new());
    }
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(body).map_err(|_| "The request body is not valid JSON.")?;
        let obj = v.as_object().ok_or("The request body must be a JSON object.")?;
        return Ok(obj.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect());
    }
    if content_type.starts_with("multipart/form-data") {
        return Ok(multipart_fields(raw_type, body));
    }
    Ok(url::form_urlencoded::parse(body).into_owned().collect())
}

/// Reads the simple text fields of a multipart/form-data body.
fn multipart_fields(content_type: &str, body: &Bytes) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let boundary = content_type.split(';').find_map(|p| {
        let p = p.trim();
        p.get(..9).filter(|k| k.eq_ignore_ascii_case("boundary=")).map(|_| &p[9..])
    });
    let Some(boundary) = boundary else { return out };
    let boundary = format!("--{}", boundary.trim_matches('"'));
    let text = String::from_utf8_lossy(body);
    for part in text.split(boundary.as_str()) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else { continue };
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name=").map(|n| n.trim_matches('"').to_owned()))
            .or_else(|| head.split("name=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_owned));
        if let Some(name) = name {
            out.insert(name, value.trim_end_matches("\r\n").to_owned());
        }
    }
    out
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
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = match form_fields(&headers, &body) {
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
    let (id, s) = (client_id.clone(), secret.clone());
    let found = state
        .store
        .read(move |c| Box::pin(async move { tenants::authenticate_client(c, Dialect::Docplanner, &id, &s).await }))
        .await;
    let credential = match found {
        Ok(Some(c)) => c,
        Ok(None) => return error(StatusCode::UNAUTHORIZED, "invalid_client", "The client credentials are invalid"),
        Err(e) => return super::DocplannerError::from(e).into_response(),
    };
    let bytes: [u8; 32] = rand::random();
    let access_token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let now = state.now();
    let expires = now + jiff::SignedDuration::from_secs(EXPIRES_IN);
    let t = access_token.clone();
    let stored = state
        .store
        .write(move |c| Box::pin(async move { tenants::issue_token(c, &credential, &t, now, expires).await }))
        .await;
    if let Err(e) = stored {
        return super::DocplannerError::from(e).into_response();
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
        json!({"access_token": access_token, "expires_in": EXPIRES_IN, "token_type": "bearer", "scope": "integration"})
            .to_string(),
    )
        .into_response()
}
