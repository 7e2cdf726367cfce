//! NabotoAppointment: create (`POST /appointment`), update (`PUT
//! /appointment`, `PUT /appointment/{id}`), read (`GET /appointment/{id}`)
//! and search (`GET /appointment?identifier=system|value`), with the
//! profile's rules of IG 0.1.4 checked at the edge, and video calls.
//!
//! Every write goes through the scheduling layer: a create is a booking with
//! [`Place::Practitioners`] (the clinic's own system keeps the calendar; the
//! booking holds time on its practitioners), an update one
//! `Scheduling::replace` (time, status and details in one transaction).
//!
//! Video calls: the `virtual-service-contact-detail` extension on any
//! participant makes the appointment a video call. Each participant then has
//! its own secret key (`scheduling::video`), shown as the extension's
//! `sessionKey` and in its join `address` (`{public_url}/video/{tenant}/{appointment}/{key}`,
//! the page `polyclinic_http::video` serves);
//! what the client sends for either is ignored. An update keeps the keys of
//! the participants that stay. Keys are never logged.

use crate::canonical::{self, Base, Spellings};
use crate::patients::{expect_resource, opt_array, opt_str, profiles, with_full_urls};
use crate::{Caller, FhirJson, NabotoError, Path, Query, fhir, token_search};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
use polyclinic_core::practitioner::Practitioner;
use polyclinic_core::schedule::Interval;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::{AppointmentId, PatientId, PractitionerId, TenantId};
use polyclinic_http::AppState;
use polyclinic_scheduling::{Booking, Place};
use polyclinic_store::catalog::{self, Table};
use polyclinic_store::{appointments, estimates, patients};
use serde_json::{Value, json};

/// The v3 ParticipationType system.
pub const PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// The video channels of the IG's CodeSystem.
pub const CHANNELS: &[&str] = &["visit-e", "naboto"];
/// The channel shown when the request named none (a read).
const DEFAULT_CHANNEL: &str = "visit-e";
/// Texts of several notes, as the appointment's comment keeps them.
const NOTE_SEPARATOR: &str = "\n\n";

/// Elements a NabotoAppointment must not carry.
const FORBIDDEN: &[&str] = &[
    "language",
    "contained",
    "cancelationReason",
    "serviceCategory",
    "serviceType",
    "specialty",
    "appointmentType",
    "reasonCode",
    "reasonReference",
    "priority",
    "supportingInformation",
    "minutesDuration",
    "slot",
    "comment",
    "patientInstruction",
    "basedOn",
    "requestedPeriod",
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/appointment", get(search).post(create).put(update))
        .route("/appointment/{id}", get(read).put(update_at))
}

/// Who a participant of a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Named {
    Patient(PatientRef),
    Practitioner(String),
}

/// How a request names its patient: by id, or by an identifier (the
/// clinic's PI identifier, `actor.identifier`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum PatientRef {
    Id(String),
    Identifier { system: String, value: String },
}

/// A NabotoAppointment as read from a request, before its references are
/// resolved.
#[derive(Debug)]
pub struct NabotoAppointment {
    id: Option<String>,
    status: AppointmentStatus,
    interval: Interval,
    /// In the request's order, each with whether it carries the video extension.
    participants: Vec<(Named, bool)>,
    notes: Vec<String>,
    external_id: Option<String>,
    video: bool,
    channel: Option<String>,
    spellings: Spellings,
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    let req = parse(&body)?;
    if req.id.is_some() {
        return Err(NabotoError::id_mismatch("an appointment to create must not have an `id`: the server assigns it"));
    }
    if req.status != AppointmentStatus::Booked {
        return Err(NabotoError::profile(format!(
            "an appointment is created `booked`, not `{}`; send a later status with PUT",
            req.status.naboto()
        )));
    }
    let tenant = caller.tenant.id;
    if let Some(ext) = req.external_id.clone() {
        let existing = state
            .store
            .read(move |c| Box::pin(async move { appointments::by_external_id(c, tenant, &ext).await }))
            .await?;
        if let Some(a) = existing {
            return Err(NabotoError::new(
                StatusCode::CONFLICT,
                "duplicate",
                "DuplicateIdentifier",
                format!("appointment {} already has this identifier; update it with PUT", a.id),
            ));
        }
    }
    let now = state.now();
    let participants = resolve(&state, tenant, &req).await?;
    let by = Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Naboto) };
    let mut a = Appointment::booked(req.interval, participants, by, now);
    a.comment = notes_comment(&req.notes);
    a.external_id = req.external_id.clone();
    let booking = Booking {
        appointment: a,
        place: Place::Practitioners,
        patients: vec![],
        representatives: vec![],
        through: Dialect::Naboto,
        video: Some(req.video),
    };
    let booked = state.scheduling.book(&caller.tenant, booking, now).await?;
    let r = resource(&booked, caller.tenant.id, &state.public_url, req.spellings, req.channel.as_deref());
    let mut response = fhir(StatusCode::CREATED, r);
    if let Ok(l) = HeaderValue::from_str(&format!("{}/naboto/appointment/{}", state.public_url, booked.id)) {
        response.headers_mut().insert(header::LOCATION, l);
    }
    Ok(response)
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    put(state, caller, None, body).await
}

