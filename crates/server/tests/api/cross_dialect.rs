//! One core under every dialect: what one dialect books, another sees, and
//! the rules that decide where a booking lands hold whichever dialect booked.

use crate::dp::{api, expect_ok, setup_with};
use crate::helpers::Engine;
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};

/// Creates an Embassy patient; answers its id.
async fn embassy_patient(app: &crate::helpers::TestApp, body: &Value) -> String {
    let r = app
        .embassy(Method::POST, "/Patient")
        .header("content-type", "application/fhir+json")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST /Patient");
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Gives Ann's Docplanner address a 30-minute service with work periods on
/// Tuesday 2030-03-05, 09:00 to 11:00 local, and books `patient` at `start`
/// (URL-encoded); answers the booking.
async fn book_tuesday(ctx: &crate::dp::Ctx, start: &str, patient: Value) -> Value {
    let (app, token) = (&ctx.app, &ctx.token);
    let r =
        crate::dp::call(app, token, Method::POST, &ctx.at("/services"), Some(json!({"service_id": "1", "price": 100})))
            .await;
    assert_eq!(r.status(), 201);
    let service = r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    let periods = json!({"slots": [{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T11:00:00+01:00",
        "address_services": [{"address_service_id": service, "duration": 30}]}]});
    assert_eq!(crate::dp::call(app, token, Method::PUT, &ctx.at("/slots"), Some(periods)).await.status(), 201);
    let body = json!({"address_service_id": service, "duration": 30, "patient": patient});
    expect_ok(crate::dp::call(app, token, Method::POST, &ctx.at(&format!("/slots/{start}/book")), Some(body)).await)
        .await
}

/// An Embassy booking of service `gp` with the practitioner whose e-mail is
/// `email` as primary performer.
async fn embassy_booking(
    app: &crate::helpers::TestApp,
    gp: &str,
    email: &str,
    start: &str,
    end: &str,
) -> reqwest::Response {
    app.embassy(Method::POST, "/Appointment")
        .header("content-type", "application/fhir+json")
        .json(&json!({
            "resourceType": "Appointment", "status": "booked", "start": start, "end": end,
            "participant": [
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
                 "actor": {"type": "Practitioner", "identifier": {"system": "http://schema.visibacare.com/identifier/practitioner/email", "value": email}}},
                {"actor": {"type": "Patient", "identifier": {"system": "http://schema.visibacare.com/identifier/nationalidentificationnumber/se", "value": "198001011231"}}},
                {"actor": {"type": "HealthcareService", "identifier": {"system": "http://schema.visibacare.com/identifier/healthcaresservice/visibaid", "value": gp}}}
            ]
        }))
        .send()
        .await
        .unwrap()
}

/// Ann and Bo both perform service `gp`; only Ann has a Docplanner address
/// linked to it. A booking of Bo never lands at Ann's address, so the two are
/// booked at the same time, and Ann's calendar shows only her own.
async fn practitioners_of_one_service_are_booked_at_once_when_only_one_has_an_address(engine: Engine) {
    let mut doc = crate::dp::seed();
    let t = &mut doc["tenants"][0];
    t["practitioners"][1]["email"] = json!("bo@acme.test");
    t["healthcare_services"][0]["practitioners"] = json!(["ann", "bo"]);
    let ctx = setup_with(engine, &doc).await;
    let gp = ctx.id("healthcare_services", "gp");
    embassy_patient(&ctx.app, &json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]})).await;
    let (start, end) = ("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z");
    let ann = embassy_booking(&ctx.app, &gp, "ann@acme.test", start, end).await;
    assert_eq!(ann.status(), 201, "{}", ann.text().await.unwrap());
    let bo = embassy_booking(&ctx.app, &gp, "bo@acme.test", start, end).await;
    assert_eq!(bo.status(), 201, "Bo is free although Ann is booked: {}", bo.text().await.unwrap());
    // And the other way round: Bo first, then Ann, an hour later.
    let (start, end) = ("2030-03-05T10:00:00Z", "2030-03-05T10:15:00Z");
    assert_eq!(embassy_booking(&ctx.app, &gp, "bo@acme.test", start, end).await.status(), 201);
    assert_eq!(embassy_booking(&ctx.app, &gp, "ann@acme.test", start, end).await.status(), 201);
    // Ann's Docplanner calendar holds Ann's two bookings, not Bo's.
    let range = "start=2030-03-05T00%3A00%3A00%2B01%3A00&end=2030-03-06T00%3A00%3A00%2B01%3A00";
    let list = expect_ok(api(&ctx.app, &ctx.token, &ctx.at(&format!("/bookings?{range}"))).await).await;
    let items = list["_items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    let starts: Vec<&str> = items.iter().map(|b: &Value| b["start_at"].as_str().unwrap()).collect();
    assert_eq!(starts, ["2030-03-05T10:00:00+01:00", "2030-03-05T11:00:00+01:00"]);
}

