//! `SubscriptionTopic` and `Subscription` endpoints, with every error code the
//! spec lists for them.

use super::notify::{self, TOPICS, notification_bundle, status_resource, topic_resource};
use super::{Caller, EmbassyError, FhirJson, fhir};
use super::{Path, Query};
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use polyclinic_fhir::{operation_outcome, searchset};
use polyclinic_http::AppState;
use polyclinic_http::callback::CallbackRefused;
use polyclinic_store::deliveries;
use polyclinic_store::seal::SecretKey;
use polyclinic_store::subscriptions::{self, Subscription};
use serde::Deserialize;
use serde_json::{Value, json};

/// FHIR's subscription channel types (R4 `subscription-channel-type`).
const FHIR_CHANNEL_TYPES: [&str; 5] = ["rest-hook", "websocket", "email", "sms", "message"];
/// FHIR's subscription statuses.
const FHIR_STATUSES: [&str; 4] = ["requested", "active", "error", "off"];
/// The backport IG's heartbeat extension.
const HEARTBEAT_EXT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period";
const PAYLOAD_CONTENT_EXT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";
/// Most `channel.header` lines.
const MAX_HEADERS: usize = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/SubscriptionTopic", get(list_topics))
        .route("/SubscriptionTopic/{id}", get(get_topic))
        .route("/Subscription", get(list).post(create).delete(delete_all))
        .route("/Subscription/$status", get(status_all))
        .route("/Subscription/{id}", get(read).delete(delete_one).patch(patch))
        .route("/Subscription/{id}/$status", get(status_one))
        .route("/Subscription/{id}/$events", get(events))
}

fn base(state: &AppState) -> String {
    format!("{}/embassy", state.public_url)
}

async fn list_topics(State(state): State<AppState>) -> Response {
    let base = base(&state);
    let topics: Vec<Value> = TOPICS.iter().filter_map(|t| topic_resource(&base, t.0)).collect();
    let n = topics.len();
    fhir(StatusCode::OK, searchset(topics, Some(n), vec![("self", format!("{base}/SubscriptionTopic"))]))
}

