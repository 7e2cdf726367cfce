//! Docplanner: address services (list, add, get, update, delete), the
//! address update and the removal of its integration mark, and insurance
//! (the provider dictionary and the providers accepted at an address).
//!
//! Address service writes append `AddressServiceCreated`, `...Changed` or
//! `...Deleted` in the same transaction (see `polyclinic_store::catalog`).

use super::Path;
use super::catalog::{address_json, locate};
use super::{Body, Client, DocplannerError, address_path, calendar, created, no_content, ok, parse_time, scopes};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use axum::{Extension, Router};
use polyclinic_core::facility::{
    AddressInsuranceProvider, AddressService, AllowedPatients, InsurancePlan, InsuranceProvider, InsuranceSupport,
    Service,
};
use polyclinic_core::schedule::Interval;
use polyclinic_core::service::Price;
use polyclinic_core::{AddressId, AddressServiceId, CoreError, InsurancePlanId, InsuranceProviderId, ServiceId};
use polyclinic_http::AppState;
use polyclinic_store::catalog::{self, SHARED, Table};
use polyclinic_store::{Conn, StoreError, StoreResult, work_periods};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

/// The address path with its parameters, as every module names them.
const ADDRESS: &str = "/facilities/{facility_id}/doctors/{doctor_id}/addresses/{address_id}";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ADDRESS, patch(update_address))
        .route(&format!("{ADDRESS}/integration"), delete(remove_integration))
        .route(&format!("{ADDRESS}/services"), get(list_services).post(add_service))
        .route(
            &format!("{ADDRESS}/services/{{address_service_id}}"),
            get(get_service).patch(update_service).delete(delete_service),
        )
        .route("/insurance-providers", get(insurance_providers))
        .route("/insurance-providers/{insurance_provider_id}/plans", get(insurance_plans))
        .route(
            &format!("{ADDRESS}/insurance-providers"),
            get(address_insurance_providers).post(add_address_insurance_provider).put(put_address_insurance_provider),
        )
        .route(
            &format!("{ADDRESS}/insurance-providers/{{insurance_provider_id}}"),
            delete(delete_address_insurance_provider),
        )
}

// ---------------------------------------------------------------------------
// Rendering (shared with bookings and notifications).

/// Whole currency units of a price (the API shows the integer part).
fn whole_price(s: &AddressService) -> Option<i64> {
    s.price.as_ref().map(|p| p.minor_units / 100)
}

/// An address service as the API shows it (`AddressService`), with the
/// scopes asked for (`address_service.allowed_patients`,
/// `address_service.custom_name`, `address_service.public_insurance_flow`).
pub fn address_service_json(s: &AddressService, scopes: &[String]) -> Value {
    let has = |x: &str| scopes.iter().any(|s| s == x);
    let mut v = json!({
        "id": s.id.to_string(),
        "name": s.name,
        "price": whole_price(s),
        "is_price_from": s.is_price_from,
        "is_default": s.is_default,
        "service_id": s.service_id.to_string(),
        "description": s.description,
        "duration": s.duration_minutes(),
        "is_visible": s.is_visible,
    });
    if has("address_service.allowed_patients") {
        v["allowed_patients"] = match &s.allowed_patients {
            Some(a) => json!({"minimum_age": a.minimum_age, "maximum_age": a.maximum_age}),
            None => Value::Null,
        };
    }
    if has("address_service.custom_name") {
        v["custom_name"] = json!(s.custom_name);
    }
    if has("address_service.public_insurance_flow") {
        // No public insurance flow here: its neutral value.
        v["is_public_insurance_flow"] = json!(false);
    }
    v
}

/// An address service as notifications show it (`AddressServiceNotification`).
pub fn address_service_notification_json(s: &AddressService) -> Value {
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "price": whole_price(s),
        "is_price_from": s.is_price_from,
        "is_visible": s.is_visible,
    })
}

// ---------------------------------------------------------------------------
// Request parsing.

