//! Booking, rescheduling and moving: the commands that give a visit its
//! time, with every rule a dialect must not decide alone.
//!
//! A booking, in order:
//! 1. the time rules (`core::time_rules`: range, duration, notice, horizon);
//! 2. where it lands: the address a dialect named (a Docplanner slot), or the
//!    Docplanner address of the booked practitioner linked to the booked
//!    healthcare service, when there is one (never another practitioner's);
//! 3. its healthcare service participant (for a slot, the address's linked
//!    service) and its video access ([`video`]: one rule, one key maker);
//! 4. the gates ([`Gates`]): real-time approvals, asked before the write;
//! 5. one transaction: the slot must be free (for a named address), the
//!    patients it introduces are matched or created ([`patients`]), the
//!    appointment holds its time (or another booking holds it:
//!    [`SchedulingError::Taken`]) and writes its event;
//! 6. the delivery engine is woken.
//!
//! A reschedule (same booking, new time) and a move (Docplanner's: a new
//! booking in the old one's place) run the same time rules and gates, read
//! the booking under its row lock, check the tenant's cut-off against it as
//! it is then, and write one `AppointmentMoved` event.

use crate::error::{SchedulingError, SchedulingResult};
use crate::gate::Proposal;
use crate::{Scheduling, availability, patients, video};
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::appointment::{Actor, Appointment, ParticipantRole, ParticipantWho, check_reschedule_allowed};
use polyclinic_core::facility::{Address, AddressService};
use polyclinic_core::patient::{Patient, RelatedPerson};
use polyclinic_core::schedule::Interval;
use polyclinic_core::service::HealthcareService;
use polyclinic_core::status::AppointmentStatus;
use polyclinic_core::tenant::{Dialect, Tenant, TenantSettings};
use polyclinic_core::{AppointmentId, HealthcareServiceId, TenantId, slots, time_rules};
use polyclinic_store::{Conn, StoreError, StoreResult, appointments, catalog, related};

/// Where a booking lands.
#[derive(Debug, Clone)]
pub enum Place {
    /// A free slot of an address's calendar, for one of its address services
    /// (a Docplanner booking): the start must be a free slot that takes the
    /// service. The address's linked healthcare service, if any, becomes the
    /// booking's service.
    Slot { address: Address, service: AddressService },
    /// A healthcare service (an Embassy booking): the booking holds time at
    /// the Docplanner address linked to the service that belongs to its
    /// primary performer, when there is one.
    Service(HealthcareService),
    /// No calendar: the booking holds time on its practitioners only (a
    /// clinic's own system syncing its appointments, as Naboto's does).
    Practitioners,
    /// A waiting room (a Solo booking): the healthcare service, and no
    /// practitioner. The room takes as many visits at once as it has
    /// practitioners (at least one), counting the bookings of every dialect
    /// in the service; a visit lies within its opening hours, when it has
    /// some ([`waiting_room_fits`]).
    WaitingRoom(HealthcareService),
}

/// A patient a booking introduces: matched by [`patients::find_or_create`]
/// (or created) inside the booking's transaction, then put into the
/// participant at `participant` (and the representative at `represented_by`).
#[derive(Debug, Clone)]
pub struct BookedPatient {
    pub patient: Patient,
    pub participant: usize,
    pub represented_by: Option<usize>,
}

/// A booking as a dialect describes it.
#[derive(Debug, Clone)]
pub struct Booking {
    /// Time, participants (a [`BookedPatient`]'s participant may hold a
    /// placeholder id), details and who books; its video access, service
    /// participant and address are decided here.
    pub appointment: Appointment,
    pub place: Place,
    pub patients: Vec<BookedPatient>,
    /// Representatives seen for the first time, created with the booking.
    pub representatives: Vec<RelatedPerson>,
    /// The dialect the request came through.
    pub through: Dialect,
    /// Whether the request itself makes the visit a video call (Naboto's
    /// `virtual-service-contact-detail`); `None`: [`video::is_digital`]
    /// decides from the service and the address.
    pub video: Option<bool>,
}

