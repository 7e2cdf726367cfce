//! The whole HTTP application: every dialect's router, the admin API, health
//! and metrics, under one body limit and the request metrics. Only this crate
//! knows every dialect; the dialects know none but themselves.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use polyclinic_core::tenant::Dialect;
use polyclinic_http::{AppState, MAX_BODY_BYTES, MAX_SEED_BYTES, health, metrics, video};

/// The dialects [`app`] mounts. A dialect joins this list in the same change
/// that nests its router below.
pub const MOUNTED_DIALECTS: &[Dialect] = &[Dialect::Embassy, Dialect::Docplanner, Dialect::Naboto, Dialect::Solo];

/// What the routers are built with beyond the state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Routing {
    /// Docplanner rate limits per API client.
    pub docplanner_limits: polyclinic_docplanner::ratelimit::Limits,
}

/// The whole HTTP application.
pub fn app(state: AppState, routing: Routing) -> Router {
    Router::new()
        .merge(health::router())
        .merge(video::router())
        .route("/admin/", axum::routing::get(polyclinic_admin::ui))
        .nest("/admin", polyclinic_admin::router(state.clone()).layer(DefaultBodyLimit::max(MAX_SEED_BYTES)))
        .nest("/embassy", polyclinic_embassy::router(state.clone()))
        .nest("/naboto", polyclinic_naboto::router(state.clone()))
        .nest("/qapi/v1", polyclinic_solo::router(state.clone()))
        .nest("/integrations/linking", polyclinic_solo::linking::router())
        .route("/oauth/v2/token", axum::routing::post(polyclinic_docplanner::oauth::token))
        .nest("/api/v3/integration", polyclinic_docplanner::router(state.clone(), routing.docplanner_limits))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}
