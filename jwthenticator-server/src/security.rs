//! Protection settings and mechanisms: identifier binding, refresh-token rotation, limits on
//! failed authentication attempts, and the admin token for the internal API.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use clap::builder::BoolishValueParser;
use poem::http::StatusCode;
use poem::http::header::AUTHORIZATION;
use poem::{Endpoint, EndpointExt, Request};
use uuid::Uuid;

use crate::config::Secret;

/// Security settings (all off or permissive by default, as the Python original behaved).
#[derive(Debug, Clone, Args)]
pub struct SecurityConfig {
    /// Reject `authenticate` and `refresh` for an identifier other than the one the key was
    /// registered with. Off by default: the original let any valid key mint a JWT for any
    /// identifier, and deployments that share one key across identifiers rely on it.
    #[arg(long, env = "STRICT_IDENTIFIER", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub strict_identifier: bool,

    /// Each `/refresh` returns a new refresh token and retires the old one; presenting a retired
    /// token again revokes its whole family. Off by default: the Python client ignores a new
    /// refresh token and would lock itself out.
    #[arg(long, env = "ROTATE_REFRESH_TOKENS", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub rotate_refresh_tokens: bool,

    /// Seconds after a rotation during which the retired token is still answered (with a new
    /// refresh token of the same family), so a client that lost the response can retry.
    #[arg(long, env = "REFRESH_TOKEN_REUSE_GRACE", default_value_t = 10)]
    pub refresh_token_reuse_grace: u64,

    /// Failed authenticate/refresh attempts allowed per identifier within the window (0: no
    /// limit). Further attempts get 429 with Retry-After until the window ends.
    #[arg(long, env = "AUTH_FAILURES_PER_IDENTIFIER", default_value_t = 10)]
    pub auth_failures_per_identifier: u32,

    /// Failed authenticate/refresh attempts allowed per client address within the window (0:
    /// no limit).
    #[arg(long, env = "AUTH_FAILURES_PER_ADDRESS", default_value_t = 100)]
    pub auth_failures_per_address: u32,

    /// Length of the failure-counting window, in seconds.
    #[arg(long, env = "AUTH_FAILURE_WINDOW", default_value_t = 60)]
    pub auth_failure_window: u64,

    /// Header that carries the client's address when behind a trusted proxy (e.g. `X-Real-IP`,
    /// or `X-Forwarded-For`, whose first entry is used). Unset: the peer address.
    #[arg(long, env = "CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Bearer token required on the internal API (`Authorization: Bearer <token>`). Unset: the
    /// internal API is open, as in the original; protect it by network or INTERNAL_PORT.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Serve the internal API on this port only (and not on PORT), e.g. on loopback while the
    /// external API faces the gateway.
    #[arg(long, env = "INTERNAL_PORT")]
    pub internal_port: Option<u16>,

