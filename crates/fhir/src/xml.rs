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
//!
//! [`to_xml`] writes that form; [`from_xml`] reads it back into FHIR JSON.
//! XML alone does not say which elements are arrays (a repeating element that
//! occurs once looks like a single one) nor which `value` attributes are
//! booleans or numbers, so the reader carries a table of element definitions
//! (name, type, repeats or not) transcribed by hand from the FHIR R4
//! definitions (R4B for SubscriptionStatus and SubscriptionTopic): the
//! resources Polyclinic exchanges and every datatype they use. The table is
//! walked by type, so `Appointment.participant.actor` is read as a Reference
//! and `Patient.name.given` as HumanName's repeating `given`. An element the
//! table does not know is read as a single string or object unless it repeats,
//! in which case it becomes an array: nothing is dropped.
//!
//! The reader is meant for untrusted request bodies: input over
//! [`MAX_XML_BYTES`] or nested deeper than [`MAX_XML_DEPTH`] is refused before
//! it can cost much, a DOCTYPE is refused outright (so no entity can be
//! declared, let alone expanded), and every other problem is an [`XmlError`],
//! never a panic.

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};
use std::collections::HashMap;
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
                // Line breaks and tabs in attribute values would be read back
                // as spaces (XML attribute normalisation): write them as
                // character references.
                let escaped = quick_xml::escape::escape(t.as_str())
                    .replace('\n', "&#10;")
                    .replace('\r', "&#13;")
                    .replace('\t', "&#9;");
                start.push_attribute(quick_xml::events::attributes::Attribute {
                    key: quick_xml::name::QName(b"value"),
                    value: std::borrow::Cow::Owned(escaped.into_bytes()),
                });
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

// ---------------------------------------------------------------------------
// Reading FHIR XML
// ---------------------------------------------------------------------------

/// The largest document [`from_xml`] reads, in bytes (2 MiB).
pub const MAX_XML_BYTES: usize = 2 * 1024 * 1024;

/// The deepest element nesting [`from_xml`] reads; the root element is level 1.
/// Real resources stay well under it (a Bundle of resources with contained
/// resources and extensions on extensions is around 15), and it bounds the
/// reader's recursion.
pub const MAX_XML_DEPTH: usize = 64;

const FHIR_NS: &[u8] = b"http://hl7.org/fhir";
const XHTML_NS: &[u8] = b"http://www.w3.org/1999/xhtml";

/// Why FHIR XML could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document is larger than [`MAX_XML_BYTES`]; holds its size.
    #[error("the XML document is {0} bytes, more than the limit of {limit} bytes", limit = MAX_XML_BYTES)]
    TooLarge(usize),
    /// Elements are nested deeper than [`MAX_XML_DEPTH`].
    #[error("XML elements are nested more than {} levels deep", MAX_XML_DEPTH)]
    TooDeep,
    /// The document has a `<!DOCTYPE>`, which FHIR XML never has and which
    /// is where entities (and with them XXE and entity expansion) come from.
    #[error("DOCTYPE declarations are not allowed in FHIR XML (no DTDs or entities)")]
    Doctype,
    /// The input is not well-formed XML.
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    /// Well-formed XML, but its root is not a FHIR resource.
    #[error("not a FHIR resource: {0}")]
    NotFhir(String),
    /// A FHIR resource whose content breaks the FHIR XML rules; `path` is the
    /// dotted element path (`Appointment.participant.actor`).
    #[error("invalid FHIR XML at {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Reads a FHIR XML resource into FHIR JSON.
///
/// Properties come out in document order, repeating elements (per the FHIR
/// definitions) as arrays even when they occur once, boolean and number
/// primitives as JSON booleans and numbers, primitive ids and extensions as
/// `_name` companions, nested resources with their `resourceType`, and the
/// narrative `div` as a string of XHTML markup. `from_xml(&to_xml(&r)) == r`
/// for resources in FHIR's JSON form.
///
/// ```
/// let xml = r#"<Patient xmlns="http://hl7.org/fhir"><active value="true"/>
///     <name><given value="Kim"/></name></Patient>"#;
/// let json = polyclinic_fhir::xml::from_xml(xml).unwrap();
/// assert_eq!(json, serde_json::json!({"resourceType": "Patient", "active": true, "name": [{"given": ["Kim"]}]}));
/// ```
pub fn from_xml(xml: &str) -> Result<Value, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge(xml.len()));
    }
    // A byte order mark may precede the document; it is not content.
    let xml = xml.strip_prefix('\u{feff}').unwrap_or(xml);
    Parser::new(xml).document()
}

/// The namespace an element resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ns {
    Fhir,
    Xhtml,
    None,
    Other(String),
    /// A prefix with no `xmlns:prefix` declaration in scope.
    Undeclared(String),
}

impl Ns {
    fn of(resolved: &ResolveResult<'_>) -> Ns {
        match resolved {
            ResolveResult::Bound(ns) if ns.as_ref() == FHIR_NS => Ns::Fhir,
            ResolveResult::Bound(ns) if ns.as_ref() == XHTML_NS => Ns::Xhtml,
            ResolveResult::Bound(ns) => Ns::Other(String::from_utf8_lossy(ns.as_ref()).into_owned()),
            ResolveResult::Unbound => Ns::None,
            ResolveResult::Unknown(prefix) => Ns::Undeclared(String::from_utf8_lossy(prefix).into_owned()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Ns::Fhir => "in the FHIR namespace".into(),
            Ns::Xhtml => "in the XHTML namespace".into(),
            Ns::None => "in no namespace".into(),
            Ns::Other(uri) => format!("in the namespace `{uri}`"),
            Ns::Undeclared(prefix) => format!("prefixed with the undeclared `{prefix}:`"),
        }
    }
}

/// A start tag (`<x ...>` or `<x .../>`) just read.
struct Tag<'a> {
    ns: Ns,
    name: String,
    start: BytesStart<'a>,
    /// `<x/>`: there is no content and no end tag to read.
    empty: bool,
}

/// The attributes FHIR XML uses. Namespace declarations and other qualified
/// attributes (`xsi:schemaLocation`) carry no FHIR data and are skipped.
#[derive(Default)]
struct Attrs {
    value: Option<String>,
    id: Option<String>,
    url: Option<String>,
}

impl Attrs {
    fn any(&self) -> bool {
        self.value.is_some() || self.id.is_some() || self.url.is_some()
    }
}

/// One occurrence of an element: its JSON value (`Null` for a primitive with
/// extensions only) and, for a primitive, its `_name` companion.
struct Item {
    value: Value,
    extras: Option<Map<String, Value>>,
}

impl Item {
    fn plain(value: Value) -> Item {
        Item { value, extras: None }
    }
}

/// How a property of an object under construction becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// From an XML attribute (`resourceType`, `url`, `id`): exactly one value.
    Attribute,
    /// Defined as 0..1 / 1..1: a second occurrence is an error.
    One,
    /// Defined as 0..*: always an array.
    Many,
    /// Not in the table: single, or an array if it repeats.
    Open,
}

struct Field {
    name: String,
    shape: Shape,
    items: Vec<Item>,
}

/// A JSON object being read, keeping the XML's order of first occurrence.
#[derive(Default)]
struct Obj {
    fields: Vec<Field>,
    index: HashMap<String, usize>,
}

impl Obj {
    fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    fn attribute(&mut self, name: &str, value: Value) {
        self.index.insert(name.to_owned(), self.fields.len());
        self.fields.push(Field { name: name.to_owned(), shape: Shape::Attribute, items: vec![Item::plain(value)] });
    }

    /// Adds an occurrence of element `name`; `Err` holds the reason it cannot be.
    fn push(&mut self, name: &str, item: Item, found: Found) -> Result<(), String> {
        if let Some(field) = self.index.get(name).and_then(|&i| self.fields.get_mut(i)) {
            return match field.shape {
                Shape::Attribute => Err(format!("<{name}> clashes with the `{name}` attribute")),
                Shape::One => Err(format!("<{name}> occurs more than once, but FHIR allows at most one here")),
                Shape::Many | Shape::Open => {
                    field.items.push(item);
                    Ok(())
                }
            };
        }
        let shape = match found {
            Found { many: true, .. } => Shape::Many,
            Found { strict: true, .. } => Shape::One,
            _ => Shape::Open,
        };
        self.index.insert(name.to_owned(), self.fields.len());
        self.fields.push(Field { name: name.to_owned(), shape, items: vec![item] });
        Ok(())
    }

    fn into_value(self) -> Value {
        let mut map = Map::new();
        for Field { name, shape, items } in self.fields {
            if shape == Shape::Attribute {
                for item in items {
                    map.insert(name.clone(), item.value);
                }
                continue;
            }
            if shape == Shape::Many || items.len() > 1 {
                // Repeating primitives keep their `_name` array aligned by index,
                // with `null` where one has no id/extensions or no value.
                let has_extras = items.iter().any(|i| i.extras.is_some());
                let (values, extras): (Vec<Value>, Vec<Value>) =
                    items.into_iter().map(|i| (i.value, i.extras.map_or(Value::Null, Value::Object))).unzip();
                map.insert(name.clone(), Value::Array(values));
                if has_extras {
                    map.insert(format!("_{name}"), Value::Array(extras));
                }
            } else if let Some(item) = items.into_iter().next() {
                if !item.value.is_null() {
                    map.insert(name.clone(), item.value);
                }
                if let Some(extras) = item.extras {
                    map.insert(format!("_{name}"), Value::Object(extras));
                }
            }
        }
        Value::Object(map)
    }
}

