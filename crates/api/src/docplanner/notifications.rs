//! Docplanner: notifications.

use crate::AppState;
use axum::Router;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
}
