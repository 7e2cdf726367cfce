//! Domain events. Every state change writes its events to the outbox in the
//! same transaction; delivery workers fan them out to every subscriber of
//! every dialect of the tenant.

use serde::{Deserialize, Serialize};

/// What happened. The names are stable: they are stored in the outbox and
/// shown in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    AppointmentCreated,
    /// Time, participants or details changed (reschedules included).
    AppointmentUpdated,
    AppointmentRescheduled,
    AppointmentCancelled,
    AppointmentCompleted,
    AppointmentStatusChanged,
    AppointmentConfirmed,
    PresenceMarked,
    PresenceRemoved,
    /// Docplanner: the office asked for the patient's opinion of a visit.
    OpinionRequested,
    PatientCreated,
    PatientUpdated,
    ConversationCreated,
    MessageCreated,
    BreakCreated,
    BreakMoved,
    BreakRemoved,
    AddressServiceCreated,
    AddressServiceChanged,
    AddressServiceDeleted,
    SlotsReplaced,
    AddressAssigned,
    AddressUnassigned,
    /// An address's Docplanner `commercial_type` changed.
    AddressCommercialTypeChanged,
    EpisodeCreated,
    EpisodeUpdated,
    AssistanceRequested,
    ReportCompleted,
}

impl EventKind {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AppointmentCreated => "AppointmentCreated",
            EventKind::AppointmentUpdated => "AppointmentUpdated",
            EventKind::AppointmentRescheduled => "AppointmentRescheduled",
            EventKind::AppointmentCancelled => "AppointmentCancelled",
            EventKind::AppointmentCompleted => "AppointmentCompleted",
            EventKind::AppointmentStatusChanged => "AppointmentStatusChanged",
            EventKind::AppointmentConfirmed => "AppointmentConfirmed",
            EventKind::PresenceMarked => "PresenceMarked",
            EventKind::PresenceRemoved => "PresenceRemoved",
            EventKind::OpinionRequested => "OpinionRequested",
            EventKind::PatientCreated => "PatientCreated",
            EventKind::PatientUpdated => "PatientUpdated",
            EventKind::ConversationCreated => "ConversationCreated",
            EventKind::MessageCreated => "MessageCreated",
            EventKind::BreakCreated => "BreakCreated",
            EventKind::BreakMoved => "BreakMoved",
            EventKind::BreakRemoved => "BreakRemoved",
            EventKind::AddressServiceCreated => "AddressServiceCreated",
            EventKind::AddressServiceChanged => "AddressServiceChanged",
            EventKind::AddressServiceDeleted => "AddressServiceDeleted",
            EventKind::SlotsReplaced => "SlotsReplaced",
            EventKind::AddressAssigned => "AddressAssigned",
            EventKind::AddressUnassigned => "AddressUnassigned",
            EventKind::AddressCommercialTypeChanged => "AddressCommercialTypeChanged",
            EventKind::EpisodeCreated => "EpisodeCreated",
            EventKind::EpisodeUpdated => "EpisodeUpdated",
            EventKind::AssistanceRequested => "AssistanceRequested",
            EventKind::ReportCompleted => "ReportCompleted",
        }
    }
}

/// An event as a command produces it, before the outbox numbers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    /// The aggregate the event is about (`appointment`, `patient`, ...).
    pub aggregate: &'static str,
    pub aggregate_id: String,
    /// Event-specific data: ids and what changed, never secrets.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event about `aggregate` `id`.
    pub fn new(kind: EventKind, aggregate: &'static str, id: impl ToString, data: serde_json::Value) -> Self {
        NewEvent { kind, aggregate, aggregate_id: id.to_string(), data }
    }
}
