//! `/request-assistance` ("Virtual Nursing and Sitting"): a care location's
//! device asks for a nurse or sitter. `POST` makes the location's current
//! request, `GET` answers it, `DELETE` cancels it. Storage:
//! `polyclinic_store::assistance` (one open request per location, held by
//! the database).
//!
//! Every call names the bed in one of four ways, in a JSON body (on `GET`
//! and `DELETE` too, as the document shows) or as query parameters with the
//! same names ([`Fields`]): the device (`deviceSerialNumber`), the patient
//! in the bed (`patientMrn`), `building` + `floor` + `room` (+ `bed`), or
//! `department` + `room` (+ `bed`). The address is matched against the
//! tenant's care locations (seed data), see [`resolve`].
//!
//! Errors are the document's flat `{"message": "..."}` here, every one of
//! them (bad JSON too):
//!
//! | cause | status | message |
//! |---|---|---|
//! | no complete address (nothing, or a partial one such as `building` + `room`) | 400 | [`MISSING`] |
//! | no care location matches; `patientMrn` of no patient of the tenant | 404 | [`NO_DEVICE`] |
//! | several care locations match (a room without its `bed`) | 400 | [`SEVERAL_DEVICES`] |
//! | `GET` / `DELETE`: the location has no current request | 404 | [`NO_REQUEST`] |
//! | a body that is not JSON or not an object; a field that is not a string (or number); a field over 256 characters; a query that cannot be read | 400 | `Bad parameters [...]` |
//! | a body sent with a `Content-Type` that is not JSON | 415 | |
//! | a body larger than the limit | 413 | |
//! | the location already has a current request (`POST`) | 200 | (not an error: the current request is answered) |
//!
//! The `Api-Key` refusals (401, 429) come from the dialect's authentication,
//! before this module, in the API's usual nested shape.

use crate::patients::{self, MRN};
use crate::{Caller, SoloError};
use axum::Extension;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use polyclinic_core::TenantId;
use polyclinic_core::care::CareLocation;
use polyclinic_core::patient::Patient;
use polyclinic_core::text::MAX_SHORT;
use polyclinic_http::AppState;
use polyclinic_store::assistance::{self, AssistanceRequest, Opened};
use serde_json::{Map, Value, json};
use sha2::Digest;

/// The document's message when no complete address is given.
pub const MISSING: &str = "Service Request Error: Missing Required Parameters. Please include either Device ID, \
     Patient ID, or a combination of Building, Floor, Room, and Bed (opt.), or Department, Room, and Bed (opt.) \
     to proceed";
/// The document's message when no care location matches.
pub const NO_DEVICE: &str = "Device could not be found from the data submitted";
/// Ours (the document has none): an address that names several beds.
pub const SEVERAL_DEVICES: &str = "Service Request Error: More than one device matches the data submitted. \
     Please include the Bed, or the Device ID, to proceed";
/// The document's message when the location has no current request.
pub const NO_REQUEST: &str = "Service Request Error: Request not found";

/// How `createdAt` and `finishedAt` are written: ATOM (RFC 3339 with a
/// numeric offset), in the tenant's time zone.
const ATOM: &str = "%Y-%m-%dT%H:%M:%S%:z";

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/request-assistance", post(create).get(read).delete(cancel))
}

/// How a request names the bed, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `deviceSerialNumber`.
    Device(String),
    /// `patientMrn`: the location whose patient has this MRN.
    PatientMrn(String),
    /// `building`, `floor`, `room` and optionally `bed`.
    Building { building: String, floor: String, room: String, bed: Option<String> },
    /// `department`, `room` and optionally `bed`.
    Department { department: String, room: String, bed: Option<String> },
}

/// The addressing fields as given (trimmed; an empty text is a field left
/// out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub building: Option<String>,
    pub floor: Option<String>,
    pub room: Option<String>,
    pub bed: Option<String>,
    pub department: Option<String>,
    pub patient_mrn: Option<String>,
    pub device_serial_number: Option<String>,
}

/// A 400 naming the field at fault, flat.
fn bad(what: impl std::fmt::Display) -> SoloError {
    SoloError::bad_request(format!("Bad parameters [{what}]")).flat()
}

