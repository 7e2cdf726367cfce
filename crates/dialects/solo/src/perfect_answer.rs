//! Solo's perfect answer: `POST /perfect-answer`, a consult request (a
//! stroke or an EEG) that runs the document's flow in one call:
//!
//! 1. create or update the patient, matched by MRN within the tenant
//!    (`state.scheduling.create_patient` / `update_patient`, as
//!    `POST`/`PUT /patients` do);
//! 2. book a visit in the waiting room whose geolocation id is `locationId`,
//!    at its first free slot from now (the waiting-room rule, the tenant's
//!    time rules), exactly as `POST /patients/.../appointments` without a
//!    `date` does;
//! 3. add the PCM template of the reason to the visit's note
//!    (`Stroke`: [`STROKE_TEMPLATE`], `EEG Stat` / `EEG Routine`:
//!    [`EEG_TEMPLATE`]) and
//! 4. answer its questions with the request's values, one question per
//!    request field, tagged with the field's name (a version of the note,
//!    like any `PUT /visit-note`).
//!
//! The 24-hour rule: a second visit for a patient who already has one
//! created less than 24 hours ago (through any dialect, not cancelled) is
//! refused. The rule, the booking and the note are one transaction
//! (`Scheduling::book_with` with a [`BookingHook`]): the patient's row is
//! locked before the count, so that two requests for one patient cannot
//! both pass it. The patient is written before that transaction (the flow's
//! first step); the rule is also asked before the patient is touched, so a
//! refused request changes nothing but in a race.

use crate::patients::{self, bad};
use crate::visit_notes::{Answer, Note, tagged_question_id, template_id};
use crate::{Caller, Json, SoloError, waiting_rooms};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::future::BoxFuture;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
use polyclinic_core::patient::{HumanName, Patient};
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_core::text::MAX_SHORT;
use polyclinic_core::{CoreError, CredentialId, PatientId, TenantId, Uuid};
use polyclinic_http::AppState;
use polyclinic_scheduling::booking::BookingHook;
use polyclinic_scheduling::{Booking, Place, SchedulingError, SchedulingResult, availability};
use polyclinic_store::seal::SecretKey;
use polyclinic_store::{Conn, StoreError, StoreResult, visit_notes};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The PCM template of a `Stroke` consult.
pub const STROKE_TEMPLATE: &str = "Acute Neurology - Physician Services";
/// The PCM template of an `EEG Stat` or `EEG Routine` consult.
pub const EEG_TEMPLATE: &str = "EEG - Physician Services";
/// The refusal of the 24-hour rule, as the document words it.
pub const ALREADY_CREATED: &str = "A visit has already been created for the patient within 24 hours";
/// How far back the 24-hour rule looks.
const WITHIN: SignedDuration = SignedDuration::from_hours(24);

const CONSULT_TYPES: &[&str] = &["new", "update"];
const REASONS: &[&str] = &["Stroke", "EEG Stat", "EEG Routine"];

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/perfect-answer", post(create))
}

/// The request, every field as the document names it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    first_name: Option<String>,
    last_name: Option<String>,
    dob: Option<String>,
    location_id: Option<String>,
    mrn: Option<String>,
    physician_callback_number: Option<String>,
    requesting_provider: Option<String>,
    call_center_notified: Option<String>,
    physician_notified: Option<String>,
    patient_location: Option<String>,
    consult_type: Option<String>,
    reason: Option<String>,
    caller: Option<String>,
}

/// A checked request.
#[derive(Debug)]
struct Consult {
    first_name: String,
    last_name: String,
    dob: Date,
    location: Uuid,
    mrn: String,
    reason: String,
    /// Every value given, `(field, value)` in the document's order: the
    /// answers of the template.
    answers: Vec<(&'static str, String)>,
}

/// A free text within the short-text limit; empty is none.
fn optional(field: &str, v: Option<String>) -> Result<Option<String>, SoloError> {
    match v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if s.chars().count() > MAX_SHORT => {
            Err(bad(field, format!("This value is too long. It should have {MAX_SHORT} characters or less.")))
        }
        Some(s) => Ok(Some(s)),
    }
}

