//! Docplanner bookings: list, get, cancel, move, confirm, patient presence,
//! opinion request; and how a booking is shown (API and notifications).

use super::address_services::{address_service_json, address_service_notification_json};
use super::catalog::{Located, locate};
use super::refusals::{Op, refused};
use super::slots::{booking_interval, full_scopes, id_string, opt_id_string};
use super::{Body, Client, DocplannerError, address_path, created, format_time, no_content, ok, parse_time, scopes};
use super::{Path, Query};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Presence};
use polyclinic_core::facility::{AddressService, InsuranceProvider};
use polyclinic_core::patient::{ContactSystem, Gender, Patient, pick_name, preferred_contact, systems};
use polyclinic_core::schedule::Interval;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::{AppointmentId, TenantId};
use polyclinic_http::AppState;
use polyclinic_scheduling::Move;
use polyclinic_store::appointments::Search;
use polyclinic_store::catalog::{self, Table};
use polyclinic_store::point_read::{self, Docs};
use polyclinic_store::{Conn, StoreResult, appointments, patients};
use serde::Deserialize;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    let at = "/facilities/{facility_id}/doctors/{doctor_id}/addresses/{address_id}/bookings";
    Router::new()
        .route(at, get(list))
        .route(&format!("{at}/{{booking_id}}"), get(one).delete(cancel).post(move_booking))
        .route(&format!("{at}/{{booking_id}}/move"), post(move_booking))
        .route(&format!("{at}/{{booking_id}}/confirm"), put(confirm))
        .route(&format!("{at}/{{booking_id}}/presence/patient"), post(mark_present).delete(mark_absent))
        .route("/facilities/{facility_id}/doctors/{doctor_id}/opinion-request", put(opinion_request))
}

/// Who acts through this dialect.
fn integration() -> Actor {
    Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Docplanner) }
}

/// A booking of the tenant: 404 "Object not found" when there is none.
async fn find_booking(state: &AppState, client: &Client, id: &str) -> Result<Appointment, DocplannerError> {
    let n: i64 = id.parse().map_err(|_| DocplannerError::not_found())?;
    let tenant = client.tenant.id;
    state
        .store
        .read(move |c| Box::pin(async move { appointments::get(c, tenant, AppointmentId(n)).await }))
        .await?
        .ok_or_else(DocplannerError::not_found)
}

/// A booking of the located address: 404 unknown, 403 "This booking does not
/// belong to this address" when it is another address's.
async fn booking_at(state: &AppState, client: &Client, at: &Located, id: &str) -> Result<Appointment, DocplannerError> {
    let found = find_booking(state, client, id).await?;
    if found.address_id != Some(at.address.id) {
        return Err(DocplannerError::forbidden("This booking does not belong to this address"));
    }
    Ok(found)
}

#[derive(Deserialize)]
struct ListQuery {
    start: Option<String>,
    end: Option<String>,
    page: Option<String>,
    limit: Option<String>,
}

/// Most bookings one page (or an unpaginated list) holds.
const MAX_LIMIT: i64 = 100;
/// Most bookings an unpaginated list answers.
const MAX_UNPAGINATED: i64 = 1000;

/// A query problem of the bookings list. The document gives the list 200,
/// 403 and 404 only; like the breaks list, whose unparsable date it shows as
/// 404 "Invalid date given.", every query problem answers 404, with the
/// document's messages where it has one.
fn bad_list_query(message: impl Into<String>) -> DocplannerError {
    DocplannerError::new(StatusCode::NOT_FOUND, message)
}

fn positive(field: &str, v: Option<&String>) -> Result<Option<i64>, DocplannerError> {
    match v {
        None => Ok(None),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(bad_list_query(format!("Param \"{field}\" should be a positive integer."))),
        },
    }
}