/// A field of a PATCH body: absent, `null` (clear) or a value.
#[derive(Debug, Clone, Default)]
enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<T>::deserialize(d)?.map_or(Patch::Null, Patch::Value))
    }
}

impl<T> Patch<T> {
    /// The change of a nullable field: `None` keeps it, `Some(None)` clears it.
    fn nullable(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }

    /// The change of a field that may not be cleared.
    fn required(self, field: &str) -> Result<Option<T>, DocplannerError> {
        match self {
            Patch::Absent => Ok(None),
            Patch::Null => Err(DocplannerError::invalid_arguments([(field, "This value should not be null.")])),
            Patch::Value(v) => Ok(Some(v)),
        }
    }
}

/// The document's price validation message.
const INVALID_PRICE: &str =
    "Invalid price value for service. Price should be either null or integer greater or equal 0.";

/// A price as clients send it: a non-negative JSON number; decimals past the
/// second are truncated, as the document says (`169.999` is `169.99`).
fn parse_price(v: &Value, currency: [u8; 3]) -> Result<Price, DocplannerError> {
    let bad = || DocplannerError::bad_request(INVALID_PRICE);
    let n = v.as_f64().filter(|n| n.is_finite() && (0.0..=1e12).contains(n)).ok_or_else(bad)?;
    // The shortest decimal form of the number (`0.29`, never `0.28999…`),
    // which `Display` for f64 writes without an exponent.
    let text = format!("{n}");
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let cents: String = fraction.chars().chain(std::iter::repeat('0')).take(2).collect();
    let whole: i64 = whole.trim_start_matches('-').parse().map_err(|_| bad())?;
    let cents: i64 = cents.parse().map_err(|_| bad())?;
    Ok(Price { minor_units: whole * 100 + cents, currency })
}

/// The currency of prices at a tenant, from its country (ISO 4217).
fn currency(country: &str) -> [u8; 3] {
    let code = match country.to_ascii_uppercase().as_str() {
        "PL" => b"PLN",
        "SE" => b"SEK",
        "CZ" => b"CZK",
        "DK" => b"DKK",
        "NO" => b"NOK",
        "GB" => b"GBP",
        "CH" => b"CHF",
        "TR" => b"TRY",
        "BR" => b"BRL",
        "MX" => b"MXN",
        "AR" => b"ARS",
        "CL" => b"CLP",
        "CO" => b"COP",
        "PE" => b"PEN",
        _ => b"EUR",
    };
    *code
}

/// An id sent as a JSON string (`"3"`, as the document writes them) or a
/// number (`3`, as the guide does); `None` when it is neither a positive integer.
fn id_value(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse::<ServiceId>().ok().map(ServiceId::get),
        Value::Number(n) => n.as_i64().filter(|n| *n > 0),
        _ => None,
    }
}

/// A required id field: missing, `null` or not an id answers 400.
fn required_id(v: Option<&Value>, field: &str) -> Result<i64, DocplannerError> {
    dictionary_id(v, field)?.ok_or_else(|| DocplannerError::invalid_arguments([(field, "This value is not valid.")]))
}

/// A required reference into a dictionary: missing, `null` or neither a
/// string nor a number answers 400; `None` when it cannot name any entry.
fn dictionary_id(v: Option<&Value>, field: &str) -> Result<Option<i64>, DocplannerError> {
    match v {
        None | Some(Value::Null) => {
            Err(DocplannerError::invalid_arguments([(field, "This value should not be blank.")]))
        }
        Some(v @ (Value::String(_) | Value::Number(_))) => Ok(id_value(v)),
        Some(_) => Err(DocplannerError::invalid_arguments([(field, "This value is not valid.")])),
    }
}

/// `custom_name` may be null but not blank.
fn check_custom_name(name: Option<&str>) -> Result<(), DocplannerError> {
    match name {
        Some(n) if n.trim().is_empty() => {
            Err(DocplannerError::invalid_arguments([("custom_name", "This value should not be blank.")]))
        }
        _ => Ok(()),
    }
}

const SERVICE_EXISTS: &str = "The address service you are trying to add already exists in the system";

