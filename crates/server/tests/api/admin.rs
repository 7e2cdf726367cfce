//! The admin contract of DESIGN.md.

use crate::helpers::{Engine, Spawn, acme_seed, spawn_app, spawn_app_with};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

async fn seed_answers_the_ids_of_every_keyed_entity(engine: Engine) {
    let app = spawn_app(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    let t = &ids["tenants"]["acme"];
    for path in [
        &t["id"],
        &t["practitioners"]["ann"],
        &t["healthcare_services"]["gp"],
        &t["facilities"]["hosp"],
        &t["addresses"]["obrzezna"],
        &t["care_locations"]["cl1"],
    ] {
        let id = path.as_str().unwrap_or_else(|| panic!("id missing in {ids}"));
        assert!(id.parse::<u64>().is_ok_and(|v| v > 0), "ids are decimal integers as strings: {id}");
    }
    // Distinct entities get distinct ids.
    assert_ne!(t["practitioners"]["ann"], t["healthcare_services"]["gp"]);
    app.stop().await;
}

async fn seed_is_idempotent_per_key(engine: Engine) {
    let app = spawn_app(engine).await;
    let first = app.seed(&acme_seed("acme")).await;
    let second = app.seed(&acme_seed("acme")).await;
    assert_eq!(first, second, "loading the same document twice answers the same ids");
    let tenants: Value = app.admin(Method::GET, "/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(tenants.as_array().unwrap().len(), 1, "and creates nothing new: {tenants}");
    // A second tenant gets ids of its own.
    let other = app.seed(&acme_seed("other")).await;
    assert_ne!(other["tenants"]["other"]["id"], first["tenants"]["acme"]["id"]);
    app.stop().await;
}

async fn a_credential_belongs_to_one_tenant(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    let mut doc = acme_seed("thief");
    doc["tenants"][0]["credentials"] = json!([{"dialect": "embassy", "api_key": "emb-acme-1"}]);
    let r = app.admin(Method::POST, "/admin/seed").json(&doc).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "already_exists");
    // Nothing of the refused document was written.
    let tenants: Value = app.admin(Method::GET, "/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(tenants.as_array().unwrap().len(), 1, "no partial write: {tenants}");
    app.stop().await;
}

async fn seed_rejects_bad_documents_with_clear_messages(engine: Engine) {
    let app = spawn_app(engine).await;
    let cases = [
        (json!({"tenants": [{"key": "a", "name": "A", "timezone": "Mars/Base"}]}), "timezone"),
        (
            json!({"tenants": [{"key": "a", "name": "A", "healthcare_services": [{"key": "gp", "name": "GP", "practitioners": ["nobody"]}]}]}),
            "nobody",
        ),
        (
            json!({"tenants": [{"key": "a", "name": "A", "credentials": [{"dialect": "telex", "api_key": "abcdefgh"}]}]}),
            "telex",
        ),
        (json!({"tenants": [{"key": "a", "name": "A", "credentials": [{"dialect": "embassy"}]}]}), "secret"),
        (json!({"tenants": [{"key": "a b", "name": "A"}]}), "key"),
        (
            json!({"tenants": [{"key": "a", "name": "A", "practitioners": [{"key": "p", "given": "P", "email": "not-an-email"}]}]}),
            "e-mail",
        ),
        (
            json!({"tenants": [{"key": "a", "name": "A", "practitioners": [{"key": "p", "given": "P", "hsa_id": "HSA1"}]}]}),
            "HSA",
        ),
        (
            json!({"tenants": [{"key": "a", "name": "A", "healthcare_services": [{"key": "gp", "name": "GP", "slot_seconds": 30}]}]}),
            "slot_seconds",
        ),
        (
            json!({"tenants": [{"key": "a", "name": "A", "healthcare_services": [{"key": "gp", "name": "GP", "opening_hours": [{"weekday": "mon", "from": "16:00", "to": "08:00"}]}]}]}),
            "opening_hours",
        ),
        (json!({"services": [{"id": "zero", "name": "x"}]}), "services.id"),
        (
            json!({"tenants": [{"key": "a", "name": "A", "settings": {"cancel_cutoff_minutes": -5}}]}),
            "cancel_cutoff_minutes",
        ),
    ];
    for (doc, needle) in cases {
        let r = app.admin(Method::POST, "/admin/seed").json(&doc).send().await.unwrap();
        assert_eq!(r.status(), 400, "{doc}");
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "message for {doc} should mention {needle}: {message}");
    }
    let tenants: Value = app.admin(Method::GET, "/admin/tenants").send().await.unwrap().json().await.unwrap();
    assert_eq!(tenants, json!([]), "refused documents write nothing");
    app.stop().await;
}

async fn malformed_bodies_answer_the_admin_error_shape(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app
        .admin(Method::POST, "/admin/seed")
        .header("content-type", "application/json")
        .body("{\"tenants\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    let r = app.admin(Method::POST, "/admin/seed").json(&json!({"tenants": "many"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

async fn admin_needs_the_token(engine: Engine) {
    let app = spawn_app(engine).await;
    let none = app.client.get(app.url("/admin/tenants")).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = app.client.get(app.url("/admin/tenants")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let seed = app.client.post(app.url("/admin/seed")).json(&acme_seed("acme")).send().await.unwrap();
    assert_eq!(seed.status(), 401);
    // The UI page itself is public (it asks for the token).
    let ui = app.client.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("Polyclinic admin"));
    app.stop().await;
}

async fn clock_sets_and_advances_now(engine: Engine) {
    let app = spawn_app(engine).await;
    let set: Value = app
        .admin(Method::POST, "/admin/clock")
        .json(&json!({"now": "2030-03-04T08:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set, json!({"now": "2030-03-04T08:00:00Z"}));
    let moved: Value = app
        .admin(Method::POST, "/admin/clock")
        .json(&json!({"advance_seconds": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(moved, json!({"now": "2030-03-04T09:00:00Z"}));
    let back: Value = app
        .admin(Method::POST, "/admin/clock")
        .json(&json!({"now": "2029-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(back["now"], "2029-01-01T00:00:00Z", "the clock can be set backwards");
    for bad in [json!({}), json!({"now": "yesterday"}), json!({"now": "2030-01-01T00:00:00Z", "advance_seconds": 1})] {
        let r = app.admin(Method::POST, "/admin/clock").json(&bad).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let due: Value = app.admin(Method::POST, "/admin/run-due").send().await.unwrap().json().await.unwrap();
    assert_eq!(due["now"], "2029-01-01T00:00:00Z");
    app.stop().await;
}

async fn clock_and_run_due_are_404_without_test_clock(engine: Engine) {
    let app = spawn_app_with(engine, Spawn { test_clock: false, ..Default::default() }).await;
    let r = app.admin(Method::POST, "/admin/clock").json(&json!({"advance_seconds": 1})).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = app.admin(Method::POST, "/admin/run-due").send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn messages_and_deliveries_list_by_tenant_key(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    for path in ["/admin/messages", "/admin/deliveries"] {
        let r = app.admin(Method::GET, &format!("{path}?tenant=acme")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert!(body.is_array(), "{path} answers a JSON array: {body}");
        let unknown = app.admin(Method::GET, &format!("{path}?tenant=nobody")).send().await.unwrap();
        assert_eq!(unknown.status(), 404);
        let missing = app.admin(Method::GET, path).send().await.unwrap();
        assert_eq!(missing.status(), 400);
    }
    app.stop().await;
}

async fn deliveries_page_with_limit_and_cursor(engine: Engine) {
    let app = spawn_app(engine).await;
    let s = crate::booking::seeded(&app, "acme").await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    crate::retention::subscribe(&app, "mailto:integrations@acme.test", "email", 1).await;
    for day in 5..12 {
        let start = format!("2030-03-{day:02}T09:00:00Z");
        let end = format!("2030-03-{day:02}T09:15:00Z");
        crate::booking::book(&app, s.tenant, crate::booking::draft(&s, s.ann, None, &start, &end)).await.unwrap();
    }
    app.run_due().await;
    // Without `limit` and `cursor`: the contract's array, every delivery.
    let all = app.deliveries("acme").await;
    assert!(all.len() >= 7, "{all:?}");
    let ids: Vec<i64> = all.iter().map(|d| d["id"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {ids:?}");
    // Every page size walks every delivery once, in order, with the same fields.
    for limit in [1, 2, 3, all.len() - 1, all.len(), 1000] {
        assert_eq!(crate::retention::walk(&app, limit).await, all, "limit {limit}");
    }
    // The last page says so; a cursor alone pages by 100.
    let page: Value = app
        .admin(Method::GET, &format!("/admin/deliveries?tenant=acme&limit={}", all.len()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    let first: Value =
        app.admin(Method::GET, "/admin/deliveries?tenant=acme&limit=2").send().await.unwrap().json().await.unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest: Value = app
        .admin(Method::GET, &format!("/admin/deliveries?tenant=acme&cursor={cursor}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["deliveries"].as_array().unwrap()[..], all[2..]);
    assert_eq!(rest["next_cursor"], Value::Null);
    // Bad paging answers 400 in the admin error shape, saying what is wrong.
    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=", "cursor"),
        ("cursor=42", "cursor"),
        ("cursor=d1.zzzzzzzzzzzzzzzz", "cursor"),
        ("cursor=d1.00000000000000ff00", "cursor"),
        ("limit=2&cursor=not-a-cursor", "cursor"),
    ] {
        let r = app.admin(Method::GET, &format!("/admin/deliveries?tenant=acme&{query}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid", "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(names), "{query}: {body}");
    }
    // The tenant is still required, and still looked up.
    let r = app.admin(Method::GET, "/admin/deliveries?limit=2").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = app.admin(Method::GET, "/admin/deliveries?tenant=nobody&limit=2").send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

on_both_engines!(
    deliveries_page_with_limit_and_cursor,
    seed_answers_the_ids_of_every_keyed_entity,
    seed_is_idempotent_per_key,
    a_credential_belongs_to_one_tenant,
    seed_rejects_bad_documents_with_clear_messages,
    malformed_bodies_answer_the_admin_error_shape,
    admin_needs_the_token,
    clock_sets_and_advances_now,
    clock_and_run_due_are_404_without_test_clock,
    messages_and_deliveries_list_by_tenant_key,
);
