//! Solo reports: the CSV data dump (parsed back with the `csv` crate: the
//! header, the visits of the range in the tenant's days, no other tenant's,
//! over several pages) and encounter reports (ordered, pending, built by the
//! scheduler's job, downloaded, and opened with the real 7-Zip binary under
//! the password only), with every refusal and the tenant's own only.

use crate::helpers::{Engine, TestApp};
use crate::on_both_engines;
use crate::sl::{self, GP, KEY, OTHER_KEY, ROUND, T0};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The seed's report preset.
const PRESET: &str = "a2c6e3fc-c2f7-4a24-a0d6-eb2343a15469";
/// The document's example password (with a non-ASCII character).
const PASSWORD: &str = "IK5adv2N5V-gr£9v6";
/// The dump's header row.
const COLUMNS: [&str; 18] = [
    "appointmentId",
    "externalId",
    "date",
    "unixDate",
    "duration",
    "status",
    "videoCallStatus",
    "waitingRoom",
    "reasons",
    "episodeOfCareId",
    "accountNumber",
    "patientSpid",
    "patientId",
    "patientMrn",
    "patientFirstName",
    "patientLastName",
    "patientBirthDate",
    "createdAt",
];

/// 2030-03-05 00:00 in Stockholm (UTC+1).
const MAR5: i64 = T0 + 15 * 3600;
/// 2030-03-06 00:00 in Stockholm.
const MAR6: i64 = MAR5 + 86_400;

/// `GET /reports/csv-data-dump{query}` with `key`.
async fn dump_as(app: &TestApp, key: &str, query: &str) -> reqwest::Response {
    sl::call(app, key, Method::GET, &format!("/reports/csv-data-dump{query}"), None).await
}

/// A dump as CSV rows (the header checked), after checking the answer's
/// headers.
async fn dump_rows(r: reqwest::Response, file_name: &str) -> Vec<csv::StringRecord> {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(headers["content-disposition"], format!("attachment; filename=\"{file_name}\"").as_str());
    parse(&bytes)
}

/// CSV text parsed with the `csv` crate, its header checked.
fn parse(bytes: &[u8]) -> Vec<csv::StringRecord> {
    let mut r = csv::Reader::from_reader(bytes);
    assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), COLUMNS);
    r.records().map(|x| x.unwrap()).collect()
}

/// The value of `column` in `row`.
fn col<'a>(row: &'a csv::StringRecord, column: &str) -> &'a str {
    &row[COLUMNS.iter().position(|c| *c == column).unwrap()]
}

fn ids(rows: &[csv::StringRecord]) -> Vec<i64> {
    rows.iter().map(|r| col(r, "appointmentId").parse().unwrap()).collect()
}

/// The other tenant's patient and one visit of theirs, Monday 2030-03-04 at
/// 10:00 in their GP room (it opens on Mondays): answers the visit's id.
async fn other_tenant_visit(app: &TestApp) -> i64 {
    sl::create_patient_as(app, OTHER_KEY, "o1").await;
    let body = json!({"date": T0 + 3600, "waitingRoom": GP, "reasons": ["other"]});
    let r = sl::call(app, OTHER_KEY, Method::POST, "/patients/o1/appointments", Some(&body)).await;
    sl::expect(r, 201).await["id"].as_i64().unwrap()
}

