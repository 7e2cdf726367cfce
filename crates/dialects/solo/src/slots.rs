//! `GET /appointment-slots?after&before&waitingRoom&duration`: the free
//! visits of a waiting room in a range, from
//! `scheduling::availability::waiting_room_starts` (the same answer a
//! booking is checked against). This module owns the parameters' checks.

use crate::patients::bad;
use crate::{Caller, Query, SoloError, waiting_rooms};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use polyclinic_core::schedule::Interval;
use polyclinic_http::AppState;
use polyclinic_scheduling::availability;
use serde::Deserialize;
use serde_json::{Value, json};

/// The longest range one request may search, in days.
pub const MAX_RANGE_DAYS: i64 = 31;

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new().route("/appointment-slots", get(list))
}

/// The parameters, as text: each is checked here with its own message.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    after: Option<String>,
    before: Option<String>,
    waiting_room: Option<String>,
    duration: Option<String>,
}

fn required<'a>(name: &str, v: &'a Option<String>) -> Result<&'a str, SoloError> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).ok_or_else(|| bad(name, "This value is required."))
}

fn integer(name: &str, v: &str) -> Result<i64, SoloError> {
    v.parse::<i64>().map_err(|_| bad(name, format!("\"{v}\" is not an integer.")))
}

fn timestamp(name: &str, v: &str) -> Result<Timestamp, SoloError> {
    let n = integer(name, v)?;
    Timestamp::from_second(n)
        .ok()
        .filter(|t| polyclinic_core::clock::in_range(*t))
        .ok_or_else(|| bad(name, format!("{n} is not a supported timestamp")))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(p): Query<Params>,
) -> Result<Response, SoloError> {
    let after = timestamp("after", required("after", &p.after)?)?;
    let before = timestamp("before", required("before", &p.before)?)?;
    let name = required("waitingRoom", &p.waiting_room)?.to_owned();
    let duration = match p.duration.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
        None => None,
        Some(d) => Some(
            Some(integer("duration", d)?)
                .filter(|d| crate::appointments::DURATION_RANGE.contains(d))
                .ok_or_else(|| bad("duration", "This value should be between 1 and 86400."))?,
        ),
    };
    if after >= before {
        return Err(bad("before", "This value should be greater than after."));
    }
    if before.as_second() - after.as_second() > MAX_RANGE_DAYS * 86_400 {
        return Err(bad("before", format!("The range must not be longer than {MAX_RANGE_DAYS} days.")));
    }
    let tenant = caller.tenant.clone();
    let room = waiting_rooms::by_name(&state, tenant.id, &name)
        .await?
        .ok_or_else(|| bad("waitingRoom", format!("Waiting room \"{name}\" not found")))?;
    let duration = duration.unwrap_or(room.slot_seconds);
    let (window, now) = (Interval { start: after, end: before }, state.now());
    let starts = state
        .store
        .read(move |c| {
            Box::pin(async move { availability::waiting_room_starts(c, &tenant, &room, &window, duration, now).await })
        })
        .await?;
    let out: Vec<Value> =
        starts.iter().map(|v| json!({"date": v.start.as_second(), "duration": v.seconds()})).collect();
    Ok(axum::Json(Value::Array(out)).into_response())
}