/// Maps a unique-key violation of the address service table (a concurrent
/// add of the same service) to the document's 409.
fn service_conflict(e: StoreError) -> DocplannerError {
    match e {
        StoreError::Core(CoreError::AlreadyExists { .. }) => DocplannerError::conflict(SERVICE_EXISTS),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------
// Address update and integration.

#[derive(Debug, Deserialize)]
struct UpdateAddressRequest {
    #[serde(default)]
    insurance_support: Option<InsuranceSupport>,
}

async fn update_address(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    uri: Uri,
    Body(req): Body<UpdateAddressRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    calendar::editable(&at.address)?;
    let tenant = client.tenant.id;
    let id = at.address.id;
    let address = state
        .store
        .write(move |c| {
            Box::pin(async move {
                let mut a = catalog::address(c, tenant, id.get()).await?.ok_or(CoreError::not_found("address", id))?;
                if let Some(s) = req.insurance_support
                    && s != a.insurance_support
                {
                    a.insurance_support = s;
                    catalog::update_address(c, tenant, &a).await?;
                }
                Ok(a)
            })
        })
        .await?;
    // Committed: what this node keeps of the catalogue is stale (polyclinic_http::cache).
    catalog::catalog_changed();
    let mut scopes = scopes(uri.query());
    scopes.push("address.insurance_support".into());
    Ok(ok(address_json(&address, &scopes)))
}

/// Removes the integration mark: the address stays (and stays readable), but
/// its calendar no longer takes changes from this client (see
/// [`calendar::editable`]). Idempotent.
async fn remove_integration(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let tenant = client.tenant.id;
    let id = at.address.id;
    state
        .store
        .write(move |c| {
            Box::pin(async move {
                let mut a = catalog::address(c, tenant, id.get()).await?.ok_or(CoreError::not_found("address", id))?;
                if a.integrated {
                    a.integrated = false;
                    catalog::update_address(c, tenant, &a).await?;
                }
                Ok(())
            })
        })
        .await?;
    // Committed: what this node keeps of the catalogue is stale (polyclinic_http::cache).
    catalog::catalog_changed();
    Ok(StatusCode::ACCEPTED.into_response())
}

// ---------------------------------------------------------------------------
// Address services.

/// The address services a `start` query parameter keeps: those of the work
/// periods that contain that instant.
async fn services_at(
    c: &mut Conn,
    tenant: polyclinic_core::TenantId,
    address: AddressId,
    start: jiff::Timestamp,
) -> StoreResult<Vec<AddressServiceId>> {
    let end = start.checked_add(jiff::SignedDuration::from_secs(1)).unwrap_or(start);
    let Ok(instant) = Interval::new(start, end) else { return Ok(Vec::new()) };
    let periods = work_periods::overlapping(c, tenant, address, &instant).await?;
    Ok(periods.into_iter().flat_map(|p| p.address_services).collect())
}

async fn list_services(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let start = match super::query_param(uri.query(), "start") {
        Some(s) => {
            Some(parse_time(&s).ok_or_else(|| DocplannerError::new(StatusCode::NOT_FOUND, "Invalid date given."))?)
        }
        None => None,
    };
    let tenant = client.tenant.id;
    let address = at.address.id;
    let services = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let all = catalog::address_services(c, tenant, address.get()).await?;
                Ok(match start {
                    Some(t) => {
                        let keep = services_at(c, tenant, address, t).await?;
                        all.into_iter().filter(|s| keep.contains(&s.id)).collect()
                    }
                    None => all,
                })
            })
        })
        .await?;
    let scopes = scopes(uri.query());
    Ok(ok(json!({"_items": services.iter().map(|s| address_service_json(s, &scopes)).collect::<Vec<_>>()})))
}

#[derive(Debug, Deserialize)]
struct AddAddressServiceRequest {
    #[serde(default)]
    service_id: Option<Value>,
    #[serde(default)]
    is_price_from: Option<bool>,
    #[serde(default)]
    price: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_visible: Option<bool>,
    #[serde(default)]
    default_duration: Option<i64>,
    #[serde(default)]
    allowed_patients: Option<AllowedPatients>,
    #[serde(default)]
    custom_name: Option<String>,
}

