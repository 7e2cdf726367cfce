//! `GET /waiting-rooms`: the tenant's healthcare services as Solo waiting
//! rooms. A waiting room shows its service's id and name (the name is what
//! appointment and slot requests give as `waitingRoom`).

use crate::{Caller, SoloError};
use axum::extract::State;
use axum::routing::get;
use axum::{Extension, Json, Router};
use polyclinic_core::TenantId;
use polyclinic_core::service::HealthcareService;
use polyclinic_http::AppState;
use polyclinic_store::catalog::{self, Table};
use serde_json::{Value, json};

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/waiting-rooms", get(list))
}

/// The tenant's active healthcare services, ordered by id.
pub async fn active_services(state: &AppState, tenant: TenantId) -> Result<Vec<HealthcareService>, SoloError> {
    let mut all: Vec<HealthcareService> = state
        .store
        .read(move |c| Box::pin(async move { catalog::list(c, Table::HealthcareServices, tenant).await }))
        .await?;
    all.retain(|s| s.active);
    all.sort_by_key(|s| s.id.get());
    Ok(all)
}

/// The active waiting room named `name` (its service), if the tenant has one.
pub async fn by_name(state: &AppState, tenant: TenantId, name: &str) -> Result<Option<HealthcareService>, SoloError> {
    Ok(active_services(state, tenant).await?.into_iter().find(|s| s.name == name))
}

/// A waiting room as the document shows it.
pub fn render(s: &HealthcareService) -> Value {
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "serviceLine": s.service_line,
        "serviceType": s.service_type,
    })
}

async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Json<Value>, SoloError> {
    let rooms = active_services(&state, caller.tenant.id).await?;
    Ok(Json(Value::Array(rooms.iter().map(render).collect())))
}
