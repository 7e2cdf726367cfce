//! Solo context-aware linking, `GET /integrations/linking?arg=...`: links
//! built as the document says (the JSON encrypted by the `openssl` binary
//! with SHA-256(secret ‖ salt) as its key) redirect to the visit's video
//! join page of the participant they name; every broken link answers a
//! Solo error of 4xx, never a 5xx.

use crate::helpers::{Engine, TestApp, acme_seed};
use crate::on_both_engines;
use crate::solo_webhooks::{key_hex, openssl};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

/// The seed's Solo linking secret of `acme` (`webhook_secret`).
const SECRET: &str = "optional";

/// `arg` as the document builds it, encrypted by the openssl binary:
/// URL-encode(base64(salt) ‖ base64(IV) ‖ base64(ciphertext)).
fn arg_for(secret: &str, plain: &[u8]) -> String {
    let salt: [u8; 8] = rand::random();
    let iv: [u8; 16] = rand::random();
    let ciphertext = openssl(false, &key_hex(secret, &salt), &iv, plain);
    raw_arg(&salt, &iv, &ciphertext)
}

fn raw_arg(salt: &[u8], iv: &[u8], ciphertext: &[u8]) -> String {
    format!("{}{}{}", STANDARD.encode(salt), STANDARD.encode(iv), STANDARD.encode(ciphertext))
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The link data of the document's schema for `visit` and participant `kind`.
fn data(visit: &str, kind: &str) -> Value {
    json!({"user": "u-17", "type": kind, "visit": visit, "date": 1_643_799_600,
        "patient": {"id": "ehr-42", "sex": "male", "dob": "1970-01-01", "firstName": "Max", "lastName": "Mustermann"}})
}

/// A client that does not follow redirects.
fn no_redirects() -> reqwest::Client {
    crate::helpers::http_client();
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get_link(app: &TestApp, query: &str) -> reqwest::Response {
    no_redirects().get(app.url(&format!("/integrations/linking{query}"))).send().await.unwrap()
}

/// Asserts a Solo error of `status` (4xx); answers the message.
async fn refused(app: &TestApp, query: &str, status: u16) -> String {
    crate::solo_webhooks::expect_solo_error(get_link(app, query).await, status).await
}

/// A Naboto video appointment of `acme`: its id and the join URLs of its
/// practitioner and its patient, and the ids of the patient and practitioner.
async fn video_visit(app: &TestApp) -> (String, String, String, (String, String)) {
    let (patient, ann) = (crate::nb::create_patient(app).await, crate::nb::ann(app).await);
    let created = crate::nb::expect(
        crate::nb::send(app, Method::POST, "/appointment", &crate::nb::new_appointment(&patient, &ann)).await,
        201,
    )
    .await;
    let join = |i: usize| -> String {
        let ext = created["participant"][i]["extension"][0]["extension"].as_array().unwrap();
        ext.iter().find(|e| e["url"] == "address").unwrap()["valueUrl"].as_str().unwrap().to_owned()
    };
    assert!(created["participant"][0]["actor"]["reference"].as_str().unwrap().starts_with("Practitioner/"));
    (created["id"].as_str().unwrap().to_owned(), join(0), join(1), (patient, ann))
}

async fn a_link_redirects_to_the_visit_of_its_participant(engine: Engine) {
    let app = crate::nb::setup(engine).await;
    // Another tenant with the same secret, and one with its own.
    app.seed(&acme_seed("same")).await;
    let mut other = acme_seed("other");
    other["tenants"][0]["credentials"][2]["webhook_secret"] = json!("other secret");
    app.seed(&other).await;
    let (visit, provider_url, patient_url, _) = video_visit(&app).await;
    assert_ne!(provider_url, patient_url);

    for (kind, expected) in
        [("patient", &patient_url), ("provider", &provider_url), ("medicalAssistant", &provider_url)]
    {
        let arg = arg_for(SECRET, data(&visit, kind).to_string().as_bytes());
        let r = get_link(&app, &format!("?arg={}", url_encode(&arg))).await;
        assert_eq!(r.status(), 302, "{kind}: {}", r.text().await.unwrap());
        assert_eq!(r.headers()["location"].to_str().unwrap(), expected.as_str(), "{kind}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        // The join page opens.
        let page = app.client.get(expected.as_str()).send().await.unwrap();
        assert_eq!(page.status(), 200);
    }
    // Only the document's path; below it, a Solo 404.
    let arg = arg_for(SECRET, data(&visit, "patient").to_string().as_bytes());
    refused(&app, &format!("/x?arg={}", url_encode(&arg)), 404).await;
    // A `+` left unencoded (read as a space) still reads.
    let mut plus = arg_for(SECRET, data(&visit, "patient").to_string().as_bytes());
    while !plus.contains('+') {
        plus = arg_for(SECRET, data(&visit, "patient").to_string().as_bytes());
    }
    let r = get_link(&app, &format!("?arg={}", plus.replace('=', "%3D").replace('/', "%2F"))).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());

    // The other tenant's secret does not open acme's visits.
    let arg = arg_for("other secret", data(&visit, "patient").to_string().as_bytes());
    let m = refused(&app, &format!("?arg={}", url_encode(&arg)), 404).await;
    assert!(m.contains(&visit), "{m}");
}

async fn broken_links_are_refused(engine: Engine) {
    let app = crate::nb::setup(engine).await;
    let (visit, _, _, (patient, ann)) = video_visit(&app).await;
    let enc = |secret: &str, plain: &[u8]| format!("?arg={}", url_encode(&arg_for(secret, plain)));

    // No arg.
    assert!(refused(&app, "", 400).await.contains("arg"));
    assert!(refused(&app, "?arg=", 400).await.contains("arg"));
    assert!(refused(&app, "?other=1", 400).await.contains("arg"));
    // Not base64, too short, parts of the wrong length.
    assert!(refused(&app, "?arg=abc", 400).await.contains("short"));
    let good = arg_for(SECRET, data(&visit, "patient").to_string().as_bytes());
    let m = refused(&app, &format!("?arg={}", url_encode(&format!("!!!!!!!!!!!={}", &good[12..]))), 400).await;
    assert!(m.contains("salt"), "{m}");
    let m =
        refused(&app, &format!("?arg={}", url_encode(&format!("{}{}", &good[..36], "%%%%%%%%%%%%%%%%%%%%%%%%"))), 400)
            .await;
    assert!(m.contains("ciphertext"), "{m}");
    let m = refused(&app, &format!("?arg={}", url_encode(&format!("{}AAAAAAAA", &good))), 400).await;
    assert!(m.contains("ciphertext"), "{m}");
    assert_eq!(get_link(&app, "?arg=%FF%FE").await.status(), 400);
    // A wrong secret.
    let m = refused(&app, &enc("some secret", data(&visit, "patient").to_string().as_bytes()), 400).await;
    assert!(m.contains("decrypt"), "{m}");
    // The document's own example (secret "some secret"): no tenant has that secret.
    refused(
        &app,
        "?arg=BizXKL9L4EQ%3DYuhTK5qXNtOCmbuaHMq5tA%3D%3DDUPdvDCZPiSUf0Jumt%2FMr%2FwVWv%2Bmr6Vzj5LnKUQtTPc%3D",
        400,
    )
    .await;
    // Tampered: every byte of the ciphertext flipped in turn, and the IV's last.
    let plain = data(&visit, "patient").to_string();
    let salt: [u8; 8] = rand::random();
    let iv: [u8; 16] = rand::random();
    let ciphertext = openssl(false, &key_hex(SECRET, &salt), &iv, plain.as_bytes());
    let mut bad_iv = iv;
    bad_iv[15] ^= 0x01;
    refused(&app, &format!("?arg={}", url_encode(&raw_arg(&salt, &bad_iv, &ciphertext))), 400).await;
    for i in (0..ciphertext.len()).step_by(9) {
        let mut altered = ciphertext.clone();
        altered[i] ^= 0x80;
        let r = get_link(&app, &format!("?arg={}", url_encode(&raw_arg(&salt, &iv, &altered)))).await;
        assert!(r.status().is_client_error(), "byte {i}: {}", r.status());
    }
    let mut short = ciphertext.clone();
    short.truncate(ciphertext.len() - 16);
    let r = get_link(&app, &format!("?arg={}", url_encode(&raw_arg(&salt, &iv, &short)))).await;
    assert!(r.status().is_client_error());
    // Decrypts, but to no JSON, or to JSON that is no object.
    assert!(refused(&app, &enc(SECRET, b"hello, world"), 400).await.contains("JSON"));
    assert!(refused(&app, &enc(SECRET, b"\"12345\""), 400).await.contains("object"));
    // The schema, each failing part named.
    let mut no_patient = data(&visit, "patient");
    no_patient.as_object_mut().unwrap().remove("patient");
    assert!(refused(&app, &enc(SECRET, no_patient.to_string().as_bytes()), 400).await.contains("patient"));
    let mut bad_dob = data(&visit, "patient");
    bad_dob["patient"]["dob"] = json!("15.08.1983");
    assert!(refused(&app, &enc(SECRET, bad_dob.to_string().as_bytes()), 400).await.contains("/patient/dob"));
    let mut bad_type = data(&visit, "nurse");
    bad_type["date"] = json!("today");
    let m = refused(&app, &enc(SECRET, bad_type.to_string().as_bytes()), 400).await;
    assert!(m.contains("/type") && m.contains("/date"), "{m}");
    let numeric_visit = json!({"user": "u", "type": "patient", "visit": visit.parse::<i64>().unwrap(), "date": 1,
        "patient": data(&visit, "patient")["patient"].clone()});
    assert!(refused(&app, &enc(SECRET, numeric_visit.to_string().as_bytes()), 400).await.contains("/visit"));
    // Unknown visits.
    for v in ["999999999", "abc", "", "-1", "99999999999999999999999"] {
        let m = refused(&app, &enc(SECRET, data(v, "patient").to_string().as_bytes()), 404).await;
        assert!(m.contains("not found"), "{v}: {m}");
    }
    // A visit without video access for the participant.
    let mut plain_visit = crate::nb::new_appointment(&patient, &ann);
    plain_visit["identifier"][0]["value"] = json!("plain-1");
    plain_visit["start"] = json!("2022-02-05T11:00:00Z");
    plain_visit["end"] = json!("2022-02-05T12:00:00Z");
    for p in plain_visit["participant"].as_array_mut().unwrap() {
        p.as_object_mut().unwrap().remove("extension");
    }
    let plain_visit =
        crate::nb::expect(crate::nb::send(&app, Method::POST, "/appointment", &plain_visit).await, 201).await;
    let id = plain_visit["id"].as_str().unwrap();
    let m = refused(&app, &enc(SECRET, data(id, "provider").to_string().as_bytes()), 404).await;
    assert!(m.contains("video"), "{m}");
    // Still answering: a good link works after all of these.
    let r = get_link(&app, &enc(SECRET, data(&visit, "patient").to_string().as_bytes())).await;
    assert_eq!(r.status(), 302);
}

async fn a_waiting_room_visit_links_to_its_solo_visit_urls(engine: Engine) {
    use crate::sl;
    // Two tenants with the same secret: the visit tells them apart.
    let app = sl::setup(engine).await;
    sl::create_patient(&app, "ext-1").await;
    let booked = sl::expect(sl::book(&app, "ext-1", sl::GP, sl::T0 + 3600).await, 201).await;
    let id = booked["id"].as_i64().unwrap().to_string();
    let provider = sl::expect(sl::get(&app, &format!("/appointments/{id}/provider-link")).await, 200).await;
    for (kind, expected) in [
        ("patient", &booked["visitUrl"]),
        ("provider", &provider["providerVisitUrl"]),
        ("medicalAssistant", &provider["providerVisitUrl"]),
    ] {
        let r =
            get_link(&app, &format!("?arg={}", url_encode(&arg_for(SECRET, data(&id, kind).to_string().as_bytes()))))
                .await;
        assert_eq!(r.status(), 302, "{kind}");
        assert_eq!(r.headers()["location"].to_str().unwrap(), expected.as_str().unwrap(), "{kind}");
    }
    // The other tenant's visits are its own.
    sl::create_patient_as(&app, sl::OTHER_KEY, "ext-2").await;
    let r = sl::call(
        &app,
        sl::OTHER_KEY,
        Method::POST,
        "/patients/ext-2/appointments",
        Some(&json!({"date": sl::T0 + 3600, "waitingRoom": sl::GP})),
    )
    .await;
    let theirs = sl::expect(r, 201).await;
    let r = get_link(
        &app,
        &format!(
            "?arg={}",
            url_encode(&arg_for(
                SECRET,
                data(&theirs["id"].as_i64().unwrap().to_string(), "patient").to_string().as_bytes()
            ))
        ),
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"].to_str().unwrap(), theirs["visitUrl"].as_str().unwrap());
}

on_both_engines!(
    a_waiting_room_visit_links_to_its_solo_visit_urls,
    a_link_redirects_to_the_visit_of_its_participant,
    broken_links_are_refused
);
