//! Docplanner: address update and integration removal, address services,
//! insurance, calendar status and calendar breaks, over HTTP on both engines.

use crate::dp::{Ctx, api, call, expect_error, expect_ok, seed, setup, setup_with};
use crate::helpers::Engine;
use crate::on_both_engines;
use polyclinic_core::TenantId;
use polyclinic_store::catalog;
use polyclinic_store::outbox::{self, StoredEvent};
use reqwest::Method;
use serde_json::{Value, json};

const CALENDAR_EDITION: &str = "You are not authorized to make changes on this calendar";

fn tenant(ctx: &Ctx) -> TenantId {
    TenantId(ctx.ids["tenants"]["acme"]["id"].as_str().unwrap().parse().unwrap())
}

/// The path of another address of the seed: `other("bo", "bo-hosp", "/breaks")`.
fn path_of(ctx: &Ctx, doctor: &str, address: &str, rest: &str) -> String {
    format!(
        "/facilities/{}/doctors/{}/addresses/{}{rest}",
        ctx.hosp,
        ctx.id("practitioners", doctor),
        ctx.id("addresses", address)
    )
}

/// The tenant's events about `aggregate`, oldest first.
async fn events(ctx: &Ctx, aggregate: &'static str) -> Vec<StoredEvent> {
    let t = tenant(ctx);
    let all = ctx.app.store.read(move |c| Box::pin(async move { outbox::list(c, t, 0, 10_000).await })).await.unwrap();
    all.into_iter().filter(|e| e.aggregate == aggregate).collect()
}

async fn send(ctx: &Ctx, method: Method, path: &str, body: Value) -> reqwest::Response {
    call(&ctx.app, &ctx.token, method, path, Some(body)).await
}

