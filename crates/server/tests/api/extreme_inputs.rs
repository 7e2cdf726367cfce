//! No input makes the server answer 5xx, panic or drop the connection (issue
//! 9, item 8): extreme values in every path parameter, query parameter and
//! the time and number fields of request bodies, on every route of each
//! dialect. Every answer is a success or a 4xx in the dialect's own error
//! shape.
//!
//! Each dialect's test starts one server, seeds a tenant with real ids
//! (facility, doctor, address, bookings, services, patients, subscriptions),
//! then
//!
//! 1. sweeps: every route, every parameter, every extreme value, with the
//!    other parameters valid (so the value reaches the parsing behind the
//!    ids), all failures reported at once;
//! 2. runs a property test (proptest, a fixed number of cases, shrinking):
//!    random routes with several parameters extreme at once.
//!
//! The regression tests at the end pin the cases the issue names.

use crate::dp::{self, Ctx, enc};
use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::nb;
use crate::on_both_engines;
use crate::receiver::Receiver;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Extreme values as they appear in a URL (percent-encoded where needed).
fn extremes() -> Vec<String> {
    let mut v: Vec<String> = [
        // Dates and instants at both ends of the range and past them.
        "-009999-01-01T00:00:00Z",
        "0000-01-01T00:00:00+00:00",
        "1899-12-31T23:59:00Z",
        "9999-12-30T21:59:00Z",
        "9999-12-30T23:59:00+00:00",
        "9999-12-31T23:59:59+00:00",
        "-009999-01-01",
        "0000-01-01",
        "9999-12-31",
    ]
    .iter()
    .map(|s| enc(s))
    .collect();
    v.extend(
        [
            // Integers: the ends of i64, one past them, negative, zero.
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "18446744073709551616",
            "-1",
            "0",
            // Bytes that are no UTF-8, a NUL, an encoded slash and percent.
            "%FF%FE",
            "%C3%28",
            "%00",
            "%2F",
            "%25",
        ]
        .map(String::from),
    );
    v.push("a".repeat(10_000));
    v.push("9".repeat(10_000));
    v
}

/// An extreme value as body text (percent-decoded, lossily).
fn body_text(url_form: &str) -> String {
    url::form_urlencoded::parse(format!("x={url_form}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A body value: a JSON number when the text is one, else a string.
fn body_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(n @ Value::Number(_)) => n,
        _ => Value::String(text.to_owned()),
    }
}

/// One route: method, path template (`{name}` parameters), the query
/// parameters it reads, and a JSON body template whose `"$name"` strings are
/// parameters too.
struct Route {
    method: Method,
    path: &'static str,
    query: &'static [&'static str],
    body: Option<&'static str>,
}

fn route(method: Method, path: &'static str, query: &'static [&'static str], body: Option<&'static str>) -> Route {
    Route { method, path, query, body }
}

/// Where a parameter sits.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Path(String),
    Query(String),
    Body(String),
}

impl Route {
    fn slots(&self) -> Vec<Slot> {
        let mut out: Vec<Slot> = Vec::new();
        let mut rest = self.path;
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').map(|c| open + c).expect("a closed parameter");
            out.push(Slot::Path(rest[open + 1..close].to_owned()));
            rest = &rest[close + 1..];
        }
        out.extend(self.query.iter().map(|q| Slot::Query((*q).to_owned())));
        if let Some(b) = self.body {
            let mut names = Vec::new();
            collect_placeholders(&serde_json::from_str(b).expect("a JSON body template"), &mut names);
            out.extend(names.into_iter().map(Slot::Body));
        }
        out
    }
}

fn collect_placeholders(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.starts_with('$') => out.push(s[1..].to_owned()),
        Value::Array(a) => a.iter().for_each(|x| collect_placeholders(x, out)),
        Value::Object(m) => m.values().for_each(|x| collect_placeholders(x, out)),
        _ => {}
    }
}

/// Replaces the placeholder `"$name"` in a body template by `v`.
fn fill(template: &mut Value, name: &str, v: &Value) {
    match template {
        Value::String(s) if s.strip_prefix('$') == Some(name) => *template = v.clone(),
        Value::Array(a) => a.iter_mut().for_each(|x| fill(x, name, v)),
        Value::Object(m) => m.values_mut().for_each(|x| fill(x, name, v)),
        _ => {}
    }
}

/// A dialect under test: its server, routes, valid values and error shape.
struct Target {
    app: TestApp,
    prefix: &'static str,
    /// Header name and value of the credential.
    auth: (&'static str, String),
    routes: Vec<Route>,
    /// Valid values by parameter name: as JSON for bodies; strings go into
    /// URLs encoded.
    valid: HashMap<&'static str, Value>,
    /// Checks a 4xx answer's shape; answers what is wrong.
    shape: fn(&str, &[u8]) -> Result<(), String>,
}

/// One request: a route and, per slot, `None` (valid) or an extreme value.
#[derive(Debug, Clone)]
struct Case {
    route: usize,
    values: Vec<Option<String>>,
}

impl Target {
    fn valid_text(&self, name: &str) -> String {
        match self.valid.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => panic!("no valid value for `{name}`"),
        }
    }

    fn valid_url(&self, name: &str) -> String {
        url::form_urlencoded::byte_serialize(self.valid_text(name).as_bytes()).collect()
    }

    /// The method, URL and body of a case.
    fn request(&self, case: &Case) -> (Method, String, Option<String>) {
        let r = &self.routes[case.route];
        let slots = r.slots();
        let value = |slot: &Slot| slots.iter().position(|s| s == slot).and_then(|i| case.values[i].clone());
        let mut path = r.path.to_owned();
        let mut query = Vec::new();
        let mut body = r.body.map(|b| serde_json::from_str::<Value>(b).expect("body template"));
        for slot in &slots {
            match slot {
                Slot::Path(name) => {
                    let v = value(slot).unwrap_or_else(|| self.valid_url(name));
                    path = path.replacen(&format!("{{{name}}}"), &v, 1);
                }
                Slot::Query(name) => {
                    let v = value(slot).unwrap_or_else(|| self.valid_url(name));
                    query.push(format!("{name}={v}"));
                }
                Slot::Body(name) => {
                    let v = match value(slot) {
                        Some(x) => body_value(&body_text(&x)),
                        None => self.valid.get(name.as_str()).cloned().expect("a valid body value"),
                    };
                    if let Some(b) = body.as_mut() {
                        fill(b, name, &v);
                    }
                }
            }
        }
        let mut url = self.app.url(&format!("{}{path}", self.prefix));
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        (r.method.clone(), url, body.map(|b| b.to_string()))
    }

    /// Sends a case; answers a description of what went wrong, if anything.
    async fn probe(&self, case: &Case) -> Result<(), String> {
        let (method, url, body) = self.request(case);
        let shown = format!("{method} {}", url.chars().take(300).collect::<String>());
        let mut b = self.app.client.request(method, &url).header(self.auth.0, &self.auth.1);
        if let Some(body) = body {
            let fhir = matches!(self.prefix, "/embassy" | "/naboto");
            let ct = if fhir { "application/fhir+json" } else { "application/json" };
            b = b.header("content-type", ct).body(body);
        }
        let r = b.send().await.map_err(|e| format!("{shown}: no answer ({e})"))?;
        let status = r.status().as_u16();
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let bytes = r.bytes().await.map_err(|e| format!("{shown}: the answer broke off ({e})"))?;
        let text = || String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>();
        match status {
            200..=399 => Ok(()),
            400..=499 => {
                (self.shape)(&ct, &bytes).map_err(|e| format!("{shown}: {status} not in shape: {e}: {}", text()))
            }
            _ => Err(format!("{shown}: {status}: {}", text())),
        }
    }

