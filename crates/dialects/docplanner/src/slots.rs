//! Docplanner slots: work periods in (`PUT .../slots`), computed free slots
//! out (`GET .../slots`), a day cleared (`DELETE .../slots/{date}`), and
//! booking a slot (`POST .../slots/{start}/book`).
//!
//! Slots are never stored as given: a work period is cut on the grid of the
//! greatest common divisor of its services' durations, and calendar breaks
//! and bookings from every dialect hide the starts they overlap.

use super::address_services::address_service_json;
use super::bookings::{booking_json, view_of};
use super::catalog::{Located, locate};
use super::refusals::{Op, refused};
use super::{Body, Client, DocplannerError, format_time, ok, parse_time};
use super::{Path, Query};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Router};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::appointment::{
    Actor, ActorKind, Appointment, BookingInsurance, Participant, ParticipantRole, ParticipantWho,
};
use polyclinic_core::facility::{Address, AddressService, InsuranceProvider};
use polyclinic_core::patient::{
    ContactPoint, ContactSystem, ContactUse, Gender, HumanName, Identifier, NationalId, Patient,
};
use polyclinic_core::schedule::{Interval, WorkPeriod, within_one_day};
use polyclinic_core::slots::{FreeSlot, ServiceDuration};
use polyclinic_core::tenant::{Dialect, Tenant, TenantSettings};
use polyclinic_core::time_rules::{self};
use polyclinic_core::{AddressServiceId, InsuranceProviderId};
use polyclinic_http::AppState;
use polyclinic_scheduling::{BookedPatient, Booking, Place, availability_cache};
use polyclinic_store::catalog;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use std::collections::HashMap;

pub(super) fn routes() -> Router<AppState> {
    let at = "/facilities/{facility_id}/doctors/{doctor_id}/addresses/{address_id}";
    Router::new()
        .route(&format!("{at}/slots"), get(list).put(replace))
        .route(&format!("{at}/slots/{{start}}/book"), post(book))
        .route(&format!("{at}/slots/{{date}}"), delete(clear_day))
}

/// Longest range `GET .../slots` answers.
const MAX_RANGE_DAYS: i64 = 180;
/// How far ahead work periods may reach.
const MAX_AHEAD_WEEKS: i64 = 12;

/// An id the document shows as a string but clients also send as a number.
pub(super) fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!("expected a string or number, got {other}"))),
    }
}

/// Like [`id_string`], for an optional field (`null` or absent: `None`).
pub(super) fn opt_id_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() || s == "null" => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!("expected a string or number, got {other}"))),
    }
}

/// Calendar changes (work periods) need the integration and a commercial
/// address; a disabled calendar may still be prepared.
fn editable(at: &Located) -> Result<(), DocplannerError> {
    super::calendar::editable(&at.address)?;
    super::calendar::commercial(&at.address)
}

#[derive(Deserialize)]
struct RangeQuery {
    start: Option<String>,
    end: Option<String>,
}

fn query_time(field: &str, v: Option<&String>) -> Result<Timestamp, DocplannerError> {
    let v = v.ok_or_else(|| DocplannerError::invalid_arguments([(field, "This value should not be blank.")]))?;
    parse_time(v).ok_or_else(|| DocplannerError::bad_request("Invalid date given."))
}

/// `start`..`end` of a query: both required, ordered, at most 180 days.
pub(super) fn query_range(start: Option<&String>, end: Option<&String>) -> Result<Interval, DocplannerError> {
    let (start, end) = (query_time("start", start)?, query_time("end", end)?);
    if end <= start {
        return Err(DocplannerError::bad_request("Invalid date range"));
    }
    if end.duration_since(start) > SignedDuration::from_hours(24 * MAX_RANGE_DAYS) {
        return Err(DocplannerError::bad_request("Date range must not exceed 180 days"));
    }
    Ok(Interval { start, end })
}

