//! `/webhooks`: the tenant's Solo webhooks (add, update, list, read,
//! delete). What they receive and how it is encrypted is in [`crate::notify`].
//!
//! A webhook belongs to the tenant: every Solo API key of the tenant sees and
//! changes it; other tenants' ids answer 404. `POST` answers the webhook
//! with its `encryptionKey` (16 random bytes, base64, generated here; stored
//! sealed, never logged); `GET /webhooks/{id}` shows the key again, as the
//! document does, while the list and `PUT` do not. `DELETE` deactivates the
//! webhook and answers 204: it then receives nothing more, is gone from the
//! list, and its id answers 404.
//!
//! | refusal | status |
//! |---|---|
//! | `endpoint` missing, not an absolute `http`/`https` URL, with credentials, longer than 2048 characters, pointing at this server | 400 |
//! | `endpoint` resolving to an internal address (the delivery target guard) | 400 |
//! | `events` missing or empty, over [`MAX_EVENTS`] entries, or naming an event the document does not list (the message names them) | 400 |
//! | more than [`MAX_WEBHOOKS`] active webhooks | 409 |
//! | an unknown id (another tenant's too) | 404 |

use crate::notify::EVENTS;
use crate::{Caller, Json, Path, SoloError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use polyclinic_http::AppState;
use polyclinic_store::solo_webhooks::{self, SoloWebhook};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most active webhooks a tenant may have.
pub const MAX_WEBHOOKS: i64 = 100;
/// Most entries of `events` (the document has twelve; repeats are dropped).
pub const MAX_EVENTS: usize = 100;
/// Longest endpoint URL.
pub const MAX_ENDPOINT_CHARS: usize = 2048;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{webhook_id}", get(read).put(update).delete(remove))
}

/// The body of `POST /webhooks` and `PUT /webhooks/{id}`.
#[derive(Debug, Deserialize)]
pub struct WebhookBody {
    pub endpoint: Option<String>,
    pub events: Option<Vec<String>>,
}

/// A webhook as the document shows it (with its key where it shows it).
fn render(w: &SoloWebhook, key: Option<&str>) -> Value {
    let mut v = json!({"id": w.id, "endpoint": w.endpoint, "events": w.events});
    if let Some(key) = key {
        v["encryptionKey"] = json!(key);
    }
    v
}

