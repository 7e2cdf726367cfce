//! Solo webhook deliveries: the delivery [`Router`] that turns the core's
//! domain events (of every dialect: a Docplanner booking, an Embassy
//! cancellation, a Naboto patient) into Solo webhook calls for each of the
//! tenant's webhooks that listens to the event.
//!
//! | domain event (`EventKind`) | Solo event |
//! |---|---|
//! | `AppointmentCreated` | `appointment:scheduled` |
//! | `AppointmentMoved` (and the legacy `AppointmentRescheduled`) | `appointment:rescheduled` |
//! | `AppointmentCancelled` | `appointment:cancelled` |
//! | `AppointmentCompleted` | `appointment:completed` |
//! | `AppointmentStatusChanged` to `signed-off` from anything but `completed` (a completion told by no `AppointmentCompleted`) | `appointment:completed` |
//! | `AppointmentStatusChanged` to `no-show` | `appointment:no-show` |
//! | `AppointmentUpdated` whose video call status became `LWBS` | `appointment:lwbs` |
//! | `AppointmentUpdated` whose video call status became `incomplete` | `appointment:incompleted` |
//! | `PatientCreated` | `patient:created` |
//! | `PatientUpdated` | `patient:updated`, and `patient:deactivated` when it made the patient inactive |
//! | `EpisodeCreated`, `EpisodeUpdated` | `episode:created`, `episode:updated` |
//!
//! The payload, before encryption, is the document's schema read literally:
//! `{"event": {"type": "appointment:scheduled"}, "data": {"appointmentId": 123}}`
//! (`patientId` for patients, both integers; `episodeId`, a UUID string, for
//! episodes). It is encrypted with the webhook's `encryptionKey`
//! ([`crate::crypto`]: fresh salt and IV) when the delivery is queued, so
//! the delivery row holds only the encrypted text, and the key stays sealed
//! in its webhook row, opened in memory for the encryption only. The body
//! sent is that text alone (`Content-Type: text/plain`), what the
//! document's PHP snippet takes as `$encryptedString`. A retry sends the
//! same text again.

use crate::crypto;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::event::EventKind;
use polyclinic_delivery::Router;
use polyclinic_store::deliveries::{Channel, NewDelivery};
use polyclinic_store::outbox::StoredEvent;
use polyclinic_store::seal::SecretKey;
use polyclinic_store::solo_webhooks;
use polyclinic_store::{Conn, StoreResult};
use serde_json::{Value, json};

/// The document's twelve webhook events, in its order.
pub const EVENTS: [&str; 12] = [
    "patient:created",
    "patient:updated",
    "patient:deactivated",
    "appointment:scheduled",
    "appointment:rescheduled",
    "appointment:cancelled",
    "appointment:completed",
    "appointment:incompleted",
    "appointment:no-show",
    "appointment:lwbs",
    "episode:created",
    "episode:updated",
];

/// The content type of a webhook call: the bare encrypted text.
pub const CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The prefix of a webhook's delivery queue (`solo-webhook:{id}`).
pub const TARGET_PREFIX: &str = "solo-webhook:";

/// The queue key of a webhook's deliveries.
pub fn target_key(webhook: &str) -> String {
    format!("{TARGET_PREFIX}{webhook}")
}

fn text<'a>(data: &'a Value, field: &str) -> Option<&'a str> {
    data.get(field).and_then(Value::as_str)
}

/// The Solo events a domain event fires (none, one, or two).
pub fn solo_events(event: &StoredEvent) -> Vec<&'static str> {
    let data = &event.data;
    match event.kind {
        EventKind::AppointmentCreated => vec!["appointment:scheduled"],
        EventKind::AppointmentMoved | EventKind::AppointmentRescheduled => vec!["appointment:rescheduled"],
        EventKind::AppointmentCancelled => vec!["appointment:cancelled"],
        EventKind::AppointmentCompleted => vec!["appointment:completed"],
        // A move to `completed` or `cancelled` has its own event above.
        EventKind::AppointmentStatusChanged => match text(data, "status") {
            Some("no-show") => vec!["appointment:no-show"],
            Some("signed-off") if text(data, "previous_status") != Some("completed") => {
                vec!["appointment:completed"]
            }
            _ => Vec::new(),
        },
        EventKind::AppointmentUpdated => {
            let (now, before) = (text(data, "video_call_status"), text(data, "previous_video_call_status"));
            match now {
                Some(s) if now != before && s.eq_ignore_ascii_case("lwbs") => vec!["appointment:lwbs"],
                Some(s) if now != before && s.eq_ignore_ascii_case("incomplete") => vec!["appointment:incompleted"],
                _ => Vec::new(),
            }
        }
        EventKind::PatientCreated => vec!["patient:created"],
        EventKind::PatientUpdated => {
            let deactivated = data.get("active").and_then(Value::as_bool) == Some(false)
                && data.get("previous_active").and_then(Value::as_bool) != Some(false);
            if deactivated { vec!["patient:updated", "patient:deactivated"] } else { vec!["patient:updated"] }
        }
        EventKind::EpisodeCreated => vec!["episode:created"],
        EventKind::EpisodeUpdated => vec!["episode:updated"],
        _ => Vec::new(),
    }
}

/// The payload of Solo event `name` about `event`'s aggregate, before
/// encryption; `None` when the aggregate's id is not of the expected form.
pub fn payload(name: &str, event: &StoredEvent) -> Option<Value> {
    let id = event.aggregate_id.as_str();
    let data = if name.starts_with("appointment:") {
        json!({"appointmentId": id.parse::<i64>().ok()?})
    } else if name.starts_with("patient:") {
        json!({"patientId": id.parse::<i64>().ok()?})
    } else {
        json!({"episodeId": id})
    };
    Some(json!({"event": {"type": name}, "data": data}))
}

