//! Patients and related persons (guests, representatives).
//!
//! The model is the union of what the dialects carry: FHIR names and contact
//! points (Embassy, Naboto), Docplanner's booking patient (name, surname, nin,
//! consent flags), and Solo's demographics (MRN, account number, SPID, HSID,
//! race, ethnicity, shared e-mail group, deceased date).

use crate::text::{Email, MAX_SHORT, check_len};
use crate::{CoreError, PatientId};
use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

/// A patient of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Patient {
    pub id: Option<PatientId>,
    pub names: Vec<HumanName>,
    pub telecom: Vec<ContactPoint>,
    /// Every identifier the patient is known by (national ids, MRN, SPID, HSID,
    /// external system ids). Unique per tenant and system.
    pub identifiers: Vec<Identifier>,
    pub birth_date: Option<Date>,
    pub gender: Option<Gender>,
    pub marital_status: Option<String>,
    pub addresses: Vec<PostalAddress>,
    /// ISO 639-1 code or a language name as the dialect gave it.
    pub language: Option<String>,
    /// ISO 3166-1 alpha-2 country of the patient (Embassy output).
    pub country: Option<String>,
    pub race: Option<String>,
    pub ethnicity: Option<String>,
    pub active: bool,
    pub deceased: bool,
    pub deceased_at: Option<Timestamp>,
    /// Solo: linked to other patients through one e-mail address.
    pub shared_email_group: Option<SharedEmailGroup>,
    /// Solo: emergency and other contacts.
    pub contacts: Vec<PatientContact>,
    pub marketing_consent: Option<bool>,
    pub data_privacy_consent: Option<bool>,
    /// The dialect that owns the patient's data, when one does: a patient
    /// created through Naboto's API is kept by the clinic's system, and other
    /// dialects refuse to edit it. `None`: any dialect may edit it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<crate::tenant::Dialect>,
}

impl Patient {
    /// The value of the first identifier of `system`.
    pub fn identifier(&self, system: &str) -> Option<&str> {
        self.identifiers.iter().find(|i| i.system == system).map(|i| i.value.as_str())
    }

    /// Sets (replaces) the identifier of `system`.
    pub fn set_identifier(&mut self, system: &str, value: impl Into<String>) {
        self.identifiers.retain(|i| i.system != system);
        self.identifiers.push(Identifier { system: system.to_owned(), value: value.into() });
    }

    /// The name to show: the first `usual`, else `official`, else the first.
    pub fn display_name(&self) -> Option<&HumanName> {
        pick_name(&self.names)
    }

    /// The preferred contact point of `system`: by use mobile, home, work,
    /// then any other except old and temp; lower rank first.
    pub fn preferred(&self, system: ContactSystem) -> Option<&ContactPoint> {
        preferred_contact(&self.telecom, system)
    }

    /// The preferred e-mail address, if any.
    pub fn email(&self) -> Option<&str> {
        self.preferred(ContactSystem::Email).map(|c| c.value.as_str())
    }

    /// The preferred phone number (phone over sms), if any.
    pub fn phone(&self) -> Option<&str> {
        self.preferred(ContactSystem::Phone).or_else(|| self.preferred(ContactSystem::Sms)).map(|c| c.value.as_str())
    }

    /// The mobile number a text message reaches (see [`mobile_number`]).
    pub fn mobile(&self) -> Option<&str> {
        mobile_number(&self.telecom).map(|c| c.value.as_str())
    }

    /// The name as one line: given names, then the family name.
    pub fn full_name(&self) -> Option<String> {
        let n = self.display_name()?;
        Some(format!("{} {}", n.given_joined(), n.family.as_deref().unwrap_or_default()).trim().to_owned())
    }

