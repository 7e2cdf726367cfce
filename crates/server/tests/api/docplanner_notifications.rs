//! Docplanner notifications (PULL queue, PUSH through the delivery engine,
//! release) and rate limits, through HTTP on the real server. Bookings come
//! through the Embassy dialect at the address `obrzezna` (linked to its `gp`
//! service): the cross-dialect path.

use crate::dp::{expect_error, expect_ok, seed};
use crate::helpers::{Engine, Spawn, TestApp, spawn_app_with};
use crate::on_both_engines;
use crate::receiver::Receiver;
use polyclinic::config::DocplannerLimits;
use polyclinic_core::event::{EventKind, NewEvent};
use polyclinic_core::facility::AddressService;
use polyclinic_core::schedule::{CalendarBreak, Interval};
use polyclinic_core::{AddressId, AddressServiceId, CalendarBreakId, ServiceId, TenantId};
use reqwest::Method;
use serde_json::{Value, json};

struct Ctx {
    app: TestApp,
    ids: Value,
    token: String,
}

impl Ctx {
    fn id(&self, kind: &str, key: &str) -> String {
        self.ids["tenants"]["acme"][kind][key].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.call(Method::GET, path).await
    }

    /// A GET not checked against the OpenAPI document: its `Notification`
    /// schema leaves `address-assigned` and `address-unassigned` out of the
    /// names, though its callbacks define both.
    async fn get_unchecked(&self, path: &str) -> reqwest::Response {
        let url = self.app.url(&format!("/api/v3/integration{path}"));
        self.app.client.get(url).bearer_auth(&self.token).send().await.unwrap()
    }

    /// A fresh token (after the clock moved past the old one's hour).
    async fn renew(&mut self) {
        self.token = token_for(&self.app, "dp-acme", "dp-secret").await;
    }

    async fn call(&self, method: Method, path: &str) -> reqwest::Response {
        crate::dp::call(&self.app, &self.token, method, path, None).await
    }

