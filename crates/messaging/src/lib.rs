//! Patient messaging: the e-mails and text messages a patient gets about an
//! appointment, whichever dialect booked it. It is one delivery target of
//! the engine ([`PatientMessages`], a [`Router`]), registered by the server
//! next to the dialects' own targets, and it hears the core's events
//! ([`EventKind`]), never a dialect's vocabulary.
//!
//! Messages today:
//!
//! | event | message |
//! |---|---|
//! | `OpinionRequested` (Docplanner `PUT …/opinion-request`) | a text message to the phone given, asking for an opinion of the visit |

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::event::EventKind;
use polyclinic_delivery::Router;
use polyclinic_store::deliveries::{Channel, NewDelivery};
use polyclinic_store::outbox::{StoredEvent, id_in};
use polyclinic_store::{Conn, StoreResult, catalog, tenants};
use serde_json::Value;

/// The queue key prefix of patient messages.
const TARGET: &str = "patient-message:";

/// The patient messaging service, as a delivery target.
#[derive(Debug, Default)]
pub struct PatientMessages;

impl Router for PatientMessages {
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        _now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            match event.kind {
                EventKind::OpinionRequested => opinion_request(conn, tenant, event).await,
                _ => Ok(Vec::new()),
            }
        })
    }

    fn owns(&self, target_key: &str) -> bool {
        target_key.starts_with(TARGET)
    }
}

/// The text message of an opinion request: to the phone given, naming the
/// doctor and the day of the visit (in the tenant's time zone).
async fn opinion_request(conn: &mut Conn, tenant: TenantId, event: &StoredEvent) -> StoreResult<Vec<NewDelivery>> {
    let Some(phone) = event.data.get("phone").and_then(Value::as_str) else { return Ok(Vec::new()) };
    let doctor = match id_in(&event.data, "practitioner_id") {
        Some(id) => catalog::practitioner(conn, tenant, id).await?,
        None => None,
    };
    let tz = tenants::get(conn, tenant).await?.tz();
    let day = event
        .data
        .get("start")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.to_zoned(tz).date().to_string());
    let who = doctor.map(|d| format!("{} {}", d.given, d.family)).unwrap_or_else(|| "Your doctor".into());
    let when = day.map(|d| format!(" on {d}")).unwrap_or_default();
    Ok(vec![NewDelivery {
        target_key: format!("{TARGET}opinion-request:{}", event.aggregate_id),
        event: "opinion-request".into(),
        channel: Channel::Sms {
            to: phone.to_owned(),
            body: format!(
                "{who} would like to hear how your visit{when} went. Reply to this message to share your opinion."
            ),
        },
        retry_schedule: None,
    }])
}
