//! Solo appointments: booking into a waiting room for a patient named by
//! its external id, HSID (its MRN) or SPID (`POST /patients/.../appointments`),
//! `GET /appointments/{id}` and `PUT /appointments/{id}`, and the video links
//! (`provider-link`, `msteams-provider-link`, `video-call-links` by external
//! id or SAID).
//!
//! The handlers translate only: a booking is a `Place::WaitingRoom` booking
//! (`state.scheduling.book`: the waiting room's capacity and opening hours,
//! the time rules), a change is `state.scheduling.replace` (time, status
//! through the status machine, details; a cancellation frees the time for
//! every dialect). Every link is a Polyclinic join page carrying the
//! participant's own key (`VideoAccess::join_path`); keys are never logged.

use crate::patients::{self, GroupShape, PatientRef, bad};
use crate::{Caller, Json, Path, SoloError, waiting_rooms};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::appointment::{
    Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho, VideoAccess,
};
use polyclinic_core::schedule::Interval;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::text::{MAX_SHORT, check_len};
use polyclinic_core::{AppointmentId, TenantId, Uuid};
use polyclinic_http::AppState;
use polyclinic_scheduling::{Booking, Place, availability};
use polyclinic_store::{appointments, catalog};
use serde::Deserialize;
use serde_json::{Value, json};

/// The shortest and longest visit the document allows, in seconds.
pub const DURATION_RANGE: std::ops::RangeInclusive<i64> = 1..=86_400;
/// The header `msteams-provider-link` requires.
pub const TEAMS_AUTH_HEADER: &str = "Teams-Auth-Token";
/// Most reasons of one appointment.
const MAX_REASONS: usize = 20;
/// Solo's video call statuses.
pub const VIDEO_CALL_STATUSES: &[&str] =
    &["LWBS", "incomplete", "complete", "finalizing", "on hold", "on call", "waiting"];

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/patients/{id}/appointments", post(create_external))
        .route("/patients/HSID/{hsid}/appointments", post(create_hsid))
        .route("/patients/id/type/SPID/value/{spid}/appointments", post(create_spid))
        .route("/appointments/{id}", get(read).put(update))
        .route("/appointments/{id}/provider-link", get(provider_link))
        .route("/appointments/{id}/msteams-provider-link", get(msteams_link))
        .route("/appointments/{id}/video-call-links", get(links_by_external_id))
        .route("/appointments/id/type/SAID/value/{said}/video-call-links", get(links_by_said))
}

/// The body of `POST /patients/.../appointments`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    date: Option<i64>,
    reasons: Option<Vec<String>>,
    duration: Option<i64>,
    waiting_room: Option<String>,
    external_id: Option<String>,
    episode_of_care_id: Option<String>,
    account_number: Option<String>,
}

/// The body of `PUT /appointments/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateBody {
    date: Option<i64>,
    duration: Option<i64>,
    status: Option<String>,
    external_id: Option<String>,
    reasons: Option<Vec<String>>,
    account_number: Option<String>,
    video_call: Option<VideoCallIn>,
}

#[derive(Debug, Deserialize)]
struct VideoCallIn {
    status: Option<String>,
}

fn start_at(date: i64) -> Result<Timestamp, SoloError> {
    Timestamp::from_second(date)
        .ok()
        .filter(|t| polyclinic_core::clock::in_range(*t))
        .ok_or_else(|| bad("date", format!("{date} is not a supported timestamp")))
}

fn check_duration(d: i64) -> Result<i64, SoloError> {
    if DURATION_RANGE.contains(&d) { Ok(d) } else { Err(bad("duration", "This value should be between 1 and 86400.")) }
}

fn interval(start: Timestamp, seconds: i64) -> Result<Interval, SoloError> {
    start
        .checked_add(SignedDuration::from_secs(seconds))
        .ok()
        .map(|end| Interval { start, end })
        .ok_or_else(|| bad("date", "the visit would end outside the supported time range"))
}

