//! Persistence behind one trait, with PostgreSQL and SQLite implementations.
//!
//! Keys and refresh tokens are stored only as SHA-512 hex hashes (the original's key hash, so a
//! database it wrote keeps working). Every lookup goes through the unique hash index.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::Database;

mod batch;
mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// The SHA-512 hex digest under which a key or refresh token is stored (the original's key hash).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA512,
        secret.as_bytes(),
    ))
}

/// A registered key, without the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Row id, referenced by refresh tokens.
    pub id: i64,
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

/// Which keys to revoke.
#[derive(Debug, Clone, Copy)]
pub enum KeySelector<'a> {
    /// The key with this hash.
    Hash(&'a str),
    /// The key with this row id (as listed).
    Id(i64),
    /// Every key of an identifier.
    Identifier(Uuid),
}

/// How many rows a revocation touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revoked {
    /// Keys newly revoked.
    pub keys: u64,
    /// Refresh tokens newly revoked.
    pub refresh_tokens: u64,
}

/// A registered key as an administrator may see it: never the key, only a hash prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySummary {
    /// Row id, usable to revoke the key.
    pub id: i64,
    /// The first 16 hex digits of the key's SHA-512 hash.
    pub key_hash_prefix: String,
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

/// Length of the hash prefix shown for a key.
pub const KEY_HASH_PREFIX_LEN: usize = 16;

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
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            // PostgreSQL shutting down or starting up (class 57, e.g. 57P01, 57P03) and broken
            // connections (class 08): the database is unavailable, not the request wrong.
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|code| code.starts_with("57") || code.starts_with("08")) =>
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
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError>;

    /// Whether a key with this hash is registered (expired or not, as the original answered).
    async fn key_exists(&self, key_hash: &str) -> Result<bool, StoreError>;

    /// The key with this hash, if registered.
    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError>;

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

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The connection pool's state, for metrics.
    fn pool_status(&self) -> PoolStatus;
}

/// A [`Store`] that records how long each operation takes
/// (`jwthenticator_db_query_duration_seconds{operation}`).
#[derive(Debug)]
pub struct Timed(pub Arc<dyn Store>);

async fn timed<T>(operation: &'static str, call: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = call.await;
    metrics::histogram!("jwthenticator_db_query_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for Timed {
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        timed(
            "register_key",
            self.0.register_key(key_hash, identifier, expires_at),
        )
        .await
    }

    async fn key_exists(&self, key_hash: &str) -> Result<bool, StoreError> {
        timed("key_exists", self.0.key_exists(key_hash)).await
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        timed("find_key", self.0.find_key(key_hash)).await
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError> {
        timed("insert_refresh_token", self.0.insert_refresh_token(token)).await
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        timed("find_refresh_token", self.0.find_refresh_token(token_hash)).await
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        timed(
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
        timed("revoke_keys", self.0.revoke_keys(selector, now)).await
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        timed("list_keys", self.0.list_keys(identifier)).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        timed("purge_expired", self.0.purge_expired(now)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed("ping", self.0.ping()).await
    }

    fn pool_status(&self) -> PoolStatus {
        self.0.pool_status()
    }
}

fn hash_prefix(key_hash: &str) -> String {
    key_hash.chars().take(KEY_HASH_PREFIX_LEN).collect()
}

/// Opens the configured database, creating it where the configuration says so, and runs the
/// migrations.
pub async fn connect(
    database: &Database,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match database {
        Database::Postgres {
            url,
            create_if_missing,
        } => Arc::new(
            PostgresStore::connect(url.expose(), *create_if_missing, max_connections).await?,
        ),
        Database::Sqlite { url, .. } => Arc::new(SqliteStore::connect(url, max_connections).await?),
    };
    Ok(Arc::new(Timed(store)))
}
