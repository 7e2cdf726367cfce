//! Appointment: create (with every participant rule of the spec), read,
//! search (GET and POST `_search`) and PATCH (cancel, reschedule).

use super::Path;
use super::patients::{national_id, national_id_country, parse_names, parse_telecom};
use super::search::{Page, SearchParams, bundle, keyset_bundle};
use super::systems::*;
use super::{Caller, EmbassyError, FhirJson, Prefer, fhir, respond};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, ActorKind, Appointment, Participant, ParticipantRole, ParticipantWho};
use polyclinic_core::patient::{
    ContactSystem, HumanName, Identifier, NameUse, Patient, RelatedKind, RelatedPerson, pick_name, preferred_contact,
    systems,
};
use polyclinic_core::schedule::{Interval, is_whole_minute};
use polyclinic_core::service::HealthcareService;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_core::text::{Email, Phone};
use polyclinic_core::time_rules::TimeRule;
use polyclinic_core::{AppointmentId, CoreError, HealthcareServiceId, PatientId, PractitionerId};
use polyclinic_http::AppState;
use polyclinic_scheduling::{BookedPatient, Booking, Place, SchedulingError};
use polyclinic_store::appointments::{self, PageQuery};
use polyclinic_store::catalog::Snapshot;
use polyclinic_store::{StoreError, patients};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/Appointment", get(search).post(create))
        .route("/Appointment/_search", post(search))
        .route("/Appointment/{id}", get(read).patch(patch))
}

fn unprocessable(code: &'static str, message: impl Into<String>) -> EmbassyError {
    EmbassyError::unprocessable(code, message)
}

/// Parses a FHIR dateTime/instant with an offset, within the years 1900 to
/// 9000 ([`polyclinic_core::clock::in_range`]): no duration or notice added to
/// it can overflow.
fn instant(v: &str) -> Option<Timestamp> {
    v.parse::<Timestamp>().ok().filter(|t| polyclinic_core::clock::in_range(*t))
}

// ---------------------------------------------------------------- output

/// The Appointment resource as Embassy shows it.
pub fn resource(a: &Appointment, service: Option<&HealthcareService>) -> Value {
    let mut contained = Vec::new();
    let mut participants = Vec::new();
    let represented: Vec<PatientId> = a
        .participants
        .iter()
        .filter_map(|p| match &p.who {
            ParticipantWho::RelatedPerson(rp) => rp.patient,
            _ => None,
        })
        .collect();
    for (i, p) in a.participants.iter().enumerate() {
        let pid = format!("{}{:02}", a.id, i + 1);
        let mut ext = vec![json!({"url": EXT_PARTICIPANT_ID, "valueUri": pid})];
        let mut part = json!({});
        match &p.who {
            ParticipantWho::Practitioner(id) => {
                part["actor"] = json!({"type": "Practitioner", "identifier": {"system": PRACTITIONER_VISIBA, "value": id.to_string()}});
                if p.roles.contains(&ParticipantRole::PrimaryPerformer) {
                    part["type"] = json!([{"coding": [{"system": PARTICIPATION_TYPE, "code": "PPRF"}]}]);
                }
            }
            ParticipantWho::Patient(id) if represented.contains(id) => {
                contained.push(json!({"resourceType": "Patient", "id": format!("p{id}")}));
                ext.clear();
                part["actor"] = json!({"reference": format!("#p{id}"), "type": "Patient"});
            }
            ParticipantWho::Patient(id) => {
                if let Some(v) = &p.video {
                    ext.push(json!({"url": EXT_TICKET, "valueUri": v.key}));
                }
                if let Some(price) = service.and_then(|s| s.list_price) {
                    ext.push(json!({"url": EXT_LIST_PRICE, "valueMoney": {
                        "value": price.minor_units as f64 / 100.0,
                        "currency": String::from_utf8_lossy(&price.currency)
                    }}));
                }
                part["actor"] =
                    json!({"type": "Patient", "identifier": {"system": PATIENT_VISIBA, "value": id.to_string()}});
            }
            ParticipantWho::RelatedPerson(rp) => {
                let cid = format!("rp{}", i + 1);
                if rp.kind == RelatedKind::Representative
                    && let Some(v) = &p.video
                {
                    ext.push(json!({"url": EXT_TICKET, "valueUri": v.key}));
                }
                contained.push(related_resource(&cid, rp));
                part["actor"] = json!({"reference": format!("#{cid}"), "type": "RelatedPerson"});
            }
            ParticipantWho::HealthcareService(id) => {
                ext.clear();
                part["actor"] = json!({"type": "HealthcareService", "identifier": {"system": SERVICE_VISIBA, "value": id.to_string()}});
            }
        }
        let mut entry = json!({});
        if !ext.is_empty() {
            entry["extension"] = Value::Array(ext);
        }
        if let Some(t) = part.get("type") {
            entry["type"] = t.clone();
        }
        entry["actor"] = part["actor"].clone();
        entry["status"] = json!("accepted");
        participants.push(entry);
    }
    let mut r = json!({"resourceType": "Appointment", "id": a.id.to_string()});
    if !contained.is_empty() {
        // Represented patients first, as the participants reference them.
        contained.sort_by_key(|c| c["resourceType"] != "Patient");
        r["contained"] = Value::Array(contained);
    }
    r["status"] = json!(a.status.embassy());
    r["appointmentType"] =
        json!({"coding": [{"system": APPOINTMENT_TYPE, "code": if a.digital { "Digital" } else { "Physical" }}]});
    if let Some(d) = &a.description {
        r["description"] = json!(d);
    }
    r["start"] = json!(a.interval.start.to_string());
    r["end"] = json!(a.interval.end.to_string());
    r["participant"] = Value::Array(participants);
    r
}

