//! Solo assistance requests (`/qapi/v1/request-assistance`): made, read and
//! cancelled by each of the document's four addresses (building + floor +
//! room + bed, department + room + bed, patient MRN, device serial), in a
//! JSON body or as query parameters; every documented error in the flat
//! shape `{"message": ...}` with its exact message; one open request per
//! bed; the tenant's own beds only.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use crate::sl::{self, KEY, OTHER_KEY, call, create_patient, expect};
use polyclinic_core::event::EventKind;
use polyclinic_core::{CareLocationId, TenantId};
use polyclinic_store::{assistance, outbox};
use reqwest::Method;
use serde_json::{Value, json};

const MISSING: &str = "Service Request Error: Missing Required Parameters. Please include either Device ID, Patient ID, or a combination of Building, Floor, Room, and Bed (opt.), or Department, Room, and Bed (opt.) to proceed";
const NO_DEVICE: &str = "Device could not be found from the data submitted";
const NO_REQUEST: &str = "Service Request Error: Request not found";
const SEVERAL: &str = "Service Request Error: More than one device matches the data submitted. Please include the Bed, or the Device ID, to proceed";
const PATH: &str = "/request-assistance";

/// The seeded server and the ids its seed answered.
struct Beds {
    app: TestApp,
    tenant: TenantId,
    /// Care location ids by seed key.
    ids: Value,
}

impl Beds {
    fn id(&self, key: &str) -> String {
        self.ids[key].as_str().unwrap().to_owned()
    }
}

/// `acme` with five beds: `cl1` (the seed's: hospital, floor 2, room 431,
/// bed 2, emergency department, device 123457) and `cl431b1` (bed 1 of the
/// same room, device 123458), so that room 431 without a bed names two;
/// `clp` (cardiology, room 512, device 223344) holding the patient
/// `MRN-p1`, created through the API; `cldev` with a device and nothing
/// else; `clghost`, holding an MRN of no patient. `other` has `cl1` too.
async fn setup(engine: Engine) -> Beds {
    let app = spawn_app(engine).await;
    let mut doc = sl::seed();
    doc["tenants"][0]["care_locations"].as_array_mut().unwrap().extend([
        json!({"key": "cl431b1", "name": "ICC-CL-01-01", "building": "hospital", "floor": "floor 2", "room": "431",
               "bed": "bed 1", "department": "emergency department", "device_serial": "123458"}),
        json!({"key": "clp", "name": "CARD-512", "building": "Heart Centre", "floor": "floor 3", "room": "512",
               "bed": "bed 1", "department": "Cardiology", "device_serial": "223344", "patient_mrn": "MRN-p1"}),
        json!({"key": "cldev", "name": "Mobile cart", "device_serial": "CART-9"}),
        json!({"key": "clghost", "name": "Annex 1", "building": "annex", "floor": "1", "room": "1",
               "device_serial": "777", "patient_mrn": "MRN-nobody"}),
    ]);
    let answer = app.seed(&doc).await;
    app.seed(&acme_seed("other")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    create_patient(&app, "p1").await;
    let acme = &answer["tenants"]["acme"];
    let tenant = TenantId(acme["id"].as_str().unwrap().parse().unwrap());
    Beds { app, tenant, ids: acme["care_locations"].clone() }
}

/// A request to `/request-assistance` with `key` and a JSON body.
async fn ask(app: &TestApp, key: &str, method: Method, body: &Value) -> reqwest::Response {
    call(app, key, method, PATH, Some(body)).await
}

/// `POST` with the `acme` key.
async fn post(app: &TestApp, body: &Value) -> reqwest::Response {
    ask(app, KEY, Method::POST, body).await
}

/// `GET` with the `acme` key and a JSON body.
async fn read(app: &TestApp, body: &Value) -> reqwest::Response {
    ask(app, KEY, Method::GET, body).await
}

/// `DELETE` with the `acme` key and a JSON body.
async fn delete(app: &TestApp, body: &Value) -> reqwest::Response {
    ask(app, KEY, Method::DELETE, body).await
}

/// A request with the address as query parameters and no body.
async fn with_query(app: &TestApp, method: Method, query: &str) -> reqwest::Response {
    call(app, KEY, method, &format!("{PATH}?{query}"), None).await
}

/// Asserts the flat error: `status` and exactly `{"message": message}`.
async fn expect_flat(r: reqwest::Response, status: u16, message: &str) {
    let body = expect(r, status).await;
    assert_eq!(body, json!({"message": message}));
}

/// Asserts a flat error whose message contains `part`.
async fn expect_flat_containing(r: reqwest::Response, status: u16, part: &str) {
    let got = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let m = body["message"].as_str().unwrap_or_else(|| panic!("the flat shape: {body}"));
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(m.contains(part), "`{m}` should contain `{part}`");
}

/// Asserts a 204 without a body.
async fn expect_no_content(r: reqwest::Response) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!((status, text.as_str()), (204, ""));
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()).is_some()
}