async fn update_at(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    put(state, caller, Some(id), body).await
}

async fn put(state: AppState, caller: Caller, path_id: Option<String>, body: Value) -> Result<Response, NabotoError> {
    let req = parse(&body)?;
    let Some(id) = req.id.clone() else {
        return Err(NabotoError::id_mismatch("an update needs the appointment's `id` in the body"));
    };
    if let Some(p) = path_id.filter(|p| *p != id) {
        return Err(NabotoError::id_mismatch(format!("the body's id `{id}` is not the id `{p}` of the URL")));
    }
    let current = load(&state, caller.tenant.id, &id).await?;
    let mut participants = resolve(&state, caller.tenant.id, &req).await?;
    // The service the appointment belongs to stays (Naboto has no element for it).
    participants
        .extend(current.participants.iter().filter(|p| matches!(p.who, ParticipantWho::HealthcareService(_))).cloned());
    let mut new = current.clone();
    new.interval = req.interval;
    new.status = req.status;
    new.participants = participants;
    new.digital = req.video;
    new.comment = notes_comment(&req.notes);
    new.external_id = req.external_id.clone();
    let by = Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Naboto) };
    let saved = state.scheduling.replace(&caller.tenant, new, by, Dialect::Naboto, state.now()).await?;
    Ok(fhir(
        StatusCode::OK,
        resource(&saved, caller.tenant.id, &state.public_url, req.spellings, req.channel.as_deref()),
    ))
}

/// The tenant's appointment `id`; any other tenant's (or a malformed id) is not found.
async fn load(state: &AppState, tenant: TenantId, id: &str) -> Result<Appointment, NabotoError> {
    let not_found = || NabotoError::not_found(format!("appointment `{id}` not found"));
    let n = id.parse::<AppointmentId>().map_err(|_| not_found())?;
    state
        .store
        .read(move |c| Box::pin(async move { appointments::get(c, tenant, n).await }))
        .await?
        .ok_or_else(not_found)
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, NabotoError> {
    let a = load(&state, caller.tenant.id, &id).await?;
    let (tenant, aid) = (caller.tenant.id, a.id);
    let expected = state.store.read(move |c| Box::pin(async move { estimates::get(c, tenant, aid).await })).await?;
    let r = resource(&a, caller.tenant.id, &state.public_url, Spellings::default(), None);
    Ok(fhir(StatusCode::OK, with_expected_start(r, expected)))
}

/// The extension that shows a late video visit's expected start (from the
/// scheduler's delay estimation; docs/dialects/naboto.md).
pub const EXPECTED_START: &str = "urn:polyclinic:fhir:StructureDefinition:expected-start";

/// `r` with the expected-start extension, when the visit is expected late.
fn with_expected_start(mut r: Value, expected: Option<Timestamp>) -> Value {
    if let Some(t) = expected {
        let ext = json!({"url": EXPECTED_START, "valueDateTime": t.to_string()});
        match r.get_mut("extension").and_then(Value::as_array_mut) {
            Some(list) => list.push(ext),
            None => r["extension"] = json!([ext]),
        }
    }
    r
}

#[derive(serde::Deserialize)]
struct SearchParams {
    identifier: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SearchParams>,
) -> Result<Response, NabotoError> {
    let (system, value) = token_search(q.identifier.as_deref())?;
    let external_id = format!("{system}|{value}");
    let tenant = caller.tenant.id;
    let found = state
        .store
        .read(move |c| Box::pin(async move { appointments::by_external_id(c, tenant, &external_id).await }))
        .await?;
    let entries: Vec<Value> =
        found.iter().map(|a| resource(a, tenant, &state.public_url, Spellings::default(), None)).collect();
    let total = entries.len();
    let bundle = polyclinic_fhir::searchset(entries, Some(total), vec![]);
    Ok(fhir(StatusCode::OK, with_full_urls(bundle, &state.public_url, "appointment")))
}

/// The notes' texts as the appointment's comment.
fn notes_comment(notes: &[String]) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join(NOTE_SEPARATOR))
}

