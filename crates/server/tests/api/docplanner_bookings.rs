//! Docplanner slots and bookings: work periods in, computed slots out,
//! booking, listing, cancelling, moving (both forms), confirming, patient
//! presence, opinion requests; bookings from the Embassy dialect block slots.

use crate::dp::{Ctx, api, call, enc, expect_error, expect_ok, setup};
use crate::helpers::Engine;
use crate::on_both_engines;
use crate::receiver::Receiver;
use reqwest::Method;
use serde_json::{Value, json};

/// Adds dictionary service `service_id` to Ann's address; answers the id.
async fn add_service(ctx: &Ctx, service_id: &str) -> String {
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at("/services"),
        Some(json!({"service_id": service_id, "price": 100, "is_price_from": false})),
    )
    .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    location.rsplit('/').next().unwrap().to_owned()
}

/// Replaces work periods; asserts 201.
async fn put_slots(ctx: &Ctx, slots: Value) {
    let r = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": slots}))).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

/// The free starts between `start` and `end`.
async fn starts(ctx: &Ctx, start: &str, end: &str) -> Vec<String> {
    let body =
        expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/slots?start={}&end={}", enc(start), enc(end)))).await)
            .await;
    body["_items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap().to_owned()).collect()
}

fn patient() -> Value {
    json!({"name": "Abraham", "surname": "Lincoln", "email": "example@example.com", "phone": 48123123123_i64,
        "birth_date": "1985-01-01", "nin": 894237492, "gender": "m"})
}

async fn book(ctx: &Ctx, start: &str, service: &str, duration: i64) -> reqwest::Response {
    let body = json!({"address_service_id": service, "duration": duration, "is_returning": false,
        "patient": patient(), "label": "label", "comment": "comment", "is_recurring": true});
    call(&ctx.app, &ctx.token, Method::POST, &ctx.at(&format!("/slots/{}/book", enc(start))), Some(body)).await
}

/// Two services (20 and 60 minutes) on Tuesday 5 March 2030, 09:00 to 11:00.
async fn tuesday(ctx: &Ctx) -> (String, String) {
    let (short, long) = (add_service(ctx, "1").await, add_service(ctx, "3").await);
    put_slots(ctx, json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T11:00:00+01:00",
        "address_services": [{"address_service_id": short, "duration": 20}, {"address_service_id": long, "duration": 60}]}]))
    .await;
    (short, long)
}

const DAY: (&str, &str) = ("2030-03-05T00:00:00+01:00", "2030-03-06T00:00:00+01:00");

async fn slots_are_computed_from_work_periods(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, long) = tuesday(&ctx).await;
    let all = ["09:00", "09:20", "09:40", "10:00", "10:20", "10:40"].map(|h| format!("2030-03-05T{h}:00+01:00"));
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await, all, "a 20-minute grid: the GCD of 20 and 60");
    let with = expect_ok(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!("/slots?start={}&end={}&with=slot.services", enc(DAY.0), enc(DAY.1))),
        )
        .await,
    )
    .await;
    let ids = |i: usize| -> Vec<String> {
        with["_items"][i]["address_services"]["_items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(0), vec![short.clone(), long.clone()]);
    assert_eq!(ids(4), vec![short.clone()], "from 10:20 the 60-minute service no longer fits");
    assert_eq!(with["_items"][0]["address_services"]["_items"][0]["name"], "ablacja");
    // A 60-minute booking hides the three grid starts it covers.
    let r = book(&ctx, "2030-03-05T09:00:00+01:00", &long, 60).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await, all[3..].to_vec());
    // A calendar break hides the starts it overlaps.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at("/breaks"),
        Some(json!({"since": "2030-03-05T10:20:00+01:00", "till": "2030-03-05T10:40:00+01:00"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await, vec![all[3].clone(), all[5].clone()]);
    // Ranges: required, ordered, at most 180 days.
    expect_error(
        api(&ctx.app, &ctx.token, &ctx.at(&format!("/slots?start={}&end={}", enc(DAY.1), enc(DAY.0)))).await,
        400,
        "Invalid date range",
    )
    .await;
    expect_error(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!("/slots?start={}&end={}", enc(DAY.0), enc("2030-09-05T00:00:00+02:00"))),
        )
        .await,
        400,
        "Date range must not exceed 180 days",
    )
    .await;
    expect_error(
        api(&ctx.app, &ctx.token, &ctx.at("/slots?start=yesterday&end=today")).await,
        400,
        "Invalid date given.",
    )
    .await;
    let missing = api(&ctx.app, &ctx.token, &ctx.at("/slots")).await;
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.json::<Value>().await.unwrap()["errors"]["start"][0], "This value should not be blank.");
    // Another facility's address.
    let other = format!(
        "/facilities/{}/doctors/{}/addresses/{}/slots?start={}&end={}",
        ctx.hosp,
        ctx.ann,
        ctx.id("addresses", "bo-other"),
        enc(DAY.0),
        enc(DAY.1)
    );
    expect_error(api(&ctx.app, &ctx.token, &other).await, 403, "This address does not belong to this facility").await;
    ctx.app.stop().await;
}

