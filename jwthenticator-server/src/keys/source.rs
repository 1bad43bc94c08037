//! Where the signing keys come from, decided once from the configuration ([`KeySource`]), and
//! loading them: key files, inline PEM, the file beside the embedded database, a key of this
//! process, or the keys the replicas share through PostgreSQL ([`super::SharedKeys`]).

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jwthenticator_core::{Algorithm, KeyType, PublicKey};
use rsa::pkcs8::der::zeroize::Zeroizing;

use super::active::{ActiveKeys, VerifierSettings};
use super::material::PrivateKey;
use super::set::KeySet;
use super::{KeyError, io_error, parse_public, unsupported_signing_algorithm};
use crate::config::{Config, Database, Secret};

/// Where the signing keys come from. Decided once, by [`KeySource::from_config`], for both
/// `serve` and `check-config`, so the two never disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Keys this process holds: [`LocalKeys`].
    Local(LocalKeys),
    /// No key configured, PostgreSQL and `KEY_ENCRYPTION_SECRET`: the replicas share generated,
    /// rotated keys through the database, sealed with that secret.
    Shared(Secret),
}

/// Keys this process reads or makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalKeys {
    /// `RSA_*`/`JWT_*` key files or inline PEM; a missing private key file is generated or
    /// refused as the policy says.
    Configured(MissingKeyFiles),
    /// No key configured on the embedded database: the key file beside it, generated on the
    /// first start.
    Embedded(PathBuf),
    /// No key configured and nowhere to keep one: a key for this process only, whose tokens
    /// die with it.
    Ephemeral,
}

impl KeySource {
    /// The source `config` names on `database`.
    pub fn from_config(config: &Config, database: &Database) -> Self {
        if config.key_configured() {
            return Self::Local(LocalKeys::Configured(MissingKeyFiles::for_database(
                database,
            )));
        }
        match (database, &config.shared_keys.key_encryption_secret) {
            (Database::Postgres { .. }, Some(secret)) => Self::Shared(secret.clone()),
            _ => match database.beside(".signing-key.pem") {
                Some(path) => Self::Local(LocalKeys::Embedded(path)),
                None => Self::Local(LocalKeys::Ephemeral),
            },
        }
    }
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shared(_) => f.write_str(
                "shared by the replicas through PostgreSQL, sealed with KEY_ENCRYPTION_SECRET",
            ),
            Self::Local(LocalKeys::Configured(_)) => f.write_str("the configured key settings"),
            Self::Local(LocalKeys::Embedded(path)) => write!(
                f,
                "the key file beside the embedded database, {} (generated when missing)",
                path.display()
            ),
            Self::Local(LocalKeys::Ephemeral) => f.write_str(
                "none configured: a key generated at start for this process only (its tokens \
                 die with it; set RSA_PRIVATE_KEY_PATH, or KEY_ENCRYPTION_SECRET on PostgreSQL)",
            ),
        }
    }
}

impl LocalKeys {
    /// Loads the keys, generating and writing them where the source says so, with the time the
    /// signing key was made (its file's modification time, else now).
    pub fn load(&self, config: &Config) -> Result<ActiveKeys, KeyError> {
        let set = self.key_set(config)?;
        let file = match self {
            Self::Configured(_) => Sources::of(config)?
                .private_path
                .map(|p| p.value.to_owned()),
            Self::Embedded(path) => Some(path.clone()),
            Self::Ephemeral => None,
        };
        let created = file
            .and_then(|path| fs::metadata(path).and_then(|m| m.modified()).ok())
            .unwrap_or_else(SystemTime::now);
        Ok(ActiveKeys::new(
            &VerifierSettings::from_config(config),
            set,
            created,
        ))
    }