fn required(field: &str, v: Option<String>) -> Result<String, SoloError> {
    optional(field, v)?.ok_or_else(|| bad(field, "This value should not be blank."))
}

fn one_of(field: &str, v: String, set: &[&str]) -> Result<String, SoloError> {
    if set.contains(&v.as_str()) {
        return Ok(v);
    }
    let allowed: Vec<String> = set.iter().map(|s| format!("\"{s}\"")).collect();
    Err(bad(field, format!("\"{v}\" is not one of {}", allowed.join(", "))))
}

/// An ISO 8601 date and time with its offset (`2019-12-03T14:32:12Z`).
fn instant(field: &str, v: Option<String>) -> Result<Option<String>, SoloError> {
    let Some(v) = optional(field, v)? else { return Ok(None) };
    v.parse::<Timestamp>()
        .map_err(|_| bad(field, format!("\"{v}\" is not a date and time like \"2019-12-03T14:32:12Z\"")))?;
    Ok(Some(v))
}

impl Body {
    /// Checks every field, in the document's order; `today` (in the
    /// tenant's zone) bounds the date of birth.
    fn check(self, today: Date) -> Result<Consult, SoloError> {
        let first_name = required("firstName", self.first_name)?;
        let last_name = required("lastName", self.last_name)?;
        let dob_text = required("dob", self.dob)?;
        let dob = dob_text
            .parse::<Date>()
            .map_err(|_| bad("dob", format!("\"{dob_text}\" is not a date like \"2001-01-20\"")))?;
        if dob > today {
            return Err(bad("dob", "The date of birth must not be in the future."));
        }
        let location_text = required("locationId", self.location_id)?;
        let location = location_text.parse::<Uuid>().map_err(|_| bad("locationId", "This is not a valid UUID."))?;
        let mrn = required("mrn", self.mrn)?;
        let callback = optional("physicianCallbackNumber", self.physician_callback_number)?;
        let requesting = required("requestingProvider", self.requesting_provider)?;
        let call_center = instant("callCenterNotified", self.call_center_notified)?;
        let physician = instant("physicianNotified", self.physician_notified)?;
        let patient_location = optional("patientLocation", self.patient_location)?;
        let consult_type = one_of("consultType", required("consultType", self.consult_type)?, CONSULT_TYPES)?;
        let reason = one_of("reason", required("reason", self.reason)?, REASONS)?;
        let caller = optional("caller", self.caller)?;
        let given = [
            ("firstName", Some(first_name.clone())),
            ("lastName", Some(last_name.clone())),
            ("dob", Some(dob.to_string())),
            ("locationId", Some(location.to_string())),
            ("mrn", Some(mrn.clone())),
            ("physicianCallbackNumber", callback),
            ("requestingProvider", Some(requesting)),
            ("callCenterNotified", call_center),
            ("physicianNotified", physician),
            ("patientLocation", patient_location),
            ("consultType", Some(consult_type)),
            ("reason", Some(reason.clone())),
            ("caller", caller),
        ];
        let answers = given.into_iter().filter_map(|(f, v)| v.map(|v| (f, v))).collect();
        Ok(Consult { first_name, last_name, dob, location, mrn, reason, answers })
    }
}

/// The PCM template of a reason.
fn template_of(reason: &str) -> &'static str {
    if reason == "Stroke" { STROKE_TEMPLATE } else { EEG_TEMPLATE }
}

/// The note the consult starts with: its template, answered.
fn consult_note(tenant: TenantId, c: &Consult, at: Timestamp) -> Result<Note, SoloError> {
    let name = template_of(&c.reason);
    let template = template_id(tenant, name);
    let answers = c
        .answers
        .iter()
        .map(|(tag, v)| Answer {
            id: tagged_question_id(&template, tag),
            tag: Some((*tag).to_owned()),
            value: vec![v.clone()],
        })
        .collect();
    let mut note = Note::default();
    note.answer(tenant, name, answers, at)?;
    Ok(note)
}

