//! Small validated text newtypes shared by several aggregates.

use crate::CoreError;
use serde::{Deserialize, Serialize};

/// Longest free-text field the core accepts (names, comments, descriptions).
pub const MAX_TEXT: usize = 4096;
/// Longest short text (codes, identifiers, names of things).
pub const MAX_SHORT: usize = 256;

/// Checks a free-text value's length; `field` names it in the error.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), CoreError> {
    if value.chars().count() > max {
        return Err(CoreError::invalid(field, format!("must be at most {max} characters")));
    }
    Ok(())
}

/// A syntactically plausible e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Parses `local@domain.tld` with no spaces; the domain part is lower-cased.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        let bad = || CoreError::invalid("email", format!("`{s}` is not a valid e-mail address"));
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let valid = !local.is_empty()
            && local.len() <= 64
            && domain.len() <= 253
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && !domain.contains('@');
        if valid { Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase()))) } else { Err(bad()) }
    }

    /// The address text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Email::parse(&s)
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

/// A phone number normalised to E.164-like `+digits` where it had a country
/// prefix, otherwise its digits. Spaces, dashes, dots and parentheses are
/// dropped; anything else is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    /// Parses and normalises a phone number of 6 to 15 digits.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let t = s.trim();
        let bad = || CoreError::invalid("phone", format!("`{t}` is not a valid phone number"));
        let (plus, rest) = match t.strip_prefix('+') {
            Some(r) => (true, r),
            None => match t.strip_prefix("00") {
                Some(r) => (true, r),
                None => (false, t),
            },
        };
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad()),
            }
        }
        if !(6..=15).contains(&digits.len()) {
            return Err(bad());
        }
        Ok(Phone(if plus { format!("+{digits}") } else { digits }))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(p: Phone) -> String {
        p.0
    }
}

/// A Swedish personal identity number (personnummer), normalised to 12 digits
/// `YYYYMMDDNNNC`, with a valid Luhn check digit. Coordination numbers (day + 60)
/// are accepted.
pub fn parse_swedish_national_id(s: &str) -> Result<String, CoreError> {
    let bad = || CoreError::invalid("national_id", format!("`{s}` is not a valid Swedish personal identity number"));
    let digits: String = s.chars().filter(|c| *c != '-' && *c != '+').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let full = match digits.len() {
        12 => digits,
        // Without century: assume the most recent century that is not in the future
        // relative to 2000-based two digit years; `+` marks 100+ years old.
        10 => {
            let yy: u32 = digits[0..2].parse().map_err(|_| bad())?;
            let century = if s.contains('+') {
                18
            } else if yy <= 30 {
                20
            } else {
                19
            };
            format!("{century}{digits}")
        }
        _ => return Err(bad()),
    };
    let month: u32 = full[4..6].parse().map_err(|_| bad())?;
    let mut day: u32 = full[6..8].parse().map_err(|_| bad())?;
    if day > 60 {
        day -= 60;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    let sum: u32 = full[2..12]
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            let v = if i % 2 == 0 { d * 2 } else { d };
            if v > 9 { v - 9 } else { v }
        })
        .sum();
    if !sum.is_multiple_of(10) {
        return Err(bad());
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_and_domains_lowercased() {
        assert_eq!(Email::parse("Ann@ACME.test").unwrap().as_str(), "Ann@acme.test");
        for bad in ["", "ann", "ann@", "@acme.test", "ann@acme", "a nn@acme.test", "ann@.test"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phones_are_normalised() {
        assert_eq!(Phone::parse("+1 (111) 111-1111").unwrap().as_str(), "+11111111111");
        assert_eq!(Phone::parse("0046 70 123 45 67").unwrap().as_str(), "+46701234567");
        assert_eq!(Phone::parse("070-123 45 67").unwrap().as_str(), "0701234567");
        assert!(Phone::parse("phone").is_err());
        assert!(Phone::parse("123").is_err());
    }

    #[test]
    fn swedish_national_ids_check_luhn() {
        assert_eq!(parse_swedish_national_id("19700101-1233").unwrap(), "197001011233");
        assert_eq!(parse_swedish_national_id("7001011233").unwrap(), "197001011233");
        assert!(parse_swedish_national_id("197001011234").is_err());
        assert!(parse_swedish_national_id("19701301-1233").is_err());
    }
}
