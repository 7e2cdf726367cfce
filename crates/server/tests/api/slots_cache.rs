//! Docplanner slots served from the availability cache are never stale.
//!
//! A property test: random sequences of writes from every dialect —
//! Docplanner bookings and cancellations, Embassy, Naboto and Solo bookings,
//! calendar breaks added and removed, work periods replaced and days
//! cleared, address services added, the clock moved — interleaved with slot
//! reads over HTTP against the real server. After every write each read
//! (with and without `with=slot.services`, twice, so that the second comes
//! from the cache) must equal a fresh computation: the scheduling layer's
//! `availability::free_starts` over the store's rows, at the same "now".

use crate::dp::{Ctx, api, call, enc, setup};
use crate::helpers::Engine;
use crate::on_both_engines;
use crate::{nb, sl};
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::schedule::Interval;
use polyclinic_scheduling::availability::{Calendar, free_starts};
use polyclinic_store::{catalog, tenants};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use reqwest::Method;
use serde_json::{Value, json};

/// The window read: Monday 4 March 2030 to Tuesday 12 March, Stockholm.
const FROM: &str = "2030-03-04T00:00:00+01:00";
const TO: &str = "2030-03-12T00:00:00+01:00";
/// The clock the tests start at (dp::setup): 09:00 in Stockholm.
const T0: &str = "2030-03-04T08:00:00Z";
/// Writes per case, and cases per engine.
const OPS: usize = 40;
const CASES: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    /// A Docplanner booking at the `pick`-th free start, 20 or 60 minutes.
    DpBook { pick: usize, long: bool },
    /// An Embassy booking on Monday 11 March, 08:00 + 15 minutes × `quarter`.
    EmbassyBook { quarter: i64 },
    /// A Naboto booking with Ann, day `day`, 08:00 + 20 minutes × `step`.
    NabotoBook { day: i64, step: i64, minutes: i64 },
    /// A Solo visit in waiting room "GP online" on Monday 11 March.
    SoloBook { quarter: i64 },
    /// Cancels the `pick`-th booking made so far (through Docplanner).
    Cancel { pick: usize },
    /// A calendar break on day `day`.
    AddBreak { day: i64, step: i64, steps: i64 },
    /// Removes the `pick`-th break added so far.
    RemoveBreak { pick: usize },
    /// Replaces day `day`'s work period: `from`:00 to `to`:00, with the
    /// services `mask` names (bit 0: 20 minutes, bit 1: 60, bit 2: added ones).
    WorkPeriod { day: i64, from: i64, to: i64, mask: u8 },
    /// Clears day `day`.
    ClearDay { day: i64 },
    /// Adds an address service.
    AddService,
    /// Moves the clock on.
    Advance { minutes: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, long)| Op::DpBook { pick, long }),
        2 => (0..32i64).prop_map(|quarter| Op::EmbassyBook { quarter }),
        2 => (0..8i64, 0..24i64, prop_oneof![Just(20i64), Just(40)])
            .prop_map(|(day, step, minutes)| Op::NabotoBook { day, step, minutes }),
        2 => (0..32i64).prop_map(|quarter| Op::SoloBook { quarter }),
        3 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => (0..8i64, 0..30i64, 1..6i64).prop_map(|(day, step, steps)| Op::AddBreak { day, step, steps }),
        1 => any::<usize>().prop_map(|pick| Op::RemoveBreak { pick }),
        2 => (0..8i64, 7..12i64, 13..19i64, 1..8u8)
            .prop_map(|(day, from, to, mask)| Op::WorkPeriod { day, from, to, mask }),
        1 => (0..8i64).prop_map(|day| Op::ClearDay { day }),
        1 => Just(Op::AddService),
        1 => (0..600i64).prop_map(|minutes| Op::Advance { minutes }),
    ]
}

/// The local date of day `day` of the window (0: Monday 4 March).
fn date(day: i64) -> String {
    format!("2030-03-{:02}", 4 + day)
}

