//! Docplanner: the calendar of an address (status, enable, disable) and its
//! breaks (list, add, get, move, delete).
//!
//! Every address has a calendar, enabled or disabled (`Address.calendar_enabled`).
//! Changes to a calendar are refused once the address's integration mark was
//! removed ([`editable`]). Breaks added with `apply_on_coupled_addresses` are
//! also created at the doctor's coupled addresses in the facility and share a
//! `coupled_group` with the requested one; moving or deleting any of them
//! moves or deletes the whole group. Break writes append one `BreakCreated`,
//! `BreakMoved` or `BreakRemoved` per break (see `polyclinic_store::breaks`).

use super::Path;
use super::catalog::{Located, locate};
use super::{Body, Client, DocplannerError, address_path, created, format_time, no_content, ok, parse_time};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use jiff::Timestamp;
use polyclinic_core::facility::Address;
use polyclinic_core::schedule::{CalendarBreak, Interval};
use polyclinic_core::text::{MAX_TEXT, check_len};
use polyclinic_core::{AddressId, CalendarBreakId, FacilityId, PractitionerId, TenantId};
use polyclinic_http::AppState;
use polyclinic_scheduling::SchedulingError;
use polyclinic_scheduling::calendar::NewBreak;
use polyclinic_store::catalog;
use polyclinic_store::{Conn, StoreResult, breaks};
use serde::Deserialize;
use serde_json::{Value, json};

/// The address path with its parameters, as every module names them.
const ADDRESS: &str = "/facilities/{facility_id}/doctors/{doctor_id}/addresses/{address_id}";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(&format!("{ADDRESS}/calendar"), get(calendar))
        .route(&format!("{ADDRESS}/calendar/enable"), post(enable))
        .route(&format!("{ADDRESS}/calendar/disable"), post(disable))
        .route(&format!("{ADDRESS}/breaks"), get(list_breaks).post(add_break))
        .route(&format!("{ADDRESS}/breaks/{{break_id}}"), get(get_break).patch(move_break).delete(delete_break))
}

/// Refuses changes to the calendar of an address whose integration mark was
/// removed (`DELETE …/integration`): 403 "You are not authorized to make
/// changes on this calendar". Reads stay allowed.
pub fn editable(a: &Address) -> Result<(), DocplannerError> {
    if a.integrated {
        Ok(())
    } else {
        Err(DocplannerError::forbidden("You are not authorized to make changes on this calendar"))
    }
}

/// Whether the address is commercial: every commercial type but `basic`
/// (the free profile); an address without one is taken as commercial.
pub fn is_commercial(a: &Address) -> bool {
    a.commercial_type.as_deref() != Some("basic")
}

/// 422 "Cannot activate calendar on address {id}, profile/address is not
/// commercial" for a `basic` address.
pub fn commercial(a: &Address) -> Result<(), DocplannerError> {
    if is_commercial(a) {
        Ok(())
    } else {
        Err(DocplannerError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Cannot activate calendar on address {}, profile/address is not commercial", a.id),
        ))
    }
}

// ---------------------------------------------------------------------------
// Calendar status.

async fn calendar(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    Ok(ok(json!({"status": if at.address.calendar_enabled { "enabled" } else { "disabled" }})))
}

/// The doctor and address of a calendar enable or disable. These two
/// operations document no 404: a doctor or an address that names nothing
/// answers the document's 403 "You are not authorized to see this doctor" /
/// "... this address", as for a doctor or an address of someone else.
async fn calendar_address(
    state: &AppState,
    client: &Client,
    path: Result<Path<(String, String, String)>, DocplannerError>,
) -> Result<Located, DocplannerError> {
    let Ok(Path((f, d, a))) = path else { return Err(DocplannerError::forbidden(UNSEEN_ADDRESS)) };
    match locate(state, client, &f, &d, &a).await {
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let doctor_known = super::catalog::facility_doctor(state, client, &f, &d).await.is_ok();
            Err(DocplannerError::forbidden(if doctor_known { UNSEEN_ADDRESS } else { UNSEEN_DOCTOR }))
        }
        other => other,
    }
}

const UNSEEN_DOCTOR: &str = "You are not authorized to see this doctor";
const UNSEEN_ADDRESS: &str = "You are not authorized to see this address";

