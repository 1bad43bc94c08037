//! What every handler shares.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use chrono::Utc;
use jwthenticator_core::{Audience, Claims, TokenCache, Verifier, VerifyError};
use uuid::Uuid;

use crate::config::Config;
use crate::error::ApiError;
use crate::key_hash::KeyHasher;
use crate::keys::KeySet;
use crate::security::{ClientAddress, FailureLimiter, SecurityConfig};
use crate::store::Store;

/// The keys in use and the verifier over them, replaced as a whole when keys rotate.
#[derive(Debug)]
pub struct ActiveKeys {
    set: KeySet,
    verifier: Verifier,
    /// The JWKS as `/jwks` serves it, serialized once rather than per request.
    jwks_json: bytes::Bytes,
    /// Tokens this verifier accepted, until their `exp`: gateways present the same token on
    /// every request of a client. New keys come with an empty cache.
    validated: Option<TokenCache<()>>,
    signing_key_created: SystemTime,
}

impl ActiveKeys {
    /// Keys and a verifier over them as the configuration says (audience, issuer, leeway).
    pub fn new(config: &Config, set: KeySet, signing_key_created: SystemTime) -> Self {
        Self {
            verifier: set.verifier(config),
            // The bytes `Json<Jwks>` would write (poem-openapi's JSON value: sorted members);
            // strings and lists only, so serializing cannot fail.
            jwks_json: serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(set.jwks()))
                .unwrap_or_default()
                .into(),
            validated: (config.validation_cache_size > 0)
                .then(|| TokenCache::new(config.validation_cache_size)),
            set,
            signing_key_created,
        }
    }

    /// Whether `token` is valid now, as [`Verifier::verify`] decides: a token is verified by the
    /// one path, with the claims type of the server's tokens, whether or not there is a cache;
    /// the cache only remembers that a token passed, until its `exp`, so its size changes no
    /// answer.
    pub fn validate(&self, token: &str) -> Result<(), VerifyError> {
        let now = Utc::now().timestamp();
        let cached = self
            .validated
            .as_ref()
            .map(|validated| (validated, TokenCache::<()>::hash(token)));
        if let Some((validated, hash)) = &cached
            && validated
                .get(hash, 0, now, self.verifier.leeway())
                .is_some()
        {
            return Ok(());
        }
        let claims = self.verifier.verify_at(token, now)?;
        if let Some((validated, hash)) = cached {
            validated.insert(hash, (), claims.exp, 0);
        }
        Ok(())
    }

    /// The signer and the published keys.
    pub fn set(&self) -> &KeySet {
        &self.set
    }

    /// The signer, or `None` when the server only validates.
    pub fn signer(&self) -> Option<&crate::keys::Signer> {
        self.set.signer()
    }

    /// The public keys as published at `/jwks`.
    pub fn jwks(&self) -> &jwthenticator_core::Jwks {
        self.set.jwks()
    }

    /// The JWKS serialized as JSON, as `/jwks` serves it.
    pub fn jwks_json(&self) -> &bytes::Bytes {
        &self.jwks_json
    }

    /// The verifier behind `/validate` and `/validate_request`.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// When the signing key was made (its file's modification time, its row's creation) or
    /// else loaded.
    pub fn signing_key_created(&self) -> SystemTime {
        self.signing_key_created
    }
}

/// The server's state: database, keys, verifier and the lifetimes it issues with.
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) key_hasher: KeyHasher,
    keys: ArcSwap<ActiveKeys>,
    pub(crate) key_expiry: u64,
    pub(crate) refresh_token_expiry: u64,
    pub(crate) jwt_lease_time: u64,
    pub(crate) audience: Option<Audience>,
    pub(crate) issuer: Option<String>,
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
    /// State over an opened store (whose keys `key_hasher` hashes) and loaded keys, with the
    /// configured lifetimes.
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        key_hasher: KeyHasher,
        keys: ActiveKeys,
    ) -> Self {
        let limiter = FailureLimiter::new(&config.security).counting_through(&store);
        Self {
            store,
            key_hasher,
            keys: ArcSwap::from_pointee(keys),
            key_expiry: config.key_expiry,
            refresh_token_expiry: config.refresh_token_expiry,
            jwt_lease_time: config.jwt_lease_time,
            audience: (!config.jwt_audience.is_empty())
                .then(|| Audience(config.jwt_audience.clone())),
            issuer: crate::keys::issuer(config).map(str::to_owned),
            security: config.security.clone(),
            limiter,
            client_address: ClientAddress::new(&config.security),
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
