//! Concurrent changes of one appointment over HTTP: every command that reads
//! an appointment and writes it holds the row (PostgreSQL `FOR UPDATE`; the
//! single SQLite writer), so of two moves of one booking exactly one wins,
//! and a cancel or reschedule racing another leaves one consistent state.
//! Each race runs several rounds; none may answer a 500. Also: readiness
//! once the store's writer has stopped.

use crate::dp::{Ctx, api, call, enc, expect_error, expect_ok, setup};
use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

const ROUNDS: usize = 10;

/// `HH:MM` of `minutes` after midnight.
fn hm(minutes: usize) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// One 20-minute service on Ann's address, open Tuesday 5 March 2030 from
/// 08:00 to 18:00 (+01:00); answers the address service id.
async fn open_tuesday(ctx: &Ctx) -> String {
    let r = call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at("/services"),
        Some(json!({"service_id": "1", "price": 100, "is_price_from": false})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let service = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let slots = json!({"slots": [{"start": "2030-03-05T08:00:00+01:00", "end": "2030-03-05T18:00:00+01:00",
        "address_services": [{"address_service_id": service, "duration": 20}]}]});
    let r = call(&ctx.app, &ctx.token, Method::PUT, &ctx.at("/slots"), Some(slots)).await;
    assert_eq!(r.status(), 201);
    service
}

/// The free Docplanner starts of that Tuesday.
async fn free_starts(ctx: &Ctx) -> Vec<String> {
    let (from, to) = ("2030-03-05T00:00:00+01:00", "2030-03-06T00:00:00+01:00");
    let body =
        expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/slots?start={}&end={}", enc(from), enc(to)))).await)
            .await;
    body["_items"].as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap().to_owned()).collect()
}

async fn two_concurrent_docplanner_moves_of_one_booking_exactly_one_wins(engine: Engine) {
    let ctx = setup(engine).await;
    let service = open_tuesday(&ctx).await;
    for round in 0..ROUNDS {
        let at = |offset: usize| format!("2030-03-05T{}:00+01:00", hm(8 * 60 + 60 * round + offset));
        let body = json!({"address_service_id": service, "duration": 20, "is_returning": false,
            "patient": {"name": "Abraham", "surname": "Lincoln", "email": "example@example.com",
                        "phone": 48123123123_i64, "birth_date": "1985-01-01", "nin": 894237492, "gender": "m"}});
        let path = ctx.at(&format!("/slots/{}/book", enc(&at(0))));
        let booked = expect_ok(call(&ctx.app, &ctx.token, Method::POST, &path, Some(body)).await).await;
        let id = booked["id"].as_str().unwrap().to_owned();
        let move_path = ctx.at(&format!("/bookings/{id}/move"));
        let move_to = |start: String| {
            let body = json!({"address_service_id": service, "start": start, "duration": 20});
            call(&ctx.app, &ctx.token, Method::POST, &move_path, Some(body))
        };
        let (first, second) = tokio::join!(move_to(at(20)), move_to(at(40)));
        let (first_status, second_status) = (first.status().as_u16(), second.status().as_u16());
        let ((winner, won_at), (loser, lost_at)) = match (first_status, second_status) {
            (201, _) => ((first, at(20)), (second, at(40))),
            (_, 201) => ((second, at(40)), (first, at(20))),
            other => panic!("round {round}: no move won: {other:?}"),
        };
        expect_error(loser, 409, "The visit has already been canceled or moved").await;
        let winner: Value = winner.json().await.unwrap();
        let new_id = winner["id"].as_str().unwrap().to_owned();
        assert_eq!(winner["start_at"].as_str(), Some(won_at.as_str()), "round {round}");
        let old =
            expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{id}?with=booking.moving"))).await).await;
        assert_eq!(old["status"], "canceled", "round {round}");
        assert_eq!(old["moving"], json!({"origin_booking_id": id, "newest_booking_id": new_id}), "round {round}");
        let new = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings/{new_id}"))).await).await;
        assert_eq!((new["status"].as_str(), new["start_at"].as_str()), (Some("booked"), Some(won_at.as_str())));
        // Only the winner's time is held: the old one and the loser's are free.
        let free = free_starts(&ctx).await;
        assert!(!free.contains(&won_at), "round {round}: {won_at} should be taken");
        assert!(free.contains(&at(0)) && free.contains(&lost_at), "round {round}: {free:?}");
    }
    ctx.app.stop().await;
}

/// The contract seed with the clock at Monday 4 March 2030 08:00Z and patient
/// Eva Holm (198001011231); answers the id of healthcare service `gp`.
async fn embassy_setup(engine: Engine) -> (TestApp, String) {
    let app = spawn_app(engine).await;
    let ids = app.seed(&acme_seed("acme")).await;
    let gp = ids["tenants"]["acme"]["healthcare_services"]["gp"].as_str().unwrap().to_owned();
    app.set_clock("2030-03-04T08:00:00Z").await;
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber",
                            "value": "198001011231"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (app, gp)
}

/// Books Eva with Ann for `gp` through Embassy; answers the response.
async fn embassy_book(app: &TestApp, gp: &str, start: &str, end: &str) -> reqwest::Response {
    crate::dp::embassy_appointment(app, gp, start, end).await
}

/// An Embassy `PATCH /Appointment/{id}` with replace operations.
async fn embassy_patch(app: &TestApp, id: &str, ops: &[(&str, Value)]) -> reqwest::Response {
    crate::emb::patch_appointment(app, id, ops).await
}