async fn send_raw(ctx: &Ctx, method: Method, path: &str, body: &str) -> reqwest::Response {
    ctx.app
        .client
        .request(method, ctx.app.url(&format!("/api/v3/integration{path}")))
        .bearer_auth(&ctx.token)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// Asserts a 201 with a relative `Location` and a success body; answers both.
async fn expect_created(r: reqwest::Response) -> (String, Value) {
    let status = r.status().as_u16();
    let location = r.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = r.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(ct.as_deref(), Some("application/vnd.docplanner+json; charset=UTF-8"));
    (location.expect("a Location header"), serde_json::from_str(&body).unwrap())
}

async fn expect_status_empty(r: reqwest::Response, status: u16) {
    let got = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert_eq!(got, status, "{body}");
    assert_eq!(body, "");
}

/// Asserts 400 "Invalid arguments" naming `field`.
async fn expect_invalid_arguments(r: reqwest::Response, field: &str) {
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/vnd.error+docplanner+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Invalid arguments", "{body}");
    assert!(body["errors"].get(field).is_some_and(Value::is_array), "{field} in {body}");
}

/// Asserts 400 "Invalid arguments" for a body that is not the expected JSON.
async fn expect_malformed(r: reqwest::Response) {
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(r.headers()["content-type"], "application/vnd.error+docplanner+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Invalid arguments", "{body}");
}

/// Sets an address's commercial type and calendar status.
async fn set_address(ctx: &Ctx, key: &str, commercial_type: Option<&str>, calendar_enabled: bool) {
    let t = tenant(ctx);
    let id: i64 = ctx.id("addresses", key).parse().unwrap();
    let kind = commercial_type.map(str::to_owned);
    ctx.app
        .store
        .write(move |c| {
            Box::pin(async move {
                let mut a = catalog::address(c, t, id).await?.unwrap();
                a.commercial_type = kind;
                a.calendar_enabled = calendar_enabled;
                catalog::update_address(c, t, &a).await
            })
        })
        .await
        .unwrap();
}

/// The seed with Ann also at an online-only address and a second offline
/// one in the same facility.
fn coupled_seed() -> Value {
    let mut doc = seed();
    let addresses = doc["tenants"][0]["facilities"][0]["addresses"].as_array_mut().unwrap();
    addresses.push(json!({"key": "ann-video", "doctor": "ann", "name": "Test Hospital online",
        "street": "Obrzezna", "city": "Warszawa", "is_online_only": true}));
    addresses.push(json!({"key": "ann-annex", "doctor": "ann", "name": "Test Hospital annex",
        "street": "Prosta", "city": "Warszawa"}));
    doc
}

// ---------------------------------------------------------------------------
// Address update and integration.

async fn address_patch_sets_insurance_support(engine: Engine) {
    let ctx = setup(engine).await;
    let r = send(&ctx, Method::PATCH, &ctx.at(""), json!({"insurance_support": "private_and_insurance"})).await;
    let body = expect_ok(r).await;
    assert_eq!(body["id"], ctx.address.as_str());
    assert_eq!(body["insurance_support"], "private_and_insurance");
    let again = expect_ok(api(&ctx.app, &ctx.token, &ctx.at("?with=address.insurance_support")).await).await;
    assert_eq!(again["insurance_support"], "private_and_insurance");
    // Nothing to change: the address as it is.
    let same = expect_ok(send(&ctx, Method::PATCH, &ctx.at(""), json!({})).await).await;
    assert_eq!(same["insurance_support"], "private_and_insurance");
    expect_invalid_arguments(
        send(&ctx, Method::PATCH, &ctx.at(""), json!({"insurance_support": "cash"})).await,
        "insurance_support",
    )
    .await;
    expect_malformed(send_raw(&ctx, Method::PATCH, &ctx.at(""), "{not json").await).await;
    let unchanged = expect_ok(api(&ctx.app, &ctx.token, &ctx.at("?with=address.insurance_support")).await).await;
    assert_eq!(unchanged["insurance_support"], "private_and_insurance");
}

async fn integration_removal_is_accepted_and_locks_the_calendar(engine: Engine) {
    let ctx = setup(engine).await;
    let created = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00"}),
        )
        .await,
    )
    .await;
    let break_path = created.0.strip_prefix("/api/v3/integration").unwrap().to_owned();
    expect_status_empty(call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/integration"), None).await, 202).await;
    // The address itself stays, and so do reads of its calendar.
    expect_ok(api(&ctx.app, &ctx.token, &ctx.at("")).await).await;
    assert_eq!(expect_ok(api(&ctx.app, &ctx.token, &ctx.at("/calendar")).await).await, json!({"status": "enabled"}));
    expect_ok(api(&ctx.app, &ctx.token, &break_path).await).await;
    // Changes to the calendar are refused.
    let range = json!({"since": "2030-03-06T10:00:00+01:00", "till": "2030-03-06T11:00:00+01:00"});
    expect_error(
        send(&ctx, Method::PATCH, &ctx.at(""), json!({"insurance_support": "insurance"})).await,
        403,
        CALENDAR_EDITION,
    )
    .await;
    expect_error(send(&ctx, Method::POST, &ctx.at("/calendar/disable"), json!({})).await, 403, CALENDAR_EDITION).await;
    expect_error(send(&ctx, Method::POST, &ctx.at("/calendar/enable"), json!({})).await, 403, CALENDAR_EDITION).await;
    expect_error(send(&ctx, Method::POST, &ctx.at("/breaks"), range.clone()).await, 403, CALENDAR_EDITION).await;
    expect_error(send(&ctx, Method::PATCH, &break_path, range).await, 403, CALENDAR_EDITION).await;
    expect_error(call(&ctx.app, &ctx.token, Method::DELETE, &break_path, None).await, 403, CALENDAR_EDITION).await;
    // Removing it again changes nothing.
    expect_status_empty(call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/integration"), None).await, 202).await;
    // The price list is not the calendar: it stays editable.
    expect_created(send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1"})).await).await;
}

async fn address_paths_answer_the_documented_errors(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    let other = ctx.id("facilities", "other");
    let bo = ctx.id("practitioners", "bo");
    for rest in [
        "/services",
        "/insurance-providers",
        "/calendar",
        "/breaks?since=2030-03-05T00:00:00Z&till=2030-03-06T00:00:00Z",
    ] {
        expect_error(
            api(app, t, &format!("/facilities/{other}/doctors/{}/addresses/{}{rest}", ctx.ann, ctx.address)).await,
            403,
            "You are not authorized to see this facility",
        )
        .await;
        expect_error(
            api(app, t, &format!("/facilities/{}/doctors/{}/addresses/999999{rest}", ctx.hosp, ctx.ann)).await,
            404,
            "Object not found",
        )
        .await;
        expect_error(
            api(app, t, &format!("/facilities/{}/doctors/{bo}/addresses/{}{rest}", ctx.hosp, ctx.address)).await,
            403,
            "This address does not belong to this doctor",
        )
        .await;
        expect_error(
            api(
                app,
                t,
                &format!(
                    "/facilities/{}/doctors/{}/addresses/{}{rest}",
                    ctx.hosp,
                    ctx.ann,
                    ctx.id("addresses", "bo-other")
                ),
            )
            .await,
            403,
            "This address does not belong to this facility",
        )
        .await;
    }
    expect_error(
        call(
            app,
            t,
            Method::DELETE,
            &format!("/facilities/{other}/doctors/{}/addresses/{}/integration", ctx.ann, ctx.address),
            None,
        )
        .await,
        403,
        "You are not authorized to see this facility",
    )
    .await;
    expect_error(
        send(&ctx, Method::PATCH, &format!("/facilities/{}/doctors/{}/addresses/999999", ctx.hosp, ctx.ann), json!({}))
            .await,
        404,
        "Object not found",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Address services.

async fn address_services_are_added_read_changed_and_deleted_with_events(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    assert_eq!(expect_ok(api(app, t, &ctx.at("/services")).await).await, json!({"_items": []}));
    let (location, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/services"),
            json!({"service_id": "3", "is_price_from": true, "price": 169.9, "description": "Address service description",
                   "is_visible": true, "default_duration": 20, "allowed_patients": {"minimum_age": 18, "maximum_age": 65},
                   "custom_name": "Custom USG Name"}),
        )
        .await,
    )
    .await;
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v3/integration{}", ctx.at(&format!("/services/{id}"))));
    assert_eq!(
        body,
        json!({"id": id, "name": "ablacja serca", "price": 169, "is_price_from": true, "is_default": false,
               "service_id": "3", "description": "Address service description", "duration": 20, "is_visible": true})
    );
    // The guide's minimal body, with a numeric id.
    let (_, minimal) = expect_created(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": 5, "is_price_from": false, "price": 500}))
            .await,
    )
    .await;
    assert_eq!(
        (minimal["price"].clone(), minimal["duration"].clone(), minimal["is_visible"].clone()),
        (json!(500), json!(30), json!(true))
    );
    let list = expect_ok(
        api(app, t, &ctx.at("/services?with=address_service.custom_name,address_service.allowed_patients")).await,
    )
    .await;
    let items = list["_items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["custom_name"], "Custom USG Name");
    assert_eq!(items[0]["allowed_patients"], json!({"minimum_age": 18, "maximum_age": 65}));
    assert_eq!(items[1]["allowed_patients"], Value::Null);
    let one =
        expect_ok(api(app, t, &ctx.at(&format!("/services/{id}?with[]=address_service.public_insurance_flow"))).await)
            .await;
    assert_eq!(one["is_public_insurance_flow"], false);
    assert!(one.get("custom_name").is_none());

    let patched = expect_ok(
        send(
            &ctx,
            Method::PATCH,
            &ctx.at(&format!("/services/{id}")),
            json!({"price": 200, "is_price_from": false, "custom_name": null}),
        )
        .await,
    )
    .await;
    assert_eq!((patched["price"].clone(), patched["is_price_from"].clone()), (json!(200), json!(false)));
    let named =
        expect_ok(api(app, t, &ctx.at(&format!("/services/{id}?with=address_service.custom_name"))).await).await;
    assert_eq!(named["custom_name"], Value::Null);
    expect_status_empty(call(app, t, Method::DELETE, &ctx.at(&format!("/services/{id}")), None).await, 204).await;
    expect_error(api(app, t, &ctx.at(&format!("/services/{id}"))).await, 404, "Object not found").await;
    expect_error(
        call(app, t, Method::DELETE, &ctx.at(&format!("/services/{id}")), None).await,
        404,
        "Object not found",
    )
    .await;

    let evs = events(&ctx, "address_service").await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["AddressServiceCreated", "AddressServiceCreated", "AddressServiceChanged", "AddressServiceDeleted"]
    );
    assert_eq!(evs[0].aggregate_id, id);
    assert_eq!(evs[0].data["address_id"], ctx.address.as_str());
    let created = &evs[0].data["address_service"];
    assert_eq!(created["id"], json!(id.parse::<i64>().unwrap()));
    assert_eq!(created["price"], json!({"minor_units": 16990, "currency": [83, 69, 75]}), "SEK, the tenant's currency");
    assert_eq!(created["custom_name"], "Custom USG Name");
    assert_eq!(evs[2].data["address_service"]["price"]["minor_units"], 20000);
    assert_eq!(evs[2].data["address_service"]["custom_name"], Value::Null);
    // The deletion carries the service as it was.
    assert_eq!(evs[3].data["address_service"]["price"]["minor_units"], 20000);
}

async fn adding_a_service_twice_is_a_conflict(engine: Engine) {
    let ctx = setup(engine).await;
    expect_created(send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1"})).await).await;
    expect_error(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1", "price": 10})).await,
        409,
        "The address service you are trying to add already exists in the system",
    )
    .await;
    // The same dictionary service at another address is another address service.
    expect_created(
        send(&ctx, Method::POST, &path_of(&ctx, "bo", "bo-hosp", "/services"), json!({"service_id": "1"})).await,
    )
    .await;
    assert_eq!(events(&ctx, "address_service").await.len(), 2);
}

async fn services_outside_the_dictionary_are_not_found(engine: Engine) {
    let ctx = setup(engine).await;
    expect_error(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "2"})).await,
        404,
        "Object not found",
    )
    .await;
    expect_invalid_arguments(send(&ctx, Method::POST, &ctx.at("/services"), json!({"price": 10})).await, "service_id")
        .await;
    expect_invalid_arguments(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "abc"})).await,
        "service_id",
    )
    .await;
    expect_invalid_arguments(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": true})).await,
        "service_id",
    )
    .await;
    assert!(events(&ctx, "address_service").await.is_empty());
}

