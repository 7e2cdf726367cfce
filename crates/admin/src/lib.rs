//! The admin API, exactly per the contract in DESIGN.md: seed, test clock,
//! run-due, messages, deliveries, and the web UI. Every route but the UI page
//! needs `Authorization: Bearer <admin token>`.

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use polyclinic_http::AppState;
use polyclinic_http::error::{ApiError, Json};
use polyclinic_http::hash_token;
use polyclinic_store::seed::{self, SeedDoc, SeedResult};
use polyclinic_store::tenants;
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// The admin routes (mounted under `/admin`).
pub fn router(state: AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/seed", post(seed_handler))
        .route("/clock", post(clock_handler))
        .route("/run-due", post(run_due))
        .route("/messages", get(messages))
        .route("/deliveries", get(deliveries))
        .route("/tenants", get(tenants_handler))
        .route_layer(middleware::from_fn_with_state(state, require_admin));
    Router::new().route("/", get(ui)).merge(protected)
}

async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let subjects: Vec<_> = polyclinic_http::throttle::peer_of(&req).into_iter().collect();
    if let Err(retry_after) = state.auth_locked(&subjects) {
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many requests with an invalid admin token; try again later",
        )
        .into_response();
        r.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from(retry_after));
        return r;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match presented {
        Some(token) if bool::from(hash_token(token).ct_eq(&state.admin_token_hash[..])) => next.run(req).await,
        Some(_) => {
            state.auth_failed(&subjects);
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "the admin token is not valid").into_response()
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send Authorization: Bearer <admin token>")
            .into_response(),
    }
}

async fn seed_handler(
    State(state): State<AppState>,
    Json(doc): Json<SeedDoc>,
) -> Result<axum::Json<SeedResult>, ApiError> {
    Ok(axum::Json(apply_seed(&state, doc).await?))
}

/// Loads a seed document as one command. PUSH URLs are checked against the
/// delivery target policy first (DNS is not resolved inside the transaction).
pub async fn apply_seed(state: &AppState, doc: SeedDoc) -> Result<SeedResult, ApiError> {
    check_push_urls(state, &doc).await?;
    let now = state.now();
    let key = state.store.secret_key().clone();
    let loaded = state.store.write(move |c| Box::pin(async move { seed::load(c, &doc, now, &key).await })).await?;
    // Committed: what this node keeps in memory of tenants, credentials and
    // the catalogue is stale (polyclinic_http::cache).
    polyclinic_http::cache::changed();
    Ok(loaded)
}

/// Refuses a seed whose credentials name a PUSH URL on an internal address
/// (unless the operator allows it), before anything is written.
async fn check_push_urls(state: &AppState, doc: &SeedDoc) -> Result<(), ApiError> {
    let targets = &state.engine.senders().targets;
    let urls: std::collections::BTreeSet<&str> =
        doc.tenants.iter().flat_map(|t| &t.credentials).filter_map(|c| c.push_url.as_deref()).collect();
    for url in urls {
        targets.check_url(url).await.map_err(|refused| {
            polyclinic_core::CoreError::invalid("credentials.push_url", format!("`{url}` is refused: {refused}"))
        })?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    now: Option<String>,
    advance_seconds: Option<i64>,
}

async fn clock_handler(
    State(state): State<AppState>,
    Json(body): Json<ClockBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let clock = state
        .test_clock
        .as_ref()
        .ok_or_else(|| ApiError::not_found("the test clock is off; start with --test-clock"))?;
    match (body.now, body.advance_seconds) {
        (Some(now), None) => {
            let t: Timestamp = now.parse().map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", format!("`now` must be an RFC 3339 instant: {e}"))
            })?;
            if !polyclinic_core::clock::in_range(t) {
                return Err(out_of_range("now"));
            }
            clock.set(t);
        }
        (None, Some(secs)) => {
            clock.advance(secs).ok_or_else(|| out_of_range("advance_seconds"))?;
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                "send exactly one of `now` or `advance_seconds`",
            ));
        }
    }
    // The engine sleeps until the next due instant of the clock it reads:
    // a moved clock may have brought work due.
    state.engine.wake();
    Ok(axum::Json(json!({"now": state.now().to_string()})))
}

/// 400 for a clock setting outside the instants the server supports (an
/// engine adding a retry delay to such a "now" would overflow).
fn out_of_range(field: &str) -> ApiError {
    use polyclinic_core::clock::{EARLIEST, LATEST};
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid",
        format!("`{field}` leaves the supported time range {EARLIEST} to {LATEST}"),
    )
}

