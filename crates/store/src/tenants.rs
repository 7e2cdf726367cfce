//! Tenants, credentials, and the admin views of messages and deliveries.

use crate::outbox::{Seq, next_id};
use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::tenant::{Credential, CredentialConfig, Dialect, Tenant};
use polyclinic_core::{CoreError, CredentialId, TenantId};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::sync::atomic::{AtomicU64, Ordering};
use subtle::ConstantTimeEq;

/// Counts the changes this process made to tenants, credentials and access
/// tokens (see [`auth_epoch`]).
static AUTH_EPOCH: AtomicU64 = AtomicU64::new(0);

/// The number of changes this process has made so far to tenants,
/// credentials and access tokens. An in-memory cache of what a presented
/// secret names (`polyclinic_http::cache`) keeps an answer only while this
/// number is the one it read before loading the answer.
///
/// Every function of this module that writes those tables calls
/// [`auth_changed`] inside its transaction; callers that can, call it again
/// once their transaction has committed, so that a cache filled from the
/// old rows between the two is dropped too. Changes made by other processes
/// (other nodes on one PostgreSQL database) are not counted: the cache's
/// time to live bounds how long they go unseen.
pub fn auth_epoch() -> u64 {
    AUTH_EPOCH.load(Ordering::Acquire)
}

