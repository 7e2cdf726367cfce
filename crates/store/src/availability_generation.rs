//! Availability generations: the change counters that keep cached free
//! starts (`polyclinic_scheduling::availability_cache`) fresh.
//!
//! The free starts of an address depend on its work periods, its breaks,
//! its address services, the address itself, and the time held (`busy`) on
//! the address and on its practitioner by bookings of every dialect. Each of
//! those is counted under a *resource*: the practitioner, the address, or
//! the tenant's catalogue (addresses and address services, rare writes). A
//! cached entry of address `A` of practitioner `P` carries the
//! [`generation`] of `(catalogue, P, A)` read before it was computed, and is
//! served only while that generation has not moved.
//!
//! Who bumps: the store functions that write those rows call [`touch`]
//! inside their transaction (`appointments` where `busy` rows are written or
//! deleted, `work_periods`, `breaks`, `catalog` for addresses and address
//! services). [`touch`] steps the in-memory counter at once and notes the
//! resource for the command; on PostgreSQL the command steps the noted
//! resources' rows of `availability_generation` in the same transaction,
//! just before it commits, in one order ([`step_rows`]). [`crate::Store::write`]
//! steps the noted counters again once the command has committed, before it
//! answers: an entry filled from the old rows between the two bumps is
//! dropped, and a caller that got its answer never reads an older entry. No
//! caller has to remember anything: a new write path that goes through these
//! store functions is counted.
//!
//! Several nodes (PostgreSQL): another node's writes do not move this
//! node's counters, so a reader on PostgreSQL also reads the resources' rows
//! ([`shared_generation`], one primary-key read) and the entry keeps both.
//! The row is read before the computation, and every statement sees
//! committed data, so an entry is never older than its row's value.
//!
//! SQLite has no row: one process writes the file (the single writer), so
//! its in-memory counters see every write. A second process writing the
//! same file is not supported while a server serves it.

use crate::outbox::is_postgres;
use crate::{Conn, StoreResult};
use polyclinic_core::TenantId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A resource whose changes move the availability of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The tenant's addresses and address services (any of them).
    Catalogue,
    /// A practitioner's time (kind 1 of `busy`).
    Practitioner(i64),
    /// An address: its time (kind 2 of `busy`), work periods and breaks.
    Address(i64),
}

impl Resource {
    /// `(kind, id)` as the `availability_generation` row names it.
    fn key(self) -> (i64, i64) {
        match self {
            Resource::Catalogue => (0, 0),
            Resource::Practitioner(p) => (1, p),
            Resource::Address(a) => (2, a),
        }
    }

    /// The resource `busy` rows of `kind` and `id` hold time on.
    pub(crate) fn of_busy(kind: i64, id: i64) -> Resource {
        if kind == 1 { Resource::Practitioner(id) } else { Resource::Address(id) }
    }
}

/// Counters, by a hash of (tenant, resource): two resources that share a
/// counter only drop each other's entries more often.
const COUNTERS: usize = 4096;

static GENERATIONS: [AtomicU64; COUNTERS] = [const { AtomicU64::new(0) }; COUNTERS];

