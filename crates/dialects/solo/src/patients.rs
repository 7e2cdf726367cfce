//! Solo patients: `POST /patients`, `GET`/`PUT /patients/{patient_id}` (the
//! client's own external id) and `GET`/`PUT
//! /patients/id/type/SPID/value/{spid}` (the Solo patient id, SPID: the core
//! patient id). This module owns the demographics' wire shape (reading it,
//! with every value set checked and the field at fault named, and writing
//! it), the identifier systems Solo's ids are kept under, and the look-ups
//! of a patient by external id, SPID or HSID that appointments use.
//!
//! Writes go through `state.scheduling` (`create_patient`,
//! `update_patient`): a patient another dialect owns (Naboto) is refused
//! there (403 here). Patients created here are owned by Solo.

use crate::{Caller, Json, Path, SoloError};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use polyclinic_core::patient::{
    ContactPoint, ContactSystem, ContactUse, Gender, HumanName, NameUse, Patient, PatientContact, PostalAddress,
    SharedEmailGroup, systems,
};
use polyclinic_core::tenant::Dialect;
use polyclinic_core::text::{MAX_SHORT, check_len};
use polyclinic_core::{CoreError, PatientId, TenantId};
use polyclinic_http::AppState;
use polyclinic_scheduling::SchedulingError;
use polyclinic_store::{StoreError, patients};
use serde::Deserialize;
use serde_json::{Value, json};

/// The identifier system of the client's own patient id (Solo's `id`).
pub const EXTERNAL_ID: &str = "urn:polyclinic:solo:patient-id";
/// The identifier system of the MRN: the core's, shared with every dialect.
/// The HSID (the EHR's patient id Solo hears over HL7) is the MRN.
pub const MRN: &str = systems::MRN;
/// The identifier system of the patient's account number.
pub const ACCOUNT_NUMBER: &str = systems::ACCOUNT_NUMBER;
/// How `deceasedAt` is written: `2020-03-31 10:12 AM`, in the tenant's zone.
const DECEASED_AT_FORMAT: &str = "%Y-%m-%d %I:%M %p";
/// Most entries of `contact`.
const MAX_CONTACTS: usize = 10;

const NAME_USES: &[&str] = &["usual", "official", "temp", "nickname", "anonymous", "old", "maiden"];
const GENDERS: &[&str] = &["male", "female", "other", "unknown"];
const TELECOM_SYSTEMS: &[&str] = &["phone", "email", "sms", "other"];
const TELECOM_USES: &[&str] = &["home", "work", "mobile", "temp", "old"];
const ADDRESS_USES: &[&str] = &["home", "work", "temp", "old", "billing"];

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/patients", axum::routing::post(create))
        .route("/patients/{id}", get(read).put(update))
        .route("/patients/id/type/SPID/value/{spid}", get(read_spid).put(update_spid))
}

/// A 400 naming the field at fault, in the document's words
/// (`Bad parameters [field: message]`).
pub(crate) fn bad(field: &str, message: impl std::fmt::Display) -> SoloError {
    SoloError::bad_request(format!("Bad parameters [{field}: {message}]"))
}