async fn list(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    Query(q): Query<ListQuery>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let instant = |name: &str, v: Option<&String>| -> Result<jiff::Timestamp, DocplannerError> {
        let v = v.ok_or_else(|| bad_list_query(format!("Param \"{name}\" is required!")))?;
        parse_time(v).ok_or_else(|| bad_list_query("Invalid date given."))
    };
    let window = Interval { start: instant("start", q.start.as_ref())?, end: instant("end", q.end.as_ref())? };
    if window.end <= window.start {
        return Err(bad_list_query("Invalid date range"));
    }
    let page = positive("page", q.page.as_ref())?;
    let limit = positive("limit", q.limit.as_ref())?.unwrap_or(MAX_LIMIT);
    if limit > MAX_LIMIT {
        return Err(bad_list_query(format!("Param \"limit\" should be {MAX_LIMIT} or less.")));
    }
    // The first booking of the page, counted from 0: a page so far out that
    // the position overflows is refused rather than wrapped.
    let offset = match page {
        None => 0,
        Some(p) => (p - 1)
            .checked_mul(limit)
            .ok_or_else(|| bad_list_query(format!("Param \"page\" should be {} or less.", i64::MAX / limit + 1)))?,
    };
    let search = Search {
        address: Some(at.address.id.get()),
        from: Some(window.start),
        to: Some(window.end),
        offset,
        limit: if page.is_some() { limit } else { MAX_UNPAGINATED },
        ..Default::default()
    };
    let tenant = client.tenant.id;
    let scopes = scopes(uri.query());
    let wanted = scopes.clone();
    let (views, total) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let (items, total) = appointments::search(c, tenant, &search).await?;
                let mut views = Vec::with_capacity(items.len());
                for a in items {
                    views.push(view_for(c, tenant, a, &wanted).await?);
                }
                Ok((views, total))
            })
        })
        .await?;
    let tz = client.tenant.tz();
    let mut body = json!({"_items": views.iter().map(|v| list_item(v, &tz, &scopes)).collect::<Vec<_>>()});
    if let Some(page) = page {
        let pages = (total + limit - 1) / limit;
        let base = format!("{}/bookings", address_path(at.facility.id, at.doctor.id, at.address.id));
        let (s, e) = (format_time(window.start, &tz), format_time(window.end, &tz));
        let href = |p: i64| {
            let query: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("start", &s)
                .append_pair("end", &e)
                .append_pair("page", &p.to_string())
                .append_pair("limit", &limit.to_string())
                .finish();
            json!({"href": format!("{base}?{query}")})
        };
        let mut links = json!({"self": href(page), "first": href(1), "last": href(pages.max(1))});
        if page < pages {
            links["next"] = href(page + 1);
        }
        if page > 1 {
            links["previous"] = href(page - 1);
        }
        body["page"] = json!(page);
        body["limit"] = json!(limit);
        body["pages"] = json!(pages);
        body["total"] = json!(total);
        body["_links"] = links;
    }
    Ok(ok(body))
}

/// A booking in a list: the common fields plus the scopes asked for
/// (`booking.confirmation` adds `confirmed`).
fn list_item(v: &BookingView, tz: &jiff::tz::TimeZone, scopes: &[String]) -> Value {
    let mut item = booking_json(v, tz, scopes);
    if scopes.iter().any(|s| s == "booking.confirmation") {
        item["confirmed"] = json!(v.appointment.confirmed);
    }
    item
}

async fn one(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let n: i64 = b.parse().map_err(|_| DocplannerError::not_found())?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let v = match state.store.point_reads().map(|p| p.run(|c| point_view(c, tenant, AppointmentId(n)))) {
        // A booking with no move chain, read on this thread (SQLite).
        Some(Ok(Some(v))) if v.appointment.moved_from.is_none() && v.appointment.moved_to.is_none() => {
            if v.appointment.address_id != Some(address) {
                return Err(DocplannerError::forbidden("This booking does not belong to this address"));
            }
            BookingView { moving: Some((v.appointment.id, v.appointment.id)), ..v }
        }
        Some(Ok(None)) => return Err(DocplannerError::not_found()),
        Some(Err(e)) => return Err(e.into()),
        _ => view_in_chain(&state, tenant, address, n).await?,
    };
    let mut scopes = scopes(uri.query());
    scopes.extend(full_scopes());
    Ok(ok(booking_json(&v, &client.tenant.tz(), &scopes)))
}

