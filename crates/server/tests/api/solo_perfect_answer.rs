//! Solo's perfect answer (`POST /perfect-answer`), on both engines: the
//! document's flow (the patient by MRN, the visit in the waiting room of the
//! location, the reason's PCM template answered with the request's values),
//! the 24-hour rule, every refusal, and tenant isolation.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use crate::sl::*;
use reqwest::Method;
use serde_json::{Value, json};

on_both_engines!(
    a_stroke_consult_creates_the_patient_the_visit_and_its_note,
    eeg_consults_use_the_eeg_template,
    an_existing_patient_is_updated_by_mrn,
    a_second_visit_within_24_hours_is_refused,
    a_cancelled_visit_does_not_count,
    concurrent_requests_for_one_patient_make_one_visit,
    each_required_field_is_required,
    values_are_checked,
    the_location_must_be_a_waiting_rooms_geolocation,
    another_tenant_sees_nothing,
);

/// The geolocation of acme's waiting room [`ROUND`].
const ROUND_LOCATION: &str = "2e96ed0e-0f80-4dc3-b2c1-42e65b789e56";
/// The geolocation of acme's waiting room [`GP`].
const GP_LOCATION: &str = "6d1f3a52-8f0c-4b7e-9a3d-1c2b3a4d5e6f";
/// The geolocation of the `other` tenant's waiting room.
const OTHER_LOCATION: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

const STROKE: &str = "Acute Neurology - Physician Services";
const EEG: &str = "EEG - Physician Services";

/// [`crate::sl::setup`], with the waiting rooms' geolocations.
async fn setup(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    let mut doc = seed();
    let rooms = doc["tenants"][0]["healthcare_services"].as_array_mut().unwrap();
    for room in rooms {
        room["geolocation_id"] = json!(if room["name"] == ROUND { ROUND_LOCATION } else { GP_LOCATION });
    }
    app.seed(&doc).await;
    let mut other = acme_seed("other");
    other["tenants"][0]["healthcare_services"][0]["geolocation_id"] = json!(OTHER_LOCATION);
    app.seed(&other).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    app
}

/// The document's example request, in the waiting room [`ROUND`].
fn request(mrn: &str, reason: &str) -> Value {
    json!({
        "firstName": "John",
        "lastName": "Doe",
        "dob": "2001-01-20",
        "locationId": ROUND_LOCATION,
        "mrn": mrn,
        "physicianCallbackNumber": "+1-202-555-0150",
        "requestingProvider": "Bob Dylan",
        "callCenterNotified": "2019-12-03T14:32:12Z",
        "physicianNotified": "2019-12-03T14:32:12Z",
        "patientLocation": "Patient location",
        "consultType": "new",
        "reason": reason,
        "caller": "Caller name"
    })
}

async fn perfect_answer(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    call(app, key, Method::POST, "/perfect-answer", Some(body)).await
}

/// Runs a perfect answer that must succeed; answers `(patientId, encounterId)`.
async fn consult(app: &TestApp, body: &Value) -> (String, String) {
    let got = expect(perfect_answer(app, KEY, body).await, 201).await;
    assert_eq!(got.as_object().unwrap().len(), 2, "{got}");
    (got["patientId"].as_str().unwrap().to_owned(), got["encounterId"].as_str().unwrap().to_owned())
}

/// The note's answers of template `name`, by question (tag).
fn answers_of(note: &Value, name: &str) -> Vec<(String, Value)> {
    let t = note.as_array().unwrap().iter().find(|t| t["template"]["name"] == name).expect("the template");
    t["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["question"][0], name);
            (r["question"][1].as_str().unwrap().to_owned(), r["response"].clone())
        })
        .collect()
}

