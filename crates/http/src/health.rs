//! `/healthz` (the process answers), `/readyz` (the database answers and,
//! on SQLite, the writer task runs) and `/metrics` (Prometheus text: the
//! request metrics, and on SQLite the memory SQLite holds).

use crate::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Health, readiness and metrics routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.store.writer_alive() {
        tracing::error!("the SQLite writer is not running; writes fail");
        return (StatusCode::SERVICE_UNAVAILABLE, "database writer not running");
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database not reachable")
        }
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if state.store.engine() == polyclinic_store::Engine::Sqlite {
        // SQLite's heap in this process: its connections' page caches share
        // the soft limit (polyclinic_store::sqlite_memory).
        let heap = polyclinic_store::sqlite_memory::heap();
        metrics::gauge!("sqlite_heap_bytes").set(heap.used as f64);
        metrics::gauge!("sqlite_heap_highwater_bytes").set(heap.highwater as f64);
        metrics::gauge!("sqlite_heap_soft_limit_bytes").set(heap.soft_limit as f64);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
