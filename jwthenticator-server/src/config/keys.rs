//! Settings of the keys: the signing keys shared through PostgreSQL, and the hashes registered
//! keys are stored under.

use clap::Args;
use clap::builder::BoolishValueParser;

use super::Secret;

/// Settings of the keys shared through the database.
#[derive(Debug, Clone, Args)]
pub struct SharedKeyConfig {
    /// Secret that seals the signing keys stored in PostgreSQL (16 characters or more,
    /// stretched by Argon2id). Set it (the same on every replica) and configure no key to have
    /// the replicas share generated, rotated keys.
    #[arg(long, env = "KEY_ENCRYPTION_SECRET", hide_env_values = true)]
    pub key_encryption_secret: Option<Secret>,

    /// Seconds a shared key signs before the next one takes over (0: never rotate).
    #[arg(long, env = "KEY_ROTATION_PERIOD", default_value_t = 30 * 86_400)]
    pub key_rotation_period: u64,

    /// Seconds before it signs that the next key is published in `/jwks`.
    #[arg(long, env = "KEY_ROTATION_PREPUBLISH", default_value_t = 3600)]
    pub key_rotation_prepublish: u64,

    /// Seconds between two reads of the shared keys by a replica.
    #[arg(long, env = "KEY_REFRESH_INTERVAL", default_value_t = 30)]
    pub key_refresh_interval: u64,
}

/// `MIN_KEY_LENGTH`'s default, which the spec states as `/register_key`'s minimum.
pub const DEFAULT_MIN_KEY_LENGTH: usize = 16;

/// How registered keys are hashed, and which keys may be registered.
#[derive(Debug, Clone, Args)]
pub struct KeyHashConfig {
    /// Secret of the keyed hash (HMAC-SHA-512) that registered keys are stored under: at least
    /// 32 random characters (e.g. `openssl rand -base64 48`), the same on every replica, kept
    /// out of the database. Changing it makes every key registered under it unusable. Required
    /// on PostgreSQL (or LEGACY_KEY_HASHES=true); on embedded SQLite one is generated beside
    /// the database file when unset.
    #[arg(long, env = "KEY_HASH_SECRET", hide_env_values = true)]
    pub key_hash_secret: Option<Secret>,

    /// Store new keys as the original did, as unkeyed SHA-512, which a stolen copy of the
    /// database gives up to guessing: for a PostgreSQL deployment that cannot set
    /// KEY_HASH_SECRET yet (a warning at start).
    #[arg(long, env = "LEGACY_KEY_HASHES", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub legacy_key_hashes: bool,

    /// Shortest key that `/register_key` and `register-key` accept, in characters (0: any).
    /// Keys registered before keep authenticating.
    #[arg(long, env = "MIN_KEY_LENGTH", default_value_t = DEFAULT_MIN_KEY_LENGTH)]
    pub min_key_length: usize,
}