struct Parser<'a> {
    reader: NsReader<&'a [u8]>,
    input: &'a str,
    /// Where the event last read starts; for an element, its `<`.
    event_start: u64,
    /// The element path, for error messages.
    path: Vec<String>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Parser<'a> {
        let mut reader = NsReader::from_str(input);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        Parser { reader, input, event_start: 0, path: Vec::new() }
    }

    fn next(&mut self) -> Result<(Ns, Event<'a>), XmlError> {
        self.event_start = self.reader.buffer_position();
        match self.reader.read_resolved_event() {
            Ok((ns, event)) => Ok((Ns::of(&ns), event)),
            Err(e) => {
                let message = e.to_string();
                Err(XmlError::Malformed { position: self.reader.error_position(), message })
            }
        }
    }

    fn malformed(&self, message: impl Into<String>) -> XmlError {
        XmlError::Malformed { position: self.event_start, message: message.into() }
    }

    fn invalid(&self, message: impl Into<String>) -> XmlError {
        XmlError::Invalid { path: self.path.join("."), message: message.into() }
    }

    /// The next start tag of an element's content, or `None` at its end tag.
    /// Whitespace, comments and processing instructions between elements are
    /// skipped; text is refused, as FHIR has none outside the narrative.
    fn next_tag(&mut self) -> Result<Option<Tag<'a>>, XmlError> {
        loop {
            let (ns, event) = self.next()?;
            let (start, empty) = match event {
                Event::Start(start) => (start, false),
                Event::Empty(start) => (start, true),
                Event::End(_) => return Ok(None),
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Text(text) if is_blank(&text) => continue,
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(self.invalid(
                        "text content is not allowed in FHIR XML \
                         (values go in `value` attributes; only the narrative <div> holds text)",
                    ));
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Decl(_) => return Err(self.malformed("an XML declaration is only allowed at the very start")),
                Event::Eof => {
                    return Err(self.malformed(format!("the document ends inside <{}>", self.path.join("."))));
                }
            };
            let name = std::str::from_utf8(start.local_name().as_ref())
                .map_err(|_| self.malformed("an element name is not valid UTF-8"))?
                .to_owned();
            return Ok(Some(Tag { ns, name, start, empty }));
        }
    }

    /// What may surround the root element: the declaration (first only),
    /// whitespace, comments and processing instructions.
    fn outside_root(&self, event: Event<'_>, first: bool, place: &str) -> Result<(), XmlError> {
        match event {
            Event::Decl(_) if first => Ok(()),
            Event::Decl(_) => Err(self.malformed("an XML declaration is only allowed at the very start")),
            Event::Comment(_) | Event::PI(_) => Ok(()),
            Event::Text(text) if is_blank(&text) => Ok(()),
            Event::DocType(_) => Err(XmlError::Doctype),
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => Err(self.malformed(format!("text {place}"))),
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof => {
                Err(self.malformed(format!("unexpected markup {place}")))
            }
        }
    }

    fn document(&mut self) -> Result<Value, XmlError> {
        let mut first = true;
        let root = loop {
            let (ns, event) = self.next()?;
            match event {
                Event::Start(start) => break (ns, start, false),
                Event::Empty(start) => break (ns, start, true),
                Event::Eof => return Err(XmlError::NotFhir("the document has no root element".into())),
                other => self.outside_root(other, first, "before the root element")?,
            }
            first = false;
        };
        let (ns, start, empty) = root;
        let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
        if ns != Ns::Fhir {
            return Err(XmlError::NotFhir(format!(
                "the root element <{name}> is {}, not in the FHIR namespace http://hl7.org/fhir",
                ns.describe()
            )));
        }
        if !is_resource_name(&name) {
            return Err(XmlError::NotFhir(format!("the root element <{name}> is not a FHIR resource type")));
        }
        let resource = self.resource(Tag { ns, name, start, empty }, 1)?;
        loop {
            match self.next()?.1 {
                Event::Eof => return Ok(resource),
                other => self.outside_root(other, false, "after the root element")?,
            }
        }
    }

    /// A resource element (`<Patient>`): its content, with `resourceType` first.
    fn resource(&mut self, tag: Tag<'a>, depth: usize) -> Result<Value, XmlError> {
        self.path.push(tag.name.clone());
        if self.attributes(&tag.start)?.any() {
            return Err(
                self.invalid("a resource element takes no id, value or url attribute (its id is an <id> child)")
            );
        }
        let mut obj = Obj::default();
        obj.attribute("resourceType", Value::String(tag.name.clone()));
        if !tag.empty {
            self.complex_body(Ty::Resource(known_resource(&tag.name)), &mut obj, depth)?;
        }
        self.path.pop();
        Ok(obj.into_value())
    }

    /// The children of a resource or complex element, added to `obj`. If the
    /// content is a resource (`<contained><Patient>…`), returns it instead.
    fn complex_body(&mut self, ty: Ty, obj: &mut Obj, depth: usize) -> Result<Option<Value>, XmlError> {
        let mut nested = None;
        while let Some(tag) = self.next_tag()? {
            let depth = depth + 1;
            if depth > MAX_XML_DEPTH {
                return Err(XmlError::TooDeep);
            }
            if nested.is_some() {
                return Err(self
                    .invalid(format!("<{}> follows a resource, which must be its element's only content", tag.name)));
            }
            if tag.ns == Ns::Fhir && is_resource_name(&tag.name) {
                // Resources are only ever wrapped (`contained`, `entry.resource`, ...), one per element.
                if matches!(ty, Ty::Resource(_)) {
                    return Err(self.invalid(format!(
                        "resource <{}> cannot sit directly in a resource; \
                         FHIR nests resources in <contained> or a similar element",
                        tag.name
                    )));
                }
                if !obj.is_empty() {
                    return Err(self.invalid(format!("resource <{}> must be its element's only content", tag.name)));
                }
                nested = Some(self.resource(tag, depth)?);
                continue;
            }
            self.child(ty, obj, tag, depth)?;
        }
        Ok(nested)
    }

    /// A child element of an object of type `parent`.
    fn child(&mut self, parent: Ty, obj: &mut Obj, tag: Tag<'a>, depth: usize) -> Result<(), XmlError> {
        let name = tag.name.clone();
        if tag.ns == Ns::Xhtml && name == "div" {
            let markup = self.xhtml(tag.empty, depth)?;
            let found = Found { ty: Ty::Type("xhtml"), many: false, strict: true };
            return obj.push(&name, Item::plain(Value::String(markup)), found).map_err(|m| self.invalid(m));
        }
        if tag.ns != Ns::Fhir {
            return Err(self.invalid(format!("element <{name}> is {}, not in the FHIR namespace", tag.ns.describe())));
        }
        if name.starts_with('_') || name == "resourceType" {
            // Would collide with a `_name` companion or the resource type in JSON.
            return Err(self.invalid(format!("<{name}> is not a FHIR element name")));
        }
        let found = lookup(parent, &name);
        self.path.push(name.clone());
        let item = self.element(found, tag, depth)?;
        self.path.pop();
        obj.push(&name, item, found).map_err(|m| self.invalid(m))
    }

    /// One element, read according to its (looked-up) type.
    fn element(&mut self, found: Found, tag: Tag<'a>, depth: usize) -> Result<Item, XmlError> {
        let attrs = self.attributes(&tag.start)?;
        let is_extension = tag.name == "extension" || tag.name == "modifierExtension";
        if attrs.url.is_some() && !is_extension {
            return Err(self.invalid("only <extension> and <modifierExtension> take a url attribute"));
        }
        match found.ty {
            Ty::Type("xhtml") => {
                Err(self.invalid("the narrative <div> must be in the XHTML namespace http://www.w3.org/1999/xhtml"))
            }
            Ty::Type("Resource") => self.wrapper(&attrs, tag.empty, depth),
            Ty::Type(ty) if is_primitive(ty) => self.primitive(ty, found.strict, attrs, tag.empty, depth),
            // A type that was only guessed gives way to what the XML shows: a value attribute makes a primitive.
            Ty::Unknown | Ty::Type(_) if !found.strict && attrs.value.is_some() => {
                self.primitive("string", false, attrs, tag.empty, depth)
            }
            ty => self.complex(ty, is_extension, attrs, tag.empty, depth),
        }
    }

    /// An element holding a resource (`contained`, `Bundle.entry.resource`, ...).
    fn wrapper(&mut self, attrs: &Attrs, empty: bool, depth: usize) -> Result<Item, XmlError> {
        if attrs.any() {
            return Err(self.invalid("an element holding a resource takes no attributes"));
        }
        let mut obj = Obj::default();
        let nested = if empty { None } else { self.complex_body(Ty::Unknown, &mut obj, depth)? };
        match nested {
            Some(resource) => Ok(Item::plain(resource)),
            None => Err(self.invalid("expected a resource element (such as <Patient>) here")),
        }
    }

    fn complex(
        &mut self,
        ty: Ty,
        is_extension: bool,
        attrs: Attrs,
        empty: bool,
        depth: usize,
    ) -> Result<Item, XmlError> {
        if attrs.value.is_some() {
            return Err(self.invalid(format!("an element of type {} takes no value attribute", ty.name())));
        }
        let mut obj = Obj::default();
        if is_extension {
            // FHIR JSON puts an extension's url first.
            let Some(url) = attrs.url else {
                return Err(self.invalid("an extension needs a url attribute"));
            };
            obj.attribute("url", Value::String(url));
        }
        if let Some(id) = attrs.id {
            obj.attribute("id", Value::String(id));
        }
        if !empty && let Some(resource) = self.complex_body(ty, &mut obj, depth)? {
            // Only an element the table knows nothing about may turn out to hold a resource.
            if ty != Ty::Unknown {
                return Err(self.invalid(format!("an element of type {} cannot hold a resource", ty.name())));
            }
            return Ok(Item::plain(resource));
        }
        Ok(Item::plain(obj.into_value()))
    }

    /// A primitive of FHIR type `ty`: the typed `value` attribute, and the
    /// `id` attribute and `<extension>` children as its `_name` companion.
    /// `strict` (the type comes from the table) makes an ill-typed value an
    /// error; a guessed type falls back to a string.
    fn primitive(&mut self, ty: &str, strict: bool, attrs: Attrs, empty: bool, depth: usize) -> Result<Item, XmlError> {
        let extensions = if empty { Vec::new() } else { self.primitive_body(depth)? };
        let value = match &attrs.value {
            Some(raw) => typed_value(ty, raw, strict).map_err(|m| self.invalid(m))?,
            None => Value::Null,
        };
        if value.is_null() && extensions.is_empty() {
            return Err(self.invalid("a primitive element needs a value attribute, extensions, or both"));
        }
        let mut extras = Map::new();
        if let Some(id) = attrs.id {
            extras.insert("id".into(), Value::String(id));
        }
        if !extensions.is_empty() {
            extras.insert("extension".into(), Value::Array(extensions));
        }
        Ok(Item { value, extras: (!extras.is_empty()).then_some(extras) })
    }

    /// A primitive's content: only `<extension>` elements.
    fn primitive_body(&mut self, depth: usize) -> Result<Vec<Value>, XmlError> {
        let mut extensions = Vec::new();
        while let Some(tag) = self.next_tag()? {
            let depth = depth + 1;
            if depth > MAX_XML_DEPTH {
                return Err(XmlError::TooDeep);
            }
            if tag.ns != Ns::Fhir || tag.name != "extension" {
                return Err(
                    self.invalid(format!("a primitive element can only contain <extension>, not <{}>", tag.name))
                );
            }
            self.path.push(tag.name.clone());
            let found = Found { ty: Ty::Type("Extension"), many: true, strict: true };
            let item = self.element(found, tag, depth)?;
            self.path.pop();
            extensions.push(item.value);
        }
        Ok(extensions)
    }

    /// The narrative `<div>` just started (at `self.event_start`), as the
    /// markup it is written in: FHIR JSON holds the div as an XHTML string.
    fn xhtml(&mut self, empty: bool, depth: usize) -> Result<String, XmlError> {
        let begin = self.event_start;
        let mut open = usize::from(!empty);
        while open > 0 {
            match self.next()?.1 {
                Event::Start(_) => {
                    open += 1;
                    if depth + open - 1 > MAX_XML_DEPTH {
                        return Err(XmlError::TooDeep);
                    }
                }
                Event::End(_) => open -= 1,
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Decl(_) => return Err(self.malformed("an XML declaration is only allowed at the very start")),
                Event::Eof => return Err(self.malformed("the document ends inside the narrative <div>")),
                _ => {}
            }
        }
        let end = self.reader.buffer_position();
        usize::try_from(begin)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(begin, end)| self.input.get(begin..end))
            .map(str::to_owned)
            .ok_or_else(|| self.malformed("could not delimit the narrative <div>"))
    }

    fn attributes(&self, start: &BytesStart<'_>) -> Result<Attrs, XmlError> {
        let mut attrs = Attrs::default();
        for attr in start.attributes() {
            let attr = attr.map_err(|e| self.malformed(e.to_string()))?;
            if attr.key.as_namespace_binding().is_some() || attr.key.prefix().is_some() {
                continue;
            }
            let slot = match attr.key.local_name().as_ref() {
                b"value" => &mut attrs.value,
                b"id" => &mut attrs.id,
                b"url" => &mut attrs.url,
                other => {
                    return Err(self.invalid(format!(
                        "unexpected attribute `{}` (FHIR XML uses only value, id and url)",
                        String::from_utf8_lossy(other)
                    )));
                }
            };
            let value =
                attr.decode_and_unescape_value(self.reader.decoder()).map_err(|e| self.malformed(e.to_string()))?;
            *slot = Some(value.into_owned());
        }
        Ok(attrs)
    }
}

