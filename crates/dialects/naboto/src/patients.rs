//! NabotoPatient: create (`POST /patient`), update (`PUT /patient`,
//! `PUT /patient/{id}`), read (`GET /patient/{id}`) and search
//! (`GET /patient?identifier=system|value`), with the profile's rules of
//! IG 0.1.4 checked at the edge. Patients created here are owned by Naboto:
//! other dialects refuse to edit them.
//!
//! Identifiers: the SS slice (Austrian social security number) is kept as the
//! core's national id of Austria (`national-id:at`, normalised), so that every
//! dialect finds the same person; NI (bPK) under its OID; PI (the clinic's
//! own id) under the clinic's system. Each must be unique in the tenant.

use crate::canonical::{self, Base};
use crate::{Caller, FhirJson, NabotoError, Path, Query, fhir, token_search};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use polyclinic_core::PatientId;
use polyclinic_core::patient::{
    ContactPoint, ContactSystem, ContactUse, Gender, HumanName, Identifier, NameUse, NationalId, Patient,
    PostalAddress, mobile_number, systems,
};
use polyclinic_core::tenant::Dialect;
use polyclinic_http::AppState;
use polyclinic_store::patients;
use serde_json::{Map, Value, json};

/// The v2-0203 identifier type system.
pub const IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// System of the SS slice: the Austrian social security number.
pub const SS_SYSTEM: &str = "urn:oid:1.2.40.0.10.1.4.3.1";
/// System of the NI slice: the bPK.
pub const NI_SYSTEM: &str = "urn:oid:1.2.40.0.10.2.1.1.149";
/// The core's system for the SS slice's number.
const NATIONAL_ID_AT: &str = "national-id:at";

/// Elements a NabotoPatient must not carry.
const FORBIDDEN: &[&str] = &[
    "contained",
    "language",
    "contact",
    "deceasedBoolean",
    "deceasedDateTime",
    "maritalStatus",
    "multipleBirthBoolean",
    "multipleBirthInteger",
    "photo",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "link",
];

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/patient", get(search).post(create).put(update))
        .route("/patient/{id}", get(read).put(update_at))
}

/// A NabotoPatient as read from a request.
#[derive(Debug)]
pub struct NabotoPatient {
    pub id: Option<String>,
    pub patient: Patient,
    pub spelling: Base,
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    let parsed = parse(&body)?;
    if parsed.id.is_some() {
        return Err(NabotoError::id_mismatch("a patient to create must not have an `id`: the server assigns it"));
    }
    let patient = Patient { owner: Some(Dialect::Naboto), ..parsed.patient };
    let created = state.scheduling.create_patient(&caller.tenant, patient, state.now()).await?;
    let r = resource(&created, parsed.spelling);
    let mut response = fhir(StatusCode::CREATED, r);
    if let Some(id) = created.id
        && let Ok(l) = HeaderValue::from_str(&format!("{}/naboto/patient/{id}", state.public_url))
    {
        response.headers_mut().insert(header::LOCATION, l);
    }
    Ok(response)
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    put(state, caller, None, body).await
}

async fn update_at(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    FhirJson(body): FhirJson,
) -> Result<Response, NabotoError> {
    put(state, caller, Some(id), body).await
}

async fn put(state: AppState, caller: Caller, path_id: Option<String>, body: Value) -> Result<Response, NabotoError> {
    let parsed = parse(&body)?;
    let Some(id) = parsed.id.clone() else {
        return Err(NabotoError::id_mismatch("an update needs the patient's `id` in the body"));
    };
    if let Some(p) = path_id.filter(|p| *p != id) {
        return Err(NabotoError::id_mismatch(format!("the body's id `{id}` is not the id `{p}` of the URL")));
    }
    let current = load(&state, &caller, &id).await?;
    let updated = merge(current, parsed.patient);
    let saved = state.scheduling.update_patient(&caller.tenant, updated, Dialect::Naboto, state.now()).await?;
    Ok(fhir(StatusCode::OK, resource(&saved, parsed.spelling)))
}

/// The stored patient with what a NabotoPatient carries replaced: names,
/// contact points, identifiers of the three slices (identifiers this dialect
/// does not show, other countries' national ids, stay), birth date, gender,
/// addresses, `active`. The owner and what Naboto has no element for stay.
fn merge(current: Patient, new: Patient) -> Patient {
    let mut identifiers: Vec<Identifier> = current.identifiers.into_iter().filter(|i| !shown(&i.system)).collect();
    identifiers.extend(new.identifiers);
    Patient {
        names: new.names,
        telecom: new.telecom,
        identifiers,
        birth_date: new.birth_date,
        gender: new.gender,
        addresses: new.addresses,
        active: new.active,
        ..current
    }
}