impl Fields {
    const NAMES: [&'static str; 7] =
        ["building", "floor", "room", "bed", "department", "patientMrn", "deviceSerialNumber"];

    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "building" => &mut self.building,
            "floor" => &mut self.floor,
            "room" => &mut self.room,
            "bed" => &mut self.bed,
            "department" => &mut self.department,
            "patientMrn" => &mut self.patient_mrn,
            "deviceSerialNumber" => &mut self.device_serial_number,
            _ => return None,
        })
    }

    /// Sets `name` (one of [`Fields::NAMES`]) to `value`, trimmed.
    fn set(&mut self, name: &str, value: &str) -> Result<(), SoloError> {
        let value = value.trim();
        if value.chars().count() > MAX_SHORT {
            return Err(bad(format!("{name}: This value is too long.")));
        }
        if let Some(slot) = self.slot(name) {
            *slot = Some(value.to_owned()).filter(|v| !v.is_empty());
        }
        Ok(())
    }

    /// The fields of a JSON object. Strings are taken trimmed, numbers as
    /// their text (`"floor": 2`), `null` as a field left out; other fields
    /// are ignored.
    pub fn from_json(body: &Map<String, Value>) -> Result<Fields, SoloError> {
        let mut out = Fields::default();
        for name in Fields::NAMES {
            match body.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => out.set(name, s)?,
                Some(Value::Number(n)) => out.set(name, &n.to_string())?,
                Some(_) => return Err(bad(format!("{name}: This value should be of type string."))),
            }
        }
        Ok(out)
    }

    /// The fields of a query string (the first of repeated names).
    pub fn from_query(query: &str) -> Result<Fields, SoloError> {
        let pairs: Vec<(String, String)> = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
            &format!("/?{query}").parse().map_err(|_| bad("the query cannot be read"))?,
        )
        .map_err(|e| bad(e.body_text()))?
        .0;
        let mut out = Fields::default();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in &pairs {
            if let Some(known) = Fields::NAMES.iter().find(|n| **n == name.as_str())
                && !seen.contains(known)
            {
                seen.push(known);
                out.set(known, value)?;
            }
        }
        Ok(out)
    }

    /// The first complete address, trying the device, the patient's MRN,
    /// building + floor + room, then department + room; none: 400
    /// [`MISSING`].
    pub fn address(self) -> Result<Address, SoloError> {
        if let Some(serial) = self.device_serial_number {
            return Ok(Address::Device(serial));
        }
        if let Some(mrn) = self.patient_mrn {
            return Ok(Address::PatientMrn(mrn));
        }
        if let (Some(building), Some(floor), Some(room)) = (&self.building, &self.floor, &self.room) {
            return Ok(Address::Building {
                building: building.clone(),
                floor: floor.clone(),
                room: room.clone(),
                bed: self.bed,
            });
        }
        if let (Some(department), Some(room)) = (self.department, self.room) {
            return Ok(Address::Department { department, room, bed: self.bed });
        }
        Err(SoloError::bad_request(MISSING).flat())
    }
}

/// Why an address names no single care location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// No location matches: 404 [`NO_DEVICE`].
    None,
    /// Several do: 400 [`SEVERAL_DEVICES`].
    Several,
}

impl From<Unresolved> for SoloError {
    fn from(u: Unresolved) -> Self {
        match u {
            Unresolved::None => SoloError::not_found(NO_DEVICE).flat(),
            Unresolved::Several => SoloError::bad_request(SEVERAL_DEVICES).flat(),
        }
    }
}

/// A name (building, floor, room, bed, department) matches: trimmed, any
/// case.
fn same_name(stored: Option<&String>, given: &str) -> bool {
    stored.is_some_and(|s| s.trim().to_lowercase() == given.to_lowercase())
}

/// An identifier (device serial, MRN) matches: trimmed, exactly.
fn same_id(stored: Option<&String>, given: &str) -> bool {
    stored.is_some_and(|s| s.trim() == given)
}

