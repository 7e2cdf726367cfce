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

/// The first of `a`'s resources whose time `a` would overlap, if any.
///
/// The probe is "the last interval of the resource starting before my end":
/// the rows of one resource never overlap (this guard on SQLite, the
/// exclusion constraint on PostgreSQL), so among the rows starting before
/// `a` ends, the last one also ends last, and `a` clashes with one of them
/// exactly when it clashes with that one. One descending step into the
/// `busy` primary key, however long the resource's history
/// (docs/storage.md shows the plans).
async fn clash(conn: &mut Conn, tenant: TenantId, a: &Appointment) -> StoreResult<Option<i64>> {
    let (start, end) = (secs(a.interval.start), secs(a.interval.end));
    for (kind, id) in resources(a) {
        let last_end: Option<i64> = sqlx::query_scalar(
            "SELECT end_s FROM busy WHERE tenant_id = $1 AND resource_kind = $2 AND resource_id = $3 \
             AND start_s < $4 AND appointment_id <> $5 ORDER BY start_s DESC LIMIT 1",
        )
        .bind(tenant.get())
        .bind(kind)
        .bind(id)
        .bind(end)
        .bind(a.id.get())
        .fetch_optional(&mut *conn)
        .await?;
        if last_end.is_some_and(|e| e > start) {
            return Ok(Some(kind));
        }
    }
    Ok(None)
}

