//! Tenants (a customer, practice or API client) and their credentials.

use crate::{CoreError, CredentialId, FacilityId, TenantId};
use serde::{Deserialize, Serialize};

/// A tenant: everything a request can see belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    pub id: TenantId,
    /// The seed key that names the tenant in the admin API.
    pub key: String,
    pub name: String,
    /// ISO 3166-1 alpha-2 country code, upper case (`SE`).
    pub country: String,
    /// ISO 639-1 language code, lower case (`sv`).
    pub language: String,
    /// IANA time zone for "today", reminders and printed offsets.
    pub timezone: String,
    pub settings: TenantSettings,
    /// Solo report presets the tenant may run.
    #[serde(default)]
    pub report_presets: Vec<ReportPreset>,
}

/// A named report preset (Solo encounter reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportPreset {
    pub key: String,
    pub id: crate::Uuid,
}

impl Tenant {
    /// The tenant's time zone. Validated when the tenant is created, so this
    /// only falls back to UTC for data written by hand.
    pub fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.timezone).unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// Customer settings that several dialects enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TenantSettings {
    /// Patients must be identified by a national id.
    pub national_id_required: bool,
    /// A phone number identifies a patient uniquely.
    pub phone_is_identifier: bool,
    /// An appointment must start at least this many minutes from now.
    pub min_booking_notice_minutes: i64,
    /// No cancellation later than this many minutes before the start.
    pub cancel_cutoff_minutes: i64,
    /// No rescheduling later than this many minutes before the start.
    pub reschedule_cutoff_minutes: i64,
    /// Shortest appointment accepted, in minutes.
    pub min_duration_minutes: i64,
    /// Longest appointment accepted, in minutes (at most 1440).
    pub max_duration_minutes: i64,
    /// How far ahead an appointment may start, in days.
    pub booking_horizon_days: i64,
    /// Languages patients and related persons may use (ISO 639-1); empty means the tenant's own.
    pub languages: Vec<String>,
    /// Countries patients and related persons may come from (ISO 3166-1); empty means the tenant's own.
    pub countries: Vec<String>,
    /// How invited related persons (guests, representatives) sign in, by
    /// country (ISO 3166-1 alpha-2, upper case). Empty: any contact point
    /// will do for every allowed country.
    pub guest_authentication: std::collections::BTreeMap<String, GuestAuthentication>,
    /// Whether appointments booked through any dialect get the patient
    /// messages (confirmation, reminder, ...); Naboto's always do.
    pub patient_messages: bool,
    /// The channel of a patient message when the patient has both an e-mail
    /// address and a mobile number.
    pub message_channel: MessageChannel,
    /// A video visit expected to start more than this many minutes late gets
    /// a delay notice.
    pub delay_notice_minutes: i64,
}

/// How a patient message goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageChannel {
    #[default]
    Email,
    Sms,
}

/// How a related person from a country signs in, which decides the contact
/// point the invitation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestAuthentication {
    /// A link by e-mail: an e-mail address is required.
    Email,
    /// A code by text message: a phone number is required.
    Sms,
    /// Either: at least one of them.
    EmailOrSms,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            national_id_required: false,
            phone_is_identifier: false,
            min_booking_notice_minutes: 0,
            cancel_cutoff_minutes: 0,
            reschedule_cutoff_minutes: 0,
            min_duration_minutes: 1,
            max_duration_minutes: crate::time_rules::LONGEST_MINUTES,
            booking_horizon_days: 730,
            languages: Vec::new(),
            countries: Vec::new(),
            guest_authentication: std::collections::BTreeMap::new(),
            patient_messages: false,
            message_channel: MessageChannel::Email,
            delay_notice_minutes: 10,
        }
    }
}