fn related_resource(cid: &str, rp: &RelatedPerson) -> Value {
    let mut r = json!({"resourceType": "RelatedPerson", "id": cid});
    if !rp.identifiers.is_empty() {
        r["identifier"] = Value::Array(
            rp.identifiers
                .iter()
                .map(|i| {
                    let system = if i.system.starts_with(systems::NATIONAL_ID_PREFIX) {
                        RELATED_NATIONAL_ID
                    } else {
                        i.system.as_str()
                    };
                    json!({"system": system, "value": i.value})
                })
                .collect(),
        );
    }
    if let Some(pid) = rp.patient {
        r["patient"] = json!({"reference": format!("#p{pid}"), "type": "Patient"});
        r["relationship"] = json!([{"coding": [{"system": RELATIONSHIP, "code": "Representative"}]}]);
    }
    if let Some(n) = pick_name(&rp.names) {
        r["name"] = json!([super::patients::name_json(n)]);
    }
    let telecom: Vec<Value> = [ContactSystem::Email, ContactSystem::Phone]
        .into_iter()
        .filter_map(|s| preferred_contact(&rp.telecom, s))
        .map(|c| json!({"system": if c.system == ContactSystem::Email { "email" } else { "phone" }, "value": c.value}))
        .collect();
    if !telecom.is_empty() {
        r["telecom"] = Value::Array(telecom);
    }
    r
}

// ---------------------------------------------------------------- create

/// Everything the participants name, resolved against the customer's data,
/// and what the booking must create in its own transaction.
struct Resolved {
    service: HealthcareService,
    participants: Vec<Participant>,
    /// Represented patients that do not exist yet.
    new_patients: Vec<BookedPatient>,
    /// Representatives seen for the first time.
    new_representatives: Vec<RelatedPerson>,
}

pub(super) struct Lookup {
    pub(super) tenant: Tenant,
    /// The tenant's practitioners and healthcare services (from memory,
    /// see `polyclinic_http::cache`).
    pub(super) catalog: Arc<Snapshot>,
}

impl Lookup {
    pub(super) fn practitioner(&self, system: &str, value: &str) -> Result<Option<PractitionerId>, EmbassyError> {
        if value.trim().is_empty() {
            return Err(unprocessable(
                "PractitionerIdentifierValueNotDefined",
                format!("the practitioner identifier of system {system} has no value"),
            ));
        }
        let invalid = || {
            unprocessable("PractitionerIdentifierValueInvalid", format!("`{value}` is not a valid value for {system}"))
        };
        let found = match system {
            PRACTITIONER_VISIBA => {
                let id: i64 = value.parse().ok().filter(|v| *v > 0).ok_or_else(invalid)?;
                self.catalog.practitioner(id)
            }
            PRACTITIONER_HSA => {
                if !polyclinic_core::practitioner::is_hsa_id(value) {
                    return Err(invalid());
                }
                self.catalog.practitioner_by_hsa(value)
            }
            PRACTITIONER_EMAIL => {
                let e = Email::parse(value).map_err(|_| invalid())?;
                self.catalog.practitioner_by_email(e.as_str())
            }
            s if s.starts_with(NATIONAL_ID_PREFIX) => {
                let cc = s.trim_start_matches(NATIONAL_ID_PREFIX).to_ascii_lowercase();
                let v = national_id(&cc, value).ok_or_else(invalid)?;
                self.catalog.practitioners.iter().find(|p| {
                    p.national_ids.get(&cc).is_some_and(|n| national_id(&cc, n).as_deref() == Some(v.as_str()))
                })
            }
            _ => {
                return Err(unprocessable(
                    "PractitionerIdentifierNotSupported",
                    format!("identifier system `{system}` is not supported for practitioners"),
                ));
            }
        };
        Ok(found.map(|p| p.id))
    }
}

/// A patient identifier resolved to the patient lookup it needs.
pub(super) enum PatientKey {
    Id(PatientId),
    Identifier(Identifier),
    Phone(String),
}

pub(super) fn patient_key(system: &str, value: &str, tenant: &Tenant) -> Result<PatientKey, EmbassyError> {
    if value.trim().is_empty() {
        return Err(unprocessable(
            "PatientIdentifierValueNotDefined",
            format!("the patient identifier of system {system} has no value"),
        ));
    }
    let invalid =
        || unprocessable("PatientIdentifierValueInvalid", format!("`{value}` is not a valid value for {system}"));
    if system == PATIENT_VISIBA {
        return value.parse::<PatientId>().map(PatientKey::Id).map_err(|_| invalid());
    }
    if system == PATIENT_PHONE {
        let phone: String = Phone::parse(value).map_err(|_| invalid())?.into();
        return Ok(if tenant.settings.phone_is_identifier {
            PatientKey::Identifier(Identifier { system: systems::PHONE.into(), value: phone })
        } else {
            PatientKey::Phone(phone)
        });
    }
    if let Some(cc) = national_id_country(system, tenant) {
        let v = national_id(&cc, value).ok_or_else(invalid)?;
        return Ok(PatientKey::Identifier(Identifier {
            system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX),
            value: v,
        }));
    }
    Err(unprocessable(
        "PatientIdentifierNotSupported",
        format!("identifier system `{system}` is not supported for patients"),
    ))
}

/// The parsed request, before anything is looked up or written.
struct Draft {
    interval: Interval,
    description: Option<String>,
    service_values: Vec<(String, String)>,
    practitioners: Vec<(String, String, bool)>,
    patients: Vec<PatientKey>,
    /// Related persons, as given, with the contained patient a
    /// representative represents.
    related: Vec<RelatedDraft>,
}

/// A contained related person, read but not yet resolved: a representative
/// named by identifier may already be known, and then only the patient it
/// represents matters.
struct RelatedDraft {
    raw: Value,
    representative: bool,
    represented: Option<ContainedPatient>,
}

struct ContainedPatient {
    names: Vec<HumanName>,
    national_id: Identifier,
}

fn parse_time(
    body: &Value,
    field: &str,
    required: &'static str,
    precision: &'static str,
) -> Result<Timestamp, EmbassyError> {
    let raw = body
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| unprocessable(required, format!("`{field}` is required")))?;
    let t = instant(raw).ok_or_else(|| {
        EmbassyError::invalid("InvalidFhirResource", format!("`{field}` `{raw}` is not a FHIR instant"))
    })?;
    if !is_whole_minute(t) {
        return Err(unprocessable(precision, format!("`{field}` must not have seconds or milliseconds set")));
    }
    Ok(t)
}

