//! Appointments: booking with the double-booking guard, reads, cancellation,
//! rescheduling and status changes. Every change appends its domain events.
//!
//! Time held by an appointment is written to `busy`, one row per practitioner
//! and one for the address. The check below answers a clean
//! [`CoreError::SlotTaken`]; the database enforces the same rule underneath
//! (PostgreSQL's exclusion constraint; SQLite's single writer makes the check
//! and the insert one atomic step).
//!
//! Every command that reads an appointment and then writes it reads it with
//! [`get_for_update`]: on PostgreSQL `SELECT ... FOR UPDATE` holds the row
//! until the command's transaction ends, so two commands on one appointment
//! run one after the other and the second sees what the first wrote; on
//! SQLite the single writer already runs one command at a time. Each command
//! then checks the appointment's status as it is now (not as the caller saw
//! it): of two concurrent moves of one booking one wins and the other answers
//! [`CoreError::InvalidTransition`]; a cancel racing a reschedule ends either
//! cancelled with its time freed, or moved with the new time held.

use crate::outbox::{Seq, append, is_postgres, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, Appointment};
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::schedule::Interval;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::{AppointmentId, CoreError, HealthcareServiceId, TenantId};
use serde_json::json;
use sqlx::Row;

const ENTITY: &str = "appointment";
const PRACTITIONER: i64 = 1;
const ADDRESS: i64 = 2;

fn event(kind: EventKind, a: &Appointment, extra: serde_json::Value) -> NewEvent {
    let mut data = json!({
        "appointment_id": a.id.to_string(),
        "status": a.status.as_str(),
        "start": a.interval.start.to_string(),
        "end": a.interval.end.to_string(),
        "healthcare_service_id": a.healthcare_service_id.map(|v| v.to_string()),
        "address_id": a.address_id.map(|v| v.to_string()),
        "origin": a.origin.as_str(),
    });
    if let Some(from) = a.moved_from {
        data["moved_from"] = json!(from.to_string());
    }
    if let Some(to) = a.moved_to {
        data["moved_to"] = json!(to.to_string());
    }
    if let (Some(obj), serde_json::Value::Object(more)) = (data.as_object_mut(), extra) {
        obj.extend(more);
    }
    NewEvent::new(kind, ENTITY, a.id, data)
}

/// The resources an appointment holds time on.
fn resources(a: &Appointment) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = a.practitioners().map(|p| (PRACTITIONER, p.get())).collect();
    out.sort_unstable();
    out.dedup();
    if let Some(addr) = a.address_id {
        out.push((ADDRESS, addr.get()));
    }
    out
}

