//! PostgreSQL: production, shared by any number of replicas.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use super::{KeyRecord, RefreshTokenRecord, Store, StoreError};

/// The original stored naive UTC timestamps; so do we.
fn naive(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

/// A [`Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects (creating the database first when asked and missing) and runs the migrations.
    pub async fn connect(
        url: &str,
        create_if_missing: bool,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        if create_if_missing {
            create_database(&options).await?;
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// A store on an existing pool, migrated.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }
}

/// `CREATE DATABASE` when it does not exist, as the original did on first start.
async fn create_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&statement).execute(&mut admin).await {
            Ok(_) => tracing::info!(database = %name, "created the PostgreSQL database"),
            // Another replica created it first.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO keys (key_hash, identifier, created, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at",
        )
        .bind(key_hash)
        .bind(identifier)
        .bind(naive(Utc::now()))
        .bind(naive(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key_exists(&self, key_hash: &str) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM keys WHERE key_hash = $1)")
                .bind(key_hash)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn find_key(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row: Option<(i64, Uuid, NaiveDateTime)> =
            sqlx::query_as("SELECT id, identifier, expires_at FROM keys WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(id, identifier, expires_at)| KeyRecord {
            id,
            identifier,
            expires_at: expires_at.and_utc(),
        }))
    }

    async fn insert_refresh_token(
        &self,
        token_hash: &str,
        key_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(key_id)
        .bind(naive(Utc::now()))
        .bind(naive(expires_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row: Option<(i64, i64, NaiveDateTime)> = sqlx::query_as(
            "SELECT id, key_id, expires_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(id, key_id, expires_at)| RefreshTokenRecord {
            id,
            key_id,
            expires_at: expires_at.and_utc(),
        }))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = naive(now);
        let tokens = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // A key goes once it has expired and no live refresh token refers to it.
        let keys = sqlx::query(
            "DELETE FROM keys WHERE expires_at < $1
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
