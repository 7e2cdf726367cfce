//! Polyclinic's scheduling core: the domain types every dialect speaks about and
//! the rules that hold for all of them.
//!
//! This crate has no IO and no async. Time comes in as a parameter ("now" is a
//! [`jiff::Timestamp`] handed in by the caller), so every rule here is a plain
//! function that unit and property tests call directly.
//!
//! Layout, one module per aggregate:
//! - [`tenant`]: tenants, their settings and per-dialect credentials;
//! - [`practitioner`], [`service`], [`facility`]: who works where and what is offered;
//! - [`schedule`] and [`slots`]: work periods, calendar breaks and slot splitting;
//! - [`patient`]: patients and related persons;
//! - [`appointment`] and [`status`]: appointments, participants, video access and
//!   the one status machine with its mapping to each dialect's vocabulary;
//! - [`care`]: episodes of care, visit notes, attachments, documents, conversations,
//!   care locations, assistance requests and report jobs;
//! - [`event`]: the domain events written to the outbox;
//! - [`clock`]: the injected source of "now" (system or settable test clock);
//! - [`error`]: the domain errors every dialect maps to its own wire format.

pub mod appointment;
pub mod care;
pub mod clock;
pub mod delay;
pub mod error;
pub mod event;
pub mod facility;
pub mod ids;
pub mod patient;
pub mod practitioner;
pub mod schedule;
pub mod service;
pub mod slots;
pub mod status;
pub mod tenant;
pub mod text;
pub mod time_rules;

pub use error::{CoreError, CoreResult};
pub use ids::*;