async fn list(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    Query(q): Query<RangeQuery>,
    uri: axum::http::Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let window = query_range(q.start.as_ref(), q.end.as_ref())?;
    let with_services = super::scopes(uri.query()).iter().any(|s| s == "slot.services");
    if !at.address.calendar_enabled || !at.address.integrated {
        // A disabled calendar offers nothing to book.
        return Ok(ok(json!({"_items": []})));
    }
    let tenant = &client.tenant;
    let cached =
        availability_cache::address_slots(&state.store, state.caches.slots(), tenant.id, &at.address, &window).await?;
    let part = cached.bookable(&time_rules::bookable_starts(&tenant.settings, state.now()));
    let tz = tenant.tz();
    let variant = format!("{}|{}", with_services, tz.iana_name().unwrap_or(""));
    let body = cached.rendered(part, &variant, |slots, services| render_slots(slots, services, with_services, &tz));
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, super::CONTENT_TYPE)], body).into_response())
}

/// The body of `GET .../slots`: `{"_items": [{"start", ["address_services"]}]}`.
/// Each address service is serialised once, and each local day's offset is
/// found once (a day with a change of offset is formatted start by start).
fn render_slots(slots: &[FreeSlot], services: &[AddressService], with_services: bool, tz: &TimeZone) -> Bytes {
    let shown: HashMap<AddressServiceId, String> = if with_services {
        services.iter().map(|s| (s.id, address_service_json(s, &[]).to_string())).collect()
    } else {
        HashMap::new()
    };
    let mut out = String::with_capacity(16 + slots.len() * if with_services { 256 } else { 40 });
    out.push_str(r#"{"_items":["#);
    let mut day = LocalDay::default();
    for (i, s) in slots.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"start":""#);
        day.format(s.start, tz, &mut out);
        out.push('"');
        if with_services {
            out.push_str(r#","address_services":{"_items":["#);
            let mut first = true;
            for json in s.services.iter().filter_map(|id| shown.get(id)) {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(json);
            }
            out.push_str("]}");
        }
        out.push('}');
    }
    out.push_str("]}");
    Bytes::from(out)
}

/// One local day of the tenant's zone, for formatting its instants as
/// [`format_time`] does without a zone lookup per instant.
#[derive(Default)]
struct LocalDay {
    /// `[start, end)` of the day, when one offset holds all day.
    span: Option<(i64, i64)>,
    /// `YYYY-MM-DD` of the day.
    date: String,
    /// The day's offset in seconds, and as shown (`+01:00`).
    offset: i64,
    shown_offset: String,
}

impl LocalDay {
    fn format(&mut self, t: Timestamp, tz: &TimeZone, out: &mut String) {
        use std::fmt::Write;
        let secs = t.as_second();
        if !self.span.is_some_and(|(a, b)| a <= secs && secs < b) && !self.enter(t, tz) {
            // A day with a change of offset: the instant on its own.
            out.push_str(&format_time(t, tz));
            return;
        }
        let local = (secs + self.offset).rem_euclid(86_400);
        let _ = write!(
            out,
            "{}T{:02}:{:02}:{:02}{}",
            self.date,
            local / 3600,
            local / 60 % 60,
            local % 60,
            self.shown_offset
        );
    }

    /// Moves to the local day of `t`; answers whether one offset holds it
    /// all day.
    fn enter(&mut self, t: Timestamp, tz: &TimeZone) -> bool {
        self.span = None;
        let date = t.to_zoned(tz.clone()).date();
        let (Ok(start), Ok(end)) = (date.to_zoned(tz.clone()), date.tomorrow().and_then(|d| d.to_zoned(tz.clone())))
        else {
            return false;
        };
        let (start, end) = (start.timestamp(), end.timestamp());
        let (first, last) = (tz.to_offset(start), tz.to_offset(end - SignedDuration::from_secs(1)));
        if first != last {
            return false;
        }
        self.date = date.strftime("%Y-%m-%d").to_string();
        self.offset = i64::from(first.seconds());
        self.shown_offset = start.to_zoned(tz.clone()).strftime("%:z").to_string();
        self.span = Some((start.as_second(), end.as_second()));
        true
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplaceRequest {
    slots: Vec<SlotRange>,
}

#[derive(Deserialize)]
struct SlotRange {
    start: String,
    end: String,
    #[serde(default)]
    address_services: Option<Vec<SlotService>>,
    #[serde(default)]
    insurance_accepted: Option<String>,
    #[serde(default)]
    insurance_providers: Option<Vec<i64>>,
}

#[derive(Deserialize)]
struct SlotService {
    #[serde(deserialize_with = "id_string")]
    address_service_id: String,
    duration: i64,
}

/// Checks one range of a replace request; answers its interval and period.
fn check_range(
    i: usize,
    r: &SlotRange,
    address: &Address,
    services: &[AddressService],
    assigned_insurers: &[i64],
    tenant: &Tenant,
    now: Timestamp,
) -> Result<(Interval, Option<WorkPeriod>), DocplannerError> {
    let tz = tenant.tz();
    let start = parse_time(&r.start)
        .ok_or_else(|| DocplannerError::invalid_arguments([(format!("slots[{i}].start"), "Invalid date given.")]))?;
    let end = parse_time(&r.end)
        .ok_or_else(|| DocplannerError::invalid_arguments([(format!("slots[{i}].end"), "Invalid date given.")]))?;
    if end < start + SignedDuration::from_mins(1) {
        return Err(DocplannerError::invalid_arguments([(
            format!("slots[{i}].minimumDifferenceBetweenDates"),
            "The end date must be at least 1 minute after the start date",
        )]));
    }
    let interval = Interval { start, end };
    if !within_one_day(&interval, &tz) {
        return Err(DocplannerError::bad_request(format!(
            "Slot for date range {} - {} exceeds a single day boundary",
            format_time(start, &tz),
            format_time(end, &tz)
        )));
    }
    let limit = now + SignedDuration::from_hours(24 * 7 * MAX_AHEAD_WEEKS);
    if end > limit {
        let shown = limit.to_zoned(tz.clone()).strftime("%d.%m.%Y, %H:%M");
        return Err(DocplannerError::invalid_arguments([(
            format!("slots[{i}].end"),
            format!("End date should be less than or equal to {shown}."),
        )]));
    }
    let providers = r.insurance_providers.clone().unwrap_or_default();
    match r.insurance_accepted.as_deref() {
        None | Some("with-and-without-insurance") => {}
        Some("with-insurance-only") if providers.is_empty() => {
            return Err(DocplannerError::bad_request(
                "Slot requires insurance (with-insurance-only), but insurance providers are missing",
            ));
        }
        Some("with-insurance-only") => {}
        Some("without-insurance-only") if !providers.is_empty() => {
            return Err(DocplannerError::bad_request(
                "Insurance providers are not supported. Slot does not allow insurances (without-insurance-only)",
            ));
        }
        Some("without-insurance-only") => {}
        Some(_) => {
            return Err(DocplannerError::invalid_arguments([(
                format!("slots[{i}].insurance_accepted"),
                "The value you selected is not a valid choice.",
            )]));
        }
    }
    let missing: Vec<String> =
        providers.iter().filter(|p| !assigned_insurers.contains(p)).map(|p| p.to_string()).collect();
    if !missing.is_empty() {
        return Err(DocplannerError::bad_request(format!(
            "Insurance provider(s) with id ({}) not found for address id ({})",
            missing.join(", "),
            address.id
        )));
    }
    let wanted = r.address_services.as_deref().unwrap_or_default();
    if wanted.is_empty() {
        return Ok((interval, None));
    }
    let mut ids = Vec::new();
    let mut durations = Vec::new();
    for (j, s) in wanted.iter().enumerate() {
        let Some(found) = services.iter().find(|x| x.id.to_string() == s.address_service_id) else {
            return Err(DocplannerError::bad_request("Address service does not exist"));
        };
        if !(1..=24 * 60).contains(&s.duration) {
            return Err(DocplannerError::invalid_arguments([(
                format!("slots[{i}].address_services[{j}].duration"),
                "The duration must be between 1 and 1440 minutes.",
            )]));
        }
        if !ids.contains(&found.id) {
            ids.push(found.id);
            durations.push(ServiceDuration { id: found.id, minutes: s.duration });
        }
    }
    let period = WorkPeriod { address_id: address.id, interval, address_services: ids, durations };
    Ok((interval, Some(period)))
}

async fn replace(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    Body(req): Body<ReplaceRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    editable(&at)?;
    let (tenant, address_id) = (client.tenant.id, at.address.id);
    let (services, insurers) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let services = catalog::address_services(c, tenant, address_id.get()).await?;
                let insurers: Vec<i64> = catalog::address_insurance_providers(c, tenant, address_id)
                    .await?
                    .iter()
                    .map(|p| p.insurance_provider_id.get())
                    .collect();
                Ok((services, insurers))
            })
        })
        .await?;
    let now = state.now();
    let mut ranges: Vec<(Interval, Option<WorkPeriod>)> = Vec::new();
    for (i, r) in req.slots.iter().enumerate() {
        let (interval, period) = check_range(i, r, &at.address, &services, &insurers, &client.tenant, now)?;
        if let Some(j) = ranges.iter().position(|(other, _)| other.overlaps(&interval)) {
            return Err(DocplannerError::invalid_arguments([(
                format!("slots[{i}]"),
                format!("The slot overlaps slots[{j}]."),
            )]));
        }
        ranges.push((interval, period));
    }
    state.scheduling.replace_work_periods(&client.tenant, address_id, ranges, now).await.map_err(refused_periods)?;
    Ok((StatusCode::CREATED, [(header::CONTENT_TYPE, super::CONTENT_TYPE)]).into_response())
}

