//! Healthcare services. A Solo waiting room is a healthcare service.

use crate::{CoreError, HealthcareServiceId, PractitionerId};
use serde::{Deserialize, Serialize};

/// A healthcare service: what a patient books, with who may perform it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthcareService {
    pub id: HealthcareServiceId,
    pub key: String,
    /// Also the Solo waiting-room name.
    pub name: String,
    pub practitioners: Vec<PractitionerId>,
    pub reason_codes: Vec<ReasonCode>,
    /// Length of one bookable slot.
    pub slot_seconds: i64,
    pub service_line: Option<String>,
    pub service_type: Option<String>,
    pub opening_hours: Vec<OpeningHours>,
    /// Appointments are video visits unless false (Embassy `appointmentType`).
    pub digital: bool,
    /// List price in minor units of `currency`, shown on Embassy participants.
    pub list_price: Option<Price>,
    /// Patients may start conversations with this service.
    pub allows_conversations: bool,
    pub active: bool,
    /// Solo: the geolocation id of the waiting room's location (a UUID), by
    /// which `POST /perfect-answer` names the waiting room to book into.
    #[serde(default)]
    pub geolocation_id: Option<crate::Uuid>,
}

impl HealthcareService {
    /// Whether `p` practises on this service.
    pub fn has_practitioner(&self, p: PractitionerId) -> bool {
        self.practitioners.contains(&p)
    }

    /// Checks the rules every dialect relies on.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.name.trim().is_empty() {
            return Err(CoreError::invalid("name", "a healthcare service needs a name"));
        }
        if !(60..=24 * 3600).contains(&self.slot_seconds) || self.slot_seconds % 60 != 0 {
            return Err(CoreError::invalid("slot_seconds", "must be whole minutes between 1 minute and 24 hours"));
        }
        for h in &self.opening_hours {
            h.validate()?;
        }
        Ok(())
    }
}

/// A reason code offered by a healthcare service (Embassy CodeSystem
/// `HealthcareService.{id}.ReasonCode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCode {
    pub code: String,
    pub display: String,
}

/// A price in minor units (cents, öre).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub minor_units: i64,
    /// ISO 4217 code, stored as 3 upper-case ASCII letters.
    pub currency: [u8; 3],
}

/// Weekly opening hours in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours {
    pub weekday: Weekday,
    /// `HH:MM`, local time.
    pub from: String,
    /// `HH:MM`, local time, after `from`.
    pub to: String,
}

impl OpeningHours {
    /// Minutes since local midnight of `from` and `to`.
    pub fn minutes(&self) -> Result<(i64, i64), CoreError> {
        let from = parse_hhmm(&self.from).ok_or_else(|| CoreError::invalid("opening_hours.from", "must be HH:MM"))?;
        let to = parse_hhmm(&self.to).ok_or_else(|| CoreError::invalid("opening_hours.to", "must be HH:MM"))?;
        if to <= from {
            return Err(CoreError::invalid("opening_hours", "`to` must come after `from`"));
        }
        Ok((from, to))
    }

    fn validate(&self) -> Result<(), CoreError> {
        self.minutes().map(|_| ())
    }
}

/// Parses `HH:MM` (00:00 to 24:00) into minutes since midnight.
pub fn parse_hhmm(s: &str) -> Option<i64> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    let total = h * 60 + m;
    (h <= 24 && m < 60 && total <= 24 * 60).then_some(total)
}

/// Days of the week as written in seed documents (`mon` .. `sun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    /// The jiff weekday.
    pub fn to_jiff(self) -> jiff::civil::Weekday {
        use jiff::civil::Weekday as W;
        match self {
            Weekday::Mon => W::Monday,
            Weekday::Tue => W::Tuesday,
            Weekday::Wed => W::Wednesday,
            Weekday::Thu => W::Thursday,
            Weekday::Fri => W::Friday,
            Weekday::Sat => W::Saturday,
            Weekday::Sun => W::Sunday,
        }
    }
}
