//! Patient messaging: the e-mails and text messages a patient (and, when it
//! asks for them, the practitioner) gets about an appointment, whichever
//! dialect booked it. It is one delivery target of the engine
//! ([`PatientMessages`], a [`Router`]), registered by the server next to the
//! dialects' own targets, and it hears the core's events ([`EventKind`]),
//! never a dialect's vocabulary.
//!
//! | cause | message (`kind`) | when |
//! |---|---|---|
//! | `AppointmentCreated` | `appointment-confirmed` | at once |
//! | `AppointmentMoved` | `appointment-postponed`; the reminder and check-in re-armed for the new start | at once |
//! | `AppointmentCancelled` | `appointment-cancelled`; the reminder and check-in disarmed | at once |
//! | job `appointment-reminder` | `appointment-reminder` | 24 h before the start |
//! | job `check-in-invitation` | `check-in-invitation` | 15 min before the start |
//! | `OpinionRequested` (Docplanner `PUT …/opinion-request`) | a text message asking for an opinion of the visit | at once |
//!
//! Which appointments: those booked through Naboto always; those of every
//! other dialect when the tenant's `patient_messages` setting is on. The
//! channel: e-mail or SMS, whichever contact point the patient has; when it
//! has both, the tenant's `message_channel` (default e-mail). A patient with
//! neither gets nothing. Each message is recorded once per appointment,
//! kind, occasion and recipient (`store::messages`), in the transaction
//! that dispatches its cause or runs its job, so it goes out once however
//! often that cause is seen. Texts come from [`templates`], in the tenant's
//! language.
//!
//! Timed messages are jobs (`store::jobs`), armed when an appointment is
//! booked or moved and run by the engine when due ([`Router::run_job`]), on
//! the injected clock.

pub mod templates;

use futures_util::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::TenantId;
use polyclinic_core::appointment::{Appointment, ParticipantWho};
use polyclinic_core::delay::{self, Visit};
use polyclinic_core::event::EventKind;
use polyclinic_core::tenant::{Dialect, MessageChannel, Tenant};
use polyclinic_delivery::Router;
use polyclinic_store::deliveries::{Channel, Delivery, NewDelivery};
use polyclinic_store::jobs::{self, Job};
use polyclinic_store::messages::{self, NewMessage};
use polyclinic_store::outbox::{StoredEvent, id_in};
use polyclinic_store::seal::SecretKey;
use polyclinic_store::{Conn, StoreResult, appointments, catalog, estimates, patients, tenants};
use serde_json::{Value, json};
use templates::{Fields, Templates};

/// The queue key prefix of patient messages.
const TARGET: &str = "patient-message:";
/// The timed messages, and how long before the start each goes out.
const TIMED: [(&str, i64); 2] = [("appointment-reminder", 24 * 60), ("check-in-invitation", 15)];

/// The patient messaging service, as a delivery target.
pub struct PatientMessages {
    /// Seals the recorded messages.
    key: SecretKey,
    /// `http://host:port`: the base of join links.
    public_url: String,
    templates: Templates,
}

impl PatientMessages {
    /// The service, sealing its records with `key`, linking video calls
    /// under `public_url`, writing with `templates`.
    pub fn new(key: SecretKey, public_url: &str, templates: Templates) -> Self {
        PatientMessages { key, public_url: public_url.trim_end_matches('/').to_owned(), templates }
    }
}