    /// The key set alone (see [`LocalKeys::load`]).
    ///
    /// A configured signing key comes from, in order: `RSA_PUBLIC_KEY_PATH`/`RSA_PRIVATE_KEY_PATH`
    /// (read; when the private key file is missing, generated and written or refused as the
    /// policy says); `RSA_PRIVATE_KEY`/`RSA_PUBLIC_KEY` inline. Each `RSA_*` setting may be
    /// given as `JWT_*` instead. Generated keys are of the type `JWT_ALGORITHM` needs.
    /// `PUBLISHED_PUBLIC_KEY_PATHS` adds verify-only public keys.
    pub fn key_set(&self, config: &Config) -> Result<KeySet, KeyError> {
        let (private, public) = self.signing_key(config)?;
        let published = config
            .published_public_key_paths
            .iter()
            .filter(|path| !path.as_os_str().is_empty())
            .map(|path| {
                let pem = fs::read_to_string(path).map_err(io_error(
                    "reading the PUBLISHED_PUBLIC_KEY_PATHS entry",
                    path,
                ))?;
                parse_public(
                    &pem,
                    &format!("PUBLISHED_PUBLIC_KEY_PATHS entry {}", path.display()),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        KeySet::new(config.jwt_algorithm, private.as_ref(), &public, &published)
    }

    /// The signing key pair (the private half absent when only a public key is configured).
    fn signing_key(&self, config: &Config) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
        let alg = config.jwt_algorithm;
        match self {
            Self::Configured(missing_files) => {
                let sources = Sources::of(config)?;
                if sources.private_path.is_some() || sources.public_path.is_some() {
                    return from_files(config, &sources, *missing_files);
                }
                let private = sources
                    .private
                    .map(|s| read_private(s.value, s.name.to_owned(), alg))
                    .transpose()?;
                let public = sources
                    .public
                    .map(|s| read_public(s.value, s.name.to_owned(), alg))
                    .transpose()?;
                pair(private, public)
            }
            Self::Embedded(path) => {
                let what = format!("the embedded signing key file {}", path.display());
                if path.exists() {
                    return pair(Some(read_private(&read_file(path)?, what, alg)?), None);
                }
                let key = PrivateKey::generate(alg, config.rsa_key_size)?;
                write_private_file(path, &key.to_pem()?)?;
                tracing::info!(path = %path.display(), kid = %key.public_key().kid(), "generated a signing key beside the embedded database");
                pair(Some(Sourced { key, what }), None)
            }
            Self::Ephemeral => {
                tracing::warn!(
                    "no signing key configured: generated one for this process only; tokens it \
                     signs become invalid on restart and other replicas reject them. Set \
                     RSA_PRIVATE_KEY_PATH (or JWT_PRIVATE_KEY_PATH)."
                );
                let key = PrivateKey::generate(alg, config.rsa_key_size)?;
                pair(
                    Some(Sourced {
                        key,
                        what: "the generated key".to_owned(),
                    }),
                    None,
                )
            }
        }
    }
}

/// Writes a file readable by its owner only (the private key must not be world-readable).
fn write_private_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    crate::private_files::create_file(path, contents.as_bytes()).map_err(io_error("creating", path))
}

fn write_public_file(path: &Path, key: &PublicKey) -> Result<(), KeyError> {
    create_parent(path)?;
    let pem = key.to_pem().map_err(|e| KeyError::Invalid(e.to_string()))?;
    fs::write(path, pem).map_err(io_error("writing", path))
}

fn create_parent(path: &Path) -> Result<(), KeyError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => crate::private_files::create_dir(parent)
            .map_err(io_error("creating the directory of", path)),
        None => Ok(()),
    }
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(io_error("reading", path))
}

/// A setting with the name it was given under.
struct Named<'a, T: ?Sized> {
    name: &'static str,
    value: &'a T,
}

// Derived impls would require `T: Copy`, which `str` and `Path` are not.
impl<T: ?Sized> Clone for Named<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Named<'_, T> {}

/// One setting given under the original's name or a neutral alias: either, or both when equal.
fn either<'a, T: ?Sized + PartialEq>(
    (original, original_value): (&'static str, Option<&'a T>),
    (alias, alias_value): (&'static str, Option<&'a T>),
) -> Result<Option<Named<'a, T>>, KeyError> {
    match (original_value, alias_value) {
        (Some(a), Some(b)) if a != b => Err(KeyError::Conflict { original, alias }),
        (Some(value), _) => Ok(Some(Named {
            name: original,
            value,
        })),
        (None, Some(value)) => Ok(Some(Named { name: alias, value })),
        (None, None) => Ok(None),
    }
}

/// Where the signing key comes from, each setting resolved against its alias; empty values
/// count as unset.
struct Sources<'a> {
    private: Option<Named<'a, str>>,
    public: Option<Named<'a, str>>,
    private_path: Option<Named<'a, Path>>,
    public_path: Option<Named<'a, Path>>,
}

