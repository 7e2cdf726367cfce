//! Context-aware linking, `GET /integrations/linking?arg=...`: a browser
//! redirect into a visit, carrying encrypted JSON (the document's "Context
//! Aware Linking"). No `Api-Key`: the encryption is the authentication.
//!
//! 1. `arg` is `base64(salt) ‖ base64(IV) ‖ base64(ciphertext)` (URL-encoded
//!    in the query; a `+` that arrives as a space is read as `+`), decrypted
//!    by [`crate::crypto`] with the Solo credential's `webhook_secret` (from
//!    the seed; stored sealed).
//! 2. The URL names no tenant. Every Solo credential with a secret is tried
//!    (each distinct secret once, a SHA-256 and a few AES blocks each); the
//!    first whose decryption has valid PKCS#7 padding and is JSON wins.
//!    Tenants that share that secret are told apart by the visit: appointment
//!    ids are unique across tenants, so the tenant that has the visit is the
//!    one.
//! 3. The JSON must be an object and fit the document's JSON schema
//!    ([`SCHEMA`], the document's copy without its trailing comma; `dob` is
//!    checked as a `date`).
//! 4. `visit` is the appointment id. `type` picks the participant whose video
//!    join page the browser is sent to: `patient` the appointment's patient,
//!    `provider` and `medicalAssistant` its practitioner (the primary
//!    performer first; in a waiting-room visit, which has none, the
//!    provider's key its healthcare service holds). The answer is `302 Found` with `Location` on this
//!    server's join page ([`VideoAccess::join_path`]), never cached.
//!
//! `user`, `date` and `patient` are checked against the schema but do not
//! change where the link goes (the patient's `id` is the linking system's
//! own id, not ours).
//!
//! | refusal | status |
//! |---|---|
//! | `arg` missing or empty, longer than [`MAX_ARG_CHARS`] | 400 |
//! | `arg` too short, a part not base64, a part of the wrong length | 400 |
//! | no Solo secret decrypts it (a wrong secret, or altered data) | 400 |
//! | it decrypts to no JSON, to JSON that is no object, or to an object that does not fit the schema (the failing part named) | 400 |
//! | `visit` names no appointment of the tenant | 404 |
//! | the visit has no video access for that participant | 404 |
//! | too many undecryptable links from one address | 429 (with `Retry-After`) |
//!
//! Undecryptable links count as failed authentications of the caller's
//! address (`polyclinic_http::throttle`).
//!
//! [`VideoAccess::join_path`]: polyclinic_core::appointment::VideoAccess::join_path

use crate::SoloError;
use crate::crypto::{CryptoError, Sealed};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use polyclinic_core::appointment::{Appointment, Participant, ParticipantRole, ParticipantWho, VideoAccess};
use polyclinic_core::tenant::Dialect;
use polyclinic_core::{AppointmentId, TenantId};
use polyclinic_http::AppState;
use polyclinic_store::{appointments, tenants};
use serde::Deserialize;
use serde_json::Value;
use std::sync::OnceLock;

/// The document's JSON schema of the link data, its trailing comma (after
/// `lastName`) removed.
pub const SCHEMA: &str = r#"{
"properties": {
"user": {"type": "string"},
"type": {"enum": ["patient","medicalAssistant","provider"]},
"visit": {"type": "string"},
"date": {
"description": "Date and time of the visit as utc unix timestamp",
"type": "number"
},
"patient": {
"type": "object",
"properties": {
"id": {"type": "string"},
"sex": {"enum": ["male", "female", "other", "unknown"]},
"dob": {
"description": "Date of birth",
"type": "string",
"format": "date"
},
"firstName": {"type": "string"},
"lastName": {"type": "string"}
},
"required": ["id", "sex", "dob", "firstName", "lastName"]
}
},
"required": ["user", "type", "visit", "date", "patient"]
}"#;

/// Longest `arg` read (a link's data is a few hundred bytes).
pub const MAX_ARG_CHARS: usize = 16 * 1024;

/// The linking route (mounted at `/integrations/linking`).
pub fn router() -> Router<AppState> {
    Router::new().route("/", get(connect)).fallback(|| async { SoloError::not_found("no such endpoint") })
}