    /// Address of the internal listener.
    #[arg(long, env = "INTERNAL_HOST", default_value = "127.0.0.1")]
    pub internal_host: String,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failures per key in fixed windows.
#[derive(Debug)]
struct FailureCounter<K> {
    limit: u32,
    windows: Mutex<HashMap<K, Window>>,
}

/// Entries kept before expired windows are swept, bounding memory under a flood of addresses.
const MAX_TRACKED: usize = 100_000;

impl<K: Hash + Eq + Copy> FailureCounter<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(retry_after)` when `key` has used up its failures in the current window.
    fn blocked(&self, key: K, now: Instant, window: Duration) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let entry = windows.get(&key)?;
        let elapsed = now.saturating_duration_since(entry.started);
        (elapsed < window && entry.failures >= self.limit).then(|| window - elapsed)
    }

    fn record(&self, key: K, now: Instant, window: Duration) {
        if self.limit == 0 {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
        }
        let entry = windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.saturating_duration_since(entry.started) >= window {
            *entry = Window {
                started: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }
}

/// Limits failed `authenticate`/`refresh` attempts per identifier and per client address.
/// Successful attempts are never counted, so correct clients are not slowed. The counts live in
/// the process: each replica limits on its own.
#[derive(Debug)]
pub struct FailureLimiter {
    window: Duration,
    by_identifier: FailureCounter<Uuid>,
    by_address: FailureCounter<IpAddr>,
}

impl FailureLimiter {
    /// A limiter as configured.
    pub fn new(config: &SecurityConfig) -> Self {
        Self {
            window: Duration::from_secs(config.auth_failure_window.max(1)),
            by_identifier: FailureCounter::new(config.auth_failures_per_identifier),
            by_address: FailureCounter::new(config.auth_failures_per_address),
        }
    }

    /// `Some(retry_after)` when the identifier or the address is over its limit.
    pub fn check(&self, identifier: Uuid, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let by_identifier = self.by_identifier.blocked(identifier, now, self.window);
        let by_address = address.and_then(|a| self.by_address.blocked(a, now, self.window));
        by_identifier.max(by_address)
    }

    /// Counts a failed attempt.
    pub fn record_failure(&self, identifier: Uuid, address: Option<IpAddr>) {
        let now = Instant::now();
        self.by_identifier.record(identifier, now, self.window);
        if let Some(address) = address {
            self.by_address.record(address, now, self.window);
        }
    }
}

/// The client's address: from the configured proxy header, else the peer's.
pub(crate) fn client_address(req: &Request, header: Option<&str>) -> Option<IpAddr> {
    if let Some(name) = header {
        return req
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
    }
    req.remote_addr()
        .as_socket_addr()
        .map(std::net::SocketAddr::ip)
}

/// The admin token the internal API requires (request data set by the app).
#[derive(Debug, Clone)]
pub(crate) struct AdminToken(pub(crate) Option<Secret>);

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare digests so neither the content nor the length leaks through timing.
    let digest = |v: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, v);
    let (a, b) = (digest(a), digest(b));
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// For the internal operations: with `ADMIN_TOKEN` set, requires `Authorization: Bearer` with it.
pub(crate) fn require_admin<E: Endpoint>(ep: E) -> impl Endpoint {
    ep.before(|req: Request| async move {
        let Some(expected) = req.data::<AdminToken>().and_then(|t| t.0.clone()) else {
            return Ok(req);
        };
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| jwthenticator_core::parse_bearer(v.as_bytes()).ok());
        match presented {
            Some(token) if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) => Ok(req),
            _ => {
                tracing::warn!(path = %req.uri().path(), "internal API call without the admin token");
                let response = poem::Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .header("WWW-Authenticate", "Bearer realm=\"jwthenticator-admin\"")
                    .content_type("application/json; charset=utf-8")
                    .body(
                        serde_json::json!({
                            "error": "admin_token_required",
                            "message": "the internal API requires Authorization: Bearer <ADMIN_TOKEN>"
                        })
                        .to_string(),
                    );
                Err(poem::Error::from_response(response))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failures_per_key_and_unblocks_after_the_window() {
        let counter = FailureCounter::new(3);
        let window = Duration::from_secs(60);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(counter.blocked(1, start, window), None);
            counter.record(1, start, window);
        }
        let retry = counter.blocked(1, start + Duration::from_secs(10), window);
        assert_eq!(retry, Some(Duration::from_secs(50)));
        assert_eq!(
            counter.blocked(2, start, window),
            None,
            "other keys are not affected"
        );
        assert_eq!(counter.blocked(1, start + window, window), None);
    }

    #[test]
    fn a_zero_limit_never_blocks() {
        let counter = FailureCounter::new(0);
        let now = Instant::now();
        for _ in 0..100 {
            counter.record(1, now, Duration::from_secs(60));
        }
        assert_eq!(counter.blocked(1, now, Duration::from_secs(60)), None);
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"token", b"tokeN"));
    }
}
