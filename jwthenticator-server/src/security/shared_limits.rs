//! The failure limits counted for the whole fleet, through PostgreSQL: N replicas behind one
//! balancer would otherwise give a guesser N times the limit. Attempts read their keys' counts
//! (one indexed lookup); only failures write (one upsert). Windows are fixed and aligned to
//! the Unix clock, so every replica counts in the same ones.
//!
//! The in-process limiter stays in front: it makes concurrent guesses on one replica wait for
//! the verdicts ahead of them. Across replicas a guess is refused once the fleet's count for
//! its window reaches the limit; only guesses decided at the same instant on different
//! replicas can pass it together. A database that does not answer leaves the in-process limits
//! alone in force (the request itself then gets its 503 from the store).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::store::Store;

/// The longest a count is waited for before the in-process limits decide alone.
const DEADLINE: Duration = Duration::from_secs(2);

/// Counts through the store, with the limits they are held to.
#[derive(Debug, Clone)]
pub(crate) struct SharedCounts {
    store: Arc<dyn Store>,
    window: i64,
    per_identifier: u32,
    per_address: u32,
}

/// The shared keys one attempt counts under, with their limits, in its window.
#[derive(Debug)]
pub(crate) struct Counted {
    keys: Vec<(String, u32)>,
    window_start: i64,
}

impl SharedCounts {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        window: Duration,
        per_identifier: u32,
        per_address: u32,
    ) -> Self {
        Self {
            store,
            window: i64::try_from(window.as_secs().max(1)).unwrap_or(i64::MAX),
            per_identifier,
            per_address,
        }
    }

    /// The keys of an attempt for `identifier` from `address`, as the in-process limiter
    /// counts them (per address, per identifier and address).
    fn keys(&self, identifier: Option<Uuid>, address: Option<IpAddr>) -> Vec<(String, u32)> {
        let mut keys = Vec::with_capacity(2);
        if let (Some(address), true) = (address, self.per_address > 0) {
            keys.push((format!("address:{address}"), self.per_address));
        }
        if let (Some(identifier), true) = (identifier, self.per_identifier > 0) {
            let from = address.map_or_else(|| "-".to_owned(), |a| a.to_string());
            keys.push((
                format!("identifier:{identifier}@{from}"),
                self.per_identifier,
            ));
        }
        keys
    }

    /// Whether the fleet still admits an attempt: `Err(retry_after)` when one of its keys has
    /// used up its limit in this window.
    pub(crate) async fn check(
        &self,
        identifier: Option<Uuid>,
        address: Option<IpAddr>,
    ) -> Result<Counted, Duration> {
        let now = chrono::Utc::now().timestamp();
        let window_start = now - now.rem_euclid(self.window);
        let counted = Counted {
            keys: self.keys(identifier, address),
            window_start,
        };
        if counted.keys.is_empty() {
            return Ok(counted);
        }
        let names: Vec<String> = counted.keys.iter().map(|(key, _)| key.clone()).collect();
        let counts =
            match tokio::time::timeout(DEADLINE, self.store.failure_counts(&names, window_start))
                .await
            {
                Ok(Ok(counts)) => counts,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "reading the shared failure counts failed");
                    return Ok(counted);
                }
                Err(_) => {
                    tracing::warn!("the shared failure counts did not come within 2 s");
                    return Ok(counted);
                }
            };
        let used_up = counts.iter().any(|(name, failures)| {
            counted
                .keys
                .iter()
                .any(|(key, limit)| key == name && *failures >= i64::from(*limit))
        });
        if used_up {
            let retry_after = window_start + self.window - now;
            return Err(Duration::from_secs(
                u64::try_from(retry_after.max(1)).unwrap_or(1),
            ));
        }
        Ok(counted)
    }

    /// Counts a failure under the attempt's keys, for the fleet.
    pub(crate) async fn failed(&self, counted: &Counted) {
        if counted.keys.is_empty() {
            return;
        }
        let names: Vec<String> = counted.keys.iter().map(|(key, _)| key.clone()).collect();
        // Kept one window after its end: a purge never races the window in use.
        let expires_at = counted.window_start + 2 * self.window;
        match tokio::time::timeout(
            DEADLINE,
            self.store
                .record_failure(&names, counted.window_start, expires_at),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::warn!(error = %err, "counting a failure for the fleet failed"),
            Err(_) => tracing::warn!("counting a failure for the fleet took more than 2 s"),
        }
    }
}