fn reschedule_ops(start: &str, end: &str) -> Vec<(&'static str, Value)> {
    vec![("/start", json!({"valueDateTime": start})), ("/end", json!({"valueDateTime": end}))]
}

/// Status and Embassy error code (if any) of a response; its body.
async fn outcome(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let code = body["issue"][0]["details"]["coding"][0]["code"].as_str().map(str::to_owned);
    (status, code, body)
}

async fn read_appointment(app: &TestApp, id: &str) -> Value {
    let r = app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A 15-minute interval on `day` (`2030-03-05`) starting `minutes` after midnight UTC.
fn quarter(day: &str, minutes: usize) -> (String, String) {
    (format!("{day}T{}:00Z", hm(minutes)), format!("{day}T{}:00Z", hm(minutes + 15)))
}

async fn an_embassy_cancel_racing_a_reschedule_ends_in_one_consistent_state(engine: Engine) {
    let (app, gp) = embassy_setup(engine).await;
    for round in 0..ROUNDS {
        let (a_start, a_end) = quarter("2030-03-05", 9 * 60 + 20 * round);
        let (b_start, b_end) = quarter("2030-03-06", 9 * 60 + 20 * round);
        let r = embassy_book(&app, &gp, &a_start, &a_end).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let (to_b, cancel) = (reschedule_ops(&b_start, &b_end), [("/status", json!({"valueCode": "cancelled"}))]);
        let (moved, cancelled) = tokio::join!(embassy_patch(&app, &id, &to_b), embassy_patch(&app, &id, &cancel));
        let (moved, cancelled) = (outcome(moved).await, outcome(cancelled).await);
        // A cancel is always allowed here; the reschedule either came first
        // or finds the appointment cancelled.
        assert_eq!(cancelled.0, 200, "round {round}: cancel answered {cancelled:?}");
        assert!(
            moved.0 == 200 || (moved.0, moved.1.as_deref()) == (422, Some("AppointmentCancelled")),
            "round {round}: reschedule answered {moved:?}"
        );
        let now = read_appointment(&app, &id).await;
        assert_eq!(now["status"], "cancelled", "round {round}");
        let expected = if moved.0 == 200 { (&b_start, &b_end) } else { (&a_start, &a_end) };
        assert_eq!(
            (now["start"].as_str().unwrap(), now["end"].as_str().unwrap()),
            (expected.0.as_str(), expected.1.as_str()),
            "round {round}: the time of the cancelled appointment is the last one it was given"
        );
        // A cancelled appointment holds no time: both can be booked again.
        for (s, e) in [(&a_start, &a_end), (&b_start, &b_end)] {
            let r = embassy_book(&app, &gp, s, e).await;
            assert_eq!(r.status(), 201, "round {round}: {s} is still held: {}", r.text().await.unwrap());
        }
    }
    app.stop().await;
}

async fn two_concurrent_embassy_reschedules_leave_exactly_one_time_held(engine: Engine) {
    let (app, gp) = embassy_setup(engine).await;
    for round in 0..ROUNDS {
        let (a_start, a_end) = quarter("2030-03-05", 9 * 60 + 20 * round);
        let (b_start, b_end) = quarter("2030-03-06", 9 * 60 + 20 * round);
        let (c_start, c_end) = quarter("2030-03-07", 9 * 60 + 20 * round);
        let r = embassy_book(&app, &gp, &a_start, &a_end).await;
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let (ops_b, ops_c) = (reschedule_ops(&b_start, &b_end), reschedule_ops(&c_start, &c_end));
        let (to_b, to_c) = tokio::join!(embassy_patch(&app, &id, &ops_b), embassy_patch(&app, &id, &ops_c));
        let (to_b, to_c) = (outcome(to_b).await, outcome(to_c).await);
        // Both moves are allowed, one after the other.
        assert_eq!((to_b.0, to_c.0), (200, 200), "round {round}: {to_b:?} {to_c:?}");
        let now = read_appointment(&app, &id).await;
        assert_eq!(now["status"], "booked", "round {round}");
        let start = now["start"].as_str().unwrap().to_owned();
        assert!(start == b_start || start == c_start, "round {round}: {start}");
        // Only the time it has now is held.
        for (s, e) in [(&a_start, &a_end), (&b_start, &b_end), (&c_start, &c_end)] {
            let (status, code, _) = outcome(embassy_book(&app, &gp, s, e).await).await;
            if *s == start {
                assert_eq!(
                    (status, code.as_deref()),
                    (422, Some("AllPractionersAreNotAvailable")),
                    "round {round}: {s}"
                );
            } else {
                assert_eq!(status, 201, "round {round}: {s} is still held ({code:?})");
            }
        }
    }
    app.stop().await;
}

async fn readiness_reports_a_stopped_writer(engine: Engine) {
    let app = spawn_app(engine).await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(app.store.writer_alive());
    app.store.close().await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    let (status, body) = (r.status().as_u16(), r.text().await.unwrap());
    match engine {
        // The SQLite writer has ended: no write can be taken.
        Engine::Sqlite => {
            assert!(!app.store.writer_alive());
            assert_eq!((status, body.as_str()), (503, "database writer not running"));
        }
        // No writer task; the closed pool does not answer.
        Engine::Postgres => assert_eq!((status, body.as_str()), (503, "database not reachable")),
    }
    app.stop().await;
}

on_both_engines!(
    two_concurrent_docplanner_moves_of_one_booking_exactly_one_wins,
    an_embassy_cancel_racing_a_reschedule_ends_in_one_consistent_state,
    two_concurrent_embassy_reschedules_leave_exactly_one_time_held,
    readiness_reports_a_stopped_writer,
);