async fn add_service(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    uri: Uri,
    Body(req): Body<AddAddressServiceRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let service_id = ServiceId(required_id(req.service_id.as_ref(), "service_id")?);
    let price = req.price.as_ref().map(|v| parse_price(v, currency(&client.tenant.country))).transpose()?;
    check_custom_name(req.custom_name.as_deref())?;
    let draft = AddressService {
        id: AddressServiceId(0),
        address_id: at.address.id,
        service_id,
        name: String::new(),
        custom_name: req.custom_name,
        price,
        is_price_from: req.is_price_from.unwrap_or(false),
        description: req.description,
        default_duration: req.default_duration,
        is_visible: req.is_visible.unwrap_or(true),
        is_default: false,
        allowed_patients: req.allowed_patients,
    };
    draft.validate()?;
    let tenant = client.tenant.id;
    let now = state.now();
    let service = state
        .store
        .write(move |c| {
            Box::pin(async move {
                let Some(dictionary) = catalog::get::<Service>(c, Table::Services, SHARED, service_id.get()).await?
                else {
                    return Ok(Err(DocplannerError::not_found()));
                };
                let existing = catalog::address_services(c, tenant, draft.address_id.get()).await?;
                if existing.iter().any(|s| s.service_id == service_id) {
                    return Ok(Err(DocplannerError::conflict(SERVICE_EXISTS)));
                }
                let mut s = draft;
                s.id = catalog::new_address_service_id(c).await?;
                s.name = dictionary.name;
                catalog::create_address_service(c, tenant, &s, now).await?;
                Ok(Ok(s))
            })
        })
        .await
        .map_err(service_conflict)??;
    // Committed: what this node keeps of the catalogue is stale (polyclinic_http::cache).
    catalog::catalog_changed();
    let location = format!("{}/services/{}", address_path(at.facility.id, at.doctor.id, at.address.id), service.id);
    Ok(created(&location, Some(address_service_json(&service, &scopes(uri.query())))))
}

/// The address service `id` of the located address, read in `c`: 404 when
/// there is none, 403 when it belongs to another address.
async fn service_of(
    c: &mut Conn,
    tenant: polyclinic_core::TenantId,
    address: AddressId,
    id: Option<i64>,
) -> StoreResult<Result<AddressService, DocplannerError>> {
    let Some(id) = id else { return Ok(Err(DocplannerError::not_found())) };
    Ok(match catalog::get::<AddressService>(c, Table::AddressServices, tenant, id).await? {
        None => Err(DocplannerError::not_found()),
        Some(s) if s.address_id != address => {
            Err(DocplannerError::forbidden("This service does not belong to this address"))
        }
        Some(s) => Ok(s),
    })
}

fn service_path_id(id: &str) -> Option<i64> {
    id.parse::<AddressServiceId>().ok().map(AddressServiceId::get)
}

async fn get_service(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, s)): Path<(String, String, String, String)>,
    uri: Uri,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let id = service_path_id(&s);
    let service =
        state.store.read(move |c| Box::pin(async move { service_of(c, tenant, address, id).await })).await??;
    Ok(ok(address_service_json(&service, &scopes(uri.query()))))
}

#[derive(Debug, Deserialize)]
struct UpdateAddressServiceRequest {
    #[serde(default)]
    is_price_from: Patch<bool>,
    #[serde(default)]
    price: Patch<Value>,
    #[serde(default)]
    description: Patch<String>,
    #[serde(default)]
    default_duration: Patch<i64>,
    #[serde(default)]
    is_visible: Patch<bool>,
    #[serde(default)]
    allowed_patients: Patch<AllowedPatients>,
    #[serde(default)]
    custom_name: Patch<String>,
}

