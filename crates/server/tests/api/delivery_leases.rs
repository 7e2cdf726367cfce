//! Leases of the delivery engine (docs/delivery.md, Guarantees): a
//! delivery's lease starts when its send starts, so deliveries that wait
//! behind slow targets for a send slot are never sent twice.

use crate::booking::{Seeded, book, draft};
use crate::helpers::{Engine, Spawn, TestApp, acme_seed, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_core::{AddressId, HealthcareServiceId, PractitionerId, TenantId};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// More targets than the engine sends at once (32), so that the last of them
/// wait for a slot several times as long as the lease.
const TARGETS: usize = 128;

/// The `acme` tenant with one more Embassy API key per target (a key holds
/// one subscription per topic).
async fn seeded_with_keys(app: &TestApp) -> Seeded {
    let mut doc = acme_seed("acme");
    let credentials = doc["tenants"][0]["credentials"].as_array_mut().unwrap();
    for i in 0..TARGETS {
        credentials.push(json!({"dialect": "embassy", "api_key": key(i)}));
    }
    let ids = app.seed(&doc).await;
    let t = &ids["tenants"]["acme"];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    Seeded {
        tenant: TenantId(id(&t["id"])),
        ann: PractitionerId(id(&t["practitioners"]["ann"])),
        gp: HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: AddressId(id(&t["addresses"]["obrzezna"])),
    }
}

fn key(i: usize) -> String {
    format!("emb-lease-{i}")
}

async fn subscribe(app: &TestApp, api_key: &str, endpoint: &str) {
    let r = app
        .client
        .post(app.url("/embassy/Subscription"))
        .header("X-Visiba-Care-API-Key", api_key)
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Subscription",
            "reason": "lease test",
            "channel": {"endpoint": endpoint, "payload": "application/fhir+json", "type": "rest-hook"},
            "status": "requested",
            "criteria": "http://example.com/SubscriptionTopic/1"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn is_notification(body: &Value) -> bool {
    body["entry"][0]["resource"]["type"] == "event-notification"
}

async fn deliveries_waiting_for_a_send_slot_are_sent_exactly_once(engine: Engine) {
    // A lease of 4 s, longer than one send (1.5 s) but shorter than the wait
    // of the last deliveries for a slot (three sends of 1.5 s before them).
    let delivery = polyclinic::config::Delivery {
        lease_seconds: 4,
        timeout_seconds: 3,
        ..polyclinic::config::Delivery::default()
    };
    let app = spawn_app_with(engine, Spawn { test_clock: true, delivery: Some(delivery), ..Default::default() }).await;
    let s = seeded_with_keys(&app).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let rx = Receiver::start().await;
    for i in 0..TARGETS {
        subscribe(&app, &key(i), &format!("{}/{i}", rx.url)).await;
    }
    rx.delay(1500);
    // The background loop picks the booking up and sends while nothing else
    // runs a pass: the duplicates this guards against came from its passes
    // claiming, again, deliveries whose lease passed while they waited.
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    rx.wait_for(2 * TARGETS).await;
    // Waits for every send in flight (a duplicate included) before counting.
    app.run_due().await;

    let mut hits: BTreeMap<String, usize> = BTreeMap::new();
    for r in rx.received().iter().filter(|r| is_notification(&r.json())) {
        *hits.entry(r.path.clone()).or_default() += 1;
    }
    assert_eq!(hits.len(), TARGETS, "every target was notified");
    let twice: Vec<_> = hits.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "received more than once: {twice:?}");

    let notifications: Vec<Value> = app
        .deliveries("acme")
        .await
        .into_iter()
        .filter(|d| d["event"] != "handshake" && d["target"].as_str().is_some_and(|t| t.starts_with(&rx.url)))
        .collect();
    assert_eq!(notifications.len(), TARGETS);
    for d in &notifications {
        assert_eq!(d["state"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1, "exactly one attempt: {d}");
        assert_eq!(d["history"].as_array().map(Vec::len), Some(1), "{d}");
    }
    app.stop().await;
}

on_both_engines!(deliveries_waiting_for_a_send_slot_are_sent_exactly_once);
