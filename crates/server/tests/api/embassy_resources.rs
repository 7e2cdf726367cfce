//! Embassy's resources (spec 001): HealthcareService, Practitioner,
//! CodeSystem, Patient and Appointment, every documented rule and error code.

use crate::emb::{expect_error, send};
use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use crate::receiver::Receiver;
use reqwest::Method;
use serde_json::{Value, json};

const NID_SE: &str = "http://schema.visibacare.com/identifier/nationalidentificationnumber/se";
const PATIENT_NID: &str = "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber";
const PATIENT_PHONE: &str = "http://schema.visibacare.com/identifier/patient/phonenumber";
const PATIENT_VISIBA: &str = "http://schema.visibacare.com/identifier/patient/visibaid";
const PRACT_HSA: &str = "http://schema.visibacare.com/identifier/practitioner/hsaid";
const PRACT_VISIBA: &str = "http://schema.visibacare.com/identifier/practitioner/visibaid";
const PRACT_EMAIL: &str = "http://schema.visibacare.com/identifier/practitioner/email";
const SERVICE: &str = "http://schema.visibacare.com/identifier/healthcaresservice/visibaid";

struct Ctx {
    app: TestApp,
    gp: String,
    ann: String,
    bo: String,
}

/// The contract seed plus a second practitioner (Bo, no privileges, not on
/// the GP service), a second service with a list price, and a strict tenant.
async fn setup(engine: Engine) -> Ctx {
    let app = spawn_app(engine).await;
    let mut doc = acme_seed("acme");
    let t = &mut doc["tenants"][0];
    t["practitioners"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "bo", "given": "Bo", "family": "Lind", "email": "bo@acme.test"}));
    t["healthcare_services"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "paid", "name": "Paid visits", "practitioners": ["ann", "bo"],
        "list_price": {"amount": 5.55, "currency": "EUR"}, "digital": true}));
    t["healthcare_services"]
        .as_array_mut()
        .unwrap()
        .push(json!({"key": "clinic", "name": "Clinic visits", "practitioners": ["ann"], "digital": false}));
    let mut strict = acme_seed("strict");
    let s = &mut strict["tenants"][0];
    s["settings"] = json!({"national_id_required": true, "phone_is_identifier": true, "min_booking_notice_minutes": 60,
                            "cancel_cutoff_minutes": 120, "reschedule_cutoff_minutes": 120});
    let ids = app.seed(&doc).await;
    app.seed(&strict).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let a = &ids["tenants"]["acme"];
    Ctx {
        gp: a["healthcare_services"]["gp"].as_str().unwrap().into(),
        ann: a["practitioners"]["ann"].as_str().unwrap().into(),
        bo: a["practitioners"]["bo"].as_str().unwrap().into(),
        app,
    }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let r = app.embassy(Method::GET, path).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.unwrap()
}

fn patient_body(given: &str, family: &str, nid: Option<&str>, phone: Option<&str>, email: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient", "name": [{"text": format!("{given} {family}"), "family": family, "given": [given]}]});
    if let Some(n) = nid {
        p["identifier"] = json!([{"system": PATIENT_NID, "value": n}]);
    }
    let mut telecom = vec![];
    if let Some(ph) = phone {
        telecom.push(json!({"system": "phone", "value": ph}));
    }
    if let Some(e) = email {
        telecom.push(json!({"system": "email", "value": e}));
    }
    if !telecom.is_empty() {
        p["telecom"] = Value::Array(telecom);
    }
    p
}

async fn create_patient(app: &TestApp, body: &Value) -> Value {
    let r = send(app, Method::POST, "/Patient", body).await;
    assert_eq!(r.status(), 200, "POST /Patient answers 200 as the spec says");
    assert!(r.headers().get("location").is_some());
    r.json().await.unwrap()
}

fn appointment(ctx: &Ctx, start: &str, end: &str, patient_nid: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "status": "booked",
        "description": "Follow-up",
        "start": start,
        "end": end,
        "participant": [
            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
             "actor": {"type": "Practitioner", "identifier": {"system": PRACT_HSA, "value": "SE2321000016-0001"}}},
            {"actor": {"type": "Patient", "identifier": {"system": NID_SE, "value": patient_nid}}},
            {"actor": {"type": "HealthcareService", "identifier": {"system": SERVICE, "value": ctx.gp}}}
        ]
    })
}