/// The validated changes of an `UpdateAddressServiceRequest`.
#[derive(Debug)]
struct ServiceChanges {
    is_price_from: Option<bool>,
    price: Option<Option<Price>>,
    description: Option<Option<String>>,
    default_duration: Option<i64>,
    is_visible: Option<bool>,
    allowed_patients: Option<Option<AllowedPatients>>,
    custom_name: Option<Option<String>>,
}

impl ServiceChanges {
    fn parse(req: UpdateAddressServiceRequest, currency: [u8; 3]) -> Result<Self, DocplannerError> {
        let price = match req.price {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(parse_price(&v, currency)?)),
        };
        let custom_name = req.custom_name.nullable();
        check_custom_name(custom_name.clone().flatten().as_deref())?;
        Ok(ServiceChanges {
            is_price_from: req.is_price_from.required("is_price_from")?,
            price,
            description: req.description.nullable(),
            default_duration: req.default_duration.required("default_duration")?,
            is_visible: req.is_visible.required("is_visible")?,
            allowed_patients: req.allowed_patients.nullable(),
            custom_name,
        })
    }

    fn apply(self, s: &mut AddressService) {
        if let Some(v) = self.is_price_from {
            s.is_price_from = v;
        }
        if let Some(v) = self.price {
            s.price = v;
        }
        if let Some(v) = self.description {
            s.description = v;
        }
        if let Some(v) = self.default_duration {
            s.default_duration = Some(v);
        }
        if let Some(v) = self.is_visible {
            s.is_visible = v;
        }
        if let Some(v) = self.allowed_patients {
            s.allowed_patients = v;
        }
        if let Some(v) = self.custom_name {
            s.custom_name = v;
        }
    }
}

async fn update_service(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, s)): Path<(String, String, String, String)>,
    uri: Uri,
    Body(req): Body<UpdateAddressServiceRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let changes = ServiceChanges::parse(req, currency(&client.tenant.country))?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let id = service_path_id(&s);
    let now = state.now();
    let service = state
        .store
        .write(move |c| {
            Box::pin(async move {
                let before = match service_of(c, tenant, address, id).await? {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(e)),
                };
                let mut after = before.clone();
                changes.apply(&mut after);
                if let Err(e) = after.validate() {
                    return Ok(Err(e.into()));
                }
                // A PATCH that changes nothing writes nothing and notifies no one.
                if after != before {
                    catalog::update_address_service(c, tenant, &after, now).await?;
                }
                Ok(Ok(after))
            })
        })
        .await??;
    // Committed: what this node keeps of the catalogue is stale (polyclinic_http::cache).
    catalog::catalog_changed();
    Ok(ok(address_service_json(&service, &scopes(uri.query()))))
}

async fn delete_service(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, s)): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let id = service_path_id(&s);
    let now = state.now();
    state
        .store
        .write(move |c| {
            Box::pin(async move {
                let s = match service_of(c, tenant, address, id).await? {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(e)),
                };
                catalog::delete_address_service(c, tenant, &s, now).await?;
                Ok(Ok(()))
            })
        })
        .await??;
    // Committed: what this node keeps of the catalogue is stale (polyclinic_http::cache).
    catalog::catalog_changed();
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// Insurance.

const PROVIDER_NOT_IN_DICTIONARY: &str = "Provided insurance provider ID not found in dictionary";
const PLAN_NOT_IN_DICTIONARY: &str = "Provided insurance plan ID not found in dictionary";

fn provider_not_found() -> DocplannerError {
    DocplannerError::new(StatusCode::NOT_FOUND, PROVIDER_NOT_IN_DICTIONARY)
}

fn insurance_plan_json(p: &InsurancePlan) -> Value {
    json!({"insurance_plan_id": p.id.to_string(), "name": p.name})
}

/// An accepted provider with the accepted plans, named from the dictionary.
fn address_insurance_provider_json(p: &InsuranceProvider, accepted: &AddressInsuranceProvider) -> Value {
    let plans: Vec<Value> =
        p.plans.iter().filter(|plan| accepted.plans.contains(&plan.id)).map(insurance_plan_json).collect();
    json!({"insurance_provider_id": p.id.to_string(), "name": p.name, "insurance_plans": {"_items": plans}})
}