/// The request's participants as the tenant's patient and practitioners:
/// every reference must name one of the tenant's; with no practitioner, the
/// tenant's default practitioner (its first active one, by id) is assigned.
/// The first practitioner is the primary performer.
async fn resolve(state: &AppState, tenant: TenantId, req: &NabotoAppointment) -> Result<Vec<Participant>, NabotoError> {
    let named: Vec<Named> = req.participants.iter().map(|(n, _)| n.clone()).collect();
    let found = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let mut out: Vec<Result<ParticipantWho, String>> = Vec::new();
                for n in &named {
                    out.push(match n {
                        Named::Patient(PatientRef::Id(id)) => match id.parse::<PatientId>() {
                            Ok(pid) => match patients::get(c, tenant, pid).await? {
                                Some(_) => Ok(ParticipantWho::Patient(pid)),
                                None => Err(format!("patient `{id}` not found")),
                            },
                            Err(_) => Err(format!("patient `{id}` not found")),
                        },
                        Named::Patient(PatientRef::Identifier { system, value }) => {
                            let stored = crate::patients::stored_identifier(system, value);
                            match patients::find_by(c, tenant, &stored.0, &stored.1).await?.and_then(|p| p.id) {
                                Some(pid) => Ok(ParticipantWho::Patient(pid)),
                                None => Err(format!("no patient has the identifier `{system}|{value}`")),
                            }
                        }
                        Named::Practitioner(id) => match id.parse::<PractitionerId>() {
                            Ok(pid) => match catalog::practitioner(c, tenant, pid.get()).await? {
                                Some(_) => Ok(ParticipantWho::Practitioner(pid)),
                                None => Err(format!("practitioner `{id}` not found")),
                            },
                            Err(_) => Err(format!("practitioner `{id}` not found")),
                        },
                    });
                }
                let default = if named.iter().any(|n| matches!(n, Named::Practitioner(_))) {
                    None
                } else {
                    let all: Vec<Practitioner> = catalog::list(c, Table::Practitioners, tenant).await?;
                    Some(all.into_iter().find(|p| p.active).map(|p| p.id))
                };
                Ok((out, default))
            })
        })
        .await?;
    let (whos, default) = found;
    let mut participants = Vec::new();
    match default {
        None => {}
        Some(None) => {
            return Err(NabotoError::reference(
                "the appointment names no practitioner and the tenant has no active practitioner to assign",
            ));
        }
        Some(Some(id)) => participants.push(practitioner(id, true)),
    }
    for who in whos {
        let who = who.map_err(NabotoError::reference)?;
        participants.push(match who {
            ParticipantWho::Practitioner(id) => {
                let first =
                    !participants.iter().any(|p: &Participant| matches!(p.who, ParticipantWho::Practitioner(_)));
                practitioner(id, first)
            }
            other => Participant {
                who: other,
                roles: vec![ParticipantRole::Participant],
                video: None,
                required: None,
                status: Some("accepted".into()),
            },
        });
    }
    Ok(participants)
}

fn practitioner(id: PractitionerId, primary: bool) -> Participant {
    Participant {
        who: ParticipantWho::Practitioner(id),
        roles: vec![if primary { ParticipantRole::PrimaryPerformer } else { ParticipantRole::SecondaryPerformer }],
        video: None,
        required: Some("required".into()),
        status: Some("accepted".into()),
    }
}

