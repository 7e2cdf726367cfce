//! Solo appointment attachments and patient documents: uploads of each of
//! the five types with real magic bytes, the 5 MiB limit to the byte, every
//! refusal in Solo's shape (the document's exact message for a type outside
//! the five), the list in upload order, soft deletion, the bytes read back,
//! the questionnaire form of a patient document with each required field,
//! the tenant's own files only, and bytes sealed at rest on both engines.

use crate::helpers::{Engine, Spawn, TestApp, acme_seed, fresh_database, spawn_app_with};
use crate::on_both_engines;
use crate::sl::{self, KEY, OTHER_KEY, ROUND, T0, expect, expect_error};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;

/// 5 MiB: the largest file accepted.
const FIVE_MIB: usize = 5 * 1024 * 1024;

/// The document's message for `text/plain`, verbatim.
const TEXT_PLAIN_MESSAGE: &str = "Mime type \"text/plain\" not supported. Available file mime-types: \"application/pdf\", \"application/x-pdf\", \"image/pdf\", \"image/png\", \"image/jpeg\"";

/// A minimal PDF carrying `marker` in a comment.
fn pdf(marker: &str) -> Vec<u8> {
    format!(
        "%PDF-1.4\n% {marker}\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
         2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    )
    .into_bytes()
}

/// A valid 1x1 PNG.
fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4, 0x89, 0x00, 0x00, 0x00,
        0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D,
        0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]
}

/// A JPEG: SOI, a JFIF APP0 segment, EOI.
fn jpeg() -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    b.extend_from_slice(b"JFIF\0");
    b.extend_from_slice(&[0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9]);
    b
}

/// A PDF of exactly `size` bytes.
fn pdf_of(size: usize) -> Vec<u8> {
    let mut b = pdf("big");
    b.resize(size, b' ');
    b
}

/// A binary upload to `/qapi/v1{path}` with `key`: `mime` as Content-Type
/// (none when `None`), `fileName` when given.
async fn post_file(
    app: &TestApp,
    key: &str,
    path: &str,
    mime: Option<&str>,
    file_name: Option<&str>,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let mut r = app.client.post(app.url(&format!("/qapi/v1{path}"))).header("Api-Key", key).body(bytes);
    if let Some(m) = mime {
        r = r.header("Content-Type", m);
    }
    if let Some(n) = file_name {
        r = r.query(&[("fileName", n)]);
    }
    r.send().await.unwrap()
}

/// Uploads to the appointment with the `acme` key.
async fn upload(
    app: &TestApp,
    appointment: &str,
    mime: Option<&str>,
    name: Option<&str>,
    b: Vec<u8>,
) -> reqwest::Response {
    post_file(app, KEY, &format!("/appointments/{appointment}/attachments"), mime, name, b).await
}

/// A seeded server (as `sl::setup`) with patient `p1` and a visit of it;
/// answers the visit's id. Also answers the SQLite file, on SQLite.
async fn setup(engine: Engine) -> (TestApp, i64, Option<PathBuf>) {
    let database = fresh_database(engine).await;
    let opts = Spawn { test_clock: true, database: Some(database.clone()), ..Default::default() };
    let app = spawn_app_with(engine, opts).await;
    app.seed(&sl::seed()).await;
    app.seed(&acme_seed("other")).await;
    app.set_clock("2030-03-04T08:00:00Z").await;
    sl::create_patient(&app, "p1").await;
    let visit = sl::booked(&app, "p1", ROUND, T0 + 3600).await;
    let file = (engine == Engine::Sqlite).then(|| PathBuf::from(database.trim_start_matches("sqlite://")));
    (app, visit, file)
}