async fn replacing_work_periods_follows_the_documented_rules(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, _) = tuesday(&ctx).await;
    let svc = json!([{"address_service_id": short, "duration": 30}]);
    let slots_path = ctx.at("/slots");
    let put = |slots: Value| call(&ctx.app, &ctx.token, Method::PUT, &slots_path, Some(json!({"slots": slots})));
    // More than 12 weeks ahead (now is 2030-03-04 09:00 local).
    let r = put(
        json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00", "address_services": svc},
        {"start": "2030-06-03T09:00:00+02:00", "end": "2030-06-03T10:00:00+02:00", "address_services": svc}]),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/vnd.error+docplanner+json");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": {"slots[1].end": ["End date should be less than or equal to 27.05.2030, 10:00."]}, "message": "Invalid arguments"})
    );
    let r = put(
        json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T09:00:30+01:00", "address_services": svc}]),
    )
    .await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errors": {"slots[0].minimumDifferenceBetweenDates": ["The end date must be at least 1 minute after the start date"]},
            "message": "Invalid arguments"})
    );
    expect_error(
        put(json!([{"start": "2030-03-05T22:00:00+01:00", "end": "2030-03-06T01:00:00+01:00", "address_services": svc}])).await,
        400,
        "Slot for date range 2030-03-05T22:00:00+01:00 - 2030-03-06T01:00:00+01:00 exceeds a single day boundary",
    )
    .await;
    expect_error(
        put(json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00",
            "address_services": [{"address_service_id": "999999", "duration": 30}]}]))
        .await,
        400,
        "Address service does not exist",
    )
    .await;
    expect_error(
        put(json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00", "address_services": svc,
            "insurance_accepted": "with-insurance-only"}]))
        .await,
        400,
        "Slot requires insurance (with-insurance-only), but insurance providers are missing",
    )
    .await;
    expect_error(
        put(json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00", "address_services": svc,
            "insurance_accepted": "without-insurance-only", "insurance_providers": [3]}]))
        .await,
        400,
        "Insurance providers are not supported. Slot does not allow insurances (without-insurance-only)",
    )
    .await;
    expect_error(
        put(json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00", "address_services": svc,
            "insurance_providers": [3]}]))
        .await,
        400,
        &format!("Insurance provider(s) with id (3) not found for address id ({})", ctx.address),
    )
    .await;
    let bad = put(json!([{"start": "soon", "end": "later"}])).await;
    assert_eq!(bad.json::<Value>().await.unwrap()["errors"]["slots[0].start"][0], "Invalid date given.");
    let shape = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": "all"}))).await;
    assert_eq!(shape.status(), 400);
    assert_eq!(shape.json::<Value>().await.unwrap()["message"], "Invalid arguments");
    // Nothing above changed the day.
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await.len(), 6);
    // A replace covers its range only: 10:00-11:00 re-cut on 30 minutes.
    put_slots(
        &ctx,
        json!([{"start": "2030-03-05T10:00:00+01:00", "end": "2030-03-05T11:00:00+01:00", "address_services": svc}]),
    )
    .await;
    assert_eq!(
        starts(&ctx, DAY.0, DAY.1).await,
        ["09:00", "09:20", "09:40", "10:00", "10:30"].map(|h| format!("2030-03-05T{h}:00+01:00")).to_vec()
    );
    // Null address services remove the range's slots.
    put_slots(
        &ctx,
        json!([{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T10:00:00+01:00", "address_services": null}]),
    )
    .await;
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await.len(), 2);
    // DELETE .../slots/{date} clears the local day.
    let r = call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/slots/2030-03-05"), None).await;
    assert_eq!(r.status(), 204);
    assert!(starts(&ctx, DAY.0, DAY.1).await.is_empty());
    expect_error(
        call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/slots/5-3-2030"), None).await,
        404,
        "Invalid date given.",
    )
    .await;
    ctx.app.stop().await;
}

async fn booking_a_slot(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, long) = tuesday(&ctx).await;
    let start = "2030-03-05T09:20:00+01:00";
    let b = expect_ok(book(&ctx, start, &short, 20).await).await;
    assert_eq!(b["status"], "booked");
    assert_eq!(b["start_at"], start);
    assert_eq!(b["end_at"], "2030-03-05T09:40:00+01:00");
    assert_eq!(b["duration"], 20);
    assert_eq!(b["booked_by"], "integration");
    assert_eq!(b["canceled_by"], "");
    assert_eq!(b["booked_at"], "2030-03-04T09:00:00+01:00");
    assert_eq!(b["comment"], "comment");
    assert_eq!(b["patient"]["name"], "Abraham");
    assert_eq!(b["patient"]["phone"], "+48123123123");
    assert_eq!(b["patient"]["nin"], "894237492");
    assert_eq!(b["patient"]["gender"], "m");
    assert_eq!(b["patient"]["is_returning"], false);
    assert_eq!(b["address_service"]["id"], short.as_str());
    // The same start again: the document's error.
    expect_error(
        book(&ctx, start, &short, 20).await,
        404,
        "Unable to perform booking. Requested target slot (2030-03-05T09:20:00+01:00) not found",
    )
    .await;
    // Off the grid, not offered, unknown service, service that does not fit.
    expect_error(
        book(&ctx, "2030-03-05T09:10:00+01:00", &short, 20).await,
        404,
        "Unable to perform booking. Requested target slot (2030-03-05T09:10:00+01:00) not found",
    )
    .await;
    expect_error(book(&ctx, "2030-03-05T10:00:00+01:00", "999999", 20).await, 404, "Service does not exist").await;
    expect_error(
        book(&ctx, "2030-03-05T10:20:00+01:00", &long, 60).await,
        404,
        &format!("Unable to perform booking. Slot (2030-03-05T10:20:00+01:00) does not support service {long}"),
    )
    .await;
    // Bad bodies: field errors, nothing written.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at(&format!("/slots/{}/book", enc("2030-03-05T10:00:00+01:00"))),
        Some(json!({"address_service_id": short, "duration": 20, "patient": {"name": "", "phone": "123"}})),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["errors"]["patient.name"][0], "This value should not be blank.");
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at(&format!("/slots/{}/book", enc("2030-03-05T10:00:00+01:00"))),
        Some(json!({"address_service_id": short, "patient": patient()})),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["errors"]["body"][0].as_str().unwrap().contains("duration"));
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at("/slots/tomorrow/book"),
            Some(json!({"address_service_id": short, "duration": 20, "patient": patient()})),
        )
        .await,
        400,
        "Invalid date given.",
    )
    .await;
    // Insurance from the dictionary.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at(&format!("/slots/{}/book", enc("2030-03-05T10:00:00+01:00"))),
        Some(json!({"address_service_id": short, "duration": 20, "patient": patient(),
            "insurance_provider_id": "3", "insurance_plan_id": 31})),
    )
    .await;
    let insured = expect_ok(r).await;
    assert_eq!(insured["insurance"], json!({"id": "3", "name": "NFZ", "plan": "Basic", "plan_id": "31"}));
    assert_eq!(insured["patient"]["name"], "Abraham", "the same patient (by nin) is found again");
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/slots/{}/book", enc("2030-03-05T10:40:00+01:00"))),
            Some(
                json!({"address_service_id": short, "duration": 20, "patient": patient(), "insurance_provider_id": 99}),
            ),
        )
        .await,
        400,
        "Provided insurance provider ID not found in dictionary",
    )
    .await;
    ctx.app.stop().await;
}

