//! Appointments (Docplanner: bookings; Solo: appointments/encounters).

use crate::patient::RelatedPerson;
use crate::schedule::Interval;
use crate::status::AppointmentStatus;
use crate::tenant::{Dialect, TenantSettings};
use crate::text::{MAX_TEXT, check_len};
use crate::{
    AddressId, AddressServiceId, AppointmentId, CoreError, HealthcareServiceId, InsurancePlanId, InsuranceProviderId,
    PatientId, PractitionerId, Uuid,
};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Most participants an appointment may have (a representative and its
/// patient count as one).
pub const MAX_PARTICIPANTS: usize = 10;

/// An appointment with its participants and video access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: AppointmentId,
    pub status: AppointmentStatus,
    pub interval: Interval,
    pub participants: Vec<Participant>,
    pub healthcare_service_id: Option<HealthcareServiceId>,
    /// Docplanner: the address (doctor at a facility) the booking is at.
    pub address_id: Option<AddressId>,
    pub address_service_id: Option<AddressServiceId>,
    /// Video visit (true) or physical visit.
    pub digital: bool,
    pub reasons: Vec<String>,
    /// Embassy reason code of the healthcare service.
    pub reason_code: Option<String>,
    pub description: Option<String>,
    pub comment: Option<String>,
    /// An id given by the booking system (Solo `externalId`, Naboto identifier).
    pub external_id: Option<String>,
    /// Solo `accountNumber` (encounter id).
    pub account_number: Option<String>,
    pub episode_id: Option<Uuid>,
    pub booked_by: Actor,
    pub booked_at: Timestamp,
    pub canceled_by: Option<Actor>,
    pub canceled_at: Option<Timestamp>,
    pub cancel_reason: Option<String>,
    /// The dialect the appointment was created through.
    pub origin: Dialect,
    /// Docplanner insurance on the booking.
    pub insurance: Option<BookingInsurance>,
    pub label: Option<String>,
    pub is_returning: Option<bool>,
    pub is_recurring: bool,
    /// Docplanner: confirmed by the doctor's office.
    pub confirmed: bool,
    /// Docplanner: patient presence (`present`/`absent`), when marked.
    pub presence: Option<Presence>,
    /// Docplanner move chain: the booking this one was moved from.
    pub moved_from: Option<AppointmentId>,
    /// Docplanner move chain: the booking this one was moved to.
    pub moved_to: Option<AppointmentId>,
    /// Solo video call status (`waiting`, `on call`, ...).
    pub video_call_status: Option<String>,
    /// Optimistic concurrency: incremented by every change.
    pub version: i64,
    pub updated_at: Timestamp,
}

impl Appointment {
    /// A new booked appointment with nothing but its time, participants and
    /// who booked it through which dialect; every other detail is empty. The
    /// id is assigned by the store.
    pub fn booked(interval: Interval, participants: Vec<Participant>, by: Actor, now: Timestamp) -> Self {
        Appointment {
            id: AppointmentId(0),
            status: AppointmentStatus::Booked,
            interval,
            participants,
            healthcare_service_id: None,
            address_id: None,
            address_service_id: None,
            digital: true,
            reasons: vec![],
            reason_code: None,
            description: None,
            comment: None,
            external_id: None,
            account_number: None,
            episode_id: None,
            origin: by.dialect.unwrap_or(Dialect::Fhir),
            booked_by: by,
            booked_at: now,
            canceled_by: None,
            canceled_at: None,
            cancel_reason: None,
            insurance: None,
            label: None,
            is_returning: None,
            is_recurring: false,
            confirmed: false,
            presence: None,
            moved_from: None,
            moved_to: None,
            video_call_status: None,
            version: 0,
            updated_at: now,
        }
    }

