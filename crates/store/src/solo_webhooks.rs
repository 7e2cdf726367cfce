//! Solo webhooks: the endpoints a tenant registered through the Solo API
//! (`/qapi/v1/webhooks`), each with the Solo event names it listens to and
//! its `encryptionKey`, kept sealed under the server key
//! ([`crate::seal::SecretKey`]): the key is needed back in clear to encrypt
//! each payload, so it cannot be hashed, and it is never stored in clear.
//!
//! A webhook belongs to its tenant (any of the tenant's Solo API keys sees
//! it); the credential that created it is kept for the record. Deleting a
//! webhook deactivates it (`active = 0`): it is gone from every read and
//! receives nothing more, while the deliveries already queued for it still
//! name it.

use crate::{Conn, StoreResult, secs, ts};
use jiff::Timestamp;
use polyclinic_core::{CredentialId, TenantId};
use sqlx::Row;

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoloWebhook {
    /// A UUID, lowercase and hyphenated.
    pub id: String,
    /// The API key that registered it.
    pub credential_id: CredentialId,
    pub endpoint: String,
    /// Solo event names (`appointment:scheduled`, ...), in the order given.
    pub events: Vec<String>,
    /// The `encryptionKey`, sealed under the server key.
    pub sealed_key: String,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const COLUMNS: &str = "id, credential_id, endpoint, events, sealed_key, active, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<SoloWebhook> {
    Ok(SoloWebhook {
        id: r.try_get("id")?,
        credential_id: CredentialId(r.try_get("credential_id")?),
        endpoint: r.try_get("endpoint")?,
        events: serde_json::from_str(&r.try_get::<String, _>("events")?)?,
        sealed_key: r.try_get("sealed_key")?,
        active: r.try_get::<i64, _>("active")? != 0,
        created_at: ts(r.try_get("created_at")?)?,
        updated_at: ts(r.try_get("updated_at")?)?,
    })
}

/// Stores a new webhook (its id and sealed key chosen by the caller), after
/// the tenant's others (`seq`: the order of the list).
pub async fn create(conn: &mut Conn, tenant: TenantId, w: &SoloWebhook) -> StoreResult<()> {
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM solo_webhooks WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO solo_webhooks (tenant_id, id, seq, credential_id, endpoint, events, sealed_key, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(tenant.get())
    .bind(&w.id)
    .bind(last.unwrap_or(0).saturating_add(1))
    .bind(w.credential_id.get())
    .bind(&w.endpoint)
    .bind(serde_json::to_string(&w.events)?)
    .bind(&w.sealed_key)
    .bind(i64::from(w.active))
    .bind(secs(w.created_at))
    .bind(secs(w.updated_at))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How many active webhooks the tenant has.
pub async fn count_active(conn: &mut Conn, tenant: TenantId) -> StoreResult<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM solo_webhooks WHERE tenant_id = $1 AND active = 1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?)
}

/// One active webhook of the tenant.
pub async fn get(conn: &mut Conn, tenant: TenantId, id: &str) -> StoreResult<Option<SoloWebhook>> {
    let sql = format!("SELECT {COLUMNS} FROM solo_webhooks WHERE tenant_id = $1 AND id = $2 AND active = 1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(from_row).transpose()
}

/// The tenant's active webhooks, in the order they were added.
pub async fn list(conn: &mut Conn, tenant: TenantId) -> StoreResult<Vec<SoloWebhook>> {
    let sql = format!("SELECT {COLUMNS} FROM solo_webhooks WHERE tenant_id = $1 AND active = 1 ORDER BY seq");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant.get()).fetch_all(&mut *conn).await?;
    rows.iter().map(from_row).collect()
}

/// The tenant's active webhooks that listen to the Solo event `event`.
pub async fn listening(conn: &mut Conn, tenant: TenantId, event: &str) -> StoreResult<Vec<SoloWebhook>> {
    let mut all = list(conn, tenant).await?;
    all.retain(|w| w.events.iter().any(|e| e == event));
    Ok(all)
}

/// Replaces an active webhook's endpoint and events; answers the webhook as
/// it now is, or `None` when the tenant has no such active webhook.
pub async fn update(
    conn: &mut Conn,
    tenant: TenantId,
    id: &str,
    endpoint: &str,
    events: &[String],
    now: Timestamp,
) -> StoreResult<Option<SoloWebhook>> {
    let r = sqlx::query(
        "UPDATE solo_webhooks SET endpoint = $1, events = $2, updated_at = $3 \
         WHERE tenant_id = $4 AND id = $5 AND active = 1",
    )
    .bind(endpoint)
    .bind(serde_json::to_string(events)?)
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Ok(None);
    }
    get(conn, tenant, id).await
}

/// Deactivates a webhook; answers whether an active one existed.
pub async fn deactivate(conn: &mut Conn, tenant: TenantId, id: &str, now: Timestamp) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE solo_webhooks SET active = 0, updated_at = $1 WHERE tenant_id = $2 AND id = $3 AND active = 1",
    )
    .bind(secs(now))
    .bind(tenant.get())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() > 0)
}
