//! Search plumbing shared by every Embassy search: parameters from a GET query
//! or a POST `_search` body (form-encoded, as FHIR defines, or a JSON object),
//! `skip`/`_count` paging and the searchset Bundle with its `next` link.
//!
//! The appointment search pages by key, not by position: its `next` link
//! keeps the spec's `skip` and adds `_cursor`, the sort key (start, id) of
//! the page's last entry, so the next page starts right there in the index
//! however deep it is. Its `total` is exact up to
//! [`polyclinic_store::appointments::TOTAL_CAP`] and left out past it (FHIR
//! R4: `Bundle.total` is optional, given only when known), unless the
//! client asks for `_total=accurate` (docs/dialects/embassy.md).

use super::EmbassyError;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use polyclinic_store::appointments::{Counting, PageStart, Total};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Most entries in one page (the spec's maximum for `_count`).
pub const MAX_COUNT: i64 = 30;

/// Search parameters by name (the last value wins for repeated names).
#[derive(Debug, Clone, Default)]
pub struct SearchParams(pub BTreeMap<String, String>);

impl SearchParams {
    /// A parameter's value, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The query string that reproduces these parameters (for `next` links).
    pub fn to_query(&self, overrides: &[(&str, String)]) -> String {
        let mut all = self.0.clone();
        for (k, v) in overrides {
            all.insert((*k).to_owned(), v.clone());
        }
        all.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl<S: Send + Sync> FromRequest<S> for SearchParams {
    type Rejection = EmbassyError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut params: BTreeMap<String, String> = req
            .uri()
            .query()
            .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        if req.method() == Method::POST {
            let content_type =
                req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|_| EmbassyError::invalid("InvalidSearch", "the search body could not be read"))?;
            if content_type.contains("json") {
                let body: Value = serde_json::from_slice(&bytes)
                    .map_err(|e| EmbassyError::invalid("InvalidSearch", format!("the search body is not JSON: {e}")))?;
                let obj = body
                    .as_object()
                    .ok_or_else(|| EmbassyError::invalid("InvalidSearch", "the search body must be a JSON object"))?;
                for (k, v) in obj {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(EmbassyError::invalid(
                                "InvalidSearch",
                                format!("search parameter `{k}` must be a string, number or boolean"),
                            ));
                        }
                    };
                    params.insert(k.clone(), text);
                }
            } else {
                params.extend(url::form_urlencoded::parse(&bytes).into_owned());
            }
        }
        Ok(SearchParams(params))
    }
}

/// A page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub skip: i64,
    pub count: i64,
}

impl Page {
    /// `skip` (default 0) and `_count` (default and maximum 30; 0 answers only
    /// the total). Negative or non-numeric values answer `SkipMustBePositive` /
    /// `CountMustBePositive`. With `_id`, "all other parameters will be
    /// ignored" (the spec), paging included: the one match is always shown.
    pub fn parse(p: &SearchParams) -> Result<Page, EmbassyError> {
        if p.get("_id").is_some() {
            return Ok(Page { skip: 0, count: MAX_COUNT });
        }
        let number = |name: &str, code: &'static str, default: i64| -> Result<i64, EmbassyError> {
            match p.get(name) {
                None => Ok(default),
                Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    EmbassyError::unprocessable(code, format!("{name} must be an integer >= 0, not `{v}`"))
                }),
            }
        };
        let skip = number("skip", "SkipMustBePositive", 0)?;
        let count = number("_count", "CountMustBePositive", MAX_COUNT)?.min(MAX_COUNT);
        Ok(Page { skip, count })
    }
}

/// A searchset Bundle of `resources` (already the page), with `fullUrl`s,
/// `search.mode = match`, the `total`, and a `next` link when more remain.
pub fn bundle(endpoint: &str, resources: Vec<Value>, total: i64, page: Page, params: &SearchParams) -> Value {
    let mut b = json!({"resourceType": "Bundle", "type": "searchset", "total": total});
    // Saturating: a `skip` near i64::MAX must not wrap into a bogus `next`.
    let end = page.skip.saturating_add(page.count);
    if page.count > 0 && end < total {
        let query = params.to_query(&[("skip", end.to_string()), ("_count", page.count.to_string())]);
        b["link"] = json!([{"relation": "next", "url": format!("{endpoint}?{query}")}]);
    }
    b["entry"] = Value::Array(
        resources
            .into_iter()
            .map(|r| {
                let full = format!("{endpoint}/{}", r["id"].as_str().unwrap_or_default());
                json!({"fullUrl": full, "resource": r, "search": {"mode": "match"}})
            })
            .collect(),
    );
    b
}

/// Applies a page to an in-memory list.
pub fn slice<T>(items: Vec<T>, page: Page) -> Vec<T> {
    items
        .into_iter()
        .skip(usize::try_from(page.skip).unwrap_or(usize::MAX))
        .take(usize::try_from(page.count).unwrap_or(0))
        .collect()
}

/// The keyset parameter of the appointment search's `next` links: the sort
/// key `start.id` (unix seconds, appointment id) of the previous page's last
/// entry.
pub const CURSOR: &str = "_cursor";

/// Where a page starts: after the `_cursor` key when given (then `skip` only
/// numbers the pages), else after `skip` matches.
pub fn page_start(p: &SearchParams, page: Page) -> Result<PageStart, EmbassyError> {
    let Some(v) = p.get(CURSOR) else { return Ok(PageStart::Skip(page.skip)) };
    v.split_once('.')
        .and_then(|(s, id)| Some(PageStart::After { start_s: s.parse().ok()?, id: id.parse().ok()? }))
        .ok_or_else(|| {
            EmbassyError::unprocessable(
                "InvalidParameter",
                format!("`{CURSOR}` `{v}` is not a cursor of this server (follow the bundle's `next` link as given)"),
            )
        })
}

/// FHIR's `_total`: `none` (no count), `estimate` (the default: exact up to
/// the cap), `accurate` (exact, however many).
pub fn counting(p: &SearchParams) -> Result<Counting, EmbassyError> {
    match p.get("_total") {
        None | Some("estimate") => Ok(Counting::Capped),
        Some("accurate") => Ok(Counting::Exact),
        Some("none") => Ok(Counting::Skip),
        Some(v) => Err(EmbassyError::unprocessable(
            "InvalidParameter",
            format!("`_total` must be `none`, `estimate` or `accurate`, not `{v}`"),
        )),
    }
}

/// A searchset Bundle of a keyset page: `total` only when known exactly,
/// and a `next` link (the spec's `skip` and `_count`, and the [`CURSOR`])
/// when more matches follow.
pub fn keyset_bundle(
    endpoint: &str,
    resources: Vec<Value>,
    total: Total,
    page: Page,
    params: &SearchParams,
    next: Option<(i64, i64)>,
) -> Value {
    let mut b = json!({"resourceType": "Bundle", "type": "searchset"});
    if let Total::Exact(n) = total {
        b["total"] = json!(n);
    }
    if let (Some((start, id)), true) = (next, page.count > 0) {
        let query = params.to_query(&[
            ("skip", page.skip.saturating_add(page.count).to_string()),
            ("_count", page.count.to_string()),
            (CURSOR, format!("{start}.{id}")),
        ]);
        b["link"] = json!([{"relation": "next", "url": format!("{endpoint}?{query}")}]);
    }
    b["entry"] = Value::Array(
        resources
            .into_iter()
            .map(|r| {
                let full = format!("{endpoint}/{}", r["id"].as_str().unwrap_or_default());
                json!({"fullUrl": full, "resource": r, "search": {"mode": "match"}})
            })
            .collect(),
    );
    b
}
