//! Patient messages, the shared service every dialect's appointments use:
//! each kind at its instant and none before it, once however often the
//! engine looks (restarts, two nodes), re-armed by a move and disarmed by a
//! cancellation, by e-mail or SMS as the patient and the tenant have it.

use crate::helpers::{Engine, Spawn, TestApp, acme_seed, fresh_database, postgres_url, spawn_app_with};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

/// The seed with patient messages on (and `settings` merged in).
fn seed(settings: Value) -> Value {
    let mut doc = acme_seed("acme");
    let s = &mut doc["tenants"][0]["settings"];
    s["patient_messages"] = json!(true);
    for (k, v) in settings.as_object().unwrap() {
        s[k] = v.clone();
    }
    doc
}

/// A server on `database` with `doc` loaded and the clock at 2030-03-04T08:00Z.
async fn start(engine: Engine, database: Option<String>, doc: &Value) -> (TestApp, String) {
    let database = match database {
        Some(d) => d,
        None => fresh_database(engine).await,
    };
    let app =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database.clone()), ..Default::default() })
            .await;
    app.seed(doc).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    (app, database)
}

/// Creates Eva (national id 198001011231) with `telecom` through Embassy.
async fn patient(app: &TestApp, telecom: Value) {
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}],
            "telecom": telecom}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Books Eva with Ann through Embassy; answers the appointment id.
async fn book(app: &TestApp, start: &str, end: &str) -> String {
    let gp = gp(app).await;
    let r = crate::dp::embassy_appointment(app, &gp, start, end).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

async fn gp(app: &TestApp) -> String {
    let list: Value = app.embassy(Method::GET, "/HealthcareService").send().await.unwrap().json().await.unwrap();
    list["entry"][0]["resource"]["id"].as_str().unwrap().to_owned()
}

/// An Embassy PATCH of `id` that must succeed.
async fn patch(app: &TestApp, id: &str, ops: &[(&str, Value)]) {
    let r = crate::emb::patch_appointment(app, id, ops).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// `GET /admin/messages?tenant=acme`.
async fn messages(app: &TestApp) -> Vec<Value> {
    let r = app.admin(Method::GET, "/admin/messages?tenant=acme").send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// The kinds of the messages so far, in order.
async fn kinds(app: &TestApp) -> Vec<String> {
    messages(app).await.iter().map(|m| m["kind"].as_str().unwrap().to_owned()).collect()
}

/// Runs due work at `now`.
async fn at(app: &TestApp, now: &str) {
    app.set_clock(now).await;
    app.run_due().await;
}

async fn every_message_at_its_instant_re_armed_by_a_move_and_disarmed_by_a_cancel(engine: Engine) {
    let (app, _) = start(engine, None, &seed(json!({}))).await;
    patient(&app, json!([{"system": "email", "value": "eva@holm.test"}, {"system": "phone", "value": "+46701234567", "use": "mobile"}])).await;
    let id = book(&app, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    app.run_due().await;
    let all = messages(&app).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let m = &all[0];
    assert_eq!(
        (m["kind"].as_str(), m["channel"].as_str(), m["to"].as_str()),
        (Some("appointment-confirmed"), Some("email"), Some("eva@holm.test"))
    );
    assert_eq!(m["appointment_id"], id.as_str());
    assert_eq!(m["status"], "sent", "the local mailer took it");
    // Swedish (the tenant's language), in Stockholm time, with the join link of a video visit.
    let body = m["body"].as_str().unwrap();
    assert!(body.contains("Hej Eva Holm") && body.contains("2030-03-05 kl. 10:00"), "{body}");
    assert!(body.contains("/video/"), "a digital visit carries its join link: {body}");
    // The reminder 24 hours before, not a second earlier, and once.
    at(&app, "2030-03-04T08:59:59Z").await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed"]);
    at(&app, "2030-03-04T09:00:00Z").await;
    app.run_due().await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed", "appointment-reminder"]);
    // A move: told at once, and the check-in follows the new start.
    patch(
        &app,
        &id,
        &[
            ("/start", json!({"valueDateTime": "2030-03-06T09:00:00Z"})),
            ("/end", json!({"valueDateTime": "2030-03-06T09:15:00Z"})),
        ],
    )
    .await;
    app.run_due().await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed", "appointment-reminder", "appointment-postponed"]);
    at(&app, "2030-03-05T08:45:00Z").await;
    assert_eq!(kinds(&app).await.len(), 3, "no check-in for the old start");
    at(&app, "2030-03-05T09:00:00Z").await;
    assert_eq!(
        kinds(&app).await.last().map(String::as_str),
        Some("appointment-reminder"),
        "re-armed for the new start"
    );
    // A cancellation: told, and the check-in is gone.
    patch(&app, &id, &[("/status", json!({"valueCode": "cancelled"}))]).await;
    app.run_due().await;
    at(&app, "2030-03-06T08:45:00Z").await;
    at(&app, "2030-03-06T09:30:00Z").await;
    assert_eq!(
        kinds(&app).await,
        [
            "appointment-confirmed",
            "appointment-reminder",
            "appointment-postponed",
            "appointment-reminder",
            "appointment-cancelled"
        ]
    );
    // Patient data is sealed in the database.
    let sealed: Vec<String> = app
        .store
        .read(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar::<_, String>("SELECT to_addr FROM patient_messages").fetch_all(&mut *c).await?)
            })
        })
        .await
        .unwrap();
    assert!(sealed.iter().all(|v| !v.contains("eva@holm.test")), "{sealed:?}");
}

