//! The Solo dialect's visit flow, through HTTP on the real server, on both
//! engines: patients, waiting-room appointments, their statuses, slots and
//! video links, every documented error, tenant isolation, and what other
//! dialects see of it.

use crate::helpers::Engine;
use crate::on_both_engines;
use crate::sl::*;
use reqwest::Method;
use serde_json::{Value, json};

on_both_engines!(
    patients_round_trip_every_demographic_field,
    patient_errors_name_the_field,
    patients_owned_by_naboto_are_refused,
    appointments_are_booked_read_and_changed,
    appointment_errors,
    a_waiting_room_takes_one_visit_per_practitioner,
    the_status_machine_decides_every_transition,
    slots_hide_bookings_of_every_dialect_and_free_them_on_cancel,
    slot_parameters_are_checked,
    video_links_carry_each_participants_own_key,
    another_tenants_ids_answer_404_everywhere,
    a_solo_cancellation_is_seen_by_embassy_and_docplanner,
    malformed_requests_answer_in_the_solo_shape,
);

async fn patients_round_trip_every_demographic_field(engine: Engine) {
    let app = setup(engine).await;
    let spid = create_patient(&app, "p-1").await;
    assert!(spid > 0);
    let got = expect(get(&app, "/patients/p-1").await, 200).await;
    let mut want = example_patient("p-1");
    want.as_object_mut().unwrap().remove("id");
    // Phones are kept normalised.
    want["telecom"][0]["value"] = json!("+11111111111");
    want["isLinkedByEmail"] = json!(false);
    want["sharedEmailGroup"] = Value::Null;
    assert_eq!(got, want);
    // The SPID form shows the group flat.
    let linked = json!({"isLinkedByEmail": true, "sharedEmailGroup": {"type": "family", "name": "Shinodas"}});
    expect(send(&app, Method::PUT, "/patients/p-1", &linked).await, 200).await;
    let by_spid = expect(get(&app, &format!("/patients/id/type/SPID/value/{spid}")).await, 200).await;
    assert_eq!((&by_spid["groupType"], &by_spid["groupName"]), (&json!("family"), &json!("Shinodas")));
    assert_eq!((&by_spid["familyMember"], &by_spid["isLinkedByEmail"]), (&json!(true), &json!(true)));
    assert!(by_spid.get("sharedEmailGroup").is_none());
    // PUT changes only what it gives; the SPID form takes groupType/groupName.
    let body = json!({"race": "Asian", "deceased": false, "isLinkedByEmail": true, "groupType": "family",
                      "groupName": "Others", "name": [{"firstName": "Chester", "lastName": "Bennington"}]});
    let r = send(&app, Method::PUT, &format!("/patients/id/type/SPID/value/{spid}"), &body).await;
    assert_eq!(expect(r, 200).await, json!([]));
    let got = expect(get(&app, "/patients/p-1").await, 200).await;
    assert_eq!(got["race"], "Asian");
    assert_eq!(got["ethnicity"], "not Hispanic or Latino");
    assert_eq!((&got["deceased"], &got["deceasedAt"]), (&json!(false), &Value::Null));
    assert_eq!(got["sharedEmailGroup"], json!({"type": "family", "name": "Others"}));
    assert_eq!(got["name"][0]["firstName"], "Chester");
    assert_eq!(got["mrn"], "MRN-p-1");
    // A second patient: ids, MRNs and account numbers are unique.
    expect_error(send(&app, Method::POST, "/patients", &example_patient("p-1")).await, 409, "already exists").await;
    let mut same_mrn = example_patient("p-2");
    same_mrn["mrn"] = json!("MRN-p-1");
    expect_error(send(&app, Method::POST, "/patients", &same_mrn).await, 409, "already exists").await;
    let minimal = json!({"id": 77, "name": [{"firstName": "Ann"}]});
    let spid2 = expect(send(&app, Method::POST, "/patients", &minimal).await, 201).await;
    let got = expect(get(&app, "/patients/77").await, 200).await;
    assert_eq!((&got["active"], &got["mrn"], &got["telecom"]), (&json!(true), &Value::Null, &json!([])));
    assert_ne!(spid2, json!(spid));
    app.stop().await;
}