    /// Books `gp` with Ann for Eva through Embassy; answers the appointment id.
    async fn book(&self, start: &str, end: &str) -> String {
        let r = crate::dp::embassy_appointment(&self.app, &self.id("healthcare_services", "gp"), start, end).await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// An Embassy `PATCH /Appointment/{id}` replacing `path`s.
    async fn patch(&self, id: &str, ops: &[(&str, Value)]) {
        let r = crate::emb::patch_appointment(&self.app, id, ops).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    async fn embassy(&self, method: Method, path: &str, body: &Value) -> reqwest::Response {
        self.app.embassy(method, path).header("content-type", "application/fhir+json").json(body).send().await.unwrap()
    }

    /// The oldest queued notification.
    async fn pull(&self) -> Value {
        expect_ok(self.get("/notifications").await).await
    }
}

/// The Docplanner test seed with the `dp-acme` client reading its
/// notifications by PULL (no push URL), or pushing to `push_url`.
fn doc(push_url: Option<&str>) -> Value {
    let mut doc = seed();
    for c in doc["tenants"][0]["credentials"].as_array_mut().unwrap() {
        if c["dialect"] == "docplanner" {
            let c = c.as_object_mut().unwrap();
            c.remove("push_url");
            c.remove("push_api_key");
            if let Some(url) = push_url {
                c.insert("push_url".into(), json!(url));
                c.insert("push_api_key".into(), json!("push-key-1"));
            }
        }
    }
    doc
}

async fn token_for(app: &TestApp, client_id: &str, secret: &str) -> String {
    let r = app
        .client
        .post(app.url("/oauth/v2/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn start(engine: Engine, doc: &Value, limits: Option<DocplannerLimits>) -> Ctx {
    let app = spawn_app_with(engine, Spawn { test_clock: true, docplanner_limits: limits, ..Default::default() }).await;
    let ids = app.seed(doc).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    let token = token_for(&app, "dp-acme", "dp-secret").await;
    let ctx = Ctx { app, ids, token };
    let patient = json!({"resourceType": "Patient",
        "identifier": [{"system": "http://schema.visibacare.com/identifier/patient/nationalidentificationnumber", "value": "198001011231"}],
        "name": [{"text": "Eva Holm", "family": "Holm", "given": ["Eva"]}],
        "telecom": [{"system": "email", "value": "eva@holm.test"}]});
    assert_eq!(ctx.embassy(Method::POST, "/Patient", &patient).await.status(), 200);
    ctx
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.parse::<polyclinic_core::Uuid>().is_ok())
}

async fn pull_answers_the_oldest_first_removes_it_and_404s_when_empty(engine: Engine) {
    let ctx = start(engine, &doc(None), None).await;
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    expect_error(ctx.get("/notifications/multiple").await, 404, "No notifications found").await;
    let first = ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.app.advance(60).await;
    let second = ctx.book("2030-03-05T10:00:00Z", "2030-03-05T10:15:00Z").await;
    ctx.app.run_due().await;
    // Rate limits are off here: no headers.
    let r = ctx.get("/notifications").await;
    assert!(r.headers().get("x-ratelimit-limit").is_none());
    let n = expect_ok(r).await;
    let (hosp, ann, address) =
        (ctx.id("facilities", "hosp"), ctx.id("practitioners", "ann"), ctx.id("addresses", "obrzezna"));
    assert_eq!(n["name"], "slot-booked");
    assert_eq!(n["created_at"], "2030-03-04T09:00:00+01:00", "when it happened, in the tenant's zone");
    let data = &n["data"];
    assert_eq!(
        data["facility"],
        json!({"id": hosp, "name": "Test Hospital", "_links": {
            "self": {"href": format!("/api/v3/integration/facilities/{hosp}"), "method": "get"},
            "doctors": {"href": format!("/api/v3/integration/facilities/{hosp}/doctors"), "method": "get"}}})
    );
    assert_eq!(
        data["doctor"],
        json!({"id": ann, "name": "Ann", "surname": "Berg", "_links": {
            "self": {"href": format!("/api/v3/integration/facilities/{hosp}/doctors/{ann}"), "method": "get"},
            "addresses": {"href": format!("/api/v3/integration/facilities/{hosp}/doctors/{ann}/addresses"), "method": "get"}}})
    );
    assert_eq!(
        (data["address"]["id"].as_str(), data["address"]["street"].as_str()),
        (Some(&*address), Some("Obrzezna"))
    );
    let b = &data["visit_booking"];
    assert_eq!(b["id"], first.as_str());
    assert_eq!(b["status"], "booked");
    assert_eq!(b["start_at"], "2030-03-05T10:00:00+01:00");
    assert_eq!(b["end_at"], "2030-03-05T10:15:00+01:00");
    assert_eq!(b["duration"], 15);
    assert_eq!(b["booked_by"], "integration", "booked through another dialect");
    assert_eq!(b["canceled_by"], "");
    assert_eq!(b["booked_at"], "2030-03-04T09:00:00+01:00");
    assert_eq!((b["patient"]["name"].as_str(), b["patient"]["surname"].as_str()), (Some("Eva"), Some("Holm")));
    assert!(is_uuid(&b["signature"]), "{b}");
    // FIFO, and each notification is taken once.
    let n2 = ctx.pull().await;
    assert_eq!(n2["data"]["visit_booking"]["id"], second.as_str());
    assert_ne!(n2["data"]["visit_booking"]["signature"], b["signature"], "a signature per notification");
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    // Release is for PUSH clients.
    expect_error(ctx.call(Method::POST, "/notifications/release").await, 403, "You are not allowed to use this method")
        .await;
    ctx.app.stop().await;
}

/// The document gives `/notifications/multiple` no error but 404 "No
/// notifications found": a limit outside 1..100 is brought into it, one that
/// is not an integer counts as absent (1), and a repeated one counts with its
/// last value.
async fn a_pull_limit_out_of_range_is_brought_into_it(engine: Engine) {
    let ctx = start(engine, &doc(None), None).await;
    let mut ids = Vec::new();
    for (start, end) in [("09:00", "09:15"), ("09:15", "09:30"), ("09:30", "09:45"), ("09:45", "10:00")] {
        ids.push(ctx.book(&format!("2030-03-05T{start}:00Z"), &format!("2030-03-05T{end}:00Z")).await);
    }
    ctx.app.run_due().await;
    let pulled = |page: &Value| -> Vec<String> {
        page["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["data"]["visit_booking"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (bad, remaining) in [("0", 3), ("-1", 2), ("x", 1)] {
        let page = expect_ok(ctx.get(&format!("/notifications/multiple?limit={bad}")).await).await;
        assert_eq!(pulled(&page), [ids[3 - remaining].clone()], "limit={bad} pulls one");
        assert_eq!(page["remaining"], remaining);
    }
    let page = expect_ok(ctx.get("/notifications/multiple?limit=101&limit=99999999999999999999999").await).await;
    assert_eq!(pulled(&page), [ids[3].clone()], "a limit over 100 pulls up to 100");
    assert_eq!(page["remaining"], 0);
    expect_error(ctx.get("/notifications/multiple?limit=101").await, 404, "No notifications found").await;
    ctx.app.stop().await;
}

async fn multiple_answers_up_to_limit_with_the_remaining_count(engine: Engine) {
    let ctx = start(engine, &doc(None), None).await;
    let ids = [
        ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await,
        ctx.book("2030-03-05T09:15:00Z", "2030-03-05T09:30:00Z").await,
        ctx.book("2030-03-05T09:30:00Z", "2030-03-05T09:45:00Z").await,
    ];
    ctx.app.run_due().await;
    let page = expect_ok(ctx.get("/notifications/multiple?limit=2").await).await;
    assert_eq!(page["remaining"], 1);
    let got: Vec<&str> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["data"]["visit_booking"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    let rest = expect_ok(ctx.get("/notifications/multiple").await).await;
    assert_eq!(rest["remaining"], 0);
    assert_eq!(rest["notifications"].as_array().unwrap().len(), 1, "the default limit is 1");
    assert_eq!(rest["notifications"][0]["data"]["visit_booking"]["id"], ids[2].as_str());
    expect_error(ctx.get("/notifications/multiple?limit=100").await, 404, "No notifications found").await;
    ctx.app.stop().await;
}

async fn reschedules_and_cancellations_through_embassy_are_told(engine: Engine) {
    let ctx = start(engine, &doc(None), None).await;
    let id = ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.app.advance(60).await;
    ctx.patch(
        &id,
        &[
            ("/start", json!({"valueDateTime": "2030-03-06T11:00:00Z"})),
            ("/end", json!({"valueDateTime": "2030-03-06T11:30:00Z"})),
        ],
    )
    .await;
    ctx.app.advance(60).await;
    ctx.patch(&id, &[("/status", json!({"valueCode": "cancelled"}))]).await;
    ctx.app.run_due().await;
    let page = expect_ok(ctx.get("/notifications/multiple?limit=10").await).await;
    let names: Vec<&str> =
        page["notifications"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["slot-booked", "booking-moved", "booking-canceled"]);
    let moved = &page["notifications"][1];
    assert_eq!(moved["created_at"], "2030-03-04T09:01:00+01:00");
    let (old, new) = (&moved["data"]["old_visit_booking"], &moved["data"]["new_visit_booking"]);
    assert_eq!((old["id"].as_str(), new["id"].as_str()), (Some(id.as_str()), Some(id.as_str())), "the same booking");
    assert_eq!(
        (old["start_at"].as_str(), old["end_at"].as_str()),
        (Some("2030-03-05T10:00:00+01:00"), Some("2030-03-05T10:15:00+01:00"))
    );
    assert_eq!(
        (new["start_at"].as_str(), new["end_at"].as_str()),
        (Some("2030-03-06T12:00:00+01:00"), Some("2030-03-06T12:30:00+01:00"))
    );
    assert_eq!((old["duration"].as_i64(), new["duration"].as_i64()), (Some(15), Some(30)));
    assert!(is_uuid(&new["signature"]));
    let canceled = &page["notifications"][2]["data"]["visit_booking"];
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["canceled_at"], "2030-03-04T09:02:00+01:00");
    assert_ne!(canceled["canceled_by"], "");
    ctx.app.stop().await;
}

async fn pull_notifications_expire_after_72_hours(engine: Engine) {
    let mut ctx = start(engine, &doc(None), None).await;
    ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.book("2030-03-05T10:00:00Z", "2030-03-05T10:15:00Z").await;
    ctx.app.run_due().await;
    ctx.app.advance(72 * 3600 - 1).await;
    ctx.renew().await;
    let page = expect_ok(ctx.get("/notifications/multiple").await).await;
    assert_eq!(page["remaining"], 1, "71:59:59 old: still there");
    ctx.app.advance(1).await;
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    // And purged by the next pass, never answered later (even with the clock set back).
    ctx.app.run_due().await;
    ctx.app.set_clock("2030-03-04T08:00:00Z").await;
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    ctx.app.stop().await;
}

async fn only_clients_assigned_the_facility_are_told(engine: Engine) {
    let mut d = doc(None);
    d["tenants"][0]["credentials"].as_array_mut().unwrap().push(
        json!({"dialect": "docplanner", "client_id": "dp-other", "client_secret": "other-secret", "facilities": ["other"]}),
    );
    d["tenants"][0]["credentials"].as_array_mut().unwrap().push(
        json!({"dialect": "docplanner", "client_id": "dp-both", "client_secret": "both-secret", "facilities": ["other", "hosp"]}),
    );
    let ctx = start(engine, &d, None).await;
    ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.app.run_due().await;
    let other = token_for(&ctx.app, "dp-other", "other-secret").await;
    let both = token_for(&ctx.app, "dp-both", "both-secret").await;
    let r = crate::dp::api(&ctx.app, &other, "/notifications").await;
    expect_error(r, 404, "No notifications found").await;
    let theirs = expect_ok(crate::dp::api(&ctx.app, &both, "/notifications").await).await;
    let ours = ctx.pull().await;
    assert_eq!(theirs["name"], "slot-booked");
    assert_eq!(theirs["data"]["visit_booking"]["id"], ours["data"]["visit_booking"]["id"]);
    assert_ne!(theirs["data"]["visit_booking"]["signature"], ours["data"]["visit_booking"]["signature"]);
    ctx.app.stop().await;
}

/// Appends an event to the tenant's outbox as its producer would.
async fn emit(app: &TestApp, tenant: TenantId, event: NewEvent) {
    let now: jiff::Timestamp = "2030-03-04T08:00:00Z".parse().unwrap();
    app.store
        .write(move |c| Box::pin(async move { polyclinic_store::outbox::append(c, tenant, now, &[event]).await }))
        .await
        .unwrap();
}

async fn breaks_and_address_services_are_told(engine: Engine) {
    let ctx = start(engine, &doc(None), None).await;
    let tenant = TenantId(ctx.id_num("id"));
    let address = AddressId(ctx.id("addresses", "obrzezna").parse().unwrap());
    let b = CalendarBreak {
        id: CalendarBreakId(77),
        address_id: address,
        interval: Interval {
            start: "2030-03-05T09:00:00Z".parse().unwrap(),
            end: "2030-03-05T11:00:00Z".parse().unwrap(),
        },
        description: None,
        coupled_group: None,
    };
    let data = json!({"address_id": address.to_string(), "break": b});
    emit(&ctx.app, tenant, NewEvent::new(EventKind::BreakCreated, "break", 77, data)).await;
    let s = AddressService {
        id: AddressServiceId(88),
        address_id: address,
        service_id: ServiceId(1),
        name: "ablacja".into(),
        custom_name: None,
        price: None,
        is_price_from: false,
        description: Some("Address service description 1".into()),
        default_duration: Some(30),
        is_visible: true,
        is_default: true,
        allowed_patients: None,
    };
    let data = json!({"address_id": address.to_string(), "address_service": s});
    emit(&ctx.app, tenant, NewEvent::new(EventKind::AddressServiceDeleted, "address_service", 88, data)).await;
    ctx.app.run_due().await;
    let n = ctx.pull().await;
    assert_eq!(n["name"], "break-created");
    assert_eq!(
        n["data"]["break"],
        json!({"id": "77", "since": "2030-03-05T10:00:00+01:00", "till": "2030-03-05T12:00:00+01:00"})
    );
    assert_eq!(n["created_at"], "2030-03-04T09:00:00+01:00");
    let n = ctx.pull().await;
    assert_eq!(n["name"], "address-service-deleted");
    let s = &n["data"]["address_service"];
    assert_eq!(
        (s["id"].as_str(), s["service_id"].as_str(), s["is_default"].as_bool(), s["description"].as_str()),
        (Some("88"), Some("1"), Some(true), Some("Address service description 1"))
    );
    assert_eq!(n["data"]["address"]["id"], address.to_string());
    ctx.app.stop().await;
}

impl Ctx {
    fn id_num(&self, field: &str) -> i64 {
        self.ids["tenants"]["acme"][field].as_str().unwrap().parse().unwrap()
    }
}

async fn address_changes_by_seed_are_told(engine: Engine) {
    let mut d = doc(None);
    let ctx = start(engine, &d, None).await;
    // Reloading the same document tells nothing.
    ctx.app.seed(&d).await;
    ctx.app.run_due().await;
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    // A new address in an assigned facility, and a commercial type.
    let addresses = d["tenants"][0]["facilities"][0]["addresses"].as_array_mut().unwrap();
    addresses
        .push(json!({"key": "ann-new", "doctor": "ann", "name": "New wing", "street": "Nowa 2", "city": "Warszawa"}));
    addresses[0]["commercial_type"] = json!("saas-only");
    let ids = ctx.app.seed(&d).await;
    ctx.app.run_due().await;
    let page = expect_ok(ctx.get_unchecked("/notifications/multiple?limit=10").await).await;
    let got: Vec<(&str, &str)> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["data"]["address"]["id"].as_str().unwrap()))
        .collect();
    let new = ids["tenants"]["acme"]["addresses"]["ann-new"].as_str().unwrap();
    let obrzezna = ctx.id("addresses", "obrzezna");
    assert_eq!(got, [("address-assigned", new), ("address-commercial-type-changed", obrzezna.as_str())]);
    let changed = &page["notifications"][1]["data"];
    assert_eq!(changed["address"]["commercial_type"], "saas-only");
    assert_eq!(changed["facility"]["id"], ctx.id("facilities", "hosp"));
    // An address seeded without a type is `premium`, never `null` (the schema's enum).
    assert_eq!(page["notifications"][0]["data"]["address"]["commercial_type"], "premium");
    // The facility is taken from the client: each of its addresses is unassigned.
    for c in d["tenants"][0]["credentials"].as_array_mut().unwrap() {
        if c["dialect"] == "docplanner" {
            c["facilities"] = json!([]);
        }
    }
    ctx.app.seed(&d).await;
    ctx.app.run_due().await;
    let page = expect_ok(ctx.get_unchecked("/notifications/multiple?limit=10").await).await;
    let mut got: Vec<&str> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["name"], "address-unassigned");
            n["data"]["address"]["id"].as_str().unwrap()
        })
        .collect();
    got.sort();
    let mut want = vec![obrzezna, ctx.id("addresses", "bo-hosp"), new.to_owned()];
    want.sort();
    assert_eq!(got, want);
    // No longer assigned: bookings there are not told.
    ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.app.run_due().await;
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    ctx.app.stop().await;
}