async fn bookings_are_listed_read_and_cancelled(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, _) = tuesday(&ctx).await;
    let mut ids = Vec::new();
    for h in ["09:00", "09:20", "09:40"] {
        let b = expect_ok(book(&ctx, &format!("2030-03-05T{h}:00+01:00"), &short, 20).await).await;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    let q = format!("/bookings?start={}&end={}", enc(DAY.0), enc(DAY.1));
    let all = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&q)).await).await;
    assert_eq!(all["_items"].as_array().unwrap().len(), 3);
    assert!(all.get("page").is_none(), "no page parameter, no pagination");
    assert!(all["_items"][0].get("patient").is_none(), "the patient only with booking.patient");
    let page = expect_ok(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!(
                "{q}&page=2&limit=2&with=booking.patient,booking.address_service,booking.presence,booking.confirmation"
            )),
        )
        .await,
    )
    .await;
    assert_eq!(
        (page["page"].as_i64(), page["limit"].as_i64(), page["pages"].as_i64(), page["total"].as_i64()),
        (Some(2), Some(2), Some(2), Some(3))
    );
    assert_eq!(page["_items"].as_array().unwrap().len(), 1);
    assert_eq!(page["_items"][0]["id"], ids[2].as_str());
    assert_eq!(page["_items"][0]["patient"]["surname"], "Lincoln");
    assert_eq!(page["_items"][0]["address_service"]["id"], short.as_str());
    assert_eq!(page["_items"][0]["presence"], Value::Null);
    assert_eq!(page["_items"][0]["confirmed"], false);
    assert!(page["_links"]["previous"]["href"].as_str().unwrap().contains("page=1"));
    assert!(page["_links"].get("next").is_none());
    assert!(page["_links"]["self"]["href"].as_str().unwrap().starts_with("/api/v3/integration/facilities/"));
    // The list documents no 400: a missing range is a 404 (see docplanner_conformance.rs).
    expect_error(api(&ctx.app, &ctx.token, &ctx.at("/bookings")).await, 404, "Param \"start\" is required!").await;
    // One booking, with booking.moving.
    let one =
        expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{}?with=booking.moving", ids[0]))).await).await;
    assert_eq!(one["patient"]["name"], "Abraham");
    assert_eq!(one["moving"], json!({"origin_booking_id": ids[0], "newest_booking_id": ids[0]}));
    expect_error(api(&ctx.app, &ctx.token, &ctx.at("/bookings/999999")).await, 404, "Object not found").await;
    // Cancel with a reason: 204, the slot is free again, a second cancel is refused.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::DELETE,
        &ctx.at(&format!("/bookings/{}", ids[0])),
        Some(json!({"reason": "Doctor will not be present on that day"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let one = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{}", ids[0]))).await).await;
    assert_eq!((one["status"].as_str(), one["canceled_by"].as_str()), (Some("canceled"), Some("integration")));
    assert_eq!(one["canceled_at"], "2030-03-04T09:00:00+01:00");
    assert!(starts(&ctx, DAY.0, DAY.1).await.contains(&"2030-03-05T09:00:00+01:00".to_owned()));
    expect_error(
        call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at(&format!("/bookings/{}", ids[0])), None).await,
        400,
        &format!("Visit {} cannot be canceled because it is not booked", ids[0]),
    )
    .await;
    // Cancel without a body.
    let r = call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at(&format!("/bookings/{}", ids[1])), None).await;
    assert_eq!(r.status(), 204);
    // A booking read through another address.
    let bo = format!(
        "/facilities/{}/doctors/{}/addresses/{}/bookings/{}",
        ctx.hosp,
        ctx.id("practitioners", "bo"),
        ctx.id("addresses", "bo-hosp"),
        ids[2]
    );
    expect_error(api(&ctx.app, &ctx.token, &bo).await, 403, "This booking does not belong to this address").await;
    ctx.app.stop().await;
}

