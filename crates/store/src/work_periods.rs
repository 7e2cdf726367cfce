//! Docplanner work periods: when an address takes bookings, for which
//! address services and with which visit lengths. Slots are computed from
//! them (see `polyclinic_core::slots`), never stored.
//!
//! A replace covers a time range: whatever part of an existing period lies in
//! the range is removed (a period reaching out of the range keeps its outside
//! parts), then the new periods are written.

use crate::availability_generation::{Resource, touch};
use crate::outbox::append;
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::schedule::{Interval, WorkPeriod};
use polyclinic_core::{AddressId, TenantId};
use serde_json::json;

/// The work periods of an address overlapping `window`, by start.
pub async fn overlapping(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    window: &Interval,
) -> StoreResult<Vec<WorkPeriod>> {
    let docs: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM work_periods WHERE tenant_id = $1 AND address_id = $2 AND start_s < $3 AND end_s > $4 \
         ORDER BY start_s",
    )
    .bind(tenant.get())
    .bind(address.get())
    .bind(secs(window.end))
    .bind(secs(window.start))
    .fetch_all(&mut *conn)
    .await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

async fn insert(conn: &mut Conn, tenant: TenantId, p: &WorkPeriod) -> StoreResult<()> {
    sqlx::query("INSERT INTO work_periods (tenant_id, address_id, start_s, end_s, doc) VALUES ($1, $2, $3, $4, $5)")
        .bind(tenant.get())
        .bind(p.address_id.get())
        .bind(secs(p.interval.start))
        .bind(secs(p.interval.end))
        .bind(serde_json::to_string(p)?)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Removes whatever lies in `range` from the address's work periods.
async fn cut(conn: &mut Conn, tenant: TenantId, address: AddressId, range: &Interval) -> StoreResult<()> {
    let existing = overlapping(conn, tenant, address, range).await?;
    sqlx::query("DELETE FROM work_periods WHERE tenant_id = $1 AND address_id = $2 AND start_s < $3 AND end_s > $4")
        .bind(tenant.get())
        .bind(address.get())
        .bind(secs(range.end))
        .bind(secs(range.start))
        .execute(&mut *conn)
        .await?;
    for p in existing {
        for part in
            [Interval { start: p.interval.start, end: range.start }, Interval { start: range.end, end: p.interval.end }]
        {
            if part.start < part.end {
                insert(conn, tenant, &WorkPeriod { interval: part, ..p.clone() }).await?;
            }
        }
    }
    Ok(())
}

/// Replaces the work periods of each range with the periods given for it (an
/// empty list removes the range's slots). Ranges must not overlap each other;
/// each period lies inside its range. Emits `SlotsReplaced` per range.
pub async fn replace(
    conn: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    ranges: &[(Interval, Option<WorkPeriod>)],
    now: Timestamp,
) -> StoreResult<()> {
    touch(conn, tenant, &[Resource::Address(address.get())]).await?;
    let mut events = Vec::new();
    for (range, period) in ranges {
        cut(conn, tenant, address, range).await?;
        if let Some(p) = period {
            insert(conn, tenant, p).await?;
        }
        events.push(NewEvent::new(
            EventKind::SlotsReplaced,
            "address",
            address,
            json!({"address_id": address.to_string(), "start": range.start.to_string(), "end": range.end.to_string(),
                   "removed": period.is_none()}),
        ));
    }
    append(conn, tenant, now, &events).await
}
