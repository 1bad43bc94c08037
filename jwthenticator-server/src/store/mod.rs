//! Persistence behind one trait, with PostgreSQL and SQLite implementations.
//!
//! Keys are stored as keyed hashes (HMAC-SHA-512 under a secret the database does not hold, see
//! [`crate::key_hash`]); rows the original wrote keep its plain SHA-512 hex and are found by it
//! until their next use upgrades them. Refresh tokens (256 random bits) are stored as SHA-512
//! hex. Every lookup goes through the unique hash index.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Database;

mod batch;
pub mod deadline;
mod postgres;
mod signing_keys;
mod sqlite;

pub use postgres::PostgresStore;
pub use signing_keys::{SigningKeyMaintenance, SigningKeyRow};
pub use sqlite::SqliteStore;

/// The SHA-512 hex digest: how refresh tokens are stored, and keys by the original (and with
/// `LEGACY_KEY_HASHES`).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA512,
        secret.as_bytes(),
    ))
}

/// How a key's hash was made; the `keys.key_hash_scheme` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashScheme {
    /// The original's unkeyed SHA-512 hex (the column's default, so rows the original writes
    /// get it).
    Sha512,
    /// HMAC-SHA-512 hex under the server's key-hash secret.
    HmacSha512,
}

impl HashScheme {
    /// The name stored in the database and listed by `GET /keys`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha512 => "sha512",
            Self::HmacSha512 => "hmac-sha512",
        }
    }

    /// The scheme of a stored name; `None` for a name this server does not know (such a row
    /// matches no key).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha512" => Some(Self::Sha512),
            "hmac-sha512" => Some(Self::HmacSha512),
            _ => None,
        }
    }
}

/// The hashes under which a presented key may be stored: the current scheme's, and the
/// original's SHA-512 while rows of it may remain. `Debug` shows no hash material.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyHashes {
    /// The hash a new row gets.
    pub current: String,
    /// The scheme of `current`.
    pub scheme: HashScheme,
    /// The original's SHA-512 hex, when `current` is keyed.
    pub legacy: Option<String>,
}

impl fmt::Debug for KeyHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHashes")
            .field("scheme", &self.scheme)
            .field("legacy", &self.legacy.is_some())
            .finish_non_exhaustive()
    }
}

impl KeyHashes {
    /// How well a stored row matches: 2 for the current hash, 1 for the legacy one, 0 for
    /// none. A hash counts only under its own scheme, so the two never stand for each other.
    fn rank(&self, hash: &str, scheme: HashScheme) -> u8 {
        if scheme == self.scheme && hash == self.current {
            2
        } else if scheme == HashScheme::Sha512 && self.legacy.as_deref() == Some(hash) {
            1
        } else {
            0
        }
    }

    /// The legacy hash, or the current one again: both values a two-placeholder `IN` binds.
    fn legacy_or_current(&self) -> &str {
        self.legacy.as_deref().unwrap_or(&self.current)
    }
}

/// The best row for `key` among rows found by either of its hashes (each with its stored hash
/// and scheme name), with its scheme: the current hash first. A row of an unknown scheme
/// matches nothing.
fn best_match<H: AsRef<str>, S: AsRef<str>, T>(
    key: &KeyHashes,
    rows: impl IntoIterator<Item = (H, S, T)>,
) -> Option<(HashScheme, T)> {
    rows.into_iter()
        .filter_map(|(hash, scheme, row)| {
            let scheme = HashScheme::parse(scheme.as_ref())?;
            Some((key.rank(hash.as_ref(), scheme), scheme, row))
        })
        .filter(|(rank, _, _)| *rank > 0)
        .max_by_key(|(rank, _, _)| *rank)
        .map(|(_, scheme, row)| (scheme, row))
}

/// A registered key, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Row id, referenced by refresh tokens.
    pub id: i64,
    /// How the row's hash was made: a row the original wrote is upgraded on its next use.
    pub key_hash_scheme: HashScheme,
    /// The identifier the key was registered for.
    pub identifier: Uuid,
    /// When the key stops authenticating.
    pub expires_at: DateTime<Utc>,
    /// When the key was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A refresh token, without the token itself, with what refreshing needs to know of its key
/// and its family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Row id.
    pub id: i64,
    /// The key that obtained it.
    pub key_id: i64,
    /// When the token stops refreshing.
    pub expires_at: DateTime<Utc>,
    /// When the token (or its key, or its family) was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the token was rotated into a successor.
    pub retired_at: Option<DateTime<Utc>>,
    /// The rotation family; `None` for tokens issued before rotation existed.
    pub family_id: Option<Uuid>,
    /// Whether a later token of its family has been rotated or revoked: the family has moved
    /// on, so presenting this token again is reuse even within the grace window.
    pub successor_used: bool,
    /// The identifier its key was registered for.
    pub identifier: Uuid,
    /// Whether its key has been revoked.
    pub key_revoked: bool,
    /// When its key expires: a refresh token never outlives its key.
    pub key_expires_at: DateTime<Utc>,
    /// Once rotated, its successor sealed under a key derived from this token itself, so a
    /// retry of the rotation can be answered with the same successor (and the database alone
    /// does not reveal it).
    pub successor_sealed: Option<Vec<u8>>,
}

