//! Delivery in batches (docs/messaging.md, Delivery): a target's queue is
//! claimed a batch at a time and sent in order on one connection, yet every
//! event still reaches every subscriber exactly once and in order, a failing
//! target holds back only itself, and two nodes sharing PostgreSQL never
//! send one delivery twice.
//!
//! Bookings go through the Embassy API over HTTP, several at once; the
//! background delivery loop (woken by their commits) does the sending.

use crate::helpers::{Engine, Spawn, TestApp, acme_seed, fresh_database, http_client, postgres_url, spawn_app_with};
use crate::nodes::{ADMIN, Node};
use crate::on_both_engines;
use crate::receiver::{Received, Receiver};
use serde_json::{Value, json};
use std::collections::BTreeSet;

const PATIENT_VISIBA: &str = "http://schema.visibacare.com/identifier/patient/visibaid";
const PRACTITIONER_VISIBA: &str = "http://schema.visibacare.com/identifier/practitioner/visibaid";
const SERVICE_VISIBA: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";

/// Bookings of a burst.
const BURST: usize = 240;

/// The `acme` tenant with a second Embassy API key (`emb-acme-2`: a key
/// holds one subscription per topic), and no opening hours to book within.
fn seed_doc() -> Value {
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["credentials"]
        .as_array_mut()
        .unwrap()
        .push(json!({"dialect": "embassy", "api_key": "emb-acme-2"}));
    doc["tenants"][0]["healthcare_services"][0].as_object_mut().unwrap().remove("opening_hours");
    doc
}

/// What the bookings need.
#[derive(Clone)]
struct Clinic {
    practitioner: String,
    service: String,
    patient: String,
}