fn parse_draft(body: &Value, tenant: &Tenant) -> Result<Draft, EmbassyError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the body must be an Appointment resource"));
    }
    if body.get("status").and_then(Value::as_str) != Some("booked") {
        return Err(unprocessable("OnlyBookedStatusSupported", "the status must be `booked`"));
    }
    let start = parse_time(body, "start", "StartTimeIsRequired", "StartTimeMustNotHaveSecondsOrMillisecondsSet")?;
    let end = parse_time(body, "end", "EndTimeIsRequired", "EndTimeMustNotHaveSecondsOrMillisecondsSet")?;
    let description = body.get("description").and_then(Value::as_str).map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.chars().count() > polyclinic_core::text::MAX_TEXT) {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the description is too long"));
    }
    let contained: HashMap<String, &Value> = body
        .get("contained")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c.get("id")?.as_str()?.trim_start_matches('#').to_owned(), c)))
        .collect();
    let participants = body.get("participant").and_then(Value::as_array).cloned().unwrap_or_default();
    if participants.len() > 32 {
        return Err(unprocessable("ParticipantError", "too many participants"));
    }
    let mut d = Draft {
        interval: Interval { start, end },
        description,
        service_values: vec![],
        practitioners: vec![],
        patients: vec![],
        related: vec![],
    };
    let mut referenced: Vec<String> = Vec::new();
    let mut represented_refs: Vec<String> = Vec::new();
    let mut contained_patient_refs: Vec<String> = Vec::new();
    for p in &participants {
        let actor =
            p.get("actor").ok_or_else(|| unprocessable("InvalidParticipants", "every participant needs an actor"))?;
        let kind = actor
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| unprocessable("InvalidParticipants", "every participant's actor needs a type"))?;
        let ident = actor.get("identifier");
        let system = ident.and_then(|i| i.get("system")).and_then(Value::as_str).unwrap_or("").to_owned();
        let value = ident.and_then(|i| i.get("value")).and_then(Value::as_str).unwrap_or("").to_owned();
        let reference = actor.get("reference").and_then(Value::as_str).map(|r| r.trim_start_matches('#').to_owned());
        match kind {
            "HealthcareService" => d.service_values.push((system, value)),
            "Practitioner" => {
                if ident.is_none() {
                    return Err(unprocessable("InvalidParticipants", "a practitioner participant needs an identifier"));
                }
                let primary = p.get("type").and_then(Value::as_array).into_iter().flatten().any(|t| {
                    t.get("coding")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .any(|c| c.get("code").and_then(Value::as_str) == Some("PPRF"))
                });
                d.practitioners.push((system, value, primary));
            }
            "Patient" => match reference {
                Some(r) => contained_patient_refs.push(r),
                None if ident.is_some() => d.patients.push(patient_key(&system, &value, tenant)?),
                None => {
                    return Err(unprocessable(
                        "InvalidParticipants",
                        "a patient participant needs an identifier or a contained reference",
                    ));
                }
            },
            "RelatedPerson" => {
                let r = reference.ok_or_else(|| {
                    unprocessable(
                        "AllRelatedPersonsMustBeContained",
                        "a related person must reference a contained resource",
                    )
                })?;
                let res = contained
                    .get(&r)
                    .filter(|c| c.get("resourceType").and_then(Value::as_str) == Some("RelatedPerson"))
                    .ok_or_else(|| {
                        unprocessable(
                            "AllRelatedPersonsMustBeContained",
                            format!("no contained RelatedPerson with id {r}"),
                        )
                    })?;
                referenced.push(r.clone());
                let representative = is_representative(res);
                let patient_ref = res
                    .pointer("/patient/reference")
                    .and_then(Value::as_str)
                    .map(|r| r.trim_start_matches('#').to_owned());
                if representative && patient_ref.is_none() {
                    return Err(unprocessable(
                        "PatientOfRelatedPersonNotFound",
                        "a representative must reference the patient it represents",
                    ));
                }
                // Guests are validated now; representatives once it is known
                // whether they already exist.
                if !representative {
                    parse_related(res, tenant)?;
                }
                if let Some(pr) = &patient_ref {
                    represented_refs.push(pr.clone());
                }
                let represented = match patient_ref {
                    None => None,
                    Some(pr) => {
                        let cp = contained
                            .get(&pr)
                            .filter(|c| c.get("resourceType").and_then(Value::as_str) == Some("Patient"))
                            .ok_or_else(|| {
                                unprocessable(
                                    "PatientOfRelatedPersonNotFound",
                                    format!("the represented patient #{pr} is not contained"),
                                )
                            })?;
                        Some(parse_contained_patient(cp, tenant)?)
                    }
                };
                d.related.push(RelatedDraft { raw: (*res).clone(), representative, represented });
            }
            other => return Err(unprocessable("InvalidParticipants", format!("`{other}` is not a participant type"))),
        }
    }
    // Every contained related person is a participant, and every represented
    // patient appears among the participants.
    for (id, c) in &contained {
        if c.get("resourceType").and_then(Value::as_str) == Some("RelatedPerson") && !referenced.contains(id) {
            return Err(unprocessable(
                "AllRelatedPersonsMustBeContained",
                format!("the contained RelatedPerson {id} is not a participant"),
            ));
        }
    }
    for r in &represented_refs {
        if !contained_patient_refs.contains(r) {
            return Err(unprocessable(
                "PatientOfRelatedPersonNotFound",
                format!("the represented patient #{r} is not a participant"),
            ));
        }
    }
    for r in &contained_patient_refs {
        if !represented_refs.contains(r) {
            return Err(unprocessable(
                "PatientOfRelatedPersonNotFound",
                format!("the contained patient #{r} is not represented by any related person"),
            ));
        }
    }
    Ok(d)
}

fn is_representative(v: &Value) -> bool {
    v.get("relationship").and_then(Value::as_array).into_iter().flatten().any(|r| {
        r.get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c.get("code").and_then(Value::as_str) == Some("Representative"))
    })
}

