//! Domain events. Every state change writes its events to the outbox in the
//! same transaction; delivery workers fan them out to every subscriber of
//! every dialect of the tenant.

use serde::{Deserialize, Serialize};

/// What happened. The names are stable: they are stored in the outbox and
/// shown in the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    AppointmentCreated,
    /// Participants or details changed (not the time: see `AppointmentMoved`).
    AppointmentUpdated,
    /// No longer written: a change of time is one `AppointmentMoved`. Kept so
    /// that events stored by earlier versions still read.
    AppointmentRescheduled,
    /// A booking got a new time: rescheduled in place (data `previous_start`,
    /// `previous_end`), or moved the Docplanner way to a new booking that
    /// replaces the old one (the event is about the new booking; data
    /// `moved_from` names the old one, now cancelled). The one event of a
    /// change of time, which every dialect's targets tell in their own words.
    AppointmentMoved,
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
    /// Every kind, for reading stored names back.
    pub const ALL: [EventKind; 29] = [
        EventKind::AppointmentCreated,
        EventKind::AppointmentUpdated,
        EventKind::AppointmentRescheduled,
        EventKind::AppointmentMoved,
        EventKind::AppointmentCancelled,
        EventKind::AppointmentCompleted,
        EventKind::AppointmentStatusChanged,
        EventKind::AppointmentConfirmed,
        EventKind::PresenceMarked,
        EventKind::PresenceRemoved,
        EventKind::OpinionRequested,
        EventKind::PatientCreated,
        EventKind::PatientUpdated,
        EventKind::ConversationCreated,
        EventKind::MessageCreated,
        EventKind::BreakCreated,
        EventKind::BreakMoved,
        EventKind::BreakRemoved,
        EventKind::AddressServiceCreated,
        EventKind::AddressServiceChanged,
        EventKind::AddressServiceDeleted,
        EventKind::SlotsReplaced,
        EventKind::AddressAssigned,
        EventKind::AddressUnassigned,
        EventKind::AddressCommercialTypeChanged,
        EventKind::EpisodeCreated,
        EventKind::EpisodeUpdated,
        EventKind::AssistanceRequested,
        EventKind::ReportCompleted,
    ];

    /// The kind of a stored name ([`EventKind::as_str`] read back).
    pub fn parse(name: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AppointmentCreated => "AppointmentCreated",
            EventKind::AppointmentUpdated => "AppointmentUpdated",
            EventKind::AppointmentRescheduled => "AppointmentRescheduled",
            EventKind::AppointmentMoved => "AppointmentMoved",
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

#[cfg(test)]
mod kind_tests {
    use super::EventKind;

    #[test]
    fn every_kind_reads_back_from_its_name_and_serde_agrees() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.as_str()));
        }
        assert_eq!(EventKind::parse("NoSuchEvent"), None);
    }
}
