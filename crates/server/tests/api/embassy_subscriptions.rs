//! Embassy subscriptions (spec 001, section Subscriptions) and the delivery
//! engine behind them, against a real receiver.

use crate::booking::{book, draft, seeded, ts};
use crate::emb::expect_error;
use crate::helpers::{Engine, Spawn, TestApp, acme_seed, spawn_app, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_core::appointment::{Actor, ActorKind};
use polyclinic_store::appointments;
use reqwest::Method;
use serde_json::{Value, json};

fn subscription(endpoint: &str, topic: i64) -> Value {
    json!({
        "resourceType": "Subscription",
        "reason": "Client Testing",
        "channel": {
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{}]},
            "type": "rest-hook",
            "header": ["testkey=testvalue"]
        },
        "status": "requested",
        "criteria": format!("http://example.com/SubscriptionTopic/{topic}")
    })
}

async fn create(app: &TestApp, body: &Value) -> reqwest::Response {
    app.embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn created(app: &TestApp, body: &Value) -> Value {
    let r = create(app, body).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn setup(engine: Engine) -> (TestApp, Receiver) {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    (app, Receiver::start().await)
}

async fn topics_are_listed_and_read(engine: Engine) {
    let (app, _) = setup(engine).await;
    let r = app.embassy(Method::GET, "/SubscriptionTopic").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/fhir+json"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "Bundle");
    assert_eq!(body["type"], "searchset");
    let titles: Vec<(&str, &str)> = body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["resource"]["id"].as_str().unwrap(), e["resource"]["title"].as_str().unwrap()))
        .collect();
    assert_eq!(
        titles,
        vec![
            ("1", "AppointmentCreated"),
            ("2", "AppointmentCancelled"),
            ("3", "AppointmentUpdated"),
            ("4", "AppointmentCompleted"),
            ("5", "MessageConversationCreated")
        ]
    );
    let one: Value = app.embassy(Method::GET, "/SubscriptionTopic/3").send().await.unwrap().json().await.unwrap();
    assert_eq!(one["resourceType"], "SubscriptionTopic");
    assert_eq!(one["url"], format!("{}/embassy/SubscriptionTopic/3", app.base));
    assert_eq!(one["status"], "active");
    expect_error(
        app.embassy(Method::GET, "/SubscriptionTopic/9").send().await.unwrap(),
        404,
        "SubscriptionTopicNotFound",
    )
    .await;
    expect_error(
        app.embassy(Method::GET, "/SubscriptionTopic/x").send().await.unwrap(),
        400,
        "SubscriptionTopicIdNotAValidInteger",
    )
    .await;
    app.stop().await;
}

async fn the_api_key_is_required_and_checked(engine: Engine) {
    let (app, _) = setup(engine).await;
    let missing = app.client.get(app.url("/embassy/Subscription")).send().await.unwrap();
    expect_error(missing, 401, "MissingApiKey").await;
    let wrong =
        app.client.get(app.url("/embassy/Subscription")).header("X-Visiba-Care-API-Key", "nope").send().await.unwrap();
    expect_error(wrong, 403, "InvalidApiKey").await;
    // Another dialect's key does not open Embassy.
    let solo = app
        .client
        .get(app.url("/embassy/Subscription"))
        .header("X-Visiba-Care-API-Key", "solo-acme-1")
        .send()
        .await
        .unwrap();
    expect_error(solo, 403, "InvalidApiKey").await;
    let ok = app.embassy(Method::GET, "/Subscription").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID-shaped request id: {id}");
    app.stop().await;
}