fn parse_related(v: &Value, tenant: &Tenant) -> Result<(RelatedPerson, Option<String>), EmbassyError> {
    let representative = is_representative(v);
    let patient_ref =
        v.pointer("/patient/reference").and_then(Value::as_str).map(|r| r.trim_start_matches('#').to_owned());
    if representative && patient_ref.is_none() {
        return Err(unprocessable(
            "PatientOfRelatedPersonNotFound",
            "a representative must reference the patient it represents",
        ));
    }
    let kind = if representative { RelatedKind::Representative } else { RelatedKind::Guest };
    let mut rp = RelatedPerson {
        kind,
        names: parse_names(v.get("name")),
        telecom: vec![],
        identifiers: vec![],
        language: None,
        country: None,
        patient: None,
    };
    if let Some(n) = pick_name(&rp.names).cloned() {
        rp.names = vec![HumanName { use_: Some(NameUse::Official), ..n }];
    }
    if !rp.check_name() {
        return Err(unprocessable(
            "RelatedPersonInvalidName",
            if representative {
                "a representative needs both a given name and a family name"
            } else {
                "a guest needs a given name or a family name"
            },
        ));
    }
    // Contact points: phone over sms, mobile over home over work, else the first.
    let points = parse_telecom(v.get("telecom"));
    for (kinds, is_phone) in
        [(vec![ContactSystem::Phone, ContactSystem::Sms], true), (vec![ContactSystem::Email], false)]
    {
        let candidates: Vec<_> = points.iter().filter(|c| kinds.contains(&c.system)).collect();
        let Some(first) = candidates.first() else { continue };
        let best = kinds.iter().find_map(|k| preferred_contact(&points, *k)).unwrap_or(first);
        let mut c = best.clone();
        if is_phone {
            c.system = ContactSystem::Phone;
            c.value = Phone::parse(&c.value)
                .map_err(|_| {
                    unprocessable(
                        "InvalidPhoneNumberOfRelatedPerson",
                        format!("`{}` is not a valid phone number", best.value),
                    )
                })?
                .into();
        } else {
            c.value = Email::parse(&c.value)
                .map_err(|_| {
                    unprocessable(
                        "InvalidEmailOfRelatedPerson",
                        format!("`{}` is not a valid e-mail address", best.value),
                    )
                })?
                .into();
        }
        rp.telecom.push(c);
    }
    if rp.telecom.is_empty() {
        return Err(unprocessable(
            "RelatedPersonMustHaveOneValidContactPoint",
            "a related person needs a phone number or an e-mail address",
        ));
    }
    if let Some(code) = v
        .pointer("/communication/0/language/coding")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c.get("system").and_then(Value::as_str).is_none_or(|s| s == LANGUAGES)))
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
    {
        let lang = code.split('-').next().unwrap_or(code).to_ascii_lowercase();
        if !tenant.settings.allows_language(&tenant.language, &lang) {
            return Err(unprocessable(
                "RelatedPersonInvalidLanguage",
                format!("language `{code}` is not supported by the customer"),
            ));
        }
        rp.language = Some(lang);
    }
    if let Some(cc) = v.pointer("/address/0/country").and_then(Value::as_str) {
        if cc.len() != 2 || !tenant.settings.allows_country(&tenant.country, cc) {
            return Err(unprocessable(
                "RelatedPersonInvalidCountry",
                format!("country `{cc}` is not supported by the customer"),
            ));
        }
        rp.country = Some(cc.to_ascii_uppercase());
    }
    let country =
        v.pointer("/address/0/country").and_then(Value::as_str).unwrap_or(&tenant.country).to_ascii_uppercase();
    let methods = &tenant.settings.guest_authentication;
    if !methods.is_empty() {
        use polyclinic_core::tenant::GuestAuthentication as Auth;
        let method = methods.get(&country).ok_or_else(|| {
            unprocessable(
                "NoDefaultAuthenticationForCountryOfRelatedPerson",
                format!("the customer has no default sign-in method for {country}"),
            )
        })?;
        let has = |s: ContactSystem| rp.telecom.iter().any(|c| c.system == s);
        match method {
            Auth::Email if !has(ContactSystem::Email) => {
                return Err(unprocessable(
                    "EmailRequiredForRelatedPersonGivenDefaultAuthentication",
                    format!("related persons from {country} sign in by e-mail; an e-mail address is required"),
                ));
            }
            Auth::Sms if !has(ContactSystem::Phone) => {
                return Err(unprocessable(
                    "PhoneNumberRequiredForRelatedPersonGivenDefaultAuthentication",
                    format!("related persons from {country} sign in by text message; a phone number is required"),
                ));
            }
            _ => {}
        }
    }
    if let Some(i) = v.get("identifier").and_then(Value::as_array).and_then(|ids| ids.first()) {
        let system = i.get("system").and_then(Value::as_str).unwrap_or("");
        let value = i.get("value").and_then(Value::as_str).unwrap_or("").trim();
        if value.is_empty() {
            return Err(unprocessable(
                "PatientIdentifierValueNotDefined",
                "the representative's identifier has no value",
            ));
        }
        match system {
            RELATED_NATIONAL_ID => {
                let cc = rp.country.clone().unwrap_or_else(|| tenant.country.clone()).to_ascii_lowercase();
                let v = national_id(&cc, value).ok_or_else(|| {
                    unprocessable(
                        "InvalidNationalIdentityNumber",
                        format!("`{value}` is not a valid national identity number"),
                    )
                })?;
                rp.identifiers.push(Identifier { system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX), value: v });
            }
            RELATED_VISIBA | RELATED_PHONE => {
                rp.identifiers.push(Identifier { system: system.to_owned(), value: value.to_owned() })
            }
            _ => {
                return Err(unprocessable(
                    "PatientIdentifierNotSupported",
                    format!("identifier system `{system}` is not supported for related persons"),
                ));
            }
        }
    }
    if representative
        && tenant.settings.national_id_required
        && !rp.identifiers.iter().any(|i| i.system.starts_with(systems::NATIONAL_ID_PREFIX))
    {
        return Err(unprocessable(
            "NationalIdentityNumberRequired",
            "the customer requires a national identification number for representatives",
        ));
    }
    Ok((rp, patient_ref))
}

fn parse_contained_patient(v: &Value, tenant: &Tenant) -> Result<ContainedPatient, EmbassyError> {
    let names = parse_names(v.get("name"));
    if !pick_name(&names).is_some_and(HumanName::has_any) {
        return Err(unprocessable(
            "NameOfPatientOfRelatedPersonInvalid",
            "the represented patient needs a given name or a family name",
        ));
    }
    let national = v.get("identifier").and_then(Value::as_array).into_iter().flatten().find_map(|i| {
        let cc = national_id_country(i.get("system").and_then(Value::as_str).unwrap_or(""), tenant)?;
        let value = national_id(&cc, i.get("value").and_then(Value::as_str).unwrap_or(""))?;
        Some(Identifier { system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX), value })
    });
    let national_id = national.ok_or_else(|| {
        unprocessable(
            "NationalIdentificationOfPatientOfRelatedPersonInvalid",
            "the represented patient needs a valid national identification number",
        )
    })?;
    Ok(ContainedPatient { names, national_id })
}

