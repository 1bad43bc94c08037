//! What every handler shares.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use chrono::Utc;
use jwthenticator_core::{Audience, Claims, Verifier};
use uuid::Uuid;

use crate::config::Config;
use crate::error::ApiError;
use crate::keys::KeySet;
use crate::security::{FailureLimiter, SecurityConfig};
use crate::store::Store;

/// The server's state: database, keys, verifier and the lifetimes it issues with.
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: KeySet,
    pub(crate) verifier: Verifier,
    pub(crate) key_expiry: u64,
    pub(crate) refresh_token_expiry: u64,
    pub(crate) jwt_lease_time: u64,
    pub(crate) audience: Option<Audience>,
    pub(crate) issuer: Option<String>,
    pub(crate) security: SecurityConfig,
    pub(crate) limiter: FailureLimiter,
    /// When the signing key was made (its file's modification time) or else loaded.
    pub(crate) signing_key_created: SystemTime,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over an opened store and loaded keys, with the configured lifetimes.
    pub fn new(config: &Config, store: Arc<dyn Store>, keys: KeySet) -> Self {
        let verifier = keys.verifier(config);
        Self {
            store,
            verifier,
            keys,
            key_expiry: config.key_expiry,
            refresh_token_expiry: config.refresh_token_expiry,
            jwt_lease_time: config.jwt_lease_time,
            audience: (!config.jwt_audience.is_empty())
                .then(|| Audience(config.jwt_audience.clone())),
            issuer: crate::keys::issuer(config).map(str::to_owned),
            security: config.security.clone(),
            limiter: FailureLimiter::new(&config.security),
            signing_key_created: SystemTime::now(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The verifier behind `/validate` and `/validate_request`.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Signs a new JWT for `identifier`.
    pub(crate) fn issue_jwt(&self, identifier: Uuid) -> Result<String, ApiError> {
        let signer = self.keys.signer().ok_or_else(|| {
            ApiError::unavailable("this server has only a public key and cannot issue tokens")
        })?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            token_id: Uuid::new_v4(),
            identifier,
            iat: now,
            exp: now.saturating_add(i64::try_from(self.jwt_lease_time).unwrap_or(i64::MAX)),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            nbf: None,
            extra: serde_json::Map::new(),
        };
        signer.sign(&claims).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            ApiError::internal("signing failed")
        })
    }
}