async fn catalog_reads_and_searches(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let services = get(app, "/HealthcareService").await;
    assert_eq!(services["total"], 3);
    assert_eq!(services["entry"][0]["search"]["mode"], "match");
    assert_eq!(services["entry"][0]["fullUrl"], format!("{}/embassy/HealthcareService/{}", app.base, ctx.gp));
    let one = get(app, &format!("/HealthcareService/{}", ctx.gp)).await;
    assert_eq!((one["resourceType"].as_str(), one["name"].as_str()), (Some("HealthcareService"), Some("GP online")));
    expect_error(
        app.embassy(Method::GET, "/HealthcareService/99999").send().await.unwrap(),
        404,
        "HealthcareServiceNotFound",
    )
    .await;
    // Paging: one per page, with a working next link.
    let first = get(app, "/HealthcareService?_count=1").await;
    assert_eq!(first["entry"].as_array().unwrap().len(), 1);
    let next = first["link"][0]["url"].as_str().unwrap();
    assert_eq!(first["link"][0]["relation"], "next");
    let path = next.split("/embassy").nth(1).unwrap();
    let second = get(app, path).await;
    assert_ne!(second["entry"][0]["resource"]["id"], first["entry"][0]["resource"]["id"]);
    let last = get(app, "/HealthcareService?skip=2&_count=1").await;
    assert!(last.get("link").is_none(), "no next link on the last page");
    let capped = get(app, "/HealthcareService?_count=500").await;
    assert_eq!(capped["entry"].as_array().unwrap().len(), 3);
    expect_error(
        app.embassy(Method::GET, "/HealthcareService?skip=-1").send().await.unwrap(),
        422,
        "SkipMustBePositive",
    )
    .await;
    expect_error(app.embassy(Method::GET, "/Practitioner?_count=-5").send().await.unwrap(), 422, "CountMustBePositive")
        .await;
    // _id wins over other parameters; POST _search takes a form body.
    let by_id = get(app, &format!("/HealthcareService?_id={}&skip=0", ctx.gp)).await;
    assert_eq!(by_id["total"], 1);
    let posted: Value = app
        .embassy(Method::POST, "/HealthcareService/_search")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("_id={}", ctx.gp))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["total"], 1);
    // Practitioners.
    let on_gp = get(app, &format!("/Practitioner?healthcareServiceId={}", ctx.gp)).await;
    assert_eq!(on_gp["total"], 1);
    let ann = &on_gp["entry"][0]["resource"];
    assert_eq!(ann["id"], ctx.ann);
    assert_eq!(ann["name"][0]["text"], "Ann Berg");
    assert_eq!(ann["telecom"][0]["value"], "ann@acme.test");
    assert!(
        ann["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["system"] == PRACT_HSA && i["value"] == "SE2321000016-0001")
    );
    assert!(
        ann["identifier"].as_array().unwrap().iter().any(|i| i["system"] == NID_SE && i["value"] == "197001011233")
    );
    assert_eq!(get(app, "/Practitioner").await["total"], 2);
    assert_eq!(get(app, "/Practitioner?hasCommunicationPrivileges=false").await["entry"][0]["resource"]["id"], ctx.bo);
    assert_eq!(get(app, "/Practitioner?hasCommunicationPrivileges=true").await["total"], 1);
    assert_eq!(get(app, &format!("/Practitioner/{}", ctx.bo)).await["name"][0]["family"], "Lind");
    expect_error(app.embassy(Method::GET, "/Practitioner/1").send().await.unwrap(), 404, "PractitionerNotFound").await;
    expect_error(
        app.embassy(Method::GET, "/Practitioner?healthcareServiceId=424242").send().await.unwrap(),
        422,
        "HealthcareServiceIdNotFound",
    )
    .await;
    // Reason codes.
    let cs = get(app, &format!("/CodeSystem/HealthcareService.{}.ReasonCode", ctx.gp)).await;
    assert_eq!(cs["resourceType"], "CodeSystem");
    assert_eq!(cs["concept"], json!([{"code": "1", "display": "Cough"}]));
    expect_error(app.embassy(Method::GET, "/CodeSystem/Nothing").send().await.unwrap(), 404, "CodeSystemNotFound")
        .await;
    // Another tenant's ids are not found.
    let other = app
        .client
        .get(app.url(&format!("/embassy/HealthcareService/{}", ctx.gp)))
        .header("X-Visiba-Care-API-Key", "emb-strict-1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    ctx.app.stop().await;
}

async fn patients_create_read_patch_search(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let created = create_patient(
        app,
        &patient_body("Eva", "Holm", Some("19800101-1231"), Some("070-123 45 67"), Some("Eva@Example.TEST")),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created,
        json!({
            "resourceType": "Patient",
            "id": id,
            "identifier": [{"system": PATIENT_NID, "value": "198001011231"}],
            "name": [{"text": "Eva Holm", "family": "Holm", "given": ["Eva"]}],
            "telecom": [
                {"extension": [{"url": "https://schema.visibacare.com/fhir/StructureDefinition/patient-consent-extension", "valueBoolean": true}],
                 "system": "phone", "value": "0701234567"},
                {"extension": [{"url": "https://schema.visibacare.com/fhir/StructureDefinition/patient-consent-extension", "valueBoolean": true}],
                 "system": "email", "value": "Eva@example.test"}
            ],
            "address": [{"country": "SE"}]
        })
    );
    assert_eq!(get(app, &format!("/Patient/{id}")).await, created);
    expect_error(app.embassy(Method::GET, "/Patient/424242").send().await.unwrap(), 404, "PatientNotFound").await;
    // Search by every supported identifier, and _id.
    for q in [
        format!("identifier={NID_SE}|198001011231"),
        format!("identifier={PATIENT_PHONE}|0701234567"),
        format!("identifier={PATIENT_VISIBA}|{id}"),
        format!("_id={id}"),
    ] {
        let b = get(app, &format!("/Patient?{}", q.replace('|', "%7C"))).await;
        assert_eq!(b["total"], 1, "{q}");
        assert_eq!(b["entry"][0]["resource"]["id"], id.as_str());
    }
    assert_eq!(get(app, &format!("/Patient?identifier={}%7C199002022342", NID_SE)).await["total"], 0);
    expect_error(
        app.embassy(Method::GET, "/Patient?identifier=http://x/y%7C1").send().await.unwrap(),
        422,
        "PatientIdentifierNotSupported",
    )
    .await;
    expect_error(
        app.embassy(Method::GET, &format!("/Patient?identifier={NID_SE}%7C")).send().await.unwrap(),
        422,
        "PatientIdentifierValueNotDefined",
    )
    .await;
    expect_error(
        app.embassy(Method::GET, &format!("/Patient?identifier={NID_SE}%7C123")).send().await.unwrap(),
        422,
        "PatientIdentifierValueInvalid",
    )
    .await;
    // PATCH phone, e-mail and names.
    let patch = json!({"resourceType": "Parameters", "parameter": [
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/telecom.where(system = 'phone')"}, {"name": "value", "valueString": "+46 70 999 88 77"}]},
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/telecom.where(system = 'email')"}, {"name": "value", "valueString": "eva@holm.test"}]},
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/name.given"}, {"name": "value", "valueString": "Evelina"}]},
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/name.family"}, {"name": "value", "valueString": "Holmberg"}]}
    ]});
    let r = send(app, Method::PATCH, &format!("/Patient/{id}"), &patch).await;
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["name"][0]["text"], "Evelina Holmberg");
    assert_eq!(patched["telecom"][0]["value"], "+46709998877");
    assert_eq!(patched["telecom"][1]["value"], "eva@holm.test");
    let op = |path: &str, value: &str| {
        json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path}, {"name": "value", "valueString": value}]}]})
    };
    expect_error(
        send(app, Method::PATCH, &format!("/Patient/{id}"), &op("/telecom.where(system = 'phone')", "nope")).await,
        422,
        "PatientInvalidPhone",
    )
    .await;
    expect_error(
        send(app, Method::PATCH, &format!("/Patient/{id}"), &op("/telecom.where(system = 'email')", "nope")).await,
        422,
        "PatientInvalidEmail",
    )
    .await;
    expect_error(
        send(app, Method::PATCH, &format!("/Patient/{id}"), &op("/birthDate", "2000-01-01")).await,
        422,
        "ParameterTypeAndPathCombinationNotSupported",
    )
    .await;
    expect_error(
        send(app, Method::PATCH, &format!("/Patient/{id}"), &json!({"resourceType": "Parameters", "parameter": []}))
            .await,
        422,
        "ParametersCannotBeEmpty",
    )
    .await;
    expect_error(
        send(
            app,
            Method::PATCH,
            &format!("/Patient/{id}"),
            &json!({"resourceType": "Parameters", "parameter": [{"name": "x"}]}),
        )
        .await,
        422,
        "OnlyOperationParametersSupported",
    )
    .await;
    expect_error(send(app, Method::PATCH, "/Patient/424242", &op("/name.given", "X")).await, 404, "PatientNotFound")
        .await;
    // Create errors.
    let cases: Vec<(Value, &str)> = vec![
        (json!({"resourceType": "Patient"}), "PatientNameRequired"),
        (json!({"resourceType": "Patient", "name": [{"given": ["Only"]}]}), "PatientNameInvalid"),
        (patient_body("A", "B", None, Some("not a phone"), None), "PatientInvalidPhone"),
        (patient_body("A", "B", None, None, Some("no-at-sign")), "PatientInvalidEmail"),
        (patient_body("A", "B", Some("19800101-1234"), None, None), "PatientCreateInvalidNationalIdentityNumber"),
        (patient_body("A", "B", Some("198001011231"), None, None), "PatientCreateConflictingClientFound"),
        (
            json!({"resourceType": "Patient", "name": [{"given": ["A"], "family": "B"}], "telecom": [{"system": "phone", "value": "0701112233", "use": "old"}]}),
            "ContactPointUseNotSupported",
        ),
        (
            json!({"resourceType": "Patient", "name": [{"given": ["A"], "family": "B"}], "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "fr"}]}}]}),
            "PatientCreateLanguageCodeNotSupported",
        ),
    ];
    for (body, code) in cases {
        expect_error(send(app, Method::POST, "/Patient", &body).await, 422, code).await;
    }
    expect_error(
        send(app, Method::POST, "/Patient", &json!({"resourceType": "Practitioner"})).await,
        400,
        "InvalidFhirResource",
    )
    .await;
    // The strict tenant: national id and phone required; phone is an identifier.
    let strict = |m: Method, p: &str| {
        app.client.request(m, app.url(&format!("/embassy{p}"))).header("X-Visiba-Care-API-Key", "emb-strict-1")
    };
    let post =
        |b: Value| strict(Method::POST, "/Patient").header("content-type", "application/fhir+json").json(&b).send();
    expect_error(
        post(patient_body("A", "B", None, Some("0701112233"), None)).await.unwrap(),
        422,
        "PatientNationalIdentityNumberRequired",
    )
    .await;
    let mut other_system = patient_body("A", "B", None, Some("0701112233"), None);
    other_system["identifier"] = json!([{"system": "http://example.com/mrn", "value": "1"}]);
    expect_error(post(other_system).await.unwrap(), 422, "PatientCreateInvalidIdentifierSystem").await;
    expect_error(
        post(patient_body("A", "B", Some("199002022342"), None, None)).await.unwrap(),
        422,
        "PatientPhoneRequired",
    )
    .await;
    let sp: Value = post(patient_body("A", "B", Some("199002022342"), Some("0701112233"), None))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    expect_error(
        post(patient_body("C", "D", Some("201003033451"), Some("0701112233"), None)).await.unwrap(),
        422,
        "PatientCreateConflictingClientFound",
    )
    .await;
    let phone_patch = strict(Method::PATCH, &format!("/Patient/{}", sp["id"].as_str().unwrap()))
        .header("content-type", "application/fhir+json")
        .json(&op("/telecom.where(system = 'phone')", "0709998877"))
        .send()
        .await
        .unwrap();
    expect_error(phone_patch, 422, "PatientPhoneUsedAsIdentifier").await;
    // Prefer.
    let minimal = app
        .embassy(Method::POST, "/Patient")
        .header("prefer", "return=minimal")
        .header("content-type", "application/fhir+json")
        .json(&patient_body("M", "N", None, None, None))
        .send()
        .await
        .unwrap();
    assert_eq!(minimal.status(), 200);
    assert!(minimal.headers().get("location").is_some());
    assert_eq!(minimal.text().await.unwrap(), "");
    let outcome: Value = app
        .embassy(Method::POST, "/Patient")
        .header("prefer", "operationOutcome")
        .header("content-type", "application/fhir+json")
        .json(&patient_body("O", "P", None, None, None))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["severity"], "information");
    ctx.app.stop().await;
}

