//! Embassy conversations (CommunicationRequest, Communication), metadata, and
//! robustness: no JSON body makes an Embassy endpoint answer 5xx.

use crate::emb::expect_error;
use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use crate::receiver::Receiver;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Value, json};

const SERVICE: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";
const PATIENT_NID: &str = "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber";
const PRACT_EMAIL: &str = "http://schema.visibacare.com/identifier/practitioner/email";
const RESPONSE: &str = "https://schema.visibacare.com/fhir/StructureDefinition/patient-response-enabled-extension";

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.embassy(Method::POST, path).header("content-type", "application/fhir+json").json(body).send().await.unwrap()
}

struct Ctx {
    app: TestApp,
    gp: String,
    ann: String,
}

async fn setup(engine: Engine) -> Ctx {
    let app = spawn_app(engine).await;
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["practitioners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "bo", "given": "Bo", "family": "Lind", "email": "bo@acme.test"}));
    doc["tenants"][0]["healthcare_services"][0]["practitioners"] = json!(["ann", "bo"]);
    let ids = app.seed(&doc).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    for (given, nid) in [("Eva", "198001011231"), ("Kid", "201003033451")] {
        let r = post(
            &app,
            "/Patient",
            &json!({"resourceType": "Patient", "name": [{"given": [given], "family": "Holm"}],
            "identifier": [{"system": PATIENT_NID, "value": nid}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let t = &ids["tenants"]["acme"];
    Ctx {
        gp: t["healthcare_services"]["gp"].as_str().unwrap().into(),
        ann: t["practitioners"]["ann"].as_str().unwrap().into(),
        app,
    }
}

fn logical(kind: &str, system: &str, value: &str) -> Value {
    json!({"type": kind, "identifier": {"system": system, "value": value}})
}

fn by_practitioner(ctx: &Ctx) -> Value {
    json!({
        "resourceType": "CommunicationRequest", "status": "active",
        "subject": logical("Patient", PATIENT_NID, "198001011231"),
        "recipient": [logical("HealthcareService", SERVICE, &ctx.gp), logical("Practitioner", PRACT_EMAIL, "ann@acme.test"), logical("Patient", PATIENT_NID, "198001011231")],
        "sender": logical("Practitioner", PRACT_EMAIL, "ann@acme.test"),
        "requester": logical("Practitioner", PRACT_EMAIL, "ann@acme.test"),
        "payload": [{"content": {"contentString": "How are you feeling?"}}],
        "extension": [{"url": RESPONSE, "valueBoolean": true}]
    })
}

fn by_patient(ctx: &Ctx) -> Value {
    json!({
        "resourceType": "CommunicationRequest", "status": "active",
        "subject": logical("Patient", PATIENT_NID, "198001011231"),
        "recipient": [logical("HealthcareService", SERVICE, &ctx.gp), logical("Patient", PATIENT_NID, "198001011231")],
        "sender": logical("Patient", PATIENT_NID, "198001011231"),
        "requester": logical("Patient", PATIENT_NID, "198001011231"),
        "reasonCode": [{"coding": [{"system": format!("https://example.com/CodeSystem/HealthcareService.{}.ReasonCode", ctx.gp), "code": 1}]}],
        "payload": [{"content": {"contentString": "I have a cough"}}],
        "extension": [{"url": RESPONSE, "valueBoolean": true}]
    })
}

fn by_representative(ctx: &Ctx) -> Value {
    json!({
        "resourceType": "CommunicationRequest",
        "contained": [
            {"resourceType": "RelatedPerson", "id": "a7d77c57", "identifier": [{"system": "http://schema.visibacare.com/identifier/relatedPerson/nationalidentificationnumber", "value": "197505054564"}],
             "patient": {"reference": "#7dfd7cad", "type": "Patient"},
             "relationship": [{"coding": [{"system": "http://schema.visibacare.com/codesystem/relatedperson/relationship", "code": "Representative"}]}],
             "name": [{"text": "Maja Holm", "family": "Holm", "given": ["Maja"]}],
             "telecom": [{"system": "email", "value": "maja@holm.test"}, {"system": "phone", "value": "0703333333"}]},
            {"resourceType": "Patient", "id": "7dfd7cad", "identifier": [{"system": PATIENT_NID, "value": "201003033451"}]}
        ],
        "extension": [{"url": RESPONSE, "valueBoolean": true}],
        "status": "active",
        "subject": {"reference": "#7dfd7cad", "type": "Patient"},
        "payload": [{"content": {"contentString": "My child has a fever"}}],
        "recipient": [logical("HealthcareService", SERVICE, &ctx.gp), {"reference": "#a7d77c57", "type": "RelatedPerson"}],
        "sender": {"reference": "#a7d77c57", "type": "RelatedPerson"},
        "requester": {"reference": "#a7d77c57", "type": "RelatedPerson"}
    })
}

async fn conversations_by_practitioner_patient_and_representative(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let rx = Receiver::start().await;
    let sub = post(
        app,
        "/Subscription",
        &json!({"resourceType": "Subscription", "status": "requested", "criteria": "x/SubscriptionTopic/5",
        "channel": {"type": "rest-hook", "endpoint": rx.url, "payload": "application/fhir+json"}}),
    )
    .await;
    assert_eq!(sub.status(), 201);
    for body in [by_practitioner(&ctx), by_patient(&ctx), by_representative(&ctx)] {
        let r = post(app, "/CommunicationRequest", &body).await;
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }
    let r = post(app, "/CommunicationRequest", &by_practitioner(&ctx)).await;
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let cr: Value = r.json().await.unwrap();
    let id = cr["id"].as_str().unwrap().to_owned();
    assert_eq!(cr["status"], "active");
    assert_eq!(cr["payload"][0]["content"]["contentString"], "How are you feeling?");
    assert_eq!(cr["sender"]["identifier"]["value"], ctx.ann);
    assert!(cr["authoredOn"].is_string());
    let read: Value =
        app.embassy(Method::GET, &format!("/CommunicationRequest/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, cr);
    // MessageConversationCreated reached the subscriber for each conversation.
    app.run_due().await;
    let events: Vec<Value> = rx
        .received()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["entry"][0]["resource"]["type"] == "event-notification")
        .collect();
    assert_eq!(events.len(), 4);
    assert_eq!(events[3]["entry"][0]["resource"]["notificationEvent"][0]["focus"]["reference"], location);
    // Messages.
    let message = |sender: Value| {
        json!({"resourceType": "Communication", "status": "completed",
        "basedOn": [{"type": "CommunicationRequest", "identifier": {"system": "x", "value": id}}],
        "sender": sender, "payload": [{"content": {"contentString": "Better, thanks"}}]})
    };
    let m = post(app, "/Communication", &message(logical("Patient", PATIENT_NID, "198001011231"))).await;
    assert_eq!(m.status(), 200);
    let m: Value = m.json().await.unwrap();
    assert_eq!(m["status"], "completed");
    let mid = m["id"].as_str().unwrap();
    assert_eq!(
        app.embassy(Method::GET, &format!("/Communication/{mid}")).send().await.unwrap().json::<Value>().await.unwrap(),
        m
    );
    assert_eq!(
        post(app, "/Communication", &message(logical("Practitioner", PRACT_EMAIL, "bo@acme.test"))).await.status(),
        422,
        "Bo has no privileges"
    );
    expect_error(
        post(app, "/Communication", &message(logical("Practitioner", PRACT_EMAIL, "bo@acme.test"))).await,
        422,
        "PractitionerNotEligble",
    )
    .await;
    expect_error(
        post(app, "/Communication", &message(logical("Patient", PATIENT_NID, "201003033451"))).await,
        422,
        "SenderNotRecipient",
    )
    .await;
    expect_error(app.embassy(Method::GET, "/Communication/424242").send().await.unwrap(), 404, "CommunicationNotFound")
        .await;
    expect_error(
        app.embassy(Method::GET, "/CommunicationRequest/424242").send().await.unwrap(),
        404,
        "CommunicationRequestNotFound",
    )
    .await;
    // Communication errors.
    let mut m2 = message(logical("Patient", PATIENT_NID, "198001011231"));
    m2["status"] = json!("in-progress");
    expect_error(post(app, "/Communication", &m2).await, 422, "InvalidCommunicationStatus").await;
    let mut m3 = message(logical("Patient", PATIENT_NID, "198001011231"));
    m3["payload"] = json!([]);
    expect_error(post(app, "/Communication", &m3).await, 422, "InvalidPayload").await;
    let mut m4 = message(logical("Patient", PATIENT_NID, "198001011231"));
    m4.as_object_mut().unwrap().remove("basedOn");
    expect_error(post(app, "/Communication", &m4).await, 422, "InvalidBasedOn").await;
    let mut m5 = message(logical("Patient", PATIENT_NID, "198001011231"));
    m5["basedOn"][0]["identifier"]["value"] = json!("abc");
    expect_error(post(app, "/Communication", &m5).await, 422, "InvalidCommunicationRequest").await;
    m5["basedOn"][0]["identifier"]["value"] = json!("424242");
    expect_error(post(app, "/Communication", &m5).await, 422, "CommunicationRequestNotFound").await;
    let mut m6 = message(json!({"type": "Device"}));
    m6["sender"] = json!({"type": "Device"});
    expect_error(post(app, "/Communication", &m6).await, 422, "InvalidSender").await;
    expect_error(
        post(app, "/Communication", &message(logical("Patient", PATIENT_NID, "123"))).await,
        422,
        "InvalidPatient",
    )
    .await;
    expect_error(
        post(app, "/Communication", &message(logical("Practitioner", "http://x", "1"))).await,
        422,
        "InvalidPractitioner",
    )
    .await;
    expect_error(
        post(app, "/Communication", &message(logical("Practitioner", PRACT_EMAIL, "ghost@acme.test"))).await,
        422,
        "PractitionerNotFound",
    )
    .await;
    expect_error(
        post(app, "/Communication", &message(json!({"reference": "#nobody", "type": "RelatedPerson"}))).await,
        422,
        "AllParticipantsWithContainedReferenceMustHaveContainedResource",
    )
    .await;
    // A completed conversation takes no more messages.
    let mut done = by_practitioner(&ctx);
    done["status"] = json!("completed");
    let done: Value = post(app, "/CommunicationRequest", &done).await.json().await.unwrap();
    let mut late = message(logical("Practitioner", PRACT_EMAIL, "ann@acme.test"));
    late["basedOn"][0]["identifier"]["value"] = done["id"].clone();
    expect_error(post(app, "/Communication", &late).await, 422, "CommunicationRequestNotActive").await;
    ctx.app.stop().await;
}

async fn communication_request_error_codes(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let p = by_practitioner(&ctx);
    let pa = by_patient(&ctx);
    let rep = by_representative(&ctx);
    let with = |base: &Value, f: &dyn Fn(&mut Value)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&p, &|b| b["status"] = json!("draft")), "InvalidCommunicationRequestStatus"),
        (with(&pa, &|b| b["status"] = json!("completed")), "InvalidCommunicationRequestStatus"),
        (
            with(&p, &|b| {
                b.as_object_mut().unwrap().remove("subject");
            }),
            "InvalidSubject",
        ),
        (with(&p, &|b| b["subject"] = logical("Practitioner", PRACT_EMAIL, "ann@acme.test")), "InvalidSubject"),
        (with(&p, &|b| b["subject"] = logical("Patient", PATIENT_NID, "1")), "InvalidPatient"),
        (
            with(&p, &|b| {
                b["subject"] = logical("Patient", PATIENT_NID, "199002022342");
                b["recipient"][2] = b["subject"].clone();
            }),
            "PatientNotFound",
        ),
        (with(&p, &|b| b["payload"] = json!([{"content": {"contentString": ""}}])), "InvalidPayload"),
        (with(&p, &|b| b["recipient"][0] = json!({"type": "Device"})), "InvalidRecipient"),
        (
            with(&p, &|b| {
                b["recipient"].as_array_mut().unwrap().remove(0);
            }),
            "ExactlyOneHealthcareServiceRequired",
        ),
        (with(&p, &|b| b["recipient"][0]["identifier"]["system"] = json!("http://x")), "InvalidHealthcareService"),
        (with(&p, &|b| b["recipient"][0]["identifier"]["value"] = json!("424242")), "HealthcareServiceNotFound"),
        (with(&p, &|b| b["recipient"][1] = logical("Practitioner", "http://x", "1")), "InvalidPractitioner"),
        (
            with(&p, &|b| b["recipient"][1] = logical("Practitioner", PRACT_EMAIL, "ghost@acme.test")),
            "PractitionerNotFound",
        ),
        (
            with(&p, &|b| {
                b["recipient"].as_array_mut().unwrap().push(logical("Practitioner", PRACT_EMAIL, "bo@acme.test"))
            }),
            "PractitionerNotEligble",
        ),
        (
            with(&p, &|b| {
                b.as_object_mut().unwrap().remove("requester");
            }),
            "InvalidRequester",
        ),
        (
            with(&p, &|b| {
                b.as_object_mut().unwrap().remove("sender");
            }),
            "InvalidSender",
        ),
        (
            with(&p, &|b| {
                b["reasonCode"] =
                    json!([{"coding": [{"system": "x", "code": 1}]}, {"coding": [{"system": "x", "code": 2}]}])
            }),
            "MultipleReasonCodesNotSupported",
        ),
        (with(&pa, &|b| b["reasonCode"][0]["coding"][0]["code"] = json!("one")), "InvalidReasonCode"),
        (with(&pa, &|b| b["reasonCode"][0]["coding"][0]["code"] = json!(99)), "ReasonCodeNotFound"),
        (
            with(&pa, &|b| b["reasonCode"][0]["coding"][0]["system"] = json!("http://snomed.info/sct")),
            "UnsupportedReasonCode",
        ),
        (
            with(&p, &|b| b["recipient"].as_array_mut().unwrap().push(logical("Patient", PATIENT_NID, "201003033451"))),
            "MultiplePatientsNotSupported",
        ),
        (
            with(&p, &|b| {
                b["recipient"].as_array_mut().unwrap().remove(2);
            }),
            "SubjectNotRecipient",
        ),
        (
            with(&p, &|b| {
                b["recipient"].as_array_mut().unwrap().remove(1);
            }),
            "RequesterNotRecipient",
        ),
        (with(&p, &|b| b["sender"] = logical("Patient", PATIENT_NID, "198001011231")), "SenderNotRequester"),
        (
            with(&pa, &|b| {
                b["recipient"].as_array_mut().unwrap().push(logical("Practitioner", PRACT_EMAIL, "ann@acme.test"))
            }),
            "PatientRequesterWithPractitionerRecipientsNotSupported",
        ),
        (
            with(&pa, &|b| b["extension"][0]["valueBoolean"] = json!(false)),
            "InvalidPatientResponseEnabledExtensionCode",
        ),
        (
            with(&p, &|b| {
                b.as_object_mut().unwrap().remove("extension");
            }),
            "InvalidPatientResponseEnabledExtensionCode",
        ),
        (with(&rep, &|b| b["contained"][1]["identifier"][0]["value"] = json!("1")), "InvalidContainedPatient"),
        (
            with(&rep, &|b| b["contained"][1]["identifier"][0]["value"] = json!("199002022342")),
            "ContainedPatientNotFound",
        ),
        (with(&rep, &|b| b["contained"][0]["identifier"][0]["system"] = json!("http://x")), "InvalidRepresentative"),
        (with(&rep, &|b| b["contained"][0]["name"] = json!([{"given": ["Maja"]}])), "InvalidName"),
        (with(&rep, &|b| b["contained"][0]["telecom"][1]["value"] = json!("x")), "InvalidPhone"),
        (
            with(&rep, &|b| {
                b["contained"][0]["telecom"].as_array_mut().unwrap().remove(1);
            }),
            "PhoneRequired",
        ),
        (
            with(&rep, &|b| {
                b["contained"][0].as_object_mut().unwrap().remove("identifier");
            }),
            "NationalIdentityNumberRequired",
        ),
        (
            with(&rep, &|b| b["sender"]["reference"] = json!("#missing")),
            "AllParticipantsWithContainedReferenceMustHaveContainedResource",
        ),
    ];
    for (body, code) in cases {
        expect_error(post(app, "/CommunicationRequest", &body).await, 422, code).await;
    }
    // A service that takes no conversations.
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["healthcare_services"][0]["allows_conversations"] = json!(false);
    doc["tenants"][0]["healthcare_services"][0]["practitioners"] = json!(["ann", "bo"]);
    doc["tenants"][0]["practitioners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "bo", "given": "Bo", "family": "Lind", "email": "bo@acme.test"}));
    app.seed(&doc).await;
    expect_error(post(app, "/CommunicationRequest", &p).await, 422, "HealthcareServiceNotSuppported").await;
    ctx.app.stop().await;
}

async fn metadata_tells_what_is_served(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.client.get(app.url("/embassy/metadata")).send().await.unwrap();
    assert_eq!(r.status(), 200, "metadata needs no API key");
    assert!(r.headers().get("x-request-id").is_some());
    let cs: Value = r.json().await.unwrap();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    let types: Vec<&str> =
        cs["rest"][0]["resource"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    for t in [
        "Appointment",
        "Patient",
        "HealthcareService",
        "Practitioner",
        "CommunicationRequest",
        "Communication",
        "CodeSystem",
        "Subscription",
        "SubscriptionTopic",
    ] {
        assert!(types.contains(&t), "{t}");
    }
    let xml = app
        .client
        .get(app.url("/embassy/metadata"))
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<CapabilityStatement xmlns=\"http://hl7.org/fhir\">"));
    app.stop().await;
}

/// Arbitrary JSON: any shape, sometimes close to what the endpoints expect.
fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("booked"),
            Just("cancelled"),
            Just("Patient"),
            Just("#1"),
            Just("2030-03-05T09:00:00Z"),
            Just("/status"),
            Just("replace")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("resourceType".to_owned()),
            Just("status".to_owned()),
            Just("participant".to_owned()),
            Just("actor".to_owned()),
            Just("identifier".to_owned()),
            Just("system".to_owned()),
            Just("value".to_owned()),
            Just("contained".to_owned()),
            Just("parameter".to_owned()),
            Just("part".to_owned()),
            Just("name".to_owned()),
            Just("telecom".to_owned()),
            Just("channel".to_owned()),
            Just("start".to_owned()),
            Just("end".to_owned()),
            Just("reference".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

async fn no_json_body_causes_a_server_error(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let targets = [
        (Method::POST, "/Appointment", "Appointment"),
        (Method::POST, "/Patient", "Patient"),
        (Method::POST, "/Subscription", "Subscription"),
        (Method::POST, "/CommunicationRequest", "CommunicationRequest"),
        (Method::POST, "/Communication", "Communication"),
        (Method::PATCH, "/Patient/1", "Parameters"),
        (Method::PATCH, "/Appointment/1", "Parameters"),
        (Method::PATCH, "/Subscription/1", "Parameters"),
        (Method::POST, "/Appointment/_search", ""),
        (Method::POST, "/Patient/_search", ""),
        (Method::POST, "/Practitioner/_search", ""),
    ];
    let mut runner = TestRunner::deterministic();
    let strategy = arbitrary_json();
    for round in 0..40 {
        for (method, path, kind) in &targets {
            let mut body = strategy.new_tree(&mut runner).unwrap().current();
            // Half the bodies carry the right resourceType, to get past the first check.
            if round % 2 == 0 && !kind.is_empty() {
                if let Value::Object(m) = &mut body {
                    m.insert("resourceType".into(), json!(kind));
                } else {
                    body = json!({"resourceType": kind, "x": body});
                }
            }
            let r = app
                .embassy(method.clone(), path)
                .header("content-type", if kind.is_empty() { "application/json" } else { "application/fhir+json" })
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!((200..500).contains(&status), "{method} {path} answered {status} to {body}: {text}");
            if status >= 400 {
                let outcome: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
                assert_eq!(outcome["resourceType"], "OperationOutcome", "{method} {path} {body}");
            }
        }
    }
    ctx.app.stop().await;
}

on_both_engines!(
    conversations_by_practitioner_patient_and_representative,
    communication_request_error_codes,
    metadata_tells_what_is_served,
    no_json_body_causes_a_server_error,
);