/// The patient body of every patient request; every field is optional here
/// (`POST` requires `id`). A `null` is the same as a field left out.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientBody {
    id: Option<Value>,
    mrn: Option<String>,
    account_number: Option<String>,
    name: Option<Vec<NameIn>>,
    birth_date: Option<String>,
    gender: Option<String>,
    marital_status: Option<String>,
    telecom: Option<Vec<TelecomIn>>,
    contact: Option<Vec<ContactIn>>,
    preferred_language: Option<String>,
    race: Option<String>,
    ethnicity: Option<String>,
    address: Option<Vec<AddressIn>>,
    active: Option<bool>,
    deceased: Option<bool>,
    deceased_at: Option<String>,
    /// Deprecated: accepted and not kept (see `familyMember` on output).
    #[allow(dead_code)]
    family_member: Option<bool>,
    is_linked_by_email: Option<bool>,
    shared_email_group: Option<GroupIn>,
    group_type: Option<String>,
    group_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NameIn {
    #[serde(rename = "use")]
    use_: Option<String>,
    family: Option<String>,
    first_name: Option<String>,
    middle_name: Option<String>,
    last_name: Option<String>,
    alias: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct TelecomIn {
    #[serde(rename = "use")]
    use_: Option<String>,
    system: Option<String>,
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ContactIn {
    telecom: Option<Vec<TelecomIn>>,
    name: Option<Vec<NameIn>>,
}

#[derive(Debug, Default, Deserialize)]
struct AddressIn {
    city: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    apartment: Option<String>,
    country: Option<String>,
    state: Option<String>,
    postalcode: Option<String>,
    line: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct GroupIn {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
}

/// `value` must be one of `set`.
fn one_of(field: &str, value: &str, set: &[&str]) -> Result<(), SoloError> {
    if set.contains(&value) {
        Ok(())
    } else {
        let allowed: Vec<String> = set.iter().map(|s| format!("\"{s}\"")).collect();
        Err(bad(field, format!("\"{value}\" is not one of {}", allowed.join(", "))))
    }
}

/// A free text within the short-text limit; empty is none.
fn text(field: &str, v: Option<&String>) -> Result<Option<String>, SoloError> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => {
            check_len(field, s, MAX_SHORT).map_err(|e| bad(field, invalid_message(e)))?;
            Ok(Some(s.to_owned()))
        }
    }
}

/// The message of a core refusal, without its "invalid field:" prefix.
fn invalid_message(e: CoreError) -> String {
    match e {
        CoreError::Invalid { message, .. } => message,
        other => other.to_string(),
    }
}

/// A JSON value of `id` as text: a string or an integer.
fn id_text(v: &Value) -> Result<String, SoloError> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        _ => return Err(bad("id", "This value should be a string.")),
    };
    if s.is_empty() {
        return Err(bad("id", "This value should not be blank."));
    }
    check_len("id", &s, MAX_SHORT).map_err(|e| bad("id", invalid_message(e)))?;
    Ok(s)
}

fn names(field: &str, list: &[NameIn]) -> Result<Vec<HumanName>, SoloError> {
    if list.len() > 10 {
        return Err(bad(field, "at most 10 names"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, n) in list.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let use_ = match n.use_.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                one_of(&at("use"), u, NAME_USES)?;
                serde_json::from_value::<NameUse>(json!(u)).ok()
            }
        };
        let mut given: Vec<String> = Vec::new();
        let first = text(&at("firstName"), n.first_name.as_ref())?;
        let middle = text(&at("middleName"), n.middle_name.as_ref())?;
        if first.is_some() || middle.is_some() {
            given.push(first.unwrap_or_default());
        }
        given.extend(middle);
        out.push(HumanName {
            use_,
            given,
            family: text(&at("lastName"), n.last_name.as_ref())?,
            text: text(&at("family"), n.family.as_ref())?,
            alias: text(&at("alias"), n.alias.as_ref())?,
            ..Default::default()
        });
    }
    Ok(out)
}

fn telecom(field: &str, list: &[TelecomIn], normalise: bool) -> Result<Vec<ContactPoint>, SoloError> {
    if list.len() > 20 {
        return Err(bad(field, "at most 20 contact points"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let at = |f: &str| format!("{field}[{i}].{f}");
        let system = t.system.as_deref().ok_or_else(|| bad(&at("system"), "This value should not be blank."))?;
        one_of(&at("system"), system, TELECOM_SYSTEMS)?;
        let use_ = match t.use_.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                one_of(&at("use"), u, TELECOM_USES)?;
                serde_json::from_value::<ContactUse>(json!(u)).ok()
            }
        };
        let value = text(&at("value"), t.value.as_ref())?
            .ok_or_else(|| bad(&at("value"), "This value should not be blank."))?;
        let mut point = ContactPoint {
            system: serde_json::from_value(json!(system)).unwrap_or(ContactSystem::Other),
            value,
            use_,
            rank: None,
            consent: None,
        };
        if normalise {
            point.normalise().map_err(|e| bad(&at("value"), invalid_message(e)))?;
        }
        out.push(point);
    }
    Ok(out)
}

