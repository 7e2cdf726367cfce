//! The Naboto dialect (`docs/dialects/naboto.md`) over HTTP, on both
//! engines: authentication, the NabotoPatient and NabotoAppointment profile
//! rules of IG 0.1.4 with their OperationOutcomes, the IG's examples accepted
//! and round-tripped, ownership of patients, scheduling refusals, video call
//! keys, canonical URL spellings, tenant isolation, and what Embassy sees.

use crate::helpers::{Engine, acme_seed};
use crate::nb::{
    ann, call, create_patient, example_patient, expect, expect_error, get, new_appointment, new_patient, send, setup,
};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

on_both_engines!(
    bearer_token_is_required,
    example_patient_is_accepted_and_round_tripped,
    patient_profile_rules_answer_operation_outcomes,
    a_mobile_phone_is_contact_enough,
    an_existing_identifier_is_a_conflict,
    patient_update_needs_matching_ids,
    naboto_patients_are_not_edited_through_embassy,
    example_appointment_is_accepted_and_round_tripped,
    appointment_profile_rules_answer_operation_outcomes,
    the_default_practitioner_is_assigned,
    a_naboto_appointment_is_seen_through_embassy,
    a_clash_is_a_conflict_and_a_time_rule_unprocessable,
    video_keys_are_generated_ignored_and_kept,
    appointment_update_changes_time_and_status,
    canonical_urls_answer_in_the_clients_spelling,
    other_tenants_ids_are_not_found,
);

/// Puts `value` at the JSON pointer `path` of `body` (an array index one past
/// the end appends; `Null` removes).
fn with(mut body: Value, path: &str, value: Value) -> Value {
    let (parent, key) = path.rsplit_once('/').unwrap();
    let target = if parent.is_empty() { &mut body } else { body.pointer_mut(parent).unwrap() };
    match (target, value) {
        (Value::Object(o), Value::Null) => {
            o.remove(key);
        }
        (Value::Object(o), v) => {
            o.insert(key.into(), v);
        }
        (Value::Array(a), Value::Null) => {
            a.remove(key.parse::<usize>().unwrap());
        }
        (Value::Array(a), v) => match key.parse::<usize>().unwrap() {
            i if i == a.len() => a.push(v),
            i => a[i] = v,
        },
        _ => panic!("no object at {parent}"),
    }
    body
}

async fn bearer_token_is_required(engine: Engine) {
    let app = setup(engine).await;
    let r = app.client.get(app.url("/naboto/patient/1")).send().await.unwrap();
    assert!(r.headers().get("www-authenticate").is_some());
    expect_error(r, 401, "Unauthorized").await;
    expect_error(call(&app, "nab-nobody", Method::GET, "/patient/1", None).await, 401, "Unauthorized").await;
    let r = app.client.get(app.url("/naboto/patient/1")).header("authorization", "Basic abc").send().await.unwrap();
    expect_error(r, 401, "Unauthorized").await;
    let meta = expect(app.client.get(app.url("/naboto/metadata")).send().await.unwrap(), 200).await;
    assert_eq!(meta["resourceType"], "CapabilityStatement");
}