async fn appointments_book_read_search_and_notify(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let rx = Receiver::start().await;
    let sub = send(app, Method::POST, "/Subscription", &json!({"resourceType": "Subscription", "status": "requested",
        "criteria": "x/SubscriptionTopic/1", "channel": {"type": "rest-hook", "endpoint": rx.url, "payload": "application/fhir+json"}})).await;
    assert_eq!(sub.status(), 201);
    let patient = create_patient(
        app,
        &patient_body("Eva", "Holm", Some("198001011231"), Some("0701234567"), Some("eva@holm.test")),
    )
    .await;
    let r = send(
        app,
        Method::POST,
        "/Appointment",
        &appointment(&ctx, "2030-03-05T09:00:00+01:00", "2030-03-05T09:15:00+01:00", "198001011231"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let a: Value = r.json().await.unwrap();
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("{}/embassy/Appointment/{id}", app.base));
    assert_eq!(a["status"], "booked");
    assert_eq!(a["appointmentType"]["coding"][0]["code"], "Digital");
    assert_eq!(a["start"], "2030-03-05T08:00:00Z");
    assert_eq!(a["description"], "Follow-up");
    let parts = a["participant"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0]["type"][0]["coding"][0]["code"], "PPRF");
    assert_eq!(parts[0]["actor"]["identifier"], json!({"system": PRACT_VISIBA, "value": ctx.ann}));
    assert!(parts.iter().all(|p| p["status"] == "accepted"));
    let ticket = parts[1]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("appointment-ticket-extension"))
        .unwrap();
    assert!(ticket["valueUri"].as_str().unwrap().len() >= 32, "a ticket of at least 128 bits");
    assert_eq!(parts[1]["actor"]["identifier"]["value"], patient["id"]);
    assert_eq!(parts[2]["actor"]["type"], "HealthcareService");
    assert_eq!(get(app, &format!("/Appointment/{id}")).await, a);
    // The subscription hears it, with the full URL.
    app.run_due().await;
    let notified = rx.received().last().unwrap().json();
    assert_eq!(notified["entry"][0]["resource"]["notificationEvent"][0]["focus"]["reference"], location);
    // The same time for Ann again: not available.
    let clash = send(
        app,
        Method::POST,
        "/Appointment",
        &appointment(&ctx, "2030-03-05T08:10:00Z", "2030-03-05T08:30:00Z", "198001011231"),
    )
    .await;
    expect_error(clash, 422, "AllPractionersAreNotAvailable").await;
    // Search.
    let by_service = get(app, &format!("/Appointment?healthcareServiceId={}", ctx.gp)).await;
    assert_eq!(by_service["total"], 1);
    assert_eq!(by_service["entry"][0]["fullUrl"], location);
    let window = get(
        app,
        &format!("/Appointment?healthcareServiceId={}&start=2030-03-05T00:00:00Z&end=2030-03-06T00:00:00Z", ctx.gp),
    )
    .await;
    assert_eq!(window["total"], 1);
    let outside = get(
        app,
        &format!("/Appointment?healthcareServiceId={}&start=2030-03-06T00:00:00Z&end=2030-03-07T00:00:00Z", ctx.gp),
    )
    .await;
    assert_eq!(outside["total"], 0);
    for q in [
        format!("patientId={}", patient["id"].as_str().unwrap()),
        "patientNationalIdentificationNumber=198001011231".into(),
        "patientPhone=0701234567".into(),
    ] {
        assert_eq!(get(app, &format!("/Appointment?{q}")).await["total"], 1, "{q}");
    }
    let posted: Value = app
        .embassy(Method::POST, "/Appointment/_search")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("healthcareServiceId={}", ctx.gp))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(posted["total"], 1);
    assert_eq!(
        get(app, &format!("/Appointment?_id={id}&healthcareServiceId=1")).await["total"],
        1,
        "_id overrides the rest"
    );
    let errors: Vec<(String, &str)> = vec![
        ("".into(), "ParticipantFilterRequired"),
        (format!("healthcareServiceId={}&start=2030-03-05T00:00:00Z", ctx.gp), "StartAndEndTimeIsRequired"),
        (
            format!("healthcareServiceId={}&start=2030-03-06T00:00:00Z&end=2030-03-05T00:00:00Z", ctx.gp),
            "StartTimeMustOccurBeforeEndTime",
        ),
        (
            format!("healthcareServiceId={}&start=2030-03-05T00:00:30Z&end=2030-03-06T00:00:00Z", ctx.gp),
            "StartTimeMustNotHaveSecondsOrMillisecondsSet",
        ),
        (
            format!("healthcareServiceId={}&start=2030-03-05T00:00:00Z&end=2030-03-06T00:00:00.500Z", ctx.gp),
            "EndTimeMustNotHaveSecondsOrMillisecondsSet",
        ),
        ("healthcareServiceId=4242".into(), "HealthcareServiceIdNotFound"),
        ("patientNationalIdentificationNumber=123".into(), "InvalidNationalIdentificationNumber"),
        ("patientPhone=abc".into(), "InvalidNationalIdentificationNumber"),
        (format!("healthcareServiceId={}&skip=-1", ctx.gp), "SkipMustBePositive"),
        (format!("healthcareServiceId={}&_count=x", ctx.gp), "CountMustBePositive"),
    ];
    for (q, code) in errors {
        expect_error(
            app.embassy(Method::GET, &format!("/Appointment?{}", q.replace('+', "%2B"))).send().await.unwrap(),
            422,
            code,
        )
        .await;
    }
    expect_error(app.embassy(Method::GET, "/Appointment/424242").send().await.unwrap(), 404, "AppointmentNotFound")
        .await;
    ctx.app.stop().await;
}