/// The one care location `address` names. Names compare trimmed and in any
/// case, identifiers (serial, MRN) trimmed and exactly; a location without
/// the field does not match it; without `bed`, every bed of the room
/// matches (several: [`Unresolved::Several`]).
pub fn resolve<'a>(address: &Address, locations: &'a [CareLocation]) -> Result<&'a CareLocation, Unresolved> {
    let bed_fits = |l: &CareLocation, bed: &Option<String>| bed.as_ref().is_none_or(|b| same_name(l.bed.as_ref(), b));
    let mut found = locations.iter().filter(|l| match address {
        Address::Device(serial) => same_id(l.device_serial.as_ref(), serial),
        Address::PatientMrn(mrn) => same_id(l.patient_mrn.as_ref(), mrn),
        Address::Building { building, floor, room, bed } => {
            same_name(l.building.as_ref(), building)
                && same_name(l.floor.as_ref(), floor)
                && same_name(l.room.as_ref(), room)
                && bed_fits(l, bed)
        }
        Address::Department { department, room, bed } => {
            same_name(l.department.as_ref(), department) && same_name(l.room.as_ref(), room) && bed_fits(l, bed)
        }
    });
    match (found.next(), found.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(Unresolved::None),
        (Some(_), Some(_)) => Err(Unresolved::Several),
    }
}

/// The address of a call: its JSON body when it has one, else its query
/// parameters. Every refusal is flat.
pub struct Addressed(pub Address);

impl<S: Send + Sync> FromRequest<S> for Addressed {
    type Rejection = SoloError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let query = req.uri().query().unwrap_or("").to_owned();
        // No Content-Type is read as JSON (GET and DELETE clients often
        // cannot set one); another type than JSON is refused.
        let not_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .is_some_and(|m| !(m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))));
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| SoloError::new(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").flat())?;
        let fields = if bytes.iter().all(u8::is_ascii_whitespace) {
            Fields::from_query(&query)?
        } else {
            if not_json {
                return Err(SoloError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON, sent with Content-Type: application/json",
                )
                .flat());
            }
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(body)) => Fields::from_json(&body)?,
                Ok(_) => return Err(bad("the body must be a JSON object")),
                Err(e) => return Err(bad(e)),
            }
        };
        Ok(Addressed(fields.address()?))
    }
}

/// The care location `address` names, or the flat refusal. By MRN, the
/// tenant must also have a patient with that MRN (the bed is the patient's:
/// an MRN of nobody names no bed).
async fn locate(state: &AppState, tenant: TenantId, address: Address) -> Result<CareLocation, SoloError> {
    let locations =
        state.store.read(move |c| Box::pin(async move { assistance::care_locations(c, tenant).await })).await?;
    let location = resolve(&address, &locations)?.clone();
    // The patient is looked up by the location's stored MRN, never by the
    // client's text.
    if matches!(address, Address::PatientMrn(_)) && patient_in(state, tenant, &location).await?.is_none() {
        return Err(Unresolved::None.into());
    }
    Ok(location)
}

/// The tenant's patient whose MRN is the location's `patient_mrn`, if any.
async fn patient_in(state: &AppState, tenant: TenantId, location: &CareLocation) -> Result<Option<Patient>, SoloError> {
    let Some(mrn) = location.patient_mrn.as_ref().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    Ok(state
        .store
        .read(move |c| Box::pin(async move { polyclinic_store::patients::find_by(c, tenant, MRN, &mrn).await }))
        .await?)
}