async fn example_patient_is_accepted_and_round_tripped(engine: Engine) {
    let app = setup(engine).await;
    // As published, the example carries its id: a create refuses it.
    expect_error(send(&app, Method::POST, "/patient", &example_patient()).await, 422, "IdMismatch").await;
    let r = send(&app, Method::POST, "/patient", &new_patient()).await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created = expect(r, 201).await;
    let id = created["id"].as_str().unwrap();
    assert!(location.ends_with(&format!("/naboto/patient/{id}")));
    let sent = example_patient();
    assert_eq!(created["meta"], sent["meta"], "the profile in the client's spelling");
    for k in ["active", "name", "telecom", "gender", "birthDate"] {
        assert_eq!(created[k], sent[k], "{k}");
    }
    for (got, want) in created["identifier"].as_array().unwrap().iter().zip(sent["identifier"].as_array().unwrap()) {
        assert_eq!(
            (&got["system"], &got["value"], &got["type"]["coding"][0]["code"]),
            (&want["system"], &want["value"], &want["type"]["coding"][0]["code"])
        );
    }
    assert_eq!(created["address"][0]["city"], "Linz");
    assert_eq!(created["address"][0]["line"], sent["address"][0]["line"]);
    let read = expect(get(&app, &format!("/patient/{id}")).await, 200).await;
    assert_eq!(read, created);
    // Round trip: the answer is accepted again as an update, unchanged.
    let again = expect(send(&app, Method::PUT, "/patient", &created).await, 200).await;
    assert_eq!(again, created);
    for q in ["https://third-party-system/Patients|0815", "urn:oid:1.2.40.0.10.1.4.3.1|1111241261"] {
        let b = expect(get(&app, &format!("/patient?identifier={}", q.replace('|', "%7C"))).await, 200).await;
        assert_eq!((b["type"].as_str(), b["total"].as_u64()), (Some("searchset"), Some(1)), "{q}: {b}");
        assert_eq!(b["entry"][0]["resource"]["id"], id);
        assert!(b["entry"][0]["fullUrl"].as_str().unwrap().ends_with(&format!("/naboto/patient/{id}")));
    }
    let none = expect(get(&app, "/patient?identifier=https://third-party-system/Patients%7C9999").await, 200).await;
    assert_eq!(none["total"], 0);
    expect_error(get(&app, "/patient?identifier=0815").await, 400, "InvalidSearch").await;
}

async fn patient_profile_rules_answer_operation_outcomes(engine: Engine) {
    let app = setup(engine).await;
    let p = new_patient;
    let usual = json!({"use": "usual", "family": "B", "given": ["A"]});
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("active is required", with(p(), "/active", Value::Null), 422, "ProfileViolation"),
        ("gender is required", with(p(), "/gender", Value::Null), 422, "ProfileViolation"),
        ("one usual name", with(p(), "/name/0/use", json!("official")), 422, "ProfileViolation"),
        ("not two usual names", with(p(), "/name/1", usual), 422, "ProfileViolation"),
        ("SS system fixed", with(p(), "/identifier/0/system", json!("urn:oid:1.2.3")), 422, "ProfileViolation"),
        ("PI needs its system", with(p(), "/identifier/1/system", Value::Null), 422, "ProfileViolation"),
        (
            "identifier type SS, NI or PI",
            with(p(), "/identifier/1/type/coding/0/code", json!("MR")),
            422,
            "ProfileViolation",
        ),
        (
            "one email",
            with(p(), "/telecom/1", json!({"system": "email", "value": "b@naboto.com"})),
            422,
            "ProfileViolation",
        ),
        (
            "email or mobile",
            with(p(), "/telecom", json!([{"system": "phone", "value": "+4373212345", "use": "home"}])),
            422,
            "ContactPointRequired",
        ),
        ("no telecom at all", with(p(), "/telecom", Value::Null), 422, "ContactPointRequired"),
        ("address.district", with(p(), "/address/0/district", json!("Linz-Land")), 422, "ProfileViolation"),
        ("address.period", with(p(), "/address/0/period", json!({"start": "2020-01-01"})), 422, "ProfileViolation"),
        (
            "citizenship",
            with(p(), "/extension", json!([{"url": "http://hl7.org/fhir/StructureDefinition/patient-citizenship"}])),
            422,
            "ProfileViolation",
        ),
        (
            "religion",
            with(
                p(),
                "/extension",
                json!([{"url": "http://fhir.naboto.com/StructureDefinition/at-core-ext-patient-religion", "valueCodeableConcept": {"text": "x"}}]),
            ),
            422,
            "ProfileViolation",
        ),
        ("an invalid e-mail", with(p(), "/telecom/0/value", json!("not an address")), 422, "InvalidValue"),
        ("a birth date before 1900", with(p(), "/birthDate", json!("0000-01-01")), 422, "InvalidValue"),
        ("gender code", with(p(), "/gender", json!("m")), 400, "InvalidResource"),
        ("a partial birth date", with(p(), "/birthDate", json!("1970")), 400, "InvalidResource"),
        ("active is a boolean", with(p(), "/active", json!("yes")), 400, "InvalidResource"),
        ("a Patient", with(p(), "/resourceType", json!("Practitioner")), 400, "InvalidResource"),
    ];
    for (what, body, status, code) in cases {
        let r = send(&app, Method::POST, "/patient", &body).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        expect_error(r, status, code).await;
    }
    for k in [
        "contained",
        "language",
        "contact",
        "deceasedBoolean",
        "deceasedDateTime",
        "maritalStatus",
        "multipleBirthBoolean",
        "multipleBirthInteger",
        "photo",
        "communication",
        "generalPractitioner",
        "managingOrganization",
        "link",
    ] {
        let body = with(p(), &format!("/{k}"), json!([]));
        let m = expect_error(send(&app, Method::POST, "/patient", &body).await, 422, "ProfileViolation").await;
        assert!(m.contains(k), "{k}: {m}");
    }
    let r = app
        .client
        .post(app.url("/naboto/patient"))
        .bearer_auth(crate::nb::TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(r, 400, "InvalidResource").await;
}

