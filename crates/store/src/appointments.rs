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

use crate::availability_generation::{Resource, touch};
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

pub(crate) async fn hold_time(conn: &mut Conn, tenant: TenantId, a: &Appointment) -> StoreResult<()> {
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
    touch_busy(conn, tenant, &resources(a)).await
}

/// Records a change of the time held on `held` (see
/// [`crate::availability_generation`]), in one order for every command (on
/// PostgreSQL it steps rows, which two commands must lock in one order).
async fn touch_busy(conn: &mut Conn, tenant: TenantId, held: &[(i64, i64)]) -> StoreResult<()> {
    let mut held = held.to_vec();
    held.sort_unstable();
    held.dedup();
    let touched: Vec<Resource> = held.iter().map(|(kind, id)| Resource::of_busy(*kind, *id)).collect();
    touch(conn, tenant, &touched).await
}

fn slot_taken(kind: i64, a: &Appointment) -> CoreError {
    CoreError::SlotTaken {
        resource: if kind == PRACTITIONER { "practitioner" } else { "address" },
        start: a.interval.start.to_string(),
        end: a.interval.end.to_string(),
    }
}

async fn release_time(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<()> {
    let freed = sqlx::query(
        "DELETE FROM busy WHERE tenant_id = $1 AND appointment_id = $2 RETURNING resource_kind, resource_id",
    )
    .bind(tenant.get())
    .bind(id.get())
    .fetch_all(&mut *conn)
    .await?;
    let freed = freed.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<StoreResult<Vec<(i64, i64)>>>()?;
    touch_busy(conn, tenant, &freed).await
}

pub(crate) async fn write_row(conn: &mut Conn, tenant: TenantId, a: &Appointment, insert: bool) -> StoreResult<()> {
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
    index_practitioners(conn, tenant, a, insert).await
}

/// `a`'s practitioners, each once, by id.
fn practitioner_ids(a: &Appointment) -> Vec<i64> {
    let mut ids: Vec<i64> = a.practitioners().map(|p| p.get()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Keeps `appointment_practitioners` (the practitioner search's index, every
/// status) equal to `a`'s practitioners at `a`'s time. An update that moves
/// nobody and no time (a status change) only reads the rows.
async fn index_practitioners(conn: &mut Conn, tenant: TenantId, a: &Appointment, insert: bool) -> StoreResult<()> {
    let (start, end) = (secs(a.interval.start), secs(a.interval.end));
    let wanted: Vec<(i64, i64, i64)> = practitioner_ids(a).into_iter().map(|p| (p, start, end)).collect();
    if !insert {
        let rows = sqlx::query(
            "SELECT practitioner_id, start_s, end_s FROM appointment_practitioners \
             WHERE tenant_id = $1 AND appointment_id = $2",
        )
        .bind(tenant.get())
        .bind(a.id.get())
        .fetch_all(&mut *conn)
        .await?;
        let mut have = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<StoreResult<Vec<(i64, i64, i64)>>>()?;
        have.sort_unstable();
        if have == wanted {
            return Ok(());
        }
        sqlx::query("DELETE FROM appointment_practitioners WHERE tenant_id = $1 AND appointment_id = $2")
            .bind(tenant.get())
            .bind(a.id.get())
            .execute(&mut *conn)
            .await?;
    }
    for (practitioner, start, end) in wanted {
        sqlx::query(
            "INSERT INTO appointment_practitioners (tenant_id, practitioner_id, start_s, appointment_id, end_s) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant.get())
        .bind(practitioner)
        .bind(start)
        .bind(a.id.get())
        .bind(end)
        .execute(&mut *conn)
        .await?;
    }
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
    touch_busy(conn, tenant, &held).await?;
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
    // Then one practitioner id per row of the practitioner search's index.
    let practitioners = practitioner_ids(&a);
    let first = 18 + 2 * held.len();
    let by_practitioner: Vec<String> =
        (0..practitioners.len()).map(|i| format!("($1, ${}, $3, $2, $4)", first + i)).collect();
    let busy = if by_practitioner.is_empty() {
        busy
    } else {
        format!(
            "{busy}p AS (INSERT INTO appointment_practitioners (tenant_id, practitioner_id, start_s, appointment_id, \
             end_s) VALUES {}), ",
            by_practitioner.join(", ")
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
    for id in &practitioners {
        q = q.bind(*id);
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
        return points.run(|c| crate::point_read::doc(c, crate::point_read::Docs::Appointments, tenant, id.get()));
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

/// The most matches [`search_page`] counts exactly by default: past it the
/// total is only known to be larger (docs/storage.md, "Search plans").
pub const TOTAL_CAP: i64 = 1000;

/// How [`search_page`] counts the matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Counting {
    /// Exactly up to [`TOTAL_CAP`]; past it [`Total::MoreThan`].
    #[default]
    Capped,
    /// Exactly, however many (a scan of every match's index entry).
    Exact,
    /// Not at all.
    Skip,
}

/// The number of matches of a [`search_page`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(i64),
    /// More than this many (the cap).
    MoreThan(i64),
    NotCounted,
}

/// Where a page starts: the sort key `(start_s, id)` of the last match of
/// the previous page (keyset), or a number of matches to skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStart {
    After { start_s: i64, id: i64 },
    Skip(i64),
}

/// An appointment search (the Embassy search): every filter given must hold.
/// At least one of `healthcare_service`, `patients` and `practitioner` must
/// be given; it picks the index the page is read from (practitioner first,
/// then patients, then service).
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub healthcare_service: Option<HealthcareServiceId>,
    /// Appointments of any of these patients.
    pub patients: Option<Vec<i64>>,
    /// Appointments this practitioner takes part in, whatever their status.
    pub practitioner: Option<i64>,
    /// Appointments starting at or after `.0` and ending at or before `.1`.
    pub range: Option<(Timestamp, Timestamp)>,
    pub from: PageStart,
    pub limit: i64,
    pub counting: Counting,
}

/// A page of a [`search_page`], in `(start, id)` order.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub items: Vec<Appointment>,
    pub total: Total,
    /// The key to continue after, when more matches follow this page.
    pub next: Option<(i64, i64)>,
}

/// The statements of a [`search_page`], with their arguments.
struct PageStatements {
    count: Option<(String, Vec<i64>)>,
    page: Option<(String, Vec<i64>)>,
}

/// Builds the count and the page of `q`; `ph(n)` spells parameter `n`.
fn page_statements(tenant: TenantId, q: &PageQuery, ph: fn(usize) -> String) -> PageStatements {
    // The key columns of the index the search reads.
    let (from_sql, k_start, k_id, k_end) = if q.practitioner.is_some() {
        (
            "appointment_practitioners k JOIN appointments a ON a.tenant_id = k.tenant_id AND a.id = k.appointment_id",
            "k.start_s",
            "k.appointment_id",
            "k.end_s",
        )
    } else {
        ("appointments a", "a.start_s", "a.id", "a.end_s")
    };
    // The practitioner search counts on its own index alone unless another
    // filter needs the appointment's columns.
    let joined = q.practitioner.is_none() || q.patients.is_some() || q.healthcare_service.is_some();
    let count_from = if joined { from_sql } else { "appointment_practitioners k" };
    // The filter and its arguments; a page after a key starts its index
    // range at that key (`after`), the count at the range's start.
    let filter = |after: Option<(i64, i64)>| -> (String, Vec<i64>) {
        let mut args: Vec<i64> = vec![tenant.get()];
        let mut param = |v: i64| {
            args.push(v);
            ph(args.len())
        };
        let mut clauses: Vec<String> = Vec::new();
        match q.practitioner {
            Some(p) => clauses.push(format!("k.tenant_id = {} AND k.practitioner_id = {}", ph(1), param(p))),
            None => clauses.push(format!("a.tenant_id = {}", ph(1))),
        }
        match q.patients.as_deref() {
            None | Some([]) => {}
            Some([one]) => clauses.push(format!("a.patient_id = {}", param(*one))),
            Some(many) => {
                let list: Vec<String> = many.iter().map(|p| param(*p)).collect();
                clauses.push(format!("a.patient_id IN ({})", list.join(", ")));
            }
        }
        if let Some(h) = q.healthcare_service {
            clauses.push(format!("a.healthcare_service_id = {}", param(h.get())));
        }
        if let Some((from, to)) = q.range {
            let from = after.map_or(secs(from), |(start_s, _)| secs(from).max(start_s));
            let (from, to) = (param(from), param(secs(to)));
            // `start_s <= to` follows from `end_s <= to`; said, it closes the
            // index range at its upper end too.
            clauses.push(format!("{k_start} >= {from} AND {k_start} <= {to} AND {k_end} <= {to}"));
        }
        if let Some((start_s, id)) = after {
            let (start_s, id) = (param(start_s), param(id));
            clauses.push(format!("({k_start}, {k_id}) > ({start_s}, {id})"));
        }
        (clauses.join(" AND "), args)
    };
    let count = match q.counting {
        Counting::Skip => None,
        Counting::Exact => {
            let (where_sql, args) = filter(None);
            Some((format!("SELECT COUNT(*) FROM {count_from} WHERE {where_sql}"), args))
        }
        // Count no further than one past the cap.
        Counting::Capped => {
            let (where_sql, args) = filter(None);
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {count_from} WHERE {where_sql} LIMIT {}) c",
                TOTAL_CAP + 1
            );
            Some((sql, args))
        }
    };
    let page = (q.limit > 0).then(|| {
        let (after, offset) = match q.from {
            PageStart::After { start_s, id } => (Some((start_s, id)), 0),
            PageStart::Skip(n) => (None, n.max(0)),
        };
        let (where_sql, args) = filter(after);
        // Several patients (one phone shared): their appointments are read
        // from the patient index and sorted (a few dozen rows). The `+` keeps
        // SQLite from walking the tenant's whole `start_s` index instead.
        let plus = if q.patients.as_ref().is_some_and(|p| p.len() > 1) { "+" } else { "" };
        // One row more than the page says whether another page follows.
        let sql = format!(
            "SELECT a.doc, {k_start} AS k_start, {k_id} AS k_id FROM {from_sql} WHERE {where_sql} \
             ORDER BY {plus}{k_start}, {plus}{k_id} LIMIT {} OFFSET {offset}",
            q.limit + 1
        );
        (sql, args)
    });
    PageStatements { count, page }
}

/// The total of `n` counted matches.
fn total_of(counting: Counting, n: Option<i64>) -> Total {
    match n {
        None => Total::NotCounted,
        Some(n) if counting == Counting::Capped && n > TOTAL_CAP => Total::MoreThan(TOTAL_CAP),
        Some(n) => Total::Exact(n),
    }
}

/// The page of the rows read (`doc`, start, id; one more than `limit` when
/// another page follows).
fn page_of(rows: Vec<(String, i64, i64)>, limit: i64, total: Total) -> StoreResult<SearchPage> {
    let shown = usize::try_from(limit.max(0)).unwrap_or(usize::MAX).min(rows.len());
    let next = if rows.len() > shown { rows.get(shown.wrapping_sub(1)).map(|r| (r.1, r.2)) } else { None };
    let items = rows[..shown]
        .iter()
        .map(|r| serde_json::from_str(&r.0).map_err(StoreError::from))
        .collect::<StoreResult<Vec<Appointment>>>()?;
    Ok(SearchPage { items, total, next })
}

/// A page of an appointment search, read from an index in its order: the
/// page and the count are range scans of `(tenant_id, <participant>,
/// start_s, id, end_s)` (`appointments_service_search`,
/// `appointments_patient_search`, `appointment_practitioners`), never a sort,
/// and a page that continues after a key starts right at it (keyset), however
/// deep. Plans in docs/storage.md, "Search plans".
pub async fn search_page(conn: &mut Conn, tenant: TenantId, q: &PageQuery) -> StoreResult<SearchPage> {
    if q.patients.as_ref().is_some_and(Vec::is_empty) {
        return Ok(SearchPage { items: Vec::new(), total: Total::Exact(0), next: None });
    }
    let st = page_statements(tenant, q, |n| format!("${n}"));
    let n = match st.count {
        None => None,
        Some((sql, args)) => {
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            for v in args {
                count = count.bind(v);
            }
            Some(count.fetch_one(&mut *conn).await?)
        }
    };
    let total = total_of(q.counting, n);
    let Some((sql, args)) = st.page else { return Ok(SearchPage { items: Vec::new(), total, next: None }) };
    let mut page = sqlx::query(sqlx::AssertSqlSafe(sql));
    for v in args {
        page = page.bind(v);
    }
    let rows = page
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?, r.try_get::<i64, _>(2)?)))
        .collect::<StoreResult<Vec<_>>>()?;
    page_of(rows, q.limit, total)
}