/// The events, checked against the document's twelve, duplicates dropped
/// (the first place kept).
pub fn parse_events(events: Option<Vec<String>>) -> Result<Vec<String>, SoloError> {
    let events = events.ok_or_else(|| SoloError::bad_request("Bad parameters [events: missing field `events`]"))?;
    if events.is_empty() {
        return Err(SoloError::bad_request(format!(
            "Bad parameters [events: select at least one event of: {}]",
            EVENTS.join(", ")
        )));
    }
    if events.len() > MAX_EVENTS {
        return Err(SoloError::bad_request(format!("Bad parameters [events: at most {MAX_EVENTS} entries]")));
    }
    let mut unknown: Vec<&str> = Vec::new();
    for e in events.iter().map(String::as_str).filter(|e| !EVENTS.contains(e)) {
        if !unknown.contains(&e) {
            unknown.push(e);
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<String> =
            unknown.iter().take(10).map(|e| format!("`{}`", e.chars().take(64).collect::<String>())).collect();
        return Err(SoloError::bad_request(format!(
            "Bad parameters [events: unknown event{} {}; the events are: {}]",
            if unknown.len() == 1 { "" } else { "s" },
            shown.join(", "),
            EVENTS.join(", ")
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(events.len().min(EVENTS.len()));
    for e in events {
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

/// The endpoint, checked: an absolute http(s) URL with a host, no
/// credentials, not this server, and public unless the operator allows
/// internal targets (checked again at every send).
pub async fn check_endpoint(state: &AppState, endpoint: Option<String>) -> Result<String, SoloError> {
    let endpoint =
        endpoint.ok_or_else(|| SoloError::bad_request("Bad parameters [endpoint: missing field `endpoint`]"))?;
    let endpoint = endpoint.trim().to_owned();
    let bad = |why: &str| SoloError::bad_request(format!("Bad parameters [endpoint: {why}]"));
    if endpoint.is_empty() {
        return Err(bad("it is empty"));
    }
    if endpoint.chars().count() > MAX_ENDPOINT_CHARS {
        return Err(bad(&format!("it is longer than {MAX_ENDPOINT_CHARS} characters")));
    }
    // A webhook must not call the server itself.
    state.check_callback_url(&endpoint).map_err(|refused| bad(&refused.to_string()))?;
    state
        .engine
        .senders()
        .targets
        .check_url(&endpoint)
        .await
        .map_err(|refused| bad(&format!("the endpoint is refused: {refused}")))?;
    Ok(endpoint)
}

/// A fresh `encryptionKey`: 16 random bytes, base64 (24 characters).
fn new_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
}

fn unknown(id: &str) -> SoloError {
    SoloError::not_found(format!("webhook {} not found", id.chars().take(64).collect::<String>()))
}

/// A webhook id from the path: a UUID (any case), or no such webhook.
fn webhook_id(id: &str) -> Result<String, SoloError> {
    uuid::Uuid::parse_str(id).map(|u| u.hyphenated().to_string()).map_err(|_| unknown(id))
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<WebhookBody>,
) -> Result<Response, SoloError> {
    let events = parse_events(body.events)?;
    let endpoint = check_endpoint(&state, body.endpoint).await?;
    let key = new_key();
    let now = state.now();
    let webhook = SoloWebhook {
        id: uuid::Uuid::new_v4().hyphenated().to_string(),
        credential_id: caller.credential.id,
        endpoint,
        events,
        sealed_key: state.store.secret_key().seal(&key),
        active: true,
        created_at: now,
        updated_at: now,
    };
    let tenant = caller.tenant.id;
    let stored = webhook.clone();
    let created = state
        .store
        .write(move |c| {
            Box::pin(async move {
                if solo_webhooks::count_active(c, tenant).await? >= MAX_WEBHOOKS {
                    return Ok(false);
                }
                solo_webhooks::create(c, tenant, &stored).await?;
                Ok(true)
            })
        })
        .await?;
    if !created {
        return Err(SoloError::conflict(format!(
            "a tenant may have at most {MAX_WEBHOOKS} webhooks; delete one first"
        )));
    }
    Ok((StatusCode::CREATED, axum::Json(render(&webhook, Some(&key)))).into_response())
}

async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let all = state.store.read(move |c| Box::pin(async move { solo_webhooks::list(c, tenant).await })).await?;
    Ok(axum::Json(Value::Array(all.iter().map(|w| render(w, None)).collect())).into_response())
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let (tenant, wid) = (caller.tenant.id, webhook_id(&id)?);
    let found = state.store.read(move |c| Box::pin(async move { solo_webhooks::get(c, tenant, &wid).await })).await?;
    let w = found.ok_or_else(|| unknown(&id))?;
    let key = state.store.secret_key().open(&w.sealed_key).map_err(|_| {
        tracing::error!(tenant = tenant.get(), webhook = %w.id, "solo webhook: its key cannot be opened");
        SoloError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log")
    })?;
    Ok(axum::Json(render(&w, Some(&key))).into_response())
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<WebhookBody>,
) -> Result<Response, SoloError> {
    let (tenant, wid) = (caller.tenant.id, webhook_id(&id)?);
    let events = parse_events(body.events)?;
    let endpoint = check_endpoint(&state, body.endpoint).await?;
    let now = state.now();
    let updated = state
        .store
        .write(move |c| Box::pin(async move { solo_webhooks::update(c, tenant, &wid, &endpoint, &events, now).await }))
        .await?;
    let w = updated.ok_or_else(|| unknown(&id))?;
    Ok(axum::Json(render(&w, None)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let (tenant, wid) = (caller.tenant.id, webhook_id(&id)?);
    let now = state.now();
    let existed = state
        .store
        .write(move |c| Box::pin(async move { solo_webhooks::deactivate(c, tenant, &wid, now).await }))
        .await?;
    if !existed {
        return Err(unknown(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_the_documents_twelve() {
        let ok = parse_events(Some(vec![
            "appointment:scheduled".into(),
            "patient:created".into(),
            "appointment:scheduled".into(),
        ]))
        .unwrap();
        assert_eq!(ok, ["appointment:scheduled", "patient:created"]);
        let e = parse_events(Some(vec!["appointment:scheduled".into(), "appointment:booked".into(), "x".into()]))
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("unknown events `appointment:booked`, `x`"), "{}", e.message);
        assert!(parse_events(Some(vec![])).unwrap_err().message.contains("at least one"));
        assert!(parse_events(None).unwrap_err().message.contains("missing field `events`"));
        let many = vec!["patient:created".to_owned(); MAX_EVENTS + 1];
        assert!(parse_events(Some(many)).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn keys_are_16_random_bytes_in_base64() {
        let (a, b) = (new_key(), new_key());
        assert_eq!(a.len(), 24);
        assert!(a.ends_with("=="));
        assert_ne!(a, b);
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(&a).unwrap().len(), 16);
    }
}