async fn appointment_create_error_codes(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, Some("eva@holm.test"))).await;
    let base = appointment(&ctx, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z", "198001011231");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut a = base.clone();
        f(&mut a);
        a
    };
    let guest = |rp: Value| {
        move |a: &mut Value| {
            a["contained"] = json!([rp.clone()]);
            a["participant"]
                .as_array_mut()
                .unwrap()
                .push(json!({"actor": {"reference": "#g1", "type": "RelatedPerson"}}));
        }
    };
    let rp = |extra: Value| {
        let mut g = json!({"resourceType": "RelatedPerson", "id": "g1", "name": [{"given": ["Gus"], "family": "Guest"}], "telecom": [{"system": "email", "value": "gus@guest.test"}]});
        for (k, v) in extra.as_object().unwrap() {
            g[k] = v.clone();
        }
        g
    };
    let practitioner = |system: &str, value: &str| {
        let (s, v) = (system.to_owned(), value.to_owned());
        move |a: &mut Value| a["participant"][0]["actor"]["identifier"] = json!({"system": s, "value": v})
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|a| a["status"] = json!("pending")), "OnlyBookedStatusSupported"),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("status");
            }),
            "OnlyBookedStatusSupported",
        ),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("start");
            }),
            "StartTimeIsRequired",
        ),
        (
            with(&|a| {
                a.as_object_mut().unwrap().remove("end");
            }),
            "EndTimeIsRequired",
        ),
        (with(&|a| a["start"] = json!("2030-03-05T09:00:30Z")), "StartTimeMustNotHaveSecondsOrMillisecondsSet"),
        (with(&|a| a["end"] = json!("2030-03-05T09:15:00.250Z")), "EndTimeMustNotHaveSecondsOrMillisecondsSet"),
        (with(&|a| a["end"] = json!("2030-03-05T09:00:00Z")), "InvalidDuration"),
        (
            with(&|a| {
                a["start"] = json!("2030-03-04T07:00:00Z");
                a["end"] = json!("2030-03-04T07:15:00Z");
            }),
            "TooCloseToAppointmentStart",
        ),
        (with(&|a| a["participant"][1]["actor"]["identifier"]["value"] = json!("199002022342")), "PatientNotFound"),
        (
            with(&|a| a["participant"][1]["actor"]["identifier"]["system"] = json!("http://example.com/x")),
            "PatientIdentifierNotSupported",
        ),
        (
            with(&|a| a["participant"][1]["actor"]["identifier"]["value"] = json!("")),
            "PatientIdentifierValueNotDefined",
        ),
        (
            with(&|a| a["participant"][1]["actor"]["identifier"]["value"] = json!("19800101-0000")),
            "PatientIdentifierValueInvalid",
        ),
        (
            with(&guest(json!({"resourceType": "RelatedPerson", "id": "other", "name": [{"given": ["X"]}]}))),
            "AllRelatedPersonsMustBeContained",
        ),
        (with(&guest(rp(json!({"name": [{"text": "nobody"}]})))), "RelatedPersonInvalidName"),
        (with(&guest(rp(json!({"telecom": []})))), "RelatedPersonMustHaveOneValidContactPoint"),
        (
            with(&guest(rp(json!({"telecom": [{"system": "phone", "value": "x"}]})))),
            "InvalidPhoneNumberOfRelatedPerson",
        ),
        (with(&guest(rp(json!({"telecom": [{"system": "email", "value": "x"}]})))), "InvalidEmailOfRelatedPerson"),
        (with(&guest(rp(json!({"address": [{"country": "FR"}]})))), "RelatedPersonInvalidCountry"),
        (
            with(&guest(rp(
                json!({"communication": [{"language": {"coding": [{"system": "http://hl7.org/fhir/ValueSet/languages", "code": "de"}]}}]}),
            ))),
            "RelatedPersonInvalidLanguage",
        ),
        (with(&practitioner(PRACT_EMAIL, "nobody@acme.test")), "PrimaryPerformerNotFound"),
        (with(&practitioner("http://example.com/id", "1")), "PractitionerIdentifierNotSupported"),
        (with(&practitioner(PRACT_HSA, "")), "PractitionerIdentifierValueNotDefined"),
        (with(&practitioner(PRACT_HSA, "HSA-1")), "PractitionerIdentifierValueInvalid"),
        (with(&practitioner(PRACT_VISIBA, &ctx.bo)), "PrimaryPerformerNotFoundOnHealthcareService"),
        (
            with(&|a| {
                a["participant"].as_array_mut().unwrap().push(json!({"actor": {"type": "Practitioner", "identifier": {"system": PRACT_EMAIL, "value": "ghost@acme.test"}}}))
            }),
            "PractitionerNotFound",
        ),
        (
            with(&|a| {
                a["participant"][0].as_object_mut().unwrap().remove("type");
            }),
            "ExactlyOnePractitionerShouldBePrimaryPerformer",
        ),
        (
            with(&|a| {
                a["participant"].as_array_mut().unwrap().remove(0);
            }),
            "AtleastOnePractitionerRequired",
        ),
        (
            with(&|a| a["participant"][2]["actor"]["identifier"]["system"] = json!("http://example.com/x")),
            "HealthcareServiceMustHaveVisibaCareId",
        ),
        (with(&|a| a["participant"][2]["actor"]["identifier"]["value"] = json!("4242")), "HealthcareServiceNotFound"),
        (
            with(&|a| {
                a["participant"].as_array_mut().unwrap().remove(2);
            }),
            "ExactlyOneHealthcareServiceRequired",
        ),
        (
            with(&|a| {
                a["participant"][1].as_object_mut().unwrap().remove("actor");
            }),
            "InvalidParticipants",
        ),
        (
            with(&|a| {
                a["participant"][1]["actor"].as_object_mut().unwrap().remove("type");
            }),
            "InvalidParticipants",
        ),
        (
            with(&|a| {
                a["participant"].as_array_mut().unwrap().remove(1);
            }),
            "InvalidAmountOfParticipants",
        ),
        (
            with(&|a| {
                let p = a["participant"][1].clone();
                a["participant"].as_array_mut().unwrap().push(p);
            }),
            "ParticipantError",
        ),
    ];
    for (body, code) in cases {
        expect_error(send(app, Method::POST, "/Appointment", &body).await, 422, code).await;
    }
    expect_error(
        send(app, Method::POST, "/Appointment", &json!({"resourceType": "Patient"})).await,
        400,
        "InvalidFhirResource",
    )
    .await;
    // Eleven guests are too many.
    let mut crowd = base.clone();
    let mut contained = vec![];
    for i in 0..9 {
        contained.push(json!({"resourceType": "RelatedPerson", "id": format!("g{i}"), "name": [{"given": [format!("G{i}")]}], "telecom": [{"system": "email", "value": format!("g{i}@guest.test")}]}));
        crowd["participant"]
            .as_array_mut()
            .unwrap()
            .push(json!({"actor": {"reference": format!("#g{i}"), "type": "RelatedPerson"}}));
    }
    crowd["contained"] = Value::Array(contained);
    expect_error(send(app, Method::POST, "/Appointment", &crowd).await, 422, "ParticipantError").await;
    // Nothing was booked by any refused request.
    assert_eq!(get(app, &format!("/Appointment?healthcareServiceId={}", ctx.gp)).await["total"], 0);
    ctx.app.stop().await;
}