async fn hold_time(conn: &mut Conn, tenant: TenantId, a: &Appointment) -> StoreResult<()> {
    if !a.status.occupies_time() {
        return Ok(());
    }
    let (start, end) = (secs(a.interval.start), secs(a.interval.end));
    for (kind, id) in resources(a) {
        let clash: Option<i64> = sqlx::query_scalar(
            "SELECT appointment_id FROM busy WHERE tenant_id = $1 AND resource_kind = $2 AND resource_id = $3 \
             AND start_s < $4 AND end_s > $5 AND appointment_id <> $6 LIMIT 1",
        )
        .bind(tenant.get())
        .bind(kind)
        .bind(id)
        .bind(end)
        .bind(start)
        .bind(a.id.get())
        .fetch_optional(&mut *conn)
        .await?;
        if clash.is_some() {
            return Err(slot_taken(kind, a).into());
        }
        sqlx::query(
            "INSERT INTO busy (tenant_id, resource_kind, resource_id, appointment_id, start_s, end_s) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.get())
        .bind(kind)
        .bind(id)
        .bind(a.id.get())
        .bind(start)
        .bind(end)
        .execute(&mut *conn)
        .await
        .map_err(|e| match crate::db::map_constraint(e) {
            StoreError::Core(CoreError::SlotTaken { .. }) => StoreError::Core(slot_taken(kind, a)),
            other => other,
        })?;
    }
    Ok(())
}

fn slot_taken(kind: i64, a: &Appointment) -> CoreError {
    CoreError::SlotTaken {
        resource: if kind == PRACTITIONER { "practitioner" } else { "address" },
        start: a.interval.start.to_string(),
        end: a.interval.end.to_string(),
    }
}

async fn release_time(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<()> {
    sqlx::query("DELETE FROM busy WHERE tenant_id = $1 AND appointment_id = $2")
        .bind(tenant.get())
        .bind(id.get())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn write_row(conn: &mut Conn, tenant: TenantId, a: &Appointment, insert: bool) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO appointments (status, start_s, end_s, healthcare_service_id, address_id, patient_id, external_id, \
         episode_id, version, updated_at, doc, tenant_id, id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $10)"
    } else {
        "UPDATE appointments SET status = $1, start_s = $2, end_s = $3, healthcare_service_id = $4, address_id = $5, \
         patient_id = $6, external_id = $7, episode_id = $8, version = $9, updated_at = $10, doc = $11 \
         WHERE tenant_id = $12 AND id = $13"
    };
    sqlx::query(sql)
        .bind(a.status.as_str())
        .bind(secs(a.interval.start))
        .bind(secs(a.interval.end))
        .bind(a.healthcare_service_id.map(|v| v.get()))
        .bind(a.address_id.map(|v| v.get()))
        .bind(a.patient().map(|v| v.get()))
        .bind(a.external_id.clone())
        .bind(a.episode_id.as_ref().map(|v| v.to_string()))
        .bind(a.version)
        .bind(secs(a.updated_at))
        .bind(serde_json::to_string(a)?)
        .bind(tenant.get())
        .bind(a.id.get())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Draws a fresh appointment id (for callers that build the appointment first).
pub async fn new_id(conn: &mut Conn) -> StoreResult<AppointmentId> {
    Ok(AppointmentId(next_id(conn, Seq::Entity).await?))
}

/// Books an appointment: holds its time on every practitioner and its address
/// (or answers [`CoreError::SlotTaken`]), stores it, emits `AppointmentCreated`.
/// `a.id` must come from [`new_id`].
pub async fn create(conn: &mut Conn, tenant: TenantId, mut a: Appointment, now: Timestamp) -> StoreResult<Appointment> {
    polyclinic_core::appointment::check_participants(&a)?;
    a.version = 1;
    a.updated_at = now;
    hold_time(conn, tenant, &a).await?;
    write_row(conn, tenant, &a, true).await?;
    append(conn, tenant, now, &[event(EventKind::AppointmentCreated, &a, json!({}))]).await?;
    Ok(a)
}

/// Reads an appointment.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM appointments WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Reads an appointment or answers not found.
pub async fn require(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Appointment> {
    get(conn, tenant, id).await?.ok_or_else(|| CoreError::not_found(ENTITY, id).into())
}

/// Reads an appointment to change it, inside a write: PostgreSQL locks the
/// row (`FOR UPDATE`) until the transaction ends, waiting for a concurrent
/// command that holds it and then reading what that one committed; SQLite's
/// single writer already runs one command at a time (and has no `FOR UPDATE`).
pub async fn get_for_update(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
    let sql = if is_postgres(conn) {
        "SELECT doc FROM appointments WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
    } else {
        "SELECT doc FROM appointments WHERE tenant_id = $1 AND id = $2"
    };
    let doc: Option<String> =
        sqlx::query_scalar(sql).bind(tenant.get()).bind(id.get()).fetch_optional(&mut *conn).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// [`get_for_update`], or not found.
async fn require_for_update(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Appointment> {
    get_for_update(conn, tenant, id).await?.ok_or_else(|| CoreError::not_found(ENTITY, id).into())
}

/// Finds an appointment by the booking system's external id.
pub async fn by_external_id(conn: &mut Conn, tenant: TenantId, external_id: &str) -> StoreResult<Option<Appointment>> {
    let doc: Option<String> = sqlx::query_scalar(
        "SELECT doc FROM appointments WHERE tenant_id = $1 AND external_id = $2 ORDER BY id LIMIT 1",
    )
    .bind(tenant.get())
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Cancels an appointment (status rule and cutoff checked by the caller's
/// dialect through `check_cancel_allowed`); frees its time and emits
/// `AppointmentCancelled`.
pub async fn cancel(
    conn: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    by: Actor,
    reason: Option<String>,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let mut a = require_for_update(conn, tenant, id).await?;
    a.status = a.status.transition(AppointmentStatus::Cancelled)?;
    a.canceled_by = Some(by);
    a.canceled_at = Some(now);
    a.cancel_reason = reason;
    a.version += 1;
    a.updated_at = now;
    release_time(conn, tenant, id).await?;
    write_row(conn, tenant, &a, false).await?;
    append(conn, tenant, now, &[event(EventKind::AppointmentCancelled, &a, json!({}))]).await?;
    Ok(a)
}

/// Moves an appointment to a new time (the new time must be free); emits one
/// `AppointmentMoved` with the previous times.
pub async fn reschedule(
    conn: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    to: Interval,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let mut a = require_for_update(conn, tenant, id).await?;
    if !a.status.can_reschedule() {
        return Err(CoreError::InvalidTransition { from: a.status.as_str().into(), to: "rescheduled".into() }.into());
    }
    let from = a.interval;
    a.interval = to;
    a.version += 1;
    a.updated_at = now;
    release_time(conn, tenant, id).await?;
    hold_time(conn, tenant, &a).await?;
    write_row(conn, tenant, &a, false).await?;
    let moved = json!({"previous_start": from.start.to_string(), "previous_end": from.end.to_string()});
    append(conn, tenant, now, &[event(EventKind::AppointmentMoved, &a, moved)]).await?;
    Ok(a)
}

/// Moves a booking the Docplanner way: the old booking is cancelled and
/// points to `new`, a booking booked in its place that points back (the
/// move chain). `new.id` must come from [`new_id`]. Emits one
/// `AppointmentMoved` about the new booking, with `moved_from` and the
/// previous times: the old booking's cancellation is part of the move, not
/// an event of its own.
pub async fn move_to(
    conn: &mut Conn,
    tenant: TenantId,
    old_id: AppointmentId,
    mut new: Appointment,
    by: Actor,
    now: Timestamp,
) -> StoreResult<(Appointment, Appointment)> {
    let mut old = require_for_update(conn, tenant, old_id).await?;
    if !old.status.can_reschedule() || old.moved_to.is_some() {
        return Err(CoreError::InvalidTransition { from: old.status.as_str().into(), to: "moved".into() }.into());
    }
    old.status = old.status.transition(AppointmentStatus::Cancelled)?;
    old.canceled_by = Some(by);
    old.canceled_at = Some(now);
    old.moved_to = Some(new.id);
    old.version += 1;
    old.updated_at = now;
    release_time(conn, tenant, old_id).await?;
    write_row(conn, tenant, &old, false).await?;
    polyclinic_core::appointment::check_participants(&new)?;
    new.moved_from = Some(old_id);
    new.version = 1;
    new.updated_at = now;
    hold_time(conn, tenant, &new).await?;
    write_row(conn, tenant, &new, true).await?;
    let moved = json!({"previous_start": old.interval.start.to_string(), "previous_end": old.interval.end.to_string()});
    append(conn, tenant, now, &[event(EventKind::AppointmentMoved, &new, moved)]).await?;
    Ok((old, new))
}

/// Whether an appointment is withdrawn: cancelled, a no-show, entered in
/// error, or moved away. Such an appointment takes no confirmation, presence
/// or opinion request.
fn withdrawn(a: &Appointment) -> bool {
    matches!(a.status, AppointmentStatus::Cancelled | AppointmentStatus::NoShow | AppointmentStatus::EnteredInError)
        || a.moved_to.is_some()
}

/// Refuses a change of a [`withdrawn`] appointment.
fn refuse_withdrawn(a: &Appointment, to: &str) -> StoreResult<()> {
    if withdrawn(a) {
        let from = if a.moved_to.is_some() { "moved" } else { a.status.as_str() };
        return Err(CoreError::InvalidTransition { from: from.into(), to: to.into() }.into());
    }
    Ok(())
}

/// Marks a booking confirmed by the office; emits `AppointmentConfirmed`.
/// Past bookings are the caller's to refuse; a booking withdrawn meanwhile
/// (see [`withdrawn`]) answers [`CoreError::InvalidTransition`], one already
/// confirmed [`CoreError::Conflict`].
pub async fn confirm(
    conn: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    by: &str,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let mut a = require_for_update(conn, tenant, id).await?;
    refuse_withdrawn(&a, "confirmed")?;
    if a.confirmed {
        return Err(CoreError::Conflict { entity: ENTITY, id: id.to_string() }.into());
    }
    a.confirmed = true;
    a.version += 1;
    a.updated_at = now;
    write_row(conn, tenant, &a, false).await?;
    append(conn, tenant, now, &[event(EventKind::AppointmentConfirmed, &a, json!({"confirmed_by": by}))]).await?;
    Ok(a)
}

/// Records the patient's presence (`Some`) on a booking; emits
/// `PresenceMarked`. A booking withdrawn meanwhile (see [`withdrawn`])
/// answers [`CoreError::InvalidTransition`].
pub async fn set_presence(
    conn: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    presence: polyclinic_core::appointment::Presence,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let mut a = require_for_update(conn, tenant, id).await?;
    refuse_withdrawn(&a, "presence")?;
    a.presence = Some(presence);
    a.version += 1;
    a.updated_at = now;
    write_row(conn, tenant, &a, false).await?;
    let word = match presence {
        polyclinic_core::appointment::Presence::Present => "present",
        polyclinic_core::appointment::Presence::Absent => "absent",
    };
    append(conn, tenant, now, &[event(EventKind::PresenceMarked, &a, json!({"presence": word}))]).await?;
    Ok(a)
}

/// Records that the patient of `a` was asked for an opinion by phone; emits
/// `OpinionRequested`. Answers false (and records nothing) when that phone was
/// already asked about this doctor; a booking withdrawn meanwhile (see
/// [`withdrawn`]) answers [`CoreError::InvalidTransition`].
pub async fn request_opinion(
    conn: &mut Conn,
    tenant: TenantId,
    a: &Appointment,
    practitioner: polyclinic_core::PractitionerId,
    phone: &str,
    now: Timestamp,
) -> StoreResult<bool> {
    const ENTITY_OPINION: &str = "opinion-request";
    // The row lock makes two requests about one booking run one after the
    // other, so that the second finds the first's record.
    let a = &require_for_update(conn, tenant, a.id).await?;
    refuse_withdrawn(a, "opinion-requested")?;
    let system = format!("practitioner:{practitioner}");
    if crate::catalog::find_by_identifier(conn, tenant, ENTITY_OPINION, &system, phone).await?.is_some() {
        return Ok(false);
    }
    crate::catalog::claim_identifier(conn, tenant, ENTITY_OPINION, &system, phone, a.id.get()).await?;
    // The phone is where the request goes (the delivery engine sends it).
    let data = json!({"practitioner_id": practitioner.to_string(), "phone": phone});
    append(conn, tenant, now, &[event(EventKind::OpinionRequested, a, data)]).await?;
    Ok(true)
}

/// Changes the status through the status machine; emits
/// `AppointmentStatusChanged`, plus `AppointmentCompleted` or
/// `AppointmentCancelled` when it reaches those.
pub async fn set_status(
    conn: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    to: AppointmentStatus,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let mut a = require_for_update(conn, tenant, id).await?;
    if a.status == to {
        return Ok(a);
    }
    let from = a.status;
    a.status = from.transition(to)?;
    a.version += 1;
    a.updated_at = now;
    if !to.occupies_time() {
        release_time(conn, tenant, id).await?;
    }
    write_row(conn, tenant, &a, false).await?;
    let mut events = vec![event(EventKind::AppointmentStatusChanged, &a, json!({"previous_status": from.as_str()}))];
    match to {
        AppointmentStatus::Completed => events.push(event(EventKind::AppointmentCompleted, &a, json!({}))),
        AppointmentStatus::Cancelled => events.push(event(EventKind::AppointmentCancelled, &a, json!({}))),
        _ => {}
    }
    append(conn, tenant, now, &events).await?;
    Ok(a)
}

/// Replaces an appointment's details (not its time or status) with optimistic
/// concurrency on `version`; emits `AppointmentUpdated`.
pub async fn update_details(
    conn: &mut Conn,
    tenant: TenantId,
    mut a: Appointment,
    now: Timestamp,
) -> StoreResult<Appointment> {
    let current = require_for_update(conn, tenant, a.id).await?;
    if current.version != a.version {
        return Err(CoreError::Conflict { entity: ENTITY, id: a.id.to_string() }.into());
    }
    if current.interval != a.interval || current.status != a.status {
        return Err(CoreError::invalid("appointment", "use reschedule or set_status to change time or status").into());
    }
    polyclinic_core::appointment::check_participants(&a)?;
    a.version += 1;
    a.updated_at = now;
    // Participants may have changed: hold the time again for the new set.
    release_time(conn, tenant, a.id).await?;
    hold_time(conn, tenant, &a).await?;
    write_row(conn, tenant, &a, false).await?;
    append(conn, tenant, now, &[event(EventKind::AppointmentUpdated, &a, json!({}))]).await?;
    Ok(a)
}

/// Filters for [`search`].
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub healthcare_service: Option<HealthcareServiceId>,
    pub address: Option<i64>,
    pub patient: Option<i64>,
    /// Appointments starting in `[from, to)`.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// Appointments ending at or before this instant.
    pub ends_by: Option<Timestamp>,
    pub offset: i64,
    pub limit: i64,
}

/// A page of matching appointments ordered by start, and the total.
pub async fn search(conn: &mut Conn, tenant: TenantId, s: &Search) -> StoreResult<(Vec<Appointment>, i64)> {
    let mut clauses = vec!["tenant_id = $1".to_string()];
    let mut args: Vec<i64> = vec![tenant.get()];
    let mut add = |clause: &str, v: i64| {
        args.push(v);
        clauses.push(format!("{clause} ${}", args.len()));
    };
    if let Some(h) = s.healthcare_service {
        add("healthcare_service_id =", h.get());
    }
    if let Some(a) = s.address {
        add("address_id =", a);
    }
    if let Some(p) = s.patient {
        add("patient_id =", p);
    }
    if let Some(f) = s.from {
        add("start_s >=", secs(f));
    }
    if let Some(t) = s.to {
        add("start_s <", secs(t));
    }
    if let Some(t) = s.ends_by {
        add("end_s <=", secs(t));
    }
    let filter = clauses.join(" AND ");
    let count_sql = format!("SELECT COUNT(*) FROM appointments WHERE {filter}");
    let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql));
    for v in &args {
        count = count.bind(*v);
    }
    let total = count.fetch_one(&mut *conn).await?;
    let n = args.len();
    let page_sql =
        format!("SELECT doc FROM appointments WHERE {filter} ORDER BY start_s, id LIMIT ${} OFFSET ${}", n + 1, n + 2);
    let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql));
    for v in &args {
        page = page.bind(*v);
    }
    let rows = page.bind(s.limit).bind(s.offset).fetch_all(&mut *conn).await?;
    let items = rows
        .iter()
        .map(|r| serde_json::from_str(&r.try_get::<String, _>(0)?).map_err(StoreError::from))
        .collect::<StoreResult<Vec<Appointment>>>()?;
    Ok((items, total))
}

/// Intervals held on a practitioner or an address overlapping `window`
/// (bookings from every dialect), for slot computation.
pub async fn busy_intervals(
    conn: &mut Conn,
    tenant: TenantId,
    practitioner: Option<i64>,
    address: Option<i64>,
    window: &Interval,
) -> StoreResult<Vec<Interval>> {
    let mut out = Vec::new();
    for (kind, id) in [(PRACTITIONER, practitioner), (ADDRESS, address)] {
        let Some(id) = id else { continue };
        let rows = sqlx::query(
            "SELECT start_s, end_s FROM busy WHERE tenant_id = $1 AND resource_kind = $2 AND resource_id = $3 AND start_s < $4 AND end_s > $5",
        )
        .bind(tenant.get())
        .bind(kind)
        .bind(id)
        .bind(secs(window.end))
        .bind(secs(window.start))
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            out.push(Interval { start: crate::ts(r.try_get(0)?)?, end: crate::ts(r.try_get(1)?)? });
        }
    }
    out.sort();
    Ok(out)
}