/// XML whitespace only (what pretty-printing puts between elements).
fn is_blank(text: &BytesText<'_>) -> bool {
    text.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Resource types start with a capital letter; element names never do.
fn is_resource_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
}

/// FHIR primitive types are the lower-case ones (`string`, `dateTime`, ...).
fn is_primitive(ty: &str) -> bool {
    ty.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The JSON value of primitive `raw` of FHIR type `ty`.
fn typed_value(ty: &str, raw: &str, strict: bool) -> Result<Value, String> {
    let typed = match ty {
        "boolean" => match raw.trim() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("`{raw}` is not a boolean (true or false)")),
        },
        "integer" | "unsignedInt" | "positiveInt" => parse_integer(ty, raw),
        "decimal" => serde_json::from_str::<serde_json::Number>(raw.trim())
            .map(Value::Number)
            .map_err(|_| format!("`{raw}` is not a decimal")),
        _ => Ok(Value::String(raw.to_owned())),
    };
    match typed {
        Err(_) if !strict => Ok(Value::String(raw.to_owned())),
        other => other,
    }
}

/// FHIR integers are 32-bit, written without `+` or leading zeros.
fn parse_integer(ty: &str, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    let min = match ty {
        "unsignedInt" => 0,
        "positiveInt" => 1,
        _ => i64::from(i32::MIN),
    };
    match text.parse::<i64>() {
        Ok(n) if canonical && (min..=i64::from(i32::MAX)).contains(&n) => Ok(Value::from(n)),
        _ => Err(format!("`{raw}` is not a valid {ty}")),
    }
}

// ---------------------------------------------------------------------------
// Element definitions
// ---------------------------------------------------------------------------

/// The type of an element being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// A resource; `None` for a resource type the table does not cover, of
    /// which only the elements every resource has are known.
    Resource(Option<&'static str>),
    /// A datatype (`HumanName`), a backbone element by path
    /// (`Appointment.participant`), a primitive (`dateTime`), `Resource` for
    /// an element wrapping a resource, or `xhtml` for the narrative.
    Type(&'static str),
    /// Nothing is known about the element.
    Unknown,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Resource(name) => name.unwrap_or("Resource"),
            Ty::Type(name) => name,
            Ty::Unknown => "unknown",
        }
    }
}

/// What the table says about a child element.
#[derive(Debug, Clone, Copy)]
struct Found {
    ty: Ty,
    many: bool,
    /// The element is defined in the table (not guessed): a second
    /// occurrence of a single element, or a mistyped value, is an error.
    strict: bool,
}

/// The maximum cardinality of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Max {
    One,
    Many,
}
use Max::{Many, One};

/// An element definition: name (`value[x]` for a choice), type (`a|b|c` for
/// the types a choice allows, `*` for any datatype), and cardinality.
type Def = (&'static str, &'static str, Max);

/// The type of child `name` of an element of type `parent`.
fn lookup(parent: Ty, name: &str) -> Found {
    let (own, base): (&[Def], &[Def]) = match parent {
        Ty::Resource(Some(resource)) => (definitions(resource), RESOURCE_BASE),
        Ty::Resource(None) => (&[], RESOURCE_BASE),
        Ty::Type(ty) => (definitions(ty), ELEMENT_BASE),
        Ty::Unknown => (&[], &[]),
    };
    own.iter()
        .chain(base)
        .find_map(|&(def, ty, max)| {
            let ty = match def.strip_suffix("[x]") {
                Some(prefix) => choice_type(name.strip_prefix(prefix)?, ty)?,
                None if def == name => ty,
                None => return None,
            };
            Some(Found { ty: Ty::Type(ty), many: max == Many, strict: true })
        })
        .unwrap_or_else(|| guess(name))
}

/// The type a choice element's name suffix (`Quantity` of `valueQuantity`)
/// names, if `allowed` (`a|b`, or `*` for any) admits it.
fn choice_type(suffix: &str, allowed: &'static str) -> Option<&'static str> {
    let names_type = |ty: &&'static str| {
        let (Some((t, t_rest)), Some((s, s_rest))) = (ty.as_bytes().split_first(), suffix.as_bytes().split_first())
        else {
            return false;
        };
        t.to_ascii_uppercase() == *s && t_rest == s_rest
    };
    if allowed == "*" { OPEN_TYPES.iter().copied().find(names_type) } else { allowed.split('|').find(names_type) }
}

/// What can be said of an element the table does not define (an unknown
/// resource, or an unknown element's content): names that mean the same
/// everywhere, and choice elements, whose names end in their type.
fn guess(name: &str) -> Found {
    let (ty, many) = match name {
        "extension" | "modifierExtension" => (Ty::Type("Extension"), true),
        "identifier" => (Ty::Type("Identifier"), true),
        "coding" => (Ty::Type("Coding"), true),
        "contained" => (Ty::Type("Resource"), true),
        "meta" => (Ty::Type("Meta"), false),
        // Common booleans and numbers whose names do not say so.
        "active" | "experimental" | "userSelected" | "preferred" | "allDay" | "abstract" | "inactive" => {
            (Ty::Type("boolean"), false)
        }
        "rank" | "total" | "minutesDuration" => (Ty::Type("integer"), false),
        _ => {
            let suffixed = name
                .char_indices()
                .filter(|&(i, c)| i > 0 && c.is_ascii_uppercase())
                .find_map(|(i, _)| name.get(i..).and_then(|suffix| choice_type(suffix, "*")));
            (suffixed.map_or(Ty::Unknown, Ty::Type), false)
        }
    };
    Found { ty, many, strict: false }
}

/// The resource types the table defines.
fn known_resource(name: &str) -> Option<&'static str> {
    RESOURCES.iter().copied().find(|&r| r == name)
}

const RESOURCES: &[&str] = &[
    "Appointment",
    "Bundle",
    "CodeSystem",
    "Communication",
    "CommunicationRequest",
    "Endpoint",
    "HealthcareService",
    "Location",
    "OperationOutcome",
    "Organization",
    "Parameters",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "RelatedPerson",
    "Schedule",
    "Slot",
    "Subscription",
    "SubscriptionStatus",
    "SubscriptionTopic",
];

/// The datatypes a `value[x]` of any type may be (R4's open type list, plus
/// R4B's CodeableReference and RatioRange).
const OPEN_TYPES: &[&str] = &[
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "CodeableReference",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "RatioRange",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
];

/// Resource and DomainResource: what every resource may have. (Bundle and
/// Parameters are not DomainResources; accepting `text` and friends there is
/// harmless.)
const RESOURCE_BASE: &[Def] = &[
    ("id", "id", One),
    ("meta", "Meta", One),
    ("implicitRules", "uri", One),
    ("language", "code", One),
    ("text", "Narrative", One),
    ("contained", "Resource", Many),
    ("extension", "Extension", Many),
    ("modifierExtension", "Extension", Many),
];

/// Element and BackboneElement (`id` is an attribute in XML).
const ELEMENT_BASE: &[Def] = &[("extension", "Extension", Many), ("modifierExtension", "Extension", Many)];

