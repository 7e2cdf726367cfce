//! The rest of the care record: episodes of care, visit notes, attachments,
//! patient documents, conversations and messages, care locations with their
//! devices, assistance requests and report jobs.

use crate::{
    AppointmentId, AssistanceRequestId, CareLocationId, ConversationId, CoreError, DocumentId, HealthcareServiceId,
    MessageId, PatientId, PractitionerId, Uuid, VisitNoteId,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Largest attachment accepted, in bytes.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
/// Content types accepted for attachments and documents.
pub const ATTACHMENT_TYPES: [&str; 6] =
    ["application/pdf", "image/jpeg", "image/png", "image/gif", "text/plain", "application/octet-stream"];

/// Solo episode of care.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeOfCare {
    pub id: Uuid,
    pub patient_id: PatientId,
    pub status: EpisodeStatus,
    pub reason_incomplete: Option<String>,
    pub external_id: Option<String>,
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Episode status (Solo's upper-case words on input, lower-case on output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeStatus {
    Planning,
    Waitlist,
    Active,
    Onhold,
    Finished,
    Canceled,
}

impl EpisodeStatus {
    /// Parses Solo's words in any case.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "planning" => EpisodeStatus::Planning,
            "waitlist" => EpisodeStatus::Waitlist,
            "active" => EpisodeStatus::Active,
            "onhold" => EpisodeStatus::Onhold,
            "finished" => EpisodeStatus::Finished,
            "canceled" | "cancelled" => EpisodeStatus::Canceled,
            _ => return None,
        })
    }
}

/// A clinician's note on a visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VisitNote {
    pub id: VisitNoteId,
    pub appointment_id: AppointmentId,
    pub author: Option<PractitionerId>,
    pub text: String,
    pub created_at: Timestamp,
}

/// A file attached to an appointment or episode. The bytes live apart, in the
/// store's blob table; this is the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Uuid,
    pub appointment_id: Option<AppointmentId>,
    pub episode_id: Option<Uuid>,
    pub file_name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub created_at: Timestamp,
}

/// Checks an attachment's type and size before it is stored.
pub fn check_attachment(content_type: &str, size: usize) -> Result<(), CoreError> {
    if size == 0 {
        return Err(CoreError::invalid("file", "the file is empty"));
    }
    if size > MAX_ATTACHMENT_BYTES {
        return Err(CoreError::invalid("file", format!("the file is larger than {MAX_ATTACHMENT_BYTES} bytes")));
    }
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if !ATTACHMENT_TYPES.contains(&base.as_str()) {
        return Err(CoreError::invalid("content_type", format!("`{base}` is not an accepted file type")));
    }
    Ok(())
}

/// A document kept on the patient's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientDocument {
    pub id: DocumentId,
    pub patient_id: PatientId,
    pub title: String,
    pub attachment_id: Uuid,
    pub created_at: Timestamp,
}

/// A conversation (Embassy CommunicationRequest): between a patient (or its
/// representative) and a healthcare service or some of its practitioners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub healthcare_service_id: HealthcareServiceId,
    pub patient_id: PatientId,
    pub initiator: ConversationParty,
    /// The reason text that opened the conversation.
    pub subject: String,
    pub reason_code: Option<String>,
    /// The patient may answer.
    pub patient_can_reply: bool,
    pub practitioners: Vec<PractitionerId>,
    /// A representative acting for the patient, if any.
    #[serde(default)]
    pub representative: Option<Box<crate::patient::RelatedPerson>>,
    /// `active` until completed.
    #[serde(default = "active")]
    pub status: ConversationStatus,
    pub created_at: Timestamp,
}

fn active() -> ConversationStatus {
    ConversationStatus::Active
}

/// Whether a conversation takes further messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Active,
    Completed,
}

/// Who takes part in a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ConversationParty {
    Practitioner(PractitionerId),
    Patient(PatientId),
    /// A representative acting for the patient, by its contained name.
    Representative(Box<crate::patient::RelatedPerson>),
    HealthcareService(HealthcareServiceId),
}

/// A message in a conversation (Embassy Communication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub sender: ConversationParty,
    pub text: String,
    pub sent_at: Timestamp,
}

/// A care location (room, bed) with its device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareLocation {
    pub id: CareLocationId,
    pub key: String,
    pub name: String,
    pub building: Option<String>,
    pub floor: Option<String>,
    pub room: Option<String>,
    pub bed: Option<String>,
    pub department: Option<String>,
    pub device_serial: Option<String>,
}

/// A request for assistance from a care location's device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistanceRequest {
    pub id: AssistanceRequestId,
    pub care_location_id: CareLocationId,
    pub status: String,
    pub reason: Option<String>,
    pub created_at: Timestamp,
}

/// A report generation job (Solo encounter reports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportJob {
    pub id: Uuid,
    pub preset_id: Option<Uuid>,
    pub status: ReportStatus,
    pub from: Timestamp,
    pub to: Timestamp,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

/// Report job status (Solo: pending, completed, failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Pending,
    Completed,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_are_type_and_size_checked() {
        assert!(check_attachment("application/pdf", 10).is_ok());
        assert!(check_attachment("image/png; charset=binary", 10).is_ok());
        assert!(check_attachment("application/x-msdownload", 10).is_err());
        assert!(check_attachment("application/pdf", 0).is_err());
        assert!(check_attachment("application/pdf", MAX_ATTACHMENT_BYTES + 1).is_err());
    }

    #[test]
    fn episode_status_accepts_solo_words() {
        assert_eq!(EpisodeStatus::parse("ONHOLD"), Some(EpisodeStatus::Onhold));
        assert_eq!(EpisodeStatus::parse("planning"), Some(EpisodeStatus::Planning));
        assert_eq!(EpisodeStatus::parse("done"), None);
    }
}
