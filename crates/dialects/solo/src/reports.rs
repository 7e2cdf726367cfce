//! Solo reports: the CSV data dump (`GET /reports/csv-data-dump`) and
//! encounter reports (`POST /encounter-report/create`, `GET
//! /encounter-report/status/{id}`, `GET /encounter-report/download/{id}`).
//!
//! Both list the tenant's visits (appointments of every dialect) of a range
//! with the columns of [`COLUMNS`], written with the `csv` crate:
//! - the dump is **streamed**: the visits are read a page at a time
//!   ([`PAGE_SIZE`], keyset pagination in `store::report_jobs`), each page a
//!   short read and one chunk of the body, so any number of visits answers
//!   in constant memory;
//! - an encounter report is ordered (pending), then built by a scheduler job
//!   ([`EncounterReports`], a delivery-engine router that owns the job kind
//!   `solo-encounter-report`): the same pages, compressed page by page into
//!   one WinZip AES-256 entry of a zip archive (`zip` crate) under the
//!   client's password, kept in the blob store until downloaded. The job
//!   runs inside the transaction that finishes it: completed or failed
//!   commit with the job's removal, and a crash mid-build leaves the job due,
//!   so it runs again.
//!
//! Decisions (columns, limits, statuses) are in `docs/dialects/solo.md`.

use crate::patients::{ACCOUNT_NUMBER, EXTERNAL_ID, MRN, bad};
use crate::{Caller, Json, Path, Query, SoloError};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::clock::in_range;
use polyclinic_core::service::HealthcareService;
use polyclinic_core::{TenantId, Uuid};
use polyclinic_delivery::Router;
use polyclinic_http::AppState;
use polyclinic_store::blobs::BlobStore;
use polyclinic_store::catalog::{self, Table};
use polyclinic_store::deliveries::NewDelivery;
use polyclinic_store::jobs::Job;
use polyclinic_store::report_jobs::{self, Cursor, EncounterReport, ReportStatus, Visit};
use polyclinic_store::seal::SecretKey;
use polyclinic_store::{Conn, StoreError, StoreResult, tenants};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Cursor as IoCursor, Write};
use std::sync::Arc;

/// Visits read (and written out) per page.
pub const PAGE_SIZE: i64 = 200;
/// The longest range of one dump or report, in days (a leap year).
pub const MAX_RANGE_DAYS: i64 = 366;
/// The longest encounter-report password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;
/// How long after its order an encounter report's job is due: at once in
/// practice (the scheduler wakes on the order's commit and runs it the next
/// second); under the test clock a client sees `pending` until the clock
/// moves on and due work is run.
pub const JOB_DELAY: SignedDuration = SignedDuration::from_secs(1);

/// The CSV's header row: one visit per row, in this order.
pub const COLUMNS: [&str; 18] = [
    "appointmentId",
    "externalId",
    "date",
    "unixDate",
    "duration",
    "status",
    "videoCallStatus",
    "waitingRoom",
    "reasons",
    "episodeOfCareId",
    "accountNumber",
    "patientSpid",
    "patientId",
    "patientMrn",
    "patientFirstName",
    "patientLastName",
    "patientBirthDate",
    "createdAt",
];

/// How instants are written in the CSV: ISO 8601 with the tenant's offset.
const DATE_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%:z";

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/reports/csv-data-dump", get(dump))
        .route("/encounter-report/create", post(create))
        .route("/encounter-report/status/{report_id}", get(status))
        .route("/encounter-report/download/{report_id}", get(download))
}

// ---------------------------------------------------------------------------
// The CSV

/// The waiting-room names by service id (inactive rooms too: old visits
/// keep their room's name).
type Rooms = HashMap<i64, String>;

fn rooms_of(services: Vec<HealthcareService>) -> Rooms {
    services.into_iter().map(|s| (s.id.get(), s.name)).collect()
}

fn instant(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime(DATE_TIME_FORMAT).to_string()
}

