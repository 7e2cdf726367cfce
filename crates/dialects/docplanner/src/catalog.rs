//! Facilities, doctors, addresses and the service dictionary (read).

use super::Path;
use super::{Client, DocplannerError, address_path, doctor_path, facility_path, link, ok, scopes};
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use polyclinic_core::facility::{Address, DEFAULT_COMMERCIAL_TYPE, Facility, InsuranceSupport};
use polyclinic_core::practitioner::Practitioner;
use polyclinic_http::AppState;
use polyclinic_store::catalog;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/facilities", get(facilities))
        .route("/facilities/{facility_id}", get(facility))
        .route("/facilities/{facility_id}/doctors", get(doctors))
        .route("/facilities/{facility_id}/doctors/{doctor_id}", get(doctor))
        .route("/facilities/{facility_id}/doctors/{doctor_id}/addresses", get(addresses))
        .route("/facilities/{facility_id}/doctors/{doctor_id}/addresses/{address_id}", get(address))
        .route("/services", get(services))
}

/// A facility with its `_links`.
pub(super) fn facility_json(f: &Facility) -> Value {
    json!({"id": f.id.to_string(), "name": f.name, "_links": {
        "self": link(facility_path(f.id)),
        "doctors": link(format!("{}/doctors", facility_path(f.id))),
    }})
}

/// A doctor of facility `facility` with its `_links`, no scopes (as
/// notifications show it).
pub(super) fn doctor_ref(d: &Practitioner, facility: impl std::fmt::Display) -> Value {
    let path = doctor_path(facility, d.id);
    json!({"id": d.id.to_string(), "name": d.given, "surname": d.family, "_links": {
        "self": link(&path),
        "addresses": link(format!("{path}/addresses")),
    }})
}

/// A doctor of facility `facility`, with the scopes asked for and `_links`.
pub(super) fn doctor_json(
    d: &Practitioner,
    facility: impl std::fmt::Display,
    scopes: &[String],
    addresses: &[Address],
    state: &AppState,
) -> Value {
    let mut v = doctor_ref(d, facility);
    if scopes.iter().any(|s| s == "doctor.profile_url") {
        v["profile_url"] = json!(format!("{}/doctors/{}", state.public_url, d.id));
    }
    if scopes.iter().any(|s| s == "doctor.specializations") {
        v["specializations"] = json!({"_items": d.specializations.iter().map(|s| json!({"id": s.id, "name": s.name})).collect::<Vec<_>>()});
    }
    if scopes.iter().any(|s| s == "doctor.license_numbers") {
        v["license_numbers"] = json!({"_items": d.license_numbers.iter().enumerate()
            .map(|(i, n)| json!({"id": (i + 1).to_string(), "license_number": n})).collect::<Vec<_>>()});
    }
    if scopes.iter().any(|s| s == "doctor.addresses") {
        v["addresses"] = json!({"_items": addresses.iter().map(|a| address_json(a, scopes)).collect::<Vec<_>>()});
    }
    v
}

/// An address, with the scopes asked for and `_links`.
pub(super) fn address_json(a: &Address, scopes: &[String]) -> Value {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut v = json!({
        "id": a.id.to_string(),
        "name": a.name,
        "city_name": a.city,
        "post_code": a.post_code,
        "street": a.street,
        "_links": {
            "self": link(address_path(a.facility_id, a.practitioner_id, a.id)),
            "facility": link(facility_path(a.facility_id)),
            "doctor": link(doctor_path(a.facility_id, a.practitioner_id)),
        },
    });
    if has("address.online_only") || a.is_online_only {
        v["is_online_only"] = json!(a.is_online_only);
    }
    if has("address.visit_payment") {
        v["visit_payment"] = json!(false);
    }
    v["booking_extra_fields"] = json!({"birth_date": false, "gender": false, "nin": false});
    if has("address.commercial_type") {
        // The document's enum has no "unknown": an address stored without a
        // type is commercial (see `calendar::is_commercial`), shown as `premium`.
        v["commercial_type"] = json!(a.commercial_type.as_deref().unwrap_or(DEFAULT_COMMERCIAL_TYPE));
    }
    if has("address.insurance_support") {
        v["insurance_support"] = json!(match a.insurance_support {
            InsuranceSupport::Private => "private",
            InsuranceSupport::Insurance => "insurance",
            InsuranceSupport::PrivateAndInsurance => "private_and_insurance",
        });
    }
    v
}

/// The facility, if this client may see it: 403 otherwise (assigned or not,
/// existing or not: an unassigned facility is not this client's business).
async fn visible_facility(state: &AppState, client: &Client, id: &str) -> Result<Facility, DocplannerError> {
    let denied = || DocplannerError::forbidden("You are not authorized to see this facility");
    let n: i64 = id.parse().map_err(|_| denied())?;
    if !client.sees(n) {
        return Err(denied());
    }
    state.catalog(client.tenant.id).await?.facility(n).cloned().ok_or_else(DocplannerError::not_found)
}

/// The facility's addresses, and its doctors (those with an address there).
async fn facility_people(
    state: &AppState,
    client: &Client,
    facility: i64,
) -> Result<(Vec<Address>, Vec<Practitioner>), DocplannerError> {
    let catalog = state.catalog(client.tenant.id).await?;
    let addresses: Vec<Address> = catalog.addresses_of_facility(facility).cloned().collect();
    let doctors =
        catalog.practitioners.iter().filter(|p| addresses.iter().any(|a| a.practitioner_id == p.id)).cloned().collect();
    Ok((addresses, doctors))
}