async fn prices_are_validated_and_extra_decimals_truncated(engine: Engine) {
    let ctx = setup(engine).await;
    let invalid = "Invalid price value for service. Price should be either null or integer greater or equal 0.";
    for price in [json!(-1), json!("12"), json!({"amount": 1}), json!(1e15)] {
        expect_error(
            send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1", "price": price})).await,
            400,
            invalid,
        )
        .await;
    }
    let (_, body) = expect_created(
        send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1", "price": 169.999})).await,
    )
    .await;
    assert_eq!(body["price"], 169);
    let id = body["id"].as_str().unwrap().to_owned();
    expect_error(
        send(&ctx, Method::PATCH, &ctx.at(&format!("/services/{id}")), json!({"price": -0.5})).await,
        400,
        invalid,
    )
    .await;
    let cleared =
        expect_ok(send(&ctx, Method::PATCH, &ctx.at(&format!("/services/{id}")), json!({"price": null})).await).await;
    assert_eq!(cleared["price"], Value::Null);
    let evs = events(&ctx, "address_service").await;
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].data["address_service"]["price"]["minor_units"], 16999);
    assert_eq!(evs[1].data["address_service"]["price"], Value::Null);
}

async fn another_address_service_does_not_belong_to_this_address(engine: Engine) {
    let ctx = setup(engine).await;
    let (_, body) = expect_created(
        send(&ctx, Method::POST, &path_of(&ctx, "bo", "bo-hosp", "/services"), json!({"service_id": "7"})).await,
    )
    .await;
    let path = ctx.at(&format!("/services/{}", body["id"].as_str().unwrap()));
    let mismatch = "This service does not belong to this address";
    expect_error(api(&ctx.app, &ctx.token, &path).await, 403, mismatch).await;
    expect_error(send(&ctx, Method::PATCH, &path, json!({"price": 1})).await, 403, mismatch).await;
    expect_error(call(&ctx.app, &ctx.token, Method::DELETE, &path, None).await, 403, mismatch).await;
    expect_error(api(&ctx.app, &ctx.token, &ctx.at("/services/999999")).await, 404, "Object not found").await;
    expect_error(api(&ctx.app, &ctx.token, &ctx.at("/services/abc")).await, 404, "Object not found").await;
    assert_eq!(events(&ctx, "address_service").await.len(), 1);
}

