//! The rest of the care record: episodes of care, attachments and patient
//! documents (the rules every file obeys), conversations and messages, and
//! care locations with their devices. (Visit notes, assistance requests and
//! report jobs have no rule of their own yet: the Solo dialect and its
//! store modules hold them.)

use crate::{
    AppointmentId, CareLocationId, ConversationId, CoreError, HealthcareServiceId, MessageId, PatientId,
    PractitionerId, Uuid,
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Largest attachment or patient document accepted, in bytes: Solo's
/// "5Mb", read as 5 MiB.
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;
/// The file types accepted for attachments and patient documents (Solo's
/// five, in its order). Each is checked against the file's content: the
/// three PDF names need PDF content, `image/png` PNG, `image/jpeg` JPEG.
pub const ATTACHMENT_TYPES: [&str; 5] =
    ["application/pdf", "application/x-pdf", "image/pdf", "image/png", "image/jpeg"];

/// Longest episode `name` and `type`, in characters.
pub const MAX_EPISODE_LABEL: usize = crate::text::MAX_SHORT;
/// Longest episode `objective` and `reasonIncomplete`, in characters.
pub const MAX_EPISODE_TEXT: usize = crate::text::MAX_TEXT;

/// An episode of care (Solo): a patient's course of care over a span of
/// days, which appointments may belong to (`Appointment::episode_id`).
/// Everything but its id, patient and instants is patient data (kept sealed
/// by the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeOfCare {
    pub id: Uuid,
    pub patient_id: PatientId,
    pub name: String,
    /// Solo's "predefined string" `type`: a short free text (the document
    /// lists no set).
    pub kind: String,
    /// The first day.
    pub from: jiff::civil::Date,
    /// The last day, if known; never before `from`.
    pub to: Option<jiff::civil::Date>,
    pub status: EpisodeStatus,
    pub objective: Option<String>,
    /// Why the episode did not complete.
    pub reason_incomplete: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl EpisodeOfCare {
    /// Checks the rules every episode keeps: a name and a type that are not
    /// blank and not too long, texts within their limits, and `to` not
    /// before `from`.
    pub fn check(&self) -> Result<(), CoreError> {
        for (field, value) in [("name", &self.name), ("type", &self.kind)] {
            if value.trim().is_empty() {
                return Err(CoreError::invalid(field, "must not be blank"));
            }
            crate::text::check_len(field, value, MAX_EPISODE_LABEL)?;
        }
        for (field, value) in [("objective", &self.objective), ("reasonIncomplete", &self.reason_incomplete)] {
            if let Some(v) = value {
                crate::text::check_len(field, v, MAX_EPISODE_TEXT)?;
            }
        }
        if let Some(to) = self.to
            && to < self.from
        {
            return Err(CoreError::invalid("to", format!("{to} is before `from` ({})", self.from)));
        }
        Ok(())
    }

    /// Whether `other` says the same as this episode (its instants aside).
    pub fn same_content(&self, other: &EpisodeOfCare) -> bool {
        let strip = |e: &EpisodeOfCare| EpisodeOfCare {
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            ..e.clone()
        };
        strip(self) == strip(other)
    }
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
    /// Every status, in Solo's order.
    pub const ALL: [EpisodeStatus; 6] = [
        EpisodeStatus::Planning,
        EpisodeStatus::Waitlist,
        EpisodeStatus::Active,
        EpisodeStatus::Onhold,
        EpisodeStatus::Finished,
        EpisodeStatus::Canceled,
    ];

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

    /// The lower-case word Solo answers (`planning`, `onhold`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeStatus::Planning => "planning",
            EpisodeStatus::Waitlist => "waitlist",
            EpisodeStatus::Active => "active",
            EpisodeStatus::Onhold => "onhold",
            EpisodeStatus::Finished => "finished",
            EpisodeStatus::Canceled => "canceled",
        }
    }
}

/// A file attached to an appointment (`appointment_id`), or kept on a
/// patient's record as a patient document (`patient_id` and no
/// appointment). The bytes live apart, in the store's blob store; this is
/// the metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: Uuid,
    pub appointment_id: Option<AppointmentId>,
    /// The patient: of the appointment, or whose document this is.
    pub patient_id: Option<PatientId>,
    /// The name shown to people (Solo's `title`: the uploaded file name).
    pub title: String,
    /// The file's type: one of [`ATTACHMENT_TYPES`], or
    /// [`PatientDocument::MIME_TYPE`] for a questionnaire.
    pub mime_type: String,
    pub size: u64,
    /// When the document itself is dated (a questionnaire's `dateTime`),
    /// if that is not the upload.
    pub dated: Option<Timestamp>,
    /// Deleted: the row is kept, the file leaves every listing.
    pub deleted: bool,
    pub created_at: Timestamp,
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    /// No type was declared.
    #[error("the file's type is missing")]
    NoType,
    /// The declared type is not one of [`ATTACHMENT_TYPES`].
    #[error("the file type `{0}` is not accepted")]
    UnsupportedType(String),
    /// No bytes.
    #[error("the file is empty")]
    Empty,
    /// More than [`MAX_ATTACHMENT_BYTES`].
    #[error("the file is larger than {MAX_ATTACHMENT_BYTES} bytes")]
    TooLarge,
    /// The bytes are not of the declared type (a PNG sent as a PDF);
    /// `found` is what they look like, when that is known.
    #[error("the file's content is not {declared}")]
    ContentMismatch { declared: &'static str, found: Option<&'static str> },
}