/// The four addresses of the patient's bed `clp`.
fn clp_addresses() -> [Value; 4] {
    [
        json!({"building": "Heart Centre", "floor": "floor 3", "room": "512", "bed": "bed 1"}),
        json!({"department": "Cardiology", "room": "512", "bed": "bed 1"}),
        json!({"patientMrn": "MRN-p1"}),
        json!({"deviceSerialNumber": "223344"}),
    ]
}

async fn a_request_has_the_documents_shape(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let address = json!({"building": "hospital", "floor": "floor 2", "room": "431", "bed": "bed 2"});
    let created = expect(post(app, &address).await, 201).await;
    let cl1 = beds.id("cl1");
    assert!(is_uuid(&created["id"]), "{created}");
    assert!(is_uuid(&created["practice"]), "{created}");
    assert!(is_uuid(&created["location"]["id"]), "{created}");
    let mut shown = created.clone();
    for field in ["id", "practice"] {
        shown[field] = json!("redacted");
    }
    shown["location"]["id"] = json!("redacted");
    assert_eq!(
        shown,
        json!({
            "id": "redacted",
            "device": "123457",
            "careLocation": {
                "availability": "offline",
                "id": cl1,
                "name": "ICC-CL-01-02",
                "status": "active",
                "video": {"type": "robot", "clientId": null, "serialNumber": "123457",
                          "careLocationId": cl1, "skipActivation": true}
            },
            "practice": "redacted",
            "patient": null,
            "assignedTo": null,
            "room": "431",
            "status": "incomplete",
            "createdAt": "2030-03-04T09:00:00+01:00",
            "finishedAt": null,
            "location": {"id": "redacted", "name": "hospital"},
            "avSessions": [],
            "createdFromExternalApi": true
        })
    );
    // The current request reads back the same, by body or by query.
    assert_eq!(expect(read(app, &address).await, 200).await, created);
    let q = "building=hospital&floor=floor%202&room=431&bed=bed%202";
    assert_eq!(expect(with_query(app, Method::GET, q).await, 200).await, created);

    // The practice is the tenant's: the same for every request of it.
    let other_bed = expect(post(app, &json!({"deviceSerialNumber": "CART-9"})).await, 201).await;
    assert_eq!(other_bed["practice"], created["practice"]);
    assert_eq!(other_bed["device"], "CART-9");
    assert_eq!((&other_bed["room"], &other_bed["location"]["name"]), (&Value::Null, &json!("Acme Clinic")));

    // One AssistanceRequested event per request made, with ids only.
    let tenant = beds.tenant;
    let events =
        app.store.read(move |c| Box::pin(async move { outbox::list(c, tenant, 0, 1000).await })).await.unwrap();
    let asked: Vec<_> = events.iter().filter(|e| e.kind == EventKind::AssistanceRequested).collect();
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0].aggregate_id, created["id"].as_str().unwrap());
    assert_eq!(asked[0].data["care_location_id"], json!(cl1));
}

async fn every_address_names_the_same_bed(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let addresses = clp_addresses();
    for (i, made_by) in addresses.iter().enumerate() {
        let created = expect(post(app, made_by).await, 201).await;
        assert_eq!(created["careLocation"]["id"], json!(beds.id("clp")), "{made_by}");
        assert_eq!(created["device"], "223344");
        assert_eq!(created["room"], "512");
        assert_eq!(created["location"]["name"], "Heart Centre");
        assert_eq!(
            created["patient"],
            json!({"age": 46, "id": "p1", "firstName": "Mike", "lastName": "Shinoda", "middleName": "",
                   "dob": "1983-08-15", "mrn": "MRN-p1"})
        );
        for read_by in &addresses {
            assert_eq!(expect(read(app, read_by).await, 200).await, created, "{read_by}");
        }
        // Cancelled by the next address, so that the next one creates anew.
        expect_no_content(delete(app, &addresses[(i + 1) % 4]).await).await;
        for read_by in &addresses {
            expect_flat(read(app, read_by).await, 404, NO_REQUEST).await;
        }
    }
    // The same by query parameters: made, read and cancelled.
    let queries = [
        "building=Heart%20Centre&floor=floor%203&room=512&bed=bed%201",
        "department=Cardiology&room=512&bed=bed%201",
        "patientMrn=MRN-p1",
        "deviceSerialNumber=223344",
    ];
    for q in queries {
        let created = expect(with_query(app, Method::POST, q).await, 201).await;
        assert_eq!(created["careLocation"]["id"], json!(beds.id("clp")), "{q}");
        assert_eq!(expect(with_query(app, Method::GET, q).await, 200).await, created);
        expect_no_content(with_query(app, Method::DELETE, q).await).await;
        expect_flat(with_query(app, Method::GET, q).await, 404, NO_REQUEST).await;
    }
}