/// A GET of raw bytes with `key`: status, Content-Type, bytes.
async fn get_bytes(app: &TestApp, key: &str, path: &str) -> (u16, String, Vec<u8>) {
    let r = sl::call(app, key, Method::GET, path, None).await;
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// Asserts the attachment object of the document, exactly its seven fields.
fn assert_attachment(v: &Value, appointment: i64, title: &str, mime: &str, size: usize) {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, ["appointmentId", "deleted", "id", "mimeType", "size", "title", "uploadedAt"], "{v}");
    assert!(uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok(), "{v}");
    assert_eq!(v["appointmentId"], json!(appointment));
    assert_eq!(v["title"], json!(title));
    assert_eq!(v["mimeType"], json!(mime));
    assert_eq!(v["size"], json!(size));
    // The test clock: 08:00Z, in Stockholm (CET in March).
    assert_eq!(v["uploadedAt"], json!("2030-03-04T09:00:00+01:00"));
    assert_eq!(v["deleted"], json!(false));
}

async fn each_of_the_five_types_is_accepted_and_read_back(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let files = [
        ("application/pdf", "UploadedPDF.pdf", pdf("one")),
        ("application/x-pdf", "x.pdf", pdf("two")),
        ("image/pdf", "MyFileNamTest1.pdf", pdf("three")),
        ("image/png", "Attachment.png", png()),
        ("image/jpeg", "photo.jpg", jpeg()),
    ];
    let mut ids = Vec::new();
    for (mime, name, bytes) in &files {
        let body = expect(upload(&app, &a, Some(mime), Some(name), bytes.clone()).await, 201).await;
        assert_attachment(&body, visit, name, mime, bytes.len());
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // The list: the document's shape, in upload order.
    let list = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    assert_eq!(list.as_object().unwrap().len(), 1, "{list}");
    let items = list["attachments"].as_array().unwrap();
    let listed: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids);
    for (item, (mime, name, bytes)) in items.iter().zip(&files) {
        assert_attachment(item, visit, name, mime, bytes.len());
    }
    // Each file's bytes read back identical, with its type.
    for (id, (mime, _, bytes)) in ids.iter().zip(&files) {
        let (status, ct, got) = get_bytes(&app, KEY, &format!("/appointments/{visit}/attachments/{id}/content")).await;
        assert_eq!((status, ct.as_str()), (200, *mime));
        assert_eq!(&got, bytes);
    }
    // Type names are read without their parameters and case.
    let body = expect(upload(&app, &a, Some("Application/PDF; name=x"), Some("p.pdf"), pdf("p")).await, 201).await;
    assert_eq!(body["mimeType"], json!("application/pdf"));
}

/// Announces a 100 MiB PDF upload to `path` but sends only one byte more
/// than the route's body limit, then reads the answer: a server that
/// buffered the whole body would never answer.
async fn cut_off(app: &TestApp, path: &str) -> (u16, Value) {
    let sent = polyclinic_solo::attachments::UPLOAD_BODY_LIMIT + 1;
    let headers = [("Api-Key", KEY), ("Content-Type", "application/pdf")];
    let (status, body) = crate::helpers::post_over_limit(app, path, &headers, 100 * FIVE_MIB, pdf_of(sent)).await;
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}")))
}

async fn the_limit_is_five_mebibytes_to_the_byte(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let body = expect(upload(&app, &a, Some("application/pdf"), Some("big.pdf"), pdf_of(FIVE_MIB)).await, 201).await;
    assert_eq!(body["size"], json!(5_242_880));
    let id = body["id"].as_str().unwrap().to_owned();
    let r = upload(&app, &a, Some("application/pdf"), Some("bigger.pdf"), pdf_of(FIVE_MIB + 1)).await;
    expect_error(r, 413, "File is too large. Max file size: 5Mb (5242880 bytes)").await;
    // Far over the limit: the server answers once it has read a little
    // more than the limit, without waiting for the 100 MiB announced.
    let (status, body) = cut_off(&app, &format!("/qapi/v1/appointments/{visit}/attachments")).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body, json!({"error": {"message": "File is too large. Max file size: 5Mb (5242880 bytes)"}}));
    // Only the 5 MiB file was stored, and it reads back whole.
    let list = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    assert_eq!(list["attachments"].as_array().unwrap().len(), 1);
    let (status, _, got) = get_bytes(&app, KEY, &format!("/appointments/{visit}/attachments/{id}/content")).await;
    assert_eq!((status, got.len()), (200, FIVE_MIB));
    assert_eq!(got, pdf_of(FIVE_MIB));
}