impl From<AttachmentError> for CoreError {
    fn from(e: AttachmentError) -> Self {
        CoreError::invalid("file", e.to_string())
    }
}

/// Checks a file before it is stored: its declared type (`content_type`,
/// parameters and case ignored) is one of [`ATTACHMENT_TYPES`], it has
/// bytes and at most [`MAX_ATTACHMENT_BYTES`] of them, and its content is
/// of that type by its magic bytes. Answers the type's canonical name.
pub fn check_attachment(content_type: &str, bytes: &[u8]) -> Result<&'static str, AttachmentError> {
    let base = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if base.is_empty() {
        return Err(AttachmentError::NoType);
    }
    let declared =
        ATTACHMENT_TYPES.iter().copied().find(|t| *t == base).ok_or(AttachmentError::UnsupportedType(base))?;
    if bytes.is_empty() {
        return Err(AttachmentError::Empty);
    }
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(AttachmentError::TooLarge);
    }
    let fits = match declared {
        "image/png" => infer::image::is_png(bytes),
        "image/jpeg" => infer::image::is_jpeg(bytes),
        _ => infer::archive::is_pdf(bytes),
    };
    if !fits {
        return Err(AttachmentError::ContentMismatch { declared, found: infer::get(bytes).map(|t| t.mime_type()) });
    }
    Ok(declared)
}

/// A questionnaire kept on the patient's record (Solo's patient document):
/// its name, when it was filled in, and its answers. It is stored as a file
/// of type [`PatientDocument::MIME_TYPE`] holding this struct's JSON
/// (`{"name", "dateTime" (unix seconds), "responses": [{"question",
/// "response"}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientDocument {
    pub name: String,
    #[serde(with = "jiff::fmt::serde::timestamp::second::required")]
    pub date_time: Timestamp,
    pub responses: Vec<DocumentResponse>,
}

/// One answer of a [`PatientDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentResponse {
    pub question: String,
    pub response: String,
}

impl PatientDocument {
    /// The type a questionnaire is stored as.
    pub const MIME_TYPE: &'static str = "application/json";
    /// Most answers of one questionnaire.
    pub const MAX_RESPONSES: usize = 1000;

    /// Checks the questionnaire and answers its stored form (JSON bytes, at
    /// most [`MAX_ATTACHMENT_BYTES`]): a name (not blank, at most
    /// [`crate::text::MAX_SHORT`] characters), each question not blank and
    /// each question and answer at most [`crate::text::MAX_TEXT`].
    pub fn to_file(&self) -> Result<Vec<u8>, CoreError> {
        use crate::text::{MAX_SHORT, MAX_TEXT, check_len};
        if self.name.trim().is_empty() {
            return Err(CoreError::invalid("name", "This value should not be blank."));
        }
        check_len("name", &self.name, MAX_SHORT)?;
        if self.responses.len() > Self::MAX_RESPONSES {
            return Err(CoreError::invalid("responses", format!("at most {} responses", Self::MAX_RESPONSES)));
        }
        for (i, r) in self.responses.iter().enumerate() {
            if r.question.trim().is_empty() {
                return Err(CoreError::invalid(format!("responses[{i}].question"), "This value should not be blank."));
            }
            check_len(&format!("responses[{i}].question"), &r.question, MAX_TEXT)?;
            check_len(&format!("responses[{i}].response"), &r.response, MAX_TEXT)?;
        }
        let bytes = serde_json::to_vec(self).map_err(|e| CoreError::invalid("document", e.to_string()))?;
        if bytes.len() > MAX_ATTACHMENT_BYTES {
            return Err(AttachmentError::TooLarge.into());
        }
        Ok(bytes)
    }
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
    /// The MRN of the patient in this bed, if any (Solo assistance requests
    /// addressed by patient MRN find the location this way).
    #[serde(default)]
    pub patient_mrn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PDF: &[u8] = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn the_five_types_are_accepted_with_their_content() {
        for t in ["application/pdf", "application/x-pdf", "image/pdf"] {
            assert_eq!(check_attachment(t, PDF), Ok(t));
        }
        assert_eq!(check_attachment("image/png", PNG), Ok("image/png"));
        assert_eq!(check_attachment("image/jpeg", JPEG), Ok("image/jpeg"));
        // Parameters and case do not matter.
        assert_eq!(check_attachment("Image/PNG; charset=binary", PNG), Ok("image/png"));
    }