async fn a_second_request_answers_the_current_one(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let first = expect(post(app, &json!({"patientMrn": "MRN-p1"})).await, 201).await;
    app.advance(60).await;
    // Another address of the same bed: the same request, 200, nothing new.
    let again = expect(post(app, &json!({"deviceSerialNumber": "223344"})).await, 200).await;
    assert_eq!(again, first);
    let tenant = beds.tenant;
    let events =
        app.store.read(move |c| Box::pin(async move { outbox::list(c, tenant, 0, 1000).await })).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::AssistanceRequested).count(), 1);
    // Another bed of the same room has its own request.
    let b1 = expect(post(app, &json!({"deviceSerialNumber": "123458"})).await, 201).await;
    assert_ne!(b1["id"], first["id"]);
}

async fn concurrent_requests_make_one(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let address = json!({"deviceSerialNumber": "123457"});
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let r = app.client.post(app.url(&format!("/qapi/v1{PATH}"))).header("Api-Key", KEY).json(&address).send();
        calls.spawn(async move {
            let r = r.await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        });
    }
    let answers = calls.join_all().await;
    assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1, "{answers:?}");
    assert!(answers.iter().all(|(s, b)| (*s == 201 || *s == 200) && b["id"] == answers[0].1["id"]), "{answers:?}");
    let tenant = beds.tenant;
    let events =
        app.store.read(move |c| Box::pin(async move { outbox::list(c, tenant, 0, 1000).await })).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.kind == EventKind::AssistanceRequested).count(), 1);
}

async fn a_cancelled_request_is_gone(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let address = json!({"department": "emergency department", "room": "431", "bed": "bed 2"});
    // Nothing to cancel or read yet.
    expect_flat(delete(app, &address).await, 404, NO_REQUEST).await;
    expect_flat(read(app, &address).await, 404, NO_REQUEST).await;
    let first = expect(post(app, &address).await, 201).await;
    app.advance(300).await;
    expect_no_content(delete(app, &address).await).await;
    expect_flat(read(app, &address).await, 404, NO_REQUEST).await;
    expect_flat(delete(app, &address).await, 404, NO_REQUEST).await;

    // Kept as cancelled, with its finish time; a new request is a new one.
    let (tenant, cl1) = (beds.tenant, CareLocationId(beds.id("cl1").parse().unwrap()));
    let second = expect(post(app, &address).await, 201).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second["createdAt"], "2030-03-04T09:05:00+01:00");
    let current =
        app.store.read(move |c| Box::pin(async move { assistance::current(c, tenant, cl1).await })).await.unwrap();
    assert_eq!(current.map(|r| r.id), second["id"].as_str().map(str::to_owned));
}

async fn patient_data_is_sealed_at_rest(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    expect(post(app, &json!({"patientMrn": "MRN-p1"})).await, 201).await;
    let (tenant, clp) = (beds.tenant, CareLocationId(beds.id("clp").parse().unwrap()));
    let stored = app
        .store
        .read(move |c| Box::pin(async move { assistance::current(c, tenant, clp).await }))
        .await
        .unwrap()
        .expect("the current request");
    assert_eq!((stored.status.as_str(), stored.open), ("incomplete", true));
    for clear in ["Shinoda", "MRN-p1", "1983-08-15", "223344"] {
        assert!(!stored.sealed_doc.contains(clear), "`{clear}` in clear");
    }
}

async fn an_incomplete_address_is_refused(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let partial = [
        json!({}),
        json!({"building": "hospital", "room": "431"}),
        json!({"building": "hospital", "floor": "floor 2"}),
        json!({"building": "hospital", "floor": "floor 2", "bed": "bed 2"}),
        json!({"department": "emergency department"}),
        json!({"department": "emergency department", "bed": "bed 2"}),
        json!({"room": "431", "bed": "bed 2"}),
        json!({"floor": "floor 2", "room": "431"}),
        json!({"patientMrn": "", "deviceSerialNumber": "  ", "room": null}),
        json!({"name": "ICC-CL-01-02"}),
    ];
    for body in &partial {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            expect_flat(ask(app, KEY, method, body).await, 400, MISSING).await;
        }
    }
    // Neither body nor query.
    for method in [Method::POST, Method::GET, Method::DELETE] {
        expect_flat(call(app, KEY, method.clone(), PATH, None).await, 400, MISSING).await;
        expect_flat(with_query(app, method, "building=hospital&room=431").await, 400, MISSING).await;
    }
}

