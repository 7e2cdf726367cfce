//! Slot splitting: which starts are free.
//!
//! A work period is cut on a grid whose step is the greatest common divisor of
//! its services' durations (20 and 60 minutes give a 20-minute grid). A start
//! on that grid is offered for a service when the whole service duration fits
//! in the period and overlaps no blocker (calendar break or booking from any
//! dialect). A start is listed when at least one service fits there, so a
//! 60-minute booking hides the three 20-minute grid starts it covers.

use crate::schedule::{Interval, WorkPeriod};
use crate::service::OpeningHours;
use crate::{AddressServiceId, CoreError};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// Greatest common divisor of durations (minutes); `None` for an empty list or
/// a non-positive duration.
pub fn grid_minutes(durations: &[i64]) -> Option<i64> {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    if durations.iter().any(|d| *d <= 0) {
        return None;
    }
    durations.iter().copied().reduce(gcd)
}

/// A free start and the services that fit there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FreeSlot {
    pub start: Timestamp,
    pub services: Vec<AddressServiceId>,
}

/// A service with its duration in minutes, as the splitter needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDuration {
    pub id: AddressServiceId,
    pub minutes: i64,
}

/// The free starts of one work period, in order. `blockers` are breaks and
/// bookings, in any order; `window` limits which starts are reported.
pub fn free_slots(
    period: &WorkPeriod,
    durations: &[ServiceDuration],
    blockers: &[Interval],
    window: &Interval,
) -> Vec<FreeSlot> {
    let services: Vec<ServiceDuration> =
        durations.iter().copied().filter(|d| period.address_services.contains(&d.id)).collect();
    let Some(grid) = grid_minutes(&services.iter().map(|s| s.minutes).collect::<Vec<_>>()) else {
        return Vec::new();
    };
    let step = grid * 60;
    let relevant: Vec<&Interval> = blockers.iter().filter(|b| b.overlaps(&period.interval)).collect();
    let (p_start, p_end) = (period.interval.start.as_second(), period.interval.end.as_second());
    let mut out = Vec::new();
    let mut s = p_start;
    while s + step <= p_end {
        if s >= window.start.as_second() && s < window.end.as_second() {
            let fits: Vec<AddressServiceId> = services
                .iter()
                .filter(|svc| {
                    let e = s + svc.minutes * 60;
                    e <= p_end && !relevant.iter().any(|b| b.start.as_second() < e && s < b.end.as_second())
                })
                .map(|svc| svc.id)
                .collect();
            if !fits.is_empty() {
                out.push(FreeSlot {
                    start: Timestamp::from_second(s).unwrap_or(period.interval.start),
                    services: fits,
                });
            }
        }
        s += step;
    }
    out
}

