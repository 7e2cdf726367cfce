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
//! Built so far: tokens, facilities, doctors, addresses, the service
//! dictionary. See docs/dialects/docplanner.md for what remains.

pub mod catalog;
pub mod oauth;

use crate::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use polyclinic_core::tenant::{Credential, Tenant};
use polyclinic_store::tenants::{self, TokenProblem};
use serde_json::{Value, json};

/// Success media type.
pub const CONTENT_TYPE: &str = "application/vnd.docplanner+json; charset=UTF-8";
/// Error media type.
pub const ERROR_CONTENT_TYPE: &str = "application/vnd.error+docplanner+json";

/// The API routes (mounted under `/api/v3/integration`).
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .merge(catalog::routes())
        .fallback(|| async { DocplannerError::not_found() })
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
    let now = state.now();
    let found = state
        .store
        .read(move |c| {
            Box::pin(async move {
                match tenants::token_credential(c, &token, now).await? {
                    Ok(cred) => Ok(Ok((tenants::get(c, cred.tenant_id).await?, cred))),
                    Err(p) => Ok(Err(p)),
                }
            })
        })
        .await;
    match found {
        Ok(Ok((tenant, credential))) => {
            req.extensions_mut().insert(Client { tenant, credential });
            next.run(req).await
        }
        Ok(Err(TokenProblem::Expired)) => {
            oauth::error(StatusCode::UNAUTHORIZED, "invalid_grant", "The access token provided has expired.")
        }
        Ok(Err(TokenProblem::Unknown)) => {
            oauth::error(StatusCode::UNAUTHORIZED, "invalid_grant", "The access token provided is invalid.")
        }
        Err(e) => DocplannerError::from(e).into_response(),
    }
}

/// A success body.
pub fn ok(body: Value) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string()).into_response()
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
}

impl From<polyclinic_store::StoreError> for DocplannerError {
    fn from(e: polyclinic_store::StoreError) -> Self {
        let api = crate::error::ApiError::from(e);
        DocplannerError::new(api.status, api.message)
    }
}

impl IntoResponse for DocplannerError {
    fn into_response(self) -> Response {
        let body = json!({"errors": self.errors, "message": self.message});
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
