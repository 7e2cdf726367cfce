//! The time rules of a new or moved appointment, the same in every dialect:
//! the start before the end, a duration between the tenant's minimum and
//! maximum, a start at least the tenant's booking notice from now and at most
//! its booking horizon ahead, and both ends within the supported time range.
//! They hold on create and on every change of time; each dialect answers a
//! broken rule in its own words (its mapping table names the code).
//!
//! The same rules bound what availability offers: [`bookable_starts`] is the
//! window of starts that a booking made now may use.

use crate::clock::in_range;
use crate::schedule::Interval;
use crate::tenant::TenantSettings;
use jiff::{SignedDuration, Timestamp};
use std::fmt;

/// Longest appointment any tenant may allow, in minutes.
pub const LONGEST_MINUTES: i64 = 24 * 60;
/// Furthest booking horizon any tenant may set, in days.
pub const FURTHEST_HORIZON_DAYS: i64 = 3660;

/// A broken time rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRule {
    /// A start or end outside the supported time range (years 1900 to 9000).
    OutOfRange,
    /// The end is not after the start.
    EndNotAfterStart,
    /// Shorter than the tenant's minimum duration.
    TooShort { min_minutes: i64 },
    /// Longer than the tenant's maximum duration.
    TooLong { max_minutes: i64 },
    /// The start is not in the future.
    InThePast,
    /// The start is in the future, but closer than the tenant's booking notice.
    TooSoon { notice_minutes: i64 },
    /// The start is further ahead than the tenant's booking horizon.
    TooFarAhead { horizon_days: i64 },
}

impl fmt::Display for TimeRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeRule::OutOfRange => {
                write!(f, "times must lie between {} and {}", crate::clock::EARLIEST, crate::clock::LATEST)
            }
            TimeRule::EndNotAfterStart => f.write_str("the end must come after the start"),
            TimeRule::TooShort { min_minutes } => {
                write!(f, "an appointment must last at least {min_minutes} minute(s)")
            }
            TimeRule::TooLong { max_minutes } => {
                write!(f, "an appointment must not last more than {max_minutes} minutes")
            }
            TimeRule::InThePast => f.write_str("the start must be in the future"),
            TimeRule::TooSoon { notice_minutes } => {
                write!(f, "appointments must start at least {notice_minutes} minutes from now")
            }
            TimeRule::TooFarAhead { horizon_days } => {
                write!(f, "appointments must start at most {horizon_days} days from now")
            }
        }
    }
}

impl std::error::Error for TimeRule {}

impl From<TimeRule> for crate::CoreError {
    fn from(rule: TimeRule) -> Self {
        match rule {
            TimeRule::TooSoon { .. } | TimeRule::TooFarAhead { .. } | TimeRule::InThePast => {
                crate::CoreError::PolicyViolation(rule.to_string())
            }
            _ => crate::CoreError::invalid("end", rule.to_string()),
        }
    }
}

/// The shortest duration the tenant accepts, in minutes (at least one).
pub fn min_minutes(settings: &TenantSettings) -> i64 {
    settings.min_duration_minutes.max(1)
}

/// The longest duration the tenant accepts, in minutes.
pub fn max_minutes(settings: &TenantSettings) -> i64 {
    settings.max_duration_minutes.clamp(min_minutes(settings), LONGEST_MINUTES)
}

/// The starts a booking made at `now` may use: from the booking notice (and
/// never before now) to the horizon.
pub fn bookable_starts(settings: &TenantSettings, now: Timestamp) -> Interval {
    let notice = SignedDuration::from_mins(settings.min_booking_notice_minutes.max(0));
    let horizon = SignedDuration::from_hours(24 * settings.booking_horizon_days.clamp(0, FURTHEST_HORIZON_DAYS));
    let start = now.checked_add(notice).unwrap_or(crate::clock::LATEST).min(crate::clock::LATEST);
    let end = now.checked_add(horizon).unwrap_or(crate::clock::LATEST).min(crate::clock::LATEST);
    Interval { start, end: end.max(start) }
}

