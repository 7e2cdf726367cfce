//! Every Docplanner answer conforms to the OpenAPI document, for any input
//! (issue 9, item 2). One test per failure that schemathesis found
//! (`.ci/schemathesis.py`, the CI step that keeps it so); every answer here
//! goes through `dp::call`, so the contract (`contract.rs`) checks its
//! status against the operation's own list, its content type and its body.

use crate::dp::{Ctx, api, call, enc, expect_error, expect_ok, seed, setup};
use crate::helpers::Engine;
use crate::on_both_engines;
use polyclinic_core::TenantId;
use polyclinic_store::catalog;
use reqwest::Method;
use serde_json::{Value, json};

const DAY: (&str, &str) = ("2030-03-05T00:00:00+01:00", "2030-03-06T00:00:00+01:00");
const PROVIDER_NOT_IN_DICTIONARY: &str = "Provided insurance provider ID not found in dictionary";
const PLAN_NOT_IN_DICTIONARY: &str = "Provided insurance plan ID not found in dictionary";

/// Stores `commercial_type` on the seed's `obrzezna` address directly, as an
/// address stored before the seed defaulted it would have it.
async fn store_commercial_type(ctx: &Ctx, commercial_type: Option<&str>) {
    let t = TenantId(ctx.ids["tenants"]["acme"]["id"].as_str().unwrap().parse().unwrap());
    let id: i64 = ctx.address.parse().unwrap();
    let kind = commercial_type.map(str::to_owned);
    ctx.app
        .store
        .write(move |c| {
            Box::pin(async move {
                let mut a = catalog::address(c, t, id).await?.unwrap();
                a.commercial_type = kind;
                catalog::update_address(c, t, &a).await
            })
        })
        .await
        .unwrap();
}

/// The `commercial_type` of the seed's `obrzezna` address as the address, the
/// doctor's addresses and the doctor with `doctor.addresses` show it.
async fn commercial_types(ctx: &Ctx) -> Vec<Value> {
    let (app, t) = (&ctx.app, &ctx.token);
    let doctor = format!("/facilities/{}/doctors/{}", ctx.hosp, ctx.ann);
    let one = expect_ok(api(app, t, &ctx.at("?with=address.commercial_type")).await).await;
    let list = expect_ok(api(app, t, &format!("{doctor}/addresses?with=address.commercial_type")).await).await;
    let of_doctor =
        expect_ok(api(app, t, &format!("{doctor}?with=doctor.addresses,address.commercial_type")).await).await;
    vec![
        one["commercial_type"].clone(),
        list["_items"][0]["commercial_type"].clone(),
        of_doctor["addresses"]["_items"][0]["commercial_type"].clone(),
    ]
}

