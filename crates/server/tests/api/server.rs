//! The binary's behaviour: health, readiness, metrics, restarts, durability.

use crate::helpers::{Engine, Spawn, acme_seed, fresh_database, spawn_app, spawn_app_with};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::Value;

async fn health_readiness_and_metrics(engine: Engine) {
    let app = spawn_app(engine).await;
    let h = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!((h.status().as_u16(), h.text().await.unwrap()), (200, "ok".to_string()));
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.admin(Method::GET, "/admin/tenants").send().await.unwrap();
    let m = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(text.contains("http_requests_total{method=\"GET\",route=\"/admin/tenants\",status=\"200\"}"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    // On SQLite, the memory SQLite holds, and the soft limit the server set
    // (24 MiB by default).
    let gauge = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok());
    if engine == Engine::Sqlite {
        assert!(gauge("sqlite_heap_bytes").is_some_and(|b| b > 0.0), "{text}");
        assert_eq!(gauge("sqlite_heap_soft_limit_bytes"), Some(24.0 * 1024.0 * 1024.0), "{text}");
    }
    app.stop().await;
}

async fn data_survives_a_restart_on_the_same_database(engine: Engine) {
    let database = fresh_database(engine).await;
    let app =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database.clone()), ..Default::default() })
            .await;
    let first = app.seed(&acme_seed("acme")).await;
    app.stop().await;
    // Migrations are applied once; the second start finds them done.
    let again =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database), ..Default::default() }).await;
    let tenants: Value = again.admin(Method::GET, "/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(tenants[0]["id"], first["tenants"]["acme"]["id"]);
    assert_eq!(again.seed(&acme_seed("acme")).await, first);
    again.stop().await;
}

async fn unknown_routes_are_404(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.client.get(app.url("/no/such/thing")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

on_both_engines!(health_readiness_and_metrics, data_survives_a_restart_on_the_same_database, unknown_routes_are_404);

async fn protocol_secrets_are_sealed_at_rest_and_survive_a_restart(engine: Engine) {
    use polyclinic_core::tenant::Dialect;
    use polyclinic_store::tenants;
    let database = fresh_database(engine).await;
    let app =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database.clone()), ..Default::default() })
            .await;
    app.seed(&acme_seed("acme")).await;
    // Nothing secret is stored in clear: not the API keys, not the webhook key.
    let dump: Vec<String> = app
        .store
        .read(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar::<_, String>(
                    "SELECT client_id || '|' || secret_hash || '|' || COALESCE(sealed_secret, '') || '|' || doc FROM credentials",
                )
                .fetch_all(&mut *c)
                .await?)
            })
        })
        .await
        .unwrap();
    let all = dump.join("\n");
    for secret in ["emb-acme-1", "nab-acme-1", "solo-acme-1", "dp-secret", "fhir-acme-1", "optional"] {
        assert!(!all.contains(secret), "{secret} stored in clear");
    }
    app.stop().await;
    let again =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database), ..Default::default() }).await;
    let key = again.store.secret_key().clone();
    let solo = again
        .store
        .read(|c| Box::pin(async move { tenants::authenticate(c, Dialect::Solo, "solo-acme-1").await }))
        .await
        .unwrap()
        .expect("solo credential");
    assert!(solo.config.has_webhook_secret);
    let secrets = again
        .store
        .read(move |c| Box::pin(async move { tenants::protocol_secrets(c, solo.tenant_id, solo.id, &key).await }))
        .await
        .unwrap();
    assert_eq!(secrets.webhook_secret.as_deref(), Some("optional"));
    again.stop().await;
}

on_both_engines!(protocol_secrets_are_sealed_at_rest_and_survive_a_restart);