    /// Every GET with every parameter valid answers 2xx (or a documented
    /// 404 for an empty queue): the valid values the sweep varies from are
    /// real, so each extreme value is the one thing wrong with its request.
    async fn baseline(&self) {
        for (i, r) in self.routes.iter().enumerate().filter(|(_, r)| r.method == Method::GET) {
            let case = Case { route: i, values: vec![None; r.slots().len()] };
            let (_, url, _) = self.request(&case);
            let resp = self.app.client.get(&url).header(self.auth.0, &self.auth.1).send().await.unwrap();
            let status = resp.status().as_u16();
            let queue = r.path.starts_with("/notifications") && status == 404;
            assert!(resp.status().is_success() || queue, "{url}: {status} {}", resp.text().await.unwrap());
        }
    }

    /// Every route, every slot, every extreme value, the other slots valid.
    async fn sweep(&self) {
        let extremes = extremes();
        let mut failures = Vec::new();
        let mut sent = 0;
        for (i, r) in self.routes.iter().enumerate() {
            let n = r.slots().len();
            for slot in 0..n {
                for x in &extremes {
                    let mut values = vec![None; n];
                    values[slot] = Some(x.clone());
                    if let Err(e) = self.probe(&Case { route: i, values }).await {
                        failures.push(e);
                    }
                    sent += 1;
                }
            }
        }
        eprintln!("{}: {sent} probes, {} failed", self.prefix, failures.len());
        assert!(failures.is_empty(), "{} of {sent} probes failed:\n{}", failures.len(), failures.join("\n"));
    }
}

/// Random cases: any route, each slot valid or extreme, at least one extreme.
fn cases(routes: Vec<(usize, usize)>) -> impl Strategy<Value = Case> {
    let extremes = extremes();
    prop::sample::select(routes).prop_flat_map(move |(route, n)| {
        let slot = prop_oneof![2 => Just(None), 1 => prop::sample::select(extremes.clone()).prop_map(Some)];
        (0..n, prop::sample::select(extremes.clone()), prop::collection::vec(slot, n)).prop_map(
            move |(forced, x, mut values)| {
                values[forced] = Some(x);
                Case { route, values }
            },
        )
    })
}

