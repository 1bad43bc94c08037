//! Signing and verification keys: loading, generating, the JWKS and token signing.
//!
//! The server signs with one key, of the type `JWT_ALGORITHM` needs: RSA for RS256 … PS512,
//! EC P-256 for ES256, Ed25519 for EdDSA. It publishes that key at `/jwks` together with the
//! public keys listed in `PUBLISHED_PUBLIC_KEY_PATHS`, and its verifier accepts tokens of all
//! of them. That list is how the signing key rotates without invalidating a live token:
//!
//! 1. Publish the next key: add its public key file to `PUBLISHED_PUBLIC_KEY_PATHS` on every
//!    replica and wait until the JWKS caches of gateways and services have picked it up.
//! 2. Sign with it: make it the signing key on every replica and list the previous public key
//!    in `PUBLISHED_PUBLIC_KEY_PATHS` instead.
//! 3. When the last token the previous key signed has expired (`JWT_LEASE_TIME` after step 2),
//!    remove it from the list.
//!
//! Keys are read with the PKCS#8 and SPKI types the `rsa` crate re-exports and generated with
//! aws-lc-rs; every signature is made by aws-lc-rs, the backend `jsonwebtoken` is built with
//! here (never by the `rsa` crate, see RUSTSEC-2023-0071), from a key parsed once at start.
//! Every `kid` is base64url(SHA-1(SPKI DER)), the Python
//! original's scheme, so a key has the same `kid` on every replica, after every restart and in
//! both implementations.
//!
//! The module's parts, each in its own file: [`material`] (private keys: parsing, generation,
//! PEM), [`signer`] (signing tokens), [`set`] (the signers and the published keys, the JWKS),
//! [`active`] (the set in use with its verifier and validation cache), [`source`] (where the
//! keys come from, decided once from the configuration), [`shared`] and [`sealing`] (keys shared
//! through PostgreSQL). Public keys, key types and the list of signing algorithms are core's
//! ([`jwthenticator_core::PublicKey`]), which the tower layer uses too.

use std::path::{Path, PathBuf};

use jwthenticator_core::Algorithm;

pub mod active;
pub mod material;
mod sealing;
pub mod set;
pub mod shared;
pub mod signer;
pub mod source;

pub use active::{ActiveKeys, VerifierSettings};
pub use jwthenticator_core::{KeyType, PublicKey};
pub use material::{PrivateKey, generate_rsa, private_key_pem, public_key_pem};
pub use set::{KeySet, SigningWindow};
pub use shared::{SharedKeySettings, SharedKeys};
pub use signer::Signer;
pub use source::{KeySource, MissingKeyFiles};

/// Why the configured keys cannot be used. Every message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written (the I/O error is the source).
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM value is not a key this server can use.
    #[error("{what} {reason}")]
    Parse {
        /// The setting (and file) that holds the value.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key's type does not fit `JWT_ALGORITHM`.
    #[error(
        "{what} holds an {found} key, but JWT_ALGORITHM {algorithm:?} signs with an {expected} \
         key: configure a matching key or change JWT_ALGORITHM"
    )]
    WrongType {
        /// The setting (and file) that holds the key.
        what: String,
        /// The type of the key given.
        found: KeyType,
        /// The type `JWT_ALGORITHM` needs.
        expected: KeyType,
        /// `JWT_ALGORITHM`.
        algorithm: Algorithm,
    },
    /// The public key given does not belong to the private key given.
    #[error("{public} does not match {private}: it is not that private key's public key")]
    Mismatch {
        /// The setting that holds the public key.
        public: String,
        /// The setting that holds the private key.
        private: String,
    },
    /// A setting and its neutral alias are both set, to different values.
    #[error("{original} and {alias} are the same setting but are set to different values: set one")]
    Conflict {
        /// The original's name, e.g. `RSA_PRIVATE_KEY`.
        original: &'static str,
        /// The alias, e.g. `JWT_PRIVATE_KEY`.
        alias: &'static str,
    },
    /// Any other invalid key configuration.
    #[error("{0}")]
    Invalid(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyError {
    let path = path.to_owned();
    move |source| KeyError::Io {
        action,
        path,
        source,
    }
}

fn parse_error(what: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Parse {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// A public key in PEM, read for the setting `what`.
fn parse_public(pem: &str, what: &str) -> Result<PublicKey, KeyError> {
    PublicKey::from_pem(pem).map_err(|e| parse_error(what, e.reason()))
}

fn unsupported_signing_algorithm(algorithm: Algorithm) -> KeyError {
    let supported: Vec<&str> = jwthenticator_core::SIGNING_ALGORITHMS
        .into_iter()
        .map(jwthenticator_core::algorithm_name)
        .collect();
    KeyError::Invalid(format!(
        "JWT_ALGORITHM {} is not supported: use one of {}",
        jwthenticator_core::algorithm_name(algorithm),
        supported.join(", ")
    ))
}
