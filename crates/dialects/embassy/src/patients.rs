//! Patient: create, read, PATCH (name, phone, e-mail) and search.

use super::Path;
use super::search::{Page, SearchParams, bundle};
use super::systems::*;
use super::{Caller, EmbassyError, FhirJson, Prefer, fhir, respond};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use polyclinic_core::patient::{
    ContactPoint, ContactSystem, ContactUse, HumanName, Identifier, NameUse, Patient, pick_name, preferred_contact,
    systems,
};
use polyclinic_core::tenant::Tenant;
use polyclinic_core::text::{Email, Phone};
use polyclinic_core::{CoreError, PatientId};
use polyclinic_http::AppState;
use polyclinic_scheduling::SchedulingError;
use polyclinic_store::{StoreError, patients};
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/Patient", get(search).post(create))
        .route("/Patient/_search", post(search))
        .route("/Patient/{id}", get(read).patch(patch))
}

/// The Patient resource as Embassy shows it.
pub fn resource(p: &Patient, tenant: &Tenant) -> Value {
    let id = p.id.map(|v| v.to_string()).unwrap_or_default();
    let mut r = json!({"resourceType": "Patient", "id": id});
    let country = p.country.clone().unwrap_or_else(|| tenant.country.clone()).to_ascii_lowercase();
    let identifiers: Vec<Value> = p
        .identifiers
        .iter()
        .filter_map(|i| i.system.strip_prefix(systems::NATIONAL_ID_PREFIX).map(|cc| (cc, i)))
        .map(|(cc, i)| {
            let system =
                if cc == country { PATIENT_NATIONAL_ID.to_owned() } else { format!("{NATIONAL_ID_PREFIX}{cc}") };
            json!({"system": system, "value": i.value})
        })
        .collect();
    if !identifiers.is_empty() {
        r["identifier"] = Value::Array(identifiers);
    }
    if let Some(n) = p.display_name() {
        r["name"] = json!([name_json(n)]);
    }
    let telecom: Vec<Value> = [ContactSystem::Phone, ContactSystem::Email]
        .into_iter()
        .filter_map(|s| {
            preferred_contact(&p.telecom, s).or_else(|| {
                if s == ContactSystem::Phone { preferred_contact(&p.telecom, ContactSystem::Sms) } else { None }
            })
        })
        .map(|c| {
            json!({
                "extension": [{"url": EXT_CONSENT, "valueBoolean": c.consent.unwrap_or(true)}],
                "system": if c.system == ContactSystem::Email { "email" } else { "phone" },
                "value": c.value
            })
        })
        .collect();
    if !telecom.is_empty() {
        r["telecom"] = Value::Array(telecom);
    }
    r["address"] = json!([{"country": country.to_ascii_uppercase()}]);
    r
}