/// One visit's row, in the order of [`COLUMNS`].
fn record(v: &Visit, rooms: &Rooms, tz: &TimeZone) -> [String; COLUMNS.len()] {
    let a = &v.appointment;
    let p = v.patient.as_ref();
    let name = p.and_then(|p| p.names.first());
    let account_number = a
        .account_number
        .clone()
        .or_else(|| p.and_then(|p| p.identifier(ACCOUNT_NUMBER)).map(str::to_owned))
        .unwrap_or_default();
    [
        a.id.to_string(),
        a.external_id.clone().unwrap_or_default(),
        instant(a.interval.start, tz),
        a.interval.start.as_second().to_string(),
        a.interval.seconds().to_string(),
        a.status.solo().to_owned(),
        a.video_call_status.clone().unwrap_or_default(),
        a.healthcare_service_id.and_then(|s| rooms.get(&s.get()).cloned()).unwrap_or_default(),
        a.reasons.join("; "),
        a.episode_id.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        account_number,
        a.patient().map(|p| p.to_string()).unwrap_or_default(),
        p.and_then(|p| p.identifier(EXTERNAL_ID)).unwrap_or_default().to_owned(),
        p.and_then(|p| p.identifier(MRN)).unwrap_or_default().to_owned(),
        name.and_then(|n| n.given.first().cloned()).unwrap_or_default(),
        name.and_then(|n| n.family.clone()).unwrap_or_default(),
        p.and_then(|p| p.birth_date).map(|d| d.to_string()).unwrap_or_default(),
        instant(a.booked_at, tz),
    ]
}

/// A page of visits as CSV text, after the header row when `header`.
fn csv_chunk(header: bool, visits: &[Visit], rooms: &Rooms, tz: &TimeZone) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(visits.len() * 256 + 256));
    if header {
        w.write_record(COLUMNS)?;
    }
    for v in visits {
        w.write_record(record(v, rooms, tz))?;
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

// ---------------------------------------------------------------------------
// GET /reports/csv-data-dump?from&to

#[derive(Debug, Deserialize)]
struct DumpParams {
    from: Option<String>,
    to: Option<String>,
}

/// A `YYYY-MM-DD` date, exactly.
fn date(name: &str, v: &Option<String>) -> Result<Date, SoloError> {
    let v =
        v.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| bad(name, "This value is required."))?;
    let shaped = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    shaped
        .then(|| v.parse::<Date>().ok())
        .flatten()
        .ok_or_else(|| bad(name, format!("\"{v}\" is not a date (YYYY-MM-DD).")))
}

/// The first instant of `day` in `tz`.
fn start_of(day: Date, tz: &TimeZone) -> Option<Timestamp> {
    day.to_zoned(tz.clone()).ok().map(|z| z.timestamp()).filter(|t| in_range(*t))
}

/// What the dump's stream carries from one page to the next.
struct Dump {
    state: AppState,
    tenant: TenantId,
    tz: TimeZone,
    rooms: Rooms,
    from: Timestamp,
    until: Timestamp,
    after: Option<Cursor>,
    /// The first page, read before the answer started.
    first: Option<Vec<Visit>>,
    header_sent: bool,
    done: bool,
}

async fn read_page(
    state: &AppState,
    tenant: TenantId,
    from: Timestamp,
    until: Timestamp,
    after: Option<Cursor>,
) -> StoreResult<Vec<Visit>> {
    state
        .store
        .read(move |c| {
            Box::pin(async move { report_jobs::visits_page(c, tenant, from, until, after, PAGE_SIZE).await })
        })
        .await
}

impl Dump {
    /// The next chunk of the body, or `None` at the end.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        let page = match self.first.take() {
            Some(p) => p,
            None => match read_page(&self.state, self.tenant, self.from, self.until, self.after).await {
                Ok(p) => p,
                Err(e) => {
                    // The status line has gone: the body is cut short, which
                    // the client sees as a broken transfer, never as a
                    // complete file.
                    tracing::error!(tenant = self.tenant.get(), error = %e, "solo: the CSV data dump failed mid-way");
                    self.done = true;
                    return Some(Err(std::io::Error::other("the CSV data dump failed")));
                }
            },
        };
        if (page.len() as i64) < PAGE_SIZE {
            self.done = true;
        }
        if page.is_empty() && self.header_sent {
            return None;
        }
        self.after = page.last().map(Visit::cursor);
        let chunk = csv_chunk(!self.header_sent, &page, &self.rooms, &self.tz);
        self.header_sent = true;
        Some(chunk.map(Bytes::from).map_err(std::io::Error::other))
    }
}