    /// Checks the rules every dialect relies on and normalises contact points.
    pub fn validate(&mut self) -> Result<(), CoreError> {
        if self.names.len() > 10 || self.telecom.len() > 20 || self.identifiers.len() > 20 || self.addresses.len() > 10
        {
            return Err(CoreError::invalid("patient", "too many names, contact points, identifiers or addresses"));
        }
        for n in &self.names {
            n.validate()?;
        }
        for c in &mut self.telecom {
            c.normalise()?;
        }
        for i in &self.identifiers {
            if i.system.trim().is_empty() || i.value.trim().is_empty() {
                return Err(CoreError::invalid("identifier", "system and value must not be empty"));
            }
            check_len("identifier.system", &i.system, MAX_SHORT)?;
            check_len("identifier.value", &i.value, MAX_SHORT)?;
        }
        // The supported years (`clock::EARLIEST` to `clock::LATEST`): no one
        // living was born before 1900.
        if let Some(d) = self.birth_date
            && !(1900..=9000).contains(&d.year())
        {
            return Err(CoreError::invalid("birth_date", "a birth date must lie between the years 1900 and 9000"));
        }
        if self.deceased_at.is_some() {
            self.deceased = true;
        }
        Ok(())
    }
}

/// A person's name in FHIR's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct HumanName {
    pub use_: Option<NameUse>,
    pub given: Vec<String>,
    pub family: Option<String>,
    pub prefix: Vec<String>,
    pub suffix: Vec<String>,
    pub text: Option<String>,
    /// Another name the person goes by (Solo `alias`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl HumanName {
    /// A name from one given and one family name.
    pub fn simple(given: &str, family: &str) -> Self {
        HumanName {
            use_: Some(NameUse::Official),
            given: if given.is_empty() { vec![] } else { vec![given.to_owned()] },
            family: (!family.is_empty()).then(|| family.to_owned()),
            ..Default::default()
        }
    }

    /// Given names joined by spaces.
    pub fn given_joined(&self) -> String {
        self.given.join(" ")
    }

    /// Whether at least a given or a family name is set.
    pub fn has_any(&self) -> bool {
        self.given.iter().any(|g| !g.trim().is_empty()) || self.family.as_deref().is_some_and(|f| !f.trim().is_empty())
    }

    /// Whether both a given and a family name are set.
    pub fn has_both(&self) -> bool {
        self.given.iter().any(|g| !g.trim().is_empty()) && self.family.as_deref().is_some_and(|f| !f.trim().is_empty())
    }

    fn validate(&self) -> Result<(), CoreError> {
        for g in &self.given {
            check_len("name.given", g, MAX_SHORT)?;
        }
        for (field, v) in [("name.family", &self.family), ("name.alias", &self.alias)] {
            if let Some(v) = v {
                check_len(field, v, MAX_SHORT)?;
            }
        }
        Ok(())
    }
}

/// Picks the name by use: usual, then official, then the first.
pub fn pick_name(names: &[HumanName]) -> Option<&HumanName> {
    names
        .iter()
        .find(|n| n.use_ == Some(NameUse::Usual))
        .or_else(|| names.iter().find(|n| n.use_ == Some(NameUse::Official)))
        .or_else(|| names.first())
}

/// FHIR name use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NameUse {
    Usual,
    Official,
    Temp,
    Nickname,
    Anonymous,
    Old,
    Maiden,
}

/// A contact point (phone, sms, email) with its use and consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPoint {
    pub system: ContactSystem,
    pub value: String,
    #[serde(default)]
    pub use_: Option<ContactUse>,
    /// FHIR `rank`: lower is preferred.
    #[serde(default)]
    pub rank: Option<u32>,
    /// The person agreed to be contacted this way (Embassy consent extension).
    #[serde(default)]
    pub consent: Option<bool>,
}

impl ContactPoint {
    /// Validates and normalises the value for its system.
    pub fn normalise(&mut self) -> Result<(), CoreError> {
        match self.system {
            ContactSystem::Email => self.value = Email::parse(&self.value)?.into(),
            ContactSystem::Phone | ContactSystem::Sms => self.value = crate::text::Phone::parse(&self.value)?.into(),
            ContactSystem::Other => check_len("telecom.value", &self.value, MAX_SHORT)?,
        }
        Ok(())
    }
}

