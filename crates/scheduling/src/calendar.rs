//! Calendars: an address's work periods (what it offers), its breaks (when
//! it offers nothing) and whether its calendar is switched on. Every change
//! is one transaction with its events (`SlotsReplaced`, `BreakCreated`,
//! `BreakMoved`, `BreakRemoved`), and wakes the engine after commit.
//!
//! Which addresses a coupled break reaches (Docplanner's online and offline
//! addresses of one doctor) is the dialect's to say; that a break is not
//! added twice, and that a coupled group moves and goes as one, is decided
//! here.

use crate::Scheduling;
use crate::error::{SchedulingError, SchedulingResult};
use jiff::Timestamp;
use polyclinic_core::schedule::{CalendarBreak, Interval, WorkPeriod};
use polyclinic_core::tenant::Tenant;
use polyclinic_core::{AddressId, CalendarBreakId, TenantId};
use polyclinic_store::{Conn, StoreResult, breaks, catalog, work_periods};

/// A break to add.
#[derive(Debug, Clone)]
pub struct NewBreak {
    /// The address it is added at.
    pub at: AddressId,
    pub interval: Interval,
    pub description: Option<String>,
    /// Other addresses that take the same break, as one coupled group (each
    /// skipped where the same break already is). Empty: a break of its own.
    pub coupled: Vec<AddressId>,
    /// Whether the break forms a coupled group (even if no other address
    /// took it).
    pub grouped: bool,
}

impl Scheduling {
    /// Replaces the work periods of each range of `address` with the period
    /// given for it (none: the range offers nothing).
    pub async fn replace_work_periods(
        &self,
        tenant: &Tenant,
        address: AddressId,
        ranges: Vec<(Interval, Option<WorkPeriod>)>,
        now: Timestamp,
    ) -> SchedulingResult<()> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move { Ok(Ok(work_periods::replace(c, tid, address, &ranges, now).await?)) })
        })
        .await
    }

    /// Switches an address's calendar on or off: [`SchedulingError::Conflict`]
    /// when it already is, [`SchedulingError::NotFound`] when the address is
    /// gone.
    pub async fn set_calendar(&self, tenant: &Tenant, address: AddressId, enabled: bool) -> SchedulingResult<()> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(mut a) = catalog::address(c, tid, address.get()).await? else {
                    return Ok(Err(SchedulingError::NotFound("address")));
                };
                if a.calendar_enabled == enabled {
                    let already = if enabled { "the calendar is already on" } else { "the calendar is already off" };
                    return Ok(Err(SchedulingError::Conflict(already.into())));
                }
                a.calendar_enabled = enabled;
                catalog::update_address(c, tid, &a).await?;
                Ok(Ok(()))
            })
        })
        .await?;
        // Again after the commit: a read between the change counter's
        // step inside the transaction and the commit may have cached the
        // address as it was.
        catalog::catalog_changed();
        Ok(())
    }

    /// Adds a break (and its coupled copies); answers the one at `b.at`.
    /// The same range with the same description at `b.at` already is a
    /// [`SchedulingError::Conflict`].
    pub async fn add_break(&self, tenant: &Tenant, b: NewBreak, now: Timestamp) -> SchedulingResult<CalendarBreak> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let NewBreak { at, interval, description, coupled, grouped } = b;
                if exists(c, tid, at, &interval, &description).await? {
                    return Ok(Err(SchedulingError::Conflict("a break with that range and description exists".into())));
                }
                let id = breaks::new_id(c).await?;
                let group = grouped.then_some(id);
                let mut all = vec![CalendarBreak {
                    id,
                    address_id: at,
                    interval,
                    description: description.clone(),
                    coupled_group: group,
                }];
                for other in coupled {
                    if other == at || exists(c, tid, other, &interval, &description).await? {
                        continue;
                    }
                    all.push(CalendarBreak {
                        id: breaks::new_id(c).await?,
                        address_id: other,
                        interval,
                        description: description.clone(),
                        coupled_group: group,
                    });
                }
                breaks::create(c, tid, &all, now).await?;
                Ok(Ok(all.swap_remove(0)))
            })
        })
        .await
    }

    /// Moves break `id` of `address` to `to`, with its coupled group (whose
    /// members live among `places`). Not a break of that address:
    /// [`SchedulingError::NotFound`]; already at `to`:
    /// [`SchedulingError::Conflict`].
    pub async fn move_break(
        &self,
        tenant: &Tenant,
        address: AddressId,
        id: CalendarBreakId,
        to: Interval,
        places: Vec<AddressId>,
        now: Timestamp,
    ) -> SchedulingResult<()> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(group) = group_of(c, tid, address, id, &places).await? else {
                    return Ok(Err(SchedulingError::NotFound("break")));
                };
                if group[0].interval == to {
                    return Ok(Err(SchedulingError::Conflict("the break already has that range".into())));
                }
                breaks::move_to(c, tid, &group, to, now).await?;
                Ok(Ok(()))
            })
        })
        .await
    }

    /// Removes break `id` of `address`, with its coupled group (whose members
    /// live among `places`). Not a break of that address:
    /// [`SchedulingError::NotFound`].
    pub async fn remove_break(
        &self,
        tenant: &Tenant,
        address: AddressId,
        id: CalendarBreakId,
        places: Vec<AddressId>,
        now: Timestamp,
    ) -> SchedulingResult<()> {
        let tid = tenant.id;
        self.commit(move |c| {
            Box::pin(async move {
                let Some(group) = group_of(c, tid, address, id, &places).await? else {
                    return Ok(Err(SchedulingError::NotFound("break")));
                };
                breaks::remove(c, tid, &group, now).await?;
                Ok(Ok(()))
            })
        })
        .await
    }
}

/// Whether `address` has a break of exactly `interval` and `description`.
async fn exists(
    c: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    interval: &Interval,
    description: &Option<String>,
) -> StoreResult<bool> {
    Ok(breaks::with_range(c, tenant, address, interval).await?.iter().any(|b| &b.description == description))
}

/// Break `id`, if it is one of `address`'s, first, with its coupled group
/// (whose members live among `places`).
async fn group_of(
    c: &mut Conn,
    tenant: TenantId,
    address: AddressId,
    id: CalendarBreakId,
    places: &[AddressId],
) -> StoreResult<Option<Vec<CalendarBreak>>> {
    match breaks::get(c, tenant, id).await?.filter(|b| b.address_id == address) {
        Some(b) => Ok(Some(breaks::with_group(c, tenant, &b, places).await?)),
        None => Ok(None),
    }
}
