//! The one check of a presented secret (an API key, a bearer token) that
//! every dialect authenticating by a static secret runs: the caller's
//! address must not be locked out for failing too often
//! ([`crate::throttle`]), the secret must name a credential of the dialect,
//! and a secret that names none counts as a failure of that address. Each
//! dialect answers the outcome in its own error shape.
//!
//! What a secret or an access token names is kept in memory
//! ([`crate::cache`]); what names nothing is looked up every time.

use crate::AppState;
use crate::cache::{self, Authenticated, TokenEntry};
use crate::throttle::Subject;
use polyclinic_core::TenantId;
use polyclinic_core::tenant::{Credential, Dialect, Tenant};
use polyclinic_store::catalog::{self as store_catalog, Snapshot};
use polyclinic_store::tenants::{self, TokenProblem};
use polyclinic_store::{StoreError, StoreResult};
use std::sync::Arc;

/// What a presented secret turned out to be.
#[derive(Debug)]
pub enum SecretCheck {
    /// It names this credential of this tenant.
    Valid { tenant: Box<Tenant>, credential: Credential },
    /// It names no credential of the dialect (counted as a failure).
    Invalid,
    /// The caller failed too often: try again in this many seconds.
    Locked { retry_after: i64 },
    /// The store could not answer.
    Failed(StoreError),
}

impl AppState {
    /// Checks `secret`, presented from `peer` (`throttle::peer_of` the
    /// request), as a credential of `dialect`.
    pub async fn check_secret(&self, dialect: Dialect, secret: &str, peer: Option<Subject>) -> SecretCheck {
        let subjects: Vec<_> = peer.into_iter().collect();
        if let Err(retry_after) = self.auth_locked(&subjects) {
            return SecretCheck::Locked { retry_after };
        }
        let digest = cache::digest(secret);
        let found = match self.caches.secret(dialect, &digest) {
            Some(hit) => Ok(Some(hit)),
            None => {
                let epoch = tenants::auth_epoch();
                let secret = secret.to_owned();
                let loaded = self
                    .store
                    .read(move |c| {
                        Box::pin(async move {
                            match tenants::authenticate(c, dialect, &secret).await? {
                                Some(cred) => Ok(Some((tenants::get(c, cred.tenant_id).await?, cred))),
                                None => Ok(None),
                            }
                        })
                    })
                    .await;
                loaded.map(|found| {
                    found.map(|(tenant, credential)| {
                        let hit = Authenticated { tenant: Arc::new(tenant), credential };
                        self.caches.keep_secret(dialect, digest, epoch, hit.clone());
                        hit
                    })
                })
            }
        };
        match found {
            Ok(Some(hit)) => {
                SecretCheck::Valid { tenant: Box::new(Tenant::clone(&hit.tenant)), credential: hit.credential }
            }
            Ok(None) => {
                self.auth_failed(&subjects);
                SecretCheck::Invalid
            }
            Err(e) => SecretCheck::Failed(e),
        }
    }

    /// What an access token (OAuth bearer token) grants at "now": its
    /// credential and tenant, or why it does not. Neither throttles nor
    /// counts failures: the caller does, as its protocol says.
    pub async fn check_token(&self, token: &str) -> StoreResult<Result<(Box<Tenant>, Credential), TokenProblem>> {
        let digest = cache::digest(token);
        let entry = match self.caches.token(&digest) {
            Some(hit) => hit,
            None => {
                let epoch = tenants::auth_epoch();
                let token = token.to_owned();
                let loaded = self
                    .store
                    .read(move |c| {
                        Box::pin(async move {
                            match tenants::token_grant(c, &token).await? {
                                Some(grant) => Ok(Some((tenants::get(c, grant.credential.tenant_id).await?, grant))),
                                None => Ok(None),
                            }
                        })
                    })
                    .await?;
                let Some((tenant, grant)) = loaded else { return Ok(Err(TokenProblem::Unknown)) };
                let entry = TokenEntry { tenant: Arc::new(tenant), grant };
                self.caches.keep_token(digest, epoch, entry.clone());
                entry
            }
        };
        Ok(entry.grant.at(self.now()).map(|credential| (Box::new(Tenant::clone(&entry.tenant)), credential)))
    }

    /// The tenant's catalogue ([`Snapshot`]): from memory when cached, else
    /// read (and kept).
    pub async fn catalog(&self, tenant: TenantId) -> StoreResult<Arc<Snapshot>> {
        if let Some(hit) = self.caches.catalog(tenant) {
            return Ok(hit);
        }
        let epoch = store_catalog::catalog_epoch();
        let snapshot =
            Arc::new(self.store.read(move |c| Box::pin(async move { Snapshot::load(c, tenant).await })).await?);
        self.caches.keep_catalog(tenant, epoch, snapshot.clone());
        Ok(snapshot)
    }
}