/// A UUID derived from `what` (stable, not secret): SHA-256, first 16
/// bytes, as a version 8 (custom) UUID.
fn derived_uuid(what: &str) -> String {
    let digest = sha2::Sha256::digest(what.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().hyphenated().to_string()
}

/// Whole years from `birth` to `today` (0 before the first birthday).
pub fn age(birth: Date, today: Date) -> i64 {
    let mut years = i64::from(today.year()) - i64::from(birth.year());
    if (today.month(), today.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years.max(0)
}

/// The patient as the document shows it in a request.
fn render_patient(p: &Patient, today: Date) -> Value {
    let name = p.display_name();
    let given = name.map(|n| n.given.as_slice()).unwrap_or_default();
    let id = p
        .identifier(patients::EXTERNAL_ID)
        .map(str::to_owned)
        .or_else(|| p.id.map(|i| i.to_string()))
        .unwrap_or_default();
    json!({
        "age": p.birth_date.map_or(0, |b| age(b, today)),
        "id": id,
        "firstName": given.first().cloned().unwrap_or_default(),
        "lastName": name.and_then(|n| n.family.clone()).unwrap_or_default(),
        "middleName": given.get(1..).map(|m| m.join(" ")).unwrap_or_default(),
        "dob": p.birth_date.map(|d| d.to_string()),
        "mrn": p.identifier(MRN),
    })
}

/// A new request's body as the document shows it (`status`, `createdAt`
/// and `finishedAt` are set from the stored row when shown).
fn render_new(caller: &Caller, location: &CareLocation, patient: Option<&Patient>, id: &str, now: Timestamp) -> Value {
    let tenant = caller.tenant.id.get();
    let today = now.to_zoned(caller.tenant.tz()).date();
    let site = location.building.clone().unwrap_or_else(|| caller.tenant.name.clone());
    let location_id = location.id.to_string();
    json!({
        "id": id,
        "device": location.device_serial,
        "careLocation": {
            "availability": "offline",
            "id": location_id,
            "name": location.name,
            "status": "active",
            "video": {
                "type": "robot",
                "clientId": null,
                "serialNumber": location.device_serial,
                "careLocationId": location_id,
                "skipActivation": true,
            },
        },
        "practice": derived_uuid(&format!("polyclinic:solo:practice:{tenant}")),
        "patient": patient.map_or(Value::Null, |p| render_patient(p, today)),
        "assignedTo": null,
        "room": location.room,
        "status": assistance::INCOMPLETE,
        "createdAt": null,
        "finishedAt": null,
        "location": {
            "id": derived_uuid(&format!("polyclinic:solo:location:{tenant}:{}", site.trim().to_lowercase())),
            "name": site,
        },
        "avSessions": [],
        "createdFromExternalApi": true,
    })
}

fn unreadable() -> SoloError {
    SoloError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log").flat()
}

/// A stored request as the document shows it: its sealed body, with the
/// row's status and times (in the tenant's zone).
fn render(state: &AppState, tz: &TimeZone, r: &AssistanceRequest) -> Result<Value, SoloError> {
    let text = state.store.secret_key().open(&r.sealed_doc).map_err(|_| {
        tracing::error!(request = %r.id, "solo assistance request: its document cannot be opened");
        unreadable()
    })?;
    let mut body: Value = serde_json::from_str(&text).map_err(|_| {
        tracing::error!(request = %r.id, "solo assistance request: its document is not JSON");
        unreadable()
    })?;
    let atom = |t: Timestamp| t.to_zoned(tz.clone()).strftime(ATOM).to_string();
    body["status"] = json!(r.status);
    body["createdAt"] = json!(atom(r.created_at));
    body["finishedAt"] = json!(r.finished_at.map(atom));
    Ok(body)
}

/// `POST /request-assistance`: 201 with the new current request of the
/// location; 200 with the current one when the location already has one.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Addressed(address): Addressed,
) -> Response {
    open_request(&state, &caller, address).await.unwrap_or_else(|e| e.flat().into_response())
}

async fn open_request(state: &AppState, caller: &Caller, address: Address) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let location = locate(state, tenant, address).await?;
    let patient = patient_in(state, tenant, &location).await?;
    let now = state.now();
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let doc = render_new(caller, &location, patient.as_ref(), &id, now);
    let request = AssistanceRequest {
        id,
        care_location_id: location.id,
        status: assistance::INCOMPLETE.to_owned(),
        open: true,
        created_at: now,
        finished_at: None,
        sealed_doc: state.store.secret_key().seal(&doc.to_string()),
    };
    let opened =
        state.store.write(move |c| Box::pin(async move { assistance::open(c, tenant, &request).await })).await?;
    let (status, request) = match opened {
        Opened::Created(r) => (StatusCode::CREATED, r),
        Opened::Existing(r) => (StatusCode::OK, r),
    };
    Ok((status, axum::Json(render(state, &caller.tenant.tz(), &request)?)).into_response())
}

/// `GET /request-assistance`: 200 with the location's current request.
async fn read(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Addressed(address): Addressed,
) -> Response {
    show_request(&state, &caller, address).await.unwrap_or_else(|e| e.flat().into_response())
}

async fn show_request(state: &AppState, caller: &Caller, address: Address) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let location = locate(state, tenant, address).await?.id;
    let request = state
        .store
        .read(move |c| Box::pin(async move { assistance::current(c, tenant, location).await }))
        .await?
        .ok_or_else(|| SoloError::not_found(NO_REQUEST).flat())?;
    Ok(axum::Json(render(state, &caller.tenant.tz(), &request)?).into_response())
}