async fn a_stroke_consult_creates_the_patient_the_visit_and_its_note(engine: Engine) {
    let app = setup(engine).await;
    let (patient, encounter) = consult(&app, &request("AA-00000001", "Stroke")).await;
    // A patient without an external id is named by its SPID.
    let spid: i64 = patient.parse().expect("the SPID as text");
    let shown = expect(get(&app, &format!("/patients/id/type/SPID/value/{spid}")).await, 200).await;
    assert_eq!(shown["mrn"], "AA-00000001");
    assert_eq!(shown["birthDate"], "2001-01-20");
    assert_eq!((&shown["name"][0]["firstName"], &shown["name"][0]["lastName"]), (&json!("John"), &json!("Doe")));

    let visit = expect(get(&app, &format!("/appointments/{encounter}")).await, 200).await;
    assert_eq!(visit["id"].to_string(), encounter);
    assert_eq!(visit["patient"]["id"], patient);
    assert_eq!(visit["patient"]["demographics"]["mrn"], "AA-00000001");
    assert_eq!(visit["status"], "scheduled");
    assert_eq!(visit["reasons"], json!(["Stroke"]));
    // The waiting room's first free slot from now on.
    assert!(visit["date"].as_i64().unwrap() >= T0, "{visit}");
    assert_eq!(visit["duration"], 1800);

    let note = expect(get(&app, &format!("/appointments/{encounter}/visit-note")).await, 200).await;
    assert_eq!(note.as_array().unwrap().len(), 1, "{note}");
    assert_eq!(
        answers_of(&note, STROKE),
        vec![
            ("firstName".to_owned(), json!(["John"])),
            ("lastName".to_owned(), json!(["Doe"])),
            ("dob".to_owned(), json!(["2001-01-20"])),
            ("locationId".to_owned(), json!([ROUND_LOCATION])),
            ("mrn".to_owned(), json!(["AA-00000001"])),
            ("physicianCallbackNumber".to_owned(), json!(["+1-202-555-0150"])),
            ("requestingProvider".to_owned(), json!(["Bob Dylan"])),
            ("callCenterNotified".to_owned(), json!(["2019-12-03T14:32:12Z"])),
            ("physicianNotified".to_owned(), json!(["2019-12-03T14:32:12Z"])),
            ("patientLocation".to_owned(), json!(["Patient location"])),
            ("consultType".to_owned(), json!(["new"])),
            ("reason".to_owned(), json!(["Stroke"])),
            ("caller".to_owned(), json!(["Caller name"])),
        ]
    );
    // The tagged questions are listed in the flow, each with a UUID.
    let questions = note[0]["template"]["flow"]["sections"][0]["questions"].as_array().unwrap();
    assert_eq!(questions.len(), 13);
    assert!(questions.iter().all(|q| q["id"].as_str().unwrap().len() == 36 && q["tag"].is_string()));
    // The note is a version like any PUT's; a PUT by a question's id changes it.
    let history = expect(get(&app, &format!("/appointments/{encounter}/visit-note/versions")).await, 200).await;
    assert_eq!(history.as_array().unwrap().len(), 1);
    let mrn_question = questions.iter().find(|q| q["tag"] == "mrn").unwrap()["id"].clone();
    let put = json!({"name": STROKE, "questions": [{"id": mrn_question, "value": ["AA-2"]}]});
    let note = expect(send(&app, Method::PUT, &format!("/appointments/{encounter}/visit-note"), &put).await, 200).await;
    assert!(answers_of(&note, STROKE).contains(&("mrn".to_owned(), json!(["AA-2"]))));
}

async fn eeg_consults_use_the_eeg_template(engine: Engine) {
    let app = setup(engine).await;
    for (mrn, reason) in [("EEG-1", "EEG Stat"), ("EEG-2", "EEG Routine")] {
        let mut body = request(mrn, reason);
        for optional in
            ["physicianCallbackNumber", "callCenterNotified", "physicianNotified", "patientLocation", "caller"]
        {
            body.as_object_mut().unwrap().remove(optional);
        }
        let (_, encounter) = consult(&app, &body).await;
        let note = expect(get(&app, &format!("/appointments/{encounter}/visit-note")).await, 200).await;
        assert_eq!(note.as_array().unwrap().len(), 1);
        let answers = answers_of(&note, EEG);
        let tags: Vec<&str> = answers.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            tags,
            vec!["firstName", "lastName", "dob", "locationId", "mrn", "requestingProvider", "consultType", "reason"],
            "only the values given"
        );
        assert!(answers.contains(&("reason".to_owned(), json!([reason]))));
    }
}