async fn invalid_address_service_bodies_answer_400_and_write_nothing(engine: Engine) {
    let ctx = setup(engine).await;
    let svc = ctx.at("/services");
    for (body, field) in [
        (json!({"service_id": "1", "default_duration": 0}), "default_duration"),
        (json!({"service_id": "1", "default_duration": "20"}), "default_duration"),
        (json!({"service_id": "1", "custom_name": ""}), "custom_name"),
        (json!({"service_id": "1", "allowed_patients": {"minimum_age": 65, "maximum_age": 18}}), "allowed_patients"),
        (json!({"service_id": "1", "allowed_patients": {"minimum_age": -1}}), "allowed_patients.minimum_age"),
        (json!({"service_id": "1", "is_visible": "yes"}), "is_visible"),
        (json!({"service_id": "1", "description": "x".repeat(5000)}), "description"),
    ] {
        expect_invalid_arguments(send(&ctx, Method::POST, &svc, body).await, field).await;
    }
    expect_malformed(send_raw(&ctx, Method::POST, &svc, "[1, 2]").await).await;
    expect_malformed(send_raw(&ctx, Method::POST, &svc, "{\"service_id\": ").await).await;
    assert_eq!(expect_ok(api(&ctx.app, &ctx.token, &svc).await).await, json!({"_items": []}));

    let (_, body) =
        expect_created(send(&ctx, Method::POST, &svc, json!({"service_id": "1", "default_duration": 15})).await).await;
    let one = ctx.at(&format!("/services/{}", body["id"].as_str().unwrap()));
    for (patch, field) in [
        (json!({"is_visible": null}), "is_visible"),
        (json!({"is_price_from": null}), "is_price_from"),
        (json!({"default_duration": null}), "default_duration"),
        (json!({"default_duration": 2000}), "default_duration"),
        (json!({"custom_name": "  "}), "custom_name"),
    ] {
        expect_invalid_arguments(send(&ctx, Method::PATCH, &one, patch).await, field).await;
    }
    assert_eq!(expect_ok(api(&ctx.app, &ctx.token, &one).await).await["duration"], 15);
    // A PATCH that changes nothing notifies no one.
    expect_ok(send(&ctx, Method::PATCH, &one, json!({"default_duration": 15})).await).await;
    let kinds: Vec<String> =
        events(&ctx, "address_service").await.into_iter().map(|e| e.kind.as_str().to_owned()).collect();
    assert_eq!(kinds, ["AddressServiceCreated"]);
}

async fn services_start_filter_needs_a_valid_date(engine: Engine) {
    let ctx = setup(engine).await;
    expect_created(send(&ctx, Method::POST, &ctx.at("/services"), json!({"service_id": "1"})).await).await;
    expect_error(api(&ctx.app, &ctx.token, &ctx.at("/services?start=tomorrow")).await, 404, "Invalid date given.")
        .await;
    // No work period holds that instant: no service is offered then.
    let at = expect_ok(api(&ctx.app, &ctx.token, &ctx.at("/services?start=2030-03-05T10:00:00%2B01:00")).await).await;
    assert_eq!(at, json!({"_items": []}));
}

// ---------------------------------------------------------------------------
// Insurance.

async fn insurance_dictionary_and_plans(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    assert_eq!(
        expect_ok(api(app, t, "/insurance-providers").await).await,
        json!({"_items": [{"insurance_provider_id": "3", "name": "NFZ"}, {"insurance_provider_id": "4", "name": "Medicover"}]})
    );
    assert_eq!(
        expect_ok(api(app, t, "/insurance-providers/3/plans").await).await,
        json!({"_items": [{"insurance_plan_id": "31", "name": "Basic"}]})
    );
    assert_eq!(expect_ok(api(app, t, "/insurance-providers/4/plans").await).await, json!({"_items": []}));
    // The operation documents a 200 only: a provider outside the dictionary has no plans.
    assert_eq!(expect_ok(api(app, t, "/insurance-providers/99/plans").await).await, json!({"_items": []}));
    assert_eq!(expect_ok(api(app, t, "/insurance-providers/abc/plans").await).await, json!({"_items": []}));
}