async fn content_must_match_the_declared_type(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    // A PNG renamed .pdf.
    let r = upload(&app, &a, Some("application/pdf"), Some("renamed.pdf"), png()).await;
    let m = expect_error(r, 415, "File content does not match mime type \"application/pdf\"").await;
    assert!(m.contains("image/png"), "{m}");
    let r = upload(&app, &a, Some("image/png"), None, jpeg()).await;
    expect_error(r, 415, "File content does not match mime type \"image/png\"").await;
    let r = upload(&app, &a, Some("image/jpeg"), None, pdf("x")).await;
    expect_error(r, 415, "File content does not match mime type \"image/jpeg\"").await;
    let r = upload(&app, &a, Some("image/pdf"), None, b"just text".to_vec()).await;
    expect_error(r, 415, "(the content is of no known type)").await;
    let list = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    assert_eq!(list, json!({"attachments": []}));
}

async fn a_type_outside_the_five_answers_the_documents_message(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let r = upload(&app, &a, Some("text/plain"), Some("notes.txt"), b"hello".to_vec()).await;
    let body = expect(r, 415).await;
    assert_eq!(body, json!({"error": {"message": TEXT_PLAIN_MESSAGE}}));
    // With parameters, the type alone is named.
    let r = upload(&app, &a, Some("text/plain; charset=utf-8"), None, b"hello".to_vec()).await;
    assert_eq!(expect_error(r, 415, "").await, TEXT_PLAIN_MESSAGE);
    for other in ["image/gif", "application/octet-stream", "application/json"] {
        let r = upload(&app, &a, Some(other), None, pdf("x")).await;
        expect_error(r, 415, &format!("Mime type \"{other}\" not supported")).await;
    }
}

async fn an_upload_without_content_type_is_refused(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let r = upload(&app, &visit.to_string(), None, Some("x.pdf"), pdf("x")).await;
    let m = expect_error(r, 415, "Mime type is missing (no Content-Type header)").await;
    assert!(m.contains("\"application/pdf\", \"application/x-pdf\", \"image/pdf\", \"image/png\", \"image/jpeg\""));
}

async fn an_empty_file_is_refused(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let r = upload(&app, &visit.to_string(), Some("application/pdf"), Some("x.pdf"), Vec::new()).await;
    expect_error(r, 400, "The file is empty").await;
}

async fn file_name_is_the_title_or_a_default(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let body = expect(upload(&app, &a, Some("image/pdf"), None, pdf("x")).await, 201).await;
    assert_eq!(body["title"], json!("attachment.pdf"));
    let body = expect(upload(&app, &a, Some("image/png"), Some("  "), png()).await, 201).await;
    assert_eq!(body["title"], json!("attachment.png"));
    let body = expect(upload(&app, &a, Some("image/jpeg"), None, jpeg()).await, 201).await;
    assert_eq!(body["title"], json!("attachment.jpg"));
    let body =
        expect(upload(&app, &a, Some("application/pdf"), Some("Röntgen & Befund.pdf"), pdf("x")).await, 201).await;
    assert_eq!(body["title"], json!("Röntgen & Befund.pdf"));
    let long = "a".repeat(257);
    let r = upload(&app, &a, Some("application/pdf"), Some(&long), pdf("x")).await;
    expect_error(r, 400, "Bad parameters [fileName: This value is too long.]").await;
    let r = upload(&app, &a, Some("application/pdf"), Some("a\nb.pdf"), pdf("x")).await;
    expect_error(r, 400, "Bad parameters [fileName:").await;
}

async fn the_aggregate_id_is_the_external_id(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    expect(sl::put_appointment(&app, visit, &json!({"externalId": "ext-visit-1"})).await, 200).await;
    let body = expect(upload(&app, "ext-visit-1", Some("application/pdf"), Some("a.pdf"), pdf("x")).await, 201).await;
    // The answer names the appointment by its id, as every Solo answer does.
    assert_eq!(body["appointmentId"], json!(visit));
    let by_id = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    let by_external = expect(sl::get(&app, "/appointments/ext-visit-1/attachments").await, 200).await;
    assert_eq!(by_id, by_external);
    assert_eq!(by_id["attachments"][0]["id"], body["id"]);
}

