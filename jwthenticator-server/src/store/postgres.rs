//! PostgreSQL: production, shared by any number of replicas.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use uuid::Uuid;

use super::batch::Batcher;
use super::signing_keys::{self, SigningKeyMaintenance, SigningKeyRow};
use super::{
    KeyHashes, KeyRecord, KeySelector, KeySummary, NewRefreshToken, PoolStatus, RefreshTokenRecord,
    Registration, Revoked, Store, StoreError, best_match, registration,
};

/// The original stored naive UTC timestamps; so do we.
fn naive(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}

/// A [`Store`] on PostgreSQL.
///
/// The statements of every `/authenticate` (finding the key, storing the refresh token) and
/// `/refresh` (finding the refresh token) are batched across concurrent requests: under load,
/// PostgreSQL then runs one statement and one commit for many requests instead of one each,
/// and every caller still answers only after its own statement has committed.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    key_lookups: Batcher<KeyHashes, Option<KeyRecord>>,
    token_inserts: Batcher<OwnedRefreshToken, bool>,
    token_lookups: Batcher<String, Option<RefreshTokenRecord>>,
}

/// Most requests one batched statement carries.
const MAX_BATCH: usize = 128;

/// A refresh token to store, owned so that it can wait for its batch.
#[derive(Debug)]
struct OwnedRefreshToken {
    token_hash: String,
    key_id: i64,
    expires_at: NaiveDateTime,
    family_id: Uuid,
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
        Self::from_pool(pool).await
    }

    /// A store on the database at `url`, neither created nor migrated, with one connection:
    /// for reading what the servers wrote without changing it (`check-config`).
    pub async fn read_only(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(PgConnectOptions::from_str(url)?)
            .await?;
        Ok(Self::unmigrated(pool))
    }

    /// A store on an existing pool, migrated.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        let store = Self::unmigrated(pool);
        store.migrate().await?;
        Ok(store)
    }

    fn unmigrated(pool: PgPool) -> Self {
        // A quarter of the pool for each of the three kinds of batch, so that batches grow
        // under load while the other statements keep connections of their own.
        let in_flight = usize::try_from(pool.options().get_max_connections() / 4)
            .unwrap_or(1)
            .max(1);
        Self {
            key_lookups: Batcher::new("find_key", MAX_BATCH, in_flight, {
                let pool = pool.clone();
                move |keys| find_keys(pool.clone(), keys)
            }),
            token_inserts: Batcher::new("insert_refresh_token", MAX_BATCH, in_flight, {
                let pool = pool.clone();
                move |tokens| insert_refresh_tokens(pool.clone(), tokens)
            }),
            token_lookups: Batcher::new("find_refresh_token", MAX_BATCH, in_flight, {
                let pool = pool.clone();
                move |hashes| find_refresh_tokens(pool.clone(), hashes)
            }),
            pool,
        }
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

/// A refresh token row with what refreshing needs of its key and family.
#[derive(sqlx::FromRow)]
struct TokenRow {
    token_hash: String,
    id: i64,
    key_id: i64,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
    retired_at: Option<NaiveDateTime>,
    family_id: Option<Uuid>,
    successor_used: bool,
    identifier: Uuid,
    key_revoked: bool,
    key_expires_at: NaiveDateTime,
    successor_sealed: Option<Vec<u8>>,
}

/// Serializes the rotations and family revocations of one key's refresh tokens until the
/// transaction ends. A row lock would not do: under READ COMMITTED a revoking `UPDATE` does not
/// see the successor that a concurrent rotation inserts, so that token would live on.
async fn lock_families_of_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key_id: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('jwthenticator.refresh.' || $1::text, 0))",
    )
    .bind(key_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

/// Binds the values of [`KeySelector::condition`], after the one bound first.
fn bind_selector<'q>(query: PgQuery<'q>, selector: KeySelector<'q>) -> PgQuery<'q> {
    match selector {
        KeySelector::Key(key) => query
            .bind(key.current.as_str())
            .bind(key.legacy_or_current()),
        KeySelector::Id(id) => query.bind(id),
        KeySelector::Identifier(identifier) => query.bind(identifier),
    }
}

/// Revokes the selected keys and their refresh tokens in one transaction.
async fn revoke_keys_where(
    pool: &PgPool,
    selector: KeySelector<'_>,
    now: NaiveDateTime,
) -> Result<Revoked, StoreError> {
    let condition = selector.condition('$');
    let mut tx = pool.begin().await?;
    let tokens_sql = format!(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE revoked_at IS NULL
         AND key_id IN (SELECT id FROM keys WHERE {condition})"
    );
    let refresh_tokens = bind_selector(sqlx::query(&tokens_sql).bind(now), selector)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let keys_sql =
        format!("UPDATE keys SET revoked_at = $1 WHERE revoked_at IS NULL AND {condition}");
    let keys = bind_selector(sqlx::query(&keys_sql).bind(now), selector)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Revoked {
        keys,
        refresh_tokens,
    })
}