async fn get_topic(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, EmbassyError> {
    let n: i64 = id.parse().map_err(|_| {
        EmbassyError::invalid("SubscriptionTopicIdNotAValidInteger", format!("`{id}` is not an integer topic id"))
    })?;
    let topic = topic_resource(&base(&state), n).ok_or_else(|| {
        EmbassyError::not_found("SubscriptionTopicNotFound", format!("subscription topic {n} does not exist"))
    })?;
    Ok(fhir(StatusCode::OK, topic))
}

/// `channel.header` as the API key that set it sees it: `Key=Value` lines,
/// the sealed values opened under `key`. A value that cannot be opened (the
/// server key changed) shows as `***`.
fn header_lines(s: &Subscription, key: &SecretKey) -> Vec<String> {
    s.headers
        .iter()
        .map(|(k, v)| match deliveries::open_header(key, v) {
            Ok(clear) => format!("{k}={clear}"),
            Err(e) => {
                tracing::warn!(subscription = s.id, header = %k, error = %e, "a sealed channel header could not be opened");
                format!("{k}=***")
            }
        })
        .collect()
}

/// The Subscription resource as Embassy shows it (to the API key that owns it).
pub fn resource(s: &Subscription, key: &SecretKey) -> Value {
    let mut channel = json!({
        "extension": [{"url": HEARTBEAT_EXT, "valueUnsignedInt": s.heartbeat_seconds}],
        "type": s.channel_type,
        "endpoint": s.endpoint,
        "payload": s.payload,
        "_payload": {"extension": [{"url": PAYLOAD_CONTENT_EXT, "valueCode": "id-only"}]},
    });
    if !s.headers.is_empty() {
        channel["header"] = json!(header_lines(s, key));
    }
    let mut r = json!({"resourceType": "Subscription", "id": s.id.to_string(), "status": s.status});
    r["reason"] = json!(s.reason.clone().unwrap_or_default());
    r["criteria"] = json!(s.criteria);
    if s.status == "error" {
        r["error"] = json!(format!("{} failed notification attempt(s)", s.error_count));
    }
    r["channel"] = channel;
    r
}

/// A parsed and validated subscription request.
struct Draft {
    topic: i64,
    channel_type: String,
    endpoint: String,
    payload: String,
    headers: Vec<(String, String)>,
    criteria: String,
    reason: Option<String>,
    heartbeat_seconds: i64,
}

fn parse_draft(state: &AppState, body: &Value) -> Result<Draft, EmbassyError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Subscription") {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the body must be a Subscription resource"));
    }
    if let Some(status) = body.get("status") {
        let s = status.as_str().unwrap_or("");
        if !FHIR_STATUSES.contains(&s) {
            return Err(EmbassyError::invalid(
                "SubscriptionStatusNotValid",
                format!("`{status}` is not a subscription status"),
            ));
        }
        if s != "requested" {
            return Err(EmbassyError::unprocessable(
                "SubscriptionStatusNotValid",
                format!("a new subscription must have status `requested`, not `{s}`"),
            ));
        }
    }
    let channel = body
        .get("channel")
        .filter(|c| c.is_object())
        .ok_or_else(|| EmbassyError::invalid("InvalidFhirResource", "Subscription.channel is required"))?;
    let channel_type = channel.get("type").and_then(Value::as_str).unwrap_or("");
    if !FHIR_CHANNEL_TYPES.contains(&channel_type) {
        return Err(EmbassyError::invalid(
            "ChannelTypeMustBeAValidType",
            format!("`{channel_type}` is not a FHIR subscription channel type"),
        ));
    }
    if channel_type != "rest-hook" && channel_type != "email" {
        return Err(EmbassyError::unprocessable(
            "ChannelTypeMustBeASupportedType",
            format!("channel type `{channel_type}` is not supported; use rest-hook or email"),
        ));
    }
    let endpoint = channel.get("endpoint").and_then(Value::as_str).unwrap_or("").trim().to_owned();
    check_endpoint(state, channel_type, &endpoint)?;
    let payload = channel.get("payload").and_then(Value::as_str).unwrap_or("application/fhir+json").to_owned();
    if polyclinic_fhir::Format::from_media_type(&payload).is_none() || !payload.starts_with("application/fhir+") {
        return Err(EmbassyError::unprocessable(
            "ChannelPayloadNotSupported",
            format!("payload `{payload}` is not supported; use application/fhir+json or application/fhir+xml"),
        ));
    }
    let headers = parse_headers(channel.get("header"))?;
    let criteria = body.get("criteria").and_then(Value::as_str).unwrap_or("").trim().to_owned();
    let last = criteria.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let topic: i64 = last.parse().map_err(|_| {
        EmbassyError::unprocessable(
            "SubscriptionTopicIdNotAValidInteger",
            format!("the criteria `{criteria}` must end with the integer id of a subscription topic"),
        )
    })?;
    if notify::topic_title(topic).is_none() {
        return Err(EmbassyError::unprocessable(
            "SubscriptionTopicNotFound",
            format!("subscription topic {topic} does not exist"),
        ));
    }
    let heartbeat_seconds = match heartbeat_period(channel)? {
        Some(p) => p,
        // The operator's default, held to the same floor.
        None => match state.heartbeat_seconds {
            d if d <= 0 => 0,
            d => d.max(MIN_HEARTBEAT_SECONDS),
        },
    };
    let reason = body.get("reason").and_then(Value::as_str).map(str::to_owned);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 1024) {
        return Err(EmbassyError::invalid("InvalidFhirResource", "Subscription.reason is longer than 1024 characters"));
    }
    Ok(Draft {
        topic,
        channel_type: channel_type.to_owned(),
        endpoint,
        payload: if payload.contains("xml") { "application/fhir+xml".into() } else { "application/fhir+json".into() },
        headers,
        criteria,
        reason,
        heartbeat_seconds,
    })
}

/// The shortest heartbeat period accepted, in seconds (0 turns heartbeats
/// off): a shorter one would make heartbeats most of the delivery traffic.
pub const MIN_HEARTBEAT_SECONDS: i64 = 60;

/// The longest heartbeat period; a longer one is shortened to it.
const MAX_HEARTBEAT_SECONDS: i64 = 7 * 24 * 3600;