/// The property: a fixed, deterministic number of random cases against the
/// one running server, shrunk to the smallest failing case.
async fn property(target: Arc<Target>, cases_count: u32) {
    let handle = tokio::runtime::Handle::current();
    let shape: Vec<(usize, usize)> =
        target.routes.iter().enumerate().map(|(i, r)| (i, r.slots().len())).filter(|(_, n)| *n > 0).collect();
    tokio::task::spawn_blocking(move || {
        let config = Config { cases: cases_count, failure_persistence: None, ..Config::default() };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&cases(shape), |case| {
            let (_, url, _) = target.request(&case);
            // Beyond hyper's URI limit the answer is hyper's 414, before any route.
            prop_assume!(url.len() < 60_000);
            handle.block_on(target.probe(&case)).map_err(TestCaseError::fail)
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    })
    .await
    .expect("the property ran");
}

// ------------------------------------------------------------------ shapes

fn docplanner_shape(ct: &str, body: &[u8]) -> Result<(), String> {
    if ct != dp_error_type() {
        return Err(format!("content type `{ct}`"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let errors_ok = v.get("errors").is_some_and(|e| e.is_array() || e.is_object());
    if !v.get("message").is_some_and(Value::is_string) || !errors_ok || v.as_object().map(|m| m.len()) != Some(2) {
        return Err("not {errors, message}".into());
    }
    Ok(())
}

fn dp_error_type() -> &'static str {
    "application/vnd.error+docplanner+json"
}

fn embassy_shape(ct: &str, body: &[u8]) -> Result<(), String> {
    if !ct.starts_with("application/fhir+json") {
        return Err(format!("content type `{ct}`"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["resourceType"] != "OperationOutcome" || !v["issue"][0]["details"]["coding"][0]["code"].is_string() {
        return Err("not an OperationOutcome with an error code".into());
    }
    Ok(())
}

/// Naboto's error: an OperationOutcome with a stable code and a human message.
fn naboto_shape(ct: &str, body: &[u8]) -> Result<(), String> {
    if !ct.starts_with("application/fhir+json") {
        return Err(format!("content type `{ct}`"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let issue = &v["issue"][0];
    if v["resourceType"] != "OperationOutcome" || !issue["details"]["coding"][0]["code"].is_string() {
        return Err("not an OperationOutcome with an error code".into());
    }
    if issue["diagnostics"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Err("no human message in `issue[0].diagnostics`".into());
    }
    Ok(())
}

fn admin_shape(ct: &str, body: &[u8]) -> Result<(), String> {
    if !ct.starts_with("application/json") {
        return Err(format!("content type `{ct}`"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if !v["error"]["code"].is_string() || !v["error"]["message"].is_string() {
        return Err("not {error: {code, message}}".into());
    }
    Ok(())
}

// -------------------------------------------------------------- docplanner

const A: &str = "/facilities/{f}/doctors/{d}/addresses/{a}";

/// Every route of the Docplanner router, with the parameters it reads.
fn docplanner_routes() -> Vec<Route> {
    let at = |rest: &str| -> &'static str { Box::leak(format!("{A}{rest}").into_boxed_str()) };
    let g = Method::GET;
    vec![
        route(g.clone(), "/facilities", &["with"], None),
        route(g.clone(), "/facilities/{f}", &["with"], None),
        route(g.clone(), "/facilities/{f}/doctors", &["with"], None),
        route(g.clone(), "/facilities/{f}/doctors/{d}", &["with"], None),
        route(g.clone(), "/facilities/{f}/doctors/{d}/addresses", &["with"], None),
        route(g.clone(), A, &["with"], None),
        route(Method::PATCH, A, &["with"], Some(r#"{"insurance_support": "$insurance_support"}"#)),
        route(g.clone(), "/services", &["with"], None),
        route(g.clone(), "/insurance-providers", &["with"], None),
        route(g.clone(), "/insurance-providers/{p}/plans", &["with"], None),
        route(g.clone(), at("/services"), &["start", "with"], None),
        route(
            Method::POST,
            at("/services"),
            &["with"],
            Some(
                r#"{"service_id": "$service_id", "price": "$price", "is_price_from": false, "default_duration": "$duration"}"#,
            ),
        ),
        route(g.clone(), at("/services/{s}"), &["with"], None),
        route(
            Method::PATCH,
            at("/services/{s}"),
            &["with"],
            Some(r#"{"price": "$price", "default_duration": "$duration", "description": "$description"}"#),
        ),
        route(g.clone(), at("/insurance-providers"), &["with"], None),
        route(
            Method::POST,
            at("/insurance-providers"),
            &[],
            Some(r#"{"insurance_provider_id": "$p", "insurance_plans": [{"insurance_plan_id": "$plan"}]}"#),
        ),
        route(
            Method::PUT,
            at("/insurance-providers"),
            &[],
            Some(r#"{"insurance_provider_id": "$p", "insurance_plans": [{"insurance_plan_id": "$plan"}]}"#),
        ),
        route(g.clone(), at("/calendar"), &["with"], None),
        route(Method::POST, at("/calendar/enable"), &[], None),
        route(g.clone(), at("/breaks"), &["since", "till", "with"], None),
        route(
            Method::POST,
            at("/breaks"),
            &[],
            Some(r#"{"since": "$since", "till": "$till", "description": "$description"}"#),
        ),
        route(g.clone(), at("/breaks/{k}"), &["with"], None),
        route(Method::PATCH, at("/breaks/{k}"), &[], Some(r#"{"since": "$since", "till": "$till"}"#)),
        route(g.clone(), at("/slots"), &["start", "end", "with"], None),
        route(
            Method::PUT,
            at("/slots"),
            &[],
            Some(
                r#"{"slots": [{"start": "$start", "end": "$end",
                    "address_services": [{"address_service_id": "$s", "duration": "$duration"}]}]}"#,
            ),
        ),
        route(
            Method::POST,
            at("/slots/{t}/book"),
            &[],
            Some(
                r#"{"address_service_id": "$s", "duration": "$duration", "label": "$description",
                    "insurance_provider_id": "$p", "insurance_plan_id": "$plan",
                    "patient": {"name": "Abraham", "surname": "Lincoln", "phone": "$phone",
                                "birth_date": "$birth_date", "nin": "$nin"}}"#,
            ),
        ),
        route(g.clone(), at("/bookings"), &["start", "end", "page", "limit", "with"], None),
        route(g.clone(), at("/bookings/{b}"), &["with"], None),
        route(Method::PUT, at("/bookings/{b}/confirm"), &[], Some(r#"{"confirmed_by": "$confirmed_by"}"#)),
        route(Method::POST, at("/bookings/{b}/presence/patient"), &[], None),
        route(Method::DELETE, at("/bookings/{b}/presence/patient"), &[], None),
        route(
            Method::POST,
            at("/bookings/{m}/move"),
            &[],
            Some(r#"{"address_service_id": "$s", "start": "$start", "duration": "$duration", "address_id": "$a"}"#),
        ),
        route(
            Method::POST,
            at("/bookings/{n}"),
            &[],
            Some(r#"{"address_service_id": "$s", "start": "$start", "duration": "$duration"}"#),
        ),
        route(Method::PUT, "/facilities/{f}/doctors/{d}/opinion-request", &[], Some(r#"{"phone": "$phone"}"#)),
        route(g.clone(), "/notifications", &[], None),
        route(g.clone(), "/notifications/multiple", &["limit"], None),
        route(Method::POST, "/notifications/release", &[], None),
        // Destructive ones last: with every parameter valid they remove what
        // the routes above read (the property never sends all valid).
        route(Method::DELETE, at("/slots/{day}"), &[], None),
        route(Method::DELETE, at("/breaks/{k}"), &[], None),
        route(Method::DELETE, at("/bookings/{c}"), &[], Some(r#"{"reason": "$description"}"#)),
        route(Method::DELETE, at("/insurance-providers/{p}"), &[], None),
        route(Method::DELETE, at("/services/{s}"), &[], None),
        route(Method::POST, at("/calendar/disable"), &[], None),
        route(Method::DELETE, at("/integration"), &[], None),
    ]
}

/// A seeded Docplanner tenant: services, insurance, a work period, a break
/// and three bookings (read, moved, cancelled).
async fn docplanner_target(engine: Engine) -> Target {
    let ctx: Ctx = dp::setup(engine).await;
    let call = |m: Method, path: String, body: Value| {
        let (app, token) = (&ctx.app, ctx.token.clone());
        async move { dp::call(app, &token, m, &path, Some(body)).await }
    };
    let r =
        call(Method::POST, ctx.at("/services"), json!({"service_id": "1", "price": 100, "is_price_from": false})).await;
    assert_eq!(r.status(), 201);
    let s = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let r = call(Method::POST, ctx.at("/insurance-providers"), json!({"insurance_provider_id": 3})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let r = call(
        Method::PUT,
        ctx.at("/slots"),
        json!({"slots": [{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T15:00:00+01:00",
            "address_services": [{"address_service_id": s, "duration": 20}]}]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = call(
        Method::POST,
        ctx.at("/breaks"),
        json!({"since": "2030-03-05T14:00:00+01:00", "till": "2030-03-05T14:20:00+01:00"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let k = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let mut bookings = Vec::new();
    let starts = ["09:00", "09:20", "09:40", "10:00"].map(|t| format!("2030-03-05T{t}:00+01:00"));
    for start in &starts {
        let body = json!({"address_service_id": s, "duration": 20,
            "patient": {"name": "Abraham", "surname": "Lincoln", "phone": 48123123123_i64}});
        let b = dp::expect_ok(call(Method::POST, ctx.at(&format!("/slots/{}/book", enc(start))), body).await).await;
        bookings.push(b["id"].as_str().unwrap().to_owned());
    }
    let valid: HashMap<&'static str, Value> = [
        ("f", json!(ctx.hosp)),
        ("d", json!(ctx.ann)),
        ("a", json!(ctx.address)),
        ("s", json!(s)),
        ("k", json!(k)),
        ("p", json!("3")),
        ("plan", json!("31")),
        ("b", json!(bookings[0])),
        ("m", json!(bookings[1])),
        ("c", json!(bookings[2])),
        ("n", json!(bookings[3])),
        ("t", json!("2030-03-05T10:20:00+01:00")),
        ("confirmed_by", json!("user")),
        ("day", json!("2030-03-12")),
        ("with", json!("booking.patient,address.services")),
        ("start", json!("2030-03-05T11:00:00+01:00")),
        ("end", json!("2030-03-05T12:00:00+01:00")),
        ("since", json!("2030-03-06T10:00:00+01:00")),
        ("till", json!("2030-03-06T11:00:00+01:00")),
        ("page", json!("1")),
        ("limit", json!("10")),
        ("duration", json!(20)),
        ("price", json!(100)),
        ("service_id", json!("5")),
        ("description", json!("text")),
        ("insurance_support", json!("private")),
        ("phone", json!("48123123123")),
        ("birth_date", json!("1985-01-01")),
        ("nin", json!("894237492")),
    ]
    .into_iter()
    .collect();
    Target {
        auth: ("authorization", format!("Bearer {}", ctx.token)),
        app: ctx.app,
        prefix: "/api/v3/integration",
        routes: docplanner_routes(),
        valid,
        shape: docplanner_shape,
    }
}

/// `POST /oauth/v2/token`: every form field extreme, the others valid; a
/// 2xx or a 4xx in the OAuth shape `{"error", "error_description"}`. Last,
/// because failed authentications lock the address out for the minute.
async fn token_sweep(app: &TestApp) {
    let valid = [
        ("grant_type", "client_credentials"),
        ("client_id", "dp-acme"),
        ("client_secret", "dp-secret"),
        ("scope", "integration"),
    ];
    let mut failures = Vec::new();
    for field in 0..valid.len() {
        for x in extremes() {
            let form: Vec<String> = valid
                .iter()
                .enumerate()
                .map(|(i, (k, v))| if i == field { format!("{k}={x}") } else { format!("{k}={v}") })
                .collect();
            let r = app
                .client
                .post(app.url("/oauth/v2/token"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.join("&"))
                .send()
                .await;
            let shown = format!("token with {}={}", valid[field].0, x.chars().take(40).collect::<String>());
            let Ok(r) = r else {
                failures.push(format!("{shown}: no answer"));
                continue;
            };
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let shaped = body["error"].is_string() || body["error"].is_object();
            if status >= 500 || (status >= 400 && !shaped) {
                failures.push(format!("{shown}: {status} {body}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn docplanner_answers_extreme_inputs_with_4xx_in_its_shape(engine: Engine) {
    let target = Arc::new(docplanner_target(engine).await);
    target.baseline().await;
    target.sweep().await;
    property(target.clone(), 300).await;
    token_sweep(&target.app).await;
    Arc::try_unwrap(target).ok().expect("the property is done with the target").app.stop().await;
}

// ----------------------------------------------------------------- embassy

/// Every route of the Embassy router, with the parameters it reads.
fn embassy_routes() -> Vec<Route> {
    let g = Method::GET;
    let paging: &[&str] = &["_id", "skip", "_count", "_format"];
    let parameters = |path: &str, value: &str, kind: &str| -> String {
        format!(
            r#"{{"name": "operation", "part": [{{"name": "type", "valueCode": "replace"}},
                {{"name": "path", "valueString": "{path}"}}, {{"name": "value", "{kind}": "{value}"}}]}}"#
        )
    };
    let patch = |ops: Vec<String>| -> &'static str {
        Box::leak(format!(r#"{{"resourceType": "Parameters", "parameter": [{}]}}"#, ops.join(",")).into_boxed_str())
    };
    vec![
        route(g.clone(), "/metadata", &["_format"], None),
        route(g.clone(), "/HealthcareService", paging, None),
        route(Method::POST, "/HealthcareService/_search", paging, Some("{}")),
        route(g.clone(), "/HealthcareService/{gp}", &["_format"], None),
        route(
            g.clone(),
            "/Practitioner",
            &["_id", "healthcareServiceId", "hasCommunicationPrivileges", "skip", "_count", "_format"],
            None,
        ),
        route(Method::POST, "/Practitioner/_search", &["healthcareServiceId", "skip", "_count"], Some("{}")),
        route(g.clone(), "/Practitioner/{ann}", &["_format"], None),
        route(g.clone(), "/CodeSystem/{cs}", &["_format"], None),
        route(g.clone(), "/Patient", &["_id", "identifier", "skip", "_count", "_format"], None),
        route(Method::POST, "/Patient/_search", &["identifier", "skip", "_count"], Some("{}")),
        route(
            Method::POST,
            "/Patient",
            &[],
            Some(
                r#"{"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
                    "birthDate": "$birth_date",
                    "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "$nin"}]}"#,
            ),
        ),
        route(g.clone(), "/Patient/{pt}", &["_format"], None),
        route(
            Method::PATCH,
            "/Patient/{pt}",
            &[],
            Some(patch(vec![parameters("/phoneNumber", "$phone", "valueString")])),
        ),
        route(
            g.clone(),
            "/Appointment",
            &[
                "start",
                "end",
                "healthcareServiceId",
                "patientId",
                "patientNationalIdentificationNumber",
                "patientPhone",
                "_id",
                "skip",
                "_count",
                "_format",
            ],
            None,
        ),
        route(
            Method::POST,
            "/Appointment/_search",
            &["start", "end", "healthcareServiceId", "patientId", "skip", "_count"],
            Some("{}"),
        ),
        route(
            Method::POST,
            "/Appointment",
            &[],
            Some(
                r#"{"resourceType": "Appointment", "status": "booked", "start": "$start", "end": "$end",
                "participant": [
                  {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
                   "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/hsaid", "value": "SE2321000016-0001"}}},
                  {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/nationalidentificationnumber/se", "value": "$nin"}}},
                  {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": "$gp"}}}]}"#,
            ),
        ),
        route(g.clone(), "/Appointment/{ap}", &["_format"], None),
        route(
            Method::PATCH,
            "/Appointment/{ap}",
            &[],
            Some(patch(vec![
                parameters("/start", "$start", "valueDateTime"),
                parameters("/end", "$end", "valueDateTime"),
            ])),
        ),
        route(g.clone(), "/CommunicationRequest/{cr}", &["_format"], None),
        route(g.clone(), "/Communication/{cm}", &["_format"], None),
        route(g.clone(), "/SubscriptionTopic", &["_format"], None),
        route(g.clone(), "/SubscriptionTopic/{topic}", &["_format"], None),
        route(g.clone(), "/Subscription", &["_format"], None),
        route(g.clone(), "/Subscription/$status", &["_format"], None),
        route(g.clone(), "/Subscription/{sub}", &["_format"], None),
        route(g.clone(), "/Subscription/{sub}/$status", &["_format"], None),
        route(
            g.clone(),
            "/Subscription/{sub}/$events",
            &["eventsSinceNumber", "eventsUntilNumber", "content", "_format"],
            None,
        ),
        route(
            Method::PATCH,
            "/Subscription/{sub}",
            &[],
            Some(patch(vec![parameters("/status", "$status", "valueCode")])),
        ),
        route(Method::DELETE, "/Subscription/{sub}", &[], None),
    ]
}

/// Eva Holm, 198001011231, created through Embassy; answers her id.
async fn embassy_patient(app: &TestApp) -> String {
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber",
                            "value": "198001011231"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"].as_str().expect("the patient's id").to_owned()
}

/// A seeded Embassy tenant: a patient, an appointment, a subscription.
async fn embassy_target(engine: Engine) -> (Target, Receiver) {
    let app = spawn_app(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let t = &ids["tenants"]["acme"];
    let (gp, ann) = (t["healthcare_services"]["gp"].as_str().unwrap(), t["practitioners"]["ann"].as_str().unwrap());
    let pt = embassy_patient(&app).await;
    let r = dp::embassy_appointment(&app, gp, "2030-03-11T09:00:00+01:00", "2030-03-11T09:15:00+01:00").await;
    let status = r.status();
    let ap: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{ap}");
    // A conversation: a request by Ann and the patient's answer.
    let logical =
        |kind: &str, system: &str, value: &str| json!({"type": kind, "identifier": {"system": system, "value": value}});
    let nid = "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber";
    let email = "http://schema.visibacare.com/identifier/practitioner/email";
    let service = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";
    let post = |path: &'static str, body: Value| {
        app.embassy(Method::POST, path).header("content-type", "application/fhir+json").json(&body).send()
    };
    let r = post(
        "/CommunicationRequest",
        json!({"resourceType": "CommunicationRequest", "status": "active",
            "subject": logical("Patient", nid, "198001011231"),
            "recipient": [logical("HealthcareService", service, gp), logical("Practitioner", email, "ann@acme.test"),
                          logical("Patient", nid, "198001011231")],
            "sender": logical("Practitioner", email, "ann@acme.test"),
            "requester": logical("Practitioner", email, "ann@acme.test"),
            "payload": [{"content": {"contentString": "How are you feeling?"}}],
            "extension": [{"url": "https://schema.visibacare.com/fhir/StructureDefinition/patient-response-enabled-extension",
                           "valueBoolean": true}]}),
    )
    .await
    .unwrap();
    let (status, body) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let cr = body["id"].as_str().unwrap().to_owned();
    let r = post(
        "/Communication",
        json!({"resourceType": "Communication", "status": "completed",
            "basedOn": [{"type": "CommunicationRequest", "identifier": {"system": "x", "value": cr}}],
            "sender": logical("Patient", nid, "198001011231"),
            "payload": [{"content": {"contentString": "Better, thanks"}}]}),
    )
    .await
    .unwrap();
    let (status, body) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!(status, 200, "{body}");
    let cm = body["id"].as_str().unwrap().to_owned();
    let rx = Receiver::start().await;
    let r = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Subscription", "reason": "r", "status": "requested",
            "criteria": "http://example.com/SubscriptionTopic/1",
            "channel": {"endpoint": rx.url, "payload": "application/fhir+json", "type": "rest-hook"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sub: Value = r.json().await.unwrap();
    let valid: HashMap<&'static str, Value> = [
        ("gp", json!(gp)),
        ("ann", json!(ann)),
        ("cs", json!(format!("HealthcareService.{gp}.ReasonCode"))),
        ("pt", json!(pt)),
        ("ap", ap["id"].clone()),
        ("cr", json!(cr)),
        ("cm", json!(cm)),
        ("topic", json!("1")),
        ("sub", sub["id"].clone()),
        ("_id", json!(gp)),
        ("skip", json!("0")),
        ("_count", json!("10")),
        ("_format", json!("application/fhir+json")),
        ("healthcareServiceId", json!(gp)),
        ("hasCommunicationPrivileges", json!("true")),
        ("identifier", json!("198001011231")),
        ("patientId", json!(pt)),
        ("patientNationalIdentificationNumber", json!("198001011231")),
        ("patientPhone", json!("+46701234567")),
        ("start", json!("2030-03-11T10:00:00+01:00")),
        ("end", json!("2030-03-11T10:15:00+01:00")),
        ("eventsSinceNumber", json!("1")),
        ("eventsUntilNumber", json!("5")),
        ("content", json!("id-only")),
        ("nin", json!("198001011231")),
        ("birth_date", json!("1980-01-01")),
        ("phone", json!("+46701234567")),
        ("status", json!("off")),
    ]
    .into_iter()
    .collect();
    let target = Target {
        app,
        prefix: "/embassy",
        auth: ("x-visiba-care-api-key", "emb-acme-1".into()),
        routes: embassy_routes(),
        valid,
        shape: embassy_shape,
    };
    (target, rx)
}

async fn embassy_answers_extreme_inputs_with_4xx_in_its_shape(engine: Engine) {
    let (target, _rx) = embassy_target(engine).await;
    let target = Arc::new(target);
    target.baseline().await;
    target.sweep().await;
    property(target.clone(), 300).await;
    Arc::try_unwrap(target).ok().expect("the property is done with the target").app.stop().await;
}

// ------------------------------------------------------------------ naboto

/// A body template: `body` with the string `"$name"` put at each JSON
/// pointer (an object's key is added when missing).
fn template(mut body: Value, at: &[(&str, &str)]) -> &'static str {
    for (pointer, name) in at {
        let (parent, key) = pointer.rsplit_once('/').expect("a JSON pointer");
        let placeholder = Value::String(format!("${name}"));
        match body.pointer_mut(parent) {
            Some(Value::Object(o)) => {
                o.insert(key.to_owned(), placeholder);
            }
            Some(Value::Array(a)) => a[key.parse::<usize>().expect("an index")] = placeholder,
            _ => panic!("nothing at {parent}"),
        }
    }
    Box::leak(body.to_string().into_boxed_str())
}

/// Every route of the Naboto router, with the parameters it reads; bodies
/// are the IG's examples, their time, number, id and text fields
/// placeholders. The searches come twice more, with the extreme value as the
/// token's value or system (the raw `identifier` rarely gets past its `|`).
fn naboto_routes() -> Vec<Route> {
    let g = Method::GET;
    let patient = |with_id: bool| {
        let mut at = vec![
            ("/identifier/0/value", "ss"),
            ("/identifier/1/value", "pi"),
            ("/telecom/0/value", "email"),
            ("/telecom/0/rank", "rank"),
            ("/telecom/1/value", "sms"),
            ("/birthDate", "birth_date"),
            ("/name/0/family", "family"),
        ];
        if with_id {
            at.push(("/id", "pt"));
        }
        template(nb::new_patient(), &at)
    };
    let appointment = |with_id: bool| {
        let mut at = vec![
            ("/start", "start"),
            ("/end", "end"),
            ("/participant/0/actor/reference", "ann_ref"),
            ("/participant/1/actor/reference", "pt_ref"),
            ("/extension/0/extension/0/valueAnnotation/text", "note"),
        ];
        let mut body = nb::new_appointment("0", "0");
        if with_id {
            at.push(("/id", "ap"));
            at.push(("/identifier/0/value", "ext"));
        } else {
            // A create with the seeded appointment's identifier would stop
            // at `DuplicateIdentifier`, before the booking.
            body.as_object_mut().expect("an object").remove("identifier");
        }
        template(body, &at)
    };
    vec![
        route(g.clone(), "/metadata", &[], None),
        route(Method::POST, "/patient", &[], Some(patient(false))),
        route(Method::PUT, "/patient", &[], Some(patient(true))),
        route(Method::PUT, "/patient/{pt}", &[], Some(patient(true))),
        route(g.clone(), "/patient/{pt}", &[], None),
        route(g.clone(), "/patient", &["identifier"], None),
        route(g.clone(), "/patient?identifier=urn:oid:1.2.40.0.10.1.4.3.1%7C{ss}", &[], None),
        route(g.clone(), "/patient?identifier={system}%7C0815", &[], None),
        route(Method::POST, "/appointment", &[], Some(appointment(false))),
        route(Method::PUT, "/appointment", &[], Some(appointment(true))),
        route(Method::PUT, "/appointment/{ap}", &[], Some(appointment(true))),
        route(g.clone(), "/appointment/{ap}", &[], None),
        route(g.clone(), "/appointment", &["identifier"], None),
        route(g.clone(), "/appointment?identifier=https://third-party-system/appointment%7C{ext}", &[], None),
    ]
}

/// A seeded Naboto tenant: the IG's example patient and appointment.
async fn naboto_target(engine: Engine) -> Target {
    let app = nb::setup(engine).await;
    let (pt, ann) = (nb::create_patient(&app).await, nb::ann(&app).await);
    let r = nb::send(&app, Method::POST, "/appointment", &nb::new_appointment(&pt, &ann)).await;
    let ap = nb::expect(r, 201).await["id"].as_str().expect("the appointment's id").to_owned();
    let valid: HashMap<&'static str, Value> = [
        ("pt", json!(pt)),
        ("ap", json!(ap)),
        ("ss", json!("1111241261")),
        ("pi", json!("0815")),
        ("system", json!("https://third-party-system/Patients")),
        ("email", json!("notarealemail@naboto.com")),
        ("rank", json!(1)),
        ("sms", json!("+436641234567890")),
        ("birth_date", json!("1970-01-01")),
        ("family", json!("Mustermann")),
        ("identifier", json!("https://third-party-system/Patients|0815")),
        ("start", json!("2022-02-02T11:00:00Z")),
        ("end", json!("2022-02-02T12:00:00Z")),
        ("ann_ref", json!(format!("Practitioner/{ann}"))),
        ("pt_ref", json!(format!("Patient/{pt}"))),
        ("note", json!("Is this treatment covered by my insurance?")),
        ("ext", json!("11223344")),
    ]
    .into_iter()
    .collect();
    Target {
        app,
        prefix: "/naboto",
        auth: ("authorization", format!("Bearer {}", nb::TOKEN)),
        routes: naboto_routes(),
        valid,
        shape: naboto_shape,
    }
}

async fn naboto_answers_extreme_inputs_with_4xx_in_its_shape(engine: Engine) {
    let target = Arc::new(naboto_target(engine).await);
    target.baseline().await;
    target.sweep().await;
    property(target.clone(), 300).await;
    Arc::try_unwrap(target).ok().expect("the property is done with the target").app.stop().await;
}

// -------------------------------------------------------------------- solo

fn solo_shape(ct: &str, body: &[u8]) -> Result<(), String> {
    if !ct.starts_with("application/json") {
        return Err(format!("content type `{ct}`"));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["error"]["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
        return Err("not {error: {message}}".into());
    }
    Ok(())
}

/// The Solo routes (patients, appointments, links, slots, episodes, visit
/// notes, files, reports, perfect answer), their ids, times, numbers and
/// texts placeholders. (`msteams-provider-link` needs a second header and
/// is left to `solo.rs`; the assistance requests answer in the document's
/// other, flat shape and are swept by `solo_assistance.rs`; binary uploads
/// by `solo_attachments.rs`.)
fn solo_routes() -> Vec<Route> {
    let g = Method::GET;
    let patient = r#"{"id": "$newid", "mrn": "$mrn", "birthDate": "$birth", "gender": "$gender",
        "deceased": true, "deceasedAt": "$dead", "name": [{"use": "usual", "firstName": "$first"}],
        "telecom": [{"system": "phone", "value": "$phone"}], "address": [{"line": ["$line"]}],
        "isLinkedByEmail": true, "sharedEmailGroup": {"type": "family", "name": "$group"}}"#;
    let booking = r#"{"date": "$date", "duration": "$dur", "waitingRoom": "$room", "externalId": "$newext",
        "episodeOfCareId": "$ep", "reasons": ["$reason"], "accountNumber": "$acct"}"#;
    let change = r#"{"date": "$date", "duration": "$dur", "status": "$status", "externalId": "$ext",
        "reasons": ["$reason"], "videoCall": {"status": "$vcs"}}"#;
    let episode = r#"{"name": "$epname", "type": "$eptype", "from": "$from", "to": "$to",
        "status": "$epstatus", "objective": "$objective", "reasonIncomplete": "$why"}"#;
    let note = r#"{"name": "$template", "questions": [{"id": "$question", "value": ["$answer"]}]}"#;
    let document =
        r#"{"name": "$docname", "dateTime": "$date", "responses": [{"question": "$q", "response": "$answer"}]}"#;
    let report = r#"{"from": "$rfrom", "to": "$rto", "presetId": "$preset", "password": "$password"}"#;
    let answer = r#"{"firstName": "$first", "lastName": "$last", "dob": "$birth", "locationId": "$location",
        "mrn": "$pamrn", "physicianCallbackNumber": "$phone", "requestingProvider": "$provider",
        "callCenterNotified": "$rfrom", "physicianNotified": "$rto", "patientLocation": "$line",
        "consultType": "$consult", "reason": "$pareason", "caller": "$provider"}"#;
    vec![
        route(g.clone(), "/waiting-rooms", &[], None),
        route(Method::POST, "/patients", &[], Some(patient)),
        route(g.clone(), "/patients/{pid}", &[], None),
        route(Method::PUT, "/patients/{pid}", &[], Some(patient)),
        route(g.clone(), "/patients/id/type/SPID/value/{spid}", &[], None),
        route(Method::PUT, "/patients/id/type/SPID/value/{spid}", &[], Some(patient)),
        route(Method::POST, "/patients/{pid}/appointments", &[], Some(booking)),
        route(Method::POST, "/patients/HSID/{hsid}/appointments", &[], Some(booking)),
        route(Method::POST, "/patients/id/type/SPID/value/{spid}/appointments", &[], Some(booking)),
        route(g.clone(), "/appointments/{ap}", &[], None),
        route(Method::PUT, "/appointments/{ap}", &[], Some(change)),
        route(g.clone(), "/appointments/{ap}/provider-link", &[], None),
        route(g.clone(), "/appointments/{ext}/video-call-links", &[], None),
        route(g.clone(), "/appointments/id/type/SAID/value/{ap}/video-call-links", &[], None),
        route(g.clone(), "/appointment-slots", &["after", "before", "waitingRoom", "duration"], None),
        route(Method::POST, "/patients/{pid}/episodes", &[], Some(episode)),
        route(g.clone(), "/patients/{pid}/episodes", &[], None),
        route(g.clone(), "/episodes/{epid}", &[], None),
        route(Method::PUT, "/episodes/{epid}", &[], Some(episode)),
        route(g.clone(), "/episodes/{epid}/appointments", &[], None),
        route(Method::PUT, "/appointments/{ap}/episode/assign", &[], Some(r#"{"episodeId": "$epid"}"#)),
        route(g.clone(), "/appointments/{ap}/visit-note", &[], None),
        route(Method::PUT, "/appointments/{ap}/visit-note", &[], Some(note)),
        route(g.clone(), "/appointments/{ap}/visit-note/versions", &[], None),
        route(g.clone(), "/appointments/{ap}/attachments", &[], None),
        route(g.clone(), "/patients/{pid}/documents", &[], None),
        route(Method::POST, "/patients/{pid}/documents", &[], Some(document)),
        route(g.clone(), "/reports/csv-data-dump", &["from", "to"], None),
        route(Method::POST, "/encounter-report/create", &[], Some(report)),
        route(Method::POST, "/perfect-answer", &[], Some(answer)),
    ]
}

/// A seeded Solo tenant: the document's example patient and one booking.
async fn solo_target(engine: Engine) -> Target {
    use crate::sl;
    let app = sl::setup(engine).await;
    let spid = sl::create_patient(&app, "p-1").await;
    let body = json!({"date": sl::T0 + 900, "waitingRoom": sl::GP, "externalId": "ext-1"});
    let r = sl::send(&app, Method::POST, "/patients/p-1/appointments", &body).await;
    let ap = sl::expect(r, 201).await["id"].as_i64().expect("the appointment's id");
    let episode = json!({"name": "care", "type": "covid", "from": "2030-03-01", "status": "ACTIVE"});
    let r = sl::send(&app, Method::POST, "/patients/p-1/episodes", &episode).await;
    let epid = sl::expect(r, 201).await["episodeId"].as_str().expect("the episode's id").to_owned();
    let valid: HashMap<&'static str, Value> = [
        ("pid", json!("p-1")),
        ("spid", json!(spid.to_string())),
        ("hsid", json!("MRN-p-1")),
        ("ap", json!(ap.to_string())),
        ("ext", json!("ext-1")),
        ("newid", json!("p-2")),
        ("newext", json!("ext-2")),
        ("mrn", json!("MRN-p-1")),
        ("birth", json!("1983-08-15")),
        ("gender", json!("male")),
        ("dead", json!("2020-03-31 10:12 AM")),
        ("first", json!("Mike")),
        ("phone", json!("+1 (111) 111-1111")),
        ("line", json!("123 Main St")),
        ("group", json!("Family Name")),
        ("date", json!(sl::T0 + 900)),
        ("dur", json!(900)),
        ("room", json!(sl::GP)),
        ("ep", json!(epid)),
        ("epid", json!(epid)),
        ("epname", json!("covid care")),
        ("eptype", json!("covid")),
        ("from", json!("2030-03-01")),
        ("to", json!("2030-03-31")),
        ("epstatus", json!("ACTIVE")),
        ("objective", json!("recover")),
        ("why", json!("unknown")),
        ("template", json!("Acute Neurology - Physician Services")),
        ("question", json!("923c5621-66a1-49a3-aa7b-a7753cbfd139")),
        ("answer", json!("Male")),
        ("docname", json!("intake")),
        ("q", json!("question 1")),
        ("rfrom", json!("2030-03-01T00:00:00+00:00")),
        ("rto", json!("2030-03-31T00:00:00+00:00")),
        ("preset", json!("a2c6e3fc-c2f7-4a24-a0d6-eb2343a15469")),
        ("password", json!("IK5adv2N5V-gr£9v6")),
        ("last", json!("Doe")),
        ("location", json!("6a1f1a34-3f6b-4c1e-9d55-3c2b7f0e9a11")),
        ("pamrn", json!("AA-00000001")),
        ("provider", json!("Bob Dylan")),
        ("consult", json!("new")),
        ("pareason", json!("Stroke")),
        ("reason", json!("headache")),
        ("acct", json!("ABC123")),
        ("status", json!("scheduled")),
        ("vcs", json!("waiting")),
        ("after", json!(sl::T0.to_string())),
        ("before", json!((sl::T0 + 86_400).to_string())),
        ("waitingRoom", json!(sl::GP)),
        ("duration", json!("900")),
    ]
    .into_iter()
    .collect();
    Target {
        app,
        prefix: "/qapi/v1",
        auth: ("Api-Key", sl::KEY.into()),
        routes: solo_routes(),
        valid,
        shape: solo_shape,
    }
}

async fn solo_answers_extreme_inputs_with_4xx_in_its_shape(engine: Engine) {
    let target = Arc::new(solo_target(engine).await);
    target.baseline().await;
    target.sweep().await;
    property(target.clone(), 300).await;
    Arc::try_unwrap(target).ok().expect("the property is done with the target").app.stop().await;
}

// ------------------------------------------------------------------- admin

/// The admin API: its query parameters and the clock's body, and after
/// every clock probe, run-due still answers.
async fn admin_answers_extreme_inputs_with_4xx_in_its_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&dp::seed()).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let target = Target {
        auth: ("authorization", format!("Bearer {}", app.admin_token)),
        app,
        prefix: "/admin",
        routes: vec![
            route(Method::GET, "/messages", &["tenant"], None),
            route(Method::GET, "/deliveries", &["tenant"], None),
            route(Method::GET, "/tenants", &[], None),
            route(Method::POST, "/clock", &[], Some(r#"{"now": "$now"}"#)),
            route(Method::POST, "/clock", &[], Some(r#"{"advance_seconds": "$advance"}"#)),
            route(Method::POST, "/run-due", &[], None),
        ],
        valid: [("tenant", json!("acme")), ("now", json!("2030-03-04T08:00:00Z")), ("advance", json!(60))]
            .into_iter()
            .collect(),
        shape: admin_shape,
    };
    target.sweep().await;
    // Whatever the probes left the clock at, the engine runs and answers.
    let r = target.app.admin(Method::POST, "/admin/run-due").send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let target = Arc::new(target);
    property(target.clone(), 100).await;
    Arc::try_unwrap(target).ok().expect("the property is done with the target").app.stop().await;
}

// ------------------------------------------------------ named regressions

/// `page * limit` past i64: the dialect's 4xx, not a wrapped (negative)
/// offset that PostgreSQL refused with a 500.
async fn a_booking_page_near_i64_max_is_refused(engine: Engine) {
    let ctx = dp::setup(engine).await;
    let q = format!(
        "/bookings?start={}&end={}&page=9223372036854775807&limit=100",
        enc("2030-03-04T00:00:00+01:00"),
        enc("2030-03-05T00:00:00+01:00")
    );
    let r = dp::api(&ctx.app, &ctx.token, &ctx.at(&q)).await;
    // The list's query problems answer 404 (the only client error the
    // document gives the list), with the largest page allowed.
    dp::expect_error(r, 404, "Param \"page\" should be 92233720368547759 or less.").await;
    // The largest page whose position fits is an empty page, not an error.
    let q = q.replace("9223372036854775807", "92233720368547759");
    let body = dp::expect_ok(dp::api(&ctx.app, &ctx.token, &ctx.at(&q)).await).await;
    assert_eq!(body["_items"], json!([]));
    assert_eq!(body["page"], 92233720368547759_i64);
    ctx.app.stop().await;
}

/// Slot and booking starts near the end of the time range: 400 "Invalid date
/// given." (the supported range ends with the year 9000), nothing written.
async fn slot_and_booking_starts_near_the_end_of_time_are_refused(engine: Engine) {
    let ctx = dp::setup(engine).await;
    let call = |m: Method, path: String, body: Option<Value>| {
        let (app, token) = (&ctx.app, ctx.token.clone());
        async move { dp::call(app, &token, m, &path, body).await }
    };
    let r = call(Method::POST, ctx.at("/services"), Some(json!({"service_id": "1", "price": 1}))).await;
    assert_eq!(r.status(), 201);
    let s = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    for start in ["9999-12-30T23:59:00+00:00", "9999-12-30T21:00:00+00:00", "9001-01-01T00:00:00+00:00"] {
        let end = "9999-12-30T22:00:00+00:00";
        let r = call(
            Method::PUT,
            ctx.at("/slots"),
            Some(json!({"slots": [{"start": start, "end": end,
                "address_services": [{"address_service_id": s, "duration": 20}]}]})),
        )
        .await;
        assert_eq!(r.status(), 400, "{start}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["message"], "Invalid arguments", "{body}");
        assert_eq!(body["errors"]["slots[0].start"][0], "Invalid date given.", "{body}");
        let book = json!({"address_service_id": s, "duration": 1440,
            "patient": {"name": "Abraham", "phone": 48123123123_i64}});
        let r = call(Method::POST, ctx.at(&format!("/slots/{}/book", enc(start))), Some(book)).await;
        dp::expect_error(r, 400, "Invalid date given.").await;
        for q in [format!("start={}&end={}", enc(start), enc(end)), format!("start={}&end={}", enc(end), enc(start))] {
            let r = call(Method::GET, ctx.at(&format!("/slots?{q}")), None).await;
            dp::expect_error(r, 400, "Invalid date given.").await;
        }
        // (Unchecked against the contract, which documents no client error
        // for this operation; the status is not this test's concern.)
        let r = ctx.app.client.delete(ctx.app.url(&format!("/api/v3/integration{}", ctx.at("/slots/9999-12-30"))));
        let r = r.bearer_auth(&ctx.token).send().await.unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
        assert_eq!(r.json::<Value>().await.unwrap()["message"], "Invalid date given.");
    }
    // A real booking moved there: the same answer, the booking stays.
    let r = call(
        Method::PUT,
        ctx.at("/slots"),
        Some(json!({"slots": [{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00",
            "address_services": [{"address_service_id": s, "duration": 20}]}]})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let book =
        json!({"address_service_id": s, "duration": 20, "patient": {"name": "Abraham", "phone": 48123123123_i64}});
    let r = call(Method::POST, ctx.at(&format!("/slots/{}/book", enc("2030-03-05T09:00:00+01:00"))), Some(book)).await;
    let id = dp::expect_ok(r).await["id"].as_str().unwrap().to_owned();
    let r = call(
        Method::POST,
        ctx.at(&format!("/bookings/{id}/move")),
        Some(json!({"address_service_id": s, "start": "9999-12-30T23:59:00+00:00", "duration": 20})),
    )
    .await;
    dp::expect_error(r, 400, "Invalid date given.").await;
    let r = call(Method::GET, ctx.at(&format!("/bookings/{id}")), None).await;
    assert_eq!(dp::expect_ok(r).await["status"], "booked");
    ctx.app.stop().await;
}

/// `skip + _count` past i64: no wrap into a bogus `next` link; one past
/// i64::MAX is the spec's `SkipMustBePositive`.
async fn embassy_skip_near_i64_max_does_not_wrap(engine: Engine) {
    let app = spawn_app(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let gp = ids["tenants"]["acme"]["healthcare_services"]["gp"].as_str().unwrap().to_owned();
    embassy_patient(&app).await;
    let r = dp::embassy_appointment(&app, &gp, "2030-03-11T09:00:00+01:00", "2030-03-11T09:15:00+01:00").await;
    assert_eq!(r.status(), 201);
    for path in [
        format!("/Appointment?healthcareServiceId={gp}&skip=9223372036854775807&_count=30"),
        format!("/Appointment?healthcareServiceId={gp}&skip=9223372036854775800&_count=30"),
        "/Practitioner?skip=9223372036854775807&_count=30".to_owned(),
        "/HealthcareService?skip=9223372036854775807&_count=30".to_owned(),
        "/Patient?skip=9223372036854775807&_count=30".to_owned(),
    ] {
        let r = app.embassy(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["resourceType"], "Bundle", "{path}");
        assert!(b.get("link").is_none(), "no next page past the end: {path}: {b}");
        assert_eq!(b["entry"], json!([]), "{path}");
    }
    let r = app
        .embassy(Method::GET, &format!("/Appointment?healthcareServiceId={gp}&skip=9223372036854775808"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["issue"][0]["details"]["coding"][0]["code"], "SkipMustBePositive");
    app.stop().await;
}

/// A clock at or past the end of the supported range is refused (400, the
/// clock unchanged); at its last second, a failing delivery is retried
/// without a panic, `run-due` answers and the server stops gracefully.
async fn a_test_clock_near_the_end_of_time_is_refused_and_the_engine_keeps_running(engine: Engine) {
    let app = spawn_app(engine).await;
    // The seed's Docplanner PUSH URL (port 9) refuses: every delivery fails
    // and is scheduled for a retry, `now` plus a backoff.
    let ids = app.seed(&dp::seed()).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let clock = |body: Value| app.admin(Method::POST, "/admin/clock").json(&body).send();
    for body in [
        json!({"now": "9999-12-30T22:00:00Z"}),
        json!({"now": "9001-01-01T00:00:00Z"}),
        json!({"now": "1899-12-31T23:59:59Z"}),
        json!({"now": "-009999-01-02T01:59:59Z"}),
        json!({"advance_seconds": i64::MAX}),
        json!({"advance_seconds": i64::MIN}),
        json!({"advance_seconds": 253_402_300_799_i64}),
    ] {
        let r = clock(body.clone()).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error"]["code"], "invalid", "{body}");
    }
    let r = clock(json!({"advance_seconds": 0})).await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["now"], "2030-03-04T08:00:00Z", "refusals leave the clock");
    app.set_clock("9000-12-31T23:59:59Z").await;
    let r = clock(json!({"advance_seconds": 1})).await.unwrap();
    assert_eq!(r.status(), 400, "one second past the end");
    // Near the end of the range, a booking whose PUSH notification fails.
    app.set_clock("9000-12-30T08:00:00Z").await;
    let token = dp::token(&app).await;
    let t = &ids["tenants"]["acme"];
    let at = format!(
        "/facilities/{}/doctors/{}/addresses/{}",
        t["facilities"]["hosp"].as_str().unwrap(),
        t["practitioners"]["ann"].as_str().unwrap(),
        t["addresses"]["obrzezna"].as_str().unwrap()
    );
    let call = |m: Method, path: String, body: Value| {
        let (app, token) = (&app, token.clone());
        async move { dp::call(app, &token, m, &path, Some(body)).await }
    };
    let r = call(Method::POST, format!("{at}/services"), json!({"service_id": "1", "price": 1})).await;
    assert_eq!(r.status(), 201);
    let s = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let r = call(
        Method::PUT,
        format!("{at}/slots"),
        json!({"slots": [{"start": "9000-12-30T10:00:00+01:00", "end": "9000-12-30T11:00:00+01:00",
            "address_services": [{"address_service_id": s, "duration": 20}]}]}),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let book =
        json!({"address_service_id": s, "duration": 20, "patient": {"name": "Abraham", "phone": 48123123123_i64}});
    let r = call(Method::POST, format!("{at}/slots/{}/book", enc("9000-12-30T10:00:00+01:00")), book).await;
    dp::expect_ok(r).await;
    // The background loop or run-due sends it; run-due waits for both.
    app.run_due().await;
    let attempts = |ds: &[Value]| -> Vec<(String, i64)> {
        ds.iter().map(|d| (d["state"].as_str().unwrap_or("").to_owned(), d["attempts"].as_i64().unwrap_or(0))).collect()
    };
    let first = attempts(&app.deliveries("acme").await);
    assert!(first.iter().any(|(state, n)| state == "failed" && *n == 1), "retried later, not dead: {first:?}");
    // The retry, a day later, near the end of the range.
    app.advance(86_400).await;
    app.run_due().await;
    let second = attempts(&app.deliveries("acme").await);
    assert!(second.iter().any(|(_, n)| *n == 2), "the retry was sent: {second:?}");
    // Graceful shutdown does not wait for a send that never ends.
    app.stop().await;
}

/// A NUL character, which PostgreSQL cannot hold in text, is the client's
/// fault on both engines: a 4xx in the shape of the API asked, never a 500.
async fn a_nul_character_in_a_text_is_a_client_error(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&dp::seed()).await;
    for path in ["/admin/messages?tenant=%00", "/admin/deliveries?tenant=ac%00me"] {
        let r = app.admin(Method::GET, path).send().await.unwrap();
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
        let b: Value = r.json().await.unwrap();
        assert!(b["error"]["code"].is_string(), "{path}: {b}");
    }
    let r = app
        .client
        .post(app.url("/oauth/v2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&client_id=dp-acme%00&client_secret=dp-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    app.stop().await;
}

on_both_engines!(
    a_nul_character_in_a_text_is_a_client_error,
    docplanner_answers_extreme_inputs_with_4xx_in_its_shape,
    embassy_answers_extreme_inputs_with_4xx_in_its_shape,
    naboto_answers_extreme_inputs_with_4xx_in_its_shape,
    solo_answers_extreme_inputs_with_4xx_in_its_shape,
    admin_answers_extreme_inputs_with_4xx_in_its_shape,
    a_booking_page_near_i64_max_is_refused,
    slot_and_booking_starts_near_the_end_of_time_are_refused,
    embassy_skip_near_i64_max_does_not_wrap,
    a_test_clock_near_the_end_of_time_is_refused_and_the_engine_keeps_running,
);
