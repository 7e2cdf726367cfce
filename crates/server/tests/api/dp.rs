//! Shared helpers of the Docplanner tests: a seeded server, a token, request
//! shorthands and the error-shape check.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

/// `dp-acme:dp-secret` for HTTP Basic.
pub const BASIC: &str = "Basic ZHAtYWNtZTpkcC1zZWNyZXQ=";

/// A token for the seed's `dp-acme` client.
pub async fn token(app: &TestApp) -> String {
    let r = app
        .client
        .post(app.url("/oauth/v2/token"))
        .header("authorization", BASIC)
        .form(&[("grant_type", "client_credentials"), ("scope", "integration")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

/// A GET of `/api/v3/integration{path}`.
pub async fn api(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    call(app, token, Method::GET, path, None).await
}

/// Any request to `/api/v3/integration{path}`, with an optional JSON body.
/// Every response is checked against the OpenAPI document
/// ([`crate::contract`]) before the test sees it.
pub async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut b = app.client.request(method.clone(), app.url(&format!("/api/v3/integration{path}"))).bearer_auth(token);
    if let Some(body) = body {
        b = b.header("content-type", "application/json; charset=utf-8").body(body.to_string());
    }
    checked(method.as_str(), path, b.send().await.unwrap()).await
}

/// Checks a response against the contract and hands back an equal one.
pub async fn checked(method: &str, path: &str, r: reqwest::Response) -> reqwest::Response {
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    crate::contract::check(method, path, status.as_u16(), ct, &bytes);
    let mut rebuilt = axum::http::Response::builder().status(status);
    for (k, v) in &headers {
        rebuilt = rebuilt.header(k, v);
    }
    reqwest::Response::from(rebuilt.body(bytes).unwrap())
}

/// Asserts a Docplanner error with no field errors.
pub async fn expect_error(r: reqwest::Response, status: u16, message: &str) {
    assert_eq!(r.status().as_u16(), status);
    assert_eq!(r.headers()["content-type"], "application/vnd.error+docplanner+json");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"errors": [], "message": message}));
}

/// Asserts a 200 in the success media type and answers the body.
pub async fn expect_ok(r: reqwest::Response) -> Value {
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct.as_deref(), Some("application/vnd.docplanner+json; charset=UTF-8"));
    serde_json::from_str(&body).unwrap()
}

/// A seeded server: tenant `acme` (Europe/Stockholm) with doctor Ann at
/// address `obrzezna` of facility `hosp` (assigned to `dp-acme`), doctor Bo
/// at `bo-hosp` in `hosp` and `bo-other` in the unassigned facility `other`;
/// the clock at 2030-03-04T08:00:00Z (a Monday).
pub struct Ctx {
    pub app: TestApp,
    pub ids: Value,
    pub hosp: String,
    pub ann: String,
    pub address: String,
    pub token: String,
}

impl Ctx {
    /// `/facilities/{hosp}/doctors/{ann}/addresses/{obrzezna}` + `rest`.
    pub fn at(&self, rest: &str) -> String {
        format!("/facilities/{}/doctors/{}/addresses/{}{rest}", self.hosp, self.ann, self.address)
    }

    /// A seed id: `id("addresses", "bo-hosp")`.
    pub fn id(&self, kind: &str, key: &str) -> String {
        self.ids["tenants"]["acme"][kind][key].as_str().unwrap().to_owned()
    }
}

/// The seed [`Ctx`] describes.
pub fn seed() -> Value {
    let mut doc = acme_seed("acme");
    doc["services"] = json!([{"id": "1", "name": "ablacja"}, {"id": "3", "name": "ablacja serca"},
        {"id": "5", "name": "akupresura"}, {"id": "7", "name": "akupunktura"}]);
    doc["insurance_providers"] = json!([{"id": "3", "name": "NFZ", "plans": [{"id": "31", "name": "Basic"}]},
        {"id": "4", "name": "Medicover"}]);
    let t = &mut doc["tenants"][0];
    t["practitioners"].as_array_mut().unwrap().push(json!({"key": "bo", "given": "Bo", "family": "Lind",
        "specializations": [{"id": "12", "name": "Cardiology"}], "license_numbers": ["PL-123"]}));
    t["facilities"].as_array_mut().unwrap().push(json!({"key": "other", "name": "Other clinic", "addresses": [
        {"key": "bo-other", "doctor": "bo", "name": "Other clinic", "street": "Prosta 1", "city": "Warszawa"}]}));
    t["facilities"][0]["addresses"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "bo-hosp", "doctor": "bo", "name": "Test Hospital",
        "street": "Obrzezna", "city": "Warszawa", "is_online_only": true}));
    doc
}

/// Starts a server with [`seed`] (or `doc`) loaded and a token.
pub async fn setup_with(engine: Engine, doc: &Value) -> Ctx {
    let app = spawn_app(engine).await;
    let ids = app.seed(doc).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let a = &ids["tenants"]["acme"];
    let token = token(&app).await;
    Ctx {
        hosp: a["facilities"]["hosp"].as_str().unwrap().into(),
        ann: a["practitioners"]["ann"].as_str().unwrap().into(),
        address: a["addresses"]["obrzezna"].as_str().unwrap().into(),
        ids,
        token,
        app,
    }
}

/// Starts a server with [`seed`] loaded and a token.
pub async fn setup(engine: Engine) -> Ctx {
    setup_with(engine, &seed()).await
}

/// A date-time as a path segment or query value, URL-encoded as the
/// document shows (`2020-12-01T00%3A00%3A00%2B01%3A00`).
pub fn enc(t: &str) -> String {
    t.replace(':', "%3A").replace('+', "%2B")
}

/// An Embassy booking with Ann (the seed's HSA id) of patient 198001011231
/// for healthcare service `gp`, which the seed links to Ann's address.
pub async fn embassy_appointment(app: &TestApp, gp: &str, start: &str, end: &str) -> reqwest::Response {
    app.embassy(Method::POST, "/Appointment")
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Appointment", "status": "booked", "start": start, "end": end,
            "participant": [
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
                 "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/hsaid", "value": "SE2321000016-0001"}}},
                {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/nationalidentificationnumber/se", "value": "198001011231"}}},
                {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": gp}}}
            ]
        }))
        .send()
        .await
        .unwrap()
}