// ---- reading a NabotoAppointment ----

/// Reads a NabotoAppointment, enforcing the profile's rules of IG 0.1.4.
pub fn parse(body: &Value) -> Result<NabotoAppointment, NabotoError> {
    let o = expect_resource(body, "Appointment")?;
    if let Some(k) = FORBIDDEN.iter().find(|k| o.contains_key(**k)) {
        return Err(NabotoError::profile(format!("`{k}` must not be present in a NabotoAppointment")));
    }
    let mut spellings = Spellings {
        profile: canonical::profile_spelling(profiles(body), canonical::APPOINTMENT_PROFILE),
        ..Default::default()
    };
    let id = opt_str(body, "id", "")?.map(str::to_owned);
    let status = match opt_str(body, "status", "")? {
        None => return Err(NabotoError::profile("`status` is required in a NabotoAppointment")),
        Some(s) => AppointmentStatus::from_naboto(s).ok_or_else(|| {
            NabotoError::profile(format!(
                "`status` `{s}` is not in naboto-appointment-status (booked, arrived, fulfilled, cancelled, noshow, entered-in-error, checked-in)"
            ))
        })?,
    };
    let instant = |key: &str| -> Result<Timestamp, NabotoError> {
        let s = opt_str(body, key, "")?
            .ok_or_else(|| NabotoError::profile(format!("`{key}` is required in a NabotoAppointment")))?;
        s.parse::<Timestamp>().map_err(|_| {
            NabotoError::structure(format!(
                "`{key}` must be an instant with a time zone (`2022-02-02T11:00:00Z`), not `{s}`"
            ))
        })
    };
    let (start, end) = (instant("start")?, instant("end")?);
    if end <= start {
        return Err(NabotoError::profile("`end` must come after `start`"));
    }
    let mut notes = Vec::new();
    for e in opt_array(body, "extension", "")? {
        let url = opt_str(e, "url", "extension.")?.unwrap_or("");
        if let Some(b) = Base::of(url, "StructureDefinition", canonical::NOTE) {
            spellings.note = b;
            notes.push(note(e)?);
        }
    }
    let identifiers = opt_array(body, "identifier", "")?;
    let external_id = match identifiers {
        [] => None,
        [i] => {
            let system = opt_str(i, "system", "identifier.")?.map(str::trim).filter(|s| !s.is_empty());
            let value = opt_str(i, "value", "identifier.")?.map(str::trim).filter(|s| !s.is_empty());
            match (system, value) {
                (Some(s), Some(v)) if !s.contains('|') => Some(format!("{s}|{v}")),
                _ => {
                    return Err(NabotoError::profile(
                        "the appointment's `identifier` (its id in the clinic's system) needs a `system` (without `|`) and a `value`",
                    ));
                }
            }
        }
        _ => {
            return Err(NabotoError::profile(
                "an appointment carries at most one `identifier`: its id in the clinic's system",
            ));
        }
    };
    let mut participants = Vec::new();
    let mut channel = None;
    for (n, p) in opt_array(body, "participant", "")?.iter().enumerate() {
        let (named, video) = participant(p, n, &mut spellings, &mut channel)?;
        participants.push((named, video));
    }
    let patients = participants.iter().filter(|(n, _)| matches!(n, Named::Patient(_))).count();
    if patients != 1 {
        return Err(NabotoError::profile(format!(
            "a NabotoAppointment needs exactly one patient participant (`actor.type` `Patient`), this one has {patients}"
        )));
    }
    let video = participants.iter().any(|(_, v)| *v);
    Ok(NabotoAppointment {
        id,
        status,
        interval: Interval { start, end },
        participants,
        notes,
        external_id,
        video,
        channel,
        spellings,
    })
}

