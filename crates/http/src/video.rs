//! The join page of a video call, `GET /video/{tenant}/{appointment}/{key}`:
//! the link every dialect and every patient message gives a participant
//! ([`VideoAccess::join_path`]). The key is the participant's secret; a key
//! that is not one of the appointment's, an appointment that is no video
//! call or no longer takes place, and every malformed path answer the same
//! 404, so the page tells nothing to someone without a key. The page is
//! never cached and sends no referrer.
//!
//! [`VideoAccess::join_path`]: polyclinic_core::appointment::VideoAccess::join_path

use crate::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use polyclinic_core::appointment::{Appointment, ParticipantWho};
use polyclinic_core::{AppointmentId, TenantId};
use polyclinic_store::{appointments, tenants};
use subtle::ConstantTimeEq;

/// The join page route.
pub fn router() -> Router<AppState> {
    Router::new().route("/video/{tenant}/{appointment}/{key}", get(join))
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "no such video call").into_response()
}

/// The participant of `a` whose key is `key`, compared in constant time.
fn holder<'a>(a: &'a Appointment, key: &str) -> Option<&'a ParticipantWho> {
    a.participants
        .iter()
        .find(|p| p.video.as_ref().is_some_and(|v| bool::from(v.key.as_bytes().ct_eq(key.as_bytes()))))
        .map(|p| &p.who)
}

async fn join(
    State(state): State<AppState>,
    Path((tenant, appointment, key)): Path<(String, String, String)>,
) -> Response {
    let (Ok(tenant), Ok(appointment)) = (tenant.parse::<i64>(), appointment.parse::<AppointmentId>()) else {
        return not_found();
    };
    let tenant = TenantId(tenant);
    let found = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let Some(a) = appointments::get(c, tenant, appointment).await? else { return Ok(None) };
                Ok(Some((a, tenants::get(c, tenant).await?)))
            })
        })
        .await;
    let (a, t) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        // An unknown tenant is no error of the server's.
        Err(polyclinic_store::StoreError::Core(_)) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "reading a video call");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let Some(who) = holder(&a, &key).filter(|_| a.digital && a.status.occupies_time()) else { return not_found() };
    let role = match who {
        // A waiting room's key is the provider's, whoever of its
        // practitioners takes the call.
        ParticipantWho::Practitioner(_) | ParticipantWho::HealthcareService(_) => "practitioner",
        ParticipantWho::Patient(_) => "patient",
        _ => "guest",
    };
    let start = a.interval.start.to_zoned(t.tz());
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Video call</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\n\
         <body><h1>Video call</h1>\n<p>{clinic}: {date} at {time} ({zone}).</p>\n\
         <p>You join as the {role}. The call opens here when it starts.</p></body></html>\n",
        clinic = escape(&t.name),
        date = start.strftime("%Y-%m-%d"),
        time = start.strftime("%H:%M"),
        zone = escape(&t.timezone),
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        page,
    )
        .into_response()
}

/// Text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