/// Work a dialect adds to a booking's own transaction
/// ([`Scheduling::book_with`]), so that it commits with the booking or not
/// at all: Solo's perfect answer checks its 24-hour rule before the booking
/// and writes the visit note after it.
pub trait BookingHook: Send + Sync + 'static {
    /// Asked first in the transaction, before anything is written, with the
    /// appointment about to be booked; a refusal commits nothing.
    fn before<'c>(
        &'c self,
        c: &'c mut Conn,
        a: &'c Appointment,
    ) -> futures_util::future::BoxFuture<'c, StoreResult<SchedulingResult<()>>>;
    /// Run once the appointment is stored; an error rolls the booking back.
    fn after<'c>(
        &'c self,
        c: &'c mut Conn,
        booked: &'c Appointment,
    ) -> futures_util::future::BoxFuture<'c, StoreResult<()>>;
}

/// A Docplanner move: the booking's new time, at an address (this one or
/// another of the facility) and for one of that address's services.
#[derive(Debug, Clone)]
pub struct Move {
    pub to: Interval,
    pub address: Address,
    pub service: AddressService,
    pub by: Actor,
    pub through: Dialect,
}

impl Scheduling {
    /// Books a visit (see the module doc for the rules, in order).
    pub async fn book(&self, tenant: &Tenant, booking: Booking, now: Timestamp) -> SchedulingResult<Appointment> {
        self.book_with(tenant, booking, None, now).await
    }

    /// [`Scheduling::book`], with a dialect's own work in the booking's
    /// transaction ([`BookingHook`]): its check runs first, its write after
    /// the appointment is stored; all commit together or not at all.
    pub async fn book_with(
        &self,
        tenant: &Tenant,
        booking: Booking,
        hook: Option<std::sync::Arc<dyn BookingHook>>,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        let Booking { appointment: mut a, place, patients: introduced, representatives, through, video: asked } =
            booking;
        time_rules::check(&a.interval, &tenant.settings, now)?;
        let tid = tenant.id;
        let performer = a.primary_performer();
        let waiting_room = matches!(place, Place::WaitingRoom(_));
        let (address, service, offered) = match place {
            Place::WaitingRoom(service) => {
                a.participants.retain(|p| !matches!(p.who, ParticipantWho::Practitioner(_)));
                (None, Some(service), None)
            }
            Place::Slot { address, service: offered } => {
                let service = self.linked_service(tid, &address).await?;
                (Some(address), service, Some(offered))
            }
            Place::Service(service) => {
                let sid = service.id.get();
                let address = self
                    .store
                    .read(move |c| {
                        Box::pin(
                            async move { catalog::address_for_service(c, tid, sid, performer.map(|p| p.get())).await },
                        )
                    })
                    .await?;
                (address, Some(service), None)
            }
            Place::Practitioners => {
                let service = match a.healthcare_service_id {
                    Some(id) => {
                        self.store
                            .read(move |c| Box::pin(async move { catalog::healthcare_service(c, tid, id.get()).await }))
                            .await?
                    }
                    None => None,
                };
                (None, service, None)
            }
        };
        a.set_healthcare_service(
            service.as_ref().map(|s| s.id).or(address.as_ref().and_then(|x| x.healthcare_service_id)),
        );
        a.address_id = address.as_ref().map(|x| x.id);
        if let Some(s) = &offered {
            a.address_service_id = Some(s.id);
        }
        video::apply(&mut a, asked.unwrap_or_else(|| video::is_digital(service.as_ref(), address.as_ref())));
        if let Some(address) = &address {
            let patient = match a.patient().filter(|p| p.get() != 0) {
                Some(id) => {
                    self.store
                        .read(move |c| Box::pin(async move { polyclinic_store::patients::get(c, tid, id).await }))
                        .await?
                }
                None => introduced.first().map(|p| p.patient.clone()),
            };
            let proposal = Proposal {
                address,
                interval: a.interval,
                patient: patient.as_ref(),
                comment: a.description.as_deref().or(a.comment.as_deref()),
                by: a.booked_by.kind,
                through,
                moving: None,
            };
            if !self.gates.approve(tenant, &proposal).await? {
                return Err(SchedulingError::Declined);
            }
        }
        let settings = tenant.settings.clone();
        let tz = tenant.tz();
        self.commit(move |c| {
            Box::pin(async move {
                if let Some(h) = &hook
                    && let Err(refusal) = h.before(c, &a).await?
                {
                    return Ok(Err(refusal));
                }
                if let Some(room) = a.healthcare_service_id.filter(|_| waiting_room)
                    && let Err(refusal) = waiting_room_fits(c, tid, &tz, room, &a.interval, None).await?
                {
                    return Ok(Err(refusal));
                }
                if let (Some(address), Some(offered)) = (&address, &offered)
                    && let Err(refusal) =
                        slot_offered(c, tid, address, offered, &a.interval, &settings, now, None).await?
                {
                    return Ok(Err(refusal));
                }
                for p in introduced {
                    let found = patients::find_or_create(c, tid, p.patient, now).await?;
                    let id = found.id.ok_or_else(|| StoreError::Corrupt("patient without id".into()))?;
                    if let Some(part) = a.participants.get_mut(p.participant) {
                        part.who = ParticipantWho::Patient(id);
                    }
                    if let Some(ParticipantWho::RelatedPerson(rp)) =
                        p.represented_by.and_then(|r| a.participants.get_mut(r)).map(|part| &mut part.who)
                    {
                        rp.patient = Some(id);
                    }
                }
                for rp in &representatives {
                    related::create(c, tid, rp, now).await?;
                }
                // An episode of care named by the booking must be its
                // patient's (a refusal rolls back the whole booking).
                if let Some(episode) = &a.episode_id {
                    crate::episodes::episode_fits(c, tid, episode, a.patient()).await?;
                }
                let booked = appointments::book_new(c, tid, a, now).await?;
                if let Some(h) = &hook {
                    h.after(c, &booked).await?;
                }
                Ok(Ok(booked))
            })
        })
        .await
    }

