//! Solo visit notes (`GET`/`PUT /appointments/{id}/visit-note`) and their
//! history (`GET /appointments/{id}/visit-note/versions`), on both engines:
//! the document's shape, every change a version, every refusal, tenant
//! isolation, concurrent changes, and the note sealed in the database.

use crate::helpers::{Engine, TestApp};
use crate::on_both_engines;
use crate::sl::*;
use reqwest::Method;
use serde_json::{Value, json};

on_both_engines!(
    a_visit_without_a_note_answers_an_empty_list,
    a_put_sets_answers_that_get_reads_back,
    every_put_is_a_version_and_the_history_shows_them_all,
    templates_are_named_and_keep_their_id,
    bad_bodies_answer_400_naming_the_field,
    unknown_appointments_answer_404,
    another_tenants_notes_answer_404,
    concurrent_puts_lose_no_version,
    the_note_is_sealed_in_the_database,
);

const TEMPLATE: &str = "Acute Neurology - Physician Services";
const Q1: &str = "923c5621-66a1-49a3-aa7b-a7753cbfd139";
const Q2: &str = "4f0e1d2c-3b4a-4596-8877-665544332211";

/// A visit of patient `p-1` in the waiting room `ROUND`; answers its id.
async fn visit(app: &TestApp) -> i64 {
    create_patient(app, "p-1").await;
    booked(app, "p-1", ROUND, T0 + 3600).await
}

fn note_path(id: i64) -> String {
    format!("/appointments/{id}/visit-note")
}

async fn put_note(app: &TestApp, key: &str, id: i64, body: &Value) -> reqwest::Response {
    call(app, key, Method::PUT, &note_path(id), Some(body)).await
}

fn answers(name: &str, qs: &[(&str, &[&str])]) -> Value {
    let questions: Vec<Value> = qs.iter().map(|(id, v)| json!({"id": id, "value": v})).collect();
    json!({"name": name, "questions": questions})
}

/// The responses of the note's template `name`, as `(question, response)`.
fn responses(note: &Value, name: &str) -> Vec<(Value, Value)> {
    let t = note.as_array().unwrap().iter().find(|t| t["template"]["name"] == name).expect("the template");
    t["responses"].as_array().unwrap().iter().map(|r| (r["question"].clone(), r["response"].clone())).collect()
}

async fn a_visit_without_a_note_answers_an_empty_list(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    assert_eq!(expect(get(&app, &note_path(id)).await, 200).await, json!([]));
    assert_eq!(expect(get(&app, &format!("{}/versions", note_path(id))).await, 200).await, json!([]));
}

async fn a_put_sets_answers_that_get_reads_back(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    let put = expect(put_note(&app, KEY, id, &answers(TEMPLATE, &[(Q1, &["Male"])])).await, 200).await;
    let got = expect(get(&app, &note_path(id)).await, 200).await;
    assert_eq!(put, got, "PUT answers the note as GET shows it");
    let notes = got.as_array().unwrap();
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    let template_id = n["id"].as_str().unwrap();
    assert_eq!(template_id.len(), 36, "a UUID: {template_id}");
    assert_eq!(n["template"]["name"], TEMPLATE);
    assert_eq!(n["template"]["flow"]["sections"], json!([{"name": TEMPLATE, "questions": [{"id": Q1, "tag": null}]}]));
    assert_eq!(n["comments"], json!([]));
    assert_eq!(
        n["responses"],
        json!([{
            // 2030-03-04T08:00:00Z in the tenant's zone.
            "dateTime": {"date": "2030-03-04 09:00:00.000000", "timezone_type": 3, "timezone": "Europe/Stockholm"},
            "question": [TEMPLATE, Q1],
            "response": ["Male"],
        }])
    );
    // Question ids are read case-insensitively and kept lower case.
    let upper = answers(TEMPLATE, &[(&Q1.to_uppercase(), &["Female", "Other"])]);
    let got = expect(put_note(&app, KEY, id, &upper).await, 200).await;
    assert_eq!(responses(&got, TEMPLATE), vec![(json!([TEMPLATE, Q1]), json!(["Female", "Other"]))]);
    // An empty list of values clears the answer and keeps the question.
    let got = expect(put_note(&app, KEY, id, &answers(TEMPLATE, &[(Q1, &[])])).await, 200).await;
    assert_eq!(responses(&got, TEMPLATE), vec![(json!([TEMPLATE, Q1]), json!([]))]);
}

