//! The in-memory caches of credentials, tenants and catalogues
//! (`polyclinic_http::cache`): a change made on this node is seen by the
//! very next request, whatever the time to live (these servers keep entries
//! for an hour, so only invalidation can make them pass); a change made by
//! another node on the same PostgreSQL database is seen once the time to
//! live has run out.

use crate::dp::{self, api, expect_error, expect_ok};
use crate::helpers::{Engine, Spawn, TestApp, acme_seed, fresh_database, postgres_url, spawn_app_with};
use crate::nodes::{ADMIN, Node};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Longer than any test here runs: an entry never expires on its own.
const FOREVER: Duration = Duration::from_secs(3600);

async fn spawn(engine: Engine) -> TestApp {
    spawn_app_with(engine, Spawn { test_clock: true, cache_ttl: Some(FOREVER), ..Default::default() }).await
}

async fn embassy_get(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/embassy{path}"))).header("X-Visiba-Care-API-Key", key).send().await.unwrap()
}

on_both_engines!(
    an_api_key_added_by_the_seed_is_accepted_at_once,
    an_api_client_changed_by_the_seed_is_seen_at_once,
    a_token_pushed_out_by_newer_ones_is_refused_at_once,
    a_practitioner_and_a_service_changed_by_the_seed_are_seen_at_once,
    an_address_changed_through_docplanner_is_seen_at_once,
);

async fn an_api_key_added_by_the_seed_is_accepted_at_once(engine: Engine) {
    let app = spawn(engine).await;
    let mut doc = acme_seed("acme");
    app.seed(&doc).await;
    assert_eq!(embassy_get(&app, "emb-acme-1", "/HealthcareService").await.status(), 200);
    assert_eq!(embassy_get(&app, "emb-acme-2", "/HealthcareService").await.status(), 403);
    doc["tenants"][0]["credentials"]
        .as_array_mut()
        .unwrap()
        .push(json!({"dialect": "embassy", "api_key": "emb-acme-2"}));
    app.seed(&doc).await;
    assert_eq!(embassy_get(&app, "emb-acme-2", "/HealthcareService").await.status(), 200);
    assert_eq!(embassy_get(&app, "emb-acme-1", "/HealthcareService").await.status(), 200);
}

/// The seed's `dp-acme` client with `facilities`, and a second facility
/// `other`.
fn seed_with_facilities(facilities: &[&str]) -> Value {
    let mut doc = acme_seed("acme");
    let t = &mut doc["tenants"][0];
    t["facilities"].as_array_mut().unwrap().push(json!({"key": "other", "name": "Other clinic", "addresses": []}));
    t["credentials"][3]["facilities"] = json!(facilities);
    doc
}

async fn an_api_client_changed_by_the_seed_is_seen_at_once(engine: Engine) {
    let app = spawn(engine).await;
    let ids = app.seed(&seed_with_facilities(&["hosp"])).await;
    let hosp = ids["tenants"]["acme"]["facilities"]["hosp"].as_str().unwrap().to_owned();
    let other = ids["tenants"]["acme"]["facilities"]["other"].as_str().unwrap().to_owned();
    let token = dp::token(&app).await;
    expect_ok(api(&app, &token, &format!("/facilities/{hosp}")).await).await;
    expect_error(
        api(&app, &token, &format!("/facilities/{other}")).await,
        403,
        "You are not authorized to see this facility",
    )
    .await;
    app.seed(&seed_with_facilities(&["other"])).await;
    expect_error(
        api(&app, &token, &format!("/facilities/{hosp}")).await,
        403,
        "You are not authorized to see this facility",
    )
    .await;
    expect_ok(api(&app, &token, &format!("/facilities/{other}")).await).await;
}

