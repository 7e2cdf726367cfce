//! Appointment attachments (`/appointments/{appointmentId}/attachments`)
//! and patient documents (`/patients/{patient_id}/documents`).
//!
//! An upload is the file itself as the body, its type in `Content-Type`.
//! The rules of type and size are the core's
//! ([`polyclinic_core::care::check_attachment`]: Solo's five types, each
//! checked against the file's magic bytes, one byte to 5 MiB); this module
//! maps a refusal to Solo's message. The bytes go to the blob store (sealed)
//! and the metadata to the `attachments` table, in one store command
//! ([`polyclinic_store::attachments::create`]).
//!
//! The upload routes carry their own body limit ([`UPLOAD_BODY_LIMIT`], a
//! little above the file limit, in place of the server's 1 MiB), so that a
//! file a few bytes too large is refused by the core's rule in Solo's shape,
//! and a far larger body is still cut off while it is read.
//!
//! | refusal | status | message |
//! |---|---|---|
//! | a type outside the five | 415 | `Mime type "text/plain" not supported. Available file mime-types: "application/pdf", ...` (the document's) |
//! | no `Content-Type` | 415 | `Mime type is missing (no Content-Type header). Available file mime-types: ...` |
//! | content not of the declared type (a PNG sent as `application/pdf`) | 415 | `File content does not match mime type "application/pdf" (the content is "image/png")` |
//! | an empty body | 400 | `The file is empty` |
//! | more than 5 MiB | 413 | `File is too large. Max file size: 5Mb (5242880 bytes)` |
//! | `fileName` over 256 characters or with control characters | 400 | `Bad parameters [fileName: ...]` |
//! | an unknown appointment, patient, attachment or document (another tenant's too) | 404 | |
//! | a questionnaire with a field missing, of the wrong type, or blank | 400 | `Bad parameters [...]`, naming the field |

use crate::patients::{self, PatientRef, bad};
use crate::{Caller, Json, Path, Query, SoloError};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use polyclinic_core::appointment::Appointment;
use polyclinic_core::care::{
    ATTACHMENT_TYPES, Attachment, AttachmentError, DocumentResponse, MAX_ATTACHMENT_BYTES, PatientDocument,
    check_attachment,
};
use polyclinic_core::text::{MAX_SHORT, check_len};
use polyclinic_core::{AppointmentId, PatientId, TenantId, Uuid};
use polyclinic_http::AppState;
use polyclinic_store::{appointments, attachments};
use serde::Deserialize;
use serde_json::{Value, json};

/// The body limit of the upload routes: the file limit and 64 KiB more, so
/// that the core's size rule (and its Solo message) decides up to there,
/// and nothing larger is ever buffered.
pub const UPLOAD_BODY_LIMIT: usize = MAX_ATTACHMENT_BYTES + 64 * 1024;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/appointments/{id}/attachments", get(list).post(upload))
        .route("/appointments/{id}/attachments/{attachment_id}", axum::routing::delete(remove))
        .route("/appointments/{id}/attachments/{attachment_id}/content", get(content))
        .route("/patients/{id}/documents", get(list_documents).post(add_document))
        .route("/patients/{id}/documents/{document_id}/content", get(document_content))
        .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT))
}

/// The query of an upload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UploadQuery {
    file_name: Option<String>,
}

/// The five types as the document lists them, quoted.
fn available() -> String {
    ATTACHMENT_TYPES.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ")
}

fn too_large() -> SoloError {
    SoloError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("File is too large. Max file size: 5Mb ({MAX_ATTACHMENT_BYTES} bytes)"),
    )
}

/// A declared type as a message may echo it: at most 100 characters.
fn echo(s: &str) -> String {
    s.chars().take(100).collect()
}

