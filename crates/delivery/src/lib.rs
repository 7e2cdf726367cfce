//! Polyclinic's delivery engine: every change reaches every party that asked
//! for it.
//!
//! Commands write domain events to the outbox in their own transaction. The
//! engine then, in a loop (and at once on `POST /admin/run-due`):
//!
//! 1. **dispatches**: for each tenant, takes the events not yet fanned out,
//!    asks every [`Router`] (one per dialect that has targets) which
//!    deliveries each event causes, queues them, and marks the event
//!    dispatched, all in one transaction. Time-driven work (reminders,
//!    heartbeats, token expiry, ...) is a due job (`store::jobs`) that the
//!    router owning its kind runs, with the deliveries it causes, in one
//!    transaction;
//! 2. **sends**: in the dispatch's transaction, claims a batch from each
//!    target queue whose head is due (the run of due deliveries from the
//!    head, leased in one statement; the lease is kept alive while the batch
//!    waits for a send slot and taken afresh before a send once a second of
//!    it has passed), hands each batch in memory to a send task that sends
//!    it in order through its channel's sender (bounded concurrency across
//!    targets, a timeout per send), stops at the first failure, and records
//!    the batch's attempts in one transaction: delivered, failed with a
//!    retry scheduled (exponential backoff with jitter, or the target's own
//!    schedule), or dead when attempts are exhausted.
//!
//! Guarantees: at-least-once (a crash between send and record means a resend
//! once the lease expires); in order per target queue; a failing or slow
//! target delays only its own queue; one tenant's failing dispatch or send
//! is logged and skipped, never stopping the other tenants'.
//!
//! The engine sleeps until the next due job, delivery or lease, or until a
//! commit on this node wakes it; it visits only the tenants that have work.
//!
//! Targets registered by API clients are checked against server-side request
//! forgery when registered and at every send ([`targets`]).

pub mod engine;
pub mod housekeeping;
pub mod senders;
pub mod targets;

pub use engine::{Engine, EngineConfig, Router, RunSummary};
pub use housekeeping::Housekeeping;
pub use senders::{
    HttpSender, LocalMailer, LocalSms, Mailer, ReqwestSender, Senders, SmsGateway, SmsSender, SmtpMailer,
    install_tls_provider,
};
pub use targets::{Refused, TargetPolicy};