async fn delete_hides_the_file_and_keeps_its_row(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let first = expect(upload(&app, &a, Some("application/pdf"), Some("1.pdf"), pdf("1")).await, 201).await;
    let second = expect(upload(&app, &a, Some("image/png"), Some("2.png"), png()).await, 201).await;
    let id = first["id"].as_str().unwrap().to_owned();
    let path = format!("/appointments/{visit}/attachments/{id}");
    let deleted = expect(sl::call(&app, KEY, Method::DELETE, &path, None).await, 200).await;
    let mut expected = first.clone();
    expected["deleted"] = json!(true);
    assert_eq!(deleted, expected);
    let list = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    assert_eq!(list, json!({"attachments": [second]}));
    // A second delete, and the deleted file's bytes: 404.
    expect_error(sl::call(&app, KEY, Method::DELETE, &path, None).await, 404, "Attachment not found").await;
    expect_error(sl::get(&app, &format!("{path}/content")).await, 404, "Attachment not found").await;
    // The row is kept, marked deleted.
    let flag: i64 = app
        .store
        .read(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar("SELECT deleted FROM attachments WHERE id = $1")
                    .bind(id)
                    .fetch_one(&mut *c)
                    .await?)
            })
        })
        .await
        .unwrap();
    assert_eq!(flag, 1);
}

async fn unknown_appointments_and_attachments_are_not_found(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let a = visit.to_string();
    let file = expect(upload(&app, &a, Some("application/pdf"), None, pdf("x")).await, 201).await;
    let id = file["id"].as_str().unwrap();
    for appointment in ["999999", "0", "-1", "no-such-visit"] {
        let r = upload(&app, appointment, Some("application/pdf"), None, pdf("x")).await;
        expect_error(r, 404, "Appointment not found").await;
        let r = sl::get(&app, &format!("/appointments/{appointment}/attachments")).await;
        expect_error(r, 404, "Appointment not found").await;
        let path = format!("/appointments/{appointment}/attachments/{id}");
        expect_error(sl::call(&app, KEY, Method::DELETE, &path, None).await, 404, "Appointment not found").await;
        expect_error(sl::get(&app, &format!("{path}/content")).await, 404, "Appointment not found").await;
    }
    for attachment in ["8411f863-0895-4300-af13-66b0dafce51d", "not-a-uuid"] {
        let path = format!("/appointments/{visit}/attachments/{attachment}");
        expect_error(sl::call(&app, KEY, Method::DELETE, &path, None).await, 404, "Attachment not found").await;
        expect_error(sl::get(&app, &format!("{path}/content")).await, 404, "Attachment not found").await;
    }
    // An attachment of another appointment of the tenant is not this one's.
    let other_visit = sl::booked(&app, "p1", ROUND, T0 + 7200).await;
    let path = format!("/appointments/{other_visit}/attachments/{id}");
    expect_error(sl::get(&app, &format!("{path}/content")).await, 404, "Attachment not found").await;
    expect_error(sl::call(&app, KEY, Method::DELETE, &path, None).await, 404, "Attachment not found").await;
    // Nothing was deleted.
    let list = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    assert_eq!(list["attachments"][0]["id"], json!(id));
}