/// A row of `keys` as a lookup reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
struct KeyRow {
    key_hash: String,
    key_hash_scheme: String,
    id: i64,
    identifier: Uuid,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

/// A row of `keys` as `GET /keys` lists it.
#[derive(sqlx::FromRow)]
struct KeyListRow {
    id: i64,
    key_hash_scheme: String,
    created: NaiveDateTime,
    expires_at: NaiveDateTime,
    revoked_at: Option<NaiveDateTime>,
}

/// The keys stored under these hashes, one answer per key (a key may come more than once):
/// one statement looks up every key's current and legacy hash.
async fn find_keys(
    pool: PgPool,
    keys: Vec<KeyHashes>,
) -> Result<Vec<Option<KeyRecord>>, StoreError> {
    let hashes: Vec<&str> = keys
        .iter()
        .flat_map(|key| std::iter::once(key.current.as_str()).chain(key.legacy.as_deref()))
        .collect();
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT key_hash, key_hash_scheme, id, identifier, expires_at, revoked_at FROM keys
             WHERE key_hash = ANY($1)",
    )
    .bind(&hashes)
    .fetch_all(&pool)
    .await?;
    let found: std::collections::HashMap<String, KeyRow> = rows
        .into_iter()
        .map(|row| (row.key_hash.clone(), row))
        .collect();
    Ok(keys
        .iter()
        .map(|key| {
            let candidates = std::iter::once(key.current.as_str())
                .chain(key.legacy.as_deref())
                .filter_map(|hash| {
                    found
                        .get(hash)
                        .map(|row| (hash, row.key_hash_scheme.as_str(), row))
                });
            best_match(key, candidates).map(|(key_hash_scheme, row)| KeyRecord {
                id: row.id,
                key_hash_scheme,
                identifier: row.identifier,
                expires_at: row.expires_at.and_utc(),
                revoked_at: row.revoked_at.map(|t| t.and_utc()),
            })
        })
        .collect())
}

/// One answer per asked hash, in order, from the rows found (a hash asked twice gets its row
/// twice; a hash without a row gets `None`).
fn answer_each<T: Clone>(
    hashes: &[String],
    found: impl Iterator<Item = (String, T)>,
) -> Vec<Option<T>> {
    let found: std::collections::HashMap<String, T> = found.collect();
    hashes.iter().map(|hash| found.get(hash).cloned()).collect()
}

