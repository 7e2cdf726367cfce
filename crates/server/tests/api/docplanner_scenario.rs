//! The guide's "recommended order of calls", as one integration would make
//! them: token, facilities, doctors, addresses, the service dictionary, an
//! address service, work periods, booking actions, patient presence. Every
//! response is checked against the OpenAPI document on the way (`dp::call`).

use crate::dp::{api, call, enc, expect_ok, seed, token};
use crate::helpers::{Engine, spawn_app};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

async fn the_recommended_order_of_calls(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&seed()).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    // 1. Request for token.
    let t = token(&app).await;
    // 2-4. Facilities, doctors, addresses: the ids every further call needs.
    let facilities = expect_ok(api(&app, &t, "/facilities").await).await;
    let facility = facilities["_items"][0]["id"].as_str().unwrap().to_owned();
    let doctors = expect_ok(api(&app, &t, &format!("/facilities/{facility}/doctors")).await).await;
    let doctor = doctors["_items"].as_array().unwrap().iter().find(|d| d["name"] == "Ann").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let addresses = expect_ok(api(&app, &t, &format!("/facilities/{facility}/doctors/{doctor}/addresses")).await).await;
    let address = addresses["_items"][0]["id"].as_str().unwrap().to_owned();
    let at = format!("/facilities/{facility}/doctors/{doctor}/addresses/{address}");
    // 5. The service dictionary.
    let services = expect_ok(api(&app, &t, "/services").await).await;
    let usg = services["_items"].as_array().unwrap().iter().find(|s| s["name"] == "ablacja serca").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // 6. The address service.
    let r = call(
        &app,
        &t,
        Method::POST,
        &format!("{at}/services"),
        Some(json!({"service_id": usg, "is_price_from": true, "price": 500})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let address_service = location.rsplit('/').next().unwrap().to_owned();
    assert_eq!(location, format!("/api/v3/integration{at}/services/{address_service}"));
    // 7. Slots: one work period, 30-minute visits.
    let r = call(
        &app,
        &t,
        Method::PUT,
        &format!("{at}/slots"),
        Some(json!({"slots": [{
        "start": "2030-03-05T07:00:00+0100", "end": "2030-03-05T15:00:00+0100",
        "address_services": [{"address_service_id": address_service.parse::<i64>().unwrap(), "duration": 30}]}]})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let (from, to) = ("2030-03-05T00:00:00+01:00", "2030-03-06T00:00:00+01:00");
    let slots = expect_ok(api(&app, &t, &format!("{at}/slots?start={}&end={}", enc(from), enc(to))).await).await;
    assert_eq!(slots["_items"].as_array().unwrap().len(), 16, "07:00 to 15:00 in 30 minutes");
    // 8. Booking actions: book, move, cancel.
    let first = slots["_items"][0]["start"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        &t,
        Method::POST,
        &format!("{at}/slots/{}/book", enc(&first)),
        Some(json!({
        "address_service_id": address_service, "duration": 30, "is_returning": false,
        "patient": {"name": "Abraham", "surname": "Lincoln", "email": "example@example.com", "phone": 48123123123_i64,
                    "birth_date": "1985-01-01", "nin": 894237492, "gender": "m"}})),
    )
    .await;
    let booking = expect_ok(r).await;
    let id = booking["id"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        &t,
        Method::POST,
        &format!("{at}/bookings/{id}/move"),
        Some(json!({
        "address_service_id": address_service, "start": "2030-03-05T08:00:00+01:00", "duration": 30})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let moved: Value = r.json().await.unwrap();
    let moved_id = moved["id"].as_str().unwrap().to_owned();
    let second = expect_ok(
        call(
            &app,
            &t,
            Method::POST,
            &format!("{at}/slots/{}/book", enc("2030-03-05T09:00:00+01:00")),
            Some(json!({
            "address_service_id": address_service, "duration": 30,
            "patient": {"name": "Mary", "surname": "Todd", "phone": "+48 600 100 200"}})),
        )
        .await,
    )
    .await;
    let r = call(
        &app,
        &t,
        Method::DELETE,
        &format!("{at}/bookings/{}", second["id"].as_str().unwrap()),
        Some(json!({"reason": "Patient asked to cancel"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    let list = expect_ok(api(&app, &t, &format!("{at}/bookings?start={}&end={}", enc(from), enc(to))).await).await;
    let statuses: Vec<(&str, &str)> = list["_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["start_at"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        vec![
            ("2030-03-05T07:00:00+01:00", "canceled"),
            ("2030-03-05T08:00:00+01:00", "booked"),
            ("2030-03-05T09:00:00+01:00", "canceled")
        ]
    );
    // 9. Patient presence, once the visit has started.
    app.set_clock("2030-03-05T07:05:00Z").await;
    let t = token(&app).await;
    let r = call(&app, &t, Method::POST, &format!("{at}/bookings/{moved_id}/presence/patient"), None).await;
    assert_eq!(r.status(), 204);
    let r = call(&app, &t, Method::DELETE, &format!("{at}/bookings/{moved_id}/presence/patient"), None).await;
    assert_eq!(r.status(), 204);
    let one = expect_ok(
        api(&app, &t, &format!("{at}/bookings?start={}&end={}&with=booking.presence", enc(from), enc(to))).await,
    )
    .await;
    assert_eq!(one["_items"][1]["presence"], "absent");
    app.stop().await;
}

on_both_engines!(the_recommended_order_of_calls);