impl<'a> Sources<'a> {
    fn of(config: &'a Config) -> Result<Self, KeyError> {
        fn text(value: Option<&str>) -> Option<&str> {
            value.map(str::trim).filter(|s| !s.is_empty())
        }
        fn path(value: Option<&PathBuf>) -> Option<&Path> {
            value
                .map(PathBuf::as_path)
                .filter(|p| !p.as_os_str().is_empty())
        }
        Ok(Self {
            private: either(
                (
                    "RSA_PRIVATE_KEY",
                    text(config.rsa_private_key.as_ref().map(|s| s.expose())),
                ),
                (
                    "JWT_PRIVATE_KEY",
                    text(config.jwt_private_key.as_ref().map(|s| s.expose())),
                ),
            )?,
            public: either(
                ("RSA_PUBLIC_KEY", text(config.rsa_public_key.as_deref())),
                ("JWT_PUBLIC_KEY", text(config.jwt_public_key.as_deref())),
            )?,
            private_path: either(
                (
                    "RSA_PRIVATE_KEY_PATH",
                    path(config.rsa_private_key_path.as_ref()),
                ),
                (
                    "JWT_PRIVATE_KEY_PATH",
                    path(config.jwt_private_key_path.as_ref()),
                ),
            )?,
            public_path: either(
                (
                    "RSA_PUBLIC_KEY_PATH",
                    path(config.rsa_public_key_path.as_ref()),
                ),
                (
                    "JWT_PUBLIC_KEY_PATH",
                    path(config.jwt_public_key_path.as_ref()),
                ),
            )?,
        })
    }
}

/// A key with the setting it came from, for error messages.
struct Sourced<K> {
    key: K,
    what: String,
}

fn read_private(
    pem: &str,
    what: String,
    algorithm: Algorithm,
) -> Result<Sourced<PrivateKey>, KeyError> {
    let key = PrivateKey::parse(pem, &what)?;
    check_type(key.key_type(), &what, algorithm)?;
    Ok(Sourced { key, what })
}

fn read_public(
    pem: &str,
    what: String,
    algorithm: Algorithm,
) -> Result<Sourced<PublicKey>, KeyError> {
    let key = parse_public(pem, &what)?;
    check_type(key.key_type(), &what, algorithm)?;
    Ok(Sourced { key, what })
}

fn check_type(found: KeyType, what: &str, algorithm: Algorithm) -> Result<(), KeyError> {
    let expected = KeyType::for_algorithm(algorithm)
        .ok_or_else(|| unsupported_signing_algorithm(algorithm))?;
    if found == expected {
        Ok(())
    } else {
        Err(KeyError::WrongType {
            what: what.to_owned(),
            found,
            expected,
            algorithm,
        })
    }
}

fn file_setting(setting: Named<'_, Path>) -> String {
    format!("{} {}", setting.name, setting.value.display())
}

/// What to do when `RSA_PRIVATE_KEY_PATH` names a file that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeyFiles {
    /// Generate the key and write it there, with a warning: a single node (embedded SQLite)
    /// has no other replica that would need the same key.
    Generate,
    /// Refuse to start, naming `keygen`: on PostgreSQL the replicas must share one key, and a
    /// missing file usually means an unmounted secret, which would give each replica its own.
    Refuse,
}

impl MissingKeyFiles {
    /// The policy for a database: generate on SQLite, refuse on PostgreSQL.
    pub fn for_database(database: &Database) -> Self {
        match database {
            Database::Sqlite { .. } => Self::Generate,
            Database::Postgres { .. } => Self::Refuse,
        }
    }
}