impl From<AttachmentError> for SoloError {
    fn from(e: AttachmentError) -> Self {
        let unsupported = |m: String| SoloError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, m);
        match e {
            AttachmentError::UnsupportedType(t) => unsupported(format!(
                "Mime type \"{}\" not supported. Available file mime-types: {}",
                echo(&t),
                available()
            )),
            AttachmentError::NoType => unsupported(format!(
                "Mime type is missing (no Content-Type header). Available file mime-types: {}",
                available()
            )),
            AttachmentError::ContentMismatch { declared, found } => unsupported(match found {
                Some(f) => format!("File content does not match mime type \"{declared}\" (the content is \"{f}\")"),
                None => {
                    format!("File content does not match mime type \"{declared}\" (the content is of no known type)")
                }
            }),
            AttachmentError::Empty => SoloError::bad_request("The file is empty"),
            AttachmentError::TooLarge => too_large(),
        }
    }
}

/// The raw body of an upload, read within the route's limit; a body over it
/// answers Solo's "too large".
struct FileBody(axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for FileBody {
    type Rejection = SoloError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(FileBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(_) => Err(SoloError::bad_request("The file could not be read")),
        }
    }
}

/// The declared type: the `Content-Type` header as text ("" without one).
fn declared_type(headers: &HeaderMap) -> String {
    headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
}

/// The title of an upload: `fileName`, else `attachment.pdf` (`.png`,
/// `.jpg`) by type.
fn title(file_name: Option<String>, mime_type: &str) -> Result<String, SoloError> {
    match file_name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) {
        Some(n) => {
            check_len("fileName", &n, MAX_SHORT).map_err(|_| bad("fileName", "This value is too long."))?;
            if n.chars().any(char::is_control) {
                return Err(bad("fileName", "This value must not contain control characters."));
            }
            Ok(n)
        }
        None => Ok(format!(
            "attachment.{}",
            match mime_type {
                "image/png" => "png",
                "image/jpeg" => "jpg",
                _ => "pdf",
            }
        )),
    }
}

/// An instant as the document prints `uploadedAt`: ISO 8601 with the
/// offset, in the tenant's time zone.
fn iso(t: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// An attachment in the document's shape.
fn render(a: &Attachment, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "id": a.id.as_str(),
        "appointmentId": a.appointment_id.map(|i| i.get()),
        "title": a.title,
        "mimeType": a.mime_type,
        "size": a.size,
        "uploadedAt": iso(a.created_at, tz),
        "deleted": a.deleted,
    })
}

/// A patient document: as an attachment, with the patient's id (as the
/// path names it) and the document's date (unix seconds).
fn render_document(a: &Attachment, patient_id: &str, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "id": a.id.as_str(),
        "patientId": patient_id,
        "title": a.title,
        "mimeType": a.mime_type,
        "size": a.size,
        "dateTime": a.dated.unwrap_or(a.created_at).as_second(),
        "uploadedAt": iso(a.created_at, tz),
        "deleted": a.deleted,
    })
}

/// The appointment `raw` names: its id, else its external id (the
/// "aggregate id"; the earliest appointment with it), or 404.
async fn appointment(state: &AppState, tenant: TenantId, raw: String) -> Result<Appointment, SoloError> {
    state
        .store
        .read(move |c| {
            Box::pin(async move {
                if let Some(id) = raw.parse::<i64>().ok().filter(|n| *n > 0)
                    && let Some(a) = appointments::get(c, tenant, AppointmentId(id)).await?
                {
                    return Ok(Some(a));
                }
                if raw.chars().count() > MAX_SHORT {
                    return Ok(None);
                }
                appointments::by_external_id(c, tenant, &raw).await
            })
        })
        .await?
        .ok_or_else(|| SoloError::not_found("Appointment not found"))
}

/// The patient `raw` (the client's external id) names, or 404.
async fn patient(state: &AppState, tenant: TenantId, raw: String) -> Result<PatientId, SoloError> {
    patients::find(state, tenant, PatientRef::External(raw))
        .await?
        .id
        .ok_or_else(|| SoloError::not_found("Patient not found"))
}