async fn another_tenants_key_gets_404_everywhere(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let file = expect(upload(&app, &visit.to_string(), Some("application/pdf"), None, pdf("x")).await, 201).await;
    let id = file["id"].as_str().unwrap();
    let doc_body = json!({"name": "intake", "dateTime": 1_510_367_140, "responses": []});
    expect(sl::send(&app, Method::POST, "/patients/p1/documents", &doc_body).await, 201).await;
    let docs = expect(sl::get(&app, "/patients/p1/documents").await, 200).await;
    let doc_id = docs["documents"][0]["id"].as_str().unwrap().to_owned();
    // The other tenant, with its own patient `p1` and visit.
    sl::create_patient_as(&app, OTHER_KEY, "p1").await;
    let theirs = json!({"date": T0 + 3600, "waitingRoom": sl::GP});
    let r = sl::call(&app, OTHER_KEY, Method::POST, "/patients/p1/appointments", Some(&theirs)).await;
    let their_visit = expect(r, 201).await["id"].as_i64().unwrap();

    let attachments = format!("/appointments/{visit}/attachments");
    let r = post_file(&app, OTHER_KEY, &attachments, Some("application/pdf"), None, pdf("x")).await;
    expect_error(r, 404, "Appointment not found").await;
    expect_error(sl::call(&app, OTHER_KEY, Method::GET, &attachments, None).await, 404, "").await;
    for appointment in [visit, their_visit] {
        let path = format!("/appointments/{appointment}/attachments/{id}");
        expect_error(sl::call(&app, OTHER_KEY, Method::DELETE, &path, None).await, 404, "").await;
        let content = format!("{path}/content");
        expect_error(sl::call(&app, OTHER_KEY, Method::GET, &content, None).await, 404, "").await;
    }
    // Their patient `p1` is theirs: acme's documents are not in its list,
    // and acme's document is not theirs to read.
    let r = sl::call(&app, OTHER_KEY, Method::GET, "/patients/p1/documents", None).await;
    assert_eq!(expect(r, 200).await, json!({"documents": []}));
    let content = format!("/patients/p1/documents/{doc_id}/content");
    expect_error(sl::call(&app, OTHER_KEY, Method::GET, &content, None).await, 404, "Document not found").await;
    // A patient only acme has.
    sl::create_patient(&app, "p2").await;
    let r = sl::call(&app, OTHER_KEY, Method::POST, "/patients/p2/documents", Some(&doc_body)).await;
    expect_error(r, 404, "Patient not found").await;
    let r = post_file(&app, OTHER_KEY, "/patients/p2/documents", Some("application/pdf"), None, pdf("x")).await;
    expect_error(r, 404, "Patient not found").await;
    expect_error(sl::call(&app, OTHER_KEY, Method::GET, "/patients/p2/documents", None).await, 404, "").await;
    // Acme's file is untouched.
    let (status, _, got) = get_bytes(&app, KEY, &format!("/appointments/{visit}/attachments/{id}/content")).await;
    assert_eq!((status, got), (200, pdf("x")));
}

async fn a_questionnaire_needs_every_field(engine: Engine) {
    let (app, _, _) = setup(engine).await;
    let full = json!({"name": "document name", "dateTime": 1_510_367_140,
                      "responses": [{"question": "question 1", "response": "response to question 1"}]});
    let r = sl::send(&app, Method::POST, "/patients/p1/documents", &full).await;
    assert_eq!(expect(r, 201).await, json!([]));
    for field in ["name", "dateTime", "responses"] {
        let mut body = full.clone();
        body.as_object_mut().unwrap().remove(field);
        let r = sl::send(&app, Method::POST, "/patients/p1/documents", &body).await;
        expect_error(r, 400, &format!("missing field `{field}`")).await;
    }
    for field in ["question", "response"] {
        let mut body = full.clone();
        body["responses"][0].as_object_mut().unwrap().remove(field);
        let r = sl::send(&app, Method::POST, "/patients/p1/documents", &body).await;
        expect_error(r, 400, &format!("responses[0]: missing field `{field}`")).await;
    }
    let bad = [
        (json!({"name": "", "dateTime": 1, "responses": []}), "Bad parameters [name: This value should not be blank.]"),
        (json!({"name": "n", "dateTime": "soon", "responses": []}), "Bad parameters [dateTime:"),
        (
            json!({"name": "n", "dateTime": 1, "responses": [{"question": " ", "response": "r"}]}),
            "responses[0].question",
        ),
        (json!({"name": "n", "dateTime": 1, "responses": {}}), "Bad parameters [responses:"),
        (json!({"name": "n", "dateTime": 99_999_999_999_999_i64, "responses": []}), "Bad parameters [dateTime:"),
        (json!({"name": "x".repeat(257), "dateTime": 1, "responses": []}), "Bad parameters [name:"),
    ];
    for (body, part) in bad {
        let r = sl::send(&app, Method::POST, "/patients/p1/documents", &body).await;
        expect_error(r, 400, part).await;
    }
    let r = sl::send(&app, Method::POST, "/patients/nobody/documents", &full).await;
    expect_error(r, 404, "Patient not found").await;
    // Only the first was kept; its content is the questionnaire.
    let docs = expect(sl::get(&app, "/patients/p1/documents").await, 200).await;
    let items = docs["documents"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{docs}");
    let d = &items[0];
    assert_eq!(d["patientId"], json!("p1"));
    assert_eq!(d["title"], json!("document name"));
    assert_eq!(d["mimeType"], json!("application/json"));
    assert_eq!(d["dateTime"], json!(1_510_367_140));
    assert_eq!(d["uploadedAt"], json!("2030-03-04T09:00:00+01:00"));
    assert_eq!(d["deleted"], json!(false));
    let (status, ct, bytes) =
        get_bytes(&app, KEY, &format!("/patients/p1/documents/{}/content", d["id"].as_str().unwrap())).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(d["size"], json!(bytes.len()));
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), full);
}