/// Looks everything up and builds the participants; creates represented
/// patients that do not exist yet (inside the booking's transaction).
async fn resolve(d: &Draft, lookup: &Lookup, state: &AppState) -> Result<Resolved, EmbassyError> {
    if d.service_values.len() != 1 {
        return Err(unprocessable(
            "ExactlyOneHealthcareServiceRequired",
            "there must be exactly one healthcare service participant",
        ));
    }
    let (system, value) = &d.service_values[0];
    if system != SERVICE_VISIBA && system != SERVICE_VISIBA_ALT {
        return Err(unprocessable(
            "HealthcareServiceMustHaveVisibaCareId",
            format!("the healthcare service must be identified with {SERVICE_VISIBA}"),
        ));
    }
    let service =
        value.parse::<i64>().ok().and_then(|id| lookup.catalog.healthcare_service(id).cloned()).ok_or_else(|| {
            unprocessable(
                "HealthcareServiceNotFound",
                format!("healthcare service {value} was not found on the customer"),
            )
        })?;
    if d.practitioners.is_empty() {
        return Err(unprocessable("AtleastOnePractitionerRequired", "at least one practitioner is required"));
    }
    let primaries = d.practitioners.iter().filter(|p| p.2).count();
    if primaries != 1 {
        return Err(unprocessable(
            "ExactlyOnePractitionerShouldBePrimaryPerformer",
            format!("exactly one practitioner must be the primary performer (PPRF), found {primaries}"),
        ));
    }
    let mut participants = Vec::new();
    let mut seen_practitioners = Vec::new();
    for (system, value, primary) in &d.practitioners {
        let id = lookup.practitioner(system, value)?.ok_or_else(|| {
            if *primary {
                unprocessable(
                    "PrimaryPerformerNotFound",
                    format!("the primary performer {value} was not found on the customer"),
                )
            } else {
                unprocessable("PractitionerNotFound", format!("practitioner {value} was not found on the customer"))
            }
        })?;
        if *primary && !service.has_practitioner(id) {
            return Err(unprocessable(
                "PrimaryPerformerNotFoundOnHealthcareService",
                "the primary performer does not practise on the healthcare service",
            ));
        }
        if seen_practitioners.contains(&id) {
            return Err(unprocessable("ParticipantError", "a practitioner appears more than once"));
        }
        seen_practitioners.push(id);
        let role = if *primary { ParticipantRole::PrimaryPerformer } else { ParticipantRole::SecondaryPerformer };
        participants.push(participant(ParticipantWho::Practitioner(id), role));
    }
    let tenant = lookup.tenant.id;
    let mut seen_patients = Vec::new();
    for key in &d.patients {
        let patient = find_patient(state, tenant, key).await?;
        let id = patient.id.ok_or_else(|| EmbassyError::from(StoreError::Corrupt("patient without id".into())))?;
        if seen_patients.contains(&id) {
            return Err(unprocessable("ParticipantError", "a patient appears more than once"));
        }
        seen_patients.push(id);
        participants.push(participant(ParticipantWho::Patient(id), ParticipantRole::Participant));
    }
    let mut new_patients = Vec::new();
    let mut new_representatives = Vec::new();
    for rd in &d.related {
        let mut rp = if rd.representative {
            match known_representative(state, &lookup.tenant, &rd.raw).await? {
                Some(known) => known,
                None => {
                    let (rp, _) = parse_related(&rd.raw, &lookup.tenant)?;
                    new_representatives.push(RelatedPerson { patient: None, ..rp.clone() });
                    rp
                }
            }
        } else {
            parse_related(&rd.raw, &lookup.tenant)?.0
        };
        if let Some(cp) = &rd.represented {
            let existing = existing_patient(state, &lookup.tenant, cp).await?;
            match existing {
                Some(id) => {
                    if seen_patients.contains(&id) {
                        return Err(unprocessable("ParticipantError", "a represented patient appears more than once"));
                    }
                    seen_patients.push(id);
                    rp.patient = Some(id);
                }
                None => new_patients.push(BookedPatient {
                    patient: new_patient(&lookup.tenant, cp),
                    participant: participants.len(),
                    represented_by: Some(participants.len() + 1),
                }),
            }
            let who = ParticipantWho::Patient(existing.unwrap_or(PatientId(0)));
            participants.push(Participant {
                who,
                roles: vec![ParticipantRole::Participant],
                video: None,
                required: None,
                status: Some("accepted".into()),
            });
        }
        participants.push(participant(ParticipantWho::RelatedPerson(Box::new(rp)), ParticipantRole::Participant));
    }
    participants.push(Participant {
        who: ParticipantWho::HealthcareService(service.id),
        roles: vec![ParticipantRole::Participant],
        video: None,
        required: None,
        status: Some("accepted".into()),
    });
    // Counting: not the healthcare service; a representative and its patient once.
    let represented = d.related.iter().filter(|r| r.represented.is_some()).count();
    let counted = participants.len() - 1 - represented;
    if counted < 2 {
        return Err(unprocessable(
            "InvalidAmountOfParticipants",
            "an appointment needs at least 2 participants besides the healthcare service",
        ));
    }
    if counted > polyclinic_core::appointment::MAX_PARTICIPANTS {
        return Err(unprocessable(
            "ParticipantError",
            "an appointment can have at most 10 participants (a representative and its patient count as one)",
        ));
    }
    Ok(Resolved { service, participants, new_patients, new_representatives })
}

/// A participant as the request names it; its video key, if the visit is
/// digital, is the scheduling layer's to give.
fn participant(who: ParticipantWho, role: ParticipantRole) -> Participant {
    Participant { who, roles: vec![role], video: None, required: None, status: Some("accepted".into()) }
}

/// Finds the one patient a key names: `PatientNotFound`, or
/// `ConflictingPatientsFound` when a non-unique phone matches several.
pub(super) async fn find_patient(
    state: &AppState,
    tenant: polyclinic_core::TenantId,
    key: &PatientKey,
) -> Result<Patient, EmbassyError> {
    let found: Vec<Patient> = match key {
        PatientKey::Id(id) => {
            let id = *id;
            state
                .store
                .read(move |c| Box::pin(async move { patients::get(c, tenant, id).await }))
                .await?
                .into_iter()
                .collect()
        }
        PatientKey::Identifier(i) => {
            let i = i.clone();
            state
                .store
                .read(move |c| Box::pin(async move { patients::find_by(c, tenant, &i.system, &i.value).await }))
                .await?
                .into_iter()
                .collect()
        }
        PatientKey::Phone(p) => {
            let p = p.clone();
            state.store.read(move |c| Box::pin(async move { patients::find_by_contact(c, tenant, &p).await })).await?
        }
    };
    match found.as_slice() {
        [] => Err(unprocessable("PatientNotFound", "the patient was not found on the customer; create it first")),
        [one] => Ok(one.clone()),
        _ => Err(unprocessable("ConflictingPatientsFound", "the patient identifier matches more than one patient")),
    }
}