/// Checks the time of a new appointment, or the new time of a moved one.
pub fn check(interval: &Interval, settings: &TenantSettings, now: Timestamp) -> Result<(), TimeRule> {
    if !in_range(interval.start) || !in_range(interval.end) {
        return Err(TimeRule::OutOfRange);
    }
    if interval.end <= interval.start {
        return Err(TimeRule::EndNotAfterStart);
    }
    let minutes = interval.seconds() / 60;
    let (min, max) = (min_minutes(settings), max_minutes(settings));
    if interval.seconds() < min * 60 {
        return Err(TimeRule::TooShort { min_minutes: min });
    }
    if minutes > max || (minutes == max && interval.seconds() % 60 != 0) {
        return Err(TimeRule::TooLong { max_minutes: max });
    }
    if interval.start <= now {
        return Err(TimeRule::InThePast);
    }
    let window = bookable_starts(settings, now);
    if interval.start < window.start {
        return Err(TimeRule::TooSoon { notice_minutes: settings.min_booking_notice_minutes });
    }
    if interval.start > window.end {
        return Err(TimeRule::TooFarAhead { horizon_days: settings.booking_horizon_days });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn iv(start: &str, end: &str) -> Interval {
        Interval { start: ts(start), end: ts(end) }
    }

    #[test]
    fn each_rule_in_turn() {
        let s = TenantSettings {
            min_booking_notice_minutes: 60,
            min_duration_minutes: 10,
            max_duration_minutes: 120,
            booking_horizon_days: 30,
            ..Default::default()
        };
        let now = ts("2030-01-01T08:00:00Z");
        assert_eq!(check(&iv("2030-01-01T10:00:00Z", "2030-01-01T10:15:00Z"), &s, now), Ok(()));
        assert_eq!(
            check(&iv("2030-01-01T10:00:00Z", "2030-01-01T10:00:00Z"), &s, now),
            Err(TimeRule::EndNotAfterStart)
        );
        assert_eq!(
            check(&iv("2030-01-01T10:00:00Z", "2030-01-01T10:05:00Z"), &s, now),
            Err(TimeRule::TooShort { min_minutes: 10 })
        );
        assert_eq!(
            check(&iv("2030-01-01T10:00:00Z", "2030-01-01T12:01:00Z"), &s, now),
            Err(TimeRule::TooLong { max_minutes: 120 })
        );
        assert_eq!(check(&iv("2030-01-01T10:00:00Z", "2030-01-01T12:00:00Z"), &s, now), Ok(()), "the maximum itself");
        assert_eq!(check(&iv("2030-01-01T07:00:00Z", "2030-01-01T07:15:00Z"), &s, now), Err(TimeRule::InThePast));
        assert_eq!(
            check(&iv("2030-01-01T08:30:00Z", "2030-01-01T08:45:00Z"), &s, now),
            Err(TimeRule::TooSoon { notice_minutes: 60 })
        );
        assert_eq!(
            check(&iv("2030-02-01T08:00:01Z", "2030-02-01T08:15:01Z"), &s, now),
            Err(TimeRule::TooFarAhead { horizon_days: 30 })
        );
        assert_eq!(check(&iv("2030-01-31T08:00:00Z", "2030-01-31T08:15:00Z"), &s, now), Ok(()), "the horizon itself");
        assert_eq!(check(&iv("9500-12-30T23:00:00Z", "9500-12-30T23:15:00Z"), &s, now), Err(TimeRule::OutOfRange));
    }

    #[test]
    fn the_defaults_allow_a_day_long_visit_two_years_ahead() {
        let s = TenantSettings::default();
        let now = ts("2030-01-01T08:00:00Z");
        assert_eq!(check(&iv("2031-12-31T08:00:00Z", "2032-01-01T08:00:00Z"), &s, now), Ok(()));
        assert_eq!(
            check(&iv("2032-01-02T08:00:00Z", "2032-01-02T08:15:00Z"), &s, now),
            Err(TimeRule::TooFarAhead { horizon_days: 730 })
        );
        assert_eq!(
            check(&iv("2031-01-01T08:00:00Z", "2031-01-02T08:01:00Z"), &s, now),
            Err(TimeRule::TooLong { max_minutes: 1440 })
        );
    }

    proptest! {
        /// Whatever the settings and the times, a start that passes lies in
        /// the bookable window, and the window never reaches back before now.
        #[test]
        fn what_passes_lies_in_the_bookable_window(
            notice in 0i64..10_000, horizon in 0i64..4000, start in -100_000i64..100_000_000, minutes in -10i64..2000
        ) {
            let s = TenantSettings { min_booking_notice_minutes: notice, booking_horizon_days: horizon, ..Default::default() };
            let now = ts("2030-01-01T00:00:00Z");
            let window = bookable_starts(&s, now);
            prop_assert!(window.start >= now && window.end >= window.start);
            let start = now + SignedDuration::from_secs(start);
            let i = Interval { start, end: start + SignedDuration::from_mins(minutes) };
            if check(&i, &s, now).is_ok() {
                prop_assert!(i.start >= window.start && i.start <= window.end && i.start > now);
            }
        }
    }
}