/// A booking and what it is shown with, read by point reads on one SQLite
/// connection (`store::point_read`); its move chain is left to
/// [`view_in_chain`].
fn point_view(c: &point_read::Connection, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<BookingView>> {
    let Some(appointment) = point_read::doc::<Appointment>(c, Docs::Appointments, tenant, id.get())? else {
        return Ok(None);
    };
    let patient = match appointment.patient() {
        Some(p) => point_read::doc(c, Docs::Patients, tenant, p.get())?,
        None => None,
    };
    let address_service = match appointment.address_service_id {
        Some(s) => point_read::doc(c, Docs::Catalog(Table::AddressServices), tenant, s.get())?,
        None => None,
    };
    let insurance = match &appointment.insurance {
        Some(i) => point_read::doc(c, Docs::Catalog(Table::InsuranceProviders), catalog::SHARED, i.provider_id.get())?,
        None => None,
    };
    Ok(Some(BookingView { appointment, patient, address_service, insurance, moving: None }))
}

/// A booking with the ends of its move chain, in one trip to a connection:
/// 404 unknown, 403 when it is another address's.
async fn view_in_chain(
    state: &AppState,
    tenant: TenantId,
    address: polyclinic_core::AddressId,
    n: i64,
) -> Result<BookingView, DocplannerError> {
    state
        .store
        .read(move |c| {
            Box::pin(async move {
                let Some(booking) = appointments::get(c, tenant, AppointmentId(n)).await? else { return Ok(None) };
                if booking.address_id != Some(address) {
                    return Ok(Some(Err(())));
                }
                let ends = chain_ends(c, tenant, &booking).await?;
                let mut v = view_of(c, tenant, booking).await?;
                v.moving = Some(ends);
                Ok(Some(Ok(v)))
            })
        })
        .await?
        .ok_or_else(DocplannerError::not_found)?
        .map_err(|()| DocplannerError::forbidden("This booking does not belong to this address"))
}

/// The first and last booking of `a`'s move chain.
async fn chain_ends(conn: &mut Conn, tenant: TenantId, a: &Appointment) -> StoreResult<(AppointmentId, AppointmentId)> {
    // A chain is as long as the moves of one visit: bounded for safety.
    const LONGEST: usize = 1000;
    let (mut origin, mut back) = (a.id, a.moved_from);
    for _ in 0..LONGEST {
        let Some(id) = back else { break };
        origin = id;
        back = appointments::get(conn, tenant, id).await?.and_then(|x| x.moved_from);
    }
    let (mut newest, mut forward) = (a.id, a.moved_to);
    for _ in 0..LONGEST {
        let Some(id) = forward else { break };
        newest = id;
        forward = appointments::get(conn, tenant, id).await?.and_then(|x| x.moved_to);
    }
    Ok((origin, newest))
}

#[derive(Deserialize, Default)]
struct CancelRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn cancel(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
    Body(body): Body<CancelRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let booking = booking_at(&state, &client, &at, &b).await?;
    if !at.address.integrated {
        return Err(DocplannerError::bad_request("Unable to cancel a visit for this address"));
    }
    let reason = body.reason.filter(|r| !r.trim().is_empty());
    if let Some(r) = &reason {
        polyclinic_core::text::check_len("reason", r, polyclinic_core::text::MAX_TEXT)?;
    }
    let now = state.now();
    if booking.status.docplanner() != "booked" || booking.moved_to.is_some() {
        return Err(DocplannerError::bad_request(format!(
            "Visit {} cannot be canceled because it is not booked",
            booking.id
        )));
    }
    let id = booking.id;
    state
        .scheduling
        .cancel(&client.tenant, id, integration(), reason, now)
        .await
        .map_err(|e| refused(Op::Cancel { id }, e))?;
    Ok(no_content())
}

#[derive(Deserialize)]
struct MoveRequest {
    #[serde(deserialize_with = "id_string")]
    address_service_id: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default, deserialize_with = "opt_id_string")]
    address_id: Option<String>,
}

