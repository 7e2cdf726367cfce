//! Identifier newtypes.
//!
//! Everything the specs number (patients, practitioners, services, facilities,
//! addresses, appointments, bookings, ...) has a positive decimal integer id,
//! the same in every dialect. What the specs only show with UUIDs (Solo
//! episodes, attachments, webhooks, reports) has a UUID id, kept here as its
//! canonical lower-case hyphenated text.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error for an id that is not a positive decimal integer or not a UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid id")]
pub struct InvalidId(pub String);

macro_rules! int_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw integer, as stored.
            pub fn get(self) -> i64 { self.0 }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            /// Accepts only a positive decimal integer without sign or padding
            /// tricks beyond plain digits, so `"1"` and `"0001"` are both 1
            /// but `"+1"`, `"1.0"` and `" 1"` are rejected.
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                parse_positive(s).map($name).ok_or_else(|| InvalidId(s.to_owned()))
            }
        }
    )*};
}

fn parse_positive(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok().filter(|v| *v > 0)
}

int_id!(
    /// A tenant: one customer, practice or API client organisation.
    TenantId,
    /// A practitioner (Docplanner: doctor; Solo: provider).
    PractitionerId,
    /// A healthcare service (Solo: waiting room).
    HealthcareServiceId,
    /// A Docplanner facility.
    FacilityId,
    /// A Docplanner address: a doctor at a facility location.
    AddressId,
    /// An entry of the service dictionary shared by all tenants.
    ServiceId,
    /// A service offered at an address, with its price and duration.
    AddressServiceId,
    /// A calendar break at an address.
    CalendarBreakId,
    /// An insurance provider of the shared dictionary.
    InsuranceProviderId,
    /// An insurance plan of a provider.
    InsurancePlanId,
    /// A patient.
    PatientId,
    /// An appointment (Docplanner: booking).
    AppointmentId,
    /// A conversation (Embassy: CommunicationRequest).
    ConversationId,
    /// A message in a conversation (Embassy: Communication).
    MessageId,
    /// A care location with its device.
    CareLocationId,
    /// A credential of a tenant.
    CredentialId,
    /// An outbox event.
    EventId,
);

/// A UUID-shaped id, kept as canonical lower-case text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Uuid(String);

impl Uuid {
    /// The canonical text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Uuid {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        let b = s.as_bytes();
        let ok = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            });
        if ok { Ok(Uuid(s.to_ascii_lowercase())) } else { Err(InvalidId(s.to_owned())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_ids_accept_only_positive_decimals() {
        assert_eq!("42".parse::<PatientId>(), Ok(PatientId(42)));
        for bad in ["", "0", "-1", "+1", "1.0", " 1", "abc", "99999999999999999999"] {
            assert!(bad.parse::<PatientId>().is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn uuid_ids_are_canonicalised() {
        let id: Uuid = "2E96ED0E-0F80-4DC3-B2C1-42E65B789E56".parse().unwrap();
        assert_eq!(id.as_str(), "2e96ed0e-0f80-4dc3-b2c1-42e65b789e56");
        assert!("2e96ed0e0f804dc3b2c142e65b789e56".parse::<Uuid>().is_err());
    }
}
