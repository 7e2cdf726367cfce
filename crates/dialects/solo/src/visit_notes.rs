//! Solo visit notes: `GET` and `PUT /appointments/{appointment_id}/visit-note`
//! (the document's "Appointment Note") and the history of a note,
//! `GET /appointments/{appointment_id}/visit-note/versions` (ours: the
//! document keeps no history).
//!
//! A note is a list of templates, each with the answers to its questions.
//! Polyclinic has no template editor, so a template comes to exist when it
//! is first answered: it is named by its `name`, and its id is a UUID
//! derived from the tenant and the name ([`template_id`]), the same every
//! time. A question is named by the client's UUID; the questions Polyclinic
//! fills itself (the perfect answer's) carry a tag (`mrn`, `reason`, ...)
//! and an id derived from the template and the tag ([`tagged_question_id`]).
//!
//! Every change is a new version in the store
//! (`polyclinic_store::visit_notes`, sealed under the server key); the
//! newest is the note. The pure part, the note and how an answer changes
//! it, is [`Note`]; the perfect answer writes its note with it too.

use crate::patients::bad;
use crate::{Caller, Json, Path, SoloError};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use polyclinic_core::text::{MAX_SHORT, MAX_TEXT};
use polyclinic_core::{AppointmentId, TenantId, Uuid};
use polyclinic_http::AppState;
use polyclinic_store::{StoreError, appointments, visit_notes};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Most questions one `PUT` answers.
pub const MAX_QUESTIONS_PER_CHANGE: usize = 200;
/// Most values of one answer.
pub const MAX_VALUES: usize = 100;
/// Most characters of one value.
pub const MAX_VALUE_CHARS: usize = MAX_TEXT;
/// Most templates one note holds.
pub const MAX_TEMPLATES: usize = 50;
/// Most questions one template of a note holds.
pub const MAX_QUESTIONS: usize = 500;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/appointments/{id}/visit-note", get(read).put(update))
        .route("/appointments/{id}/visit-note/versions", get(versions))
}

/// An appointment's note, as stored (sealed) in each version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// In the order they were first answered.
    pub templates: Vec<Template>,
}

/// A template used on the note, with its answered questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// [`template_id`] of the tenant and the name.
    pub id: String,
    pub name: String,
    /// In the order they were first answered.
    #[serde(default)]
    pub questions: Vec<Question>,
    /// Comments on the template (the document shows them; no endpoint
    /// posts them yet, so they stay empty).
    #[serde(default)]
    pub comments: Vec<Comment>,
}

/// An answered question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// A UUID, lower case.
    pub id: String,
    /// What the question asks, for the questions Polyclinic fills itself
    /// (the perfect answer's request fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub value: Vec<String>,
    /// When the answer was last set (unix seconds).
    pub answered_at: i64,
}

/// A comment on a template, as the document shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: String,
    pub message: String,
    pub posted_at: i64,
    pub author_id: i64,
    pub username: String,
}

/// One answer to set.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The question's UUID, lower case.
    pub id: String,
    pub tag: Option<String>,
    pub value: Vec<String>,
}