/// Records a change of tenants, credentials or access tokens (see [`auth_epoch`]).
pub fn auth_changed() {
    AUTH_EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// SHA-256 of a secret, hex encoded: what the credentials table keeps.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Loads a tenant by id.
pub async fn get(conn: &mut Conn, id: TenantId) -> StoreResult<Tenant> {
    let doc: Option<String> = sqlx::query_scalar("SELECT doc FROM tenants WHERE tenant_id = $1")
        .bind(id.get())
        .fetch_optional(&mut *conn)
        .await?;
    let doc = doc.ok_or_else(|| CoreError::not_found("tenant", id))?;
    Ok(serde_json::from_str(&doc)?)
}

/// Loads a tenant by its seed key.
pub async fn by_key(conn: &mut Conn, key: &str) -> StoreResult<Option<Tenant>> {
    let doc: Option<String> =
        sqlx::query_scalar("SELECT doc FROM tenants WHERE key = $1").bind(key).fetch_optional(&mut *conn).await?;
    doc.map(|d| serde_json::from_str(&d).map_err(StoreError::from)).transpose()
}

/// Every tenant, by id.
pub async fn list(conn: &mut Conn) -> StoreResult<Vec<Tenant>> {
    let docs: Vec<String> =
        sqlx::query_scalar("SELECT doc FROM tenants ORDER BY tenant_id").fetch_all(&mut *conn).await?;
    docs.iter().map(|d| serde_json::from_str(d).map_err(StoreError::from)).collect()
}

/// Inserts or updates a tenant by key; answers its id.
pub async fn upsert(conn: &mut Conn, tenant: &mut Tenant, now: Timestamp) -> StoreResult<TenantId> {
    tenant.settings.validate()?;
    if jiff::tz::TimeZone::get(&tenant.timezone).is_err() {
        return Err(CoreError::invalid("timezone", format!("`{}` is not an IANA time zone", tenant.timezone)).into());
    }
    auth_changed();
    let existing: Option<i64> = sqlx::query_scalar("SELECT tenant_id FROM tenants WHERE key = $1")
        .bind(&tenant.key)
        .fetch_optional(&mut *conn)
        .await?;
    match existing {
        Some(id) => {
            tenant.id = TenantId(id);
            sqlx::query("UPDATE tenants SET doc = $1 WHERE tenant_id = $2")
                .bind(serde_json::to_string(tenant)?)
                .bind(id)
                .execute(&mut *conn)
                .await?;
        }
        None => {
            tenant.id = TenantId(next_id(conn, Seq::Entity).await?);
            sqlx::query("INSERT INTO tenants (tenant_id, key, doc, created_at) VALUES ($1, $2, $3, $4)")
                .bind(tenant.id.get())
                .bind(&tenant.key)
                .bind(serde_json::to_string(tenant)?)
                .bind(secs(now))
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(tenant.id)
}

/// Secrets a protocol needs back in clear, stored sealed with the credential.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolSecrets {
    /// Solo: the key that encrypts webhook payloads.
    pub webhook_secret: Option<String>,
    /// Docplanner: the API key sent with PUSH notifications.
    pub push_api_key: Option<String>,
}

impl ProtocolSecrets {
    /// The sealed form to store, or `None` when there is nothing to keep.
    pub fn seal(&self, key: &SecretKey) -> StoreResult<Option<String>> {
        if self.webhook_secret.is_none() && self.push_api_key.is_none() {
            return Ok(None);
        }
        Ok(Some(key.seal(&serde_json::to_string(self)?)))
    }
}

/// Opens the protocol secrets stored with a credential.
pub async fn protocol_secrets(
    conn: &mut Conn,
    tenant: TenantId,
    credential: CredentialId,
    key: &SecretKey,
) -> StoreResult<ProtocolSecrets> {
    let sealed: Option<Option<String>> =
        sqlx::query_scalar("SELECT sealed_secret FROM credentials WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.get())
            .bind(credential.get())
            .fetch_optional(&mut *conn)
            .await?;
    match sealed.flatten() {
        None => Ok(ProtocolSecrets::default()),
        Some(s) => {
            let plain = key.open(&s).map_err(|e| StoreError::Corrupt(format!("credential {credential}: {e}")))?;
            Ok(serde_json::from_str(&plain)?)
        }
    }
}

/// Every credential of `dialect`, of every tenant, that keeps protocol
/// secrets, with those secrets opened (tenant order, then credential order).
/// For the one protocol request that names no tenant: Solo's context-aware
/// link, which only the tenant's `webhook_secret` can decrypt.
pub async fn protocol_secrets_of_dialect(
    conn: &mut Conn,
    dialect: Dialect,
    key: &SecretKey,
) -> StoreResult<Vec<(TenantId, CredentialId, ProtocolSecrets)>> {
    let rows: Vec<(i64, i64, String)> = sqlx::query_as(
        "SELECT tenant_id, id, sealed_secret FROM credentials \
         WHERE dialect = $1 AND sealed_secret IS NOT NULL ORDER BY tenant_id, id",
    )
    .bind(dialect.as_str())
    .fetch_all(&mut *conn)
    .await?;
    // One unreadable credential (sealed under another server key) must not
    // stop the others: it is logged and left out.
    Ok(rows
        .into_iter()
        .filter_map(|(tenant, id, sealed)| {
            match key.open(&sealed).ok().and_then(|plain| serde_json::from_str(&plain).ok()) {
                Some(secrets) => Some((TenantId(tenant), CredentialId(id), secrets)),
                None => {
                    tracing::warn!(tenant, credential = id, "a credential's protocol secrets cannot be opened");
                    None
                }
            }
        })
        .collect())
}

/// A credential to create: the secret is hashed before it is stored.
pub struct NewCredential<'a> {
    pub dialect: Dialect,
    pub client_id: &'a str,
    pub secret: &'a str,
    /// A secret the protocol needs back in clear, already sealed by the caller.
    pub sealed_secret: Option<String>,
    pub config: CredentialConfig,
}

/// Adds a credential, or updates it when the same credential (same client id,
/// or for dialects without client ids the same secret) is already registered
/// to the same tenant. The same credential on another tenant is refused: a
/// credential belongs to exactly one tenant.
pub async fn upsert_credential(conn: &mut Conn, tenant: TenantId, c: NewCredential<'_>) -> StoreResult<CredentialId> {
    if c.secret.is_empty() || c.secret.len() > 512 {
        return Err(CoreError::invalid("credentials", "a secret must be 1 to 512 characters long").into());
    }
    let hash = hash_secret(c.secret);
    auth_changed();
    // Identity: the client id where the dialect has one, else the secret.
    let row = if c.client_id.is_empty() {
        sqlx::query("SELECT tenant_id, id FROM credentials WHERE dialect = $1 AND client_id = '' AND secret_hash = $2")
            .bind(c.dialect.as_str())
            .bind(&hash)
            .fetch_optional(&mut *conn)
            .await?
    } else {
        sqlx::query("SELECT tenant_id, id FROM credentials WHERE dialect = $1 AND client_id = $2")
            .bind(c.dialect.as_str())
            .bind(c.client_id)
            .fetch_optional(&mut *conn)
            .await?
    };
    let doc = serde_json::to_string(&c.config)?;
    if let Some(row) = row {
        let (owner, id): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        if owner != tenant.get() {
            let what = if c.client_id.is_empty() {
                c.dialect.as_str().to_owned()
            } else {
                format!("{} client {}", c.dialect.as_str(), c.client_id)
            };
            return Err(CoreError::AlreadyExists { entity: "credential", key: what }.into());
        }
        sqlx::query(
            "UPDATE credentials SET secret_hash = $1, doc = $2, sealed_secret = $3 WHERE tenant_id = $4 AND id = $5",
        )
        .bind(&hash)
        .bind(doc)
        .bind(c.sealed_secret)
        .bind(owner)
        .bind(id)
        .execute(&mut *conn)
        .await?;
        return Ok(CredentialId(id));
    }
    let id = next_id(conn, Seq::Entity).await?;
    sqlx::query(
        "INSERT INTO credentials (tenant_id, id, dialect, client_id, secret_hash, sealed_secret, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.get())
    .bind(id)
    .bind(c.dialect.as_str())
    .bind(c.client_id)
    .bind(hash)
    .bind(c.sealed_secret)
    .bind(doc)
    .execute(&mut *conn)
    .await?;
    Ok(CredentialId(id))
}

fn credential_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Credential> {
    let dialect: String = row.try_get("dialect")?;
    Ok(Credential {
        id: CredentialId(row.try_get("id")?),
        tenant_id: TenantId(row.try_get("tenant_id")?),
        dialect: Dialect::parse(&dialect).ok_or_else(|| StoreError::Corrupt(format!("dialect {dialect}")))?,
        client_id: row.try_get("client_id")?,
        config: serde_json::from_str(&row.try_get::<String, _>("doc")?)?,
    })
}

/// Finds the credential a presented secret (API key, bearer token) belongs to.
/// The lookup is by hash; the hash comparison is repeated in constant time.
pub async fn authenticate(conn: &mut Conn, dialect: Dialect, secret: &str) -> StoreResult<Option<Credential>> {
    let hash = hash_secret(secret);
    let row = sqlx::query(
        "SELECT tenant_id, id, dialect, client_id, secret_hash, doc FROM credentials WHERE dialect = $1 AND client_id = '' AND secret_hash = $2",
    )
    .bind(dialect.as_str())
    .bind(&hash)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => {
            let stored: String = r.try_get("secret_hash")?;
            if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                Ok(Some(credential_from_row(&r)?))
            } else {
                Ok(None)
            }
        }
        None => Ok(None),
    }
}

/// The job (`store::jobs`) that deletes a tenant's expired access tokens,
/// armed for the earliest expiry; one per tenant.
pub const TOKEN_EXPIRY_JOB: &str = "token-expiry";
const TOKEN_EXPIRY_SUBJECT: &str = "access-tokens";

/// How long an expired access token is kept before it is deleted, so that a
/// client presenting it is told it expired rather than that it is unknown
/// (and so the answer does not depend on when the expiry job last ran).
pub const TOKEN_RETENTION_SECS: i64 = 24 * 3600;

/// The moment a token that expires at `expires_at` is deleted.
fn token_purge_at(expires_at: i64) -> i64 {
    expires_at.saturating_add(TOKEN_RETENTION_SECS)
}

/// Deletes up to `batch` of the tenant's access tokens expired for longer
/// than the retention at `now`, and arms the expiry job again: at once when
/// more such ones remain, else for the earliest purge left. Answers how
/// many went.
pub async fn expire_tokens(conn: &mut Conn, tenant: TenantId, now: Timestamp, batch: i64) -> StoreResult<u64> {
    let gone = sqlx::query(
        "DELETE FROM oauth_tokens WHERE tenant_id = $1 AND token_hash IN \
         (SELECT token_hash FROM oauth_tokens WHERE tenant_id = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3)",
    )
    .bind(tenant.get())
    .bind(secs(now).saturating_sub(TOKEN_RETENTION_SECS))
    .bind(batch)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if gone > 0 {
        auth_changed();
    }
    let next: Option<i64> = sqlx::query_scalar("SELECT MIN(expires_at) FROM oauth_tokens WHERE tenant_id = $1")
        .bind(tenant.get())
        .fetch_one(&mut *conn)
        .await?;
    if let Some(next) = next {
        crate::jobs::arm(
            conn,
            tenant,
            TOKEN_EXPIRY_JOB,
            TOKEN_EXPIRY_SUBJECT,
            crate::ts(token_purge_at(next))?,
            &serde_json::json!({}),
        )
        .await?;
    }
    Ok(gone)
}

/// Stores an access token (by hash) for a credential until `expires_at`,
/// drops the credential's tokens expired beyond the retention, and deletes
/// its oldest live ones beyond `max_live` (the new token always stays).
pub async fn issue_token(
    conn: &mut Conn,
    credential: &Credential,
    token: &str,
    now: Timestamp,
    expires_at: Timestamp,
    max_live: i64,
) -> StoreResult<()> {
    let hash = hash_secret(token);
    // The expiry job's row first, then the tokens: the order the job itself
    // takes them in (`jobs::due` locks its row, then it deletes tokens), so
    // that a token issued while the job runs waits for it instead of
    // deadlocking with it on PostgreSQL.
    let purge_at = crate::ts(token_purge_at(secs(expires_at)))?;
    crate::jobs::arm_earliest(conn, credential.tenant_id, TOKEN_EXPIRY_JOB, TOKEN_EXPIRY_SUBJECT, purge_at).await?;
    // A new token needs no invalidation (a token not found is never
    // cached); a token deleted here does (see [`auth_epoch`]).
    let expired =
        sqlx::query("DELETE FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND expires_at <= $3")
            .bind(credential.tenant_id.get())
            .bind(credential.id.get())
            .bind(secs(now).saturating_sub(TOKEN_RETENTION_SECS))
            .execute(&mut *conn)
            .await?
            .rows_affected();
    sqlx::query("INSERT INTO oauth_tokens (tenant_id, token_hash, credential_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(credential.tenant_id.get())
        .bind(&hash)
        .bind(credential.id.get())
        .bind(secs(expires_at))
        .execute(&mut *conn)
        .await?;
    // The oldest first: by expiry, then by hash among tokens of one second.
    let evicted = sqlx::query(
        "DELETE FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND token_hash <> $3 AND token_hash IN \
         (SELECT token_hash FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND token_hash <> $3 \
          ORDER BY expires_at DESC, token_hash DESC LIMIT 1000000 OFFSET $4)",
    )
    .bind(credential.tenant_id.get())
    .bind(credential.id.get())
    .bind(&hash)
    .bind((max_live - 1).max(0))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if expired + evicted > 0 {
        auth_changed();
    }
    Ok(())
}

/// Why a presented access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Unknown,
    Expired,
}

/// The credential an access token belongs to, if the token is known and not
/// expired at `now`.
pub async fn token_credential(
    conn: &mut Conn,
    token: &str,
    now: Timestamp,
) -> StoreResult<Result<Credential, TokenProblem>> {
    Ok(match token_grant(conn, token).await? {
        None => Err(TokenProblem::Unknown),
        Some(grant) => grant.at(now),
    })
}

/// What a known access token grants: its credential, until when.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub credential: Credential,
    /// Unix seconds; the token is expired from this second on.
    pub expires_at: i64,
}

