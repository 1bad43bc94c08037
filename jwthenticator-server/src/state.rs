//! What every handler shares.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use jwthenticator_core::{Audience, Claims};
use uuid::Uuid;

use crate::config::{Config, SecurityConfig};
use crate::error::ApiError;
use crate::key_hash::KeyHasher;
use crate::keys::ActiveKeys;
use crate::security::{ClientAddress, FailureLimiter};
use crate::store::Store;

/// The lifetimes and claims the server issues with, derived once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueSettings {
    /// `KEY_EXPIRY`: seconds a registered key lives.
    pub key_expiry: u64,
    /// `REFRESH_TOKEN_EXPIRY`: seconds a refresh token family lives.
    pub refresh_token_expiry: u64,
    /// `JWT_LEASE_TIME`: seconds a JWT lives.
    pub jwt_lease_time: u64,
    /// `JWT_AUDIENCE`, written to `aud`.
    pub audience: Option<Audience>,
    /// `JWT_ISSUER` when non-empty, written to `iss`.
    pub issuer: Option<String>,
}

impl IssueSettings {
    /// The settings `config` gives.
    pub fn from_config(config: &Config) -> Self {
        Self {
            key_expiry: config.key_expiry,
            refresh_token_expiry: config.refresh_token_expiry,
            jwt_lease_time: config.jwt_lease_time,
            audience: (!config.jwt_audience.is_empty())
                .then(|| Audience(config.jwt_audience.clone())),
            issuer: config
                .jwt_issuer
                .clone()
                .filter(|issuer| !issuer.is_empty()),
        }
    }
}

/// The server's state: database, keys, verifier and the lifetimes it issues with.
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key_hasher: KeyHasher,
    keys: ArcSwap<ActiveKeys>,
    pub(crate) issue: IssueSettings,
    pub(crate) security: SecurityConfig,
    pub(crate) limiter: FailureLimiter,
    pub(crate) client_address: ClientAddress,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("keys", &self.keys.load())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State from its parts: issue and security settings, an opened store (whose keys
    /// `key_hasher` hashes) and the keys in use.
    pub fn new(
        issue: IssueSettings,
        security: SecurityConfig,
        store: Arc<dyn Store>,
        key_hasher: KeyHasher,
        keys: ActiveKeys,
    ) -> Self {
        Self {
            limiter: FailureLimiter::new(&security).counting_through(&store),
            store,
            key_hasher,
            keys: ArcSwap::from_pointee(keys),
            issue,
            client_address: ClientAddress::new(&security),
            security,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// How the store's keys are hashed.
    pub fn key_hasher(&self) -> &KeyHasher {
        &self.key_hasher
    }

    /// The keys in use now (a snapshot: rotation replaces them as a whole).
    pub fn keys(&self) -> Arc<ActiveKeys> {
        self.keys.load_full()
    }

    /// Puts new keys in use, for every request that starts from now on.
    pub fn set_keys(&self, keys: ActiveKeys) {
        self.keys.store(Arc::new(keys));
    }

    /// The keys in use, without counting a reference: for the request path.
    pub(crate) fn current_keys(&self) -> arc_swap::Guard<Arc<ActiveKeys>> {
        self.keys.load()
    }

    /// Signs a new JWT for `identifier`.
    pub(crate) fn issue_jwt(&self, identifier: Uuid) -> Result<String, ApiError> {
        let keys = self.current_keys();
        // One clock reading for the choice of key and `iat`: no token says it was issued
        // outside its key's signing window.
        let now = Utc::now().timestamp();
        let signer = keys.set().signer_at(now).ok_or_else(|| {
            ApiError::unavailable(
                "this server has no signing key in use: only a public key is configured, or its \
                 shared key retired while the database could not be reached",
            )
        })?;
        let claims = Claims {
            token_id: Uuid::new_v4(),
            identifier,
            iat: now,
            exp: now.saturating_add(i64::try_from(self.issue.jwt_lease_time).unwrap_or(i64::MAX)),
            aud: self.issue.audience.clone(),
            iss: self.issue.issuer.clone(),
            nbf: None,
            extra: serde_json::Map::new(),
        };
        signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            ApiError::internal("signing failed")
        })
    }
}