/// Turns domain events into encrypted Solo webhook calls.
pub struct WebhookRouter {
    key: SecretKey,
}

impl WebhookRouter {
    /// A router that opens webhook keys with the server key.
    pub fn new(key: SecretKey) -> Self {
        WebhookRouter { key }
    }
}

impl Router for WebhookRouter {
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        _now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for name in solo_events(event) {
                let Some(payload) = payload(name, event) else { continue };
                let plain = payload.to_string();
                for w in solo_webhooks::listening(conn, tenant, name).await? {
                    // A key sealed under another server key cannot be used:
                    // that webhook is skipped (logged), the others are served.
                    let Ok(key) = self.key.open(&w.sealed_key) else {
                        tracing::warn!(tenant = tenant.get(), webhook = %w.id, "solo webhook: its key cannot be opened");
                        continue;
                    };
                    out.push(NewDelivery {
                        target_key: target_key(&w.id),
                        event: name.to_owned(),
                        channel: Channel::Http {
                            url: w.endpoint.clone(),
                            headers: Vec::new(),
                            content_type: CONTENT_TYPE.to_owned(),
                            body: crypto::encrypt(&key, plain.as_bytes()),
                        },
                        retry_schedule: None,
                    });
                }
            }
            Ok(out)
        })
    }

    fn owns(&self, target_key: &str) -> bool {
        target_key.starts_with(TARGET_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, id: &str, data: Value) -> StoredEvent {
        StoredEvent { seq: 1, kind, aggregate: "appointment".into(), aggregate_id: id.into(), data, created_at: 0 }
    }

    #[test]
    fn events_map_by_kind_and_data() {
        let e = |k, d| solo_events(&ev(k, "7", d));
        assert_eq!(e(EventKind::AppointmentCreated, json!({})), ["appointment:scheduled"]);
        assert_eq!(e(EventKind::AppointmentMoved, json!({})), ["appointment:rescheduled"]);
        assert_eq!(e(EventKind::AppointmentCancelled, json!({})), ["appointment:cancelled"]);
        assert_eq!(e(EventKind::AppointmentCompleted, json!({})), ["appointment:completed"]);
        let changed = |to: &str, from: &str| json!({"status": to, "previous_status": from});
        assert_eq!(e(EventKind::AppointmentStatusChanged, changed("no-show", "booked")), ["appointment:no-show"]);
        assert!(e(EventKind::AppointmentStatusChanged, changed("completed", "booked")).is_empty());
        assert!(e(EventKind::AppointmentStatusChanged, changed("cancelled", "booked")).is_empty());
        assert!(e(EventKind::AppointmentStatusChanged, changed("signed-off", "completed")).is_empty());
        assert_eq!(
            e(EventKind::AppointmentStatusChanged, changed("signed-off", "exam-in-progress")),
            ["appointment:completed"]
        );
        let video = |to: &str, from: Value| json!({"video_call_status": to, "previous_video_call_status": from});
        assert_eq!(e(EventKind::AppointmentUpdated, video("LWBS", json!("waiting"))), ["appointment:lwbs"]);
        assert_eq!(e(EventKind::AppointmentUpdated, video("incomplete", Value::Null)), ["appointment:incompleted"]);
        assert!(e(EventKind::AppointmentUpdated, video("LWBS", json!("LWBS"))).is_empty());
        assert!(e(EventKind::AppointmentUpdated, json!({})).is_empty());
        assert_eq!(e(EventKind::PatientCreated, json!({})), ["patient:created"]);
        assert_eq!(e(EventKind::PatientUpdated, json!({"active": true, "previous_active": true})), ["patient:updated"]);
        assert_eq!(
            e(EventKind::PatientUpdated, json!({"active": false, "previous_active": true})),
            ["patient:updated", "patient:deactivated"]
        );
        assert_eq!(
            e(EventKind::PatientUpdated, json!({"active": false, "previous_active": false})),
            ["patient:updated"]
        );
        assert_eq!(e(EventKind::EpisodeCreated, json!({})), ["episode:created"]);
        assert_eq!(e(EventKind::EpisodeUpdated, json!({})), ["episode:updated"]);
        assert!(e(EventKind::BreakCreated, json!({})).is_empty());
        // Every name routed is one of the document's twelve.
        for kind in EventKind::ALL {
            for name in e(kind, json!({"status": "no-show", "active": false, "video_call_status": "LWBS"})) {
                assert!(EVENTS.contains(&name), "{name}");
            }
        }
    }

    #[test]
    fn payloads_follow_the_documents_schemas() {
        assert_eq!(
            payload("appointment:scheduled", &ev(EventKind::AppointmentCreated, "123", json!({}))),
            Some(json!({"event": {"type": "appointment:scheduled"}, "data": {"appointmentId": 123}}))
        );
        assert_eq!(
            payload("patient:created", &ev(EventKind::PatientCreated, "45", json!({}))),
            Some(json!({"event": {"type": "patient:created"}, "data": {"patientId": 45}}))
        );
        let uuid = "b20be9ce-eb93-48be-ad56-271ec4b2973c";
        assert_eq!(
            payload("episode:created", &ev(EventKind::EpisodeCreated, uuid, json!({}))),
            Some(json!({"event": {"type": "episode:created"}, "data": {"episodeId": uuid}}))
        );
        assert_eq!(payload("patient:created", &ev(EventKind::PatientCreated, "x", json!({}))), None);
    }
}
