//! How registered keys are stored: as a keyed hash, HMAC-SHA-512 under a secret that the
//! database does not hold, so a copy of the database alone gives up no key to guessing, however
//! weak the key.
//!
//! The secret is `KEY_HASH_SECRET` (at least 32 characters, the same on every replica). Without
//! it, the embedded SQLite default generates one once and keeps it beside the database file
//! (`jwthenticator.db.key-hash-secret`, readable by its owner only), as it keeps its signing
//! key; PostgreSQL refuses to start unless `LEGACY_KEY_HASHES=true` keeps the original's
//! unkeyed SHA-512 for new keys. The secret is kept apart from `KEY_ENCRYPTION_SECRET` on
//! purpose: that one seals signing keys, which rotate and can be replaced, while this one is
//! bound to every registered key for good.
//!
//! Rows the original wrote (its SHA-512 hex) are looked up by that hash as well, in the same
//! statement, and rewritten to the keyed hash the next time their key is presented. A check
//! value of the secret in `server_settings` makes a replica with another secret refuse to start,
//! rather than refuse every client.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aws_lc_rs::hmac;
use rsa::pkcs8::der::zeroize::Zeroizing;

use crate::config::{Database, KeyHashConfig, Secret};
use crate::store::{HashScheme, KeyHashes, Store, hash_secret};

/// The shortest `KEY_HASH_SECRET` accepted.
const MIN_SECRET_CHARS: usize = 32;

/// Where the secret's check value is kept in `server_settings`.
const CHECK_SETTING: &str = "key_hash_check";

/// What the check value is the HMAC of.
const CHECK_MESSAGE: &[u8] = b"jwthenticator key-hash secret check v1";

/// Where the key-hash secret comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretSource<'a> {
    /// `KEY_HASH_SECRET`.
    Configured(&'a Secret),
    /// The file beside the embedded database, generated when missing.
    Embedded(PathBuf),
    /// Generated for this process: the database is in memory and dies with it.
    Ephemeral,
    /// None: new keys are stored as the original's SHA-512 (`LEGACY_KEY_HASHES=true`).
    Legacy,
}

impl fmt::Display for SecretSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Configured(_) => f.write_str("HMAC-SHA-512 under KEY_HASH_SECRET"),
            Self::Embedded(path) => write!(
                f,
                "HMAC-SHA-512 under the secret in {} (generated when missing)",
                path.display()
            ),
            Self::Ephemeral => f.write_str("HMAC-SHA-512 under a secret of this process"),
            Self::Legacy => f.write_str(
                "the original's unkeyed SHA-512 (LEGACY_KEY_HASHES=true; set KEY_HASH_SECRET)",
            ),
        }
    }
}

impl KeyHashConfig {
    /// Where the secret comes from on `database`, or why this configuration cannot start.
    pub fn source(&self, database: &Database) -> anyhow::Result<SecretSource<'_>> {
        let configured = self
            .key_hash_secret
            .as_ref()
            .filter(|secret| !secret.expose().is_empty());
        Ok(match (configured, self.legacy_key_hashes, database) {
            (Some(_), true, _) => bail!(
                "KEY_HASH_SECRET and LEGACY_KEY_HASHES=true are both set: keep KEY_HASH_SECRET \
                 and drop LEGACY_KEY_HASHES"
            ),
            (Some(secret), false, _) if secret.expose().chars().count() < MIN_SECRET_CHARS => {
                bail!(
                    "KEY_HASH_SECRET must be at least {MIN_SECRET_CHARS} characters (random, \
                     e.g. `openssl rand -base64 48`)"
                )
            }
            (Some(secret), false, _) => SecretSource::Configured(secret),
            (None, true, _) => SecretSource::Legacy,
            (None, false, Database::Postgres { .. }) => bail!(
                "KEY_HASH_SECRET is not set: on PostgreSQL registered keys are stored as \
                 HMAC-SHA-512 under it, so that a copy of the database gives up no key. Set it \
                 to at least {MIN_SECRET_CHARS} random characters (e.g. `openssl rand -base64 \
                 48`), the same on every replica; or set LEGACY_KEY_HASHES=true to store new \
                 keys as the original's unkeyed SHA-512"
            ),
            (None, false, Database::Sqlite { .. }) => match database.beside(".key-hash-secret") {
                Some(path) => SecretSource::Embedded(path),
                None => SecretSource::Ephemeral,
            },
        })
    }
}