async fn moving_a_booking_both_forms(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, long) = tuesday(&ctx).await;
    let b = expect_ok(book(&ctx, "2030-03-05T09:00:00+01:00", &short, 20).await).await;
    let id = b["id"].as_str().unwrap().to_owned();
    // The documented form: POST .../move, 201 with the new booking's Location.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at(&format!("/bookings/{id}/move")),
        Some(json!({"address_service_id": long, "start": "2030-03-05T10:00:00+01:00", "duration": 60})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let moved: Value = r.json().await.unwrap();
    let new_id = moved["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, id);
    assert_eq!(location, format!("/api/v3/integration{}", ctx.at(&format!("/bookings/{new_id}"))));
    assert_eq!((moved["start_at"].as_str(), moved["duration"].as_i64()), (Some("2030-03-05T10:00:00+01:00"), Some(60)));
    assert_eq!(moved["address_service"]["id"], long.as_str());
    let old = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{id}?with=booking.moving"))).await).await;
    assert_eq!(old["status"], "canceled");
    assert_eq!(old["moving"], json!({"origin_booking_id": id, "newest_booking_id": new_id}));
    // The old time is free, the new one taken.
    let free = starts(&ctx, DAY.0, DAY.1).await;
    assert!(free.contains(&"2030-03-05T09:00:00+01:00".to_owned()));
    assert!(!free.contains(&"2030-03-05T10:20:00+01:00".to_owned()));
    // Moving the moved-away booking again: 409.
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/bookings/{id}/move")),
            Some(json!({"address_service_id": short, "start": "2030-03-05T09:20:00+01:00"})),
        )
        .await,
        409,
        "The visit has already been canceled or moved",
    )
    .await;
    // The guide's form: POST .../bookings/{id}, moving onto part of its own time.
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at(&format!("/bookings/{new_id}")),
        Some(json!({"address_service_id": short, "start": "2030-03-05T10:20:00+01:00", "duration": 20})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let newest = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let chain =
        expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{newest}?with=booking.moving"))).await).await;
    assert_eq!(chain["moving"], json!({"origin_booking_id": id, "newest_booking_id": newest}), "the whole chain");
    let first =
        expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{id}?with=booking.moving"))).await).await;
    assert_eq!(first["moving"]["newest_booking_id"], newest.as_str());
    // Errors: missing service, unknown service, another address's service, taken slot.
    let r =
        call(&ctx.app, &ctx.token, Method::POST, &ctx.at(&format!("/bookings/{newest}/move")), Some(json!({}))).await;
    assert_eq!(r.status(), 400);
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/bookings/{newest}/move")),
            Some(json!({"address_service_id": "999999"})),
        )
        .await,
        400,
        "Service does not exist",
    )
    .await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/bookings/{newest}/move")),
            Some(json!({"address_service_id": short, "address_id": ctx.id("addresses", "bo-other")})),
        )
        .await,
        403,
        "This address does not belong to this facility",
    )
    .await;
    let other = expect_ok(book(&ctx, "2030-03-05T09:00:00+01:00", &short, 20).await).await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/bookings/{}/move", other["id"].as_str().unwrap())),
            Some(json!({"address_service_id": short, "start": "2030-03-05T10:20:00+01:00"})),
        )
        .await,
        404,
        "Unable to perform booking. Requested target slot (2030-03-05T10:20:00+01:00) not found",
    )
    .await;
    ctx.app.stop().await;
}