impl TenantSettings {
    /// Rejects negative or absurd values (more than a year).
    pub fn validate(&self) -> Result<(), CoreError> {
        const YEAR_MINUTES: i64 = 366 * 24 * 60;
        for (field, v) in [
            ("min_booking_notice_minutes", self.min_booking_notice_minutes),
            ("cancel_cutoff_minutes", self.cancel_cutoff_minutes),
            ("reschedule_cutoff_minutes", self.reschedule_cutoff_minutes),
            ("min_duration_minutes", self.min_duration_minutes),
            ("delay_notice_minutes", self.delay_notice_minutes),
        ] {
            if !(0..=YEAR_MINUTES).contains(&v) {
                return Err(CoreError::invalid(field, "must be between 0 and 527040 minutes"));
            }
        }
        if !(1..=crate::time_rules::LONGEST_MINUTES).contains(&self.max_duration_minutes) {
            return Err(CoreError::invalid("max_duration_minutes", "must be between 1 and 1440 minutes"));
        }
        if self.max_duration_minutes < self.min_duration_minutes {
            return Err(CoreError::invalid("max_duration_minutes", "must not be below min_duration_minutes"));
        }
        if !(1..=crate::time_rules::FURTHEST_HORIZON_DAYS).contains(&self.booking_horizon_days) {
            return Err(CoreError::invalid("booking_horizon_days", "must be between 1 and 3660 days"));
        }
        Ok(())
    }

    /// Whether `language` (ISO 639-1) is allowed for a tenant whose own language is `own`.
    pub fn allows_language(&self, own: &str, language: &str) -> bool {
        if self.languages.is_empty() {
            language.eq_ignore_ascii_case(own)
        } else {
            self.languages.iter().any(|l| l.eq_ignore_ascii_case(language))
        }
    }

    /// Whether `country` (ISO 3166-1 alpha-2) is allowed for a tenant whose own country is `own`.
    pub fn allows_country(&self, own: &str, country: &str) -> bool {
        if self.countries.is_empty() {
            country.eq_ignore_ascii_case(own)
        } else {
            self.countries.iter().any(|c| c.eq_ignore_ascii_case(country))
        }
    }
}

/// The HTTP dialects a credential can be used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Naboto,
    Embassy,
    Docplanner,
    Solo,
    Fhir,
}

impl Dialect {
    /// Every dialect.
    pub const ALL: [Dialect; 5] =
        [Dialect::Naboto, Dialect::Embassy, Dialect::Docplanner, Dialect::Solo, Dialect::Fhir];

    /// The name used in seed documents and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Naboto => "naboto",
            Dialect::Embassy => "embassy",
            Dialect::Docplanner => "docplanner",
            Dialect::Solo => "solo",
            Dialect::Fhir => "fhir",
        }
    }

    /// Parses a dialect name.
    pub fn parse(s: &str) -> Option<Dialect> {
        Dialect::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// A credential as stored: the secret itself is never kept, only its SHA-256
/// hash (the secrets are long random tokens, so a fast hash is enough and lets
/// lookups be one indexed read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Credential {
    pub id: CredentialId,
    pub tenant_id: TenantId,
    pub dialect: Dialect,
    /// Public part: Docplanner client id; otherwise empty.
    pub client_id: String,
    /// Dialect-specific, non-secret configuration.
    pub config: CredentialConfig,
}

/// Non-secret configuration of a credential.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialConfig {
    /// Docplanner: the facilities this API client may see.
    pub facilities: Vec<FacilityId>,
    /// Docplanner: where PUSH notifications go; none means PULL.
    pub push_url: Option<String>,
    /// Solo: whether a webhook secret is set (the key itself is sealed apart).
    pub has_webhook_secret: bool,
    /// Docplanner: whether PUSH requests carry an API key (sealed apart).
    pub has_push_api_key: bool,
    /// Docplanner: the client approves bookings and moves made elsewhere
    /// before they happen (the optional real-time `slot-booking` and
    /// `booking-moving` notifications, sent to `push_url`).
    pub realtime_booking: bool,
}
