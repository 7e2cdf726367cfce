//! Solo episodes of care: `POST`/`GET /patients/{patient_id}/episodes`,
//! `GET`/`PUT /episodes/{episode_id}`, `GET /episodes/{episode_id}/appointments`
//! and `PUT` (or `POST`) `/appointments/{appointment_id}/episode/assign`.
//!
//! The handlers translate only: episodes are made and changed by the
//! scheduling commands (`create_episode`, `update_episode`: one transaction
//! with its `EpisodeCreated` / `EpisodeUpdated`, which Solo webhooks hear as
//! `episode:created` / `episode:updated`), an appointment joins or leaves an
//! episode through `assign_episode` (one `AppointmentUpdated`). The rule
//! that an appointment's episode is its own patient's lives there, for the
//! booking too ([`crate::appointments`]).
//!
//! | refusal | status |
//! |---|---|
//! | `name`, `type`, `from` or `status` missing or blank | 400 `Bad parameters [name: This value should not be blank.]` |
//! | `from` / `to` not a `YYYY-MM-DD` date | 400 naming the field |
//! | `to` before `from` | 400 `Bad parameters [to: ...]` |
//! | `status` not one of the six (any case) | 400 naming the six |
//! | a text too long (`name`, `type`: 256; `objective`, `reasonIncomplete`: 4096) | 400 naming the field |
//! | `episodeId` (assign) not a UUID, not an episode of the tenant, or another patient's | 400 `Bad parameters [episodeId: ...]` |
//! | an unknown patient, episode or appointment in the path (another tenant's too) | 404 |

use crate::patients::{self, PatientRef, bad};
use crate::{Caller, Json, Path, SoloError};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::civil::Date;
use polyclinic_core::care::{EpisodeOfCare, EpisodeStatus};
use polyclinic_core::patient::Patient;
use polyclinic_core::{AppointmentId, CoreError, PatientId, TenantId, Uuid};
use polyclinic_http::AppState;
use polyclinic_scheduling::SchedulingError;
use polyclinic_scheduling::episodes::{EPISODE_FIELD, EpisodeContent};
use polyclinic_store::{StoreError, episodes};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/patients/{id}/episodes", post(create).get(list))
        .route("/episodes/{id}", get(read).put(update))
        .route("/episodes/{id}/appointments", get(appointments_of))
        // The document says PUT; POST is accepted as well.
        .route("/appointments/{id}/episode/assign", post(assign).put(assign))
}

/// The body of `POST /patients/{patient_id}/episodes` and
/// `PUT /episodes/{episode_id}` (a replacement: the same fields required).
/// A `null` or an empty string is a field left out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EpisodeBody {
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    status: Option<String>,
    objective: Option<String>,
    reason_incomplete: Option<String>,
}

/// The body of `PUT /appointments/{appointment_id}/episode/assign`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignBody {
    episode_id: Option<String>,
}

/// A text given and not blank, trimmed.
fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn required(field: &str, v: Option<String>) -> Result<String, SoloError> {
    given(v).ok_or_else(|| bad(field, "This value should not be blank."))
}

/// A `YYYY-MM-DD` date, exactly that form, and a real day.
fn date(field: &str, raw: &str) -> Result<Date, SoloError> {
    let wrong = || bad(field, format!("\"{raw}\" is not a date like \"2023-03-29\""));
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    if !shaped {
        return Err(wrong());
    }
    Date::strptime("%Y-%m-%d", raw).map_err(|_| wrong())
}

fn status(raw: &str) -> Result<EpisodeStatus, SoloError> {
    EpisodeStatus::parse(raw).ok_or_else(|| {
        let allowed: Vec<String> = EpisodeStatus::ALL.iter().map(|s| s.as_str().to_ascii_uppercase()).collect();
        bad("status", format!("\"{raw}\" is not one of {}", allowed.join(", ")))
    })
}