async fn confirming_and_marking_presence(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, _) = tuesday(&ctx).await;
    // Today (Monday 4 March, now 09:00 local) too, for a visit about to start.
    put_slots(
        &ctx,
        json!([{"start": "2030-03-04T09:00:00+01:00", "end": "2030-03-04T10:00:00+01:00",
        "address_services": [{"address_service_id": short, "duration": 20}]}]),
    )
    .await;
    let id =
        expect_ok(book(&ctx, "2030-03-04T09:20:00+01:00", &short, 20).await).await["id"].as_str().unwrap().to_owned();
    let confirm_path = ctx.at(&format!("/bookings/{id}/confirm"));
    let presence_path = ctx.at(&format!("/bookings/{id}/presence/patient"));
    let confirm = |body: Value| call(&ctx.app, &ctx.token, Method::PUT, &confirm_path, Some(body));
    let presence = |m: Method| call(&ctx.app, &ctx.token, m, &presence_path, None);
    expect_error(confirm(json!({"confirmed_by": "robot"})).await, 400, "confirmed_by value is invalid").await;
    expect_error(confirm(json!({})).await, 400, "confirmed_by value is invalid").await;
    assert_eq!(confirm(json!({"confirmed_by": "admin"})).await.status(), 204);
    expect_error(confirm(json!({"confirmed_by": "user"})).await, 409, "Visit has already been confirmed").await;
    expect_error(presence(Method::POST).await, 400, "Visit is in the future").await;
    expect_error(presence(Method::DELETE).await, 400, "Visit is in the future").await;
    ctx.app.advance(20 * 60).await;
    let today = ("2030-03-04T00:00:00+01:00", "2030-03-05T00:00:00+01:00");
    let list =
        format!("/bookings?start={}&end={}&with=booking.presence,booking.confirmation", enc(today.0), enc(today.1));
    assert_eq!(presence(Method::POST).await.status(), 204);
    let one = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&list)).await).await;
    assert_eq!(
        (one["_items"][0]["presence"].as_str(), one["_items"][0]["confirmed"].as_bool()),
        (Some("present"), Some(true))
    );
    assert_eq!(presence(Method::DELETE).await.status(), 204);
    let one = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&list)).await).await;
    assert_eq!(one["_items"][0]["presence"], "absent");
    // A visit in the past cannot be confirmed.
    let past =
        expect_ok(book(&ctx, "2030-03-04T09:40:00+01:00", &short, 20).await).await["id"].as_str().unwrap().to_owned();
    ctx.app.advance(30 * 60).await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::PUT,
            &ctx.at(&format!("/bookings/{past}/confirm")),
            Some(json!({"confirmed_by": "user"})),
        )
        .await,
        409,
        "Visit is in the past",
    )
    .await;
    // A cancelled visit: 409 for presence and for confirmation.
    let other =
        expect_ok(book(&ctx, "2030-03-05T10:00:00+01:00", &short, 20).await).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at(&format!("/bookings/{other}")), None).await.status(),
        204
    );
    expect_error(
        call(&ctx.app, &ctx.token, Method::POST, &ctx.at(&format!("/bookings/{other}/presence/patient")), None).await,
        409,
        "Visit is marked as canceled",
    )
    .await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::PUT,
            &ctx.at(&format!("/bookings/{other}/confirm")),
            Some(json!({"confirmed_by": "user"})),
        )
        .await,
        409,
        "Visit has been canceled",
    )
    .await;
    ctx.app.stop().await;
}