/// `POST .../bookings/{id}/move`, and the guide's `POST .../bookings/{id}`:
/// a new booking in the old one's place (201, `Location` of the new one).
async fn move_booking(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
    Body(req): Body<MoveRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let old = booking_at(&state, &client, &at, &b).await?;
    if old.status.docplanner() != "booked" || old.moved_to.is_some() {
        return Err(DocplannerError::conflict("The visit has already been canceled or moved"));
    }
    let now = state.now();
    let tenant = client.tenant.id;
    // The target address: this one, or another of the same facility.
    let target = match req.address_id.as_deref() {
        None => at.address.clone(),
        Some(id) if id == at.address.id.to_string() => at.address.clone(),
        Some(id) => {
            let n: i64 = id.parse().map_err(|_| DocplannerError::bad_request("Address does not exist"))?;
            let found = state
                .store
                .read(move |c| Box::pin(async move { catalog::address(c, tenant, n).await }))
                .await?
                .ok_or_else(|| DocplannerError::bad_request("Address does not exist"))?;
            if found.facility_id != at.facility.id {
                return Err(DocplannerError::forbidden("This address does not belong to this facility"));
            }
            found
        }
    };
    if !target.integrated || !target.calendar_enabled {
        return Err(DocplannerError::new(StatusCode::NOT_FOUND, "Unable to book a visit for this address"));
    }
    let (target_id, wanted) = (target.id, req.address_service_id.clone());
    let service = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let here = catalog::address_services(c, tenant, target_id.get()).await?;
                if let Some(s) = here.into_iter().find(|s| s.id.to_string() == wanted) {
                    return Ok(Ok(s));
                }
                let elsewhere = match wanted.parse::<i64>() {
                    Ok(n) => catalog::get::<AddressService>(c, Table::AddressServices, tenant, n).await?,
                    Err(_) => None,
                };
                Ok(Err(if elsewhere.is_some() {
                    DocplannerError::bad_request("Service does not belong to the address")
                } else {
                    DocplannerError::bad_request("Service does not exist")
                }))
            })
        })
        .await??;
    let start = match req.start.as_deref() {
        Some(s) => parse_time(s).ok_or_else(|| DocplannerError::bad_request("Invalid date given."))?,
        None => old.interval.start,
    };
    let tz = client.tenant.tz();
    let duration = req.duration.unwrap_or_else(|| old.duration_minutes());
    let interval = booking_interval(start, duration, &client.tenant.settings)?;
    let mv = Move {
        to: interval,
        address: target.clone(),
        service: service.clone(),
        by: integration(),
        through: Dialect::Docplanner,
    };
    let new = state
        .scheduling
        .move_booking(&client.tenant, old.id, mv, now)
        .await
        .map_err(|e| refused(Op::Book { start, service: &service, tz: &tz, moving: true }, e))?;
    let v = state.store.read(move |c| Box::pin(async move { view_of(c, tenant, new).await })).await?;
    let location =
        format!("{}/bookings/{}", address_path(at.facility.id, target.practitioner_id, target.id), v.appointment.id);
    Ok(created(&location, Some(booking_json(&v, &tz, &full_scopes()))))
}

#[derive(Deserialize)]
struct ConfirmRequest {
    #[serde(default)]
    confirmed_by: Option<String>,
}

async fn confirm(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
    Body(req): Body<ConfirmRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let booking = booking_at(&state, &client, &at, &b).await?;
    let by = match req.confirmed_by.as_deref() {
        Some(by @ ("user" | "admin")) => by.to_owned(),
        _ => return Err(DocplannerError::bad_request("confirmed_by value is invalid")),
    };
    if !at.address.integrated {
        return Err(DocplannerError::bad_request("Integration is not authorized for this address"));
    }
    let now = state.now();
    if booking.moved_to.is_some() {
        return Err(DocplannerError::conflict("Visit has been deleted"));
    }
    if booking.status.docplanner() == "canceled" {
        return Err(DocplannerError::conflict("Visit has been canceled"));
    }
    if booking.confirmed {
        return Err(DocplannerError::conflict("Visit has already been confirmed"));
    }
    if booking.interval.start < now {
        return Err(DocplannerError::conflict("Visit is in the past"));
    }
    state.scheduling.confirm(&client.tenant, booking.id, by, now).await.map_err(|e| refused(Op::Confirm, e))?;
    Ok(no_content())
}

async fn presence(
    state: AppState,
    client: Client,
    (f, d, a, b): (String, String, String, String),
    presence: Presence,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let booking = find_booking(&state, &client, &b).await?;
    if booking.address_id != Some(at.address.id) {
        // The document's presence answer for another doctor's visit.
        if booking.primary_performer() != Some(at.doctor.id) {
            return Err(DocplannerError::new(StatusCode::NOT_FOUND, "This visit does not belong to this doctor"));
        }
        return Err(DocplannerError::forbidden("This booking does not belong to this address"));
    }
    if booking.status.docplanner() == "canceled" {
        return Err(DocplannerError::conflict("Visit is marked as canceled"));
    }
    let now = state.now();
    if booking.interval.start > now {
        return Err(DocplannerError::bad_request("Visit is in the future"));
    }
    state
        .scheduling
        .set_presence(&client.tenant, booking.id, presence, now)
        .await
        .map_err(|e| refused(Op::Presence, e))?;
    Ok(no_content())
}