impl EpisodeBody {
    /// The content the body says, every field checked that the dialect
    /// reads; the episode's own rules (`to` not before `from`, lengths) are
    /// the core's.
    fn content(self) -> Result<EpisodeContent, SoloError> {
        let name = required("name", self.name)?;
        let kind = required("type", self.kind)?;
        let from = date("from", &required("from", self.from)?)?;
        let to = given(self.to).map(|t| date("to", &t)).transpose()?;
        let status = status(&required("status", self.status)?)?;
        Ok(EpisodeContent {
            name,
            kind,
            from,
            to,
            status,
            objective: given(self.objective),
            reason_incomplete: given(self.reason_incomplete),
        })
    }
}

/// A refused episode command or assignment: a field the core refused
/// answers 400 naming it in Solo's words (the appointment's episode as
/// `episode_field`); an unknown patient, episode or appointment 404.
pub(crate) fn refused(e: SchedulingError, episode_field: &str) -> SoloError {
    match e {
        SchedulingError::Store(StoreError::Core(CoreError::Invalid { field, message })) => {
            bad(if field == EPISODE_FIELD { episode_field } else { &field }, message)
        }
        SchedulingError::NotFound("patient") => SoloError::not_found("Patient not found"),
        SchedulingError::NotFound("episode") => episode_not_found(),
        SchedulingError::NotFound("appointment") => SoloError::not_found("Appointment not found"),
        other => other.into(),
    }
}

/// A refused booking: an episode of care that is unknown or another
/// patient's answers 400 naming `episodeOfCareId`; the rest as everywhere.
pub(crate) fn refused_booking(e: SchedulingError) -> SoloError {
    match e {
        SchedulingError::Store(StoreError::Core(CoreError::Invalid { field, message })) if field == EPISODE_FIELD => {
            bad("episodeOfCareId", message)
        }
        other => other.into(),
    }
}

fn episode_not_found() -> SoloError {
    SoloError::not_found("Episode not found")
}

/// The episode id of a path, or 404.
fn episode_id(raw: &str) -> Result<Uuid, SoloError> {
    raw.trim().parse::<Uuid>().map_err(|_| episode_not_found())
}

/// The patient's id as the client knows it: its external id, or its SPID
/// as text when it has none (a patient of another dialect).
fn external_id(p: Option<&Patient>, id: PatientId) -> String {
    p.and_then(|p| p.identifier(patients::EXTERNAL_ID)).map_or_else(|| id.to_string(), str::to_owned)
}

/// The fields every shape of an episode shows.
fn fields(e: &EpisodeOfCare) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(e.id.as_str()));
    m.insert("name".into(), json!(e.name));
    m.insert("from".into(), json!(e.from.to_string()));
    m.insert("to".into(), json!(e.to.map(|d| d.to_string())));
    m.insert("type".into(), json!(e.kind));
    m.insert("status".into(), json!(e.status.as_str()));
    m.insert("objective".into(), json!(e.objective));
    m.insert("reasonIncomplete".into(), json!(e.reason_incomplete));
    m
}

/// The single-episode shape (`GET /episodes/{id}`): with the patient's SPID
/// and external id.
fn single(e: &EpisodeOfCare, patient: Option<&Patient>) -> Value {
    let mut m = fields(e);
    m.insert("soloPatientId".into(), json!(e.patient_id.get()));
    m.insert("externalPatientId".into(), json!(external_id(patient, e.patient_id)));
    Value::Object(m)
}

/// An episode and its patient, or 404.
async fn load(state: &AppState, tenant: TenantId, raw: &str) -> Result<(EpisodeOfCare, Option<Patient>), SoloError> {
    let id = episode_id(raw)?;
    let key = state.store.secret_key().clone();
    state
        .store
        .read(move |c| {
            Box::pin(async move {
                let Some(e) = episodes::get(c, tenant, &key, &id).await? else { return Ok(None) };
                let p = polyclinic_store::patients::get(c, tenant, e.patient_id).await?;
                Ok(Some((e, p)))
            })
        })
        .await?
        .ok_or_else(episode_not_found)
}