async fn requesting_an_opinion(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, _) = tuesday(&ctx).await;
    expect_ok(book(&ctx, "2030-03-05T09:00:00+01:00", &short, 20).await).await;
    let path = format!("/facilities/{}/doctors/{}/opinion-request", ctx.hosp, ctx.ann);
    let ask = |phone: Value| call(&ctx.app, &ctx.token, Method::PUT, &path, Some(json!({"phone": phone})));
    expect_error(ask(json!("12")).await, 400, "Phone number is invalid.").await;
    expect_error(ask(json!("+46701234567")).await, 403, "Visit not found").await;
    assert_eq!(ask(json!("+48123123123")).await.status(), 200);
    // The request goes out as a text message through the delivery engine.
    ctx.app.run_due().await;
    let sms: Vec<Value> =
        ctx.app.deliveries("acme").await.into_iter().filter(|d| d["event"] == "opinion-request").collect();
    assert_eq!(sms.len(), 1);
    assert_eq!((sms[0]["target"].as_str(), sms[0]["state"].as_str()), (Some("sms:+48123123123"), Some("delivered")));
    expect_error(ask(json!(48123123123_i64)).await, 409, "Opinion already exists").await;
    let bo = format!("/facilities/{}/doctors/{}/opinion-request", ctx.hosp, ctx.id("practitioners", "bo"));
    expect_error(
        call(&ctx.app, &ctx.token, Method::PUT, &bo, Some(json!({"phone": "+48123123123"}))).await,
        403,
        "Visit not found",
    )
    .await;
    ctx.app.stop().await;
}

/// The remaining documented errors of slots and bookings, and a move to
/// another doctor's address in the same facility.
async fn the_documented_errors_of_slots_and_bookings(engine: Engine) {
    let ctx = setup(engine).await;
    let (short, _) = tuesday(&ctx).await;
    let (bo, bo_address) = (ctx.id("practitioners", "bo"), ctx.id("addresses", "bo-hosp"));
    let bo_at = format!("/facilities/{}/doctors/{bo}/addresses/{bo_address}", ctx.hosp);
    let r =
        call(&ctx.app, &ctx.token, Method::POST, &format!("{bo_at}/services"), Some(json!({"service_id": "5"}))).await;
    assert_eq!(r.status(), 201);
    let bo_service = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::PUT,
        &format!("{bo_at}/slots"),
        Some(json!({"slots": [{
        "start": "2030-03-05T12:00:00+01:00", "end": "2030-03-05T13:00:00+01:00",
        "address_services": [{"address_service_id": bo_service, "duration": 30}]}]})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let first =
        expect_ok(book(&ctx, "2030-03-05T09:00:00+01:00", &short, 20).await).await["id"].as_str().unwrap().to_owned();
    let second =
        expect_ok(book(&ctx, "2030-03-05T09:20:00+01:00", &short, 20).await).await["id"].as_str().unwrap().to_owned();
    let move_path = ctx.at(&format!("/bookings/{first}/move"));
    let move_first = |body: Value| call(&ctx.app, &ctx.token, Method::POST, &move_path, Some(body));
    expect_error(
        move_first(json!({"address_service_id": short, "address_id": "999999"})).await,
        400,
        "Address does not exist",
    )
    .await;
    expect_error(
        move_first(json!({"address_service_id": bo_service})).await,
        400,
        "Service does not belong to the address",
    )
    .await;
    // To Bo's address in the same facility: the booking moves to Bo.
    let r = move_first(json!({"address_service_id": bo_service, "address_id": bo_address,
        "start": "2030-03-05T12:30:00+01:00", "duration": 30}))
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let moved = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v3/integration{bo_at}/bookings/{moved}"));
    let at_bo = expect_ok(api(&ctx.app, &ctx.token, &format!("{bo_at}/bookings/{moved}")).await).await;
    assert_eq!(at_bo["start_at"], "2030-03-05T12:30:00+01:00");
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::PUT,
            &ctx.at(&format!("/bookings/{first}/confirm")),
            Some(json!({"confirmed_by": "user"})),
        )
        .await,
        409,
        "Visit has been deleted",
    )
    .await;
    expect_error(
        call(&ctx.app, &ctx.token, Method::POST, &ctx.at(&format!("/bookings/{moved}/presence/patient")), None).await,
        404,
        "This visit does not belong to this doctor",
    )
    .await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::PUT,
            &ctx.at(&format!("/bookings/{moved}/confirm")),
            Some(json!({"confirmed_by": "user"})),
        )
        .await,
        403,
        "This booking does not belong to this address",
    )
    .await;
    // A disabled calendar offers nothing and takes no booking.
    assert_eq!(call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/calendar/disable"), None).await.status(), 200);
    assert!(starts(&ctx, DAY.0, DAY.1).await.is_empty());
    expect_error(
        book(&ctx, "2030-03-05T10:00:00+01:00", &short, 20).await,
        404,
        "Unable to book a visit for this address",
    )
    .await;
    assert_eq!(call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/calendar/enable"), None).await.status(), 200);
    assert_eq!(starts(&ctx, DAY.0, DAY.1).await.len(), 5, "only 09:20 is taken");
    // Without the integration: no calendar edits, no bookings, no cancellations.
    assert_eq!(call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/integration"), None).await.status(), 202);
    let locked = "You are not authorized to make changes on this calendar";
    expect_error(
        call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": []}))).await,
        403,
        locked,
    )
    .await;
    expect_error(call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at("/slots/2030-03-05"), None).await, 403, locked)
        .await;
    expect_error(
        book(&ctx, "2030-03-05T10:00:00+01:00", &short, 20).await,
        404,
        "Unable to book a visit for this address",
    )
    .await;
    expect_error(
        call(&ctx.app, &ctx.token, Method::DELETE, &ctx.at(&format!("/bookings/{second}")), None).await,
        400,
        "Unable to cancel a visit for this address",
    )
    .await;
    expect_error(
        call(
            &ctx.app,
            &ctx.token,
            Method::PUT,
            &ctx.at(&format!("/bookings/{second}/confirm")),
            Some(json!({"confirmed_by": "user"})),
        )
        .await,
        400,
        "Integration is not authorized for this address",
    )
    .await;
    // A basic (free) address: 422 for work periods and bookings.
    let mut doc = crate::dp::seed();
    doc["tenants"][0]["facilities"][0]["addresses"][0]["commercial_type"] = json!("basic");
    ctx.app.seed(&doc).await;
    let basic = format!("Cannot activate calendar on address {}, profile/address is not commercial", ctx.address);
    expect_error(
        call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(json!({"slots": []}))).await,
        422,
        &basic,
    )
    .await;
    expect_error(book(&ctx, "2030-03-05T10:00:00+01:00", &short, 20).await, 422, &basic).await;
    ctx.app.stop().await;
}