async fn a_mobile_phone_is_contact_enough(engine: Engine) {
    let app = setup(engine).await;
    for telecom in [
        json!([{"system": "phone", "value": "+436641234567", "use": "mobile"}]),
        json!([{"system": "sms", "value": "+436641234568"}]),
        json!([{"system": "email", "value": "only@naboto.com"}]),
    ] {
        let body = with(with(new_patient(), "/telecom", telecom.clone()), "/identifier", json!([]));
        let got = expect(send(&app, Method::POST, "/patient", &body).await, 201).await;
        assert_eq!(got["telecom"], telecom);
    }
}

async fn an_existing_identifier_is_a_conflict(engine: Engine) {
    let app = setup(engine).await;
    create_patient(&app).await;
    expect_error(send(&app, Method::POST, "/patient", &new_patient()).await, 409, "DuplicateIdentifier").await;
    // The SS number alone (another PI) is the same person too.
    let body = with(new_patient(), "/identifier/1/value", json!("0816"));
    expect_error(send(&app, Method::POST, "/patient", &body).await, 409, "DuplicateIdentifier").await;
}

async fn patient_update_needs_matching_ids(engine: Engine) {
    let app = setup(engine).await;
    let id = create_patient(&app).await;
    let update = with(with(new_patient(), "/id", json!(id)), "/name/0/family", json!("Musterfrau"));
    let got = expect(send(&app, Method::PUT, &format!("/patient/{id}"), &update).await, 200).await;
    assert_eq!(got["name"][0]["family"], "Musterfrau");
    assert_eq!(expect(get(&app, &format!("/patient/{id}")).await, 200).await["name"][0]["family"], "Musterfrau");
    expect_error(send(&app, Method::PUT, "/patient", &new_patient()).await, 422, "IdMismatch").await;
    expect_error(send(&app, Method::PUT, "/patient/999999", &update).await, 422, "IdMismatch").await;
    let unknown = with(new_patient(), "/id", json!("999999"));
    expect_error(send(&app, Method::PUT, "/patient", &unknown).await, 404, "NotFound").await;
    expect_error(get(&app, "/patient/not-a-number").await, 404, "NotFound").await;
}

