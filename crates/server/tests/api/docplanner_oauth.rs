//! `POST /oauth/v2/token` with the multipart bodies real clients send: the
//! official PHP SDK (Guzzle 7) writes a `Content-Length` header into every
//! part.

use crate::helpers::{Engine, TestApp, acme_seed, spawn_app};
use crate::on_both_engines;
use serde_json::Value;

async fn seeded(engine: Engine) -> TestApp {
    let app = spawn_app(engine).await;
    app.seed(&acme_seed("acme")).await;
    app
}

/// Posts a multipart body with the given Content-Type and answers the status
/// and the JSON body.
async fn post_multipart(app: &TestApp, content_type: &str, body: String) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/oauth/v2/token"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// One part the way Guzzle's `MultipartStream` writes it.
fn guzzle_part(boundary: &str, name: &str, value: &str) -> String {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Length: {}\r\n\r\n{value}\r\n",
        value.len()
    )
}

fn guzzle_body(boundary: &str, parts: &[(&str, &str)]) -> String {
    let mut body: String = parts.iter().map(|(n, v)| guzzle_part(boundary, n, v)).collect();
    body.push_str(&format!("--{boundary}--\r\n"));
    body
}

const SDK_FIELDS: [(&str, &str); 4] = [
    ("grant_type", "client_credentials"),
    ("scope", "integration"),
    ("client_id", "dp-acme"),
    ("client_secret", "dp-secret"),
];

async fn the_official_php_sdk_gets_a_token(engine: Engine) {
    let app = seeded(engine).await;
    // The exact bytes of `Authorization::getAccessToken` (v1.0.34, Guzzle 7).
    let boundary = "9613a8d738ab62cd1340496ccfd3ea9f272e61fa";
    let body = guzzle_body(boundary, &SDK_FIELDS);
    assert!(body.starts_with(
        "--9613a8d738ab62cd1340496ccfd3ea9f272e61fa\r\nContent-Disposition: form-data; name=\"grant_type\"\r\nContent-Length: 18\r\n\r\nclient_credentials\r\n--9613a8d738ab62cd1340496ccfd3ea9f272e61fa\r\nContent-Disposition: form-data; name=\"scope\"\r\nContent-Length: 11\r\n\r\nintegration\r\n"
    ));
    let (status, token) = post_multipart(&app, &format!("multipart/form-data; boundary={boundary}"), body).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "bearer");
    assert_eq!(token["scope"], "integration");
    // The token works.
    let r = crate::dp::api(&app, token["access_token"].as_str().unwrap(), "/facilities").await;
    assert_eq!(r.status(), 200);
}

async fn a_quoted_multipart_boundary_is_read(engine: Engine) {
    let app = seeded(engine).await;
    let boundary = "a quoted:boundary";
    let (status, token) = post_multipart(
        &app,
        &format!("multipart/form-data; boundary=\"{boundary}\""),
        guzzle_body(boundary, &SDK_FIELDS),
    )
    .await;
    assert_eq!(status, 200, "{token}");
    assert!(token["access_token"].is_string());
}

async fn multipart_parts_in_another_order_and_unknown_parts_are_read(engine: Engine) {
    let app = seeded(engine).await;
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    body.push_str(&guzzle_part(boundary, "client_secret", "dp-secret"));
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"note.txt\"\r\nContent-Type: text/plain\r\n\r\nnot a credential\r\n"
    ));
    body.push_str(&guzzle_part(boundary, "x-extra", "ignored"));
    body.push_str(&guzzle_part(boundary, "client_id", "dp-acme"));
    body.push_str(&guzzle_part(boundary, "grant_type", "client_credentials"));
    body.push_str(&format!("--{boundary}--\r\n"));
    let (status, token) = post_multipart(&app, &format!("multipart/form-data; boundary={boundary}"), body).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["scope"], "integration", "scope defaults to integration");
}

async fn a_malformed_multipart_body_is_an_invalid_request(engine: Engine) {
    let app = seeded(engine).await;
    // No boundary parameter at all.
    let (status, error) = post_multipart(&app, "multipart/form-data", guzzle_body("b", &SDK_FIELDS)).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"], "invalid_request");
    // A body that never closes its last part.
    let truncated = guzzle_body("b", &SDK_FIELDS).replace("--b--\r\n", "--b\r\nContent-Disposition: form-da");
    let (status, error) = post_multipart(&app, "multipart/form-data; boundary=b", truncated).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"], "invalid_request");
}

on_both_engines!(
    the_official_php_sdk_gets_a_token,
    a_quoted_multipart_boundary_is_read,
    multipart_parts_in_another_order_and_unknown_parts_are_read,
    a_malformed_multipart_body_is_an_invalid_request,
);
