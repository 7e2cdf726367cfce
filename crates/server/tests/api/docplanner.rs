//! Docplanner (integrations API v3), the part built so far: OAuth client
//! credentials, facility scoping, facilities, doctors, addresses, services.

use crate::dp::{BASIC, api, expect_error, setup, token};
use crate::helpers::Engine;
use crate::on_both_engines;
use serde_json::{Value, json};

async fn tokens_by_every_documented_means(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let url = app.url("/oauth/v2/token");
    let basic = app
        .client
        .post(&url)
        .header("authorization", BASIC)
        .form(&[("grant_type", "client_credentials"), ("scope", "integration")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let body: Value = basic.json().await.unwrap();
    assert_eq!(
        (body["expires_in"].as_i64(), body["token_type"].as_str(), body["scope"].as_str()),
        (Some(3600), Some("bearer"), Some("integration"))
    );
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
    let form = app
        .client
        .post(&url)
        .form(&[("grant_type", "client_credentials"), ("client_id", "dp-acme"), ("client_secret", "dp-secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let json_body = app.client.post(&url).json(&json!({"grant_type": "client_credentials", "client_id": "dp-acme", "client_secret": "dp-secret", "scope": "integration"})).send().await.unwrap();
    assert_eq!(json_body.status(), 200);
    let boundary = "XyZ";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\ndp-acme\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\ndp-secret\r\n--{boundary}--\r\n"
    );
    let mp = app
        .client
        .post(&url)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(mp.status(), 200);
    for (fields, status, error) in [
        (
            vec![("grant_type", "client_credentials"), ("client_id", "dp-acme"), ("client_secret", "wrong")],
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", "dp-secret")],
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "password"), ("client_id", "dp-acme"), ("client_secret", "dp-secret")],
            400,
            "unsupported_grant_type",
        ),
        (vec![("client_id", "dp-acme"), ("client_secret", "dp-secret")], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "dp-acme"),
                ("client_secret", "dp-secret"),
                ("scope", "admin"),
            ],
            400,
            "invalid_scope",
        ),
        (vec![("grant_type", "client_credentials")], 400, "invalid_client"),
    ] {
        let r = app.client.post(&url).form(&fields).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{fields:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"], error, "{fields:?}");
    }
    // The API wants a valid, unexpired token.
    let missing = app.client.get(app.url("/api/v3/integration/facilities")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(api(app, "not-a-token", "/facilities").await.status(), 401);
    let t = token(app).await;
    assert_eq!(api(app, &t, "/facilities").await.status(), 200);
    app.advance(3599).await;
    assert_eq!(api(app, &t, "/facilities").await.status(), 200);
    app.advance(1).await;
    let expired = api(app, &t, "/facilities").await;
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.json::<Value>().await.unwrap()["error_description"], "The access token provided has expired.");
    // Another dialect's secret is no Docplanner client.
    let embassy = app
        .client
        .post(&url)
        .form(&[("grant_type", "client_credentials"), ("client_id", ""), ("client_secret", "emb-acme-1")])
        .send()
        .await
        .unwrap();
    assert_eq!(embassy.status(), 401);
    ctx.app.stop().await;
}

async fn facilities_doctors_and_addresses(engine: Engine) {
    let ctx = setup(engine).await;
    let app = &ctx.app;
    let t = token(app).await;
    let r = api(app, &t, "/facilities").await;
    assert_eq!(r.headers()["content-type"], "application/vnd.docplanner+json; charset=UTF-8");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"_items": [{"id": ctx.hosp, "name": "Test Hospital", "_links": {
            "self": {"href": format!("/api/v3/integration/facilities/{}", ctx.hosp), "method": "get"},
            "doctors": {"href": format!("/api/v3/integration/facilities/{}/doctors", ctx.hosp), "method": "get"}}}]}),
        "only the assigned facility"
    );
    let f: Value = api(app, &t, &format!("/facilities/{}?with=facility.doctors", ctx.hosp)).await.json().await.unwrap();
    assert_eq!(f["doctors"]["_items"].as_array().unwrap().len(), 2);
    // The unassigned facility of the same tenant, an unknown one, and garbage: 403.
    for id in ["999999", "abc"] {
        expect_error(
            api(app, &t, &format!("/facilities/{id}")).await,
            403,
            "You are not authorized to see this facility",
        )
        .await;
    }
    let doctors: Value =
        api(app, &t, &format!("/facilities/{}/doctors?with=doctor.specializations,doctor.license_numbers", ctx.hosp))
            .await
            .json()
            .await
            .unwrap();
    let bo = doctors["_items"].as_array().unwrap().iter().find(|d| d["name"] == "Bo").unwrap();
    assert_eq!(bo["specializations"], json!({"_items": [{"id": "12", "name": "Cardiology"}]}));
    assert_eq!(bo["license_numbers"]["_items"][0]["license_number"], "PL-123");
    let ann: Value = api(app, &t, &format!("/facilities/{}/doctors/{}?with=doctor.addresses", ctx.hosp, ctx.ann))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((ann["name"].as_str(), ann["surname"].as_str()), (Some("Ann"), Some("Berg")));
    assert_eq!(ann["addresses"]["_items"][0]["id"], ctx.address);
    expect_error(api(app, &t, &format!("/facilities/{}/doctors/999999", ctx.hosp)).await, 404, "Object not found")
        .await;
    let addresses: Value =
        api(app, &t, &format!("/facilities/{}/doctors/{}/addresses?with=address.insurance_support", ctx.hosp, ctx.ann))
            .await
            .json()
            .await
            .unwrap();
    let path = format!("/api/v3/integration/facilities/{}/doctors/{}", ctx.hosp, ctx.ann);
    assert_eq!(
        addresses,
        json!({"_items": [{"id": ctx.address, "name": "Test Hospital", "city_name": "Warszawa", "post_code": "", "street": "Obrzezna",
            "_links": {"self": {"href": format!("{path}/addresses/{}", ctx.address), "method": "get"},
                       "facility": {"href": format!("/api/v3/integration/facilities/{}", ctx.hosp), "method": "get"},
                       "doctor": {"href": path, "method": "get"}},
            "booking_extra_fields": {"birth_date": false, "gender": false, "nin": false}, "insurance_support": "private"}]})
    );
    let one: Value = api(app, &t, &format!("/facilities/{}/doctors/{}/addresses/{}", ctx.hosp, ctx.ann, ctx.address))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], ctx.address);
    // Bo's address at the hospital is not Ann's.
    let bo_id = bo["id"].as_str().unwrap();
    let bo_addresses: Value =
        api(app, &t, &format!("/facilities/{}/doctors/{bo_id}/addresses", ctx.hosp)).await.json().await.unwrap();
    let bo_address = bo_addresses["_items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(bo_addresses["_items"][0]["is_online_only"], true);
    expect_error(
        api(app, &t, &format!("/facilities/{}/doctors/{}/addresses/{bo_address}", ctx.hosp, ctx.ann)).await,
        403,
        "This address does not belong to this doctor",
    )
    .await;
    expect_error(
        api(app, &t, &format!("/facilities/{}/doctors/{}/addresses/999999", ctx.hosp, ctx.ann)).await,
        404,
        "Object not found",
    )
    .await;
    let services: Value = api(app, &t, "/services").await.json().await.unwrap();
    assert_eq!(
        services,
        json!({"_items": [{"id": "1", "name": "ablacja"}, {"id": "3", "name": "ablacja serca"},
            {"id": "5", "name": "akupresura"}, {"id": "7", "name": "akupunktura"}]})
    );
    expect_error(api(app, &t, "/no/such/path").await, 404, "Object not found").await;
    // Another facility answers 403 before its body is even read.
    let r = crate::dp::call(
        app,
        &t,
        reqwest::Method::POST,
        "/facilities/999999/doctors/1/addresses/1/services",
        Some(json!("not an object")),
    )
    .await;
    expect_error(r, 403, "You are not authorized to see this facility").await;
    // A method the path does not take: 405 in the Docplanner shape.
    let r = app.client.put(app.url("/api/v3/integration/facilities")).bearer_auth(&t).send().await.unwrap();
    expect_error(r, 405, "Method not allowed").await;
    ctx.app.stop().await;
}

on_both_engines!(tokens_by_every_documented_means, facilities_doctors_and_addresses);