/// The refresh tokens with these hashes, with what refreshing needs to know of their key and
/// family, one answer per hash.
async fn find_refresh_tokens(
    pool: PgPool,
    hashes: Vec<String>,
) -> Result<Vec<Option<RefreshTokenRecord>>, StoreError> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        "SELECT r.token_hash, r.id, r.key_id, r.expires_at, r.revoked_at, r.retired_at,
                r.family_id,
                EXISTS (SELECT 1 FROM refresh_tokens f WHERE f.family_id = r.family_id
                        AND f.id > r.id AND (f.retired_at IS NOT NULL OR f.revoked_at IS NOT NULL))
                    AS successor_used,
                k.identifier, k.revoked_at IS NOT NULL AS key_revoked,
                k.expires_at AS key_expires_at, r.successor_sealed
         FROM refresh_tokens r
         JOIN keys k ON k.id = r.key_id
         WHERE r.token_hash = ANY($1)",
    )
    .bind(&hashes)
    .fetch_all(&pool)
    .await?;
    let found = rows.into_iter().map(|row| {
        let record = RefreshTokenRecord {
            id: row.id,
            key_id: row.key_id,
            expires_at: row.expires_at.and_utc(),
            revoked_at: row.revoked_at.map(|t| t.and_utc()),
            retired_at: row.retired_at.map(|t| t.and_utc()),
            family_id: row.family_id,
            successor_used: row.successor_used,
            identifier: row.identifier,
            key_revoked: row.key_revoked,
            key_expires_at: row.key_expires_at.and_utc(),
            successor_sealed: row.successor_sealed,
        };
        (row.token_hash, record)
    });
    Ok(answer_each(&hashes, found))
}

/// Stores refresh tokens in one statement; `false` for a token whose key no longer exists (it
/// is skipped rather than failing the whole batch on the foreign key).
async fn insert_refresh_tokens(
    pool: PgPool,
    tokens: Vec<OwnedRefreshToken>,
) -> Result<Vec<bool>, StoreError> {
    let hashes: Vec<&str> = tokens.iter().map(|t| t.token_hash.as_str()).collect();
    let key_ids: Vec<i64> = tokens.iter().map(|t| t.key_id).collect();
    let expiries: Vec<NaiveDateTime> = tokens.iter().map(|t| t.expires_at).collect();
    let families: Vec<Uuid> = tokens.iter().map(|t| t.family_id).collect();
    let stored: Vec<String> = sqlx::query_scalar(
        "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at, family_id)
         SELECT t.token_hash, t.key_id, $2, t.expires_at, t.family_id
         FROM UNNEST($1::varchar[], $3::int8[], $4::timestamp[], $5::uuid[])
              AS t (token_hash, key_id, expires_at, family_id)
         JOIN keys k ON k.id = t.key_id
         RETURNING token_hash",
    )
    .bind(&hashes)
    .bind(naive(Utc::now()))
    .bind(&key_ids)
    .bind(&expiries)
    .bind(&families)
    .fetch_all(&pool)
    .await?;
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    Ok(hashes.iter().map(|hash| stored.contains(*hash)).collect())
}

#[async_trait]
impl Store for PostgresStore {
    async fn register_key(
        &self,
        key: &KeyHashes,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(legacy) = &key.legacy {
            // The row lock makes a concurrent registration or upgrade of the same row wait, and
            // then find the legacy hash gone.
            let upgraded: Option<bool> = sqlx::query_scalar(
                "UPDATE keys SET key_hash = $1, key_hash_scheme = $2,
                     expires_at = CASE WHEN revoked_at IS NULL THEN $3 ELSE expires_at END
                 WHERE key_hash = $4 AND key_hash_scheme = 'sha512'
                 RETURNING revoked_at IS NULL",
            )
            .bind(&key.current)
            .bind(key.scheme.as_str())
            .bind(naive(expires_at))
            .bind(legacy)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(live) = upgraded {
                tx.commit().await?;
                return Ok(registration(live));
            }
        }
        let rows = sqlx::query(
            "INSERT INTO keys (key_hash, key_hash_scheme, identifier, created, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = EXCLUDED.expires_at
             WHERE keys.revoked_at IS NULL",
        )
        .bind(&key.current)
        .bind(key.scheme.as_str())
        .bind(identifier)
        .bind(naive(Utc::now()))
        .bind(naive(expires_at))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(registration(rows > 0))
    }

    async fn find_key(&self, key: &KeyHashes) -> Result<Option<KeyRecord>, StoreError> {
        self.key_lookups.submit(key.clone()).await
    }