async fn push_sends_with_the_api_key_retries_at_1_5_15_minutes_and_release_requeues(engine: Engine) {
    let rx = Receiver::start().await;
    let mut ctx = start(engine, &doc(Some(&rx.url)), None).await;
    rx.respond_with(500);
    let id = ctx.book("2030-03-05T09:00:00Z", "2030-03-05T09:15:00Z").await;
    ctx.app.run_due().await;
    let got = rx.wait_for(1).await;
    assert_eq!(got[0].header("x-api-key"), Some("push-key-1"));
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    // The delivery record holds the key sealed, never in clear.
    let docs: Vec<String> = ctx
        .app
        .store
        .read(|c| {
            Box::pin(async move { Ok(sqlx::query_scalar("SELECT doc FROM deliveries").fetch_all(&mut *c).await?) })
        })
        .await
        .unwrap();
    assert!(!docs.is_empty() && docs.iter().all(|d| !d.contains("push-key-1") && d.contains("sealed:")));
    let body = got[0].json();
    crate::contract::check_notification(&body);
    assert_eq!(body["name"], "slot-booked");
    assert_eq!(body["data"]["visit_booking"]["id"], id.as_str());
    // Nothing is queued for PULL.
    expect_error(ctx.get("/notifications").await, 404, "No notifications found").await;
    let push = |d: Vec<Value>| d.into_iter().find(|d| d["event"] == "slot-booked").expect("a slot-booked delivery");
    let d = push(ctx.app.deliveries("acme").await);
    assert_eq!(
        (d["state"].as_str(), d["attempts"].as_i64(), d["target"].as_str()),
        (Some("failed"), Some(1), Some(&*rx.url))
    );
    // Retries exactly 1, 5 and 15 minutes after each failure, then dead.
    for (wait, attempts) in [(60, 2), (300, 3), (900, 4)] {
        ctx.app.advance(wait - 1).await;
        ctx.app.run_due().await;
        assert_eq!(push(ctx.app.deliveries("acme").await)["attempts"], attempts - 1, "not before {wait} s");
        ctx.app.advance(1).await;
        ctx.app.run_due().await;
        assert_eq!(push(ctx.app.deliveries("acme").await)["attempts"], attempts, "at {wait} s");
    }
    let dead = push(ctx.app.deliveries("acme").await);
    assert_eq!(dead["state"], "dead");
    ctx.app.advance(100_000).await;
    ctx.app.run_due().await;
    assert_eq!(rx.received().len(), 4, "nothing more is tried");
    ctx.renew().await;
    // Release: the dead notification is sent again.
    rx.respond_with(200);
    let r = ctx.call(Method::POST, "/notifications/release").await;
    assert_eq!(r.status(), 204);
    ctx.app.run_due().await;
    let got = rx.wait_for(5).await;
    assert_eq!(got[4].json()["data"]["visit_booking"]["id"], id.as_str());
    let d = push(ctx.app.deliveries("acme").await);
    assert_eq!((d["state"].as_str(), d["attempts"].as_i64()), (Some("delivered"), Some(5)));
    // Once an hour.
    ctx.app.advance(600).await;
    let r = ctx.call(Method::POST, "/notifications/release").await;
    assert_eq!((r.status().as_u16(), header(&r, "retry-after")), (429, "3000"), "as the document: no body");
    ctx.app.advance(3000).await;
    ctx.renew().await;
    assert_eq!(ctx.call(Method::POST, "/notifications/release").await.status(), 204);
    ctx.app.stop().await;
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

async fn rate_limits_count_gets_per_hour_and_writes_per_minute(engine: Engine) {
    let limits = DocplannerLimits { get_per_hour: 3, writes_per_minute: 2 };
    let mut ctx = start(engine, &doc(None), Some(limits)).await;
    ctx.app.set_clock("2030-03-04T08:20:00Z").await;
    ctx.renew().await;
    for used in 1..=3 {
        let r = ctx.get("/facilities").await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            (header(&r, "x-ratelimit-limit"), header(&r, "x-ratelimit-used"), header(&r, "x-ratelimit-remaining")),
            ("3", used.to_string().as_str(), (3 - used).to_string().as_str())
        );
        assert_eq!(header(&r, "x-ratelimit-reset"), "2030-03-04T10:00:00+01:00", "the end of the clock hour");
    }
    let r = ctx.get("/notifications").await;
    assert_eq!((header(&r, "x-ratelimit-remaining"), header(&r, "x-ratelimit-used")), ("0", "3"));
    assert_eq!(header(&r, "retry-after"), "2400");
    expect_error(r, 429, "Too many requests").await;
    // Writes count apart, per minute; errors count too.
    for used in 1..=2 {
        let r = ctx.call(Method::POST, "/notifications/release").await;
        assert_eq!((header(&r, "x-ratelimit-limit"), header(&r, "x-ratelimit-used")), ("2", used.to_string().as_str()));
        assert_eq!(header(&r, "x-ratelimit-reset"), "2030-03-04T09:21:00+01:00");
        assert_eq!(r.status(), 403);
    }
    let service = format!(
        "/facilities/{}/doctors/{}/addresses/{}/services/999999",
        ctx.id("facilities", "hosp"),
        ctx.id("practitioners", "ann"),
        ctx.id("addresses", "obrzezna")
    );
    let r = ctx.call(Method::DELETE, &service).await;
    assert_eq!(header(&r, "retry-after"), "60");
    expect_error(r, 429, "Too many requests").await;
    // Each client has its own counters.
    let mut d = doc(None);
    d["tenants"][0]["credentials"].as_array_mut().unwrap().push(
        json!({"dialect": "docplanner", "client_id": "dp-other", "client_secret": "other-secret", "facilities": ["other"]}),
    );
    ctx.app.seed(&d).await;
    let other = token_for(&ctx.app, "dp-other", "other-secret").await;
    let r = crate::dp::api(&ctx.app, &other, "/facilities").await;
    assert_eq!((r.status().as_u16(), header(&r, "x-ratelimit-used")), (200, "1"));
    // A new minute for writes, not yet a new hour for GETs.
    ctx.app.advance(60).await;
    assert_eq!(ctx.call(Method::POST, "/notifications/release").await.status(), 403);
    assert_eq!(ctx.get("/facilities").await.status(), 429);
    ctx.app.set_clock("2030-03-04T09:00:00Z").await;
    ctx.renew().await;
    let r = ctx.get("/facilities").await;
    assert_eq!((r.status().as_u16(), header(&r, "x-ratelimit-used")), (200, "1"));
    // Unauthenticated requests are not counted (no client to count them for).
    let r = ctx.app.client.get(ctx.app.url("/api/v3/integration/facilities")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-ratelimit-limit").is_none());
    ctx.app.stop().await;
}

on_both_engines!(
    pull_answers_the_oldest_first_removes_it_and_404s_when_empty,
    multiple_answers_up_to_limit_with_the_remaining_count,
    a_pull_limit_out_of_range_is_brought_into_it,
    reschedules_and_cancellations_through_embassy_are_told,
    pull_notifications_expire_after_72_hours,
    only_clients_assigned_the_facility_are_told,
    breaks_and_address_services_are_told,
    address_changes_by_seed_are_told,
    push_sends_with_the_api_key_retries_at_1_5_15_minutes_and_release_requeues,
    rate_limits_count_gets_per_hour_and_writes_per_minute,
);

/// The id at the end of a 201's `Location`.
fn created_id(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 201);
    r.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

async fn docplanner_writes_are_told_to_the_client_too(engine: Engine) {
    let ctx = crate::dp::setup_with(engine, &doc(None)).await;
    let (app, t) = (&ctx.app, ctx.token.as_str());
    let send =
        |m: Method, path: String, body: Option<Value>| async move { crate::dp::call(app, t, m, &path, body).await };
    let enc = |s: &str| s.replace(':', "%3A").replace('+', "%2B");
    let r =
        send(Method::POST, ctx.at("/services"), Some(json!({"service_id": "1", "price": 100, "is_price_from": false})))
            .await;
    let service = created_id(&r);
    let r = send(
        Method::PUT,
        ctx.at("/slots"),
        Some(json!({"slots": [
        {"start": "2030-03-04T09:00:00+01:00", "end": "2030-03-04T10:00:00+01:00",
         "address_services": [{"address_service_id": service, "duration": 20}]},
        {"start": "2030-03-05T09:00:00+01:00", "end": "2030-03-05T11:00:00+01:00",
         "address_services": [{"address_service_id": service, "duration": 20}]}]})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let book = |start: &str| {
        let body = json!({"address_service_id": service, "duration": 20, "is_returning": false,
            "patient": {"name": "Abraham", "surname": "Lincoln", "email": "example@example.com", "phone": 48123123123_i64}});
        send(Method::POST, ctx.at(&format!("/slots/{}/book", enc(start))), Some(body))
    };
    let today = expect_ok(book("2030-03-04T09:20:00+01:00").await).await["id"].as_str().unwrap().to_owned();
    let r =
        send(Method::PUT, ctx.at(&format!("/bookings/{today}/confirm")), Some(json!({"confirmed_by": "admin"}))).await;
    assert_eq!(r.status(), 204);
    app.advance(20 * 60).await;
    let presence = ctx.at(&format!("/bookings/{today}/presence/patient"));
    assert_eq!(send(Method::POST, presence.clone(), None).await.status(), 204);
    assert_eq!(send(Method::DELETE, presence, None).await.status(), 204);
    let old = expect_ok(book("2030-03-05T09:00:00+01:00").await).await["id"].as_str().unwrap().to_owned();
    let r = send(
        Method::POST,
        ctx.at(&format!("/bookings/{old}/move")),
        Some(json!({"address_service_id": service, "start": "2030-03-05T10:00:00+01:00"})),
    )
    .await;
    let new = created_id(&r);
    let r = send(
        Method::POST,
        ctx.at("/breaks"),
        Some(json!({"since": "2030-03-06T10:00:00+01:00", "till": "2030-03-06T11:00:00+01:00"})),
    )
    .await;
    let b = created_id(&r);
    let r = send(
        Method::PATCH,
        ctx.at(&format!("/breaks/{b}")),
        Some(json!({"since": "2030-03-06T12:00:00+01:00", "till": "2030-03-06T13:00:00+01:00"})),
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert!(send(Method::DELETE, ctx.at(&format!("/breaks/{b}")), None).await.status().is_success());
    app.run_due().await;
    let page = expect_ok(crate::dp::api(app, t, "/notifications/multiple?limit=100").await).await;
    let all = page["notifications"].as_array().unwrap();
    let names: Vec<&str> = all.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "address-service-created",
            "slot-booked",
            "booking-confirmed",
            "presence-marked",
            "presence-marked",
            "slot-booked",
            "booking-moved",
            "break-created",
            "break-moved",
            "break-removed"
        ]
    );
    assert_eq!(all[0]["data"]["address_service"]["id"], service.as_str());
    let booked = &all[1]["data"]["visit_booking"];
    assert_eq!((booked["id"].as_str(), booked["booked_by"].as_str()), (Some(today.as_str()), Some("integration")));
    assert_eq!(booked["address_service"]["id"], service.as_str());
    assert_eq!(
        (all[3]["data"]["presence"].as_str(), all[4]["data"]["presence"].as_str()),
        (Some("PRESENT"), Some("ABSENT"))
    );
    let moved = &all[6]["data"];
    assert_eq!(
        (moved["old_visit_booking"]["id"].as_str(), moved["old_visit_booking"]["status"].as_str()),
        (Some(old.as_str()), Some("canceled"))
    );
    assert_eq!(
        (moved["new_visit_booking"]["id"].as_str(), moved["new_visit_booking"]["start_at"].as_str()),
        (Some(new.as_str()), Some("2030-03-05T10:00:00+01:00"))
    );
    assert_eq!(
        all[7]["data"]["break"],
        json!({"id": b, "since": "2030-03-06T10:00:00+01:00", "till": "2030-03-06T11:00:00+01:00"})
    );
    assert_eq!(all[8]["data"]["break"]["since"], "2030-03-06T12:00:00+01:00");
    assert_eq!(page["remaining"], 0);
    ctx.app.stop().await;
}

on_both_engines!(docplanner_writes_are_told_to_the_client_too);

async fn two_nodes_pulling_at_once_never_answer_a_notification_twice(engine: Engine) {
    let database = crate::helpers::fresh_database(engine).await;
    let spawn = || Spawn { test_clock: true, database: Some(database.clone()), ..Default::default() };
    let a = spawn_app_with(engine, spawn()).await;
    let ids = a.seed(&doc(None)).await;
    let b = spawn_app_with(engine, spawn()).await;
    for node in [&a, &b] {
        node.set_clock("2030-03-04T08:00:00Z").await;
    }
    let tenant = TenantId(ids["tenants"]["acme"]["id"].as_str().unwrap().parse().unwrap());
    let address = AddressId(ids["tenants"]["acme"]["addresses"]["obrzezna"].as_str().unwrap().parse().unwrap());
    const N: i64 = 60;
    for n in 1..=N {
        let start: jiff::Timestamp = "2030-03-05T08:00:00Z".parse().unwrap();
        let b = CalendarBreak {
            id: CalendarBreakId(n),
            address_id: address,
            interval: Interval { start, end: start + jiff::SignedDuration::from_mins(30) },
            description: None,
            coupled_group: None,
        };
        let data = json!({"address_id": address.to_string(), "break": b});
        emit(&a, tenant, NewEvent::new(EventKind::BreakCreated, "calendar_break", n, data)).await;
    }
    // Either node may be the one dispatching: wait until every event is queued.
    loop {
        a.run_due().await;
        b.run_due().await;
        let pending = a
            .store
            .read(move |c| Box::pin(async move { polyclinic_store::deliveries::has_undispatched(c, tenant).await }))
            .await
            .unwrap();
        if !pending {
            break;
        }
    }
    let tokens = [token_for(&a, "dp-acme", "dp-secret").await, token_for(&b, "dp-acme", "dp-secret").await];
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (base, token) = (if i % 2 == 0 { a.base.clone() } else { b.base.clone() }, tokens[i % 2].clone());
        let client = crate::helpers::http_client();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let path = if i % 4 < 2 { "/notifications" } else { "/notifications/multiple?limit=3" };
                let r =
                    client.get(format!("{base}/api/v3/integration{path}")).bearer_auth(&token).send().await.unwrap();
                if r.status() == 404 {
                    return got;
                }
                assert_eq!(r.status(), 200);
                let v: Value = r.json().await.unwrap();
                let list = if v["notifications"].is_array() {
                    v["notifications"].as_array().unwrap().clone()
                } else {
                    vec![v]
                };
                for n in list {
                    got.push(n["data"]["break"]["id"].as_str().unwrap().parse::<i64>().unwrap());
                }
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=N).collect::<Vec<_>>(), "each notification answered exactly once");
    b.stop().await;
    a.stop().await;
}

on_both_engines!(two_nodes_pulling_at_once_never_answer_a_notification_twice);