async fn address_insurance_providers_are_added_replaced_and_removed(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    let path = ctx.at("/insurance-providers");
    assert_eq!(expect_ok(api(app, t, &path).await).await, json!({"_items": []}));
    // The guide sends a number; the document a string.
    expect_status_empty(send(&ctx, Method::POST, &path, json!({"insurance_provider_id": 4})).await, 204).await;
    expect_status_empty(
        send(&ctx, Method::POST, &path, json!({"insurance_provider_id": "3", "insurance_plans": [{"insurance_plan_id": "31"}, {"insurance_plan_id": "31"}]}))
            .await,
        204,
    )
    .await;
    assert_eq!(
        expect_ok(api(app, t, &path).await).await,
        json!({"_items": [
            {"insurance_provider_id": "3", "name": "NFZ", "insurance_plans": {"_items": [{"insurance_plan_id": "31", "name": "Basic"}]}},
            {"insurance_provider_id": "4", "name": "Medicover", "insurance_plans": {"_items": []}}
        ]})
    );
    expect_error(
        send(&ctx, Method::POST, &path, json!({"insurance_provider_id": "3"})).await,
        400,
        "Insurance provider with given ID is already assigned to this address.",
    )
    .await;
    let missing = "Provided insurance provider ID not found in dictionary";
    expect_error(send(&ctx, Method::POST, &path, json!({"insurance_provider_id": "99"})).await, 404, missing).await;
    expect_error(send(&ctx, Method::PUT, &path, json!({"insurance_provider_id": "x"})).await, 404, missing).await;
    expect_error(
        send(
            &ctx,
            Method::PUT,
            &path,
            json!({"insurance_provider_id": "4", "insurance_plans": [{"insurance_plan_id": "31"}]}),
        )
        .await,
        404,
        "Provided insurance plan ID not found in dictionary",
    )
    .await;
    expect_invalid_arguments(send(&ctx, Method::POST, &path, json!({})).await, "insurance_provider_id").await;
    // PUT documents no 400: a body that names no plan of the dictionary is a 404.
    expect_error(
        send(&ctx, Method::PUT, &path, json!({"insurance_provider_id": "3", "insurance_plans": "31"})).await,
        404,
        "Provided insurance plan ID not found in dictionary",
    )
    .await;
    // PUT replaces the plans, or adds the provider.
    expect_status_empty(
        send(&ctx, Method::PUT, &path, json!({"insurance_provider_id": "3", "insurance_plans": []})).await,
        204,
    )
    .await;
    let list = expect_ok(api(app, t, &path).await).await;
    assert_eq!(list["_items"][0]["insurance_plans"], json!({"_items": []}));
    expect_status_empty(call(app, t, Method::DELETE, &format!("{path}/4"), None).await, 204).await;
    expect_error(
        call(app, t, Method::DELETE, &format!("{path}/4"), None).await,
        400,
        "Insurance provider with given ID is not assigned to this address.",
    )
    .await;
    expect_error(call(app, t, Method::DELETE, &format!("{path}/99"), None).await, 404, missing).await;
    expect_status_empty(send(&ctx, Method::PUT, &path, json!({"insurance_provider_id": "4"})).await, 204).await;
    let ids: Vec<Value> = expect_ok(api(app, t, &path).await).await["_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["insurance_provider_id"].clone())
        .collect();
    assert_eq!(ids, [json!("3"), json!("4")]);
    // Another address's providers are its own.
    assert_eq!(
        expect_ok(api(app, t, &path_of(&ctx, "bo", "bo-hosp", "/insurance-providers")).await).await,
        json!({"_items": []})
    );
}

// ---------------------------------------------------------------------------
// Calendar status.

async fn calendar_is_enabled_and_disabled(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    let calendar = ctx.at("/calendar");
    assert_eq!(expect_ok(api(app, t, &calendar).await).await, json!({"status": "enabled"}));
    expect_error(call(app, t, Method::POST, &ctx.at("/calendar/enable"), None).await, 409, "Calendar already enabled")
        .await;
    expect_status_empty(call(app, t, Method::POST, &ctx.at("/calendar/disable"), None).await, 200).await;
    assert_eq!(expect_ok(api(app, t, &calendar).await).await, json!({"status": "disabled"}));
    expect_error(
        call(app, t, Method::POST, &ctx.at("/calendar/disable"), None).await,
        409,
        "Calendar already disabled",
    )
    .await;
    expect_status_empty(call(app, t, Method::POST, &ctx.at("/calendar/enable"), None).await, 200).await;
    assert_eq!(expect_ok(api(app, t, &calendar).await).await, json!({"status": "enabled"}));
}

async fn a_basic_address_cannot_activate_its_calendar(engine: Engine) {
    let ctx = setup(engine).await;
    set_address(&ctx, "obrzezna", Some("basic"), false).await;
    let message = format!("Cannot activate calendar on address {}, profile/address is not commercial", ctx.address);
    expect_error(call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/calendar/enable"), None).await, 422, &message)
        .await;
    let range = json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00"});
    expect_error(send(&ctx, Method::POST, &ctx.at("/breaks"), range).await, 422, &message).await;
    assert_eq!(expect_ok(api(&ctx.app, &ctx.token, &ctx.at("/calendar")).await).await, json!({"status": "disabled"}));
    // Commercial types other than basic may.
    set_address(&ctx, "obrzezna", Some("premium"), false).await;
    expect_status_empty(call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/calendar/enable"), None).await, 200).await;
}

// ---------------------------------------------------------------------------
// Breaks.

async fn breaks_are_added_read_moved_and_deleted_with_events(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    // The guide's offset without a colon, in another zone than the tenant's.
    let (location, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-05T13:00:00+0200", "till": "2030-03-05T14:00:00+0200", "description": "Lunch"}),
        )
        .await,
    )
    .await;
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v3/integration{}", ctx.at(&format!("/breaks/{id}"))));
    assert_eq!(
        body,
        json!({"id": id, "since": "2030-03-05T12:00:00+01:00", "till": "2030-03-05T13:00:00+01:00", "description": "Lunch"})
    );
    let path = ctx.at(&format!("/breaks/{id}"));
    assert_eq!(expect_ok(api(app, t, &path).await).await, body);
    let (_, other) = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-07T08:00:00Z", "till": "2030-03-07T09:00:00Z"}),
        )
        .await,
    )
    .await;
    assert_eq!(other["description"], Value::Null);
    // Listed when they overlap the window (`+` encoded, or sent raw as the space it decodes to).
    let list = expect_ok(
        api(app, t, &ctx.at("/breaks?since=2030-03-05T12:30:00%2B01:00&till=2030-03-06T00:00:00+01:00")).await,
    )
    .await;
    assert_eq!(list, json!({"_items": [body]}));
    let all =
        expect_ok(api(app, t, &ctx.at("/breaks?since=2030-03-01T00:00:00Z&till=2030-04-01T00:00:00Z")).await).await;
    assert_eq!(all["_items"].as_array().unwrap().len(), 2);
    let touching = expect_ok(
        api(app, t, &ctx.at("/breaks?since=2030-03-05T13:00:00%2B01:00&till=2030-03-05T14:00:00%2B01:00")).await,
    )
    .await;
    assert_eq!(touching, json!({"_items": []}));

    expect_status_empty(
        send(
            &ctx,
            Method::PATCH,
            &path,
            json!({"since": "2030-03-05T15:00:00+01:00", "till": "2030-03-05T16:30:00+01:00"}),
        )
        .await,
        204,
    )
    .await;
    let moved = expect_ok(api(app, t, &path).await).await;
    assert_eq!(
        (moved["since"].as_str(), moved["till"].as_str()),
        (Some("2030-03-05T15:00:00+01:00"), Some("2030-03-05T16:30:00+01:00"))
    );
    assert_eq!(moved["description"], "Lunch");
    expect_status_empty(call(app, t, Method::DELETE, &path, None).await, 204).await;
    expect_error(api(app, t, &path).await, 404, "Invalid break ID").await;
    expect_error(call(app, t, Method::DELETE, &path, None).await, 404, "Invalid break ID").await;

    let evs = events(&ctx, "calendar_break").await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["BreakCreated", "BreakCreated", "BreakMoved", "BreakRemoved"]);
    assert_eq!(evs[0].aggregate_id, id);
    assert_eq!(evs[0].data["address_id"], ctx.address.as_str());
    assert_eq!(
        evs[0].data["break"]["interval"],
        json!({"start": "2030-03-05T11:00:00Z", "end": "2030-03-05T12:00:00Z"})
    );
    assert_eq!(evs[0].data["break"]["description"], "Lunch");
    assert!(evs[0].data.get("previous").is_none());
    assert_eq!(
        evs[2].data["break"]["interval"],
        json!({"start": "2030-03-05T14:00:00Z", "end": "2030-03-05T15:30:00Z"})
    );
    assert_eq!(evs[2].data["previous"], json!({"since": "2030-03-05T11:00:00Z", "till": "2030-03-05T12:00:00Z"}));
    assert_eq!(evs[3].data["break"]["interval"], evs[2].data["break"]["interval"], "removed as it was");
}

