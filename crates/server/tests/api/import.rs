//! `polyclinic import FILE.jsonl` (docs/import.md), run as the real binary
//! beside a running server on the same database, and read back over HTTP
//! through Embassy and Docplanner.

use crate::dp::{self, expect_ok};
use crate::helpers::{Engine, Spawn, TestApp, fresh_database, spawn_app_with};
use crate::on_both_engines;
use reqwest::Method;
use serde_json::{Value, json};
use std::process::{Command, Output};

const NID_SE: &str = "http://schema.visibacare.com/identifier/nationalidentificationnumber/se";
const PHONE: &str = "http://schema.visibacare.com/identifier/patient/phonenumber";

/// A server with `dp::seed()` loaded (Ann at `obrzezna`, linked to `gp`; Bo
/// at `bo-hosp`), the database it runs on, and a Docplanner token.
struct Ctx {
    app: Option<TestApp>,
    engine: Engine,
    database: String,
    token: String,
    ids: Value,
}

impl Ctx {
    async fn new(engine: Engine) -> Ctx {
        let database = fresh_database(engine).await;
        let app = serve(engine, &database).await;
        let ids = app.seed(&dp::seed()).await;
        let token = dp::token(&app).await;
        Ctx { app: Some(app), engine, database, token, ids }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the server runs")
    }

    fn id(&self, kind: &str, key: &str) -> String {
        self.ids["tenants"]["acme"][kind][key].as_str().unwrap().to_owned()
    }

