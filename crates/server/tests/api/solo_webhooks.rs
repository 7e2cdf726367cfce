//! Solo webhooks: add, update, list, read, delete (and every refusal), the
//! tenant's own only; and the encrypted calls they receive for events of
//! every dialect (a Docplanner booking, an Embassy cancellation, a Naboto
//! patient), each decrypted here with nothing but the document's recipe
//! (SHA-256(key ‖ salt), AES-256-CBC), in Rust and with the `openssl`
//! binary; retried after a failure like every delivery.

use crate::dp;
use crate::helpers::{Engine, Spawn, TestApp, acme_seed, spawn_app, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::{Received, Receiver};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

/// A Solo request to `/qapi/v1{path}` with `api_key`.
pub fn solo(app: &TestApp, method: Method, path: &str, api_key: &str) -> reqwest::RequestBuilder {
    app.client.request(method, app.url(&format!("/qapi/v1{path}"))).header("Api-Key", api_key)
}

/// Asserts a Solo error (`{"error": {"message"}}`) of `status`; answers the message.
pub async fn expect_solo_error(r: reqwest::Response, status: u16) -> String {
    let got = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    let m = body["error"]["message"].as_str().unwrap_or_else(|| panic!("the Solo error shape: {body}")).to_owned();
    assert!(!m.is_empty());
    m
}

/// Registers a webhook of the `acme` tenant; answers the created webhook.
async fn add(app: &TestApp, endpoint: &str, events: &[&str]) -> Value {
    let r = solo(app, Method::POST, "/webhooks", "solo-acme-1")
        .json(&json!({"endpoint": endpoint, "events": events}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// The document's recipe, verbatim: the first 12 characters are the salt,
/// the next 24 the IV, the rest the ciphertext, each base64; the key is
/// SHA-256 of the encryption key (as handed out) followed by the raw salt.
pub fn decrypt_as_documented(encryption_key: &str, body: &str) -> Vec<u8> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
    use sha2::Digest;
    let salt = STANDARD.decode(&body[..12]).unwrap();
    let iv = STANDARD.decode(&body[12..36]).unwrap();
    let ciphertext = STANDARD.decode(&body[36..]).unwrap();
    assert_eq!((salt.len(), iv.len()), (8, 16));
    let mut h = sha2::Sha256::new();
    h.update(encryption_key.as_bytes());
    h.update(&salt);
    let key: [u8; 32] = h.finalize().into();
    let iv: [u8; 16] = iv.try_into().unwrap();
    cbc::Decryptor::<aes::Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&ciphertext)
        .expect("decrypts with the webhook's key")
}

/// SHA-256(secret ‖ salt) in hex, for `openssl enc -K`.
pub fn key_hex(secret: &str, salt: &[u8]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(secret.as_bytes());
    h.update(salt);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `openssl enc -aes-256-cbc` (`-d` to decrypt) with a raw key and IV.
pub fn openssl(decrypt: bool, key_hex: &str, iv: &[u8], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let iv_hex: String = iv.iter().map(|b| format!("{b:02x}")).collect();
    let mut args = vec!["enc", "-aes-256-cbc", "-K", key_hex, "-iv", &iv_hex];
    if decrypt {
        args.insert(1, "-d");
    }
    let mut child = std::process::Command::new("openssl")
        .args(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl binary (.ci/run installs it)");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The same recipe through the `openssl` binary.
fn decrypt_with_openssl(encryption_key: &str, body: &str) -> Vec<u8> {
    let salt = STANDARD.decode(&body[..12]).unwrap();
    let iv = STANDARD.decode(&body[12..36]).unwrap();
    let ciphertext = STANDARD.decode(&body[36..]).unwrap();
    openssl(true, &key_hex(encryption_key, &salt), &iv, &ciphertext)
}

/// Every call received, decrypted, as JSON.
fn decrypted(received: &[Received], key: &str) -> Vec<Value> {
    received
        .iter()
        .map(|r| {
            assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
            serde_json::from_slice(&decrypt_as_documented(key, &r.body)).unwrap()
        })
        .collect()
}

const ALL_EVENTS: [&str; 12] = [
    "patient:created",
    "patient:updated",
    "patient:deactivated",
    "appointment:scheduled",
    "appointment:rescheduled",
    "appointment:cancelled",
    "appointment:completed",
    "appointment:incompleted",
    "appointment:no-show",
    "appointment:lwbs",
    "episode:created",
    "episode:updated",
];

async fn webhooks_are_added_updated_listed_read_and_deleted(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    app.seed(&acme_seed("beta")).await;
    let created =
        add(&app, "https://hooks.example.com/solo", &["appointment:scheduled", "appointment:rescheduled"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a UUID: {id}");
    assert_eq!(created["endpoint"], "https://hooks.example.com/solo");
    assert_eq!(created["events"], json!(["appointment:scheduled", "appointment:rescheduled"]));
    let key = created["encryptionKey"].as_str().unwrap().to_owned();
    assert_eq!(STANDARD.decode(&key).unwrap().len(), 16, "16 random bytes in base64: {key}");
    assert_eq!(created.as_object().unwrap().len(), 4, "{created}");
    // Every event of the document is accepted.
    let all = add(&app, "https://hooks.example.com/all", &ALL_EVENTS).await;
    assert_eq!(all["events"], json!(ALL_EVENTS));
    assert_ne!(all["encryptionKey"], created["encryptionKey"], "each webhook its own key");

    // The list shows no keys; the single read does, as the document shows.
    let list: Value = solo(&app, Method::GET, "/webhooks", "solo-acme-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(
        list,
        json!([
            {"id": id, "endpoint": "https://hooks.example.com/solo", "events": ["appointment:scheduled", "appointment:rescheduled"]},
            {"id": all["id"], "endpoint": "https://hooks.example.com/all", "events": ALL_EVENTS}
        ])
    );
    let one = solo(&app, Method::GET, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap(), created);
    // The id is read in any case.
    let upper =
        solo(&app, Method::GET, &format!("/webhooks/{}", id.to_uppercase()), "solo-acme-1").send().await.unwrap();
    assert_eq!(upper.status(), 200);

    // The key is kept sealed, never in clear.
    let sealed = app
        .store
        .read(|c| {
            Box::pin(async move {
                let t = polyclinic_store::tenants::by_key(c, "acme").await?.unwrap();
                polyclinic_store::solo_webhooks::list(c, t.id).await
            })
        })
        .await
        .unwrap();
    assert_eq!(sealed.len(), 2);
    assert!(sealed.iter().all(|w| w.sealed_key.starts_with("v1:") && !w.sealed_key.contains(&key)));

    // Update: endpoint and events replaced, the key kept (and not shown).
    let r = solo(&app, Method::PUT, &format!("/webhooks/{id}"), "solo-acme-1")
        .json(&json!({"endpoint": "https://hooks.example.com/updated", "events": ["appointment:cancelled"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"id": id, "endpoint": "https://hooks.example.com/updated", "events": ["appointment:cancelled"]})
    );
    let one: Value =
        solo(&app, Method::GET, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(one["endpoint"], "https://hooks.example.com/updated");
    assert_eq!(one["encryptionKey"], key.as_str());

    // Another tenant sees none of it.
    let beta: Value = solo(&app, Method::GET, "/webhooks", "solo-beta-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(beta, json!([]));
    for method in [Method::GET, Method::DELETE] {
        expect_solo_error(solo(&app, method, &format!("/webhooks/{id}"), "solo-beta-1").send().await.unwrap(), 404)
            .await;
    }
    let r = solo(&app, Method::PUT, &format!("/webhooks/{id}"), "solo-beta-1")
        .json(&json!({"endpoint": "https://evil.example.com/", "events": ["patient:created"]}))
        .send()
        .await
        .unwrap();
    expect_solo_error(r, 404).await;

    // Delete deactivates: 204, then gone from the list and from reads.
    let r = solo(&app, Method::DELETE, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.bytes().await.unwrap().is_empty());
    let m = expect_solo_error(
        solo(&app, Method::GET, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap(),
        404,
    )
    .await;
    assert!(m.contains(&id), "{m}");
    expect_solo_error(solo(&app, Method::DELETE, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap(), 404)
        .await;
    let r = solo(&app, Method::PUT, &format!("/webhooks/{id}"), "solo-acme-1")
        .json(&json!({"endpoint": "https://hooks.example.com/again", "events": ["patient:created"]}))
        .send()
        .await
        .unwrap();
    expect_solo_error(r, 404).await;
    let list: Value = solo(&app, Method::GET, "/webhooks", "solo-acme-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], all["id"]);
}

async fn bad_webhooks_are_refused(engine: Engine) {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    let post = |body: Value| solo(&app, Method::POST, "/webhooks", "solo-acme-1").json(&body).send();
    let ok_url = "https://hooks.example.com/x";

    // Credentials.
    let r = app.client.post(app.url("/qapi/v1/webhooks")).json(&json!({})).send().await.unwrap();
    expect_solo_error(r, 401).await;
    let r = solo(&app, Method::GET, "/webhooks", "wrong-key").send().await.unwrap();
    expect_solo_error(r, 401).await;

    // Events: missing, empty, unknown (named).
    let m = expect_solo_error(post(json!({"endpoint": ok_url})).await.unwrap(), 400).await;
    assert!(m.contains("events"), "{m}");
    let m = expect_solo_error(post(json!({"endpoint": ok_url, "events": []})).await.unwrap(), 400).await;
    assert!(m.contains("at least one"), "{m}");
    let m = expect_solo_error(
        post(json!({"endpoint": ok_url, "events": ["appointment:scheduled", "appointment:booked", "Patient:Created"]}))
            .await
            .unwrap(),
        400,
    )
    .await;
    assert!(m.contains("`appointment:booked`") && m.contains("`Patient:Created`"), "{m}");
    assert!(!m.contains("`appointment:scheduled`"), "only the unknown ones are named: {m}");
    let m = expect_solo_error(post(json!({"endpoint": ok_url, "events": "patient:created"})).await.unwrap(), 400).await;
    assert!(m.contains("events"), "{m}");

    // Endpoint: missing, empty, not absolute, not http(s), credentials, too long, this server.
    let m = expect_solo_error(post(json!({"events": ["patient:created"]})).await.unwrap(), 400).await;
    assert!(m.contains("endpoint"), "{m}");
    let too_long = format!("https://hooks.example.com/{}", "a".repeat(2048));
    let own = app.url("/hook");
    for bad in [
        "",
        "/hook",
        "hooks.example.com/x",
        "ftp://hooks.example.com/x",
        "mailto:a@b.c",
        "https://u:p@hooks.example.com/",
        &too_long,
        &own,
    ] {
        let m =
            expect_solo_error(post(json!({"endpoint": bad, "events": ["patient:created"]})).await.unwrap(), 400).await;
        assert!(m.contains("endpoint"), "{bad}: {m}");
    }

    // Bodies that are no JSON object.
    let r = solo(&app, Method::POST, "/webhooks", "solo-acme-1")
        .body("{")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    expect_solo_error(r, 400).await;
    let r = solo(&app, Method::POST, "/webhooks", "solo-acme-1").body("x").send().await.unwrap();
    expect_solo_error(r, 415).await;

    // Ids that name no webhook.
    for id in ["nope", "b20be9ce-eb93-48be-ad56-271ec4b2973c", "%00"] {
        expect_solo_error(
            solo(&app, Method::GET, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap(),
            404,
        )
        .await;
        expect_solo_error(
            solo(&app, Method::DELETE, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap(),
            404,
        )
        .await;
    }
    // A bad PUT changes nothing.
    let w = add(&app, ok_url, &["patient:created"]).await;
    let id = w["id"].as_str().unwrap();
    let r = solo(&app, Method::PUT, &format!("/webhooks/{id}"), "solo-acme-1")
        .json(&json!({"endpoint": ok_url, "events": ["nope"]}))
        .send()
        .await
        .unwrap();
    expect_solo_error(r, 400).await;
    let r = solo(&app, Method::PUT, &format!("/webhooks/{id}"), "solo-acme-1")
        .json(&json!({"endpoint": "ftp://x", "events": ["patient:updated"]}))
        .send()
        .await
        .unwrap();
    expect_solo_error(r, 400).await;
    let one: Value =
        solo(&app, Method::GET, &format!("/webhooks/{id}"), "solo-acme-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(one, w);
}

async fn internal_endpoints_are_refused_unless_allowed(engine: Engine) {
    let app =
        spawn_app_with(engine, Spawn { test_clock: true, allow_private: Some(false), ..Default::default() }).await;
    let mut seed = acme_seed("acme");
    seed["tenants"][0]["credentials"][3].as_object_mut().unwrap().remove("push_url");
    app.seed(&seed).await;
    for bad in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://10.1.2.3/",
        "http://2130706433/",
    ] {
        let r = solo(&app, Method::POST, "/webhooks", "solo-acme-1")
            .json(&json!({"endpoint": bad, "events": ["patient:created"]}))
            .send()
            .await
            .unwrap();
        let m = expect_solo_error(r, 400).await;
        assert!(m.contains("refused") && m.contains("public"), "{bad}: {m}");
    }
    let list: Value = solo(&app, Method::GET, "/webhooks", "solo-acme-1").send().await.unwrap().json().await.unwrap();
    assert_eq!(list, json!([]), "nothing written");
}

/// Adds dictionary service `service_id` to Ann's address; answers its id.
async fn add_service(ctx: &dp::Ctx, service_id: &str) -> String {
    let r = dp::call(
        &ctx.app,
        &ctx.token,
        Method::POST,
        &ctx.at("/services"),
        Some(json!({"service_id": service_id, "price": 100, "is_price_from": false})),
    )
    .await;
    assert_eq!(r.status(), 201);
    r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

async fn a_docplanner_booking_is_scheduled_and_retried(engine: Engine) {
    let ctx = dp::setup(engine).await;
    let receiver = Receiver::start().await;
    let w = add(&ctx.app, &receiver.url, &["appointment:scheduled"]).await;
    let key = w["encryptionKey"].as_str().unwrap().to_owned();
    let service = add_service(&ctx, "1").await;
    let r = dp::call(
        &ctx.app,
        &ctx.token,
        Method::PUT,
        &ctx.at("/slots"),
        Some(json!({"slots": [{"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T11:00:00+01:00",
            "address_services": [{"address_service_id": service, "duration": 20}]}]})),
    )
    .await;
    assert_eq!(r.status(), 201);
    // The first call fails: retried later, the same text again.
    receiver.respond_with(500);
    let body = json!({"address_service_id": service, "duration": 20, "is_returning": false,
        "patient": {"name": "Abraham", "surname": "Lincoln", "email": "example@example.com", "phone": 48123123123_i64,
            "birth_date": "1985-01-01", "nin": 894237492, "gender": "m"}});
    let booking = dp::expect_ok(
        dp::call(
            &ctx.app,
            &ctx.token,
            Method::POST,
            &ctx.at(&format!("/slots/{}/book", dp::enc("2030-03-05T09:20:00+01:00"))),
            Some(body),
        )
        .await,
    )
    .await;
    let booking_id: i64 = booking["id"].as_str().unwrap().parse().unwrap();
    ctx.app.run_due().await;
    let first = receiver.wait_for(1).await;
    assert_eq!(first.len(), 1, "only the webhook's one event: {first:?}");
    let calls = decrypted(&first, &key);
    assert_eq!(calls[0], json!({"event": {"type": "appointment:scheduled"}, "data": {"appointmentId": booking_id}}));
    let deliveries = ctx.app.deliveries("acme").await;
    let mine: Vec<&Value> = deliveries.iter().filter(|d| d["target"] == receiver.url.as_str()).collect();
    assert_eq!(mine.len(), 1, "{deliveries:?}");
    assert_eq!(
        (mine[0]["event"].as_str(), mine[0]["state"].as_str(), mine[0]["last_status"].as_i64()),
        (Some("appointment:scheduled"), Some("failed"), Some(500))
    );
    assert!(!serde_json::to_string(&deliveries).unwrap().contains(&key), "the key is not shown");

    receiver.respond_with(200);
    ctx.app.advance(3600).await;
    ctx.app.run_due().await;
    let both = receiver.wait_for(2).await;
    assert_eq!(both[1].body, both[0].body, "a retry sends the same encrypted text");
    let deliveries = ctx.app.deliveries("acme").await;
    let mine: Vec<&Value> = deliveries.iter().filter(|d| d["target"] == receiver.url.as_str()).collect();
    assert_eq!((mine[0]["state"].as_str(), mine[0]["attempts"].as_i64()), (Some("delivered"), Some(2)));
    // The openssl binary reads it the same way.
    let plain = decrypt_with_openssl(&key, &both[1].body);
    assert_eq!(serde_json::from_slice::<Value>(&plain).unwrap(), calls[0]);
}

async fn an_embassy_cancellation_is_cancelled(engine: Engine) {
    let ctx = dp::setup(engine).await;
    let receiver = Receiver::start().await;
    let w = add(&ctx.app, &receiver.url, &["appointment:cancelled", "appointment:rescheduled"]).await;
    let key = w["encryptionKey"].as_str().unwrap().to_owned();
    let gp = ctx.id("healthcare_services", "gp");
    let r = crate::emb::send(
        &ctx.app,
        Method::POST,
        "/Patient",
        &json!({"resourceType": "Patient", "name": [{"given": ["Eva"], "family": "Holm"}],
            "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber",
                            "value": "198001011231"}]}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = dp::embassy_appointment(&ctx.app, &gp, "2030-03-11T10:00:00+01:00", "2030-03-11T10:15:00+01:00").await;
    let status = r.status();
    let created: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let r = crate::emb::patch_appointment(&ctx.app, &id, &[("/status", json!({"valueCode": "cancelled"}))]).await;
    assert_eq!(r.status(), 200);
    ctx.app.run_due().await;
    let got = receiver.wait_for(1).await;
    let calls = decrypted(&got, &key);
    assert_eq!(
        calls,
        [json!({"event": {"type": "appointment:cancelled"}, "data": {"appointmentId": id.parse::<i64>().unwrap()}})]
    );
    let deliveries = ctx.app.deliveries("acme").await;
    assert!(
        deliveries.iter().any(|d| d["target"] == receiver.url.as_str()
            && d["event"] == "appointment:cancelled"
            && d["state"] == "delivered"),
        "{deliveries:?}"
    );
}

async fn a_naboto_patient_is_created_and_deactivated_webhooks_hear_nothing(engine: Engine) {
    let app = crate::nb::setup(engine).await;
    let receiver = Receiver::start().await;
    let gone = Receiver::start().await;
    let w = add(&app, &receiver.url, &["patient:created", "patient:updated"]).await;
    let key = w["encryptionKey"].as_str().unwrap().to_owned();
    let deleted = add(&app, &gone.url, &ALL_EVENTS).await;
    let r = solo(&app, Method::DELETE, &format!("/webhooks/{}", deleted["id"].as_str().unwrap()), "solo-acme-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let created =
        crate::nb::expect(crate::nb::send(&app, Method::POST, "/patient", &crate::nb::new_patient()).await, 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.run_due().await;
    let got = receiver.wait_for(1).await;
    // The openssl binary alone, as a PHP or shell receiver would.
    let plain = decrypt_with_openssl(&key, &got[0].body);
    let call: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(call, json!({"event": {"type": "patient:created"}, "data": {"patientId": id.parse::<i64>().unwrap()}}));
    assert!(gone.received().is_empty(), "a deleted webhook receives nothing");

    // Deactivating the patient: `patient:updated`, and `patient:deactivated`
    // for who listens to it; each delivery with its own salt and IV.
    let deactivations = Receiver::start().await;
    let w2 = add(&app, &deactivations.url, &["patient:deactivated"]).await;
    let mut inactive = created.clone();
    inactive["active"] = json!(false);
    crate::nb::expect(crate::nb::send(&app, Method::PUT, "/patient", &inactive).await, 200).await;
    app.run_due().await;
    let all = receiver.wait_for(2).await;
    let off = deactivations.wait_for(1).await;
    assert_eq!(
        decrypted(&all[1..], &key),
        [json!({"event": {"type": "patient:updated"}, "data": {"patientId": id.parse::<i64>().unwrap()}})]
    );
    assert_eq!(
        decrypted(&off, w2["encryptionKey"].as_str().unwrap()),
        [json!({"event": {"type": "patient:deactivated"}, "data": {"patientId": id.parse::<i64>().unwrap()}})]
    );
    assert_ne!(&all[0].body[..36], &all[1].body[..36], "a fresh salt and IV per delivery");
    assert!(gone.received().is_empty());
}

async fn a_solo_visit_tells_its_whole_life(engine: Engine) {
    use crate::sl;
    let app = sl::setup(engine).await;
    let receiver = Receiver::start().await;
    let w = add(&app, &receiver.url, &ALL_EVENTS).await;
    let key = w["encryptionKey"].as_str().unwrap().to_owned();
    let spid = sl::create_patient(&app, "ext-1").await;
    let a = sl::booked(&app, "ext-1", sl::GP, sl::T0 + 3600).await;
    for body in [
        json!({"videoCall": {"status": "waiting"}}),
        json!({"videoCall": {"status": "LWBS"}}),
        json!({"videoCall": {"status": "incomplete"}}),
        json!({"date": sl::T0 + 7200}),
        json!({"status": "cancelled"}),
    ] {
        let r = sl::put_appointment(&app, a, &body).await;
        assert_eq!(r.status(), 200, "{body}: {}", r.text().await.unwrap());
    }
    let b = sl::booked(&app, "ext-1", sl::GP, sl::T0 + 3600).await;
    for status in ["completed", "sign off"] {
        let r = sl::put_appointment(&app, b, &json!({"status": status})).await;
        assert_eq!(r.status(), 200, "{status}: {}", r.text().await.unwrap());
    }
    let c = sl::booked(&app, "ext-1", sl::GP, sl::T0 + 5400).await;
    let r = sl::put_appointment(&app, c, &json!({"status": "not showed up"})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    app.run_due().await;
    let expected = [
        ("patient:created", "patientId", spid),
        ("appointment:scheduled", "appointmentId", a),
        ("appointment:lwbs", "appointmentId", a),
        ("appointment:incompleted", "appointmentId", a),
        ("appointment:rescheduled", "appointmentId", a),
        ("appointment:cancelled", "appointmentId", a),
        ("appointment:scheduled", "appointmentId", b),
        ("appointment:completed", "appointmentId", b),
        ("appointment:scheduled", "appointmentId", c),
        ("appointment:no-show", "appointmentId", c),
    ];
    let got = receiver.wait_for(expected.len()).await;
    let calls = decrypted(&got, &key);
    let want: Vec<Value> =
        expected.iter().map(|(t, field, id)| json!({"event": {"type": t}, "data": {*field: id}})).collect();
    assert_eq!(calls, want, "in order, one queue per webhook");
}

on_both_engines!(
    a_solo_visit_tells_its_whole_life,
    webhooks_are_added_updated_listed_read_and_deleted,
    bad_webhooks_are_refused,
    internal_endpoints_are_refused_unless_allowed,
    a_docplanner_booking_is_scheduled_and_retried,
    an_embassy_cancellation_is_cancelled,
    a_naboto_patient_is_created_and_deactivated_webhooks_hear_nothing,
);
