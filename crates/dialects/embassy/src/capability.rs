//! `GET /metadata`: the CapabilityStatement. It lists exactly the
//! interactions and search parameters this dialect serves, and is public (no
//! API key), as FHIR servers' metadata is.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use polyclinic_http::AppState;
use serde_json::{Value, json};

fn resource(kind: &str, interactions: &[&str], params: &[(&str, &str, &str)], operations: &[&str]) -> Value {
    let mut r = json!({
        "type": kind,
        "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
    });
    if !params.is_empty() {
        r["searchParam"] =
            Value::Array(params.iter().map(|(n, t, d)| json!({"name": n, "type": t, "documentation": d})).collect());
    }
    if !operations.is_empty() {
        r["operation"] = Value::Array(operations.iter().map(|o| json!({"name": o.trim_start_matches('$'), "definition": format!("http://hl7.org/fhir/OperationDefinition/Subscription-{}", o.trim_start_matches('$'))})).collect());
    }
    r
}

pub(super) async fn metadata(State(state): State<AppState>) -> Response {
    let paging: [(&str, &str, &str); 2] =
        [("skip", "number", "entries to skip"), ("_count", "number", "entries per page, at most 30")];
    let with =
        |extra: &[(&'static str, &'static str, &'static str)]| -> Vec<(&'static str, &'static str, &'static str)> {
            let mut v = vec![("_id", "token", "one resource by id; other parameters are ignored")];
            v.extend_from_slice(extra);
            v.extend_from_slice(&paging);
            v
        };
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "Polyclinic",
        "kind": "instance",
        "software": {"name": "Polyclinic", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Polyclinic, Embassy dialect (Visiba Care FHIR API)", "url": format!("{}/embassy", state.public_url)},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/fhir+xml"],
        "patchFormat": ["application/fhir+json", "application/fhir+xml"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Send the API key in the X-Visiba-Care-API-Key header (401 when missing, 403 when invalid)."},
            "resource": [
                resource("Appointment", &["read", "search-type", "create", "patch"], &with(&[
                    ("healthcareServiceId", "token", "appointments of a healthcare service"),
                    ("start", "date", "appointments starting at or after (with end)"),
                    ("end", "date", "appointments ending at or before (with start)"),
                    ("patientId", "token", "the patient's id"),
                    ("patientNationalIdentificationNumber", "token", "the patient's national identification number"),
                    ("patientPhone", "token", "the patient's phone number"),
                ]), &[]),
                resource("Patient", &["read", "search-type", "create", "patch"], &with(&[("identifier", "token", "system|value: national id, phone number or Visiba id")]), &[]),
                resource("HealthcareService", &["read", "search-type"], &with(&[]), &[]),
                resource("Practitioner", &["read", "search-type"], &with(&[
                    ("healthcareServiceId", "token", "practitioners of a healthcare service"),
                    ("hasCommunicationPrivileges", "token", "true or false"),
                ]), &[]),
                resource("CommunicationRequest", &["read", "create"], &[], &[]),
                resource("Communication", &["read", "create"], &[], &[]),
                resource("CodeSystem", &["read"], &[], &[]),
                resource("SubscriptionTopic", &["read", "search-type"], &[], &[]),
                resource("Subscription", &["read", "search-type", "create", "patch", "delete"], &[], &["$status", "$events"]),
            ]
        }]
    });
    super::fhir(StatusCode::OK, body)
}