/// Stores a checked file (or questionnaire) as one command.
async fn store(state: &AppState, tenant: TenantId, a: Attachment, bytes: Vec<u8>) -> Result<Attachment, SoloError> {
    let (blobs, key) = (state.store.blobs(), state.store.secret_key().clone());
    let saved = a.clone();
    state
        .store
        .write(move |c| Box::pin(async move { attachments::create(c, blobs.as_ref(), &key, tenant, &a, &bytes).await }))
        .await?;
    Ok(saved)
}

/// A new attachment's metadata.
fn new_file(
    appointment_id: Option<AppointmentId>,
    patient_id: Option<PatientId>,
    title: String,
    mime_type: &str,
    size: usize,
    now: jiff::Timestamp,
) -> Attachment {
    Attachment {
        id: uuid::Uuid::new_v4().to_string().parse::<Uuid>().expect("a v4 UUID is a UUID"),
        appointment_id,
        patient_id,
        title,
        mime_type: mime_type.to_owned(),
        size: size as u64,
        dated: None,
        deleted: false,
        created_at: now,
    }
}

/// `POST /appointments/{appointmentId}/attachments?fileName=`: 201 with
/// the attachment.
async fn upload(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    FileBody(body): FileBody,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = appointment(&state, tenant, id).await?;
    let mime_type = check_attachment(&declared_type(&headers), &body)?;
    let title = title(q.file_name, mime_type)?;
    let file = new_file(Some(a.id), a.patient(), title, mime_type, body.len(), state.now());
    let saved = store(&state, tenant, file, body.to_vec()).await?;
    Ok((StatusCode::CREATED, axum::Json(render(&saved, &caller.tenant.tz()))).into_response())
}

/// `GET /appointments/{appointmentId}/attachments`: `{"attachments": [...]}`
/// in the order uploaded.
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = appointment(&state, tenant, id).await?;
    let key = state.store.secret_key().clone();
    let files = state
        .store
        .read(move |c| Box::pin(async move { attachments::for_appointment(c, &key, tenant, a.id).await }))
        .await?;
    let tz = caller.tenant.tz();
    let list: Vec<Value> = files.iter().map(|f| render(f, &tz)).collect();
    Ok(axum::Json(json!({"attachments": list})).into_response())
}

/// `DELETE /appointments/{appointmentId}/attachments/{attachmentId}`: 200
/// with the attachment, `deleted: true`; the row is kept, the file leaves
/// the list; a second delete answers 404.
async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = appointment(&state, tenant, id).await?;
    let not_found = || SoloError::not_found("Attachment not found");
    let attachment_id = attachment_id.parse::<Uuid>().map_err(|_| not_found())?;
    let key = state.store.secret_key().clone();
    let deleted = state
        .store
        .write(move |c| {
            Box::pin(
                async move { attachments::delete_of_appointment(c, &key, tenant, a.id, attachment_id.as_str()).await },
            )
        })
        .await?
        .ok_or_else(not_found)?;
    Ok(axum::Json(render(&deleted, &caller.tenant.tz())).into_response())
}

/// A file's bytes with its type (not cached, never sniffed).
fn file_response(a: &Attachment, bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&a.mime_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

/// A file of the tenant with its bytes, if `keep` accepts it.
async fn file(
    state: &AppState,
    tenant: TenantId,
    raw: &str,
    keep: impl FnOnce(&Attachment) -> bool,
    what: &'static str,
) -> Result<Response, SoloError> {
    let not_found = || SoloError::not_found(format!("{what} not found"));
    let id = raw.parse::<Uuid>().map_err(|_| not_found())?;
    let (blobs, key) = (state.store.blobs(), state.store.secret_key().clone());
    let (a, bytes) = state
        .store
        .read(move |c| {
            Box::pin(async move { attachments::get_with_bytes(c, blobs.as_ref(), &key, tenant, id.as_str()).await })
        })
        .await?
        .filter(|(a, _)| keep(a))
        .ok_or_else(not_found)?;
    Ok(file_response(&a, bytes))
}

/// `GET /appointments/{appointmentId}/attachments/{attachmentId}/content`
/// (an extension): the file's bytes, with its type.
async fn content(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, attachment_id)): Path<(String, String)>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let a = appointment(&state, tenant, id).await?;
    file(&state, tenant, &attachment_id, |f| f.appointment_id == Some(a.id), "Attachment").await
}