impl Router for PatientMessages {
    fn route<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        event: &'a StoredEvent,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            let kind = match event.kind {
                EventKind::OpinionRequested => return opinion_request(conn, tenant, event).await,
                EventKind::AppointmentCreated => "appointment-confirmed",
                EventKind::AppointmentMoved => "appointment-postponed",
                EventKind::AppointmentCancelled => "appointment-cancelled",
                _ => return Ok(Vec::new()),
            };
            let Some(id) = id_in(&event.data, "appointment_id").or_else(|| event.aggregate_id.parse().ok()) else {
                return Ok(Vec::new());
            };
            let t = tenants::get(conn, tenant).await?;
            // Most tenants' appointments get no messages: known without
            // reading the appointment (the event names its origin).
            let naboto = event.data.get("origin").and_then(Value::as_str) == Some(Dialect::Naboto.as_str());
            if !naboto && !t.settings.patient_messages {
                return Ok(Vec::new());
            }
            let Some(a) = appointments::get(conn, tenant, polyclinic_core::AppointmentId(id)).await? else {
                return Ok(Vec::new());
            };
            if !wanted(&t, &a) {
                return Ok(Vec::new());
            }
            // A Docplanner move replaced an appointment: its jobs go.
            if let Some(old) = id_in(&event.data, "moved_from") {
                disarm(conn, tenant, old).await?;
            }
            let occasion = match event.kind {
                EventKind::AppointmentMoved => a.interval.start.to_string(),
                _ => String::new(),
            };
            if event.kind == EventKind::AppointmentCancelled {
                disarm(conn, tenant, a.id.get()).await?;
            } else {
                // Armed as of the change, not of its dispatch: a reminder
                // whose instant came after the booking is still owed.
                let changed = Timestamp::from_second(event.created_at).unwrap_or(now);
                arm(conn, tenant, &a, changed).await?;
                if a.digital {
                    arm_estimate(conn, &t, a.interval.start, changed).await?;
                }
            }
            self.send(conn, &t, &a, kind, occasion, a.interval.start, now).await
        })
    }

    fn job_kinds(&self) -> &'static [&'static str] {
        &["appointment-reminder", "check-in-invitation", ESTIMATE]
    }

    fn run_job<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        job: &'a Job,
        now: Timestamp,
    ) -> BoxFuture<'a, StoreResult<Vec<NewDelivery>>> {
        Box::pin(async move {
            let t = tenants::get(conn, tenant).await?;
            if job.kind == ESTIMATE {
                return self.estimate(conn, &t, job, now).await;
            }
            self.run(conn, &t, job, now).await
        })
    }

    fn on_outcomes<'a>(
        &'a self,
        conn: &'a mut Conn,
        tenant: TenantId,
        outcomes: &'a [(&'a Delivery, &'static str)],
    ) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            for (delivery, state) in outcomes {
                let Some(id) = delivery.target_key.strip_prefix(TARGET).and_then(|v| v.parse::<i64>().ok()) else {
                    continue;
                };
                match *state {
                    "delivered" => messages::set_status(conn, tenant, id, "sent").await?,
                    "dead" => messages::set_status(conn, tenant, id, "failed").await?,
                    _ => {}
                }
            }
            Ok(())
        })
    }

    fn owns(&self, target_key: &str) -> bool {
        target_key.starts_with(TARGET)
    }
}

/// Whether `a`'s patient gets messages: Naboto's always, every other
/// dialect's when the tenant turned them on.
fn wanted(t: &Tenant, a: &Appointment) -> bool {
    a.origin == Dialect::Naboto || t.settings.patient_messages
}

/// Arms `a`'s timed messages for its start (those whose instant comes after
/// `changed`, when it was booked or moved), or disarms them when it holds no
/// time.
async fn arm(conn: &mut Conn, tenant: TenantId, a: &Appointment, changed: Timestamp) -> StoreResult<()> {
    for (kind, minutes) in TIMED {
        let at = a.interval.start.checked_sub(SignedDuration::from_mins(minutes)).ok();
        match at.filter(|at| *at > changed && a.status.occupies_time()) {
            Some(at) => {
                let data = json!({"start": a.interval.start.to_string()});
                jobs::arm(conn, tenant, kind, &a.id.to_string(), at, &data).await?
            }
            None => jobs::disarm(conn, tenant, kind, &a.id.to_string()).await?,
        }
    }
    Ok(())
}

/// The job kind of the delay estimation of one day of a tenant (subject:
/// the date, in the tenant's zone).
const ESTIMATE: &str = "delay-estimate";
/// How often a day's estimate is made again while its visits go on.
const ESTIMATE_EVERY_MINUTES: i64 = 5;

/// Arms the delay estimation of the day of `start` (in the tenant's zone),
/// from the start of that day, or at once when the day has begun.
async fn arm_estimate(conn: &mut Conn, t: &Tenant, start: Timestamp, changed: Timestamp) -> StoreResult<()> {
    let day = start.to_zoned(t.tz()).date();
    let Ok(day_start) = day.to_zoned(t.tz()).map(|z| z.timestamp()) else { return Ok(()) };
    let due = day_start.max(changed);
    // An earlier run armed for sooner stays.
    let existing = jobs::due_of(conn, t.id, ESTIMATE, &day.to_string()).await?;
    if existing.is_some_and(|e| e <= due) {
        return Ok(());
    }
    jobs::arm(conn, t.id, ESTIMATE, &day.to_string(), due, &json!({})).await
}

