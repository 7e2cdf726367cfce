//! Delivery targets cannot reach internal hosts (issue 9, item 6): Embassy
//! subscription endpoints and Docplanner PUSH URLs on loopback, private,
//! link-local, unique-local, unspecified or multicast addresses (and their
//! IPv4-mapped forms, and names resolving to them) are refused when
//! registered and again at every send, unless the operator allows them.
//!
//! These servers run on the test clock with `--delivery-allow-private=false`
//! (the test clock alone would allow private targets).

use crate::booking::{Seeded, book, draft, seeded};
use crate::helpers::{Engine, Spawn, TestApp, acme_seed, fresh_database, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic_core::{AddressId, HealthcareServiceId, PractitionerId, TenantId};
use reqwest::Method;
use serde_json::{Value, json};

/// A server on the test clock with private targets refused.
async fn strict_app(engine: Engine, database: Option<String>, allow_hosts: &[&str]) -> TestApp {
    spawn_app_with(
        engine,
        Spawn {
            test_clock: true,
            database,
            allow_private: Some(false),
            allow_hosts: allow_hosts.iter().map(|h| (*h).to_owned()).collect(),
            ..Default::default()
        },
    )
    .await
}

/// The example seed for tenant `key`, its Docplanner PUSH URL set to `push_url`
/// (or removed: PULL).
fn seed_with_push_url(key: &str, push_url: Option<&str>) -> Value {
    let mut doc = acme_seed(key);
    for c in doc["tenants"][0]["credentials"].as_array_mut().unwrap() {
        if c["dialect"] == "docplanner" {
            let c = c.as_object_mut().unwrap();
            match push_url {
                Some(url) => {
                    c.insert("push_url".into(), json!(url));
                }
                None => {
                    c.remove("push_url");
                    c.remove("push_api_key");
                }
            }
        }
    }
    doc
}

/// Seeds `acme` with PULL notifications (no PUSH URL to refuse).
async fn seed_pull(app: &TestApp) -> Seeded {
    let ids = app.seed(&seed_with_push_url("acme", None)).await;
    let t = &ids["tenants"]["acme"];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    Seeded {
        tenant: TenantId(id(&t["id"])),
        ann: PractitionerId(id(&t["practitioners"]["ann"])),
        gp: HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: AddressId(id(&t["addresses"]["obrzezna"])),
    }
}

fn subscription(endpoint: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "reason": "SSRF check",
        "status": "requested",
        "criteria": "http://example.com/SubscriptionTopic/1",
        "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json"}
    })
}

async fn subscribe(app: &TestApp, endpoint: &str) -> reqwest::Response {
    app.embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&subscription(endpoint))
        .send()
        .await
        .unwrap()
}

fn status_patch(value: &str) -> Value {
    json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"},
        {"name": "path", "valueString": "/status"},
        {"name": "value", "valueString": value}]}]})
}

async fn patch_status(app: &TestApp, id: &str, value: &str) -> reqwest::Response {
    app.embassy(Method::PATCH, &format!("/Subscription/{id}"))
        .header("content-type", "application/fhir+json")
        .json(&status_patch(value))
        .send()
        .await
        .unwrap()
}

/// Asserts an Embassy `ChannelEndpointInvalid` naming the kind of address.
async fn expect_endpoint_invalid(r: reqwest::Response, kind: &str) {
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"][0]["details"]["coding"][0]["code"], "ChannelEndpointInvalid", "{body}");
    let message = body["issue"][0]["diagnostics"].as_str().unwrap_or("");
    assert!(message.contains(kind), "the message names the {kind} address: {message}");
}

