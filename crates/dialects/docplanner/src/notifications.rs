//! Docplanner notifications: the delivery [`Router`] that turns domain events
//! into Docplanner notifications for every API client that sees the address,
//! and the PULL endpoints (`GET /notifications`, `GET /notifications/multiple`)
//! and `POST /notifications/release`.
//!
//! A notification is `{"name", "data": {"facility", "doctor", "address", ...},
//! "created_at"}`, rendered once per client in the dispatch transaction (so a
//! booking shows its state when the event is dispatched, normally at once).
//! A client with a push URL gets it as a delivery (PUSH: an HTTP POST of the
//! JSON, with the client's API key in [`API_KEY_HEADER`] when one is set,
//! retried after 1, 5 and 15 minutes); a client without one gets it in its
//! PULL queue ([`polyclinic_store::docplanner_queue`]).
//!
//! | domain event | notification |
//! |---|---|
//! | `AppointmentCreated` | `slot-booked` |
//! | `AppointmentCancelled` | `booking-canceled` |
//! | `AppointmentMoved` (a Docplanner move, or a new time through any dialect) | `booking-moved` |
//! | `AppointmentConfirmed` | `booking-confirmed` |
//! | `PresenceMarked` | `presence-marked` |
//! | `BreakCreated`, `BreakMoved`, `BreakRemoved` | `break-created`, `break-moved`, `break-removed` |
//! | `AddressServiceCreated`, `…Changed`, `…Deleted` | `address-service-created`, `-changed`, `-deleted` |
//! | `AddressAssigned`, `AddressUnassigned` | `address-assigned`, `address-unassigned` |
//! | `AddressCommercialTypeChanged` | `address-commercial-type-changed` |

use super::address_services::address_service_json;
use super::bookings::{BookingView, load_view, visit_booking_json};
use super::catalog::{address_json, doctor_ref, facility_json};
use super::{Client, DocplannerError, format_time, no_content};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::event::EventKind;
use polyclinic_core::facility::{Address, AddressService};
use polyclinic_core::schedule::{CalendarBreak, Interval};
use polyclinic_core::tenant::Credential;
use polyclinic_core::{AppointmentId, TenantId};
use polyclinic_http::AppState;
use polyclinic_store::deliveries::{Channel, NewDelivery};
use polyclinic_store::docplanner_queue::{self, Release};
use polyclinic_store::outbox::{StoredEvent, id_in};
use polyclinic_store::seal::SecretKey;
use polyclinic_store::{Conn, StoreResult, catalog, tenants};
use serde_json::{Map, Value, json};

/// The header that carries a PUSH client's API key.
pub const API_KEY_HEADER: &str = "X-Api-Key";
/// Retries of a PUSH delivery, in seconds after each failed attempt.
pub const PUSH_RETRY_SCHEDULE: [i64; 3] = [60, 300, 900];
/// How often a client may release its failed notifications, in seconds.
pub const RELEASE_PERIOD_SECONDS: i64 = 3600;
/// Most notifications one `GET /notifications/multiple` answers.
pub const MAX_PULL: i64 = 100;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(pull_one))
        .route("/notifications/multiple", get(pull_multiple))
        .route("/notifications/release", post(release))
}

// ------------------------------------------------------------------ PULL

fn nothing_queued() -> DocplannerError {
    DocplannerError::new(StatusCode::NOT_FOUND, "No notifications found")
}

async fn pull(state: &AppState, client: &Client, limit: i64) -> Result<docplanner_queue::Pulled, DocplannerError> {
    let (tenant, credential, now) = (client.tenant.id, client.credential.id, state.now());
    Ok(state
        .store
        .write(move |c| Box::pin(async move { docplanner_queue::pull(c, tenant, credential, now, limit).await }))
        .await?)
}

/// `GET /notifications`: the oldest notification, taken off the queue.
async fn pull_one(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
) -> Result<Response, DocplannerError> {
    let pulled = pull(&state, &client, 1).await?;
    let body = pulled.notifications.into_iter().next().ok_or_else(nothing_queued)?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, super::CONTENT_TYPE)], body).into_response())
}

