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
}

/// A refresh token, without the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Row id.
    pub id: i64,
    /// The key that obtained it.
    pub key_id: i64,
    /// When the token stops refreshing.
    pub expires_at: DateTime<Utc>,
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
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err),
            other => Self::Database(other),
        }
    }
}

/// What the server keeps: keys and refresh tokens, by hash.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Registers a key for an identifier, or moves the expiry of an already registered key
    /// (its identifier stays the one it was first registered with).
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Whether a key with this hash is registered (expired or not, as the original answered).
    async fn key_exists(&self, key_hash: &str) -> Result<bool, StoreError>;

    /// The key with this hash, if registered.
    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Stores a new refresh token for a key.
    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        key_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// The refresh token with this hash, if stored.
    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;

    /// Deletes keys and refresh tokens that expired before `now`; returns how many rows went.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the configured database, creating it where the configuration says so, and runs the
/// migrations.
pub async fn connect(
    database: &Database,
    max_connections: u32,
) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match database {
        Database::Postgres {
            url,
            create_if_missing,
        } => Arc::new(
            PostgresStore::connect(url.expose(), *create_if_missing, max_connections).await?,
        ),
        Database::Sqlite { url, .. } => Arc::new(SqliteStore::connect(url, max_connections).await?),
    })
}
