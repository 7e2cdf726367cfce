//! No secret in clear in delivery rows (issue 9, item 7): Embassy
//! `channel.header` values are sealed in the subscription row and in every
//! delivery row, opened only to send (and to answer the API key that set
//! them); `GET /admin/deliveries` shows header names, never values.

use crate::booking::{book, draft, seeded};
use crate::helpers::{Engine, TestApp, spawn_app};
use crate::on_both_engines;
use crate::receiver::Receiver;
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "Bearer s3cr3t-receiver-token-4711";

fn subscription(endpoint: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "reason": "sealing",
        "status": "requested",
        "criteria": "http://example.com/SubscriptionTopic/1",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                    "header": [format!("Authorization={SECRET}"), "X-Tenant=acme"]}
    })
}

/// Every `doc` of the subscriptions and deliveries tables, and every
/// recorded attempt error, as stored.
async fn raw_rows(app: &TestApp) -> Vec<String> {
    app.store
        .read(|c| {
            Box::pin(async move {
                let mut rows: Vec<String> =
                    sqlx::query_scalar("SELECT doc FROM subscriptions").fetch_all(&mut *c).await?;
                rows.extend(sqlx::query_scalar::<_, String>("SELECT doc FROM deliveries").fetch_all(&mut *c).await?);
                rows.extend(
                    sqlx::query_scalar::<_, String>("SELECT COALESCE(error, '') FROM delivery_attempts")
                        .fetch_all(&mut *c)
                        .await?,
                );
                Ok(rows)
            })
        })
        .await
        .unwrap()
}

/// Creates the subscription (handshake) and sends one notification.
async fn subscribe_and_notify(app: &TestApp, rx: &Receiver) -> String {
    let s = seeded(app, "acme").await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let r = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&subscription(&rx.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    book(app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    app.run_due().await;
    id
}

async fn embassy_channel_headers_are_sealed_in_subscription_and_delivery_rows(engine: Engine) {
    let app = spawn_app(engine).await;
    let rx = Receiver::start().await;
    subscribe_and_notify(&app, &rx).await;
    // The receiver gets the header in clear, on the handshake and the notification.
    let got = rx.wait_for(2).await;
    assert!(got.iter().all(|r| r.header("authorization") == Some(SECRET)), "{:?}", got[0].headers);
    assert!(got.iter().all(|r| r.header("x-tenant") == Some("acme")));
    let rows = raw_rows(&app).await;
    let embassy: Vec<&String> = rows.iter().filter(|r| r.contains("Authorization")).collect();
    assert!(embassy.len() >= 3, "the subscription, the handshake and the notification: {rows:#?}");
    for row in &rows {
        assert!(!row.contains("s3cr3t-receiver-token-4711"), "a header value is stored in clear: {row}");
        assert!(!row.contains(r#""X-Tenant","acme""#), "every header value is sealed, not only Authorization: {row}");
    }
    assert!(embassy.iter().all(|r| r.contains("sealed:v1:")), "{embassy:#?}");
    app.stop().await;
}

async fn admin_deliveries_show_header_names_never_values(engine: Engine) {
    let app = spawn_app(engine).await;
    let rx = Receiver::start().await;
    subscribe_and_notify(&app, &rx).await;
    let r = app.admin(Method::GET, "/admin/deliveries?tenant=acme").send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains("s3cr3t"), "no header value in the admin list: {text}");
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    let embassy: Vec<&Value> = list.iter().filter(|d| d["target"] == json!(rx.url)).collect();
    assert_eq!(embassy.len(), 2, "handshake and notification: {text}");
    for d in &embassy {
        assert_eq!(d["headers"], json!(["Authorization", "X-Tenant"]), "{d}");
    }
    // Docplanner PUSH deliveries list their API key header by name too.
    if let Some(push) = list.iter().find(|d| d["target"] == "http://127.0.0.1:9/push") {
        assert_eq!(push["headers"], json!(["X-Api-Key"]), "{push}");
    }
    app.stop().await;
}

/// The decision where the spec is silent: `GET /Subscription/{id}` shows
/// `channel.header` as given, to the API key that created it only (opened
/// from the sealed form).
async fn get_subscription_shows_channel_headers_to_their_own_api_key(engine: Engine) {
    let app = spawn_app(engine).await;
    let rx = Receiver::start().await;
    let id = subscribe_and_notify(&app, &rx).await;
    let one: Value =
        app.embassy(Method::GET, &format!("/Subscription/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(one["channel"]["header"], json!([format!("Authorization={SECRET}"), "X-Tenant=acme"]), "{one}");
    let all: Value = app.embassy(Method::GET, "/Subscription").send().await.unwrap().json().await.unwrap();
    assert_eq!(all["entry"][0]["resource"]["channel"]["header"], one["channel"]["header"]);
    app.stop().await;
}

on_both_engines!(
    embassy_channel_headers_are_sealed_in_subscription_and_delivery_rows,
    admin_deliveries_show_header_names_never_values,
    get_subscription_shows_channel_headers_to_their_own_api_key,
);