/// A representative named by its first identifier, when the customer already
/// knows it: then nothing else about it is read (the spec: "we will ignore any
/// other information apart from which patient it refers to").
async fn known_representative(
    state: &AppState,
    tenant: &Tenant,
    raw: &Value,
) -> Result<Option<RelatedPerson>, EmbassyError> {
    let Some(i) = raw.get("identifier").and_then(Value::as_array).and_then(|ids| ids.first()) else { return Ok(None) };
    let system = i.get("system").and_then(Value::as_str).unwrap_or("").to_owned();
    let value = i.get("value").and_then(Value::as_str).unwrap_or("").trim().to_owned();
    let tid = tenant.id;
    let found = if system.eq_ignore_ascii_case(RELATED_NATIONAL_ID) {
        let cc =
            raw.pointer("/address/0/country").and_then(Value::as_str).unwrap_or(&tenant.country).to_ascii_lowercase();
        let Some(v) = national_id(&cc, &value) else { return Ok(None) };
        let key = format!("{}{cc}", systems::NATIONAL_ID_PREFIX);
        state
            .store
            .read(move |c| Box::pin(async move { polyclinic_store::related::find_by(c, tid, &key, &v).await }))
            .await?
    } else if system.eq_ignore_ascii_case(RELATED_PHONE) {
        let Ok(phone) = Phone::parse(&value) else { return Ok(None) };
        let phone: String = phone.into();
        state
            .store
            .read(move |c| Box::pin(async move { polyclinic_store::related::find_by_phone(c, tid, &phone).await }))
            .await?
    } else if system.eq_ignore_ascii_case(RELATED_VISIBA) {
        let Ok(id) = value.parse::<i64>() else { return Ok(None) };
        state
            .store
            .read(move |c| Box::pin(async move { polyclinic_store::related::get(c, tid, id).await }))
            .await?
            .into_iter()
            .collect()
    } else {
        return Ok(None);
    };
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.into_iter().next()),
        _ => Err(unprocessable(
            "ConflictingRepresentativesFound",
            "the representative's identifier matches more than one person",
        )),
    }
}

/// The existing patient a contained (represented) patient names, if any.
async fn existing_patient(
    state: &AppState,
    tenant: &Tenant,
    cp: &ContainedPatient,
) -> Result<Option<PatientId>, EmbassyError> {
    let (tid, ident) = (tenant.id, cp.national_id.clone());
    let existing = state
        .store
        .read(move |c| Box::pin(async move { patients::find_by(c, tid, &ident.system, &ident.value).await }))
        .await?;
    Ok(existing.and_then(|p| p.id))
}

fn new_patient(tenant: &Tenant, cp: &ContainedPatient) -> Patient {
    let name = pick_name(&cp.names).cloned().unwrap_or_default();
    Patient {
        names: vec![HumanName { use_: Some(NameUse::Official), ..name }],
        identifiers: vec![cp.national_id.clone()],
        active: true,
        country: Some(tenant.country.clone()),
        ..Default::default()
    }
}

pub(super) async fn lookup(state: &AppState, caller: &Caller) -> Result<Lookup, EmbassyError> {
    Ok(Lookup { tenant: caller.tenant.clone(), catalog: state.catalog(caller.tenant.id).await? })
}

/// A broken time rule ([`time_rules::check`], the same in every dialect) in
/// Embassy's codes: the create codes, or the reschedule codes on a change of
/// time. The spec names no code for a start beyond the tenant's horizon:
/// `StartTimeTooFarInTheFuture` (docs/dialects/embassy.md).
fn time_rule_error(rule: TimeRule, rescheduling: bool) -> EmbassyError {
    let code = match rule {
        TimeRule::EndNotAfterStart if rescheduling => "StartMustComeBeforeEnd",
        TimeRule::InThePast if rescheduling => "StartMustBeInTheFuture",
        TimeRule::EndNotAfterStart | TimeRule::TooShort { .. } | TimeRule::TooLong { .. } | TimeRule::OutOfRange => {
            "InvalidDuration"
        }
        TimeRule::InThePast | TimeRule::TooSoon { .. } => "TooCloseToAppointmentStart",
        TimeRule::TooFarAhead { .. } => "StartTimeTooFarInTheFuture",
    };
    unprocessable(code, rule.to_string())
}

/// What a scheduling command was doing, for its refusal's code.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Cancel,
    Reschedule,
}