/// The elements a type defines, beyond those of Resource or Element.
#[rustfmt::skip]
fn definitions(ty: &str) -> &'static [Def] {
    match ty {
        // --- Datatypes -----------------------------------------------------
        "Identifier" => &[
            ("use", "code", One), ("type", "CodeableConcept", One), ("system", "uri", One),
            ("value", "string", One), ("period", "Period", One), ("assigner", "Reference", One),
        ],
        "HumanName" => &[
            ("use", "code", One), ("text", "string", One), ("family", "string", One), ("given", "string", Many),
            ("prefix", "string", Many), ("suffix", "string", Many), ("period", "Period", One),
        ],
        "ContactPoint" => &[
            ("system", "code", One), ("value", "string", One), ("use", "code", One),
            ("rank", "positiveInt", One), ("period", "Period", One),
        ],
        "Address" => &[
            ("use", "code", One), ("type", "code", One), ("text", "string", One), ("line", "string", Many),
            ("city", "string", One), ("district", "string", One), ("state", "string", One),
            ("postalCode", "string", One), ("country", "string", One), ("period", "Period", One),
        ],
        "CodeableConcept" => &[("coding", "Coding", Many), ("text", "string", One)],
        "CodeableReference" => &[("concept", "CodeableConcept", One), ("reference", "Reference", One)],
        "Coding" => &[
            ("system", "uri", One), ("version", "string", One), ("code", "code", One),
            ("display", "string", One), ("userSelected", "boolean", One),
        ],
        // Reference.identifier is the one single `identifier` among the datatypes.
        "Reference" => &[
            ("reference", "string", One), ("type", "uri", One), ("identifier", "Identifier", One),
            ("display", "string", One),
        ],
        "Period" => &[("start", "dateTime", One), ("end", "dateTime", One)],
        "Money" => &[("value", "decimal", One), ("currency", "code", One)],
        "Quantity" | "Age" | "Count" | "Distance" | "Duration" | "SimpleQuantity" | "MoneyQuantity" => &[
            ("value", "decimal", One), ("comparator", "code", One), ("unit", "string", One),
            ("system", "uri", One), ("code", "code", One),
        ],
        "Range" => &[("low", "Quantity", One), ("high", "Quantity", One)],
        "Ratio" => &[("numerator", "Quantity", One), ("denominator", "Quantity", One)],
        "RatioRange" => &[
            ("lowNumerator", "Quantity", One), ("highNumerator", "Quantity", One), ("denominator", "Quantity", One),
        ],
        "SampledData" => &[
            ("origin", "Quantity", One), ("period", "decimal", One), ("factor", "decimal", One),
            ("lowerLimit", "decimal", One), ("upperLimit", "decimal", One), ("dimensions", "positiveInt", One),
            ("data", "string", One),
        ],
        "Attachment" => &[
            ("contentType", "code", One), ("language", "code", One), ("data", "base64Binary", One),
            ("url", "url", One), ("size", "unsignedInt", One), ("hash", "base64Binary", One),
            ("title", "string", One), ("creation", "dateTime", One),
        ],
        "Annotation" => &[("author[x]", "Reference|string", One), ("time", "dateTime", One), ("text", "markdown", One)],
        "Signature" => &[
            ("type", "Coding", Many), ("when", "instant", One), ("who", "Reference", One),
            ("onBehalfOf", "Reference", One), ("targetFormat", "code", One), ("sigFormat", "code", One),
            ("data", "base64Binary", One),
        ],
        "Timing" => &[("event", "dateTime", Many), ("repeat", "Timing.repeat", One), ("code", "CodeableConcept", One)],
        "Timing.repeat" => &[
            ("bounds[x]", "Duration|Range|Period", One), ("count", "positiveInt", One),
            ("countMax", "positiveInt", One), ("duration", "decimal", One), ("durationMax", "decimal", One),
            ("durationUnit", "code", One), ("frequency", "positiveInt", One), ("frequencyMax", "positiveInt", One),
            ("period", "decimal", One), ("periodMax", "decimal", One), ("periodUnit", "code", One),
            ("dayOfWeek", "code", Many), ("timeOfDay", "time", Many), ("when", "code", Many),
            ("offset", "unsignedInt", One),
        ],
        "Meta" => &[
            ("versionId", "id", One), ("lastUpdated", "instant", One), ("source", "uri", One),
            ("profile", "canonical", Many), ("security", "Coding", Many), ("tag", "Coding", Many),
        ],
        "Narrative" => &[("status", "code", One), ("div", "xhtml", One)],
        // `url` is an attribute.
        "Extension" => &[("value[x]", "*", One)],
        "ContactDetail" => &[("name", "string", One), ("telecom", "ContactPoint", Many)],
        "UsageContext" => &[("code", "Coding", One), ("value[x]", "CodeableConcept|Quantity|Range|Reference", One)],
        "Expression" => &[
            ("description", "string", One), ("name", "id", One), ("language", "code", One),
            ("expression", "string", One), ("reference", "uri", One),
        ],
        "RelatedArtifact" => &[
            ("type", "code", One), ("label", "string", One), ("display", "string", One),
            ("citation", "markdown", One), ("url", "url", One), ("document", "Attachment", One),
            ("resource", "canonical", One),
        ],
        "Contributor" => &[("type", "code", One), ("name", "string", One), ("contact", "ContactDetail", Many)],
        "ParameterDefinition" => &[
            ("name", "code", One), ("use", "code", One), ("min", "integer", One), ("max", "string", One),
            ("documentation", "string", One), ("type", "code", One), ("profile", "canonical", One),
        ],
        "DataRequirement" => &[
            ("type", "code", One), ("profile", "canonical", Many), ("subject[x]", "CodeableConcept|Reference", One),
            ("mustSupport", "string", Many), ("codeFilter", "DataRequirement.codeFilter", Many),
            ("dateFilter", "DataRequirement.dateFilter", Many), ("limit", "positiveInt", One),
            ("sort", "DataRequirement.sort", Many),
        ],
        "DataRequirement.codeFilter" => &[
            ("path", "string", One), ("searchParam", "string", One), ("valueSet", "canonical", One),
            ("code", "Coding", Many),
        ],
        "DataRequirement.dateFilter" => &[
            ("path", "string", One), ("searchParam", "string", One), ("value[x]", "dateTime|Period|Duration", One),
        ],
        "DataRequirement.sort" => &[("path", "string", One), ("direction", "code", One)],
        "TriggerDefinition" => &[
            ("type", "code", One), ("name", "string", One), ("timing[x]", "Timing|Reference|date|dateTime", One),
            ("data", "DataRequirement", Many), ("condition", "Expression", One),
        ],
        "Dosage" => &[
            ("sequence", "integer", One), ("text", "string", One), ("additionalInstruction", "CodeableConcept", Many),
            ("patientInstruction", "string", One), ("timing", "Timing", One),
            ("asNeeded[x]", "boolean|CodeableConcept", One), ("site", "CodeableConcept", One),
            ("route", "CodeableConcept", One), ("method", "CodeableConcept", One),
            ("doseAndRate", "Dosage.doseAndRate", Many), ("maxDosePerPeriod", "Ratio", One),
            ("maxDosePerAdministration", "Quantity", One), ("maxDosePerLifetime", "Quantity", One),
        ],
        "Dosage.doseAndRate" => &[
            ("type", "CodeableConcept", One), ("dose[x]", "Range|Quantity", One),
            ("rate[x]", "Ratio|Range|Quantity", One),
        ],

        // --- Appointment -----------------------------------------------------
        "Appointment" => &[
            ("identifier", "Identifier", Many), ("status", "code", One),
            ("cancelationReason", "CodeableConcept", One), ("serviceCategory", "CodeableConcept", Many),
            ("serviceType", "CodeableConcept", Many), ("specialty", "CodeableConcept", Many),
            // A single CodeableConcept, unlike participant.type.
            ("appointmentType", "CodeableConcept", One), ("reasonCode", "CodeableConcept", Many),
            ("reasonReference", "Reference", Many), ("priority", "unsignedInt", One),
            ("description", "string", One), ("supportingInformation", "Reference", Many),
            ("start", "instant", One), ("end", "instant", One), ("minutesDuration", "positiveInt", One),
            ("slot", "Reference", Many), ("created", "dateTime", One), ("comment", "string", One),
            ("patientInstruction", "string", One), ("basedOn", "Reference", Many),
            ("participant", "Appointment.participant", Many), ("requestedPeriod", "Period", Many),
        ],
        "Appointment.participant" => &[
            ("type", "CodeableConcept", Many), ("actor", "Reference", One), ("required", "code", One),
            ("status", "code", One), ("period", "Period", One),
        ],

        // --- Patient, RelatedPerson, Practitioner, PractitionerRole ----------
        "Patient" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("name", "HumanName", Many),
            ("telecom", "ContactPoint", Many), ("gender", "code", One), ("birthDate", "date", One),
            ("deceased[x]", "boolean|dateTime", One), ("address", "Address", Many),
            ("maritalStatus", "CodeableConcept", One), ("multipleBirth[x]", "boolean|integer", One),
            ("photo", "Attachment", Many), ("contact", "Patient.contact", Many),
            ("communication", "Patient.communication", Many), ("generalPractitioner", "Reference", Many),
            ("managingOrganization", "Reference", One), ("link", "Patient.link", Many),
        ],
        "Patient.contact" => &[
            ("relationship", "CodeableConcept", Many), ("name", "HumanName", One),
            ("telecom", "ContactPoint", Many), ("address", "Address", One), ("gender", "code", One),
            ("organization", "Reference", One), ("period", "Period", One),
        ],
        "Patient.communication" | "RelatedPerson.communication" => &[
            ("language", "CodeableConcept", One), ("preferred", "boolean", One),
        ],
        "Patient.link" => &[("other", "Reference", One), ("type", "code", One)],
        "RelatedPerson" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("patient", "Reference", One),
            ("relationship", "CodeableConcept", Many), ("name", "HumanName", Many),
            ("telecom", "ContactPoint", Many), ("gender", "code", One), ("birthDate", "date", One),
            ("address", "Address", Many), ("photo", "Attachment", Many), ("period", "Period", One),
            ("communication", "RelatedPerson.communication", Many),
        ],
        "Practitioner" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("name", "HumanName", Many),
            ("telecom", "ContactPoint", Many), ("address", "Address", Many), ("gender", "code", One),
            ("birthDate", "date", One), ("photo", "Attachment", Many),
            ("qualification", "Practitioner.qualification", Many), ("communication", "CodeableConcept", Many),
        ],
        "Practitioner.qualification" => &[
            ("identifier", "Identifier", Many), ("code", "CodeableConcept", One), ("period", "Period", One),
            ("issuer", "Reference", One),
        ],
        "PractitionerRole" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("period", "Period", One),
            ("practitioner", "Reference", One), ("organization", "Reference", One),
            ("code", "CodeableConcept", Many), ("specialty", "CodeableConcept", Many),
            ("location", "Reference", Many), ("healthcareService", "Reference", Many),
            ("telecom", "ContactPoint", Many), ("availableTime", "PractitionerRole.availableTime", Many),
            ("notAvailable", "PractitionerRole.notAvailable", Many), ("availabilityExceptions", "string", One),
            ("endpoint", "Reference", Many),
        ],

        // --- HealthcareService, Organization, Location, Endpoint, Slot, Schedule
        "HealthcareService" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("providedBy", "Reference", One),
            ("category", "CodeableConcept", Many), ("type", "CodeableConcept", Many),
            ("specialty", "CodeableConcept", Many), ("location", "Reference", Many), ("name", "string", One),
            ("comment", "string", One), ("extraDetails", "markdown", One), ("photo", "Attachment", One),
            ("telecom", "ContactPoint", Many), ("coverageArea", "Reference", Many),
            ("serviceProvisionCode", "CodeableConcept", Many),
            ("eligibility", "HealthcareService.eligibility", Many), ("program", "CodeableConcept", Many),
            ("characteristic", "CodeableConcept", Many), ("communication", "CodeableConcept", Many),
            ("referralMethod", "CodeableConcept", Many), ("appointmentRequired", "boolean", One),
            ("availableTime", "HealthcareService.availableTime", Many),
            ("notAvailable", "HealthcareService.notAvailable", Many), ("availabilityExceptions", "string", One),
            ("endpoint", "Reference", Many),
        ],
        "HealthcareService.eligibility" => &[("code", "CodeableConcept", One), ("comment", "markdown", One)],
        "HealthcareService.availableTime" | "PractitionerRole.availableTime" => &[
            ("daysOfWeek", "code", Many), ("allDay", "boolean", One), ("availableStartTime", "time", One),
            ("availableEndTime", "time", One),
        ],
        "HealthcareService.notAvailable" | "PractitionerRole.notAvailable" => &[
            ("description", "string", One), ("during", "Period", One),
        ],
        "Organization" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One), ("type", "CodeableConcept", Many),
            ("name", "string", One), ("alias", "string", Many), ("telecom", "ContactPoint", Many),
            ("address", "Address", Many), ("partOf", "Reference", One), ("contact", "Organization.contact", Many),
            ("endpoint", "Reference", Many),
        ],
        "Organization.contact" => &[
            ("purpose", "CodeableConcept", One), ("name", "HumanName", One), ("telecom", "ContactPoint", Many),
            ("address", "Address", One),
        ],
        "Location" => &[
            ("identifier", "Identifier", Many), ("status", "code", One), ("operationalStatus", "Coding", One),
            ("name", "string", One), ("alias", "string", Many), ("description", "string", One),
            ("mode", "code", One), ("type", "CodeableConcept", Many), ("telecom", "ContactPoint", Many),
            ("address", "Address", One), ("physicalType", "CodeableConcept", One),
            ("position", "Location.position", One), ("managingOrganization", "Reference", One),
            ("partOf", "Reference", One), ("hoursOfOperation", "Location.hoursOfOperation", Many),
            ("availabilityExceptions", "string", One), ("endpoint", "Reference", Many),
        ],
        "Location.position" => &[
            ("longitude", "decimal", One), ("latitude", "decimal", One), ("altitude", "decimal", One),
        ],
        "Location.hoursOfOperation" => &[
            ("daysOfWeek", "code", Many), ("allDay", "boolean", One), ("openingTime", "time", One),
            ("closingTime", "time", One),
        ],
        "Endpoint" => &[
            ("identifier", "Identifier", Many), ("status", "code", One), ("connectionType", "Coding", One),
            ("name", "string", One), ("managingOrganization", "Reference", One), ("contact", "ContactPoint", Many),
            ("period", "Period", One), ("payloadType", "CodeableConcept", Many), ("payloadMimeType", "code", Many),
            ("address", "url", One), ("header", "string", Many),
        ],
        "Slot" => &[
            ("identifier", "Identifier", Many), ("serviceCategory", "CodeableConcept", Many),
            ("serviceType", "CodeableConcept", Many), ("specialty", "CodeableConcept", Many),
            ("appointmentType", "CodeableConcept", One), ("schedule", "Reference", One), ("status", "code", One),
            ("start", "instant", One), ("end", "instant", One), ("overbooked", "boolean", One),
            ("comment", "string", One),
        ],
        "Schedule" => &[
            ("identifier", "Identifier", Many), ("active", "boolean", One),
            ("serviceCategory", "CodeableConcept", Many), ("serviceType", "CodeableConcept", Many),
            ("specialty", "CodeableConcept", Many), ("actor", "Reference", Many),
            ("planningHorizon", "Period", One), ("comment", "string", One),
        ],

        // --- CommunicationRequest, Communication -----------------------------
        "CommunicationRequest" => &[
            ("identifier", "Identifier", Many), ("basedOn", "Reference", Many), ("replaces", "Reference", Many),
            ("groupIdentifier", "Identifier", One), ("status", "code", One),
            ("statusReason", "CodeableConcept", One), ("category", "CodeableConcept", Many),
            // A code here, unlike Appointment.priority.
            ("priority", "code", One), ("doNotPerform", "boolean", One), ("medium", "CodeableConcept", Many),
            ("subject", "Reference", One), ("about", "Reference", Many), ("encounter", "Reference", One),
            ("payload", "CommunicationRequest.payload", Many), ("occurrence[x]", "dateTime|Period", One),
            ("authoredOn", "dateTime", One), ("requester", "Reference", One), ("recipient", "Reference", Many),
            ("sender", "Reference", One), ("reasonCode", "CodeableConcept", Many),
            ("reasonReference", "Reference", Many), ("note", "Annotation", Many),
        ],
        "CommunicationRequest.payload" | "Communication.payload" => &[
            ("content[x]", "string|Attachment|Reference", One),
        ],
        "Communication" => &[
            ("identifier", "Identifier", Many), ("instantiatesCanonical", "canonical", Many),
            ("instantiatesUri", "uri", Many), ("basedOn", "Reference", Many), ("partOf", "Reference", Many),
            ("inResponseTo", "Reference", Many), ("status", "code", One),
            ("statusReason", "CodeableConcept", One), ("category", "CodeableConcept", Many),
            ("priority", "code", One), ("medium", "CodeableConcept", Many), ("subject", "Reference", One),
            ("topic", "CodeableConcept", One), ("about", "Reference", Many), ("encounter", "Reference", One),
            ("sent", "dateTime", One), ("received", "dateTime", One), ("recipient", "Reference", Many),
            ("sender", "Reference", One), ("reasonCode", "CodeableConcept", Many),
            ("reasonReference", "Reference", Many), ("payload", "Communication.payload", Many),
            ("note", "Annotation", Many),
        ],

        // --- Subscriptions (R4 Subscription; R4B SubscriptionStatus, SubscriptionTopic)
        "Subscription" => &[
            ("status", "code", One), ("contact", "ContactPoint", Many), ("end", "instant", One),
            ("reason", "string", One), ("criteria", "string", One), ("error", "string", One),
            ("channel", "Subscription.channel", One),
        ],
        // `type` is a single code here.
        "Subscription.channel" => &[
            ("type", "code", One), ("endpoint", "url", One), ("payload", "code", One), ("header", "string", Many),
        ],
        "SubscriptionStatus" => &[
            ("status", "code", One), ("type", "code", One),
            // A string in R4B (integer64 only from R5).
            ("eventsSinceSubscriptionStart", "string", One),
            ("notificationEvent", "SubscriptionStatus.notificationEvent", Many),
            ("subscription", "Reference", One), ("topic", "canonical", One), ("error", "CodeableConcept", Many),
        ],
        "SubscriptionStatus.notificationEvent" => &[
            ("eventNumber", "string", One), ("timestamp", "instant", One), ("focus", "Reference", One),
            ("additionalContext", "Reference", Many),
        ],
        "SubscriptionTopic" => &[
            ("url", "uri", One), ("identifier", "Identifier", Many), ("version", "string", One),
            ("title", "string", One), ("derivedFrom", "canonical", Many), ("status", "code", One),
            ("experimental", "boolean", One), ("date", "dateTime", One), ("publisher", "string", One),
            ("contact", "ContactDetail", Many), ("description", "markdown", One),
            ("useContext", "UsageContext", Many), ("jurisdiction", "CodeableConcept", Many),
            ("purpose", "markdown", One), ("copyright", "markdown", One), ("approvalDate", "date", One),
            ("lastReviewDate", "date", One), ("effectivePeriod", "Period", One),
            ("resourceTrigger", "SubscriptionTopic.resourceTrigger", Many),
            ("eventTrigger", "SubscriptionTopic.eventTrigger", Many),
            ("canFilterBy", "SubscriptionTopic.canFilterBy", Many),
            ("notificationShape", "SubscriptionTopic.notificationShape", Many),
        ],
        // `resource` is a uri in these, not a nested resource.
        "SubscriptionTopic.resourceTrigger" => &[
            ("description", "markdown", One), ("resource", "uri", One), ("supportedInteraction", "code", Many),
            ("queryCriteria", "SubscriptionTopic.resourceTrigger.queryCriteria", One),
            ("fhirPathCriteria", "string", One),
        ],
        "SubscriptionTopic.resourceTrigger.queryCriteria" => &[
            ("previous", "string", One), ("resultForCreate", "code", One), ("current", "string", One),
            ("resultForDelete", "code", One), ("requireBoth", "boolean", One),
        ],
        "SubscriptionTopic.eventTrigger" => &[
            ("description", "markdown", One), ("event", "CodeableConcept", One), ("resource", "uri", One),
        ],
        "SubscriptionTopic.canFilterBy" => &[
            ("description", "markdown", One), ("resource", "uri", One), ("filterParameter", "string", One),
            ("filterDefinition", "uri", One), ("modifier", "code", Many),
        ],
        "SubscriptionTopic.notificationShape" => &[
            ("resource", "uri", One), ("include", "string", Many), ("revInclude", "string", Many),
        ],

        // --- Parameters, Bundle, OperationOutcome -----------------------------
        "Parameters" => &[("parameter", "Parameters.parameter", Many)],
        "Parameters.parameter" => &[
            ("name", "string", One), ("value[x]", "*", One), ("resource", "Resource", One),
            ("part", "Parameters.parameter", Many),
        ],
        // Bundle.identifier is single.
        "Bundle" => &[
            ("identifier", "Identifier", One), ("type", "code", One), ("timestamp", "instant", One),
            ("total", "unsignedInt", One), ("link", "Bundle.link", Many), ("entry", "Bundle.entry", Many),
            ("signature", "Signature", One),
        ],
        "Bundle.link" => &[("relation", "string", One), ("url", "uri", One)],
        "Bundle.entry" => &[
            ("link", "Bundle.link", Many), ("fullUrl", "uri", One), ("resource", "Resource", One),
            ("search", "Bundle.entry.search", One), ("request", "Bundle.entry.request", One),
            ("response", "Bundle.entry.response", One),
        ],
        "Bundle.entry.search" => &[("mode", "code", One), ("score", "decimal", One)],
        "Bundle.entry.request" => &[
            ("method", "code", One), ("url", "uri", One), ("ifNoneMatch", "string", One),
            ("ifModifiedSince", "instant", One), ("ifMatch", "string", One), ("ifNoneExist", "string", One),
        ],
        "Bundle.entry.response" => &[
            ("status", "string", One), ("location", "uri", One), ("etag", "string", One),
            ("lastModified", "instant", One), ("outcome", "Resource", One),
        ],
        "OperationOutcome" => &[("issue", "OperationOutcome.issue", Many)],
        "OperationOutcome.issue" => &[
            ("severity", "code", One), ("code", "code", One), ("details", "CodeableConcept", One),
            ("diagnostics", "string", One), ("location", "string", Many), ("expression", "string", Many),
        ],

        // --- CodeSystem ------------------------------------------------------
        "CodeSystem" => &[
            ("url", "uri", One), ("identifier", "Identifier", Many), ("version", "string", One),
            ("name", "string", One), ("title", "string", One), ("status", "code", One),
            ("experimental", "boolean", One), ("date", "dateTime", One), ("publisher", "string", One),
            ("contact", "ContactDetail", Many), ("description", "markdown", One),
            ("useContext", "UsageContext", Many), ("jurisdiction", "CodeableConcept", Many),
            ("purpose", "markdown", One), ("copyright", "markdown", One), ("caseSensitive", "boolean", One),
            ("valueSet", "canonical", One), ("hierarchyMeaning", "code", One), ("compositional", "boolean", One),
            ("versionNeeded", "boolean", One), ("content", "code", One), ("supplements", "canonical", One),
            ("count", "unsignedInt", One), ("filter", "CodeSystem.filter", Many),
            ("property", "CodeSystem.property", Many), ("concept", "CodeSystem.concept", Many),
        ],
        "CodeSystem.filter" => &[
            ("code", "code", One), ("description", "string", One), ("operator", "code", Many),
            ("value", "string", One),
        ],
        "CodeSystem.property" => &[
            ("code", "code", One), ("uri", "uri", One), ("description", "string", One), ("type", "code", One),
        ],
        "CodeSystem.concept" => &[
            ("code", "code", One), ("display", "string", One), ("definition", "string", One),
            ("designation", "CodeSystem.concept.designation", Many),
            ("property", "CodeSystem.concept.property", Many), ("concept", "CodeSystem.concept", Many),
        ],
        "CodeSystem.concept.designation" => &[
            ("language", "code", One), ("use", "Coding", One), ("value", "string", One),
        ],
        "CodeSystem.concept.property" => &[
            ("code", "code", One), ("value[x]", "code|Coding|string|integer|boolean|dateTime|decimal", One),
        ],

        _ => &[],
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
    fn line_breaks_survive_in_attribute_values() {
        let r = json!({"resourceType": "Communication", "payload": [{"contentString": "line one\nline two\tend"}]});
        let xml = to_xml(&r);
        assert!(xml.contains("value=\"line one&#10;line two&#9;end\""), "{xml}");
        assert_eq!(from_xml(&xml).unwrap(), r);
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

    // --- Reading -------------------------------------------------------------

    const NS: &str = "xmlns=\"http://hl7.org/fhir\"";

    /// `from_xml(&to_xml(r)) == r`, with a readable failure.
    fn assert_round_trip(resource: &Value) {
        let xml = to_xml(resource);
        match from_xml(&xml) {
            Ok(back) => assert_eq!(&back, resource, "\nXML: {xml}\nread back: {back:#}"),
            Err(e) => panic!("{e}\nXML: {xml}"),
        }
    }

    fn appointment() -> Value {
        json!({
            "resourceType": "Appointment",
            "id": "apt-1",
            "meta": {
                "versionId": "3",
                "lastUpdated": "2024-05-01T10:00:00Z",
                "profile": ["http://example.org/StructureDefinition/telehealth-appointment"]
            },
            "text": {
                "status": "generated",
                "div": concat!(
                    "<div xmlns=\"http://www.w3.org/1999/xhtml\">",
                    "<p>Video visit &amp; <b>follow-up</b></p><br/></div>"
                )
            },
            "contained": [
                {
                    "resourceType": "RelatedPerson",
                    "id": "rp1",
                    "patient": {"reference": "#pat1"},
                    "relationship": [{"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"
                    }]}],
                    "name": [{"family": "Doe", "given": ["Jane"]}],
                    "telecom": [{"system": "email", "value": "jane@example.org"}]
                },
                {
                    "resourceType": "Patient",
                    "id": "pat1",
                    "active": true,
                    "name": [{"given": ["Kim"]}],
                    "birthDate": "2019-02-03"
                }
            ],
            "extension": [{"url": "http://example.org/fhir/StructureDefinition/channel", "valueCode": "video"}],
            "identifier": [{"system": "urn:example:appointments", "value": "A-1"}],
            "status": "booked",
            "serviceType": [{
                "coding": [{"system": "http://snomed.info/sct", "code": "394814009", "display": "General practice"}],
                "text": "GP"
            }],
            "appointmentType": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP"
            }]},
            "priority": 5,
            "description": "Follow-up <video> call & \"check\"",
            "start": "2024-05-02T09:00:00Z",
            "end": "2024-05-02T09:20:00Z",
            "minutesDuration": 20,
            "slot": [{"reference": "Slot/s1"}],
            "participant": [
                {
                    "extension": [
                        {"url": "http://example.org/fhir/StructureDefinition/fee",
                         "valueMoney": {"value": 25.5, "currency": "EUR"}},
                        {"url": "http://example.org/fhir/StructureDefinition/seat", "valueInteger": -1},
                        {"url": "http://example.org/fhir/StructureDefinition/host", "valueBoolean": false}
                    ],
                    "type": [{"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"
                    }]}],
                    "actor": {"reference": "Practitioner/dr1", "display": "Dr. Who"},
                    "required": "required",
                    "status": "accepted"
                },
                {"actor": {"reference": "#pat1"}, "status": "accepted"},
                {"type": [{"text": "guardian"}], "actor": {"reference": "#rp1"}, "status": "needs-action",
                 "period": {"start": "2024-05-02T09:00:00Z"}}
            ],
            "requestedPeriod": [{"start": "2024-05-02", "end": "2024-05-03"}]
        })
    }

    fn patient() -> Value {
        json!({
            "resourceType": "Patient",
            "id": "p1",
            "extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {"city": "Berlin", "country": "DE"}
            }],
            "identifier": [
                {
                    "use": "official",
                    "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
                    "system": "urn:oid:1.2.3.4",
                    "value": "12345",
                    "period": {"start": "2020-01-01"},
                    "assigner": {"display": "Clinic"}
                },
                {"system": "urn:example:ids", "value": "A&B <1>"}
            ],
            "active": true,
            "name": [
                {
                    "use": "official",
                    "family": "Müller",
                    "given": ["Anna", "Maria"],
                    "_given": [null, {"extension": [{
                        "url": "http://hl7.org/fhir/StructureDefinition/iso21090-EN-qualifier", "valueCode": "CL"
                    }]}],
                    "prefix": ["Dr."]
                },
                {"use": "nickname", "given": ["Annie"]}
            ],
            "telecom": [
                {
                    "extension": [{
                        "url": "http://example.org/fhir/StructureDefinition/verified", "valueBoolean": true
                    }],
                    "system": "phone",
                    "value": "+49 30 1234",
                    "use": "mobile",
                    "rank": 1
                },
                {
                    "system": "email",
                    "_value": {"extension": [{
                        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "masked"
                    }]}
                }
            ],
            "gender": "female",
            "_gender": {"id": "g1"},
            "birthDate": "1980-04-05",
            "deceasedBoolean": false,
            "address": [{"line": ["Hauptstr. 1"], "city": "Berlin", "postalCode": "10115", "country": "DE"}],
            "maritalStatus": {"text": "married"},
            "multipleBirthInteger": 2,
            "contact": [{
                "relationship": [{"text": "partner"}],
                "name": {"family": "Müller", "given": ["Jo"]},
                "telecom": [{"system": "phone", "value": "555"}]
            }],
            "communication": [{
                "language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "de"}]},
                "preferred": true
            }],
            "generalPractitioner": [{"reference": "Practitioner/dr1"}],
            "managingOrganization": {"reference": "Organization/o1", "identifier": {"value": "o1"}}
        })
    }

    fn patch_parameters() -> Value {
        json!({
            "resourceType": "Parameters",
            "parameter": [
                {"name": "operation", "part": [
                    {"name": "type", "valueCode": "replace"},
                    {"name": "path", "valueString": "Appointment.status"},
                    {"name": "value", "valueCode": "cancelled"}
                ]},
                {"name": "operation", "part": [
                    {"name": "type", "valueCode": "add"},
                    {"name": "path", "valueString": "Appointment"},
                    {"name": "name", "valueString": "end"},
                    {"name": "value", "valueDateTime": "2024-05-02T09:30:00+02:00"}
                ]},
                {"name": "operation", "part": [
                    {"name": "type", "valueCode": "insert"},
                    {"name": "path", "valueString": "Appointment.participant"},
                    {"name": "index", "valueInteger": 0},
                    {"name": "value", "part": [{"name": "status", "valueCode": "accepted"}]}
                ]}
            ]
        })
    }

    fn subscription() -> Value {
        let backport = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";
        json!({
            "resourceType": "Subscription",
            "id": "sub1",
            "meta": {"profile": [format!("{backport}/backport-subscription")]},
            "status": "requested",
            "contact": [{"system": "email", "value": "ops@example.org"}],
            "end": "2025-01-01T00:00:00Z",
            "reason": "Appointment updates",
            "criteria": "http://example.org/fhir/SubscriptionTopic/appointment",
            "_criteria": {"extension": [{
                "url": format!("{backport}/backport-filter-criteria"), "valueString": "Appointment?patient=Patient/p1"
            }]},
            "channel": {
                "extension": [
                    {"url": format!("{backport}/backport-heartbeat-period"), "valueUnsignedInt": 120},
                    {"url": format!("{backport}/backport-max-count"), "valuePositiveInt": 20}
                ],
                "type": "rest-hook",
                "endpoint": "https://client.example.org/hook",
                "payload": "application/fhir+json",
                "_payload": {"extension": [{
                    "url": format!("{backport}/backport-payload-content"), "valueCode": "id-only"
                }]},
                "header": ["Authorization: Bearer abc"]
            }
        })
    }

    fn history_bundle() -> Value {
        json!({
            "resourceType": "Bundle",
            "id": "b1",
            "meta": {"lastUpdated": "2024-05-02T09:00:01Z"},
            "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c9b8a1e-0000-4000-8000-000000000001"},
            "type": "history",
            "timestamp": "2024-05-02T09:00:01Z",
            "entry": [
                {
                    "fullUrl": "urn:uuid:0c9b8a1e-0000-4000-8000-000000000002",
                    "resource": {
                        "resourceType": "SubscriptionStatus",
                        "id": "ss1",
                        "status": "active",
                        "type": "event-notification",
                        "eventsSinceSubscriptionStart": "2",
                        "notificationEvent": [{
                            "eventNumber": "2",
                            "timestamp": "2024-05-02T09:00:00Z",
                            "focus": {"reference": "Appointment/apt-1"},
                            "additionalContext": [{"reference": "Patient/p1"}]
                        }],
                        "subscription": {"reference": "Subscription/sub1"},
                        "topic": "http://example.org/fhir/SubscriptionTopic/appointment"
                    },
                    "request": {"method": "GET", "url": "Subscription/sub1/$status"},
                    "response": {"status": "200"}
                },
                {
                    "fullUrl": "https://example.org/fhir/Appointment/apt-1",
                    "resource": appointment(),
                    "request": {"method": "PUT", "url": "Appointment/apt-1"},
                    "response": {"status": "200", "etag": "W/\"3\"", "lastModified": "2024-05-02T09:00:00Z"}
                },
                {
                    "response": {
                        "status": "400 Bad Request",
                        "outcome": crate::operation_outcome("error", "invalid", "E1", "bad participant")
                    }
                }
            ]
        })
    }

    fn code_system() -> Value {
        json!({
            "resourceType": "CodeSystem",
            "id": "visit-kinds",
            "url": "http://example.org/fhir/CodeSystem/visit-kinds",
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:oid:1.2.3"}],
            "version": "1",
            "name": "VisitKinds",
            "status": "active",
            "experimental": false,
            "contact": [{"name": "Ops", "telecom": [{"system": "url", "value": "https://example.org"}]}],
            "useContext": [{"code": {"code": "focus"}, "valueCodeableConcept": {"text": "telehealth"}}],
            "caseSensitive": true,
            "content": "complete",
            "count": 2,
            "filter": [{"code": "kind", "operator": ["="], "value": "a code"}],
            "property": [{"code": "remote", "type": "boolean"}],
            "concept": [{
                "code": "video",
                "display": "Video",
                "designation": [{"language": "de", "use": {"code": "display"}, "value": "Videosprechstunde"}],
                "property": [{"code": "remote", "valueBoolean": true}, {"code": "weight", "valueDecimal": 0.25}],
                "concept": [{"code": "video-group", "display": "Group video"}]
            }]
        })
    }

    fn others() -> Vec<Value> {
        vec![
            json!({
                "resourceType": "Practitioner", "id": "dr1", "active": true,
                "name": [{"family": "Who", "given": ["The"], "prefix": ["Dr."]}],
                "qualification": [{
                    "identifier": [{"value": "Q1"}], "code": {"text": "MD"}, "issuer": {"display": "Board"}
                }],
                "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}]
            }),
            json!({
                "resourceType": "HealthcareService", "id": "hs1", "active": true, "name": "Tele-GP",
                "type": [{"text": "GP"}], "appointmentRequired": true,
                "photo": {"contentType": "image/png", "url": "https://example.org/p.png", "size": 1024},
                "availableTime": [{
                    "daysOfWeek": ["mon"], "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"
                }],
                "notAvailable": [{"description": "Holiday", "during": {"start": "2024-12-24", "end": "2024-12-26"}}],
                "eligibility": [{"code": {"text": "insured"}, "comment": "Only *insured* patients"}]
            }),
            json!({
                "resourceType": "CommunicationRequest", "id": "cr1", "status": "active", "priority": "routine",
                "doNotPerform": false, "medium": [{"text": "SMS"}],
                "payload": [{"contentString": "Your visit starts in 10 minutes"}],
                "occurrenceDateTime": "2024-05-02T08:50:00Z", "recipient": [{"reference": "Patient/p1"}],
                "note": [{"authorString": "scheduler", "time": "2024-05-01T10:00:00Z", "text": "auto"}]
            }),
            json!({
                "resourceType": "Communication", "id": "c1", "status": "completed",
                "basedOn": [{"reference": "CommunicationRequest/cr1"}], "sent": "2024-05-02T08:50:01Z",
                "payload": [{"contentAttachment": {"contentType": "text/plain", "data": "SGVsbG8="}},
                            {"contentReference": {"reference": "Appointment/apt-1"}}]
            }),
            json!({
                "resourceType": "SubscriptionTopic", "id": "t1",
                "url": "http://example.org/fhir/SubscriptionTopic/appointment",
                "status": "active",
                "resourceTrigger": [{"resource": "http://hl7.org/fhir/StructureDefinition/Appointment",
                    "supportedInteraction": ["create"],
                    "queryCriteria": {"current": "status=booked", "requireBoth": false}}],
                "canFilterBy": [{"resource": "Appointment", "filterParameter": "patient", "modifier": ["="]}],
                "notificationShape": [{"resource": "Appointment", "include": ["Appointment:patient"]}]
            }),
            crate::operation_outcome("error", "processing", "E42", "slot taken"),
            crate::searchset(
                vec![patient()],
                Some(1),
                vec![("self", "https://example.org/fhir/Patient?_id=p1".into())],
            ),
            json!({
                "resourceType": "Slot", "id": "s1", "schedule": {"reference": "Schedule/sch1"}, "status": "free",
                "start": "2024-05-02T09:00:00Z", "end": "2024-05-02T09:20:00Z", "overbooked": false,
                "serviceType": [{"text": "GP"}]
            }),
            json!({"resourceType": "Schedule", "id": "sch1", "actor": [{"reference": "Practitioner/dr1"}],
                   "planningHorizon": {"start": "2024-05-01", "end": "2024-06-01"}}),
            json!({"resourceType": "Location", "id": "l1", "name": "Room 1",
                   "position": {"longitude": 13.4, "latitude": 52.52},
                   "hoursOfOperation": [{"daysOfWeek": ["mon", "tue"], "allDay": true}]}),
        ]
    }

    #[test]
    fn round_trips_realistic_resources() {
        assert_round_trip(&appointment());
        assert_round_trip(&patient());
        assert_round_trip(&patch_parameters());
        assert_round_trip(&subscription());
        assert_round_trip(&history_bundle());
        assert_round_trip(&code_system());
        for resource in others() {
            assert_round_trip(&resource);
        }
    }

    #[test]
    fn patch_parameters_read_from_xml_drive_patch_operations() {
        let ops = crate::patch_operations(&from_xml(&to_xml(&patch_parameters())).unwrap()).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[0].kind.as_deref(), Some("replace"));
        assert_eq!(ops[0].value, Some(json!("cancelled")));
        assert_eq!(ops[1].value, Some(json!("2024-05-02T09:30:00+02:00")));
    }

    #[test]
    fn single_occurrences_of_repeating_elements_are_arrays() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
            <Bundle {NS}>
              <type value="collection"/>
              <entry>
                <resource>
                  <Appointment>
                    <status value="booked"/>
                    <appointmentType><coding><code value="ROUTINE"/></coding></appointmentType>
                    <participant>
                      <type><coding><code value="ATND"/></coding></type>
                      <actor><reference value="Patient/p1"/><identifier><value value="x"/></identifier></actor>
                      <status value="accepted"/>
                    </participant>
                  </Appointment>
                </resource>
              </entry>
              <entry>
                <resource>
                  <Patient>
                    <name><given value="Kim"/></name>
                    <telecom><system value="phone"/><value value="555"/></telecom>
                  </Patient>
                </resource>
              </entry>
              <entry>
                <resource>
                  <Subscription>
                    <status value="active"/>
                    <channel><type value="rest-hook"/><header value="X-Token: 1"/></channel>
                  </Subscription>
                </resource>
              </entry>
            </Bundle>"#
        );
        let json = from_xml(&xml).unwrap();
        assert_eq!(json["type"], json!("collection"));
        let appointment = &json["entry"][0]["resource"];
        assert_eq!(appointment["participant"][0]["type"], json!([{"coding": [{"code": "ATND"}]}]));
        assert_eq!(appointment["appointmentType"], json!({"coding": [{"code": "ROUTINE"}]}));
        assert_eq!(appointment["participant"][0]["actor"]["identifier"], json!({"value": "x"}));
        let patient = &json["entry"][1]["resource"];
        assert_eq!(patient["name"], json!([{"given": ["Kim"]}]));
        assert_eq!(patient["telecom"], json!([{"system": "phone", "value": "555"}]));
        let channel = &json["entry"][2]["resource"]["channel"];
        assert_eq!(channel, &json!({"type": "rest-hook", "header": ["X-Token: 1"]}));
    }

    #[test]
    fn primitives_are_typed_by_element_definition() {
        let xml = format!(
            r#"<Bundle {NS}><type value="searchset"/><total value="3"/>
            <entry><search><score value="0.5"/></search><resource><Appointment>
              <status value="booked"/><priority value="7"/><minutesDuration value="15"/>
              <participant><extension url="http://e/fee">
                <valueMoney><value value="12.30"/><currency value="EUR"/></valueMoney>
              </extension>
                <status value="accepted"/></participant>
            </Appointment></resource></entry>
            <entry><resource><CommunicationRequest><status value="active"/><priority value="urgent"/>
              <doNotPerform value="true"/></CommunicationRequest></resource></entry>
            <entry><resource><SubscriptionStatus><type value="heartbeat"/>
              <eventsSinceSubscriptionStart value="42"/></SubscriptionStatus></resource></entry>
            </Bundle>"#
        );
        let json = from_xml(&xml).unwrap();
        assert_eq!(json["total"], json!(3));
        assert_eq!(json["entry"][0]["search"]["score"], json!(0.5));
        let appointment = &json["entry"][0]["resource"];
        assert_eq!(appointment["priority"], json!(7));
        assert_eq!(appointment["minutesDuration"], json!(15));
        assert_eq!(appointment["participant"][0]["extension"][0]["valueMoney"]["value"], json!(12.3));
        let request = &json["entry"][1]["resource"];
        assert_eq!(request["priority"], json!("urgent"));
        assert_eq!(request["doNotPerform"], json!(true));
        assert_eq!(json["entry"][2]["resource"]["eventsSinceSubscriptionStart"], json!("42"));
    }

    #[test]
    fn ill_typed_values_are_rejected() {
        for (xml, expected) in [
            (format!(r#"<Patient {NS}><active value="yes"/></Patient>"#), "`yes` is not a boolean"),
            (format!(r#"<Appointment {NS}><priority value="-1"/></Appointment>"#), "`-1` is not a valid unsignedInt"),
            (
                format!(r#"<Appointment {NS}><minutesDuration value="0"/></Appointment>"#),
                "`0` is not a valid positiveInt",
            ),
            (format!(r#"<Bundle {NS}><total value="1.5"/></Bundle>"#), "`1.5` is not a valid unsignedInt"),
            (
                format!(r#"<Parameters {NS}><parameter><valueDecimal value="1e999"/></parameter></Parameters>"#),
                "`1e999` is not a decimal",
            ),
        ] {
            let err = from_xml(&xml).unwrap_err();
            assert!(matches!(err, XmlError::Invalid { .. }), "{err:?}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn primitive_companions_align_with_repetitions() {
        let xml = format!(
            r#"<Patient {NS}><name>
              <given value="A"/>
              <given id="g2"><extension url="http://e/q"><valueCode value="CL"/></extension></given>
              <given value="C" id="g3"/>
            </name>
            <birthDate>
              <extension url="http://hl7.org/fhir/StructureDefinition/data-absent-reason">
                <valueCode value="unknown"/>
              </extension>
            </birthDate>
            </Patient>"#
        );
        let json = from_xml(&xml).unwrap();
        assert_eq!(json["name"][0]["given"], json!(["A", null, "C"]));
        assert_eq!(
            json["name"][0]["_given"],
            json!([null, {"id": "g2", "extension": [{"url": "http://e/q", "valueCode": "CL"}]}, {"id": "g3"}])
        );
        assert!(json.get("birthDate").is_none());
        assert_eq!(
            json["_birthDate"],
            json!({"extension": [{
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"
            }]})
        );
    }

    #[test]
    fn output_keeps_document_order_with_companions_next_to_values() {
        let xml = format!(
            r#"<Patient {NS}><id value="p"/><gender value="other" id="g"/><active value="true"/>
            <extension id="e1" url="http://e"><valueString value="x"/></extension></Patient>"#
        );
        let text = from_xml(&xml).unwrap().to_string();
        assert_eq!(
            text,
            concat!(
                r#"{"resourceType":"Patient","id":"p","gender":"other","_gender":{"id":"g"},"active":true,"#,
                r#""extension":[{"url":"http://e","id":"e1","valueString":"x"}]}"#
            )
        );
    }

    #[test]
    fn narrative_div_is_read_as_markup() {
        let xml = format!(
            "<Patient {NS}>\n  <text>\n    <status value=\"generated\"/>\n    \
             <div xmlns=\"http://www.w3.org/1999/xhtml\"><p>A &lt; B &amp; <i>C</i></p>\n<![CDATA[x]]></div>\n  \
             </text>\n</Patient>"
        );
        let json = from_xml(&xml).unwrap();
        assert_eq!(
            json["text"]["div"],
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>A &lt; B &amp; <i>C</i></p>\n<![CDATA[x]]></div>")
        );
        let empty = from_xml(&format!(
            r#"<Patient {NS}><text><status value="empty"/><div xmlns="http://www.w3.org/1999/xhtml"/></text></Patient>"#
        ))
        .unwrap();
        assert_eq!(empty["text"]["div"], json!(r#"<div xmlns="http://www.w3.org/1999/xhtml"/>"#));
        let fhir_ns_div = from_xml(&format!(r#"<Patient {NS}><text><div>x</div></text></Patient>"#)).unwrap_err();
        assert!(fhir_ns_div.to_string().contains("XHTML namespace"), "{fhir_ns_div}");
    }

    #[test]
    fn unknown_elements_are_kept_single_or_as_arrays_when_repeated() {
        let xml = format!(
            r#"<Observation {NS}>
              <id value="o1"/>
              <identifier><value value="i1"/></identifier>
              <status value="final"/>
              <code><coding><code value="8867-4"/></coding><text value="Heart rate"/></code>
              <category><text value="a"/></category><category><text value="b"/></category>
              <valueQuantity><value value="72"/><unit value="/min"/></valueQuantity>
              <hasMember><reference value="Observation/a"/></hasMember>
              <contained><Patient><id value="c"/><active value="false"/></Patient></contained>
            </Observation>"#
        );
        let json = from_xml(&xml).unwrap();
        assert_eq!(
            json,
            json!({
                "resourceType": "Observation",
                "id": "o1",
                "identifier": [{"value": "i1"}],
                "status": "final",
                "code": {"coding": [{"code": "8867-4"}], "text": "Heart rate"},
                "category": [{"text": "a"}, {"text": "b"}],
                "valueQuantity": {"value": 72, "unit": "/min"},
                "hasMember": {"reference": "Observation/a"},
                "contained": [{"resourceType": "Patient", "id": "c", "active": false}]
            })
        );
        // Unknown elements inside a known type, too.
        let json = from_xml(&format!(
            r#"<Patient {NS}><name><nickname value="a"/><nickname value="b"/><family value="F"/></name></Patient>"#
        ))
        .unwrap();
        assert_eq!(json["name"], json!([{"nickname": ["a", "b"], "family": "F"}]));
    }

    #[test]
    fn malformed_xml_is_an_error() {
        for xml in [
            "",
            "   ",
            "not xml",
            "<Patient xmlns=\"http://hl7.org/fhir\">",
            "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\" value=\"false\"/></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"&bogus;\"/></Patient>",
            "<Patient xmlns=\"http://hl7.org/fhir\"/><Patient xmlns=\"http://hl7.org/fhir\"/>",
            "<Patient xmlns=\"http://hl7.org/fhir\"/>trailing",
            "<Patient xmlns=\"http://hl7.org/fhir\"><text><div xmlns=\"http://www.w3.org/1999/xhtml\"><p>",
        ] {
            let err = from_xml(xml).unwrap_err();
            assert!(matches!(err, XmlError::Malformed { .. } | XmlError::NotFhir(_)), "{xml:?}: {err:?}");
        }
    }

    #[test]
    fn the_root_must_be_a_fhir_resource() {
        for (xml, expected) in [
            ("<Patient/>", "in no namespace"),
            ("<Patient xmlns=\"http://hl7.org/fhir/\"/>", "namespace `http://hl7.org/fhir/`"),
            ("<f:Patient xmlns:g=\"http://hl7.org/fhir\"/>", "undeclared `f:`"),
            ("<patient xmlns=\"http://hl7.org/fhir\"/>", "not a FHIR resource type"),
        ] {
            let err = from_xml(xml).unwrap_err();
            assert!(matches!(err, XmlError::NotFhir(_)), "{err:?}");
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A prefixed FHIR namespace is as good as the default one.
        assert_eq!(
            from_xml(r#"<f:Patient xmlns:f="http://hl7.org/fhir"><f:active value="true"/></f:Patient>"#).unwrap(),
            json!({"resourceType": "Patient", "active": true})
        );
    }

    #[test]
    fn doctype_is_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY x SYSTEM "file:///etc/passwd">]>
            <Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>"#;
        assert_eq!(from_xml(xxe), Err(XmlError::Doctype));
        let bomb = "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;\">]>\
                    <Patient xmlns=\"http://hl7.org/fhir\"/>";
        assert_eq!(from_xml(bomb), Err(XmlError::Doctype));
        assert!(XmlError::Doctype.to_string().contains("DOCTYPE"));
    }

    #[test]
    fn depth_and_size_are_limited() {
        let nest = |levels: usize| {
            // Patient, then `levels - 1` nested extensions.
            let mut xml = format!("<Patient {NS}>");
            for _ in 1..levels {
                xml.push_str("<extension url=\"http://e\">");
            }
            for _ in 1..levels {
                xml.push_str("</extension>");
            }
            xml + "</Patient>"
        };
        assert!(from_xml(&nest(MAX_XML_DEPTH)).is_ok());
        assert_eq!(from_xml(&nest(MAX_XML_DEPTH + 1)), Err(XmlError::TooDeep));
        // Far deeper, but under the size limit: still refused, without exhausting the stack.
        assert_eq!(from_xml(&nest(40_000)), Err(XmlError::TooDeep));
        let narrative = |levels: usize| {
            format!(
                "<Patient {NS}><text><div xmlns=\"http://www.w3.org/1999/xhtml\">{}{}</div></text></Patient>",
                "<b>".repeat(levels),
                "</b>".repeat(levels)
            )
        };
        assert!(from_xml(&narrative(MAX_XML_DEPTH - 3)).is_ok());
        assert_eq!(from_xml(&narrative(MAX_XML_DEPTH - 2)), Err(XmlError::TooDeep));

        let big = format!("<Patient {NS}><!--{}--></Patient>", "x".repeat(MAX_XML_BYTES));
        assert_eq!(from_xml(&big), Err(XmlError::TooLarge(big.len())));
        assert_eq!(XmlError::TooDeep.to_string(), "XML elements are nested more than 64 levels deep");
        assert_eq!(
            XmlError::TooLarge(3_000_000).to_string(),
            "the XML document is 3000000 bytes, more than the limit of 2097152 bytes"
        );
    }

    #[test]
    fn content_fhir_does_not_allow_is_an_error() {
        for (xml, expected) in [
            (format!("<Patient {NS}>hello</Patient>"), "text content"),
            (format!("<Patient {NS}><active value=\"true\">yes</active></Patient>"), "text content"),
            (format!("<Patient {NS}><![CDATA[x]]></Patient>"), "text content"),
            (format!("<Patient {NS} id=\"p\"/>"), "resource element takes no"),
            (format!("<Patient {NS}><active value=\"true\" foo=\"1\"/></Patient>"), "unexpected attribute `foo`"),
            (format!("<Patient {NS}><active value=\"true\"/><active value=\"false\"/></Patient>"), "more than once"),
            (format!("<Patient {NS}><name value=\"Kim\"/></Patient>"), "HumanName takes no value"),
            (format!("<Patient {NS}><gender/></Patient>"), "needs a value attribute"),
            (
                format!("<Patient {NS}><gender value=\"f\"><x value=\"1\"/></gender></Patient>"),
                "only contain <extension>",
            ),
            (format!("<Patient {NS}><extension><valueString value=\"x\"/></extension></Patient>"), "needs a url"),
            (format!("<Patient {NS}><name url=\"http://e\"/></Patient>"), "take a url attribute"),
            (format!("<Patient {NS}><contained/></Patient>"), "expected a resource"),
            (format!("<Patient {NS}><contained><id value=\"x\"/></contained></Patient>"), "expected a resource"),
            (format!("<Patient {NS}><contained><Patient/><Patient/></contained></Patient>"), "follows a resource"),
            (format!("<Patient {NS}><Patient/></Patient>"), "cannot sit directly"),
            (
                format!("<Patient {NS}><managingOrganization><Organization/></managingOrganization></Patient>"),
                "cannot hold a resource",
            ),
            (format!("<Patient {NS}><_active value=\"x\"/></Patient>"), "not a FHIR element name"),
            (
                format!("<Patient {NS}><x:active xmlns:x=\"urn:x\" value=\"true\"/></Patient>"),
                "not in the FHIR namespace",
            ),
            (
                format!("<Patient {NS}><name id=\"a\"><id value=\"b\"/></name></Patient>"),
                "clashes with the `id` attribute",
            ),
        ] {
            let err = from_xml(&xml).unwrap_err();
            assert!(err.to_string().contains(expected), "{xml}: {err}");
        }
        let err = from_xml(&format!(
            "<Appointment {NS}><participant><actor><display value=\"a\"/><display value=\"b\"/></actor>\
             </participant></Appointment>"
        ))
        .unwrap_err();
        assert_eq!(
            err,
            XmlError::Invalid {
                path: "Appointment.participant.actor".into(),
                message: "<display> occurs more than once, but FHIR allows at most one here".into()
            }
        );
    }

    #[test]
    fn prolog_and_misc_are_tolerated() {
        let xml = format!(
            "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c --><?pi x?>\n<Patient {NS} \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"x\">\n\
             <!-- c --><active value=\" true \"/>\r\n<gender value=\"a&amp;b&#x20;&lt;\"/></Patient>\n<!-- end -->\n"
        );
        assert_eq!(from_xml(&xml).unwrap(), json!({"resourceType": "Patient", "active": true, "gender": "a&b <"}));
    }

    /// A small deterministic generator (xorshift), so the fuzz-style tests
    /// below need no extra dependency and always explore the same cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn text(&mut self) -> String {
            const CHARS: &[char] = &['a', 'Z', '0', ' ', '<', '>', '&', '"', '\'', ';', '/', '=', 'ü', '€', '😀', '\t'];
            let len = 1 + self.below(12);
            (0..len).map(|_| CHARS[self.below(CHARS.len())]).collect()
        }
    }

    #[test]
    fn generated_resources_round_trip() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..300 {
            let names: Vec<Value> = (0..1 + rng.below(3))
                .map(|_| {
                    let given: Vec<Value> = (0..1 + rng.below(3)).map(|_| json!(rng.text())).collect();
                    json!({"family": rng.text(), "given": given})
                })
                .collect();
            let mut patient = json!({
                "resourceType": "Patient",
                "id": format!("p{}", rng.next() % 1000),
                "active": rng.below(2) == 0,
                "name": names,
                "telecom": [{"system": "phone", "value": rng.text(), "rank": 1 + rng.below(9)}],
            });
            if rng.below(2) == 0 {
                patient["extension"] = json!([{"url": format!("http://e/{}", rng.below(5)),
                    "valueDecimal": rng.below(10_000) as f64 / 100.0}]);
            }
            let participant = json!({"type": [{"text": rng.text()}], "actor": {"reference": "#p"},
                "status": "accepted", "_status": {"extension": [{"url": "http://e", "valueString": rng.text()}]}});
            let appointment = json!({"resourceType": "Appointment", "contained": [patient.clone()],
                "status": "booked", "participant": [participant], "priority": rng.below(10)});
            assert_round_trip(&patient);
            assert_round_trip(&appointment);
        }
    }

    #[test]
    fn arbitrary_damage_never_panics() {
        let samples: Vec<String> = [appointment(), patient(), history_bundle()].iter().map(to_xml).collect();
        // Every truncation of a document.
        for xml in &samples {
            for (i, _) in xml.char_indices().step_by(3) {
                assert!(from_xml(&xml[..i]).is_err());
            }
        }
        // Random replacements of characters with markup-significant ones.
        let mut rng = Rng(0x0dd_ba11_cafe_f00d);
        const NOISE: &[&str] =
            &["<", ">", "&", "\"", "/", "=", "<!DOCTYPE x>", "<a>", "</", "<![CDATA[", " ", "x", "é"];
        for _ in 0..2000 {
            let xml = &samples[rng.below(samples.len())];
            let mut damaged: Vec<char> = xml.chars().collect();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(damaged.len());
                let noise = NOISE[rng.below(NOISE.len())];
                damaged.splice(at..at + usize::from(rng.below(2) == 0), noise.chars());
            }
            let damaged: String = damaged.into_iter().collect();
            let _ = from_xml(&damaged);
        }
    }
}