async fn dump_lists_the_visits_of_the_range_in_the_tenant_days(engine: Engine) {
    let app = sl::setup(engine).await;
    let spid = sl::create_patient(&app, "p1").await;
    // Monday 10:00, Tuesday 00:00 and 23:30, Wednesday 00:00 (Stockholm).
    let monday = sl::booked(&app, "p1", ROUND, T0 + 3600).await;
    let first = sl::booked(&app, "p1", ROUND, MAR5).await;
    let last = sl::booked(&app, "p1", ROUND, MAR6 - 1800).await;
    let wednesday = sl::booked(&app, "p1", ROUND, MAR6).await;
    let theirs = other_tenant_visit(&app).await;

    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2030-03-05&to=2030-03-05").await,
        "csv-data-dump-2030-03-05-2030-03-05.csv",
    )
    .await;
    assert_eq!(ids(&rows), vec![first, last]);
    let row = &rows[0];
    let expected = [
        ("appointmentId", first.to_string()),
        ("externalId", String::new()),
        ("date", "2030-03-05T00:00:00+01:00".into()),
        ("unixDate", MAR5.to_string()),
        ("duration", "1800".into()),
        ("status", "scheduled".into()),
        ("videoCallStatus", String::new()),
        ("waitingRoom", ROUND.into()),
        ("reasons", "headache".into()),
        ("episodeOfCareId", String::new()),
        ("accountNumber", "A-p1".into()),
        ("patientSpid", spid.to_string()),
        ("patientId", "p1".into()),
        ("patientMrn", "MRN-p1".into()),
        ("patientFirstName", "Mike".into()),
        ("patientLastName", "Shinoda".into()),
        ("patientBirthDate", "1983-08-15".into()),
        ("createdAt", "2030-03-04T09:00:00+01:00".into()),
    ];
    for (column, value) in expected {
        assert_eq!(col(row, column), value, "{column}");
    }
    assert_eq!(col(&rows[1], "date"), "2030-03-05T23:30:00+01:00");

    // A wider range holds every visit of acme, none of the other tenant's.
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2030-03-04&to=2030-03-06").await,
        "csv-data-dump-2030-03-04-2030-03-06.csv",
    )
    .await;
    assert_eq!(ids(&rows), vec![monday, first, last, wednesday]);
    let rows = dump_rows(
        dump_as(&app, OTHER_KEY, "?from=2030-03-04&to=2030-03-06").await,
        "csv-data-dump-2030-03-04-2030-03-06.csv",
    )
    .await;
    assert_eq!(ids(&rows), vec![theirs]);
    assert_eq!(col(&rows[0], "waitingRoom"), GP);

    // A changed visit shows as it is now; an empty range is the header only.
    let body = json!({"status": "cancelled", "externalId": "ext-9", "videoCall": {"status": "LWBS"}});
    sl::expect(sl::put_appointment(&app, first, &body).await, 200).await;
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2030-03-05&to=2030-03-05").await,
        "csv-data-dump-2030-03-05-2030-03-05.csv",
    )
    .await;
    assert_eq!(
        (col(&rows[0], "status"), col(&rows[0], "externalId"), col(&rows[0], "videoCallStatus")),
        ("cancelled", "ext-9", "LWBS")
    );
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2031-01-01&to=2031-12-31").await,
        "csv-data-dump-2031-01-01-2031-12-31.csv",
    )
    .await;
    assert!(rows.is_empty());
}

async fn dump_parameters_are_checked(engine: Engine) {
    let app = sl::setup(engine).await;
    for (query, part) in [
        ("", "from: This value is required."),
        ("?to=2030-03-05", "from: This value is required."),
        ("?from=2030-03-05", "to: This value is required."),
        ("?from=&to=2030-03-05", "from: This value is required."),
        ("?from=2030-02-30&to=2030-03-05", "from: \"2030-02-30\" is not a date"),
        ("?from=05-03-2030&to=2030-03-05", "from: \"05-03-2030\" is not a date"),
        ("?from=2030-3-5&to=2030-03-05", "from: \"2030-3-5\" is not a date"),
        ("?from=2030-03-05&to=2030-03-05T10:00:00", "to: \"2030-03-05T10:00:00\" is not a date"),
        ("?from=2030-03-05&to=tomorrow", "to: \"tomorrow\" is not a date"),
        ("?from=2030-03-06&to=2030-03-05", "to: This value should be on or after from."),
        ("?from=2030-01-01&to=2031-01-02", "to: The range must not be longer than 366 days."),
        ("?from=9999-12-31&to=9999-12-31", "This date is outside the supported range."),
    ] {
        sl::expect_error(dump_as(&app, KEY, query).await, 400, part).await;
    }
    // 366 days (a leap year) is the longest range.
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2032-01-01&to=2032-12-31").await,
        "csv-data-dump-2032-01-01-2032-12-31.csv",
    )
    .await;
    assert!(rows.is_empty());
    sl::expect_error(dump_as(&app, "wrong-key", "?from=2030-03-05&to=2030-03-05").await, 401, "API key").await;
}