/// Sets the calendar status in one transaction: 409 when it already is.
async fn set_calendar(
    state: AppState,
    client: Client,
    path: Result<Path<(String, String, String)>, DocplannerError>,
    enabled: bool,
) -> Result<Response, DocplannerError> {
    let at = calendar_address(&state, &client, path).await?;
    editable(&at.address)?;
    if enabled {
        commercial(&at.address)?;
    }
    state.scheduling.set_calendar(&client.tenant, at.address.id, enabled).await.map_err(|e| match e {
        SchedulingError::Conflict(_) => {
            DocplannerError::conflict(if enabled { "Calendar already enabled" } else { "Calendar already disabled" })
        }
        SchedulingError::NotFound(_) => DocplannerError::forbidden(UNSEEN_ADDRESS),
        other => refused_calendar(other),
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn enable(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    path: Result<Path<(String, String, String)>, DocplannerError>,
) -> Result<Response, DocplannerError> {
    set_calendar(state, client, path, true).await
}

async fn disable(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    path: Result<Path<(String, String, String)>, DocplannerError>,
) -> Result<Response, DocplannerError> {
    set_calendar(state, client, path, false).await
}

// ---------------------------------------------------------------------------
// Breaks.

/// A break as the API shows it (`CalendarBreak`), in the tenant's zone.
pub fn break_json(b: &CalendarBreak, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "id": b.id.to_string(),
        "since": format_time(b.interval.start, tz),
        "till": format_time(b.interval.end, tz),
        "description": b.description,
    })
}

fn required(name: &str) -> DocplannerError {
    DocplannerError::bad_request(format!("Param \"{name}\" is required!"))
}

const INVALID_DATE: &str = "Invalid date given.";

fn invalid_range() -> DocplannerError {
    DocplannerError::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid date range")
}

/// An instant given as text: `None` when missing or empty, `Some(None)` when
/// it is not an ISO 8601 instant with an offset. Fractions of a second are
/// dropped (the API speaks in seconds).
fn instant_text(s: Option<&str>) -> Option<Option<Timestamp>> {
    let s = s.map(str::trim).filter(|s| !s.is_empty())?;
    Some(parse_time(s).and_then(|t| Timestamp::from_second(t.as_second()).ok()))
}

/// `since` or `till` of a request body: 400 when missing or not an instant.
fn body_instant(v: Option<&Value>, name: &str) -> Result<Timestamp, DocplannerError> {
    let text = match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(DocplannerError::bad_request(INVALID_DATE)),
    };
    instant_text(text).ok_or_else(|| required(name))?.ok_or_else(|| DocplannerError::bad_request(INVALID_DATE))
}

/// A break named by a path segment at the located address, read in `c`:
/// 404 "Invalid break ID" when it is not one of this address's breaks.
async fn break_at(
    c: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    id: Option<CalendarBreakId>,
) -> StoreResult<Result<CalendarBreak, DocplannerError>> {
    let Some(id) = id else { return Ok(Err(invalid_break())) };
    Ok(match breaks::get(c, tenant, id).await? {
        Some(b) if b.address_id == address => Ok(b),
        _ => Err(invalid_break()),
    })
}

/// Where the located address's coupled breaks can live: the doctor's
/// addresses in the facility.
async fn places(state: &AppState, client: &Client, at: &Located) -> Result<Vec<AddressId>, DocplannerError> {
    let (tenant, facility, doctor) = (client.tenant.id, at.facility.id, at.doctor.id);
    Ok(state
        .store
        .read(move |c| Box::pin(async move { doctor_addresses(c, tenant, facility, doctor).await }))
        .await?
        .iter()
        .map(|a| a.id)
        .collect())
}

/// 404 "Invalid break ID".
fn invalid_break() -> DocplannerError {
    DocplannerError::new(StatusCode::NOT_FOUND, "Invalid break ID")
}

/// A refused calendar change, where the handler has no wording of its own:
/// a break that is not the address's is 404 "Invalid break ID"; an address
/// gone is 403 as for any address the client cannot see.
fn refused_calendar(e: SchedulingError) -> DocplannerError {
    match e {
        SchedulingError::NotFound("break") => invalid_break(),
        SchedulingError::NotFound(_) => DocplannerError::forbidden(UNSEEN_ADDRESS),
        SchedulingError::Store(e) => e.into(),
        other => DocplannerError::conflict(other.to_string()),
    }
}

/// The doctor's addresses in the facility, where a coupled group can live.
async fn doctor_addresses(
    c: &mut Conn,
    tenant: TenantId,
    facility: FacilityId,
    doctor: PractitionerId,
) -> StoreResult<Vec<Address>> {
    let all = catalog::addresses_of_facility(c, tenant, facility.get()).await?;
    Ok(all.into_iter().filter(|a| a.practitioner_id == doctor).collect())
}