/// `hh:mm` local on day `day` plus `minutes`, as Docplanner writes it.
fn at(day: i64, minutes: i64) -> String {
    let t: Timestamp = format!("{}T00:00:00+01:00", date(day)).parse().unwrap();
    let t = t + SignedDuration::from_mins(minutes);
    t.to_zoned(jiff::tz::TimeZone::get("Europe/Stockholm").unwrap()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

/// Creates the patient [`crate::dp::embassy_appointment`] books through Embassy.
async fn embassy_patient(ctx: &Ctx) {
    let r = ctx
        .app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Patient", "name": [{"family": "Holm", "given": ["Eva"]}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 422, "{}", r.status());
}

/// What one slot list says: each start with its services' ids.
type Starts = Vec<(String, Vec<String>)>;

/// The slots `GET .../slots` answers, with their services' ids (empty
/// without `with`).
async fn read(ctx: &Ctx, with: bool) -> Starts {
    let scope = if with { "&with=slot.services" } else { "" };
    let r = api(&ctx.app, &ctx.token, &ctx.at(&format!("/slots?start={}&end={}{scope}", enc(FROM), enc(TO)))).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ids = s["address_services"]["_items"]
                .as_array()
                .map(|l| l.iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            (s["start"].as_str().unwrap().to_owned(), ids)
        })
        .collect()
}

/// The same slots computed afresh by the scheduling layer over the store's
/// rows, at `now`.
async fn fresh(ctx: &Ctx, now: Timestamp, with: bool) -> Starts {
    let address: i64 = ctx.address.parse().unwrap();
    let window = Interval { start: FROM.parse().unwrap(), end: TO.parse().unwrap() };
    let (tenant, slots) = ctx
        .app
        .store
        .read(move |c| {
            Box::pin(async move {
                let tenant = tenants::by_key(c, "acme").await?.expect("tenant acme");
                let address = catalog::address(c, tenant.id, address).await?.expect("the address");
                let slots = if address.calendar_enabled && address.integrated {
                    free_starts(c, tenant.id, Calendar::Address(&address), &window, &tenant.settings, now).await?
                } else {
                    Vec::new()
                };
                Ok((tenant, slots))
            })
        })
        .await
        .unwrap();
    let tz = tenant.tz();
    slots
        .into_iter()
        .flat_map(|a| a.slots)
        .map(|s| {
            let start = s.start.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string();
            let ids = if with { s.services.iter().map(|i| i.to_string()).collect() } else { Vec::new() };
            (start, ids)
        })
        .collect()
}

/// Every read equals the fresh computation; answers the free starts.
async fn check(ctx: &Ctx, now: Timestamp, ops: &[Op]) -> Vec<String> {
    for with in [true, false] {
        let expected = fresh(ctx, now, with).await;
        for round in 0..2 {
            let got = read(ctx, with).await;
            assert_eq!(got, expected, "read {round} (with services: {with}) after {ops:#?}");
        }
    }
    fresh(ctx, now, false).await.into_iter().map(|(s, _)| s).collect()
}

/// Adds dictionary service `service_id` to the address; answers its id.
async fn add_service(ctx: &Ctx, service_id: &str) -> Option<String> {
    let body = json!({"service_id": service_id, "price": 100, "is_price_from": false});
    let r = call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/services"), Some(body)).await;
    assert!(r.status().as_u16() < 500, "{}", r.text().await.unwrap());
    let location = r.headers().get("location")?.to_str().ok()?.to_owned();
    location.rsplit('/').next().map(str::to_owned)
}

/// An id shown as a string or a number.
fn id_of(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// Asserts a write was answered without a server error; answers its body.
async fn answered(r: reqwest::Response, what: &str) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(status < 500, "{what}: {status} {text}");
    if std::env::var_os("SLOTS_CACHE_TRACE").is_some() {
        eprintln!("{what}: {status}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

struct World {
    services: Vec<String>,
    bookings: Vec<String>,
    breaks: Vec<String>,
    now: Timestamp,
    solo_patient: String,
    naboto_patient: String,
    ann: String,
    serial: u32,
}

async fn apply(ctx: &Ctx, w: &mut World, op: &Op, free: &[String]) {
    let app = &ctx.app;
    match op {
        Op::DpBook { pick, long } => {
            let Some(start) = (!free.is_empty()).then(|| &free[pick % free.len()]) else { return };
            let (service, minutes) = if *long { (&w.services[1], 60) } else { (&w.services[0], 20) };
            let body = json!({"address_service_id": service, "duration": minutes,
                "patient": {"name": "Ada", "surname": "Lovelace", "phone": 48123123123_i64}});
            let path = ctx.at(&format!("/slots/{}/book", enc(start)));
            let (status, b) = answered(call(app, &ctx.token, Method::POST, &path, Some(body)).await, "book").await;
            if status < 300 {
                w.bookings.push(id_of(&b["id"]));
            }
        }
        Op::EmbassyBook { quarter } => {
            let start = at(7, 8 * 60 + 15 * quarter);
            let end = at(7, 8 * 60 + 15 * quarter + 15);
            let r = crate::dp::embassy_appointment(app, &ctx.id("healthcare_services", "gp"), &start, &end).await;
            let (status, b) = answered(r, "embassy booking").await;
            if status < 300 {
                w.bookings.push(id_of(&b["id"]));
            }
        }
        Op::NabotoBook { day, step, minutes } => {
            w.serial += 1;
            let mut a = nb::new_appointment(&w.naboto_patient, &w.ann);
            a["identifier"][0]["value"] = json!(format!("slots-cache-{}", w.serial));
            a["start"] = json!(at(*day, 8 * 60 + 20 * step));
            a["end"] = json!(at(*day, 8 * 60 + 20 * step + minutes));
            answered(nb::send(app, Method::POST, "/appointment", &a).await, "naboto booking").await;
        }
        Op::SoloBook { quarter } => {
            let t: Timestamp = at(7, 8 * 60 + 15 * quarter).parse().unwrap();
            answered(sl::book(app, &w.solo_patient, sl::GP, t.as_second()).await, "solo booking").await;
        }
        Op::Cancel { pick } => {
            if w.bookings.is_empty() {
                return;
            }
            let id = w.bookings.remove(pick % w.bookings.len());
            let path = ctx.at(&format!("/bookings/{id}"));
            answered(call(app, &ctx.token, Method::DELETE, &path, None).await, "cancel").await;
        }
        Op::AddBreak { day, step, steps } => {
            let since = at(*day, 7 * 60 + 20 * step);
            let till = at(*day, 7 * 60 + 20 * (step + steps));
            let body = json!({"since": since, "till": till});
            let r = call(app, &ctx.token, Method::POST, &ctx.at("/breaks"), Some(body)).await;
            let location = r.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_owned);
            let (status, _) = answered(r, "break").await;
            if status < 300
                && let Some(id) = location.and_then(|l| l.rsplit('/').next().map(str::to_owned))
            {
                w.breaks.push(id);
            }
        }
        Op::RemoveBreak { pick } => {
            if w.breaks.is_empty() {
                return;
            }
            let id = w.breaks.remove(pick % w.breaks.len());
            let path = ctx.at(&format!("/breaks/{id}"));
            answered(call(app, &ctx.token, Method::DELETE, &path, None).await, "remove break").await;
        }
        Op::WorkPeriod { day, from, to, mask } => {
            let durations = [20, 60, 30];
            let services: Vec<Value> = (0..3)
                .filter(|i| mask & (1 << i) != 0)
                .filter_map(|i| {
                    let id = if i < 2 { w.services.get(i) } else { w.services.last().filter(|_| w.services.len() > 2) };
                    id.map(|id| json!({"address_service_id": id, "duration": durations[i]}))
                })
                .collect();
            let slots = json!([{"start": at(*day, from * 60), "end": at(*day, to * 60), "address_services": services}]);
            let r = call(app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": slots}))).await;
            answered(r, "work period").await;
        }
        Op::ClearDay { day } => {
            let path = ctx.at(&format!("/slots/{}", date(*day)));
            answered(call(app, &ctx.token, Method::DELETE, &path, None).await, "clear day").await;
        }
        Op::AddService => {
            // The dictionary holds 1, 3, 5 and 7; 1 and 3 are taken at the start.
            let next = ["5", "7"].get(w.services.len().saturating_sub(2));
            if let Some(dict) = next
                && let Some(id) = add_service(ctx, dict).await
            {
                w.services.push(id);
            }
        }
        Op::Advance { minutes } => {
            let r = app
                .admin(Method::POST, "/admin/clock")
                .json(&json!({"advance_seconds": minutes * 60}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            w.now += SignedDuration::from_mins(*minutes);
        }
    }
}

/// One case: a fresh server, work periods on every day of the window, then
/// `ops`, each followed by the reads.
async fn run_case(engine: Engine, ops: Vec<Op>) {
    let mut ctx = setup(engine).await;
    let services = vec![add_service(&ctx, "1").await.unwrap(), add_service(&ctx, "3").await.unwrap()];
    for day in 0..8 {
        let slots = json!([{"start": at(day, 8 * 60), "end": at(day, 16 * 60), "address_services": [
            {"address_service_id": services[0], "duration": 20}, {"address_service_id": services[1], "duration": 60}]}]);
        let r = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": slots}))).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    embassy_patient(&ctx).await;
    let solo_patient = "slots-cache-patient";
    sl::create_patient(&ctx.app, solo_patient).await;
    let naboto_patient = nb::create_patient(&ctx.app).await;
    let ann = ctx.ann.clone();
    let mut w = World {
        services,
        bookings: Vec::new(),
        breaks: Vec::new(),
        now: T0.parse().unwrap(),
        solo_patient: solo_patient.to_owned(),
        naboto_patient,
        ann,
        serial: 0,
    };
    let mut free = check(&ctx, w.now, &[]).await;
    for (i, op) in ops.iter().enumerate() {
        apply(&ctx, &mut w, op, &free).await;
        if matches!(op, Op::Advance { .. }) {
            // Docplanner tokens expire with the clock.
            ctx.token = crate::dp::token(&ctx.app).await;
        }
        free = check(&ctx, w.now, &ops[..=i]).await;
    }
    ctx.app.stop().await;
}

async fn slot_reads_always_equal_a_fresh_computation(engine: Engine) {
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let strategy = proptest::collection::vec(op(), OPS);
    for _ in 0..CASES {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        run_case(engine, ops).await;
    }
}

/// A booking from another dialect answered 2xx is seen by the very next
/// slot read, even when the same read was just cached.
async fn a_booking_elsewhere_is_seen_by_the_next_read(engine: Engine) {
    let ctx = setup(engine).await;
    let short = add_service(&ctx, "1").await.unwrap();
    let slots = json!([{"start": at(7, 9 * 60), "end": at(7, 11 * 60),
        "address_services": [{"address_service_id": short, "duration": 30}]}]);
    let r = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": slots}))).await;
    assert_eq!(r.status(), 201);
    embassy_patient(&ctx).await;
    let now: Timestamp = T0.parse().unwrap();
    let before = read(&ctx, false).await;
    assert_eq!(before.len(), 4);
    assert_eq!(read(&ctx, false).await, before, "the second read, from the cache, is the same");
    let r =
        crate::dp::embassy_appointment(&ctx.app, &ctx.id("healthcare_services", "gp"), &at(7, 600), &at(7, 615)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let after = read(&ctx, false).await;
    assert_eq!(after, fresh(&ctx, now, false).await);
    assert_eq!(after.len(), 3, "10:00 is held by the Embassy booking: {after:?}");
    ctx.app.stop().await;
}

on_both_engines!(slot_reads_always_equal_a_fresh_computation, a_booking_elsewhere_is_seen_by_the_next_read);

/// Two `polyclinic` processes on one PostgreSQL database: a slot list that
/// node B has cached changes as soon as node A answered a booking, a
/// cancellation or a change of work periods (the shared generation rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_never_serve_each_others_stale_slots() {
    use crate::nodes::{ADMIN, Node};
    if crate::helpers::postgres_url().is_none() {
        return;
    }
    let database = crate::helpers::fresh_database(Engine::Postgres).await;
    let (a, b) = (Node::start_with(&database, &[]), Node::start_with(&database, &[]));
    let client = crate::helpers::http_client();
    let ids: Value = client
        .post(format!("{}/admin/seed", a.base))
        .bearer_auth(ADMIN)
        .json(&crate::dp::seed())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let t = &ids["tenants"]["acme"];
    let token: Value = client
        .post(format!("{}/oauth/v2/token", a.base))
        .header("authorization", crate::dp::BASIC)
        .form(&[("grant_type", "client_credentials"), ("scope", "integration")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let at = format!(
        "/api/v3/integration/facilities/{}/doctors/{}/addresses/{}",
        t["facilities"]["hosp"].as_str().unwrap(),
        t["practitioners"]["ann"].as_str().unwrap(),
        t["addresses"]["obrzezna"].as_str().unwrap()
    );
    let send = |node: &Node, method: Method, rest: &str, body: Option<Value>| {
        let mut r = client.request(method, format!("{}{at}{rest}", node.base)).bearer_auth(&token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send()
    };
    // No test clock here: tomorrow (UTC), 09:00 to 11:00, 30-minute visits.
    let day = Timestamp::now().as_second().div_euclid(86_400) * 86_400 + 86_400;
    let utc = |s: i64| Timestamp::from_second(s).unwrap().strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let (from, to) = (utc(day), utc(day + 86_400));
    let r = send(&a, Method::POST, "/services", Some(json!({"service_id": "1", "price": 100}))).await.unwrap();
    assert_eq!(r.status(), 201);
    let service = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let period = |end_hour: i64| {
        json!({"slots": [{"start": utc(day + 9 * 3600), "end": utc(day + end_hour * 3600),
            "address_services": [{"address_service_id": service, "duration": 30}]}]})
    };
    assert_eq!(send(&a, Method::PUT, "/slots", Some(period(11))).await.unwrap().status(), 201);
    let starts = |node: &Node| {
        let q = format!("/slots?start={}&end={}", enc(&from), enc(&to));
        let r = send(node, Method::GET, &q, None);
        async move {
            let body: Value = r.await.unwrap().json().await.unwrap();
            body["_items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["start"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(starts(&b).await.len(), 4);
    assert_eq!(starts(&b).await.len(), 4, "now from node B's cache");
    let first = starts(&b).await[0].clone();
    let body = json!({"address_service_id": service, "duration": 30,
        "patient": {"name": "Ada", "surname": "Lovelace", "phone": 48123123123_i64}});
    let r = send(&a, Method::POST, &format!("/slots/{}/book", enc(&first)), Some(body)).await.unwrap();
    assert_eq!(r.status(), 200);
    let booking: Value = r.json().await.unwrap();
    assert!(!starts(&b).await.contains(&first), "node B sees node A's booking at once");
    let id = booking["id"].as_str().map(str::to_owned).unwrap_or_else(|| booking["id"].to_string());
    assert_eq!(send(&a, Method::DELETE, &format!("/bookings/{id}"), None).await.unwrap().status(), 204);
    assert_eq!(starts(&b).await.len(), 4, "and its cancellation");
    let date = Timestamp::from_second(day).unwrap().strftime("%Y-%m-%d").to_string();
    assert_eq!(send(&a, Method::DELETE, &format!("/slots/{date}"), None).await.unwrap().status(), 204);
    assert!(starts(&b).await.is_empty(), "and a day cleared");
    assert_eq!(send(&a, Method::PUT, "/slots", Some(period(10))).await.unwrap().status(), 201);
    assert_eq!(starts(&b).await.len(), 2, "and new work periods");
    drop((a, b));
}