    /// Sets the healthcare service the appointment belongs to, and keeps its
    /// healthcare service participant in step: every booking of a known
    /// service carries that participant, whichever dialect booked it
    /// (Embassy requires the actor; a Docplanner booking's service is its
    /// address's linked one).
    pub fn set_healthcare_service(&mut self, service: Option<HealthcareServiceId>) {
        self.healthcare_service_id = service;
        let at = self.participants.iter().position(|p| matches!(p.who, ParticipantWho::HealthcareService(_)));
        match (service, at) {
            // The participant keeps its place (callers may index the others).
            (Some(id), Some(i)) => self.participants[i].who = ParticipantWho::HealthcareService(id),
            (None, _) => self.participants.retain(|p| !matches!(p.who, ParticipantWho::HealthcareService(_))),
            (Some(id), None) => self.participants.push(Participant {
                who: ParticipantWho::HealthcareService(id),
                roles: vec![ParticipantRole::Participant],
                video: None,
                required: None,
                status: Some("accepted".into()),
            }),
        }
    }

    /// The primary performer (Embassy PPRF), if any.
    pub fn primary_performer(&self) -> Option<PractitionerId> {
        self.participants.iter().find_map(|p| match &p.who {
            ParticipantWho::Practitioner(id) if p.roles.contains(&ParticipantRole::PrimaryPerformer) => Some(*id),
            _ => None,
        })
    }

    /// Every practitioner taking part.
    pub fn practitioners(&self) -> impl Iterator<Item = PractitionerId> + '_ {
        self.participants.iter().filter_map(|p| match p.who {
            ParticipantWho::Practitioner(id) => Some(id),
            _ => None,
        })
    }

    /// The first patient taking part.
    pub fn patient(&self) -> Option<PatientId> {
        self.participants.iter().find_map(|p| match p.who {
            ParticipantWho::Patient(id) => Some(id),
            _ => None,
        })
    }

    /// Duration in whole minutes.
    pub fn duration_minutes(&self) -> i64 {
        self.interval.seconds() / 60
    }
}

/// One participant of an appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub who: ParticipantWho,
    pub roles: Vec<ParticipantRole>,
    /// Secret video access of this participant, if the visit is digital.
    pub video: Option<VideoAccess>,
    /// FHIR participant `required`: `required`, `optional`, `information-only`.
    pub required: Option<String>,
    /// FHIR participant `status`: `accepted`, `declined`, `tentative`, `needs-action`.
    pub status: Option<String>,
}

/// Who a participant is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ParticipantWho {
    Practitioner(PractitionerId),
    Patient(PatientId),
    RelatedPerson(Box<RelatedPerson>),
    HealthcareService(HealthcareServiceId),
}

/// Role of a participant (FHIR ParticipationType codes the specs use).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParticipantRole {
    /// `PPRF`: the one practitioner responsible.
    #[serde(rename = "PPRF")]
    PrimaryPerformer,
    /// `SPRF`: another practitioner.
    #[serde(rename = "SPRF")]
    SecondaryPerformer,
    /// `PART`: any other participant.
    #[serde(rename = "PART")]
    Participant,
    /// `CON`: a consultant.
    #[serde(rename = "CON")]
    Consultant,
    /// `ATND`: attender.
    #[serde(rename = "ATND")]
    Attender,
}

impl ParticipantRole {
    /// The v3 ParticipationType code.
    pub fn code(self) -> &'static str {
        match self {
            ParticipantRole::PrimaryPerformer => "PPRF",
            ParticipantRole::SecondaryPerformer => "SPRF",
            ParticipantRole::Participant => "PART",
            ParticipantRole::Consultant => "CON",
            ParticipantRole::Attender => "ATND",
        }
    }

    /// Parses a v3 ParticipationType code.
    pub fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "PPRF" => ParticipantRole::PrimaryPerformer,
            "SPRF" => ParticipantRole::SecondaryPerformer,
            "PART" => ParticipantRole::Participant,
            "CON" => ParticipantRole::Consultant,
            "ATND" => ParticipantRole::Attender,
            _ => return None,
        })
    }
}

