//! The keys in use: the set, the verifier over it with the configured checks, the JWKS as
//! served, and the cache of tokens that verifier accepted. Replaced as a whole on rotation.

use std::time::SystemTime;

use chrono::Utc;
use jwthenticator_core::{Claims, TokenCache, Verifier, VerifyError};

use super::set::KeySet;
use super::signer::Signer;
use crate::config::Config;

/// What a token must satisfy besides its signature, and how many verified tokens are
/// remembered: derived once from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierSettings {
    /// `JWT_AUDIENCE`: written to `aud` and required on validation.
    pub audience: Vec<String>,
    /// `JWT_ISSUER` when non-empty: written to `iss` and required on validation.
    pub issuer: Option<String>,
    /// `JWT_LEEWAY`, in seconds.
    pub leeway: u64,
    /// `JWT_LEASE_TIME`: no token lives longer.
    pub max_lifetime: u64,
    /// `VALIDATION_CACHE_SIZE` (0: no cache).
    pub cache_size: usize,
}

impl VerifierSettings {
    /// The settings `config` gives.
    pub fn from_config(config: &Config) -> Self {
        Self {
            audience: config.jwt_audience.clone(),
            issuer: config
                .jwt_issuer
                .clone()
                .filter(|issuer| !issuer.is_empty()),
            leeway: config.jwt_leeway,
            max_lifetime: config.jwt_lease_time,
            cache_size: config.validation_cache_size,
        }
    }
}

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
    /// Keys and a verifier over them as the settings say (audience, issuer, leeway).
    pub fn new(settings: &VerifierSettings, set: KeySet, signing_key_created: SystemTime) -> Self {
        Self {
            verifier: set.verifier(settings),
            // The bytes `Json<Jwks>` would write (poem-openapi's JSON value: sorted members);
            // strings and lists only, so serializing cannot fail.
            jwks_json: serde_json::to_vec(&poem_openapi::types::ToJSON::to_json(set.jwks()))
                .unwrap_or_default()
                .into(),
            validated: (settings.cache_size > 0).then(|| TokenCache::new(settings.cache_size)),
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
        let cache = self.validated.as_ref();
        self.verifier
            .verify_cached_at(token, now, cache, 0, |_: Claims| ())
    }

    /// The signer and the published keys.
    pub fn set(&self) -> &KeySet {
        &self.set
    }

    /// The signer, or `None` when the server only validates.
    pub fn signer(&self) -> Option<&Signer> {
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