async fn run_due(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    if state.test_clock.is_none() {
        return Err(ApiError::not_found("the test clock is off; start with --test-clock"));
    }
    // Every piece of time-driven work is a due job or a delivery: the jobs
    // due now (reminders, check-ins, delay estimates, heartbeats, token
    // expiry), the fan-out of new events, first sends and retries due now.
    let ran = state.engine.run_due().await?;
    Ok(axum::Json(json!({"now": state.now().to_string(), "ran": {"jobs": ran.jobs, "deliveries": ran}})))
}

#[derive(Deserialize)]
struct TenantQuery {
    tenant: Option<String>,
}

async fn tenant_id(state: &AppState, q: TenantQuery) -> Result<polyclinic_core::TenantId, ApiError> {
    let key = q.tenant.ok_or_else(|| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", "the `tenant` query parameter (a seed key) is required")
    })?;
    let k = key.clone();
    let tenant = state.store.read(move |c| Box::pin(async move { tenants::by_key(c, &k).await })).await?;
    tenant.map(|t| t.id).ok_or_else(|| ApiError::not_found(format!("no tenant with key `{key}`")))
}

async fn messages(State(state): State<AppState>, Query(q): Query<TenantQuery>) -> Result<axum::Json<Value>, ApiError> {
    let id = tenant_id(&state, q).await?;
    let key = state.store.secret_key().clone();
    let rows =
        state.store.read(move |c| Box::pin(async move { polyclinic_store::messages::list(c, id, &key).await })).await?;
    Ok(axum::Json(json!(rows)))
}

/// `GET /admin/deliveries`: without `limit` and `cursor`, every delivery as a
/// JSON array (the contract's answer); with either, one page in id order as
/// `{"deliveries": [...], "next_cursor": "..." | null}`, where the opaque
/// `next_cursor` asks for the page after it (`null`: this was the last).
#[derive(Deserialize)]
struct DeliveriesQuery {
    tenant: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// Deliveries a page holds when `cursor` comes without `limit`.
const DELIVERIES_PAGE: i64 = 100;
/// The largest `limit`.
const DELIVERIES_PAGE_MAX: i64 = 1000;
/// What every cursor starts with (its version).
const CURSOR_PREFIX: &str = "d1.";

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
}

/// The page size asked for: an integer from 1 to [`DELIVERIES_PAGE_MAX`].
fn page_limit(limit: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = limit else { return Ok(DELIVERIES_PAGE) };
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=DELIVERIES_PAGE_MAX).contains(&n) => Ok(n),
        _ => {
            let shown: String = raw.chars().take(40).collect();
            Err(bad_request(format!("`limit` must be an integer from 1 to {DELIVERIES_PAGE_MAX}, not `{shown}`")))
        }
    }
}

/// The cursor of the page after the delivery `id`.
fn encode_cursor(id: i64) -> String {
    format!("{CURSOR_PREFIX}{:016x}", id as u64)
}

/// The delivery a cursor points after.
fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    cursor
        .strip_prefix(CURSOR_PREFIX)
        .filter(|hex| hex.len() == 16)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|id| id as i64)
        .ok_or_else(|| {
            let shown: String = cursor.chars().take(40).collect();
            bad_request(format!(
                "`cursor` `{shown}` is not a cursor this server gave: pass the `next_cursor` of the previous page as it is"
            ))
        })
}

async fn deliveries(
    State(state): State<AppState>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    if q.limit.is_none() && q.cursor.is_none() {
        let id = tenant_id(&state, TenantQuery { tenant: q.tenant }).await?;
        let rows = state.store.read(move |c| Box::pin(async move { tenants::deliveries(c, id).await })).await?;
        return Ok(axum::Json(json!(rows)));
    }
    let limit = page_limit(q.limit.as_deref())?;
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let id = tenant_id(&state, TenantQuery { tenant: q.tenant }).await?;
    // One more than the page, to know whether another page follows.
    let mut rows = state
        .store
        .read(move |c| Box::pin(async move { tenants::deliveries_page(c, id, after, Some(limit + 1)).await }))
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            let id: i64 = last.id.parse().map_err(|_| {
                ApiError::from(polyclinic_store::StoreError::Corrupt(format!("delivery id `{}`", last.id)))
            })?;
            Some(encode_cursor(id))
        }
        _ => None,
    };
    Ok(axum::Json(json!({"deliveries": rows, "next_cursor": next})))
}

async fn tenants_handler(State(state): State<AppState>) -> Result<axum::Json<Value>, ApiError> {
    let all = state.store.read(|c| Box::pin(async move { tenants::list(c).await })).await?;
    Ok(axum::Json(json!(
        all.iter()
            .map(|t| json!({"id": t.id.to_string(), "key": t.key, "name": t.name, "country": t.country,
                        "language": t.language, "timezone": t.timezone}))
            .collect::<Vec<_>>()
    )))
}

/// The admin web UI page (public: it asks for the token in the browser).
pub async fn ui() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(include_str!("admin_ui.html")))
}