/// The heartbeat period asked for, from the backport extension or R5's
/// `heartbeatPeriod` (`None`: not given): whole seconds, 0 (none) or at
/// least [`MIN_HEARTBEAT_SECONDS`]; a period over [`MAX_HEARTBEAT_SECONDS`]
/// is shortened to it.
fn heartbeat_period(channel: &Value) -> Result<Option<i64>, EmbassyError> {
    let ext = channel.get("extension").and_then(Value::as_array).and_then(|exts| {
        exts.iter()
            .find(|e| e.get("url").and_then(Value::as_str).is_some_and(|u| u.ends_with("backport-heartbeat-period")))
    });
    let given = match ext {
        Some(e) => e.get("valueUnsignedInt").or_else(|| e.get("valueInteger")).or_else(|| e.get("valuePositiveInt")),
        None => channel.get("heartbeatPeriod"),
    };
    let Some(given) = given else { return Ok(None) };
    let invalid = |why: String| EmbassyError::invalid("InvalidFhirResource", why);
    match given.as_i64() {
        None => Err(invalid(format!(
            "the heartbeat period `{given}` is not a whole number of seconds (at least {MIN_HEARTBEAT_SECONDS}, or 0: no heartbeats)"
        ))),
        Some(p) if p < 0 => Err(invalid(format!(
            "the heartbeat period {p} is negative: give whole seconds, at least {MIN_HEARTBEAT_SECONDS} (0: no heartbeats)"
        ))),
        Some(p) if p > 0 && p < MIN_HEARTBEAT_SECONDS => Err(invalid(format!(
            "the heartbeat period of {p} s is too short: it must be at least {MIN_HEARTBEAT_SECONDS} s (0: no heartbeats)"
        ))),
        Some(p) => Ok(Some(p.min(MAX_HEARTBEAT_SECONDS))),
    }
}

fn check_endpoint(state: &AppState, channel_type: &str, endpoint: &str) -> Result<(), EmbassyError> {
    let bad = |why: &str| {
        EmbassyError::unprocessable("ChannelEndpointInvalid", format!("the endpoint `{endpoint}` is invalid: {why}"))
    };
    if endpoint.is_empty() {
        return Err(bad("it is missing"));
    }
    if endpoint.len() > 2048 {
        return Err(bad("it is longer than 2048 characters"));
    }
    if channel_type == "email" {
        let address =
            endpoint.strip_prefix("mailto:").ok_or_else(|| bad("an email endpoint must start with mailto:"))?;
        polyclinic_core::text::Email::parse(address).map_err(|_| bad("not an e-mail address"))?;
        return Ok(());
    }
    // A subscription must not notify the server itself (a loop).
    state.check_callback_url(endpoint).map_err(|refused| match refused {
        CallbackRefused::NotAUrl => bad("not a URL"),
        CallbackRefused::NotHttp => bad("a rest-hook endpoint must be an http or https URL"),
        CallbackRefused::Credentials => bad("credentials in the URL are not accepted; use channel.header"),
        other => bad(&other.to_string()),
    })?;
    Ok(())
}

/// Refuses a rest-hook endpoint whose host is (or resolves to) an internal
/// address, unless the operator allows it (see `polyclinic_delivery::targets`).
async fn check_target(state: &AppState, s: &Subscription) -> Result<(), EmbassyError> {
    if s.channel_type != "rest-hook" {
        return Ok(());
    }
    state.engine.senders().targets.check_url(&s.endpoint).await.map_err(|refused| {
        EmbassyError::unprocessable(
            "ChannelEndpointInvalid",
            format!("the endpoint `{}` is invalid: {refused}", s.endpoint),
        )
    })
}

/// `channel.header` lines as (name, value) pairs, values in clear.
fn parse_headers(header: Option<&Value>) -> Result<Vec<(String, String)>, EmbassyError> {
    let Some(value) = header else { return Ok(Vec::new()) };
    let lines: Vec<&str> = match value {
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    EmbassyError::invalid("InvalidFhirResource", "channel.header entries must be strings")
                })
            })
            .collect::<Result<_, _>>()?,
        Value::String(s) => vec![s.as_str()],
        _ => return Err(EmbassyError::invalid("InvalidFhirResource", "channel.header must be a list of strings")),
    };
    if lines.len() > MAX_HEADERS {
        return Err(EmbassyError::unprocessable("ChannelHeaderInvalid", format!("at most {MAX_HEADERS} headers")));
    }
    let mut parsed = Vec::with_capacity(lines.len());
    for line in &lines {
        let (k, v) = line.split_once('=').ok_or_else(|| {
            EmbassyError::unprocessable(
                "ContainsNoDelimeter",
                format!("the header `{line}` is not in the format Key=Value"),
            )
        })?;
        let (k, v) = (k.trim(), v.trim());
        let valid = HeaderName::from_bytes(k.as_bytes()).is_ok() && HeaderValue::from_str(v).is_ok() && !k.is_empty();
        let reserved = ["content-type", "content-length", "host", "transfer-encoding", "connection"];
        if !valid || reserved.contains(&k.to_ascii_lowercase().as_str()) {
            return Err(EmbassyError::unprocessable(
                "ChannelHeaderInvalid",
                format!("`{k}` cannot be sent as a header"),
            ));
        }
        parsed.push((k.to_owned(), v.to_owned()));
    }
    Ok(parsed)
}