async fn a_check_in_invitation_fifteen_minutes_before_and_sms_when_there_is_only_a_mobile(engine: Engine) {
    let (app, _) = start(engine, None, &seed(json!({}))).await;
    patient(&app, json!([{"system": "phone", "value": "+46701234567", "use": "mobile"}])).await;
    book(&app, "2030-03-04T10:00:00Z", "2030-03-04T10:15:00Z").await;
    at(&app, "2030-03-04T09:44:59Z").await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed"], "booked less than 24 hours ahead: no reminder");
    at(&app, "2030-03-04T09:45:00Z").await;
    let all = messages(&app).await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed", "check-in-invitation"]);
    for m in &all {
        assert_eq!((m["channel"].as_str(), m["to"].as_str()), (Some("sms"), Some("+46701234567")));
    }
}

async fn the_tenant_chooses_sms_when_the_patient_has_both(engine: Engine) {
    let (app, _) = start(engine, None, &seed(json!({"message_channel": "sms"}))).await;
    patient(&app, json!([{"system": "email", "value": "eva@holm.test"}, {"system": "phone", "value": "+46701234567", "use": "mobile"}]))
        .await;
    book(&app, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    app.run_due().await;
    let all = messages(&app).await;
    assert_eq!((all[0]["channel"].as_str(), all[0]["to"].as_str()), (Some("sms"), Some("+46701234567")));
}

async fn other_dialects_appointments_get_no_messages_unless_the_tenant_turns_them_on(engine: Engine) {
    let (app, _) = start(engine, None, &acme_seed("acme")).await;
    patient(&app, json!([{"system": "email", "value": "eva@holm.test"}])).await;
    book(&app, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    at(&app, "2030-03-05T08:50:00Z").await;
    assert!(messages(&app).await.is_empty());
}

async fn a_restart_sends_nothing_twice(engine: Engine) {
    let (app, database) = start(engine, None, &seed(json!({}))).await;
    patient(&app, json!([{"system": "email", "value": "eva@holm.test"}])).await;
    book(&app, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    at(&app, "2030-03-04T09:00:00Z").await;
    app.stop().await;
    let app = spawn_app_with(engine, Spawn { test_clock: true, database: Some(database), ..Default::default() }).await;
    at(&app, "2030-03-04T09:00:00Z").await;
    at(&app, "2030-03-05T08:45:00Z").await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed", "appointment-reminder", "check-in-invitation"]);
}

/// Naboto's appointments always get messages, without the tenant setting,
/// and a Naboto change of time is told as one.
async fn naboto_appointments_always_get_messages(engine: Engine) {
    let app = crate::nb::setup(engine).await;
    let (patient, ann) = (crate::nb::create_patient(&app).await, crate::nb::ann(&app).await);
    let created = crate::nb::expect(
        crate::nb::send(&app, Method::POST, "/appointment", &crate::nb::new_appointment(&patient, &ann)).await,
        201,
    )
    .await;
    app.run_due().await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed"], "the seed leaves patient_messages off");
    let mut moved = created.clone();
    moved["start"] = json!("2022-02-02T13:00:00Z");
    moved["end"] = json!("2022-02-02T14:00:00Z");
    crate::nb::expect(crate::nb::send(&app, Method::PUT, "/appointment", &moved).await, 200).await;
    app.run_due().await;
    assert_eq!(kinds(&app).await, ["appointment-confirmed", "appointment-postponed"]);
    let m = &messages(&app).await[1];
    assert!(m["body"].as_str().unwrap().contains("/video/"), "the video call's join link: {m}");
}

/// A video visit running over pushes the next one back: its patient gets a
/// delay notice with the expected time, once, and its check-in invitation
/// follows the expected start.
async fn a_visit_running_over_sends_the_next_patient_a_delay_notice(engine: Engine) {
    let app = crate::nb::setup(engine).await;
    let (patient, ann) = (crate::nb::create_patient(&app).await, crate::nb::ann(&app).await);
    let book = |start: &'static str, end: &'static str, identifier: &'static str| {
        let mut a = crate::nb::new_appointment(&patient, &ann);
        a["start"] = json!(start);
        a["end"] = json!(end);
        a["identifier"][0]["value"] = json!(identifier);
        a
    };
    let first = crate::nb::expect(
        crate::nb::send(
            &app,
            Method::POST,
            "/appointment",
            &book("2022-01-01T13:00:00Z", "2022-01-01T13:30:00Z", "first"),
        )
        .await,
        201,
    )
    .await;
    let second = crate::nb::expect(
        crate::nb::send(
            &app,
            Method::POST,
            "/appointment",
            &book("2022-01-01T13:40:00Z", "2022-01-01T14:10:00Z", "second"),
        )
        .await,
        201,
    )
    .await;
    app.run_due().await;
    // The first visit begins, and runs over its end.
    at(&app, "2022-01-01T13:05:00Z").await;
    let mut arrived = first.clone();
    arrived["status"] = json!("arrived");
    crate::nb::expect(crate::nb::send(&app, Method::PUT, "/appointment", &arrived).await, 200).await;
    at(&app, "2022-01-01T13:20:00Z").await;
    assert!(!kinds(&app).await.contains(&"delay-notice".to_owned()), "on time so far");
    at(&app, "2022-01-01T13:52:00Z").await;
    at(&app, "2022-01-01T13:53:00Z").await;
    let all = messages(&app).await;
    let second_id = second["id"].as_str().unwrap();
    let notices: Vec<&Value> = all.iter().filter(|m| m["kind"] == "delay-notice").collect();
    assert_eq!(notices.len(), 1, "once: {all:?}");
    assert_eq!(notices[0]["appointment_id"], second_id);
    assert!(notices[0]["body"].as_str().unwrap().contains("14:52"), "the expected time, in Stockholm: {}", notices[0]);
    let check_in: Vec<&Value> =
        all.iter().filter(|m| m["kind"] == "check-in-invitation" && m["appointment_id"] == second_id).collect();
    assert_eq!(check_in.len(), 1, "{all:?}");
    assert_eq!(
        check_in[0]["created_at"], "2022-01-01T13:52:00Z",
        "not at the planned 13:25, before the delay was known"
    );
    // The expected start shows on the appointment (as of the last estimate, at
    // 13:52; the next is due five minutes later).
    let read = crate::nb::expect(crate::nb::get(&app, &format!("/appointment/{second_id}")).await, 200).await;
    let expected = read["extension"]
        .as_array()
        .and_then(|list| list.iter().find(|e| e["url"] == polyclinic_naboto::appointments::EXPECTED_START))
        .map(|e| e["valueDateTime"].clone());
    assert_eq!(expected, Some(json!("2022-01-01T13:52:00Z")), "{read}");
}

/// A practitioner who asked for them gets the messages of its appointments
/// too, by e-mail, with a join link of its own.
async fn a_practitioner_who_asked_gets_the_messages_too(engine: Engine) {
    let mut doc = seed(json!({}));
    doc["tenants"][0]["practitioners"][0]["appointment_messages"] = json!(true);
    let (app, _) = start(engine, None, &doc).await;
    patient(&app, json!([{"system": "email", "value": "eva@holm.test"}])).await;
    book(&app, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    app.run_due().await;
    let all = messages(&app).await;
    let to: Vec<&str> = all.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["eva@holm.test", "ann@acme.test"], "{all:?}");
    let link = |m: &Value| m["body"].as_str().unwrap().lines().find(|l| l.contains("/video/")).map(str::to_owned);
    assert!(link(&all[0]).is_some() && link(&all[1]).is_some());
    assert_ne!(link(&all[0]), link(&all[1]), "each their own key");
}

on_both_engines!(
    every_message_at_its_instant_re_armed_by_a_move_and_disarmed_by_a_cancel,
    a_check_in_invitation_fifteen_minutes_before_and_sms_when_there_is_only_a_mobile,
    the_tenant_chooses_sms_when_the_patient_has_both,
    other_dialects_appointments_get_no_messages_unless_the_tenant_turns_them_on,
    a_restart_sends_nothing_twice,
    naboto_appointments_always_get_messages,
    a_visit_running_over_sends_the_next_patient_a_delay_notice,
    a_practitioner_who_asked_gets_the_messages_too,
);

/// Two nodes on one PostgreSQL database, running due work at the same time,
/// send each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_send_each_message_once() {
    if postgres_url().is_none() {
        return;
    }
    let (one, database) = start(Engine::Postgres, None, &seed(json!({}))).await;
    let two =
        spawn_app_with(Engine::Postgres, Spawn { test_clock: true, database: Some(database), ..Default::default() })
            .await;
    patient(&one, json!([{"system": "email", "value": "eva@holm.test"}])).await;
    for i in 0..5 {
        book(&one, &format!("2030-03-06T1{i}:00:00Z"), &format!("2030-03-06T1{i}:15:00Z")).await;
    }
    // The reminders (due 2030-03-05T10:00 to 14:00), then the first
    // check-in (due 2030-03-06T09:45), each run by both nodes at once.
    for now in ["2030-03-05T15:00:00Z", "2030-03-06T09:50:00Z"] {
        for app in [&one, &two] {
            app.set_clock(now).await;
        }
        let (a, b) = tokio::join!(one.run_due(), two.run_due());
        assert!(a.is_object() && b.is_object());
    }
    let all = messages(&one).await;
    let mut seen = std::collections::BTreeSet::new();
    for m in &all {
        assert!(seen.insert((m["appointment_id"].to_string(), m["kind"].to_string())), "sent twice: {m}");
    }
    // Five confirmations, five reminders and one check-in.
    assert_eq!(all.len(), 11, "{all:?}");
}
