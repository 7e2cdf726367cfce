//! Cached availability: the free starts of an address over a window, and
//! the bytes a dialect rendered of them, kept in memory per address and
//! practitioner, and never served stale.
//!
//! **What is kept.** An entry holds, for one (tenant, address, practitioner,
//! window), the address's free starts in the window *before* the tenant's
//! time rules clip them (those depend on "now": [`CachedSlots::bookable`]
//! clips per request, by two binary searches), the address's services, and
//! the bytes rendered per (bookable part, variant): a dialect renders once
//! per window, `with` and time zone ([`CachedSlots::rendered`]).
//!
//! **Freshness.** Each entry carries the generation of its address
//! ([`polyclinic_store::availability_generation`]) read *before* it was
//! computed: the in-memory counters of this process and, on PostgreSQL, the
//! sum of the shared rows. It is served only while both still read the same.
//! Every store function that writes what free starts depend on (time held
//! by bookings of any dialect, work periods, breaks, addresses, address
//! services) steps them in its transaction, and the store steps the local
//! counters again after the commit, before the command answers.
//!
//! **Size.** At most 1,024 entries, 8 renderings each, and about 16 MiB
//! in all (counted exactly: an entry replaced, emptied or dropped counts
//! itself out); beyond either the map is emptied and fills again.
//!
//! **Filling.** A reader stores its result only if the local generation did
//! not move while it computed (checked under the map's lock); if it moved,
//! the answer is still correct for this request (it read committed rows) and
//! is simply not kept.

use crate::availability;
use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};
use polyclinic_core::facility::{Address, AddressService};
use polyclinic_core::schedule::Interval;
use polyclinic_core::slots::FreeSlot;
use polyclinic_core::{AddressId, PractitionerId, TenantId};
use polyclinic_store::availability_generation::{generation, shared_generation};
use polyclinic_store::{Engine, Store, StoreResult, catalog};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// Most entries kept; beyond it the map is emptied and fills again.
const MAX_ENTRIES: usize = 1024;
/// Most rendered variants kept per entry (bookable parts move with "now").
const MAX_RENDERED: usize = 8;
/// Most bytes (about) the entries and their renderings hold; beyond it the
/// map is emptied and fills again.
const MAX_BYTES: usize = 16 * 1024 * 1024;
/// About how many bytes a kept start costs.
const SLOT_BYTES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    tenant: TenantId,
    address: AddressId,
    practitioner: PractitionerId,
    start: Timestamp,
    end: Timestamp,
}

/// Which generation an entry was computed at: this process's counters, and
/// the shared rows on PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation {
    local: u64,
    shared: Option<i64>,
}

/// The free starts of one address over one window (see the module doc).
#[derive(Debug)]
pub struct CachedSlots {
    generation: Generation,
    /// The free starts in the window, in order, before the time rules.
    pub slots: Vec<FreeSlot>,
    /// The address's services (what the starts' ids name).
    pub services: Vec<AddressService>,
    rendered: Mutex<HashMap<(Range<usize>, String), Bytes>>,
    /// The bytes its cache holds, counted up by renderings and down as
    /// entries and renderings are dropped.
    held: Arc<AtomicUsize>,
    /// The bytes this entry holds (its starts and renderings), counted in
    /// `held` until it is dropped.
    own: AtomicUsize,
}

impl Drop for CachedSlots {
    fn drop(&mut self) {
        self.held.fetch_sub(*self.own.get_mut(), Ordering::Relaxed);
    }
}

impl CachedSlots {
    fn new(generation: Generation, slots: Vec<FreeSlot>, services: Vec<AddressService>) -> Self {
        let held = Arc::new(AtomicUsize::new(0));
        CachedSlots {
            generation,
            slots,
            services,
            rendered: Mutex::new(HashMap::new()),
            held,
            own: AtomicUsize::new(0),
        }
    }

