//! Retention of the delivery history (`--retention-days`): dispatched outbox
//! events and final deliveries with their attempts go once older than the
//! retention, in bounded batches; events not yet dispatched and deliveries
//! still retrying stay, and `GET /admin/deliveries` stays consistent.

use crate::booking::{Seeded, draft, seeded, ts};
use crate::helpers::{Engine, Spawn, TestApp, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::appointment::Appointment;
use polyclinic_store::{appointments, outbox, retention};
use reqwest::Method;
use serde_json::{Value, json};

const DAY: i64 = 24 * 3600;
const T0: &str = "2030-03-04T08:00:00Z";

async fn spawn(engine: Engine, batch: i64) -> TestApp {
    let delivery = polyclinic::config::Delivery { retention_days: 30, retention_batch: batch, ..Default::default() };
    spawn_app_with(engine, Spawn { test_clock: true, delivery: Some(delivery), ..Default::default() }).await
}

/// Books `a` with its events written at `now` (the test clock's instant).
async fn book_at(app: &TestApp, tenant: TenantId, a: Appointment, now: &str) -> Appointment {
    let now = ts(now);
    app.store
        .write(move |c| {
            Box::pin(async move {
                let mut a = a;
                a.id = appointments::new_id(c).await?;
                appointments::create(c, tenant, a, now).await
            })
        })
        .await
        .unwrap()
}

/// Changes `a`'s comment at `now`: an `AppointmentUpdated` event.
async fn update_at(app: &TestApp, tenant: TenantId, a: &Appointment, now: &str) {
    let mut changed = a.clone();
    changed.comment = Some("updated".into());
    let now = ts(now);
    app.store
        .write(move |c| Box::pin(async move { appointments::update_details(c, tenant, changed, now).await }))
        .await
        .unwrap();
}

pub(crate) async fn subscribe(app: &TestApp, endpoint: &str, channel_type: &str, topic: i64) {
    let body = json!({
        "resourceType": "Subscription",
        "status": "requested",
        "criteria": format!("http://example.com/SubscriptionTopic/{topic}"),
        "channel": {
            "type": channel_type, "endpoint": endpoint, "payload": "application/fhir+json",
            // No heartbeats: they would add deliveries of their own.
            "extension": [{
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
                "valueUnsignedInt": 0
            }]
        }
    });
    let r = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// The tenant's outbox events, oldest first, with when each was written.
async fn events(app: &TestApp, tenant: TenantId) -> Vec<(String, i64)> {
    let list = app.store.read(move |c| Box::pin(async move { outbox::list(c, tenant, 0, 100_000).await })).await;
    list.unwrap().into_iter().map(|e| (e.kind.as_str().to_owned(), e.created_at)).collect()
}

/// Every delivery of `acme`, walked page by page with `limit`
/// (`GET /admin/deliveries?limit=&cursor=`).
pub(crate) async fn walk(app: &TestApp, limit: usize) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/deliveries?tenant=acme&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let items = page["deliveries"].as_array().unwrap().clone();
        assert!(items.len() <= limit, "{page}");
        assert!(!items.is_empty() || cursor.is_none(), "a cursor is only given when another page follows");
        all.extend(items);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return all,
        }
    }
}

fn secs(t: &str) -> i64 {
    ts(t).as_second()
}

/// Books five appointments at `T0` through an e-mail subscription (always
/// delivered) and updates the first for a rest-hook subscription whose
/// endpoint fails (its delivery keeps retrying), then runs everything due.
async fn old_history(app: &TestApp, bad: &Receiver) -> Seeded {
    let s = seeded(app, "acme").await;
    app.set_clock(T0).await;
    subscribe(app, "mailto:integrations@acme.test", "email", 1).await;
    subscribe(app, &bad.url, "rest-hook", 3).await;
    bad.respond_with(500);
    let mut first = None;
    for day in 5..10 {
        let start = format!("2030-03-{day:02}T09:00:00Z");
        let end = format!("2030-03-{day:02}T09:15:00Z");
        let a = book_at(app, s.tenant, draft(&s, s.ann, None, &start, &end), T0).await;
        first.get_or_insert(a);
    }
    update_at(app, s.tenant, first.as_ref().unwrap(), T0).await;
    app.run_due().await;
    s
}

