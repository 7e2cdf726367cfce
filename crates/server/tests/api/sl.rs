//! Shared helpers of the Solo tests (as `dp.rs` is for Docplanner): JSON
//! requests to `/qapi/v1` with the `acme` tenant's API key, the one check of
//! the Solo error shape, the document's example patient, and a seeded
//! server whose clock stands at Monday 2030-03-04 09:00 in Stockholm.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};

/// The `acme` tenant's Solo API key.
pub const KEY: &str = "solo-acme-1";
/// The `other` tenant's Solo API key.
pub const OTHER_KEY: &str = "solo-other-1";
/// "Now" in the tests: 2030-03-04T08:00:00Z, a Monday, 09:00 in Stockholm.
pub const T0: i64 = 1_898_841_600;
/// The seed's waiting room with opening hours (Mondays 08:00-16:00
/// Stockholm), one practitioner (Ann), 15-minute slots.
pub const GP: &str = "GP online";
/// A waiting room without opening hours and without practitioners (it takes
/// one visit at a time), 30-minute slots.
pub const ROUND: &str = "Round the clock";

/// A seeded server: tenants `acme` (with the extra waiting room [`ROUND`])
/// and `other`, the clock at [`T0`].
pub async fn setup(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    app.seed(&seed()).await;
    app.seed(&acme_seed("other")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    app
}

/// The `acme` seed with the extra waiting room [`ROUND`].
pub fn seed() -> Value {
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["healthcare_services"].as_array_mut().unwrap().push(json!({
        "key": "round", "name": ROUND, "practitioners": [], "slot_seconds": 1800,
        "service_line": "Demo", "service_type": "Other"}));
    doc
}

/// A request to `/qapi/v1{path}` with `key`, with a JSON body if given.
pub async fn call(app: &TestApp, key: &str, method: Method, path: &str, body: Option<&Value>) -> reqwest::Response {
    let mut r = app.client.request(method, app.url(&format!("/qapi/v1{path}"))).header("Api-Key", key);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap()
}

/// A JSON request with the `acme` key.
pub async fn send(app: &TestApp, method: Method, path: &str, body: &Value) -> reqwest::Response {
    call(app, KEY, method, path, Some(body)).await
}

/// A GET with the `acme` key.
pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    call(app, KEY, Method::GET, path, None).await
}

/// Asserts `status` with a JSON body and answers it.
pub async fn expect(r: reqwest::Response, status: u16) -> Value {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON: {text}"))
}

/// Asserts a Solo error: `status` and `{"error": {"message": ...}}` with a
/// message containing `part`; answers the message.
pub async fn expect_error(r: reqwest::Response, status: u16, part: &str) -> String {
    let body = expect(r, status).await;
    let m = body["error"]["message"].as_str().unwrap_or_else(|| panic!("Solo error shape: {body}")).to_owned();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert!(m.contains(part), "`{m}` should contain `{part}`");
    m
}

/// The document's example patient, with the client's id `id`.
pub fn example_patient(id: &str) -> Value {
    json!({
        "id": id,
        "mrn": format!("MRN-{id}"),
        "accountNumber": format!("A-{id}"),
        "name": [{"use": "usual", "family": "Mike Shinoda", "firstName": "Mike", "middleName": "",
                  "lastName": "Shinoda", "alias": ""}],
        "birthDate": "1983-08-15",
        "gender": "male",
        "maritalStatus": "married",
        "telecom": [{"use": "home", "system": "phone", "value": "+1 (111) 111-1111"},
                    {"use": "home", "system": "email", "value": "mike_zzzzzzz@company.com"}],
        "contact": [{"telecom": [{"use": "home", "system": "phone", "value": "phone"},
                                 {"use": "home", "system": "email", "value": "someemail@email.email"}],
                     "name": []}],
        "preferredLanguage": "English",
        "race": "White",
        "ethnicity": "not Hispanic or Latino",
        "address": [{"city": "New York", "use": "home", "apartment": "", "country": "USA", "state": "NY",
                     "postalcode": "10019", "line": ["123 Main St", ""]}],
        "active": true,
        "deceased": true,
        "deceasedAt": "2020-03-31 10:12 AM",
        "familyMember": false,
        "isLinkedByEmail": false,
        "sharedEmailGroup": {"type": "family", "name": "Family Name"}
    })
}

/// Creates the example patient with id `id` through `key`; answers its SPID.
pub async fn create_patient_as(app: &TestApp, key: &str, id: &str) -> i64 {
    let r = call(app, key, Method::POST, "/patients", Some(&example_patient(id))).await;
    expect(r, 201).await.as_i64().expect("the SPID, a bare integer")
}

/// Creates the example patient with id `id`; answers its SPID.
pub async fn create_patient(app: &TestApp, id: &str) -> i64 {
    create_patient_as(app, KEY, id).await
}

/// Books patient `id` (external id) into `room` at `date` (unix seconds);
/// answers the response.
pub async fn book(app: &TestApp, patient: &str, room: &str, date: i64) -> reqwest::Response {
    let body = json!({"date": date, "waitingRoom": room, "reasons": ["headache"]});
    send(app, Method::POST, &format!("/patients/{patient}/appointments"), &body).await
}

/// Books and answers the new appointment's id.
pub async fn booked(app: &TestApp, patient: &str, room: &str, date: i64) -> i64 {
    expect(book(app, patient, room, date).await, 201).await["id"].as_i64().unwrap()
}

/// `PUT /appointments/{id}` with `body`.
pub async fn put_appointment(app: &TestApp, id: i64, body: &Value) -> reqwest::Response {
    send(app, Method::PUT, &format!("/appointments/{id}"), body).await
}

/// The starts `GET /appointment-slots` offers in `room` over `[after, before)`.
pub async fn slot_starts(app: &TestApp, room: &str, after: i64, before: i64) -> Vec<i64> {
    let q = format!("/appointment-slots?after={after}&before={before}&waitingRoom={}", room.replace(' ', "%20"));
    let body = expect(get(app, &q).await, 200).await;
    body.as_array().unwrap().iter().map(|s| s["date"].as_i64().unwrap()).collect()
}