    async fn upgrade_key_hash(&self, id: i64, key: &KeyHashes) -> Result<bool, StoreError> {
        let Some(legacy) = &key.legacy else {
            return Ok(false);
        };
        let rows = sqlx::query(
            "UPDATE keys SET key_hash = $1, key_hash_scheme = $2
             WHERE id = $3 AND key_hash = $4 AND key_hash_scheme = 'sha512'",
        )
        .bind(&key.current)
        .bind(key.scheme.as_str())
        .bind(id)
        .bind(legacy)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(rows == 1)
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError> {
        let stored = self
            .token_inserts
            .submit(OwnedRefreshToken {
                token_hash: token.token_hash.to_owned(),
                key_id: token.key_id,
                expires_at: naive(token.expires_at),
                family_id: token.family_id,
            })
            .await?;
        if stored {
            Ok(())
        } else {
            Err(StoreError::Database(sqlx::Error::Protocol(
                "the key of the refresh token was deleted meanwhile".to_owned(),
            )))
        }
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        self.token_lookups.submit(token_hash.to_owned()).await
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = naive(now);
        let mut tx = self.pool.begin().await?;
        lock_families_of_key(&mut tx, successor.key_id).await?;
        // Row lock: a concurrent rotation of the same token waits here, then finds it retired.
        let retired = sqlx::query(
            "UPDATE refresh_tokens SET retired_at = $1, successor_sealed = $3
             WHERE id = $2 AND retired_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(old_id)
        .bind(sealed_successor)
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
        key_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_families_of_key(&mut tx, key_id).await?;
        // Under the lock, and in a statement that starts after it is taken: a rotation that was
        // in flight has committed, so its successor is seen and revoked too.
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1
             WHERE revoked_at IS NULL AND (id = $2 OR family_id =
                   (SELECT family_id FROM refresh_tokens WHERE id = $2))",
        )
        .bind(naive(now))
        .bind(token_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(revoked)
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
        revoke_keys_where(&self.pool, selector, naive(now)).await
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        let rows: Vec<KeyListRow> = sqlx::query_as(
            "SELECT id, key_hash_scheme, created, expires_at, revoked_at FROM keys
             WHERE identifier = $1 ORDER BY id",
        )
        .bind(identifier)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| KeySummary {
                id: row.id,
                key_hash_scheme: row.key_hash_scheme,
                identifier,
                created: row.created.and_utc(),
                expires_at: row.expires_at.and_utc(),
                revoked_at: row.revoked_at.map(|t| t.and_utc()),
            })
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
        let failures = sqlx::query("DELETE FROM auth_failures WHERE expires_at < $1")
            .bind(now.and_utc().timestamp())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(tokens + keys + failures)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM server_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn insert_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        // Two statements: the second one's snapshot sees a row that a concurrent replica
        // committed while the first waited on it.
        sqlx::query(
            "INSERT INTO server_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_settings WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        signing_keys::all(&self.pool).await
    }

    async fn lock_signing_keys(&self) -> Result<Box<dyn SigningKeyMaintenance>, StoreError> {
        signing_keys::lock(&self.pool).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn shares_failure_counts(&self) -> bool {
        true
    }

    async fn failure_counts(
        &self,
        keys: &[String],
        window_start: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT counted, failures::BIGINT FROM auth_failures
             WHERE counted = ANY($1) AND window_start = $2",
        )
        .bind(keys)
        .bind(window_start)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn record_failure(
        &self,
        keys: &[String],
        window_start: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Sorted, so that concurrent upserts of the same keys lock their rows in one order.
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        sqlx::query(
            "INSERT INTO auth_failures (counted, window_start, failures, expires_at)
             SELECT counted, $2, 1, $3 FROM UNNEST($1::TEXT[]) AS counted
             ON CONFLICT (counted, window_start)
             DO UPDATE SET failures = auth_failures.failures + 1",
        )
        .bind(&keys)
        .bind(window_start)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
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