async fn dump_streams_over_several_pages(engine: Engine) {
    let app = std::sync::Arc::new(sl::setup(engine).await);
    sl::create_patient(&app, "p1").await;
    // 450 visits of half an hour from Monday 10:00: three pages of 200.
    let count = 450;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..6 {
        let app = app.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for i in (lane..count).step_by(6) {
                out.push((i, sl::booked(&app, "p1", ROUND, T0 + 3600 + i * 1800).await));
            }
            out
        });
    }
    let mut booked = Vec::new();
    while let Some(done) = tasks.join_next().await {
        booked.extend(done.unwrap());
    }
    booked.sort_unstable();
    let expected: Vec<i64> = booked.iter().map(|(_, id)| *id).collect();
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2030-03-04&to=2030-03-14").await,
        "csv-data-dump-2030-03-04-2030-03-14.csv",
    )
    .await;
    assert_eq!(ids(&rows), expected);
    let dates: Vec<i64> = rows.iter().map(|r| col(r, "unixDate").parse().unwrap()).collect();
    assert_eq!(dates, (0..count).map(|i| T0 + 3600 + i * 1800).collect::<Vec<_>>());
    // A range ending inside the visits cuts them at the tenant's midnight.
    let rows = dump_rows(
        dump_as(&app, KEY, "?from=2030-03-04&to=2030-03-07").await,
        "csv-data-dump-2030-03-04-2030-03-07.csv",
    )
    .await;
    let until = MAR5 + 3 * 86_400;
    assert_eq!(rows.len() as i64, (until - T0 - 3600) / 1800);
}

/// `POST /encounter-report/create` with `body` through `key`.
async fn order_as(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    sl::call(app, key, Method::POST, "/encounter-report/create", Some(body)).await
}

fn order_body() -> Value {
    json!({"from": "2030-03-05T00:00:00+01:00", "to": "2030-03-05T23:59:59+01:00",
           "presetId": PRESET, "password": PASSWORD})
}

async fn report_status(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    sl::call(app, key, Method::GET, &format!("/encounter-report/status/{id}"), None).await
}

async fn report_download(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    sl::call(app, key, Method::GET, &format!("/encounter-report/download/{id}"), None).await
}

/// The 7-Zip binary: `7z` (Debian's `7zip` from trixie on, `p7zip-full`) or
/// `7zz` (Debian bookworm's `7zip`).
fn seven_zip() -> &'static str {
    ["7z", "7zz"]
        .into_iter()
        .find(|b| Command::new(b).arg("i").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
        .expect("7-Zip is needed by this test: install Debian's `7zip` package (7z or 7zz)")
}