async fn an_existing_patient_is_updated_by_mrn(engine: Engine) {
    let app = setup(engine).await;
    let spid = create_patient(&app, "p-1").await;
    let mut body = request("MRN-p-1", "Stroke");
    body["firstName"] = json!("Johnny");
    body["lastName"] = json!("Walker");
    body["dob"] = json!("1990-02-03");
    body["locationId"] = json!(GP_LOCATION);
    let (patient, encounter) = consult(&app, &body).await;
    assert_eq!(patient, "p-1", "the patient's external id");
    let shown = expect(get(&app, "/patients/p-1").await, 200).await;
    assert_eq!((&shown["name"][0]["firstName"], &shown["name"][0]["lastName"]), (&json!("Johnny"), &json!("Walker")));
    assert_eq!(shown["name"][0]["family"], "Johnny Walker", "the stale full name is gone");
    assert_eq!(shown["birthDate"], "1990-02-03");
    assert_eq!(shown["accountNumber"], "A-p-1", "the rest stays");
    let visit = expect(get(&app, &format!("/appointments/{encounter}")).await, 200).await;
    assert_eq!(visit["patient"]["id"], "p-1");
    let by_spid = expect(get(&app, &format!("/patients/id/type/SPID/value/{spid}")).await, 200).await;
    assert_eq!(by_spid["mrn"], "MRN-p-1");
    // The waiting room of GP_LOCATION: 15-minute visits.
    assert_eq!(visit["duration"], 900);
}

async fn a_second_visit_within_24_hours_is_refused(engine: Engine) {
    let app = setup(engine).await;
    consult(&app, &request("AA-1", "Stroke")).await;
    app.advance(23 * 3600).await;
    let mut again = request("AA-1", "EEG Routine");
    again["firstName"] = json!("Changed");
    let r = perfect_answer(&app, KEY, &again).await;
    let m = expect_error(r, 409, "").await;
    assert_eq!(m, "A visit has already been created for the patient within 24 hours");
    // Any visit of the patient counts, whatever booked it.
    create_patient(&app, "p-9").await;
    booked(&app, "p-9", ROUND, T0 + 30 * 3600).await;
    expect_error(perfect_answer(&app, KEY, &request("MRN-p-9", "Stroke")).await, 409, "within 24 hours").await;
    // 24 hours after the first visit was made, a new one is taken.
    app.advance(3600).await;
    let (first_patient, encounter) = consult(&app, &request("AA-1", "Stroke")).await;
    let shown = expect(get(&app, &format!("/patients/id/type/SPID/value/{first_patient}")).await, 200).await;
    assert_eq!(shown["name"][0]["firstName"], "John", "the refused request did not rename the patient");
    assert!(encounter.parse::<i64>().is_ok());
}

async fn a_cancelled_visit_does_not_count(engine: Engine) {
    let app = setup(engine).await;
    let (_, encounter) = consult(&app, &request("AA-1", "Stroke")).await;
    let id: i64 = encounter.parse().unwrap();
    expect(put_appointment(&app, id, &json!({"status": "cancelled"})).await, 200).await;
    let (_, second) = consult(&app, &request("AA-1", "Stroke")).await;
    assert_ne!(second, encounter);
}

async fn concurrent_requests_for_one_patient_make_one_visit(engine: Engine) {
    let app = setup(engine).await;
    // Once for a patient not seen before (the MRN is claimed once), once for
    // a known one (the 24-hour rule is checked under the patient's lock).
    for (mrn, known) in [("AA-new", false), ("MRN-p-1", true)] {
        if known {
            create_patient(&app, "p-1").await;
        }
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let r = app
                .client
                .post(app.url("/qapi/v1/perfect-answer"))
                .header("Api-Key", KEY)
                .json(&request(mrn, "Stroke"));
            requests.spawn(async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
        }
        let answers = requests.join_all().await;
        let made = answers.iter().filter(|(s, _)| *s == 201).count();
        assert_eq!(made, 1, "{answers:?}");
        let refused = answers.iter().filter(|(s, body)| *s == 409 && body.contains("within 24 hours")).count();
        assert_eq!(refused, 5, "every other one meets the 24-hour rule: {answers:?}");
    }
    // One visit per patient in the store.
    let visits: i64 = app
        .store
        .read(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("SELECT COUNT(*) FROM appointments WHERE status <> 'cancelled'")
                    .fetch_one(&mut *c)
                    .await?)
            })
        })
        .await
        .unwrap();
    assert_eq!(visits, 2);
}

