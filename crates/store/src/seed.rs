//! Seed documents (`POST /admin/seed`, `polyclinic seed FILE`, `--demo`).
//!
//! Loading is idempotent per key: every entity is found by its seed key (the
//! dictionaries by their given id) and updated in place, so loading the same
//! document twice changes nothing and answers the same ids. A whole document
//! is one command: it commits entirely or not at all.

use crate::catalog::{self, SHARED, Table, upsert_keyed};
use crate::docplanner_queue;
use crate::seal::SecretKey;
use crate::tenants::{self, NewCredential};
use crate::{Conn, StoreResult};
use jiff::Timestamp;
use polyclinic_core::care::CareLocation;
use polyclinic_core::facility::{Address, Facility, InsurancePlan, InsuranceProvider, InsuranceSupport, Service};
use polyclinic_core::practitioner::{Practitioner, Specialization};
use polyclinic_core::service::{HealthcareService, OpeningHours, Price, ReasonCode};
use polyclinic_core::tenant::{CredentialConfig, Dialect, ReportPreset, Tenant, TenantSettings};
use polyclinic_core::text::Email;
use polyclinic_core::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most entities of one kind in one seed document.
pub const MAX_ITEMS: usize = 10_000;

/// A seed document, as the admin contract describes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SeedDoc {
    pub services: Vec<SeedDictEntry>,
    pub insurance_providers: Vec<SeedInsuranceProvider>,
    pub tenants: Vec<SeedTenant>,
}

/// An id given as a JSON string or number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LooseId {
    Text(String),
    Number(i64),
}

