//! The spec's own example bodies (placeholders filled in) walked through the
//! API in order, and the same requests in FHIR XML; every answer is checked
//! against the FHIR R4 JSON schema (`fhir_schema.rs`).

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_fhir::xml::{from_xml, to_xml};
use reqwest::Method;
use serde_json::{Value, json};

async fn send(app: &TestApp, method: Method, path: &str, body: &Value, xml: bool) -> (u16, Value) {
    let req = app.embassy(method, path);
    let req = if xml {
        req.header("content-type", "application/fhir+xml").header("accept", "application/fhir+xml").body(to_xml(body))
    } else {
        req.header("content-type", "application/fhir+json").json(body)
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = r.text().await.unwrap();
    let body = if xml {
        assert!(content_type.starts_with("application/fhir+xml"), "XML asked, {content_type} given: {text}");
        from_xml(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    // Every answer, read as JSON or as XML, is a valid FHIR R4 resource.
    if body.get("resourceType").is_some() {
        crate::fhir_schema::check_embassy(&body);
    }
    (status, body)
}

/// Runs the spec's examples; answers what the final reads return, with the
/// ids (which differ between runs) taken out.
async fn walk(app: &TestApp, xml: bool, gp: &str, receiver: &Receiver) -> Vec<Value> {
    let mut seen = Vec::new();
    // Subscriptions: the spec's POST example.
    let (s, sub) = send(app, Method::POST, "/Subscription", &json!({
        "resourceType": "Subscription",
        "reason": "Client Testing",
        "channel": {"endpoint": receiver.url, "payload": "application/fhir+json", "_payload": {"extension": [{"url": "http://example.com/x", "valueCode": "id-only"}]},
                    "type": "rest-hook", "header": ["testkey=testvalue"]},
        "status": "requested",
        "criteria": "http://example.com/SubscriptionTopic/1"
    }), xml).await;
    assert_eq!(s, 201, "{sub}");
    // Patient: the spec's input example.
    let (s, patient) = send(app, Method::POST, "/Patient", &json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}],
        "name": [{"text": "Eva Holm", "family": "Holm", "given": ["Eva"]}],
        "telecom": [{"system": "phone", "value": "0701234567"}, {"system": "email", "value": "eva@holm.test"}]
    }), xml).await;
    assert_eq!(s, 200, "{patient}");
    // Patient PATCH: the spec's example.
    let (s, patched) = send(app, Method::PATCH, &format!("/Patient/{}", patient["id"].as_str().unwrap()), &json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/telecom.where(system = 'phone')"}, {"name": "value", "valueString": "0709876543"}]},
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/telecom.where(system = 'email')"}, {"name": "value", "valueString": "eva.holm@holm.test"}]},
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/name.given"}, {"name": "value", "valueString": "Evelina"}]},
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/name.family"}, {"name": "value", "valueString": "Holmberg"}]}
        ]
    }), xml).await;
    assert_eq!(s, 200, "{patched}");
    seen.push(without_ids(patched));
    // Appointment from the spec's participant examples, with a guest.
    let (s, appointment) = send(app, Method::POST, "/Appointment", &json!({
        "resourceType": "Appointment",
        "status": "booked",
        "description": "Follow-up on the cough",
        "start": "2030-03-05T09:00:00+01:00",
        "end": "2030-03-05T09:20:00+01:00",
        "contained": [{
            "resourceType": "RelatedPerson", "id": "1",
            "name": [{"text": "Gus Guest", "family": "Guest", "given": ["Gus"]}],
            "telecom": [{"system": "email", "value": "gus@guest.test"}, {"system": "phone", "value": "0705555555"}]
        }],
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
             "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/hsaid", "value": "SE2321000016-0001"}},
             "status": "accepted"},
            {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}}, "status": "accepted"},
            {"actor": {"reference": "#1", "type": "RelatedPerson"}, "status": "accepted"},
            {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": gp}}, "status": "accepted"}
        ]
    }), xml).await;
    assert_eq!(s, 201, "{appointment}");
    let aid = appointment["id"].as_str().unwrap().to_owned();
    // Rescheduling, then cancellation: the spec's Parameters examples.
    let (s, moved) = send(app, Method::PATCH, &format!("/Appointment/{aid}"), &json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/start"}, {"name": "value", "valueDateTime": "2030-03-06T10:00:00+01:00"}]},
            {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/end"}, {"name": "value", "valueDateTime": "2030-03-06T10:20:00+01:00"}]}
        ]
    }), xml).await;
    assert_eq!(s, 200, "{moved}");
    seen.push(without_ids(moved));
    // A conversation opened by the patient: the spec's example.
    let (s, request) = send(app, Method::POST, "/CommunicationRequest", &json!({
        "resourceType": "CommunicationRequest",
        "status": "active",
        "subject": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}},
        "recipient": [
            {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": gp}},
            {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}}
        ],
        "sender": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}},
        "requester": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}},
        "reasonCode": [{"coding": [{"system": format!("https://example.com/CodeSystem/HealthcareService.{gp}.ReasonCode"), "code": 1}]}],
        "payload": [{"content": {"contentString": "Reason text"}}],
        "extension": [{"url": "https://schema.visibacare.com/fhir/StructureDefinition/patient-response-enabled-extension", "valueBoolean": true}]
    }), xml).await;
    assert_eq!(s, 200, "{request}");
    // A message by the patient: the spec's example.
    let (s, message) = send(app, Method::POST, "/Communication", &json!({
        "resourceType": "Communication",
        "status": "completed",
        "basedOn": [{"type": "CommunicationRequest", "identifier": {"system": "http://schema.visibacare.com/identifier/communicationrequest/visibaid", "value": request["id"]}}],
        "sender": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}},
        "payload": [{"content": {"contentString": "Message to be sent"}}]
    }), xml).await;
    assert_eq!(s, 200, "{message}");
    // Cancel.
    let (s, cancelled) = send(app, Method::PATCH, &format!("/Appointment/{aid}"), &json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/status"}, {"name": "value", "valueCode": "cancelled"}]}]
    }), xml).await;
    assert_eq!(s, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    seen.push(without_ids(cancelled));
    // An error in XML is an OperationOutcome in XML.
    let (s, outcome) = send(
        app,
        Method::PATCH,
        &format!("/Appointment/{aid}"),
        &json!({"resourceType": "Parameters", "parameter": []}),
        xml,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "ParametersCannotBeEmpty");
    seen
}