/// The mobile number among `points`, the one rule for every dialect and the
/// patient messages: the preferred `sms` contact point, else a `phone` with
/// use `mobile`.
pub fn mobile_number(points: &[ContactPoint]) -> Option<&ContactPoint> {
    preferred_contact(points, ContactSystem::Sms)
        .or_else(|| points.iter().find(|c| c.system == ContactSystem::Phone && c.use_ == Some(ContactUse::Mobile)))
}

/// The preferred contact point of `system` among `points`: use mobile, home,
/// work, then unset; never old or temp; lower rank first within a use.
pub fn preferred_contact(points: &[ContactPoint], system: ContactSystem) -> Option<&ContactPoint> {
    let use_order = |u: Option<ContactUse>| match u {
        Some(ContactUse::Mobile) => Some(0),
        Some(ContactUse::Home) => Some(1),
        Some(ContactUse::Work) => Some(2),
        None => Some(3),
        Some(ContactUse::Old) | Some(ContactUse::Temp) => None,
    };
    points
        .iter()
        .filter(|c| c.system == system)
        .filter_map(|c| use_order(c.use_).map(|o| (o, c.rank.unwrap_or(u32::MAX), c)))
        .min_by_key(|(o, r, _)| (*o, *r))
        .map(|(_, _, c)| c)
}

/// Contact point system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactSystem {
    Phone,
    Sms,
    Email,
    Other,
}

/// Contact point use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactUse {
    Home,
    Work,
    Mobile,
    Temp,
    Old,
}

/// An identifier: a system URI (or short system name) and a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    pub system: String,
    pub value: String,
}

/// Identifier systems the core itself knows by name. Dialects map their own
/// URIs onto these, so that a patient found by national id in one dialect is
/// found the same way in another.
/// A national identification number, normalised per country, so that every
/// dialect stores the same value for the same person and finds the patient
/// another dialect created. Swedish numbers become 12 digits with a valid
/// check digit ([`crate::text::parse_swedish_national_id`]); others lose
/// their separators (`-`, space, `.`, `/`) and are upper-cased, and must then
/// be 6 to 20 letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalId {
    country: String,
    value: String,
}

impl NationalId {
    /// Parses `raw` as a national id of `country` (ISO 3166-1 alpha-2).
    pub fn parse(country: &str, raw: &str) -> Result<NationalId, CoreError> {
        let country = country.trim().to_ascii_lowercase();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(CoreError::invalid("national_id", format!("`{country}` is not a country code")));
        }
        let raw = raw.trim();
        let value = if country == "se" {
            crate::text::parse_swedish_national_id(raw)?
        } else {
            let v: String =
                raw.chars().filter(|c| !matches!(c, '-' | ' ' | '.' | '/')).map(|c| c.to_ascii_uppercase()).collect();
            if !(6..=20).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(CoreError::invalid(
                    "national_id",
                    format!("`{raw}` is not a national identification number"),
                ));
            }
            v
        };
        Ok(NationalId { country, value })
    }

    /// The country, lower case.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The normalised number.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The normalised number, owned.
    pub fn into_value(self) -> String {
        self.value
    }

    /// The identifier as patients store it (`national-id:{country}`).
    pub fn identifier(&self) -> Identifier {
        Identifier { system: format!("{}{}", systems::NATIONAL_ID_PREFIX, self.country), value: self.value.clone() }
    }
}

pub mod systems {
    /// Swedish personal identity number (12 digits).
    pub const NATIONAL_ID_SE: &str = "national-id:se";
    /// Prefix of national ids per country: `national-id:{iso2 lower}`.
    pub const NATIONAL_ID_PREFIX: &str = "national-id:";
    /// Medical record number.
    pub const MRN: &str = "mrn";
    /// Account number.
    pub const ACCOUNT_NUMBER: &str = "account-number";
    /// Solo SPID.
    pub const SPID: &str = "spid";
    /// Solo HSID.
    pub const HSID: &str = "hsid";
    /// Phone used as a unique identifier (tenant setting `phone_is_identifier`).
    pub const PHONE: &str = "phone";
}

/// Administrative gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

/// A postal address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PostalAddress {
    pub use_: Option<String>,
    pub lines: Vec<String>,
    pub apartment: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// Solo's shared e-mail group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedEmailGroup {
    pub kind: String,
    pub name: String,
}