async fn mark_present(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    presence(state, client, path, Presence::Present).await
}

async fn mark_absent(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path(path): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    presence(state, client, path, Presence::Absent).await
}

#[derive(Deserialize)]
struct OpinionRequest {
    #[serde(default, deserialize_with = "opt_id_string")]
    phone: Option<String>,
}

/// `PUT .../doctors/{d}/opinion-request`: the patient with that phone, who
/// has a booking with this doctor, is asked for an opinion (once per doctor).
async fn opinion_request(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d)): Path<(String, String)>,
    Body(req): Body<OpinionRequest>,
) -> Result<Response, DocplannerError> {
    let (_, doctor, _) = super::catalog::facility_doctor(&state, &client, &f, &d).await?;
    let phone = req
        .phone
        .as_deref()
        .and_then(super::slots::international_phone)
        .ok_or_else(|| DocplannerError::bad_request("Phone number is invalid."))?;
    state
        .scheduling
        .request_opinion(&client.tenant, doctor.id, phone, state.now())
        .await
        .map_err(|e| refused(Op::Opinion, e))?;
    // The document gives 200 without a body.
    Ok(StatusCode::OK.into_response())
}

/// A booking with what it is shown with.
#[derive(Debug, Clone)]
pub struct BookingView {
    pub appointment: Appointment,
    pub patient: Option<Patient>,
    pub address_service: Option<AddressService>,
    pub insurance: Option<InsuranceProvider>,
    /// The ends of the move chain (`booking.moving`), when looked up.
    pub moving: Option<(AppointmentId, AppointmentId)>,
}

