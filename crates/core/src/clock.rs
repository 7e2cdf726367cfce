//! The injected clock. Everything takes "now" as a value
//! read from a `Clock` at the edge, so a test clock makes time-driven behaviour exact.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

/// The earliest instant Polyclinic takes from a client, or sets its test
/// clock to: 1900-01-01T00:00:00Z.
pub const EARLIEST: Timestamp = Timestamp::constant(-2_208_988_800, 0);

/// The latest such instant: 9000-12-31T23:59:59Z. Far enough from the end of
/// what an instant can hold (9999) that every delay the server adds (a visit
/// length, a retry, a token's life, twelve weeks of calendar) stays
/// representable.
pub const LATEST: Timestamp = Timestamp::constant(221_876_927_999, 0);

/// Whether `t` lies in the supported range [`EARLIEST`]..=[`LATEST`].
pub fn in_range(t: Timestamp) -> bool {
    (EARLIEST..=LATEST).contains(&t)
}

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    /// The current instant, truncated to whole seconds.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        Timestamp::from_second(now.as_second()).unwrap_or(now)
    }
}

/// A clock that stands still until set or advanced (`--test-clock`).
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<Timestamp>,
}

impl TestClock {
    /// A test clock starting at `start`.
    pub fn new(start: Timestamp) -> Self {
        TestClock { now: Mutex::new(start) }
    }

    /// Sets "now" (backwards too).
    pub fn set(&self, t: Timestamp) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    /// Moves "now" by `seconds` (negative moves back); answers the new "now",
    /// or `None` (and stays) when it would leave the supported range
    /// ([`in_range`]).
    pub fn advance(&self, seconds: i64) -> Option<Timestamp> {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let next = now.checked_add(SignedDuration::from_secs(seconds)).ok().filter(|t| in_range(*t))?;
        *now = next;
        Some(next)
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supported_range_is_years_1900_to_9000() {
        assert_eq!(EARLIEST.to_string(), "1900-01-01T00:00:00Z");
        assert_eq!(LATEST.to_string(), "9000-12-31T23:59:59Z");
        assert!(in_range(EARLIEST) && in_range(LATEST));
        assert!(!in_range(Timestamp::MAX) && !in_range(Timestamp::MIN));
    }

    #[test]
    fn advancing_out_of_the_supported_range_is_refused() {
        let clock = TestClock::new(LATEST);
        assert_eq!(clock.advance(1), None);
        assert_eq!(clock.advance(i64::MAX), None);
        assert_eq!(clock.now(), LATEST, "a refused advance leaves the clock");
        assert_eq!(clock.advance(-1), Some(LATEST - SignedDuration::from_secs(1)));
        assert_eq!(TestClock::new(EARLIEST).advance(i64::MIN), None);
    }
}