fn addresses(list: &[AddressIn]) -> Result<Vec<PostalAddress>, SoloError> {
    if list.len() > 10 {
        return Err(bad("address", "at most 10 addresses"));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        let at = |f: &str| format!("address[{i}].{f}");
        let use_ = match a.use_.as_deref().filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                one_of(&at("use"), u, ADDRESS_USES)?;
                Some(u.to_owned())
            }
        };
        let lines = a.line.as_deref().unwrap_or_default();
        if lines.len() > 10 {
            return Err(bad(&at("line"), "at most 10 lines"));
        }
        for l in lines {
            check_len(&at("line"), l, MAX_SHORT).map_err(|e| bad(&at("line"), invalid_message(e)))?;
        }
        out.push(PostalAddress {
            use_,
            lines: lines.to_vec(),
            apartment: text(&at("apartment"), a.apartment.as_ref())?,
            city: text(&at("city"), a.city.as_ref())?,
            state: text(&at("state"), a.state.as_ref())?,
            postal_code: text(&at("postalcode"), a.postalcode.as_ref())?,
            country: text(&at("country"), a.country.as_ref())?,
        });
    }
    Ok(out)
}

/// Reads `deceasedAt` (`2020-03-31 10:12 AM`) as a local time of `tz`.
fn parse_deceased_at(raw: &str, tz: &TimeZone) -> Result<Timestamp, SoloError> {
    let wrong = || bad("deceasedAt", format!("\"{raw}\" is not a date and time like \"2020-03-31 10:12 AM\""));
    let local = DateTime::strptime(DECEASED_AT_FORMAT, raw.trim()).map_err(|_| wrong())?;
    let at = local.to_zoned(tz.clone()).map_err(|_| wrong())?.timestamp();
    if !polyclinic_core::clock::in_range(at) {
        return Err(wrong());
    }
    Ok(at)
}

/// Sets (or, for an empty value, removes) the identifier of `system`.
fn set_identifier(p: &mut Patient, field: &str, system: &str, v: Option<&String>) -> Result<(), SoloError> {
    match text(field, v)? {
        Some(value) => p.set_identifier(system, value),
        None => p.identifiers.retain(|i| i.system != system),
    }
    Ok(())
}

