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
//!
//! A waiting room (a healthcare service booked without a practitioner, as
//! Solo books) offers [`waiting_room_starts`]: a grid of its slot length
//! within its opening hours (in the tenant's zone; no opening hours: the
//! grid runs round the clock from the unix epoch), minus the times at which
//! the bookings of every dialect in the service already fill it (one visit
//! at a time per practitioner of the service, at least one).

use jiff::{SignedDuration, Timestamp};
use polyclinic_core::facility::Address;
use polyclinic_core::schedule::Interval;
use polyclinic_core::service::HealthcareService;
use polyclinic_core::slots::{FreeSlot, free_slots, grid_slots, opening_intervals, saturated};
use polyclinic_core::tenant::{Tenant, TenantSettings};
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

/// The free slots of one address in `window`, whatever the time rules say
/// (what [`crate::availability_cache`] keeps): [`at_address`] with every
/// start of the window bookable. Its starts within a bookable range are
/// exactly [`at_address`]'s for that range.
pub async fn address_starts(
    conn: &mut Conn,
    tenant: TenantId,
    address: &Address,
    window: &Interval,
) -> StoreResult<Vec<FreeSlot>> {
    at_address(conn, tenant, address, window, window, None).await
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

/// The longest stretch [`first_waiting_room_start`] searches, in days.
pub const FIRST_START_SEARCH_DAYS: i64 = 366;

/// The visits of `duration` seconds that waiting room `service` offers with
/// a start in `window`, for a booking made at `now`: on the room's grid
/// (its `slot_seconds`), within its opening hours, where the bookings of
/// every dialect in the service leave room, and that the tenant's time rules
/// accept (duration, notice, horizon). In order.
pub async fn waiting_room_starts(
    conn: &mut Conn,
    tenant: &Tenant,
    service: &HealthcareService,
    window: &Interval,
    duration: i64,
    now: Timestamp,
) -> StoreResult<Vec<Interval>> {
    let bookable = time_rules::bookable_starts(&tenant.settings, now);
    let last = bookable.end.checked_add(SignedDuration::from_secs(1)).unwrap_or(bookable.end);
    let window = Interval { start: window.start.max(bookable.start), end: window.end.min(last) };
    if window.start >= window.end || duration <= 0 {
        return Ok(Vec::new());
    }
    let reach = window.end.checked_add(SignedDuration::from_secs(duration)).unwrap_or(window.end);
    let span = Interval { start: window.start, end: reach };
    let step = service.slot_seconds.max(60);
    let opening = if service.opening_hours.is_empty() {
        let first = span.start.as_second().div_euclid(step) * step;
        vec![Interval { start: Timestamp::from_second(first).unwrap_or(span.start), end: span.end }]
    } else {
        opening_intervals(&service.opening_hours, &tenant.tz(), &span)?
    };
    let busy = appointments::service_busy(conn, tenant.id, service.id, &span, None).await?;
    let full = saturated(&busy, crate::booking::waiting_room_capacity(service), &span);
    let mut starts = grid_slots(&opening, step, duration, &full, &window);
    starts.retain(|v| time_rules::check(v, &tenant.settings, now).is_ok());
    Ok(starts)
}

/// The first visit of `duration` seconds that waiting room `service` offers
/// from `now` on (see [`waiting_room_starts`]), searched a week at a time up
/// to the tenant's booking horizon, and at most [`FIRST_START_SEARCH_DAYS`].
pub async fn first_waiting_room_start(
    conn: &mut Conn,
    tenant: &Tenant,
    service: &HealthcareService,
    duration: i64,
    now: Timestamp,
) -> StoreResult<Option<Interval>> {
    let bookable = time_rules::bookable_starts(&tenant.settings, now);
    let limit = now
        .checked_add(SignedDuration::from_hours(24 * FIRST_START_SEARCH_DAYS))
        .unwrap_or(bookable.end)
        .min(bookable.end.checked_add(SignedDuration::from_secs(1)).unwrap_or(bookable.end));
    let week = SignedDuration::from_hours(24 * 7);
    let mut from = now;
    while from < limit {
        let to = from.checked_add(week).unwrap_or(limit).min(limit);
        let window = Interval { start: from, end: to };
        if let Some(first) = waiting_room_starts(conn, tenant, service, &window, duration, now).await?.first() {
            return Ok(Some(*first));
        }
        from = to;
    }
    Ok(None)
}
