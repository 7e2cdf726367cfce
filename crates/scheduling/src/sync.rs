//! Whole-appointment changes, for dialects whose clients send the
//! appointment as they now hold it rather than one change at a time (a
//! clinic's own system syncing through Naboto's `PUT`): one command that
//! changes the time, the status and the details together, in one
//! transaction, or nothing at all. And status changes on their own.

use crate::Scheduling;
use crate::booking::{may_move, waiting_room_fits, waiting_room_of};
use crate::error::{SchedulingError, SchedulingResult};
use jiff::Timestamp;
use polyclinic_core::appointment::{Actor, Appointment, check_cancel_allowed};
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::{Dialect, Tenant};
use polyclinic_core::{AppointmentId, time_rules};
use polyclinic_store::{StoreError, appointments};

impl Scheduling {
    /// Replaces appointment `new.id` with `new`: its time (under the same
    /// time rules, cut-off, gates and double-booking guard as a reschedule;
    /// one `AppointmentMoved`), its status (through the status machine; a
    /// cancellation under the cancel cut-off), and its participants and
    /// details (`AppointmentUpdated`). A participant that stays keeps its
    /// video key; `new.digital` says whether the visit is a video call. What
    /// `new` leaves as it was writes nothing. `by` is who cancels, when the
    /// new status cancels it.
    pub async fn replace(
        &self,
        tenant: &Tenant,
        new: Appointment,
        by: Actor,
        through: Dialect,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        let id = new.id;
        let current = self.current(tenant.id, id).await?;
        let moving = new.interval != current.interval;
        if moving {
            time_rules::check(&new.interval, &tenant.settings, now)?;
            may_move(&current, &tenant.settings, now)?;
            self.ask_about_move_in_place(tenant, &current, new.interval, through).await?;
        }
        let (tid, settings, tz) = (tenant.id, tenant.settings.clone(), tenant.tz());
        self.commit(move |c| {
            Box::pin(async move {
                let Some(mut a) = appointments::get_for_update(c, tid, id).await? else {
                    return Ok(Err(SchedulingError::NotFound("appointment")));
                };
                // Refusals first, before anything is written.
                if new.interval != a.interval
                    && let Err(refusal) = may_move(&a, &settings, now)
                {
                    return Ok(Err(refusal));
                }
                if new.interval != a.interval
                    && let Some(room) = waiting_room_of(&a)
                    && let Err(refusal) = waiting_room_fits(c, tid, &tz, room, &new.interval, Some(a.id)).await?
                {
                    return Ok(Err(refusal));
                }
                if new.status != a.status {
                    if let Err(e) = a.status.transition(new.status) {
                        return Ok(Err(StoreError::Core(e).into()));
                    }
                    if new.status == AppointmentStatus::Cancelled
                        && let Err(e) = check_cancel_allowed(&a, &settings, now)
                    {
                        return Ok(Err(StoreError::Core(e).into()));
                    }
                }
                if new.interval != a.interval {
                    a = appointments::reschedule(c, tid, id, new.interval, now).await?;
                }
                if new.status != a.status {
                    a = if new.status == AppointmentStatus::Cancelled {
                        appointments::cancel(c, tid, id, by, None, now).await?
                    } else {
                        appointments::set_status(c, tid, id, new.status, now).await?
                    };
                }
                let mut wanted = a.clone();
                wanted.participants = new.participants;
                for p in &mut wanted.participants {
                    p.video = a.participants.iter().find(|q| q.who == p.who).and_then(|q| q.video.clone());
                }
                crate::video::apply(&mut wanted, new.digital);
                wanted.healthcare_service_id = new.healthcare_service_id;
                wanted.description = new.description;
                wanted.comment = new.comment;
                wanted.reasons = new.reasons;
                wanted.reason_code = new.reason_code;
                wanted.external_id = new.external_id;
                wanted.account_number = new.account_number;
                wanted.episode_id = new.episode_id;
                wanted.video_call_status = new.video_call_status;
                // An appointment's episode of care stays its patient's,
                // whichever dialect changes the episode or the patient.
                if let Some(episode) = &wanted.episode_id
                    && (wanted.episode_id != a.episode_id || wanted.patient() != a.patient())
                {
                    crate::episodes::episode_fits(c, tid, episode, wanted.patient()).await?;
                }
                if wanted != a {
                    a = appointments::update_details(c, tid, wanted, now).await?;
                }
                Ok(Ok(a))
            })
        })
        .await
    }

    /// Moves an appointment through the status machine (a cancellation under
    /// the cancel cut-off, by `by`); the same status again changes nothing.
    pub async fn set_status(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        to: AppointmentStatus,
        by: Actor,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        if to == AppointmentStatus::Cancelled {
            return self.cancel(tenant, id, by, None, now).await;
        }
        let tid = tenant.id;
        self.commit(move |c| Box::pin(async move { Ok(Ok(appointments::set_status(c, tid, id, to, now).await?)) }))
            .await
    }
}
