//! Bulk import of a clinic's history (`polyclinic import FILE.jsonl`, and the
//! bench's large dataset): patients and appointments, many rows per
//! transaction, written through the same row code as normal writes.
//!
//! The file is JSON Lines: one object per line, `{"type": "patient", ...}`
//! or `{"type": "appointment", ...}`, keyed by the tenant's seed key and by
//! the clinic's own ids ([`PatientRecord`], [`AppointmentRecord`];
//! docs/import.md is the reference). Practitioners, healthcare services and
//! addresses are named by their seed keys, as `POST /admin/seed` names them.
//!
//! What a batch writes, per line:
//! - a patient: its row ([`crate::patients`]' format), its identifiers (the
//!   clinic's id under [`CLINIC_ID`], a national id under
//!   `national-id:{country}`, refused when another patient holds it) and its
//!   rows in the contact index (`patients::index_contacts`);
//! - an appointment: its time held in `busy` through the booking path's own
//!   `appointments::hold_time` (so the double-booking probe runs for every
//!   line, against stored bookings and the batch's earlier lines alike, and
//!   PostgreSQL's exclusion constraint stays underneath), its row through
//!   `appointments::write_row`, and the clinic's id under [`CLINIC_ID`]
//!   (also kept as the appointment's `external_id`).
//!
//! A batch ([`import_batch`]) is one store command: it commits entirely or
//! not at all. The first line a batch refuses (malformed, unknown key,
//! overlapping time, ...) fails the batch with that line's number
//! ([`ImportError::Line`]); nothing of the batch is written. Lines whose
//! clinic id is already imported for their tenant are skipped and counted,
//! so running the same file again changes nothing and a file that failed
//! half-way can be fixed and run again from the start.
//!
//! Imported history emits no domain events (no notifications, no
//! subscriptions fire for migrated data) and schedules no reminders.

use crate::catalog::{self, Table};
use crate::outbox::is_postgres;
use crate::{Conn, Store, StoreError, StoreResult, secs, tenants};
use jiff::Timestamp;
use jiff::civil::Date;
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
use polyclinic_core::patient::{ContactPoint, ContactSystem, Gender, HumanName, Identifier, NationalId, Patient};
use polyclinic_core::schedule::Interval;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::{AddressId, AppointmentId, CoreError, HealthcareServiceId, PatientId, PractitionerId, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// The identifier system under which the clinic's own ids are kept.
pub const CLINIC_ID: &str = "clinic-id";
/// Lines per batch (one transaction) unless told otherwise.
pub const DEFAULT_BATCH: usize = 5_000;
/// Most lines in one batch.
pub const MAX_BATCH: usize = 50_000;
/// The longest line accepted, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// The longest clinic id.
const MAX_ID_LEN: usize = 128;

const PATIENT: &str = "patient";
const APPOINTMENT: &str = "appointment";

/// One line of an import file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Patient(PatientRecord),
    Appointment(AppointmentRecord),
}

/// A patient line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PatientRecord {
    /// The tenant's seed key.
    pub tenant: String,
    /// The clinic's own id of the patient.
    pub id: String,
    pub given: Option<String>,
    pub family: Option<String>,
    pub birth_date: Option<Date>,
    /// `male`, `female`, `other` or `unknown`.
    pub gender: Option<Gender>,
    /// A phone number (normalised as every dialect normalises it).
    pub phone: Option<String>,
    pub email: Option<String>,
    /// A national identification number of the tenant's country.
    pub national_id: Option<String>,
    /// ISO 639-1 language code.
    pub language: Option<String>,
}

/// An appointment line.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppointmentRecord {
    /// The tenant's seed key.
    pub tenant: String,
    /// The clinic's own id of the appointment.
    pub id: String,
    /// The clinic's id of the patient (imported on an earlier line or run).
    pub patient: String,
    /// The practitioner's seed key.
    pub practitioner: String,
    /// The healthcare service's seed key.
    pub healthcare_service: Option<String>,
    /// The address's seed key; default: the practitioner's address linked to
    /// the healthcare service, when there is one.
    pub address: Option<String>,
    pub start: Timestamp,
    pub end: Timestamp,
    /// A status as stored (`booked`, `completed`, `cancelled`, `no-show`,
    /// ...; `fulfilled` is read as `completed`); default `booked`.
    pub status: Option<String>,
    /// When it was booked; default: its start, or now when that is later.
    pub booked_at: Option<Timestamp>,
    pub comment: Option<String>,
    /// A reason for the visit.
    pub reason: Option<String>,
}

