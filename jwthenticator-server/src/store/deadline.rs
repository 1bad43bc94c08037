//! A deadline on the database work of each request, connection waits included: a database that
//! is frozen (a stopped server keeps its TCP connections open), blocked by a lock or out of
//! connections makes requests answer 503 (with `Retry-After`) within `DB_TIMEOUT`, never hang
//! until the request timeout. The deadline starts with a request's first database operation
//! and covers all of them; work outside a request (purging, the shared-key refresher) gets
//! `DB_TIMEOUT` per operation.

use std::time::Duration;

use super::StoreError;

pub use crate::config::DatabaseDeadline;

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

/// Runs a database operation within the deadline of the request being answered (set by its
/// first operation to `limit` from then), or within `limit` outside a request; late, it is
/// unavailable.
pub(crate) async fn within<T>(
    limit: Duration,
    operation: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let own = tokio::time::Instant::now() + limit;
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
