//! Docplanner's optional real-time approvals: before a booking made through
//! another dialect lands at an address (`slot-booking`), or before such a
//! booking moves (`booking-moving`), every API client of the address's
//! facility that asked for them (credential `realtime_booking`) is asked at
//! its push URL, at once. A 2xx answer approves; anything else, or no answer,
//! declines, and the booking or move does not happen.
//!
//! Bookings made through the Docplanner API itself are not put to approval:
//! their maker is the integration that would approve them.
//!
//! [`RealtimeApprovals`] is a [`BookingGate`]: the server registers it at
//! start, and every other dialect's bookings and moves pass it through the
//! scheduling layer without knowing Docplanner.

use super::bookings::{patient_json, view_of, visit_booking_json};
use super::catalog::{address_json, doctor_ref, facility_json};
use super::format_time;
use super::notifications::{push_headers, signature};
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::clock::Clock;
use polyclinic_core::facility::Address;
use polyclinic_core::tenant::Dialect;
use polyclinic_core::tenant::{Credential, Tenant};
use polyclinic_delivery::Engine;
use polyclinic_scheduling::{BookingGate, Proposal};
use polyclinic_store::Store;
use polyclinic_store::deliveries::{Channel, NewDelivery};
use polyclinic_store::{StoreResult, catalog, docplanner_queue};
use serde_json::{Value, json};
use std::sync::Arc;

/// The real-time approval gate of the Docplanner clients.
pub struct RealtimeApprovals {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub engine: Arc<Engine>,
}

impl BookingGate for RealtimeApprovals {
    fn approve<'a>(&'a self, tenant: &'a Tenant, proposal: &'a Proposal<'a>) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            if proposal.through == Dialect::Docplanner {
                return Ok(true);
            }
            approve(self, tenant, proposal).await
        })
    }
}

/// The clients that approve bookings at `address` in real time.
fn approvers(clients: Vec<Credential>, address: &Address) -> Vec<Credential> {
    clients
        .into_iter()
        .filter(|c| c.config.realtime_booking && c.config.push_url.is_some())
        .filter(|c| c.config.facilities.contains(&address.facility_id))
        .collect()
}

/// `visit_booking_request` / `creating_booking` (`VisitBookingRequestNotification`).
fn request_json(p: &Proposal<'_>, tz: &jiff::tz::TimeZone, now: Timestamp, signature: &str) -> Value {
    let mut patient = patient_json(p.patient, None, None);
    if let Some(pt) = p.patient {
        patient["marketing_consent"] = json!(pt.marketing_consent);
        patient["data_privacy_consent"] = json!(pt.data_privacy_consent);
    }
    json!({
        "booking_at": format_time(now, tz),
        "booking_by": p.by.as_str(),
        "duration": p.interval.seconds() / 60,
        "start_at": format_time(p.interval.start, tz),
        "end_at": format_time(p.interval.end, tz),
        "address_service": null,
        "patient": patient,
        "signature": signature,
        "comment": p.comment.unwrap_or_default(),
        "visit_payment": false,
    })
}

/// Asks the real-time clients of the address; answers whether all approve
/// (true at once when none asked for approvals).
async fn approve(state: &RealtimeApprovals, tenant: &Tenant, p: &Proposal<'_>) -> StoreResult<bool> {
    let (tid, address) = (tenant.id, p.address.clone());
    let moving = p.moving.cloned();
    let secret = state.store.secret_key().clone();
    let found = state
        .store
        .read(move |c| {
            Box::pin(async move {
                let approvers = approvers(docplanner_queue::clients(c, tid).await?, &address);
                if approvers.is_empty() {
                    return Ok(None);
                }
                let facility = catalog::facility(c, tid, address.facility_id.get()).await?;
                let doctor = catalog::practitioner(c, tid, address.practitioner_id.get()).await?;
                let moving = match moving {
                    Some(a) => Some(view_of(c, tid, a).await?),
                    None => None,
                };
                let mut headers = Vec::new();
                for a in &approvers {
                    headers.push(push_headers(c, a, &secret).await);
                }
                Ok(Some((approvers, headers, facility, doctor, moving)))
            })
        })
        .await?;
    let Some((approvers, headers, Some(facility), Some(doctor), moving)) = found else { return Ok(true) };
    let tz = tenant.tz();
    let now = state.clock.now();
    let sig = signature();
    let mut data = serde_json::Map::new();
    data.insert("facility".into(), facility_json(&facility));
    data.insert("doctor".into(), doctor_ref(&doctor, facility.id));
    data.insert("address".into(), address_json(p.address, &[]));
    let name = match &moving {
        Some(view) => {
            data.insert("canceling_booking".into(), visit_booking_json(view, &tz, &sig));
            data.insert("creating_booking".into(), request_json(p, &tz, now, &sig));
            "booking-moving"
        }
        None => {
            data.insert("visit_booking_request".into(), request_json(p, &tz, now, &sig));
            "slot-booking"
        }
    };
    let body = json!({"name": name, "data": data, "created_at": format_time(now, &tz)}).to_string();
    for (client, headers) in approvers.iter().zip(headers) {
        let Some(url) = client.config.push_url.clone() else { continue };
        let delivery = NewDelivery {
            target_key: format!("docplanner-realtime:{}", client.id),
            event: name.to_owned(),
            channel: Channel::Http { url, headers, content_type: "application/json".into(), body: body.clone() },
            retry_schedule: Some(Vec::new()),
        };
        if !state.engine.send_now(tenant.id, delivery).await?.ok {
            return Ok(false);
        }
    }
    Ok(true)
}
