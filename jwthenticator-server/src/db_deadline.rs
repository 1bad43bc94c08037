//! A deadline on the database work of each request, connection waits included: a database that
//! is frozen (a stopped server keeps its TCP connections open), blocked by a lock or out of
//! connections makes requests answer 503 (with `Retry-After`) within `DB_TIMEOUT`, never hang
//! until the request timeout. The deadline starts with a request's first database operation
//! and covers all of them; work outside a request (purging, the shared-key refresher) gets
//! `DB_TIMEOUT` per operation.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use clap::Args;
use uuid::Uuid;

use crate::store::{
    KeyHashes, KeyRecord, KeySelector, KeySummary, NewRefreshToken, PoolStatus, RefreshTokenRecord,
    Registration, Revoked, Store, StoreError,
};

/// The database deadline.
#[derive(Debug, Clone, Args)]
pub struct DatabaseDeadline {
    /// Seconds each database operation may take, waiting for a connection included; later the
    /// request answers 503 with Retry-After (validation and /jwks need no database and keep
    /// answering).
    #[arg(long, env = "DB_TIMEOUT", default_value_t = 5)]
    pub db_timeout: u64,
}

impl DatabaseDeadline {
    /// The deadline, at least a second.
    pub fn limit(&self) -> Duration {
        Duration::from_secs(self.db_timeout.max(1))
    }
}

tokio::task_local! {
    /// When the database work of the request being answered must be done: set by its first
    /// operation.
    static REQUEST_DEADLINE: std::cell::Cell<Option<tokio::time::Instant>>;
}

/// Runs the answer to one request: its database operations share one deadline.
pub(crate) async fn request<F: std::future::Future>(answer: F) -> F::Output {
    REQUEST_DEADLINE
        .scope(std::cell::Cell::new(None), answer)
        .await
}

/// `store` with the deadline on each of its operations.
pub fn bounded(store: Arc<dyn Store>, deadline: &DatabaseDeadline) -> Arc<dyn Store> {
    Arc::new(Bounded {
        inner: store,
        limit: deadline.limit(),
    })
}

/// A [`Store`] whose operations give up after `limit`, as unavailable.
#[derive(Debug)]
struct Bounded {
    inner: Arc<dyn Store>,
    limit: Duration,
}

impl Bounded {
    async fn within<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let own = tokio::time::Instant::now() + self.limit;
        let deadline = REQUEST_DEADLINE
            .try_with(|deadline| {
                let end = deadline.get().unwrap_or(own);
                deadline.set(Some(end));
                end
            })
            .unwrap_or(own);
        match tokio::time::timeout_at(deadline, operation).await {
            Ok(result) => result,
            // The pool's own word for "no connection in time"; the answer is the same 503.
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)),
        }
    }
}

#[async_trait]
impl Store for Bounded {
    async fn register_key(
        &self,
        key: &KeyHashes,
        identifier: Uuid,
        expires_at: DateTime<Utc>,
    ) -> Result<Registration, StoreError> {
        self.within(self.inner.register_key(key, identifier, expires_at))
            .await
    }

    async fn find_key(&self, key: &KeyHashes) -> Result<Option<KeyRecord>, StoreError> {
        self.within(self.inner.find_key(key)).await
    }

    async fn upgrade_key_hash(&self, id: i64, key: &KeyHashes) -> Result<bool, StoreError> {
        self.within(self.inner.upgrade_key_hash(id, key)).await
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken<'_>) -> Result<(), StoreError> {
        self.within(self.inner.insert_refresh_token(token)).await
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        self.within(self.inner.find_refresh_token(token_hash)).await
    }

    async fn rotate_refresh_token(
        &self,
        old_id: i64,
        sealed_successor: &[u8],
        successor: NewRefreshToken<'_>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.within(
            self.inner
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
        self.within(self.inner.revoke_refresh_family(token_id, key_id, now))
            .await
    }

    async fn revoke_refresh_token(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.within(self.inner.revoke_refresh_token(token_hash, now))
            .await
    }

    async fn revoke_keys(
        &self,
        selector: KeySelector<'_>,
        now: DateTime<Utc>,
    ) -> Result<Revoked, StoreError> {
        self.within(self.inner.revoke_keys(selector, now)).await
    }

    async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeySummary>, StoreError> {
        self.within(self.inner.list_keys(identifier)).await
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.within(self.inner.purge_expired(now)).await
    }

    async fn setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.within(self.inner.setting(name)).await
    }

    async fn insert_setting(&self, name: &str, value: &str) -> Result<String, StoreError> {
        self.within(self.inner.insert_setting(name, value)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.within(self.inner.ping()).await
    }

    fn pool_status(&self) -> PoolStatus {
        self.inner.pool_status()
    }

    fn shares_failure_counts(&self) -> bool {
        self.inner.shares_failure_counts()
    }

    async fn failure_counts(
        &self,
        keys: &[String],
        window_start: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.within(self.inner.failure_counts(keys, window_start))
            .await
    }

    async fn record_failure(
        &self,
        keys: &[String],
        window_start: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.within(self.inner.record_failure(keys, window_start, expires_at))
            .await
    }
}
