//! The scheduling layer: what every dialect calls to change appointments,
//! below the dialects and above the store. Dialects translate; this layer
//! decides; the store persists.
//!
//! Modules: [`gate`] (real-time approvals that a booking from any dialect
//! passes before it lands), [`patients`] (patient matching), [`video`]
//! (whether a visit is digital, and its per-participant keys).

pub mod gate;
pub mod patients;
pub mod video;

pub use gate::{BookingGate, Gates, Proposal};