/// `?with=address.commercial_type` answered `"commercial_type": null` for an
/// address seeded without one; the schema allows only its enum. Such an
/// address is commercial, and shows as `premium`, wherever it is read.
async fn commercial_type_is_never_null(engine: Engine) {
    let ctx = setup(engine).await;
    let (app, t) = (&ctx.app, &ctx.token);
    let read_all = || commercial_types(&ctx);
    assert_eq!(read_all().await, vec![json!("premium"); 3], "seeded without a type");
    store_commercial_type(&ctx, None).await;
    assert_eq!(read_all().await, vec![json!("premium"); 3], "stored without a type");
    // The address still behaves as commercial: its calendar takes breaks.
    let r = call(
        app,
        t,
        Method::POST,
        &ctx.at("/breaks"),
        Some(json!({"since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T10:30:00+01:00"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    // A type the seed gives shows as given.
    let mut doc = seed();
    doc["tenants"][0]["facilities"][0]["addresses"][0]["commercial_type"] = json!("saas-only");
    app.seed(&doc).await;
    assert_eq!(read_all().await, vec![json!("saas-only"); 3]);
}

/// `GET …/bookings` documents 200, 403 and 404, yet answered 400 for a
/// missing, unparsable or reversed range and a bad `page` or `limit`. Each is
/// a 404 now, with the document's messages where it has them.
async fn booking_list_query_problems_answer_404(engine: Engine) {
    let ctx = setup(engine).await;
    let range = format!("start={}&end={}", enc(DAY.0), enc(DAY.1));
    let cases = [
        (String::new(), "Param \"start\" is required!".to_owned()),
        (format!("?start={}", enc(DAY.0)), "Param \"end\" is required!".to_owned()),
        ("?start=yesterday&end=today".to_owned(), "Invalid date given.".to_owned()),
        (format!("?start={}&end={}", enc(DAY.1), enc(DAY.0)), "Invalid date range".to_owned()),
        (format!("?{range}&page=0"), "Param \"page\" should be a positive integer.".to_owned()),
        (format!("?{range}&page=null"), "Param \"page\" should be a positive integer.".to_owned()),
        (format!("?{range}&limit=-1"), "Param \"limit\" should be a positive integer.".to_owned()),
        (format!("?{range}&page=1&limit=101"), "Param \"limit\" should be 100 or less.".to_owned()),
    ];
    for (query, message) in cases {
        expect_error(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings{query}"))).await, 404, &message).await;
    }
    let page = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings?{range}&page=1&limit=5"))).await).await;
    assert_eq!((page["page"].as_i64(), page["limit"].as_i64(), page["total"].as_i64()), (Some(1), Some(5), Some(0)));
}

/// A parameter given twice made the query extractor answer 400 in plain
/// text (`Failed to deserialize query string: duplicate field`): an
/// undocumented status on the bookings list, an undocumented content type on
/// the slots. Like PHP, the platform's language, the last value counts.
async fn a_repeated_query_parameter_counts_with_its_last_value(engine: Engine) {
    let ctx = setup(engine).await;
    let (app, t) = (&ctx.app, &ctx.token);
    let (start, end) = (enc(DAY.0), enc(DAY.1));
    let slots = expect_ok(api(app, t, &ctx.at(&format!("/slots?end=null&end={end}&start={start}"))).await).await;
    assert_eq!(slots, json!({"_items": []}));
    let r = api(app, t, &ctx.at(&format!("/slots?end={end}&end=null&start={start}"))).await;
    expect_error(r, 400, "Invalid date given.").await;
    let page =
        expect_ok(api(app, t, &ctx.at(&format!("/bookings?start={start}&end={end}&page=null&page=1"))).await).await;
    assert_eq!(page["page"], 1);
    expect_error(
        api(app, t, &ctx.at(&format!("/bookings?start={start}&end={end}&page=1&page=null"))).await,
        404,
        "Param \"page\" should be a positive integer.",
    )
    .await;
    let breaks = format!("/breaks?since=x&since={start}&till={end}&till={end}");
    assert_eq!(expect_ok(api(app, t, &ctx.at(&breaks)).await).await, json!({"_items": []}));
}

/// `GET …/breaks` documents 200, 403 and 404, yet answered 400 for a missing
/// `since` or `till` and a reversed window. Each is a 404 now, as the
/// document shows for its unparsable date.
async fn break_list_query_problems_answer_404(engine: Engine) {
    let ctx = setup(engine).await;
    let (since, till) = (enc(DAY.0), enc(DAY.1));
    for (query, message) in [
        (String::new(), "Param \"since\" is required!"),
        (format!("?since={since}"), "Param \"till\" is required!"),
        (format!("?since={till}&till={since}"), "Invalid date range"),
        (format!("?since={since}&till={since}"), "Invalid date range"),
        (format!("?since=tomorrow&till={till}"), "Invalid date given."),
    ] {
        expect_error(api(&ctx.app, &ctx.token, &ctx.at(&format!("/breaks{query}"))).await, 404, message).await;
    }
}

/// `GET /insurance-providers/{id}/plans` documents a 200 only, yet answered
/// 404 for a provider outside the dictionary (and for a segment that is not
/// UTF-8). Such a provider has no plans: an empty list.
async fn plans_of_a_provider_outside_the_dictionary_are_an_empty_list(engine: Engine) {
    let ctx = setup(engine).await;
    for id in ["99", "abc", "%F1%A6%94%B6%5E", "-1", "99999999999999999999999"] {
        let got = expect_ok(api(&ctx.app, &ctx.token, &format!("/insurance-providers/{id}/plans")).await).await;
        assert_eq!(got, json!({"_items": []}), "{id}");
    }
    let known = expect_ok(api(&ctx.app, &ctx.token, "/insurance-providers/3/plans").await).await;
    assert_eq!(known, json!({"_items": [{"insurance_plan_id": "31", "name": "Basic"}]}));
}

/// A `PUT` of `body` as it is, contract-checked.
async fn put_raw(ctx: &Ctx, path: &str, body: &'static str) -> reqwest::Response {
    let url = ctx.app.url(&format!("/api/v3/integration{path}"));
    let r = ctx.app.client.put(url).bearer_auth(&ctx.token).header("content-type", "application/json").body(body);
    crate::dp::checked("PUT", path, r.send().await.unwrap()).await
}

/// `PUT …/insurance-providers` documents 204, 403 and 404, yet answered 400
/// "Invalid arguments" for a body without a provider id. A body that names
/// no provider of the dictionary, malformed or not, is a 404 with the
/// document's message, and nothing is written.
async fn put_insurance_provider_problems_answer_404(engine: Engine) {
    let ctx = setup(engine).await;
    let (app, t) = (&ctx.app, &ctx.token);
    let path = ctx.at("/insurance-providers");
    for body in ["", "{}", "[]", "\"3\"", "{", "{\"insurance_provider_id\": null}", "{\"insurance_provider_id\": {}}"] {
        expect_error(put_raw(&ctx, &path, body).await, 404, PROVIDER_NOT_IN_DICTIONARY).await;
    }
    for body in [
        json!({"insurance_provider_id": "3", "insurance_plans": "31"}),
        json!({"insurance_provider_id": "3", "insurance_plans": [{"insurance_plan_id": {}}]}),
        json!({"insurance_provider_id": "3", "insurance_plans": [{"insurance_plan_id": "41"}]}),
    ] {
        expect_error(call(app, t, Method::PUT, &path, Some(body)).await, 404, PLAN_NOT_IN_DICTIONARY).await;
    }
    assert_eq!(expect_ok(api(app, t, &path).await).await, json!({"_items": []}), "nothing written");
    // POST documents a 400: there, a body without a provider id stays one.
    let r = call(app, t, Method::POST, &path, Some(json!({}))).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["message"], "Invalid arguments");
}

/// Calendar enable and disable document no 404: a doctor or an address that
/// names nothing answers the document's 403 "You are not authorized to see
/// this doctor" / "... this address", and the calendar stays as it was.
async fn calendar_switches_answer_403_for_a_doctor_or_address_that_names_nothing(engine: Engine) {
    let ctx = setup(engine).await;
    let (app, t) = (&ctx.app, &ctx.token);
    let (f, d, a) = (&ctx.hosp, &ctx.ann, &ctx.address);
    for switch in ["enable", "disable"] {
        for (path, message) in [
            (format!("/facilities/{f}/doctors/999999/addresses/{a}"), "You are not authorized to see this doctor"),
            (format!("/facilities/{f}/doctors/abc/addresses/{a}"), "You are not authorized to see this doctor"),
            (format!("/facilities/{f}/doctors/{d}/addresses/999999"), "You are not authorized to see this address"),
            (format!("/facilities/{f}/doctors/{d}/addresses/%FF"), "You are not authorized to see this address"),
        ] {
            let r = call(app, t, Method::POST, &format!("{path}/calendar/{switch}"), None).await;
            expect_error(r, 403, message).await;
        }
    }
    assert_eq!(expect_ok(api(app, t, &ctx.at("/calendar")).await).await, json!({"status": "enabled"}));
}

on_both_engines!(
    commercial_type_is_never_null,
    booking_list_query_problems_answer_404,
    a_repeated_query_parameter_counts_with_its_last_value,
    break_list_query_problems_answer_404,
    plans_of_a_provider_outside_the_dictionary_are_an_empty_list,
    put_insurance_provider_problems_answer_404,
    calendar_switches_answer_403_for_a_doctor_or_address_that_names_nothing,
);
