//! SQLite: the embedded default for a single node, no setup.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use uuid::Uuid;

use crate::private_files;

use super::{
    KeyHashes, KeyRecord, KeySelector, KeySummary, NewRefreshToken, PoolStatus, RefreshTokenRecord,
    Registration, Revoked, Store, StoreError, best_match, registration,
};
use super::{SigningKeyMaintenance, SigningKeyRow};

/// The embedded database keeps its signing key in a file beside it.
const SHARED_KEYS_NEED_POSTGRES: &str = "signing keys are shared through PostgreSQL only";

fn from_unix(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// A [`Store`] on an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens `url` (creating the database `file` and its directory if needed, both readable
    /// by their owner only) and runs the migrations.
    pub async fn connect(
        url: &str,
        file: Option<&Path>,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        if let Some(file) = file {
            protect(file).map_err(|e| StoreError::Unavailable(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await?;
        Self::from_pool(pool).await
    }

    /// A store on an existing pool (foreign keys on), migrated.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self, StoreError> {
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// Creates the database's directory (0700) and file (0600) before SQLite does, which would
/// make them as the umask says; SQLite gives its `-wal` and `-shm` files the database file's
/// permissions. Files an earlier version created readable by others are restricted.
fn protect(file: &Path) -> std::io::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_files::create_dir(dir)?;
    }
    match private_files::create_file(file, b"") {
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        other => other?,
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        let path = std::path::PathBuf::from(path);
        if private_files::restrict(&path)? {
            tracing::warn!(path = %path.display(), "the database file was readable by others: restricted it to its owner");
        }
    }
    Ok(())
}

/// A refresh token row with what refreshing needs of its key and family.
/// A row of `keys` as a lookup reads it.
#[derive(sqlx::FromRow)]
struct KeyRow {
    key_hash: String,
    key_hash_scheme: String,
    id: i64,
    identifier: Uuid,
    expires_at: i64,
    revoked_at: Option<i64>,
}

/// A row of `keys` as `GET /keys` lists it.
#[derive(sqlx::FromRow)]
struct KeyListRow {
    id: i64,
    key_hash_scheme: String,
    created: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    key_id: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    retired_at: Option<i64>,
    family_id: Option<Uuid>,
    successor_used: bool,
    identifier: Uuid,
    key_revoked: bool,
    key_expires_at: i64,
    successor_sealed: Option<Vec<u8>>,
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds the values of [`KeySelector::condition`], after the one bound first.
fn bind_selector<'q>(query: SqliteQuery<'q>, selector: KeySelector<'q>) -> SqliteQuery<'q> {
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
    pool: &SqlitePool,
    selector: KeySelector<'_>,
    now: i64,
) -> Result<Revoked, StoreError> {
    let condition = selector.condition('?');
    let mut tx = pool.begin().await?;
    let tokens_sql = format!(
        "UPDATE refresh_tokens SET revoked_at = ?1 WHERE revoked_at IS NULL
         AND key_id IN (SELECT id FROM keys WHERE {condition})"
    );
    let refresh_tokens = bind_selector(sqlx::query(&tokens_sql).bind(now), selector)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let keys_sql =
        format!("UPDATE keys SET revoked_at = ?1 WHERE revoked_at IS NULL AND {condition}");
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

#[async_trait]
impl Store for SqliteStore {
    async fn register_key(
        &self,
        key: &KeyHashes,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        // The first statement writes, so the transaction holds SQLite's write lock throughout.
        let mut tx = self.pool.begin().await?;
        if let Some(legacy) = &key.legacy {
            let upgraded: Option<bool> = sqlx::query_scalar(
                "UPDATE keys SET key_hash = ?1, key_hash_scheme = ?2,
                     expires_at = CASE WHEN revoked_at IS NULL THEN ?3 ELSE expires_at END
                 WHERE key_hash = ?4 AND key_hash_scheme = 'sha512'
                 RETURNING revoked_at IS NULL",
            )
            .bind(&key.current)
            .bind(key.scheme.as_str())
            .bind(expires_at.timestamp())
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
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (key_hash) DO UPDATE SET expires_at = excluded.expires_at
             WHERE keys.revoked_at IS NULL",
        )
        .bind(&key.current)
        .bind(key.scheme.as_str())
        .bind(identifier)
        .bind(Utc::now().timestamp())
        .bind(expires_at.timestamp())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(registration(rows > 0))
    }

    async fn find_key(&self, key: &KeyHashes) -> Result<Option<KeyRecord>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT key_hash, key_hash_scheme, id, identifier, expires_at, revoked_at FROM keys
             WHERE key_hash IN (?1, ?2)",
        )
        .bind(&key.current)
        .bind(key.legacy_or_current())
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(|row| (&row.key_hash, &row.key_hash_scheme, row));
        Ok(
            best_match(key, rows).map(|(key_hash_scheme, row)| KeyRecord {
                id: row.id,
                key_hash_scheme,
                identifier: row.identifier,
                expires_at: from_unix(row.expires_at),
                revoked_at: row.revoked_at.map(from_unix),
            }),
        )
    }

    async fn upgrade_key_hash(&self, id: i64, key: &KeyHashes) -> Result<bool, StoreError> {
        let Some(legacy) = &key.legacy else {
            return Ok(false);
        };
        let rows = sqlx::query(
            "UPDATE keys SET key_hash = ?1, key_hash_scheme = ?2
             WHERE id = ?3 AND key_hash = ?4 AND key_hash_scheme = 'sha512'",
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
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, key_id, created, expires_at, family_id)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(token.token_hash)
        .bind(token.key_id)
        .bind(Utc::now().timestamp())
        .bind(token.expires_at.timestamp())
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
                            AND f.id > r.id AND (f.retired_at IS NOT NULL OR f.revoked_at IS NOT NULL))
                        AS successor_used,
                    k.identifier, k.revoked_at IS NOT NULL AS key_revoked,
                    k.expires_at AS key_expires_at, r.successor_sealed
             FROM refresh_tokens r
             JOIN keys k ON k.id = r.key_id
             WHERE r.token_hash = ?1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| RefreshTokenRecord {
            id: row.id,
            key_id: row.key_id,
            expires_at: from_unix(row.expires_at),
            revoked_at: row.revoked_at.map(from_unix),
            retired_at: row.retired_at.map(from_unix),
            family_id: row.family_id,
            successor_used: row.successor_used,
            identifier: row.identifier,
            key_revoked: row.key_revoked,
            key_expires_at: from_unix(row.key_expires_at),
            successor_sealed: row.successor_sealed,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let now = now.timestamp();
        // The first statement writes, so the transaction takes SQLite's write lock at once: a
        // concurrent rotation or family revocation waits (busy_timeout) for it to commit.
        let mut tx = self.pool.begin().await?;
        let retired = sqlx::query(
            "UPDATE refresh_tokens SET retired_at = ?1, successor_sealed = ?3
             WHERE id = ?2 AND retired_at IS NULL AND revoked_at IS NULL",
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
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
        )
        .bind(successor.token_hash)
        .bind(successor.key_id)
        .bind(now)
        .bind(successor.expires_at.timestamp())
        .bind(successor.family_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE refresh_tokens SET replaced_by = ?1, family_id = ?2 WHERE id = ?3")
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
        _key_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        // One statement: SQLite runs it under its write lock, after any rotation has committed,
        // and the family is read then, not from what the caller saw before.
        Ok(sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?1
             WHERE revoked_at IS NULL AND (id = ?2 OR family_id =
                   (SELECT family_id FROM refresh_tokens WHERE id = ?2))",
        )
        .bind(now.timestamp())
        .bind(token_id)
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
            "UPDATE refresh_tokens SET revoked_at = ?1 WHERE token_hash = ?2 AND revoked_at IS NULL",
        )
        .bind(now.timestamp())
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
        revoke_keys_where(&self.pool, selector, now.timestamp()).await
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        let rows: Vec<KeyListRow> = sqlx::query_as(
            "SELECT id, key_hash_scheme, created, expires_at, revoked_at FROM keys
             WHERE identifier = ?1 ORDER BY id",
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
                created: from_unix(row.created),
                expires_at: from_unix(row.expires_at),
                revoked_at: row.revoked_at.map(from_unix),
            })
            .collect())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let now = now.timestamp();
        let tokens = sqlx::query(
            "DELETE FROM refresh_tokens WHERE expires_at < ?1 OR revoked_at IS NOT NULL",
        )
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
        let failures = sqlx::query("DELETE FROM auth_failures WHERE expires_at < ?1")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(tokens + keys + failures)
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM server_settings WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn insert_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO server_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM server_settings WHERE name = ?1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        Err(StoreError::Unsupported(SHARED_KEYS_NEED_POSTGRES))
    }

    async fn lock_signing_keys(&self) -> Result<Box<dyn SigningKeyMaintenance>, StoreError> {
        Err(StoreError::Unsupported(SHARED_KEYS_NEED_POSTGRES))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn failure_counts(
        &self,
        keys: &[String],
        window_start: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts = Vec::with_capacity(keys.len());
        for key in keys {
            let failures: Option<i64> = sqlx::query_scalar(
                "SELECT failures FROM auth_failures WHERE counted = ?1 AND window_start = ?2",
            )
            .bind(key)
            .bind(window_start)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(failures) = failures {
                counts.push((key.clone(), failures));
            }
        }
        Ok(counts)
    }

    async fn record_failure(
        &self,
        keys: &[String],
        window_start: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO auth_failures (counted, window_start, failures, expires_at)
                 VALUES (?1, ?2, 1, ?3)
                 ON CONFLICT (counted, window_start) DO UPDATE SET failures = failures + 1",
            )
            .bind(key)
            .bind(window_start)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
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