async fn patient_errors_name_the_field(engine: Engine) {
    let app = setup(engine).await;
    create_patient(&app, "p-1").await;
    let post = |v: Value| {
        let app = &app;
        async move { send(app, Method::POST, "/patients", &v).await }
    };
    let with = |k: &str, v: Value| {
        let mut p = example_patient("p-9");
        p[k] = v;
        p
    };
    let mut no_id = example_patient("x");
    no_id.as_object_mut().unwrap().remove("id");
    expect_error(post(no_id).await, 400, "id").await;
    expect_error(post(with("id", json!(""))).await, 400, "id").await;
    expect_error(post(with("id", json!({"a": 1}))).await, 400, "id").await;
    expect_error(post(with("gender", json!("robot"))).await, 400, "gender").await;
    expect_error(post(with("birthDate", json!("15/08/1983"))).await, 400, "birthDate").await;
    expect_error(post(with("deceasedAt", json!("2020-03-31T10:12"))).await, 400, "deceasedAt").await;
    let mut no_at = example_patient("p-9");
    no_at.as_object_mut().unwrap().remove("deceasedAt");
    expect_error(post(no_at).await, 400, "deceasedAt").await;
    expect_error(post(with("deceased", json!(false))).await, 400, "deceasedAt").await;
    expect_error(post(with("telecom", json!([{"system": "fax", "value": "1"}]))).await, 400, "telecom[0].system").await;
    expect_error(
        post(with("telecom", json!([{"system": "phone", "value": "call me"}]))).await,
        400,
        "telecom[0].value",
    )
    .await;
    expect_error(post(with("name", json!([{"use": "stage"}]))).await, 400, "name[0].use").await;
    expect_error(post(with("address", json!([{"use": "moon"}]))).await, 400, "address[0].use").await;
    expect_error(post(with("gender", json!(7))).await, 400, "gender").await;
    let unlinked_group = json!({"isLinkedByEmail": true, "sharedEmailGroup": {"type": "family"}});
    expect_error(send(&app, Method::PUT, "/patients/p-1", &unlinked_group).await, 400, "sharedEmailGroup").await;
    // PUT follows the same deceased rules.
    let r = send(&app, Method::PUT, "/patients/p-1", &json!({"deceasedAt": "2020-03-31 10:12 AM"})).await;
    expect_error(r, 400, "deceasedAt").await;
    expect_error(get(&app, "/patients/nobody").await, 404, "Patient").await;
    expect_error(get(&app, "/patients/id/type/SPID/value/abc").await, 404, "Patient").await;
    expect_error(get(&app, "/patients/id/type/SPID/value/999999").await, 404, "Patient").await;
    expect_error(send(&app, Method::PUT, "/patients/nobody", &json!({})).await, 404, "Patient").await;
    app.stop().await;
}

async fn patients_owned_by_naboto_are_refused(engine: Engine) {
    let app = setup(engine).await;
    let id = crate::nb::create_patient(&app).await;
    let path = format!("/patients/id/type/SPID/value/{id}");
    // Solo reads it, and refuses to edit it.
    expect(get(&app, &path).await, 200).await;
    expect_error(send(&app, Method::PUT, &path, &json!({"race": "White"})).await, 403, "naboto").await;
    // Embassy keeps answering as before (the rule moved below the dialects).
    let patch = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/name.family"},
        {"name": "value", "valueString": "Other"}]}]});
    let r = crate::emb::send(&app, Method::PATCH, &format!("/Patient/{id}"), &patch).await;
    crate::emb::expect_error(r, 422, "PatientManagedByAnotherSystem").await;
    // And Naboto does not edit a Solo patient.
    let spid = create_patient(&app, "p-1").await;
    let mut p = crate::nb::new_patient();
    p["id"] = json!(spid.to_string());
    crate::nb::expect_error(
        crate::nb::send(&app, Method::PUT, "/patient", &p).await,
        422,
        "PatientManagedByAnotherSystem",
    )
    .await;
    app.stop().await;
}