/// POSTs a handshake to a rest-hook subscription's endpoint; answers whether
/// the endpoint took it (2xx). The attempt is recorded as a delivery.
async fn handshake(state: &AppState, caller: &Caller, s: &Subscription) -> Result<bool, EmbassyError> {
    if s.channel_type != "rest-hook" {
        return Ok(true);
    }
    let mut shaking = s.clone();
    shaking.status = "requested".into();
    let bundle = notification_bundle(&base(state), &shaking, "handshake", &[], state.now());
    let delivery = notify::delivery_for(&shaking, "handshake", &bundle);
    let attempt = state.engine.send_now(caller.tenant.id, delivery).await?;
    Ok(attempt.ok)
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let draft = parse_draft(&state, &body)?;
    let now = state.now();
    let key = state.store.secret_key().clone();
    let s = Subscription {
        id: 0,
        credential_id: caller.credential.id,
        topic: draft.topic,
        status: "requested".into(),
        reason: draft.reason,
        channel_type: draft.channel_type,
        endpoint: draft.endpoint,
        payload: draft.payload,
        // Sealed at rest and in every delivery; the engine opens them to send.
        headers: draft.headers.into_iter().map(|(k, v)| (k, deliveries::sealed_header(&key, &v))).collect(),
        criteria: draft.criteria,
        heartbeat_seconds: draft.heartbeat_seconds,
        events_since_start: 0,
        error_count: 0,
        last_sent_at: now,
        created_at: now,
    };
    check_target(&state, &s).await?;
    let tenant = caller.tenant.id;
    let created =
        state.store.write(move |c| Box::pin(async move { subscriptions::create(c, tenant, s).await })).await.map_err(
            |e| match e {
                polyclinic_store::StoreError::Core(polyclinic_core::CoreError::AlreadyExists { .. }) => {
                    EmbassyError::unprocessable(
                        "SubscriptionTopicNotUnique",
                        "this API key already has a subscription for the topic",
                    )
                }
                other => other.into(),
            },
        )?;
    let id = created.id;
    if !handshake(&state, &caller, &created).await? {
        let credential = caller.credential.id;
        state
            .store
            .write(move |c| Box::pin(async move { subscriptions::delete(c, tenant, credential, id).await }))
            .await?;
        return Err(EmbassyError::unprocessable(
            "SubscriptionHandshakeFailed",
            "the handshake sent to the channel endpoint did not get a 2xx answer",
        ));
    }
    state
        .store
        .write(move |c| Box::pin(async move { subscriptions::set_status(c, tenant, id, "active").await }))
        .await?;
    let mut active = created;
    active.status = "active".into();
    let location = format!("{}/Subscription/{}", base(&state), id);
    let mut response = fhir(StatusCode::CREATED, resource(&active, &key));
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn parse_id(id: &str) -> Result<i64, EmbassyError> {
    id.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        EmbassyError::not_found(
            "SubscriptionNotFound",
            format!("subscription with id {id} was not found on the customer"),
        )
    })
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Subscription, EmbassyError> {
    let n = parse_id(id)?;
    let (tenant, credential) = (caller.tenant.id, caller.credential.id);
    state
        .store
        .read(move |c| Box::pin(async move { subscriptions::get(c, tenant, credential, n).await }))
        .await?
        .ok_or_else(|| {
            EmbassyError::not_found(
                "SubscriptionNotFound",
                format!("subscription with id {id} was not found on the customer"),
            )
        })
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    Ok(fhir(StatusCode::OK, resource(&load(&state, &caller, &id).await?, state.store.secret_key())))
}

async fn list_all(state: &AppState, caller: &Caller) -> Result<Vec<Subscription>, EmbassyError> {
    let (tenant, credential) = (caller.tenant.id, caller.credential.id);
    Ok(state.store.read(move |c| Box::pin(async move { subscriptions::list(c, tenant, credential).await })).await?)
}

async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, EmbassyError> {
    let all = list_all(&state, &caller).await?;
    let n = all.len();
    Ok(fhir(
        StatusCode::OK,
        searchset(
            all.iter().map(|s| resource(s, state.store.secret_key())).collect(),
            Some(n),
            vec![("self", format!("{}/Subscription", base(&state)))],
        ),
    ))
}

