//! Tenants, credentials, and the admin views of messages and deliveries.

use crate::outbox::{Seq, next_id};
use crate::seal::SecretKey;
use crate::{Conn, StoreError, StoreResult, secs};
use jiff::Timestamp;
use polyclinic_core::tenant::{Credential, CredentialConfig, Dialect, Tenant};
use polyclinic_core::{CoreError, CredentialId, TenantId};
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

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

/// Stores an access token (by hash) for a credential until `expires_at`,
/// drops the credential's expired tokens, and expires its oldest live ones
/// beyond `max_live` (the new token always stays).
pub async fn issue_token(
    conn: &mut Conn,
    credential: &Credential,
    token: &str,
    now: Timestamp,
    expires_at: Timestamp,
    max_live: i64,
) -> StoreResult<()> {
    let hash = hash_secret(token);
    sqlx::query("DELETE FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND expires_at <= $3")
        .bind(credential.tenant_id.get())
        .bind(credential.id.get())
        .bind(secs(now))
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO oauth_tokens (tenant_id, token_hash, credential_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(credential.tenant_id.get())
        .bind(&hash)
        .bind(credential.id.get())
        .bind(secs(expires_at))
        .execute(&mut *conn)
        .await?;
    // The oldest first: by expiry, then by hash among tokens of one second.
    sqlx::query(
        "DELETE FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND token_hash <> $3 AND token_hash IN \
         (SELECT token_hash FROM oauth_tokens WHERE tenant_id = $1 AND credential_id = $2 AND token_hash <> $3 \
          ORDER BY expires_at DESC, token_hash DESC LIMIT 1000000 OFFSET $4)",
    )
    .bind(credential.tenant_id.get())
    .bind(credential.id.get())
    .bind(&hash)
    .bind((max_live - 1).max(0))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Deletes every token expired at `now`, of every tenant, in batches of at
/// most `batch` rows; answers how many went.
pub async fn delete_expired_tokens(conn: &mut Conn, now: Timestamp, batch: i64) -> StoreResult<u64> {
    let done = sqlx::query(
        "DELETE FROM oauth_tokens WHERE token_hash IN \
         (SELECT token_hash FROM oauth_tokens WHERE expires_at <= $1 LIMIT $2)",
    )
    .bind(secs(now))
    .bind(batch)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
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
    let row = sqlx::query("SELECT tenant_id, credential_id, expires_at FROM oauth_tokens WHERE token_hash = $1")
        .bind(hash_secret(token))
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(Err(TokenProblem::Unknown)) };
    let (tenant, id, expires): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    if expires <= secs(now) {
        return Ok(Err(TokenProblem::Expired));
    }
    let cred = sqlx::query(
        "SELECT tenant_id, id, dialect, client_id, secret_hash, doc FROM credentials WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    match cred {
        Some(r) => Ok(Ok(credential_from_row(&r)?)),
        None => Ok(Err(TokenProblem::Unknown)),
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
    let rows = sqlx::query(
        "SELECT id, target, event, attempts, last_status, last_error, state, created_at, doc FROM deliveries WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant.get())
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
    let index: std::collections::HashMap<String, usize> =
        list.iter().enumerate().map(|(i, d)| (d.id.clone(), i)).collect();
    let attempts = sqlx::query(
        "SELECT delivery_id, attempt, at, status, error, duration_ms FROM delivery_attempts WHERE tenant_id = $1 ORDER BY delivery_id, attempt",
    )
    .bind(tenant.get())
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