async fn appointments_are_booked_read_and_changed(engine: Engine) {
    let app = setup(engine).await;
    let spid = create_patient(&app, "p-1").await;
    // `episodeOfCareId` must name an episode of the patient (solo_episodes.rs).
    let episode = json!({"name": "covid care", "type": "covid", "from": "2023-03-29", "status": "PLANNING"});
    let episode =
        expect(send(&app, Method::POST, "/patients/p-1/episodes", &episode).await, 201).await["episodeId"].clone();
    let body = json!({"date": T0 + 900, "reasons": ["headache"], "duration": 600, "waitingRoom": GP,
        "externalId": "ext-1", "episodeOfCareId": episode, "accountNumber": "ABC1"});
    let made = expect(send(&app, Method::POST, "/patients/p-1/appointments", &body).await, 201).await;
    let id = made["id"].as_i64().unwrap();
    assert!(made["visitUrl"].as_str().unwrap().contains("/video/"));
    let got = expect(get(&app, &format!("/appointments/{id}")).await, 200).await;
    assert_eq!(got["id"], id);
    assert_eq!((&got["date"], &got["duration"]), (&json!(T0 + 900), &json!(600)));
    assert_eq!(
        (&got["status"], &got["externalId"], &got["videoCall"]),
        (&json!("scheduled"), &json!("ext-1"), &Value::Null)
    );
    assert_eq!(got["reasons"], json!(["headache"]));
    assert_eq!(got["patient"]["id"], "p-1");
    assert_eq!(got["patient"]["demographics"]["mrn"], "MRN-p-1");
    assert_eq!(got["providers"], json!([]));
    // The HSID (the MRN) and SPID forms; without a date and a duration: the
    // room's first free slot, its slot length.
    let r = send(&app, Method::POST, "/patients/HSID/MRN-p-1/appointments", &json!({"waitingRoom": GP})).await;
    let second = expect(r, 201).await["id"].as_i64().unwrap();
    let got = expect(get(&app, &format!("/appointments/{second}")).await, 200).await;
    assert_eq!((&got["date"], &got["duration"]), (&json!(T0 + 1800), &json!(900)), "after the first visit");
    let r = send(
        &app,
        Method::POST,
        &format!("/patients/id/type/SPID/value/{spid}/appointments"),
        &json!({"waitingRoom": ROUND, "date": T0 + 3600}),
    )
    .await;
    let third = expect(r, 201).await["id"].as_i64().unwrap();
    // PUT: time, reasons, external id, video call status.
    let change = json!({"date": T0 + 7200, "duration": 1800, "reasons": ["vomit"], "externalId": "ext-3",
                        "accountNumber": "X9", "videoCall": {"status": "waiting"}});
    let r = expect(put_appointment(&app, third, &change).await, 200).await;
    assert_eq!(r["id"], third);
    let got = expect(get(&app, &format!("/appointments/{third}")).await, 200).await;
    assert_eq!((&got["date"], &got["duration"]), (&json!(T0 + 7200), &json!(1800)));
    assert_eq!((&got["reasons"], &got["externalId"]), (&json!(["vomit"]), &json!("ext-3")));
    assert_eq!(got["videoCall"]["status"], "waiting");
    assert!(got["videoCall"]["id"].as_str().unwrap().parse::<polyclinic_core::Uuid>().is_ok());
    // Only the duration.
    expect(put_appointment(&app, third, &json!({"duration": 900})).await, 200).await;
    let got = expect(get(&app, &format!("/appointments/{third}")).await, 200).await;
    assert_eq!((&got["date"], &got["duration"]), (&json!(T0 + 7200), &json!(900)));
    // Cancelled: the end of the line.
    expect(put_appointment(&app, third, &json!({"status": "cancelled"})).await, 200).await;
    let got = expect(get(&app, &format!("/appointments/{third}")).await, 200).await;
    assert_eq!(got["status"], "cancelled");
    let m = expect_error(put_appointment(&app, third, &json!({"status": "arrived"})).await, 422, "Status change").await;
    assert_eq!(m, r#"Status change from "cancelled" to "arrived" is not allowed"#);
    app.stop().await;
}

async fn appointment_errors(engine: Engine) {
    let app = setup(engine).await;
    create_patient(&app, "p-1").await;
    let post = |v: Value| {
        let app = &app;
        async move { send(app, Method::POST, "/patients/p-1/appointments", &v).await }
    };
    expect_error(post(json!({"date": T0 + 900})).await, 400, "waitingRoom").await;
    expect_error(post(json!({"waitingRoom": "Nowhere"})).await, 400, "Nowhere").await;
    expect_error(post(json!({"waitingRoom": GP, "duration": 0})).await, 400, "duration").await;
    expect_error(post(json!({"waitingRoom": GP, "duration": 86_401})).await, 400, "duration").await;
    expect_error(post(json!({"waitingRoom": GP, "date": "tomorrow"})).await, 400, "date").await;
    expect_error(post(json!({"waitingRoom": GP, "date": 1.5})).await, 400, "date").await;
    expect_error(post(json!({"waitingRoom": GP, "episodeOfCareId": "nope"})).await, 400, "episodeOfCareId").await;
    expect_error(post(json!({"waitingRoom": GP, "reasons": "headache"})).await, 400, "reasons").await;
    // The time rules: in the past; shorter than a minute; outside opening hours.
    expect_error(post(json!({"waitingRoom": GP, "date": T0 - 900})).await, 422, "future").await;
    expect_error(post(json!({"waitingRoom": GP, "date": T0 + 900, "duration": 30})).await, 422, "minute").await;
    expect_error(post(json!({"waitingRoom": GP, "date": T0 + 8 * 3600})).await, 409, "").await;
    let r = send(&app, Method::POST, "/patients/nobody/appointments", &json!({"waitingRoom": GP})).await;
    expect_error(r, 404, "Patient").await;
    let r = send(&app, Method::POST, "/patients/HSID/nobody/appointments", &json!({"waitingRoom": GP})).await;
    expect_error(r, 404, "Patient").await;
    expect_error(get(&app, "/appointments/abc").await, 404, "Appointment").await;
    expect_error(get(&app, "/appointments/999999").await, 404, "Appointment").await;
    let id = booked(&app, "p-1", GP, T0 + 900).await;
    expect_error(put_appointment(&app, id, &json!({"status": "done"})).await, 400, "not showed up").await;
    expect_error(
        put_appointment(&app, id, &json!({"videoCall": {"status": "ringing"}})).await,
        400,
        "videoCall.status",
    )
    .await;
    expect_error(put_appointment(&app, id, &json!({"duration": -1})).await, 400, "duration").await;
    expect_error(put_appointment(&app, 999_999, &json!({"status": "cancelled"})).await, 404, "Appointment").await;
    // A move into the past follows the time rules.
    expect_error(put_appointment(&app, id, &json!({"date": T0 - 60})).await, 422, "future").await;
    app.stop().await;
}

async fn a_waiting_room_takes_one_visit_per_practitioner(engine: Engine) {
    let app = setup(engine).await;
    create_patient(&app, "p-1").await;
    create_patient(&app, "p-2").await;
    booked(&app, "p-1", GP, T0 + 900).await;
    // GP has one practitioner: the same time, or an overlap, is refused.
    expect_error(book(&app, "p-2", GP, T0 + 900).await, 409, "waiting room").await;
    let body = json!({"date": T0 + 600, "waitingRoom": GP, "duration": 600});
    expect_error(send(&app, Method::POST, "/patients/p-2/appointments", &body).await, 409, "waiting room").await;
    // Back to back is fine; moving onto the taken time is refused too.
    let next = booked(&app, "p-2", GP, T0 + 1800).await;
    expect_error(put_appointment(&app, next, &json!({"date": T0 + 900})).await, 409, "waiting room").await;
    // A room with no practitioner still takes one visit at a time.
    booked(&app, "p-1", ROUND, T0 + 3600).await;
    expect_error(book(&app, "p-2", ROUND, T0 + 3600).await, 409, "waiting room").await;
    app.stop().await;
}

/// Every Solo status pair: allowed exactly when the core's status machine
/// allows it; the same status again changes nothing.
async fn the_status_machine_decides_every_transition(engine: Engine) {
    use polyclinic_core::status::AppointmentStatus;
    let app = setup(engine).await;
    create_patient(&app, "p-1").await;
    const STATUSES: [&str; 12] = AppointmentStatus::SOLO;
    let mut slot = 0;
    let (mut allowed, mut refused) = (0, 0);
    for from in STATUSES {
        for to in STATUSES {
            slot += 1;
            let id = booked(&app, "p-1", ROUND, T0 + slot * 1800).await;
            if from != "scheduled" {
                expect(put_appointment(&app, id, &json!({"status": from})).await, 200).await;
            }
            let (f, t) = (AppointmentStatus::from_solo(from).unwrap(), AppointmentStatus::from_solo(to).unwrap());
            let r = put_appointment(&app, id, &json!({"status": to})).await;
            if from == to || f.can_move_to(t) {
                expect(r, 200).await;
                allowed += 1;
                let got = expect(get(&app, &format!("/appointments/{id}")).await, 200).await;
                assert_eq!(got["status"], to, "{from} -> {to}");
            } else {
                let m = expect_error(r, 422, "is not allowed").await;
                assert_eq!(m, format!(r#"Status change from "{from}" to "{to}" is not allowed"#));
                refused += 1;
                let got = expect(get(&app, &format!("/appointments/{id}")).await, 200).await;
                assert_eq!(got["status"], from, "{from} -> {to} changed nothing");
            }
        }
    }
    assert_eq!((allowed, refused), (66, 78));
    app.stop().await;
}

async fn slots_hide_bookings_of_every_dialect_and_free_them_on_cancel(engine: Engine) {
    let app = setup(engine).await;
    let end = T0 + 7 * 3600; // 15:00 UTC, 16:00 in Stockholm: closing time.
    let all = slot_starts(&app, GP, T0 - 3600, end + 3600).await;
    let expected: Vec<i64> = (1..28).map(|i| T0 + i * 900).collect();
    assert_eq!(all, expected, "from now (not now itself) to closing, on the 15-minute grid");
    create_patient(&app, "p-1").await;
    let id = booked(&app, "p-1", GP, T0 + 900).await;
    // An Embassy booking with Ann in the same service.
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gp = expect(get(&app, "/waiting-rooms").await, 200).await[0]["id"].as_str().unwrap().to_owned();
    let r = crate::dp::embassy_appointment(&app, &gp, "2030-03-04T10:00:00Z", "2030-03-04T10:30:00Z").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let left = slot_starts(&app, GP, T0, end).await;
    assert!(!left.contains(&(T0 + 900)), "the Solo booking");
    assert!(!left.contains(&(T0 + 7200)) && !left.contains(&(T0 + 8100)), "the Embassy booking's half hour");
    assert_eq!(left.len(), 27 - 3);
    // A 30-minute visit needs two free grid steps.
    let q = format!("/appointment-slots?after={T0}&before={end}&waitingRoom=GP%20online&duration=1800");
    let long = expect(get(&app, &q).await, 200).await;
    let starts: Vec<i64> = long.as_array().unwrap().iter().map(|s| s["date"].as_i64().unwrap()).collect();
    assert!(!starts.contains(&(T0 + 6300)) && starts.contains(&(T0 + 1800)));
    assert!(long.as_array().unwrap().iter().all(|s| s["duration"] == 1800));
    // A Solo booking at the Embassy booking's time is refused.
    create_patient(&app, "p-2").await;
    expect_error(book(&app, "p-2", GP, T0 + 7200).await, 409, "waiting room").await;
    // Cancelled through Solo: its slot is offered again.
    expect(put_appointment(&app, id, &json!({"status": "cancelled"})).await, 200).await;
    assert!(slot_starts(&app, GP, T0, end).await.contains(&(T0 + 900)));
    app.stop().await;
}

async fn slot_parameters_are_checked(engine: Engine) {
    let app = setup(engine).await;
    let q = |s: &str| format!("/appointment-slots?{s}");
    let room = "waitingRoom=GP%20online";
    let (a, b) = (T0, T0 + 3600);
    expect_error(get(&app, &q(&format!("before={b}&{room}"))).await, 400, "after").await;
    expect_error(get(&app, &q(&format!("after={a}&{room}"))).await, 400, "before").await;
    expect_error(get(&app, &q(&format!("after={a}&before={b}"))).await, 400, "waitingRoom").await;
    expect_error(get(&app, &q(&format!("after=soon&before={b}&{room}"))).await, 400, "after").await;
    expect_error(get(&app, &q(&format!("after={a}&before=1e9&{room}"))).await, 400, "before").await;
    expect_error(get(&app, &q(&format!("after={b}&before={a}&{room}"))).await, 400, "greater").await;
    expect_error(get(&app, &q(&format!("after={a}&before={a}&{room}"))).await, 400, "greater").await;
    let far = a + 32 * 86_400;
    expect_error(get(&app, &q(&format!("after={a}&before={far}&{room}"))).await, 400, "31 days").await;
    expect_error(get(&app, &q(&format!("after={a}&before={b}&{room}&duration=0"))).await, 400, "duration").await;
    expect_error(get(&app, &q(&format!("after={a}&before={b}&{room}&duration=x"))).await, 400, "duration").await;
    expect_error(get(&app, &q(&format!("after={a}&before={b}&waitingRoom=Nowhere"))).await, 400, "Nowhere").await;
    expect_error(get(&app, &q(&format!("after=-99999999999999&before={b}&{room}"))).await, 400, "after").await;
    // A room without opening hours offers its grid round the clock.
    let round = slot_starts(&app, ROUND, a, a + 86_400).await;
    assert_eq!(round.len(), 47, "from the first step after now");
    app.stop().await;
}

async fn video_links_carry_each_participants_own_key(engine: Engine) {
    let app = setup(engine).await;
    create_patient(&app, "p-1").await;
    let body = json!({"date": T0 + 900, "waitingRoom": GP, "externalId": "ext-1"});
    let made = expect(send(&app, Method::POST, "/patients/p-1/appointments", &body).await, 201).await;
    let id = made["id"].as_i64().unwrap();
    let patient_url = made["visitUrl"].as_str().unwrap().to_owned();
    let provider = expect(get(&app, &format!("/appointments/{id}/provider-link")).await, 200).await;
    assert_eq!(provider["id"], id);
    let provider_url = provider["providerVisitUrl"].as_str().unwrap().to_owned();
    assert_ne!(provider_url, patient_url);
    assert!(provider_url.starts_with(&app.base) && provider_url.contains(&format!("/{id}/")));
    let r = get(&app, &format!("/appointments/{id}/msteams-provider-link")).await;
    expect_error(r, 401, "Teams-Auth-Token").await;
    let r = app
        .client
        .get(app.url(&format!("/qapi/v1/appointments/{id}/msteams-provider-link")))
        .header("Api-Key", KEY)
        .header("Teams-Auth-Token", "t")
        .send()
        .await
        .unwrap();
    assert_eq!(expect(r, 200).await, json!({"id": id, "msTeamsProviderVisitUrl": provider_url}));
    let want =
        json!({"appointmentExternalId": "ext-1", "providerVisitUrl": provider_url, "patientVisitUrl": patient_url});
    assert_eq!(expect(get(&app, "/appointments/ext-1/video-call-links").await, 200).await, want);
    let by_said =
        expect(get(&app, &format!("/appointments/id/type/SAID/value/{id}/video-call-links")).await, 200).await;
    assert_eq!(by_said, want);
    expect_error(get(&app, "/appointments/nope/video-call-links").await, 404, "Appointment").await;
    expect_error(get(&app, "/appointments/id/type/SAID/value/0/video-call-links").await, 404, "Appointment").await;
    // Both links open the join page.
    for url in [&patient_url, &provider_url] {
        assert_eq!(app.client.get(url.as_str()).send().await.unwrap().status(), 200, "{url}");
    }
    app.stop().await;
}

async fn another_tenants_ids_answer_404_everywhere(engine: Engine) {
    let app = setup(engine).await;
    let spid = create_patient_as(&app, OTHER_KEY, "theirs").await;
    let body = json!({"date": T0 + 900, "waitingRoom": GP, "externalId": "their-ext"});
    let r = call(&app, OTHER_KEY, Method::POST, "/patients/theirs/appointments", Some(&body)).await;
    let id = expect(r, 201).await["id"].as_i64().unwrap();
    let put = json!({"race": "x"});
    let book = json!({"waitingRoom": GP});
    for (method, path, body) in [
        (Method::GET, "/patients/theirs".to_owned(), None),
        (Method::PUT, "/patients/theirs".to_owned(), Some(&put)),
        (Method::GET, format!("/patients/id/type/SPID/value/{spid}"), None),
        (Method::PUT, format!("/patients/id/type/SPID/value/{spid}"), Some(&put)),
        (Method::POST, "/patients/theirs/appointments".to_owned(), Some(&book)),
        (Method::POST, "/patients/HSID/MRN-theirs/appointments".to_owned(), Some(&book)),
        (Method::POST, format!("/patients/id/type/SPID/value/{spid}/appointments"), Some(&book)),
        (Method::GET, format!("/appointments/{id}"), None),
        (Method::PUT, format!("/appointments/{id}"), Some(&put)),
        (Method::GET, format!("/appointments/{id}/provider-link"), None),
        (Method::GET, "/appointments/their-ext/video-call-links".to_owned(), None),
        (Method::GET, format!("/appointments/id/type/SAID/value/{id}/video-call-links"), None),
    ] {
        let r = call(&app, KEY, method.clone(), &path, body).await;
        assert_eq!(r.status(), 404, "{method} {path}: {}", r.text().await.unwrap());
    }
    // The other tenant's booking does not fill this tenant's room.
    create_patient(&app, "mine").await;
    booked(&app, "mine", GP, T0 + 900).await;
    app.stop().await;
}

async fn a_solo_cancellation_is_seen_by_embassy_and_docplanner(engine: Engine) {
    // Docplanner reads its notifications by PULL here.
    let mut doc = crate::dp::seed();
    for c in doc["tenants"][0]["credentials"].as_array_mut().unwrap() {
        if c["dialect"] == "docplanner" {
            let c = c.as_object_mut().unwrap();
            c.remove("push_url");
            c.remove("push_api_key");
        }
    }
    let ctx = crate::dp::setup_with(engine, &doc).await;
    let app = &ctx.app;
    // A Solo booking cancelled through Solo: Embassy shows it cancelled.
    create_patient(app, "p-1").await;
    let id = booked(app, "p-1", GP, T0 + 900).await;
    expect(put_appointment(app, id, &json!({"status": "cancelled"})).await, 200).await;
    let r = app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "cancelled", "{body}");
    // A booking Docplanner sees (through Embassy at Ann's address), cancelled
    // through Solo: Docplanner hears `booking-canceled`.
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let gp = ctx.id("healthcare_services", "gp");
    let r = crate::dp::embassy_appointment(app, &gp, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    assert_eq!(r.status(), 201);
    let booking = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse::<i64>().unwrap();
    expect(put_appointment(app, booking, &json!({"status": "cancelled"})).await, 200).await;
    app.run_due().await;
    let page = crate::dp::expect_ok(crate::dp::api(app, &ctx.token, "/notifications/multiple?limit=10").await).await;
    let names: Vec<(&str, &str)> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["data"]["visit_booking"]["id"].as_str().unwrap_or("")))
        .collect();
    let booking = booking.to_string();
    assert!(names.contains(&("booking-canceled", booking.as_str())), "{names:?}");
    ctx.app.stop().await;
}

async fn malformed_requests_answer_in_the_solo_shape(engine: Engine) {
    let app = setup(engine).await;
    let raw = |ct: &'static str, body: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/qapi/v1/patients"))
                .header("Api-Key", KEY)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    expect_error(raw("application/json", "{not json").await, 400, "Bad parameters").await;
    expect_error(raw("application/json", "").await, 400, "empty").await;
    expect_error(raw("text/plain", "{}").await, 415, "application/json").await;
    expect_error(raw("application/json", r#"{"id": "a", "active": "yes"}"#).await, 400, "active").await;
    // Three MiB announced, one byte over the limit sent.
    let over = format!(r#"{{"id": "{}"}}"#, "x".repeat(polyclinic_http::MAX_BODY_BYTES)).into_bytes();
    let headers = [("Api-Key", KEY), ("Content-Type", "application/json")];
    let (status, body) = crate::helpers::post_over_limit(
        &app,
        "/qapi/v1/patients",
        &headers,
        3 * 1024 * 1024,
        over[..=polyclinic_http::MAX_BODY_BYTES].to_vec(),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("too large"), "{body}");
    let r = app.client.get(app.url("/qapi/v1/patients/p-1")).send().await.unwrap();
    expect_error(r, 401, "Api-Key").await;
    let r = call(&app, "wrong", Method::GET, "/patients/p-1", None).await;
    expect_error(r, 401, "not valid").await;
    app.stop().await;
}