fn counter(tenant: TenantId, r: Resource) -> &'static AtomicU64 {
    let (kind, id) = r.key();
    // A multiplicative hash (Fibonacci) of the three numbers.
    let h = (tenant.get() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((kind as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(id as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    &GENERATIONS[(h >> 52) as usize % COUNTERS]
}

/// This process's generation of the availability of address `address` of
/// practitioner `practitioner` (see the module doc): it only grows.
pub fn generation(tenant: TenantId, practitioner: i64, address: i64) -> u64 {
    [Resource::Catalogue, Resource::Practitioner(practitioner), Resource::Address(address)]
        .iter()
        .map(|r| counter(tenant, *r).load(Ordering::Acquire))
        .fold(0u64, u64::wrapping_add)
}

/// Steps the counters of `resources` (after a commit, or in tests).
pub fn bump(tenant: TenantId, resources: &[Resource]) {
    for r in resources {
        counter(tenant, *r).fetch_add(1, Ordering::AcqRel);
    }
}

/// What a command touched: stepped again by [`crate::Store::write`] after
/// the commit.
pub(crate) type Touched = Arc<Mutex<Vec<(TenantId, Resource)>>>;

tokio::task_local! {
    /// The resources the running command touched.
    static TOUCHED: Touched;
}

/// Runs a command's future noting what it [`touch`]es into `touched`.
pub(crate) async fn noting<F: std::future::Future>(touched: Touched, f: F) -> F::Output {
    TOUCHED.scope(touched, f).await
}

/// Steps, after the commit, every counter a command touched.
pub(crate) fn committed(touched: &Touched) {
    let touched = std::mem::take(&mut *touched.lock().unwrap_or_else(|p| p.into_inner()));
    for (tenant, r) in touched {
        bump(tenant, &[r]);
    }
}

/// Records, inside the writing transaction, a change of what the
/// availability of `resources` depends on (see the module doc).
///
/// On PostgreSQL the resources' rows are stepped at the end of the command,
/// by [`step_rows`] just before the commit, all in one order: a command
/// holds those row locks only while it commits, and two commands that touch
/// the same resources (a move and a booking, in any order) take them in the
/// same order, so they cannot deadlock on them. A `touch` outside a command
/// of [`crate::Store::write`] steps its rows at once.
pub async fn touch(conn: &mut Conn, tenant: TenantId, resources: &[Resource]) -> StoreResult<()> {
    bump(tenant, resources);
    let noted = TOUCHED.try_with(|t| {
        let mut t = t.lock().unwrap_or_else(|p| p.into_inner());
        for r in resources {
            if !t.contains(&(tenant, *r)) {
                t.push((tenant, *r));
            }
        }
    });
    if noted.is_err() && is_postgres(conn) {
        let mut rows: Vec<(TenantId, Resource)> = resources.iter().map(|r| (tenant, *r)).collect();
        step_sorted(conn, &mut rows).await?;
    }
    Ok(())
}

/// Steps, inside the command's transaction and just before its commit, the
/// PostgreSQL rows of every resource the command touched (nothing on
/// SQLite, which keeps no rows).
pub(crate) async fn step_rows(conn: &mut Conn, touched: &Touched) -> StoreResult<()> {
    if !is_postgres(conn) {
        return Ok(());
    }
    let mut rows = touched.lock().unwrap_or_else(|p| p.into_inner()).clone();
    step_sorted(conn, &mut rows).await
}

async fn step_sorted(conn: &mut Conn, rows: &mut Vec<(TenantId, Resource)>) -> StoreResult<()> {
    rows.sort_by_key(|(t, r)| (t.get(), r.key()));
    rows.dedup();
    for (tenant, r) in rows.iter() {
        let (kind, id) = r.key();
        sqlx::query(
            "INSERT INTO availability_generation (tenant_id, resource_kind, resource_id, generation) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (tenant_id, resource_kind, resource_id) \
             DO UPDATE SET generation = availability_generation.generation + 1",
        )
        .bind(tenant.get())
        .bind(kind)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The generation every node shares for address `address` of practitioner
/// `practitioner`: the sum of its resources' rows on PostgreSQL; `None` on
/// SQLite (no row: see the module doc).
pub async fn shared_generation(
    conn: &mut Conn,
    tenant: TenantId,
    practitioner: i64,
    address: i64,
) -> StoreResult<Option<i64>> {
    if !is_postgres(conn) {
        return Ok(None);
    }
    let sum: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(generation), 0) AS BIGINT) FROM availability_generation WHERE tenant_id = $1 \
         AND ((resource_kind = 0 AND resource_id = 0) OR (resource_kind = 1 AND resource_id = $2) \
         OR (resource_kind = 2 AND resource_id = $3))",
    )
    .bind(tenant.get())
    .bind(practitioner)
    .bind(address)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(sum.unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_moves_the_generation_of_every_address_it_concerns() {
        let t = TenantId(900_001);
        let before = generation(t, 5, 6);
        bump(t, &[Resource::Practitioner(5)]);
        let after_practitioner = generation(t, 5, 6);
        assert!(after_practitioner > before);
        bump(t, &[Resource::Address(6)]);
        assert!(generation(t, 5, 6) > after_practitioner);
        let g = generation(t, 5, 6);
        bump(t, &[Resource::Catalogue]);
        assert!(generation(t, 5, 6) > g, "a catalogue change concerns every address");
    }

    #[tokio::test]
    async fn a_command_notes_what_it_touched_for_after_the_commit() {
        let touched: Touched = Arc::default();
        noting(touched.clone(), async {
            TOUCHED.with(|t| t.lock().unwrap().push((TenantId(900_002), Resource::Address(1))));
        })
        .await;
        let before = generation(TenantId(900_002), 0, 1);
        committed(&touched);
        assert!(generation(TenantId(900_002), 0, 1) > before);
        assert!(touched.lock().unwrap().is_empty());
    }
}