impl PatientBody {
    /// Applies the fields the body gives to `p` (the rest stays), checking
    /// every value; `tz` reads `deceasedAt`.
    pub fn apply(&self, p: &mut Patient, tz: &TimeZone) -> Result<(), SoloError> {
        if let Some(v) = &self.mrn {
            set_identifier(p, "mrn", MRN, Some(v))?;
        }
        if let Some(v) = &self.account_number {
            set_identifier(p, "accountNumber", ACCOUNT_NUMBER, Some(v))?;
        }
        if let Some(list) = &self.name {
            p.names = names("name", list)?;
        }
        if let Some(d) = &self.birth_date {
            p.birth_date = match d.trim() {
                "" => None,
                d => Some(
                    d.parse::<Date>()
                        .map_err(|_| bad("birthDate", format!("\"{d}\" is not a date like \"1983-08-15\"")))?,
                ),
            };
        }
        if let Some(g) = &self.gender {
            p.gender = match g.as_str() {
                "" => None,
                g => {
                    one_of("gender", g, GENDERS)?;
                    serde_json::from_value::<Gender>(json!(g)).ok()
                }
            };
        }
        if let Some(v) = &self.marital_status {
            p.marital_status = text("maritalStatus", Some(v))?;
        }
        if let Some(list) = &self.telecom {
            p.telecom = telecom("telecom", list, true)?;
        }
        if let Some(list) = &self.contact {
            if list.len() > MAX_CONTACTS {
                return Err(bad("contact", format!("at most {MAX_CONTACTS} contacts")));
            }
            let mut contacts = Vec::with_capacity(list.len());
            for (i, c) in list.iter().enumerate() {
                contacts.push(PatientContact {
                    names: names(&format!("contact[{i}].name"), c.name.as_deref().unwrap_or_default())?,
                    // Contacts' values are kept as given (the document's
                    // example has a phone "phone").
                    telecom: telecom(
                        &format!("contact[{i}].telecom"),
                        c.telecom.as_deref().unwrap_or_default(),
                        false,
                    )?,
                });
            }
            p.contacts = contacts;
        }
        if let Some(v) = &self.preferred_language {
            p.language = text("preferredLanguage", Some(v))?;
        }
        if let Some(v) = &self.race {
            p.race = text("race", Some(v))?;
        }
        if let Some(v) = &self.ethnicity {
            p.ethnicity = text("ethnicity", Some(v))?;
        }
        if let Some(list) = &self.address {
            p.addresses = addresses(list)?;
        }
        if let Some(a) = self.active {
            p.active = a;
        }
        // `deceasedAt` is required when `deceased` is true, and an error
        // without it.
        match (self.deceased, &self.deceased_at) {
            (Some(true), Some(at)) => {
                p.deceased = true;
                p.deceased_at = Some(parse_deceased_at(at, tz)?);
            }
            (Some(true), None) => return Err(bad("deceasedAt", "This value is required when deceased is true.")),
            (_, Some(_)) => return Err(bad("deceasedAt", "This value is only allowed when deceased is true.")),
            (Some(false), None) => {
                p.deceased = false;
                p.deceased_at = None;
            }
            (None, None) => {}
        }
        self.apply_group(p)
    }

    /// `isLinkedByEmail` with its group: `sharedEmailGroup {type, name}` or,
    /// as the SPID endpoints show it, `groupType` and `groupName`.
    fn apply_group(&self, p: &mut Patient) -> Result<(), SoloError> {
        let (kind, name) = match &self.shared_email_group {
            Some(g) => (g.kind.as_ref(), g.name.as_ref()),
            None => (self.group_type.as_ref(), self.group_name.as_ref()),
        };
        let given = kind.is_some() || name.is_some();
        let linked = match self.is_linked_by_email {
            Some(l) => l,
            None if given => true,
            None => return Ok(()),
        };
        if !linked {
            p.shared_email_group = None;
            return Ok(());
        }
        let field = if self.shared_email_group.is_some() { "sharedEmailGroup" } else { "groupType" };
        let kind = text(&format!("{field}.type"), kind)?;
        let name = text(&format!("{field}.name"), name)?;
        match (kind, name) {
            (Some(kind), Some(name)) => p.shared_email_group = Some(SharedEmailGroup { kind, name }),
            _ if !given && p.shared_email_group.is_some() => {}
            _ => {
                return Err(bad("sharedEmailGroup", "a group type and name are required when isLinkedByEmail is true"));
            }
        }
        Ok(())
    }
}

/// How the group of a patient linked by e-mail is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupShape {
    /// `sharedEmailGroup: {type, name} | null` (most endpoints).
    Object,
    /// `groupType`, `groupName` (`GET /patients/id/type/SPID/value/{spid}`).
    Flat,
}