impl TokenGrant {
    /// The credential, if the token is not expired at `now`.
    pub fn at(&self, now: Timestamp) -> Result<Credential, TokenProblem> {
        if self.expires_at <= secs(now) { Err(TokenProblem::Expired) } else { Ok(self.credential.clone()) }
    }
}

/// The credential an access token belongs to and its expiry, expired or
/// not; `None` when the token (or its credential) is unknown. One statement.
pub async fn token_grant(conn: &mut Conn, token: &str) -> StoreResult<Option<TokenGrant>> {
    let row = sqlx::query(
        "SELECT c.tenant_id, c.id, c.dialect, c.client_id, c.secret_hash, c.doc, t.expires_at \
         FROM oauth_tokens t JOIN credentials c ON c.tenant_id = t.tenant_id AND c.id = t.credential_id \
         WHERE t.token_hash = $1",
    )
    .bind(hash_secret(token))
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Some(TokenGrant { credential: credential_from_row(&r)?, expires_at: r.try_get("expires_at")? })),
        None => Ok(None),
    }
}

/// Finds an OAuth client (Docplanner) by client id and secret, in constant time.
pub async fn authenticate_client(
    conn: &mut Conn,
    dialect: Dialect,
    client_id: &str,
    secret: &str,
) -> StoreResult<Option<Credential>> {
    let row = sqlx::query(
        "SELECT tenant_id, id, dialect, client_id, secret_hash, doc FROM credentials WHERE dialect = $1 AND client_id = $2",
    )
    .bind(dialect.as_str())
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?;
    let hash = hash_secret(secret);
    match row {
        Some(r) => {
            let stored: String = r.try_get("secret_hash")?;
            if bool::from(stored.as_bytes().ct_eq(hash.as_bytes())) {
                Ok(Some(credential_from_row(&r)?))
            } else {
                Ok(None)
            }
        }
        None => Ok(None),
    }
}