/// The patient's names with the request's first and last name: the first
/// name's given and family names change, its other parts stay (a full
/// name text would no longer match, so it goes).
fn rename(p: &mut Patient, first: &str, last: &str) {
    match p.names.first_mut() {
        Some(n) => {
            match n.given.first_mut() {
                Some(g) => *g = first.to_owned(),
                None => n.given.push(first.to_owned()),
            }
            n.family = Some(last.to_owned());
            n.text = None;
        }
        None => p.names.push(HumanName::simple(first, last)),
    }
}

/// The 24-hour rule and the visit note, inside the booking's transaction.
struct ConsultHook {
    tenant: TenantId,
    patient: PatientId,
    since: Timestamp,
    now: Timestamp,
    credential: CredentialId,
    key: SecretKey,
    note: serde_json::Value,
}

impl BookingHook for ConsultHook {
    fn before<'c>(&'c self, c: &'c mut Conn, _: &'c Appointment) -> BoxFuture<'c, StoreResult<SchedulingResult<()>>> {
        Box::pin(async move {
            if !visit_notes::lock_patient(c, self.tenant, self.patient).await? {
                return Ok(Err(SchedulingError::NotFound("patient")));
            }
            if visit_notes::visits_created_after(c, self.tenant, self.patient, self.since).await? > 0 {
                return Ok(Err(SchedulingError::Conflict(ALREADY_CREATED.into())));
            }
            Ok(Ok(()))
        })
    }

    fn after<'c>(&'c self, c: &'c mut Conn, booked: &'c Appointment) -> BoxFuture<'c, StoreResult<()>> {
        Box::pin(async move {
            let note = self.note.clone();
            let written =
                visit_notes::change(c, self.tenant, booked.id, Some(self.credential), self.now, &self.key, |_| {
                    Ok::<_, std::convert::Infallible>(note)
                })
                .await?;
            match written {
                Some(_) => Ok(()),
                None => Err(StoreError::Corrupt("the booked visit is not there".into())),
            }
        })
    }
}

/// Whether the patient already has a visit created within 24 hours (read
/// outside any write: the early answer; the booking asks again).
async fn recently_visited(
    state: &AppState,
    tenant: TenantId,
    patient: PatientId,
    since: Timestamp,
) -> Result<bool, SoloError> {
    let n = state
        .store
        .read(move |c| Box::pin(async move { visit_notes::visits_created_after(c, tenant, patient, since).await }))
        .await?;
    Ok(n > 0)
}

fn mrn_taken(e: &SchedulingError) -> bool {
    matches!(e, SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists { .. })))
}

