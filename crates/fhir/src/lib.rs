//! FHIR R4 helpers shared by the FHIR dialects (Embassy, Naboto, standard
//! FHIR): OperationOutcome, Bundle and Parameters shapes, media types, and the
//! FHIR XML form of a resource.
//!
//! Resources are built as `serde_json::Value` in FHIR's element order (the
//! workspace enables `serde_json`'s `preserve_order`), which is what both the
//! JSON output and the XML writer need.

pub mod xml;

use serde_json::{Value, json};

/// `application/fhir+json`.
pub const FHIR_JSON: &str = "application/fhir+json";
/// `application/fhir+xml`.
pub const FHIR_XML: &str = "application/fhir+xml";

/// A FHIR wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// The media type, with charset.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }
    }

    /// The format a media type names (`application/fhir+json`, `application/json`,
    /// `json`, `application/fhir+xml`, `application/xml`, `xml`), ignoring parameters.
    pub fn from_media_type(s: &str) -> Option<Format> {
        let base = s.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match base.as_str() {
            "application/fhir+json" | "application/json" | "json" | "application/json+fhir" => Some(Format::Json),
            "application/fhir+xml" | "application/xml" | "xml" | "text/xml" | "application/xml+fhir" => {
                Some(Format::Xml)
            }
            _ => None,
        }
    }

    /// Renders a resource in this format.
    pub fn render(self, resource: &Value) -> String {
        match self {
            Format::Json => resource.to_string(),
            Format::Xml => xml::to_xml(resource),
        }
    }
}

/// An OperationOutcome with one issue. `details_code` is the machine code a
/// dialect documents (Embassy's error codes), in `issue[0].details.coding[0].code`
/// and `details.text`-adjacent; `diagnostics` is the human message.
pub fn operation_outcome(severity: &str, issue_code: &str, details_code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": severity,
            "code": issue_code,
            "details": {
                "coding": [{"code": details_code}],
                "text": details_code
            },
            "diagnostics": diagnostics
        }]
    })
}

/// A `searchset` Bundle of resources.
pub fn searchset(resources: Vec<Value>, total: Option<usize>, links: Vec<(&str, String)>) -> Value {
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset"});
    if let Some(t) = total {
        bundle["total"] = json!(t);
    }
    if !links.is_empty() {
        bundle["link"] =
            Value::Array(links.into_iter().map(|(rel, url)| json!({"relation": rel, "url": url})).collect());
    }
    bundle["entry"] = Value::Array(resources.into_iter().map(|r| json!({"resource": r})).collect());
    bundle
}

/// One operation of a FHIR PATCH `Parameters` body: `type`, `path`, `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub value: Option<Value>,
    pub name: Option<String>,
}

/// Why a `Parameters` body could not be read as patch operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParametersError {
    #[error("the body is not a Parameters resource")]
    NotParameters,
    #[error("the Parameters resource has no parameter")]
    Empty,
    #[error("only parameters named `operation` are supported, found `{0}`")]
    NotOperation(String),
}

/// Reads the operations of a FHIR PATCH `Parameters` body. Each `part` is
/// `type` (valueCode), `path` (valueString), `name` and `value` (any `value[x]`).
pub fn patch_operations(body: &Value) -> Result<Vec<PatchOperation>, ParametersError> {
    if body.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(ParametersError::NotParameters);
    }
    let params =
        body.get("parameter").and_then(Value::as_array).filter(|p| !p.is_empty()).ok_or(ParametersError::Empty)?;
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        if name != "operation" {
            return Err(ParametersError::NotOperation(name.to_owned()));
        }
        let mut op = PatchOperation { kind: None, path: None, value: None, name: None };
        for part in p.get("part").and_then(Value::as_array).into_iter().flatten() {
            let value = value_x(part);
            match part.get("name").and_then(Value::as_str) {
                Some("type") => op.kind = value.and_then(|v| v.as_str().map(str::to_owned)),
                Some("path") => op.path = value.and_then(|v| v.as_str().map(str::to_owned)),
                Some("name") => op.name = value.and_then(|v| v.as_str().map(str::to_owned)),
                Some("value") => op.value = value.cloned(),
                _ => {}
            }
        }
        out.push(op);
    }
    Ok(out)
}

/// The `value[x]` of an element (the first property starting with `value`).
pub fn value_x(element: &Value) -> Option<&Value> {
    element.as_object()?.iter().find(|(k, _)| k.starts_with("value") && k.len() > 5).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_operations_are_read_from_parts() {
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
            {"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": "/status"},
            {"name": "value", "valueString": "off"}]}]});
        let ops = patch_operations(&body).unwrap();
        assert_eq!(ops[0].kind.as_deref(), Some("replace"));
        assert_eq!(ops[0].path.as_deref(), Some("/status"));
        assert_eq!(ops[0].value, Some(json!("off")));
        assert_eq!(
            patch_operations(&json!({"resourceType": "Parameters", "parameter": []})),
            Err(ParametersError::Empty)
        );
        assert_eq!(patch_operations(&json!({"resourceType": "Patient"})), Err(ParametersError::NotParameters));
        assert_eq!(
            patch_operations(&json!({"resourceType": "Parameters", "parameter": [{"name": "op"}]})),
            Err(ParametersError::NotOperation("op".into()))
        );
    }

    #[test]
    fn media_types() {
        assert_eq!(Format::from_media_type("application/fhir+xml; charset=utf-8"), Some(Format::Xml));
        assert_eq!(Format::from_media_type("application/json"), Some(Format::Json));
        assert_eq!(Format::from_media_type("text/html"), None);
    }
}