/// The list documents 200, 403 and 404 only, and shows an unparsable date as
/// 404 "Invalid date given.": every query problem is a 404.
async fn break_list_needs_since_and_till(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = &ctx.token;
    expect_error(api(app, t, &ctx.at("/breaks")).await, 404, "Param \"since\" is required!").await;
    expect_error(api(app, t, &ctx.at("/breaks?till=2030-03-05T00:00:00Z")).await, 404, "Param \"since\" is required!")
        .await;
    expect_error(api(app, t, &ctx.at("/breaks?since=2030-03-05T00:00:00Z")).await, 404, "Param \"till\" is required!")
        .await;
    expect_error(
        api(app, t, &ctx.at("/breaks?since=2030-03-05T00:00:00Z&till=")).await,
        404,
        "Param \"till\" is required!",
    )
    .await;
    expect_error(
        api(app, t, &ctx.at("/breaks?since=yesterday&till=2030-03-05T00:00:00Z")).await,
        404,
        "Invalid date given.",
    )
    .await;
    expect_error(api(app, t, &ctx.at("/breaks?since=2030-03-05&till=2030-03-06")).await, 404, "Invalid date given.")
        .await;
    expect_error(
        api(app, t, &ctx.at("/breaks?since=2030-03-06T00:00:00Z&till=2030-03-05T00:00:00Z")).await,
        404,
        "Invalid date range",
    )
    .await;
}

async fn break_bodies_are_validated(engine: Engine) {
    let ctx = setup(engine).await;
    let path = ctx.at("/breaks");
    let post = |body: Value| send(&ctx, Method::POST, &path, body);
    expect_error(post(json!({"till": "2030-03-05T11:00:00+01:00"})).await, 400, "Param \"since\" is required!").await;
    expect_error(post(json!({"since": "2030-03-05T10:00:00+01:00"})).await, 400, "Param \"till\" is required!").await;
    expect_error(post(json!({"since": null, "till": null})).await, 400, "Param \"since\" is required!").await;
    expect_error(call(&ctx.app, &ctx.token, Method::POST, &path, None).await, 400, "Param \"since\" is required!")
        .await;
    expect_error(post(json!({"since": "soon", "till": "2030-03-05T11:00:00+01:00"})).await, 400, "Invalid date given.")
        .await;
    expect_error(
        post(json!({"since": 1893456000, "till": "2030-03-05T11:00:00+01:00"})).await,
        400,
        "Invalid date given.",
    )
    .await;
    expect_error(
        post(json!({"since": "2030-03-05T10:00:00", "till": "2030-03-05T11:00:00"})).await,
        400,
        "Invalid date given.",
    )
    .await;
    for (since, till) in [
        ("2030-03-05T11:00:00+01:00", "2030-03-05T10:00:00+01:00"),
        ("2030-03-05T10:00:00+01:00", "2030-03-05T10:00:00+01:00"),
    ] {
        expect_error(post(json!({"since": since, "till": till})).await, 422, "Invalid date range").await;
    }
    expect_invalid_arguments(
        post(json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "description": 5}))
            .await,
        "description",
    )
    .await;
    expect_invalid_arguments(
        post(json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "apply_on_coupled_addresses": "yes"})).await,
        "apply_on_coupled_addresses",
    )
    .await;
    expect_malformed(send_raw(&ctx, Method::POST, &path, "since=2030").await).await;
    assert!(events(&ctx, "calendar_break").await.is_empty());

    let range = json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "description": "Team meeting"});
    expect_created(post(range.clone()).await).await;
    let exists = "Break for given address, date range and description exists";
    expect_error(post(range.clone()).await, 409, exists).await;
    // The same range written in UTC is the same range.
    expect_error(
        post(json!({"since": "2030-03-05T09:00:00Z", "till": "2030-03-05T10:00:00Z", "description": "Team meeting"}))
            .await,
        409,
        exists,
    )
    .await;
    // Another description, or none, is another break.
    expect_created(post(json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00"})).await)
        .await;
    expect_error(
        post(json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "description": ""}))
            .await,
        409,
        exists,
    )
    .await;
    assert_eq!(events(&ctx, "calendar_break").await.len(), 2);
}