/// A refused change of work periods: only a store failure can refuse one.
fn refused_periods(e: polyclinic_scheduling::SchedulingError) -> DocplannerError {
    match e {
        polyclinic_scheduling::SchedulingError::Store(e) => e.into(),
        other => DocplannerError::conflict(other.to_string()),
    }
}

async fn clear_day(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, date)): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    editable(&at)?;
    let tz = client.tenant.tz();
    // The operation documents 204, 403 and 404 only: a day that is not one
    // is a 404, as the breaks list shows its unparsable date.
    let invalid = || DocplannerError::new(StatusCode::NOT_FOUND, "Invalid date given.");
    let day: jiff::civil::Date = date.parse().map_err(|_| invalid())?;
    let start = day.to_zoned(tz.clone()).map_err(|_| invalid())?;
    let end = day.tomorrow().and_then(|t| t.to_zoned(tz.clone())).map_err(|_| invalid())?;
    let range = Interval { start: start.timestamp(), end: end.timestamp() };
    if !polyclinic_core::clock::in_range(range.start) || !polyclinic_core::clock::in_range(range.end) {
        return Err(invalid());
    }
    state
        .scheduling
        .replace_work_periods(&client.tenant, at.address.id, vec![(range, None)], state.now())
        .await
        .map_err(refused_periods)?;
    Ok(super::no_content())
}