/// A refresh token to store.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken<'a> {
    /// SHA-512 hex of the token.
    pub token_hash: &'a str,
    /// The key it was obtained with.
    pub key_id: i64,
    /// When it stops refreshing.
    pub expires_at: DateTime<Utc>,
    /// Its rotation family.
    pub family_id: Uuid,
}

/// What registering a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The key is new, or was registered and its expiry moved.
    Registered,
    /// The key was revoked and stays revoked: a revoked key cannot be registered again.
    Revoked,
}

/// What a registration did, from whether the row it touched is live (not revoked).
fn registration(live: bool) -> Registration {
    if live {
        Registration::Registered
    } else {
        Registration::Revoked
    }
}

/// Which keys to revoke.
#[derive(Debug, Clone, Copy)]
pub enum KeySelector<'a> {
    /// The key with these hashes.
    Key(&'a KeyHashes),
    /// The key with this row id (as listed).
    Id(i64),
    /// Every key of an identifier.
    Identifier(Uuid),
}

impl KeySelector<'_> {
    /// The `WHERE` condition on `keys` that selects these keys, the values bound from the
    /// second placeholder on (`?2`/`$2`, and `?3`/`$3` for a key's two hashes).
    fn condition(&self, placeholder: char) -> String {
        match self {
            Self::Key(_) => format!("key_hash IN ({placeholder}2, {placeholder}3)"),
            Self::Id(_) => format!("id = {placeholder}2"),
            Self::Identifier(_) => format!("identifier = {placeholder}2"),
        }
    }
}

/// How many rows a revocation touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Keys newly revoked.
    pub keys: u64,
    /// Refresh tokens newly revoked.
    pub refresh_tokens: u64,
}

/// A registered key as an administrator may see it: no key, no hash material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// Row id, usable to revoke the key.
    pub id: i64,
    /// How its hash was made (`sha512` until a row of the original is upgraded).
    pub key_hash_scheme: String,
    /// The identifier it was registered for.
    pub identifier: Uuid,
    /// When it was registered.
    pub created: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// How busy the connection pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// A database operation failed. The message is for logs only: clients get a generic answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out, ...).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Migrations failed at start.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// An operation this backend does not have.
    #[error("{0}")]
    Unsupported(&'static str),
}

impl StoreError {
    /// Whether a table the statement needs does not exist: a database no server has migrated.
    pub fn is_missing_table(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P01"))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // PostgreSQL shutting down or starting up (class 57, e.g. 57P01, 57P03), out of
            // resources (class 53: disk full, out of memory, too many connections) and broken
            // connections (class 08): the database is unavailable, not the request wrong.
            sqlx::Error::Database(ref db)
                if db.code().is_some_and(|code| {
                    code.starts_with("57") || code.starts_with("53") || code.starts_with("08")
                }) =>
            {
                Self::Unavailable(err)
            }
            other => Self::Database(other),
        }
    }
}

