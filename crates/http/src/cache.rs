//! In-memory caches of what nearly every request looks up before its own
//! work: what a presented secret (API key, bearer token) names — its
//! credential and tenant — and the tenant's catalogue
//! ([`polyclinic_store::catalog::Snapshot`]: practitioners, healthcare
//! services, facilities, addresses, address services). Without them an
//! Embassy read costs four queries where one is its own.
//!
//! **Invalidation.** An entry is kept with the change counter of its
//! tables as it was read *before* the entry was loaded
//! ([`tenants::auth_epoch`], [`catalog::catalog_epoch`]), and is used only
//! while the counter has not moved. Every store function that writes
//! tenants, credentials, access tokens or the catalogue moves it inside its
//! transaction, and the request paths that write them ([`changed`], after
//! the commit) move it again: a write on this node is seen by the next
//! request, and an entry loaded between a write and its commit is dropped.
//! Writes by other nodes sharing a PostgreSQL database are not counted:
//! every entry also expires after the time to live ([`DEFAULT_TTL`],
//! `--cache-ttl-ms`), which bounds how long they go unseen. A TTL of zero
//! turns the caches off.
//!
//! **Free starts** ([`Caches::slots`], a
//! [`polyclinic_scheduling::availability_cache::SlotCache`]) follow the same
//! pattern with finer counters and no time to live: an entry carries the
//! generation of its address and practitioner
//! ([`polyclinic_store::availability_generation`]), stepped inside every
//! transaction that writes time held by bookings, work periods, breaks,
//! addresses or address services, and again after its commit by
//! [`polyclinic_store::Store::write`] itself. On PostgreSQL the generation
//! also has rows, stepped in the same transactions and read by every slot
//! request, so other nodes' writes are seen at once. A TTL of zero turns
//! this cache off too.
//!
//! Answers that name nothing (an unknown secret or token) are never kept:
//! a credential or token created a moment ago is accepted at once, and
//! failed attempts keep counting against the caller's address
//! ([`crate::throttle`]) exactly as without the cache. Keys are SHA-256
//! digests of the secrets, never the secrets.

use polyclinic_core::TenantId;
use polyclinic_core::tenant::{Credential, Dialect, Tenant};
use polyclinic_scheduling::availability_cache::SlotCache;
use polyclinic_store::catalog::{self, Snapshot};
use polyclinic_store::tenants::{self, TokenGrant};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long an entry is used without a change on this node: a change made
/// by another node is seen within this time.
pub const DEFAULT_TTL: Duration = Duration::from_secs(2);

/// Most entries of one map; beyond it the map is emptied and fills again
/// (only secrets that named a credential and live tokens are kept, so this
/// is reached only by very many live tokens).
const MAX_ENTRIES: usize = 65_536;

/// Records, after its transaction committed, a change of tenants,
/// credentials, access tokens or the catalogue made on this node: every
/// cached entry loaded before is dropped (see the module doc).
pub fn changed() {
    tenants::auth_changed();
    catalog::catalog_changed();
}

/// The SHA-256 digest of a presented secret: the caches' key.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A credential with its tenant, as a presented secret names them.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: Arc<Tenant>,
    pub credential: Credential,
}

/// A known access token: its grant and the tenant of its credential.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub tenant: Arc<Tenant>,
    pub grant: TokenGrant,
}

struct Entry<T> {
    value: T,
    epoch: u64,
    at: Instant,
}

/// One map of entries, each valid while its change counter holds and its
/// time to live runs.
struct Map<K, V> {
    entries: RwLock<HashMap<K, Entry<V>>>,
}