/// Deepest `skip` (without a cursor) read on the calling thread.
const POINT_SKIP: i64 = 1000;

/// [`search_page`] outside any command. On SQLite a search of bounded work
/// (the capped count or none, and a page after a cursor or at most
/// [`POINT_SKIP`] deep: at most ~2,000 index entries and `_count + 1`
/// documents, about a millisecond) runs on the calling thread, as
/// [`read_one`] does, without two hand-offs to sqlx's connection thread; the
/// rest (`_total=accurate`, deep offsets) and PostgreSQL go through the pool.
pub async fn read_page(store: &crate::Store, tenant: TenantId, q: PageQuery) -> StoreResult<SearchPage> {
    let bounded = q.counting != Counting::Exact
        && match q.from {
            PageStart::After { .. } => true,
            PageStart::Skip(n) => n <= POINT_SKIP,
        };
    if let (Some(points), true) = (store.point_reads(), bounded) {
        if q.patients.as_ref().is_some_and(Vec::is_empty) {
            return Ok(SearchPage { items: Vec::new(), total: Total::Exact(0), next: None });
        }
        let st = page_statements(tenant, &q, |n| format!("?{n}"));
        return points.run(|c| {
            let sqlite = |e: rusqlite::Error| StoreError::Aborted(format!("SQLite search: {e}"));
            let n = match &st.count {
                None => None,
                Some((sql, args)) => Some(
                    c.prepare_cached(sql)
                        .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args), |r| r.get::<_, i64>(0)))
                        .map_err(sqlite)?,
                ),
            };
            let total = total_of(q.counting, n);
            let Some((sql, args)) = &st.page else { return Ok(SearchPage { items: Vec::new(), total, next: None }) };
            let mut stmt = c.prepare_cached(sql).map_err(sqlite)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<(String, i64, i64)>>>())
                .map_err(sqlite)?;
            page_of(rows, q.limit, total)
        });
    }
    store.read(move |c| Box::pin(async move { search_page(c, tenant, &q).await })).await
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
