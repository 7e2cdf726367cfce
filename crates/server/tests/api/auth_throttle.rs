//! Credentials cannot be guessed at speed: failed authentications are
//! throttled per Docplanner client id and per remote address, with a 429 in
//! each dialect's shape; a Docplanner client's live tokens are capped and
//! expired ones are deleted.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::Value;

async fn seeded(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    // At the start of a clock minute, so that one test's failures fall in
    // one throttle window.
    app.set_clock("2030-03-04T08:00:00Z").await;
    app
}

async fn token_request(app: &TestApp, client_id: &str, secret: &str) -> reqwest::Response {
    app.client
        .post(app.url("/oauth/v2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)])
        .send()
        .await
        .unwrap()
}

/// Access token rows in the database, of every tenant.
async fn token_rows(app: &TestApp) -> i64 {
    app.store
        .read(|c| {
            Box::pin(
                async move { Ok(sqlx::query_scalar("SELECT COUNT(*) FROM oauth_tokens").fetch_one(&mut *c).await?) },
            )
        })
        .await
        .unwrap()
}

fn retry_after(r: &reqwest::Response) -> i64 {
    r.headers()["retry-after"].to_str().unwrap().parse().unwrap()
}

async fn wrong_docplanner_secrets_are_throttled_per_client_id(engine: Engine) {
    let app = seeded(engine).await;
    for _ in 0..10 {
        assert_eq!(token_request(&app, "dp-acme", "guess").await.status(), 401);
    }
    // Locked: even the right secret answers 429 until the window ends.
    let locked = token_request(&app, "dp-acme", "dp-secret").await;
    assert_eq!(locked.status(), 429);
    assert!((1..=60).contains(&retry_after(&locked)));
    let body: Value = locked.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    // Another client id from the same address is not locked by these.
    assert_eq!(token_request(&app, "nobody", "x").await.status(), 401);
    app.advance(60).await;
    assert_eq!(token_request(&app, "dp-acme", "dp-secret").await.status(), 200, "a new window");
}

async fn guessing_keys_is_throttled_per_address_in_every_dialect(engine: Engine) {
    let app = seeded(engine).await;
    let token = crate::dp::token(&app).await;
    for i in 0..50 {
        let r = app
            .client
            .get(app.url("/embassy/HealthcareService"))
            .header("X-Visiba-Care-API-Key", format!("guess-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    // Embassy: 429 OperationOutcome, the right key included.
    let r = app.embassy(Method::GET, "/HealthcareService").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!((1..=60).contains(&retry_after(&r)));
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "throttled");
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "TooManyRequests");
    // Docplanner bearer calls from the same address: 429 in its error shape.
    let r = crate::dp::api(&app, &token, "/facilities").await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) >= 1);
    assert_eq!(r.headers()["content-type"], "application/vnd.error+docplanner+json");
    // The token endpoint and the admin API too.
    assert_eq!(token_request(&app, "dp-acme", "dp-secret").await.status(), 429);
    let r = app.client.get(app.url("/admin/tenants")).bearer_auth("test-admin-token").send().await.unwrap();
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests", "admin error shape: {body}");
}

async fn wrong_admin_tokens_are_throttled(engine: Engine) {
    let app = seeded(engine).await;
    for _ in 0..50 {
        let r = app.client.get(app.url("/admin/tenants")).bearer_auth("guess").send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = app.admin(Method::GET, "/admin/tenants").send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!((1..=60).contains(&retry_after(&r)));
}

async fn a_docplanner_client_holds_at_most_twenty_live_tokens(engine: Engine) {
    let app = seeded(engine).await;
    let mut tokens = Vec::new();
    for _ in 0..25 {
        let r = token_request(&app, "dp-acme", "dp-secret").await;
        assert_eq!(r.status(), 200);
        tokens.push(r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned());
        // A second apart, so that "oldest" is well defined.
        app.advance(1).await;
    }
    let rows = token_rows(&app).await;
    assert_eq!(rows, 20);
    for (i, t) in tokens.iter().enumerate() {
        let status = crate::dp::api(&app, t, "/facilities").await.status();
        assert_eq!(status, if i < 5 { 401 } else { 200 }, "token {i}: the oldest expire first");
    }
}

async fn expired_tokens_are_deleted(engine: Engine) {
    let app = seeded(engine).await;
    let token = crate::dp::token(&app).await;
    // An expired token is kept for a day, so that it is told as expired
    // whenever the expiry job happens to run; then the job deletes it, due
    // at that moment and not a second before.
    app.advance(3600).await;
    app.run_due().await;
    assert_eq!(token_rows(&app).await, 1, "expired, still kept");
    let expired = crate::dp::api(&app, &token, "/facilities").await;
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.json::<Value>().await.unwrap()["error_description"], "The access token provided has expired.");
    app.advance(24 * 3600 - 1).await;
    app.run_due().await;
    assert_eq!(token_rows(&app).await, 1, "not yet a day past its expiry");
    app.advance(1).await;
    app.run_due().await;
    assert_eq!(token_rows(&app).await, 0);
    let gone = crate::dp::api(&app, &token, "/facilities").await;
    assert_eq!(gone.status(), 401);
    assert_eq!(gone.json::<Value>().await.unwrap()["error_description"], "The access token provided is invalid.");
}

on_both_engines!(
    wrong_docplanner_secrets_are_throttled_per_client_id,
    guessing_keys_is_throttled_per_address_in_every_dialect,
    wrong_admin_tokens_are_throttled,
    a_docplanner_client_holds_at_most_twenty_live_tokens,
    expired_tokens_are_deleted,
);