fn render_names(names: &[HumanName]) -> Value {
    Value::Array(
        names
            .iter()
            .map(|n| {
                let use_ = n.use_.and_then(|u| serde_json::to_value(u).ok()).unwrap_or(Value::String(String::new()));
                let full =
                    format!("{} {}", n.given_joined(), n.family.as_deref().unwrap_or_default()).trim().to_owned();
                json!({
                    "use": use_,
                    "family": n.text.clone().unwrap_or(full),
                    "firstName": n.given.first().cloned().unwrap_or_default(),
                    "middleName": n.given.get(1..).map(|m| m.join(" ")).unwrap_or_default(),
                    "lastName": n.family.clone().unwrap_or_default(),
                    "alias": n.alias.clone().unwrap_or_default(),
                })
            })
            .collect(),
    )
}

fn render_telecom(points: &[ContactPoint]) -> Value {
    Value::Array(
        points
            .iter()
            .map(|c| {
                json!({
                    "use": c.use_.and_then(|u| serde_json::to_value(u).ok()),
                    "system": serde_json::to_value(c.system).unwrap_or(Value::Null),
                    "value": c.value,
                })
            })
            .collect(),
    )
}

/// The patient's demographics as the document shows them.
pub fn render(p: &Patient, tz: &TimeZone, shape: GroupShape) -> Value {
    let addresses: Vec<Value> = p
        .addresses
        .iter()
        .map(|a| {
            json!({
                "city": a.city, "use": a.use_, "apartment": a.apartment.clone().unwrap_or_default(),
                "country": a.country, "state": a.state, "postalcode": a.postal_code, "line": a.lines,
            })
        })
        .collect();
    let contacts: Vec<Value> = p
        .contacts
        .iter()
        .map(|c| json!({"telecom": render_telecom(&c.telecom), "name": render_names(&c.names)}))
        .collect();
    let group = p.shared_email_group.as_ref();
    let mut out = json!({
        "mrn": p.identifier(MRN),
        "accountNumber": p.identifier(ACCOUNT_NUMBER),
        "name": render_names(&p.names),
        "birthDate": p.birth_date.map(|d| d.to_string()),
        "gender": p.gender.and_then(|g| serde_json::to_value(g).ok()),
        "maritalStatus": p.marital_status,
        "telecom": render_telecom(&p.telecom),
        "contact": contacts,
        "preferredLanguage": p.language,
        "race": p.race,
        "ethnicity": p.ethnicity,
        "address": addresses,
        "active": p.active,
        "deceased": p.deceased,
        "deceasedAt": p.deceased_at.map(|t| t.to_zoned(tz.clone()).strftime(DECEASED_AT_FORMAT).to_string()),
        "familyMember": group.is_some_and(|g| g.kind == "family"),
        "isLinkedByEmail": group.is_some(),
    });
    match shape {
        GroupShape::Object => {
            out["sharedEmailGroup"] = group.map_or(Value::Null, |g| json!({"type": g.kind, "name": g.name}));
        }
        GroupShape::Flat => {
            out["groupType"] = json!(group.map(|g| g.kind.clone()));
            out["groupName"] = json!(group.map(|g| g.name.clone()));
        }
    }
    out
}

/// How a request names a patient.
#[derive(Debug, Clone)]
pub enum PatientRef {
    /// The client's own id (`patient_id`).
    External(String),
    /// The Solo patient id (SPID), as the path gave it.
    Spid(String),
    /// The Health System id: the patient's MRN.
    Hsid(String),
}

/// The tenant's patient `r` names, or 404.
pub async fn find(state: &AppState, tenant: TenantId, r: PatientRef) -> Result<Patient, SoloError> {
    let not_found = || SoloError::not_found("Patient not found");
    let found = match r {
        PatientRef::Spid(raw) => {
            let id = raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(not_found)?;
            state.store.read(move |c| Box::pin(async move { patients::get(c, tenant, PatientId(id)).await })).await?
        }
        PatientRef::External(v) => {
            state
                .store
                .read(move |c| Box::pin(async move { patients::find_by(c, tenant, EXTERNAL_ID, &v).await }))
                .await?
        }
        PatientRef::Hsid(v) => {
            state.store.read(move |c| Box::pin(async move { patients::find_by(c, tenant, MRN, &v).await })).await?
        }
    };
    found.ok_or_else(not_found)
}

