//! Embassy notifications: the subscription topics, the notification bundles
//! (handshake, heartbeat, event-notification, query-status, query-event), and
//! the delivery [`Router`] that turns domain events into notifications for
//! every listening subscription of the tenant.

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use polyclinic_core::TenantId;
use polyclinic_core::event::EventKind;
use polyclinic_delivery::Router;
use polyclinic_fhir::Format;
use polyclinic_store::deliveries::{Channel, Delivery, NewDelivery};
use polyclinic_store::jobs::Job;
use polyclinic_store::outbox::StoredEvent;
use polyclinic_store::subscriptions::{self, NotifiedEvent, Subscription};
use polyclinic_store::{Conn, StoreResult};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};

/// The topics: number, title, and the resource type its focus points at.
pub const TOPICS: [(i64, &str, &str); 5] = [
    (1, "AppointmentCreated", "Appointment"),
    (2, "AppointmentCancelled", "Appointment"),
    (3, "AppointmentUpdated", "Appointment"),
    (4, "AppointmentCompleted", "Appointment"),
    (5, "MessageConversationCreated", "CommunicationRequest"),
];

/// The topic a domain event fires. A change of time (`AppointmentMoved`) is
/// an `AppointmentUpdated`, whichever dialect made it.
pub fn topic_of(kind: EventKind) -> Option<i64> {
    Some(match kind {
        EventKind::AppointmentCreated => 1,
        EventKind::AppointmentCancelled => 2,
        EventKind::AppointmentUpdated | EventKind::AppointmentMoved => 3,
        EventKind::AppointmentCompleted => 4,
        EventKind::ConversationCreated => 5,
        _ => return None,
    })
}

/// Title of a topic number.
pub fn topic_title(topic: i64) -> Option<&'static str> {
    TOPICS.iter().find(|t| t.0 == topic).map(|t| t.1)
}

/// The SubscriptionTopic resource of a topic number.
pub fn topic_resource(base: &str, topic: i64) -> Option<Value> {
    let (n, title, resource) = TOPICS.iter().find(|t| t.0 == topic)?;
    Some(json!({
        "resourceType": "SubscriptionTopic",
        "id": n.to_string(),
        "url": format!("{base}/SubscriptionTopic/{n}"),
        "title": title,
        "status": "active",
        "description": format!("Notifies when the event {title} happens to a {resource}."),
        "resourceTrigger": [{"resource": resource}]
    }))
}

/// The queue key of a subscription's deliveries.
pub fn target_key(subscription: i64) -> String {
    format!("embassy-subscription:{subscription}")
}

/// A SubscriptionStatus of `kind` for `s`.
pub fn status_resource(base: &str, s: &Subscription, kind: &str, events: &[NotifiedEvent], content: &str) -> Value {
    let mut status = json!({
        "resourceType": "SubscriptionStatus",
        "status": s.status,
        "type": kind,
        "eventsSinceSubscriptionStart": s.events_since_start.to_string(),
    });
    if !events.is_empty() {
        status["notificationEvent"] = Value::Array(
            events
                .iter()
                .map(|e| {
                    let mut ne = json!({"eventNumber": e.number.to_string(), "timestamp": e.at.to_string()});
                    if content != "empty" {
                        ne["focus"] = json!({"reference": e.focus});
                    }
                    ne
                })
                .collect(),
        );
    }
    status["subscription"] = json!({"reference": format!("{base}/Subscription/{}", s.id)});
    status["topic"] = json!(format!("{base}/SubscriptionTopic/{}", s.topic));
    if s.error_count > 0 && s.status == "error" {
        status["error"] = json!([{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/subscription-error",
            "code": "no-response",
            "display": "No Response"
        }]}]);
    }
    status
}

/// A `history` Bundle around a SubscriptionStatus, as notifications are sent.
pub fn notification_bundle(
    base: &str,
    s: &Subscription,
    kind: &str,
    events: &[NotifiedEvent],
    now: Timestamp,
) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": now.to_string(),
        "entry": [{
            "resource": status_resource(base, s, kind, events, "id-only"),
            "request": {"method": "GET", "url": format!("{base}/Subscription/{}/$status", s.id)},
            "response": {"status": "200"}
        }]
    })
}

/// The delivery that carries `bundle` to the subscription's endpoint.
pub fn delivery_for(s: &Subscription, event: &str, bundle: &Value) -> NewDelivery {
    let format = Format::from_media_type(&s.payload).unwrap_or(Format::Json);
    let body = format.render(bundle);
    let channel = if s.channel_type == "email" {
        Channel::Email {
            to: s.endpoint.trim_start_matches("mailto:").to_owned(),
            subject: format!("Subscription {} notification: {event}", s.id),
            body,
        }
    } else {
        Channel::Http {
            url: s.endpoint.clone(),
            headers: s.headers.clone(),
            content_type: match format {
                Format::Json => "application/fhir+json".into(),
                Format::Xml => "application/fhir+xml".into(),
            },
            body,
        }
    };
    NewDelivery { target_key: target_key(s.id), event: event.to_owned(), channel, retry_schedule: None }
}