/// The one table from the scheduling layer's refusals to Embassy's codes:
///
/// | refusal | create | cancel | reschedule |
/// |---|---|---|---|
/// | `Time(rule)` | see [`time_rule_error`] | — | see [`time_rule_error`] |
/// | `Taken`, `NotOffered`, `ServiceNotOffered` | `AllPractionersAreNotAvailable` | — | `ScheduleConflicts` |
/// | `Declined` (a gate) | `AllPractionersAreNotAvailable` | — | `ScheduleConflicts` |
/// | `NotAllowed` from `cancelled` | — | `AppointmentCancelled` | `AppointmentCancelled` |
/// | `NotAllowed` otherwise (moved, finished) | — | `AppointmentCancelled` | `TooLateToUpdateAppointment` |
/// | `TooLate` (cut-off) | — | `TooLateToCancelAppointment` | `TooLateToUpdateAppointment` |
/// | `NotFound` | `AppointmentNotFound` (404) | same | same |
/// | `Store(AlreadyExists patient)` | `ConflictingPatientsFound` | | |
/// | `Store(AlreadyExists related_person)` | `ConflictingRepresentativesFound` | | |
/// | anything else | the generic error (500, logged) | | |
fn refused(op: Op, e: SchedulingError) -> EmbassyError {
    match e {
        SchedulingError::Time(rule) => time_rule_error(rule, op == Op::Reschedule),
        SchedulingError::Taken { .. } | SchedulingError::NotOffered | SchedulingError::ServiceNotOffered
            if op == Op::Reschedule =>
        {
            unprocessable("ScheduleConflicts", "the new time conflicts with another appointment")
        }
        SchedulingError::Declined if op == Op::Reschedule => {
            unprocessable("ScheduleConflicts", "the calendar's owner declined the new time")
        }
        SchedulingError::Taken { resource } => unprocessable(
            "AllPractionersAreNotAvailable",
            format!("at least one {resource} is not available at that time"),
        ),
        SchedulingError::NotOffered | SchedulingError::ServiceNotOffered => {
            unprocessable("AllPractionersAreNotAvailable", "the practitioners are not available at that time")
        }
        SchedulingError::Declined => {
            unprocessable("AllPractionersAreNotAvailable", "the calendar's owner declined a booking at that time")
        }
        SchedulingError::NotAllowed { from, .. } if from == "cancelled" => {
            unprocessable("AppointmentCancelled", "the appointment is already cancelled")
        }
        e @ SchedulingError::NotAllowed { .. } if op == Op::Reschedule => {
            unprocessable("TooLateToUpdateAppointment", e.to_string())
        }
        e @ SchedulingError::NotAllowed { .. } => unprocessable("AppointmentCancelled", e.to_string()),
        SchedulingError::TooLate(m) if op == Op::Cancel => unprocessable("TooLateToCancelAppointment", m),
        SchedulingError::TooLate(m) => unprocessable("TooLateToUpdateAppointment", m),
        SchedulingError::NotFound(_) => {
            EmbassyError::not_found("AppointmentNotFound", "the appointment was not found on the customer")
        }
        SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists { entity: "patient", .. })) => {
            unprocessable("ConflictingPatientsFound", "the represented patient conflicts with an existing patient")
        }
        SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists { entity: "related_person", .. })) => {
            unprocessable(
                "ConflictingRepresentativesFound",
                "the representative's identifier is already used by another person",
            )
        }
        SchedulingError::Store(e) => e.into(),
        other => EmbassyError::from(StoreError::Corrupt(other.to_string())),
    }
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let now = state.now();
    let draft = parse_draft(&body, &caller.tenant)?;
    let lookup = lookup(&state, &caller).await?;
    let resolved = resolve(&draft, &lookup, &state).await?;
    let mut a = Appointment::booked(
        draft.interval,
        resolved.participants,
        Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Embassy) },
        now,
    );
    a.description = draft.description;
    let booking = Booking {
        appointment: a,
        place: Place::Service(resolved.service.clone()),
        patients: resolved.new_patients,
        representatives: resolved.new_representatives,
        through: Dialect::Embassy,
        video: None,
    };
    let created = state.scheduling.book(&caller.tenant, booking, now).await.map_err(|e| refused(Op::Create, e))?;
    let location = format!("{}/embassy/Appointment/{}", state.public_url, created.id);
    Ok(respond(
        prefer,
        StatusCode::CREATED,
        resource(&created, Some(&resolved.service)),
        Some(location),
        "Appointment created",
    ))
}

// ---------------------------------------------------------------- read, search

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Appointment, EmbassyError> {
    let not_found = || {
        EmbassyError::not_found(
            "AppointmentNotFound",
            format!("appointment with id {id} was not found on the customer"),
        )
    };
    let n = id.parse::<AppointmentId>().map_err(|_| not_found())?;
    let tenant = caller.tenant.id;
    appointments::read_one(&state.store, tenant, n).await?.ok_or_else(not_found)
}

async fn service_of(
    state: &AppState,
    caller: &Caller,
    a: &Appointment,
) -> Result<Option<HealthcareService>, EmbassyError> {
    let Some(sid) = a.healthcare_service_id else { return Ok(None) };
    Ok(state.catalog(caller.tenant.id).await?.healthcare_service(sid.get()).cloned())
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let a = load(&state, &caller, &id).await?;
    let service = service_of(&state, &caller, &a).await?;
    Ok(fhir(StatusCode::OK, resource(&a, service.as_ref())))
}