/// `DELETE /request-assistance`: cancels the location's current request
/// (`cancelled`, `finishedAt` now); 204 without a body.
async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Addressed(address): Addressed,
) -> Response {
    cancel_request(&state, &caller, address).await.unwrap_or_else(|e| e.flat().into_response())
}

async fn cancel_request(state: &AppState, caller: &Caller, address: Address) -> Result<Response, SoloError> {
    let tenant = caller.tenant.id;
    let location = locate(state, tenant, address).await?.id;
    let now = state.now();
    let cancelled =
        state.store.write(move |c| Box::pin(async move { assistance::cancel(c, tenant, location, now).await })).await?;
    match cancelled {
        Some(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        None => Err(SoloError::not_found(NO_REQUEST).flat()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use polyclinic_core::CareLocationId;

    fn bed(id: i64, room: &str, bed: Option<&str>, serial: Option<&str>, mrn: Option<&str>) -> CareLocation {
        CareLocation {
            id: CareLocationId(id),
            key: format!("cl{id}"),
            name: format!("CL-{id}"),
            building: Some("Hospital".into()),
            floor: Some("floor 2".into()),
            room: Some(room.into()),
            bed: bed.map(Into::into),
            department: Some("Emergency Department".into()),
            device_serial: serial.map(Into::into),
            patient_mrn: mrn.map(Into::into),
        }
    }

    fn fields(v: Value) -> Result<Address, SoloError> {
        Fields::from_json(v.as_object().unwrap())?.address()
    }

    #[test]
    fn an_address_needs_one_complete_combination() {
        assert_eq!(fields(json!({})).unwrap_err().message, MISSING);
        assert_eq!(fields(json!({"building": "h", "room": "1"})).unwrap_err().message, MISSING);
        assert_eq!(fields(json!({"department": "d", "bed": "1"})).unwrap_err().message, MISSING);
        assert_eq!(fields(json!({"room": " ", "department": "d"})).unwrap_err().message, MISSING);
        assert_eq!(fields(json!({"bed": "b"})).unwrap_err().shape, crate::Shape::Flat);
        assert_eq!(
            fields(json!({"building": " h ", "floor": 2, "room": "1"})).unwrap(),
            Address::Building { building: "h".into(), floor: "2".into(), room: "1".into(), bed: None }
        );
        // The device first, then the MRN, whatever else is given.
        assert_eq!(
            fields(json!({"patientMrn": "m", "deviceSerialNumber": "s", "department": "d", "room": "1"})).unwrap(),
            Address::Device("s".into())
        );
        assert!(fields(json!({"room": ["1"]})).unwrap_err().message.contains("room"));
    }

    #[test]
    fn query_parameters_read_like_the_body() {
        let f = Fields::from_query("department=Emergency%20Department&room=431&room=432&other=1").unwrap();
        assert_eq!(
            f.address().unwrap(),
            Address::Department { department: "Emergency Department".into(), room: "431".into(), bed: None }
        );
    }

    #[test]
    fn names_match_in_any_case_identifiers_exactly() {
        let all =
            [bed(1, "431", Some("bed 1"), Some("S1"), Some("M1")), bed(2, "431", Some("bed 2"), Some("S2"), None)];
        let by = |a: Address| resolve(&a, &all).map(|l| l.id.get());
        assert_eq!(by(Address::Device("S2".into())), Ok(2));
        assert_eq!(by(Address::Device("s2".into())), Err(Unresolved::None));
        assert_eq!(by(Address::PatientMrn("M1".into())), Ok(1));
        let room = |bed: Option<&str>| Address::Department {
            department: "emergency department".into(),
            room: "431".into(),
            bed: bed.map(Into::into),
        };
        assert_eq!(by(room(Some("BED 2"))), Ok(2));
        assert_eq!(by(room(None)), Err(Unresolved::Several));
        assert_eq!(by(room(Some("bed 3"))), Err(Unresolved::None));
    }

    #[test]
    fn age_counts_whole_years() {
        let d = |y, m, day| Date::new(y, m, day).unwrap();
        assert_eq!(age(d(1983, 8, 15), d(2030, 3, 4)), 46);
        assert_eq!(age(d(1983, 8, 15), d(2030, 8, 15)), 47);
        assert_eq!(age(d(2030, 3, 5), d(2030, 3, 4)), 0);
    }
}