async fn status_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let s = load(&state, &caller, &id).await?;
    let b = base(&state);
    Ok(fhir(StatusCode::OK, searchset(vec![status_resource(&b, &s, "query-status", &[], "id-only")], Some(1), vec![])))
}

async fn status_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, EmbassyError> {
    let all = list_all(&state, &caller).await?;
    let b = base(&state);
    let n = all.len();
    Ok(fhir(
        StatusCode::OK,
        searchset(
            all.iter().map(|s| status_resource(&b, s, "query-status", &[], "id-only")).collect(),
            Some(n),
            vec![],
        ),
    ))
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(rename = "eventsSinceNumber")]
    since: Option<String>,
    #[serde(rename = "eventsUntilNumber")]
    until: Option<String>,
    content: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Response, EmbassyError> {
    let s = load(&state, &caller, &id).await?;
    let number = |v: Option<String>, name: &str, default: i64| -> Result<i64, EmbassyError> {
        match v {
            None => Ok(default),
            Some(t) => t.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                EmbassyError::invalid("InvalidParameter", format!("{name} must be a non-negative integer, not `{t}`"))
            }),
        }
    };
    let since = number(q.since, "eventsSinceNumber", 1)?;
    let until = number(q.until, "eventsUntilNumber", s.events_since_start)?;
    let content = q.content.unwrap_or_else(|| "id-only".into());
    if content != "id-only" && content != "empty" {
        return Err(EmbassyError::invalid(
            "PayloadContentNotSupported",
            format!("content `{content}` is not supported; use id-only or empty"),
        ));
    }
    let (tenant, sid) = (caller.tenant.id, s.id);
    let events = state
        .store
        .read(move |c| Box::pin(async move { subscriptions::events(c, tenant, sid, since, until).await }))
        .await?;
    let b = base(&state);
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "history",
        "entry": [{"resource": status_resource(&b, &s, "query-event", &events, &content)}]
    });
    Ok(fhir(StatusCode::OK, bundle))
}

fn deleted(message: String) -> Response {
    fhir(StatusCode::OK, operation_outcome("information", "informational", "Deleted", &message))
}

async fn delete_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, EmbassyError> {
    let (tenant, credential) = (caller.tenant.id, caller.credential.id);
    let n = state
        .store
        .write(move |c| Box::pin(async move { subscriptions::delete_all(c, tenant, credential).await }))
        .await?;
    Ok(deleted(format!("{n} subscription(s) deleted")))
}

async fn delete_one(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let s = load(&state, &caller, &id).await?;
    let (tenant, credential, sid) = (caller.tenant.id, caller.credential.id, s.id);
    state
        .store
        .write(move |c| Box::pin(async move { subscriptions::delete(c, tenant, credential, sid).await }))
        .await?;
    Ok(deleted(format!("subscription {sid} deleted")))
}

async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let ops = super::patch_ops(&body)?;
    let mut s = load(&state, &caller, &id).await?;
    let mut target: Option<String> = None;
    for op in &ops {
        let path = op.path.as_deref().unwrap_or("");
        let path_ok = matches!(path, "/status" | "Subscription.status" | "status");
        if op.kind.as_deref() != Some("replace") || !path_ok {
            return Err(EmbassyError::unprocessable(
                "ParameterTypeAndPathCombinationNotSupported",
                format!(
                    "type `{}` with path `{path}` is not supported; only replace of /status is",
                    op.kind.as_deref().unwrap_or("")
                ),
            ));
        }
        let value = op.value.as_ref().and_then(Value::as_str).unwrap_or("");
        if value != "active" && value != "off" {
            return Err(EmbassyError::unprocessable(
                "SubscriptionStatusNotValid",
                format!("a subscription's status can be set to active or off, not `{value}`"),
            ));
        }
        target = Some(value.to_owned());
    }
    let target = target.unwrap_or_else(|| s.status.clone());
    if target == "active" && s.status != "active" {
        check_target(&state, &s).await?;
    }
    if target == "active" && s.status != "active" && !handshake(&state, &caller, &s).await? {
        return Err(EmbassyError::unprocessable(
            "SubscriptionHandshakeFailed",
            "the handshake sent to the channel endpoint did not get a 2xx answer",
        ));
    }
    let (tenant, sid, status) = (caller.tenant.id, s.id, target.clone());
    state
        .store
        .write(move |c| Box::pin(async move { subscriptions::set_status(c, tenant, sid, &status).await }))
        .await?;
    if target == "active" {
        s.error_count = 0;
    }
    s.status = target;
    Ok(fhir(StatusCode::OK, resource(&s, state.store.secret_key())))
}