async fn every_put_is_a_version_and_the_history_shows_them_all(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    expect(put_note(&app, KEY, id, &answers(TEMPLATE, &[(Q1, &["Male"])])).await, 200).await;
    app.advance(60).await;
    let second = answers(TEMPLATE, &[(Q1, &["Female"]), (Q2, &["yes"])]);
    let note = expect(put_note(&app, KEY, id, &second).await, 200).await;
    assert_eq!(
        responses(&note, TEMPLATE),
        vec![(json!([TEMPLATE, Q1]), json!(["Female"])), (json!([TEMPLATE, Q2]), json!(["yes"]))]
    );
    let dates: Vec<&str> =
        note[0]["responses"].as_array().unwrap().iter().map(|r| r["dateTime"]["date"].as_str().unwrap()).collect();
    assert_eq!(dates, vec!["2030-03-04 09:01:00.000000"; 2], "the answers' time is their last change");

    let history = expect(get(&app, &format!("{}/versions", note_path(id))).await, 200).await;
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!((history[0]["version"].as_i64(), history[0]["createdAt"].as_i64()), (Some(1), Some(T0)));
    assert_eq!((history[1]["version"].as_i64(), history[1]["createdAt"].as_i64()), (Some(2), Some(T0 + 60)));
    assert_eq!(responses(&history[0]["note"], TEMPLATE), vec![(json!([TEMPLATE, Q1]), json!(["Male"]))]);
    assert_eq!(history[1]["note"], note, "the newest version is the note");
}

async fn templates_are_named_and_keep_their_id(engine: Engine) {
    let app = setup(engine).await;
    let first = visit(&app).await;
    let second = booked(&app, "p-1", ROUND, T0 + 7200).await;
    expect(put_note(&app, KEY, first, &answers(TEMPLATE, &[(Q1, &["a"])])).await, 200).await;
    let note =
        expect(put_note(&app, KEY, first, &answers("EEG - Physician Services", &[(Q1, &["b"])])).await, 200).await;
    let names: Vec<&Value> = note.as_array().unwrap().iter().map(|t| &t["template"]["name"]).collect();
    assert_eq!(names, vec![TEMPLATE, "EEG - Physician Services"], "in the order first answered");
    assert_ne!(note[0]["id"], note[1]["id"]);
    let other = expect(put_note(&app, KEY, second, &answers(TEMPLATE, &[(Q2, &["c"])])).await, 200).await;
    assert_eq!(other[0]["id"], note[0]["id"], "one name, one template id");
    // A name is trimmed.
    let padded =
        expect(put_note(&app, KEY, second, &answers(&format!("  {TEMPLATE} "), &[(Q1, &["d"])])).await, 200).await;
    assert_eq!(padded.as_array().unwrap().len(), 1);
}