/// Turns domain events into Embassy notifications.
pub struct SubscriptionRouter {
    /// `https://host/embassy`: the base of full resource URLs.
    pub base: String,
}

impl Router for SubscriptionRouter {
    /// A run of events in few statements: each topic's listening
    /// subscriptions read once, each subscription's events numbered in one
    /// statement, then one notification per event and subscription, in
    /// event order.
    fn route_all<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        events: &'a [StoredEvent],
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<(i64, NewDelivery)>>> {
        Box::pin(async move {
            let mut listening: HashMap<i64, Vec<Subscription>> = HashMap::new();
            // Each event that fires a topic: its topic, title and foci.
            let mut fired = Vec::new();
            for event in events {
                let Some((topic, title, resource)) =
                    topic_of(event.kind).and_then(|n| TOPICS.iter().find(|t| t.0 == n))
                else {
                    continue;
                };
                // A Docplanner move replaced the booking with a new one: both
                // are the update's focus, the one moved away (now cancelled)
                // first.
                let mut foci = Vec::with_capacity(2);
                if event.kind == EventKind::AppointmentMoved
                    && let Some(from) = event.data.get("moved_from").and_then(Value::as_str)
                {
                    foci.push(format!("{}/{resource}/{from}", self.base));
                }
                foci.push(format!("{}/{resource}/{}", self.base, event.aggregate_id));
                if !listening.contains_key(topic) {
                    listening.insert(*topic, subscriptions::listening(conn, tenant, *topic).await?);
                }
                fired.push((event.seq, *topic, *title, foci));
            }
            // Each subscription's events, numbered in the order they fired.
            let mut numbered: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
            for (seq, topic, _, foci) in &fired {
                for s in listening.get(topic).into_iter().flatten() {
                    numbered.entry(s.id).or_default().extend(foci.iter().map(|f| (*seq, f.clone())));
                }
            }
            let mut next = HashMap::with_capacity(numbered.len());
            for (id, rows) in &numbered {
                next.insert(*id, subscriptions::record_events(conn, tenant, *id, rows, now).await?);
            }
            let mut out = Vec::new();
            for (seq, topic, title, foci) in &fired {
                for s in listening.get(topic).into_iter().flatten() {
                    let Some(number) = next.get_mut(&s.id) else { continue };
                    let notified: Vec<NotifiedEvent> = foci
                        .iter()
                        .map(|focus| {
                            *number += 1;
                            NotifiedEvent { number: *number - 1, focus: focus.clone(), at: now }
                        })
                        .collect();
                    let mut s = s.clone();
                    s.events_since_start = *number - 1;
                    let bundle = notification_bundle(&self.base, &s, "event-notification", &notified, now);
                    out.push((*seq, delivery_for(&s, title, &bundle)));
                }
            }
            Ok(out)
        })
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &[subscriptions::HEARTBEAT_JOB]
    }

    /// A subscription's heartbeat, when it is due (a notification since the
    /// job was armed moved it on: then the job is armed again for then).
    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        job: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            let Ok(id) = job.subject.parse::<i64>() else { return Ok(Vec::new()) };
            let Some(s) = subscriptions::heartbeat_due_one(conn, tenant, id, now).await? else {
                subscriptions::arm_heartbeat(conn, tenant, id).await?;
                return Ok(Vec::new());
            };
            // Touching arms the next heartbeat.
            subscriptions::touch(conn, tenant, s.id, now).await?;
            let bundle = notification_bundle(&self.base, &s, "heartbeat", &[], now);
            Ok(vec![delivery_for(&s, "heartbeat", &bundle)])
        })
    }

    /// A subscription hears how its notifications went: a delivery brings
    /// it back from `error`, each failure counts an error. A run of
    /// deliveries is one note: the state it leaves is the same.
    fn on_outcomes<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        outcomes: &'a [(&'a Delivery, &'static str)],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let mut last: Option<(i64, bool)> = None;
            for (delivery, state) in outcomes {
                let Some(id) = delivery.target_key.strip_prefix("embassy-subscription:").and_then(|v| v.parse().ok())
                else {
                    continue;
                };
                let delivered = match *state {
                    "delivered" => true,
                    "failed" | "dead" => false,
                    _ => continue,
                };
                if delivered && last == Some((id, true)) {
                    continue;
                }
                subscriptions::note_delivery(conn, tenant, id, delivered).await?;
                last = Some((id, delivered));
            }
            Ok(())
        })
    }

    fn owns(&self, target_key: &str) -> bool {
        target_key.starts_with("embassy-subscription:")
    }
}