async fn moving_a_break_is_validated(engine: Engine) {
    let ctx = setup(engine).await;
    let (_, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00"}),
        )
        .await,
    )
    .await;
    let path = ctx.at(&format!("/breaks/{}", body["id"].as_str().unwrap()));
    let patch = |body: Value| send(&ctx, Method::PATCH, &path, body);
    expect_error(patch(json!({"till": "2030-03-05T11:00:00+01:00"})).await, 400, "Param \"since\" is required!").await;
    expect_error(patch(json!({"since": "2030-03-05T11:00:00+01:00"})).await, 400, "Param \"till\" is required!").await;
    expect_error(patch(json!({"since": "x", "till": "2030-03-05T11:00:00+01:00"})).await, 400, "Invalid date given.")
        .await;
    expect_error(
        patch(json!({"since": "2030-03-05T12:00:00Z", "till": "2030-03-05T11:00:00Z"})).await,
        422,
        "Till (2030-03-05T12:00:00+01:00) cannot be set before since (2030-03-05T13:00:00+01:00)",
    )
    .await;
    expect_error(
        patch(json!({"since": "2030-03-05T12:00:00Z", "till": "2030-03-05T12:00:00Z"})).await,
        422,
        "Invalid date range",
    )
    .await;
    expect_error(
        patch(json!({"since": "2030-03-05T09:00:00Z", "till": "2030-03-05T10:00:00Z"})).await,
        422,
        "Same Date Range",
    )
    .await;
    expect_malformed(send_raw(&ctx, Method::PATCH, &path, "{\"since\"").await).await;
    let kinds: Vec<String> =
        events(&ctx, "calendar_break").await.into_iter().map(|e| e.kind.as_str().to_owned()).collect();
    assert_eq!(kinds, ["BreakCreated"]);
}

async fn another_address_break_is_an_invalid_break_id(engine: Engine) {
    let ctx = setup(engine).await;
    let (_, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &path_of(&ctx, "bo", "bo-hosp", "/breaks"),
            json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00"}),
        )
        .await,
    )
    .await;
    let theirs = ctx.at(&format!("/breaks/{}", body["id"].as_str().unwrap()));
    let range = json!({"since": "2030-03-06T10:00:00+01:00", "till": "2030-03-06T11:00:00+01:00"});
    for path in [theirs, ctx.at("/breaks/999999"), ctx.at("/breaks/abc")] {
        expect_error(api(&ctx.app, &ctx.token, &path).await, 404, "Invalid break ID").await;
        expect_error(send(&ctx, Method::PATCH, &path, range.clone()).await, 404, "Invalid break ID").await;
        expect_error(call(&ctx.app, &ctx.token, Method::DELETE, &path, None).await, 404, "Invalid break ID").await;
    }
    // Nor is it listed here.
    let list = expect_ok(
        api(&ctx.app, &ctx.token, &ctx.at("/breaks?since=2030-03-01T00:00:00Z&till=2030-04-01T00:00:00Z")).await,
    )
    .await;
    assert_eq!(list, json!({"_items": []}));
    assert_eq!(events(&ctx, "calendar_break").await.len(), 1);
}