impl LooseId {
    fn parse(&self, field: &str) -> Result<i64, CoreError> {
        match self {
            LooseId::Number(n) if *n > 0 => Ok(*n),
            LooseId::Text(s) => s
                .parse::<ServiceId>()
                .map(|v| v.get())
                .map_err(|_| CoreError::invalid(field, format!("`{s}` is not a positive integer id"))),
            LooseId::Number(n) => Err(CoreError::invalid(field, format!("`{n}` is not a positive integer id"))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedDictEntry {
    pub id: LooseId,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedInsuranceProvider {
    pub id: LooseId,
    pub name: String,
    #[serde(default)]
    pub plans: Vec<SeedDictEntry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedTenant {
    pub key: String,
    pub name: String,
    #[serde(default = "default_country")]
    pub country: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub settings: TenantSettings,
    #[serde(default)]
    pub credentials: Vec<SeedCredential>,
    #[serde(default)]
    pub practitioners: Vec<SeedPractitioner>,
    #[serde(default)]
    pub healthcare_services: Vec<SeedHealthcareService>,
    #[serde(default)]
    pub facilities: Vec<SeedFacility>,
    #[serde(default)]
    pub care_locations: Vec<SeedCareLocation>,
    #[serde(default)]
    pub report_presets: Vec<SeedReportPreset>,
}

fn default_country() -> String {
    "SE".into()
}
fn default_language() -> String {
    "sv".into()
}
fn default_timezone() -> String {
    "Europe/Stockholm".into()
}
fn yes() -> bool {
    true
}
fn default_slot() -> i64 {
    900
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedCredential {
    pub dialect: String,
    pub api_key: Option<String>,
    pub token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub facilities: Vec<String>,
    pub push_url: Option<String>,
    pub push_api_key: Option<String>,
    pub webhook_secret: Option<String>,
    /// Docplanner: real-time approval of bookings made elsewhere (needs `push_url`).
    #[serde(default)]
    pub realtime_booking: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedPractitioner {
    pub key: String,
    /// Gets the patient messages about its appointments too.
    #[serde(default)]
    pub appointment_messages: bool,
    #[serde(default)]
    pub given: String,
    #[serde(default)]
    pub family: String,
    pub email: Option<String>,
    pub hsa_id: Option<String>,
    #[serde(default)]
    pub national_ids: BTreeMap<String, String>,
    #[serde(default)]
    pub communication_privileges: bool,
    pub prefix: Option<String>,
    #[serde(default)]
    pub specializations: Vec<Specialization>,
    #[serde(default)]
    pub license_numbers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedHealthcareService {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub practitioners: Vec<String>,
    #[serde(default)]
    pub reason_codes: Vec<ReasonCode>,
    #[serde(default = "default_slot")]
    pub slot_seconds: i64,
    pub service_line: Option<String>,
    pub service_type: Option<String>,
    #[serde(default)]
    pub opening_hours: Vec<OpeningHours>,
    #[serde(default = "yes")]
    pub digital: bool,
    /// List price as a decimal amount, e.g. `{"amount": 250.0, "currency": "SEK"}`.
    pub list_price: Option<SeedPrice>,
    #[serde(default = "yes")]
    pub allows_conversations: bool,
    /// Solo: the geolocation id (a UUID) of the waiting room's location.
    pub geolocation_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedPrice {
    pub amount: f64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedFacility {
    pub key: String,
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<SeedAddress>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedAddress {
    pub key: String,
    pub doctor: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub post_code: String,
    pub healthcare_service: Option<String>,
    #[serde(default)]
    pub is_online_only: bool,
    #[serde(default)]
    pub insurance_support: InsuranceSupport,
    /// Docplanner `commercial_type` (`premium`, `saas-only`, `basic`); when
    /// absent, an existing address keeps its own and a new one is `premium`.
    pub commercial_type: Option<String>,
}

/// The values Docplanner's `commercial_type` takes.
pub const COMMERCIAL_TYPES: [&str; 3] = ["premium", "saas-only", "basic"];

#[derive(Debug, Clone, Deserialize)]
pub struct SeedCareLocation {
    pub key: String,
    pub name: String,
    pub building: Option<String>,
    pub floor: Option<String>,
    pub room: Option<String>,
    pub bed: Option<String>,
    pub department: Option<String>,
    pub device_serial: Option<String>,
    /// The MRN of the patient in this bed (optional).
    pub patient_mrn: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SeedReportPreset {
    pub key: String,
    pub id: String,
}

/// The ids a seed assigned, by tenant key and then by entity key.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SeedResult {
    pub tenants: BTreeMap<String, TenantIds>,
}

/// Ids of one tenant's seeded entities (values are the ids the dialects use).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TenantIds {
    pub id: String,
    pub practitioners: BTreeMap<String, String>,
    pub healthcare_services: BTreeMap<String, String>,
    pub facilities: BTreeMap<String, String>,
    pub addresses: BTreeMap<String, String>,
    pub care_locations: BTreeMap<String, String>,
}

fn check_key(kind: &str, key: &str) -> Result<(), CoreError> {
    if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(CoreError::invalid(kind, format!("key `{key}` must be 1 to 128 letters, digits, `-`, `_` or `.`")));
    }
    Ok(())
}

fn check_count(kind: &str, n: usize) -> Result<(), CoreError> {
    if n > MAX_ITEMS {
        return Err(CoreError::invalid(kind, format!("at most {MAX_ITEMS} per seed document")));
    }
    Ok(())
}

/// Loads a seed document inside the caller's transaction.
/// Secrets the protocols need back (webhook key, PUSH API key) are sealed
/// under `key`; API keys, tokens and client secrets are stored as hashes.
pub async fn load(conn: &mut Conn, doc: &SeedDoc, now: Timestamp, key: &SecretKey) -> StoreResult<SeedResult> {
    check_count("services", doc.services.len())?;
    check_count("insurance_providers", doc.insurance_providers.len())?;
    check_count("tenants", doc.tenants.len())?;
    for s in &doc.services {
        let id = s.id.parse("services.id")?;
        polyclinic_core::text::check_len("services.name", &s.name, 256)?;
        catalog::save(conn, Table::Services, SHARED, id, &[], &Service { id: ServiceId(id), name: s.name.clone() })
            .await?;
    }
    for p in &doc.insurance_providers {
        let id = p.id.parse("insurance_providers.id")?;
        let plans = p
            .plans
            .iter()
            .map(|pl| {
                Ok(InsurancePlan {
                    id: InsurancePlanId(pl.id.parse("insurance_providers.plans.id")?),
                    name: pl.name.clone(),
                })
            })
            .collect::<Result<Vec<_>, CoreError>>()?;
        let provider = InsuranceProvider { id: InsuranceProviderId(id), name: p.name.clone(), plans };
        catalog::save(conn, Table::InsuranceProviders, SHARED, id, &[], &provider).await?;
    }
    let mut result = SeedResult::default();
    for t in &doc.tenants {
        let ids = load_tenant(conn, t, now, key).await?;
        result.tenants.insert(t.key.clone(), ids);
    }
    Ok(result)
}

async fn load_tenant(conn: &mut Conn, t: &SeedTenant, now: Timestamp, key: &SecretKey) -> StoreResult<TenantIds> {
    check_key("tenant", &t.key)?;
    for (kind, n) in [
        ("practitioners", t.practitioners.len()),
        ("healthcare_services", t.healthcare_services.len()),
        ("facilities", t.facilities.len()),
        ("credentials", t.credentials.len()),
        ("care_locations", t.care_locations.len()),
    ] {
        check_count(kind, n)?;
    }
    if t.country.len() != 2 || !t.country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(CoreError::invalid("country", "must be an ISO 3166-1 alpha-2 code").into());
    }
    if t.language.len() != 2 || !t.language.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(CoreError::invalid("language", "must be an ISO 639-1 code").into());
    }
    let report_presets = t
        .report_presets
        .iter()
        .map(|p| {
            let id =
                p.id.parse::<Uuid>()
                    .map_err(|_| CoreError::invalid("report_presets.id", format!("`{}` is not a UUID", p.id)))?;
            Ok(ReportPreset { key: p.key.clone(), id })
        })
        .collect::<Result<Vec<_>, CoreError>>()?;
    let mut tenant = Tenant {
        id: TenantId(0),
        key: t.key.clone(),
        name: t.name.clone(),
        country: t.country.to_ascii_uppercase(),
        language: t.language.to_ascii_lowercase(),
        timezone: t.timezone.clone(),
        settings: t.settings.clone(),
        report_presets,
    };
    let tid = tenants::upsert(conn, &mut tenant, now).await?;
    let mut ids = TenantIds { id: tid.to_string(), ..Default::default() };

    for p in &t.practitioners {
        check_key("practitioner", &p.key)?;
        let email = p.email.as_deref().map(Email::parse).transpose()?;
        let id = upsert_keyed(conn, Table::Practitioners, tid, &p.key, &[], |id| {
            let pr = Practitioner {
                id: PractitionerId(id),
                key: p.key.clone(),
                given: p.given.clone(),
                family: p.family.clone(),
                email: email.clone(),
                hsa_id: p.hsa_id.clone(),
                national_ids: p.national_ids.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect(),
                communication_privileges: p.communication_privileges,
                prefix: p.prefix.clone(),
                specializations: p.specializations.clone(),
                license_numbers: p.license_numbers.clone(),
                active: true,
                appointment_messages: p.appointment_messages,
            };
            pr.validate()?;
            Ok(pr)
        })
        .await?;
        catalog::release_identifiers(conn, tid, "practitioner", id).await?;
        if let Some(h) = &p.hsa_id {
            catalog::claim_identifier(conn, tid, "practitioner", "hsa", h, id).await?;
        }
        if let Some(e) = &email {
            catalog::claim_identifier(conn, tid, "practitioner", "email", &e.as_str().to_ascii_lowercase(), id).await?;
        }
        for (country, nid) in &p.national_ids {
            let system = format!("national-id:{}", country.to_ascii_lowercase());
            catalog::claim_identifier(conn, tid, "practitioner", "national-id", &format!("{system}|{nid}"), id).await?;
        }
        ids.practitioners.insert(p.key.clone(), id.to_string());
    }

    for h in &t.healthcare_services {
        check_key("healthcare_service", &h.key)?;
        let practitioners = h
            .practitioners
            .iter()
            .map(|k| {
                ids.practitioners.get(k).and_then(|v| v.parse().ok()).map(PractitionerId).ok_or_else(|| {
                    CoreError::invalid("healthcare_services.practitioners", format!("unknown practitioner key `{k}`"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let list_price = h
            .list_price
            .as_ref()
            .map(|p| {
                let cur = p.currency.to_ascii_uppercase();
                let bytes: [u8; 3] = cur
                    .as_bytes()
                    .try_into()
                    .ok()
                    .filter(|b: &[u8; 3]| b.iter().all(u8::is_ascii_uppercase))
                    .ok_or_else(|| CoreError::invalid("list_price.currency", "must be an ISO 4217 code"))?;
                Ok::<_, CoreError>(Price {
                    minor_units: polyclinic_core::facility::parse_price_minor_units(p.amount)?,
                    currency: bytes,
                })
            })
            .transpose()?;
        let id = upsert_keyed(conn, Table::HealthcareServices, tid, &h.key, &[], |id| {
            let s = HealthcareService {
                id: HealthcareServiceId(id),
                key: h.key.clone(),
                name: h.name.clone(),
                practitioners: practitioners.clone(),
                reason_codes: h.reason_codes.clone(),
                slot_seconds: h.slot_seconds,
                service_line: h.service_line.clone(),
                service_type: h.service_type.clone(),
                opening_hours: h.opening_hours.clone(),
                digital: h.digital,
                list_price,
                allows_conversations: h.allows_conversations,
                active: true,
                geolocation_id: h
                    .geolocation_id
                    .as_deref()
                    .map(|g| {
                        g.parse().map_err(|_| {
                            CoreError::invalid("healthcare_services.geolocation_id", format!("`{g}` is not a UUID"))
                        })
                    })
                    .transpose()?,
            };
            s.validate()?;
            Ok(s)
        })
        .await?;
        ids.healthcare_services.insert(h.key.clone(), id.to_string());
    }

    // What Docplanner clients saw before, to tell them what changed.
    let addresses_before: Vec<Address> = catalog::list(conn, Table::Addresses, tid).await?;
    let clients_before = docplanner_queue::clients(conn, tid).await?;
    let previous_commercial: std::collections::HashMap<&str, Option<String>> =
        addresses_before.iter().map(|a| (a.key.as_str(), a.commercial_type.clone())).collect();

    for f in &t.facilities {
        check_key("facility", &f.key)?;
        let fid = upsert_keyed(conn, Table::Facilities, tid, &f.key, &[], |id| {
            Ok(Facility { id: FacilityId(id), key: f.key.clone(), name: f.name.clone() })
        })
        .await?;
        ids.facilities.insert(f.key.clone(), fid.to_string());
        for a in &f.addresses {
            check_key("address", &a.key)?;
            let doctor: i64 = ids.practitioners.get(&a.doctor).and_then(|v| v.parse().ok()).ok_or_else(|| {
                CoreError::invalid("addresses.doctor", format!("unknown practitioner key `{}`", a.doctor))
            })?;
            let service: Option<i64> = match &a.healthcare_service {
                Some(k) => Some(ids.healthcare_services.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| {
                    CoreError::invalid("addresses.healthcare_service", format!("unknown healthcare service key `{k}`"))
                })?),
                None => None,
            };
            if let Some(ct) = &a.commercial_type
                && !COMMERCIAL_TYPES.contains(&ct.as_str())
            {
                return Err(CoreError::invalid(
                    "addresses.commercial_type",
                    format!("`{ct}` is not one of {}", COMMERCIAL_TYPES.join(", ")),
                )
                .into());
            }
            // A new address given no type is `premium`; an existing one keeps its own.
            let commercial_type = match &a.commercial_type {
                Some(ct) => Some(ct.clone()),
                None => match previous_commercial.get(a.key.as_str()) {
                    Some(previous) => previous.clone(),
                    None => Some(polyclinic_core::facility::DEFAULT_COMMERCIAL_TYPE.to_owned()),
                },
            };
            let cols =
                [("facility_id", Some(fid)), ("practitioner_id", Some(doctor)), ("healthcare_service_id", service)];
            let aid = upsert_keyed(conn, Table::Addresses, tid, &a.key, &cols, |id| {
                Ok(Address {
                    id: AddressId(id),
                    key: a.key.clone(),
                    facility_id: FacilityId(fid),
                    practitioner_id: PractitionerId(doctor),
                    name: if a.name.is_empty() { f.name.clone() } else { a.name.clone() },
                    street: a.street.clone(),
                    city: a.city.clone(),
                    post_code: a.post_code.clone(),
                    healthcare_service_id: service.map(HealthcareServiceId),
                    is_online_only: a.is_online_only,
                    insurance_support: a.insurance_support,
                    commercial_type: commercial_type.clone(),
                    calendar_enabled: true,
                    integrated: true,
                })
            })
            .await?;
            ids.addresses.insert(a.key.clone(), aid.to_string());
        }
    }

    for c in &t.care_locations {
        check_key("care_location", &c.key)?;
        let id = upsert_keyed(conn, Table::CareLocations, tid, &c.key, &[], |id| {
            Ok(CareLocation {
                id: CareLocationId(id),
                key: c.key.clone(),
                name: c.name.clone(),
                building: c.building.clone(),
                floor: c.floor.clone(),
                room: c.room.clone(),
                bed: c.bed.clone(),
                department: c.department.clone(),
                device_serial: c.device_serial.clone(),
                patient_mrn: c.patient_mrn.clone(),
            })
        })
        .await?;
        ids.care_locations.insert(c.key.clone(), id.to_string());
    }

    for c in &t.credentials {
        let dialect = Dialect::parse(&c.dialect)
            .ok_or_else(|| CoreError::invalid("credentials.dialect", format!("unknown dialect `{}`", c.dialect)))?;
        let facilities =
            c.facilities
                .iter()
                .map(|k| {
                    ids.facilities.get(k).and_then(|v| v.parse().ok()).map(FacilityId).ok_or_else(|| {
                        CoreError::invalid("credentials.facilities", format!("unknown facility key `{k}`"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        if let Some(url) = &c.push_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(CoreError::invalid("credentials.push_url", "must be an http or https URL").into());
        }
        let (client_id, secret) = match dialect {
            Dialect::Embassy | Dialect::Solo => ("", c.api_key.as_deref()),
            Dialect::Naboto | Dialect::Fhir => ("", c.token.as_deref()),
            Dialect::Docplanner => (c.client_id.as_deref().unwrap_or(""), c.client_secret.as_deref()),
        };
        let secret = secret.ok_or_else(|| {
            CoreError::invalid(
                "credentials",
                format!("a {} credential needs its secret (api_key, token or client_secret)", dialect.as_str()),
            )
        })?;
        if dialect == Dialect::Docplanner && client_id.is_empty() {
            return Err(CoreError::invalid("credentials.client_id", "a docplanner credential needs a client_id").into());
        }
        let config = CredentialConfig {
            facilities,
            push_url: c.push_url.clone(),
            has_webhook_secret: c.webhook_secret.is_some(),
            has_push_api_key: c.push_api_key.is_some(),
            realtime_booking: c.realtime_booking,
        };
        if config.realtime_booking && config.push_url.is_none() {
            return Err(
                CoreError::invalid("credentials.realtime_booking", "real-time approval needs a push_url").into()
            );
        }
        let protocol_secrets =
            tenants::ProtocolSecrets { webhook_secret: c.webhook_secret.clone(), push_api_key: c.push_api_key.clone() };
        let sealed_secret = protocol_secrets.seal(key)?;
        tenants::upsert_credential(conn, tid, NewCredential { dialect, client_id, secret, sealed_secret, config })
            .await?;
    }

    let addresses_after: Vec<Address> = catalog::list(conn, Table::Addresses, tid).await?;
    let clients_after = docplanner_queue::clients(conn, tid).await?;
    let events = address_events(&addresses_before, &addresses_after, &clients_before, &clients_after);
    crate::outbox::append(conn, tid, now, &events).await?;
    Ok(ids)
}

/// The Docplanner address events a seed causes, comparing the addresses and
/// the Docplanner clients before and after it:
///
/// - `AddressUnassigned` / `AddressAssigned` for each address a client that
///   existed before stops or starts seeing (a new address in one of its
///   facilities, an address moved between facilities, a facility added to or
///   removed from the client), with `credential_ids` naming those clients.
///   A client created by this seed learns its addresses by reading the API.
/// - `AddressCommercialTypeChanged` for each existing address whose
///   `commercial_type` changed.
fn address_events(
    before: &[Address],
    after: &[Address],
    clients_before: &[polyclinic_core::tenant::Credential],
    clients_after: &[polyclinic_core::tenant::Credential],
) -> Vec<polyclinic_core::event::NewEvent> {
    use polyclinic_core::event::{EventKind, NewEvent};
    use serde_json::json;
    let sees = |c: &polyclinic_core::tenant::Credential, a: &Address| c.config.facilities.contains(&a.facility_id);
    let before_by_id: std::collections::HashMap<i64, &Address> = before.iter().map(|a| (a.id.get(), a)).collect();
    let after_by_id: std::collections::HashMap<i64, &Address> = after.iter().map(|a| (a.id.get(), a)).collect();
    // address id -> (facility, clients)
    let mut unassigned: BTreeMap<i64, (FacilityId, Vec<String>)> = BTreeMap::new();
    let mut assigned: BTreeMap<i64, (FacilityId, Vec<String>)> = BTreeMap::new();
    for old in clients_before {
        let Some(new) = clients_after.iter().find(|c| c.id == old.id) else { continue };
        for a in before.iter().filter(|a| sees(old, a)) {
            if !after_by_id.get(&a.id.get()).is_some_and(|b| sees(new, b)) {
                unassigned.entry(a.id.get()).or_insert_with(|| (a.facility_id, Vec::new())).1.push(old.id.to_string());
            }
        }
        for a in after.iter().filter(|a| sees(new, a)) {
            if !before_by_id.get(&a.id.get()).is_some_and(|b| sees(old, b)) {
                assigned.entry(a.id.get()).or_insert_with(|| (a.facility_id, Vec::new())).1.push(old.id.to_string());
            }
        }
    }
    let mut events = Vec::new();
    for (kind, changes) in [(EventKind::AddressUnassigned, unassigned), (EventKind::AddressAssigned, assigned)] {
        for (id, (facility, clients)) in changes {
            let data =
                json!({"address_id": id.to_string(), "facility_id": facility.to_string(), "credential_ids": clients});
            events.push(NewEvent::new(kind, "address", id, data));
        }
    }
    for a in after {
        let shown = |x: &Address| {
            x.commercial_type.clone().unwrap_or_else(|| polyclinic_core::facility::DEFAULT_COMMERCIAL_TYPE.to_owned())
        };
        if let Some(old) = before_by_id.get(&a.id.get())
            && shown(old) != shown(a)
        {
            let data = json!({"address_id": a.id.to_string(), "facility_id": a.facility_id.to_string(),
                "commercial_type": a.commercial_type, "previous_commercial_type": old.commercial_type});
            events.push(NewEvent::new(EventKind::AddressCommercialTypeChanged, "address", a.id, data));
        }
    }
    events
}