async fn hold_time(conn: &mut Conn, tenant: TenantId, a: &Appointment) -> StoreResult<()> {
    if !a.status.occupies_time() {
        return Ok(());
    }
    if let Some(kind) = clash(conn, tenant, a).await? {
        return Err(slot_taken(kind, a).into());
    }
    let (start, end) = (secs(a.interval.start), secs(a.interval.end));
    for (kind, id) in resources(a) {
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

/// Books a new appointment: draws its id, then as [`create`]. On PostgreSQL
/// in two round trips inside the command's transaction: one statement draws
/// the id and probes every resource for a clash, one (a data-modifying CTE)
/// writes the busy rows, the appointment and its event (numbered by
/// `nextval` in the statement). A booking committed meanwhile by another
/// transaction is still refused by the exclusion constraint.
pub async fn book_new(
    conn: &mut Conn,
    tenant: TenantId,
    mut a: Appointment,
    now: Timestamp,
) -> StoreResult<Appointment> {
    if !is_postgres(conn) {
        a.id = new_id(conn).await?;
        return create(conn, tenant, a, now).await;
    }
    polyclinic_core::appointment::check_participants(&a)?;
    a.version = 1;
    a.updated_at = now;
    let (start, end) = (secs(a.interval.start), secs(a.interval.end));
    let held = if a.status.occupies_time() { resources(&a) } else { Vec::new() };
    // $1 tenant, $2 start, $3 end; then one resource id per probe.
    let probes: Vec<String> = held
        .iter()
        .enumerate()
        .map(|(i, (kind, _))| {
            format!(
                "WHEN (SELECT end_s FROM busy WHERE tenant_id = $1 AND resource_kind = {kind} AND resource_id = ${} \
                 AND start_s < $3 ORDER BY start_s DESC LIMIT 1) > $2 THEN {kind}",
                i + 4
            )
        })
        .collect();
    let sql = if probes.is_empty() {
        "SELECT nextval('seq_entity') AS id, CAST(NULL AS BIGINT) AS clash".to_owned()
    } else {
        format!("SELECT nextval('seq_entity') AS id, CASE {} END AS clash", probes.join(" "))
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(start).bind(end);
    for (_, id) in &held {
        q = q.bind(*id);
    }
    let row = q.fetch_one(&mut *conn).await?;
    a.id = AppointmentId(row.try_get("id")?);
    if let Some(kind) = row.try_get::<Option<i64>, _>("clash")? {
        return Err(slot_taken(kind, &a).into());
    }
    let e = event(EventKind::AppointmentCreated, &a, json!({}));
    // $1 tenant, $2 id, $3 start, $4 end, $5..$13 the appointment's other
    // columns, $14..$17 the event; then one resource kind and id per row.
    let rows: Vec<String> =
        (0..held.len()).map(|i| format!("($1, ${}, ${}, $2, $3, $4)", 18 + 2 * i, 19 + 2 * i)).collect();
    let busy = if rows.is_empty() {
        String::new()
    } else {
        format!(
            "b AS (INSERT INTO busy (tenant_id, resource_kind, resource_id, appointment_id, start_s, end_s) VALUES {}), ",
            rows.join(", ")
        )
    };
    let sql = format!(
        "WITH {busy}a AS (INSERT INTO appointments (status, start_s, end_s, healthcare_service_id, address_id, \
         patient_id, external_id, episode_id, version, updated_at, doc, tenant_id, id, created_at) \
         VALUES ($5, $3, $4, $6, $7, $8, $9, $10, $11, $12, $13, $1, $2, $12)) \
         INSERT INTO outbox (tenant_id, seq, kind, aggregate, aggregate_id, data, created_at) \
         VALUES ($1, nextval('seq_outbox'), $14, $15, $16, $17, $12)"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.get())
        .bind(a.id.get())
        .bind(start)
        .bind(end)
        .bind(a.status.as_str())
        .bind(a.healthcare_service_id.map(|v| v.get()))
        .bind(a.address_id.map(|v| v.get()))
        .bind(a.patient().map(|v| v.get()))
        .bind(a.external_id.clone())
        .bind(a.episode_id.as_ref().map(|v| v.to_string()))
        .bind(a.version)
        .bind(secs(a.updated_at))
        .bind(serde_json::to_string(&a)?)
        .bind(e.kind.as_str())
        .bind(e.aggregate)
        .bind(e.aggregate_id.clone())
        .bind(serde_json::to_string(&e.data)?);
    for (kind, id) in &held {
        q = q.bind(*kind).bind(*id);
    }
    q.execute(&mut *conn).await.map_err(|e| match crate::db::map_constraint(e) {
        // Another transaction's booking won the race (the exclusion
        // constraint): name the resource when there is only one.
        StoreError::Core(CoreError::SlotTaken { .. }) if held.len() == 1 => StoreError::Core(slot_taken(held[0].0, &a)),
        other => other,
    })?;
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

/// Reads an appointment outside any command, the fastest way the engine
/// allows: on SQLite a point read on the calling thread
/// ([`crate::point_read`]), on PostgreSQL a read from the pool. Sees every
/// committed change.
pub async fn read_one(store: &crate::Store, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
    if let Some(points) = store.point_reads() {
        let doc: Option<String> = points.with(|c| {
            use rusqlite::OptionalExtension;
            c.prepare_cached("SELECT doc FROM appointments WHERE tenant_id = ?1 AND id = ?2")?
                .query_row((tenant.get(), id.get()), |row| row.get(0))
                .optional()
        })?;
        return doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose();
    }
    store.read(move |c| Box::pin(async move { get(c, tenant, id).await })).await
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
/// concurrency on `version`; emits `AppointmentUpdated` (with
/// `video_call_status` and `previous_video_call_status` when that changed).
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
    // A change of the Solo video call status is told with the one before
    // (Solo webhooks: `appointment:lwbs`, `appointment:incompleted`).
    let extra = if current.video_call_status != a.video_call_status {
        json!({"video_call_status": a.video_call_status, "previous_video_call_status": current.video_call_status})
    } else {
        json!({})
    };
    append(conn, tenant, now, &[event(EventKind::AppointmentUpdated, &a, extra)]).await?;
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
        // The rows starting inside the window, and the last one starting
        // before it (the only earlier one that can reach into it, as the
        // rows of a resource never overlap): an index range from that row,
        // not from the resource's first booking.
        let rows = sqlx::query(
            "SELECT start_s, end_s FROM busy WHERE tenant_id = $1 AND resource_kind = $2 AND resource_id = $3 \
             AND start_s < $4 AND end_s > $5 AND start_s >= COALESCE((SELECT start_s FROM busy \
             WHERE tenant_id = $1 AND resource_kind = $2 AND resource_id = $3 AND start_s < $5 \
             ORDER BY start_s DESC LIMIT 1), $5)",
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

/// The longest an appointment may last (`core::time_rules::LONGEST_MINUTES`),
/// in seconds: the bound that keeps [`service_busy`]'s scan of the
/// `(tenant_id, healthcare_service_id, start_s)` index short.
const LONGEST_SECONDS: i64 = polyclinic_core::time_rules::LONGEST_MINUTES * 60;

/// The times of the appointments of healthcare service `service` (booked
/// through any dialect) that hold their time and overlap `window`, but for
/// `except` (a booking being moved): a waiting room's load. An index range
/// scan: no appointment starts more than a day before it ends.
pub async fn service_busy(
    conn: &mut Conn,
    tenant: TenantId,
    service: HealthcareServiceId,
    window: &Interval,
    except: Option<AppointmentId>,
) -> StoreResult<Vec<Interval>> {
    let rows = sqlx::query(
        "SELECT start_s, end_s FROM appointments WHERE tenant_id = $1 AND healthcare_service_id = $2 \
         AND start_s >= $3 AND start_s < $4 AND end_s > $5 AND id <> $6 \
         AND status NOT IN ('waitlist', 'cancelled', 'no-show', 'entered-in-error') ORDER BY start_s",
    )
    .bind(tenant.get())
    .bind(service.get())
    .bind(secs(window.start) - LONGEST_SECONDS)
    .bind(secs(window.end))
    .bind(secs(window.start))
    .bind(except.map_or(0, |e| e.get()))
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Interval { start: crate::ts(r.try_get(0)?)?, end: crate::ts(r.try_get(1)?)? });
    }
    Ok(out)
}