    /// Gives a booking a new time in place (the same booking): the time
    /// rules, the gates of its address, then, under its row lock, its status
    /// and the tenant's reschedule cut-off as they are now, and the new time
    /// must be free. Writes one `AppointmentMoved`.
    pub async fn reschedule(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        to: Interval,
        through: Dialect,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        time_rules::check(&to, &tenant.settings, now)?;
        let current = self.current(tenant.id, id).await?;
        // A change refused anyway is not put to the gates (checked again
        // under the row lock below).
        may_move(&current, &tenant.settings, now)?;
        self.ask_about_move_in_place(tenant, &current, to, through).await?;
        let (tid, settings, tz) = (tenant.id, tenant.settings.clone(), tenant.tz());
        self.commit(move |c| {
            Box::pin(async move {
                let a = match locked(c, tid, id, &settings, now).await? {
                    Ok(a) => a,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                if let Some(room) = waiting_room_of(&a)
                    && let Err(refusal) = waiting_room_fits(c, tid, &tz, room, &to, Some(a.id)).await?
                {
                    return Ok(Err(refusal));
                }
                Ok(Ok(appointments::reschedule(c, tid, a.id, to, now).await?))
            })
        })
        .await
    }

    /// Moves a booking the Docplanner way: a new booking at `mv.address` in
    /// the old one's place, which is cancelled and points to it. The time
    /// rules, the gates of the target address, then, under the old booking's
    /// row lock: its status and cut-off, and the start must be a free slot
    /// of the target for the service (the booking's own time is not in its
    /// way). Answers the new booking; writes one `AppointmentMoved`.
    pub async fn move_booking(
        &self,
        tenant: &Tenant,
        id: AppointmentId,
        mv: Move,
        now: Timestamp,
    ) -> SchedulingResult<Appointment> {
        time_rules::check(&mv.to, &tenant.settings, now)?;
        let current = self.current(tenant.id, id).await?;
        may_move(&current, &tenant.settings, now)?;
        self.ask_about_move(tenant, &current, &mv.address, mv.to, mv.through).await?;
        let tid = tenant.id;
        let service = self.linked_service(tid, &mv.address).await?;
        let settings = tenant.settings.clone();
        self.commit(move |c| {
            Box::pin(async move {
                let old = match locked(c, tid, id, &settings, now).await? {
                    Ok(a) => a,
                    Err(refusal) => return Ok(Err(refusal)),
                };
                let Move { to, address, service: offered, by, .. } = mv;
                let own = (old.address_id == Some(address.id)
                    || old.primary_performer() == Some(address.practitioner_id))
                .then_some(old.interval);
                if let Err(refusal) =
                    slot_offered(c, tid, &address, &offered, &to, &settings, now, own.as_ref()).await?
                {
                    return Ok(Err(refusal));
                }
                let mut new = old.clone();
                new.id = appointments::new_id(c).await?;
                new.interval = to;
                new.status = AppointmentStatus::Booked;
                new.address_id = Some(address.id);
                new.address_service_id = Some(offered.id);
                new.set_healthcare_service(address.healthcare_service_id);
                for p in &mut new.participants {
                    if let ParticipantWho::Practitioner(pid) = &mut p.who
                        && p.roles.contains(&ParticipantRole::PrimaryPerformer)
                    {
                        *pid = address.practitioner_id;
                    }
                }
                video::apply(&mut new, video::is_digital(service.as_ref(), Some(&address)));
                new.booked_by = by.clone();
                new.booked_at = now;
                new.confirmed = false;
                new.presence = None;
                new.moved_from = None;
                new.moved_to = None;
                let (_, new) = appointments::move_to(c, tid, old.id, new, by, now).await?;
                Ok(Ok(new))
            })
        })
        .await
    }

    /// The appointment as it is now (outside any write), or not found.
    pub(crate) async fn current(&self, tenant: TenantId, id: AppointmentId) -> SchedulingResult<Appointment> {
        self.store
            .read(move |c| Box::pin(async move { appointments::get(c, tenant, id).await }))
            .await?
            .ok_or(SchedulingError::NotFound("appointment"))
    }

    /// The healthcare service `address` is linked to, if any.
    async fn linked_service(&self, tenant: TenantId, address: &Address) -> SchedulingResult<Option<HealthcareService>> {
        let Some(id) = address.healthcare_service_id else { return Ok(None) };
        Ok(self
            .store
            .read(move |c| Box::pin(async move { catalog::healthcare_service(c, tenant, id.get()).await }))
            .await?)
    }

    /// Asks the gates of `a`'s own address (if it has one) whether `a` may
    /// take the new time `to` there.
    pub(crate) async fn ask_about_move_in_place(
        &self,
        tenant: &Tenant,
        a: &Appointment,
        to: Interval,
        through: Dialect,
    ) -> SchedulingResult<()> {
        let Some(address_id) = a.address_id else { return Ok(()) };
        let tid = tenant.id;
        let address =
            self.store.read(move |c| Box::pin(async move { catalog::address(c, tid, address_id.get()).await })).await?;
        match address {
            Some(address) => self.ask_about_move(tenant, a, &address, to, through).await,
            None => Ok(()),
        }
    }

    /// Asks the gates whether `a` may move to `to` at `address`.
    async fn ask_about_move(
        &self,
        tenant: &Tenant,
        a: &Appointment,
        address: &Address,
        to: Interval,
        through: Dialect,
    ) -> SchedulingResult<()> {
        let (tid, pid) = (tenant.id, a.patient());
        let patient = match pid {
            Some(p) => {
                self.store
                    .read(move |c| Box::pin(async move { polyclinic_store::patients::get(c, tid, p).await }))
                    .await?
            }
            None => None,
        };
        let proposal = Proposal {
            address,
            interval: to,
            patient: patient.as_ref(),
            comment: a.description.as_deref().or(a.comment.as_deref()),
            by: polyclinic_core::appointment::ActorKind::Integration,
            through,
            moving: Some(a),
        };
        if !self.gates.approve(tenant, &proposal).await? {
            return Err(SchedulingError::Declined);
        }
        Ok(())
    }
}

/// The booking `id` under its row lock, if its status and the tenant's
/// reschedule cut-off let it take a new time now.
async fn locked(
    c: &mut Conn,
    tenant: TenantId,
    id: AppointmentId,
    settings: &TenantSettings,
    now: Timestamp,
) -> StoreResult<SchedulingResult<Appointment>> {
    let Some(a) = appointments::get_for_update(c, tenant, id).await? else {
        return Ok(Err(SchedulingError::NotFound("appointment")));
    };
    Ok(may_move(&a, settings, now).map(|()| a))
}

/// Whether `a` may take a new time now: not moved away, and its status and
/// the tenant's reschedule cut-off allow it.
pub(crate) fn may_move(a: &Appointment, settings: &TenantSettings, now: Timestamp) -> SchedulingResult<()> {
    check_reschedule_allowed(a, settings, now).map_err(|e| SchedulingError::from(StoreError::Core(e)))?;
    if a.moved_to.is_some() {
        return Err(SchedulingError::NotAllowed { from: "moved".into(), to: "moved".into() });
    }
    Ok(())
}

/// Whether `interval` starts on a free slot of `address` that takes
/// `service` (`own`: the moved booking's time, not in its own way).
#[allow(clippy::too_many_arguments)]
async fn slot_offered(
    c: &mut Conn,
    tenant: TenantId,
    address: &Address,
    service: &AddressService,
    interval: &Interval,
    settings: &TenantSettings,
    now: Timestamp,
    own: Option<&Interval>,
) -> StoreResult<SchedulingResult<()>> {
    if !address.calendar_enabled {
        return Ok(Err(SchedulingError::NotOffered));
    }
    let bookable = time_rules::bookable_starts(settings, now);
    // Only the start matters: the periods around it, their breaks and bookings.
    let at_start = Interval { start: interval.start, end: interval.start + SignedDuration::from_secs(1) };
    let free = availability::at_address(c, tenant, address, &at_start, &bookable, own).await?;
    Ok(match free.iter().find(|s| s.start == interval.start) {
        None => Err(SchedulingError::NotOffered),
        Some(slot) if !slot.services.contains(&service.id) => Err(SchedulingError::ServiceNotOffered),
        Some(_) => Ok(()),
    })
}

/// How many visits waiting room `service` takes at once: one per
/// practitioner of the service, and at least one.
pub fn waiting_room_capacity(service: &HealthcareService) -> usize {
    service.practitioners.len().max(1)
}

/// The waiting room an appointment was booked into, when it was
/// ([`Place::WaitingRoom`]): a healthcare service, no practitioner and no
/// address. Its changes of time follow the waiting room's rule.
pub fn waiting_room_of(a: &Appointment) -> Option<HealthcareServiceId> {
    a.healthcare_service_id.filter(|_| a.address_id.is_none() && a.practitioners().next().is_none())
}

/// Whether `interval` fits waiting room `service` now, inside the caller's
/// transaction: the service is read under its row lock (PostgreSQL; SQLite's
/// single writer serialises anyway), so that two bookings count its load
/// one after the other; the visit lies within its opening hours (in the
/// tenant's zone `tz`), when it has some ([`SchedulingError::NotOffered`]);
/// and the time-holding appointments of the service from every dialect
/// (but `except`, a booking being moved) overlapping the visit do not reach
/// its capacity anywhere in it ([`SchedulingError::Taken`]).
pub(crate) async fn waiting_room_fits(
    c: &mut Conn,
    tenant: TenantId,
    tz: &jiff::tz::TimeZone,
    service: HealthcareServiceId,
    interval: &Interval,
    except: Option<AppointmentId>,
) -> StoreResult<SchedulingResult<()>> {
    let Some(room) = catalog::healthcare_service_for_update(c, tenant, service.get()).await? else {
        return Ok(Err(SchedulingError::NotFound("waiting room")));
    };
    if !slots::within_opening(&room.opening_hours, tz, interval)? {
        return Ok(Err(SchedulingError::NotOffered));
    }
    let busy = appointments::service_busy(c, tenant, room.id, interval, except).await?;
    if !slots::saturated(&busy, waiting_room_capacity(&room), interval).is_empty() {
        return Ok(Err(SchedulingError::Taken { resource: "waiting room" }));
    }
    Ok(Ok(()))
}
