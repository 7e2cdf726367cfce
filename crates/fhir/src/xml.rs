//! The FHIR XML form of a resource given as FHIR JSON
//! (<https://hl7.org/fhir/R4/xml.html>):
//!
//! - the root element is the `resourceType`, in the `http://hl7.org/fhir` namespace;
//! - a primitive is an element with a `value` attribute; its `_name` companion
//!   (id, extensions) becomes that element's content;
//! - an array is the element repeated;
//! - a nested resource (contained, `Bundle.entry.resource`, `Parameters.parameter.resource`)
//!   is wrapped in an element named after its `resourceType`;
//! - `url` of an extension and `id` of a non-resource element are attributes;
//! - `Narrative.div` (an XHTML string in JSON) is written as markup.
//!
//! Element order follows the JSON object's order, which the builders keep in
//! FHIR's defined order.

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use serde_json::{Map, Value};
use std::io::Cursor;

/// Writes `resource` (an object with `resourceType`) as FHIR XML.
pub fn to_xml(resource: &Value) -> String {
    let mut w = Writer::new(Cursor::new(Vec::new()));
    let _ = w.write_event(Event::Decl(quick_xml::events::BytesDecl::new("1.0", Some("UTF-8"), None)));
    if let Some(obj) = resource.as_object() {
        write_resource(&mut w, obj, true);
    }
    String::from_utf8(w.into_inner().into_inner()).unwrap_or_default()
}

type W = Writer<Cursor<Vec<u8>>>;

fn write_resource(w: &mut W, obj: &Map<String, Value>, root: bool) {
    let name = obj.get("resourceType").and_then(Value::as_str).unwrap_or("Resource");
    let mut start = BytesStart::new(name);
    if root {
        start.push_attribute(("xmlns", "http://hl7.org/fhir"));
    }
    let _ = w.write_event(Event::Start(start));
    write_children(w, obj, true);
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

fn write_children(w: &mut W, obj: &Map<String, Value>, is_resource: bool) {
    for (key, value) in obj {
        if key == "resourceType" || key.starts_with('_') {
            continue;
        }
        if !is_resource && key == "id" && value.is_string() {
            continue; // written as an attribute
        }
        if key == "url" && obj.contains_key("value") {
            continue;
        }
        let companion = obj.get(&format!("_{key}"));
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let extra = companion.and_then(|c| c.as_array()).and_then(|a| a.get(i));
                    write_element(w, key, item, extra);
                }
            }
            other => write_element(w, key, other, companion),
        }
    }
    // A primitive with only its `_name` companion (no value).
    for (key, companion) in obj {
        if let Some(base) = key.strip_prefix('_')
            && !obj.contains_key(base)
        {
            write_element(w, base, &Value::Null, Some(companion));
        }
    }
}

fn write_element(w: &mut W, name: &str, value: &Value, companion: Option<&Value>) {
    match value {
        Value::Object(obj) if obj.contains_key("resourceType") => {
            let _ = w.write_event(Event::Start(BytesStart::new(name)));
            write_resource(w, obj, false);
            let _ = w.write_event(Event::End(BytesEnd::new(name)));
        }
        Value::Object(obj) => {
            let mut start = BytesStart::new(name);
            if let Some(id) = obj.get("id").and_then(Value::as_str) {
                start.push_attribute(("id", id));
            }
            if (name == "extension" || name == "modifierExtension")
                && let Some(url) = obj.get("url").and_then(Value::as_str)
            {
                start.push_attribute(("url", url));
            }
            let mut children = obj.clone();
            if name == "extension" || name == "modifierExtension" {
                children.remove("url");
            }
            if children.keys().all(|k| k == "id") {
                let _ = w.write_event(Event::Empty(start));
            } else {
                let _ = w.write_event(Event::Start(start));
                write_children(w, &children, false);
                let _ = w.write_event(Event::End(BytesEnd::new(name)));
            }
        }
        Value::String(xhtml) if name == "div" => {
            // Narrative: the string is already XHTML; written as markup.
            let _ = w.write_event(Event::Text(BytesText::from_escaped(xhtml.as_str())));
        }
        primitive => {
            let mut start = BytesStart::new(name);
            if let Some(id) = companion.and_then(|c| c.get("id")).and_then(Value::as_str) {
                start.push_attribute(("id", id));
            }
            let text = match primitive {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            if let Some(t) = &text {
                start.push_attribute(("value", t.as_str()));
            }
            let extensions = companion.and_then(|c| c.get("extension")).and_then(Value::as_array);
            match extensions {
                Some(exts) if !exts.is_empty() => {
                    let _ = w.write_event(Event::Start(start));
                    for e in exts {
                        write_element(w, "extension", e, None);
                    }
                    let _ = w.write_event(Event::End(BytesEnd::new(name)));
                }
                _ => {
                    let _ = w.write_event(Event::Empty(start));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn primitives_arrays_extensions_and_nested_resources() {
        let bundle = json!({
            "resourceType": "Bundle",
            "id": "b1",
            "type": "history",
            "entry": [{
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "active",
                    "eventsSinceSubscriptionStart": "2",
                    "notificationEvent": [
                        {"eventNumber": "1", "focus": {"reference": "http://x/Appointment/1"}},
                        {"eventNumber": "2", "focus": {"reference": "http://x/Appointment/2"}}
                    ],
                    "topic": "http://x/SubscriptionTopic/1"
                }
            }],
            "meta": {"extension": [{"url": "http://e", "valueString": "a<b"}]}
        });
        let xml = to_xml(&bundle);
        assert!(
            xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Bundle xmlns=\"http://hl7.org/fhir\">"),
            "{xml}"
        );
        assert!(xml.contains("<id value=\"b1\"/><type value=\"history\"/>"), "{xml}");
        assert!(xml.contains("<entry><resource><SubscriptionStatus><status value=\"active\"/>"), "{xml}");
        assert_eq!(xml.matches("<notificationEvent>").count(), 2);
        assert!(xml.contains("<focus><reference value=\"http://x/Appointment/2\"/></focus>"), "{xml}");
        assert!(xml.contains("<extension url=\"http://e\"><valueString value=\"a&lt;b\"/></extension>"), "{xml}");
        assert!(xml.ends_with("</Bundle>"));
    }

    #[test]
    fn primitive_companions_carry_extensions() {
        let r = json!({"resourceType": "Subscription", "channel": {"payload": "application/fhir+json",
            "_payload": {"extension": [{"url": "http://c", "valueCode": "id-only"}]}}});
        let xml = to_xml(&r);
        assert!(
            xml.contains("<payload value=\"application/fhir+json\"><extension url=\"http://c\"><valueCode value=\"id-only\"/></extension></payload>"),
            "{xml}"
        );
    }
}