/// A UUID made of the first 16 bytes of SHA-256 over `parts` (version 8,
/// the RFC 9562 custom layout): the same parts always give the same id.
fn derived_uuid(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// The id of the tenant's template named `name` (case matters).
pub fn template_id(tenant: TenantId, name: &str) -> String {
    derived_uuid(&[b"polyclinic:solo:visit-note-template", tenant.get().to_string().as_bytes(), name.as_bytes()])
}

/// The id of the question tagged `tag` in the template `template`.
pub fn tagged_question_id(template: &str, tag: &str) -> String {
    derived_uuid(&[b"polyclinic:solo:visit-note-question", template.as_bytes(), tag.as_bytes()])
}

impl Note {
    /// The note a stored version holds (`None`: a note never written).
    pub fn from_doc(doc: Option<Value>) -> Result<Note, SoloError> {
        match doc {
            None => Ok(Note::default()),
            Some(d) => {
                serde_json::from_value(d).map_err(|e| SoloError::from(StoreError::Corrupt(format!("visit note: {e}"))))
            }
        }
    }

    /// The note as a version's doc.
    pub fn to_doc(&self) -> Result<Value, SoloError> {
        serde_json::to_value(self).map_err(|e| SoloError::from(StoreError::Corrupt(e.to_string())))
    }

    /// Sets the answers of the tenant's template `name` (added to the note
    /// when new), at `at`: a question answered before takes the new value,
    /// a new one is added after the others. Refuses (409) a note that would
    /// hold more than [`MAX_TEMPLATES`] templates or a template more than
    /// [`MAX_QUESTIONS`] questions.
    pub fn answer(
        &mut self,
        tenant: TenantId,
        name: &str,
        answers: Vec<Answer>,
        at: Timestamp,
    ) -> Result<(), SoloError> {
        let id = template_id(tenant, name);
        let index = match self.templates.iter().position(|t| t.id == id) {
            Some(i) => i,
            None => {
                if self.templates.len() >= MAX_TEMPLATES {
                    return Err(SoloError::conflict(format!("A visit note holds at most {MAX_TEMPLATES} templates")));
                }
                self.templates.push(Template { id, name: name.to_owned(), questions: vec![], comments: vec![] });
                self.templates.len() - 1
            }
        };
        let template = &mut self.templates[index];
        for a in answers {
            match template.questions.iter_mut().find(|q| q.id == a.id) {
                Some(q) => {
                    q.value = a.value;
                    q.answered_at = at.as_second();
                    if a.tag.is_some() {
                        q.tag = a.tag;
                    }
                }
                None => {
                    if template.questions.len() >= MAX_QUESTIONS {
                        return Err(SoloError::conflict(format!(
                            "A visit note template holds at most {MAX_QUESTIONS} questions"
                        )));
                    }
                    template.questions.push(Question {
                        id: a.id,
                        tag: a.tag,
                        value: a.value,
                        answered_at: at.as_second(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The note in the document's shape, times in the tenant's zone `tz`.
    pub fn render(&self, tz: &TimeZone) -> Value {
        let zone = tz.iana_name().unwrap_or("UTC");
        Value::Array(
            self.templates
                .iter()
                .map(|t| {
                    // One section, named after the template, listing its
                    // questions; none while nothing is answered.
                    let sections = if t.questions.is_empty() {
                        vec![]
                    } else {
                        let questions: Vec<Value> =
                            t.questions.iter().map(|q| json!({"id": q.id, "tag": q.tag})).collect();
                        vec![json!({"name": t.name, "questions": questions})]
                    };
                    let comments: Vec<Value> = t
                        .comments
                        .iter()
                        .map(|c| {
                            json!({"id": c.id, "templateId": t.id, "message": c.message, "postedAt": c.posted_at,
                                   "author": {"id": c.author_id, "username": c.username}})
                        })
                        .collect();
                    let responses: Vec<Value> = t
                        .questions
                        .iter()
                        .map(|q| {
                            let at = Timestamp::from_second(q.answered_at).unwrap_or(Timestamp::UNIX_EPOCH);
                            json!({
                                "dateTime": {
                                    "date": at.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M:%S.000000").to_string(),
                                    "timezone_type": 3,
                                    "timezone": zone,
                                },
                                "question": [t.name, q.tag.as_deref().unwrap_or(&q.id)],
                                "response": q.value,
                            })
                        })
                        .collect();
                    json!({
                        "id": t.id,
                        "template": {"name": t.name, "flow": {"sections": sections}},
                        "comments": comments,
                        "responses": responses,
                    })
                })
                .collect(),
        )
    }
}

/// The body of `PUT /appointments/{id}/visit-note`.
#[derive(Debug, Deserialize)]
struct PutBody {
    name: Option<String>,
    questions: Option<Vec<QuestionIn>>,
}

#[derive(Debug, Deserialize)]
struct QuestionIn {
    id: Option<String>,
    value: Option<Vec<String>>,
}

/// Checks a `PUT` body: the template name and the answers it sets.
fn parse_put(body: PutBody) -> Result<(String, Vec<Answer>), SoloError> {
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("name", "This value should not be blank."))?
        .to_owned();
    if name.chars().count() > MAX_SHORT {
        return Err(bad("name", format!("This value is too long. It should have {MAX_SHORT} characters or less.")));
    }
    let questions = body.questions.ok_or_else(|| bad("questions", "This value should not be blank."))?;
    if questions.is_empty() {
        return Err(bad("questions", "This collection should contain 1 element or more."));
    }
    if questions.len() > MAX_QUESTIONS_PER_CHANGE {
        return Err(bad(
            "questions",
            format!("This collection should contain {MAX_QUESTIONS_PER_CHANGE} elements or less."),
        ));
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(questions.len());
    for (i, q) in questions.into_iter().enumerate() {
        let at = |f: &str| format!("questions[{i}].{f}");
        let raw = q.id.as_deref().map(str::trim).filter(|s| !s.is_empty());
        let id = raw
            .ok_or_else(|| bad(&at("id"), "This value should not be blank."))?
            .parse::<Uuid>()
            .map_err(|_| bad(&at("id"), "This is not a valid UUID."))?
            .to_string();
        if answers.iter().any(|a| a.id == id) {
            return Err(bad(&at("id"), format!("The question \"{id}\" is given more than once.")));
        }
        let value = q.value.ok_or_else(|| bad(&at("value"), "This value should not be blank."))?;
        if value.len() > MAX_VALUES {
            return Err(bad(&at("value"), format!("This collection should contain {MAX_VALUES} elements or less.")));
        }
        if value.iter().any(|v| v.chars().count() > MAX_VALUE_CHARS) {
            return Err(bad(
                &at("value"),
                format!("This value is too long. It should have {MAX_VALUE_CHARS} characters or less."),
            ));
        }
        answers.push(Answer { id, tag: None, value });
    }
    Ok((name, answers))
}

/// The appointment id of a path; not a positive number names nothing: 404.
fn appointment_id(raw: &str) -> Result<AppointmentId, SoloError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).map(AppointmentId).ok_or_else(not_found)
}

fn not_found() -> SoloError {
    SoloError::not_found("Appointment not found")
}

/// `GET /appointments/{id}/visit-note`: the note, `[]` while nothing is
/// answered.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let appointment = appointment_id(&id)?;
    let (tenant, key) = (caller.tenant.id, state.store.secret_key().clone());
    let found = state
        .store
        .read(move |c| {
            Box::pin(async move {
                if appointments::get(c, tenant, appointment).await?.is_none() {
                    return Ok(None);
                }
                Ok(Some(visit_notes::latest(c, tenant, appointment, &key).await?))
            })
        })
        .await?
        .ok_or_else(not_found)?;
    let note = Note::from_doc(found.map(|v| v.doc))?;
    Ok(axum::Json(note.render(&caller.tenant.tz())).into_response())
}

/// `PUT /appointments/{id}/visit-note`: sets the answers of one template's
/// questions, as a new version; answers the note as it now is.
async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<PutBody>,
) -> Result<Response, SoloError> {
    let appointment = appointment_id(&id)?;
    let (name, answers) = parse_put(body)?;
    let (tenant, credential, now) = (caller.tenant.id, caller.credential.id, state.now());
    let key = state.store.secret_key().clone();
    let saved = state
        .store
        .write(move |c| {
            Box::pin(async move {
                visit_notes::change(c, tenant, appointment, Some(credential), now, &key, |doc| {
                    let mut note = Note::from_doc(doc)?;
                    note.answer(tenant, &name, answers, now)?;
                    note.to_doc()
                })
                .await
            })
        })
        .await?
        .ok_or_else(not_found)??;
    let note = Note::from_doc(Some(saved.doc))?;
    Ok(axum::Json(note.render(&caller.tenant.tz())).into_response())
}

/// `GET /appointments/{id}/visit-note/versions`: every version of the note,
/// oldest first, each `{version, createdAt, note}`.
async fn versions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let appointment = appointment_id(&id)?;
    let (tenant, key) = (caller.tenant.id, state.store.secret_key().clone());
    let all = state
        .store
        .read(move |c| {
            Box::pin(async move {
                if appointments::get(c, tenant, appointment).await?.is_none() {
                    return Ok(None);
                }
                Ok(Some(visit_notes::history(c, tenant, appointment, &key).await?))
            })
        })
        .await?
        .ok_or_else(not_found)?;
    let tz = caller.tenant.tz();
    let mut out = Vec::with_capacity(all.len());
    for v in all {
        let note = Note::from_doc(Some(v.doc))?;
        out.push(json!({"version": v.version, "createdAt": v.created_at.as_second(), "note": note.render(&tz)}));
    }
    Ok(axum::Json(Value::Array(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: &str, v: &[&str]) -> Answer {
        Answer { id: id.into(), tag: None, value: v.iter().map(|s| s.to_string()).collect() }
    }

    #[test]
    fn template_ids_are_stable_uuids_per_tenant_and_name() {
        let a = template_id(TenantId(1), "Acute Neurology - Physician Services");
        assert_eq!(a, template_id(TenantId(1), "Acute Neurology - Physician Services"));
        assert_ne!(a, template_id(TenantId(2), "Acute Neurology - Physician Services"));
        assert_ne!(a, template_id(TenantId(1), "EEG - Physician Services"));
        assert!(a.parse::<Uuid>().is_ok(), "{a}");
        assert_eq!(&a[14..15], "8", "version 8: {a}");
    }

    #[test]
    fn answers_replace_and_append_in_order() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let (q1, q2) = ("923c5621-66a1-49a3-aa7b-a7753cbfd139", "be9180f7-b0c0-42a5-9b14-c8b67a3b4c0f");
        let mut note = Note::default();
        note.answer(TenantId(1), "T", vec![answer(q1, &["Male"])], t0).unwrap();
        note.answer(TenantId(1), "T", vec![answer(q2, &["a", "b"]), answer(q1, &["Female"])], t1).unwrap();
        let t = &note.templates[0];
        assert_eq!(note.templates.len(), 1);
        assert_eq!(t.questions.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), vec![q1, q2]);
        assert_eq!((t.questions[0].value.clone(), t.questions[0].answered_at), (vec!["Female".to_owned()], 2_000));
        let shown = note.render(&TimeZone::get("America/New_York").unwrap());
        assert_eq!(shown[0]["responses"][1]["question"], json!(["T", q2]));
        assert_eq!(
            shown[0]["responses"][0]["dateTime"],
            json!({"date": "1969-12-31 19:33:20.000000", "timezone_type": 3, "timezone": "America/New_York"})
        );
    }

    #[test]
    fn a_note_holds_a_bounded_number_of_templates() {
        let mut note = Note::default();
        let at = Timestamp::UNIX_EPOCH;
        for i in 0..MAX_TEMPLATES {
            note.answer(TenantId(1), &format!("T{i}"), vec![], at).unwrap();
        }
        assert_eq!(note.answer(TenantId(1), "one more", vec![], at).unwrap_err().status, 409);
        note.answer(TenantId(1), "T0", vec![], at).unwrap();
    }
}