/// The questionnaire form of `POST /patients/{patient_id}/documents`: every
/// field required.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocumentBody {
    name: String,
    date_time: i64,
    responses: Vec<ResponseIn>,
}

#[derive(Debug, Deserialize)]
struct ResponseIn {
    question: String,
    response: String,
}

/// Whether a declared type is JSON (the questionnaire form).
fn is_json(declared: &str) -> bool {
    let m = declared.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
}

/// `POST /patients/{patient_id}/documents`: a questionnaire (JSON, the
/// document's form: 201 `[]`) or a file (one of the five types, `fileName`
/// as for attachments: 201 with the document).
async fn add_document(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<UploadQuery>,
    req: Request,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let declared = declared_type(req.headers());
    let now = state.now();
    if is_json(&declared) {
        let Json(body) = Json::<DocumentBody>::from_request(req, &state).await?;
        let pid = patient(&state, tenant, id).await?;
        let date_time = jiff::Timestamp::from_second(body.date_time)
            .ok()
            .filter(|t| polyclinic_core::clock::in_range(*t))
            .ok_or_else(|| bad("dateTime", format!("{} is not a supported timestamp", body.date_time)))?;
        let doc = PatientDocument {
            name: body.name.trim().to_owned(),
            date_time,
            responses: body
                .responses
                .into_iter()
                .map(|r| DocumentResponse { question: r.question, response: r.response })
                .collect(),
        };
        let bytes = doc.to_file().map_err(|e| match e {
            polyclinic_core::CoreError::Invalid { field, message } if field != "file" => bad(&field, message),
            other => other.into(),
        })?;
        let mut a = new_file(None, Some(pid), doc.name.clone(), PatientDocument::MIME_TYPE, bytes.len(), now);
        a.dated = Some(date_time);
        store(&state, tenant, a, bytes).await?;
        return Ok((StatusCode::CREATED, axum::Json(json!([]))).into_response());
    }
    let FileBody(body) = FileBody::from_request(req, &state).await?;
    let pid = patient(&state, tenant, id.clone()).await?;
    let mime_type = check_attachment(&declared, &body)?;
    let title = title(q.file_name, mime_type)?;
    let file = new_file(None, Some(pid), title, mime_type, body.len(), now);
    let saved = store(&state, tenant, file, body.to_vec()).await?;
    Ok((StatusCode::CREATED, axum::Json(render_document(&saved, &id, &caller.tenant.tz()))).into_response())
}

/// `GET /patients/{patient_id}/documents` (an extension): `{"documents":
/// [...]}` in the order added.
async fn list_documents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let pid = patient(&state, tenant, id.clone()).await?;
    let key = state.store.secret_key().clone();
    let docs = state
        .store
        .read(move |c| Box::pin(async move { attachments::for_patient(c, &key, tenant, pid).await }))
        .await?;
    let tz = caller.tenant.tz();
    let list: Vec<Value> = docs.iter().map(|d| render_document(d, &id, &tz)).collect();
    Ok(axum::Json(json!({"documents": list})).into_response())
}

/// `GET /patients/{patient_id}/documents/{documentId}/content` (an
/// extension): the file's bytes with its type; a questionnaire is its JSON.
async fn document_content(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, document_id)): Path<(String, String)>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let pid = patient(&state, tenant, id).await?;
    file(&state, tenant, &document_id, |f| f.patient_id == Some(pid) && f.appointment_id.is_none(), "Document").await
}
