//! The clock lives in the core (so the delivery engine shares it); re-exported here.

pub use polyclinic_core::clock::{Clock, SystemClock, TestClock};
