//! The server's keys as a set: the signers, each in its signing window, and the public keys
//! that verify tokens and make up the JWKS.

use jwthenticator_core::{Algorithm, Claims, Jwks, PublicKey, Verifier, VerifyingKey};

use super::KeyError;
use super::active::VerifierSettings;
use super::material::PrivateKey;
use super::signer::Signer;

/// When a key may sign: from `from` (included) until `until` (excluded), in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningWindow {
    /// The first second it signs.
    pub from: i64,
    /// The first second it no longer signs (its `retires_at`).
    pub until: i64,
}

impl SigningWindow {
    /// A configured key: it signs whenever the server runs.
    pub const ALWAYS: Self = Self {
        from: i64::MIN,
        until: i64::MAX,
    };

    fn contains(self, at: i64) -> bool {
        self.from <= at && at < self.until
    }
}

/// A private key that signs within a window, with its algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScheduledKey<'a> {
    pub(crate) key: &'a PrivateKey,
    pub(crate) algorithm: Algorithm,
    pub(crate) window: SigningWindow,
}

/// The server's keys: the signers, each with the window in which it signs (none when only a
/// public key is configured), and the public keys that verify tokens and make up the JWKS, the
/// signers' first.
#[derive(Debug)]
pub struct KeySet {
    signers: Vec<(SigningWindow, Signer)>,
    jwks: Jwks,
    verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// The key that signs now, or `None` when the server only validates (or its last shared
    /// key has retired and no next one is loaded).
    pub fn signer(&self) -> Option<&Signer> {
        self.signer_at(chrono::Utc::now().timestamp())
    }

    /// The key that signs at `at` (Unix seconds): of the keys whose window holds it, the one
    /// whose window started last. No key signs outside its window.
    pub fn signer_at(&self, at: i64) -> Option<&Signer> {
        self.signers
            .iter()
            .filter(|(window, _)| window.contains(at))
            .max_by_key(|(window, _)| window.from)
            .map(|(_, signer)| signer)
    }

    /// The public keys as published at `/jwks`: the signing key first, then the published ones.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// A verifier over these keys, each pinned to its own algorithm, with the configured
    /// audience, issuer, leeway and lifetime.
    pub fn verifier(&self, settings: &VerifierSettings) -> Verifier {
        let builder = Verifier::builder()
            .with_algorithms(self.verifying.iter().map(VerifyingKey::algorithm))
            .with_audiences(settings.audience.iter().cloned())
            .with_leeway(settings.leeway)
            .with_max_lifetime(settings.max_lifetime);
        match settings.issuer.as_deref() {
            Some(issuer) => builder.with_issuer(issuer),
            None => builder,
        }
        .build_with_keys(self.verifying.clone())
    }

    /// Keys that sign in their windows (each pinned to its algorithm, the first published
    /// first) and also publish `published`, RSA ones for `published_algorithm`.
    pub(crate) fn scheduled(
        signers: &[ScheduledKey<'_>],
        published: &[PublicKey],
        published_algorithm: Algorithm,
    ) -> Result<Self, KeyError> {
        let public = signers
            .iter()
            .map(|s| (s.key.public_key(), s.algorithm))
            .chain(published.iter().map(|key| {
                let algorithm = key.key_type().published_algorithm(published_algorithm);
                (key, algorithm)
            }));
        let signers = signers
            .iter()
            .map(|s| {
                let signer =
                    Signer::new(s.key.public_key().kid(), s.algorithm, s.key.signing_key()?);
                Ok((s.window, signer))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Self::assemble(signers, public)
    }

    /// The signing key's public key first, then the published keys.
    pub(super) fn new(
        algorithm: Algorithm,
        private: Option<&PrivateKey>,
        public: &PublicKey,
        published: &[PublicKey],
    ) -> Result<Self, KeyError> {
        let signers = private
            .map(|key| {
                let signer = Signer::new(public.kid(), algorithm, key.signing_key()?);
                Ok::<_, KeyError>((SigningWindow::ALWAYS, signer))
            })
            .transpose()?
            .into_iter()
            .collect();
        let keys = std::iter::once((public, algorithm)).chain(
            published
                .iter()
                .map(|key| (key, key.key_type().published_algorithm(algorithm))),
        );
        Self::assemble(signers, keys)
    }

    /// Publishes `public` in order, a key listed twice (same `kid`) once, and checks every
    /// signer against its public key.
    fn assemble<'a>(
        signers: Vec<(SigningWindow, Signer)>,
        public: impl Iterator<Item = (&'a PublicKey, Algorithm)>,
    ) -> Result<Self, KeyError> {
        let mut jwks = Jwks::default();
        let mut verifying = Vec::new();
        for (key, algorithm) in public {
            let kid = key.kid();
            if jwks.keys.iter().any(|jwk| jwk.kid.as_ref() == Some(&kid)) {
                continue;
            }
            let jwk = key.to_jwk(algorithm);
            verifying.push(
                VerifyingKey::from_jwk(&jwk, Some(algorithm))
                    .map_err(|e| KeyError::Invalid(e.to_string()))?,
            );
            jwks.keys.push(jwk);
        }
        let keys = Self {
            signers,
            jwks,
            verifying,
        };
        for (_, signer) in &keys.signers {
            keys.check_signer(signer)?;
        }
        Ok(keys)
    }

    /// Signs a token and verifies it with the signer's public key, so a key that cannot work
    /// fails the start rather than the first `authenticate`.
    fn check_signer(&self, signer: &Signer) -> Result<(), KeyError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            token_id: uuid::Uuid::nil(),
            identifier: uuid::Uuid::nil(),
            iat: now,
            exp: now.saturating_add(60),
            aud: None,
            iss: None,
            nbf: None,
            extra: serde_json::Map::new(),
        };
        let failed = |reason: String| {
            KeyError::Invalid(format!(
                "the signing key cannot make a token its own public key verifies: {reason}"
            ))
        };
        let token = signer.sign(&claims).map_err(|e| failed(e.to_string()))?;
        Verifier::builder()
            .build_with_keys(self.verifying.clone())
            .verify_at(&token, now)
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    }
}