/// Hashes keys as configured. `Debug` shows the scheme, never the secret.
#[derive(Clone)]
pub struct KeyHasher {
    /// The HMAC key; `None` with `LEGACY_KEY_HASHES`.
    secret: Option<hmac::Key>,
    min_key_length: usize,
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHasher")
            .field("scheme", &self.scheme())
            .field("min_key_length", &self.min_key_length)
            .finish_non_exhaustive()
    }
}

/// A key refused for registration because it is shorter than `MIN_KEY_LENGTH`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the key must be at least {minimum} characters long (MIN_KEY_LENGTH)")]
pub struct KeyTooShort {
    /// `MIN_KEY_LENGTH`.
    pub minimum: usize,
}

impl KeyHasher {
    /// The hasher the configuration asks for on `database`, its secret checked against the
    /// value the first start stored there. Refuses a secret other than the one the stored keys
    /// were hashed with, and `LEGACY_KEY_HASHES` once keys are stored keyed.
    pub async fn open(
        config: &KeyHashConfig,
        database: &Database,
        store: &dyn Store,
    ) -> anyhow::Result<Self> {
        let source = config.source(database)?;
        let stored_check = store
            .setting(CHECK_SETTING)
            .await
            .context("reading the key-hash check value")?;
        let secret: Option<Zeroizing<Vec<u8>>> = match &source {
            SecretSource::Configured(secret) => {
                Some(Zeroizing::new(secret.expose().as_bytes().to_vec()))
            }
            SecretSource::Embedded(path) => Some(embedded_secret(path, stored_check.is_some())?),
            SecretSource::Ephemeral => Some(random_secret()?),
            SecretSource::Legacy if stored_check.is_some() => bail!(
                "LEGACY_KEY_HASHES=true, but keys in this database are stored under a keyed \
                 hash and would stop authenticating: set the KEY_HASH_SECRET they were hashed \
                 with instead"
            ),
            SecretSource::Legacy => {
                tracing::warn!(
                    "LEGACY_KEY_HASHES=true: new keys are stored as the original's unkeyed \
                     SHA-512, which a copy of the database gives up to guessing; set \
                     KEY_HASH_SECRET"
                );
                None
            }
        };
        let secret = secret.map(|bytes| hmac::Key::new(hmac::HMAC_SHA512, &bytes));
        if let Some(key) = &secret {
            let check = check_value(key);
            let stored = match stored_check {
                Some(stored) => stored,
                None => store
                    .insert_setting(CHECK_SETTING, &check)
                    .await
                    .context("storing the key-hash check value")?,
            };
            if stored != check {
                bail!(
                    "the key-hash secret ({source}) is not the one the keys in this database \
                     were hashed with: every replica needs the same KEY_HASH_SECRET, and \
                     changing it makes every registered key unusable"
                );
            }
        }
        Ok(Self {
            secret,
            min_key_length: config.min_key_length,
        })
    }

    /// The scheme new keys are stored with.
    pub fn scheme(&self) -> HashScheme {
        if self.secret.is_some() {
            HashScheme::HmacSha512
        } else {
            HashScheme::Sha512
        }
    }

    /// The hashes a presented key may be stored under: the keyed one, and the original's.
    pub fn hashes(&self, key: &str) -> KeyHashes {
        match &self.secret {
            Some(secret) => KeyHashes {
                current: hex::encode(hmac::sign(secret, key.as_bytes())),
                scheme: HashScheme::HmacSha512,
                legacy: Some(hash_secret(key)),
            },
            None => KeyHashes {
                current: hash_secret(key),
                scheme: HashScheme::Sha512,
                legacy: None,
            },
        }
    }

    /// The hashes of a key to register, or why it is refused: shorter than `MIN_KEY_LENGTH`.
    pub fn for_registration(&self, key: &str) -> Result<KeyHashes, KeyTooShort> {
        if key.chars().count() < self.min_key_length {
            return Err(KeyTooShort {
                minimum: self.min_key_length,
            });
        }
        Ok(self.hashes(key))
    }
}

/// The value stored to recognise the secret: half of an HMAC of a fixed message, which tells
/// nothing of the secret.
fn check_value(key: &hmac::Key) -> String {
    let tag = hmac::sign(key, CHECK_MESSAGE);
    hex::encode(&tag.as_ref()[..16])
}

/// 48 random bytes as hex: a generated secret, used as `KEY_HASH_SECRET` would be.
fn random_secret() -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new([0u8; 48]);
    aws_lc_rs::rand::fill(bytes.as_mut())
        .map_err(|_| anyhow::anyhow!("random generator failed"))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_ref()).into_bytes()))
}