async fn list_breaks(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    // The document gives this list 200, 403 and 404 only, and shows its
    // unparsable date as 404 "Invalid date given.": every query problem is a
    // 404 here, with the document's messages.
    let not_found = |e: DocplannerError| DocplannerError::new(StatusCode::NOT_FOUND, e.message);
    let param = |name: &str| -> Result<Timestamp, DocplannerError> {
        instant_text(super::query_param(uri.query(), name).as_deref())
            .ok_or_else(|| not_found(required(name)))?
            .ok_or_else(|| DocplannerError::new(StatusCode::NOT_FOUND, INVALID_DATE))
    };
    let (since, till) = (param("since")?, param("till")?);
    let window = Interval::new(since, till).map_err(|_| not_found(invalid_range()))?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let found = state
        .store
        .read(move |c| Box::pin(async move { breaks::overlapping(c, tenant, address, &window).await }))
        .await?;
    let tz = client.tenant.tz();
    Ok(ok(json!({"_items": found.iter().map(|b| break_json(b, &tz)).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
struct AddCalendarBreakRequest {
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    till: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    apply_on_coupled_addresses: Option<bool>,
}

async fn add_break(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    Body(req): Body<AddCalendarBreakRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    editable(&at.address)?;
    let since = body_instant(req.since.as_ref(), "since")?;
    let till = body_instant(req.till.as_ref(), "till")?;
    let interval = Interval::new(since, till).map_err(|_| invalid_range())?;
    commercial(&at.address)?;
    // An empty description is no description: the duplicate check treats them alike.
    let description = req.description.filter(|s| !s.trim().is_empty());
    if let Some(text) = &description {
        check_len("description", text, MAX_TEXT)?;
    }
    let grouped = req.apply_on_coupled_addresses.unwrap_or(false);
    let (tenant, facility, doctor) = (client.tenant.id, at.facility.id, at.doctor.id);
    let here = at.address.clone();
    // The online-only addresses for an offline one and the other way round;
    // those that take no calendar changes are left alone.
    let coupled: Vec<AddressId> = if grouped {
        state
            .store
            .read(move |c| Box::pin(async move { doctor_addresses(c, tenant, facility, doctor).await }))
            .await?
            .into_iter()
            .filter(|o| o.id != here.id && o.is_online_only != here.is_online_only && o.integrated && is_commercial(o))
            .map(|o| o.id)
            .collect()
    } else {
        Vec::new()
    };
    let new = NewBreak { at: at.address.id, interval, description, coupled, grouped };
    let made = state.scheduling.add_break(&client.tenant, new, state.now()).await.map_err(|e| match e {
        SchedulingError::Conflict(_) => {
            DocplannerError::conflict("Break for given address, date range and description exists")
        }
        other => refused_calendar(other),
    })?;
    let location = format!("{}/breaks/{}", address_path(facility, doctor, at.address.id), made.id);
    Ok(created(&location, Some(break_json(&made, &client.tenant.tz()))))
}

async fn get_break(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let id = b.parse::<CalendarBreakId>().ok();
    let found = state.store.read(move |c| Box::pin(async move { break_at(c, tenant, address, id).await })).await??;
    Ok(ok(break_json(&found, &client.tenant.tz())))
}

#[derive(Debug, Deserialize)]
struct MoveCalendarBreakRequest {
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    till: Option<Value>,
}

async fn move_break(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
    Body(req): Body<MoveCalendarBreakRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    editable(&at.address)?;
    let since = body_instant(req.since.as_ref(), "since")?;
    let till = body_instant(req.till.as_ref(), "till")?;
    let tz = client.tenant.tz();
    if till < since {
        return Err(DocplannerError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Till ({}) cannot be set before since ({})", format_time(till, &tz), format_time(since, &tz)),
        ));
    }
    let to = Interval::new(since, till).map_err(|_| invalid_range())?;
    let id = b.parse::<CalendarBreakId>().map_err(|_| invalid_break())?;
    let places = places(&state, &client, &at).await?;
    state.scheduling.move_break(&client.tenant, at.address.id, id, to, places, state.now()).await.map_err(
        |e| match e {
            SchedulingError::Conflict(_) => DocplannerError::new(StatusCode::UNPROCESSABLE_ENTITY, "Same Date Range"),
            other => refused_calendar(other),
        },
    )?;
    Ok(no_content())
}

async fn delete_break(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, b)): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    editable(&at.address)?;
    let id = b.parse::<CalendarBreakId>().map_err(|_| invalid_break())?;
    let places = places(&state, &client, &at).await?;
    state
        .scheduling
        .remove_break(&client.tenant, at.address.id, id, places, state.now())
        .await
        .map_err(refused_calendar)?;
    Ok(no_content())
}