async fn each_required_field_is_required(engine: Engine) {
    let app = setup(engine).await;
    for field in ["firstName", "lastName", "dob", "locationId", "mrn", "requestingProvider", "consultType", "reason"] {
        let mut body = request("AA-1", "Stroke");
        body.as_object_mut().unwrap().remove(field);
        let m = expect_error(perfect_answer(&app, KEY, &body).await, 400, "").await;
        assert_eq!(m, format!("Bad parameters [{field}: This value should not be blank.]"));
        body[field] = json!("  ");
        let m = expect_error(perfect_answer(&app, KEY, &body).await, 400, "").await;
        assert_eq!(m, format!("Bad parameters [{field}: This value should not be blank.]"));
    }
    // Nothing was made: the MRN is still free.
    let (patient, _) = consult(&app, &request("AA-1", "Stroke")).await;
    assert!(patient.parse::<i64>().is_ok());
}

async fn values_are_checked(engine: Engine) {
    let app = setup(engine).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("consultType", json!("old"), "Bad parameters [consultType: \"old\" is not one of \"new\", \"update\"]"),
        (
            "reason",
            json!("Migraine"),
            "Bad parameters [reason: \"Migraine\" is not one of \"Stroke\", \"EEG Stat\", \"EEG Routine\"]",
        ),
        ("reason", json!("stroke"), "Bad parameters [reason: "),
        ("locationId", json!("123"), "Bad parameters [locationId: This is not a valid UUID.]"),
        ("dob", json!("20-01-2001"), "Bad parameters [dob: "),
        ("dob", json!("2031-01-01"), "Bad parameters [dob: The date of birth must not be in the future.]"),
        ("callCenterNotified", json!("yesterday"), "Bad parameters [callCenterNotified: "),
        ("physicianNotified", json!("2019-12-03 14:32"), "Bad parameters [physicianNotified: "),
        ("mrn", json!("x".repeat(257)), "Bad parameters [mrn: This value is too long"),
        ("firstName", json!(12), "Bad parameters [firstName: "),
    ];
    for (field, value, want) in cases {
        let mut body = request("AA-1", "Stroke");
        body[field] = value;
        let m = expect_error(perfect_answer(&app, KEY, &body).await, 400, want).await;
        if want.ends_with(']') {
            assert_eq!(m, want);
        }
    }
    // The document's exact refusal.
    let mut body = request("AA-1", "Stroke");
    body["locationId"] = json!("123");
    let r = perfect_answer(&app, KEY, &body).await;
    assert_eq!(r.status(), 400);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got, json!({"error": {"message": "Bad parameters [locationId: This is not a valid UUID.]"}}));
    // Not JSON, not an object.
    expect_error(perfect_answer(&app, KEY, &json!([])).await, 400, "Bad parameters").await;
}

async fn the_location_must_be_a_waiting_rooms_geolocation(engine: Engine) {
    let app = setup(engine).await;
    let mut body = request("AA-1", "Stroke");
    body["locationId"] = json!("00000000-0000-4000-8000-000000000000");
    let m = expect_error(perfect_answer(&app, KEY, &body).await, 400, "").await;
    assert_eq!(
        m,
        "Bad parameters [locationId: No waiting room has the location \"00000000-0000-4000-8000-000000000000\".]"
    );
    // Another tenant's location is unknown here.
    body["locationId"] = json!(OTHER_LOCATION);
    expect_error(perfect_answer(&app, KEY, &body).await, 400, "[locationId: No waiting room").await;
    // Upper case is the same UUID.
    body["locationId"] = json!(ROUND_LOCATION.to_uppercase());
    consult(&app, &body).await;
}

async fn another_tenant_sees_nothing(engine: Engine) {
    let app = setup(engine).await;
    let (patient, encounter) = consult(&app, &request("AA-1", "Stroke")).await;
    for path in [
        format!("/appointments/{encounter}"),
        format!("/appointments/{encounter}/visit-note"),
        format!("/appointments/{encounter}/visit-note/versions"),
        format!("/patients/id/type/SPID/value/{patient}"),
    ] {
        expect_error(call(&app, OTHER_KEY, Method::GET, &path, None).await, 404, "not found").await;
    }
    // The same MRN in the other tenant is another patient, with no visit yet.
    let mut theirs = request("AA-1", "Stroke");
    theirs["locationId"] = json!(OTHER_LOCATION);
    let got = expect(perfect_answer(&app, OTHER_KEY, &theirs).await, 201).await;
    assert_ne!(got["patientId"], json!(patient));
    // GP online of `other`: 15-minute visits.
    let visit = expect(
        call(&app, OTHER_KEY, Method::GET, &format!("/appointments/{}", got["encounterId"].as_str().unwrap()), None)
            .await,
        200,
    )
    .await;
    assert_eq!(visit["duration"], 900);
}
