//! Practitioners (Docplanner: doctors; Solo: providers).

use crate::text::Email;
use crate::{CoreError, PractitionerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A practitioner of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Practitioner {
    pub id: PractitionerId,
    /// The seed key, unique per tenant.
    pub key: String,
    pub given: String,
    pub family: String,
    pub email: Option<Email>,
    /// Swedish HSA id (`SE2321000016-0001`).
    pub hsa_id: Option<String>,
    /// National identity numbers by lower-case ISO country code.
    pub national_ids: BTreeMap<String, String>,
    /// May take part in conversations (Embassy `hasCommunicationPrivileges`).
    pub communication_privileges: bool,
    /// Academic or professional title shown before the name (`dr`).
    pub prefix: Option<String>,
    /// Docplanner specializations.
    #[serde(default)]
    pub specializations: Vec<Specialization>,
    /// Docplanner license numbers.
    #[serde(default)]
    pub license_numbers: Vec<String>,
    pub active: bool,
    /// Gets the patient messages about its appointments too (by e-mail),
    /// when the tenant sends them.
    #[serde(default)]
    pub appointment_messages: bool,
}

/// A medical specialization (Docplanner dictionary entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Specialization {
    pub id: String,
    pub name: String,
}

impl Practitioner {
    /// "Given Family".
    pub fn full_name(&self) -> String {
        match (self.given.is_empty(), self.family.is_empty()) {
            (false, false) => format!("{} {}", self.given, self.family),
            (false, true) => self.given.clone(),
            _ => self.family.clone(),
        }
    }

    /// Checks the rules every dialect relies on.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.given.trim().is_empty() && self.family.trim().is_empty() {
            return Err(CoreError::invalid("name", "a practitioner needs a given or a family name"));
        }
        if let Some(hsa) = &self.hsa_id
            && !is_hsa_id(hsa)
        {
            return Err(CoreError::invalid("hsa_id", format!("`{hsa}` is not an HSA id")));
        }
        Ok(())
    }
}

/// An HSA id: `SE` + 10-digit organisation number + `-` + a local part of
/// letters and digits (at most 31 characters in all).
pub fn is_hsa_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("SE") else { return false };
    let Some((org, local)) = rest.split_once('-') else { return false };
    org.len() == 10
        && org.bytes().all(|b| b.is_ascii_digit())
        && !local.is_empty()
        && s.len() <= 31
        && local.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsa_ids() {
        assert!(is_hsa_id("SE2321000016-0001"));
        assert!(is_hsa_id("SE2321000016-15V7"));
        assert!(!is_hsa_id("2321000016-0001"));
        assert!(!is_hsa_id("SE232100001-0001"));
        assert!(!is_hsa_id("SE2321000016-"));
    }
}