/// The `limit` of `GET /notifications/multiple`: 1 to 100, default 1. The
/// document gives the operation no error but 404 "No notifications found",
/// which tells a client the queue is empty; so a limit out of range is
/// brought into it (0 pulls one, 500 pulls 100) and one that is not an
/// integer counts as absent, rather than answering an error that reads as
/// "nothing queued".
fn pull_limit(v: Option<&str>) -> i64 {
    let Some(v) = v.map(str::trim) else { return 1 };
    let digits = v.strip_prefix('+').unwrap_or(v);
    match v.parse::<i64>() {
        Ok(n) => n.clamp(1, MAX_PULL),
        // Digits too many for an integer are a very large limit.
        Err(_) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => MAX_PULL,
        Err(_) => 1,
    }
}

/// `GET /notifications/multiple?limit=1..100` (default 1).
async fn pull_multiple(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let limit = pull_limit(super::query_param(uri.query(), "limit").as_deref());
    let pulled = pull(&state, &client, limit).await?;
    if pulled.notifications.is_empty() {
        return Err(nothing_queued());
    }
    let notifications = pulled
        .notifications
        .iter()
        .map(|b| serde_json::from_str(b))
        .collect::<Result<Vec<Value>, _>>()
        .map_err(polyclinic_store::StoreError::from)?;
    Ok(super::ok(json!({"notifications": notifications, "remaining": pulled.remaining})))
}

/// `POST /notifications/release`: PUSH clients only, once an hour.
async fn release(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
) -> Result<Response, DocplannerError> {
    if client.credential.config.push_url.is_none() {
        return Err(DocplannerError::forbidden("You are not allowed to use this method"));
    }
    let (tenant, credential, now) = (client.tenant.id, client.credential.id, state.now());
    let outcome = state
        .store
        .write(move |c| {
            Box::pin(async move { docplanner_queue::release(c, tenant, credential, now, RELEASE_PERIOD_SECONDS).await })
        })
        .await?;
    match outcome {
        Release::Done { .. } => {
            state.engine.wake();
            Ok(no_content())
        }
        // As the document answers it: no body, the wait in `Retry-After`.
        Release::TooSoon { retry_after } => {
            Ok((StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, HeaderValue::from(retry_after))]).into_response())
        }
    }
}

// ------------------------------------------------------------------ rendering

/// A fresh random (version 4) UUID: the `signature` of one notification.
pub fn signature() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A calendar break as notifications show it (`BreakNotification`).
fn break_json(b: &CalendarBreak, tz: &jiff::tz::TimeZone) -> Value {
    json!({"id": b.id.to_string(), "since": format_time(b.interval.start, tz), "till": format_time(b.interval.end, tz)})
}