async fn create_sends_the_handshake_then_activates(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let r = create(&app, &subscription(&rx.url, 1)).await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("{}/embassy/Subscription/{id}", app.base));
    assert_eq!(body["status"], "active");
    assert_eq!(body["criteria"], "http://example.com/SubscriptionTopic/1");
    assert_eq!(body["channel"]["type"], "rest-hook");
    assert_eq!(body["channel"]["header"], json!(["testkey=testvalue"]));
    let got = rx.received();
    assert_eq!(got.len(), 1, "exactly one handshake");
    let hs = &got[0];
    assert_eq!(hs.path, "/hook");
    assert_eq!(hs.header("content-type"), Some("application/fhir+json"));
    assert_eq!(hs.header("testkey"), Some("testvalue"), "channel.header entries become HTTP headers");
    let base = format!("{}/embassy", app.base);
    assert_eq!(
        hs.json(),
        json!({
            "resourceType": "Bundle",
            "type": "history",
            "timestamp": "2030-03-04T08:00:00Z",
            "entry": [{
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "requested",
                    "type": "handshake",
                    "eventsSinceSubscriptionStart": "0",
                    "subscription": {"reference": format!("{base}/Subscription/{id}")},
                    "topic": format!("{base}/SubscriptionTopic/1")
                },
                "request": {"method": "GET", "url": format!("{base}/Subscription/{id}/$status")},
                "response": {"status": "200"}
            }]
        })
    );
    // Read back, listed, and one delivery recorded.
    let read: Value =
        app.embassy(Method::GET, &format!("/Subscription/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, body);
    let list: Value = app.embassy(Method::GET, "/Subscription").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 1);
    let deliveries = app.deliveries("acme").await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["event"], "handshake");
    assert_eq!(deliveries[0]["state"], "delivered");
    assert_eq!(deliveries[0]["last_status"], 200);
    assert_eq!(deliveries[0]["target"], rx.url);
    app.stop().await;
}

async fn a_failed_handshake_creates_nothing(engine: Engine) {
    let (app, rx) = setup(engine).await;
    rx.respond_with(500);
    expect_error(create(&app, &subscription(&rx.url, 1)).await, 422, "SubscriptionHandshakeFailed").await;
    // Nothing listens on port 9 of the loopback.
    expect_error(create(&app, &subscription("http://127.0.0.1:9/hook", 1)).await, 422, "SubscriptionHandshakeFailed")
        .await;
    let list: Value = app.embassy(Method::GET, "/Subscription").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 0);
    // The attempts are visible, and dead (a handshake is not retried).
    let deliveries = app.deliveries("acme").await;
    assert_eq!(deliveries.len(), 2);
    assert_eq!(deliveries[0]["state"], "dead");
    assert_eq!(deliveries[0]["last_status"], 500);
    assert!(deliveries[1]["last_error"].as_str().is_some_and(|e| e.contains("connection")), "{}", deliveries[1]);
    app.stop().await;
}