async fn old_history_is_pruned_and_the_rest_kept(engine: Engine) {
    // A batch of 3: more old rows than one run deletes, in both tables.
    let app = spawn(engine, 3).await;
    let bad = Receiver::start().await;
    let s = old_history(&app, &bad).await;
    let before = app.deliveries("acme").await;
    let delivered = before.iter().filter(|d| d["state"] == "delivered").count();
    assert!(delivered >= 5, "{before:?}");
    let retrying: Vec<&Value> = before.iter().filter(|d| d["state"] == "failed").collect();
    assert_eq!(retrying.len(), 1, "{before:?}");
    let retrying_id = retrying[0]["id"].clone();
    let old_events = events(&app, s.tenant).await.iter().filter(|(_, at)| *at == secs(T0)).count();
    assert!(old_events >= 6, "five bookings and an update");

    // 31 days later, two young bookings; the old history goes.
    let t1 = "2030-04-04T08:00:00Z";
    app.set_clock(t1).await;
    for day in 10..12 {
        let start = format!("2030-04-{day:02}T09:00:00Z");
        let end = format!("2030-04-{day:02}T09:15:00Z");
        book_at(&app, s.tenant, draft(&s, s.ann, None, &start, &end), t1).await;
    }
    app.run_due().await;

    let left = events(&app, s.tenant).await;
    assert!(left.iter().all(|(_, at)| *at >= secs(t1)), "only young events are left: {left:?}");
    assert_eq!(left.iter().filter(|(kind, _)| kind == "AppointmentCreated").count(), 2, "{left:?}");
    let after = app.deliveries("acme").await;
    let young: Vec<&Value> = after.iter().filter(|d| d["state"] == "delivered").collect();
    assert_eq!(young.len(), 2, "the two young deliveries stay, the old ones went: {after:?}");
    assert!(young.iter().all(|d| d["event"] == "AppointmentCreated" && d["created_at"] == t1));
    let kept = after.iter().find(|d| d["id"] == retrying_id).expect("a retrying delivery is never deleted");
    assert_eq!(kept["state"], "failed");
    assert_eq!(kept["history"].as_array().unwrap().len() as i64, kept["attempts"].as_i64().unwrap());
    assert_eq!(after.len(), 3, "{after:?}");
    // Paging agrees with the whole list.
    assert_eq!(walk(&app, 2).await, after);
    // The job waits for the young rows to come due.
    let tenant = s.tenant;
    let due = app.store.read(move |c| Box::pin(async move { retention::due(c, tenant).await })).await.unwrap();
    assert_eq!(due.map(|d| d.as_second()), Some(secs(t1) + 30 * DAY));

    // The endpoint recovers: the retrying delivery, whose event is long
    // pruned, still carries everything it needs and is delivered.
    bad.respond_with(200);
    app.set_clock("2030-05-05T08:00:00Z").await;
    app.run_due().await;
    let last = app.deliveries("acme").await;
    assert_eq!(last.len(), 1, "the young ones of April are old now: {last:?}");
    assert_eq!((&last[0]["id"], last[0]["state"].as_str()), (&retrying_id, Some("delivered")));
    assert_eq!(bad.received().last().unwrap().json()["entry"][0]["resource"]["type"], "event-notification");
    app.stop().await;
}

async fn a_run_deletes_at_most_one_batch_and_never_what_is_still_needed(engine: Engine) {
    let app = spawn(engine, 1000).await;
    let bad = Receiver::start().await;
    let s = old_history(&app, &bad).await;
    let tenant = s.tenant;
    let outbox_before = events(&app, tenant).await.len() as u64;
    let deliveries_before = app.deliveries("acme").await;
    let finals = deliveries_before.iter().filter(|d| d["state"] == "delivered" || d["state"] == "dead").count() as u64;
    assert!(finals >= 5 && outbox_before >= 6);
    // Runs of two rows a table, 31 days on (for the store; the server's clock
    // stays, so its own job does not run meanwhile), next to an event written
    // in the same transaction (not yet dispatched) and a delivery retrying.
    let later = ts(T0).as_second() + 31 * DAY;
    let now = Timestamp::from_second(later).unwrap();
    let young = draft(&s, s.ann, None, "2030-03-20T09:00:00Z", "2030-03-20T09:15:00Z");
    // All in one transaction, so the server's own engine cannot dispatch
    // the new event meanwhile.
    let (runs, events_left, deliveries_left) = app
        .store
        .write(move |c| {
            Box::pin(async move {
                let mut a = young;
                a.id = appointments::new_id(c).await?;
                appointments::create(c, tenant, a, ts("2029-01-01T00:00:00Z")).await?;
                let mut runs = Vec::new();
                loop {
                    let p = retention::prune(c, tenant, now, 30 * DAY, 2, later - DAY).await?;
                    runs.push((p, retention::due(c, tenant).await?));
                    if p.outbox < 2 && p.deliveries < 2 {
                        break;
                    }
                }
                let events = outbox::list(c, tenant, 0, 100_000).await?;
                let deliveries = polyclinic_store::tenants::deliveries(c, tenant).await?;
                Ok((runs, events, deliveries))
            })
        })
        .await
        .unwrap();
    assert!(runs.len() >= 3, "{runs:?}");
    for (i, (p, due)) in runs.iter().enumerate() {
        assert!(p.outbox <= 2 && p.deliveries <= 2, "one batch at most: {p:?}");
        if i + 1 < runs.len() {
            assert!(due.unwrap() <= now, "more left: due again at once");
        } else {
            assert!(due.unwrap() > now, "nothing old left: the job waits");
        }
    }
    let total = |f: fn(&retention::Pruned) -> u64| runs.iter().map(|(p, _)| f(p)).sum::<u64>();
    assert_eq!(total(|p| p.outbox), outbox_before, "every dispatched event went");
    assert_eq!(total(|p| p.deliveries), finals, "every final delivery went");
    assert_eq!(total(|p| p.attempts), finals, "with its attempt");
    assert_eq!(events_left.len(), 1, "the event not yet dispatched stays: {events_left:?}");
    assert_eq!(deliveries_left.len(), 1, "the retrying delivery stays: {deliveries_left:?}");
    assert_eq!(deliveries_left[0].state, "failed");
    app.stop().await;
}

on_both_engines!(
    old_history_is_pruned_and_the_rest_kept,
    a_run_deletes_at_most_one_batch_and_never_what_is_still_needed,
);
