//! PostgreSQL: production, shared by any number of replicas.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use super::{
    KeyRecord, KeySelector, KeySummary, NewRefreshToken, PoolStatus, RefreshTokenRecord,
    Registration, Revoked, Store, StoreError, hash_prefix,
};

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

type TokenRow = (
    i64,
    i64,
    NaiveDateTime,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    Option<Uuid>,
    bool,
    Uuid,
    bool,
);

/// Revokes the keys whose `column` equals `value`, and their refresh tokens, in one transaction.
async fn revoke_keys_where<T>(
    pool: &PgPool,
    column: &str,
    value: T,
    now: NaiveDateTime,
) -> Result<Revoked, StoreError>
where
    T: for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres> + Send + Clone + 'static,
{
    let mut tx = pool.begin().await?;
    let refresh_tokens = sqlx::query(&format!(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL
         AND key_id IN (SELECT id FROM keys WHERE {column} = $2)"
    ))
    .bind(now)
    .bind(value.clone())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let keys = sqlx::query(&format!(
        "UPDATE keys SET revoked_at = $1 WHERE revoked_at IS NULL AND {column} = $2"
    ))
    .bind(now)
    .bind(value)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(Revoked {
        keys,
        refresh_tokens,
    })
}

#[async_trait]
impl Store for PostgresStore {
    async fn register_key(
        &self,
        key_hash: &str,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let rows = sqlx::query(
            "INSERT INTO keys (key_hash, identifier, created, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at
             WHERE keys.revoked_at IS NULL",
        )
        .bind(key_hash)
        .bind(identifier)
        .bind(naive(Utc::now()))
        .bind(naive(expires_at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(if rows == 0 {
            Registration::Revoked
        } else {
            Registration::Registered
        })
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
        let row: Option<(i64, Uuid, NaiveDateTime, Option<NaiveDateTime>)> = sqlx::query_as(
            "SELECT id, identifier, expires_at, revoked_at FROM keys WHERE key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map(|(id, identifier, expires_at, revoked_at)| KeyRecord {
                id,
                identifier,
                expires_at: expires_at.and_utc(),
                revoked_at: revoked_at.map(|t| t.and_utc()),
            }),
        )
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at, family_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.token_hash)
        .bind(token.key_id)
        .bind(naive(Utc::now()))
        .bind(naive(token.expires_at))
        .bind(token.family_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        let row: Option<TokenRow> = sqlx::query_as(
            "SELECT r.id, r.key_id, r.expires_at, r.revoked_at, r.retired_at, r.family_id,
                    EXISTS (SELECT 1 FROM refresh_tokens f WHERE f.family_id = r.family_id
                            AND f.id > r.id AND (f.retired_at IS NOT NULL OR f.revoked_at IS NOT NULL)),
                    k.identifier, k.revoked_at IS NOT NULL
             FROM refresh_tokens r
             JOIN keys k ON k.id = r.key_id
             WHERE r.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(
                id,
                key_id,
                expires_at,
                revoked_at,
                retired_at,
                family_id,
                successor_used,
                identifier,
                key_revoked,
            )| {
                RefreshTokenRecord {
                    id,
                    key_id,
                    expires_at: expires_at.and_utc(),
                    revoked_at: revoked_at.map(|t| t.and_utc()),
                    retired_at: retired_at.map(|t| t.and_utc()),
                    family_id,
                    successor_used,
                    identifier,
                    key_revoked,
                }
            },
        ))
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = naive(now);
        let mut tx = self.pool.begin().await?;
        // Row lock: a concurrent rotation of the same token waits here, then finds it retired.
        let retired = sqlx::query(
            "UPDATE refresh_tokens SET retired_at = $1
             WHERE id = $2 AND retired_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(old_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if retired == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let successor_id: i64 = sqlx::query_scalar(
            "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at, family_id)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(successor.token_hash)
        .bind(successor.key_id)
        .bind(now)
        .bind(naive(successor.expires_at))
        .bind(successor.family_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE refresh_tokens SET replaced_by = $1, family_id = $2 WHERE id = $3")
            .bind(successor_id)
            .bind(successor.family_id)
            .bind(old_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_refresh_family(
        &self,
        token_id: i64,
        family_id: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1
             WHERE revoked_at IS NULL AND (id = $2 OR family_id = $3)",
        )
        .bind(naive(now))
        .bind(token_id)
        .bind(family_id)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn revoke_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(naive(now))
        .bind(token_hash)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn revoke_keys(
        &self,
        selector: KeySelector<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        let now = naive(now);
        match selector {
            KeySelector::Hash(hash) => {
                revoke_keys_where(&self.pool, "key_hash", hash.to_owned(), now).await
            }
            KeySelector::Id(id) => revoke_keys_where(&self.pool, "id", id, now).await,
            KeySelector::Identifier(identifier) => {
                revoke_keys_where(&self.pool, "identifier", identifier, now).await
            }
        }
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        let rows: Vec<(
            i64,
            String,
            NaiveDateTime,
            NaiveDateTime,
            Option<NaiveDateTime>,
        )> = sqlx::query_as(
            "SELECT id, key_hash, created, expires_at, revoked_at FROM keys
             WHERE identifier = $1 ORDER BY id",
        )
        .bind(identifier)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, key_hash, created, expires_at, revoked_at)| KeySummary {
                    id,
                    key_hash_prefix: hash_prefix(&key_hash),
                    identifier,
                    created: created.and_utc(),
                    expires_at: expires_at.and_utc(),
                    revoked_at: revoked_at.map(|t| t.and_utc()),
                },
            )
            .collect())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = naive(now);
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens WHERE expires_at < $1 OR revoked_at IS NOT NULL",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        // A key goes once it has expired and no refresh token refers to it. Revoked keys stay
        // until they expire, so registering them again cannot bring them back.
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

    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }
}