async fn every_create_error_code(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut s = subscription(&rx.url, 1);
        f(&mut s);
        s
    };
    let own = format!("{}/hook", app.base);
    let cases: Vec<(Value, u16, &str)> = vec![
        (with(&|s| s["channel"]["endpoint"] = json!("not a url")), 422, "ChannelEndpointInvalid"),
        (with(&|s| s["channel"]["endpoint"] = json!("ftp://example.com/x")), 422, "ChannelEndpointInvalid"),
        (with(&|s| s["channel"]["endpoint"] = json!(own)), 422, "ChannelEndpointInvalid"),
        (with(&|s| s["channel"]["endpoint"] = json!("")), 422, "ChannelEndpointInvalid"),
        (
            with(&|s| {
                s["channel"]["type"] = json!("email");
                s["channel"]["endpoint"] = json!("ann@acme.test")
            }),
            422,
            "ChannelEndpointInvalid",
        ),
        (
            with(&|s| {
                s["channel"]["type"] = json!("email");
                s["channel"]["endpoint"] = json!("mailto:not-an-address")
            }),
            422,
            "ChannelEndpointInvalid",
        ),
        (with(&|s| s["channel"]["type"] = json!("pigeon")), 400, "ChannelTypeMustBeAValidType"),
        (with(&|s| s["channel"]["type"] = json!("websocket")), 422, "ChannelTypeMustBeASupportedType"),
        (
            with(&|s| s["criteria"] = json!("http://example.com/SubscriptionTopic/abc")),
            422,
            "SubscriptionTopicIdNotAValidInteger",
        ),
        (with(&|s| s["criteria"] = json!("http://example.com/SubscriptionTopic/99")), 422, "SubscriptionTopicNotFound"),
        (with(&|s| s["status"] = json!("sleeping")), 400, "SubscriptionStatusNotValid"),
        (with(&|s| s["status"] = json!("active")), 422, "SubscriptionStatusNotValid"),
        (with(&|s| s["channel"]["header"] = json!(["testkey"])), 422, "ContainsNoDelimeter"),
        (with(&|s| s["channel"]["header"] = json!(["bad key=v"])), 422, "ChannelHeaderInvalid"),
        (with(&|s| s["channel"]["payload"] = json!("text/plain")), 422, "ChannelPayloadNotSupported"),
        (with(&|s| s["resourceType"] = json!("Patient")), 400, "InvalidFhirResource"),
    ];
    for (body, status, code) in cases {
        expect_error(create(&app, &body).await, status, code).await;
    }
    let garbage = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    expect_error(garbage, 400, "InvalidFhirResource").await;
    assert!(rx.received().is_empty(), "no handshake for a refused subscription");
    created(&app, &subscription(&rx.url, 1)).await;
    expect_error(create(&app, &subscription(&rx.url, 1)).await, 422, "SubscriptionTopicNotUnique").await;
    app.stop().await;
}

async fn unknown_subscriptions_are_not_found(engine: Engine) {
    let (app, _) = setup(engine).await;
    for (method, path) in [
        (Method::GET, "/Subscription/999999"),
        (Method::GET, "/Subscription/abc"),
        (Method::DELETE, "/Subscription/999999"),
        (Method::GET, "/Subscription/999999/$status"),
        (Method::GET, "/Subscription/999999/$events"),
    ] {
        expect_error(app.embassy(method, path).send().await.unwrap(), 404, "SubscriptionNotFound").await;
    }
    let patch = app
        .embassy(Method::PATCH, "/Subscription/999999")
        .header("content-type", "application/fhir+json")
        .json(&status_patch("off"))
        .send()
        .await
        .unwrap();
    expect_error(patch, 404, "SubscriptionNotFound").await;
    app.stop().await;
}

fn status_patch(value: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "/status"},
        {"name": "value", "valueString": value}]}]})
}