/// Books Eva Holm with Ann through Embassy (healthcare service `gp`, linked
/// to Ann's address), creating the patient first when needed.
async fn embassy_booking(ctx: &Ctx, start: &str, end: &str) -> reqwest::Response {
    let gp = ctx.id("healthcare_services", "gp");
    let r = ctx
        .app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Patient", "name": [{"family": "Holm", "given": ["Eva"]}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 200 || r.status() == 422, "{}", r.status());
    crate::dp::embassy_appointment(&ctx.app, &gp, start, end).await
}

/// An Embassy reschedule of appointment `id`.
async fn embassy_reschedule(ctx: &Ctx, id: &str, start: &str, end: &str) -> reqwest::Response {
    let op = |path: &str, value: &str| {
        json!({"name": "operation", "part": [{"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": path}, {"name": "value", "valueDateTime": value}]})
    };
    let body = json!({"resourceType": "Parameters", "parameter": [op("/start", start), op("/end", end)]});
    ctx.app
        .embassy(Method::PATCH, &format!("/Appointment/{id}"))
        .header("content-type", "application/fhir+json")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The optional real-time approvals: a client with `realtime_booking` is
/// asked before a booking made elsewhere lands at its address, and before it
/// moves; anything but a 2xx declines.
async fn realtime_approval_of_bookings_made_elsewhere(engine: Engine) {
    let rx = Receiver::start().await;
    let mut doc = crate::dp::seed();
    let dp = doc["tenants"][0]["credentials"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["dialect"] == "docplanner")
        .unwrap();
    dp["push_url"] = json!(rx.url);
    dp["push_api_key"] = json!("rt-key");
    dp["realtime_booking"] = json!(true);
    let ctx = crate::dp::setup_with(engine, &doc).await;
    let asked =
        |name: &str| -> Vec<Value> { rx.received().iter().map(|r| r.json()).filter(|b| b["name"] == name).collect() };
    // Declined: no booking.
    rx.respond_with(409);
    let r = embassy_booking(&ctx, "2030-03-11T10:00:00+01:00", "2030-03-11T10:15:00+01:00").await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["issue"][0]["details"]["coding"][0]["code"],
        "AllPractionersAreNotAvailable"
    );
    let request = asked("slot-booking");
    assert_eq!(request.len(), 1);
    crate::contract::check_schema("SlotBookingNotification", &request[0]);
    let vbr = &request[0]["data"]["visit_booking_request"];
    assert_eq!((vbr["start_at"].as_str(), vbr["duration"].as_i64()), (Some("2030-03-11T10:00:00+01:00"), Some(15)));
    assert_eq!(vbr["patient"]["surname"], "Holm");
    assert_eq!(request[0]["data"]["address"]["id"], ctx.address.as_str());
    assert_eq!(
        rx.received().iter().find(|r| r.json()["name"] == "slot-booking").unwrap().header("x-api-key"),
        Some("rt-key")
    );
    let q = format!("/bookings?start={}&end={}", enc("2030-03-11T00:00:00+01:00"), enc("2030-03-12T00:00:00+01:00"));
    assert!(expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&q)).await).await["_items"].as_array().unwrap().is_empty());
    // Approved: booked.
    rx.respond_with(200);
    let r = embassy_booking(&ctx, "2030-03-11T10:00:00+01:00", "2030-03-11T10:15:00+01:00").await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    assert_eq!(asked("slot-booking").len(), 2);
    // A move through Embassy: `booking-moving` first, declined then approved.
    rx.respond_with(500);
    let r = embassy_reschedule(&ctx, &id, "2030-03-11T11:00:00+01:00", "2030-03-11T11:15:00+01:00").await;
    assert_eq!(r.status(), 422);
    let moving = asked("booking-moving");
    assert_eq!(moving.len(), 1);
    crate::contract::check_schema("BookingMovingNotification", &moving[0]);
    assert_eq!(moving[0]["data"]["canceling_booking"]["id"], id.as_str());
    assert_eq!(moving[0]["data"]["creating_booking"]["start_at"], "2030-03-11T11:00:00+01:00");
    let listed = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&q)).await).await;
    assert_eq!(listed["_items"][0]["start_at"], "2030-03-11T10:00:00+01:00", "not moved");
    rx.respond_with(204);
    let r = embassy_reschedule(&ctx, &id, "2030-03-11T11:00:00+01:00", "2030-03-11T11:15:00+01:00").await;
    assert_eq!(r.status(), 200);
    let listed = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&q)).await).await;
    assert_eq!(listed["_items"][0]["start_at"], "2030-03-11T11:00:00+01:00");
    // Bookings through the Docplanner API itself are not put to approval.
    let short = add_service(&ctx, "1").await;
    put_slots(
        &ctx,
        json!([{"start": "2030-03-11T13:00:00+01:00", "end": "2030-03-11T14:00:00+01:00",
        "address_services": [{"address_service_id": short, "duration": 30}]}]),
    )
    .await;
    rx.respond_with(500);
    expect_ok(book(&ctx, "2030-03-11T13:00:00+01:00", &short, 30).await).await;
    assert_eq!(asked("slot-booking").len(), 2);
    ctx.app.stop().await;
}