/// Turns weekly opening hours into concrete intervals for every local day that
/// overlaps `window`, in the time zone `tz` (daylight-saving correct: 08:00 is
/// 08:00 local on both sides of a change).
pub fn opening_intervals(
    hours: &[OpeningHours],
    tz: &jiff::tz::TimeZone,
    window: &Interval,
) -> Result<Vec<Interval>, CoreError> {
    let mut out = Vec::new();
    let first = window.start.to_zoned(tz.clone()).date();
    let last = window.end.to_zoned(tz.clone()).date();
    let mut day = first;
    while day <= last {
        for h in hours.iter().filter(|h| h.weekday.to_jiff() == day.weekday()) {
            let (from, to) = h.minutes()?;
            let at = |minutes: i64| -> Result<Timestamp, CoreError> {
                let midnight =
                    day.to_zoned(tz.clone()).map_err(|e| CoreError::invalid("opening_hours", e.to_string()))?;
                midnight
                    .checked_add(minutes.minutes())
                    .map(|z| z.timestamp())
                    .map_err(|e| CoreError::invalid("opening_hours", e.to_string()))
            };
            let iv = Interval { start: at(from)?, end: at(to)? };
            if iv.start < iv.end && iv.overlaps(window) {
                out.push(iv);
            }
        }
        day = match day.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    out.sort();
    Ok(out)
}

/// Fixed-length slots (a healthcare service's `slot_seconds`) inside opening
/// intervals, minus blockers: what Embassy and Solo offer.
pub fn fixed_slots(opening: &[Interval], slot_seconds: i64, blockers: &[Interval], window: &Interval) -> Vec<Interval> {
    let mut out = Vec::new();
    if slot_seconds <= 0 {
        return out;
    }
    for iv in opening {
        let mut s = iv.start.as_second();
        while s + slot_seconds <= iv.end.as_second() {
            let e = s + slot_seconds;
            let (Ok(start), Ok(end)) = (Timestamp::from_second(s), Timestamp::from_second(e)) else { break };
            let slot = Interval { start, end };
            if slot.start >= window.start && slot.start < window.end && !blockers.iter().any(|b| b.overlaps(&slot)) {
                out.push(slot);
            }
            s = e;
        }
    }
    out
}

/// Whether `visit` lies entirely within one opening interval of `hours` (in
/// the time zone `tz`). No opening hours means always open.
pub fn within_opening(hours: &[OpeningHours], tz: &jiff::tz::TimeZone, visit: &Interval) -> Result<bool, CoreError> {
    if hours.is_empty() {
        return Ok(true);
    }
    Ok(opening_intervals(hours, tz, visit)?.iter().any(|o| o.contains(visit)))
}

/// The parts of `window` where at least `capacity` of `busy` overlap at
/// once, merged and in order: where a resource that takes `capacity` visits
/// at a time (a waiting room) is full. A capacity of 0 fills the window.
pub fn saturated(busy: &[Interval], capacity: usize, window: &Interval) -> Vec<Interval> {
    if window.start >= window.end {
        return Vec::new();
    }
    if capacity == 0 {
        return vec![*window];
    }
    // Ends sort before starts at the same instant: intervals are half-open.
    let mut events: Vec<(Timestamp, i8)> = Vec::with_capacity(busy.len() * 2);
    for b in busy.iter().filter(|b| b.overlaps(window)) {
        events.push((b.start.max(window.start), 1));
        events.push((b.end.min(window.end), -1));
    }
    events.sort();
    let mut out: Vec<Interval> = Vec::new();
    let (mut load, mut open) = (0usize, None);
    for (at, delta) in events {
        if delta > 0 {
            load += 1;
            if load == capacity {
                open = Some(at);
            }
        } else {
            if load == capacity
                && let Some(start) = open.take()
                && start < at
            {
                match out.last_mut() {
                    Some(last) if last.end == start => last.end = at,
                    _ => out.push(Interval { start, end: at }),
                }
            }
            load = load.saturating_sub(1);
        }
    }
    out
}

/// Visits `length` seconds long starting every `step` seconds from the start
/// of each opening interval, that fit in it, start in `window` and overlap
/// no blocker: a waiting room's offer (`step`: its slot length).
pub fn grid_slots(
    opening: &[Interval],
    step: i64,
    length: i64,
    blockers: &[Interval],
    window: &Interval,
) -> Vec<Interval> {
    let mut out = Vec::new();
    if step <= 0 || length <= 0 {
        return out;
    }
    for iv in opening {
        let (first, end) = (iv.start.as_second(), iv.end.as_second());
        // Skip the grid points before the window without walking them.
        let from = window.start.as_second();
        let mut s = if from > first { first + (from - first).div_euclid(step) * step } else { first };
        while s + length <= end && s < window.end.as_second() {
            let (Ok(start), Ok(stop)) = (Timestamp::from_second(s), Timestamp::from_second(s + length)) else { break };
            let slot = Interval { start, end: stop };
            if slot.start >= window.start && !blockers.iter().any(|b| b.overlaps(&slot)) {
                out.push(slot);
            }
            s += step;
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AddressId;
    use crate::service::Weekday;
    use proptest::prelude::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }
    const T0: i64 = 1_900_000_800; // a whole hour

    fn period(start: i64, end: i64, services: &[i64]) -> WorkPeriod {
        WorkPeriod {
            address_id: AddressId(1),
            interval: Interval { start: ts(start), end: ts(end) },
            address_services: services.iter().map(|i| AddressServiceId(*i)).collect(),
            durations: Vec::new(),
        }
    }

    fn everything() -> Interval {
        Interval { start: ts(0), end: ts(4_000_000_000) }
    }

    #[test]
    fn grid_is_the_gcd() {
        assert_eq!(grid_minutes(&[20, 60]), Some(20));
        assert_eq!(grid_minutes(&[45, 30]), Some(15));
        assert_eq!(grid_minutes(&[7]), Some(7));
        assert_eq!(grid_minutes(&[]), None);
        assert_eq!(grid_minutes(&[0, 30]), None);
    }

    #[test]
    fn twenty_and_sixty_minutes_give_a_twenty_minute_grid() {
        let p = period(T0, T0 + 2 * 3600, &[1, 2]);
        let d = [
            ServiceDuration { id: AddressServiceId(1), minutes: 20 },
            ServiceDuration { id: AddressServiceId(2), minutes: 60 },
        ];
        let slots = free_slots(&p, &d, &[], &everything());
        assert_eq!(slots.len(), 6);
        assert_eq!(slots[0].services, vec![AddressServiceId(1), AddressServiceId(2)]);
        // From 10:20 on the 60-minute service no longer fits before the end.
        assert_eq!(slots[4].services, vec![AddressServiceId(1)]);
    }

    #[test]
    fn a_sixty_minute_booking_hides_three_grid_slots() {
        let p = period(T0, T0 + 2 * 3600, &[1, 2]);
        let d = [
            ServiceDuration { id: AddressServiceId(1), minutes: 20 },
            ServiceDuration { id: AddressServiceId(2), minutes: 60 },
        ];
        let booking = Interval { start: ts(T0), end: ts(T0 + 3600) };
        let starts: Vec<i64> =
            free_slots(&p, &d, &[booking], &everything()).iter().map(|s| s.start.as_second() - T0).collect();
        assert_eq!(starts, vec![3600, 4800, 6000]);
    }

    #[test]
    fn breaks_hide_the_slots_they_overlap() {
        let p = period(T0, T0 + 3600, &[1]);
        let d = [ServiceDuration { id: AddressServiceId(1), minutes: 15 }];
        let brk = Interval { start: ts(T0 + 10 * 60), end: ts(T0 + 20 * 60) };
        let starts: Vec<i64> =
            free_slots(&p, &d, &[brk], &everything()).iter().map(|s| (s.start.as_second() - T0) / 60).collect();
        assert_eq!(starts, vec![30, 45]);
    }

    #[test]
    fn opening_hours_follow_daylight_saving() {
        let tz = jiff::tz::TimeZone::get("Europe/Stockholm").unwrap();
        let hours = [OpeningHours { weekday: Weekday::Mon, from: "08:00".into(), to: "09:00".into() }];
        // Monday 2030-03-25 (UTC+1) and Monday 2030-04-01 (summer time since 31 March, UTC+2).
        let window =
            Interval { start: "2030-03-25T00:00:00Z".parse().unwrap(), end: "2030-04-02T00:00:00Z".parse().unwrap() };
        let ivs = opening_intervals(&hours, &tz, &window).unwrap();
        assert_eq!(ivs.len(), 2);
        assert_eq!(ivs[0].start.to_string(), "2030-03-25T07:00:00Z");
        assert_eq!(ivs[1].start.to_string(), "2030-04-01T06:00:00Z");
        let slots =
            fixed_slots(&ivs, 900, &[Interval { start: ivs[0].start, end: ivs[0].start + 1.second() }], &window);
        assert_eq!(slots.len(), 7);
    }

    proptest! {
        /// Every offered start lies on the grid, inside the period, and no
        /// offered service overlaps a blocker or runs past the period's end.
        #[test]
        fn offered_slots_are_on_grid_and_free(
            durations in proptest::collection::vec(1i64..=12, 1..4),
            period_units in 1i64..48,
            blockers in proptest::collection::vec((0i64..48, 1i64..12), 0..6),
        ) {
            let durations: Vec<i64> = durations.iter().map(|d| d * 5).collect();
            let end = T0 + period_units * 5 * 60;
            let ids: Vec<i64> = (1..=durations.len() as i64).collect();
            let p = period(T0, end, &ids);
            let d: Vec<ServiceDuration> = ids.iter().zip(&durations).map(|(i, m)| ServiceDuration { id: AddressServiceId(*i), minutes: *m }).collect();
            let blockers: Vec<Interval> = blockers.iter().map(|(s, l)| Interval { start: ts(T0 + s * 300), end: ts(T0 + (s + l) * 300) }).collect();
            let grid = grid_minutes(&durations).unwrap() * 60;
            let slots = free_slots(&p, &d, &blockers, &everything());
            for slot in &slots {
                let s = slot.start.as_second();
                prop_assert_eq!((s - T0) % grid, 0);
                prop_assert!(!slot.services.is_empty());
                for id in &slot.services {
                    let minutes = d.iter().find(|x| x.id == *id).unwrap().minutes;
                    let iv = Interval { start: slot.start, end: ts(s + minutes * 60) };
                    prop_assert!(iv.end.as_second() <= end);
                    prop_assert!(!blockers.iter().any(|b| b.overlaps(&iv)));
                }
            }
            // Completeness: every grid start where some service fits is offered.
            let mut s = T0;
            while s + grid <= end {
                let fits = d.iter().any(|svc| {
                    let iv = Interval { start: ts(s), end: ts(s + svc.minutes * 60) };
                    iv.end.as_second() <= end && !blockers.iter().any(|b| b.overlaps(&iv))
                });
                prop_assert_eq!(fits, slots.iter().any(|x| x.start.as_second() == s));
                s += grid;
            }
        }

        /// A blocker never adds a start or a service; booking an offered
        /// start for an offered service takes away every start it covers.
        #[test]
        fn blockers_only_take_away(
            durations in proptest::collection::vec(1i64..=12, 1..4),
            period_units in 1i64..48,
            blockers in proptest::collection::vec((0i64..48, 1i64..12), 0..6),
            extra in (0i64..48, 1i64..12),
            pick in 0usize..1000,
        ) {
            let durations: Vec<i64> = durations.iter().map(|d| d * 5).collect();
            let end = T0 + period_units * 5 * 60;
            let ids: Vec<i64> = (1..=durations.len() as i64).collect();
            let p = period(T0, end, &ids);
            let d: Vec<ServiceDuration> = ids.iter().zip(&durations).map(|(i, m)| ServiceDuration { id: AddressServiceId(*i), minutes: *m }).collect();
            let mut blockers: Vec<Interval> = blockers.iter().map(|(s, l)| Interval { start: ts(T0 + s * 300), end: ts(T0 + (s + l) * 300) }).collect();
            let before = free_slots(&p, &d, &blockers, &everything());
            let more = Interval { start: ts(T0 + extra.0 * 300), end: ts(T0 + (extra.0 + extra.1) * 300) };
            let mut with_more = blockers.clone();
            with_more.push(more);
            for slot in free_slots(&p, &d, &with_more, &everything()) {
                let was = before.iter().find(|x| x.start == slot.start);
                prop_assert!(was.is_some(), "a blocker added a start");
                prop_assert!(slot.services.iter().all(|s| was.unwrap().services.contains(s)), "a blocker added a service");
            }
            if !before.is_empty() {
                let slot = &before[pick % before.len()];
                let service = slot.services[pick % slot.services.len()];
                let minutes = d.iter().find(|x| x.id == service).unwrap().minutes;
                let booking = Interval { start: slot.start, end: ts(slot.start.as_second() + minutes * 60) };
                blockers.push(booking);
                for after in free_slots(&p, &d, &blockers, &everything()) {
                    prop_assert!(!(booking.start <= after.start && after.start < booking.end), "a booked start is still offered");
                }
            }
        }

        /// Fixed slots never overlap each other or a blocker.
        #[test]
        fn fixed_slots_are_disjoint_and_free(
            slot_minutes in 1i64..=60,
            open_minutes in 1i64..600,
            blockers in proptest::collection::vec((0i64..600, 1i64..120), 0..5),
        ) {
            let open = [Interval { start: ts(T0), end: ts(T0 + open_minutes * 60) }];
            let blockers: Vec<Interval> = blockers.iter().map(|(s, l)| Interval { start: ts(T0 + s * 60), end: ts(T0 + (s + l) * 60) }).collect();
            let slots = fixed_slots(&open, slot_minutes * 60, &blockers, &everything());
            for w in slots.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for s in &slots {
                prop_assert!(open[0].contains(s));
                prop_assert!(!blockers.iter().any(|b| b.overlaps(s)));
            }
        }
    }

    /// The brute-force load at instant `t`.
    fn load_at(busy: &[Interval], t: i64) -> usize {
        busy.iter().filter(|b| b.start.as_second() <= t && t < b.end.as_second()).count()
    }

    #[test]
    fn a_waiting_room_of_two_is_full_where_two_visits_overlap() {
        let iv = |a: i64, b: i64| Interval { start: ts(T0 + a), end: ts(T0 + b) };
        let busy = [iv(0, 900), iv(600, 1500), iv(900, 1800)];
        let full = saturated(&busy, 2, &iv(0, 3600));
        assert_eq!(full, vec![iv(600, 1500)]);
        assert_eq!(saturated(&busy, 1, &iv(0, 3600)), vec![iv(0, 1800)]);
        assert!(saturated(&busy, 3, &iv(0, 3600)).is_empty());
    }

    #[test]
    fn grid_slots_start_on_the_grid_and_fit() {
        let iv = |a: i64, b: i64| Interval { start: ts(T0 + a), end: ts(T0 + b) };
        let got = grid_slots(&[iv(0, 3600)], 900, 1200, &[iv(900, 1000)], &iv(0, 3600));
        assert_eq!(got, vec![iv(1800, 3000)]);
        let later = grid_slots(&[iv(0, 3600)], 900, 900, &[], &iv(1000, 3600));
        assert_eq!(later, vec![iv(1800, 2700), iv(2700, 3600)]);
    }

    proptest! {
        /// An instant lies in a saturated part exactly when at least
        /// `capacity` busy intervals cover it.
        #[test]
        fn saturated_parts_are_where_the_load_reaches_capacity(
            raw in proptest::collection::vec((0i64..100, 1i64..30), 0..12),
            capacity in 1usize..4,
        ) {
            let busy: Vec<Interval> =
                raw.iter().map(|(s, l)| Interval { start: ts(T0 + s * 60), end: ts(T0 + (s + l) * 60) }).collect();
            let window = Interval { start: ts(T0), end: ts(T0 + 120 * 60) };
            let full = saturated(&busy, capacity, &window);
            for m in 0..120 {
                let t = T0 + m * 60 + 30;
                let inside = full.iter().any(|f| f.start.as_second() <= t && t < f.end.as_second());
                prop_assert_eq!(inside, load_at(&busy, t) >= capacity, "minute {}", m);
            }
        }
    }
}