/// Replaces what differs between two runs (ids, tickets, participant ids).
fn without_ids(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if k == "id"
                        || k == "valueUri"
                        || (k == "value"
                            && x.as_str().is_some_and(|s| s.chars().all(|c| c.is_ascii_digit()) && s.len() < 10))
                    {
                        *x = json!("*");
                    } else if k == "reference" {
                        *x = json!("#*");
                    } else {
                        walk(x);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

async fn the_specs_examples_walk_through_in_json_and_in_xml(engine: Engine) {
    let mut results = Vec::new();
    for xml in [false, true] {
        let app = spawn_app(engine).await;
        let ids = app.seed(&acme_seed("acme")).await;
        app.set_clock("2030-03-04T08:00:00Z").await;
        let gp = ids["tenants"]["acme"]["healthcare_services"]["gp"].as_str().unwrap().to_owned();
        let rx = Receiver::start().await;
        results.push(walk(&app, xml, &gp, &rx).await);
        app.run_due().await;
        // Handshake, AppointmentCreated.
        assert_eq!(rx.received().len(), 2);
        assert_eq!(rx.received()[1].header("testkey"), Some("testvalue"));
        app.stop().await;
    }
    assert_eq!(results[0], results[1], "XML requests and responses say exactly what JSON ones say");
}

on_both_engines!(the_specs_examples_walk_through_in_json_and_in_xml);