async fn insurance_providers(State(state): State<AppState>) -> Result<Response, DocplannerError> {
    let all = state.store.read(|c| Box::pin(async move { catalog::insurance_providers(c).await })).await?;
    let items: Vec<Value> =
        all.iter().map(|p| json!({"insurance_provider_id": p.id.to_string(), "name": p.name})).collect();
    Ok(ok(json!({"_items": items})))
}

/// A dictionary provider named by a path segment: 404 with the document's
/// message when it is not one.
async fn dictionary_provider(state: &AppState, id: &str) -> Result<InsuranceProvider, DocplannerError> {
    let n = id.parse::<InsuranceProviderId>().map_err(|_| provider_not_found())?.get();
    state
        .store
        .read(move |c| Box::pin(async move { catalog::insurance_provider(c, n).await }))
        .await?
        .ok_or_else(provider_not_found)
}

/// The plans of a dictionary provider. The document gives this operation a
/// 200 only: a provider the dictionary does not hold has no plans.
async fn insurance_plans(
    State(state): State<AppState>,
    id: Result<Path<String>, DocplannerError>,
) -> Result<Response, DocplannerError> {
    let plans = match id {
        Ok(Path(id)) => match dictionary_provider(&state, &id).await {
            Ok(p) => p.plans,
            Err(e) if e.status == StatusCode::NOT_FOUND => Vec::new(),
            Err(e) => return Err(e),
        },
        Err(_) => Vec::new(),
    };
    Ok(ok(json!({"_items": plans.iter().map(insurance_plan_json).collect::<Vec<_>>()})))
}

async fn address_insurance_providers(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let (accepted, dictionary) = state
        .store
        .read(move |c| {
            Box::pin(async move {
                Ok((
                    catalog::address_insurance_providers(c, tenant, address).await?,
                    catalog::insurance_providers(c).await?,
                ))
            })
        })
        .await?;
    // A provider since dropped from the dictionary is no longer shown.
    let items: Vec<Value> = accepted
        .iter()
        .filter_map(|acc| {
            dictionary
                .iter()
                .find(|p| p.id == acc.insurance_provider_id)
                .map(|p| address_insurance_provider_json(p, acc))
        })
        .collect();
    Ok(ok(json!({"_items": items})))
}

#[derive(Debug, Deserialize)]
struct AddressInsuranceProviderRequest {
    #[serde(default)]
    insurance_provider_id: Option<Value>,
    #[serde(default)]
    insurance_plans: Option<Vec<InsurancePlanRef>>,
}

#[derive(Debug, Deserialize)]
struct InsurancePlanRef {
    #[serde(default)]
    insurance_plan_id: Option<Value>,
}

/// Checks a request against the dictionary: the provider and every plan must
/// be in it (404 with the document's message otherwise); plans are kept once each.
async fn accepted_insurance(
    state: &AppState,
    address: AddressId,
    req: AddressInsuranceProviderRequest,
) -> Result<AddressInsuranceProvider, DocplannerError> {
    let provider_id =
        dictionary_id(req.insurance_provider_id.as_ref(), "insurance_provider_id")?.ok_or_else(provider_not_found)?;
    let provider = state
        .store
        .read(move |c| Box::pin(async move { catalog::insurance_provider(c, provider_id).await }))
        .await?
        .ok_or_else(provider_not_found)?;
    let mut plans: Vec<InsurancePlanId> = Vec::new();
    for (i, plan) in req.insurance_plans.unwrap_or_default().iter().enumerate() {
        let field = format!("insurance_plans[{i}].insurance_plan_id");
        let id = dictionary_id(plan.insurance_plan_id.as_ref(), &field)?;
        let known = provider
            .plans
            .iter()
            .find(|p| Some(p.id.get()) == id)
            .ok_or_else(|| DocplannerError::new(StatusCode::NOT_FOUND, PLAN_NOT_IN_DICTIONARY))?;
        if !plans.contains(&known.id) {
            plans.push(known.id);
        }
    }
    Ok(AddressInsuranceProvider { address_id: address, insurance_provider_id: provider.id, plans })
}