fn short(field: &str, v: Option<String>) -> Result<Option<String>, SoloError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            check_len(field, &s, MAX_SHORT).map_err(|_| bad(field, "This value is too long."))?;
            Ok(Some(s))
        }
    }
}

fn reasons(v: Vec<String>) -> Result<Vec<String>, SoloError> {
    if v.len() > MAX_REASONS {
        return Err(bad("reasons", format!("at most {MAX_REASONS} reasons")));
    }
    for r in &v {
        check_len("reasons", r, MAX_SHORT).map_err(|_| bad("reasons", "This value is too long."))?;
    }
    Ok(v)
}

/// The status a Solo status names, or 400 naming the twelve.
fn parse_status(s: &str) -> Result<AppointmentStatus, SoloError> {
    AppointmentStatus::from_solo(s).ok_or_else(|| {
        let allowed: Vec<String> = AppointmentStatus::SOLO.iter().map(|s| format!("\"{s}\"")).collect();
        bad("status", format!("\"{s}\" is not one of {}", allowed.join(", ")))
    })
}

fn solo_actor() -> Actor {
    Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Solo) }
}

async fn create_external(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<Response, SoloError> {
    create(state, caller, PatientRef::External(id), body).await
}

async fn create_hsid(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(hsid): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<Response, SoloError> {
    create(state, caller, PatientRef::Hsid(hsid), body).await
}

async fn create_spid(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(spid): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<Response, SoloError> {
    create(state, caller, PatientRef::Spid(spid), body).await
}

/// Books a visit in the waiting room the body names: 201 `{id, visitUrl}`.
async fn create(state: AppState, caller: Caller, patient: PatientRef, body: CreateBody) -> Result<Response, SoloError> {
    let tenant = &caller.tenant;
    let room_name = body
        .waiting_room
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("waitingRoom", "This value should not be blank."))?
        .to_owned();
    let duration = body.duration.map(check_duration).transpose()?;
    let start = body.date.map(start_at).transpose()?;
    let reasons = reasons(body.reasons.unwrap_or_default())?;
    let external_id = short("externalId", body.external_id)?;
    let account_number = short("accountNumber", body.account_number)?;
    let episode = match body.episode_of_care_id.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => Some(e.parse::<Uuid>().map_err(|_| bad("episodeOfCareId", "This is not a valid UUID."))?),
    };
    let patient = patients::find(&state, tenant.id, patient).await?;
    let room = waiting_rooms::by_name(&state, tenant.id, &room_name)
        .await?
        .ok_or_else(|| bad("waitingRoom", format!("Waiting room \"{room_name}\" not found")))?;
    let duration = duration.unwrap_or(room.slot_seconds);
    let now = state.now();
    let visit = match start {
        Some(start) => interval(start, duration)?,
        // No date: the first free slot of the waiting room from now on.
        None => {
            let (t, r) = (tenant.clone(), room.clone());
            state
                .store
                .read(move |c| {
                    Box::pin(async move { availability::first_waiting_room_start(c, &t, &r, duration, now).await })
                })
                .await?
                .ok_or_else(|| SoloError::conflict(format!("Waiting room \"{room_name}\" has no free slot")))?
        }
    };
    let pid = patient.id.ok_or_else(|| SoloError::not_found("Patient not found"))?;
    let who = Participant {
        who: ParticipantWho::Patient(pid),
        roles: vec![ParticipantRole::Participant],
        video: None,
        required: Some("required".into()),
        status: Some("accepted".into()),
    };
    let mut a = Appointment::booked(visit, vec![who], solo_actor(), now);
    a.reasons = reasons;
    a.external_id = external_id;
    a.account_number = account_number;
    a.episode_id = episode;
    let booking = Booking {
        appointment: a,
        place: Place::WaitingRoom(room),
        patients: vec![],
        representatives: vec![],
        through: Dialect::Solo,
        // Every Solo visit is a video call.
        video: Some(true),
    };
    // An episode of care must be the patient's own, checked in the
    // booking's transaction (400 naming `episodeOfCareId`).
    let booked = state.scheduling.book(tenant, booking, now).await.map_err(crate::episodes::refused_booking)?;
    let body = json!({"id": booked.id.get(), "visitUrl": patient_link(&state, tenant.id, &booked)});
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

/// The appointment `raw` names for the tenant, or 404.
async fn load(state: &AppState, tenant: TenantId, raw: &str) -> Result<Appointment, SoloError> {
    let not_found = || SoloError::not_found("Appointment not found");
    let id = raw.parse::<i64>().ok().filter(|n| *n > 0).map(AppointmentId).ok_or_else(not_found)?;
    state
        .store
        .read(move |c| Box::pin(async move { appointments::get(c, tenant, id).await }))
        .await?
        .ok_or_else(not_found)
}

/// A Solo video call id for the appointment: a UUID derived from its id.
fn video_call_id(id: AppointmentId) -> String {
    format!("00000000-0000-4000-8000-{:012x}", id.get().max(0))
}

/// `GET /appointments/{id}` in the document's shape.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = load(&state, tenant, &id).await?;
    let (pid, practitioners): (_, Vec<i64>) = (a.patient(), a.practitioners().map(|p| p.get()).collect());
    let (patient, providers) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let patient = match pid {
                    Some(p) => polyclinic_store::patients::get(c, tenant, p).await?,
                    None => None,
                };
                let mut providers = Vec::new();
                for p in practitioners {
                    providers.extend(catalog::practitioner(c, tenant, p).await?);
                }
                Ok((patient, providers))
            })
        })
        .await?;
    let tz = caller.tenant.tz();
    let patient = patient.map_or(Value::Null, |p| {
        let id = p
            .identifier(patients::EXTERNAL_ID)
            .map(str::to_owned)
            .or_else(|| p.id.map(|i| i.to_string()))
            .unwrap_or_default();
        json!({"id": id, "demographics": patients::render(&p, &tz, GroupShape::Object)})
    });
    let providers: Vec<Value> = providers
        .iter()
        .map(|p| {
            json!({"id": p.id.to_string(), "email": p.email.as_ref().map(|e| e.as_str()),
                   "firstName": p.given, "middleName": "", "lastName": p.family})
        })
        .collect();
    Ok(axum::Json(json!({
        "id": a.id.get(),
        "date": a.interval.start.as_second(),
        "duration": a.interval.seconds(),
        "reasons": a.reasons,
        "status": a.status.solo(),
        "videoCall": a.video_call_status.as_ref().map(|s| json!({"id": video_call_id(a.id), "status": s})),
        "externalId": a.external_id,
        "patient": patient,
        "providers": providers,
    }))
    .into_response())
}