async fn naboto_patients_are_not_edited_through_embassy(engine: Engine) {
    let app = setup(engine).await;
    let id = create_patient(&app).await;
    let patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "/name.family"},
        {"name": "value", "valueString": "Other"}]}]});
    let r = crate::emb::send(&app, Method::PATCH, &format!("/Patient/{id}"), &patch).await;
    crate::emb::expect_error(r, 422, "PatientManagedByAnotherSystem").await;
    // Embassy still reads it.
    let r = app.embassy(Method::GET, &format!("/Patient/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

async fn example_appointment_is_accepted_and_round_tripped(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let sent = new_appointment(&patient, &ann);
    let r = send(&app, Method::POST, "/appointment", &sent).await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let got = expect(r, 201).await;
    let id = got["id"].as_str().unwrap().to_owned();
    assert!(location.ends_with(&format!("/naboto/appointment/{id}")));
    assert_eq!(got["meta"], sent["meta"]);
    for k in ["status", "start", "end", "identifier"] {
        assert_eq!(got[k], sent[k], "{k}");
    }
    let notes: Vec<&str> = got["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extension"][0]["valueAnnotation"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(notes, ["Is this treatment covered by my insurance?", "Patient asked for discrete treatment"]);
    assert_eq!(got["extension"][0]["url"], sent["extension"][0]["url"]);
    let parts = got["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["actor"]["reference"], format!("Practitioner/{ann}"));
    assert_eq!(parts[0]["type"], sent["participant"][0]["type"]);
    assert_eq!(parts[0]["required"], "required");
    assert_eq!(parts[1]["actor"]["reference"], format!("Patient/{patient}"));
    assert_eq!(parts[1]["type"], sent["participant"][1]["type"]);
    let read = expect(get(&app, &format!("/appointment/{id}")).await, 200).await;
    assert_eq!(read, got);
    let again = expect(send(&app, Method::PUT, "/appointment", &got).await, 200).await;
    assert_eq!(again, got, "the answer, sent back, changes nothing");
    let b =
        expect(get(&app, "/appointment?identifier=https://third-party-system/appointment%7C11223344").await, 200).await;
    assert_eq!((b["total"].as_u64(), b["entry"][0]["resource"]["id"].as_str()), (Some(1), Some(id.as_str())));
    // A second create with the same identifier is refused.
    expect_error(send(&app, Method::POST, "/appointment", &sent).await, 409, "DuplicateIdentifier").await;
}

async fn appointment_profile_rules_answer_operation_outcomes(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let a = || new_appointment(&patient, &ann);
    let vs = "/participant/0/extension/0/extension/0/valueCoding";
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("status is required", with(a(), "/status", Value::Null), 422, "ProfileViolation"),
        ("pending was removed", with(a(), "/status", json!("pending")), 422, "ProfileViolation"),
        ("proposed is not in the value set", with(a(), "/status", json!("proposed")), 422, "ProfileViolation"),
        ("start is required", with(a(), "/start", Value::Null), 422, "ProfileViolation"),
        ("end is required", with(a(), "/end", Value::Null), 422, "ProfileViolation"),
        ("end after start", with(a(), "/end", json!("2022-02-02T11:00:00Z")), 422, "ProfileViolation"),
        ("an instant", with(a(), "/start", json!("2022-02-02")), 400, "InvalidResource"),
        ("exactly one patient", with(a(), "/participant/1", Value::Null), 422, "ProfileViolation"),
        (
            "not two patients",
            with(a(), "/participant/0", new_appointment(&patient, &ann)["participant"][1].clone()),
            422,
            "ProfileViolation",
        ),
        (
            "participant.period",
            with(a(), "/participant/1/period", json!({"start": "2022-02-02T11:00:00Z"})),
            422,
            "ProfileViolation",
        ),
        (
            "actor Patient or Practitioner",
            with(a(), "/participant/0/actor/type", json!("RelatedPerson")),
            422,
            "ProfileViolation",
        ),
        ("actor.type is required", with(a(), "/participant/0/actor/type", Value::Null), 422, "ProfileViolation"),
        ("patient type SBJ", with(a(), "/participant/1/type/0/coding/0/code", json!("PPRF")), 422, "ProfileViolation"),
        (
            "practitioner type PPRF",
            with(a(), "/participant/0/type/0/coding/0/code", json!("SPRF")),
            422,
            "ProfileViolation",
        ),
        ("practitioner required", with(a(), "/participant/0/required", json!("optional")), 422, "ProfileViolation"),
        ("status accepted", with(a(), "/participant/1/status", json!("tentative")), 422, "ProfileViolation"),
        ("channelType code", with(a(), &format!("{vs}/code"), json!("zoom")), 422, "ProfileViolation"),
        (
            "channelType system",
            with(a(), &format!("{vs}/system"), json!("http://example.org/channels")),
            422,
            "ProfileViolation",
        ),
        (
            "channelType required",
            with(a(), "/participant/0/extension/0/extension/0", Value::Null),
            422,
            "ProfileViolation",
        ),
        ("note text", with(a(), "/extension/0/extension/0/valueAnnotation/text", Value::Null), 422, "ProfileViolation"),
        (
            "unknown patient",
            with(a(), "/participant/1/actor/reference", json!("Patient/424242")),
            422,
            "ReferenceNotFound",
        ),
        (
            "unknown practitioner",
            with(a(), "/participant/0/actor/reference", json!("Practitioner/424242")),
            422,
            "ReferenceNotFound",
        ),
        ("created booked", with(a(), "/status", json!("arrived")), 422, "ProfileViolation"),
        ("an Appointment", with(a(), "/resourceType", json!("Patient")), 400, "InvalidResource"),
    ];
    for (what, body, status, code) in cases {
        let r = send(&app, Method::POST, "/appointment", &body).await;
        assert_eq!(r.status().as_u16(), status, "{what}");
        expect_error(r, status, code).await;
    }
    for k in [
        "language",
        "contained",
        "cancelationReason",
        "serviceCategory",
        "serviceType",
        "specialty",
        "appointmentType",
        "reasonCode",
        "reasonReference",
        "priority",
        "supportingInformation",
        "minutesDuration",
        "slot",
        "comment",
        "patientInstruction",
        "basedOn",
        "requestedPeriod",
    ] {
        let m = expect_error(
            send(&app, Method::POST, "/appointment", &with(a(), &format!("/{k}"), json!([]))).await,
            422,
            "ProfileViolation",
        )
        .await;
        assert!(m.contains(k), "{k}: {m}");
    }
    expect_error(send(&app, Method::POST, "/appointment", &with(a(), "/id", json!("x"))).await, 422, "IdMismatch")
        .await;
    // Nothing was booked by the refusals.
    let b =
        expect(get(&app, "/appointment?identifier=https://third-party-system/appointment%7C11223344").await, 200).await;
    assert_eq!(b["total"], 0);
}

async fn the_default_practitioner_is_assigned(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let only_patient = with(new_appointment(&patient, &ann), "/participant/0", Value::Null);
    let got = expect(send(&app, Method::POST, "/appointment", &only_patient).await, 201).await;
    let refs: Vec<&str> =
        got["participant"].as_array().unwrap().iter().map(|p| p["actor"]["reference"].as_str().unwrap()).collect();
    assert_eq!(refs, [format!("Practitioner/{ann}"), format!("Patient/{patient}")]);
    // The patient by the clinic's identifier, the practitioner by a full URL.
    let by_identifier = with(
        with(
            new_appointment(&patient, &ann),
            "/participant/1/actor",
            json!({"type": "Patient", "identifier": {"system": "https://third-party-system/Patients", "value": "0815"}}),
        ),
        "/identifier/0/value",
        json!("2"),
    );
    let by_identifier =
        with(with(by_identifier, "/start", json!("2022-02-03T11:00:00Z")), "/end", json!("2022-02-03T12:00:00Z"));
    let by_identifier =
        with(by_identifier, "/participant/0/actor/reference", json!(format!("https://naboto.com/practitioner/{ann}")));
    let got = expect(send(&app, Method::POST, "/appointment", &by_identifier).await, 201).await;
    assert_eq!(got["participant"][1]["actor"]["reference"], format!("Patient/{patient}"));
}

async fn a_naboto_appointment_is_seen_through_embassy(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let got = expect(send(&app, Method::POST, "/appointment", &new_appointment(&patient, &ann)).await, 201).await;
    let id = got["id"].as_str().unwrap();
    let r = app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let emb: Value = r.json().await.unwrap();
    assert_eq!(
        (emb["id"].as_str(), emb["start"].as_str(), emb["status"].as_str()),
        (Some(id), Some("2022-02-02T11:00:00Z"), Some("booked")),
        "{emb}"
    );
    let emb_text = emb.to_string();
    assert!(emb_text.contains(&patient), "the patient in Embassy's view: {emb}");
    // A cancellation through Naboto shows there too.
    let cancelled = with(got.clone(), "/status", json!("cancelled"));
    expect(send(&app, Method::PUT, "/appointment", &cancelled).await, 200).await;
    let emb: Value =
        app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(emb["status"], "cancelled");
}

async fn a_clash_is_a_conflict_and_a_time_rule_unprocessable(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    expect(send(&app, Method::POST, "/appointment", &new_appointment(&patient, &ann)).await, 201).await;
    let overlapping = with(
        with(new_appointment(&patient, &ann), "/identifier/0/value", json!("2")),
        "/start",
        json!("2022-02-02T11:30:00Z"),
    );
    let overlapping = with(overlapping, "/end", json!("2022-02-02T12:30:00Z"));
    expect_error(send(&app, Method::POST, "/appointment", &overlapping).await, 409, "SlotTaken").await;
    let past = with(with(overlapping, "/start", json!("2021-12-01T10:00:00Z")), "/end", json!("2021-12-01T11:00:00Z"));
    let m = expect_error(send(&app, Method::POST, "/appointment", &past).await, 422, "TimeRuleViolated").await;
    assert!(m.contains("future"), "{m}");
}

/// The (address, sessionKey) of each participant's video extension.
fn keys(a: &Value) -> Vec<(String, String)> {
    a["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let ext = p["extension"][0]["extension"].as_array().expect("a video extension");
            let of = |u: &str, k: &str| ext.iter().find(|e| e["url"] == u).unwrap()[k].as_str().unwrap().to_owned();
            (of("address", "valueUrl"), of("sessionKey", "valueString"))
        })
        .collect()
}

async fn video_keys_are_generated_ignored_and_kept(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let created = expect(send(&app, Method::POST, "/appointment", &new_appointment(&patient, &ann)).await, 201).await;
    let k = keys(&created);
    assert_eq!(k.len(), 2);
    assert_ne!(k[0].1, k[1].1, "each participant its own key");
    for (address, key) in &k {
        assert!(!["abcdefghijklmn", "1234567890"].contains(&key.as_str()), "the client's key is ignored");
        assert!(key.len() >= 32, "at least 128 bits: {key}");
        let id = created["id"].as_str().unwrap();
        assert!(address.starts_with(&app.url("/video/")), "{address}");
        assert!(address.ends_with(&format!("/{id}/{key}")), "the join page of this call and key: {address}");
        // The server serves the join page to the key's holder, and to no one else.
        let page = app.client.get(address).send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(page.text().await.unwrap().contains("Video call"));
        let wrong = address.replace(key.as_str(), &"0".repeat(key.len()));
        assert_eq!(app.client.get(&wrong).send().await.unwrap().status(), 404);
    }
    // An update sending other keys keeps the server's.
    let mut update = created.clone();
    update["participant"][0]["extension"][0]["extension"][2]["valueString"] = json!("chosen-by-client");
    update["participant"][1]["extension"][0]["extension"][1]["valueUrl"] = json!("https://example.org/x");
    update["start"] = json!("2022-02-02T13:00:00Z");
    update["end"] = json!("2022-02-02T14:00:00Z");
    let updated = expect(send(&app, Method::PUT, "/appointment", &update).await, 200).await;
    assert_eq!(keys(&updated), k, "kept across an update");
    assert_eq!(updated["start"], "2022-02-02T13:00:00Z");
    // Without the extension on any participant, no video call, no keys.
    let mut plain = updated.clone();
    for p in plain["participant"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("extension");
    }
    let plain = expect(send(&app, Method::PUT, "/appointment", &plain).await, 200).await;
    assert!(plain["participant"].as_array().unwrap().iter().all(|p| p.get("extension").is_none()), "{plain}");
    // A new appointment without the extension is no video call either.
    let other = with(
        with(new_appointment(&patient, &ann), "/identifier/0/value", json!("3")),
        "/start",
        json!("2022-02-05T11:00:00Z"),
    );
    let mut other = with(other, "/end", json!("2022-02-05T12:00:00Z"));
    for p in other["participant"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("extension");
    }
    let got = expect(send(&app, Method::POST, "/appointment", &other).await, 201).await;
    assert!(got["participant"].as_array().unwrap().iter().all(|p| p.get("extension").is_none()));
}

async fn appointment_update_changes_time_and_status(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let created = expect(send(&app, Method::POST, "/appointment", &new_appointment(&patient, &ann)).await, 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let arrived = with(created.clone(), "/status", json!("arrived"));
    let got = expect(send(&app, Method::PUT, &format!("/appointment/{id}"), &arrived).await, 200).await;
    assert_eq!(got["status"], "arrived");
    // The status machine: an arrived visit is not booked again.
    let back = with(created.clone(), "/status", json!("booked"));
    expect_error(send(&app, Method::PUT, "/appointment", &back).await, 422, "StatusChangeNotAllowed").await;
    expect_error(send(&app, Method::PUT, "/appointment/999999", &arrived).await, 422, "IdMismatch").await;
    expect_error(
        send(&app, Method::PUT, "/appointment", &with(arrived.clone(), "/id", json!("999999"))).await,
        404,
        "NotFound",
    )
    .await;
    expect_error(send(&app, Method::PUT, "/appointment", &with(arrived, "/id", Value::Null)).await, 422, "IdMismatch")
        .await;
}

async fn canonical_urls_answer_in_the_clients_spelling(engine: Engine) {
    let app = setup(engine).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let mut a = new_appointment(&patient, &ann);
    a["meta"]["profile"][0] = json!("http://fhir.naboto.com/StructureDefinition/naboto-appointment");
    for p in a["participant"].as_array_mut().unwrap() {
        p["extension"][0]["url"] =
            json!("http://hl7.at/fhir/NABOTO/R4/StructureDefinition/virtual-service-contact-detail");
    }
    let got = expect(send(&app, Method::POST, "/appointment", &a).await, 201).await;
    assert_eq!(got["meta"]["profile"][0], "http://fhir.naboto.com/StructureDefinition/naboto-appointment");
    assert_eq!(
        got["participant"][0]["extension"][0]["url"],
        "http://hl7.at/fhir/NABOTO/R4/StructureDefinition/virtual-service-contact-detail"
    );
    assert_eq!(
        got["participant"][0]["extension"][0]["extension"][0]["valueCoding"]["system"],
        "http://fhir.naboto.com/4.0.1/NabotoProfiles/CodeSystem/naboto-vidcall-channel-type"
    );
    assert_eq!(
        got["extension"][0]["url"],
        "http://fhir.naboto.com/4.0.1/NabotoProfiles/StructureDefinition/naboto-note"
    );
    let mut p = with(new_patient(), "/identifier", json!([]));
    p["meta"]["profile"][0] = json!("http://fhir.naboto.com/StructureDefinition/naboto-patient");
    p["telecom"] = json!([{"system": "email", "value": "spelling@naboto.com"}]);
    let got = expect(send(&app, Method::POST, "/patient", &p).await, 201).await;
    assert_eq!(got["meta"]["profile"][0], "http://fhir.naboto.com/StructureDefinition/naboto-patient");
}

async fn other_tenants_ids_are_not_found(engine: Engine) {
    let app = setup(engine).await;
    app.seed(&acme_seed("beta")).await;
    let (patient, ann) = (create_patient(&app).await, ann(&app).await);
    let a = expect(send(&app, Method::POST, "/appointment", &new_appointment(&patient, &ann)).await, 201).await;
    let beta = "nab-beta-1";
    let id = a["id"].as_str().unwrap();
    expect_error(call(&app, beta, Method::GET, &format!("/patient/{patient}"), None).await, 404, "NotFound").await;
    expect_error(call(&app, beta, Method::GET, &format!("/appointment/{id}"), None).await, 404, "NotFound").await;
    let update = with(new_patient(), "/id", json!(patient));
    expect_error(call(&app, beta, Method::PUT, "/patient", Some(&update)).await, 404, "NotFound").await;
    expect_error(call(&app, beta, Method::PUT, "/appointment", Some(&a)).await, 404, "NotFound").await;
    let none = expect(
        call(&app, beta, Method::GET, "/patient?identifier=https://third-party-system/Patients%7C0815", None).await,
        200,
    )
    .await;
    assert_eq!(none["total"], 0);
    // Beta's appointment may not name acme's patient.
    let r = call(&app, beta, Method::POST, "/appointment", Some(&new_appointment(&patient, &ann))).await;
    expect_error(r, 422, "ReferenceNotFound").await;
}