    #[test]
    fn other_types_are_refused() {
        for t in ["text/plain", "image/gif", "application/octet-stream", "image/jpg", "pdf"] {
            assert_eq!(check_attachment(t, PDF), Err(AttachmentError::UnsupportedType(t.into())));
        }
        assert_eq!(check_attachment("", PDF), Err(AttachmentError::NoType));
        assert_eq!(check_attachment(" ; x=y", PDF), Err(AttachmentError::NoType));
    }

    #[test]
    fn the_content_must_be_of_the_declared_type() {
        assert_eq!(
            check_attachment("application/pdf", PNG),
            Err(AttachmentError::ContentMismatch { declared: "application/pdf", found: Some("image/png") })
        );
        assert!(matches!(check_attachment("image/png", JPEG), Err(AttachmentError::ContentMismatch { .. })));
        assert!(matches!(check_attachment("image/jpeg", PDF), Err(AttachmentError::ContentMismatch { .. })));
        assert_eq!(
            check_attachment("image/pdf", b"hello"),
            Err(AttachmentError::ContentMismatch { declared: "image/pdf", found: None })
        );
    }

    #[test]
    fn the_size_is_one_byte_to_five_mebibytes() {
        assert_eq!(check_attachment("application/pdf", b""), Err(AttachmentError::Empty));
        let mut big = PDF.to_vec();
        big.resize(MAX_ATTACHMENT_BYTES, b' ');
        assert!(check_attachment("application/pdf", &big).is_ok());
        big.push(b' ');
        assert_eq!(check_attachment("application/pdf", &big), Err(AttachmentError::TooLarge));
        assert_eq!(MAX_ATTACHMENT_BYTES, 5_242_880);
    }

    #[test]
    fn a_questionnaire_is_checked_and_stored_as_json() {
        let doc = PatientDocument {
            name: "intake".into(),
            date_time: Timestamp::from_second(1_510_367_140).unwrap(),
            responses: vec![DocumentResponse { question: "q1".into(), response: "".into() }],
        };
        let bytes = doc.to_file().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"name": "intake", "dateTime": 1_510_367_140,
                               "responses": [{"question": "q1", "response": ""}]})
        );
        let blank = PatientDocument { name: " ".into(), ..doc.clone() };
        assert!(matches!(blank.to_file(), Err(CoreError::Invalid { field, .. }) if field == "name"));
        let mut no_question = doc.clone();
        no_question.responses[0].question = String::new();
        assert!(
            matches!(no_question.to_file(), Err(CoreError::Invalid { field, .. }) if field == "responses[0].question")
        );
    }

    #[test]
    fn episode_status_accepts_solo_words() {
        assert_eq!(EpisodeStatus::parse("ONHOLD"), Some(EpisodeStatus::Onhold));
        assert_eq!(EpisodeStatus::parse("planning"), Some(EpisodeStatus::Planning));
        assert_eq!(EpisodeStatus::parse("done"), None);
        for s in EpisodeStatus::ALL {
            assert_eq!(EpisodeStatus::parse(&s.as_str().to_ascii_uppercase()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(s.as_str()));
        }
    }

    fn episode() -> EpisodeOfCare {
        EpisodeOfCare {
            id: "bd43a830-6c0b-4120-b5b8-78a117f8ee02".parse().unwrap(),
            patient_id: PatientId(1),
            name: "covid care".into(),
            kind: "covid".into(),
            from: jiff::civil::date(2023, 3, 29),
            to: Some(jiff::civil::date(2023, 3, 29)),
            status: EpisodeStatus::Planning,
            objective: None,
            reason_incomplete: None,
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn an_episode_ends_no_earlier_than_it_starts_and_has_a_name_and_type() {
        assert!(episode().check().is_ok());
        let early = EpisodeOfCare { to: Some(jiff::civil::date(2023, 3, 28)), ..episode() };
        assert!(matches!(early.check(), Err(CoreError::Invalid { field, .. }) if field == "to"));
        let blank = EpisodeOfCare { name: " ".into(), ..episode() };
        assert!(matches!(blank.check(), Err(CoreError::Invalid { field, .. }) if field == "name"));
        let long = EpisodeOfCare { kind: "x".repeat(MAX_EPISODE_LABEL + 1), ..episode() };
        assert!(matches!(long.check(), Err(CoreError::Invalid { field, .. }) if field == "type"));
        let later = EpisodeOfCare { updated_at: Timestamp::MAX, ..episode() };
        assert!(later.same_content(&episode()));
        assert!(!EpisodeOfCare { status: EpisodeStatus::Active, ..episode() }.same_content(&episode()));
    }
}