/// `POST /patients/{patient_id}/episodes`: 201 `{"episodeId": "<uuid>"}`.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(patient): Path<String>,
    Json(body): Json<EpisodeBody>,
) -> Result<Response, SoloError> {
    let content = body.content()?;
    let p = patients::find(&state, caller.tenant.id, PatientRef::External(patient)).await?;
    let pid = p.id.ok_or_else(|| SoloError::not_found("Patient not found"))?;
    let e = state
        .scheduling
        .create_episode(&caller.tenant, pid, content, state.now())
        .await
        .map_err(|e| refused(e, "episodeId"))?;
    Ok((StatusCode::CREATED, axum::Json(json!({"episodeId": e.id.as_str()}))).into_response())
}

/// `GET /patients/{patient_id}/episodes`: `{"episodes": [...]}` in the
/// order they were made, each with the patient's external id.
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(patient): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let p = patients::find(&state, tenant, PatientRef::External(patient)).await?;
    let pid = p.id.ok_or_else(|| SoloError::not_found("Patient not found"))?;
    let key = state.store.secret_key().clone();
    let found =
        state.store.read(move |c| Box::pin(async move { episodes::of_patient(c, tenant, &key, pid).await })).await?;
    let external = external_id(Some(&p), pid);
    let out: Vec<Value> = found
        .iter()
        .map(|e| {
            let mut m = fields(e);
            m.insert("patientId".into(), json!(external));
            Value::Object(m)
        })
        .collect();
    Ok(axum::Json(json!({"episodes": out})).into_response())
}

/// `GET /episodes/{episode_id}`.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let (e, p) = load(&state, caller.tenant.id, &id).await?;
    Ok(axum::Json(single(&e, p.as_ref())).into_response())
}

/// `PUT /episodes/{episode_id}`: the body replaces the episode (the same
/// fields as a creation, the same required); 200 with the episode as
/// `GET` shows it.
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<EpisodeBody>,
) -> Result<Response, SoloError> {
    let id = episode_id(&id)?;
    let content = body.content()?;
    let e = state
        .scheduling
        .update_episode(&caller.tenant, id, content, state.now())
        .await
        .map_err(|e| refused(e, "episodeId"))?;
    let (tenant, pid) = (caller.tenant.id, e.patient_id);
    let p = state
        .store
        .read(move |c| Box::pin(async move { polyclinic_store::patients::get(c, tenant, pid).await }))
        .await?;
    Ok(axum::Json(single(&e, p.as_ref())).into_response())
}

/// `GET /episodes/{episode_id}/appointments`: the episode and its
/// appointments (every status), by date.
async fn appointments_of(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let (e, p) = load(&state, tenant, &id).await?;
    let eid = e.id.clone();
    let found =
        state.store.read(move |c| Box::pin(async move { episodes::appointments(c, tenant, &eid).await })).await?;
    let list: Vec<Value> = found
        .iter()
        .map(|x| {
            let a = &x.appointment;
            json!({
                "appointmentId": a.id.get(),
                "date": a.interval.start.as_second(),
                "reasons": a.reasons,
                "hasNotes": x.has_notes,
                "episodeOfCareId": a.episode_id.as_ref().map(Uuid::as_str),
            })
        })
        .collect();
    Ok(axum::Json(json!({"episode": single(&e, p.as_ref()), "appointments": list})).into_response())
}

/// `PUT /appointments/{appointment_id}/episode/assign` (and `POST`):
/// `{"episodeId": "<uuid>"}` puts the appointment into an episode of its
/// patient; `null`, `""` or no `episodeId` takes it out of its episode.
/// 200 `{"appointmentId", "episodeOfCareId"}`.
async fn assign(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> Result<Response, SoloError> {
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(AppointmentId)
        .ok_or_else(|| SoloError::not_found("Appointment not found"))?;
    let episode = given(body.episode_id)
        .map(|e| e.parse::<Uuid>().map_err(|_| bad("episodeId", "This is not a valid UUID.")))
        .transpose()?;
    let a = state
        .scheduling
        .assign_episode(&caller.tenant, id, episode, state.now())
        .await
        .map_err(|e| refused(e, "episodeId"))?;
    Ok(axum::Json(json!({"appointmentId": a.id.get(), "episodeOfCareId": a.episode_id.as_ref().map(Uuid::as_str)}))
        .into_response())
}