/// What a notification carries beside facility, doctor and address.
enum Payload {
    /// `visit_booking`.
    Booking(Box<BookingView>),
    /// `visit_booking` and `presence` (`PRESENT`/`ABSENT`).
    Presence(Box<BookingView>, &'static str),
    /// `old_visit_booking` and `new_visit_booking`.
    Moved { old: Box<BookingView>, new: Box<BookingView> },
    /// Another member, already rendered (`break`, `address_service`).
    Member(&'static str, Value),
    /// Nothing more (address notifications).
    Nothing,
}

impl Payload {
    fn render(&self, data: &mut Map<String, Value>, tz: &jiff::tz::TimeZone, signature: &str) {
        match self {
            Payload::Booking(v) => {
                data.insert("visit_booking".into(), visit_booking_json(v, tz, signature));
            }
            Payload::Presence(v, presence) => {
                data.insert("visit_booking".into(), visit_booking_json(v, tz, signature));
                data.insert("presence".into(), json!(presence));
            }
            Payload::Moved { old, new } => {
                data.insert("old_visit_booking".into(), visit_booking_json(old, tz, signature));
                data.insert("new_visit_booking".into(), visit_booking_json(new, tz, signature));
            }
            Payload::Member(name, v) => {
                data.insert((*name).into(), v.clone());
            }
            Payload::Nothing => {}
        }
    }
}

/// Which notification an event makes, before anything is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Booking(&'static str),
    Presence,
    Moved,
    Break(&'static str),
    AddressService(&'static str),
    Address(&'static str),
}

impl Plan {
    fn name(self) -> &'static str {
        match self {
            Plan::Booking(n) | Plan::Break(n) | Plan::AddressService(n) | Plan::Address(n) => n,
            Plan::Presence => "presence-marked",
            Plan::Moved => "booking-moved",
        }
    }
}

fn plan(event: &StoredEvent) -> Option<Plan> {
    let has = |f: &str| event.data.get(f).is_some_and(|v| !v.is_null());
    use EventKind as K;
    Some(match event.kind {
        // Written by earlier versions for a Docplanner move, beside the
        // `AppointmentRescheduled` that tells it once, as `booking-moved`.
        K::AppointmentCreated if has("moved_from") => return None,
        K::AppointmentCancelled if has("moved_to") => return None,
        K::AppointmentCreated => Plan::Booking("slot-booked"),
        K::AppointmentCancelled => Plan::Booking("booking-canceled"),
        K::AppointmentMoved | K::AppointmentRescheduled => Plan::Moved,
        K::AppointmentConfirmed => Plan::Booking("booking-confirmed"),
        K::PresenceMarked => Plan::Presence,
        K::BreakCreated => Plan::Break("break-created"),
        K::BreakMoved => Plan::Break("break-moved"),
        K::BreakRemoved => Plan::Break("break-removed"),
        K::AddressServiceCreated => Plan::AddressService("address-service-created"),
        K::AddressServiceChanged => Plan::AddressService("address-service-changed"),
        K::AddressServiceDeleted => Plan::AddressService("address-service-deleted"),
        K::AddressAssigned => Plan::Address("address-assigned"),
        K::AddressUnassigned => Plan::Address("address-unassigned"),
        K::AddressCommercialTypeChanged => Plan::Address("address-commercial-type-changed"),
        _ => return None,
    })
}

/// Reads what the notification of `event` shows; `None` when there is
/// nothing to tell (the booking or break is gone, or the data is not ours).
async fn payload(
    conn: &mut Conn,
    tenant: TenantId,
    tz: &jiff::tz::TimeZone,
    plan: Plan,
    event: &StoredEvent,
) -> StoreResult<Option<Payload>> {
    let data = &event.data;
    let appointment = id_in(data, "appointment_id").or_else(|| event.aggregate_id.parse().ok()).map(AppointmentId);
    Ok(match plan {
        Plan::Booking(_) => match appointment {
            Some(id) => load_view(conn, tenant, id).await?.map(|v| Payload::Booking(Box::new(v))),
            None => None,
        },
        Plan::Presence => {
            let Some(id) = appointment else { return Ok(None) };
            let Some(v) = load_view(conn, tenant, id).await? else { return Ok(None) };
            let word = match data.get("presence").and_then(Value::as_str) {
                Some(p) => p.to_ascii_lowercase(),
                None => match v.appointment.presence {
                    Some(polyclinic_core::appointment::Presence::Absent) => "absent".into(),
                    _ => "present".into(),
                },
            };
            let presence = if word == "absent" { "ABSENT" } else { "PRESENT" };
            Some(Payload::Presence(Box::new(v), presence))
        }
        Plan::Moved => {
            let Some(id) = appointment else { return Ok(None) };
            let Some(new) = load_view(conn, tenant, id).await? else { return Ok(None) };
            // A Docplanner move: the old booking was cancelled in the same
            // command and points at this one.
            if let Some(from) = id_in(data, "moved_from").map(AppointmentId)
                && let Some(old) = load_view(conn, tenant, from).await?
                && old.appointment.moved_to == Some(id)
                && old.appointment.canceled_at.is_some_and(|t| t.as_second() == event.created_at)
            {
                return Ok(Some(Payload::Moved { old: Box::new(old), new: Box::new(new) }));
            }
            // A new time for the same booking: the old one is it at its previous times.
            let previous = |f: &str| data.get(f).and_then(Value::as_str).and_then(|s| s.parse::<Timestamp>().ok());
            let (Some(start), Some(end)) = (previous("previous_start"), previous("previous_end")) else {
                return Ok(None);
            };
            let mut old = new.clone();
            old.appointment.interval = Interval { start, end };
            Some(Payload::Moved { old: Box::new(old), new: Box::new(new) })
        }
        Plan::Break(_) => match data.get("break").cloned().map(serde_json::from_value::<CalendarBreak>) {
            Some(Ok(b)) => Some(Payload::Member("break", break_json(&b, tz))),
            _ => None,
        },
        Plan::AddressService(_) => {
            match data.get("address_service").cloned().map(serde_json::from_value::<AddressService>) {
                Some(Ok(s)) => Some(Payload::Member("address_service", address_service_json(&s, &[]))),
                _ => None,
            }
        }
        Plan::Address(_) => Some(Payload::Nothing),
    })
}

/// The envelope: `{"name", "data": {"facility", "doctor", "address", ...}, "created_at"}`.
fn envelope(name: &str, head: &Map<String, Value>, payload: &Payload, tz: &jiff::tz::TimeZone, at: Timestamp) -> Value {
    let mut data = head.clone();
    payload.render(&mut data, tz, &signature());
    json!({"name": name, "data": data, "created_at": format_time(at, tz)})
}

/// Who hears about the event: the clients named by the event
/// (`credential_ids`, for address (un)assignment), else every Docplanner
/// client of the tenant assigned the facility.
fn audience(clients: Vec<Credential>, data: &Value, facility: i64) -> Vec<Credential> {
    match data.get("credential_ids").and_then(Value::as_array) {
        Some(ids) => {
            let named: Vec<String> = ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            clients.into_iter().filter(|c| named.contains(&c.id.to_string())).collect()
        }
        None => clients.into_iter().filter(|c| c.config.facilities.iter().any(|f| f.get() == facility)).collect(),
    }
}

/// Turns domain events into Docplanner notifications: PUSH deliveries and
/// PULL queue entries.
pub struct NotificationRouter {
    /// Opens the sealed PUSH API keys.
    key: SecretKey,
}

impl NotificationRouter {
    /// A router that opens PUSH API keys with `key` (the store's).
    pub fn new(key: SecretKey) -> Self {
        NotificationRouter { key }
    }

    async fn route_event(
        &self,
        conn: &mut Conn,
        tenant: TenantId,
        event: &StoredEvent,
    ) -> StoreResult<Vec<NewDelivery>> {
        let Some(plan) = plan(event) else { return Ok(Vec::new()) };
        let Some(address_id) = id_in(&event.data, "address_id") else { return Ok(Vec::new()) };
        let Some(address): Option<Address> = catalog::address(conn, tenant, address_id).await? else {
            return Ok(Vec::new());
        };
        // An address event names the facility it concerns (an unassigned
        // address may have moved on to another).
        let facility_id = id_in(&event.data, "facility_id").unwrap_or(address.facility_id.get());
        let clients = audience(docplanner_queue::clients(conn, tenant).await?, &event.data, facility_id);
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        let (Some(facility), Some(doctor)) = (
            catalog::facility(conn, tenant, facility_id).await?,
            catalog::practitioner(conn, tenant, address.practitioner_id.get()).await?,
        ) else {
            return Ok(Vec::new());
        };
        let tz = tenants::get(conn, tenant).await?.tz();
        let Some(payload) = payload(conn, tenant, &tz, plan, event).await? else { return Ok(Vec::new()) };
        let scopes: Vec<String> =
            if matches!(plan, Plan::Address(_)) { vec!["address.commercial_type".into()] } else { Vec::new() };
        let mut head = Map::new();
        head.insert("facility".into(), facility_json(&facility));
        head.insert("doctor".into(), doctor_ref(&doctor, facility.id));
        head.insert("address".into(), address_json(&address, &scopes));
        let at = Timestamp::from_second(event.created_at)
            .map_err(|e| polyclinic_store::StoreError::Corrupt(format!("event {}: {e}", event.seq)))?;
        let name = plan.name();
        let mut out = Vec::new();
        for client in clients {
            let body = envelope(name, &head, &payload, &tz, at).to_string();
            match &client.config.push_url {
                Some(url) => out.push(NewDelivery {
                    target_key: docplanner_queue::target_key(client.id),
                    event: name.to_owned(),
                    channel: Channel::Http {
                        url: url.clone(),
                        headers: push_headers(conn, &client, &self.key).await,
                        content_type: "application/json".into(),
                        body,
                    },
                    retry_schedule: Some(PUSH_RETRY_SCHEDULE.to_vec()),
                }),
                None => {
                    docplanner_queue::enqueue(conn, tenant, client.id, event.seq, name, &body, at).await?;
                }
            }
        }
        Ok(out)
    }
}

/// The headers of a push to `client`: its API key, sealed for the delivery
/// record (the engine opens it at send time); none when it has no key.
pub async fn push_headers(conn: &mut Conn, client: &Credential, key: &SecretKey) -> Vec<(String, String)> {
    if !client.config.has_push_api_key {
        return Vec::new();
    }
    match tenants::protocol_secrets(conn, client.tenant_id, client.id, key).await {
        // Sealed again for the delivery record: the engine opens it at send time.
        Ok(s) => s
            .push_api_key
            .map(|k| vec![(API_KEY_HEADER.to_owned(), polyclinic_store::deliveries::sealed_header(key, &k))])
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(credential = %client.id, error = %e, "the PUSH API key could not be opened; pushing without it");
            Vec::new()
        }
    }
}

impl polyclinic_delivery::Router for NotificationRouter {
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        _now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(self.route_event(conn, tenant, event))
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[docplanner_queue::PURGE_JOB]
    }

    /// Purges the PULL notifications nobody took within 72 hours (the job
    /// is armed for the earliest expiry, and again for the next).
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        _job: &'a polyclinic_store::jobs::Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            docplanner_queue::purge_expired(conn, tenant, now).await?;
            Ok(Vec::new())
        })
    }

    fn owns(&self, target_key: &str) -> bool {
        target_key.starts_with("docplanner-client:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pull_limit_out_of_range_is_brought_into_it() {
        assert_eq!(pull_limit(None), 1);
        assert_eq!(pull_limit(Some("5")), 5);
        assert_eq!(pull_limit(Some("0")), 1);
        assert_eq!(pull_limit(Some("-3")), 1);
        assert_eq!(pull_limit(Some("500")), MAX_PULL);
        assert_eq!(pull_limit(Some("99999999999999999999999")), MAX_PULL);
        assert_eq!(pull_limit(Some("null")), 1);
        assert_eq!(pull_limit(Some("+")), 1);
        assert_eq!(pull_limit(Some("")), 1);
    }

    #[test]
    fn signatures_are_version_4_uuids() {
        let s = signature();
        assert!(s.parse::<polyclinic_core::Uuid>().is_ok(), "{s}");
        assert_eq!(&s[14..15], "4");
        assert!("89ab".contains(&s[19..20]), "{s}");
        assert_ne!(signature(), s);
    }

    fn event(kind: &str, data: Value) -> StoredEvent {
        StoredEvent {
            seq: 1,
            kind: EventKind::parse(kind).unwrap(),
            aggregate: "appointment".into(),
            aggregate_id: "7".into(),
            data,
            created_at: 0,
        }
    }

    #[test]
    fn a_move_is_told_once() {
        assert_eq!(plan(&event("AppointmentCreated", json!({"moved_from": "6"}))), None);
        assert_eq!(plan(&event("AppointmentCancelled", json!({"moved_to": "8"}))), None);
        assert_eq!(plan(&event("AppointmentMoved", json!({"moved_from": "6"}))), Some(Plan::Moved));
        assert_eq!(
            plan(&event("AppointmentMoved", json!({"previous_start": "2030-01-01T10:00:00Z"}))),
            Some(Plan::Moved)
        );
        // Stored by earlier versions: still told once.
        assert_eq!(plan(&event("AppointmentRescheduled", json!({"moved_from": "6"}))), Some(Plan::Moved));
        assert_eq!(plan(&event("AppointmentCreated", json!({"moved_from": null}))), Some(Plan::Booking("slot-booked")));
        assert_eq!(plan(&event("AppointmentUpdated", json!({}))), None);
    }
}
