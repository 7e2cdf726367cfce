//! Maintenance that belongs to no dialect: the sweep of expired access
//! tokens (Docplanner's OAuth tokens today), run by `POST /admin/run-due` and
//! by the server's periodic sweep.

use crate::AppState;
use polyclinic_store::tenants;

/// Rows one sweep step deletes at most.
const SWEEP_BATCH: i64 = 1000;

/// Deletes every access token expired at "now", in bounded batches; answers
/// how many went.
pub async fn sweep_expired_tokens(state: &AppState) -> Result<u64, polyclinic_store::StoreError> {
    let now = state.now();
    let mut total = 0;
    loop {
        let n = state
            .store
            .write(move |c| Box::pin(async move { tenants::delete_expired_tokens(c, now, SWEEP_BATCH).await }))
            .await?;
        total += n;
        if n < SWEEP_BATCH as u64 {
            return Ok(total);
        }
    }
}
