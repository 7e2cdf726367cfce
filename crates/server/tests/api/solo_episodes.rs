//! Solo episodes of care: made, listed, read and replaced for a patient
//! named by its external id; every refusal of the body; appointments that
//! join an episode when booked or through the assign endpoint (`PUT` and
//! `POST`), and only an episode of their own patient; the episode's
//! appointments with `hasNotes`; the `episode:created` / `episode:updated`
//! webhooks, decrypted with the document's recipe; another tenant's key
//! and unknown ids answer 404; the episode is sealed at rest.

use crate::helpers::{Engine, TestApp};
use crate::on_both_engines;
use crate::receiver::Receiver;
use crate::sl::{self, GP, KEY, OTHER_KEY, T0, call, expect, expect_error, get, send};
use crate::solo_webhooks::decrypt_as_documented;
use reqwest::Method;
use serde_json::{Value, json};

/// The document's example body, with `status` in its upper-case words.
fn covid() -> Value {
    json!({"name": "covid care", "type": "covid", "from": "2023-03-29", "to": "2023-04-12",
           "status": "PLANNING", "objective": "care covid patient", "reasonIncomplete": "unknown"})
}

/// Creates an episode of patient `patient` (external id) through `key`;
/// answers its id.
async fn create_as(app: &TestApp, key: &str, patient: &str, body: &Value) -> String {
    let r = call(app, key, Method::POST, &format!("/patients/{patient}/episodes"), Some(body)).await;
    let created = expect(r, 201).await;
    assert_eq!(created.as_object().map(|o| o.len()), Some(1), "{created}");
    let id = created["episodeId"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID: {id}");
    id
}

async fn create(app: &TestApp, patient: &str, body: &Value) -> String {
    create_as(app, KEY, patient, body).await
}

/// Books patient `patient` into GP at `date` with `extra` fields merged in.
async fn book_with(app: &TestApp, patient: &str, date: i64, extra: Value) -> reqwest::Response {
    let mut body = json!({"date": date, "waitingRoom": GP, "reasons": ["headache"]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    send(app, Method::POST, &format!("/patients/{patient}/appointments"), &body).await
}

/// `PUT` or `POST /appointments/{id}/episode/assign` with `body`.
async fn assign(app: &TestApp, method: Method, appointment: i64, body: &Value) -> reqwest::Response {
    send(app, method, &format!("/appointments/{appointment}/episode/assign"), body).await
}

async fn episodes_are_created_listed_read_and_replaced(engine: Engine) {
    let app = sl::setup(engine).await;
    let spid = sl::create_patient(&app, "ext-1").await;
    sl::create_patient(&app, "ext-2").await;
    let first = create(&app, "ext-1", &covid()).await;
    // Any case of the status; `to`, `objective`, `reasonIncomplete` optional.
    let second =
        create(&app, "ext-1", &json!({"name": "rehab", "type": "neddie", "from": "2023-05-01", "status": "onHold"}))
            .await;
    assert_ne!(first, second);

    let listed = expect(get(&app, "/patients/ext-1/episodes").await, 200).await;
    assert_eq!(
        listed,
        json!({"episodes": [
            {"id": first, "patientId": "ext-1", "name": "covid care", "from": "2023-03-29", "to": "2023-04-12",
             "type": "covid", "status": "planning", "objective": "care covid patient", "reasonIncomplete": "unknown"},
            {"id": second, "patientId": "ext-1", "name": "rehab", "from": "2023-05-01", "to": null,
             "type": "neddie", "status": "onhold", "objective": null, "reasonIncomplete": null}
        ]})
    );
    // Another patient has none.
    assert_eq!(expect(get(&app, "/patients/ext-2/episodes").await, 200).await, json!({"episodes": []}));

    let one = expect(get(&app, &format!("/episodes/{first}")).await, 200).await;
    let expected = json!({"id": first, "name": "covid care", "from": "2023-03-29", "to": "2023-04-12",
        "type": "covid", "status": "planning", "objective": "care covid patient", "reasonIncomplete": "unknown",
        "soloPatientId": spid, "externalPatientId": "ext-1"});
    assert_eq!(one, expected);
    // The id is read in any case.
    assert_eq!(expect(get(&app, &format!("/episodes/{}", first.to_uppercase())).await, 200).await, expected);

    // PUT replaces the episode: the optional fields left out are cleared.
    let body = json!({"name": "covid care 2", "type": "covid", "from": "2023-03-30", "status": "FINISHED",
                      "objective": "recovered"});
    let put = expect(send(&app, Method::PUT, &format!("/episodes/{first}"), &body).await, 200).await;
    let replaced = json!({"id": first, "name": "covid care 2", "from": "2023-03-30", "to": null, "type": "covid",
        "status": "finished", "objective": "recovered", "reasonIncomplete": null,
        "soloPatientId": spid, "externalPatientId": "ext-1"});
    assert_eq!(put, replaced);
    assert_eq!(expect(get(&app, &format!("/episodes/{first}")).await, 200).await, replaced);
    let listed = expect(get(&app, "/patients/ext-1/episodes").await, 200).await;
    assert_eq!(listed["episodes"].as_array().unwrap().len(), 2);
    assert_eq!(listed["episodes"][0]["name"], "covid care 2", "the order of creation is kept");
    // Every status of the document, in any case.
    for status in ["planning", "WAITLIST", "Active", "ONHOLD", "finished", "CANCELED"] {
        let body = json!({"name": "n", "type": "t", "from": "2023-03-29", "status": status});
        let put = expect(send(&app, Method::PUT, &format!("/episodes/{second}"), &body).await, 200).await;
        assert_eq!(put["status"], status.to_lowercase());
    }

    // The episode is sealed at rest: none of its words in the row.
    let docs: Vec<String> = app
        .store
        .read(|c| Box::pin(async move { Ok(sqlx::query_scalar("SELECT doc FROM episodes").fetch_all(&mut *c).await?) }))
        .await
        .unwrap();
    assert_eq!(docs.len(), 2);
    for d in &docs {
        assert!(d.starts_with("v1:"), "sealed: {d}");
        assert!(!d.contains("covid") && !d.contains("recovered"), "{d}");
    }
}

async fn bad_episodes_are_refused(engine: Engine) {
    let app = sl::setup(engine).await;
    sl::create_patient(&app, "ext-1").await;
    let path = "/patients/ext-1/episodes";
    let post = |body: Value| {
        let app = &app;
        async move { send(app, Method::POST, path, &body).await }
    };
    // Each required field missing, null or blank.
    for field in ["name", "type", "from", "status"] {
        for value in [None, Some(Value::Null), Some(json!("")), Some(json!("  "))] {
            let mut body = covid();
            match &value {
                None => {
                    body.as_object_mut().unwrap().remove(field);
                }
                Some(v) => body[field] = v.clone(),
            }
            expect_error(post(body).await, 400, &format!("Bad parameters [{field}: This value should not be blank.]"))
                .await;
        }
    }
    // A status outside the six.
    let mut body = covid();
    body["status"] = json!("DONE");
    let m = expect_error(post(body).await, 400, "[status:").await;
    assert!(m.contains("PLANNING, WAITLIST, ACTIVE, ONHOLD, FINISHED, CANCELED"), "{m}");
    // Dates that are not YYYY-MM-DD, or no real day.
    for field in ["from", "to"] {
        for date in ["2023-3-29", "29/03/2023", "2023-02-30", "2023-03-29T10:00:00", "20230329", "tomorrow"] {
            let mut body = covid();
            body[field] = json!(date);
            body["to"] = if field == "to" { json!(date) } else { Value::Null };
            expect_error(post(body).await, 400, &format!("[{field}: \"{date}\" is not a date")).await;
        }
    }
    // `to` before `from`; the same day is fine.
    let mut body = covid();
    body["to"] = json!("2023-03-28");
    expect_error(post(body).await, 400, "Bad parameters [to:").await;
    // Texts too long; a field of the wrong type; no body.
    let mut body = covid();
    body["name"] = json!("x".repeat(257));
    expect_error(post(body).await, 400, "Bad parameters [name:").await;
    let mut body = covid();
    body["objective"] = json!("x".repeat(4097));
    expect_error(post(body).await, 400, "Bad parameters [objective:").await;
    let mut body = covid();
    body["name"] = json!(12);
    expect_error(post(body).await, 400, "Bad parameters [name:").await;
    expect_error(post(json!([])).await, 400, "Bad parameters").await;
    // Nothing was made.
    assert_eq!(expect(get(&app, path).await, 200).await, json!({"episodes": []}));

    // The same refusals on PUT, which leave the episode as it was.
    let mut same_day = covid();
    same_day["to"] = json!("2023-03-29");
    let id = create(&app, "ext-1", &same_day).await;
    let before = expect(get(&app, &format!("/episodes/{id}")).await, 200).await;
    let mut body = covid();
    body.as_object_mut().unwrap().remove("status");
    expect_error(send(&app, Method::PUT, &format!("/episodes/{id}"), &body).await, 400, "[status:").await;
    let mut body = covid();
    body["to"] = json!("2023-01-01");
    expect_error(send(&app, Method::PUT, &format!("/episodes/{id}"), &body).await, 400, "[to:").await;
    assert_eq!(expect(get(&app, &format!("/episodes/{id}")).await, 200).await, before);
}

async fn appointments_join_episodes_of_their_own_patient(engine: Engine) {
    let app = sl::setup(engine).await;
    sl::create_patient(&app, "ext-1").await;
    sl::create_patient(&app, "ext-2").await;
    let mine = create(&app, "ext-1", &covid()).await;
    let theirs = create(&app, "ext-2", &covid()).await;

    // Booked into an episode of the patient.
    let r = book_with(&app, "ext-1", T0 + 3600, json!({"episodeOfCareId": mine.to_uppercase()})).await;
    let a1 = expect(r, 201).await["id"].as_i64().unwrap();
    // An unknown episode, another patient's, or no UUID: 400, nothing booked.
    let unknown = "4e96ed0e-0f80-4dc3-b2c1-42e65b789e56";
    let r = book_with(&app, "ext-1", T0 + 5400, json!({"episodeOfCareId": unknown})).await;
    expect_error(r, 400, &format!("Bad parameters [episodeOfCareId: episode of care {unknown} not found]")).await;
    let r = book_with(&app, "ext-1", T0 + 5400, json!({"episodeOfCareId": theirs})).await;
    expect_error(r, 400, "[episodeOfCareId: episode of care").await;
    let r = book_with(&app, "ext-1", T0 + 5400, json!({"episodeOfCareId": "nope"})).await;
    expect_error(r, 400, "[episodeOfCareId: This is not a valid UUID.]").await;
    // The refused bookings took no time: the slot is still free.
    assert!(sl::slot_starts(&app, GP, T0 + 5400, T0 + 6300).await.contains(&(T0 + 5400)));
    let a2 = sl::booked(&app, "ext-1", GP, T0 + 1800).await;

    let listed = expect(get(&app, &format!("/episodes/{mine}/appointments")).await, 200).await;
    let episode = expect(get(&app, &format!("/episodes/{mine}")).await, 200).await;
    assert_eq!(
        listed,
        json!({"episode": episode, "appointments": [
            {"appointmentId": a1, "date": T0 + 3600, "reasons": ["headache"], "hasNotes": false, "episodeOfCareId": mine}
        ]})
    );

    // Assigned through PUT (the document's method): listed by date.
    let r = assign(&app, Method::PUT, a2, &json!({"episodeId": mine})).await;
    assert_eq!(expect(r, 200).await, json!({"appointmentId": a2, "episodeOfCareId": mine}));
    let listed = expect(get(&app, &format!("/episodes/{mine}/appointments")).await, 200).await;
    let ids: Vec<i64> =
        listed["appointments"].as_array().unwrap().iter().map(|a| a["appointmentId"].as_i64().unwrap()).collect();
    assert_eq!(ids, [a2, a1]);
    // The same again changes nothing.
    let r = assign(&app, Method::POST, a2, &json!({"episodeId": mine})).await;
    assert_eq!(expect(r, 200).await, json!({"appointmentId": a2, "episodeOfCareId": mine}));
    // Another patient's episode, an unknown one, no UUID: 400; nothing changed.
    let r = assign(&app, Method::PUT, a2, &json!({"episodeId": theirs})).await;
    expect_error(r, 400, &format!("Bad parameters [episodeId: episode of care {theirs} belongs to another patient]"))
        .await;
    let r = assign(&app, Method::POST, a2, &json!({"episodeId": unknown})).await;
    expect_error(r, 400, "[episodeId: episode of care").await;
    let r = assign(&app, Method::PUT, a2, &json!({"episodeId": "12"})).await;
    expect_error(r, 400, "[episodeId: This is not a valid UUID.]").await;
    let r = assign(&app, Method::PUT, a2, &json!({"episodeId": 12})).await;
    expect_error(r, 400, "[episodeId:").await;
    let listed = expect(get(&app, &format!("/episodes/{theirs}/appointments")).await, 200).await;
    assert_eq!(listed["appointments"], json!([]));

    // Taken out through POST with `null`, and with `{}` (episodeId optional).
    let r = assign(&app, Method::POST, a1, &json!({"episodeId": null})).await;
    assert_eq!(expect(r, 200).await, json!({"appointmentId": a1, "episodeOfCareId": null}));
    let r = assign(&app, Method::PUT, a2, &json!({})).await;
    assert_eq!(expect(r, 200).await, json!({"appointmentId": a2, "episodeOfCareId": null}));
    let listed = expect(get(&app, &format!("/episodes/{mine}/appointments")).await, 200).await;
    assert_eq!(listed["appointments"], json!([]));
    // And back in: an appointment with a visit note shows `hasNotes`.
    let r = assign(&app, Method::PUT, a1, &json!({"episodeId": mine})).await;
    assert_eq!(r.status(), 200);
    app.store
        .write(move |c| {
            Box::pin(async move {
                let t = polyclinic_store::tenants::by_key(c, "acme").await?.unwrap();
                sqlx::query(
                    "INSERT INTO visit_note_versions (tenant_id, appointment_id, version, credential_id, created_at, doc) \
                     VALUES ($1, $2, 1, NULL, 0, 'v1:00')",
                )
                .bind(t.id.get())
                .bind(a1)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
        .unwrap();
    let listed = expect(get(&app, &format!("/episodes/{mine}/appointments")).await, 200).await;
    assert_eq!(listed["appointments"][0]["hasNotes"], true);

    // Unknown appointments: 404.
    for id in ["999999", "0", "abc"] {
        let r =
            send(&app, Method::PUT, &format!("/appointments/{id}/episode/assign"), &json!({"episodeId": mine})).await;
        expect_error(r, 404, "Appointment not found").await;
    }
}

async fn episode_webhooks_are_sent_encrypted(engine: Engine) {
    let app = sl::setup(engine).await;
    let receiver = Receiver::start().await;
    let r = send(
        &app,
        Method::POST,
        "/webhooks",
        &json!({"endpoint": receiver.url,
        "events": ["episode:created", "episode:updated"]}),
    )
    .await;
    let key = expect(r, 201).await["encryptionKey"].as_str().unwrap().to_owned();
    sl::create_patient(&app, "ext-1").await;
    let id = create(&app, "ext-1", &covid()).await;
    let mut body = covid();
    body["status"] = json!("ACTIVE");
    assert_eq!(send(&app, Method::PUT, &format!("/episodes/{id}"), &body).await.status(), 200);
    // The same content again is no change: no event.
    assert_eq!(send(&app, Method::PUT, &format!("/episodes/{id}"), &body).await.status(), 200);
    // An appointment joining the episode is no change of the episode.
    let a = sl::booked(&app, "ext-1", GP, T0 + 3600).await;
    assert_eq!(assign(&app, Method::PUT, a, &json!({"episodeId": id})).await.status(), 200);
    app.run_due().await;
    let got = receiver.wait_for(2).await;
    let calls: Vec<Value> = got
        .iter()
        .map(|r| {
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            serde_json::from_slice(&decrypt_as_documented(&key, &r.body)).unwrap()
        })
        .collect();
    assert_eq!(
        calls,
        [
            json!({"event": {"type": "episode:created"}, "data": {"episodeId": id}}),
            json!({"event": {"type": "episode:updated"}, "data": {"episodeId": id}}),
        ]
    );
    app.run_due().await;
    assert_eq!(receiver.received().len(), 2, "nothing more");
}

async fn other_tenants_and_unknown_ids_get_404(engine: Engine) {
    let app = sl::setup(engine).await;
    sl::create_patient(&app, "ext-1").await;
    let id = create(&app, "ext-1", &covid()).await;
    let a = sl::booked(&app, "ext-1", GP, T0 + 3600).await;
    assert_eq!(assign(&app, Method::PUT, a, &json!({"episodeId": id})).await.status(), 200);

    // The other tenant's key: 404 for every acme episode endpoint.
    let other = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        async move { call(app, OTHER_KEY, method, &path, body.as_ref()).await }
    };
    expect_error(other(Method::GET, "/patients/ext-1/episodes".into(), None).await, 404, "Patient not found").await;
    expect_error(other(Method::POST, "/patients/ext-1/episodes".into(), Some(covid())).await, 404, "Patient").await;
    expect_error(other(Method::GET, format!("/episodes/{id}"), None).await, 404, "Episode not found").await;
    expect_error(other(Method::PUT, format!("/episodes/{id}"), Some(covid())).await, 404, "Episode not found").await;
    expect_error(other(Method::GET, format!("/episodes/{id}/appointments"), None).await, 404, "Episode not found")
        .await;
    for method in [Method::PUT, Method::POST] {
        let r = other(method, format!("/appointments/{a}/episode/assign"), Some(json!({"episodeId": null}))).await;
        expect_error(r, 404, "Appointment not found").await;
    }
    // Its own patient with the same external id sees its own (none), and
    // cannot join its appointment to acme's episode.
    sl::create_patient_as(&app, OTHER_KEY, "ext-1").await;
    let r = other(Method::GET, "/patients/ext-1/episodes".into(), None).await;
    assert_eq!(expect(r, 200).await, json!({"episodes": []}));
    let body = json!({"date": T0 + 3600, "waitingRoom": GP, "episodeOfCareId": id});
    let r = other(Method::POST, "/patients/ext-1/appointments".into(), Some(body)).await;
    expect_error(r, 400, "[episodeOfCareId: episode of care").await;
    let body = json!({"date": T0 + 3600, "waitingRoom": GP});
    let b = expect(other(Method::POST, "/patients/ext-1/appointments".into(), Some(body)).await, 201).await["id"]
        .as_i64()
        .unwrap();
    let r = other(Method::PUT, format!("/appointments/{b}/episode/assign"), Some(json!({"episodeId": id}))).await;
    expect_error(r, 400, "not found").await;
    // Acme's episode is as it was, with its one appointment.
    let listed = expect(get(&app, &format!("/episodes/{id}/appointments")).await, 200).await;
    assert_eq!(listed["episode"]["name"], "covid care");
    assert_eq!(listed["appointments"].as_array().unwrap().len(), 1);

    // Unknown and malformed ids.
    let unknown = "bd43a830-6c0b-4120-b5b8-78a117f8ee02";
    for path in [format!("/episodes/{unknown}"), "/episodes/not-a-uuid".into(), format!("/episodes/{unknown}x")] {
        expect_error(get(&app, &path).await, 404, "Episode not found").await;
        expect_error(get(&app, &format!("{path}/appointments")).await, 404, "Episode not found").await;
        expect_error(send(&app, Method::PUT, &path, &covid()).await, 404, "Episode not found").await;
    }
    expect_error(get(&app, "/patients/nobody/episodes").await, 404, "Patient not found").await;
    expect_error(send(&app, Method::POST, "/patients/nobody/episodes", &covid()).await, 404, "Patient not found").await;
}

on_both_engines!(
    episodes_are_created_listed_read_and_replaced,
    bad_episodes_are_refused,
    appointments_join_episodes_of_their_own_patient,
    episode_webhooks_are_sent_encrypted,
    other_tenants_and_unknown_ids_get_404,
);