/// A delivery, as the admin API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub id: String,
    pub target: String,
    pub event: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub state: String,
    pub created_at: String,
    /// The names of the HTTP headers sent with it; never their values,
    /// which may be secrets (API keys, `Authorization`).
    pub headers: Vec<String>,
    /// Every attempt, in order.
    pub history: Vec<crate::deliveries::AttemptRow>,
}

/// The tenant's deliveries, oldest first, each with its attempts.
pub async fn deliveries(conn: &mut Conn, tenant: TenantId) -> StoreResult<Vec<DeliveryRow>> {
    deliveries_page(conn, tenant, None, None).await
}

/// A page of the tenant's deliveries in id order: those after the delivery
/// `after` (all from the first without it), at most `limit` (all without
/// it), each with its attempts. Reads go through the primary key, so a page
/// costs its own size whatever the history's.
pub async fn deliveries_page(
    conn: &mut Conn,
    tenant: TenantId,
    after: Option<i64>,
    limit: Option<i64>,
) -> StoreResult<Vec<DeliveryRow>> {
    let after = after.unwrap_or(i64::MIN);
    let limit = limit.unwrap_or(i64::MAX);
    let rows = sqlx::query(
        "SELECT id, target, event, attempts, last_status, last_error, state, created_at, doc FROM deliveries \
         WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(tenant.get())
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut list = rows
        .iter()
        .map(|r| {
            let spec: crate::deliveries::NewDelivery = serde_json::from_str(&r.try_get::<String, _>("doc")?)?;
            let headers = match spec.channel {
                crate::deliveries::Channel::Http { headers, .. } => headers.into_iter().map(|(k, _)| k).collect(),
                _ => Vec::new(),
            };
            Ok(DeliveryRow {
                id: r.try_get::<i64, _>("id")?.to_string(),
                target: r.try_get("target")?,
                event: r.try_get("event")?,
                attempts: r.try_get("attempts")?,
                last_status: r.try_get("last_status")?,
                last_error: r.try_get("last_error")?,
                state: r.try_get("state")?,
                created_at: crate::ts(r.try_get("created_at")?)?.to_string(),
                headers,
                history: Vec::new(),
            })
        })
        .collect::<StoreResult<Vec<DeliveryRow>>>()?;
    let Some(last) = rows.last().map(|r| r.try_get::<i64, _>("id")).transpose()? else {
        return Ok(list);
    };
    let index: std::collections::HashMap<String, usize> =
        list.iter().enumerate().map(|(i, d)| (d.id.clone(), i)).collect();
    // The page's attempts: the same id range, through the primary key.
    let attempts = sqlx::query(
        "SELECT delivery_id, attempt, at, status, error, duration_ms FROM delivery_attempts \
         WHERE tenant_id = $1 AND delivery_id > $2 AND delivery_id <= $3 ORDER BY delivery_id, attempt",
    )
    .bind(tenant.get())
    .bind(after)
    .bind(last)
    .fetch_all(&mut *conn)
    .await?;
    for r in &attempts {
        let id = r.try_get::<i64, _>("delivery_id")?.to_string();
        if let Some(i) = index.get(&id) {
            list[*i].history.push(crate::deliveries::AttemptRow {
                attempt: r.try_get("attempt")?,
                at: crate::ts(r.try_get("at")?)?.to_string(),
                status: r.try_get("status")?,
                error: r.try_get("error")?,
                duration_ms: r.try_get("duration_ms")?,
            });
        }
    }
    Ok(list)
}