/// `PUT /appointments/{id}`: the fields given change, through one
/// `replace` command; 200 `{id, visitUrl}`.
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<Response, SoloError> {
    let duration = body.duration.map(check_duration).transpose()?;
    let start = body.date.map(start_at).transpose()?;
    let status = body.status.as_deref().map(parse_status).transpose()?;
    let reasons = body.reasons.map(reasons).transpose()?;
    let external_id = body.external_id.map(|e| short("externalId", Some(e))).transpose()?;
    let account_number = body.account_number.map(|e| short("accountNumber", Some(e))).transpose()?;
    let video_status = match body.video_call.and_then(|v| v.status) {
        None => None,
        Some(s) if VIDEO_CALL_STATUSES.contains(&s.as_str()) => Some(s),
        Some(s) => {
            let allowed: Vec<String> = VIDEO_CALL_STATUSES.iter().map(|s| format!("\"{s}\"")).collect();
            return Err(bad("videoCall.status", format!("\"{s}\" is not one of {}", allowed.join(", "))));
        }
    };
    let tenant = &caller.tenant;
    let current = load(&state, tenant.id, &id).await?;
    let mut new = current.clone();
    if start.is_some() || duration.is_some() {
        let start = start.unwrap_or(current.interval.start);
        new.interval = interval(start, duration.unwrap_or(current.interval.seconds()))?;
    }
    // The same Solo status again (say `cancelled` for one entered in error)
    // changes nothing.
    if let Some(s) = status.filter(|s| s.solo() != current.status.solo()) {
        new.status = s;
    }
    if let Some(r) = reasons {
        new.reasons = r;
    }
    if let Some(e) = external_id {
        new.external_id = e;
    }
    if let Some(n) = account_number {
        new.account_number = n;
    }
    if let Some(v) = video_status {
        new.video_call_status = Some(v);
    }
    let saved = state.scheduling.replace(tenant, new, solo_actor(), Dialect::Solo, state.now()).await?;
    Ok(axum::Json(json!({"id": saved.id.get(), "visitUrl": patient_link(&state, tenant.id, &saved)})).into_response())
}