async fn add_address_insurance_provider(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    Body(req): Body<AddressInsuranceProviderRequest>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let accepted = accepted_insurance(&state, at.address.id, req).await?;
    let tenant = client.tenant.id;
    state
        .store
        .write(move |c| {
            Box::pin(async move {
                let (address, provider) = (accepted.address_id, accepted.insurance_provider_id);
                if catalog::address_insurance_provider(c, tenant, address, provider).await?.is_some() {
                    return Ok(Err(DocplannerError::bad_request(
                        "Insurance provider with given ID is already assigned to this address.",
                    )));
                }
                catalog::save_address_insurance_provider(c, tenant, &accepted).await?;
                Ok(Ok(()))
            })
        })
        .await??;
    Ok(no_content())
}

/// `PUT` documents no 400 (only 204, 403 and 404): a body that names no
/// provider of the dictionary, malformed or not, answers 404 "Provided
/// insurance provider ID not found in dictionary", and one whose plans are
/// not the provider's 404 "Provided insurance plan ID not found in dictionary".
fn put_not_found(e: DocplannerError) -> DocplannerError {
    if e.status != StatusCode::BAD_REQUEST {
        return e;
    }
    let plans =
        e.errors.iter().filter_map(Value::as_object).flat_map(|m| m.keys()).any(|k| k.starts_with("insurance_plans"));
    DocplannerError::new(StatusCode::NOT_FOUND, if plans { PLAN_NOT_IN_DICTIONARY } else { PROVIDER_NOT_IN_DICTIONARY })
}

async fn put_address_insurance_provider(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a)): Path<(String, String, String)>,
    body: Result<Body<AddressInsuranceProviderRequest>, DocplannerError>,
) -> Result<Response, DocplannerError> {
    let Body(req) = body.map_err(put_not_found)?;
    let at = locate(&state, &client, &f, &d, &a).await?;
    let accepted = accepted_insurance(&state, at.address.id, req).await.map_err(put_not_found)?;
    let tenant = client.tenant.id;
    state
        .store
        .write(move |c| Box::pin(async move { catalog::save_address_insurance_provider(c, tenant, &accepted).await }))
        .await?;
    Ok(no_content())
}

async fn delete_address_insurance_provider(
    State(state): State<AppState>,
    Extension(client): Extension<Client>,
    Path((f, d, a, p)): Path<(String, String, String, String)>,
) -> Result<Response, DocplannerError> {
    let at = locate(&state, &client, &f, &d, &a).await?;
    let provider = dictionary_provider(&state, &p).await?.id;
    let tenant = client.tenant.id;
    let address = at.address.id;
    let removed = state
        .store
        .write(move |c| {
            Box::pin(async move { catalog::delete_address_insurance_provider(c, tenant, address, provider).await })
        })
        .await?;
    if !removed {
        return Err(DocplannerError::bad_request("Insurance provider with given ID is not assigned to this address."));
    }
    Ok(no_content())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(v: Value) -> Option<i64> {
        parse_price(&v, *b"PLN").ok().map(|p| p.minor_units)
    }

    #[test]
    fn prices_keep_two_decimals_and_truncate_the_rest() {
        assert_eq!(cents(json!(500)), Some(50000));
        assert_eq!(cents(json!(169.9)), Some(16990));
        assert_eq!(cents(json!(0.29)), Some(29));
        assert_eq!(cents(json!(169.999)), Some(16999));
        assert_eq!(cents(json!(0)), Some(0));
        assert_eq!(cents(json!(-1)), None);
        assert_eq!(cents(json!("12")), None);
        assert_eq!(cents(json!(1e13)), None);
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        assert_eq!(id_value(&json!("3")), Some(3));
        assert_eq!(id_value(&json!(3)), Some(3));
        assert_eq!(id_value(&json!("x")), None);
        assert_eq!(id_value(&json!(-3)), None);
        assert_eq!(id_value(&json!(3.5)), None);
    }
}