#[derive(Deserialize)]
struct BookRequest {
    #[serde(deserialize_with = "id_string")]
    address_service_id: String,
    duration: i64,
    patient: BookPatient,
    #[serde(default)]
    is_returning: Option<bool>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    insurance_provider_id: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    insurance_plan_id: Option<String>,
    #[serde(default)]
    insurance_number: Option<String>,
    #[serde(default)]
    is_recurring: Option<bool>,
}

/// The patient of a booking request (`Patient`: name and phone required).
#[derive(Deserialize)]
pub(super) struct BookPatient {
    name: String,
    #[serde(default)]
    surname: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(deserialize_with = "id_string")]
    phone: String,
    #[serde(default)]
    birth_date: Option<String>,
    #[serde(default, deserialize_with = "opt_id_string")]
    nin: Option<String>,
    #[serde(default)]
    gender: Option<String>,
    #[serde(default)]
    marketing_consent: Option<bool>,
    #[serde(default)]
    data_privacy_consent: Option<bool>,
}

impl BookPatient {
    /// The core patient, validated (field errors name `patient.*`).
    fn to_patient(&self, tenant: &Tenant) -> Result<Patient, DocplannerError> {
        let bad = |f: &str, m: &str| DocplannerError::invalid_arguments([(format!("patient.{f}"), m.to_owned())]);
        let name = self.name.trim();
        if name.is_empty() {
            return Err(bad("name", "This value should not be blank."));
        }
        let mut telecom = Vec::new();
        let phone =
            international_phone(&self.phone).ok_or_else(|| bad("phone", "This value is not a valid phone number."))?;
        telecom.push(ContactPoint {
            system: ContactSystem::Phone,
            value: phone,
            use_: Some(ContactUse::Mobile),
            rank: None,
            consent: None,
        });
        if let Some(e) = self.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
            let mut email = ContactPoint {
                system: ContactSystem::Email,
                value: e.to_owned(),
                use_: None,
                rank: None,
                consent: None,
            };
            email.normalise().map_err(|_| bad("email", "This value is not a valid email address."))?;
            telecom.push(email);
        }
        let birth_date = match self.birth_date.as_deref().filter(|b| !b.is_empty()) {
            Some(b) => {
                Some(b.parse::<jiff::civil::Date>().map_err(|_| bad("birth_date", "This value is not a valid date."))?)
            }
            None => None,
        };
        let gender = match self.gender.as_deref() {
            None | Some("") => None,
            Some("m") => Some(Gender::Male),
            Some("f") => Some(Gender::Female),
            Some(_) => return Err(bad("gender", "The value you selected is not a valid choice.")),
        };
        let mut identifiers = Vec::new();
        if let Some(nin) = self.nin.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            identifiers.push(national_id(tenant, nin));
        }
        Ok(Patient {
            names: vec![HumanName {
                given: vec![name.to_owned()],
                family: self.surname.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned),
                ..Default::default()
            }],
            telecom,
            identifiers,
            birth_date,
            gender,
            active: true,
            marketing_consent: self.marketing_consent,
            data_privacy_consent: self.data_privacy_consent,
            ..Default::default()
        })
    }
}

