//! Schedules: time intervals, work periods (when an address takes bookings and
//! for which services) and calendar breaks.

use crate::{AddressId, AddressServiceId, CalendarBreakId, CoreError};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// A half-open time interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    /// An interval; `start` must come before `end`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Self, CoreError> {
        if start >= end {
            return Err(CoreError::invalid("end", "the end must come after the start"));
        }
        Ok(Interval { start, end })
    }

    /// Whether the two intervals share at least one instant. Touching
    /// intervals (`a.end == b.start`) do not overlap.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Length in whole seconds.
    pub fn seconds(&self) -> i64 {
        self.end.as_second() - self.start.as_second()
    }
}

/// A work period: an address takes bookings for the listed services within it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkPeriod {
    pub address_id: AddressId,
    pub interval: Interval,
    pub address_services: Vec<AddressServiceId>,
    /// The visit length of each service in this period (Docplanner's
    /// `address_services[].duration`), which the slot grid is cut from.
    #[serde(default)]
    pub durations: Vec<crate::slots::ServiceDuration>,
}

/// A calendar break: no slots are offered while it lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarBreak {
    pub id: CalendarBreakId,
    pub address_id: AddressId,
    pub interval: Interval,
    pub description: Option<String>,
    /// Breaks created together on a doctor's coupled addresses (Docplanner
    /// `apply_on_coupled_addresses`) share this group, the id of the break
    /// the client asked for; they are moved and removed together.
    #[serde(default)]
    pub coupled_group: Option<CalendarBreakId>,
}

/// Whether `interval` starts and ends on the same local calendar day in `tz`
/// (ending exactly at the next midnight counts as the same day).
pub fn within_one_day(interval: &Interval, tz: &jiff::tz::TimeZone) -> bool {
    let start = interval.start.to_zoned(tz.clone());
    let last = interval.end.as_second() - 1;
    match Timestamp::from_second(last) {
        Ok(t) => t.to_zoned(tz.clone()).date() == start.date(),
        Err(_) => false,
    }
}

/// Whether an instant is on a whole minute (Embassy's precision).
pub fn is_whole_minute(t: Timestamp) -> bool {
    t.subsec_nanosecond() == 0 && t.as_second().rem_euclid(60) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let a = Interval::new(ts("2030-01-01T08:00:00Z"), ts("2030-01-01T09:00:00Z")).unwrap();
        let b = Interval::new(ts("2030-01-01T09:00:00Z"), ts("2030-01-01T10:00:00Z")).unwrap();
        let c = Interval::new(ts("2030-01-01T08:59:00Z"), ts("2030-01-01T09:01:00Z")).unwrap();
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c) && b.overlaps(&c));
        assert!(Interval::new(ts("2030-01-01T09:00:00Z"), ts("2030-01-01T09:00:00Z")).is_err());
    }

    #[test]
    fn day_boundary_is_local() {
        let tz = jiff::tz::TimeZone::get("Europe/Warsaw").unwrap();
        // 22:00Z..23:00Z on 1 June is 00:00..01:00 local on 2 June: one day.
        let a = Interval::new(ts("2030-06-01T22:00:00Z"), ts("2030-06-01T23:00:00Z")).unwrap();
        assert!(within_one_day(&a, &tz));
        // 21:00Z..22:30Z crosses local midnight.
        let b = Interval::new(ts("2030-06-01T21:00:00Z"), ts("2030-06-01T22:30:00Z")).unwrap();
        assert!(!within_one_day(&b, &tz));
        // Ending exactly at local midnight stays on the day.
        let c = Interval::new(ts("2030-06-01T20:00:00Z"), ts("2030-06-01T22:00:00Z")).unwrap();
        assert!(within_one_day(&c, &tz));
    }
}