/// The text of a naboto-note extension.
fn note(e: &Value) -> Result<String, NabotoError> {
    let parts = opt_array(e, "extension", "extension.")?;
    let inner: Vec<&Value> = parts.iter().filter(|x| x.get("url").and_then(Value::as_str) == Some("note")).collect();
    let [n] = inner.as_slice() else {
        return Err(NabotoError::profile("a naboto-note extension holds exactly one `note` sub-extension"));
    };
    n.get("valueAnnotation")
        .and_then(|a| a.get("text"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| NabotoError::profile("a naboto-note's `note` needs a `valueAnnotation` with its `text`"))
}

/// The v3 ParticipationType codes of a participant's `type`.
fn type_codes(p: &Value) -> Vec<&str> {
    p.get("type")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("coding").and_then(Value::as_array))
        .flatten()
        .filter(|c| c.get("system").and_then(Value::as_str).is_none_or(|s| s == PARTICIPATION_TYPE))
        .filter_map(|c| c.get("code").and_then(Value::as_str))
        .collect()
}

fn participant(
    p: &Value,
    n: usize,
    spellings: &mut Spellings,
    channel: &mut Option<String>,
) -> Result<(Named, bool), NabotoError> {
    let at = format!("participant[{n}]");
    if p.get("period").is_some() {
        return Err(NabotoError::profile(format!("`{at}.period` must not be present")));
    }
    let actor = p.get("actor").ok_or_else(|| NabotoError::profile(format!("`{at}.actor` is required")))?;
    let kind = opt_str(actor, "type", "participant.actor.")?;
    let reference = opt_str(actor, "reference", "participant.actor.")?;
    // `Patient/1`, or a full URL ending in `/Patient/1` (`/patients/1`): the id is the last segment.
    let id = reference.and_then(|r| r.trim_end_matches('/').rsplit('/').next()).filter(|s| !s.is_empty());
    let status = opt_str(p, "status", "participant.")?;
    if status != Some("accepted") {
        return Err(NabotoError::profile(format!("`{at}.status` must be `accepted`")));
    }
    let codes = type_codes(p);
    let named = match kind {
        Some("Patient") => {
            if p.get("type").is_some() && !codes.contains(&"SBJ") {
                return Err(NabotoError::profile(format!("the patient participant's `type` must be SBJ ({at})")));
            }
            match (id, actor.get("identifier")) {
                (Some(id), _) => Named::Patient(PatientRef::Id(id.to_owned())),
                (None, Some(i)) => {
                    let system = opt_str(i, "system", "participant.actor.identifier.")?;
                    let value = opt_str(i, "value", "participant.actor.identifier.")?;
                    match (system, value) {
                        (Some(s), Some(v)) => {
                            Named::Patient(PatientRef::Identifier { system: s.into(), value: v.into() })
                        }
                        _ => {
                            return Err(NabotoError::profile(format!(
                                "`{at}.actor.identifier` needs a system and a value"
                            )));
                        }
                    }
                }
                (None, None) => {
                    return Err(NabotoError::profile(format!("`{at}.actor` needs a `reference` or an `identifier`")));
                }
            }
        }
        Some("Practitioner") => {
            if p.get("type").is_some() && !codes.contains(&"PPRF") {
                return Err(NabotoError::profile(format!("a practitioner participant's `type` must be PPRF ({at})")));
            }
            if opt_str(p, "required", "participant.")?.is_some_and(|r| r != "required") {
                return Err(NabotoError::profile(format!(
                    "a practitioner participant's `required` must be `required` ({at})"
                )));
            }
            let id = id.ok_or_else(|| NabotoError::profile(format!("`{at}.actor.reference` is required")))?;
            Named::Practitioner(id.to_owned())
        }
        Some(other) => {
            return Err(NabotoError::profile(format!(
                "`{at}.actor` must reference a Patient or a Practitioner, not a {other}"
            )));
        }
        None => return Err(NabotoError::profile(format!("`{at}.actor.type` (Patient or Practitioner) is required"))),
    };
    let mut video = false;
    for e in opt_array(p, "extension", "participant.")? {
        let url = opt_str(e, "url", "participant.extension.")?.unwrap_or("");
        let Some(base) = Base::of(url, "StructureDefinition", canonical::VIRTUAL_SERVICE) else { continue };
        if video {
            return Err(NabotoError::profile(format!("`{at}` carries at most one virtual-service-contact-detail")));
        }
        video = true;
        spellings.virtual_service = base;
        let channel_types: Vec<&Value> = opt_array(e, "extension", "participant.extension.")?
            .iter()
            .filter(|x| x.get("url").and_then(Value::as_str) == Some("channelType"))
            .collect();
        let [ct] = channel_types.as_slice() else {
            return Err(NabotoError::profile(format!(
                "the virtual-service-contact-detail of `{at}` needs exactly one `channelType`"
            )));
        };
        let coding = ct
            .get("valueCoding")
            .ok_or_else(|| NabotoError::profile(format!("the `channelType` of `{at}` needs a `valueCoding`")))?;
        let system = opt_str(coding, "system", "channelType.valueCoding.")?.unwrap_or("");
        let code = opt_str(coding, "code", "channelType.valueCoding.")?.unwrap_or("");
        let Some(cs) = Base::of(system, "CodeSystem", canonical::CHANNEL_TYPE) else {
            return Err(NabotoError::profile(format!(
                "the `channelType` of `{at}` must be coded in naboto-vidcall-channel-type, not `{system}`"
            )));
        };
        if !CHANNELS.contains(&code) {
            return Err(NabotoError::profile(format!(
                "`{code}` is not a code of naboto-vidcall-channel-type (visit-e, naboto)"
            )));
        }
        spellings.channel = cs;
        channel.get_or_insert_with(|| code.to_owned());
    }
    Ok((named, video))
}

