//! SQLite: the embedded default for a single node, no setup.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use super::{KeyRecord, RefreshTokenRecord, Store, StoreError};

fn from_unix(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A [`Store`] on an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if needed) and runs the migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (key_hash, identifier, created, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(key_hash)
        .bind(identifier)
        .bind(Utc::now().timestamp())
        .bind(expires_at.timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key_exists(&self, key_hash: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM keys WHERE key_hash = ?1)")
                .bind(key_hash)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<(i64, Uuid, i64)> =
            sqlx::query_as("SELECT id, identifier, expires_at FROM keys WHERE key_hash = ?1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, identifier, expires_at)| KeyRecord {
            id,
            identifier,
            expires_at: from_unix(expires_at),
        }))
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        key_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(token_hash)
        .bind(key_id)
        .bind(Utc::now().timestamp())
        .bind(expires_at.timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT id, key_id, expires_at FROM refresh_tokens WHERE token_hash = ?1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, key_id, expires_at)| RefreshTokenRecord {
            id,
            key_id,
            expires_at: from_unix(expires_at),
        }))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = now.timestamp();
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < ?1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let keys = sqlx::query(
            "DELETE FROM keys WHERE expires_at < ?1
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE refresh_tokens.key_id = keys.id)",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(tokens + keys)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