/// The whole check for one address form: Embassy refuses the endpoint with
/// `ChannelEndpointInvalid` (nothing stored, no handshake sent), and a seed
/// naming it as a Docplanner PUSH URL is refused with the admin API's 400
/// field error (nothing stored).
async fn refused_everywhere(engine: Engine, url: &str, kind: &str) {
    let app = strict_app(engine, None, &[]).await;
    seed_pull(&app).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    expect_endpoint_invalid(subscribe(&app, url).await, kind).await;
    let list: Value = app.embassy(Method::GET, "/Subscription").send().await.unwrap().json().await.unwrap();
    assert_eq!(list["total"], 0, "nothing stored: {list}");
    assert!(app.deliveries("acme").await.is_empty(), "no handshake was attempted");

    let r = app.admin(Method::POST, "/admin/seed").json(&seed_with_push_url("other", Some(url))).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("credentials.push_url") && message.contains(kind), "{message}");
    let other = app.admin(Method::GET, "/admin/deliveries?tenant=other").send().await.unwrap();
    assert_eq!(other.status(), 404, "the refused seed wrote nothing");
    app.stop().await;
}

async fn a_target_on_the_cloud_metadata_address_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://169.254.169.254/latest/meta-data/", "link-local").await;
}

/// A real receiver on another local port: refused, and never contacted.
async fn a_target_on_another_loopback_port_is_refused(engine: Engine) {
    let rx = Receiver::start().await;
    refused_everywhere(engine, &rx.url, "loopback").await;
    assert!(rx.received().is_empty(), "no request reached the receiver");
}

async fn a_target_on_an_ipv4_mapped_loopback_address_is_refused(engine: Engine) {
    let rx = Receiver::start().await;
    let port = rx.url.rsplit(':').next().unwrap();
    refused_everywhere(engine, &format!("http://[::ffff:127.0.0.1]:{port}"), "loopback (IPv4-mapped)").await;
    assert!(rx.received().is_empty(), "no request reached the receiver");
}

async fn a_target_in_10_0_0_0_8_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://10.1.2.3/hook", "private").await;
}

async fn a_target_in_172_16_0_0_12_is_refused(engine: Engine) {
    refused_everywhere(engine, "https://172.16.5.4/hook", "private").await;
}

async fn a_target_in_192_168_0_0_16_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://192.168.1.10:8080/hook", "private").await;
}

async fn a_target_on_a_unique_local_address_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://[fc00::1]/hook", "unique-local").await;
}

async fn a_target_on_an_ipv6_link_local_address_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://[fe80::1]/hook", "link-local").await;
}

async fn a_target_on_the_unspecified_address_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://0.0.0.0:8080/hook", "unspecified").await;
}

async fn a_target_on_a_multicast_address_is_refused(engine: Engine) {
    refused_everywhere(engine, "http://224.0.0.1/hook", "multicast").await;
    refused_everywhere(engine, "http://[ff02::1]/hook", "multicast").await;
}

/// `localhost` is a host name: resolved, and refused for what it resolves to.
async fn a_target_whose_name_resolves_to_loopback_is_refused(engine: Engine) {
    let rx = Receiver::start().await;
    let port = rx.url.rsplit(':').next().unwrap();
    refused_everywhere(engine, &format!("http://localhost:{port}"), "`localhost` resolves to").await;
    assert!(rx.received().is_empty(), "no request reached the receiver");
}

/// `--delivery-allow-hosts` exempts the hosts it names, and only those.
async fn delivery_allow_hosts_admits_the_named_hosts_only(engine: Engine) {
    let rx = Receiver::start().await;
    let port = rx.url.rsplit(':').next().unwrap().split('/').next().unwrap().to_owned();
    let app = strict_app(engine, None, &["localhost"]).await;
    seed_pull(&app).await;
    let r = subscribe(&app, &format!("http://localhost:{port}/hook")).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    assert_eq!(rx.wait_for(1).await.len(), 1, "the handshake reached the allowed host");
    expect_endpoint_invalid(subscribe(&app, &format!("http://127.0.0.1:{port}/other")).await, "loopback").await;
    app.stop().await;
}