async fn representatives_guests_and_prices(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let paid = get(app, "/HealthcareService").await["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["name"] == "Paid visits")
        .unwrap()["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, Some("eva@holm.test"))).await;
    let body = json!({
        "resourceType": "Appointment", "status": "booked",
        "start": "2030-03-06T09:00:00Z", "end": "2030-03-06T09:30:00Z",
        "contained": [
            {"resourceType": "Patient", "id": "child", "name": [{"given": ["Kid"], "family": "Holm"}],
             "identifier": [{"system": NID_SE, "value": "201003033451"}]},
            {"resourceType": "RelatedPerson", "id": "mum", "patient": {"reference": "#child", "type": "Patient"},
             "relationship": [{"coding": [{"system": "http://schema.visibacare.com/codesystem/relatedperson/relationship", "code": "Representative"}]}],
             "identifier": [{"system": "http://schema.visibacare.com/identifier/relatedperson/nationalidentificationnumber", "value": "197505054564"}],
             "name": [{"use": "old", "given": ["Old"], "family": "Name"}, {"use": "usual", "given": ["Maja"], "family": "Holm"}],
             "telecom": [{"system": "sms", "value": "0701111111"}, {"system": "phone", "value": "0702222222", "use": "work"},
                         {"system": "phone", "value": "0703333333", "use": "mobile"}, {"system": "email", "value": "maja@holm.test"}]},
            {"resourceType": "RelatedPerson", "id": "g1", "name": [{"family": "Guest"}], "telecom": [{"system": "email", "value": "g@guest.test"}]}
        ],
        "participant": [
            {"type": [{"coding": [{"code": "PPRF"}]}], "actor": {"type": "Practitioner", "identifier": {"system": PRACT_EMAIL, "value": "ann@acme.test"}}},
            {"actor": {"type": "Practitioner", "identifier": {"system": NID_SE, "value": "197001011233"}}},
            {"actor": {"type": "Patient", "identifier": {"system": PATIENT_NID, "value": "198001011231"}}},
            {"actor": {"reference": "#child", "type": "Patient"}},
            {"actor": {"reference": "#mum", "type": "RelatedPerson"}},
            {"actor": {"reference": "#g1", "type": "RelatedPerson"}},
            {"actor": {"type": "HealthcareService", "identifier": {"system": SERVICE, "value": paid}}}
        ]
    });
    // Ann appears twice (by e-mail and by national id): a duplicate.
    expect_error(send(app, Method::POST, "/Appointment", &body).await, 422, "ParticipantError").await;
    let mut ok = body.clone();
    ok["participant"][1]["actor"]["identifier"] = json!({"system": PRACT_EMAIL, "value": "bo@acme.test"});
    let r = send(app, Method::POST, "/Appointment", &ok).await;
    assert_eq!(r.status(), 201);
    let a: Value = r.json().await.unwrap();
    let contained = a["contained"].as_array().unwrap();
    let mum = contained.iter().find(|c| c["resourceType"] == "RelatedPerson" && c["patient"].is_object()).unwrap();
    assert_eq!(mum["name"][0]["given"][0], "Maja", "the usual name is chosen");
    assert!(
        mum["telecom"].as_array().unwrap().iter().any(|t| t["value"] == "0703333333"),
        "phone over sms, mobile first: {mum}"
    );
    assert_eq!(mum["relationship"][0]["coding"][0]["code"], "Representative");
    let parts = a["participant"].as_array().unwrap();
    let rep = parts.iter().find(|p| p["actor"]["reference"] == format!("#{}", mum["id"].as_str().unwrap())).unwrap();
    assert!(
        rep["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"].as_str().unwrap().ends_with("appointment-ticket-extension")),
        "the representative holds the ticket"
    );
    let child = parts.iter().find(|p| p["actor"]["type"] == "Patient" && p["actor"]["reference"].is_string()).unwrap();
    assert!(child.get("extension").is_none(), "a represented patient has no ticket of its own");
    let eva = parts.iter().find(|p| p["actor"]["type"] == "Patient" && p["actor"]["identifier"].is_object()).unwrap();
    let price = eva["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"].as_str().unwrap().ends_with("list-price-extension"))
        .unwrap();
    assert_eq!(price["valueMoney"], json!({"value": 5.55, "currency": "EUR"}));
    // The represented child now exists as a patient.
    assert_eq!(get(app, &format!("/Patient?identifier={NID_SE}%7C201003033451")).await["total"], 1);
    // A physical service books Physical appointments.
    let clinic = get(app, "/HealthcareService").await["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["name"] == "Clinic visits")
        .unwrap()["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut physical = appointment(&ctx, "2030-03-07T09:00:00Z", "2030-03-07T09:15:00Z", "198001011231");
    physical["participant"][2]["actor"]["identifier"]["value"] = json!(clinic);
    let p: Value = send(app, Method::POST, "/Appointment", &physical).await.json().await.unwrap();
    assert_eq!(p["appointmentType"]["coding"][0]["code"], "Physical");
    // Representative errors.
    let mut orphan = ok.clone();
    orphan["contained"][1]["patient"]["reference"] = json!("#nobody");
    expect_error(send(app, Method::POST, "/Appointment", &orphan).await, 422, "PatientOfRelatedPersonNotFound").await;
    let mut nameless = ok.clone();
    nameless["contained"][0]["name"] = json!([{"text": "?"}]);
    expect_error(send(app, Method::POST, "/Appointment", &nameless).await, 422, "NameOfPatientOfRelatedPersonInvalid")
        .await;
    let mut no_nid = ok.clone();
    no_nid["contained"][0].as_object_mut().unwrap().remove("identifier");
    expect_error(
        send(app, Method::POST, "/Appointment", &no_nid).await,
        422,
        "NationalIdentificationOfPatientOfRelatedPersonInvalid",
    )
    .await;
    let mut bad_rep_nid = ok.clone();
    bad_rep_nid["contained"][1]["identifier"][0]["value"] = json!("123");
    expect_error(send(app, Method::POST, "/Appointment", &bad_rep_nid).await, 422, "InvalidNationalIdentityNumber")
        .await;
    // A new representative (unknown identifier) is validated in full.
    let mut one_name = ok.clone();
    one_name["contained"][1]["name"] = json!([{"given": ["Maja"]}]);
    one_name["contained"][1]["identifier"][0]["value"] = json!("198507075672");
    expect_error(send(app, Method::POST, "/Appointment", &one_name).await, 422, "RelatedPersonInvalidName").await;
    ctx.app.stop().await;
}

async fn appointment_cancel_and_reschedule(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, Some("eva@holm.test"))).await;
    let make = |s: &str, e: &str| appointment(&ctx, s, e, "198001011231");
    let a: Value = send(app, Method::POST, "/Appointment", &make("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z"))
        .await
        .json()
        .await
        .unwrap();
    let b: Value = send(app, Method::POST, "/Appointment", &make("2030-03-05T10:00:00Z", "2030-03-05T10:15:00Z"))
        .await
        .json()
        .await
        .unwrap();
    let (ida, idb) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
    let op = |path: &str, value: Value| {
        let mut part = json!({"name": "value"});
        for (k, v) in value.as_object().unwrap() {
            part[k] = v.clone();
        }
        json!({"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": path}, part]})
    };
    let params = |ops: Vec<Value>| json!({"resourceType": "Parameters", "parameter": ops});
    let reschedule = |s: &str, e: &str| {
        params(vec![op("/start", json!({"valueDateTime": s})), op("/end", json!({"valueDateTime": e}))])
    };
    let patch = |id: &str, body: Value| {
        let path = format!("/Appointment/{id}");
        async move { send(app, Method::PATCH, &path, &body).await }
    };
    let cases: Vec<(Value, &str)> = vec![
        (params(vec![op("/status", json!({"valueCode": "booked"}))]), "OnlyCancelledStatusSupported"),
        (params(vec![op("/status", json!({"valueString": "cancelled"}))]), "InvalidDataType"),
        (
            params(vec![
                op("/start", json!({"valueString": "2030-03-05T11:00:00Z"})),
                op("/end", json!({"valueDateTime": "2030-03-05T11:15:00Z"})),
            ]),
            "InvalidDataType",
        ),
        (
            params(vec![op("/start", json!({"valueDateTime": "2030-03-05T11:00:00Z"}))]),
            "StartAndEndRequiredForRescheduling",
        ),
        (
            params(vec![
                json!({"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/status"}]}),
            ]),
            "ParameterValueUndefined",
        ),
        (params(vec![op("/description", json!({"valueString": "x"}))]), "ParameterTypeAndPathCombinationNotSupported"),
        (params(vec![json!({"name": "nope"})]), "OnlyOperationParametersSupported"),
        (params(vec![]), "ParametersCannotBeEmpty"),
        (reschedule("2030-03-05T12:00:00Z", "2030-03-05T11:00:00Z"), "StartMustComeBeforeEnd"),
        (reschedule("2030-03-05T11:00:10Z", "2030-03-05T11:15:00Z"), "DateTimeMustBeWholeMinutes"),
        (reschedule("2030-03-03T11:00:00Z", "2030-03-03T11:15:00Z"), "StartMustBeInTheFuture"),
        (reschedule("2030-03-05T10:05:00Z", "2030-03-05T10:20:00Z"), "ScheduleConflicts"),
        (
            params(vec![
                op("/status", json!({"valueCode": "cancelled"})),
                op("/start", json!({"valueDateTime": "2030-03-05T11:00:00Z"})),
            ]),
            "BothCancelAndRescheduleCannotBeRequested",
        ),
    ];
    for (body, code) in cases {
        expect_error(patch(&ida, body).await, 422, code).await;
    }
    expect_error(
        patch("424242", reschedule("2030-03-05T11:00:00Z", "2030-03-05T11:15:00Z")).await,
        404,
        "AppointmentNotFound",
    )
    .await;
    let moved = patch(&ida, reschedule("2030-03-05T11:00:00Z", "2030-03-05T11:30:00Z")).await;
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(
        (moved["start"].as_str(), moved["end"].as_str()),
        (Some("2030-03-05T11:00:00Z"), Some("2030-03-05T11:30:00Z"))
    );
    let cancelled = patch(&idb, params(vec![op("/status", json!({"valueCode": "cancelled"}))])).await;
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
    expect_error(
        patch(&idb, params(vec![op("/status", json!({"valueCode": "cancelled"}))])).await,
        422,
        "AppointmentCancelled",
    )
    .await;
    // The freed time can be booked again.
    assert_eq!(
        send(app, Method::POST, "/Appointment", &make("2030-03-05T10:00:00Z", "2030-03-05T10:15:00Z")).await.status(),
        201
    );
    ctx.app.stop().await;
}