/// Runs 7-Zip with `args` (stdin closed, so it never waits for a
/// password); answers whether it succeeded, and what it said.
fn run_7z(args: &[&str]) -> (bool, String) {
    let out = Command::new(seven_zip())
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("7-Zip runs");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("polyclinic-reports-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

async fn an_encounter_report_is_built_and_opens_with_its_password(engine: Engine) {
    let app = sl::setup(engine).await;
    sl::create_patient(&app, "p1").await;
    sl::booked(&app, "p1", ROUND, T0 + 3600).await;
    let first = sl::booked(&app, "p1", ROUND, MAR5).await;
    let last = sl::booked(&app, "p1", ROUND, MAR6 - 1800).await;
    sl::booked(&app, "p1", ROUND, MAR6).await;
    other_tenant_visit(&app).await;

    let ordered = sl::expect(order_as(&app, KEY, &order_body()).await, 201).await;
    let id = ordered["id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    assert_eq!(ordered, json!({"id": id, "status": "pending"}));
    assert_eq!(sl::expect(report_status(&app, KEY, &id).await, 200).await, json!({"id": id, "status": "pending"}));
    sl::expect_error(report_download(&app, KEY, &id).await, 409, "is not ready yet (status: pending)").await;
    // The password is kept sealed while pending, never in clear.
    let tenant = tenant_id(&app).await;
    let stored = stored_report(&app, tenant, &id).await;
    let sealed = stored.sealed_password.clone().expect("sealed while pending");
    assert!(!sealed.contains(PASSWORD) && sealed.starts_with("v1:"));

    app.advance(1).await;
    app.run_due().await;
    assert_eq!(sl::expect(report_status(&app, KEY, &id).await, 200).await, json!({"id": id, "status": "completed"}));
    let stored = stored_report(&app, tenant, &id).await;
    assert_eq!(stored.sealed_password, None, "the password is forgotten once built");
    assert!(stored.blob_id.is_some() && stored.finished_at.is_some());

    let r = report_download(&app, KEY, &id).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        r.headers()["content-disposition"],
        format!("attachment; filename=\"encounter-report-{id}.zip\"").as_str()
    );
    let zip = r.bytes().await.unwrap();
    assert!(zip.starts_with(b"PK\x03\x04"));

    let dir = scratch_dir();
    let archive = dir.join("report.zip");
    std::fs::write(&archive, &zip).unwrap();
    let (wrong, none, out) = (dir.join("wrong"), dir.join("none"), dir.join("out"));
    let (ok, said) = run_7z(&["x", "-pnot-the-password", &format!("-o{}", arg(&wrong)), &arg(&archive)]);
    assert!(!ok && said.contains("Wrong password"), "a wrong password must fail: {said}");
    let (ok, said) = run_7z(&["t", "-p", &arg(&archive)]);
    assert!(!ok && said.contains("Wrong password"), "no password must fail: {said}");
    let (ok, said) = run_7z(&["x", "-p", &format!("-o{}", arg(&none)), &arg(&archive)]);
    assert!(!ok, "no password must fail: {said}");
    let (ok, said) = run_7z(&["x", &format!("-p{PASSWORD}"), &format!("-o{}", arg(&out)), &arg(&archive)]);
    assert!(ok, "the password opens the archive: {said}");
    assert!(said.contains("Everything is Ok"), "{said}");
    let entries: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(entries, vec![std::ffi::OsString::from(format!("encounter-report-{id}.csv"))]);
    let csv = std::fs::read(out.join(format!("encounter-report-{id}.csv"))).unwrap();
    let rows = parse(&csv);
    assert_eq!(ids(&rows), vec![first, last]);
    assert_eq!(col(&rows[0], "patientId"), "p1");
    std::fs::remove_dir_all(&dir).unwrap();

    // Run again: nothing changes (the job is gone, the report is done).
    app.run_due().await;
    assert_eq!(sl::expect(report_status(&app, KEY, &id).await, 200).await["status"], "completed");
}

async fn tenant_id(app: &TestApp) -> polyclinic_core::TenantId {
    app.store
        .read(|c| Box::pin(async move { polyclinic_store::tenants::by_key(c, "acme").await }))
        .await
        .unwrap()
        .expect("acme")
        .id
}

async fn stored_report(
    app: &TestApp,
    tenant: polyclinic_core::TenantId,
    id: &str,
) -> polyclinic_store::report_jobs::EncounterReport {
    let id = id.to_owned();
    app.store
        .read(move |c| Box::pin(async move { polyclinic_store::report_jobs::get(c, tenant, &id).await }))
        .await
        .unwrap()
        .expect("the report row")
}

async fn bad_encounter_report_orders_are_refused(engine: Engine) {
    let app = sl::setup(engine).await;
    let with = |field: &str, value: Value| {
        let mut b = order_body();
        b[field] = value;
        b
    };
    let without = |field: &str| {
        let mut b = order_body();
        b.as_object_mut().unwrap().remove(field);
        b
    };
    let long = "x".repeat(257);
    for (body, part) in [
        (without("from"), "from: This value is required."),
        (without("to"), "to: This value is required."),
        (without("presetId"), "presetId: This value is required."),
        (without("password"), "password: This value is required."),
        (with("password", json!("")), "password: This value is required."),
        (with("password", json!(long)), "password: This value must not be longer than 256 characters."),
        (with("password", json!(12345)), "password"),
        (with("from", json!("2030-03-05")), "from: \"2030-03-05\" is not a date-time in ATOM format"),
        (with("from", json!("2030-03-05T10:00:00")), "from: \"2030-03-05T10:00:00\" is not a date-time"),
        (with("to", json!("05/03/2030 10:00")), "to: \"05/03/2030 10:00\" is not a date-time"),
        (with("to", json!("2030-03-04T23:59:59+01:00")), "to: This value should be on or after from."),
        (with("to", json!("2031-03-07T00:00:00+01:00")), "to: The range must not be longer than 366 days."),
        (with("presetId", json!("b20be9ce-eb93-48be-ad56-271ec4b2973c")), "presetId: Report preset"),
        (with("presetId", json!("visits")), "presetId: Report preset \"visits\" not found."),
    ] {
        sl::expect_error(order_as(&app, KEY, &body).await, 400, part).await;
    }
    let r = sl::call(&app, KEY, Method::POST, "/encounter-report/create", None).await;
    assert_eq!(r.status(), 415);
    // The preset id is case-insensitive; from == to is a range of one instant.
    let b = with("presetId", json!(PRESET.to_uppercase()));
    sl::expect(order_as(&app, KEY, &b).await, 201).await;
    let mut b = order_body();
    b["to"] = b["from"].clone();
    sl::expect(order_as(&app, KEY, &b).await, 201).await;
}

async fn reports_of_another_tenant_are_not_found(engine: Engine) {
    let app = sl::setup(engine).await;
    let id = sl::expect(order_as(&app, KEY, &order_body()).await, 201).await["id"].as_str().unwrap().to_owned();
    app.advance(1).await;
    app.run_due().await;
    sl::expect(report_status(&app, KEY, &id).await, 200).await;
    assert_eq!(report_download(&app, KEY, &id).await.status(), 200);
    sl::expect_error(report_status(&app, OTHER_KEY, &id).await, 404, "not found").await;
    sl::expect_error(report_download(&app, OTHER_KEY, &id).await, 404, "not found").await;
    for unknown in ["b20be9ce-eb93-48be-ad56-271ec4b2973c", "not-a-uuid", "1"] {
        sl::expect_error(report_status(&app, KEY, unknown).await, 404, "not found").await;
        sl::expect_error(report_download(&app, KEY, unknown).await, 404, "not found").await;
    }
    // The other tenant's own report is theirs alone.
    let theirs =
        sl::expect(order_as(&app, OTHER_KEY, &order_body()).await, 201).await["id"].as_str().unwrap().to_owned();
    sl::expect_error(report_status(&app, KEY, &theirs).await, 404, "not found").await;
}

async fn a_report_that_cannot_be_built_fails_with_its_reason(engine: Engine) {
    let app = sl::setup(engine).await;
    let tenant = tenant_id(&app).await;
    // A password sealed under another key (a server key that changed).
    let id = uuid::Uuid::new_v4().to_string();
    let now = jiff::Timestamp::from_second(T0).unwrap();
    let report = polyclinic_store::report_jobs::EncounterReport {
        id: id.clone(),
        status: polyclinic_store::report_jobs::ReportStatus::Pending,
        preset_id: PRESET.into(),
        from: now,
        to: now,
        credential_id: None,
        sealed_password: Some(polyclinic_store::seal::SecretKey::generate().seal("pw")),
        blob_id: None,
        error: None,
        created_at: now,
        finished_at: None,
    };
    app.store
        .write(move |c| Box::pin(async move { polyclinic_store::report_jobs::create(c, tenant, &report, now).await }))
        .await
        .unwrap();
    // Due now: the scheduler's background loop may take it first; run-due
    // waits for that pass.
    app.run_due().await;
    assert_eq!(sl::expect(report_status(&app, KEY, &id).await, 200).await, json!({"id": id, "status": "failed"}));
    sl::expect_error(report_download(&app, KEY, &id).await, 409, "failed: the password cannot be opened").await;
    let stored = stored_report(&app, tenant, &id).await;
    assert_eq!((stored.sealed_password, stored.blob_id), (None, None));
}

on_both_engines!(
    dump_lists_the_visits_of_the_range_in_the_tenant_days,
    dump_parameters_are_checked,
    dump_streams_over_several_pages,
    an_encounter_report_is_built_and_opens_with_its_password,
    bad_encounter_report_orders_are_refused,
    reports_of_another_tenant_are_not_found,
    a_report_that_cannot_be_built_fails_with_its_reason,
);
