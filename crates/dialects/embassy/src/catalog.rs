//! HealthcareService, Practitioner and the reason-code CodeSystem of a
//! healthcare service: read and search.

use super::Path;
use super::search::{Page, SearchParams, bundle, slice};
use super::systems::*;
use super::{Caller, EmbassyError, fhir};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use polyclinic_core::practitioner::Practitioner;
use polyclinic_core::service::HealthcareService;
use polyclinic_http::AppState;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/HealthcareService", get(search_services))
        .route("/HealthcareService/_search", post(search_services))
        .route("/HealthcareService/{id}", get(read_service))
        .route("/Practitioner", get(search_practitioners))
        .route("/Practitioner/_search", post(search_practitioners))
        .route("/Practitioner/{id}", get(read_practitioner))
        .route("/CodeSystem/{id}", get(read_code_system))
}

/// The HealthcareService resource.
pub fn service_resource(s: &HealthcareService) -> Value {
    json!({"resourceType": "HealthcareService", "id": s.id.to_string(), "active": s.active, "name": s.name})
}

/// The Practitioner resource: national ids per country, HSA id, name, e-mail.
pub fn practitioner_resource(p: &Practitioner) -> Value {
    let mut identifier: Vec<Value> = p
        .national_ids
        .iter()
        .map(|(cc, v)| json!({"system": format!("{NATIONAL_ID_PREFIX}{cc}"), "value": v}))
        .collect();
    if let Some(h) = &p.hsa_id {
        identifier.push(json!({"system": PRACTITIONER_HSA, "value": h}));
    }
    let mut r = json!({"resourceType": "Practitioner", "id": p.id.to_string()});
    if !identifier.is_empty() {
        r["identifier"] = Value::Array(identifier);
    }
    r["active"] = json!(p.active);
    r["name"] = json!([{"text": p.full_name(), "family": p.family, "given": [p.given]}]);
    if let Some(e) = &p.email {
        r["telecom"] = json!([{"system": "email", "value": e.as_str()}]);
    }
    r
}

fn base(state: &AppState) -> String {
    format!("{}/embassy", state.public_url)
}

fn positive_id(id: &str) -> Option<i64> {
    id.parse::<i64>().ok().filter(|v| *v > 0)
}

async fn services(state: &AppState, caller: &Caller) -> Result<Vec<HealthcareService>, EmbassyError> {
    Ok(state.catalog(caller.tenant.id).await?.healthcare_services.clone())
}

async fn practitioners(state: &AppState, caller: &Caller) -> Result<Vec<Practitioner>, EmbassyError> {
    Ok(state.catalog(caller.tenant.id).await?.practitioners.clone())
}

async fn read_service(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let not_found = || {
        EmbassyError::not_found(
            "HealthcareServiceNotFound",
            format!("healthcare service with id {id} was not found on the customer"),
        )
    };
    let n = positive_id(&id).ok_or_else(not_found)?;
    let s = state.catalog(caller.tenant.id).await?.healthcare_service(n).cloned().ok_or_else(not_found)?;
    Ok(fhir(StatusCode::OK, service_resource(&s)))
}

async fn search_services(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: SearchParams,
) -> Result<Response, EmbassyError> {
    let page = Page::parse(&params)?;
    let mut all = services(&state, &caller).await?;
    if let Some(id) = params.get("_id") {
        all.retain(|s| s.id.to_string() == id);
    }
    let total = all.len() as i64;
    let items = slice(all, page).iter().map(service_resource).collect();
    Ok(fhir(StatusCode::OK, bundle(&format!("{}/HealthcareService", base(&state)), items, total, page, &params)))
}

async fn read_practitioner(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let not_found = || {
        EmbassyError::not_found(
            "PractitionerNotFound",
            format!("practitioner with id {id} was not found on the customer"),
        )
    };
    let n = positive_id(&id).ok_or_else(not_found)?;
    let p = state.catalog(caller.tenant.id).await?.practitioner(n).cloned().ok_or_else(not_found)?;
    Ok(fhir(StatusCode::OK, practitioner_resource(&p)))
}

/// Practitioners are those who perform on at least one healthcare service;
/// `healthcareServiceId` narrows to one service, `hasCommunicationPrivileges`
/// to those with (or without) conversation privileges, `_id` to one.
async fn search_practitioners(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: SearchParams,
) -> Result<Response, EmbassyError> {
    let page = Page::parse(&params)?;
    let services = services(&state, &caller).await?;
    let mut all = practitioners(&state, &caller).await?;
    if let Some(id) = params.get("_id") {
        all.retain(|p| p.id.to_string() == id);
    } else {
        match params.get("healthcareServiceId") {
            Some(sid) => {
                let service = services.iter().find(|s| s.id.to_string() == sid).ok_or_else(|| {
                    EmbassyError::unprocessable(
                        "HealthcareServiceIdNotFound",
                        format!("healthcare service {sid} was not found on the customer"),
                    )
                })?;
                all.retain(|p| service.has_practitioner(p.id));
            }
            None => all.retain(|p| services.iter().any(|s| s.has_practitioner(p.id))),
        }
        if let Some(flag) = params.get("hasCommunicationPrivileges") {
            let want = match flag.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(EmbassyError::unprocessable(
                        "InvalidParameter",
                        format!("hasCommunicationPrivileges must be true or false, not `{flag}`"),
                    ));
                }
            };
            all.retain(|p| p.communication_privileges == want);
        }
    }
    let total = all.len() as i64;
    let items = slice(all, page).iter().map(practitioner_resource).collect();
    Ok(fhir(StatusCode::OK, bundle(&format!("{}/Practitioner", base(&state)), items, total, page, &params)))
}

/// `CodeSystem/HealthcareService.{id}.ReasonCode`: the reason codes of a service.
async fn read_code_system(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, EmbassyError> {
    let not_found =
        || EmbassyError::not_found("CodeSystemNotFound", format!("code system {id} was not found on the customer"));
    let sid = id
        .strip_prefix("HealthcareService.")
        .and_then(|r| r.strip_suffix(".ReasonCode"))
        .and_then(positive_id)
        .ok_or_else(not_found)?;
    let s = state.catalog(caller.tenant.id).await?.healthcare_service(sid).cloned().ok_or_else(not_found)?;
    let concepts: Vec<Value> = s.reason_codes.iter().map(|r| json!({"code": r.code, "display": r.display})).collect();
    Ok(fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CodeSystem",
            "id": id,
            "url": format!("{}/CodeSystem/{id}", base(&state)),
            "name": format!("HealthcareService{}ReasonCode", s.id),
            "title": format!("Reason codes of {}", s.name),
            "status": "active",
            "content": "complete",
            "count": concepts.len(),
            "concept": concepts
        }),
    ))
}