/// Creates the patient of the consult, or updates `existing` (the tenant's
/// patient with its MRN): its first name's given and family names and its
/// date of birth. A patient created meanwhile by a concurrent request with
/// the same MRN is found again and updated.
async fn save_patient(
    state: &AppState,
    tenant: &Tenant,
    consult: &Consult,
    existing: Option<Patient>,
    now: Timestamp,
) -> Result<Patient, SoloError> {
    let update = |mut p: Patient| {
        rename(&mut p, &consult.first_name, &consult.last_name);
        p.birth_date = Some(consult.dob);
        p
    };
    if let Some(p) = existing {
        return Ok(state.scheduling.update_patient(tenant, update(p), Dialect::Solo, now).await?);
    }
    let mut p = Patient { active: true, owner: Some(Dialect::Solo), ..Default::default() };
    p.set_identifier(patients::MRN, consult.mrn.clone());
    p.names.push(HumanName::simple(&consult.first_name, &consult.last_name));
    p.birth_date = Some(consult.dob);
    match state.scheduling.create_patient(tenant, p, now).await {
        Ok(created) => Ok(created),
        Err(e) if mrn_taken(&e) => {
            let (tid, mrn) = (tenant.id, consult.mrn.clone());
            let found = state
                .store
                .read(move |c| {
                    Box::pin(async move { polyclinic_store::patients::find_by(c, tid, patients::MRN, &mrn).await })
                })
                .await?
                .ok_or_else(|| SoloError::conflict("A patient with the same mrn already exists"))?;
            Ok(state.scheduling.update_patient(tenant, update(found), Dialect::Solo, now).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /perfect-answer`: 201 `{patientId, encounterId}`.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<Body>,
) -> Result<Response, SoloError> {
    let tenant = &caller.tenant;
    let tz = tenant.tz();
    let now = state.now();
    let consult = body.check(now.to_zoned(tz.clone()).date())?;
    let room = waiting_rooms::active_services(&state, tenant.id)
        .await?
        .into_iter()
        .find(|s| s.geolocation_id.as_ref() == Some(&consult.location))
        .ok_or_else(|| bad("locationId", format!("No waiting room has the location \"{}\".", consult.location)))?;
    let since = now.checked_sub(WITHIN).unwrap_or(now);
    let (tid, mrn) = (tenant.id, consult.mrn.clone());
    let existing = state
        .store
        .read(move |c| Box::pin(async move { polyclinic_store::patients::find_by(c, tid, patients::MRN, &mrn).await }))
        .await?;
    if let Some(pid) = existing.as_ref().and_then(|p| p.id)
        && recently_visited(&state, tenant.id, pid, since).await?
    {
        return Err(SoloError::conflict(ALREADY_CREATED));
    }
    let duration = room.slot_seconds;
    let (t, r) = (tenant.clone(), room.clone());
    let visit = state
        .store
        .read(move |c| Box::pin(async move { availability::first_waiting_room_start(c, &t, &r, duration, now).await }))
        .await?
        .ok_or_else(|| SoloError::conflict(format!("Waiting room \"{}\" has no free slot", room.name)))?;
    let note = consult_note(tenant.id, &consult, now)?.to_doc()?;

    // 1. The patient, matched by MRN.
    let patient = save_patient(&state, tenant, &consult, existing, now).await?;
    let pid = patient.id.ok_or_else(|| SoloError::from(StoreError::Corrupt("patient without id".into())))?;

    // 2-4. The visit, the 24-hour rule and the note: one transaction.
    let who = Participant {
        who: ParticipantWho::Patient(pid),
        roles: vec![ParticipantRole::Participant],
        video: None,
        required: Some("required".into()),
        status: Some("accepted".into()),
    };
    let mut a = Appointment::booked(
        visit,
        vec![who],
        Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Solo) },
        now,
    );
    a.reasons = vec![consult.reason.clone()];
    let booking = Booking {
        appointment: a,
        place: Place::WaitingRoom(room),
        patients: vec![],
        representatives: vec![],
        through: Dialect::Solo,
        video: Some(true),
    };
    let hook = ConsultHook {
        tenant: tenant.id,
        patient: pid,
        since,
        now,
        credential: caller.credential.id,
        key: state.store.secret_key().clone(),
        note,
    };
    let booked = state.scheduling.book_with(tenant, booking, Some(Arc::new(hook)), now).await?;
    let patient_id = patient.identifier(patients::EXTERNAL_ID).map(str::to_owned).unwrap_or_else(|| pid.to_string());
    let body = json!({"patientId": patient_id, "encounterId": booked.id.to_string()});
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Body {
        serde_json::from_value(v).unwrap()
    }

    fn example() -> serde_json::Value {
        json!({"firstName": "John", "lastName": "Doe", "dob": "2001-01-20",
               "locationId": "2e96ed0e-0f80-4dc3-b2c1-42e65b789e56", "mrn": "AA-00000001",
               "requestingProvider": "Bob Dylan", "consultType": "new", "reason": "EEG Stat"})
    }

    #[test]
    fn the_documents_messages() {
        let today = Date::constant(2030, 3, 4);
        let mut v = example();
        v["locationId"] = json!("123");
        assert_eq!(body(v).check(today).unwrap_err().message, "Bad parameters [locationId: This is not a valid UUID.]");
        let c = body(example()).check(today).unwrap();
        assert_eq!(template_of(&c.reason), EEG_TEMPLATE);
        assert_eq!(c.answers.len(), 8);
    }

    #[test]
    fn the_reason_names_the_template() {
        assert_eq!(template_of("Stroke"), STROKE_TEMPLATE);
        assert_eq!(template_of("EEG Routine"), EEG_TEMPLATE);
    }
}