fn attachment(mut r: Response, file_name: &str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Patient data: no cache keeps a copy.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn dump(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Query<DumpParams>,
) -> Result<Response, SoloError> {
    let from_day = date("from", &p.from)?;
    let to_day = date("to", &p.to)?;
    if from_day > to_day {
        return Err(bad("to", "This value should be on or after from."));
    }
    let days = i64::from((to_day - from_day).get_days()) + 1;
    if days > MAX_RANGE_DAYS {
        return Err(bad("to", format!("The range must not be longer than {MAX_RANGE_DAYS} days.")));
    }
    let tz = caller.tenant.tz();
    let unsupported = |name: &str| bad(name, "This date is outside the supported range.");
    let from = start_of(from_day, &tz).ok_or_else(|| unsupported("from"))?;
    let until = to_day.tomorrow().ok().and_then(|d| start_of(d, &tz)).ok_or_else(|| unsupported("to"))?;
    let tenant = caller.tenant.id;
    let services: Vec<HealthcareService> = state
        .store
        .read(move |c| Box::pin(async move { catalog::list(c, Table::HealthcareServices, tenant).await }))
        .await?;
    // The first page is read before the answer starts, so that a failing
    // store answers a clean error rather than a cut body.
    let first = read_page(&state, tenant, from, until, None).await?;
    let body = Dump {
        state,
        tenant,
        tz,
        rooms: rooms_of(services),
        from,
        until,
        after: None,
        first: Some(first),
        header_sent: false,
        done: false,
    };
    let stream = futures_util::stream::unfold(body, |mut d| async move { d.next_chunk().await.map(|c| (c, d)) });
    let file_name = format!("csv-data-dump-{from_day}-{to_day}.csv");
    Ok(attachment(Body::from_stream(stream).into_response(), &file_name))
}

// ---------------------------------------------------------------------------
// Encounter reports: create, status, download

/// The body of `POST /encounter-report/create`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    from: Option<String>,
    to: Option<String>,
    preset_id: Option<String>,
    password: Option<String>,
}

fn required<'a>(name: &str, v: &'a Option<String>) -> Result<&'a str, SoloError> {
    v.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| bad(name, "This value is required."))
}

/// An ATOM date-time (`2024-08-15T15:52:01+00:00`; any RFC 3339 instant
/// with an offset).
fn date_time(name: &str, v: &Option<String>) -> Result<Timestamp, SoloError> {
    let v = required(name, v)?.trim();
    v.parse::<Timestamp>().ok().filter(|t| in_range(*t)).ok_or_else(|| {
        bad(
            name,
            format!("\"{v}\" is not a date-time in ATOM format (Y-m-d\\TH:i:sP, e.g. 2024-08-15T15:52:01+00:00)."),
        )
    })
}

