//! The FHIR R4 JSON schema (HL7's `fhir.schema.json`, vendored in
//! `tests/data/fhir.r4.schema.json`; see the README there) as a check of
//! every FHIR JSON body a FHIR dialect produces: a resource must validate
//! against the schema's definition of its `resourceType` (unknown elements,
//! wrong types, bad codes of the required bindings and malformed primitives
//! such as dates and ids all fail).
//!
//! Two deliberate differences, for Embassy ([`check_embassy`]), where its
//! document departs from R4 and Embassy answers follow the document:
//! - a contained RelatedPerson of a guest has no `patient` ("only set if
//!   representative"), which R4 requires (1..1): a guest is checked as if it
//!   named its patient;
//! - a CommunicationRequest's or Communication's `payload` entries nest their
//!   text as `content.contentString` (R4: `contentString` on the entry):
//!   they are checked in R4's form.
//!
//! Everything else is checked as it is.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const SCHEMA: &str = include_str!("../data/fhir.r4.schema.json");

fn definitions() -> &'static Value {
    static D: OnceLock<Value> = OnceLock::new();
    D.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).expect("the vendored FHIR schema");
        schema["definitions"].clone()
    })
}

/// One compiled validator per resource type, built on first use.
fn validator(resource_type: &str) -> std::sync::Arc<jsonschema::Validator> {
    static V: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> = OnceLock::new();
    let cache = V.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(resource_type) {
        return v.clone();
    }
    assert!(definitions().get(resource_type).is_some(), "{resource_type} is no FHIR R4 resource type");
    let root = json!({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "$ref": format!("#/definitions/{resource_type}"),
        "definitions": definitions(),
    });
    let built = std::sync::Arc::new(
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .should_validate_formats(true)
            .build(&root)
            .expect("the FHIR schema compiles"),
    );
    cache.lock().unwrap().insert(resource_type.to_owned(), built.clone());
    built
}

/// Panics unless `body` is a valid FHIR R4 resource, naming every error.
pub fn check(body: &Value) {
    let Some(resource_type) = body["resourceType"].as_str() else {
        panic!("not a FHIR resource (no resourceType): {body}");
    };
    let v = validator(resource_type);
    let errors: Vec<String> = v.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{resource_type} is not valid FHIR R4: {}\n{body}", errors.join("; "));
}

/// [`check`] for an Embassy body, with the document's two departures from
/// R4 (see the module doc) put in R4's form first, in the body and in the
/// resources of a Bundle.
pub fn check_embassy(body: &Value) {
    let mut body = body.clone();
    if let Some(entries) = body.get_mut("entry").and_then(Value::as_array_mut) {
        for e in entries.iter_mut().filter_map(|e| e.get_mut("resource")) {
            as_r4(e);
        }
    }
    as_r4(&mut body);
    check(&body);
}

fn as_r4(body: &mut Value) {
    let payloads = body.get_mut("payload").and_then(Value::as_array_mut).into_iter().flatten();
    for p in payloads {
        if let Some(content) = p.as_object_mut().and_then(|o| o.remove("content")).and_then(|c| match c {
            Value::Object(m) => Some(m),
            _ => None,
        }) {
            for (k, v) in content {
                p[k] = v;
            }
        }
    }
    let guests = body.get_mut("contained").and_then(Value::as_array_mut).into_iter().flatten();
    for c in guests.filter(|c| c["resourceType"] == "RelatedPerson" && c.get("patient").is_none()) {
        c["patient"] = json!({"reference": "Patient/guest-of"});
    }
}

#[test]
fn the_schema_refuses_what_fhir_refuses() {
    check(&json!({"resourceType": "Patient", "id": "1", "birthDate": "1970-01-01", "gender": "male"}));
    for bad in [
        json!({"resourceType": "Patient", "gender": "man"}),
        json!({"resourceType": "Patient", "birthDate": "01.01.1970"}),
        json!({"resourceType": "Patient", "nickname": "Max"}),
        json!({"resourceType": "Appointment", "status": "booked", "participant": [{"status": "maybe"}]}),
    ] {
        let v = validator(bad["resourceType"].as_str().unwrap());
        assert!(v.iter_errors(&bad).next().is_some(), "refused: {bad}");
    }
}