/// Disarms appointment `id`'s timed messages.
async fn disarm(conn: &mut Conn, tenant: TenantId, id: i64) -> StoreResult<()> {
    for (kind, _) in TIMED {
        jobs::disarm(conn, tenant, kind, &id.to_string()).await?;
    }
    Ok(())
}

impl PatientMessages {
    /// Runs a due timed message: sent when its appointment still holds the
    /// start it was armed for.
    async fn run(&self, conn: &mut Conn, t: &Tenant, job: &Job, now: Timestamp) -> StoreResult<Vec<NewDelivery>> {
        let Some(kind) = TIMED.iter().map(|(k, _)| *k).find(|k| *k == job.kind) else { return Ok(Vec::new()) };
        let Ok(id) = job.subject.parse::<i64>() else { return Ok(Vec::new()) };
        let Some(a) = appointments::get(conn, t.id, polyclinic_core::AppointmentId(id)).await? else {
            return Ok(Vec::new());
        };
        let start = a.interval.start.to_string();
        // Sent while it can still help: before the visit starts, for the
        // start it was armed for, of a visit that still takes place.
        // (A late visit's check-in follows its expected start.)
        let armed_for = job.data.get("start").and_then(Value::as_str) == Some(start.as_str());
        let begins = estimates::get(conn, t.id, a.id).await?.unwrap_or(a.interval.start);
        if !a.status.occupies_time() || !armed_for || now > begins || !wanted(t, &a) {
            return Ok(Vec::new());
        }
        self.send(conn, t, &a, kind, start, begins, now).await
    }

    /// The delay estimation of one day (`job.subject`): every video visit
    /// of the day yet to begin gets its expected start from its
    /// practitioner's earlier visits (`core::delay`); one expected later
    /// than the tenant's `delay_notice_minutes` gets a delay notice (once),
    /// and its check-in invitation follows the expected start. While visits
    /// of the day go on, the estimate is made again every five minutes.
    async fn estimate(&self, conn: &mut Conn, t: &Tenant, job: &Job, now: Timestamp) -> StoreResult<Vec<NewDelivery>> {
        let Ok(day) = job.subject.parse::<jiff::civil::Date>() else { return Ok(Vec::new()) };
        let tz = t.tz();
        let (Ok(from), Ok(to)) = (day.to_zoned(tz.clone()), day.tomorrow().and_then(|d| d.to_zoned(tz.clone()))) else {
            return Ok(Vec::new());
        };
        let (from, to) = (from.timestamp(), to.timestamp());
        let search = appointments::Search { from: Some(from), to: Some(to), limit: 1000, ..Default::default() };
        let (all, _) = appointments::search(conn, t.id, &search).await?;
        let mut by_practitioner: std::collections::BTreeMap<i64, Vec<Visit>> = std::collections::BTreeMap::new();
        for a in all.iter().filter(|a| a.digital) {
            if let Some(p) = a.primary_performer().or_else(|| a.practitioners().next()) {
                by_practitioner.entry(p.get()).or_default().push(Visit {
                    id: a.id,
                    interval: a.interval,
                    status: a.status,
                });
            }
        }
        let threshold = SignedDuration::from_mins(t.settings.delay_notice_minutes);
        let mut out = Vec::new();
        let mut going_on = false;
        for visits in by_practitioner.values() {
            for (id, expected) in delay::expected_starts(visits, now) {
                let Some(a) = all.iter().find(|a| a.id == id) else { continue };
                going_on = true;
                let late = expected.duration_since(a.interval.start);
                estimates::set(conn, t.id, id, (late > SignedDuration::ZERO).then_some(expected)).await?;
                if late > threshold && wanted(t, a) {
                    out.extend(self.send(conn, t, a, "delay-notice", String::new(), expected, now).await?);
                    // The check-in invitation follows the expected start.
                    if let Ok(at) = expected.checked_sub(SignedDuration::from_mins(15)) {
                        let data = json!({"start": a.interval.start.to_string()});
                        jobs::arm(conn, t.id, "check-in-invitation", &a.id.to_string(), at.max(now), &data).await?;
                    }
                }
            }
            going_on |= visits.iter().any(|v| v.status.occupies_time() && v.interval.end > now);
        }
        if going_on
            && let Ok(next) = now.checked_add(SignedDuration::from_mins(ESTIMATE_EVERY_MINUTES))
            && next < to
        {
            jobs::arm(conn, t.id, ESTIMATE, &job.subject, next, &json!({})).await?;
        }
        Ok(out)
    }

