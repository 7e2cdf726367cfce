//! The time rules every dialect shares (`polyclinic_core::time_rules`):
//! booking notice, minimum and maximum duration, the booking horizon, the
//! supported range. Each is refused in each dialect's own shape, on create
//! and on every change of time, and availability offers only what a booking
//! made now may take.

use crate::dp::{Ctx, api, call, enc, expect_ok, setup_with};
use crate::emb::expect_error;
use crate::helpers::Engine;
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

/// The Docplanner seed with strict time rules for tenant `acme`: two hours'
/// notice, 10 to 90 minutes, at most 30 days ahead. The clock stands at
/// 2030-03-04T08:00:00Z (09:00 in Stockholm).
async fn strict(engine: Engine) -> Ctx {
    let mut doc = crate::dp::seed();
    doc["tenants"][0]["settings"] = json!({"min_booking_notice_minutes": 120, "min_duration_minutes": 10,
        "max_duration_minutes": 90, "booking_horizon_days": 30});
    setup_with(engine, &doc).await
}

/// One 20-minute service on Ann's address, with work periods today
/// (09:00-17:00 local) and on a day beyond the horizon; answers its id.
async fn calendar(ctx: &Ctx) -> String {
    let r =
        call(&ctx.app, &ctx.token, Method::POST, &ctx.at("/services"), Some(json!({"service_id": "1", "price": 100})))
            .await;
    assert_eq!(r.status(), 201);
    let service = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let periods = json!({"slots": [
        {"start": "2030-03-04T09:00:00+01:00", "end": "2030-03-04T17:00:00+01:00",
         "address_services": [{"address_service_id": service, "duration": 20}]},
        {"start": "2030-04-08T09:00:00+02:00", "end": "2030-04-08T11:00:00+02:00",
         "address_services": [{"address_service_id": service, "duration": 20}]}]});
    let r = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(periods)).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    service
}

async fn book(ctx: &Ctx, start: &str, service: &str, duration: i64) -> reqwest::Response {
    let body = json!({"address_service_id": service, "duration": duration,
        "patient": {"name": "Eva", "surname": "Holm", "phone": "+46701234567"}});
    call(&ctx.app, &ctx.token, Method::POST, &ctx.at(&format!("/slots/{}/book", enc(start))), Some(body)).await
}

async fn expect_slot_not_found(r: reqwest::Response) {
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.starts_with("Unable to perform booking. Requested target slot"), "{body}");
}

async fn expect_duration_error(r: reqwest::Response) {
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "Invalid arguments", "{body}");
    assert!(body["errors"]["duration"].to_string().contains("between 10 and 90"), "{body}");
}

async fn docplanner_time_rules_on_booking_moving_and_slots(engine: Engine) {
    let ctx = strict(engine).await;
    let service = calendar(&ctx).await;
    // Slots start no earlier than the notice, and none beyond the horizon.
    let today = expect_ok(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!(
                "/slots?start={}&end={}",
                enc("2030-03-04T00:00:00+01:00"),
                enc("2030-03-05T00:00:00+01:00")
            )),
        )
        .await,
    )
    .await;
    let first = today["_items"][0]["start"].as_str().unwrap();
    assert_eq!(first, "2030-03-04T11:00:00+01:00", "two hours' notice from 09:00 local");
    let beyond = expect_ok(
        api(
            &ctx.app,
            &ctx.token,
            &ctx.at(&format!(
                "/slots?start={}&end={}",
                enc("2030-04-08T00:00:00+02:00"),
                enc("2030-04-09T00:00:00+02:00")
            )),
        )
        .await,
    )
    .await;
    assert_eq!(beyond["_items"], json!([]), "nothing beyond the 30-day horizon");
    // Booking: inside the notice, beyond the horizon, too short, too long.
    expect_slot_not_found(book(&ctx, "2030-03-04T10:20:00+01:00", &service, 20).await).await;
    expect_slot_not_found(book(&ctx, "2030-04-08T09:00:00+02:00", &service, 20).await).await;
    expect_duration_error(book(&ctx, "2030-03-04T13:00:00+01:00", &service, 5).await).await;
    expect_duration_error(book(&ctx, "2030-03-04T13:00:00+01:00", &service, 120).await).await;
    // A booking that keeps the rules, then moves that break them.
    let booked = expect_ok(book(&ctx, "2030-03-04T13:00:00+01:00", &service, 20).await).await;
    let id = booked["id"].as_str().unwrap().to_owned();
    let move_to = |start: &str, duration: i64| {
        let body = json!({"start": start, "address_service_id": service, "duration": duration});
        let path = ctx.at(&format!("/bookings/{id}/move"));
        let (app, token) = (&ctx.app, ctx.token.clone());
        async move { call(app, &token, Method::POST, &path, Some(body)).await }
    };
    expect_slot_not_found(move_to("2030-03-04T10:40:00+01:00", 20).await).await;
    expect_slot_not_found(move_to("2030-04-08T09:20:00+02:00", 20).await).await;
    expect_duration_error(move_to("2030-03-04T14:00:00+01:00", 100).await).await;
    // The booking is where it was.
    let still = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{id}"))).await).await;
    assert_eq!(still["start_at"], "2030-03-04T13:00:00+01:00");
}