impl Record {
    fn tenant(&self) -> &str {
        match self {
            Record::Patient(p) => &p.tenant,
            Record::Appointment(a) => &a.tenant,
        }
    }
}

/// A parsed line and its number (1-based).
#[derive(Debug, Clone)]
pub struct Line {
    pub number: u64,
    pub record: Record,
}

/// A line the import refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why a batch was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line was refused: the client's to fix.
    #[error("{0}")]
    Line(LineError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import wrote and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub patients: u64,
    pub appointments: u64,
    /// Patient lines whose clinic id was already imported.
    pub patients_skipped: u64,
    /// Appointment lines whose clinic id was already imported.
    pub appointments_skipped: u64,
}

impl Counts {
    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Counts) {
        self.patients += other.patients;
        self.appointments += other.appointments;
        self.patients_skipped += other.patients_skipped;
        self.appointments_skipped += other.appointments_skipped;
    }
}

/// Parses line `number` of a file. Blank lines answer `None`.
pub fn parse(number: u64, text: &str) -> Result<Option<Line>, LineError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let refuse = |message: String| LineError { line: number, message };
    if text.len() > MAX_LINE_BYTES {
        return Err(refuse(format!("longer than {MAX_LINE_BYTES} bytes")));
    }
    let mut value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| refuse(format!("not a JSON object: {}", without_position(&e))))?;
    let Some(fields) = value.as_object_mut() else { return Err(refuse("not a JSON object".into())) };
    let record = match fields.remove("type") {
        Some(serde_json::Value::String(t)) if t == "patient" => Record::Patient(typed(value).map_err(refuse)?),
        Some(serde_json::Value::String(t)) if t == "appointment" => Record::Appointment(typed(value).map_err(refuse)?),
        Some(other) => return Err(refuse(format!("unknown `type` {other}: `patient` or `appointment`"))),
        None => return Err(refuse("needs a `type`: `patient` or `appointment`".into())),
    };
    let (tenant, id) = match &record {
        Record::Patient(p) => (&p.tenant, &p.id),
        Record::Appointment(a) => (&a.tenant, &a.id),
    };
    if tenant.trim().is_empty() {
        return Err(refuse("`tenant` must name a tenant by its seed key".into()));
    }
    if id.trim().is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(refuse(format!("`id` must be 1 to {MAX_ID_LEN} characters, none of them control characters")));
    }
    Ok(Some(Line { number, record }))
}

/// A serde error without its position (the line number says where).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// A record from its fields, or the error with the field it is about.
fn typed<T: serde::de::DeserializeOwned>(fields: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(fields).map_err(|e| {
        let path = e.path().to_string();
        let inner = without_position(e.inner());
        if path == "." { inner } else { format!("`{path}`: {inner}") }
    })
}

/// Imports one batch of lines as one command: everything or, at the first
/// refused line, nothing (see the module doc).
pub async fn import_batch(store: &Store, lines: Vec<Line>, now: Timestamp) -> Result<Counts, ImportError> {
    if lines.is_empty() {
        return Ok(Counts::default());
    }
    let refused: Arc<Mutex<Option<LineError>>> = Arc::default();
    let slot = refused.clone();
    let out = store
        .write(move |conn| {
            Box::pin(async move {
                match apply(conn, &lines, now).await {
                    Ok(counts) => Ok(counts),
                    Err(Refusal::Line(e)) => {
                        let message = e.to_string();
                        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                        // An error rolls the batch back.
                        Err(StoreError::Core(CoreError::invalid("import", message)))
                    }
                    Err(Refusal::Store(e)) => Err(e),
                }
            })
        })
        .await;
    let line = refused.lock().unwrap_or_else(|p| p.into_inner()).take();
    match (out, line) {
        (Ok(counts), _) => Ok(counts),
        (Err(_), Some(line)) => Err(ImportError::Line(line)),
        (Err(e), None) => Err(ImportError::Store(e)),
    }
}

