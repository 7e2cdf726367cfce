//! Docplanner: address services, address update and integration, insurance.

use crate::AppState;
use axum::Router;
use polyclinic_core::facility::AddressService;
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
}

/// Whole currency units of a price (the API shows the integer part).
fn whole_price(s: &AddressService) -> Option<i64> {
    s.price.as_ref().map(|p| p.minor_units / 100)
}

/// An address service as the API shows it (`AddressService`), with the
/// scopes asked for (`address_service.allowed_patients`,
/// `address_service.custom_name`).
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