/// Per-participant secret access to a video visit: Naboto `sessionKey` and
/// `address`, Embassy appointment ticket, Solo visit URLs. The key is at least
/// 128 random bits, hex encoded; it is never logged.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoAccess {
    pub key: String,
}

impl std::fmt::Debug for VideoAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VideoAccess(<redacted>)")
    }
}

impl VideoAccess {
    /// Builds access from at least 16 random bytes supplied by the caller
    /// (the core does no IO, so it does not draw randomness itself).
    pub fn from_random(bytes: &[u8]) -> Result<Self, CoreError> {
        if bytes.len() < 16 {
            return Err(CoreError::invalid("video_access", "needs at least 128 random bits"));
        }
        Ok(VideoAccess { key: bytes.iter().map(|b| format!("{b:02x}")).collect() })
    }

    /// The path of the join page this key opens on this server
    /// (`/video/{tenant}/{appointment}/{key}`): the one link every dialect
    /// and every patient message gives a participant of a video call.
    pub fn join_path(&self, tenant: crate::TenantId, appointment: AppointmentId) -> String {
        format!("/video/{tenant}/{appointment}/{}", self.key)
    }
}

/// Who did something to an appointment (Docplanner `booked_by`/`canceled_by`,
/// extended with the dialect the actor used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub dialect: Option<Dialect>,
}

/// Kind of actor, in Docplanner's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// The patient, through a patient-facing app.
    User,
    /// The doctor's office.
    Doctor,
    /// An integrated system (an API client).
    Integration,
    /// Polyclinic itself (admin, scheduler).
    System,
}

impl ActorKind {
    /// Docplanner's word.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::User => "user",
            ActorKind::Doctor => "doctor",
            ActorKind::Integration => "integration",
            ActorKind::System => "integration",
        }
    }
}

/// Insurance chosen for a booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingInsurance {
    pub provider_id: InsuranceProviderId,
    pub plan_id: Option<InsurancePlanId>,
    pub number: Option<String>,
}

/// Docplanner patient presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Present,
    Absent,
}

/// The cancel cutoff: no cancellation later than the tenant allows.
pub fn check_cancel_allowed(
    appointment: &Appointment,
    settings: &TenantSettings,
    now: Timestamp,
) -> Result<(), CoreError> {
    appointment.status.transition(AppointmentStatus::Cancelled)?;
    let cutoff = appointment.interval.start - SignedDuration::from_mins(settings.cancel_cutoff_minutes);
    if settings.cancel_cutoff_minutes > 0 && now > cutoff {
        return Err(CoreError::PolicyViolation(format!(
            "appointments cannot be cancelled later than {} minutes before they start",
            settings.cancel_cutoff_minutes
        )));
    }
    Ok(())
}

/// The reschedule cutoff and status rule.
pub fn check_reschedule_allowed(
    appointment: &Appointment,
    settings: &TenantSettings,
    now: Timestamp,
) -> Result<(), CoreError> {
    if !appointment.status.can_reschedule() {
        return Err(CoreError::InvalidTransition {
            from: appointment.status.as_str().into(),
            to: "rescheduled".into(),
        });
    }
    let cutoff = appointment.interval.start - SignedDuration::from_mins(settings.reschedule_cutoff_minutes);
    if settings.reschedule_cutoff_minutes > 0 && now > cutoff {
        return Err(CoreError::PolicyViolation(format!(
            "appointments cannot be rescheduled later than {} minutes before they start",
            settings.reschedule_cutoff_minutes
        )));
    }
    Ok(())
}