async fn cutoffs_and_notice_of_the_strict_tenant(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let strict = |m: Method, p: &str| {
        app.client
            .request(m, app.url(&format!("/embassy{p}")))
            .header("X-Visiba-Care-API-Key", "emb-strict-1")
            .header("content-type", "application/fhir+json")
    };
    let p = strict(Method::POST, "/Patient")
        .json(&patient_body("Eva", "Holm", Some("198001011231"), Some("0701234567"), None))
        .send()
        .await
        .unwrap();
    assert_eq!(p.status(), 200);
    let services: Value = strict(Method::GET, "/HealthcareService").send().await.unwrap().json().await.unwrap();
    let gp = services["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    let mut a = appointment(&ctx, "2030-03-04T08:30:00Z", "2030-03-04T08:45:00Z", "198001011231");
    a["participant"][2]["actor"]["identifier"]["value"] = json!(gp);
    expect_error(
        strict(Method::POST, "/Appointment").json(&a).send().await.unwrap(),
        422,
        "TooCloseToAppointmentStart",
    )
    .await;
    a["start"] = json!("2030-03-04T09:30:00Z");
    a["end"] = json!("2030-03-04T09:45:00Z");
    let created: Value = strict(Method::POST, "/Appointment").json(&a).send().await.unwrap().json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let cancel = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/status"}, {"name": "value", "valueCode": "cancelled"}]}]});
    expect_error(
        strict(Method::PATCH, &format!("/Appointment/{id}")).json(&cancel).send().await.unwrap(),
        422,
        "TooLateToCancelAppointment",
    )
    .await;
    let resched = json!({"resourceType": "Parameters", "parameter": [
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/start"}, {"name": "value", "valueDateTime": "2030-03-05T09:30:00Z"}]},
        {"name": "operation", "part": [{"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "/end"}, {"name": "value", "valueDateTime": "2030-03-05T09:45:00Z"}]}]});
    expect_error(
        strict(Method::PATCH, &format!("/Appointment/{id}")).json(&resched).send().await.unwrap(),
        422,
        "TooLateToUpdateAppointment",
    )
    .await;
    // The acme tenant cannot see the strict tenant's appointment.
    assert_eq!(app.embassy(Method::GET, &format!("/Appointment/{id}")).send().await.unwrap().status(), 404);
    ctx.app.stop().await;
}

fn with_representative(ctx: &Ctx, start: &str, end: &str, rep: Value) -> Value {
    json!({
        "resourceType": "Appointment", "status": "booked", "start": start, "end": end,
        "contained": [
            {"resourceType": "Patient", "id": "child", "name": [{"given": ["Kid"], "family": "Holm"}],
             "identifier": [{"system": NID_SE, "value": "201003033451"}]},
            rep
        ],
        "participant": [
            {"type": [{"coding": [{"code": "PPRF"}]}], "actor": {"type": "Practitioner", "identifier": {"system": PRACT_HSA, "value": "SE2321000016-0001"}}},
            {"actor": {"reference": "#child", "type": "Patient"}},
            {"actor": {"reference": "#mum", "type": "RelatedPerson"}},
            {"actor": {"type": "HealthcareService", "identifier": {"system": SERVICE, "value": ctx.gp}}}
        ]
    })
}

fn mum(extra: Value) -> Value {
    let mut m = json!({"resourceType": "RelatedPerson", "id": "mum", "patient": {"reference": "#child", "type": "Patient"},
        "relationship": [{"coding": [{"system": "http://schema.visibacare.com/codesystem/relatedperson/relationship", "code": "Representative"}]}],
        "identifier": [{"system": "http://schema.visibacare.com/identifier/relatedperson/nationalidentificationnumber", "value": "197505054564"}],
        "name": [{"given": ["Maja"], "family": "Holm"}], "telecom": [{"system": "phone", "value": "0703333333"}]});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

async fn representatives_are_kept_and_refused_bookings_write_nothing(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, Some("eva@holm.test"))).await;
    // Ann is busy at 09:00.
    assert_eq!(
        send(
            app,
            Method::POST,
            "/Appointment",
            &appointment(&ctx, "2030-03-05T09:00:00Z", "2030-03-05T09:30:00Z", "198001011231")
        )
        .await
        .status(),
        201
    );
    let refused = send(
        app,
        Method::POST,
        "/Appointment",
        &with_representative(&ctx, "2030-03-05T09:15:00Z", "2030-03-05T09:45:00Z", mum(json!({}))),
    )
    .await;
    expect_error(refused, 422, "AllPractionersAreNotAvailable").await;
    assert_eq!(
        get(app, &format!("/Patient?identifier={NID_SE}%7C201003033451")).await["total"],
        0,
        "the refused booking created no patient"
    );
    // Booked at a free time: the child and the representative now exist.
    let first = send(
        app,
        Method::POST,
        "/Appointment",
        &with_representative(&ctx, "2030-03-05T10:00:00Z", "2030-03-05T10:30:00Z", mum(json!({}))),
    )
    .await;
    assert_eq!(first.status(), 201);
    assert_eq!(get(app, &format!("/Patient?identifier={NID_SE}%7C201003033451")).await["total"], 1);
    // The known representative is named by identifier alone; nothing else is read.
    let bare = json!({"resourceType": "RelatedPerson", "id": "mum", "patient": {"reference": "#child", "type": "Patient"},
        "relationship": [{"coding": [{"code": "Representative"}]}],
        "identifier": [{"system": "http://schema.visibacare.com/identifier/relatedperson/nationalidentificationnumber", "value": "197505054564"}]});
    let second = send(
        app,
        Method::POST,
        "/Appointment",
        &with_representative(&ctx, "2030-03-06T10:00:00Z", "2030-03-06T10:30:00Z", bare),
    )
    .await;
    assert_eq!(second.status(), 201);
    let a: Value = second.json().await.unwrap();
    let rep = a["contained"].as_array().unwrap().iter().find(|c| c["resourceType"] == "RelatedPerson").unwrap();
    assert_eq!(rep["name"][0]["given"][0], "Maja", "the stored representative: {rep}");
    // Two representatives sharing a phone: naming one by that phone is ambiguous.
    let other = mum(
        json!({"identifier": [{"system": "http://schema.visibacare.com/identifier/relatedperson/nationalidentificationnumber", "value": "198507075672"}],
        "name": [{"given": ["Olle"], "family": "Holm"}]}),
    );
    assert_eq!(
        send(
            app,
            Method::POST,
            "/Appointment",
            &with_representative(&ctx, "2030-03-07T10:00:00Z", "2030-03-07T10:30:00Z", other)
        )
        .await
        .status(),
        201
    );
    let by_phone = mum(
        json!({"identifier": [{"system": "http://schema.visibacare.com/identifier/relatedperson/phonenumber", "value": "0703333333"}]}),
    );
    expect_error(
        send(
            app,
            Method::POST,
            "/Appointment",
            &with_representative(&ctx, "2030-03-08T10:00:00Z", "2030-03-08T10:30:00Z", by_phone),
        )
        .await,
        422,
        "ConflictingRepresentativesFound",
    )
    .await;
    ctx.app.stop().await;
}

async fn guests_need_what_their_countrys_sign_in_needs(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let mut doc = acme_seed("acme");
    doc["tenants"][0]["settings"] =
        json!({"countries": ["SE", "NO", "DK"], "guest_authentication": {"SE": "email", "NO": "sms"}});
    app.seed(&doc).await;
    create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, Some("eva@holm.test"))).await;
    let with_guest = |country: &str, telecom: Value| {
        let mut a = appointment(&ctx, "2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z", "198001011231");
        a["contained"] = json!([{"resourceType": "RelatedPerson", "id": "g", "name": [{"given": ["Gus"]}], "telecom": telecom, "address": [{"country": country}]}]);
        a["participant"].as_array_mut().unwrap().push(json!({"actor": {"reference": "#g", "type": "RelatedPerson"}}));
        a
    };
    let phone = json!([{"system": "phone", "value": "0705555555"}]);
    let email = json!([{"system": "email", "value": "gus@guest.test"}]);
    expect_error(
        send(app, Method::POST, "/Appointment", &with_guest("SE", phone.clone())).await,
        422,
        "EmailRequiredForRelatedPersonGivenDefaultAuthentication",
    )
    .await;
    expect_error(
        send(app, Method::POST, "/Appointment", &with_guest("NO", email.clone())).await,
        422,
        "PhoneNumberRequiredForRelatedPersonGivenDefaultAuthentication",
    )
    .await;
    expect_error(
        send(app, Method::POST, "/Appointment", &with_guest("DK", email.clone())).await,
        422,
        "NoDefaultAuthenticationForCountryOfRelatedPerson",
    )
    .await;
    expect_error(
        send(app, Method::POST, "/Appointment", &with_guest("FI", email.clone())).await,
        422,
        "RelatedPersonInvalidCountry",
    )
    .await;
    assert_eq!(send(app, Method::POST, "/Appointment", &with_guest("NO", phone)).await.status(), 201);
    ctx.app.stop().await;
}

/// "All other parameters will be ignored if this exists": paging, filters of
/// another service, and malformed values alike, by GET and by POST `_search`.
async fn id_search_ignores_every_other_parameter(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let patient = create_patient(app, &patient_body("Eva", "Holm", Some("198001011231"), None, None)).await;
    let r = send(
        app,
        Method::POST,
        "/Appointment",
        &appointment(&ctx, "2030-03-05T09:00:00+01:00", "2030-03-05T09:15:00+01:00", "198001011231"),
    )
    .await;
    assert_eq!(r.status(), 201);
    let appointment_id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let services = get(app, "/HealthcareService").await;
    let other_service = services["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
        .find(|id| *id != ctx.gp)
        .unwrap();
    let patient_id = patient["id"].as_str().unwrap().to_owned();
    let noise = [
        ("skip", "5".to_owned()),
        ("_count", "0".to_owned()),
        ("healthcareServiceId", other_service.clone()),
        ("start", "2031-01-01T00:00:00Z".to_owned()),
        ("end", "2030-01-01T00:00:00Z".to_owned()),
        ("hasCommunicationPrivileges", "maybe".to_owned()),
        ("identifier", "urn:unknown|nobody".to_owned()),
    ];
    for (resource, id) in [
        ("Appointment", appointment_id.as_str()),
        ("Patient", patient_id.as_str()),
        ("Practitioner", ctx.ann.as_str()),
        ("HealthcareService", ctx.gp.as_str()),
    ] {
        for extra in std::iter::once(None).chain(noise.iter().map(Some)).chain([Some(&("skip", "-1".to_owned()))]) {
            let mut params: Vec<(&str, String)> = vec![("_id", id.to_owned())];
            params.extend(extra.cloned());
            let by_get = app.embassy(Method::GET, &format!("/{resource}")).query(&params).send().await.unwrap();
            let by_post =
                app.embassy(Method::POST, &format!("/{resource}/_search")).form(&params).send().await.unwrap();
            for (how, r) in [("GET", by_get), ("POST _search", by_post)] {
                assert_eq!(r.status(), 200, "{how} {resource} {params:?}");
                let b: Value = r.json().await.unwrap();
                assert_eq!(b["total"], 1, "{how} {resource} {params:?}: {b}");
                assert_eq!(b["entry"][0]["resource"]["id"], id, "{how} {resource} {params:?}: {b}");
                assert!(b.get("link").is_none(), "no next page: {b}");
            }
        }
    }
}

on_both_engines!(
    id_search_ignores_every_other_parameter,
    representatives_are_kept_and_refused_bookings_write_nothing,
    guests_need_what_their_countrys_sign_in_needs,
    catalog_reads_and_searches,
    patients_create_read_patch_search,
    appointments_book_read_search_and_notify,
    appointment_create_error_codes,
    representatives_guests_and_prices,
    appointment_cancel_and_reschedule,
    cutoffs_and_notice_of_the_strict_tenant,
);