fn search_time(params: &SearchParams, name: &str, code: &'static str) -> Result<Option<Timestamp>, EmbassyError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => {
            let t = instant(v).ok_or_else(|| {
                EmbassyError::invalid("InvalidParameter", format!("`{name}` `{v}` is not a date-time with an offset"))
            })?;
            if !is_whole_minute(t) {
                return Err(unprocessable(code, format!("`{name}` must not have seconds or milliseconds set")));
            }
            Ok(Some(t))
        }
    }
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: SearchParams,
) -> Result<Response, EmbassyError> {
    let page = Page::parse(&params)?;
    let endpoint = format!("{}/embassy/Appointment", state.public_url);
    let tenant = caller.tenant.id;
    let catalog = state.catalog(tenant).await?;
    let render =
        |a: &Appointment| resource(a, a.healthcare_service_id.and_then(|s| catalog.healthcare_service(s.get())));
    if let Some(id) = params.get("_id") {
        let found = match id.parse::<AppointmentId>() {
            Ok(n) => appointments::read_one(&state.store, tenant, n).await?,
            Err(_) => None,
        };
        let list: Vec<Appointment> = found.into_iter().collect();
        let total = list.len() as i64;
        let items = super::search::slice(list, page).iter().map(render).collect();
        return Ok(fhir(StatusCode::OK, bundle(&endpoint, items, total, page, &params)));
    }
    let start = search_time(&params, "start", "StartTimeMustNotHaveSecondsOrMillisecondsSet")?;
    let end = search_time(&params, "end", "EndTimeMustNotHaveSecondsOrMillisecondsSet")?;
    match (start, end) {
        (Some(s), Some(e)) if s >= e => {
            return Err(unprocessable("StartTimeMustOccurBeforeEndTime", "`start` must come before `end`"));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(unprocessable("StartAndEndTimeIsRequired", "`start` and `end` go together"));
        }
        _ => {}
    }
    let service = match params.get("healthcareServiceId") {
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|id| catalog.healthcare_service(*id).is_some())
                .map(HealthcareServiceId)
                .ok_or_else(|| {
                    unprocessable(
                        "HealthcareServiceIdNotFound",
                        format!("healthcare service {v} was not found on the customer"),
                    )
                })?,
        ),
        None => None,
    };
    let practitioner = match params.get("practitionerId") {
        Some(v) => Some(v.parse::<i64>().ok().filter(|id| catalog.practitioner(*id).is_some()).ok_or_else(|| {
            unprocessable("PractitionerNotFound", format!("practitioner {v} was not found on the customer"))
        })?),
        None => None,
    };
    // Patient filters: "we will use all specified for the patient of the
    // appointment": each names a set of patients, and the appointment's
    // patient must be in every one.
    let mut patients: Option<Vec<i64>> = None;
    let mut narrow = |found: Vec<i64>| {
        patients = Some(match patients.take() {
            None => found,
            Some(prev) => prev.into_iter().filter(|p| found.contains(p)).collect(),
        });
    };
    if let Some(v) = params.get("patientId") {
        narrow(v.parse::<PatientId>().ok().map(|p| p.get()).into_iter().collect());
    }
    if let Some(v) = params.get("patientNationalIdentificationNumber") {
        let cc = caller.tenant.country.to_ascii_lowercase();
        let n = national_id(&cc, v).ok_or_else(|| {
            unprocessable(
                "InvalidNationalIdentificationNumber",
                format!("`{v}` is not a valid national identification number"),
            )
        })?;
        let system = format!("{}{cc}", systems::NATIONAL_ID_PREFIX);
        let found =
            state.store.read(move |c| Box::pin(async move { patients::find_by(c, tenant, &system, &n).await })).await?;
        narrow(found.and_then(|p| p.id).map(|p| p.get()).into_iter().collect());
    }
    if let Some(v) = params.get("patientPhone") {
        // The spec documents the same code for an invalid phone filter.
        let phone: String = Phone::parse(v)
            .map_err(|_| {
                unprocessable("InvalidNationalIdentificationNumber", format!("`{v}` is not a valid phone number"))
            })?
            .into();
        // Every patient with that number (a probe of the contact index), in
        // the forms it may be kept in.
        let found =
            state.store.read(move |c| Box::pin(async move { patients::ids_by_phone(c, tenant, &phone).await })).await?;
        narrow(found);
    }
    if service.is_none() && patients.is_none() && practitioner.is_none() {
        return Err(unprocessable(
            "ParticipantFilterRequired",
            "give healthcareServiceId, practitionerId or a patient filter (patientId, \
             patientNationalIdentificationNumber, patientPhone)",
        ));
    }
    let query = PageQuery {
        healthcare_service: service,
        patients,
        practitioner,
        range: start.zip(end),
        from: super::search::page_start(&params, page)?,
        limit: page.count,
        counting: super::search::counting(&params)?,
    };
    let found = appointments::read_page(&state.store, tenant, query).await?;
    let items = found.items.iter().map(render).collect();
    Ok(fhir(StatusCode::OK, keyset_bundle(&endpoint, items, found.total, page, &params, found.next)))
}

// ---------------------------------------------------------------- patch

async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let ops = super::patch_ops(&body)?;
    let (mut cancel, mut start, mut end) = (false, None, None);
    for op in &ops {
        let path = op.path.as_deref().unwrap_or("");
        let path_ok = matches!(
            path,
            "/status" | "/start" | "/end" | "Appointment.status" | "Appointment.start" | "Appointment.end"
        );
        if op.kind.as_deref() != Some("replace") || !path_ok {
            return Err(unprocessable(
                "ParameterTypeAndPathCombinationNotSupported",
                format!("type `{}` with path `{path}` is not supported", op.kind.as_deref().unwrap_or("")),
            ));
        }
        let part = body["parameter"]
            .as_array()
            .and_then(|ps| {
                ps.iter().find(|p| {
                    p["part"]
                        .as_array()
                        .is_some_and(|parts| parts.iter().any(|x| x["name"] == "path" && x["valueString"] == path))
                })
            })
            .and_then(|p| p["part"].as_array().and_then(|parts| parts.iter().find(|x| x["name"] == "value").cloned()));
        let Some(part) = part.filter(|p| polyclinic_fhir::value_x(p).is_some()) else {
            return Err(unprocessable("ParameterValueUndefined", format!("the operation on `{path}` has no value")));
        };
        if path.ends_with("status") {
            let code = part
                .get("valueCode")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("InvalidDataType", "a status value must be a valueCode"))?;
            if code != "cancelled" {
                return Err(unprocessable(
                    "OnlyCancelledStatusSupported",
                    format!("the status can only be set to `cancelled`, not `{code}`"),
                ));
            }
            cancel = true;
        } else {
            let raw = part
                .get("valueDateTime")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("InvalidDataType", format!("`{path}` takes a valueDateTime")))?;
            let t = instant(raw).ok_or_else(|| {
                unprocessable("InvalidDataType", format!("`{raw}` is not a date-time with an offset"))
            })?;
            if !is_whole_minute(t) {
                return Err(unprocessable(
                    "DateTimeMustBeWholeMinutes",
                    format!("`{raw}` must not have seconds or milliseconds"),
                ));
            }
            if path.ends_with("start") {
                start = Some(t);
            } else {
                end = Some(t);
            }
        }
    }
    if cancel && (start.is_some() || end.is_some()) {
        return Err(unprocessable(
            "BothCancelAndRescheduleCannotBeRequested",
            "cancel and reschedule in separate requests",
        ));
    }
    let a = load(&state, &caller, &id).await?;
    if a.status == AppointmentStatus::Cancelled {
        return Err(unprocessable("AppointmentCancelled", "the appointment is already cancelled"));
    }
    let now = state.now();
    let updated = if cancel {
        let by = Actor { kind: ActorKind::Integration, dialect: Some(Dialect::Embassy) };
        state.scheduling.cancel(&caller.tenant, a.id, by, None, now).await.map_err(|e| refused(Op::Cancel, e))?
    } else {
        let (Some(s), Some(e)) = (start, end) else {
            return Err(unprocessable(
                "StartAndEndRequiredForRescheduling",
                "rescheduling needs both a new start and a new end",
            ));
        };
        if a.primary_performer().is_none() {
            return Err(unprocessable(
                "PrimaryPerformerNotFoundForAppointment",
                "the appointment has no primary performer and cannot be updated",
            ));
        }
        let to = Interval { start: s, end: e };
        state
            .scheduling
            .reschedule(&caller.tenant, a.id, to, Dialect::Embassy, now)
            .await
            .map_err(|e| refused(Op::Reschedule, e))?
    };
    let service = service_of(&state, &caller, &updated).await?;
    Ok(respond(prefer, StatusCode::OK, resource(&updated, service.as_ref()), None, "Appointment updated"))
}
