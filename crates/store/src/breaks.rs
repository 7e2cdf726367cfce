//! Calendar breaks (Docplanner): while one lasts, its address offers no
//! slots. Breaks created together on a doctor's coupled addresses share a
//! `coupled_group` and are moved and removed together.
//!
//! Every change appends one event per break in the same transaction:
//! `BreakCreated`, `BreakMoved` (with the previous range) and `BreakRemoved`,
//! aggregate `calendar_break`, data `{"address_id", "break", ["previous"]}`.

use crate::availability_generation::{Resource, touch};
use crate::outbox::{Seq, append, next_id};
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::schedule::{CalendarBreak, Interval};
use polyclinic_core::{AddressId, CalendarBreakId, TenantId};
use serde_json::json;

fn decode(docs: Vec<String>) -> StoreResult<Vec<CalendarBreak>> {
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// The breaks of an address overlapping `window` (touching ones excluded),
/// by start.
pub async fn overlapping(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    window: &Interval,
) -> StoreResult<Vec<CalendarBreak>> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM calendar_breaks WHERE tenant_id = $1 AND address_id = $2 AND start_s < $3 AND end_s > $4 \
         ORDER BY start_s, id",
    )
    .bind(tenant.get())
    .bind(address.get())
    .bind(secs(window.end))
    .bind(secs(window.start))
    .fetch_all(&mut *conn)
    .await?;
    decode(docs)
}

/// The breaks of an address with exactly this range.
pub async fn with_range(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    range: &Interval,
) -> StoreResult<Vec<CalendarBreak>> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM calendar_breaks WHERE tenant_id = $1 AND address_id = $2 AND start_s = $3 AND end_s = $4 \
         ORDER BY id",
    )
    .bind(tenant.get())
    .bind(address.get())
    .bind(secs(range.start))
    .bind(secs(range.end))
    .fetch_all(&mut *conn)
    .await?;
    decode(docs)
}

/// A break by id.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: CalendarBreakId) -> StoreResult<Option<CalendarBreak>> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM calendar_breaks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant.get())
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// The break and the breaks of its coupled group at `addresses` (the
/// doctor's addresses in the facility): the breaks a move or a removal of
/// `b` applies to, `b` first.
pub async fn with_group(
    conn: &mut Conn,
    tenant: TenantId,
    b: &CalendarBreak,
    addresses: &[AddressId],
) -> StoreResult<Vec<CalendarBreak>> {
    let mut all = vec![b.clone()];
    let Some(group) = b.coupled_group else { return Ok(all) };
    for a in addresses {
        // Members of a group always share their range: they are created and moved together.
        for other in with_range(conn, tenant, *a, &b.interval).await? {
            if other.id != b.id && other.coupled_group == Some(group) {
                all.push(other);
            }
        }
    }
    Ok(all)
}

/// A new break id.
pub async fn new_id(conn: &mut Conn) -> StoreResult<CalendarBreakId> {
    Ok(CalendarBreakId(next_id(conn, Seq::Entity).await?))
}

fn event(kind: EventKind, b: &CalendarBreak, previous: Option<&Interval>) -> StoreResult<NewEvent> {
    let mut data = json!({"address_id": b.address_id.to_string(), "break": serde_json::to_value(b)?});
    if let Some(p) = previous {
        data["previous"] = json!({"since": p.start.to_string(), "till": p.end.to_string()});
    }
    Ok(NewEvent::new(kind, "calendar_break", b.id, data))
}

/// Stores new breaks (ids already drawn with [`new_id`]), one `BreakCreated` each.
pub async fn create(conn: &mut Conn, tenant: TenantId, breaks: &[CalendarBreak], now: Timestamp) -> StoreResult<()> {
    touch_addresses(conn, tenant, breaks).await?;
    let mut events = Vec::with_capacity(breaks.len());
    for b in breaks {
        sqlx::query(
            "INSERT INTO calendar_breaks (tenant_id, id, address_id, start_s, end_s, doc) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.get())
        .bind(b.id.get())
        .bind(b.address_id.get())
        .bind(secs(b.interval.start))
        .bind(secs(b.interval.end))
        .bind(serde_json::to_string(b)?)
        .execute(&mut *conn)
        .await
        .map_err(crate::db::map_constraint)?;
        events.push(event(EventKind::BreakCreated, b, None)?);
    }
    append(conn, tenant, now, &events).await
}

/// Moves breaks to `to`, one `BreakMoved` each; answers them as moved.
pub async fn move_to(
    conn: &mut Conn,
    tenant: TenantId,
    breaks: &[CalendarBreak],
    to: Interval,
    now: Timestamp,
) -> StoreResult<Vec<CalendarBreak>> {
    touch_addresses(conn, tenant, breaks).await?;
    let mut moved = Vec::with_capacity(breaks.len());
    let mut events = Vec::with_capacity(breaks.len());
    for b in breaks {
        let mut m = b.clone();
        m.interval = to;
        sqlx::query("UPDATE calendar_breaks SET start_s = $3, end_s = $4, doc = $5 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.get())
            .bind(m.id.get())
            .bind(secs(to.start))
            .bind(secs(to.end))
            .bind(serde_json::to_string(&m)?)
            .execute(&mut *conn)
            .await?;
        events.push(event(EventKind::BreakMoved, &m, Some(&b.interval))?);
        moved.push(m);
    }
    append(conn, tenant, now, &events).await?;
    Ok(moved)
}

/// Removes breaks, one `BreakRemoved` each (with the break as it was).
pub async fn remove(conn: &mut Conn, tenant: TenantId, breaks: &[CalendarBreak], now: Timestamp) -> StoreResult<()> {
    touch_addresses(conn, tenant, breaks).await?;
    let mut events = Vec::with_capacity(breaks.len());
    for b in breaks {
        sqlx::query("DELETE FROM calendar_breaks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.get())
            .bind(b.id.get())
            .execute(&mut *conn)
            .await?;
        events.push(event(EventKind::BreakRemoved, b, None)?);
    }
    append(conn, tenant, now, &events).await
}

/// Records a change of the breaks of these breaks' addresses (see
/// [`crate::availability_generation`]).
async fn touch_addresses(conn: &mut Conn, tenant: TenantId, breaks: &[CalendarBreak]) -> StoreResult<()> {
    let mut addresses: Vec<Resource> = breaks.iter().map(|b| Resource::Address(b.address_id.get())).collect();
    addresses.dedup();
    touch(conn, tenant, &addresses).await
}
