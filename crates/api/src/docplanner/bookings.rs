//! Docplanner bookings: list, get, cancel, move, confirm, patient presence,
//! opinion request; and how a booking is shown (API and notifications).

use super::address_services::{address_service_json, address_service_notification_json};
use super::format_time;
use crate::AppState;
use axum::Router;
use polyclinic_core::appointment::{Appointment, Presence};
use polyclinic_core::facility::{AddressService, InsuranceProvider};
use polyclinic_core::patient::{ContactSystem, Gender, Patient, pick_name, preferred_contact, systems};
use polyclinic_core::{AppointmentId, TenantId};
use polyclinic_store::catalog::{self, Table};
use polyclinic_store::{Conn, StoreResult, appointments, patients};
use serde_json::{Value, json};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
}

/// A booking with what it is shown with.
#[derive(Debug, Clone)]
pub struct BookingView {
    pub appointment: Appointment,
    pub patient: Option<Patient>,
    pub address_service: Option<AddressService>,
    pub insurance: Option<InsuranceProvider>,
}

/// Loads a booking and what it is shown with; `None` when there is no such
/// appointment.
pub async fn load_view(conn: &mut Conn, tenant: TenantId, id: AppointmentId) -> StoreResult<Option<BookingView>> {
    let Some(appointment) = appointments::get(conn, tenant, id).await? else { return Ok(None) };
    view_of(conn, tenant, appointment).await.map(Some)
}

/// The view of an appointment already read.
pub async fn view_of(conn: &mut Conn, tenant: TenantId, appointment: Appointment) -> StoreResult<BookingView> {
    let patient = match appointment.patient() {
        Some(p) => patients::get(conn, tenant, p).await?,
        None => None,
    };
    let address_service = match appointment.address_service_id {
        Some(s) => catalog::get(conn, Table::AddressServices, tenant, s.get()).await?,
        None => None,
    };
    let insurance = match &appointment.insurance {
        Some(i) => catalog::get(conn, Table::InsuranceProviders, catalog::SHARED, i.provider_id.get()).await?,
        None => None,
    };
    Ok(BookingView { appointment, patient, address_service, insurance })
}

/// The patient as bookings show it (`BookingPatient` / `Patient`).
pub fn patient_json(p: Option<&Patient>, is_returning: Option<bool>, insurance_number: Option<&str>) -> Value {
    let Some(p) = p else {
        return json!({"name": "", "surname": "", "email": null, "phone": null, "birth_date": null, "nin": null,
            "gender": null, "is_returning": is_returning.unwrap_or(false), "insurance_number": insurance_number});
    };
    let name = pick_name(&p.names);
    let nin = p.identifiers.iter().find(|i| i.system.starts_with(systems::NATIONAL_ID_PREFIX)).map(|i| &i.value);
    json!({
        "name": name.map(|n| n.given.join(" ")).unwrap_or_default(),
        "surname": name.and_then(|n| n.family.clone()).unwrap_or_default(),
        "email": preferred_contact(&p.telecom, ContactSystem::Email).map(|c| &c.value),
        "phone": preferred_contact(&p.telecom, ContactSystem::Phone)
            .or_else(|| preferred_contact(&p.telecom, ContactSystem::Sms))
            .map(|c| &c.value),
        "birth_date": p.birth_date.map(|d| d.to_string()),
        "nin": nin,
        "gender": match p.gender {
            Some(Gender::Male) => json!("m"),
            Some(Gender::Female) => json!("f"),
            _ => Value::Null,
        },
        "is_returning": is_returning.unwrap_or(false),
        "insurance_number": insurance_number,
    })
}

fn insurance_json(v: &BookingView) -> Value {
    match (&v.appointment.insurance, &v.insurance) {
        (Some(i), Some(p)) => {
            let plan = i.plan_id.and_then(|id| p.plans.iter().find(|pl| pl.id == id));
            json!({"id": p.id.to_string(), "name": p.name, "plan": plan.map(|pl| &pl.name),
                "plan_id": i.plan_id.map(|id| id.to_string())})
        }
        _ => Value::Null,
    }
}

/// The fields the API and notifications share.
fn common(v: &BookingView, tz: &jiff::tz::TimeZone) -> Value {
    let a = &v.appointment;
    json!({
        "id": a.id.to_string(),
        "status": a.status.docplanner(),
        "start_at": format_time(a.interval.start, tz),
        "end_at": format_time(a.interval.end, tz),
        "duration": a.duration_minutes(),
        "booked_by": a.booked_by.kind.as_str(),
        "canceled_by": a.canceled_by.as_ref().map(|c| c.kind.as_str()).unwrap_or(""),
        "booked_at": format_time(a.booked_at, tz),
        "canceled_at": a.canceled_at.map(|t| format_time(t, tz)),
    })
}

/// A booking as the API shows it (`Booking`), with the scopes asked for
/// (`booking.patient`, `booking.address_service`, `booking.presence`,
/// `booking.moving`).
pub fn booking_json(v: &BookingView, tz: &jiff::tz::TimeZone, scopes: &[String]) -> Value {
    let has = |x: &str| scopes.iter().any(|s| s == x);
    let a = &v.appointment;
    let mut out = common(v, tz);
    let number = a.insurance.as_ref().and_then(|i| i.number.as_deref());
    if has("booking.patient") {
        out["patient"] = patient_json(v.patient.as_ref(), a.is_returning, number);
    }
    if has("booking.address_service") {
        out["address_service"] = v.address_service.as_ref().map(|s| address_service_json(s, scopes)).into();
    }
    if has("booking.presence") {
        out["presence"] = match a.presence {
            Some(Presence::Present) => json!("present"),
            Some(Presence::Absent) => json!("absent"),
            None => Value::Null,
        };
    }
    if has("booking.moving") {
        out["moving"] = if a.moved_from.is_some() || a.moved_to.is_some() {
            json!({"origin_booking_id": a.moved_from.unwrap_or(a.id).to_string(),
                   "newest_booking_id": a.moved_to.unwrap_or(a.id).to_string()})
        } else {
            Value::Null
        };
    }
    out["comment"] = json!(a.comment);
    out["insurance"] = insurance_json(v);
    out["visit_payment"] = json!(false);
    out["visit_payment_status"] = Value::Null;
    out["videocall_url"] = Value::Null;
    out
}

/// A booking as notifications show it (`BookingNotification`): always with
/// the patient and the address service; `signature` identifies this
/// notification.
pub fn visit_booking_json(v: &BookingView, tz: &jiff::tz::TimeZone, signature: &str) -> Value {
    let a = &v.appointment;
    let mut out = common(v, tz);
    let number = a.insurance.as_ref().and_then(|i| i.number.as_deref());
    out["address_service"] = v.address_service.as_ref().map(address_service_notification_json).into();
    let mut patient = patient_json(v.patient.as_ref(), a.is_returning, number);
    if let Some(p) = &v.patient {
        patient["marketing_consent"] = json!(p.marketing_consent);
        patient["data_privacy_consent"] = json!(p.data_privacy_consent);
    }
    out["patient"] = patient;
    out["signature"] = json!(signature);
    out["comment"] = json!(a.comment.clone().unwrap_or_default());
    if v.insurance.is_some() {
        out["insurance"] = insurance_json(v);
    }
    out["visit_payment"] = json!(false);
    out
}