/// The embedded database's secret, read from `path` or generated there (0600) on first start.
/// A missing file is not replaced when keys were already hashed with it: they would all stop
/// authenticating.
fn embedded_secret(path: &Path, keys_hashed: bool) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let read = |path: &Path| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the key-hash secret {}", path.display()))?,
        );
        let secret = text.trim();
        if secret.chars().count() < MIN_SECRET_CHARS {
            bail!(
                "the key-hash secret {} is shorter than {MIN_SECRET_CHARS} characters",
                path.display()
            );
        }
        Ok(Zeroizing::new(secret.as_bytes().to_vec()))
    };
    if path.exists() {
        return read(path);
    }
    if keys_hashed {
        bail!(
            "the key-hash secret {} is missing, but the keys in this database were hashed with \
             it: restore the file (or set KEY_HASH_SECRET to its content)",
            path.display()
        );
    }
    let secret = random_secret()?;
    match crate::private_files::create_file(path, &secret) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated the key-hash secret beside the embedded database");
            Ok(secret)
        }
        // Another process (a CLI command beside the server) generated it first.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(err) => Err(err).with_context(|| format!("writing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::Config;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("jwthenticator-server").chain(args.iter().copied()))
            .expect("valid arguments")
    }

    fn postgres() -> Database {
        Database::Postgres {
            url: "postgres://u@h/d".into(),
            create_if_missing: false,
        }
    }

    #[test]
    fn postgres_without_a_secret_is_refused_naming_both_variables() {
        let err = config(&[])
            .key_hashing
            .source(&postgres())
            .expect_err("refused");
        let message = err.to_string();
        assert!(message.contains("KEY_HASH_SECRET"), "{message}");
        assert!(message.contains("LEGACY_KEY_HASHES=true"), "{message}");
        assert_eq!(
            config(&["--legacy-key-hashes"])
                .key_hashing
                .source(&postgres())
                .expect("legacy"),
            SecretSource::Legacy
        );
    }

    #[test]
    fn short_or_conflicting_secrets_are_refused() {
        let short = config(&["--key-hash-secret", "too-short"]);
        assert!(short.key_hashing.source(&postgres()).is_err());
        let both = config(&["--key-hash-secret", &"s".repeat(32), "--legacy-key-hashes"]);
        assert!(both.key_hashing.source(&postgres()).is_err());
        let ok = config(&["--key-hash-secret", &"s".repeat(32)]);
        assert!(matches!(
            ok.key_hashing.source(&postgres()),
            Ok(SecretSource::Configured(_))
        ));
    }

    #[test]
    fn the_embedded_default_keeps_its_secret_beside_the_database() {
        let cfg = config(&["--data-dir", "/tmp/jwt-data"]);
        assert_eq!(
            cfg.key_hashing
                .source(&cfg.database().expect("database"))
                .expect("source"),
            SecretSource::Embedded(PathBuf::from(
                "/tmp/jwt-data/jwthenticator.db.key-hash-secret"
            ))
        );
    }

    #[test]
    fn keyed_hashes_depend_on_the_secret_and_keep_the_original_s_hash_as_legacy() {
        let hasher = |secret: &[u8]| KeyHasher {
            secret: Some(hmac::Key::new(hmac::HMAC_SHA512, secret)),
            min_key_length: 16,
        };
        let (a, b) = (hasher(b"first secret"), hasher(b"second secret"));
        let hashes = a.hashes("device-secret-0001");
        assert_eq!(hashes.scheme, HashScheme::HmacSha512);
        assert_eq!(hashes.current.len(), 128);
        assert_ne!(hashes.current, b.hashes("device-secret-0001").current);
        assert_ne!(hashes.current, hash_secret("device-secret-0001"));
        assert_eq!(hashes.legacy, Some(hash_secret("device-secret-0001")));
        assert!(!format!("{hashes:?}").contains(&hashes.current[..16]));
        assert!(!format!("{a:?}").contains("first"));
    }

    #[test]
    fn registration_refuses_keys_below_the_minimum_length_in_characters() {
        let hasher = KeyHasher {
            secret: None,
            min_key_length: 16,
        };
        assert_eq!(
            hasher.for_registration("fifteen-chars!!"),
            Err(KeyTooShort { minimum: 16 })
        );
        assert!(hasher.for_registration("sixteen-chars!!!").is_ok());
        assert!(
            hasher.for_registration("ééééééééééééééé").is_err(),
            "15 characters, 30 bytes"
        );
    }
}
