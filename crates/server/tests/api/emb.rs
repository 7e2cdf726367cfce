//! Shared helpers of the Embassy tests (as `dp.rs` is for Docplanner): FHIR
//! requests with the `acme` tenant's key, and the one check of an
//! OperationOutcome error.

use crate::helpers::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

/// A FHIR JSON request to `/embassy{path}` with the `acme` key.
pub async fn send(app: &TestApp, method: Method, path: &str, body: &Value) -> reqwest::Response {
    app.embassy(method, path).header("content-type", "application/fhir+json").json(body).send().await.unwrap()
}

/// An Embassy `PATCH /Appointment/{id}` replacing each `(path, value)`
/// (`value`: the `value[x]` object, e.g. `{"valueDateTime": "..."}`).
pub async fn patch_appointment(app: &TestApp, id: &str, ops: &[(&str, Value)]) -> reqwest::Response {
    let parameter: Vec<Value> = ops
        .iter()
        .map(|(path, value)| {
            let mut v = json!({"name": "value"});
            if let Some(fields) = value.as_object() {
                for (k, x) in fields {
                    v[k] = x.clone();
                }
            }
            json!({"name": "operation", "part": [{"name": "type", "valueCode": "replace"},
                {"name": "path", "valueString": path}, v]})
        })
        .collect();
    send(
        app,
        Method::PATCH,
        &format!("/Appointment/{id}"),
        &json!({"resourceType": "Parameters", "parameter": parameter}),
    )
    .await
}

/// Asserts an Embassy error: `status`, an OperationOutcome whose
/// `issue[0].details.coding[0].code` is `code` with a human message in
/// `diagnostics`, and the `X-Request-Id` every Embassy answer carries.
pub async fn expect_error(r: reqwest::Response, status: u16, code: &str) {
    let got = r.status().as_u16();
    let has_request_id = r.headers().get("x-request-id").is_some();
    let body: Value = r.json().await.unwrap();
    assert_eq!((got, body["issue"][0]["details"]["coding"][0]["code"].as_str()), (status, Some(code)), "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    crate::fhir_schema::check_embassy(&body);
    assert!(body["issue"][0]["diagnostics"].as_str().is_some_and(|m| !m.is_empty()), "a human message: {body}");
    assert!(has_request_id, "errors carry X-Request-Id too: {body}");
}