#[derive(Deserialize)]
struct LinkQuery {
    arg: Option<String>,
}

/// The compiled schema; `None` only if the constant were broken (a test
/// keeps it whole), in which case every link is refused rather than let
/// through unchecked.
fn validator() -> Option<&'static jsonschema::Validator> {
    static V: OnceLock<Option<jsonschema::Validator>> = OnceLock::new();
    V.get_or_init(|| {
        let schema: Value = serde_json::from_str(SCHEMA).ok()?;
        jsonschema::draft7::options().should_validate_formats(true).build(&schema).ok()
    })
    .as_ref()
}

/// Checks decrypted link data against [`SCHEMA`]; the error names the
/// failing parts (at most three), without echoing their values.
pub fn check_schema(data: &Value) -> Result<(), SoloError> {
    if !data.is_object() {
        return Err(SoloError::bad_request("Bad parameters [arg: the link data must be a JSON object]"));
    }
    let Some(v) = validator() else {
        tracing::error!("solo linking: the embedded JSON schema does not compile");
        return Err(SoloError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; see the server log"));
    };
    let problems: Vec<String> = v
        .iter_errors(data)
        .take(3)
        .map(|e| {
            let path = e.instance_path().as_str().to_owned();
            let what = e.masked_with("the value").to_string();
            if path.is_empty() { what } else { format!("{path}: {what}") }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(SoloError::bad_request(format!(
            "Bad parameters [arg: the link data does not fit the schema: {}]",
            problems.join("; ")
        )))
    }
}

fn bad_arg(why: impl std::fmt::Display) -> SoloError {
    SoloError::bad_request(format!("Bad parameters [arg: {why}]"))
}

/// The video access `kind` (`patient`, `provider`, `medicalAssistant`) of
/// `a` opens: the patient's, or the practitioner's (primary performer
/// first, else the provider's key of a waiting-room visit's service).
pub fn access_for<'a>(a: &'a Appointment, kind: &str) -> Option<&'a VideoAccess> {
    let mut with_video = a.participants.iter().filter(|p| p.video.is_some());
    let found = match kind {
        "patient" => with_video.find(|p| matches!(p.who, ParticipantWho::Patient(_))),
        _ => {
            let with_video: Vec<_> = with_video.collect();
            let practitioner = |p: &&&Participant| matches!(p.who, ParticipantWho::Practitioner(_));
            with_video
                .iter()
                .filter(practitioner)
                .find(|p| p.roles.contains(&ParticipantRole::PrimaryPerformer))
                .or_else(|| with_video.iter().find(practitioner))
                // A waiting-room visit: its healthcare service holds the provider's key.
                .or_else(|| with_video.iter().find(|p| matches!(p.who, ParticipantWho::HealthcareService(_))))
                .copied()
        }
    };
    found.and_then(|p| p.video.as_ref())
}

async fn connect(State(state): State<AppState>, req: Request) -> Response {
    let subjects: Vec<_> = polyclinic_http::throttle::peer_of(&req).into_iter().collect();
    if let Err(retry_after) = state.auth_locked(&subjects) {
        let mut r =
            SoloError::new(StatusCode::TOO_MANY_REQUESTS, "too many invalid links; try again later").into_response();
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        return r;
    }
    // The request itself is not `Sync`: only its URI goes on.
    let uri = req.uri().clone();
    drop(req);
    match link(&state, &uri, &subjects).await {
        Ok(location) => {
            let mut r = StatusCode::FOUND.into_response();
            let headers = r.headers_mut();
            match HeaderValue::from_str(&location) {
                Ok(v) => headers.insert(header::LOCATION, v),
                Err(_) => return SoloError::not_found("the visit has no usable video link").into_response(),
            };
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            r
        }
        Err(e) => e.into_response(),
    }
}