    /// The message `kind` about `a` to its patient (and practitioner, when
    /// it asked), recorded once per `occasion`, showing the visit's start as
    /// `shown` (its expected start, for a delay notice).
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        conn: &mut Conn,
        t: &Tenant,
        a: &Appointment,
        kind: &'static str,
        occasion: String,
        shown: Timestamp,
        now: Timestamp,
    ) -> StoreResult<Vec<NewDelivery>> {
        let patient = match a.patient() {
            Some(p) => patients::get(conn, t.id, p).await?,
            None => None,
        };
        let performer = a.primary_performer().or_else(|| a.practitioners().next());
        let practitioner = match performer {
            Some(p) => catalog::practitioner(conn, t.id, p.get()).await?,
            None => None,
        };
        let tz = t.tz();
        let start = shown.to_zoned(tz);
        let mut fields = Fields {
            patient: patient.as_ref().and_then(|p| p.full_name()).unwrap_or_default(),
            practitioner: practitioner.as_ref().map(|p| format!("{} {}", p.given, p.family)).unwrap_or_default(),
            clinic: t.name.clone(),
            date: start.strftime("%Y-%m-%d").to_string(),
            time: start.strftime("%H:%M").to_string(),
            join: None,
        };
        let key_of = |who: &dyn Fn(&ParticipantWho) -> bool| {
            a.participants.iter().find(|p| who(&p.who)).and_then(|p| p.video.clone())
        };
        let mut out = Vec::new();
        if let Some(p) = &patient {
            let (email, mobile) = (p.email().map(str::to_owned), p.mobile().map(str::to_owned));
            let channel = match (email, mobile) {
                (Some(e), Some(_)) if t.settings.message_channel == MessageChannel::Email => Some(("email", e)),
                (Some(_), Some(m)) | (None, Some(m)) => Some(("sms", m)),
                (Some(e), None) => Some(("email", e)),
                (None, None) => None,
            };
            if let Some((channel, to)) = channel {
                let pid = p.id;
                fields.join = a
                    .digital
                    .then(|| key_of(&|w| matches!(w, ParticipantWho::Patient(id) if Some(*id) == pid)))
                    .flatten()
                    .map(|k| format!("{}{}", self.public_url, k.join_path(t.id, a.id)));
                out.extend(self.one(conn, t, a, kind, &occasion, "patient".into(), channel, to, &fields, now).await?);
            }
        }
        if let Some(pr) = practitioner.filter(|p| p.appointment_messages)
            && let Some(email) = &pr.email
        {
            fields.join = a
                .digital
                .then(|| key_of(&|w| matches!(w, ParticipantWho::Practitioner(id) if *id == pr.id)))
                .flatten()
                .map(|k| format!("{}{}", self.public_url, k.join_path(t.id, a.id)));
            let recipient = format!("practitioner:{}", pr.id);
            let to = email.as_str().to_owned();
            out.extend(self.one(conn, t, a, kind, &occasion, recipient, "email", to, &fields, now).await?);
        }
        Ok(out)
    }

    /// Records one message and makes its delivery; nothing when it was
    /// recorded before.
    #[allow(clippy::too_many_arguments)]
    async fn one(
        &self,
        conn: &mut Conn,
        t: &Tenant,
        a: &Appointment,
        kind: &'static str,
        occasion: &str,
        recipient: String,
        channel: &'static str,
        to: String,
        fields: &Fields,
        now: Timestamp,
    ) -> StoreResult<Option<NewDelivery>> {
        let Some(text) = self.templates.render(&t.language, kind, fields) else { return Ok(None) };
        let m = NewMessage {
            channel,
            to: to.clone(),
            kind,
            appointment_id: a.id.get(),
            occasion: occasion.to_owned(),
            recipient,
            subject: text.subject.clone(),
            body: text.body.clone(),
        };
        let Some(id) = messages::record(conn, t.id, &self.key, &m, now).await? else { return Ok(None) };
        let channel = if channel == "email" {
            Channel::Email { to, subject: text.subject, body: text.body }
        } else {
            Channel::Sms { to, body: text.body }
        };
        Ok(Some(NewDelivery { target_key: format!("{TARGET}{id}"), event: kind.into(), channel, retry_schedule: None }))
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