/// Loads a booking and what it is shown with; `None` when there is no such
/// appointment.
pub async fn load_view(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<BookingView>> {
    let Some(appointment) = appointments::get(conn, tenant, id).await? else { return Ok(None) };
    view_of(conn, tenant, appointment).await.map(Some)
}

/// The view of an appointment already read, with everything it is shown with.
pub async fn view_of(conn: &mut Conn, tenant: TenantId, appointment: Appointment) -> StoreResult<BookingView> {
    view_with(conn, tenant, appointment, true, true).await
}

/// The view of a booking in a list: the patient and the address service are
/// read only when their scopes ask for them.
async fn view_for(conn: &mut Conn, tenant: TenantId, a: Appointment, scopes: &[String]) -> StoreResult<BookingView> {
    let has = |x: &str| scopes.iter().any(|s| s == x);
    view_with(conn, tenant, a, has("booking.patient"), has("booking.address_service")).await
}

async fn view_with(
    conn: &mut Conn,
    tenant: TenantId,
    appointment: Appointment,
    patient: bool,
    service: bool,
) -> StoreResult<BookingView> {
    let patient = match appointment.patient().filter(|_| patient) {
        Some(p) => patients::get(conn, tenant, p).await?,
        None => None,
    };
    let address_service = match appointment.address_service_id.filter(|_| service) {
        Some(s) => catalog::get(conn, Table::AddressServices, tenant, s.get()).await?,
        None => None,
    };
    let insurance = match &appointment.insurance {
        Some(i) => catalog::get(conn, Table::InsuranceProviders, catalog::SHARED, i.provider_id.get()).await?,
        None => None,
    };
    Ok(BookingView { appointment, patient, address_service, insurance, moving: None })
}

/// The patient as bookings show it (`BookingPatient` / `Patient`).
pub fn patient_json(p: Option<&Patient>, is_returning: Option<bool>, insurance_number: Option<&str>) -> Value {
    let Some(p) = p else {
        return json!({"name": "", "surname": "", "email": null, "phone": null, "birth_date": null, "nin": null,
            "gender": null, "is_returning": is_returning.unwrap_or(false), "insurance_number": insurance_number});
    };
    let name = pick_name(&p.names);
    let nin = p.identifiers.iter().find(|i| i.system.starts_with(systems::NATIONAL_ID_PREFIX)).map(|i| &i.value);
    json!({
        "name": name.map(|n| n.given.join(" ")).unwrap_or_default(),
        "surname": name.and_then(|n| n.family.clone()).unwrap_or_default(),
        "email": preferred_contact(&p.telecom, ContactSystem::Email).map(|c| &c.value),
        "phone": preferred_contact(&p.telecom, ContactSystem::Phone)
            .or_else(|| preferred_contact(&p.telecom, ContactSystem::Sms))
            .map(|c| &c.value),
        "birth_date": p.birth_date.map(|d| d.to_string()),
        "nin": nin,
        "gender": match p.gender {
            Some(Gender::Male) => json!("m"),
            Some(Gender::Female) => json!("f"),
            _ => Value::Null,
        },
        "is_returning": is_returning.unwrap_or(false),
        "insurance_number": insurance_number,
    })
}

fn insurance_json(v: &BookingView) -> Value {
    match (&v.appointment.insurance, &v.insurance) {
        (Some(i), Some(p)) => {
            let plan = i.plan_id.and_then(|id| p.plans.iter().find(|pl| pl.id == id));
            json!({"id": p.id.to_string(), "name": p.name, "plan": plan.map(|pl| &pl.name),
                "plan_id": i.plan_id.map(|id| id.to_string())})
        }
        _ => Value::Null,
    }
}

/// The fields the API and notifications share.
fn common(v: &BookingView, tz: &jiff::tz::TimeZone) -> Value {
    let a = &v.appointment;
    json!({
        "id": a.id.to_string(),
        "status": a.status.docplanner(),
        "start_at": format_time(a.interval.start, tz),
        "end_at": format_time(a.interval.end, tz),
        "duration": a.duration_minutes(),
        "booked_by": a.booked_by.kind.as_str(),
        "canceled_by": a.canceled_by.as_ref().map(|c| c.kind.as_str()).unwrap_or(""),
        "booked_at": format_time(a.booked_at, tz),
        "canceled_at": a.canceled_at.map(|t| format_time(t, tz)),
    })
}

/// A booking as the API shows it (`Booking`), with the scopes asked for
/// (`booking.patient`, `booking.address_service`, `booking.presence`,
/// `booking.moving`).
pub fn booking_json(v: &BookingView, tz: &jiff::tz::TimeZone, scopes: &[String]) -> Value {
    let has = |x: &str| scopes.iter().any(|s| s == x);
    let a = &v.appointment;
    let mut out = common(v, tz);
    let number = a.insurance.as_ref().and_then(|i| i.number.as_deref());
    if has("booking.patient") {
        out["patient"] = patient_json(v.patient.as_ref(), a.is_returning, number);
    }
    if has("booking.address_service") {
        out["address_service"] = v.address_service.as_ref().map(|s| address_service_json(s, scopes)).into();
    }
    if has("booking.presence") {
        out["presence"] = match a.presence {
            Some(Presence::Present) => json!("present"),
            Some(Presence::Absent) => json!("absent"),
            None => Value::Null,
        };
    }
    if has("booking.moving") {
        // The first and the last booking of the move chain; both are the
        // booking's own id when it was never moved.
        let (origin, newest) = v.moving.unwrap_or((a.moved_from.unwrap_or(a.id), a.moved_to.unwrap_or(a.id)));
        out["moving"] = json!({"origin_booking_id": origin.to_string(), "newest_booking_id": newest.to_string()});
    }
    out["comment"] = json!(a.comment);
    out["insurance"] = insurance_json(v);
    out["visit_payment"] = json!(false);
    out["visit_payment_status"] = Value::Null;
    out["videocall_url"] = Value::Null;
    out
}

/// A booking as notifications show it (`BookingNotification`): always with
/// the patient and the address service; `signature` identifies this
/// notification.
pub fn visit_booking_json(v: &BookingView, tz: &jiff::tz::TimeZone, signature: &str) -> Value {
    let a = &v.appointment;
    let mut out = common(v, tz);
    let number = a.insurance.as_ref().and_then(|i| i.number.as_deref());
    out["address_service"] = v.address_service.as_ref().map(address_service_notification_json).into();
    let mut patient = patient_json(v.patient.as_ref(), a.is_returning, number);
    if let Some(p) = &v.patient {
        patient["marketing_consent"] = json!(p.marketing_consent);
        patient["data_privacy_consent"] = json!(p.data_privacy_consent);
    }
    out["patient"] = patient;
    out["signature"] = json!(signature);
    out["comment"] = json!(a.comment.clone().unwrap_or_default());
    if v.insurance.is_some() {
        out["insurance"] = insurance_json(v);
    }
    out["visit_payment"] = json!(false);
    out
}