/// PostgreSQL: refreshes the planner's statistics of the tables an import
/// fills (`ANALYZE`). A fresh database's statistics describe empty tables,
/// and a plan chosen from them (an identifier found through the
/// `(tenant_id, entity)` index and filtered, instead of the primary key)
/// costs a scan per row once the tables hold thousands; autovacuum would
/// catch up only minutes later. The import calls it whenever the patients
/// or the appointments it wrote have doubled since the last call. SQLite: nothing (its planner takes the primary key
/// for equality on all of its columns without statistics).
pub async fn refresh_statistics(store: &Store) -> StoreResult<()> {
    if store.engine() != crate::Engine::Postgres {
        return Ok(());
    }
    store
        .write(|c| {
            Box::pin(async move {
                sqlx::query("ANALYZE identifiers, patients, patient_contacts, appointments, busy")
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
}

/// Why [`apply`] stopped.
enum Refusal {
    Line(LineError),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// A store error met on line `line`: a client error (a rule, text the
/// database cannot hold) names the line; a database failure stays one.
fn at_line(line: u64, e: StoreError) -> Refusal {
    match e {
        StoreError::Core(c) => Refusal::Line(LineError { line, message: core_message(&c) }),
        e if e.is_unstorable_text() => {
            Refusal::Line(LineError { line, message: "holds text the database cannot store (a NUL character)".into() })
        }
        e => Refusal::Store(e),
    }
}

fn core_message(e: &CoreError) -> String {
    match e {
        CoreError::SlotTaken { resource, start, end } => {
            format!("the time {start}..{end} overlaps an existing booking of the same {resource}")
        }
        e => e.to_string(),
    }
}

fn refuse<T>(line: u64, message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal::Line(LineError { line, message: message.into() }))
}

/// What a batch knows of one tenant.
struct TenantCtx {
    id: TenantId,
    country: String,
    practitioners: HashMap<String, Option<i64>>,
    services: HashMap<String, Option<i64>>,
    addresses: HashMap<String, Option<polyclinic_core::facility::Address>>,
    /// The address of (healthcare service, practitioner), when linked.
    linked: HashMap<(i64, i64), Option<i64>>,
    /// Clinic patient id -> patient id, for the batch's appointments.
    patients: HashMap<String, i64>,
    /// Clinic ids already imported (or seen earlier in the batch).
    known_patients: HashSet<String>,
    known_appointments: HashSet<String>,
}

async fn apply(conn: &mut Conn, lines: &[Line], now: Timestamp) -> Result<Counts, Refusal> {
    // The tenants of the batch, and which of its clinic ids exist already.
    let mut tenants: HashMap<String, TenantCtx> = HashMap::new();
    for l in lines {
        let key = l.record.tenant();
        if tenants.contains_key(key) {
            continue;
        }
        let Some(t) = tenants::by_key(conn, key).await? else {
            return refuse(l.number, format!("unknown tenant `{key}` (tenants are named by their seed key)"));
        };
        tenants.insert(
            key.to_owned(),
            TenantCtx {
                id: t.id,
                country: t.country.to_ascii_lowercase(),
                practitioners: HashMap::new(),
                services: HashMap::new(),
                addresses: HashMap::new(),
                linked: HashMap::new(),
                patients: HashMap::new(),
                known_patients: HashSet::new(),
                known_appointments: HashSet::new(),
            },
        );
    }
    for (key, t) in tenants.iter_mut() {
        let of = |kind: fn(&Record) -> Option<&str>| -> Vec<String> {
            lines
                .iter()
                .filter(|l| l.record.tenant() == key)
                .filter_map(|l| kind(&l.record))
                .map(str::to_owned)
                .collect()
        };
        let patient_ids = of(|r| match r {
            Record::Patient(p) => Some(&p.id),
            _ => None,
        });
        let appointment_ids = of(|r| match r {
            Record::Appointment(a) => Some(&a.id),
            _ => None,
        });
        let referenced = of(|r| match r {
            Record::Appointment(a) => Some(&a.patient),
            _ => None,
        });
        t.known_patients = existing(conn, t.id, PATIENT, &patient_ids).await?.into_keys().collect();
        t.known_appointments = existing(conn, t.id, APPOINTMENT, &appointment_ids).await?.into_keys().collect();
        t.patients = existing(conn, t.id, PATIENT, &referenced).await?;
    }
    let fresh = lines
        .iter()
        .filter(|l| {
            let t = &tenants[l.record.tenant()];
            match &l.record {
                Record::Patient(p) => !t.known_patients.contains(&p.id),
                Record::Appointment(a) => !t.known_appointments.contains(&a.id),
            }
        })
        .count();
    let mut ids = reserve_ids(conn, fresh).await?.into_iter();
    let mut counts = Counts::default();
    for l in lines {
        let t = tenants.get_mut(l.record.tenant()).expect("every tenant of the batch is known");
        match &l.record {
            Record::Patient(p) => {
                if !t.known_patients.insert(p.id.clone()) {
                    counts.patients_skipped += 1;
                    continue;
                }
                let id = ids.next().ok_or_else(|| StoreError::Aborted("fewer ids reserved than lines".into()))?;
                import_patient(conn, t, l.number, p, id, now).await?;
                counts.patients += 1;
            }
            Record::Appointment(a) => {
                if !t.known_appointments.insert(a.id.clone()) {
                    counts.appointments_skipped += 1;
                    continue;
                }
                let id = ids.next().ok_or_else(|| StoreError::Aborted("fewer ids reserved than lines".into()))?;
                import_appointment(conn, t, l.number, a, id, now).await?;
                counts.appointments += 1;
            }
        }
    }
    Ok(counts)
}

/// Of `values` (clinic ids of `entity`), those already imported, with the
/// ids they were given: one indexed probe per 500.
async fn existing(
    conn: &mut Conn,
    tenant: TenantId,
    entity: &str,
    values: &[String],
) -> StoreResult<HashMap<String, i64>> {
    let mut unique: Vec<&String> = values.iter().collect();
    unique.sort_unstable();
    unique.dedup();
    let mut out = HashMap::new();
    for chunk in unique.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT value, entity_id FROM identifiers WHERE tenant_id = $1 AND entity = $2 AND system = $3 AND value IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(tenant.get())
            .bind(entity)
            .bind(CLINIC_ID);
        for v in chunk {
            q = q.bind(v.as_str());
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// `n` fresh entity ids in one statement. SQLite: the counter row advanced
/// by `n` inside the command (a rollback puts it back; ids the writer holds
/// in memory lie below it). PostgreSQL: `n` draws of the sequence.
async fn reserve_ids(conn: &mut Conn, n: usize) -> StoreResult<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let n = i64::try_from(n).map_err(|_| StoreError::Aborted("too many ids".into()))?;
    if is_postgres(conn) {
        return Ok(sqlx::query_scalar("SELECT nextval('seq_entity') FROM generate_series(1, $1)")
            .bind(n)
            .fetch_all(&mut *conn)
            .await?);
    }
    let last: i64 =
        sqlx::query_scalar("UPDATE id_sequences SET value = value + $1 WHERE name = 'seq_entity' RETURNING value")
            .bind(n)
            .fetch_one(&mut *conn)
            .await?;
    Ok((last - n + 1..=last).collect())
}

async fn claim_clinic_id(conn: &mut Conn, tenant: TenantId, entity: &str, value: &str, id: i64) -> StoreResult<()> {
    sqlx::query("INSERT INTO identifiers (tenant_id, entity, system, value, entity_id) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant.get())
        .bind(entity)
        .bind(CLINIC_ID)
        .bind(value)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn import_patient(
    conn: &mut Conn,
    t: &mut TenantCtx,
    line: u64,
    p: &PatientRecord,
    id: i64,
    now: Timestamp,
) -> Result<(), Refusal> {
    let mut patient = Patient {
        id: Some(PatientId(id)),
        active: true,
        birth_date: p.birth_date,
        gender: p.gender,
        language: p.language.clone(),
        ..Patient::default()
    };
    if p.given.is_some() || p.family.is_some() {
        patient.names.push(HumanName::simple(p.given.as_deref().unwrap_or(""), p.family.as_deref().unwrap_or("")));
    }
    for (system, value) in [(ContactSystem::Phone, &p.phone), (ContactSystem::Email, &p.email)] {
        if let Some(value) = value {
            patient.telecom.push(ContactPoint { system, value: value.clone(), use_: None, rank: None, consent: None });
        }
    }
    patient.identifiers.push(Identifier { system: CLINIC_ID.into(), value: p.id.clone() });
    let national = match &p.national_id {
        Some(raw) => Some(NationalId::parse(&t.country, raw).map_err(|e| at_line(line, e.into()))?.identifier()),
        None => None,
    };
    if let Some(n) = &national {
        patient.identifiers.push(n.clone());
    }
    patient.validate().map_err(|e| at_line(line, e.into()))?;
    if let Some(n) = &national {
        catalog::claim_identifier(conn, t.id, PATIENT, &n.system, &n.value, id).await.map_err(|e| match e {
            StoreError::Core(CoreError::AlreadyExists { .. }) => Refusal::Line(LineError {
                line,
                message: format!("national id {} already belongs to another patient", n.value),
            }),
            e => at_line(line, e),
        })?;
    }
    claim_clinic_id(conn, t.id, PATIENT, &p.id, id).await.map_err(|e| at_line(line, e))?;
    // The row as `patients::create` writes it.
    sqlx::query(
        "INSERT INTO patients (tenant_id, id, version, created_at, updated_at, doc) VALUES ($1, $2, 1, $3, $3, $4)",
    )
    .bind(t.id.get())
    .bind(id)
    .bind(secs(now))
    .bind(serde_json::to_string(&patient).map_err(StoreError::from)?)
    .execute(&mut *conn)
    .await
    .map_err(|e| at_line(line, e.into()))?;
    crate::patients::index_contacts(conn, t.id, id, &patient).await.map_err(|e| at_line(line, e))?;
    t.patients.insert(p.id.clone(), id);
    Ok(())
}

async fn import_appointment(
    conn: &mut Conn,
    t: &mut TenantCtx,
    line: u64,
    r: &AppointmentRecord,
    id: i64,
    now: Timestamp,
) -> Result<(), Refusal> {
    let tid = t.id;
    let Some(&patient) = t.patients.get(&r.patient) else {
        return refuse(line, format!("unknown patient `{}` (import a patient before its appointments)", r.patient));
    };
    if r.end <= r.start {
        return refuse(line, "`end` must be after `start`");
    }
    if r.start.subsec_nanosecond() != 0 || r.end.subsec_nanosecond() != 0 {
        return refuse(line, "`start` and `end` must be whole seconds");
    }
    if secs(r.end) - secs(r.start) > polyclinic_core::time_rules::LONGEST_MINUTES * 60 {
        return refuse(line, "an appointment may last at most 24 hours");
    }
    let status = match r.status.as_deref() {
        None => AppointmentStatus::Booked,
        Some("fulfilled") => AppointmentStatus::Completed,
        Some(s) => match AppointmentStatus::parse(s) {
            Some(s) => s,
            None => return refuse(line, format!("unknown status `{s}`")),
        },
    };
    let practitioner = match cached(&mut t.practitioners, &r.practitioner, async {
        catalog::id_by_key(conn, Table::Practitioners, tid, &r.practitioner).await
    })
    .await?
    {
        Some(p) => p,
        None => {
            return refuse(
                line,
                format!("unknown practitioner `{}` (practitioners are named by their seed key)", r.practitioner),
            );
        }
    };
    let service = match &r.healthcare_service {
        None => None,
        Some(key) => match cached(&mut t.services, key, async {
            catalog::id_by_key(conn, Table::HealthcareServices, tid, key).await
        })
        .await?
        {
            Some(s) => Some(s),
            None => return refuse(line, format!("unknown healthcare service `{key}`")),
        },
    };
    let address = match (&r.address, service) {
        (Some(key), _) => {
            let found = cached(&mut t.addresses, key, async {
                match catalog::id_by_key(conn, Table::Addresses, tid, key).await? {
                    Some(id) => catalog::address(conn, tid, id).await,
                    None => Ok(None),
                }
            })
            .await?;
            match found {
                Some(a) if a.practitioner_id.get() == practitioner => Some(a.id.get()),
                Some(_) => return refuse(line, format!("address `{key}` is another practitioner's")),
                None => return refuse(line, format!("unknown address `{key}`")),
            }
        }
        (None, Some(s)) => match t.linked.get(&(s, practitioner)) {
            Some(a) => *a,
            None => {
                let a = catalog::address_for_service(conn, t.id, s, Some(practitioner)).await?.map(|a| a.id.get());
                t.linked.insert((s, practitioner), a);
                a
            }
        },
        (None, None) => None,
    };
    let taking_part = |who, role| Participant {
        who,
        roles: vec![role],
        video: None,
        required: None,
        status: Some("accepted".into()),
    };
    let participants = vec![
        taking_part(ParticipantWho::Practitioner(PractitionerId(practitioner)), ParticipantRole::PrimaryPerformer),
        taking_part(ParticipantWho::Patient(PatientId(patient)), ParticipantRole::Participant),
    ];
    let booked_at = r.booked_at.unwrap_or(if r.start < now { r.start } else { now });
    let mut a = Appointment::booked(Interval { start: r.start, end: r.end }, participants, by_import(), booked_at);
    a.id = AppointmentId(id);
    a.status = status;
    a.digital = false;
    a.set_healthcare_service(service.map(HealthcareServiceId));
    a.address_id = address.map(AddressId);
    a.external_id = Some(r.id.clone());
    a.comment = r.comment.clone();
    a.reasons = r.reason.iter().cloned().collect();
    if status == AppointmentStatus::Cancelled {
        a.canceled_by = Some(by_import());
    }
    a.version = 1;
    a.updated_at = now;
    polyclinic_core::appointment::check_participants(&a).map_err(|e| at_line(line, e.into()))?;
    crate::appointments::hold_time(conn, t.id, &a).await.map_err(|e| at_line(line, e))?;
    crate::appointments::write_row(conn, t.id, &a, true).await.map_err(|e| at_line(line, e))?;
    claim_clinic_id(conn, t.id, APPOINTMENT, &r.id, id).await.map_err(|e| at_line(line, e))?;
    Ok(())
}

/// Who booked (and cancelled) imported appointments: the system.
fn by_import() -> Actor {
    Actor { kind: ActorKind::System, dialect: None }
}

/// `map[key]`, computed by `load` the first time.
async fn cached<T: Clone>(
    map: &mut HashMap<String, Option<T>>,
    key: &str,
    load: impl std::future::Future<Output = StoreResult<Option<T>>>,
) -> StoreResult<Option<T>> {
    if let Some(v) = map.get(key) {
        return Ok(v.clone());
    }
    let v = load.await?;
    map.insert(key.to_owned(), v.clone());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_by_type_and_refuse_unknown_fields() {
        let p = parse(1, r#"{"type":"patient","tenant":"acme","id":"P-1","given":"Anna","gender":"female"}"#)
            .unwrap()
            .unwrap();
        assert!(matches!(p.record, Record::Patient(ref r) if r.id == "P-1" && r.gender == Some(Gender::Female)));
        let a = parse(
            2,
            r#"{"type":"appointment","tenant":"acme","id":"A-1","patient":"P-1","practitioner":"ann","start":"2025-01-02T08:00:00Z","end":"2025-01-02T08:15:00Z"}"#,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(a.record, Record::Appointment(ref r) if r.practitioner == "ann"));
        assert_eq!(parse(3, "   ").unwrap().map(|l| l.number), None);
        let unknown = parse(4, r#"{"type":"patient","tenant":"acme","id":"P-1","nmae":"x"}"#).unwrap_err();
        assert_eq!(unknown.line, 4);
        assert!(unknown.message.contains("nmae"), "{unknown}");
        let broken = parse(5, r#"{"type":"patient","#).unwrap_err();
        assert!(broken.to_string().starts_with("line 5: not a JSON object"), "{broken}");
        let kind = parse(6, r#"{"type":"doctor","tenant":"acme","id":"x"}"#).unwrap_err();
        assert!(kind.message.contains("doctor"), "{kind}");
        let field = parse(8, r#"{"type":"patient","tenant":"acme","id":"P-1","birth_date":"1980-13-01"}"#).unwrap_err();
        assert!(field.message.starts_with("`birth_date`: "), "{field}");
        let empty_id = parse(7, r#"{"type":"patient","tenant":"acme","id":""}"#).unwrap_err();
        assert!(empty_id.message.contains("`id`"), "{empty_id}");
    }
}
