//! The Docplanner contract: every response a Docplanner test receives is
//! checked against the platform's OpenAPI document (1.14.0, vendored as JSON
//! in `tests/data/docplanner-openapi.json`): the operation must exist, the
//! status must be one the operation lists (or 401, or the rate limits' 429),
//! the content type must be the documented one, and the body must validate
//! against the response schema.
//!
//! OpenAPI 3.0 schemas are JSON Schema with `nullable`; they are turned into
//! JSON Schema by allowing `null` where `nullable: true`, and validated with
//! the `jsonschema` crate, formats (`date-time`, `date`) included.
//!
//! One deliberate difference: the document's `Error` schema declares
//! `errors` as an array of strings, while its own 400 examples (e.g.
//! `SlotsFromFurtherThen12Weeks`) show an object of field errors. Field-error
//! bodies follow the examples, so for them `errors` is checked as that object.

use serde_json::{Map, Value, json};
use std::sync::OnceLock;

const DOCUMENT: &str = include_str!("../data/docplanner-openapi.json");
const SUCCESS: &str = "application/vnd.docplanner+json; charset=UTF-8";
const ERROR: &str = "application/vnd.error+docplanner+json";
/// Status codes allowed on an operation that does not list them: 429, which
/// the document's rate limits section gives every endpoint (401 is the
/// security scheme's, checked apart). Every other status must be one the
/// operation lists, as schemathesis's `status_code_conformance` demands
/// (`.ci/schemathesis.py`).
const GENERAL_ERRORS: [u16; 1] = [429];

struct Contract {
    doc: Value,
    definitions: Value,
}

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let doc: Value = serde_json::from_str(DOCUMENT).expect("the vendored OpenAPI document");
        let schemas = doc["components"]["schemas"].as_object().expect("components.schemas");
        let definitions = schemas.iter().map(|(k, v)| (k.clone(), to_json_schema(v))).collect::<Map<_, _>>();
        Contract { definitions: Value::Object(definitions), doc }
    })
}