/// The join page of `access` on this server.
fn join_url(state: &AppState, tenant: TenantId, a: &Appointment, access: &VideoAccess) -> String {
    format!("{}{}", state.public_url, access.join_path(tenant, a.id))
}

/// The patient's link (`visitUrl`), when the visit is a video call.
fn patient_link(state: &AppState, tenant: TenantId, a: &Appointment) -> Option<String> {
    a.participants
        .iter()
        .find(|p| matches!(p.who, ParticipantWho::Patient(_)))
        .and_then(|p| p.video.as_ref())
        .map(|v| join_url(state, tenant, a, v))
}

/// The provider's link: the practitioner's key, else (a waiting room visit,
/// no practitioner yet) the waiting room's.
fn provider_link_of(state: &AppState, tenant: TenantId, a: &Appointment) -> Option<String> {
    let key =
        |f: fn(&ParticipantWho) -> bool| a.participants.iter().filter(|p| f(&p.who)).find_map(|p| p.video.as_ref());
    key(|w| matches!(w, ParticipantWho::Practitioner(_)))
        .or_else(|| key(|w| matches!(w, ParticipantWho::HealthcareService(_))))
        .map(|v| join_url(state, tenant, a, v))
}

fn not_video() -> SoloError {
    SoloError::conflict("The appointment is not a video visit")
}

async fn provider_link(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let a = load(&state, caller.tenant.id, &id).await?;
    let url = provider_link_of(&state, caller.tenant.id, &a).ok_or_else(not_video)?;
    Ok(axum::Json(json!({"id": a.id.get(), "providerVisitUrl": url})).into_response())
}

/// Polyclinic has no Microsoft Teams: the Teams link is the provider's own
/// join page, once the request carries a `Teams-Auth-Token` (401 without).
async fn msteams_link(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let token = headers.get(TEAMS_AUTH_HEADER).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if token.is_empty() {
        return Err(SoloError::new(StatusCode::UNAUTHORIZED, "the Teams-Auth-Token header is missing"));
    }
    let a = load(&state, caller.tenant.id, &id).await?;
    let url = provider_link_of(&state, caller.tenant.id, &a).ok_or_else(not_video)?;
    Ok(axum::Json(json!({"id": a.id.get(), "msTeamsProviderVisitUrl": url})).into_response())
}

fn both_links(state: &AppState, tenant: TenantId, a: &Appointment) -> Result<Response, SoloError> {
    let provider = provider_link_of(state, tenant, a).ok_or_else(not_video)?;
    let patient = patient_link(state, tenant, a).ok_or_else(not_video)?;
    Ok(axum::Json(
        json!({"appointmentExternalId": a.external_id, "providerVisitUrl": provider, "patientVisitUrl": patient}),
    )
    .into_response())
}

/// `GET /appointments/{external_appointment_id}/video-call-links`: the
/// earliest appointment with that external id.
async fn links_by_external_id(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(external): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = state
        .store
        .read(move |c| Box::pin(async move { appointments::by_external_id(c, tenant, &external).await }))
        .await?
        .ok_or_else(|| SoloError::not_found("Appointment not found"))?;
    both_links(&state, tenant, &a)
}

async fn links_by_said(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(said): Path<String>,
) -> Result<Response, SoloError> {
    let a = load(&state, caller.tenant.id, &said).await?;
    both_links(&state, caller.tenant.id, &a)
}