/// A phone number as Docplanner means it: digits without a `+` are an
/// international number (`48123123123` is `+48123123123`, as the guide's
/// request and notification show); a leading single `0` marks a national
/// number, kept as given.
pub(super) fn international_phone(s: &str) -> Option<String> {
    let p = polyclinic_core::text::Phone::parse(s).ok()?;
    let v = p.as_str();
    Some(if v.starts_with('+') || v.starts_with('0') { v.to_owned() } else { format!("+{v}") })
}

/// A `nin` as the national id of the tenant's country, normalised by the
/// core's one rule ([`NationalId`]) so that every dialect finds the same
/// patient. A `nin` that is no valid number of that country (the document
/// takes any string) is kept as given, trimmed.
fn national_id(tenant: &Tenant, nin: &str) -> Identifier {
    NationalId::parse(&tenant.country, nin).map(|n| n.identifier()).unwrap_or_else(|_| Identifier {
        system: format!(
            "{}{}",
            polyclinic_core::patient::systems::NATIONAL_ID_PREFIX,
            tenant.country.to_ascii_lowercase()
        ),
        value: nin.trim().to_owned(),
    })
}

/// The booking's insurance: `provider` is the dictionary entry the request's
/// provider id names, if any.
fn insurance(
    requested: Option<&str>,
    plan: Option<&str>,
    number: Option<String>,
    provider: Option<&InsuranceProvider>,
) -> Result<Option<BookingInsurance>, DocplannerError> {
    if requested.is_none() {
        return Ok(None);
    }
    let found = provider
        .ok_or_else(|| DocplannerError::bad_request("Provided insurance provider ID not found in dictionary"))?;
    let plan_id = match plan {
        Some(pl) => Some(found.plans.iter().find(|x| x.id.to_string() == pl).map(|x| x.id).ok_or_else(|| {
            DocplannerError::invalid_arguments([("insurance_plan_id", "The plan does not belong to the provider.")])
        })?),
        None => None,
    };
    Ok(Some(BookingInsurance { provider_id: InsuranceProviderId(found.id.get()), plan_id, number }))
}

/// The practitioner and patient of a booking at `address`; its video access
/// is set by [`video::apply`] once the visit's service is known.
pub(super) fn participants(address: &Address, patient: polyclinic_core::PatientId) -> Vec<Participant> {
    let taking_part = |who, role| Participant {
        who,
        roles: vec![role],
        video: None,
        required: None,
        status: Some("accepted".into()),
    };
    vec![
        taking_part(ParticipantWho::Practitioner(address.practitioner_id), ParticipantRole::PrimaryPerformer),
        taking_part(ParticipantWho::Patient(patient), ParticipantRole::Participant),
    ]
}

/// A booking's time: `start` for `duration` minutes. A duration outside the
/// tenant's minimum and maximum (`core::time_rules`) is a field error here;
/// the scheduling layer checks every time rule again when it books.
pub(super) fn booking_interval(
    start: Timestamp,
    duration: i64,
    settings: &TenantSettings,
) -> Result<Interval, DocplannerError> {
    let (min, max) = (time_rules::min_minutes(settings), time_rules::max_minutes(settings));
    if !(min..=max).contains(&duration) {
        return Err(DocplannerError::invalid_arguments([(
            "duration",
            format!("The duration must be between {min} and {max} minutes."),
        )]));
    }
    Ok(Interval { start, end: start + SignedDuration::from_mins(duration) })
}

