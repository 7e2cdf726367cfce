//! Docplanner's side of the catalogue: facilities, addresses (a doctor at a
//! facility location), the shared service dictionary, address services and
//! insurance providers.

use crate::service::Price;
use crate::text::{MAX_SHORT, MAX_TEXT, check_len};
use crate::{
    AddressId, AddressServiceId, CoreError, FacilityId, HealthcareServiceId, InsurancePlanId, InsuranceProviderId,
    PractitionerId, ServiceId,
};
use serde::{Deserialize, Serialize};

/// A facility (clinic, hospital) of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facility {
    pub id: FacilityId,
    pub key: String,
    pub name: String,
}

/// An address: one doctor at one facility location. Bookings and work periods
/// belong to an address. Linked to a healthcare service, its bookings are that
/// service's appointments in the FHIR dialects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub id: AddressId,
    pub key: String,
    pub facility_id: FacilityId,
    pub practitioner_id: PractitionerId,
    pub name: String,
    pub street: String,
    pub city: String,
    pub post_code: String,
    pub healthcare_service_id: Option<HealthcareServiceId>,
    pub is_online_only: bool,
    /// Docplanner `insurance_support`: `private`, `insurance` or `private_and_insurance`.
    pub insurance_support: InsuranceSupport,
    /// Docplanner `commercial_type` (`None` on addresses stored before it
    /// was defaulted: read it as [`DEFAULT_COMMERCIAL_TYPE`]).
    pub commercial_type: Option<String>,
    /// The integration with the calendar is enabled (Docplanner calendar status).
    pub calendar_enabled: bool,
    /// The integration was removed (Docplanner DELETE address integration).
    pub integrated: bool,
}

/// The Docplanner `commercial_type` of an address given none: a commercial
/// (`premium`) profile, so that its calendar can be managed, as Polyclinic
/// has always treated such an address.
pub const DEFAULT_COMMERCIAL_TYPE: &str = "premium";

/// Which patients an address accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceSupport {
    #[default]
    Private,
    Insurance,
    PrivateAndInsurance,
}

/// An entry of the service dictionary shared by all tenants (`ablacja`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub name: String,
}

/// A service offered at an address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressService {
    pub id: AddressServiceId,
    pub address_id: AddressId,
    pub service_id: ServiceId,
    /// The dictionary name, copied so that reads need no join.
    pub name: String,
    pub custom_name: Option<String>,
    pub price: Option<Price>,
    pub is_price_from: bool,
    pub description: Option<String>,
    /// Minutes.
    pub default_duration: Option<i64>,
    pub is_visible: bool,
    pub is_default: bool,
    pub allowed_patients: Option<AllowedPatients>,
}

impl AddressService {
    /// Duration in minutes used for booking and slot splitting (30 when unset).
    pub fn duration_minutes(&self) -> i64 {
        self.default_duration.unwrap_or(30)
    }

    /// Checks the documented limits.
    pub fn validate(&self) -> Result<(), CoreError> {
        if let Some(d) = self.default_duration
            && !(1..=24 * 60).contains(&d)
        {
            return Err(CoreError::invalid("default_duration", "must be between 1 and 1440 minutes"));
        }
        if let Some(p) = &self.price
            && p.minor_units < 0
        {
            return Err(CoreError::invalid("price", "must not be negative"));
        }
        if let Some(n) = &self.custom_name {
            check_len("custom_name", n, MAX_SHORT)?;
        }
        if let Some(d) = &self.description {
            check_len("description", d, MAX_TEXT)?;
        }
        if let Some(a) = &self.allowed_patients
            && let (Some(min), Some(max)) = (a.minimum_age, a.maximum_age)
            && min > max
        {
            return Err(CoreError::invalid("allowed_patients", "minimum_age must not exceed maximum_age"));
        }
        Ok(())
    }
}

/// Age limits of an address service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowedPatients {
    pub minimum_age: Option<u8>,
    pub maximum_age: Option<u8>,
}

/// An insurance provider of the shared dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsuranceProvider {
    pub id: InsuranceProviderId,
    pub name: String,
    pub plans: Vec<InsurancePlan>,
}

/// A plan of an insurance provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsurancePlan {
    pub id: InsurancePlanId,
    pub name: String,
}

/// An insurance provider accepted at an address, with the accepted plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressInsuranceProvider {
    pub address_id: AddressId,
    pub insurance_provider_id: InsuranceProviderId,
    pub plans: Vec<InsurancePlanId>,
}

/// Parses a decimal price with at most two decimals into minor units
/// (Docplanner: "price with at most 2 decimals").
pub fn parse_price_minor_units(value: f64) -> Result<i64, CoreError> {
    let bad = || CoreError::invalid("price", "must be a non-negative number with at most 2 decimals");
    if !value.is_finite() || !(0.0..=1e12).contains(&value) {
        return Err(bad());
    }
    let cents = (value * 100.0).round();
    if ((cents / 100.0) - value).abs() > 1e-9 {
        return Err(bad());
    }
    Ok(cents as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_have_at_most_two_decimals() {
        assert_eq!(parse_price_minor_units(100.0), Ok(10000));
        assert_eq!(parse_price_minor_units(99.99), Ok(9999));
        assert!(parse_price_minor_units(1.234).is_err());
        assert!(parse_price_minor_units(-1.0).is_err());
        assert!(parse_price_minor_units(f64::NAN).is_err());
    }
}