/// What the server keeps: keys and refresh tokens, by hash.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Registers a key for an identifier, or moves the expiry of an already registered key
    /// (its identifier stays the one it was first registered with). A revoked key stays revoked.
    /// A row of the original (legacy hash) is upgraded to `key.current` on the way.
    async fn register_key(
        &self,
        key: &KeyHashes,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError>;

    /// The key stored under either of these hashes, if registered (expired or not).
    async fn find_key(&self, key: &KeyHashes) -> Result<Option<KeyRecord>, StoreError>;

    /// Rewrites the legacy hash of key `id` to `key.current`: `false` when the row no longer
    /// holds the legacy hash (a concurrent use upgraded it first), so it happens once.
    async fn upgrade_key_hash(&self, id: i64, key: &KeyHashes) -> Result<bool, StoreError>;

    /// Stores a new refresh token.
    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError>;

    /// The refresh token with this hash, if stored.
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Atomically retires token `old_id`, keeps `sealed_successor` with it and stores its
    /// successor. `false` when `old_id` was already retired or revoked (a concurrent refresh
    /// won): nothing is stored then. Serialized with [`Store::revoke_refresh_family`] on the
    /// same key, so a revocation never misses a rotation in flight.
    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Revokes token `token_id` and every token of its rotation family as it is when the
    /// revocation runs (after any rotation in flight for key `key_id` has committed).
    async fn revoke_refresh_family(
        &self,
        token_id: i64,
        key_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Revokes the refresh token with this hash; returns how many were revoked (0 or 1).
    async fn revoke_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;

    /// Revokes keys and all their refresh tokens.
    async fn revoke_keys(
        &self,
        selector: KeySelector<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError>;

    /// The keys registered for an identifier, oldest first.
    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError>;

    /// Deletes expired keys and expired or revoked refresh tokens; returns how many rows went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// A setting the server keeps in the database (`server_settings`), if stored.
    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Stores a setting unless one of that name exists; returns the stored value, so that
    /// concurrent replicas agree on the first one written.
    async fn insert_setting(&self, name: &str, value: &str) -> Result<String, StoreError>;

    /// The signing keys shared through the database, the earliest activation first
    /// (PostgreSQL only), read without the maintenance lock.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError>;

    /// Begins a maintenance of the shared signing keys, under the lock that serialises the
    /// replicas' maintenances (PostgreSQL only).
    async fn lock_signing_keys(&self) -> Result<Box<dyn SigningKeyMaintenance>, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's state, for metrics.
    fn pool_status(&self) -> PoolStatus;

    /// Whether servers share this store (PostgreSQL), so that the failure limits count through
    /// it for the whole fleet; on SQLite one process limits in memory.
    fn shares_failure_counts(&self) -> bool {
        false
    }

    /// The failures counted under each of `keys` in the window that started at `window_start`
    /// (Unix seconds); keys with none are left out.
    async fn failure_counts(
        &self,
        keys: &[String],
        window_start: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;

    /// Counts one failure under each of `keys` in that window, kept until `expires_at` (Unix
    /// seconds).
    async fn record_failure(
        &self,
        keys: &[String],
        window_start: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;
}

/// A [`Store`] that records how long each operation takes
/// (`jwthenticator_db_query_duration_seconds{operation}`) and holds it to its deadline
/// ([`deadline`]: the request's, or this one per operation outside requests).
#[derive(Debug)]
pub struct Timed(pub Arc<dyn Store>, pub std::time::Duration);

async fn timed<T>(
    limit: std::time::Duration,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let result = deadline::within(limit, call).await;
    metrics::histogram!("jwthenticator_db_query_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for Timed {
    async fn register_key(
        &self,
        key: &KeyHashes,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        timed(
            self.1,
            "register_key",
            self.0.register_key(key, identifier, expires_at),
        )
        .await
    }

    async fn find_key(&self, key: &KeyHashes) -> Result<Option<KeyRecord>, StoreError> {
        timed(self.1, "find_key", self.0.find_key(key)).await
    }

    async fn upgrade_key_hash(&self, id: i64, key: &KeyHashes) -> Result<bool, StoreError> {
        timed(self.1, "upgrade_key_hash", self.0.upgrade_key_hash(id, key)).await
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError> {
        timed(
            self.1,
            "insert_refresh_token",
            self.0.insert_refresh_token(token),
        )
        .await
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        timed(
            self.1,
            "find_refresh_token",
            self.0.find_refresh_token(token_hash),
        )
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        timed(
            self.1,
            "rotate_refresh_token",
            self.0
                .rotate_refresh_token(old_id, sealed_successor, successor, now),
        )
        .await
    }

    async fn revoke_refresh_family(
        &self,
        token_id: i64,
        key_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        timed(
            self.1,
            "revoke_refresh_family",
            self.0.revoke_refresh_family(token_id, key_id, now),
        )
        .await
    }

    async fn revoke_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        timed(
            self.1,
            "revoke_refresh_token",
            self.0.revoke_refresh_token(token_hash, now),
        )
        .await
    }

    async fn revoke_keys(
        &self,
        selector: KeySelector<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        timed(self.1, "revoke_keys", self.0.revoke_keys(selector, now)).await
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        timed(self.1, "list_keys", self.0.list_keys(identifier)).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        timed(self.1, "purge_expired", self.0.purge_expired(now)).await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        timed(self.1, "setting", self.0.setting(name)).await
    }

    async fn insert_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        timed(self.1, "insert_setting", self.0.insert_setting(name, value)).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        timed(self.1, "signing_keys", self.0.signing_keys()).await
    }

    async fn lock_signing_keys(&self) -> Result<Box<dyn SigningKeyMaintenance>, StoreError> {
        timed(self.1, "lock_signing_keys", self.0.lock_signing_keys()).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(self.1, "ping", self.0.ping()).await
    }

    fn pool_status(&self) -> PoolStatus {
        self.0.pool_status()
    }

    fn shares_failure_counts(&self) -> bool {
        self.0.shares_failure_counts()
    }

    async fn failure_counts(
        &self,
        keys: &[String],
        window_start: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        timed(
            self.1,
            "failure_counts",
            self.0.failure_counts(keys, window_start),
        )
        .await
    }

    async fn record_failure(
        &self,
        keys: &[String],
        window_start: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        timed(
            self.1,
            "record_failure",
            self.0.record_failure(keys, window_start, expires_at),
        )
        .await
    }
}

/// Opens the configured database, creating it where the configuration says so, and runs the
/// migrations.
pub async fn connect(
    database: &Database,
    max_connections: u32,
    deadline: std::time::Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match database {
        Database::Postgres {
            url,
            create_if_missing,
        } => Arc::new(
            PostgresStore::connect(url.expose(), *create_if_missing, max_connections).await?,
        ),
        Database::Sqlite { url, file } => {
            Arc::new(SqliteStore::connect(url, file.as_deref(), max_connections).await?)
        }
    };
    Ok(Arc::new(Timed(store, deadline)))
}