async fn an_unknown_bed_is_not_found(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let unknown = [
        json!({"deviceSerialNumber": "999999"}),
        // Serial numbers and MRNs compare exactly.
        json!({"deviceSerialNumber": "cart-9"}),
        json!({"patientMrn": "MRN-unknown"}),
        // A bed whose MRN is no patient's.
        json!({"patientMrn": "MRN-nobody"}),
        json!({"building": "hospital", "floor": "floor 9", "room": "431"}),
        json!({"building": "hospital", "floor": "floor 2", "room": "431", "bed": "bed 3"}),
        json!({"department": "radiology", "room": "431"}),
        json!({"department": "emergency department", "room": "432", "bed": "bed 2"}),
    ];
    for body in &unknown {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            expect_flat(ask(app, KEY, method, body).await, 404, NO_DEVICE).await;
        }
    }
    // The bed of the MRN of nobody is still found by its device; it shows
    // no patient.
    let ghost = expect(post(app, &json!({"deviceSerialNumber": "777"})).await, 201).await;
    assert_eq!(ghost["patient"], Value::Null);
}

async fn a_room_without_its_bed_is_ambiguous(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let ambiguous = [
        json!({"building": "hospital", "floor": "floor 2", "room": "431"}),
        json!({"department": "emergency department", "room": "431"}),
    ];
    for body in &ambiguous {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            expect_flat(ask(app, KEY, method, body).await, 400, SEVERAL).await;
        }
    }
    // Names match trimmed and in any case; the bed chooses.
    let loose = json!({"building": " HOSPITAL ", "floor": "Floor 2", "room": "431 ", "bed": "BED 1"});
    let created = expect(post(app, &loose).await, 201).await;
    assert_eq!(created["careLocation"]["id"], json!(beds.id("cl431b1")));
    // A room with one bed needs no bed; a number is read as its text.
    let card = expect(read(app, &json!({"department": "cardiology", "room": 512})).await, 404).await;
    assert_eq!(card, json!({"message": NO_REQUEST}));
}

async fn another_tenant_sees_nothing(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let address = json!({"deviceSerialNumber": "123457"});
    let acme = expect(post(app, &address).await, 201).await;
    // `other` has a bed cl1 with the same device: acme's request is not its.
    expect_flat(ask(app, OTHER_KEY, Method::GET, &address).await, 404, NO_REQUEST).await;
    expect_flat(ask(app, OTHER_KEY, Method::DELETE, &address).await, 404, NO_REQUEST).await;
    // acme's other beds and patients are unknown to `other`.
    for body in [json!({"deviceSerialNumber": "223344"}), json!({"patientMrn": "MRN-p1"})] {
        expect_flat(ask(app, OTHER_KEY, Method::POST, &body).await, 404, NO_DEVICE).await;
    }
    let theirs = expect(ask(app, OTHER_KEY, Method::POST, &address).await, 201).await;
    assert_ne!(theirs["id"], acme["id"]);
    assert_ne!(theirs["practice"], acme["practice"]);
    assert_eq!(expect(read(app, &address).await, 200).await, acme);
    // A wrong key: 401.
    assert_eq!(ask(app, "nope", Method::GET, &address).await.status().as_u16(), 401);
}

async fn bad_json_is_refused_flat(engine: Engine) {
    let beds = setup(engine).await;
    let app = &beds.app;
    let raw = |method: Method, body: &'static str, content_type: &'static str| {
        app.client
            .request(method, app.url(&format!("/qapi/v1{PATH}")))
            .header("Api-Key", KEY)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    for method in [Method::POST, Method::GET, Method::DELETE] {
        expect_flat_containing(
            raw(method.clone(), "{\"room\": ", "application/json").await.unwrap(),
            400,
            "Bad parameters",
        )
        .await;
        expect_flat_containing(raw(method.clone(), "[1, 2]", "application/json").await.unwrap(), 400, "JSON object")
            .await;
        expect_flat_containing(
            raw(method.clone(), r#"{"deviceSerialNumber": {"id": 1}}"#, "application/json").await.unwrap(),
            400,
            "deviceSerialNumber",
        )
        .await;
        expect_flat_containing(raw(method.clone(), "room=431", "text/plain").await.unwrap(), 415, "JSON").await;
        let long = json!({"deviceSerialNumber": "x".repeat(300)});
        expect_flat_containing(ask(app, KEY, method, &long).await, 400, "deviceSerialNumber").await;
    }
    // Nothing was made.
    expect_flat(read(app, &json!({"deviceSerialNumber": "123457"})).await, 404, NO_REQUEST).await;
}

on_both_engines!(
    a_request_has_the_documents_shape,
    every_address_names_the_same_bed,
    a_second_request_answers_the_current_one,
    concurrent_requests_make_one,
    a_cancelled_request_is_gone,
    patient_data_is_sealed_at_rest,
    an_incomplete_address_is_refused,
    an_unknown_bed_is_not_found,
    a_room_without_its_bed_is_ambiguous,
    another_tenant_sees_nothing,
    bad_json_is_refused_flat,
);
