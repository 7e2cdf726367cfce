//! The Embassy appointment search as it runs at a million appointments
//! (issue 15, docs/dialects/embassy.md "Appointment search"): by service over
//! a bounded range, by patient, by practitioner (cancelled appointments
//! included), by patient phone through the contact index in every form the
//! spec allows, keyset paging behind the spec's `skip`, the total capped at
//! `TOTAL_CAP`, and the spec's errors for an unbounded or malformed range.

use crate::booking::{Seeded, draft, seeded};
use crate::emb::{expect_error, patch_appointment, send};
use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use polyclinic_core::PractitionerId;
use polyclinic_core::appointment::{Appointment, Participant, ParticipantWho};
use polyclinic_core::{AddressId, HealthcareServiceId, PatientId, TenantId};
use polyclinic_store::appointments::{self, TOTAL_CAP};
use reqwest::Method;
use serde_json::{Value, json};

const PATIENT_PHONE: &str = "http://schema.visibacare.com/identifier/patient/phonenumber";
const PATIENT_VISIBA: &str = "http://schema.visibacare.com/identifier/patient/visibaid";
const PRACT_VISIBA: &str = "http://schema.visibacare.com/identifier/practitioner/visibaid";
const SERVICE: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";

struct Ctx {
    app: TestApp,
    s: Seeded,
    bo: PractitionerId,
}