async fn book(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, start)): Path<(String, String, String, String)>,
    Body(req): Body<BookRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let start = parse_time(&start).ok_or_else(|| DocplannerError::bad_request("Invalid date given."))?;
    if !at.address.integrated || !at.address.calendar_enabled {
        return Err(DocplannerError::new(StatusCode::NOT_FOUND, "Unable to book a visit for this address"));
    }
    super::calendar::commercial(&at.address)?;
    let interval = booking_interval(start, req.duration, &client.tenant.settings)?;
    let patient = req.patient.to_patient(&client.tenant)?;
    for (field, v) in [("label", &req.label), ("comment", &req.comment)] {
        if let Some(v) = v {
            polyclinic_core::text::check_len(field, v, polyclinic_core::text::MAX_TEXT)?;
        }
    }
    let tenant = client.tenant.clone();
    let tz = tenant.tz();
    let (tid, address_id, now) = (tenant.id, at.address.id, state.now());
    let provider_id = req.insurance_provider_id.as_deref().and_then(|p| p.parse::<i64>().ok());
    let (services, provider) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let services = catalog::address_services(c, tid, address_id.get()).await?;
                let provider = match provider_id {
                    Some(id) => catalog::insurance_provider(c, id).await?,
                    None => None,
                };
                Ok((services, provider))
            })
        })
        .await?;
    let service = services
        .iter()
        .find(|s| s.id.to_string() == req.address_service_id)
        .cloned()
        .ok_or_else(|| DocplannerError::new(StatusCode::NOT_FOUND, "Service does not exist"))?;
    let insurance = insurance(
        req.insurance_provider_id.as_deref(),
        req.insurance_plan_id.as_deref(),
        req.insurance_number.clone(),
        provider.as_ref(),
    )?;
    // The patient is matched (or created) by the booking: participant 1.
    let mut a = Appointment::booked(
        interval,
        participants(&at.address, polyclinic_core::PatientId(0)),
        Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Docplanner) },
        now,
    );
    a.reasons = vec![service.custom_name.clone().unwrap_or_else(|| service.name.clone())];
    a.comment = req.comment;
    a.label = req.label;
    a.is_returning = req.is_returning;
    a.is_recurring = req.is_recurring.unwrap_or(false);
    a.insurance = insurance;
    let booking = Booking {
        appointment: a,
        place: Place::Slot { address: at.address.clone(), service: service.clone() },
        patients: vec![BookedPatient { patient, participant: 1, represented_by: None }],
        representatives: Vec::new(),
        through: Dialect::Docplanner,
        video: None,
    };
    let booked = state
        .scheduling
        .book(&tenant, booking, now)
        .await
        .map_err(|e| refused(Op::Book { start, service: &service, tz: &tz, moving: false }, e))?;
    let view = state.store.read(move |c| Box::pin(async move { view_of(c, tid, booked).await })).await?;
    Ok(ok(booking_json(&view, &tz, &full_scopes())))
}

/// The scopes a single booking is shown with (the document's examples show
/// the patient and the address service on `GET .../bookings/{id}`).
pub(super) fn full_scopes() -> Vec<String> {
    ["booking.patient", "booking.address_service"].map(String::from).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 20 minutes across both of 2030's changes of offset in
    /// Stockholm (and a zone without any), rendered as `format_time` does.
    #[test]
    fn day_offsets_format_as_format_time_across_changes_of_offset() {
        for zone in ["Europe/Stockholm", "America/Sao_Paulo", "UTC", "Asia/Kolkata"] {
            let tz = TimeZone::get(zone).unwrap();
            for from in ["2030-03-29T00:00:00Z", "2030-10-25T00:00:00Z"] {
                let first: Timestamp = from.parse().unwrap();
                let slots: Vec<FreeSlot> = (0..4 * 72)
                    .map(|i| FreeSlot { start: first + SignedDuration::from_mins(20 * i), services: Vec::new() })
                    .collect();
                let body = render_slots(&slots, &[], false, &tz);
                let v: Value = serde_json::from_slice(&body).unwrap();
                let got: Vec<&str> =
                    v["_items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap()).collect();
                let want: Vec<String> = slots.iter().map(|s| format_time(s.start, &tz)).collect();
                assert_eq!(got, want, "{zone} from {from}");
            }
        }
    }
}