/// An Embassy appointment of Ann for the seed's `gp` service.
fn embassy_body(ctx: &Ctx, start: &str, end: &str) -> Value {
    json!({"resourceType": "Appointment", "status": "booked", "start": start, "end": end,
    "participant": [
        {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
         "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/hsaid", "value": "SE2321000016-0001"}}},
        {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/nationalidentificationnumber/se", "value": "198001011231"}}},
        {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": ctx.id("healthcare_services", "gp")}}}
    ]})
}

async fn embassy_time_rules_on_create_and_reschedule(engine: Engine) {
    let ctx = strict(engine).await;
    let app = &ctx.app;
    let patient = json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
        "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]});
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&patient)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let create = |start: &str, end: &str| {
        let body = embassy_body(&ctx, start, end);
        async move {
            app.embassy(Method::POST, "/Appointment")
                .header("content-type", "application/fhir+json")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_error(create("2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z").await, 422, "TooCloseToAppointmentStart").await;
    expect_error(create("2030-03-03T09:00:00Z", "2030-03-03T09:15:00Z").await, 422, "TooCloseToAppointmentStart").await;
    expect_error(create("2030-03-06T09:00:00Z", "2030-03-06T09:05:00Z").await, 422, "InvalidDuration").await;
    expect_error(create("2030-03-06T09:00:00Z", "2030-03-06T10:31:00Z").await, 422, "InvalidDuration").await;
    expect_error(create("2030-04-04T08:01:00Z", "2030-04-04T08:16:00Z").await, 422, "StartTimeTooFarInTheFuture").await;
    let r = create("2030-03-06T09:00:00Z", "2030-03-06T09:30:00Z").await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let reschedule = |start: &str, end: &str| {
        let op = |path: &str, v: &str| {
            json!({"name": "operation", "part": [{"name": "type", "valueCode": "replace"},
            {"name": "path", "valueString": path}, {"name": "value", "valueDateTime": v}]})
        };
        let body = json!({"resourceType": "Parameters", "parameter": [op("/start", start), op("/end", end)]});
        let path = format!("/Appointment/{id}");
        async move {
            app.embassy(Method::PATCH, &path)
                .header("content-type", "application/fhir+json")
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_error(reschedule("2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z").await, 422, "TooCloseToAppointmentStart")
        .await;
    expect_error(reschedule("2030-03-03T09:00:00Z", "2030-03-03T09:15:00Z").await, 422, "StartMustBeInTheFuture").await;
    expect_error(reschedule("2030-03-07T09:00:00Z", "2030-03-07T09:05:00Z").await, 422, "InvalidDuration").await;
    expect_error(reschedule("2030-03-07T09:00:00Z", "2030-03-07T11:00:00Z").await, 422, "InvalidDuration").await;
    expect_error(reschedule("2030-04-04T08:01:00Z", "2030-04-04T08:16:00Z").await, 422, "StartTimeTooFarInTheFuture")
        .await;
    expect_error(reschedule("8999-01-01T08:00:00Z", "8999-01-01T08:15:00Z").await, 422, "StartTimeTooFarInTheFuture")
        .await;
    // Far past the supported range: refused too, never held.
    let r = reschedule("9999-12-30T23:00:00Z", "9999-12-30T23:15:00Z").await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let a: Value = app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(a["start"], "2030-03-06T09:00:00Z", "every refused change left the time alone: {a}");
    let r = reschedule("2030-03-07T09:00:00Z", "2030-03-07T09:30:00Z").await;
    assert_eq!(r.status(), 200, "a change that keeps the rules");
}

on_both_engines!(docplanner_time_rules_on_booking_moving_and_slots, embassy_time_rules_on_create_and_reschedule);