/// OpenAPI 3.0 schema to JSON Schema: `nullable` becomes "or null", and
/// component references point into `definitions`.
fn to_json_schema(s: &Value) -> Value {
    match s {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                match k.as_str() {
                    "nullable" | "example" | "default" => {}
                    "$ref" => {
                        let name = v.as_str().unwrap_or_default().trim_start_matches("#/components/schemas/");
                        out.insert(k.clone(), json!(format!("#/definitions/{name}")));
                    }
                    "properties" => {
                        let props = v
                            .as_object()
                            .map(|p| p.iter().map(|(pk, pv)| (pk.clone(), to_json_schema(pv))).collect::<Map<_, _>>())
                            .unwrap_or_default();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    _ => {
                        out.insert(k.clone(), to_json_schema(v));
                    }
                }
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
                json!({"anyOf": [{"type": "null"}, Value::Object(out)]})
            } else {
                Value::Object(out)
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// The document's path template and operation for a request.
fn operation(method: &str, path: &str) -> Option<(String, &'static Value)> {
    let c = contract();
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let paths = c.doc["paths"].as_object()?;
    // Prefer the template with the most literal segments (`/slots/{start}/book`
    // before `/{client-endpoint-url}`).
    let mut best: Option<(usize, &String, &Value)> = None;
    for (template, item) in paths {
        let t: Vec<&str> = template.split('/').collect();
        if t.len() != segments.len() {
            continue;
        }
        let literal = t.iter().filter(|s| !s.starts_with('{')).count();
        let fits = t.iter().zip(&segments).all(|(a, b)| a.starts_with('{') || a == b);
        let op = &item[method.to_ascii_lowercase()];
        if fits && op.is_object() && best.is_none_or(|(n, _, _)| literal > n) {
            best = Some((literal, template, op));
        }
    }
    best.map(|(_, t, op)| (t.clone(), op))
}

fn validate(schema: &Value, body: &Value) -> Result<(), String> {
    let mut root = schema.clone();
    if let Value::Object(m) = &mut root {
        m.insert("definitions".into(), contract().definitions.clone());
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .map_err(|e| format!("schema does not compile: {e}"))?;
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

/// Checks one response against the document; panics with the reason.
pub fn check(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &[u8]) {
    // The guide's form of a move, `POST .../bookings/{id}`, answers as `/move`.
    let aliased;
    let path = match (method, operation(method, path)) {
        ("POST", None) if path.contains("/bookings/") => {
            aliased = format!("{}/move", path.split('?').next().unwrap_or(path));
            aliased.as_str()
        }
        _ => path,
    };
    let Some((template, op)) = operation(method, path) else {
        // Not an operation of the document: only "Object not found" may answer.
        assert_eq!((status, content_type), (404, Some(ERROR)), "{method} {path}: no such operation in the document");
        let v: Value = serde_json::from_slice(body).expect("JSON error body");
        assert_eq!(v, json!({"errors": [], "message": "Object not found"}));
        return;
    };
    let what = format!("{method} {template} → {status}");
    if status == 401 {
        // OAuth's own errors (`{"error", "error_description"}`), per the security scheme.
        let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        assert!(v["error"].is_string(), "{what}: an OAuth error");
        return;
    }
    let documented = &op["responses"][status.to_string()];
    if documented.is_null() {
        assert!(GENERAL_ERRORS.contains(&status), "{what}: status not documented for this operation");
    }
    let content = documented.get("content").and_then(Value::as_object);
    match content {
        None if documented.is_object() => {
            assert!(body.is_empty(), "{what}: the document gives no body, got {}", String::from_utf8_lossy(body));
        }
        _ => {
            let expected = if status < 400 { SUCCESS } else { ERROR };
            assert_eq!(content_type, Some(expected), "{what}: content type");
            let v: Value = serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}: {}", String::from_utf8_lossy(body)));
            let schema = content
                .and_then(|c| c.get(expected))
                .map(|m| to_json_schema(&m["schema"]))
                .unwrap_or_else(|| json!({"$ref": "#/definitions/Error"}));
            // Field errors follow the document's 400 examples (see the module header).
            let (schema, v) = if status >= 400 && v["errors"].is_object() {
                let fields_ok = v["errors"]
                    .as_object()
                    .is_some_and(|m| m.values().all(|l| l.as_array().is_some_and(|a| a.iter().all(Value::is_string))));
                assert!(fields_ok, "{what}: field errors are lists of messages: {v}");
                (schema, json!({"errors": [], "message": v["message"]}))
            } else {
                (schema, v)
            };
            if let Err(e) = validate(&schema, &v) {
                panic!("{what}: the body does not match the document's schema: {e}\nbody: {v}");
            }
            // A pulled notification is also held to its own callback schema.
            match (template.as_str(), status) {
                ("/notifications", 200) => check_notification(&v),
                ("/notifications/multiple", 200) => {
                    v["notifications"].as_array().into_iter().flatten().for_each(check_notification)
                }
                _ => {}
            }
        }
    }
}

/// Checks a notification against the schema of its name (`slot-booked`:
/// `SlotBookedNotification`).
pub fn check_notification(n: &Value) {
    let name = n["name"].as_str().unwrap_or_default();
    let schema: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    check_schema(&format!("{schema}Notification"), n);
}

/// Checks an arbitrary value against a named component schema (for
/// notification bodies, which are requests the server makes).
pub fn check_schema(name: &str, value: &Value) {
    if let Err(e) = validate(&json!({"$ref": format!("#/definitions/{name}")}), value) {
        panic!("{name}: does not match the document's schema: {e}\nvalue: {value}");
    }
}

#[test]
fn the_contract_itself_rejects_what_it_should() {
    // A documented body passes; a wrong type, a missing operation and an
    // undocumented status do not.
    check("GET", "/facilities", 200, Some(SUCCESS), br#"{"_items": [{"id": "1", "name": "Clinic"}]}"#);
    let wrong = std::panic::catch_unwind(|| {
        check("GET", "/facilities", 200, Some(SUCCESS), br#"{"_items": [{"id": 1, "name": "Clinic"}]}"#)
    });
    assert!(wrong.is_err(), "an integer id is not the documented string");
    assert!(std::panic::catch_unwind(|| check("GET", "/nowhere", 200, Some(SUCCESS), b"{}")).is_err());
    check("GET", "/nowhere", 404, Some(ERROR), br#"{"errors": [], "message": "Object not found"}"#);
    assert!(std::panic::catch_unwind(|| check("GET", "/facilities", 500, Some(ERROR), b"{}")).is_err());
    // A status of the general errors section that the operation does not list.
    let bookings = "/facilities/1/doctors/2/addresses/3/bookings";
    let unlisted = br#"{"errors": [], "message": "Invalid date range"}"#;
    assert!(std::panic::catch_unwind(|| check("GET", bookings, 400, Some(ERROR), unlisted)).is_err());
    check("GET", bookings, 404, Some(ERROR), unlisted);
    check_schema("Slots", &json!({"_items": [{"start": "2020-12-16T14:00:00+01:00"}]}));
    assert!(std::panic::catch_unwind(|| check_schema("Slots", &json!({"_items": [{"start": "yesterday"}]}))).is_err());
}