fn render(r: &EncounterReport) -> serde_json::Value {
    json!({"id": r.id, "status": r.status.as_str()})
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(b): Json<CreateBody>,
) -> Result<Response, SoloError> {
    let from = date_time("from", &b.from)?;
    let to = date_time("to", &b.to)?;
    if from > to {
        return Err(bad("to", "This value should be on or after from."));
    }
    if to.as_second() - from.as_second() > MAX_RANGE_DAYS * 86_400 {
        return Err(bad("to", format!("The range must not be longer than {MAX_RANGE_DAYS} days.")));
    }
    let preset = required("presetId", &b.preset_id)?.trim();
    let preset_id = preset
        .parse::<Uuid>()
        .ok()
        .filter(|id| caller.tenant.report_presets.iter().any(|p| &p.id == id))
        .ok_or_else(|| bad("presetId", format!("Report preset \"{preset}\" not found.")))?;
    let password =
        b.password.as_deref().filter(|p| !p.is_empty()).ok_or_else(|| bad("password", "This value is required."))?;
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(bad("password", format!("This value must not be longer than {MAX_PASSWORD_CHARS} characters.")));
    }
    let now = state.now();
    let report = EncounterReport {
        id: uuid::Uuid::new_v4().to_string(),
        status: ReportStatus::Pending,
        preset_id: preset_id.to_string(),
        from,
        to,
        credential_id: Some(caller.credential.id),
        sealed_password: Some(state.store.secret_key().seal(password)),
        blob_id: None,
        error: None,
        created_at: now,
        finished_at: None,
    };
    let (tenant, stored) = (caller.tenant.id, report.clone());
    state
        .store
        .write(move |c| Box::pin(async move { report_jobs::create(c, tenant, &stored, now + JOB_DELAY).await }))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(render(&report))).into_response())
}

/// The tenant's report `id` (not a UUID, unknown, another tenant's: 404).
async fn report_of(state: &AppState, tenant: TenantId, id: &str) -> Result<EncounterReport, SoloError> {
    let not_found = || SoloError::not_found(format!("Report \"{id}\" not found"));
    let id = id.parse::<Uuid>().map_err(|_| not_found())?.to_string();
    state
        .store
        .read(move |c| Box::pin(async move { report_jobs::get(c, tenant, &id).await }))
        .await?
        .ok_or_else(not_found)
}

async fn status(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, SoloError> {
    Ok(axum::Json(render(&report_of(&state, caller.tenant.id, &id).await?)))
}

async fn download(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let report = report_of(&state, tenant, &id).await?;
    let blob_id = match (report.status, report.blob_id) {
        (ReportStatus::Completed, Some(b)) => b,
        (ReportStatus::Failed, _) => {
            return Err(SoloError::conflict(format!(
                "Report \"{}\" failed: {}",
                report.id,
                report.error.as_deref().unwrap_or("no reason was recorded")
            )));
        }
        _ => {
            return Err(SoloError::conflict(format!(
                "Report \"{}\" is not ready yet (status: pending); check its status and try again later",
                report.id
            )));
        }
    };
    let blobs = state.store.blobs();
    let bytes = state
        .store
        .read(move |c| Box::pin(async move { blobs.get(c, tenant, &blob_id).await }))
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("the archive of report {} is missing", report.id)))?;
    Ok(attachment(Body::from(bytes).into_response(), &format!("encounter-report-{}.zip", report.id)))
}

// ---------------------------------------------------------------------------
// The job that builds an encounter report

/// Why a build stopped.
enum BuildError {
    /// Retrying may work (the database or the disk failed): the job's
    /// transaction rolls back and the job runs again.
    Retry(StoreError),
    /// Retrying cannot help: the report is marked failed with this reason
    /// (shown to the client: it never holds patient data).
    Fail(String),
}

impl From<StoreError> for BuildError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(cause) => {
                tracing::error!(error = %cause, "solo: an encounter report met corrupt stored data");
                BuildError::Fail("stored data could not be read; see the server log".into())
            }
            StoreError::Core(c) => BuildError::Fail(c.to_string()),
            other => BuildError::Retry(other),
        }
    }
}

fn archive_error(e: impl std::fmt::Display) -> BuildError {
    BuildError::Fail(format!("the archive could not be built: {e}"))
}

type Zip = zip::ZipWriter<IoCursor<Vec<u8>>>;

/// Runs `f` on the zip writer off the async threads (compression and AES
/// are CPU work), handing the writer back.
async fn on_zip<F>(zw: Zip, f: F) -> Result<Zip, BuildError>
where
    F: FnOnce(&mut Zip) -> zip::result::ZipResult<()> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let mut zw = zw;
        f(&mut zw).map(|()| zw)
    })
    .await
    .map_err(archive_error)?
    .map_err(archive_error)
}