// ---- writing a NabotoAppointment ----

/// An appointment as a NabotoAppointment, its URLs in `spellings`. A video
/// call shows each participant's own join address and session key, with
/// `channel` (the request's, else `visit-e`).
pub fn resource(
    a: &Appointment,
    tenant: TenantId,
    public_url: &str,
    spellings: Spellings,
    channel: Option<&str>,
) -> Value {
    let mut r = json!({
        "resourceType": "Appointment",
        "id": a.id.to_string(),
        "meta": {"profile": [spellings.profile.structure_definition(canonical::APPOINTMENT_PROFILE)]},
    });
    if let Some(comment) = a.comment.as_deref().filter(|c| !c.is_empty()) {
        let url = spellings.note.structure_definition(canonical::NOTE);
        r["extension"] = Value::Array(
            comment
                .split(NOTE_SEPARATOR)
                .map(|text| json!({"extension": [{"url": "note", "valueAnnotation": {"text": text}}], "url": url}))
                .collect(),
        );
    }
    if let Some((system, value)) = a.external_id.as_deref().and_then(|e| e.split_once('|')) {
        r["identifier"] = json!([{"system": system, "value": value}]);
    }
    r["status"] = json!(a.status.naboto());
    r["start"] = json!(a.interval.start.to_string());
    r["end"] = json!(a.interval.end.to_string());
    r["created"] = json!(a.booked_at.to_string());
    let channel = channel.unwrap_or(DEFAULT_CHANNEL);
    r["participant"] = Value::Array(
        a.participants
            .iter()
            .filter_map(|p| {
                let (code, kind, id) = match &p.who {
                    ParticipantWho::Patient(id) => ("SBJ", "Patient", id.to_string()),
                    ParticipantWho::Practitioner(id) => ("PPRF", "Practitioner", id.to_string()),
                    // Naboto's participants are patients and practitioners only.
                    ParticipantWho::RelatedPerson(_) | ParticipantWho::HealthcareService(_) => return None,
                };
                let mut v = json!({});
                if let Some(access) = p.video.as_ref().filter(|_| a.digital) {
                    v["extension"] = json!([{
                        "extension": [
                            {"url": "channelType", "valueCoding": {
                                "system": spellings.channel.code_system(canonical::CHANNEL_TYPE),
                                "code": channel
                            }},
                            {"url": "address", "valueUrl": format!("{public_url}{}", access.join_path(tenant, a.id))},
                            {"url": "sessionKey", "valueString": access.key}
                        ],
                        "url": spellings.virtual_service.structure_definition(canonical::VIRTUAL_SERVICE)
                    }]);
                }
                v["type"] = json!([{"coding": [{"system": PARTICIPATION_TYPE, "code": code}]}]);
                v["actor"] = json!({"reference": format!("{kind}/{id}"), "type": kind});
                if kind == "Practitioner" {
                    v["required"] = json!("required");
                }
                // The profile fixes every participant's status to `accepted`.
                v["status"] = json!("accepted");
                Some(v)
            })
            .collect(),
    );
    r
}