/// A Docplanner booking at Ann's address (linked to service `gp`) is the
/// same appointment in Embassy: found by the service's search with its
/// practitioner, patient and service, and notified `AppointmentCreated`.
async fn a_docplanner_booking_is_an_embassy_appointment_of_the_linked_service(engine: Engine) {
    let ctx = setup_with(engine, &crate::dp::seed()).await;
    let app = &ctx.app;
    let gp = ctx.id("healthcare_services", "gp");
    let rx = crate::receiver::Receiver::start().await;
    subscribe(app, 1, &rx).await;
    let handshakes = rx.received().len();
    let booked = book_tuesday(
        &ctx,
        "2030-03-05T09%3A30%3A00%2B01%3A00",
        json!({"name": "Eva", "surname": "Holm", "phone": "+46701234567", "nin": "198001011231"}),
    )
    .await;
    let id = booked["id"].as_str().unwrap().to_owned();
    // Embassy's search by service finds it, with the service actor Embassy requires.
    let found: Value = app
        .embassy(Method::GET, &format!("/Appointment?healthcareServiceId={gp}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1, "{found}");
    let a = &found["entry"][0]["resource"];
    assert_eq!(a["id"], id.as_str());
    assert_eq!(a["start"], "2030-03-05T08:30:00Z");
    // One rule decides video access: the linked service is digital (the
    // address is not online-only), so the visit is digital, as the same
    // slot booked through Embassy is.
    assert_eq!(a["appointmentType"]["coding"][0]["code"], "Digital", "{a}");
    let actors: Vec<String> = a["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["actor"]["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in ["Practitioner", "Patient", "HealthcareService"] {
        assert!(actors.iter().any(|k| k == kind), "{kind} among {actors:?}: {a}");
    }
    let service_actor = a["participant"].as_array().unwrap().iter().find(|p| p["actor"]["type"] == "HealthcareService");
    assert_eq!(service_actor.unwrap()["actor"]["identifier"]["value"], gp.as_str());
    // And Embassy's subscriber hears of it.
    app.run_due().await;
    let got = rx.wait_for(handshakes + 1).await;
    let note = got[handshakes].json().to_string();
    assert!(note.contains(&format!("Appointment/{id}")), "the notification names the appointment: {note}");
}

/// One rule normalises national ids for every dialect: a Norwegian number
/// written plain through Embassy and with separators through Docplanner is
/// one patient.
async fn a_national_id_is_one_patient_in_every_dialect(engine: Engine) {
    let mut doc = crate::dp::seed();
    doc["tenants"][0]["country"] = json!("NO");
    let ctx = setup_with(engine, &doc).await;
    let app = &ctx.app;
    let system = "http://schema.visibacare.com/identifier/nationalidentificationnumber/no";
    let patient = embassy_patient(
        &ctx.app,
        &json!({"resourceType": "Patient", "name": [{"given": ["Kari"], "family": "Nordmann"}],
            "identifier": [{"system": system, "value": "01019012345"}]}),
    )
    .await;
    let booked = book_tuesday(
        &ctx,
        "2030-03-05T09%3A00%3A00%2B01%3A00",
        json!({"name": "Kari", "surname": "Nordmann", "phone": "+4791234567", "nin": "010190-123 45"}),
    )
    .await;
    let found: Value = app
        .embassy(Method::GET, &format!("/Appointment?patientId={patient}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1, "the Docplanner booking is Kari's: {found}");
    assert_eq!(found["entry"][0]["resource"]["id"], booked["id"]);
    let patients: Value = app
        .embassy(Method::GET, &format!("/Patient?identifier={system}|01019012345"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patients["total"], 1, "{patients}");
}

/// Patient matching, the same for every dialect: no national id and no phone
/// in common, but the e-mail address of one patient is that patient.
async fn a_booking_patient_is_matched_by_email_after_national_id_and_phone(engine: Engine) {
    let ctx = setup_with(engine, &crate::dp::seed()).await;
    let app = &ctx.app;
    let patient = embassy_patient(&ctx.app, &json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}],
            "telecom": [{"system": "email", "value": "eva@holm.test"}]})).await;
    let booked = book_tuesday(
        &ctx,
        "2030-03-05T09%3A00%3A00%2B01%3A00",
        json!({"name": "Eva", "surname": "Holm", "phone": "+46709999999", "email": "eva@holm.test"}),
    )
    .await;
    let found: Value = app
        .embassy(Method::GET, &format!("/Appointment?patientId={patient}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1, "the booking is Eva's: {found}");
    assert_eq!(found["entry"][0]["resource"]["id"], booked["id"]);
}

/// Subscribes `rx` to Embassy topic `topic`.
async fn subscribe(app: &crate::helpers::TestApp, topic: u32, rx: &crate::receiver::Receiver) {
    let sub = app
        .embassy(Method::POST, "/Subscription")
        .header("content-type", "application/fhir+json")
        .json(&json!({"resourceType": "Subscription", "status": "requested",
            "criteria": format!("http://example.com/SubscriptionTopic/{topic}"),
            "channel": {"type": "rest-hook", "endpoint": rx.url, "payload": "application/fhir+json"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(sub.status(), 201, "{}", sub.text().await.unwrap());
}

/// A Docplanner move is one change of time, told once: Embassy subscribers
/// of `AppointmentUpdated` hear of it, naming the booking moved away and the
/// one that replaced it; those of `AppointmentCancelled` and
/// `AppointmentCreated` hear nothing of it.
async fn a_docplanner_move_is_one_embassy_appointment_updated(engine: Engine) {
    let ctx = setup_with(engine, &crate::dp::seed()).await;
    let app = &ctx.app;
    let (created, cancelled, updated) = (
        crate::receiver::Receiver::start().await,
        crate::receiver::Receiver::start().await,
        crate::receiver::Receiver::start().await,
    );
    subscribe(app, 1, &created).await;
    subscribe(app, 2, &cancelled).await;
    subscribe(app, 3, &updated).await;
    let booked = book_tuesday(
        &ctx,
        "2030-03-05T09%3A30%3A00%2B01%3A00",
        json!({"name": "Eva", "surname": "Holm", "phone": "+46701234567", "nin": "198001011231"}),
    )
    .await;
    let old = booked["id"].as_str().unwrap().to_owned();
    let service = booked["address_service"]["id"].as_str().unwrap().to_owned();
    app.run_due().await;
    let (c0, x0, u0) = (created.received().len(), cancelled.received().len(), updated.received().len());
    let body = json!({"address_service_id": service, "start": "2030-03-05T10:30:00+01:00", "duration": 30});
    let moved =
        crate::dp::call(app, &ctx.token, Method::POST, &ctx.at(&format!("/bookings/{old}/move")), Some(body)).await;
    assert_eq!(moved.status(), 201, "{}", moved.text().await.unwrap());
    let new = moved.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned();
    assert_ne!(new, old, "Docplanner shows a move as a new booking id");
    app.run_due().await;
    let got = updated.wait_for(u0 + 1).await;
    assert_eq!(got.len(), u0 + 1, "one AppointmentUpdated");
    let status = &got[u0].json()["entry"][0]["resource"];
    assert_eq!(status["type"], "event-notification");
    let foci: Vec<String> = status["notificationEvent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["focus"]["reference"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(foci, [old.clone(), new.clone()], "the booking moved away, then its replacement: {status}");
    assert_eq!(created.received().len(), c0, "no AppointmentCreated for the move");
    assert_eq!(cancelled.received().len(), x0, "no AppointmentCancelled for the move");
    // Embassy reads both: the old one cancelled, the new one at the new time.
    let read = |id: String| async move {
        app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap().json::<Value>().await.unwrap()
    };
    assert_eq!(read(old).await["status"], "cancelled");
    let now = read(new).await;
    assert_eq!((now["status"].as_str(), now["start"].as_str()), (Some("booked"), Some("2030-03-05T09:30:00Z")));
}

/// One availability for every dialect: the free starts of Ann's address, of
/// Ann, and of the service her address is linked to are the same, and each
/// hides a Docplanner booking and an Embassy booking alike. Docplanner's
/// slots answer the same.
async fn availability_is_one_answer_for_an_address_a_practitioner_and_a_service(engine: Engine) {
    use polyclinic_scheduling::availability::{Calendar, free_starts};
    let ctx = setup_with(engine, &crate::dp::seed()).await;
    let app = &ctx.app;
    let gp = ctx.id("healthcare_services", "gp");
    embassy_patient(app, &json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}]})).await;
    // Work periods 09:00-11:00 local on a 30-minute grid; 09:30 booked through Docplanner.
    book_tuesday(
        &ctx,
        "2030-03-05T09%3A30%3A00%2B01%3A00",
        json!({"name": "Eva", "surname": "Holm", "phone": "+46701234567"}),
    )
    .await;
    // 10:00 local booked through Embassy (Ann, at her linked address).
    let r = embassy_booking(app, &gp, "ann@acme.test", "2030-03-05T09:00:00Z", "2030-03-05T09:30:00Z").await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let expected = ["2030-03-05T08:00:00Z", "2030-03-05T09:30:00Z"];
    let range = "start=2030-03-05T00%3A00%3A00%2B01%3A00&end=2030-03-06T00%3A00%3A00%2B01%3A00";
    let slots = expect_ok(api(app, &ctx.token, &ctx.at(&format!("/slots?{range}"))).await).await;
    let shown: Vec<String> = slots["_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap().to_string())
        .collect();
    assert_eq!(shown, expected, "Docplanner's slots: {slots}");
    let (ann, gp_id, address): (i64, i64, i64) =
        (ctx.ann.parse().unwrap(), gp.parse().unwrap(), ctx.address.parse().unwrap());
    let answers = app
        .store
        .read(move |c| {
            Box::pin(async move {
                let tenant = polyclinic_store::tenants::by_key(c, "acme").await?.unwrap();
                let now: jiff::Timestamp = "2030-03-04T08:00:00Z".parse().unwrap();
                let window = polyclinic_core::schedule::Interval {
                    start: "2030-03-04T23:00:00Z".parse().unwrap(),
                    end: "2030-03-05T23:00:00Z".parse().unwrap(),
                };
                let at = polyclinic_store::catalog::address(c, tenant.id, address).await?.unwrap();
                let mut out = Vec::new();
                for calendar in [
                    Calendar::Address(&at),
                    Calendar::Practitioner(polyclinic_core::PractitionerId(ann)),
                    Calendar::Service(polyclinic_core::HealthcareServiceId(gp_id)),
                ] {
                    let found = free_starts(c, tenant.id, calendar, &window, &tenant.settings, now).await?;
                    let starts: Vec<(i64, String)> = found
                        .iter()
                        .flat_map(|a| a.slots.iter().map(|s| (a.address.id.get(), s.start.to_string())))
                        .collect();
                    out.push(starts);
                }
                Ok(out)
            })
        })
        .await
        .unwrap();
    let at_ann: Vec<(i64, String)> = expected.iter().map(|s| (address, s.to_string())).collect();
    assert_eq!(answers, [at_ann.clone(), at_ann.clone(), at_ann], "address, practitioner, service");
}

on_both_engines!(
    a_booking_patient_is_matched_by_email_after_national_id_and_phone,
    a_national_id_is_one_patient_in_every_dialect,
    practitioners_of_one_service_are_booked_at_once_when_only_one_has_an_address,
    a_docplanner_booking_is_an_embassy_appointment_of_the_linked_service,
    a_docplanner_move_is_one_embassy_appointment_updated,
    availability_is_one_answer_for_an_address_a_practitioner_and_a_service,
);