/// Whether an identifier system shows as one of the three slices: every
/// system but the national ids of countries other than Austria.
fn shown(system: &str) -> bool {
    system == NATIONAL_ID_AT || !system.starts_with(systems::NATIONAL_ID_PREFIX)
}

/// The tenant's patient `id`; any other tenant's (or a malformed id) is not found.
pub(crate) async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<Patient, NabotoError> {
    let not_found = || NabotoError::not_found(format!("patient `{id}` not found"));
    let n = id.parse::<PatientId>().map_err(|_| not_found())?;
    let tenant = caller.tenant.id;
    state.store.read(move |c| Box::pin(async move { patients::get(c, tenant, n).await })).await?.ok_or_else(not_found)
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, NabotoError> {
    Ok(fhir(StatusCode::OK, resource(&load(&state, &caller, &id).await?, Base::default())))
}

#[derive(serde::Deserialize)]
struct SearchParams {
    identifier: Option<String>,
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SearchParams>,
) -> Result<Response, NabotoError> {
    let (system, value) = token_search(q.identifier.as_deref())?;
    let (system, value) = stored_identifier(&system, &value);
    let tenant = caller.tenant.id;
    let found =
        state.store.read(move |c| Box::pin(async move { patients::find_by(c, tenant, &system, &value).await })).await?;
    let entries: Vec<Value> = found.iter().map(|p| resource(p, Base::default())).collect();
    let total = entries.len();
    let bundle = polyclinic_fhir::searchset(entries, Some(total), vec![]);
    Ok(fhir(StatusCode::OK, with_full_urls(bundle, &state.public_url, "patient")))
}

/// Gives each entry of a searchset its `fullUrl`.
pub(crate) fn with_full_urls(mut bundle: Value, base: &str, path: &str) -> Value {
    if let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) {
        for e in entries {
            let id = e["resource"]["id"].as_str().unwrap_or_default().to_owned();
            if let Some(o) = e.as_object_mut() {
                let resource = o.remove("resource").unwrap_or(Value::Null);
                o.insert("fullUrl".into(), json!(format!("{base}/naboto/{path}/{id}")));
                o.insert("resource".into(), resource);
            }
        }
    }
    bundle
}

/// The identifier as the store keeps it: an SS number as the normalised
/// national id of Austria (a number that does not normalise matches nothing).
pub(crate) fn stored_identifier(system: &str, value: &str) -> (String, String) {
    if system == SS_SYSTEM {
        match NationalId::parse("at", value) {
            Ok(n) => (NATIONAL_ID_AT.to_owned(), n.into_value()),
            Err(_) => (NATIONAL_ID_AT.to_owned(), value.to_owned()),
        }
    } else {
        (system.to_owned(), value.to_owned())
    }
}

// ---- reading a NabotoPatient ----

/// The string at `key`, if present; another JSON type is a structure error.
pub(crate) fn opt_str<'a>(v: &'a Value, key: &str, at: &str) -> Result<Option<&'a str>, NabotoError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(NabotoError::structure(format!("`{at}{key}` must be a string"))),
    }
}

/// The array at `key` (empty when absent); another JSON type is a structure error.
pub(crate) fn opt_array<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a [Value], NabotoError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(NabotoError::structure(format!("`{at}{key}` must be an array"))),
    }
}

/// The strings of the array at `key`.
fn strings(v: &Value, key: &str, at: &str) -> Result<Vec<String>, NabotoError> {
    opt_array(v, key, at)?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_owned)
                .ok_or_else(|| NabotoError::structure(format!("`{at}{key}` must hold strings")))
        })
        .collect()
}

/// The resource must be an object of `resource_type`.
pub(crate) fn expect_resource<'a>(body: &'a Value, resource_type: &str) -> Result<&'a Map<String, Value>, NabotoError> {
    let o = body.as_object().ok_or_else(|| NabotoError::structure("the body must be a JSON object"))?;
    match o.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => Ok(o),
        Some(t) => Err(NabotoError::structure(format!("the body must be a {resource_type}, not a {t}"))),
        None => Err(NabotoError::structure(format!("the body must be a {resource_type} (`resourceType` is missing)"))),
    }
}