    /// Counts `bytes` more held by this entry, in the cache's total too.
    fn hold(&self, bytes: usize) {
        self.own.fetch_add(bytes, Ordering::Relaxed);
        self.held.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` of this entry let go.
    fn let_go(&self, bytes: usize) {
        self.own.fetch_sub(bytes, Ordering::Relaxed);
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The part of [`Self::slots`] that a booking made now may take:
    /// starts within `bookable` (from `time_rules::bookable_starts`), its
    /// last second included, as [`availability::at_address`] counts them.
    pub fn bookable(&self, bookable: &Interval) -> Range<usize> {
        let last = bookable.end.checked_add(SignedDuration::from_secs(1)).unwrap_or(bookable.end);
        let lo = self.slots.partition_point(|s| s.start < bookable.start);
        let hi = self.slots.partition_point(|s| s.start < last).max(lo);
        lo..hi
    }

    /// The bytes of `part` of the slots in rendering `variant` (a dialect's
    /// name for its `with` scopes and time zone), rendered by `render` the
    /// first time only.
    pub fn rendered(
        &self,
        part: Range<usize>,
        variant: &str,
        render: impl FnOnce(&[FreeSlot], &[AddressService]) -> Bytes,
    ) -> Bytes {
        let key = (part.clone(), variant.to_owned());
        if let Some(b) = self.rendered.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return b.clone();
        }
        let bytes = render(&self.slots[part], &self.services);
        let mut rendered = self.rendered.lock().unwrap_or_else(|p| p.into_inner());
        if rendered.len() >= MAX_RENDERED {
            // The bookable part moves with "now": older renderings are
            // rarely asked for again.
            self.let_go(rendered.drain().map(|(_, b)| b.len()).sum());
        }
        self.hold(bytes.len());
        if let Some(old) = rendered.insert(key, bytes.clone()) {
            self.let_go(old.len());
        }
        bytes
    }
}

/// The cache of one server (held by `polyclinic_http::cache::Caches`).
pub struct SlotCache {
    enabled: AtomicBool,
    entries: RwLock<HashMap<Key, Arc<CachedSlots>>>,
    /// About how many bytes the entries hold (see [`MAX_BYTES`]).
    held: Arc<AtomicUsize>,
}

impl Default for SlotCache {
    fn default() -> Self {
        SlotCache {
            enabled: AtomicBool::new(true),
            entries: RwLock::new(HashMap::new()),
            held: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl SlotCache {
    /// Turns keeping entries on or off (off empties the cache).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    /// Whether entries are kept.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn get(&self, key: &Key, generation: Generation) -> Option<Arc<CachedSlots>> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|e| e.generation == generation).cloned()
    }

    /// Keeps `entry` unless the local generation moved since it was read.
    fn put(&self, key: Key, entry: CachedSlots) -> Arc<CachedSlots> {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if generation(key.tenant, key.practitioner.get(), key.address.get()) != entry.generation.local {
            return Arc::new(entry);
        }
        let size = entry.slots.len() * SLOT_BYTES;
        if (entries.len() >= MAX_ENTRIES && !entries.contains_key(&key))
            || self.held.load(Ordering::Relaxed) + size > MAX_BYTES
        {
            // Each entry counts itself out of `held` as it is dropped (now,
            // or when the last request still using it ends).
            entries.clear();
        }
        // Counted in this cache from now on (an entry not kept counts in
        // a total of its own).
        let mut entry = entry;
        entry.held = self.held.clone();
        entry.hold(size);
        let entry = Arc::new(entry);
        entries.insert(key, entry.clone());
        entry
    }

    /// How many entries are kept (tests, metrics).
    pub fn len(&self) -> usize {
        self.entries.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The free starts of `address` in `window` (before the time rules: clip
/// them with [`CachedSlots::bookable`]) and its services: from the cache
/// while its generation holds, computed and kept otherwise.
pub async fn address_slots(
    store: &Store,
    cache: &SlotCache,
    tenant: TenantId,
    address: &Address,
    window: &Interval,
) -> StoreResult<Arc<CachedSlots>> {
    let key = Key {
        tenant,
        address: address.id,
        practitioner: address.practitioner_id,
        start: window.start,
        end: window.end,
    };
    let (p, a) = (address.practitioner_id.get(), address.id.get());
    // Both generations are read before anything is computed (module doc).
    let local = generation(tenant, p, a);
    let shared = match store.engine() {
        Engine::Sqlite => None,
        Engine::Postgres => store.read(move |c| Box::pin(shared_generation(c, tenant, p, a))).await?,
    };
    let generation = Generation { local, shared };
    let use_cache = cache.enabled();
    if use_cache && let Some(hit) = cache.get(&key, generation) {
        return Ok(hit);
    }
    let (address, window) = (address.clone(), *window);
    let (slots, services) = store
        .read(move |c| {
            Box::pin(async move {
                let slots = availability::address_starts(c, tenant, &address, &window).await?;
                let services = catalog::address_services(c, tenant, address.id.get()).await?;
                Ok((slots, services))
            })
        })
        .await?;
    let entry = CachedSlots::new(generation, slots, services);
    Ok(if use_cache { cache.put(key, entry) } else { Arc::new(entry) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn entry(local: u64, starts: &[i64]) -> CachedSlots {
        let slots = starts.iter().map(|s| FreeSlot { start: at(*s), services: Vec::new() }).collect();
        CachedSlots::new(Generation { local, shared: None }, slots, Vec::new())
    }

    #[test]
    fn the_bookable_part_counts_the_horizons_last_second() {
        let e = entry(0, &[100, 200, 300, 400]);
        assert_eq!(e.bookable(&Interval { start: at(150), end: at(300) }), 1..3);
        assert_eq!(e.bookable(&Interval { start: at(0), end: at(99) }), 0..0);
        assert_eq!(e.bookable(&Interval { start: at(401), end: at(900) }), 4..4);
        assert_eq!(e.bookable(&Interval { start: at(100), end: at(400) }), 0..4);
    }

    #[test]
    fn a_part_is_rendered_once_per_variant() {
        let e = entry(0, &[100, 200]);
        let mut calls = 0;
        for _ in 0..3 {
            let b = e.rendered(0..2, "with", |s, _| {
                calls += 1;
                Bytes::from(s.len().to_string())
            });
            assert_eq!(b, Bytes::from("2"));
        }
        e.rendered(0..1, "with", |_, _| {
            calls += 1;
            Bytes::new()
        });
        e.rendered(0..2, "without", |_, _| {
            calls += 1;
            Bytes::new()
        });
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_result_computed_while_the_generation_moved_is_not_kept() {
        let cache = SlotCache::default();
        let tenant = TenantId(900_101);
        let key = Key { tenant, address: AddressId(2), practitioner: PractitionerId(1), start: at(0), end: at(1000) };
        let before = generation(tenant, 1, 2);
        // A write lands while the reader computes.
        polyclinic_store::availability_generation::bump(
            tenant,
            &[polyclinic_store::availability_generation::Resource::Address(2)],
        );
        cache.put(key, entry(before, &[100]));
        assert!(cache.is_empty());
        let now = generation(tenant, 1, 2);
        cache.put(key, entry(now, &[100]));
        assert!(cache.get(&key, Generation { local: now, shared: None }).is_some());
        polyclinic_store::availability_generation::bump(
            tenant,
            &[polyclinic_store::availability_generation::Resource::Practitioner(1)],
        );
        let later = generation(tenant, 1, 2);
        assert!(cache.get(&key, Generation { local: later, shared: None }).is_none(), "a booking of the practitioner");
    }

    #[test]
    fn the_bytes_held_are_counted_out_as_entries_and_renderings_go() {
        let cache = SlotCache::default();
        let tenant = TenantId(900_102);
        let key = |a: i64| Key {
            tenant,
            address: AddressId(a),
            practitioner: PractitionerId(1),
            start: at(0),
            end: at(1000),
        };
        let held = || cache.held.load(Ordering::Relaxed);
        let g = generation(tenant, 1, 1);
        let kept = cache.put(key(1), entry(g, &[100, 200]));
        assert_eq!(held(), 2 * SLOT_BYTES);
        kept.rendered(0..2, "with", |_, _| Bytes::from(vec![0u8; 1000]));
        assert_eq!(held(), 2 * SLOT_BYTES + 1000);
        // More renderings than kept: the older ones are counted out.
        for i in 0..MAX_RENDERED {
            kept.rendered(0..2, &format!("v{i}"), |_, _| Bytes::from(vec![0u8; 10]));
        }
        assert_eq!(held(), 2 * SLOT_BYTES + 10, "one rendering left after the map was emptied");
        // Replaced: the old entry counts itself out once the last user drops it.
        let newer = cache.put(key(1), entry(g, &[100]));
        assert_eq!(held(), 2 * SLOT_BYTES + 10 + SLOT_BYTES, "the old one is still in use");
        drop(kept);
        assert_eq!(held(), SLOT_BYTES);
        drop(newer);
        cache.set_enabled(false);
        assert_eq!(held(), 0, "emptied");
    }
}