/// The contract seed with a second practitioner (Bo) on the GP service, and
/// a second tenant whose appointments must never show.
async fn setup(engine: Engine) -> Ctx {
    let app = spawn_app(engine).await;
    let mut doc = acme_seed("acme");
    let t = &mut doc["tenants"][0];
    t["practitioners"].as_array_mut().unwrap().push(json!({"key": "bo", "given": "Bo", "family": "Lind"}));
    t["healthcare_services"][0]["practitioners"] = json!(["ann", "bo"]);
    let seeded_ids = app.seed(&doc).await;
    let t = &seeded_ids["tenants"]["acme"];
    let id = |v: &Value| v.as_str().unwrap().parse::<i64>().unwrap();
    let s = Seeded {
        tenant: TenantId(id(&t["id"])),
        ann: PractitionerId(id(&t["practitioners"]["ann"])),
        gp: HealthcareServiceId(id(&t["healthcare_services"]["gp"])),
        address: AddressId(id(&t["addresses"]["obrzezna"])),
    };
    let bo = PractitionerId(id(&t["practitioners"]["bo"]));
    app.set_clock("2030-03-01T08:00:00Z").await;
    // The other tenant books the same hours.
    let other = seeded(&app, "other").await;
    book_many(&app, &other, other.ann, None, "2030-03-04T08:00:00Z", 8).await;
    Ctx { app, s, bo }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.embassy(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect()
}

/// Books `n` back-to-back 15-minute appointments of `practitioner` on the GP
/// service from `first`, through the store in one transaction (the fast way
/// to a large result set); answers their ids in order.
async fn book_many(
    app: &TestApp,
    s: &Seeded,
    practitioner: PractitionerId,
    patient: Option<i64>,
    first: &str,
    n: usize,
) -> Vec<String> {
    let start: jiff::Timestamp = first.parse().unwrap();
    let drafts: Vec<Appointment> = (0..n)
        .map(|i| {
            let from = start + jiff::SignedDuration::from_mins(15 * i as i64);
            let to = from + jiff::SignedDuration::from_mins(15);
            let mut a = draft(s, practitioner, None, &from.to_string(), &to.to_string());
            if let Some(p) = patient {
                a.participants.push(Participant {
                    who: ParticipantWho::Patient(PatientId(p)),
                    roles: vec![],
                    video: None,
                    required: None,
                    status: None,
                });
            }
            a
        })
        .collect();
    let tenant: TenantId = s.tenant;
    let now = "2030-03-01T08:00:00Z".parse().unwrap();
    app.store
        .write(move |c| {
            Box::pin(async move {
                let mut out = Vec::with_capacity(drafts.len());
                for mut a in drafts {
                    a.id = appointments::new_id(c).await?;
                    out.push(appointments::create(c, tenant, a, now).await?.id.to_string());
                }
                Ok(out)
            })
        })
        .await
        .unwrap()
}

async fn create_patient(app: &TestApp, given: &str, phone: &str) -> String {
    let body = json!({"resourceType": "Patient", "name": [{"text": format!("{given} Holm"), "family": "Holm", "given": [given]}],
        "telecom": [{"system": "phone", "value": phone}]});
    let r = send(app, Method::POST, "/Patient", &body).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Books through the Embassy API (the path every client takes).
async fn book(ctx: &Ctx, practitioner: PractitionerId, patient: &str, start: &str, end: &str) -> String {
    let body = json!({
        "resourceType": "Appointment", "status": "booked", "start": start, "end": end,
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
             "actor": {"type": "Practitioner", "identifier": {"system": PRACT_VISIBA, "value": practitioner.to_string()}}},
            {"actor": {"type": "Patient", "identifier": {"system": PATIENT_VISIBA, "value": patient}}},
            {"actor": {"type": "HealthcareService", "identifier": {"system": SERVICE, "value": ctx.s.gp.to_string()}}}
        ]
    });
    let r = send(&ctx.app, Method::POST, "/Appointment", &body).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

/// Every page of a search from `first`, following the `next` links: the ids
/// in the order they came, and each page's bundle.
async fn walk(app: &TestApp, first: &str) -> (Vec<String>, Vec<Value>) {
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = app.url(&format!("/embassy{first}"));
    loop {
        let r = app.client.get(&url).header("X-Visiba-Care-API-Key", "emb-acme-1").send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        let page: Value = r.json().await.unwrap();
        seen.extend(ids(&page));
        let next = page["link"].as_array().and_then(|l| l.iter().find(|l| l["relation"] == "next")).cloned();
        pages.push(page);
        match next {
            Some(l) => url = l["url"].as_str().unwrap().to_owned(),
            None => break,
        }
        assert!(pages.len() < 200, "the walk ends");
    }
    (seen, pages)
}

async fn each_search_finds_its_appointments_cancelled_included(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let (ann, bo) = (ctx.s.ann, ctx.bo);
    let eva = create_patient(app, "Eva", "+46 70 123 45 67").await;
    let olle = create_patient(app, "Olle", "0709876543").await;
    let a1 = book(&ctx, ann, &eva, "2030-03-04T09:00:00Z", "2030-03-04T09:15:00Z").await;
    let a2 = book(&ctx, ann, &eva, "2030-03-04T09:15:00Z", "2030-03-04T09:30:00Z").await;
    let a3 = book(&ctx, ann, &olle, "2030-03-04T09:30:00Z", "2030-03-04T09:45:00Z").await;
    let b1 = book(&ctx, bo, &eva, "2030-03-04T10:00:00Z", "2030-03-04T10:30:00Z").await;
    let late = book(&ctx, bo, &olle, "2030-03-12T10:00:00Z", "2030-03-12T10:30:00Z").await;
    let r = patch_appointment(app, &a2, &[("/status", json!({"valueCode": "cancelled"}))]).await;
    assert_eq!(r.status(), 200);
    let week = "start=2030-03-04T00:00:00Z&end=2030-03-11T00:00:00Z";
    // By service over one week: in start order, the cancelled one too, the
    // other tenant's never.
    let by_service = get(app, &format!("/Appointment?healthcareServiceId={}&{week}", ctx.s.gp)).await;
    assert_eq!(ids(&by_service), vec![a1.clone(), a2.clone(), a3.clone(), b1.clone()]);
    assert_eq!(by_service["total"], 4);
    crate::fhir_schema::check_embassy(&by_service);
    // `end` bounds the appointment's end: the one ending after it is out.
    let until = get(
        app,
        &format!("/Appointment?healthcareServiceId={}&start=2030-03-04T09:00:00Z&end=2030-03-04T10:15:00Z", ctx.s.gp),
    )
    .await;
    assert_eq!(ids(&until), vec![a1.clone(), a2.clone(), a3.clone()]);
    // By patient, over all time and over the week.
    assert_eq!(
        ids(&get(app, &format!("/Appointment?patientId={eva}")).await),
        vec![a1.clone(), a2.clone(), b1.clone()]
    );
    assert_eq!(ids(&get(app, &format!("/Appointment?patientId={olle}&{week}")).await), vec![a3.clone()]);
    // By practitioner: every appointment Ann takes part in, cancelled too.
    let by_ann = get(app, &format!("/Appointment?practitionerId={ann}")).await;
    assert_eq!(ids(&by_ann), vec![a1.clone(), a2.clone(), a3.clone()]);
    assert_eq!(by_ann["entry"][1]["resource"]["status"], "cancelled");
    assert_eq!(ids(&get(app, &format!("/Appointment?practitionerId={bo}")).await), vec![b1.clone(), late.clone()]);
    assert_eq!(ids(&get(app, &format!("/Appointment?practitionerId={bo}&{week}")).await), vec![b1.clone()]);
    // Filters combine: all must hold.
    assert_eq!(ids(&get(app, &format!("/Appointment?practitionerId={bo}&patientId={eva}")).await), vec![b1.clone()]);
    assert_eq!(ids(&get(app, &format!("/Appointment?practitionerId={ann}&patientId={olle}")).await), vec![a3.clone()]);
    // POST `_search` with a JSON body takes the same parameters.
    let posted: Value = app
        .embassy(Method::POST, "/Appointment/_search")
        .json(&json!({"practitionerId": ann.get(), "start": "2030-03-04T09:10:00Z", "end": "2030-03-04T10:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&posted), vec![a2.clone(), a3.clone()]);
    // A rescheduled appointment is found at its new time.
    let r = patch_appointment(
        app,
        &a3,
        &[
            ("/start", json!({"valueDateTime": "2030-03-05T09:30:00Z"})),
            ("/end", json!({"valueDateTime": "2030-03-05T09:45:00Z"})),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let day = "start=2030-03-05T00:00:00Z&end=2030-03-06T00:00:00Z";
    assert_eq!(ids(&get(app, &format!("/Appointment?practitionerId={ann}&{day}")).await), vec![a3.clone()]);
    // By phone, in every form a client may send: E.164 with `+` (escaped, or
    // raw, where a query string turns it into a space), `00`, spaces and
    // dashes, without the `+`; and the patient's own form.
    for phone in ["%2B46701234567", "+46701234567", "+46%2070%20123%2045%2067", "0046701234567", "46701234567"] {
        let found = get(app, &format!("/Appointment?patientPhone={phone}")).await;
        assert_eq!(ids(&found), vec![a1.clone(), a2.clone(), b1.clone()], "patientPhone={phone}");
    }
    for phone in ["0709876543", "070-987%2065%2043"] {
        let found = get(app, &format!("/Appointment?patientPhone={phone}")).await;
        assert_eq!(ids(&found), vec![a3.clone(), late.clone()], "patientPhone={phone}");
    }
    // A number nobody has: an empty bundle, total 0.
    let nobody = get(app, "/Appointment?patientPhone=%2B46700000000").await;
    assert_eq!((nobody["total"].clone(), ids(&nobody).len()), (json!(0), 0));
    // Phone and patient id must point at the same patient.
    assert_eq!(ids(&get(app, &format!("/Appointment?patientPhone=0709876543&patientId={eva}")).await).len(), 0);
    // The Patient search by the phone identifier, in the same forms.
    for phone in ["%2B46701234567", "+46701234567", "0046701234567"] {
        let found = get(app, &format!("/Patient?identifier={PATIENT_PHONE}|{phone}")).await;
        assert_eq!(ids(&found), vec![eva.clone()], "identifier phone {phone}");
    }
    // Two patients sharing a number: the appointments of both, in order.
    let mia = create_patient(app, "Mia", "070 987 65 43").await;
    let m1 = book(&ctx, bo, &mia, "2030-03-06T10:00:00Z", "2030-03-06T10:30:00Z").await;
    let shared = get(app, "/Appointment?patientPhone=0709876543").await;
    assert_eq!(ids(&shared), vec![a3.clone(), m1.clone(), late.clone()]);
    assert_eq!(shared["total"], 3);
    let paged = get(app, "/Appointment?patientPhone=0709876543&_count=2").await;
    let next = paged["link"][0]["url"].as_str().unwrap();
    let rest = get(app, next.split("/embassy").nth(1).unwrap()).await;
    assert_eq!((ids(&paged), ids(&rest)), (vec![a3.clone(), m1.clone()], vec![late.clone()]));
    // A practitioner of another tenant, or none, is not found.
    let stranger = seeded(app, "other").await.ann;
    expect_error(
        app.embassy(Method::GET, &format!("/Appointment?practitionerId={stranger}")).send().await.unwrap(),
        422,
        "PractitionerNotFound",
    )
    .await;
    expect_error(
        app.embassy(Method::GET, "/Appointment?practitionerId=x").send().await.unwrap(),
        422,
        "PractitionerNotFound",
    )
    .await;
    ctx.app.stop().await;
}

async fn paging_walks_every_match_once_in_order(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let mut expected = book_many(app, &ctx.s, ctx.s.ann, None, "2030-03-04T08:00:00Z", 23).await;
    // Bo at the same starts: ties on start are ordered by id.
    let bo = book_many(app, &ctx.s, ctx.bo, None, "2030-03-04T08:00:00Z", 23).await;
    let mut all: Vec<(String, usize)> = expected.iter().cloned().zip(0..).chain(bo.iter().cloned().zip(0..)).collect();
    all.sort_by_key(|(id, i)| (*i, id.parse::<i64>().unwrap()));
    let both: Vec<String> = all.into_iter().map(|(id, _)| id).collect();
    // Cancel three of Ann's: still found by practitioner.
    for id in [&expected[0], &expected[11], &expected[22]] {
        assert_eq!(patch_appointment(app, id, &[("/status", json!({"valueCode": "cancelled"}))]).await.status(), 200);
    }
    let week = "start=2030-03-04T00:00:00Z&end=2030-03-11T00:00:00Z";
    let (seen, pages) = walk(app, &format!("/Appointment?healthcareServiceId={}&{week}&_count=7", ctx.s.gp)).await;
    assert_eq!(seen, both, "every match once, in (start, id) order");
    assert_eq!(pages.len(), 7, "46 matches in pages of 7");
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p["total"], 46, "the total of the whole set on every page");
        if let Some(next) = p["link"][0]["url"].as_str() {
            assert!(next.contains(&format!("skip={}", 7 * (i + 1))), "the spec's skip stays in the link: {next}");
            assert!(next.contains("_cursor="), "{next}");
        }
    }
    // `skip` alone (a client counting itself) gives the same pages.
    let second = get(app, &format!("/Appointment?healthcareServiceId={}&{week}&_count=7&skip=7", ctx.s.gp)).await;
    assert_eq!(ids(&second), both[7..14].to_vec());
    let beyond = get(app, &format!("/Appointment?healthcareServiceId={}&{week}&skip=46", ctx.s.gp)).await;
    assert_eq!((ids(&beyond).len(), beyond["total"].clone(), beyond.get("link").is_none()), (0, json!(46), true));
    // By practitioner, no range, the cancelled ones included.
    let (seen, _) = walk(app, &format!("/Appointment?practitionerId={}&_count=5", ctx.s.ann)).await;
    assert_eq!(seen, expected);
    // A booking made during a walk, before the walk's position, does not
    // shift the pages after it: nothing is seen twice.
    let first: Value = get(app, &format!("/Appointment?practitionerId={}&_count=5", ctx.s.ann)).await;
    let next = first["link"][0]["url"].as_str().unwrap().to_owned();
    let earlier = book_many(app, &ctx.s, ctx.s.ann, None, "2030-03-03T08:00:00Z", 1).await;
    let (rest, _) = walk(app, next.split("/embassy").nth(1).unwrap()).await;
    let mut walked = ids(&first);
    walked.extend(rest);
    assert_eq!(walked, expected, "the earlier booking is not in the rest of this walk, nothing twice");
    expected.insert(0, earlier[0].clone());
    let (seen, _) = walk(app, &format!("/Appointment?practitionerId={}&_count=30", ctx.s.ann)).await;
    assert_eq!(seen, expected);
    ctx.app.stop().await;
}

async fn total_is_exact_up_to_the_cap_then_left_out(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let cap = usize::try_from(TOTAL_CAP).unwrap();
    let patient = create_patient(app, "Eva", "0701234567").await;
    let pid: i64 = patient.parse().unwrap();
    let booked = book_many(app, &ctx.s, ctx.s.ann, Some(pid), "2030-03-04T00:00:00Z", cap).await;
    let range = "start=2030-03-04T00:00:00Z&end=2030-03-20T00:00:00Z";
    let searches = [
        format!("healthcareServiceId={}&{range}", ctx.s.gp),
        format!("practitionerId={}", ctx.s.ann),
        format!("patientId={patient}"),
        "patientPhone=0701234567".to_owned(),
    ];
    for q in &searches {
        let at_cap = get(app, &format!("/Appointment?{q}")).await;
        assert_eq!(at_cap["total"], TOTAL_CAP, "exact up to the cap: {q}");
    }
    // One more: past the cap the total is left out (FHIR: given only when
    // known), the pages still say there is more.
    let extra = book_many(app, &ctx.s, ctx.s.ann, Some(pid), "2030-03-15T00:00:00Z", 1).await;
    for q in &searches {
        let past = get(app, &format!("/Appointment?{q}")).await;
        assert!(past.get("total").is_none(), "no total past the cap: {q} {}", past["total"]);
        assert_eq!(ids(&past).len(), 30);
        assert!(past["link"][0]["url"].is_string());
        crate::fhir_schema::check_embassy(&past);
        // `_total=accurate` counts them all; `_total=none` does not count.
        let exact = get(app, &format!("/Appointment?{q}&_total=accurate&_count=0")).await;
        assert_eq!((exact["total"].clone(), ids(&exact).len()), (json!(cap + 1), 0), "{q}");
        assert!(get(app, &format!("/Appointment?{q}&_total=none")).await.get("total").is_none());
    }
    // Every one of them reachable through the links, once.
    let (seen, _) = walk(app, &format!("/Appointment?practitionerId={}", ctx.s.ann)).await;
    let mut all = booked;
    all.extend(extra);
    assert_eq!(seen, all);
    expect_error(
        app.embassy(Method::GET, &format!("/Appointment?practitionerId={}&_total=some", ctx.s.ann))
            .send()
            .await
            .unwrap(),
        422,
        "InvalidParameter",
    )
    .await;
    ctx.app.stop().await;
}

async fn unbounded_or_malformed_ranges_answer_the_spec_codes(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let gp = ctx.s.gp;
    let ann = ctx.s.ann;
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("healthcareServiceId={gp}&start=2030-03-04T00:00:00Z"), 422, "StartAndEndTimeIsRequired"),
        (format!("practitionerId={ann}&end=2030-03-04T00:00:00Z"), 422, "StartAndEndTimeIsRequired"),
        (
            format!("practitionerId={ann}&start=2030-03-05T00:00:00Z&end=2030-03-05T00:00:00Z"),
            422,
            "StartTimeMustOccurBeforeEndTime",
        ),
        (format!("healthcareServiceId={gp}&start=tomorrow&end=2030-03-05T00:00:00Z"), 400, "InvalidParameter"),
        (
            format!("healthcareServiceId={gp}&start=2030-03-04T00:00:00Z&end=2030-13-05T00:00:00Z"),
            400,
            "InvalidParameter",
        ),
        (
            format!("practitionerId={ann}&start=2030-03-04T00:00:00Z&end=2030-03-05T00:00:59Z"),
            422,
            "EndTimeMustNotHaveSecondsOrMillisecondsSet",
        ),
        (format!("practitionerId={ann}&_cursor=abc"), 422, "InvalidParameter"),
        (format!("practitionerId={ann}&_cursor=1.x"), 422, "InvalidParameter"),
        ("start=2030-03-04T00:00:00Z&end=2030-03-05T00:00:00Z".into(), 422, "ParticipantFilterRequired"),
    ];
    for (q, status, code) in cases {
        expect_error(app.embassy(Method::GET, &format!("/Appointment?{q}")).send().await.unwrap(), status, code).await;
    }
    ctx.app.stop().await;
}

on_both_engines!(
    each_search_finds_its_appointments_cancelled_included,
    paging_walks_every_match_once_in_order,
    total_is_exact_up_to_the_cap_then_left_out,
    unbounded_or_malformed_ranges_answer_the_spec_codes,
);