/// The doctor, if related with the facility: 404 unknown, 403 unrelated.
pub(super) async fn facility_doctor(
    state: &AppState,
    client: &Client,
    facility: &str,
    doctor: &str,
) -> Result<(Facility, Practitioner, Vec<Address>), DocplannerError> {
    let f = visible_facility(state, client, facility).await?;
    let catalog = state.catalog(client.tenant.id).await?;
    // Clones only the doctor and its own addresses (a hot path: every
    // address-level request resolves it).
    let wanted = doctor.parse::<i64>().ok().filter(|n| n.to_string() == doctor);
    let d = wanted
        .filter(|n| catalog.addresses_of_facility(f.id.get()).any(|a| a.practitioner_id.get() == *n))
        .and_then(|n| catalog.practitioner(n))
        .cloned();
    match d {
        Some(d) => {
            let own =
                catalog.addresses_of_facility(f.id.get()).filter(|a| a.practitioner_id == d.id).cloned().collect();
            Ok((f, d, own))
        }
        None => {
            let n: i64 = doctor.parse().map_err(|_| DocplannerError::not_found())?;
            let exists = state.catalog(client.tenant.id).await?.practitioner(n).is_some();
            Err(if exists {
                DocplannerError::forbidden("Doctor is not related with facility")
            } else {
                DocplannerError::not_found()
            })
        }
    }
}

async fn facilities(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
) -> Result<Response, DocplannerError> {
    let catalog = state.catalog(client.tenant.id).await?;
    let items: Vec<Value> = catalog.facilities.iter().filter(|f| client.sees(f.id.get())).map(facility_json).collect();
    Ok(ok(json!({"_items": items})))
}

async fn facility(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let f = visible_facility(&state, &client, &id).await?;
    let mut v = facility_json(&f);
    if scopes(uri.query()).iter().any(|s| s == "facility.doctors") {
        let (addresses, doctors) = facility_people(&state, &client, f.id.get()).await?;
        v["doctors"] = json!({"_items": doctors.iter().map(|d| doctor_json(d, f.id, &[], &addresses, &state)).collect::<Vec<_>>()});
    }
    Ok(ok(v))
}

async fn doctors(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let f = visible_facility(&state, &client, &id).await?;
    let (addresses, doctors) = facility_people(&state, &client, f.id.get()).await?;
    let scopes = scopes(uri.query());
    let items: Vec<Value> = doctors
        .iter()
        .map(|d| {
            let own: Vec<Address> = addresses.iter().filter(|a| a.practitioner_id == d.id).cloned().collect();
            doctor_json(d, f.id, &scopes, &own, &state)
        })
        .collect();
    Ok(ok(json!({"_items": items})))
}

async fn doctor(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let (facility, doctor, own) = facility_doctor(&state, &client, &f, &d).await?;
    Ok(ok(doctor_json(&doctor, facility.id, &scopes(uri.query()), &own, &state)))
}

async fn addresses(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let (_, _, own) = facility_doctor(&state, &client, &f, &d).await?;
    let scopes = scopes(uri.query());
    Ok(ok(json!({"_items": own.iter().map(|a| address_json(a, &scopes)).collect::<Vec<_>>()})))
}

async fn address(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    Ok(ok(address_json(&at.address, &scopes(uri.query()))))
}

/// A facility, doctor and address named by a request path, checked.
#[derive(Debug, Clone)]
pub struct Located {
    pub facility: Facility,
    pub doctor: Practitioner,
    pub address: Address,
}

/// Resolves `/facilities/{f}/doctors/{d}/addresses/{a}` with the document's
/// answers: 403 "You are not authorized to see this facility", 404 unknown
/// doctor or address, 403 "Doctor is not related with facility", 403 "This
/// address does not belong to this facility" / "... to this doctor".
pub async fn locate(state: &AppState, client: &Client, f: &str, d: &str, a: &str) -> Result<Located, DocplannerError> {
    let (facility, doctor, own) = facility_doctor(state, client, f, d).await?;
    if let Some(found) = own.into_iter().find(|x| x.id.to_string() == a) {
        return Ok(Located { facility, doctor, address: found });
    }
    let n: i64 = a.parse().map_err(|_| DocplannerError::not_found())?;
    let other = state.catalog(client.tenant.id).await?.address(n).cloned();
    Err(match other {
        None => DocplannerError::not_found(),
        Some(x) if x.facility_id != facility.id => {
            DocplannerError::forbidden("This address does not belong to this facility")
        }
        Some(x) if x.practitioner_id != doctor.id => {
            DocplannerError::forbidden("This address does not belong to this doctor")
        }
        Some(_) => DocplannerError::not_found(),
    })
}

async fn services(State(state): State<AppState>) -> Result<Response, DocplannerError> {
    let all = state.store.read(|c| Box::pin(async move { catalog::services(c).await })).await?;
    Ok(ok(json!({"_items": all.iter().map(|s| json!({"id": s.id.to_string(), "name": s.name})).collect::<Vec<_>>()})))
}