/// A refused patient write: an identifier already used answers 409.
fn refused(e: SchedulingError) -> SoloError {
    match e {
        SchedulingError::Store(StoreError::Core(CoreError::AlreadyExists { .. })) => {
            SoloError::conflict("A patient with the same id, mrn or accountNumber already exists")
        }
        other => other.into(),
    }
}

/// `POST /patients`: 201 with the new patient's SPID as a bare integer.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<PatientBody>,
) -> Result<Response, SoloError> {
    let id = id_text(body.id.as_ref().ok_or_else(|| bad("id", "This value should not be blank."))?)?;
    let mut p = Patient { active: true, owner: Some(Dialect::Solo), ..Default::default() };
    p.set_identifier(EXTERNAL_ID, id);
    body.apply(&mut p, &caller.tenant.tz())?;
    let created = state.scheduling.create_patient(&caller.tenant, p, state.now()).await.map_err(refused)?;
    let spid = created.id.map_or(0, |i| i.get());
    Ok((StatusCode::CREATED, axum::Json(json!(spid))).into_response())
}

async fn show(state: &AppState, caller: &Caller, r: PatientRef, shape: GroupShape) -> Result<Response, SoloError> {
    let p = find(state, caller.tenant.id, r).await?;
    Ok(axum::Json(render(&p, &caller.tenant.tz(), shape)).into_response())
}

async fn change(state: &AppState, caller: &Caller, r: PatientRef, body: PatientBody) -> Result<Response, SoloError> {
    let mut p = find(state, caller.tenant.id, r).await?;
    body.apply(&mut p, &caller.tenant.tz())?;
    state.scheduling.update_patient(&caller.tenant, p, Dialect::Solo, state.now()).await.map_err(refused)?;
    Ok(axum::Json(json!([])).into_response())
}

async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, SoloError> {
    show(&state, &caller, PatientRef::External(id), GroupShape::Object).await
}

async fn read_spid(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(spid): Path<String>,
) -> Result<Response, SoloError> {
    show(&state, &caller, PatientRef::Spid(spid), GroupShape::Flat).await
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<PatientBody>,
) -> Result<Response, SoloError> {
    change(&state, &caller, PatientRef::External(id), body).await
}

async fn update_spid(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(spid): Path<String>,
    Json(body): Json<PatientBody>,
) -> Result<Response, SoloError> {
    change(&state, &caller, PatientRef::Spid(spid), body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deceased_at_is_read_and_written_in_the_tenants_zone() {
        let tz = TimeZone::get("Europe/Stockholm").unwrap();
        let at = parse_deceased_at("2020-03-31 10:12 AM", &tz).unwrap();
        assert_eq!(at.to_string(), "2020-03-31T08:12:00Z");
        assert_eq!(at.to_zoned(tz.clone()).strftime(DECEASED_AT_FORMAT).to_string(), "2020-03-31 10:12 AM");
        assert!(parse_deceased_at("2020-03-31T10:12", &tz).is_err());
    }

    #[test]
    fn deceased_rules() {
        let tz = TimeZone::UTC;
        let body = |v: Value| serde_json::from_value::<PatientBody>(v).unwrap();
        let mut p = Patient::default();
        assert!(body(json!({"deceased": true})).apply(&mut p, &tz).is_err());
        assert!(body(json!({"deceasedAt": "2020-03-31 10:12 AM"})).apply(&mut p, &tz).is_err());
        assert!(body(json!({"deceased": false, "deceasedAt": "2020-03-31 10:12 AM"})).apply(&mut p, &tz).is_err());
        body(json!({"deceased": true, "deceasedAt": "2020-03-31 10:12 PM"})).apply(&mut p, &tz).unwrap();
        assert!(p.deceased && p.deceased_at.is_some());
    }
}
