//! Polyclinic's shared HTTP plumbing, below every dialect and the admin API:
//! the state every handler gets ([`AppState`]), the shared error type and JSON
//! extractor, failed-authentication throttling, request metrics, health and
//! readiness, and the video join page. The server assembles the routers
//! (`polyclinic::app`).
//!
//! Handlers translate HTTP into scheduling commands and results back into
//! HTTP; they hold no SQL and no domain rules.

pub mod auth;
pub mod cache;
pub mod callback;
pub mod clock;
pub mod error;
pub mod health;
pub mod metrics;
pub mod throttle;
pub mod video;

use polyclinic_scheduling::Scheduling;
use polyclinic_store::Store;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub use clock::{Clock, SystemClock, TestClock};

/// Largest request body accepted by the dialects.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest seed document accepted by the admin API.
pub const MAX_SEED_BYTES: usize = 16 * 1024 * 1024;

/// SHA-256 of the admin token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    /// Present when the server runs with `--test-clock`: the same clock, settable.
    pub test_clock: Option<Arc<TestClock>>,
    /// SHA-256 of the admin token (the token itself is not kept).
    pub admin_token_hash: Arc<[u8; 32]>,
    pub metrics: metrics::Metrics,
    /// The delivery engine (dispatch, sends, handshakes).
    pub engine: Arc<polyclinic_delivery::Engine>,
    /// How clients reach this server (`http://host:port`), the base of full URLs.
    pub public_url: Arc<str>,
    /// The port the server listens on (a subscription may not point back at it).
    pub local_port: u16,
    /// Default heartbeat period of new subscriptions, in seconds (0: none).
    pub heartbeat_seconds: i64,
    /// The scheduling commands: the only way a handler changes an
    /// appointment, a calendar or a patient. The server registers their
    /// gates (real-time approvals) at start.
    pub scheduling: Scheduling,
    /// Failed authentications of every dialect and the admin API.
    pub auth_throttle: throttle::AuthThrottle,
    /// Credentials, tenants and catalogues in memory ([`cache`]).
    pub caches: Arc<cache::Caches>,
}

impl AppState {
    /// State for a store, a clock, an admin token and a delivery engine.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        test_clock: Option<Arc<TestClock>>,
        admin_token: &str,
        engine: Arc<polyclinic_delivery::Engine>,
        public_url: &str,
        local_port: u16,
    ) -> Self {
        let wake = engine.clone();
        AppState {
            scheduling: Scheduling::new(store.clone(), Arc::new(move || wake.wake())),
            store,
            clock,
            test_clock,
            admin_token_hash: Arc::new(hash_token(admin_token)),
            metrics: metrics::Metrics::global(),
            engine,
            public_url: Arc::from(public_url.trim_end_matches('/')),
            local_port,
            heartbeat_seconds: 3600,
            auth_throttle: throttle::AuthThrottle::default(),
            caches: Arc::new(cache::Caches::default()),
        }
    }

    /// `Err(retry_after_seconds)` when one of `subjects` has failed to
    /// authenticate too often in this window (see [`throttle`]).
    pub fn auth_locked(&self, subjects: &[throttle::Subject]) -> Result<(), i64> {
        self.auth_throttle.check(subjects, self.now().as_second())
    }

    /// Counts a failed authentication of `subjects`.
    pub fn auth_failed(&self, subjects: &[throttle::Subject]) {
        self.auth_throttle.failed(subjects, self.now().as_second())
    }

    /// "Now", from the injected clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }
}