impl<K: Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map { entries: RwLock::new(HashMap::new()) }
    }

    fn get(&self, key: &K, epoch: u64, ttl: Duration) -> Option<V> {
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|e| e.epoch == epoch && e.at.elapsed() < ttl).map(|e| e.value.clone())
    }

    fn put(&self, key: K, value: V, epoch: u64, ttl: Duration) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, e| e.at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { value, epoch, at: Instant::now() });
    }

    fn clear(&self) {
        self.entries.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The caches of one server (see the module doc).
pub struct Caches {
    /// The time to live, in microseconds (settable while serving).
    ttl_micros: AtomicU64,
    secrets: Map<(Dialect, [u8; 32]), Authenticated>,
    tokens: Map<[u8; 32], TokenEntry>,
    catalogs: Map<TenantId, Arc<Snapshot>>,
    /// Free starts of addresses and their rendered bytes
    /// ([`polyclinic_scheduling::availability_cache`]): kept by generation,
    /// not by time to live (see the module doc).
    slots: SlotCache,
}

impl Default for Caches {
    fn default() -> Self {
        Caches::new(DEFAULT_TTL)
    }
}

impl Caches {
    /// Caches whose entries live at most `ttl` (zero: no caching).
    pub fn new(ttl: Duration) -> Self {
        let caches = Caches {
            ttl_micros: AtomicU64::new(0),
            secrets: Map::new(),
            tokens: Map::new(),
            catalogs: Map::new(),
            slots: SlotCache::default(),
        };
        caches.set_ttl(ttl);
        caches
    }

    /// The time to live of an entry.
    pub fn ttl(&self) -> Duration {
        Duration::from_micros(self.ttl_micros.load(Ordering::Relaxed))
    }

    /// Changes the time to live (zero turns caching off and empties the
    /// caches).
    pub fn set_ttl(&self, ttl: Duration) {
        self.ttl_micros.store(u64::try_from(ttl.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.slots.set_enabled(!ttl.is_zero());
        if ttl.is_zero() {
            self.secrets.clear();
            self.tokens.clear();
            self.catalogs.clear();
        }
    }

    /// The free starts of addresses (kept while [`Self::enabled`]).
    pub fn slots(&self) -> &SlotCache {
        &self.slots
    }

    /// Whether entries are kept at all.
    pub fn enabled(&self) -> bool {
        !self.ttl().is_zero()
    }

    /// The credential a secret (by [`digest`]) of `dialect` names, if cached.
    pub fn secret(&self, dialect: Dialect, digest: &[u8; 32]) -> Option<Authenticated> {
        self.secrets.get(&(dialect, *digest), tenants::auth_epoch(), self.ttl())
    }

    /// Keeps what a secret named, loaded after [`tenants::auth_epoch`] read `epoch`.
    pub fn keep_secret(&self, dialect: Dialect, digest: [u8; 32], epoch: u64, value: Authenticated) {
        if self.enabled() {
            self.secrets.put((dialect, digest), value, epoch, self.ttl());
        }
    }

    /// A known access token (by [`digest`]), if cached.
    pub fn token(&self, digest: &[u8; 32]) -> Option<TokenEntry> {
        self.tokens.get(digest, tenants::auth_epoch(), self.ttl())
    }

    /// Keeps a known access token, loaded after [`tenants::auth_epoch`] read `epoch`.
    pub fn keep_token(&self, digest: [u8; 32], epoch: u64, value: TokenEntry) {
        if self.enabled() {
            self.tokens.put(digest, value, epoch, self.ttl());
        }
    }

    /// The tenant's catalogue, if cached.
    pub fn catalog(&self, tenant: TenantId) -> Option<Arc<Snapshot>> {
        self.catalogs.get(&tenant, catalog::catalog_epoch(), self.ttl())
    }

    /// Keeps a tenant's catalogue, loaded after [`catalog::catalog_epoch`] read `epoch`.
    pub fn keep_catalog(&self, tenant: TenantId, epoch: u64, value: Arc<Snapshot>) {
        if self.enabled() {
            self.catalogs.put(tenant, value, epoch, self.ttl());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Arc<Snapshot> {
        Arc::new(Snapshot::default())
    }

    #[test]
    fn an_entry_is_used_until_its_tables_change() {
        let caches = Caches::new(Duration::from_secs(3600));
        let t = TenantId(7);
        let epoch = catalog::catalog_epoch();
        caches.keep_catalog(t, epoch, snapshot());
        // Another test of this process may change the catalogue meanwhile:
        // then the entry is gone, as it should be.
        if catalog::catalog_epoch() == epoch {
            assert!(caches.catalog(t).is_some());
        }
        catalog::catalog_changed();
        assert!(caches.catalog(t).is_none(), "a change drops the entry");
    }

    #[test]
    fn an_entry_loaded_before_a_change_is_not_used_after_it() {
        let caches = Caches::new(Duration::from_secs(3600));
        let before = catalog::catalog_epoch();
        // A write happens while the snapshot is being loaded.
        catalog::catalog_changed();
        caches.keep_catalog(TenantId(8), before, snapshot());
        assert!(caches.catalog(TenantId(8)).is_none());
    }

    #[test]
    fn a_zero_ttl_keeps_nothing() {
        let caches = Caches::new(Duration::ZERO);
        caches.keep_catalog(TenantId(9), catalog::catalog_epoch(), snapshot());
        assert!(caches.catalog(TenantId(9)).is_none());
    }

    #[test]
    fn an_entry_expires_after_its_ttl() {
        let caches = Caches::new(Duration::from_secs(3600));
        caches.keep_catalog(TenantId(10), catalog::catalog_epoch(), snapshot());
        // A TTL shorter than the entry's age: expired, whatever the epoch.
        caches.ttl_micros.store(0, Ordering::Relaxed);
        assert!(caches.catalog(TenantId(10)).is_none());
    }
}
