//! What happens to a booked visit besides its time: cancellation, the
//! office's confirmation, the patient's presence, and the request for the
//! patient's opinion. Each reads the booking under its row lock and checks
//! it as it is then, so that a concurrent change is seen, not overwritten.

use crate::Scheduling;
use crate::error::{SchedulingError, SchedulingResult};
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, Presence, check_cancel_allowed};
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::Tenant;
use polyclinic_core::{AppointmentId, PractitionerId};
use polyclinic_store::appointments::{self, Search};
use polyclinic_store::{StoreError, patients};

impl Scheduling {
    /// Cancels a booking: under its row lock, the status rule and the
    /// tenant's cancellation cut-off; frees its time. A booking moved away
    /// (the Docplanner way) is no longer there to cancel.
    pub async fn cancel(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        by: Actor,
        reason: Option<String>,
        now: Timestamp,
    ) -> SchedulingResult<polyclinic_core::appointment::Appointment> {
        let (tid, settings) = (tenant.id, tenant.settings.clone());
        self.commit(move |c| {
            Box::pin(async move {
                let Some(a) = appointments::get_for_update(c, tid, id).await? else { return Ok(Err(gone())) };
                if a.moved_to.is_some() {
                    return Ok(Err(SchedulingError::NotAllowed { from: "moved".into(), to: "cancelled".into() }));
                }
                if let Err(e) = check_cancel_allowed(&a, &settings, now) {
                    return Ok(Err(StoreError::Core(e).into()));
                }
                Ok(Ok(appointments::cancel(c, tid, id, by, reason, now).await?))
            })
        })
        .await
    }

    /// The office confirms a visit to come (`by`: who confirmed). A visit
    /// already begun answers [`SchedulingError::InThePast`]; one withdrawn
    /// [`SchedulingError::NotAllowed`]; one confirmed before
    /// [`SchedulingError::Conflict`].
    pub async fn confirm(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        by: String,
        now: Timestamp,
    ) -> SchedulingResult<polyclinic_core::appointment::Appointment> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(a) = appointments::get_for_update(c, tid, id).await? else { return Ok(Err(gone())) };
                if a.interval.start < now && a.moved_to.is_none() && a.status != AppointmentStatus::Cancelled {
                    return Ok(Err(SchedulingError::InThePast));
                }
                Ok(Ok(appointments::confirm(c, tid, id, &by, now).await?))
            })
        })
        .await
    }

    /// Records whether the patient came to a visit that has begun (one yet
    /// to begin answers [`SchedulingError::InTheFuture`]).
    pub async fn set_presence(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        presence: Presence,
        now: Timestamp,
    ) -> SchedulingResult<polyclinic_core::appointment::Appointment> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(a) = appointments::get_for_update(c, tid, id).await? else { return Ok(Err(gone())) };
                if a.interval.start > now {
                    return Ok(Err(SchedulingError::InTheFuture));
                }
                Ok(Ok(appointments::set_presence(c, tid, id, presence, now).await?))
            })
        })
        .await
    }

    /// Asks the patient with `phone` for an opinion of `practitioner`, about
    /// that patient's latest booked visit with them: once per phone and
    /// practitioner. No such visit answers [`SchedulingError::NotFound`];
    /// a phone asked before [`SchedulingError::Conflict`]. The message
    /// itself is the patient messaging service's (it hears
    /// `OpinionRequested`).
    pub async fn request_opinion(
        &self,
        tenant: &Tenant,
        practitioner: PractitionerId,
        phone: String,
        now: Timestamp,
    ) -> SchedulingResult<()> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let mut visit = None;
                for p in patients::find_by_contact(c, tid, &phone).await? {
                    let Some(pid) = p.id else { continue };
                    let search = Search { patient: Some(pid.get()), limit: 1000, ..Default::default() };
                    let (items, _) = appointments::search(c, tid, &search).await?;
                    visit = items.into_iter().rfind(|a| {
                        !matches!(
                            a.status,
                            AppointmentStatus::Cancelled
                                | AppointmentStatus::NoShow
                                | AppointmentStatus::EnteredInError
                        ) && a.moved_to.is_none()
                            && a.practitioners().any(|x| x == practitioner)
                    });
                    if visit.is_some() {
                        break;
                    }
                }
                let Some(visit) = visit else { return Ok(Err(SchedulingError::NotFound("visit"))) };
                if !appointments::request_opinion(c, tid, &visit, practitioner, &phone, now).await? {
                    return Ok(Err(SchedulingError::Conflict("the patient was already asked".into())));
                }
                Ok(Ok(()))
            })
        })
        .await
    }
}

/// The refusal of a command on an appointment that does not exist.
fn gone() -> SchedulingError {
    SchedulingError::NotFound("appointment")
}