/// The resource's `meta.profile` URLs.
pub(crate) fn profiles(body: &Value) -> Vec<&str> {
    body.get("meta")
        .and_then(|m| m.get("profile"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Reads a NabotoPatient, enforcing the profile's rules of IG 0.1.4.
pub fn parse(body: &Value) -> Result<NabotoPatient, NabotoError> {
    let o = expect_resource(body, "Patient")?;
    if let Some(k) = FORBIDDEN.iter().find(|k| o.contains_key(**k)) {
        return Err(NabotoError::profile(format!("`{k}` must not be present in a NabotoPatient")));
    }
    for e in opt_array(body, "extension", "")? {
        let url = opt_str(e, "url", "extension.")?.unwrap_or("");
        if ["/patient-citizenship", "/patient-religion", "/at-core-ext-patient-religion"]
            .iter()
            .any(|s| url.ends_with(s))
        {
            return Err(NabotoError::profile(format!(
                "the extension `{url}` (citizenship, religion) must not be present in a NabotoPatient"
            )));
        }
    }
    let id = opt_str(body, "id", "")?.map(str::to_owned);
    let active = match body.get("active") {
        None | Some(Value::Null) => return Err(NabotoError::profile("`active` is required in a NabotoPatient")),
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(NabotoError::structure("`active` must be a boolean")),
    };
    let gender = match opt_str(body, "gender", "")? {
        None => return Err(NabotoError::profile("`gender` is required in a NabotoPatient")),
        Some("male") => Gender::Male,
        Some("female") => Gender::Female,
        Some("other") => Gender::Other,
        Some("unknown") => Gender::Unknown,
        Some(g) => {
            return Err(NabotoError::structure(format!("`gender` must be male, female, other or unknown, not `{g}`")));
        }
    };
    let names = names(body)?;
    let telecom = telecom(body)?;
    let identifiers = identifiers(body)?;
    let birth_date =
        match opt_str(body, "birthDate", "")? {
            None => None,
            Some(d) => Some(d.parse::<jiff::civil::Date>().map_err(|_| {
                NabotoError::structure(format!("`birthDate` must be a full date (YYYY-MM-DD), not `{d}`"))
            })?),
        };
    let addresses = addresses(body)?;
    let spelling = canonical::profile_spelling(profiles(body), canonical::PATIENT_PROFILE);
    let patient = Patient {
        names,
        telecom,
        identifiers,
        birth_date,
        gender: Some(gender),
        addresses,
        active,
        ..Default::default()
    };
    Ok(NabotoPatient { id, patient, spelling })
}

fn names(body: &Value) -> Result<Vec<HumanName>, NabotoError> {
    let mut out = Vec::new();
    for n in opt_array(body, "name", "")? {
        let use_ = match opt_str(n, "use", "name.")? {
            None => None,
            Some(u) => Some(name_use(u).ok_or_else(|| NabotoError::structure(format!("`{u}` is not a name use")))?),
        };
        out.push(HumanName {
            use_,
            given: strings(n, "given", "name.")?,
            family: opt_str(n, "family", "name.")?.map(str::to_owned),
            prefix: strings(n, "prefix", "name.")?,
            suffix: strings(n, "suffix", "name.")?,
            text: opt_str(n, "text", "name.")?.map(str::to_owned),
            alias: None,
        });
    }
    let usual = out.iter().filter(|n| n.use_ == Some(NameUse::Usual)).count();
    if usual != 1 {
        return Err(NabotoError::profile(format!(
            "a NabotoPatient needs exactly one `name` with use `usual`, this one has {usual}"
        )));
    }
    Ok(out)
}

fn name_use(s: &str) -> Option<NameUse> {
    Some(match s {
        "usual" => NameUse::Usual,
        "official" => NameUse::Official,
        "temp" => NameUse::Temp,
        "nickname" => NameUse::Nickname,
        "anonymous" => NameUse::Anonymous,
        "old" => NameUse::Old,
        "maiden" => NameUse::Maiden,
        _ => return None,
    })
}

fn name_use_code(u: NameUse) -> &'static str {
    match u {
        NameUse::Usual => "usual",
        NameUse::Official => "official",
        NameUse::Temp => "temp",
        NameUse::Nickname => "nickname",
        NameUse::Anonymous => "anonymous",
        NameUse::Old => "old",
        NameUse::Maiden => "maiden",
    }
}

fn telecom(body: &Value) -> Result<Vec<ContactPoint>, NabotoError> {
    let mut out = Vec::new();
    for t in opt_array(body, "telecom", "")? {
        let system = match opt_str(t, "system", "telecom.")? {
            None => return Err(NabotoError::profile("every `telecom` entry needs a `system`")),
            Some("phone") => ContactSystem::Phone,
            Some("sms") => ContactSystem::Sms,
            Some("email") => ContactSystem::Email,
            Some("fax" | "pager" | "url" | "other") => ContactSystem::Other,
            Some(s) => return Err(NabotoError::structure(format!("`{s}` is not a contact point system"))),
        };
        let value = opt_str(t, "value", "telecom.")?
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| NabotoError::profile("every `telecom` entry needs a `value`"))?;
        let use_ = match opt_str(t, "use", "telecom.")? {
            None => None,
            Some("home") => Some(ContactUse::Home),
            Some("work") => Some(ContactUse::Work),
            Some("mobile") => Some(ContactUse::Mobile),
            Some("temp") => Some(ContactUse::Temp),
            Some("old") => Some(ContactUse::Old),
            Some(u) => return Err(NabotoError::structure(format!("`{u}` is not a contact point use"))),
        };
        let rank = match t.get("rank") {
            None | Some(Value::Null) => None,
            Some(r) => Some(
                r.as_u64()
                    .filter(|r| *r >= 1)
                    .and_then(|r| u32::try_from(r).ok())
                    .ok_or_else(|| NabotoError::structure("`telecom.rank` must be a positive integer"))?,
            ),
        };
        out.push(ContactPoint { system, value: value.trim().to_owned(), use_, rank, consent: None });
    }
    for (system, name) in [(ContactSystem::Email, "email"), (ContactSystem::Sms, "sms")] {
        if out.iter().filter(|c| c.system == system).count() > 1 {
            return Err(NabotoError::profile(format!("a NabotoPatient has at most one `telecom` of system `{name}`")));
        }
    }
    let reachable = out.iter().any(|c| c.system == ContactSystem::Email) || mobile_number(&out).is_some();
    if !reachable {
        return Err(NabotoError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "required",
            "ContactPointRequired",
            "a patient needs an e-mail address or a mobile number (`telecom` of system `email` or `sms`, or `phone` with use `mobile`): the video call links reach the patient that way",
        ));
    }
    Ok(out)
}