/// A contact person of a patient (Solo `contact`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PatientContact {
    pub names: Vec<HumanName>,
    pub telecom: Vec<ContactPoint>,
}

/// A related person on an appointment: a guest, or a representative acting
/// for a patient (a parent for a child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelatedPerson {
    pub kind: RelatedKind,
    pub names: Vec<HumanName>,
    pub telecom: Vec<ContactPoint>,
    pub identifiers: Vec<Identifier>,
    pub language: Option<String>,
    pub country: Option<String>,
    /// For a representative: the patient represented.
    pub patient: Option<PatientId>,
}

/// What a related person is on an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelatedKind {
    Guest,
    Representative,
}

impl RelatedPerson {
    /// Name rule: a guest needs a given or a family name, a representative both.
    pub fn check_name(&self) -> bool {
        match pick_name(&self.names) {
            None => false,
            Some(n) => match self.kind {
                RelatedKind::Guest => n.has_any(),
                RelatedKind::Representative => n.has_both(),
            },
        }
    }

    /// At least one usable phone or e-mail.
    pub fn has_contact_point(&self) -> bool {
        [ContactSystem::Phone, ContactSystem::Sms, ContactSystem::Email]
            .into_iter()
            .any(|s| preferred_contact(&self.telecom, s).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(system: ContactSystem, value: &str, use_: Option<ContactUse>) -> ContactPoint {
        ContactPoint { system, value: value.into(), use_, rank: None, consent: None }
    }

    #[test]
    fn a_birth_date_lies_within_the_supported_years() {
        let with = |d: &str| Patient { birth_date: Some(d.parse().unwrap()), ..Default::default() };
        assert!(with("1900-01-01").validate().is_ok() && with("2024-02-29").validate().is_ok());
        for bad in ["0000-01-01", "1899-12-31", "9001-01-01"] {
            assert!(
                matches!(with(bad).validate(), Err(CoreError::Invalid { field, .. }) if field == "birth_date"),
                "{bad}"
            );
        }
    }

    #[test]
    fn contact_priority_is_mobile_home_work_and_never_old() {
        let points = vec![
            cp(ContactSystem::Phone, "+461", Some(ContactUse::Work)),
            cp(ContactSystem::Phone, "+462", Some(ContactUse::Old)),
            cp(ContactSystem::Phone, "+463", Some(ContactUse::Home)),
        ];
        assert_eq!(preferred_contact(&points, ContactSystem::Phone).unwrap().value, "+463");
        let only_old = vec![cp(ContactSystem::Email, "a@b.se", Some(ContactUse::Old))];
        assert!(preferred_contact(&only_old, ContactSystem::Email).is_none());
    }

    #[test]
    fn name_choice_by_use() {
        let names = vec![
            HumanName { use_: Some(NameUse::Official), family: Some("Official".into()), ..Default::default() },
            HumanName { use_: Some(NameUse::Usual), family: Some("Usual".into()), ..Default::default() },
        ];
        assert_eq!(pick_name(&names).unwrap().family.as_deref(), Some("Usual"));
        assert_eq!(pick_name(&names[..1]).unwrap().family.as_deref(), Some("Official"));
    }

    #[test]
    fn representative_needs_both_names_guest_one() {
        let mut rp = RelatedPerson {
            kind: RelatedKind::Guest,
            names: vec![HumanName { given: vec!["Eva".into()], ..Default::default() }],
            telecom: vec![],
            identifiers: vec![],
            language: None,
            country: None,
            patient: None,
        };
        assert!(rp.check_name());
        rp.kind = RelatedKind::Representative;
        assert!(!rp.check_name());
    }

    #[test]
    fn validation_normalises_contact_points() {
        let mut p = Patient { telecom: vec![cp(ContactSystem::Email, "Ann@ACME.test", None)], ..Default::default() };
        p.validate().unwrap();
        assert_eq!(p.email(), Some("Ann@acme.test"));
        let mut bad = Patient { telecom: vec![cp(ContactSystem::Phone, "not a phone", None)], ..Default::default() };
        assert!(bad.validate().is_err());
    }
}
