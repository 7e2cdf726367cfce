//! Video access, decided once for every dialect: whether a visit is digital,
//! and the per-participant secret keys of a digital visit.

use polyclinic_core::appointment::{Appointment, ParticipantWho, VideoAccess};
use polyclinic_core::facility::Address;
use polyclinic_core::service::HealthcareService;

/// Random bytes in one key (160 bits; the core asks for at least 128).
const KEY_BYTES: usize = 20;

/// A new secret video key for one participant, from the operating system's
/// random source. Keys are never logged and shown only to the tenant's own
/// credentials.
pub fn new_access() -> VideoAccess {
    let bytes: [u8; KEY_BYTES] = rand::random();
    // 20 bytes always pass the core's 16-byte minimum.
    VideoAccess::from_random(&bytes).unwrap_or_else(|_| unreachable!("{KEY_BYTES} random bytes make a key"))
}

/// The one rule for whether a visit is digital: the healthcare service it
/// belongs to decides when there is one (Embassy books a service; a
/// Docplanner address may be linked to one); a visit of no service is
/// digital when its address is online only.
pub fn is_digital(service: Option<&HealthcareService>, address: Option<&Address>) -> bool {
    match service {
        Some(s) => s.digital,
        None => address.is_some_and(|a| a.is_online_only),
    }
}

/// Makes `appointment` digital or not: a digital visit gives every person
/// taking part (practitioners, patients, related persons) a key of their
/// own, keeping the keys they already have; a visit that is not digital
/// carries none. A visit booked into a waiting room has no practitioner
/// yet: its healthcare service participant then holds the provider's key
/// (whichever of the service's practitioners takes the call uses it); with
/// a practitioner, the service takes no part in the call.
pub fn apply(appointment: &mut Appointment, digital: bool) {
    appointment.digital = digital;
    let has_practitioner = appointment.practitioners().next().is_some();
    for p in &mut appointment.participants {
        let service = matches!(p.who, ParticipantWho::HealthcareService(_));
        if (service && has_practitioner) || !digital {
            p.video = None;
        } else if p.video.is_none() {
            p.video = Some(new_access());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_core::appointment::{Actor, ActorKind, Participant, ParticipantRole};
    use polyclinic_core::schedule::Interval;
    use polyclinic_core::{HealthcareServiceId, PatientId, PractitionerId};

    fn visit() -> Appointment {
        let p = |who| Participant {
            who,
            roles: vec![ParticipantRole::Participant],
            video: None,
            required: None,
            status: None,
        };
        let t: jiff::Timestamp = "2030-01-01T10:00:00Z".parse().unwrap();
        Appointment::booked(
            Interval { start: t, end: t + jiff::SignedDuration::from_mins(15) },
            vec![
                p(ParticipantWho::Practitioner(PractitionerId(1))),
                p(ParticipantWho::Patient(PatientId(2))),
                p(ParticipantWho::HealthcareService(HealthcareServiceId(3))),
            ],
            Actor { kind: ActorKind::Integration, dialect: None },
            t,
        )
    }

    #[test]
    fn a_digital_visit_gives_each_person_a_key_of_their_own_and_keeps_it() {
        let mut a = visit();
        apply(&mut a, true);
        let keys: Vec<_> = a.participants.iter().map(|p| p.video.clone()).collect();
        assert!(keys[0].is_some() && keys[1].is_some() && keys[0] != keys[1]);
        assert!(keys[2].is_none(), "the service takes no part in the call");
        apply(&mut a, true);
        assert_eq!(a.participants.iter().map(|p| p.video.clone()).collect::<Vec<_>>(), keys, "kept");
        apply(&mut a, false);
        assert!(a.participants.iter().all(|p| p.video.is_none()) && !a.digital);
    }

    #[test]
    fn a_waiting_room_visit_gives_the_service_the_providers_key() {
        let mut a = visit();
        a.participants.retain(|p| !matches!(p.who, ParticipantWho::Practitioner(_)));
        apply(&mut a, true);
        let keys: Vec<_> = a.participants.iter().map(|p| p.video.clone()).collect();
        assert!(keys[0].is_some() && keys[1].is_some() && keys[0] != keys[1], "patient and service each hold one");
    }
}