async fn patch(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    app.embassy(Method::PATCH, &format!("/Subscription/{id}"))
        .header("content-type", "application/fhir+json")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn every_patch_error_code(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let id = created(&app, &subscription(&rx.url, 1)).await["id"].as_str().unwrap().to_owned();
    expect_error(
        patch(&app, &id, &json!({"resourceType": "Parameters", "parameter": []})).await,
        422,
        "ParametersCannotBeEmpty",
    )
    .await;
    expect_error(patch(&app, &id, &json!({"resourceType": "Parameters"})).await, 422, "ParametersCannotBeEmpty").await;
    expect_error(
        patch(&app, &id, &json!({"resourceType": "Parameters", "parameter": [{"name": "replace", "part": []}]})).await,
        422,
        "OnlyOperationParametersSupported",
    )
    .await;
    let mut wrong_path = status_patch("off");
    wrong_path["parameter"][0]["part"][1]["valueString"] = json!("/endpoint");
    expect_error(patch(&app, &id, &wrong_path).await, 422, "ParameterTypeAndPathCombinationNotSupported").await;
    let mut wrong_type = status_patch("off");
    wrong_type["parameter"][0]["part"][0]["valueCode"] = json!("delete");
    expect_error(patch(&app, &id, &wrong_type).await, 422, "ParameterTypeAndPathCombinationNotSupported").await;
    expect_error(patch(&app, &id, &status_patch("error")).await, 422, "SubscriptionStatusNotValid").await;
    expect_error(patch(&app, &id, &json!({"resourceType": "Patient"})).await, 400, "InvalidFhirResource").await;
    // Off, then on again with a failing endpoint: the re-handshake fails.
    let off = patch(&app, &id, &status_patch("off")).await;
    assert_eq!(off.status(), 200);
    assert_eq!(off.json::<Value>().await.unwrap()["status"], "off");
    rx.respond_with(503);
    expect_error(patch(&app, &id, &status_patch("active")).await, 422, "SubscriptionHandshakeFailed").await;
    let still: Value =
        app.embassy(Method::GET, &format!("/Subscription/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(still["status"], "off", "a failed re-handshake leaves the status as it was");
    rx.respond_with(200);
    let on = patch(&app, &id, &status_patch("active")).await;
    assert_eq!(on.json::<Value>().await.unwrap()["status"], "active");
    assert_eq!(rx.received().iter().filter(|r| r.json()["entry"][0]["resource"]["type"] == "handshake").count(), 3);
    app.stop().await;
}

async fn events_reach_every_subscriber_with_full_urls(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let s = seeded(&app, "acme").await;
    let created_sub = created(&app, &subscription(&rx.url, 1)).await["id"].as_str().unwrap().to_owned();
    let cancelled_sub = created(&app, &subscription(&rx.url, 2)).await["id"].as_str().unwrap().to_owned();
    let a = book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    // run-due returns once everything due has been sent (by it or by the
    // background loop), so what the receiver holds now is final.
    let summary = app.run_due().await;
    assert!(summary["ran"]["deliveries"]["attempted"].as_u64().is_some(), "{summary}");
    let got = rx.received();
    assert_eq!(got.len(), 3, "two handshakes and one notification");
    let base = format!("{}/embassy", app.base);
    assert_eq!(got[2].header("testkey"), Some("testvalue"));
    assert_eq!(
        got[2].json(),
        json!({
            "resourceType": "Bundle",
            "type": "history",
            "timestamp": "2030-03-04T08:00:00Z",
            "entry": [{
                "resource": {
                    "resourceType": "SubscriptionStatus",
                    "status": "active",
                    "type": "event-notification",
                    "eventsSinceSubscriptionStart": "1",
                    "notificationEvent": [{
                        "eventNumber": "1",
                        "timestamp": "2030-03-04T08:00:00Z",
                        "focus": {"reference": format!("{base}/Appointment/{}", a.id)}
                    }],
                    "subscription": {"reference": format!("{base}/Subscription/{created_sub}")},
                    "topic": format!("{base}/SubscriptionTopic/1")
                },
                "request": {"method": "GET", "url": format!("{base}/Subscription/{created_sub}/$status")},
                "response": {"status": "200"}
            }]
        })
    );
    // A cancellation reaches the AppointmentCancelled subscriber only.
    let tenant = s.tenant;
    app.store
        .write(move |c| {
            Box::pin(async move {
                appointments::cancel(
                    c,
                    tenant,
                    a.id,
                    Actor { kind: ActorKind::User, dialect: None },
                    None,
                    ts("2030-03-04T08:00:00Z"),
                )
                .await
            })
        })
        .await
        .unwrap();
    app.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 4);
    let status = &got[3].json()["entry"][0]["resource"];
    assert_eq!(status["subscription"]["reference"], format!("{base}/Subscription/{cancelled_sub}"));
    assert_eq!(status["topic"], format!("{base}/SubscriptionTopic/2"));
    // $status and $events tell the same story.
    let st: Value = app
        .embassy(Method::GET, &format!("/Subscription/{created_sub}/$status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["entry"][0]["resource"]["type"], "query-status");
    assert_eq!(st["entry"][0]["resource"]["eventsSinceSubscriptionStart"], "1");
    let all: Value = app.embassy(Method::GET, "/Subscription/$status").send().await.unwrap().json().await.unwrap();
    assert_eq!(all["total"], 2);
    let ev: Value = app
        .embassy(Method::GET, &format!("/Subscription/{created_sub}/$events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ev["type"], "history");
    let r = &ev["entry"][0]["resource"];
    assert_eq!(r["type"], "query-event");
    assert_eq!(r["notificationEvent"][0]["eventNumber"], "1");
    assert_eq!(r["notificationEvent"][0]["focus"]["reference"], format!("{base}/Appointment/{}", a.id));
    let none: Value = app
        .embassy(Method::GET, &format!("/Subscription/{created_sub}/$events?eventsSinceNumber=2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(none["entry"][0]["resource"].get("notificationEvent").is_none());
    let bad = app
        .embassy(Method::GET, &format!("/Subscription/{created_sub}/$events?content=full-resource"))
        .send()
        .await
        .unwrap();
    expect_error(bad, 400, "PayloadContentNotSupported").await;
    app.stop().await;
}

async fn retries_follow_the_backoff_then_dead_letter(engine: Engine) {
    let delivery = polyclinic::config::Delivery { max_attempts: 3, backoff_seconds: 30, ..Default::default() };
    let app = spawn_app_with(engine, Spawn { test_clock: true, delivery: Some(delivery), ..Default::default() }).await;
    app.seed(&acme_seed("acme")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let rx = Receiver::start().await;
    let s = seeded(&app, "acme").await;
    // No heartbeats here: a failing heartbeat would (rightly) queue ahead of the next event.
    let mut body = subscription(&rx.url, 1);
    body["channel"]["extension"] = json!([{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
        "valueUnsignedInt": 0
    }]);
    let sub = created(&app, &body).await["id"].as_str().unwrap().to_owned();
    rx.respond_with(500);
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    app.run_due().await;
    let event = |d: &[Value]| d.iter().find(|d| d["event"] == "AppointmentCreated").cloned().unwrap();
    let d = event(&app.deliveries("acme").await);
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("failed"), Some(1), Some(500))
    );
    // The first retry comes 30 s later, give or take 20 %: not at +23 s, surely by +37 s.
    app.advance(23).await;
    app.run_due().await;
    assert_eq!(event(&app.deliveries("acme").await)["attempts"], 1);
    app.advance(14).await;
    app.run_due().await;
    assert_eq!(event(&app.deliveries("acme").await)["attempts"], 2);
    let failing: Value =
        app.embassy(Method::GET, &format!("/Subscription/{sub}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(failing["status"], "error", "a failing endpoint puts the subscription in error");
    // The second retry doubles: 60 s +/- 20 %.
    app.advance(47).await;
    app.run_due().await;
    assert_eq!(event(&app.deliveries("acme").await)["attempts"], 2);
    app.advance(26).await;
    app.run_due().await;
    let dead = event(&app.deliveries("acme").await);
    assert_eq!((dead["state"].as_str(), dead["attempts"].as_i64()), (Some("dead"), Some(3)), "{dead}");
    assert_eq!(dead["history"].as_array().unwrap().len(), 3);
    assert!(dead["history"].as_array().unwrap().iter().all(|a| a["status"] == 500));
    // Nothing more is tried.
    app.advance(100_000).await;
    app.run_due().await;
    assert_eq!(event(&app.deliveries("acme").await)["attempts"], 3);
    let st: Value =
        app.embassy(Method::GET, &format!("/Subscription/{sub}/$status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(st["entry"][0]["resource"]["error"][0]["coding"][0]["code"], "no-response");
    // The endpoint recovers: the next event is delivered and the subscription is active again.
    rx.respond_with(200);
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-06T09:00:00Z", "2030-03-06T09:15:00Z")).await.unwrap();
    app.run_due().await;
    let recovered: Value =
        app.embassy(Method::GET, &format!("/Subscription/{sub}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(recovered["status"], "active");
    let last = rx.received().last().unwrap().json();
    assert_eq!(last["entry"][0]["resource"]["notificationEvent"][0]["eventNumber"], "2");
    app.stop().await;
}

async fn heartbeats_follow_the_period(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let mut body = subscription(&rx.url, 3);
    body["channel"]["extension"] = json!([{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
        "valueUnsignedInt": 60
    }]);
    let sub = created(&app, &body).await;
    assert_eq!(sub["channel"]["extension"][0]["valueUnsignedInt"], 60);
    app.advance(59).await;
    app.run_due().await;
    assert_eq!(rx.received().len(), 1, "only the handshake so far");
    app.advance(1).await;
    app.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 2);
    let hb = &got[1].json()["entry"][0]["resource"];
    assert_eq!(hb["type"], "heartbeat");
    assert_eq!(hb["eventsSinceSubscriptionStart"], "0", "heartbeats do not count as events");
    app.run_due().await;
    assert_eq!(rx.received().len(), 2, "one heartbeat per period");
    app.stop().await;
}

async fn heartbeats_shorter_than_a_minute_are_refused(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let with_period = |channel: Value| {
        let mut body = subscription(&rx.url, 1);
        for (k, v) in channel.as_object().unwrap() {
            body["channel"][k] = v.clone();
        }
        body
    };
    let ext = |v: i64| {
        json!({"extension": [{
            "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
            "valueUnsignedInt": v
        }]})
    };
    let odd = json!({"extension": [{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
        "valueUnsignedInt": "sixty"
    }]});
    for bad in [ext(59), ext(1), ext(-60), json!({"heartbeatPeriod": 59}), json!({"heartbeatPeriod": 59.5}), odd] {
        let r = create(&app, &with_period(bad.clone())).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            (status, body["issue"][0]["details"]["coding"][0]["code"].as_str()),
            (400, Some("InvalidFhirResource")),
            "{bad}: {body}"
        );
        let message = body["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(message.contains("heartbeat period") && message.contains("60"), "a clear message: {message}");
        crate::fhir_schema::check_embassy(&body);
    }
    assert_eq!(rx.received().len(), 0, "no handshake for a refused subscription");
    // 60 s is the shortest period, still instant to test with the test clock.
    let sub = created(&app, &with_period(ext(60))).await;
    assert_eq!(sub["channel"]["extension"][0]["valueUnsignedInt"], 60);
    app.advance(60).await;
    app.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 2, "the handshake, then a heartbeat");
    assert_eq!(got[1].json()["entry"][0]["resource"]["type"], "heartbeat");
    app.stop().await;
}

async fn xml_subscriptions_receive_fhir_xml(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let mut body = subscription(&rx.url, 1);
    body["channel"]["payload"] = json!("application/fhir+xml");
    created(&app, &body).await;
    let hs = &rx.received()[0];
    assert_eq!(hs.header("content-type"), Some("application/fhir+xml"));
    assert!(
        hs.body.starts_with(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"history\"/>"
        ),
        "{}",
        hs.body
    );
    assert!(
        hs.body.contains("<SubscriptionStatus><status value=\"requested\"/><type value=\"handshake\"/>"),
        "{}",
        hs.body
    );
    // Responses in XML when asked.
    let r = app.embassy(Method::GET, "/Subscription").header("accept", "application/fhir+xml").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/fhir+xml; charset=utf-8");
    let text = r.text().await.unwrap();
    assert!(
        text.contains("<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"searchset\"/><total value=\"1\"/>"),
        "{text}"
    );
    let err = app.embassy(Method::GET, "/Subscription/42?_format=application/fhir%2Bxml").send().await.unwrap();
    assert_eq!(err.status(), 404);
    assert!(err.text().await.unwrap().contains("<OperationOutcome xmlns=\"http://hl7.org/fhir\">"));
    app.stop().await;
}

async fn email_subscriptions_are_delivered_locally(engine: Engine) {
    let (app, _) = setup(engine).await;
    let s = seeded(&app, "acme").await;
    let mut body = subscription("mailto:integrations@acme.test", 1);
    body["channel"]["type"] = json!("email");
    let sub = created(&app, &body).await;
    assert_eq!(sub["status"], "active");
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    app.run_due().await;
    let d = app.deliveries("acme").await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["target"], "mailto:integrations@acme.test");
    assert_eq!(d[0]["event"], "AppointmentCreated");
    assert_eq!(d[0]["state"], "delivered");
    app.stop().await;
}

async fn off_subscriptions_hear_nothing_and_delete_removes(engine: Engine) {
    let (app, rx) = setup(engine).await;
    let s = seeded(&app, "acme").await;
    let id = created(&app, &subscription(&rx.url, 1)).await["id"].as_str().unwrap().to_owned();
    assert_eq!(patch(&app, &id, &status_patch("off")).await.status(), 200);
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    app.run_due().await;
    assert_eq!(rx.received().len(), 1, "only the handshake");
    let del = app.embassy(Method::DELETE, &format!("/Subscription/{id}")).send().await.unwrap();
    assert_eq!(del.status(), 200);
    expect_error(
        app.embassy(Method::GET, &format!("/Subscription/{id}")).send().await.unwrap(),
        404,
        "SubscriptionNotFound",
    )
    .await;
    created(&app, &subscription(&rx.url, 1)).await;
    created(&app, &subscription(&rx.url, 2)).await;
    assert_eq!(app.embassy(Method::DELETE, "/Subscription").send().await.unwrap().status(), 200);
    let list: Value = app.embassy(Method::GET, "/Subscription").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 0);
    app.stop().await;
}

async fn a_failing_target_holds_back_only_itself_and_order_is_kept(engine: Engine) {
    let (app, good) = setup(engine).await;
    let bad = Receiver::start().await;
    let s = seeded(&app, "acme").await;
    created(&app, &subscription(&good.url, 1)).await;
    created(&app, &subscription(&bad.url, 3)).await;
    bad.respond_with(500);
    for day in 5..10 {
        let start = format!("2030-03-{day:02}T09:00:00Z");
        let end = format!("2030-03-{day:02}T09:15:00Z");
        let a = book(&app, s.tenant, draft(&s, s.ann, None, &start, &end)).await.unwrap();
        // Each booking also updates: topic 3 for the failing endpoint.
        let tenant = s.tenant;
        let mut changed = a.clone();
        changed.comment = Some("updated".into());
        app.store
            .write(move |c| {
                Box::pin(
                    async move { appointments::update_details(c, tenant, changed, ts("2030-03-04T08:00:00Z")).await },
                )
            })
            .await
            .unwrap();
    }
    app.run_due().await;
    let numbers: Vec<String> = good.received()[1..]
        .iter()
        .map(|r| r.json()["entry"][0]["resource"]["notificationEvent"][0]["eventNumber"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers, vec!["1", "2", "3", "4", "5"], "all delivered, in order, despite the failing target");
    // Numbered in one dispatch, each notification still counts the events
    // up to its own.
    let counts: Vec<String> = good.received()[1..]
        .iter()
        .map(|r| r.json()["entry"][0]["resource"]["eventsSinceSubscriptionStart"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(counts, numbers, "eventsSinceSubscriptionStart of each notification");
    // The failing queue tried only its first delivery: the rest wait behind it, in order.
    assert_eq!(bad.received().len(), 2, "handshake and the first update");
    app.stop().await;
}

on_both_engines!(
    topics_are_listed_and_read,
    the_api_key_is_required_and_checked,
    create_sends_the_handshake_then_activates,
    a_failed_handshake_creates_nothing,
    every_create_error_code,
    unknown_subscriptions_are_not_found,
    every_patch_error_code,
    events_reach_every_subscriber_with_full_urls,
    retries_follow_the_backoff_then_dead_letter,
    heartbeats_follow_the_period,
    heartbeats_shorter_than_a_minute_are_refused,
    xml_subscriptions_receive_fhir_xml,
    email_subscriptions_are_delivered_locally,
    off_subscriptions_hear_nothing_and_delete_removes,
    a_failing_target_holds_back_only_itself_and_order_is_kept,
);
