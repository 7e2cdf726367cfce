//! Availability: the free starts of a calendar over a range, the same answer
//! for every dialect. A calendar is an address (a practitioner's calendar at
//! one place, Docplanner's unit), a practitioner (every address it has) or a
//! healthcare service (every address linked to it).
//!
//! A start is free when a work period offers it on its grid (the greatest
//! common divisor of its services' durations, `core::slots`), no calendar
//! break covers it, no booking of any dialect holds the practitioner or the
//! address then, and the tenant's time rules let a booking made now start
//! there (booking notice to horizon, `core::time_rules::bookable_starts`).

use jiff::{SignedDuration, Timestamp};
use polyclinic_core::facility::Address;
use polyclinic_core::schedule::Interval;
use polyclinic_core::slots::{FreeSlot, free_slots};
use polyclinic_core::tenant::TenantSettings;
use polyclinic_core::{HealthcareServiceId, PractitionerId, TenantId, time_rules};
use polyclinic_store::{Conn, StoreResult, appointments, breaks, catalog, work_periods};

/// Whose free starts to answer.
#[derive(Debug, Clone, Copy)]
pub enum Calendar<'a> {
    /// One address.
    Address(&'a Address),
    /// Every address of a practitioner.
    Practitioner(PractitionerId),
    /// Every address linked to a healthcare service.
    Service(HealthcareServiceId),
}

/// The free starts of one address of a [`Calendar`].
#[derive(Debug, Clone, PartialEq)]
pub struct AddressSlots {
    pub address: Address,
    pub slots: Vec<FreeSlot>,
}

/// The free starts of `calendar` in `window`, for a booking made at `now`
/// under `settings`: per address, each address's starts in order.
pub async fn free_starts(
    conn: &mut Conn,
    tenant: TenantId,
    calendar: Calendar<'_>,
    window: &Interval,
    settings: &TenantSettings,
    now: Timestamp,
) -> StoreResult<Vec<AddressSlots>> {
    let addresses = match calendar {
        Calendar::Address(a) => vec![a.clone()],
        Calendar::Practitioner(p) => catalog::addresses_of_practitioner(conn, tenant, p.get()).await?,
        Calendar::Service(s) => catalog::addresses_of_service(conn, tenant, s.get()).await?,
    };
    let bookable = time_rules::bookable_starts(settings, now);
    let mut out = Vec::with_capacity(addresses.len());
    for address in addresses {
        // A calendar that is switched off offers nothing.
        if !address.calendar_enabled {
            continue;
        }
        let slots = at_address(conn, tenant, &address, window, &bookable, None).await?;
        out.push(AddressSlots { address, slots });
    }
    Ok(out)
}

/// The free slots of one address in `window` whose starts lie in `bookable`
/// (from [`time_rules::bookable_starts`]). `ignore` is a booking's own time
/// when that booking is being moved: it is not in its own way.
pub async fn at_address(
    conn: &mut Conn,
    tenant: TenantId,
    address: &Address,
    window: &Interval,
    bookable: &Interval,
    ignore: Option<&Interval>,
) -> StoreResult<Vec<FreeSlot>> {
    // Starts up to and including the horizon's last second.
    let last = bookable.end.checked_add(SignedDuration::from_secs(1)).unwrap_or(bookable.end);
    let window = Interval { start: window.start.max(bookable.start), end: window.end.min(last) };
    if window.start >= window.end {
        return Ok(Vec::new());
    }
    let periods = work_periods::overlapping(conn, tenant, address.id, &window).await?;
    if periods.is_empty() {
        return Ok(Vec::new());
    }
    let span = Interval {
        start: periods.iter().map(|p| p.interval.start).min().unwrap_or(window.start),
        end: periods.iter().map(|p| p.interval.end).max().unwrap_or(window.end),
    };
    let mut blockers: Vec<Interval> =
        breaks::overlapping(conn, tenant, address.id, &span).await?.into_iter().map(|b| b.interval).collect();
    blockers.extend(
        appointments::busy_intervals(conn, tenant, Some(address.practitioner_id.get()), Some(address.id.get()), &span)
            .await?
            .into_iter()
            .filter(|b| Some(b) != ignore),
    );
    let mut out: Vec<FreeSlot> = periods.iter().flat_map(|p| free_slots(p, &p.durations, &blockers, &window)).collect();
    out.sort_by_key(|s| s.start);
    // Two periods may offer one start: one slot, with both periods' services.
    out.dedup_by(|b, a| {
        if a.start == b.start {
            for s in &b.services {
                if !a.services.contains(s) {
                    a.services.push(*s);
                }
            }
            true
        } else {
            false
        }
    });
    Ok(out)
}
