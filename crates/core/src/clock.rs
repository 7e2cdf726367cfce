//! The injected clock. Everything takes "now" as a value
//! read from a `Clock` at the edge, so a test clock makes time-driven behaviour exact.

use jiff::{SignedDuration, Timestamp};
use std::sync::Mutex;

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
    /// or `None` when it would leave the representable range.
    pub fn advance(&self, seconds: i64) -> Option<Timestamp> {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let next = now.checked_add(SignedDuration::from_secs(seconds)).ok()?;
        *now = next;
        Some(next)
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