/// The join URL the link leads to.
async fn link(
    state: &AppState,
    uri: &axum::http::Uri,
    subjects: &[polyclinic_http::throttle::Subject],
) -> Result<String, SoloError> {
    let axum::extract::Query(q) = axum::extract::Query::<LinkQuery>::try_from_uri(uri)
        .map_err(|e| SoloError::bad_request(format!("Bad parameters [{}]", e.body_text())))?;
    let arg = q.arg.unwrap_or_default();
    if arg.trim().is_empty() {
        return Err(bad_arg("the query parameter `arg` is missing"));
    }
    if arg.len() > MAX_ARG_CHARS {
        return Err(bad_arg(format!("longer than {MAX_ARG_CHARS} characters")));
    }
    // Base64 has no spaces: a `+` the link did not URL-encode reads as one.
    let sealed = Sealed::parse(&arg.replace(' ', "+")).map_err(bad_arg)?;

    let key = state.store.secret_key().clone();
    let credentials = state
        .store
        .read(move |c| Box::pin(async move { tenants::protocol_secrets_of_dialect(c, Dialect::Solo, &key).await }))
        .await?;
    // Each distinct secret once, with the tenants that hold it, in order.
    let mut secrets: Vec<(String, Vec<TenantId>)> = Vec::new();
    for (tenant, _, s) in credentials {
        let Some(secret) = s.webhook_secret.filter(|s| !s.is_empty()) else { continue };
        match secrets.iter_mut().find(|(s, _)| *s == secret) {
            Some((_, ts)) if !ts.contains(&tenant) => ts.push(tenant),
            Some(_) => {}
            None => secrets.push((secret, vec![tenant])),
        }
    }
    let mut decrypted_but_not_json = false;
    let mut found: Option<(Value, Vec<TenantId>)> = None;
    for (secret, tenants) in secrets {
        match sealed.open(&secret) {
            Ok(plain) => match serde_json::from_slice::<Value>(&plain) {
                Ok(v) => {
                    found = Some((v, tenants));
                    break;
                }
                Err(_) => decrypted_but_not_json = true,
            },
            Err(CryptoError::Undecryptable) => {}
            Err(e) => return Err(bad_arg(e)),
        }
    }
    let Some((data, tenants)) = found else {
        state.auth_failed(subjects);
        return Err(if decrypted_but_not_json {
            bad_arg("it does not decrypt to JSON (a wrong secret, or altered data)")
        } else {
            bad_arg(CryptoError::Undecryptable)
        });
    };
    check_schema(&data)?;

    let visit = data.get("visit").and_then(Value::as_str).unwrap_or("");
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("");
    let shown: String = visit.chars().take(64).collect();
    let not_found = || SoloError::not_found(format!("visit {shown} not found"));
    let id = visit.trim().parse::<AppointmentId>().map_err(|_| not_found())?;
    let appointment = state
        .store
        .read(move |c| {
            Box::pin(async move {
                for tenant in tenants {
                    if let Some(a) = appointments::get(c, tenant, id).await? {
                        return Ok(Some((tenant, a)));
                    }
                }
                Ok(None)
            })
        })
        .await?;
    let (tenant, a) = appointment.ok_or_else(not_found)?;
    let access = access_for(&a, kind).ok_or_else(|| {
        SoloError::not_found(format!(
            "visit {shown} has no video link for a {kind} (it is no video visit, or has no such participant)"
        ))
    })?;
    Ok(format!("{}{}", state.public_url, access.join_path(tenant, a.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"user": "u1", "type": "patient", "visit": "12345", "date": 1_700_000_000,
            "patient": {"id": "p1", "sex": "female", "dob": "1983-08-15", "firstName": "Ann", "lastName": "Berg"}})
    }

    #[test]
    fn the_schema_compiles_and_holds() {
        assert!(validator().is_some());
        assert!(check_schema(&valid()).is_ok());
        let mut bad_dob = valid();
        bad_dob["patient"]["dob"] = json!("1983-13-45");
        let e = check_schema(&bad_dob).unwrap_err();
        assert!(e.message.contains("/patient/dob"), "{}", e.message);
        assert!(!e.message.contains("1983-13-45"), "values are not echoed: {}", e.message);
        let mut no_visit = valid();
        no_visit.as_object_mut().unwrap().remove("visit");
        assert!(check_schema(&no_visit).unwrap_err().message.contains("visit"));
        let mut bad_type = valid();
        bad_type["type"] = json!("nurse");
        assert!(check_schema(&bad_type).unwrap_err().message.contains("/type"));
        assert!(check_schema(&json!("12345")).unwrap_err().message.contains("JSON object"));
        assert!(check_schema(&json!({"visit": 12345})).is_err());
    }
}