async fn a_document_file_is_checked_stored_and_listed(engine: Engine) {
    let (app, visit, _) = setup(engine).await;
    let q = json!({"name": "intake", "dateTime": 1_510_367_140, "responses": []});
    expect(sl::send(&app, Method::POST, "/patients/p1/documents", &q).await, 201).await;
    let body = expect(
        post_file(&app, KEY, "/patients/p1/documents", Some("application/pdf"), Some("scan.pdf"), pdf("scan")).await,
        201,
    )
    .await;
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 8, "{body}");
    assert_eq!(body["patientId"], json!("p1"));
    assert_eq!(body["title"], json!("scan.pdf"));
    assert_eq!(body["mimeType"], json!("application/pdf"));
    assert_eq!(body["size"], json!(pdf("scan").len()));
    assert_eq!(body["dateTime"], json!(T0));
    let image =
        expect(post_file(&app, KEY, "/patients/p1/documents", Some("image/jpeg"), None, jpeg()).await, 201).await;
    assert_eq!(image["title"], json!("attachment.jpg"));
    // The same refusals as attachments.
    let r = post_file(&app, KEY, "/patients/p1/documents", Some("text/plain"), None, b"hi".to_vec()).await;
    assert_eq!(expect_error(r, 415, "").await, TEXT_PLAIN_MESSAGE);
    let r = post_file(&app, KEY, "/patients/p1/documents", Some("application/pdf"), None, png()).await;
    expect_error(r, 415, "File content does not match mime type \"application/pdf\"").await;
    let r = post_file(&app, KEY, "/patients/p1/documents", None, None, pdf("x")).await;
    expect_error(r, 415, "Mime type is missing").await;
    let r = post_file(&app, KEY, "/patients/p1/documents", Some("image/png"), None, Vec::new()).await;
    expect_error(r, 400, "The file is empty").await;
    let r = post_file(&app, KEY, "/patients/p1/documents", Some("application/pdf"), None, pdf_of(FIVE_MIB + 1)).await;
    expect_error(r, 413, "File is too large").await;
    let (status, cut) = cut_off(&app, "/qapi/v1/patients/p1/documents").await;
    assert_eq!(
        (status, cut["error"]["message"].as_str()),
        (413, Some("File is too large. Max file size: 5Mb (5242880 bytes)"))
    );
    let r = post_file(&app, KEY, "/patients/nobody/documents", Some("application/pdf"), None, pdf("x")).await;
    expect_error(r, 404, "Patient not found").await;
    // The patient's appointment attachments are not its documents.
    expect(upload(&app, &visit.to_string(), Some("image/png"), None, png()).await, 201).await;
    // The list, in the order added.
    let docs = expect(sl::get(&app, "/patients/p1/documents").await, 200).await;
    let titles: Vec<&str> =
        docs["documents"].as_array().unwrap().iter().map(|d| d["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["intake", "scan.pdf", "attachment.jpg"]);
    assert_eq!(docs["documents"][1], body);
    let (status, ct, got) =
        get_bytes(&app, KEY, &format!("/patients/p1/documents/{}/content", body["id"].as_str().unwrap())).await;
    assert_eq!((status, ct.as_str(), got), (200, "application/pdf", pdf("scan")));
    // Another patient's document, an unknown one, an attachment: 404.
    sl::create_patient(&app, "p2").await;
    let path = format!("/patients/p2/documents/{}/content", body["id"].as_str().unwrap());
    expect_error(sl::get(&app, &path).await, 404, "Document not found").await;
    expect_error(sl::get(&app, "/patients/p1/documents/not-a-uuid/content").await, 404, "Document not found").await;
    let attachment = expect(sl::get(&app, &format!("/appointments/{visit}/attachments")).await, 200).await;
    let path = format!("/patients/p1/documents/{}/content", attachment["attachments"][0]["id"].as_str().unwrap());
    expect_error(sl::get(&app, &path).await, 404, "Document not found").await;
    assert_eq!(expect(sl::get(&app, "/patients/p2/documents").await, 200).await, json!({"documents": []}));
    expect_error(sl::get(&app, "/patients/nobody/documents").await, 404, "Patient not found").await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn stored_bytes_are_sealed(engine: Engine) {
    let (app, visit, sqlite) = setup(engine).await;
    let marker = "MARKER-e1b7c0d2-confidential-scan";
    let body =
        expect(upload(&app, &visit.to_string(), Some("application/pdf"), Some("s.pdf"), pdf(marker)).await, 201).await;
    let q = json!({"name": "intake", "dateTime": 1_510_367_140, "responses": [{"question": "q", "response": marker}]});
    expect(sl::send(&app, Method::POST, "/patients/p1/documents", &q).await, 201).await;
    let id = body["id"].as_str().unwrap().to_owned();
    // The rows hold no title, no marker in clear.
    let docs: Vec<String> = app
        .store
        .read(|c| {
            Box::pin(async move { Ok(sqlx::query_scalar("SELECT doc FROM attachments").fetch_all(&mut *c).await?) })
        })
        .await
        .unwrap();
    assert_eq!(docs.len(), 2);
    assert!(docs.iter().all(|d| d.starts_with("v1:") && !d.contains("s.pdf") && !d.contains("intake")));
    match sqlite {
        Some(db) => {
            let dir = PathBuf::from(format!("{}-blobs", db.display()));
            let files = files_under(&dir);
            assert_eq!(files.len(), 2, "{files:?}");
            for f in &files {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                assert!(!name.starts_with(".tmp-"), "a temporary file remains: {f:?}");
                let bytes = std::fs::read(f).unwrap();
                assert!(!contains(&bytes, marker.as_bytes()), "{f:?} holds the marker in clear");
                assert!(!contains(&bytes, b"%PDF"), "{f:?} holds the PDF in clear");
            }
        }
        None => {
            let rows: Vec<Vec<u8>> = app
                .store
                .read(|c| {
                    Box::pin(async move { Ok(sqlx::query_scalar("SELECT bytes FROM blobs").fetch_all(&mut *c).await?) })
                })
                .await
                .unwrap();
            assert_eq!(rows.len(), 2);
            for bytes in &rows {
                assert!(!contains(bytes, marker.as_bytes()), "a blob holds the marker in clear");
                assert!(!contains(bytes, b"%PDF"));
            }
        }
    }
    // And the file reads back whole.
    let (status, _, got) = get_bytes(&app, KEY, &format!("/appointments/{visit}/attachments/{id}/content")).await;
    assert_eq!((status, got), (200, pdf(marker)));
}

on_both_engines!(
    each_of_the_five_types_is_accepted_and_read_back,
    the_limit_is_five_mebibytes_to_the_byte,
    content_must_match_the_declared_type,
    a_type_outside_the_five_answers_the_documents_message,
    an_upload_without_content_type_is_refused,
    an_empty_file_is_refused,
    file_name_is_the_title_or_a_default,
    the_aggregate_id_is_the_external_id,
    delete_hides_the_file_and_keeps_its_row,
    unknown_appointments_and_attachments_are_not_found,
    another_tenants_key_gets_404_everywhere,
    a_questionnaire_needs_every_field,
    a_document_file_is_checked_stored_and_listed,
    stored_bytes_are_sealed,
);