/// The zip's timestamp for `now` in `tz` (zip keeps local date-times).
fn zip_time(now: Timestamp, tz: &TimeZone) -> zip::DateTime {
    let dt = now.to_zoned(tz.clone()).datetime();
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    u16::try_from(dt.year())
        .ok()
        .and_then(|y| {
            zip::DateTime::from_date_and_time(
                y,
                part(dt.month()),
                part(dt.day()),
                part(dt.hour()),
                part(dt.minute()),
                part(dt.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// Builds the report's archive: the visits of `[from, to]` as one CSV entry
/// `encounter-report-<id>.csv`, WinZip AES-256 under `password`.
async fn build(
    conn: &mut Conn,
    tenant: TenantId,
    report: &EncounterReport,
    password: String,
    now: Timestamp,
) -> Result<Vec<u8>, BuildError> {
    let tz = tenants::get(conn, tenant).await?.tz();
    let rooms = rooms_of(catalog::list(conn, Table::HealthcareServices, tenant).await?);
    let until = report
        .to
        .checked_add(SignedDuration::from_secs(1))
        .map_err(|e| BuildError::Fail(format!("the range cannot be read: {e}")))?;
    let entry = format!("encounter-report-{}.csv", report.id);
    let time = zip_time(now, &tz);
    let mut zw = on_zip(zip::ZipWriter::new(IoCursor::new(Vec::new())), move |zw| {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(time)
            .with_aes_encryption(zip::AesMode::Aes256, &password);
        zw.start_file(entry, options)
    })
    .await?;
    let (mut after, mut header) = (None, true);
    loop {
        let page = report_jobs::visits_page(conn, tenant, report.from, until, after, PAGE_SIZE).await?;
        let chunk = csv_chunk(header, &page, &rooms, &tz).map_err(archive_error)?;
        header = false;
        zw = on_zip(zw, move |zw| Ok(zw.write_all(&chunk)?)).await?;
        after = page.last().map(Visit::cursor);
        if (page.len() as i64) < PAGE_SIZE {
            break;
        }
    }
    let done = tokio::task::spawn_blocking(move || zw.finish()).await.map_err(archive_error)?.map_err(archive_error)?;
    Ok(done.into_inner())
}

/// The scheduler's router for encounter reports: it routes no events and
/// owns no delivery target; it runs the `solo-encounter-report` jobs.
pub struct EncounterReports {
    blobs: Arc<dyn BlobStore>,
    key: SecretKey,
}

impl EncounterReports {
    /// A router storing archives in `blobs`, opening passwords with `key`
    /// (the server key they were sealed with).
    pub fn new(blobs: Arc<dyn BlobStore>, key: SecretKey) -> Self {
        EncounterReports { blobs, key }
    }

    async fn run(&self, conn: &mut Conn, tenant: TenantId, id: &str, now: Timestamp) -> StoreResult<()> {
        let Some(report) = report_jobs::get(conn, tenant, id).await? else {
            return Ok(());
        };
        if report.status != ReportStatus::Pending {
            return Ok(());
        }
        let built = match report.sealed_password.as_deref().map(|s| self.key.open(s)) {
            Some(Ok(password)) => build(conn, tenant, &report, password, now).await,
            Some(Err(_)) => Err(BuildError::Fail("the password cannot be opened (the server key changed)".into())),
            None => Err(BuildError::Fail("the password is missing".into())),
        };
        let built = match built {
            Ok(bytes) => self.blobs.put(conn, tenant, &bytes, now).await.map_err(BuildError::from),
            Err(e) => Err(e),
        };
        match built {
            Ok(blob_id) => {
                report_jobs::complete(conn, tenant, id, &blob_id, now).await?;
                tracing::info!(tenant = tenant.get(), report = id, "solo: encounter report completed");
            }
            Err(BuildError::Fail(reason)) => {
                report_jobs::fail(conn, tenant, id, &reason, now).await?;
                tracing::warn!(tenant = tenant.get(), report = id, reason = %reason, "solo: encounter report failed");
            }
            Err(BuildError::Retry(e)) => return Err(e),
        }
        Ok(())
    }
}

impl Router for EncounterReports {
    fn job_kinds(&self) -> &'static [&'static str] {
        &[report_jobs::JOB_KIND]
    }

    /// Builds the report named by the job (its subject) and marks it
    /// completed or failed, in the job's transaction; a failure retrying
    /// may cure (the database, the disk) rolls the job back to run again.
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        job: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            self.run(conn, tenant, &job.subject, now).await?;
            Ok(Vec::new())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
    use polyclinic_core::patient::{HumanName, Patient};
    use polyclinic_core::schedule::Interval;
    use polyclinic_core::tenant::Dialect;
    use polyclinic_core::{AppointmentId, HealthcareServiceId, PatientId};
    use std::io::Read;

    fn visit() -> Visit {
        let start: Timestamp = "2030-03-04T08:00:00Z".parse().unwrap();
        let interval = Interval { start, end: start + SignedDuration::from_mins(30) };
        let by = Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Solo) };
        let who = Participant {
            who: ParticipantWho::Patient(PatientId(7)),
            roles: vec![ParticipantRole::Participant],
            video: None,
            required: None,
            status: None,
        };
        let mut a = Appointment::booked(interval, vec![who], by, start - SignedDuration::from_hours(1));
        a.id = AppointmentId(42);
        a.healthcare_service_id = Some(HealthcareServiceId(3));
        a.reasons = vec!["headache".into(), "fever, mild".into()];
        a.external_id = Some("ext-1".into());
        let mut p =
            Patient { id: Some(PatientId(7)), names: vec![HumanName::simple("Mike", "Shinoda")], ..Default::default() };
        p.set_identifier(EXTERNAL_ID, "p-1");
        p.set_identifier(MRN, "MRN-1");
        p.set_identifier(ACCOUNT_NUMBER, "A-1");
        Visit { appointment: a, patient: Some(p) }
    }

    #[test]
    fn a_row_holds_the_visit_in_the_tenant_zone() {
        let rooms = Rooms::from([(3, "Round the clock".to_owned())]);
        let tz = TimeZone::get("Europe/Stockholm").unwrap();
        let text = csv_chunk(true, &[visit()], &rooms, &tz).unwrap();
        let mut r = csv::Reader::from_reader(text.as_slice());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
        let row: Vec<String> = r.records().next().unwrap().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(row[0], "42");
        assert_eq!(row[2], "2030-03-04T09:00:00+01:00");
        assert_eq!(row[3], "1898841600");
        assert_eq!(row[4], "1800");
        assert_eq!(row[5], "scheduled");
        assert_eq!(row[7], "Round the clock");
        assert_eq!(row[8], "headache; fever, mild");
        assert_eq!((row[10].as_str(), row[11].as_str(), row[12].as_str()), ("A-1", "7", "p-1"));
        assert_eq!((row[13].as_str(), row[14].as_str(), row[15].as_str()), ("MRN-1", "Mike", "Shinoda"));
        assert_eq!(row[17], "2030-03-04T08:00:00+01:00");
    }

    #[tokio::test]
    async fn the_archive_opens_with_its_password_only() {
        let zw = on_zip(zip::ZipWriter::new(IoCursor::new(Vec::new())), |zw| {
            let o = zip::write::SimpleFileOptions::default().with_aes_encryption(zip::AesMode::Aes256, "s3cret£");
            zw.start_file("r.csv", o)?;
            Ok(zw.write_all(b"a,b\n1,2\n")?)
        })
        .await
        .ok()
        .unwrap();
        let bytes = zw.finish().unwrap().into_inner();
        let mut archive = zip::ZipArchive::new(IoCursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut text = String::new();
        archive.by_index_decrypt(0, b"s3cret\xc2\xa3").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "a,b\n1,2\n");
        assert!(archive.by_index_decrypt(0, b"wrong").is_err());
        assert!(archive.by_index(0).is_err());
    }
}