async fn a_token_pushed_out_by_newer_ones_is_refused_at_once(engine: Engine) {
    let app = spawn(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    let hosp = ids["tenants"]["acme"]["facilities"]["hosp"].as_str().unwrap().to_owned();
    let first = dp::token(&app).await;
    expect_ok(api(&app, &first, &format!("/facilities/{hosp}")).await).await;
    // Every later token expires later than the first: the first is the
    // oldest, the one a client's 21st live token pushes out.
    app.advance(1).await;
    for _ in 0..polyclinic_docplanner::oauth::MAX_LIVE_TOKENS {
        dp::token(&app).await;
    }
    let r = api(&app, &first, &format!("/facilities/{hosp}")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error_description"], "The access token provided is invalid.");
}

async fn a_practitioner_and_a_service_changed_by_the_seed_are_seen_at_once(engine: Engine) {
    let app = spawn(engine).await;
    let mut doc = acme_seed("acme");
    let ids = app.seed(&doc).await;
    let ann = ids["tenants"]["acme"]["practitioners"]["ann"].as_str().unwrap().to_owned();
    let gp = ids["tenants"]["acme"]["healthcare_services"]["gp"].as_str().unwrap().to_owned();
    let read = |path: String| {
        let app = &app;
        async move {
            let r = embassy_get(app, "emb-acme-1", &path).await;
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(read(format!("/Practitioner/{ann}")).await["name"][0]["family"], "Berg");
    assert_eq!(read(format!("/HealthcareService/{gp}")).await["name"], "GP online");
    let t = &mut doc["tenants"][0];
    t["practitioners"][0]["family"] = json!("Lind");
    t["practitioners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "cy", "given": "Cy", "family": "Holm", "email": "cy@acme.test"}));
    t["healthcare_services"][0]["name"] = json!("GP on call");
    let ids = app.seed(&doc).await;
    let cy = ids["tenants"]["acme"]["practitioners"]["cy"].as_str().unwrap().to_owned();
    assert_eq!(read(format!("/Practitioner/{ann}")).await["name"][0]["family"], "Lind");
    assert_eq!(read(format!("/Practitioner/{cy}")).await["name"][0]["family"], "Holm");
    assert_eq!(read(format!("/HealthcareService/{gp}")).await["name"], "GP on call");
}

async fn an_address_changed_through_docplanner_is_seen_at_once(engine: Engine) {
    let app = spawn(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    let a = &ids["tenants"]["acme"];
    let path = format!(
        "/facilities/{}/doctors/{}/addresses/{}",
        a["facilities"]["hosp"].as_str().unwrap(),
        a["practitioners"]["ann"].as_str().unwrap(),
        a["addresses"]["obrzezna"].as_str().unwrap()
    );
    let token = dp::token(&app).await;
    let scoped = format!("{path}?with=address.insurance_support");
    assert_eq!(expect_ok(api(&app, &token, &scoped).await).await["insurance_support"], "private");
    let r = dp::call(&app, &token, Method::PATCH, &path, Some(json!({"insurance_support": "insurance"}))).await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(expect_ok(api(&app, &token, &scoped).await).await["insurance_support"], "insurance");
}

// ------------------------------------------------------------ two nodes

/// A node whose caches keep entries `cache_ttl_ms`.
fn node(database: &str, cache_ttl_ms: u64) -> Node {
    Node::start_with(database, &["--cache-ttl-ms", &cache_ttl_ms.to_string()])
}

/// Asks `probe` every 20 ms until it holds; fails after a minute (a bound
/// against hanging, not a timing assertion).
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !probe().await {
        assert!(std::time::Instant::now() < give_up, "never seen: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_another_node_is_seen_once_the_ttl_has_passed() {
    if postgres_url().is_none() {
        return;
    }
    let database = fresh_database(Engine::Postgres).await;
    // A caches for 200 ms; B writes.
    let a = node(&database, 200);
    let b = node(&database, 200);
    let client = crate::helpers::http_client();
    let seed = |node: &Node, doc: Value| {
        let r = client.post(format!("{}/admin/seed", node.base)).bearer_auth(ADMIN).json(&doc).send();
        async move {
            let r = r.await.unwrap();
            let status = r.status();
            let body = r.json::<Value>().await.unwrap();
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let ids = seed(&a, seed_with_facilities(&["hosp"])).await;
    let ann = ids["tenants"]["acme"]["practitioners"]["ann"].as_str().unwrap().to_owned();
    let hosp = ids["tenants"]["acme"]["facilities"]["hosp"].as_str().unwrap().to_owned();
    let token: Value = client
        .post(format!("{}/oauth/v2/token", a.base))
        .header("authorization", dp::BASIC)
        .form(&[("grant_type", "client_credentials"), ("scope", "integration")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let family = || {
        let r = client
            .get(format!("{}/embassy/Practitioner/{ann}", a.base))
            .header("X-Visiba-Care-API-Key", "emb-acme-1")
            .send();
        async move { r.await.unwrap().json::<Value>().await.unwrap()["name"][0]["family"].clone() }
    };
    let facility_status = || {
        let r = client.get(format!("{}/api/v3/integration/facilities/{hosp}", a.base)).bearer_auth(&token).send();
        async move { r.await.unwrap().status().as_u16() }
    };
    // A reads (and keeps) the practitioner and the API client.
    assert_eq!(family().await, "Berg");
    assert_eq!(facility_status().await, 200);
    // B renames the practitioner and takes the facility from the client.
    let mut doc = seed_with_facilities(&["other"]);
    doc["tenants"][0]["practitioners"][0]["family"] = json!("Lind");
    seed(&b, doc).await;
    eventually("the new name on node A", || async { family().await == "Lind" }).await;
    eventually("the client's new facilities on node A", || async { facility_status().await == 403 }).await;
}