    /// Runs `polyclinic import` on `lines` (one JSON Lines file), with
    /// `args`, as docs/import.md says: with the server stopped (on SQLite
    /// a running server would not see another process's writes in its
    /// availability cache), then starts it again.
    async fn import(&mut self, lines: &[String], args: &[&str]) -> Output {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
        let dir = std::env::temp_dir().join(format!("polyclinic-import-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("history.jsonl");
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_polyclinic"))
            .current_dir(&dir)
            .env("POLYCLINIC_LOG", "warn")
            .args(["import", file.to_str().unwrap(), "--database", &self.database])
            .args(args)
            .output()
            .unwrap();
        self.app = Some(serve(self.engine, &self.database).await);
        out
    }

    /// Ann's Docplanner bookings at `obrzezna` on one day (`2030-03-05`).
    async fn ann_bookings(&self, day: &str) -> Vec<Value> {
        let next = jiff::civil::Date::strptime("%Y-%m-%d", day).unwrap().tomorrow().unwrap();
        let range = format!(
            "start={}&end={}",
            dp::enc(&format!("{day}T00:00:00+01:00")),
            dp::enc(&format!("{next}T00:00:00+01:00"))
        );
        let at = format!(
            "/facilities/{}/doctors/{}/addresses/{}/bookings?{range}&with=booking.patient",
            self.id("facilities", "hosp"),
            self.id("practitioners", "ann"),
            self.id("addresses", "obrzezna")
        );
        let list = expect_ok(dp::api(self.app(), &self.token, &at).await).await;
        list["_items"].as_array().unwrap().clone()
    }

    /// Embassy patients found by `system|value`.
    async fn patients(&self, system: &str, value: &str) -> Vec<Value> {
        let value = value.replace('+', "%2B");
        let r = self.app().embassy(Method::GET, &format!("/Patient?identifier={system}|{value}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let bundle: Value = r.json().await.unwrap();
        bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
    }
}

/// The server on `database`, its test clock on Monday 2030-03-04 08:00 UTC.
async fn serve(engine: Engine, database: &str) -> TestApp {
    let app =
        spawn_app_with(engine, Spawn { test_clock: true, database: Some(database.to_owned()), ..Default::default() })
            .await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    app
}

fn patient(id: &str, given: &str, family: &str, extra: Value) -> String {
    let mut p = json!({"type": "patient", "tenant": "acme", "id": id, "given": given, "family": family});
    if let (Some(p), Value::Object(more)) = (p.as_object_mut(), extra) {
        p.extend(more);
    }
    p.to_string()
}

fn appointment(id: &str, patient: &str, practitioner: &str, start: &str, end: &str, extra: Value) -> String {
    let mut a = json!({"type": "appointment", "tenant": "acme", "id": id, "patient": patient,
        "practitioner": practitioner, "start": start, "end": end});
    if let (Some(a), Value::Object(more)) = (a.as_object_mut(), extra) {
        a.extend(more);
    }
    a.to_string()
}

/// Anna and Bo with three appointments: two of Ann's at her address (found
/// through service `gp`), one of Bo's in the past, completed.
fn history() -> Vec<String> {
    vec![
        patient(
            "P-1",
            "Anna",
            "Svensson",
            json!({"national_id": "19800101-1231", "phone": "+46 70 123 45 67",
            "email": "anna@svensson.test", "birth_date": "1980-01-01", "gender": "female"}),
        ),
        patient("P-2", "Bo", "Ek", json!({"phone": "+46701111111"})),
        appointment(
            "A-1",
            "P-1",
            "ann",
            "2030-03-05T08:00:00Z",
            "2030-03-05T08:15:00Z",
            json!({"healthcare_service": "gp", "comment": "follow-up"}),
        ),
        appointment(
            "A-2",
            "P-2",
            "ann",
            "2030-03-05T09:00:00Z",
            "2030-03-05T09:30:00Z",
            json!({"healthcare_service": "gp"}),
        ),
        appointment(
            "A-3",
            "P-1",
            "bo",
            "2029-12-01T10:00:00Z",
            "2029-12-01T10:20:00Z",
            json!({"address": "bo-hosp", "status": "completed"}),
        ),
    ]
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "import failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the summary is JSON")
}

fn refused(out: &Output) -> String {
    assert!(!out.status.success(), "the import should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn an_imported_history_reads_back_through_embassy_and_docplanner(engine: Engine) {
    let mut ctx = Ctx::new(engine).await;
    let summary = stdout_json(&ctx.import(&history(), &[]).await);
    assert_eq!(summary["patients"], json!({"imported": 2, "skipped": 0}), "{summary}");
    assert_eq!(summary["appointments"], json!({"imported": 3, "skipped": 0}), "{summary}");
    assert_eq!(summary["lines"], 5);

    // Embassy: Anna by her national id and by her phone (the contact index).
    let by_nid = ctx.patients(NID_SE, "198001011231").await;
    assert_eq!(by_nid.len(), 1, "{by_nid:?}");
    assert_eq!(by_nid[0]["name"][0]["family"], "Svensson");
    let by_phone = ctx.patients(PHONE, "+46701234567").await;
    assert_eq!(by_phone.len(), 1, "the phone is in the contact index: {by_phone:?}");
    assert_eq!(by_phone[0]["id"], by_nid[0]["id"]);
    let anna = by_nid[0]["id"].as_str().unwrap().to_owned();
    // Her two appointments, Ann's and Bo's.
    let r = ctx.app().embassy(Method::GET, &format!("/Appointment?patientId={anna}")).send().await.unwrap();
    let found: Value = r.json().await.unwrap();
    assert_eq!(found["total"], 2, "{found}");
    let mut starts: Vec<String> = found["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["start"].as_str().unwrap().to_owned())
        .collect();
    starts.sort();
    assert!(starts[0].starts_with("2029-12-01T10:00") && starts[1].starts_with("2030-03-05T08:00"), "{starts:?}");

    // Docplanner: both of Ann's bookings at her address, with their patients.
    let bookings = ctx.ann_bookings("2030-03-05").await;
    let seen: Vec<(&str, &str)> =
        bookings.iter().map(|b| (b["start_at"].as_str().unwrap(), b["patient"]["name"].as_str().unwrap())).collect();
    assert_eq!(seen, [("2030-03-05T09:00:00+01:00", "Anna"), ("2030-03-05T10:00:00+01:00", "Bo")], "{bookings:?}");

    // The imported times are held: Docplanner cannot book over A-1.
    let over = dp::embassy_appointment(
        ctx.app(),
        &ctx.id("healthcare_services", "gp"),
        "2030-03-05T08:05:00Z",
        "2030-03-05T08:20:00Z",
    )
    .await;
    crate::emb::expect_error(over, 422, "AllPractionersAreNotAvailable").await;
}

async fn running_the_same_file_again_skips_every_line(engine: Engine) {
    let mut ctx = Ctx::new(engine).await;
    stdout_json(&ctx.import(&history(), &[]).await);
    let again = stdout_json(&ctx.import(&history(), &["--batch-size", "2"]).await);
    assert_eq!(again["patients"], json!({"imported": 0, "skipped": 2}), "{again}");
    assert_eq!(again["appointments"], json!({"imported": 0, "skipped": 3}), "{again}");
    assert_eq!(ctx.ann_bookings("2030-03-05").await.len(), 2, "nothing was written twice");
    assert_eq!(ctx.patients(NID_SE, "198001011231").await.len(), 1);
}

async fn an_appointment_over_a_booking_is_refused_with_its_line_and_its_batch_is_not_written(engine: Engine) {
    let mut ctx = Ctx::new(engine).await;
    stdout_json(&ctx.import(&history(), &[]).await);
    // A booking made through the API, on Wednesday 08:00.
    let gp = ctx.id("healthcare_services", "gp");
    let booked = dp::embassy_appointment(ctx.app(), &gp, "2030-03-06T08:00:00Z", "2030-03-06T08:15:00Z").await;
    assert_eq!(booked.status(), 201, "{}", booked.text().await.unwrap());

    // Line 3 overlaps it: the whole batch (Cecilia, her Thursday visit) is refused.
    let file = vec![
        patient("P-3", "Cecilia", "Lund", json!({"national_id": "198112189876"})),
        appointment(
            "A-8",
            "P-3",
            "ann",
            "2030-03-07T08:00:00Z",
            "2030-03-07T08:15:00Z",
            json!({"healthcare_service": "gp"}),
        ),
        appointment(
            "A-9",
            "P-3",
            "ann",
            "2030-03-06T08:10:00Z",
            "2030-03-06T08:25:00Z",
            json!({"healthcare_service": "gp"}),
        ),
    ];
    let stderr = refused(&ctx.import(&file, &[]).await);
    assert!(stderr.contains("line 3:") && stderr.contains("overlaps"), "{stderr}");
    assert!(ctx.patients(NID_SE, "198112189876").await.is_empty(), "Cecilia was not written");
    assert!(ctx.ann_bookings("2030-03-07").await.is_empty(), "line 2 was not written");

    // Two lines of one file overlapping each other (and one over the
    // imported A-1): the second line is refused.
    let file = vec![
        appointment("A-10", "P-1", "ann", "2030-03-08T08:00:00Z", "2030-03-08T08:30:00Z", json!({})),
        appointment("A-11", "P-2", "ann", "2030-03-08T08:15:00Z", "2030-03-08T08:45:00Z", json!({})),
    ];
    let stderr = refused(&ctx.import(&file, &[]).await);
    assert!(stderr.contains("line 2:") && stderr.contains("practitioner"), "{stderr}");
    let file = vec![appointment("A-12", "P-2", "ann", "2030-03-05T07:50:00Z", "2030-03-05T08:05:00Z", json!({}))];
    assert!(refused(&ctx.import(&file, &[]).await).contains("line 1:"));
    assert_eq!(ctx.ann_bookings("2030-03-05").await.len(), 2);

    // A cancelled appointment holds no time: it lands over A-1.
    let file = vec![appointment(
        "A-13",
        "P-2",
        "ann",
        "2030-03-05T08:00:00Z",
        "2030-03-05T08:15:00Z",
        json!({"status": "cancelled", "healthcare_service": "gp"}),
    )];
    let summary = stdout_json(&ctx.import(&file, &[]).await);
    assert_eq!(summary["appointments"]["imported"], 1);
}

async fn a_malformed_line_is_refused_with_its_line_and_its_batch_is_not_written(engine: Engine) {
    let mut ctx = Ctx::new(engine).await;
    let file = vec![
        patient("P-4", "Dag", "Berg", json!({"national_id": "197001011233"})),
        r#"{"type": "patient", "tenant": "acme", "id": "P-5", "given": "Eva""#.to_owned(),
    ];
    let stderr = refused(&ctx.import(&file, &[]).await);
    assert!(stderr.contains("line 2: not a JSON object"), "{stderr}");
    assert!(ctx.patients(NID_SE, "197001011233").await.is_empty(), "line 1 was not written");

    // Other refusals name their line too.
    for (bad, expected) in [
        (patient("P-6", "Ola", "Nord", json!({"birth_date": "1980-13-01"})), "birth_date"),
        (patient("P-6", "Ola", "Nord", json!({"nickname": "O"})), "nickname"),
        (patient("P-6", "Ola", "Nord", json!({"national_id": "123"})), "national"),
        (patient("P-6", "Ola", "Nord", json!({"tenant": "nobody"})), "unknown tenant `nobody`"),
        (
            appointment("A-5", "P-4", "zed", "2030-03-05T08:00:00Z", "2030-03-05T08:15:00Z", json!({})),
            "unknown practitioner `zed`",
        ),
        (
            appointment("A-5", "P-9", "ann", "2030-03-05T08:00:00Z", "2030-03-05T08:15:00Z", json!({})),
            "unknown patient `P-9`",
        ),
        (
            appointment("A-5", "P-4", "ann", "2030-03-05T08:15:00Z", "2030-03-05T08:00:00Z", json!({})),
            "`end` must be after `start`",
        ),
        (
            appointment("A-5", "P-4", "ann", "2030-03-05T08:00:00Z", "2030-03-05T08:15:00Z", json!({"status": "done"})),
            "unknown status `done`",
        ),
        (
            appointment(
                "A-5",
                "P-4",
                "ann",
                "2030-03-05T08:00:00Z",
                "2030-03-05T08:15:00Z",
                json!({"address": "bo-hosp"}),
            ),
            "another practitioner",
        ),
    ] {
        let file = vec![patient("P-4", "Dag", "Berg", json!({})), bad];
        let stderr = refused(&ctx.import(&file, &[]).await);
        assert!(stderr.contains("line 2:") && stderr.contains(expected), "{expected}: {stderr}");
    }

    // Per batch: with one line per batch, the lines before the bad one stay.
    let file = vec![
        patient("P-4", "Dag", "Berg", json!({"national_id": "197001011233"})),
        patient("P-7", "Eva", "Berg", json!({})),
        "not json".to_owned(),
    ];
    let stderr = refused(&ctx.import(&file, &["--batch-size", "1"]).await);
    assert!(stderr.contains("line 3:") && stderr.contains("2 batch(es) before it committed"), "{stderr}");
    assert_eq!(ctx.patients(NID_SE, "197001011233").await.len(), 1);
}

on_both_engines!(
    an_imported_history_reads_back_through_embassy_and_docplanner,
    running_the_same_file_again_skips_every_line,
    an_appointment_over_a_booking_is_refused_with_its_line_and_its_batch_is_not_written,
    a_malformed_line_is_refused_with_its_line_and_its_batch_is_not_written,
);