/// An Embassy booking of the healthcare service linked to the address lands
/// at the address: it hides the slots and is listed with the others.
async fn bookings_from_embassy_block_slots(engine: Engine) {
    let ctx = setup(engine).await;
    let short = add_service(&ctx, "1").await;
    // Monday 11 March: the healthcare service `gp` is open 08:00-16:00 on Mondays.
    put_slots(
        &ctx,
        json!([{"start": "2030-03-11T09:00:00+01:00", "end": "2030-03-11T11:00:00+01:00",
        "address_services": [{"address_service_id": short, "duration": 30}]}]),
    )
    .await;
    let r = embassy_booking(&ctx, "2030-03-11T10:00:00+01:00", "2030-03-11T10:15:00+01:00").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let day = ("2030-03-11T00:00:00+01:00", "2030-03-12T00:00:00+01:00");
    assert_eq!(
        starts(&ctx, day.0, day.1).await,
        ["09:00", "09:30", "10:30"].map(|h| format!("2030-03-11T{h}:00+01:00")).to_vec(),
        "10:00 is held by the Embassy booking"
    );
    let list = expect_ok(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!("/bookings?start={}&end={}&with=booking.patient", enc(day.0), enc(day.1))),
        )
        .await,
    )
    .await;
    assert_eq!(list["_items"].as_array().unwrap().len(), 1);
    assert_eq!(list["_items"][0]["start_at"], "2030-03-11T10:00:00+01:00");
    assert_eq!(list["_items"][0]["booked_by"], "integration");
    ctx.app.stop().await;
}

on_both_engines!(
    slots_are_computed_from_work_periods,
    replacing_work_periods_follows_the_documented_rules,
    booking_a_slot,
    bookings_are_listed_read_and_cancelled,
    moving_a_booking_both_forms,
    confirming_and_marking_presence,
    requesting_an_opinion,
    bookings_from_embassy_block_slots,
    the_documented_errors_of_slots_and_bookings,
    realtime_approval_of_bookings_made_elsewhere
);
