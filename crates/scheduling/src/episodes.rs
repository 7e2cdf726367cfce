//! Episodes of care: made and changed here, each change one transaction
//! with its outbox event (`EpisodeCreated`, `EpisodeUpdated`, written by the
//! store), and the one rule that joins appointments to them: an appointment
//! may belong only to an episode of its own patient ([`episode_fits`]),
//! checked inside the transaction that books the appointment
//! ([`crate::booking`]) or assigns it ([`Scheduling::assign_episode`]).
//!
//! Refusals: an unknown patient or episode to change is
//! [`SchedulingError::NotFound`]; content that breaks the episode's rules
//! ([`EpisodeOfCare::check`]), and an episode named for an appointment that
//! is unknown or another patient's, are a `CoreError::Invalid` (inside
//! [`SchedulingError::Store`]) naming the field; the latter two name
//! [`EPISODE_FIELD`], which each dialect renames to its own field.

use crate::Scheduling;
use crate::error::{SchedulingError, SchedulingResult};
use jiff::Timestamp;
use jiff::civil::Date;
use polyclinic_core::appointment::Appointment;
use polyclinic_core::care::{EpisodeOfCare, EpisodeStatus};
use polyclinic_core::tenant::Tenant;
use polyclinic_core::{AppointmentId, CoreError, PatientId, TenantId, Uuid};
use polyclinic_store::{Conn, StoreError, StoreResult, appointments, episodes, patients};

/// The field the refusals of an appointment's episode name.
pub const EPISODE_FIELD: &str = "episode";

/// What a client says of an episode: everything but its id, patient and
/// instants.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeContent {
    pub name: String,
    /// Solo's `type`.
    pub kind: String,
    pub from: Date,
    pub to: Option<Date>,
    pub status: EpisodeStatus,
    pub objective: Option<String>,
    pub reason_incomplete: Option<String>,
}

impl EpisodeContent {
    fn into_episode(self, id: Uuid, patient_id: PatientId, created_at: Timestamp, now: Timestamp) -> EpisodeOfCare {
        EpisodeOfCare {
            id,
            patient_id,
            name: self.name,
            kind: self.kind,
            from: self.from,
            to: self.to,
            status: self.status,
            objective: self.objective,
            reason_incomplete: self.reason_incomplete,
            created_at,
            updated_at: now,
        }
    }
}

fn invalid(e: CoreError) -> SchedulingError {
    SchedulingError::Store(StoreError::Core(e))
}

/// Whether `episode` may be the episode of an appointment of `patient`: one
/// of the tenant's episodes, of that very patient. A refusal is a
/// `CoreError::Invalid` naming [`EPISODE_FIELD`], returned as the store's
/// error so that the caller's transaction rolls back whatever it wrote
/// before (a booking's new patients). Runs inside the caller's transaction:
/// what it saw is what the write joins (an episode never changes patient
/// and is never deleted).
pub async fn episode_fits(
    conn: &mut Conn,
    tenant: TenantId,
    episode: &Uuid,
    patient: Option<PatientId>,
) -> StoreResult<()> {
    match episodes::patient_of(conn, tenant, episode).await? {
        None => Err(CoreError::invalid(EPISODE_FIELD, format!("episode of care {episode} not found")).into()),
        Some(owner) if Some(owner) != patient => {
            Err(CoreError::invalid(EPISODE_FIELD, format!("episode of care {episode} belongs to another patient"))
                .into())
        }
        Some(_) => Ok(()),
    }
}

impl Scheduling {
    /// Makes an episode of care for `patient` (one of the tenant's:
    /// else [`SchedulingError::NotFound`]); writes `EpisodeCreated`.
    pub async fn create_episode(
        &self,
        tenant: &Tenant,
        patient: PatientId,
        content: EpisodeContent,
        now: Timestamp,
    ) -> SchedulingResult<EpisodeOfCare> {
        let episode = content.into_episode(episodes::new_id(), patient, now, now);
        episode.check().map_err(invalid)?;
        let (tid, key) = (tenant.id, self.store.secret_key().clone());
        self.commit(move |c| {
            Box::pin(async move {
                if patients::get(c, tid, patient).await?.is_none() {
                    return Ok(Err(SchedulingError::NotFound("patient")));
                }
                episodes::create(c, tid, &key, &episode, now).await?;
                Ok(Ok(episode))
            })
        })
        .await
    }

    /// Replaces the content of episode `id` (its patient and creation stay);
    /// writes `EpisodeUpdated`, or nothing when the content is what it was.
    pub async fn update_episode(
        &self,
        tenant: &Tenant,
        id: Uuid,
        content: EpisodeContent,
        now: Timestamp,
    ) -> SchedulingResult<EpisodeOfCare> {
        // Checked once before the transaction (the rules do not depend on
        // what is stored), with placeholders for what the store keeps.
        content.clone().into_episode(id.clone(), PatientId(0), now, now).check().map_err(invalid)?;
        let (tid, key) = (tenant.id, self.store.secret_key().clone());
        self.commit(move |c| {
            Box::pin(async move {
                let Some(current) = episodes::get_for_update(c, tid, &key, &id).await? else {
                    return Ok(Err(SchedulingError::NotFound("episode")));
                };
                let episode = content.into_episode(id, current.patient_id, current.created_at, now);
                if episode.same_content(&current) {
                    return Ok(Ok(current));
                }
                if !episodes::update(c, tid, &key, &episode, now).await? {
                    return Ok(Err(SchedulingError::NotFound("episode")));
                }
                Ok(Ok(episode))
            })
        })
        .await
    }

    /// Puts appointment `id` into `episode` (an episode of the appointment's
    /// own patient, see [`episode_fits`]), or takes it out of its episode
    /// (`None`). Writes the appointment with one `AppointmentUpdated`, which
    /// every dialect's subscribers hear; the same episode again writes
    /// nothing.
    pub async fn assign_episode(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        episode: Option<Uuid>,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(a) = appointments::get_for_update(c, tid, id).await? else {
                    return Ok(Err(SchedulingError::NotFound("appointment")));
                };
                if a.episode_id == episode {
                    return Ok(Ok(a));
                }
                if let Some(e) = &episode {
                    episode_fits(c, tid, e, a.patient()).await?;
                }
                let mut wanted = a;
                wanted.episode_id = episode;
                Ok(Ok(appointments::update_details(c, tid, wanted, now).await?))
            })
        })
        .await
    }
}