/// A subscription registered while private targets were allowed, on a server
/// restarted without: its notifications are refused at send (the delivery
/// fails with a clear `last_error`, the receiver sees nothing), and it cannot
/// be re-activated.
async fn an_embassy_target_that_became_disallowed_is_refused_at_send(engine: Engine) {
    let rx = Receiver::start().await;
    let database = fresh_database(engine).await;
    let open = spawn_app_with(
        engine,
        Spawn { test_clock: true, database: Some(database.clone()), allow_private: Some(true), ..Default::default() },
    )
    .await;
    let s = seeded(&open, "acme").await;
    open.set_clock("2030-03-04T08:00:00Z").await;
    let r = subscribe(&open, &rx.url).await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(rx.wait_for(1).await.len(), 1, "the handshake");
    open.stop().await;

    let app = strict_app(engine, Some(database), &[]).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    book(&app, s.tenant, draft(&s, s.ann, None, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z")).await.unwrap();
    app.run_due().await;
    let deliveries = app.deliveries("acme").await;
    let notification = deliveries.iter().find(|d| d["event"] == "AppointmentCreated").expect("the notification");
    assert!(notification["state"] == "failed" || notification["state"] == "dead", "{notification}");
    assert_eq!(notification["last_status"], Value::Null, "no target answered: {notification}");
    let error = notification["last_error"].as_str().unwrap_or("");
    assert!(error.starts_with("refused: ") && error.contains("loopback"), "{error}");
    assert_eq!(rx.received().len(), 1, "nothing but the first handshake ever reached the receiver");

    assert_eq!(patch_status(&app, &id, "off").await.status(), 200);
    expect_endpoint_invalid(patch_status(&app, &id, "active").await, "loopback").await;
    assert_eq!(rx.received().len(), 1, "no re-handshake was sent");
    app.stop().await;
}

/// The same for a Docplanner PUSH URL seeded while allowed.
async fn a_docplanner_push_url_that_became_disallowed_is_refused_at_send(engine: Engine) {
    let rx = Receiver::start().await;
    let database = fresh_database(engine).await;
    let open = spawn_app_with(
        engine,
        Spawn { test_clock: true, database: Some(database.clone()), allow_private: Some(true), ..Default::default() },
    )
    .await;
    let ids = open.seed(&seed_with_push_url("acme", Some(&rx.url))).await;
    // The seed's own notifications (address assignments) go out while allowed.
    open.run_due().await;
    let before = rx.received().len();
    open.stop().await;
    let t = &ids["tenants"]["acme"];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    let s = Seeded {
        tenant: TenantId(id(&t["id"])),
        ann: PractitionerId(id(&t["practitioners"]["ann"])),
        gp: HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: AddressId(id(&t["addresses"]["obrzezna"])),
    };

    let app = strict_app(engine, Some(database), &[]).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    book(&app, s.tenant, draft(&s, s.ann, Some(s.address), "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z"))
        .await
        .unwrap();
    app.run_due().await;
    let deliveries = app.deliveries("acme").await;
    let push = deliveries.iter().find(|d| d["event"] == "slot-booked").expect("the slot-booked push");
    assert!(push["state"] == "failed" || push["state"] == "dead", "{push}");
    let error = push["last_error"].as_str().unwrap_or("");
    assert!(error.starts_with("refused: ") && error.contains("loopback"), "{error}");
    assert_eq!(rx.received().len(), before, "no request reached the receiver once disallowed");
    app.stop().await;
}

on_both_engines!(
    a_target_on_the_cloud_metadata_address_is_refused,
    a_target_on_another_loopback_port_is_refused,
    a_target_on_an_ipv4_mapped_loopback_address_is_refused,
    a_target_in_10_0_0_0_8_is_refused,
    a_target_in_172_16_0_0_12_is_refused,
    a_target_in_192_168_0_0_16_is_refused,
    a_target_on_a_unique_local_address_is_refused,
    a_target_on_an_ipv6_link_local_address_is_refused,
    a_target_on_the_unspecified_address_is_refused,
    a_target_on_a_multicast_address_is_refused,
    a_target_whose_name_resolves_to_loopback_is_refused,
    delivery_allow_hosts_admits_the_named_hosts_only,
    an_embassy_target_that_became_disallowed_is_refused_at_send,
    a_docplanner_push_url_that_became_disallowed_is_refused_at_send,
);