async fn seed(base: &str, token: &str) -> Clinic {
    let client = http_client();
    let r = client.post(format!("{base}/admin/seed")).bearer_auth(token).json(&seed_doc()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ids: Value = r.json().await.unwrap();
    let t = &ids["tenants"]["acme"];
    let r = client
        .post(format!("{base}/embassy/Patient"))
        .header("X-Visiba-Care-API-Key", "emb-acme-1")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    Clinic {
        practitioner: t["practitioners"]["ann"].as_str().unwrap().to_owned(),
        service: t["healthcare_services"]["gp"].as_str().unwrap().to_owned(),
        patient: location.trim_end_matches('/').rsplit('/').next().unwrap().to_owned(),
    }
}

async fn subscribe(base: &str, api_key: &str, endpoint: &str) {
    let r = http_client()
        .post(format!("{base}/embassy/Subscription"))
        .header("X-Visiba-Care-API-Key", api_key)
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Subscription", "status": "requested", "reason": "throughput",
            "criteria": "http://example.com/SubscriptionTopic/1",
            "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// Books slot `n` (15 minutes each from midnight UTC the day after
/// tomorrow: within every booking horizon) through Embassy on `base`;
/// answers the appointment id.
async fn book(client: &reqwest::Client, c: &Clinic, base: &str, n: usize) -> String {
    // Fixed once per process, so that a midnight passing mid-burst moves nothing.
    static FIRST: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let first = *FIRST.get_or_init(|| (jiff::Timestamp::now().as_second().div_euclid(86_400) + 2) * 86_400);
    let start = jiff::Timestamp::from_second(first + i64::try_from(n).unwrap() * 900).unwrap();
    let end = start + jiff::SignedDuration::from_mins(15);
    let body = json!({
        "resourceType": "Appointment", "status": "booked", "start": start.to_string(), "end": end.to_string(),
        "participant": [
            {"type": [{"coding": [{"code": "PPRF"}]}],
             "actor": {"type": "Practitioner", "identifier": {"system": PRACTITIONER_VISIBA, "value": c.practitioner}}},
            {"actor": {"type": "Patient", "identifier": {"system": PATIENT_VISIBA, "value": c.patient}}},
            {"actor": {"type": "HealthcareService", "identifier": {"system": SERVICE_VISIBA, "value": c.service}}}
        ]
    });
    let r = client
        .post(format!("{base}/embassy/Appointment"))
        .header("X-Visiba-Care-API-Key", "emb-acme-1")
        .header("content-type", "application/fhir+json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    location.trim_end_matches('/').rsplit('/').next().unwrap().to_owned()
}

/// Books `n` slots from `first`, eight at a time, alternating between `bases`
/// (one server, or two nodes); answers the appointment ids.
async fn burst(c: &Clinic, bases: &[String], first: usize, n: usize) -> BTreeSet<String> {
    let client = http_client();
    let mut ids = BTreeSet::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in first..first + n {
        if tasks.len() >= 8
            && let Some(done) = tasks.join_next().await
        {
            ids.insert(done.unwrap());
        }
        let (client, c, base) = (client.clone(), c.clone(), bases[i % bases.len()].clone());
        tasks.spawn(async move { book(&client, &c, &base, i).await });
    }
    while let Some(done) = tasks.join_next().await {
        ids.insert(done.unwrap());
    }
    assert_eq!(ids.len(), n);
    ids
}

/// The notifications among `received`: (event number, appointment id), in
/// the order they arrived.
fn notifications(received: &[Received]) -> Vec<(i64, String)> {
    received
        .iter()
        .map(|r| r.json())
        .filter(|b| b["entry"][0]["resource"]["type"] == "event-notification")
        .map(|b| {
            let event = &b["entry"][0]["resource"]["notificationEvent"][0];
            let number = event["eventNumber"].as_str().unwrap().parse().unwrap();
            let focus = event["focus"]["reference"].as_str().unwrap();
            (number, focus.rsplit('/').next().unwrap().to_owned())
        })
        .collect()
}

/// Every booked appointment exactly once, numbered 1, 2, 3, ... in arrival order.
fn assert_complete_in_order_once(got: &[(i64, String)], booked: &BTreeSet<String>) {
    let numbers: Vec<i64> = got.iter().map(|(n, _)| *n).collect();
    let expected: Vec<i64> = (1..=i64::try_from(booked.len()).unwrap()).collect();
    assert_eq!(numbers, expected, "each event once, in order");
    let focused: BTreeSet<String> = got.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(&focused, booked, "every booked appointment, and only those");
}

/// The server with the background loop only (no test clock: nothing but
/// commits and the loop's own sleep drive delivery).
async fn app(engine: Engine) -> TestApp {
    spawn_app_with(engine, Spawn { test_clock: false, allow_private: Some(true), ..Default::default() }).await
}

async fn a_burst_reaches_one_subscriber_completely_in_order_exactly_once(engine: Engine) {
    let app = app(engine).await;
    let c = seed(&app.base, &app.admin_token).await;
    let rx = Receiver::start().await;
    subscribe(&app.base, "emb-acme-1", &rx.url).await;
    let booked = burst(&c, std::slice::from_ref(&app.base), 0, BURST).await;
    let got = rx.wait_for(1 + BURST).await;
    assert_complete_in_order_once(&notifications(&got), &booked);
    // Nothing more comes: every delivery is recorded delivered, once.
    let mine: Vec<Value> = settled(&app, &rx.url, BURST).await;
    assert!(mine.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 1), "{mine:?}");
    assert_eq!(notifications(&rx.received()).len(), BURST, "no duplicate arrived meanwhile");
    app.stop().await;
}

/// The tenant's `AppointmentCreated` deliveries to `url`, once `n` of them
/// have an outcome recorded (the receiver answers before the outcome is).
async fn settled(app: &TestApp, url: &str, n: usize) -> Vec<Value> {
    for _ in 0..3000 {
        let mine: Vec<Value> = app
            .deliveries("acme")
            .await
            .into_iter()
            .filter(|d| d["event"] == "AppointmentCreated" && d["target"] == url)
            .collect();
        if mine.len() == n && mine.iter().all(|d| d["state"] != "pending") {
            return mine;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the deliveries to {url} were not all recorded");
}

async fn a_target_answering_503_does_not_hold_back_a_healthy_one(engine: Engine) {
    let app = app(engine).await;
    let c = seed(&app.base, &app.admin_token).await;
    let (good, bad) = (Receiver::start().await, Receiver::start().await);
    subscribe(&app.base, "emb-acme-1", &bad.url).await;
    subscribe(&app.base, "emb-acme-2", &good.url).await;
    bad.respond_with(503);
    let booked = burst(&c, std::slice::from_ref(&app.base), 0, BURST).await;
    // Completes while the failing target waits for its first retry (30 s on).
    let got = good.wait_for(1 + BURST).await;
    assert_complete_in_order_once(&notifications(&got), &booked);
    // The failing queue tried its head once; the rest wait behind it, unsent.
    let tried = notifications(&bad.received());
    assert_eq!(tried.len(), 1, "only the head of the failing queue was attempted: {tried:?}");
    assert_eq!(tried[0].0, 1);
    let queue: Vec<Value> = app
        .deliveries("acme")
        .await
        .into_iter()
        .filter(|d| d["event"] == "AppointmentCreated" && d["target"] == bad.url.as_str())
        .collect();
    assert_eq!(queue.len(), BURST);
    let failed: Vec<&Value> = queue.iter().filter(|d| d["state"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{queue:?}");
    assert_eq!((failed[0]["attempts"].as_i64(), failed[0]["last_status"].as_i64()), (Some(1), Some(503)));
    assert!(
        queue.iter().filter(|d| d["state"] != "failed").all(|d| d["state"] == "pending" && d["attempts"] == 0),
        "the rest wait, never attempted"
    );
    app.stop().await;
}

on_both_engines!(
    a_burst_reaches_one_subscriber_completely_in_order_exactly_once,
    a_target_answering_503_does_not_hold_back_a_healthy_one,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_nodes_deliver_each_event_to_each_target_exactly_once() {
    if postgres_url().is_none() {
        return;
    }
    let database = fresh_database(Engine::Postgres).await;
    let extra = ["--delivery-timeout-seconds", "2", "--delivery-lease-seconds", "10"];
    let a = Node::start_with(&database, &extra);
    let b = Node::start_with(&database, &extra);
    let c = seed(&a.base, ADMIN).await;
    let (one, two) = (Receiver::start().await, Receiver::start().await);
    subscribe(&a.base, "emb-acme-1", &one.url).await;
    subscribe(&b.base, "emb-acme-2", &two.url).await;
    // Bookings land on both nodes; both engines dispatch and send.
    let booked = burst(&c, &[a.base.clone(), b.base.clone()], 0, BURST).await;
    let got_one = one.wait_for(1 + BURST).await;
    let got_two = two.wait_for(1 + BURST).await;
    assert_complete_in_order_once(&notifications(&got_one), &booked);
    assert_complete_in_order_once(&notifications(&got_two), &booked);
    // Every outcome recorded: each delivery delivered with exactly one attempt.
    let client = http_client();
    let mut deliveries: Vec<Value> = Vec::new();
    for _ in 0..3000 {
        deliveries = client
            .get(format!("{}/admin/deliveries?tenant=acme", b.base))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        deliveries.retain(|d| {
            d["event"] == "AppointmentCreated" && (d["target"] == one.url.as_str() || d["target"] == two.url.as_str())
        });
        if deliveries.len() == 2 * BURST && deliveries.iter().all(|d| d["state"] != "pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(deliveries.len(), 2 * BURST);
    assert!(deliveries.iter().all(|d| d["state"] == "delivered" && d["attempts"] == 1), "each sent exactly once");
    assert_eq!(notifications(&one.received()).len(), BURST, "no duplicate arrived meanwhile");
    assert_eq!(notifications(&two.received()).len(), BURST);
    drop(a);
    drop(b);
}