/// Participant rules every dialect shares: at most one primary performer, at
/// most [`MAX_PARTICIPANTS`] (a representative with its patient counts once),
/// free texts within limits.
pub fn check_participants(appointment: &Appointment) -> Result<(), CoreError> {
    let primaries =
        appointment.participants.iter().filter(|p| p.roles.contains(&ParticipantRole::PrimaryPerformer)).count();
    if primaries > 1 {
        return Err(CoreError::invalid("participant", "at most one primary performer"));
    }
    let represented: Vec<PatientId> = appointment
        .participants
        .iter()
        .filter_map(|p| match &p.who {
            ParticipantWho::RelatedPerson(rp) => rp.patient,
            _ => None,
        })
        .collect();
    let counted = appointment
        .participants
        .iter()
        .filter(|p| !matches!(p.who, ParticipantWho::HealthcareService(_)))
        .filter(|p| !matches!(p.who, ParticipantWho::Patient(id) if represented.contains(&id)))
        .count();
    if counted > MAX_PARTICIPANTS {
        return Err(CoreError::invalid("participant", format!("at most {MAX_PARTICIPANTS} participants")));
    }
    for (field, v) in [("description", &appointment.description), ("comment", &appointment.comment)] {
        if let Some(v) = v {
            check_len(field, v, MAX_TEXT)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::{HumanName, RelatedKind};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn appointment(participants: Vec<Participant>) -> Appointment {
        let mut a = Appointment::booked(
            Interval { start: ts("2030-01-01T10:00:00Z"), end: ts("2030-01-01T10:15:00Z") },
            participants,
            Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Embassy) },
            ts("2029-12-01T10:00:00Z"),
        );
        a.id = AppointmentId(1);
        a.version = 1;
        a
    }

    fn part(who: ParticipantWho, role: ParticipantRole) -> Participant {
        Participant { who, roles: vec![role], video: None, required: None, status: None }
    }

    #[test]
    fn cancel_cutoff() {
        let settings = TenantSettings { cancel_cutoff_minutes: 120, ..Default::default() };
        let a = appointment(vec![]);
        assert!(check_cancel_allowed(&a, &settings, ts("2030-01-01T07:00:00Z")).is_ok());
        assert!(check_cancel_allowed(&a, &settings, ts("2030-01-01T09:00:00Z")).is_err());
    }

    #[test]
    fn a_representative_and_its_patient_count_as_one() {
        let rep = RelatedPerson {
            kind: RelatedKind::Representative,
            names: vec![HumanName::simple("Eva", "Berg")],
            telecom: vec![],
            identifiers: vec![],
            language: None,
            country: None,
            patient: Some(PatientId(1)),
        };
        let mut ps = vec![
            part(ParticipantWho::Practitioner(PractitionerId(1)), ParticipantRole::PrimaryPerformer),
            part(ParticipantWho::Patient(PatientId(1)), ParticipantRole::Participant),
            part(ParticipantWho::RelatedPerson(Box::new(rep)), ParticipantRole::Participant),
            part(ParticipantWho::HealthcareService(HealthcareServiceId(1)), ParticipantRole::Participant),
        ];
        for i in 0..8 {
            ps.push(part(ParticipantWho::Practitioner(PractitionerId(10 + i)), ParticipantRole::SecondaryPerformer));
        }
        assert!(check_participants(&appointment(ps.clone())).is_ok());
        ps.push(part(ParticipantWho::Practitioner(PractitionerId(99)), ParticipantRole::SecondaryPerformer));
        assert!(check_participants(&appointment(ps)).is_err());
    }

    #[test]
    fn one_primary_performer_at_most() {
        let ps = vec![
            part(ParticipantWho::Practitioner(PractitionerId(1)), ParticipantRole::PrimaryPerformer),
            part(ParticipantWho::Practitioner(PractitionerId(2)), ParticipantRole::PrimaryPerformer),
        ];
        assert!(check_participants(&appointment(ps)).is_err());
    }

    #[test]
    fn video_keys_need_128_bits() {
        assert!(VideoAccess::from_random(&[0u8; 15]).is_err());
        let v = VideoAccess::from_random(&[0xab; 16]).unwrap();
        assert_eq!(v.key.len(), 32);
        assert_eq!(format!("{v:?}"), "VideoAccess(<redacted>)");
    }
}