/// The identifier type codes of the three slices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slice {
    Ss,
    Ni,
    Pi,
}

impl Slice {
    fn code(self) -> &'static str {
        match self {
            Slice::Ss => "SS",
            Slice::Ni => "NI",
            Slice::Pi => "PI",
        }
    }
}

fn identifiers(body: &Value) -> Result<Vec<Identifier>, NabotoError> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for i in opt_array(body, "identifier", "")? {
        let codes: Vec<&str> = i
            .get("type")
            .and_then(|t| t.get("coding"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c.get("system").and_then(Value::as_str).is_none_or(|s| s == IDENTIFIER_TYPE))
            .filter_map(|c| c.get("code").and_then(Value::as_str))
            .collect();
        let slice = if codes.contains(&"SS") {
            Slice::Ss
        } else if codes.contains(&"NI") {
            Slice::Ni
        } else if codes.contains(&"PI") {
            Slice::Pi
        } else {
            return Err(NabotoError::profile(
                "every `identifier` needs a `type` of v2-0203 code SS (social security number), NI (bPK) or PI (the clinic's own id)",
            ));
        };
        if seen.contains(&slice) {
            return Err(NabotoError::profile(format!(
                "a NabotoPatient has at most one identifier of type {}",
                slice.code()
            )));
        }
        seen.push(slice);
        let value = opt_str(i, "value", "identifier.")?
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| NabotoError::profile("every `identifier` needs a `value`"))?;
        let system = opt_str(i, "system", "identifier.")?.map(str::trim).filter(|s| !s.is_empty());
        let fixed = |expected: &str, name: &str| match system {
            None => Ok(()),
            Some(s) if s == expected => Ok(()),
            Some(s) => {
                Err(NabotoError::profile(format!("the {name} identifier's system must be `{expected}`, not `{s}`")))
            }
        };
        match slice {
            Slice::Ss => {
                fixed(SS_SYSTEM, "SS")?;
                out.push(NationalId::parse("at", value)?.identifier());
            }
            Slice::Ni => {
                fixed(NI_SYSTEM, "NI")?;
                out.push(Identifier { system: NI_SYSTEM.into(), value: value.into() });
            }
            Slice::Pi => {
                let system = system.ok_or_else(|| {
                    NabotoError::profile("the PI identifier (the clinic's own id) needs its `system`")
                })?;
                out.push(Identifier { system: system.into(), value: value.into() });
            }
        }
    }
    Ok(out)
}