fn from_files(
    config: &Config,
    sources: &Sources<'_>,
    missing_files: MissingKeyFiles,
) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
    let alg = config.jwt_algorithm;
    fn existing(setting: Option<Named<'_, Path>>) -> Option<(Named<'_, Path>, String)> {
        setting
            .filter(|s| s.value.exists())
            .map(|s| (s, file_setting(s)))
    }
    let private = existing(sources.private_path)
        .map(|(s, what)| read_private(&read_file(s.value)?, what, alg))
        .transpose()?;
    let public = existing(sources.public_path)
        .map(|(s, what)| read_public(&read_file(s.value)?, what, alg))
        .transpose()?;
    match (private, public, sources.private_path, sources.public_path) {
        (Some(private), public, _, public_path) => {
            // A missing public key file is derived from the private key and written.
            if let (None, Some(path)) = (&public, public_path) {
                write_public_file(path.value, private.key.public_key())?;
            }
            pair(Some(private), public)
        }
        (None, Some(public), None, _) => pair(None, Some(public)),
        (None, Some(public), Some(private_path), _) => Err(KeyError::Invalid(format!(
            "{} does not exist but {} does: refusing to generate a private key that does not \
             match the public key",
            file_setting(private_path),
            public.what
        ))),
        (None, None, Some(path), public_path) if missing_files == MissingKeyFiles::Refuse => {
            Err(missing_key_file(alg, path, public_path))
        }
        (None, None, Some(path), public_path) => {
            let key = PrivateKey::generate(alg, config.rsa_key_size)?;
            write_private_file(path.value, &key.to_pem()?)?;
            if let Some(public_path) = public_path {
                write_public_file(public_path.value, key.public_key())?;
            }
            tracing::warn!(
                path = %path.value.display(),
                kid = %key.public_key().kid(),
                "{} did not exist: generated a new signing key and wrote it there; tokens \
                 signed with any other key no longer validate",
                path.name
            );
            pair(
                Some(Sourced {
                    key,
                    what: file_setting(path),
                }),
                None,
            )
        }
        (None, None, None, Some(path)) => Err(KeyError::Invalid(format!(
            "{} does not exist and RSA_PRIVATE_KEY_PATH (or JWT_PRIVATE_KEY_PATH) is not set, so \
             there is nowhere to write a generated private key",
            file_setting(path)
        ))),
        (None, None, None, None) => Err(KeyError::Invalid("no key path configured".to_owned())),
    }
}

/// The refusal of a missing private key file on PostgreSQL, with the command that makes one.
fn missing_key_file(
    algorithm: Algorithm,
    private: Named<'_, Path>,
    public: Option<Named<'_, Path>>,
) -> KeyError {
    let public_out = public
        .map(|p| format!(" --public-key-out {}", p.value.display()))
        .unwrap_or_default();
    KeyError::Invalid(format!(
        "{} does not exist. On PostgreSQL every replica must sign with the same key, so none is \
         generated (a missing file is usually an unmounted secret): create it once with \
         `jwthenticator-server keygen --algorithm {} --private-key-out {}{public_out}` and give \
         every replica that file, or configure no key and set KEY_ENCRYPTION_SECRET to share \
         generated keys through the database",
        file_setting(private),
        jwthenticator_core::algorithm_name(algorithm),
        private.value.display(),
    ))
}

fn pair(
    private: Option<Sourced<PrivateKey>>,
    public: Option<Sourced<PublicKey>>,
) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
    match (private, public) {
        (Some(private), Some(public)) if private.key.public_key() != &public.key => {
            Err(KeyError::Mismatch {
                public: public.what,
                private: private.what,
            })
        }
        (Some(private), _) => {
            let public = private.key.public_key().clone();
            Ok((Some(private.key), public))
        }
        (None, Some(public)) => Ok((None, public.key)),
        (None, None) => Err(KeyError::Invalid("no key configured".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::Parser;
        Config::try_parse_from(std::iter::once("jwthenticator-server").chain(args.iter().copied()))
    }

    #[test]
    fn jwt_algorithm_accepts_es256_and_eddsa_and_still_refuses_the_rest() {
        for (name, algorithm) in [
            ("RS256", Algorithm::RS256),
            ("PS512", Algorithm::PS512),
            ("ES256", Algorithm::ES256),
            ("EdDSA", Algorithm::EdDSA),
        ] {
            let parsed = config(&["--jwt-algorithm", name]).expect(name);
            assert_eq!(parsed.jwt_algorithm, algorithm);
        }
        for name in ["ES384", "ES512", "HS256", "none", "eddsa", "Ed25519"] {
            assert!(config(&["--jwt-algorithm", name]).is_err(), "{name}");
        }
    }

    #[test]
    fn empty_key_settings_count_as_unset() {
        let parsed = config(&[
            "--rsa-private-key-path",
            "",
            "--jwt-public-key",
            "  ",
            "--published-public-key-paths",
            ",",
        ])
        .expect("empty values parse");
        let sources = Sources::of(&parsed).expect("no conflict");
        assert!(sources.private_path.is_none() && sources.public.is_none());
        assert!(
            parsed
                .published_public_key_paths
                .iter()
                .all(|p| p.as_os_str().is_empty())
        );
        let settings =
            VerifierSettings::from_config(&config(&["--jwt-issuer", ""]).expect("parses"));
        assert_eq!(settings.issuer, None);
    }

    #[test]
    fn the_neutral_private_key_is_redacted_in_debug_output() {
        let parsed =
            config(&["--jwt-private-key", "-----BEGIN PRIVATE KEY-----SECRETPEM"]).expect("parses");
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("SECRETPEM"), "{debug}");
    }
}