/// A HumanName with `text`, `family` and `given`.
pub fn name_json(n: &HumanName) -> Value {
    let text = [n.given_joined(), n.family.clone().unwrap_or_default()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let mut v = json!({"text": n.text.clone().unwrap_or(text)});
    if let Some(f) = &n.family {
        v["family"] = json!(f);
    }
    if !n.given.is_empty() {
        v["given"] = json!(n.given);
    }
    v
}

/// Reads FHIR names.
pub fn parse_names(v: Option<&Value>) -> Vec<HumanName> {
    v.and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .map(|n| HumanName {
                    use_: n
                        .get("use")
                        .and_then(Value::as_str)
                        .and_then(|u| serde_json::from_value::<NameUse>(json!(u)).ok()),
                    given: n
                        .get("given")
                        .and_then(Value::as_array)
                        .map(|g| g.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default(),
                    family: n.get("family").and_then(Value::as_str).map(str::to_owned),
                    text: n.get("text").and_then(Value::as_str).map(str::to_owned),
                    ..Default::default()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads FHIR contact points (`sms` counts as a phone), unvalidated.
pub fn parse_telecom(v: Option<&Value>) -> Vec<ContactPoint> {
    v.and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| {
                    let system = match c.get("system").and_then(Value::as_str)? {
                        "phone" => ContactSystem::Phone,
                        "sms" => ContactSystem::Sms,
                        "email" => ContactSystem::Email,
                        _ => return None,
                    };
                    Some(ContactPoint {
                        system,
                        value: c.get("value").and_then(Value::as_str).unwrap_or("").to_owned(),
                        use_: c
                            .get("use")
                            .and_then(Value::as_str)
                            .and_then(|u| serde_json::from_value::<ContactUse>(json!(u)).ok()),
                        rank: c.get("rank").and_then(Value::as_u64).and_then(|r| u32::try_from(r).ok()),
                        consent: Some(true),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Validates a national identity number of `country` and answers it normalised.
pub fn national_id(country: &str, value: &str) -> Option<String> {
    polyclinic_core::patient::NationalId::parse(country, value)
        .ok()
        .map(polyclinic_core::patient::NationalId::into_value)
}

/// The country a national-id system names: the customer's for the generic
/// system, the suffix for `.../nationalidentificationnumber/{cc}`.
pub fn national_id_country(system: &str, tenant: &Tenant) -> Option<String> {
    if system == PATIENT_NATIONAL_ID {
        return Some(tenant.country.to_ascii_lowercase());
    }
    system
        .strip_prefix(NATIONAL_ID_PREFIX)
        .filter(|cc| cc.len() == 2 && cc.chars().all(|c| c.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
}

/// Picks the one phone and one e-mail to keep, by priority; errors as the spec lists.
fn checked_telecom(points: Vec<ContactPoint>) -> Result<Vec<ContactPoint>, EmbassyError> {
    let mut kept = Vec::new();
    for (systems_, is_phone) in
        [(vec![ContactSystem::Phone, ContactSystem::Sms], true), (vec![ContactSystem::Email], false)]
    {
        let of_kind: Vec<&ContactPoint> = points.iter().filter(|c| systems_.contains(&c.system)).collect();
        if of_kind.is_empty() {
            continue;
        }
        let best = systems_.iter().find_map(|s| preferred_contact(&points, *s)).ok_or_else(|| {
            EmbassyError::unprocessable(
                "ContactPointUseNotSupported",
                "the only contact points given have use old or temp",
            )
        })?;
        let mut c = best.clone();
        if is_phone {
            c.system = ContactSystem::Phone;
            c.value = Phone::parse(&c.value)
                .map_err(|_| {
                    EmbassyError::unprocessable(
                        "PatientInvalidPhone",
                        format!("`{}` is not a valid phone number", best.value),
                    )
                })?
                .into();
        } else {
            c.value = Email::parse(&c.value)
                .map_err(|_| {
                    EmbassyError::unprocessable(
                        "PatientInvalidEmail",
                        format!("`{}` is not a valid e-mail address", best.value),
                    )
                })?
                .into();
        }
        kept.push(c);
    }
    Ok(kept)
}

/// Builds a patient from a FHIR Patient, applying every rule of `POST /Patient`.
fn parse_patient(body: &Value, tenant: &Tenant) -> Result<Patient, EmbassyError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Patient") {
        return Err(EmbassyError::invalid("InvalidFhirResource", "the body must be a Patient resource"));
    }
    let names = parse_names(body.get("name"));
    let name = pick_name(&names)
        .ok_or_else(|| EmbassyError::unprocessable("PatientNameRequired", "the patient needs a name"))?;
    if !name.has_both() {
        return Err(EmbassyError::unprocessable(
            "PatientNameInvalid",
            "both a given name and a family name must be set",
        ));
    }
    let mut patient = Patient {
        names: vec![HumanName {
            use_: Some(NameUse::Official),
            given: name.given.clone(),
            family: name.family.clone(),
            ..Default::default()
        }],
        active: true,
        country: Some(tenant.country.clone()),
        ..Default::default()
    };
    let mut other_systems = false;
    for i in body.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        let system = i.get("system").and_then(Value::as_str).unwrap_or("");
        let value = i.get("value").and_then(Value::as_str).unwrap_or("");
        match national_id_country(system, tenant) {
            Some(cc) => {
                let normalised = national_id(&cc, value).ok_or_else(|| {
                    EmbassyError::unprocessable(
                        "PatientCreateInvalidNationalIdentityNumber",
                        format!("`{value}` is not a valid national identity number"),
                    )
                })?;
                patient.set_identifier(&format!("{}{cc}", systems::NATIONAL_ID_PREFIX), normalised);
            }
            None => other_systems = true,
        }
    }
    let has_national_id = patient.identifiers.iter().any(|i| i.system.starts_with(systems::NATIONAL_ID_PREFIX));
    if tenant.settings.national_id_required && !has_national_id {
        return Err(if other_systems {
            EmbassyError::unprocessable(
                "PatientCreateInvalidIdentifierSystem",
                "no identifier has a national identification number system",
            )
        } else {
            EmbassyError::unprocessable(
                "PatientNationalIdentityNumberRequired",
                "the customer requires a national identification number",
            )
        });
    }
    patient.telecom = checked_telecom(parse_telecom(body.get("telecom")))?;
    if tenant.settings.phone_is_identifier {
        let phone = patient.phone().map(str::to_owned).ok_or_else(|| {
            EmbassyError::unprocessable(
                "PatientPhoneRequired",
                "the customer identifies patients by phone number; a phone is required",
            )
        })?;
        patient.set_identifier(systems::PHONE, phone);
    }
    if let Some(code) = body
        .pointer("/communication/0/language/coding")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
    {
        let lang = code.split('-').next().unwrap_or(code);
        if !tenant.settings.allows_language(&tenant.language, lang) {
            return Err(EmbassyError::unprocessable(
                "PatientCreateLanguageCodeNotSupported",
                format!("language `{code}` is not supported by the customer"),
            ));
        }
        patient.language = Some(lang.to_ascii_lowercase());
    }
    if let Some(b) = body.get("birthDate").and_then(Value::as_str) {
        patient.birth_date = Some(
            b.parse()
                .map_err(|_| EmbassyError::invalid("InvalidFhirResource", format!("birthDate `{b}` is not a date")))?,
        );
    }
    Ok(patient)
}

fn store_error(e: StoreError) -> EmbassyError {
    match e {
        StoreError::Core(CoreError::AlreadyExists { .. }) => EmbassyError::unprocessable(
            "PatientCreateConflictingClientFound",
            "a patient with the same national identification number or phone number already exists",
        ),
        other => other.into(),
    }
}

/// A refused patient write: a clash of identifiers, a patient that is gone,
/// or one another system keeps (422 `PatientManagedByAnotherSystem`).
fn scheduling_error(e: SchedulingError) -> EmbassyError {
    match e {
        SchedulingError::Store(e) => store_error(e),
        e @ SchedulingError::ManagedElsewhere { .. } => {
            EmbassyError::unprocessable("PatientManagedByAnotherSystem", e.to_string())
        }
        SchedulingError::NotFound(_) => {
            EmbassyError::not_found("PatientNotFound", "the patient was not found on the customer")
        }
        other => EmbassyError::from(StoreError::Corrupt(other.to_string())),
    }
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let patient = parse_patient(&body, &caller.tenant)?;
    let created =
        state.scheduling.create_patient(&caller.tenant, patient, state.now()).await.map_err(scheduling_error)?;
    let r = resource(&created, &caller.tenant);
    let location = format!("{}/embassy/Patient/{}", state.public_url, r["id"].as_str().unwrap_or_default());
    Ok(respond(prefer, StatusCode::OK, r, Some(location), "Patient created"))
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Patient, EmbassyError> {
    let not_found =
        || EmbassyError::not_found("PatientNotFound", format!("patient with id {id} was not found on the customer"));
    let n = id.parse::<PatientId>().map_err(|_| not_found())?;
    let tenant = caller.tenant.id;
    state.store.read(move |c| Box::pin(async move { patients::get(c, tenant, n).await })).await?.ok_or_else(not_found)
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    Ok(fhir(StatusCode::OK, resource(&load(&state, &caller, &id).await?, &caller.tenant)))
}

async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    prefer: Prefer,
    FhirJson(body): FhirJson,
) -> Result<Response, EmbassyError> {
    let ops = super::patch_ops(&body)?;
    let mut p = load(&state, &caller, &id).await?;
    for op in ops {
        let path = op.path.as_deref().unwrap_or("").replace(' ', "").replace('"', "'");
        if op.kind.as_deref() != Some("replace") {
            return Err(unsupported(&op.kind, &path));
        }
        let value = || {
            op.value.as_ref().and_then(Value::as_str).map(str::to_owned).ok_or_else(|| {
                EmbassyError::unprocessable(
                    "ParameterValueUndefined",
                    format!("the value for `{path}` must be a string"),
                )
            })
        };
        match path.as_str() {
            "/telecom.where(system='phone')" | "/phoneNumber" | "Patient.telecom.where(system='phone')" => {
                if caller.tenant.settings.phone_is_identifier {
                    return Err(EmbassyError::unprocessable(
                        "PatientPhoneUsedAsIdentifier",
                        "the phone number identifies the patient and cannot be changed",
                    ));
                }
                let v = value()?;
                let phone = Phone::parse(&v).map_err(|_| {
                    EmbassyError::unprocessable("PatientInvalidPhone", format!("`{v}` is not a valid phone number"))
                })?;
                replace_contact(&mut p, ContactSystem::Phone, phone.into());
            }
            "/telecom.where(system='email')" | "Patient.telecom.where(system='email')" => {
                let v = value()?;
                let email = Email::parse(&v).map_err(|_| {
                    EmbassyError::unprocessable("PatientInvalidEmail", format!("`{v}` is not a valid e-mail address"))
                })?;
                replace_contact(&mut p, ContactSystem::Email, email.into());
            }
            "/name.given" | "Patient.name.given" => {
                let v = value()?;
                if v.trim().is_empty() {
                    return Err(EmbassyError::unprocessable("PatientNameInvalid", "the given name must not be empty"));
                }
                name_mut(&mut p).given = vec![v.trim().to_owned()];
            }
            "/name.family" | "Patient.name.family" => {
                let v = value()?;
                if v.trim().is_empty() {
                    return Err(EmbassyError::unprocessable("PatientNameInvalid", "the family name must not be empty"));
                }
                name_mut(&mut p).family = Some(v.trim().to_owned());
            }
            _ => return Err(unsupported(&op.kind, &path)),
        }
    }
    // A patient another system keeps (one created through Naboto's API) is
    // edited there only: scheduling refuses it (`ManagedElsewhere`).
    let updated = state
        .scheduling
        .update_patient(&caller.tenant, p, polyclinic_core::tenant::Dialect::Embassy, state.now())
        .await
        .map_err(scheduling_error)?;
    Ok(respond(prefer, StatusCode::OK, resource(&updated, &caller.tenant), None, "Patient updated"))
}

fn unsupported(kind: &Option<String>, path: &str) -> EmbassyError {
    EmbassyError::unprocessable(
        "ParameterTypeAndPathCombinationNotSupported",
        format!("type `{}` with path `{path}` is not supported", kind.as_deref().unwrap_or("")),
    )
}

fn name_mut(p: &mut Patient) -> &mut HumanName {
    if p.names.is_empty() {
        p.names.push(HumanName { use_: Some(NameUse::Official), ..Default::default() });
    }
    let i = p
        .names
        .iter()
        .position(|n| n.use_ == Some(NameUse::Usual))
        .or_else(|| p.names.iter().position(|n| n.use_ == Some(NameUse::Official)))
        .unwrap_or(0);
    &mut p.names[i]
}

fn replace_contact(p: &mut Patient, system: ContactSystem, value: String) {
    let phone = matches!(system, ContactSystem::Phone | ContactSystem::Sms);
    p.telecom.retain(|c| {
        if phone { !matches!(c.system, ContactSystem::Phone | ContactSystem::Sms) } else { c.system != system }
    });
    p.telecom.push(ContactPoint { system, value, use_: Some(ContactUse::Mobile), rank: None, consent: Some(true) });
}

/// Finds patients by `_id` or `identifier=system|value`; with neither, pages
/// through all the customer's patients.
async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: SearchParams,
) -> Result<Response, EmbassyError> {
    let page = Page::parse(&params)?;
    let endpoint = format!("{}/embassy/Patient", state.public_url);
    let tenant = caller.tenant.id;
    let found: Option<Vec<Patient>> = if let Some(id) = params.get("_id") {
        let n = id.parse::<PatientId>().ok();
        Some(match n {
            Some(n) => state
                .store
                .read(move |c| Box::pin(async move { patients::get(c, tenant, n).await }))
                .await?
                .into_iter()
                .collect(),
            None => Vec::new(),
        })
    } else if let Some(identifier) = params.get("identifier") {
        let (system, value) = identifier.split_once('|').unwrap_or((identifier, ""));
        if value.trim().is_empty() {
            return Err(EmbassyError::unprocessable(
                "PatientIdentifierValueNotDefined",
                "the identifier has no value after `|`",
            ));
        }
        let invalid = || {
            EmbassyError::unprocessable(
                "PatientIdentifierValueInvalid",
                format!("`{value}` is not a valid value for {system}"),
            )
        };
        let lookup: Identifier = if system == PATIENT_VISIBA {
            let n = value.parse::<PatientId>().map_err(|_| invalid())?;
            let one = state.store.read(move |c| Box::pin(async move { patients::get(c, tenant, n).await })).await?;
            return Ok(fhir(
                StatusCode::OK,
                page_of(one.into_iter().collect(), page, &endpoint, &params, &caller.tenant),
            ));
        } else if system == PATIENT_PHONE {
            let phone = Phone::parse(value).map_err(|_| invalid())?;
            Identifier { system: systems::PHONE.into(), value: phone.into() }
        } else if let Some(cc) = national_id_country(system, &caller.tenant) {
            let v = national_id(&cc, value).ok_or_else(invalid)?;
            Identifier { system: format!("{}{cc}", systems::NATIONAL_ID_PREFIX), value: v }
        } else {
            return Err(EmbassyError::unprocessable(
                "PatientIdentifierNotSupported",
                format!("identifier system `{system}` is not supported for patients"),
            ));
        };
        let by_contact = lookup.system == systems::PHONE && !caller.tenant.settings.phone_is_identifier;
        let found = state
            .store
            .read(move |c| {
                Box::pin(async move {
                    if by_contact {
                        // A probe of the contact index, never a text scan.
                        patients::find_by_phone(c, tenant, &lookup.value).await
                    } else if lookup.system == systems::PHONE {
                        // The phone as the identifier, in the forms it may
                        // be kept in (`+46...` arrives as ` 46...` in a URL).
                        let mut out = Vec::new();
                        for form in patients::phone_forms(&lookup.value) {
                            out.extend(patients::find_by(c, tenant, &lookup.system, &form).await?);
                        }
                        Ok(out)
                    } else {
                        Ok(patients::find_by(c, tenant, &lookup.system, &lookup.value).await?.into_iter().collect())
                    }
                })
            })
            .await?;
        Some(found)
    } else {
        None
    };
    let body = match found {
        Some(list) => page_of(list, page, &endpoint, &params, &caller.tenant),
        None => {
            let (offset, limit) = (page.skip, page.count);
            let (items, total) = state
                .store
                .read(move |c| Box::pin(async move { patients::page(c, tenant, offset, limit).await }))
                .await?;
            bundle(&endpoint, items.iter().map(|p| resource(p, &caller.tenant)).collect(), total, page, &params)
        }
    };
    Ok(fhir(StatusCode::OK, body))
}

fn page_of(list: Vec<Patient>, page: Page, endpoint: &str, params: &SearchParams, tenant: &Tenant) -> Value {
    let total = list.len() as i64;
    let items = super::search::slice(list, page).iter().map(|p| resource(p, tenant)).collect();
    bundle(endpoint, items, total, page, params)
}