async fn bad_bodies_answer_400_naming_the_field(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    let long = "x".repeat(4097);
    let many: Vec<Value> =
        (0..201).map(|i| json!({"id": format!("00000000-0000-4000-8000-{i:012}"), "value": []})).collect();
    let cases: Vec<(Value, &str)> = vec![
        (json!({"questions": [{"id": Q1, "value": ["a"]}]}), "Bad parameters [name: This value should not be blank.]"),
        (json!({"name": "  ", "questions": [{"id": Q1, "value": ["a"]}]}), "[name: "),
        (json!({"name": "x".repeat(257), "questions": [{"id": Q1, "value": ["a"]}]}), "[name: This value is too long"),
        (json!({"name": 7, "questions": [{"id": Q1, "value": ["a"]}]}), "[name: "),
        (json!({"name": TEMPLATE}), "Bad parameters [questions: This value should not be blank.]"),
        (json!({"name": TEMPLATE, "questions": []}), "[questions: This collection should contain 1 element or more.]"),
        (json!({"name": TEMPLATE, "questions": {"id": Q1}}), "[questions: "),
        (
            json!({"name": TEMPLATE, "questions": many}),
            "[questions: This collection should contain 200 elements or less.]",
        ),
        (
            json!({"name": TEMPLATE, "questions": [{"value": ["a"]}]}),
            "[questions[0].id: This value should not be blank.]",
        ),
        (
            json!({"name": TEMPLATE, "questions": [{"id": "123", "value": ["a"]}]}),
            "[questions[0].id: This is not a valid UUID.]",
        ),
        (json!({"name": TEMPLATE, "questions": [{"id": Q1}]}), "[questions[0].value: This value should not be blank.]"),
        (json!({"name": TEMPLATE, "questions": [{"id": Q1, "value": "Male"}]}), "[questions[0].value: "),
        (json!({"name": TEMPLATE, "questions": [{"id": Q1, "value": [1]}]}), "[questions[0].value[0]: "),
        (
            json!({"name": TEMPLATE, "questions": [{"id": Q1, "value": [long]}]}),
            "[questions[0].value: This value is too long",
        ),
        (json!({"name": TEMPLATE, "questions": [{"id": Q1, "value": vec!["v"; 101]}]}), "[questions[0].value: "),
        (
            json!({"name": TEMPLATE, "questions": [{"id": Q1, "value": []}, {"id": Q1.to_uppercase(), "value": []}]}),
            "[questions[1].id: The question",
        ),
        (json!([1, 2]), "Bad parameters ["),
    ];
    for (body, part) in cases {
        let m = expect_error(put_note(&app, KEY, id, &body).await, 400, part).await;
        assert!(m.starts_with("Bad parameters ["), "{m}");
    }
    let not_json = app
        .client
        .put(app.url(&format!("/qapi/v1{}", note_path(id))))
        .header("Api-Key", KEY)
        .header("Content-Type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    expect_error(not_json, 400, "Bad parameters").await;
    // Nothing was written.
    assert_eq!(expect(get(&app, &format!("{}/versions", note_path(id))).await, 200).await, json!([]));
}

async fn unknown_appointments_answer_404(engine: Engine) {
    let app = setup(engine).await;
    let body = answers(TEMPLATE, &[(Q1, &["a"])]);
    for id in ["999999", "abc", "0", "-1"] {
        let path = format!("/appointments/{id}/visit-note");
        expect_error(get(&app, &path).await, 404, "not found").await;
        expect_error(send(&app, Method::PUT, &path, &body).await, 404, "not found").await;
        expect_error(get(&app, &format!("{path}/versions")).await, 404, "not found").await;
    }
}

async fn another_tenants_notes_answer_404(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    expect(put_note(&app, KEY, id, &answers(TEMPLATE, &[(Q1, &["Male"])])).await, 200).await;
    let path = note_path(id);
    expect_error(call(&app, OTHER_KEY, Method::GET, &path, None).await, 404, "not found").await;
    expect_error(call(&app, OTHER_KEY, Method::GET, &format!("{path}/versions"), None).await, 404, "not found").await;
    let theirs = answers(TEMPLATE, &[(Q1, &["Female"])]);
    expect_error(put_note(&app, OTHER_KEY, id, &theirs).await, 404, "not found").await;
    // Acme's note is as it was.
    let got = expect(get(&app, &path).await, 200).await;
    assert_eq!(responses(&got, TEMPLATE), vec![(json!([TEMPLATE, Q1]), json!(["Male"]))]);
    let history = expect(get(&app, &format!("{path}/versions")).await, 200).await;
    assert_eq!(history.as_array().unwrap().len(), 1);
}

async fn concurrent_puts_lose_no_version(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    let ids: Vec<String> = (0..12).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    let mut puts = tokio::task::JoinSet::new();
    for q in &ids {
        let request = app
            .client
            .put(app.url(&format!("/qapi/v1{}", note_path(id))))
            .header("Api-Key", KEY)
            .json(&answers(TEMPLATE, &[(q.as_str(), &["v"])]));
        puts.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses = puts.join_all().await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let history = expect(get(&app, &format!("{}/versions", note_path(id))).await, 200).await;
    let versions: Vec<i64> = history.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
    // Each change was made on top of the one before: the note holds all.
    let note = expect(get(&app, &note_path(id)).await, 200).await;
    let mut answered: Vec<String> = note[0]["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["question"][1].as_str().unwrap().to_owned())
        .collect();
    answered.sort();
    assert_eq!(answered, ids);
}

async fn the_note_is_sealed_in_the_database(engine: Engine) {
    let app = setup(engine).await;
    let id = visit(&app).await;
    let secret = "a-very-private-answer-7731";
    expect(put_note(&app, KEY, id, &answers(TEMPLATE, &[(Q1, &[secret])])).await, 200).await;
    let docs: Vec<String> = app
        .store
        .read(|c| {
            Box::pin(
                async move { Ok(sqlx::query_scalar("SELECT doc FROM visit_note_versions").fetch_all(&mut *c).await?) },
            )
        })
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    for d in &docs {
        assert!(d.starts_with("v1:"), "sealed: {d}");
        assert!(!d.contains(secret) && !d.contains(TEMPLATE) && !d.contains(Q1), "no clear text in {d}");
    }
}
