//! The `signing_keys` table: signing keys the replicas share through PostgreSQL, each sealed
//! (see `keys::shared`). Only PostgreSQL has it; the embedded database keeps its key in a file.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::{PgPool, Postgres, Transaction};

use super::StoreError;

/// Replicas' maintenances of the shared keys are serialised on this advisory lock id ("JWTK").
const LOCK_ID: i64 = 0x4a57_544b;

/// A row of `signing_keys`: one shared signing key, its private key sealed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRow {
    /// Row id (0 before the row is inserted).
    pub id: i64,
    /// The key's `kid`.
    pub kid: String,
    /// The algorithm it signs with, as `Algorithm`'s `Debug` writes it (`RS256`, ...).
    pub algorithm: String,
    /// The PEM private key, sealed with the scheme `sealing` names.
    #[sqlx(rename = "private_key")]
    pub sealed: Vec<u8>,
    /// The sealing scheme.
    pub sealing: i16,
    /// When the key was made.
    pub created_at: NaiveDateTime,
    /// When it starts signing.
    pub activates_at: NaiveDateTime,
    /// When it stops signing.
    pub retires_at: NaiveDateTime,
    /// When it stops being published and the row goes.
    pub expires_at: NaiveDateTime,
}

impl SigningKeyRow {
    /// Whether the key signs at `now`: from its activation until its retirement.
    pub fn signs_at(&self, now: NaiveDateTime) -> bool {
        self.activates_at <= now && now < self.retires_at
    }
}

/// One maintenance of the shared keys: a transaction that holds the lock every replica's
/// maintenance takes, so that the replicas agree on the schedule with no coordinator but the
/// database. Nothing is written unless it is committed.
#[async_trait]
pub trait SigningKeyMaintenance: Send {
    /// Deletes the keys that expire at or before `now`.
    async fn delete_expired(&mut self, now: NaiveDateTime) -> Result<(), StoreError>;

    /// Every stored key, the earliest activation first.
    async fn rows(&mut self) -> Result<Vec<SigningKeyRow>, StoreError>;

    /// Stores a new key and gives its row id.
    async fn insert(&mut self, row: &SigningKeyRow) -> Result<i64, StoreError>;

    /// Replaces the sealed key and its scheme of row `row.id`, if it is still of scheme
    /// `previous`.
    async fn reseal(&mut self, row: &SigningKeyRow, previous: i16) -> Result<(), StoreError>;

    /// Commits what was written and releases the lock.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

const COLUMNS: &str =
    "id, kid, algorithm, private_key, sealing, created_at, activates_at, retires_at, expires_at";

/// Every stored key, without the lock: for proving a secret before anything is written.
pub(super) async fn all(pool: &PgPool) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM signing_keys ORDER BY activates_at"
    ))
    .fetch_all(pool)
    .await?)
}

/// Begins a maintenance: a transaction holding the advisory lock.
pub(super) async fn lock(pool: &PgPool) -> Result<Box<dyn SigningKeyMaintenance>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_ID)
        .execute(&mut *tx)
        .await?;
    Ok(Box::new(PgMaintenance { tx }))
}

struct PgMaintenance {
    tx: Transaction<'static, Postgres>,
}

#[async_trait]
impl SigningKeyMaintenance for PgMaintenance {
    async fn delete_expired(&mut self, now: NaiveDateTime) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM signing_keys WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn rows(&mut self) -> Result<Vec<SigningKeyRow>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM signing_keys ORDER BY activates_at"
        ))
        .fetch_all(&mut *self.tx)
        .await?)
    }

    async fn insert(&mut self, row: &SigningKeyRow) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO signing_keys (kid, algorithm, private_key, sealing, created_at, activates_at, retires_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(&row.kid)
        .bind(&row.algorithm)
        .bind(&row.sealed)
        .bind(row.sealing)
        .bind(row.created_at)
        .bind(row.activates_at)
        .bind(row.retires_at)
        .bind(row.expires_at)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn reseal(&mut self, row: &SigningKeyRow, previous: i16) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE signing_keys SET private_key = $1, sealing = $2 WHERE id = $3 AND sealing = $4",
        )
        .bind(&row.sealed)
        .bind(row.sealing)
        .bind(row.id)
        .bind(previous)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}
