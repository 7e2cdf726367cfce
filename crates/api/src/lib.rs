//! Polyclinic's HTTP layer: the routers of every dialect, the admin API,
//! health, readiness and metrics, assembled by [`app`].
//!
//! Handlers translate HTTP into store commands and results back into HTTP;
//! they hold no SQL and no domain rules.

pub mod admin;
pub mod clock;
pub mod docplanner;
pub mod embassy;
pub mod error;
pub mod health;
pub mod metrics;
pub mod throttle;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use polyclinic_store::Store;
use std::sync::Arc;

pub use clock::{Clock, SystemClock, TestClock};

/// Largest request body accepted by the dialects.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest seed document accepted by the admin API.
pub const MAX_SEED_BYTES: usize = 16 * 1024 * 1024;

/// The dialects [`app`] mounts. A dialect joins this list in the same change
/// that nests its router below.
pub const MOUNTED_DIALECTS: &[polyclinic_core::tenant::Dialect] =
    &[polyclinic_core::tenant::Dialect::Embassy, polyclinic_core::tenant::Dialect::Docplanner];

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
    /// Docplanner rate limits and their per-node counters.
    pub docplanner_limits: docplanner::ratelimit::RateLimiter,
    /// Failed authentications of every dialect and the admin API.
    pub auth_throttle: throttle::AuthThrottle,
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
        AppState {
            store,
            clock,
            test_clock,
            admin_token_hash: Arc::new(admin::hash_token(admin_token)),
            metrics: metrics::Metrics::global(),
            engine,
            public_url: Arc::from(public_url.trim_end_matches('/')),
            local_port,
            heartbeat_seconds: 3600,
            docplanner_limits: docplanner::ratelimit::RateLimiter::default(),
            auth_throttle: throttle::AuthThrottle::default(),
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

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .route("/admin/", axum::routing::get(admin::ui))
        .nest("/admin", admin::router(state.clone()).layer(DefaultBodyLimit::max(MAX_SEED_BYTES)))
        .nest("/embassy", embassy::router(state.clone()))
        .route("/oauth/v2/token", axum::routing::post(docplanner::oauth::token))
        .nest("/api/v3/integration", docplanner::router(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}