fn addresses(body: &Value) -> Result<Vec<PostalAddress>, NabotoError> {
    let mut out = Vec::new();
    for a in opt_array(body, "address", "")? {
        for k in ["period", "district"] {
            if a.get(k).is_some() {
                return Err(NabotoError::profile(format!("`address.{k}` must not be present (AT core address)")));
            }
        }
        out.push(PostalAddress {
            use_: opt_str(a, "use", "address.")?.map(str::to_owned),
            lines: strings(a, "line", "address.")?,
            apartment: None,
            city: opt_str(a, "city", "address.")?.map(str::to_owned),
            state: opt_str(a, "state", "address.")?.map(str::to_owned),
            postal_code: opt_str(a, "postalCode", "address.")?.map(str::to_owned),
            country: opt_str(a, "country", "address.")?.map(str::to_owned),
        });
    }
    Ok(out)
}

// ---- writing a NabotoPatient ----

/// A patient as a NabotoPatient, its profile in `spelling`.
pub fn resource(p: &Patient, spelling: Base) -> Value {
    let mut r = json!({
        "resourceType": "Patient",
        "id": p.id.map(|i| i.to_string()).unwrap_or_default(),
        "meta": {"profile": [spelling.structure_definition(canonical::PATIENT_PROFILE)]},
    });
    let identifiers: Vec<Value> = p.identifiers.iter().filter(|i| shown(&i.system)).map(identifier).collect();
    if !identifiers.is_empty() {
        r["identifier"] = Value::Array(identifiers);
    }
    r["active"] = json!(p.active);
    r["name"] = Value::Array(p.names.iter().map(name).collect());
    if !p.telecom.is_empty() {
        r["telecom"] = Value::Array(p.telecom.iter().map(contact_point).collect());
    }
    if let Some(g) = p.gender {
        r["gender"] = json!(match g {
            Gender::Male => "male",
            Gender::Female => "female",
            Gender::Other => "other",
            Gender::Unknown => "unknown",
        });
    }
    if let Some(d) = p.birth_date {
        r["birthDate"] = json!(d.to_string());
    }
    if !p.addresses.is_empty() {
        r["address"] = Value::Array(p.addresses.iter().map(address).collect());
    }
    r
}

fn identifier(i: &Identifier) -> Value {
    let (code, display, system) = match i.system.as_str() {
        NATIONAL_ID_AT => ("SS", "Social Security Number", SS_SYSTEM),
        NI_SYSTEM => ("NI", "National unique individual identifier", NI_SYSTEM),
        other => ("PI", "Patient internal identifier", other),
    };
    json!({
        "use": "official",
        "type": {"coding": [{"system": IDENTIFIER_TYPE, "code": code, "display": display}]},
        "system": system,
        "value": i.value,
    })
}

fn name(n: &HumanName) -> Value {
    let mut v = Map::new();
    if let Some(u) = n.use_ {
        v.insert("use".into(), json!(name_use_code(u)));
    }
    if let Some(t) = &n.text {
        v.insert("text".into(), json!(t));
    }
    if let Some(f) = &n.family {
        v.insert("family".into(), json!(f));
    }
    for (k, list) in [("given", &n.given), ("prefix", &n.prefix), ("suffix", &n.suffix)] {
        if !list.is_empty() {
            v.insert(k.into(), json!(list));
        }
    }
    Value::Object(v)
}

fn contact_point(c: &ContactPoint) -> Value {
    let mut v = json!({
        "system": match c.system {
            ContactSystem::Phone => "phone",
            ContactSystem::Sms => "sms",
            ContactSystem::Email => "email",
            ContactSystem::Other => "other",
        },
        "value": c.value,
    });
    if let Some(u) = c.use_ {
        v["use"] = json!(match u {
            ContactUse::Home => "home",
            ContactUse::Work => "work",
            ContactUse::Mobile => "mobile",
            ContactUse::Temp => "temp",
            ContactUse::Old => "old",
        });
    }
    if let Some(r) = c.rank {
        v["rank"] = json!(r);
    }
    v
}

fn address(a: &PostalAddress) -> Value {
    let mut v = Map::new();
    if let Some(u) = &a.use_ {
        v.insert("use".into(), json!(u));
    }
    if !a.lines.is_empty() {
        v.insert("line".into(), json!(a.lines));
    }
    for (k, x) in [("city", &a.city), ("state", &a.state), ("postalCode", &a.postal_code), ("country", &a.country)] {
        if let Some(x) = x {
            v.insert(k.into(), json!(x));
        }
    }
    Value::Object(v)
}