async fn coupled_breaks_are_created_moved_and_removed_together(engine: Engine) {
    let ctx = setup_with(engine, &coupled_seed()).await;
    let app = &ctx.app;
    let t = &ctx.token;
    let window = "?since=2030-03-01T00:00:00Z&till=2030-04-01T00:00:00Z";
    let (_, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "description": "Conference", "apply_on_coupled_addresses": true}),
        )
        .await,
    )
    .await;
    // The answer describes the requested break only.
    assert_eq!(body["since"], "2030-03-05T10:00:00+01:00");
    let video = path_of(&ctx, "ann", "ann-video", "/breaks");
    let annex = path_of(&ctx, "ann", "ann-annex", "/breaks");
    let coupled = expect_ok(api(app, t, &format!("{video}{window}")).await).await;
    let coupled = coupled["_items"].as_array().unwrap().clone();
    assert_eq!(coupled.len(), 1, "created at the online-only address");
    assert_ne!(coupled[0]["id"], body["id"]);
    assert_eq!(
        (coupled[0]["since"].clone(), coupled[0]["description"].clone()),
        (body["since"].clone(), json!("Conference"))
    );
    assert_eq!(
        expect_ok(api(app, t, &format!("{annex}{window}")).await).await,
        json!({"_items": []}),
        "not at another offline one"
    );
    assert_eq!(
        expect_ok(api(app, t, &path_of(&ctx, "bo", "bo-hosp", &format!("/breaks{window}"))).await).await,
        json!({"_items": []}),
        "not at another doctor's"
    );

    // Moving the coupled one moves the group.
    let coupled_path = format!("{video}/{}", coupled[0]["id"].as_str().unwrap());
    expect_status_empty(
        send(
            &ctx,
            Method::PATCH,
            &coupled_path,
            json!({"since": "2030-03-05T12:00:00+01:00", "till": "2030-03-05T13:00:00+01:00"}),
        )
        .await,
        204,
    )
    .await;
    let mine = ctx.at(&format!("/breaks/{}", body["id"].as_str().unwrap()));
    assert_eq!(expect_ok(api(app, t, &mine).await).await["since"], "2030-03-05T12:00:00+01:00");
    assert_eq!(expect_ok(api(app, t, &coupled_path).await).await["since"], "2030-03-05T12:00:00+01:00");
    // A break added without the flag stays on its own.
    expect_created(
        send(
            &ctx,
            Method::POST,
            &ctx.at("/breaks"),
            json!({"since": "2030-03-05T12:00:00+01:00", "till": "2030-03-05T13:00:00+01:00"}),
        )
        .await,
    )
    .await;
    // Deleting the requested one removes the group.
    expect_status_empty(call(app, t, Method::DELETE, &mine, None).await, 204).await;
    expect_error(api(app, t, &coupled_path).await, 404, "Invalid break ID").await;
    let left = expect_ok(api(app, t, &ctx.at(&format!("/breaks{window}"))).await).await;
    assert_eq!(left["_items"].as_array().unwrap().len(), 1);
    assert_eq!(left["_items"][0]["description"], Value::Null);

    let evs = events(&ctx, "calendar_break").await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["BreakCreated", "BreakCreated", "BreakMoved", "BreakMoved", "BreakCreated", "BreakRemoved", "BreakRemoved"]
    );
    let video_id = ctx.id("addresses", "ann-video");
    let mut created: Vec<&str> = evs[..2].iter().map(|e| e.data["address_id"].as_str().unwrap()).collect();
    created.sort();
    let mut expected = vec![ctx.address.as_str(), video_id.as_str()];
    expected.sort();
    assert_eq!(created, expected);
    for e in &evs[2..4] {
        assert_eq!(e.data["previous"], json!({"since": "2030-03-05T09:00:00Z", "till": "2030-03-05T10:00:00Z"}));
    }
    let group = evs[0].data["break"]["coupled_group"].clone();
    assert_eq!(group, json!(body["id"].as_str().unwrap().parse::<i64>().unwrap()));
    assert_eq!(evs[1].data["break"]["coupled_group"], group);
    assert_eq!(evs[4].data["break"]["coupled_group"], Value::Null);
}

async fn coupled_breaks_skip_addresses_that_take_no_changes(engine: Engine) {
    let ctx = setup_with(engine, &coupled_seed()).await;
    // From the online side, the offline addresses are the coupled ones; one is basic.
    set_address(&ctx, "ann-annex", Some("basic"), true).await;
    let (_, body) = expect_created(
        send(
            &ctx,
            Method::POST,
            &path_of(&ctx, "ann", "ann-video", "/breaks"),
            json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T11:00:00+01:00", "apply_on_coupled_addresses": true}),
        )
        .await,
    )
    .await;
    let window = "?since=2030-03-01T00:00:00Z&till=2030-04-01T00:00:00Z";
    let here = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/breaks{window}"))).await).await;
    assert_eq!(here["_items"].as_array().unwrap().len(), 1);
    assert_ne!(here["_items"][0]["id"], body["id"]);
    let annex =
        expect_ok(api(&ctx.app, &ctx.token, &path_of(&ctx, "ann", "ann-annex", &format!("/breaks{window}"))).await)
            .await;
    assert_eq!(annex, json!({"_items": []}));
    // An address whose integration was removed gets none either.
    expect_status_empty(call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/integration"), None).await, 202).await;
    expect_created(
        send(
            &ctx,
            Method::POST,
            &path_of(&ctx, "ann", "ann-video", "/breaks"),
            json!({"since": "2030-03-06T10:00:00+01:00", "till": "2030-03-06T11:00:00+01:00", "apply_on_coupled_addresses": true}),
        )
        .await,
    )
    .await;
    let here = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/breaks{window}"))).await).await;
    assert_eq!(here["_items"].as_array().unwrap().len(), 1);
}

on_both_engines!(
    address_patch_sets_insurance_support,
    integration_removal_is_accepted_and_locks_the_calendar,
    address_paths_answer_the_documented_errors,
    address_services_are_added_read_changed_and_deleted_with_events,
    adding_a_service_twice_is_a_conflict,
    services_outside_the_dictionary_are_not_found,
    prices_are_validated_and_extra_decimals_truncated,
    another_address_service_does_not_belong_to_this_address,
    invalid_address_service_bodies_answer_400_and_write_nothing,
    services_start_filter_needs_a_valid_date,
    insurance_dictionary_and_plans,
    address_insurance_providers_are_added_replaced_and_removed,
    calendar_is_enabled_and_disabled,
    a_basic_address_cannot_activate_its_calendar,
    breaks_are_added_read_moved_and_deleted_with_events,
    break_list_needs_since_and_till,
    break_bodies_are_validated,
    moving_a_break_is_validated,
    another_address_break_is_an_invalid_break_id,
    coupled_breaks_are_created_moved_and_removed_together,
    coupled_breaks_skip_addresses_that_take_no_changes,
);
