//! The key store: the current verifier behind an [`ArcSwapOption`], so every request reads it
//! without a lock and never waits for a fetch, and for a remote JWKS the machinery that keeps
//! it fresh:
//!
//! - a background task refreshes it on a schedule (`Cache-Control: max-age` within bounds);
//! - a request whose `kid` is unknown, or that finds no usable keys, may wait for one refetch
//!   that all such requests share (single flight); a refetch that did not bring what its
//!   request needed (or failed) arms a cooldown, in which requests do not trigger another;
//! - when fetches fail the last good keys stay in use until the maximum staleness past their
//!   refresh time, and every such use is logged (rate-limited) and counted;
//! - every fetch has a deadline, goes only to `https://` or loopback (unless the user opted in
//!   to plain `http://`) and is refused when it ends up at another origin;
//! - the response body is read in chunks and abandoned past the size limit.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::{ArcSwapOption, Guard};
use http::header::{ACCEPT, CACHE_CONTROL, HeaderMap};
use jwthenticator_core::{Jwks, Verifier, VerifierBuilder, is_loopback_host};
use tokio::time::Instant;
use url::Url;

use crate::error::{JwksError, JwksErrorKind};

/// A verifier and what the caches need to know about it.
#[derive(Debug)]
pub(crate) struct KeySet {
    pub(crate) verifier: Verifier,
    /// Changes whenever a key disappears from the set (removed or replaced), so tokens verified
    /// by an earlier set are verified again.
    pub(crate) epoch: u64,
    jwks: Jwks,
    /// When the set is due for its refresh; past it, while refreshes fail, it is stale.
    fresh_until: Instant,
}

/// How often, at most, the use of stale keys is logged.
const STALE_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Redirects the default client follows within the JWKS URL's origin.
const MAX_REDIRECTS: usize = 5;
/// The counter of requests verified with stale keys (`metrics` feature).
#[cfg(feature = "metrics")]
pub(crate) const STALE_KEY_USES_METRIC: &str = "jwthenticator_tower_stale_key_uses_total";

/// How a remote JWKS is kept fresh.
#[derive(Debug, Clone)]
pub(crate) struct RefreshPolicy {
    /// Refresh interval when the response carries no `max-age`.
    pub(crate) interval: Duration,
    /// Bounds within which `max-age` is honoured; also the first retry delay after a failure.
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
    /// Least time between two fetches that requests trigger, after one that did not find
    /// what its request needed.
    pub(crate) cooldown: Duration,
    /// How long past their refresh time the last good keys stay in use while refreshes fail.
    pub(crate) max_staleness: Duration,
    /// Largest JWKS response read, in bytes.
    pub(crate) max_bytes: usize,
    /// Deadline of one fetch, from the request to the last byte of the answer.
    pub(crate) fetch_timeout: Duration,
    /// Whether plain `http://` to a host other than loopback is allowed.
    pub(crate) insecure_http: bool,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5 * 60),
            min_interval: Duration::from_secs(30),
            max_interval: Duration::from_secs(60 * 60),
            cooldown: Duration::from_secs(10),
            // Rides out a restart or a short outage of the issuer, but a key the issuer removed
            // is not trusted for longer than verifiers of Envoy or Ory Hydra would cache it.
            max_staleness: Duration::from_secs(10 * 60),
            max_bytes: 256 * 1024,
            // A JWKS is a few kilobytes: well under a second on any working link, and short
            // enough that a request waiting for the fetch gets its 503 before its client gives up.
            fetch_timeout: Duration::from_secs(5),
            insecure_http: false,
        }
    }
}

/// Where the keys come from.
#[derive(Debug)]
pub(crate) struct KeyStore {
    current: ArcSwapOption<KeySet>,
    remote: Option<Remote>,
}

struct Remote {
    url: Url,
    /// The URL without its password, for logs and errors.
    shown_url: String,
    client: reqwest::Client,
    policy: RefreshPolicy,
    builder: VerifierBuilder,
    /// Held for the whole of a fetch: the single flight.
    fetch_lock: tokio::sync::Mutex<FetchState>,
    /// Fetches finished, successful or not. A waiter that sees it move knows a fetch happened
    /// after it looked at the keys, and uses that fetch's result instead of starting another.
    completed: AtomicU64,
    in_flight: AtomicBool,
    /// Milliseconds since `origin` at which the last request-triggered fetch that armed the
    /// cooldown started, plus one; 0 for never.
    cooldown_from: AtomicU64,
    /// Whether the latest fetch failed, which makes keys past their refresh time stale.
    failing: AtomicBool,
    /// Uses of stale keys since they were last logged.
    stale_uses: AtomicU64,
    /// Milliseconds since `origin` when stale uses were last logged, plus one; 0 for never.
    stale_logged: AtomicU64,
    /// Milliseconds since `origin` when the background task refreshes next.
    next_refresh: AtomicU64,
    origin: Instant,
    background_started: AtomicBool,
}

#[derive(Debug, Default)]
struct FetchState {
    consecutive_failures: u32,
}

/// Who asks for a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    /// A request with an unknown `kid` or no usable keys: subject to the cooldown.
    Request(Wanted),
    /// The refresh schedule.
    Background,
    /// [`JwtAuth::refresh_keys`](crate::JwtAuth::refresh_keys): always fetches.
    Forced,
}

/// What a request that triggers a fetch needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// Usable keys (there were none, or they were past the maximum staleness), for a token
    /// without a `kid`.
    Keys,
    /// A key with this `kid`, which the keys at hand lack.
    Kid(String),
}

impl Wanted {
    /// Whether `keys` have what was wanted. A fetch that found it is no sign of a flood of
    /// made-up `kid`s, so it does not arm the cooldown: a key published right after the
    /// previous fetch is still accepted on its first request.
    fn found_in(&self, keys: Option<&KeySet>) -> bool {
        match (self, keys) {
            (_, None) => false,
            (Self::Keys, Some(_)) => true,
            (Self::Kid(kid), Some(keys)) => keys.verifier.has_kid(kid),
        }
    }
}

impl KeyStore {
    /// Keys that never change.
    pub(crate) fn fixed(verifier: Verifier, jwks: Jwks) -> Self {
        Self {
            current: ArcSwapOption::from_pointee(KeySet {
                verifier,
                epoch: 0,
                jwks,
                fresh_until: Instant::now(),
            }),
            remote: None,
        }
    }

    /// Keys fetched from `url`, none until the first fetch.
    pub(crate) fn remote(
        url: Url,
        client: reqwest::Client,
        policy: RefreshPolicy,
        builder: VerifierBuilder,
    ) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            remote: Some(Remote {
                shown_url: jwthenticator_core::redact_url(url.as_str()),
                url,
                client,
                policy,
                builder,
                fetch_lock: tokio::sync::Mutex::new(FetchState::default()),
                completed: AtomicU64::new(0),
                in_flight: AtomicBool::new(false),
                cooldown_from: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                stale_uses: AtomicU64::new(0),
                stale_logged: AtomicU64::new(0),
                next_refresh: AtomicU64::new(0),
                origin: Instant::now(),
                background_started: AtomicBool::new(false),
            }),
        }
    }

    /// A number that moves after every fetch; read it before [`KeyStore::usable`] and hand it to
    /// [`KeyStore::refetch`].
    pub(crate) fn fetch_count(&self) -> u64 {
        self.remote
            .as_ref()
            .map_or(0, |remote| remote.completed.load(Ordering::SeqCst))
    }

    /// The current keys, for [`KeyStore::usable`]. Lock-free, and without touching the key
    /// set's reference count, which every request would otherwise write to.
    pub(crate) fn load(&self) -> Guard<Option<Arc<KeySet>>> {
        self.current.load()
    }

    /// The keys `load` returned, unless there are none or they are past their refresh time by
    /// more than the maximum staleness. A use of keys past their refresh time while refreshes
    /// fail is logged (at most once a minute) and counted.
    pub(crate) fn usable<'a>(&self, loaded: &'a Option<Arc<KeySet>>) -> Option<&'a KeySet> {
        let keys = loaded.as_deref()?;
        let Some(remote) = &self.remote else {
            return Some(keys);
        };
        let now = Instant::now();
        let overdue = now.saturating_duration_since(keys.fresh_until);
        if overdue.is_zero() {
            return Some(keys);
        }
        if overdue > remote.policy.max_staleness {
            return None;
        }
        if remote.failing.load(Ordering::Relaxed) {
            remote.note_stale_use(overdue, now);
        }
        Some(keys)
    }

    /// `Ok` when a request may wait for a refetch: one is in flight, or the cooldown since the
    /// last request-triggered fetch has passed. Otherwise how long until it will have.
    pub(crate) fn may_refetch(&self) -> Result<(), Duration> {
        let Some(remote) = &self.remote else {
            return Err(Duration::MAX);
        };
        if remote.in_flight.load(Ordering::SeqCst) {
            return Ok(());
        }
        match remote.cooldown_left(Instant::now()) {
            Duration::ZERO => Ok(()),
            left => Err(left),
        }
    }

    /// How long until a request may trigger a fetch again, for `Retry-After`.
    pub(crate) fn retry_after(&self) -> Duration {
        self.remote.as_ref().map_or(Duration::ZERO, |remote| {
            remote.cooldown_left(Instant::now())
        })
    }

    /// Waits until the keys have been fetched after `seen` (see [`KeyStore::fetch_count`]),
    /// starting the fetch if nobody else has and the cooldown allows it. The fetch runs in its
    /// own task, so a client that disconnects does not cancel it for the others.
    pub(crate) async fn refetch(self: &Arc<Self>, seen: u64, wanted: Wanted) {
        let store = Arc::clone(self);
        // A failed fetch has already been logged, and the caller looks at the keys again.
        let _ =
            tokio::spawn(async move { store.fetch(seen, Trigger::Request(wanted)).await }).await;
        self.start_background_refresh();
    }

    /// Fetches now, whatever the schedule and the cooldown.
    pub(crate) async fn refresh_now(self: &Arc<Self>) -> Result<(), JwksError> {
        let result = self
            .fetch(self.fetch_count(), Trigger::Forced)
            .await
            .unwrap_or(Ok(()));
        self.start_background_refresh();
        result
    }

    /// Starts the background refresh once, after the first fetch has scheduled the next. The
    /// task holds only a weak reference and ends once the layer and its services are gone.
    fn start_background_refresh(self: &Arc<Self>) {
        let Some(remote) = &self.remote else { return };
        if remote.background_started.load(Ordering::Relaxed)
            || remote.background_started.swap(true, Ordering::SeqCst)
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(refresh_periodically(Arc::downgrade(self)));
            }
            Err(_) => remote.background_started.store(false, Ordering::SeqCst),
        }
    }

    /// One fetch, unless another finished since `seen` (then `None`: its result stands) or,
    /// for a request, the cooldown forbids it. A request's fetch arms the cooldown when it
    /// failed or did not bring what the request wanted.
    async fn fetch(&self, seen: u64, trigger: Trigger) -> Option<Result<(), JwksError>> {
        let remote = self.remote.as_ref()?;
        let mut state = remote.fetch_lock.lock().await;
        if trigger != Trigger::Forced && remote.completed.load(Ordering::SeqCst) != seen {
            return None;
        }
        let started = Instant::now();
        if matches!(trigger, Trigger::Request(_)) && !remote.cooldown_left(started).is_zero() {
            return None;
        }
        remote.in_flight.store(true, Ordering::SeqCst);
        let result = self.fetch_and_store(remote, &mut state).await;
        if let Trigger::Request(wanted) = &trigger
            && !(result.is_ok() && wanted.found_in(self.current.load().as_deref()))
        {
            // Armed before the fetch counts as completed, so no waiter sees it done without
            // its cooldown.
            remote
                .cooldown_from
                .store(remote.millis(started) + 1, Ordering::SeqCst);
        }
        remote.in_flight.store(false, Ordering::SeqCst);
        remote.completed.fetch_add(1, Ordering::SeqCst);
        Some(result)
    }

    async fn fetch_and_store(
        &self,
        remote: &Remote,
        state: &mut FetchState,
    ) -> Result<(), JwksError> {
        let deadline = remote.policy.fetch_timeout;
        let downloaded = tokio::time::timeout(deadline, remote.download())
            .await
            .unwrap_or_else(|_| {
                Err(JwksError::new(
                    JwksErrorKind::Timeout,
                    format!(
                        "the JWKS server {} did not answer within {deadline:?}",
                        remote.shown_url
                    ),
                ))
            });
        let result = downloaded.and_then(|(jwks, max_age)| {
            let verifier = remote
                .builder
                .clone()
                .build(&jwks)
                .map_err(|e| JwksError::new(JwksErrorKind::NoUsableKeys, e.to_string()))?;
            if verifier.key_count() == 0 {
                return Err(JwksError::new(
                    JwksErrorKind::NoUsableKeys,
                    "the JWKS holds no key this layer can verify with",
                ));
            }
            Ok((jwks, verifier, max_age))
        });
        let now = Instant::now();
        match result {
            Ok((jwks, verifier, max_age)) => {
                let epoch = match self.current.load_full() {
                    Some(previous) if previous.jwks.keys.iter().all(|k| jwks.keys.contains(k)) => {
                        previous.epoch
                    }
                    Some(previous) => previous.epoch + 1,
                    None => 0,
                };
                let policy = &remote.policy;
                let next = max_age.map_or(policy.interval, |age| {
                    age.clamp(policy.min_interval, policy.max_interval)
                });
                tracing::debug!(
                    url = %remote.shown_url,
                    keys = verifier.key_count(),
                    next_refresh_secs = next.as_secs(),
                    "fetched the JWKS"
                );
                self.current.store(Some(Arc::new(KeySet {
                    verifier,
                    epoch,
                    jwks,
                    fresh_until: now + next,
                })));
                state.consecutive_failures = 0;
                remote.failing.store(false, Ordering::Relaxed);
                remote
                    .next_refresh
                    .store(remote.millis(now + next), Ordering::SeqCst);
                Ok(())
            }
            Err(error) => {
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                // Retry soon, then less and less often, but at least at the normal interval.
                let backoff = remote
                    .policy
                    .min_interval
                    .saturating_mul(1 << state.consecutive_failures.min(16).saturating_sub(1))
                    .min(remote.policy.interval.max(remote.policy.min_interval));
                let mut cause = error.to_string();
                let mut source = std::error::Error::source(&error);
                while let Some(inner) = source {
                    cause = format!("{cause}: {inner}");
                    source = inner.source();
                }
                tracing::warn!(
                    url = %remote.shown_url,
                    error = %cause,
                    retry_in_secs = backoff.as_secs(),
                    keeping_last_good_keys = self.current.load().is_some(),
                    "JWKS fetch failed"
                );
                remote
                    .next_refresh
                    .store(remote.millis(now + backoff), Ordering::SeqCst);
                remote.failing.store(true, Ordering::Relaxed);
                Err(error)
            }
        }
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.shown_url)
            .field("policy", &self.policy)
            .field("fetches", &self.completed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Remote {
    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX)
    }

    fn cooldown_left(&self, now: Instant) -> Duration {
        match self.cooldown_from.load(Ordering::SeqCst) {
            0 => Duration::ZERO,
            last => {
                let allowed = Duration::from_millis(last - 1).saturating_add(self.policy.cooldown);
                allowed.saturating_sub(now.saturating_duration_since(self.origin))
            }
        }
    }

    fn refresh_due_in(&self, now: Instant) -> Duration {
        Duration::from_millis(self.next_refresh.load(Ordering::SeqCst))
            .saturating_sub(now.saturating_duration_since(self.origin))
    }

    /// Counts a use of keys `overdue` past their refresh time, and logs it unless stale uses
    /// were logged less than a minute ago.
    fn note_stale_use(&self, overdue: Duration, now: Instant) {
        #[cfg(feature = "metrics")]
        metrics::counter!(STALE_KEY_USES_METRIC, "jwks" => self.url.origin().ascii_serialization())
            .increment(1);
        self.stale_uses.fetch_add(1, Ordering::Relaxed);
        let logged = self.stale_logged.load(Ordering::Relaxed);
        let now_millis = self.millis(now);
        let interval = u64::try_from(STALE_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if logged != 0 && now_millis < (logged - 1).saturating_add(interval) {
            return;
        }
        if self
            .stale_logged
            .compare_exchange(logged, now_millis + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                url = %self.shown_url,
                uses = self.stale_uses.swap(0, Ordering::Relaxed),
                overdue_secs = overdue.as_secs(),
                max_staleness_secs = self.policy.max_staleness.as_secs(),
                "JWKS refreshes are failing: verifying tokens with keys past their refresh time"
            );
        }
    }

    /// GETs the JWKS, reading at most `max_bytes` of it, from the configured origin only.
    async fn download(&self) -> Result<(Jwks, Option<Duration>), JwksError> {
        if !self.policy.insecure_http && !is_https_or_loopback(&self.url) {
            return Err(JwksError::new(
                JwksErrorKind::InsecureUrl,
                format!(
                    "refusing to fetch the JWKS over plain http from {}, which is not a loopback \
                     host: anyone on the path could inject keys; use https, or opt in with \
                     JwtAuth::with_insecure_http(true) on a network you trust",
                    self.shown_url
                ),
            ));
        }
        let redirected = || {
            JwksError::new(
                JwksErrorKind::Redirect,
                format!(
                    "the JWKS server {} redirected to another origin, which is refused",
                    self.shown_url
                ),
            )
        };
        let request_failed = |e: reqwest::Error| {
            if e.is_redirect() {
                return redirected();
            }
            JwksError::with_source(
                JwksErrorKind::Request,
                format!("the JWKS request to {} failed", self.shown_url),
                e.without_url(),
            )
        };
        let mut response = self
            .client
            .get(self.url.clone())
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(request_failed)?;
        // A client of the user's may have followed a redirect the default client would not.
        if response.url().origin() != self.url.origin() {
            return Err(redirected());
        }
        let status = response.status();
        if !status.is_success() {
            return Err(JwksError::new(
                JwksErrorKind::Status,
                format!("the JWKS server {} answered {status}", self.shown_url),
            ));
        }
        let max = self.policy.max_bytes;
        let too_large = || {
            JwksError::new(
                JwksErrorKind::TooLarge,
                format!("the JWKS at {} is larger than {max} bytes", self.shown_url),
            )
        };
        if response
            .content_length()
            .is_some_and(|length| length > max as u64)
        {
            return Err(too_large());
        }
        let max_age = max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(request_failed)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let jwks = serde_json::from_slice(&body).map_err(|e| {
            JwksError::with_source(
                JwksErrorKind::InvalidJson,
                format!("the response of {} is not a JWKS", self.shown_url),
                e,
            )
        })?;
        Ok((jwks, max_age))
    }
}

/// Whether `url` may be fetched without the plain-http opt-in.
pub(crate) fn is_https_or_loopback(url: &Url) -> bool {
    url.scheme() == "https" || url.host_str().is_some_and(is_loopback_host)
}

/// The redirect policy of the default client: follow a few redirects within the origin of the
/// first URL, refuse any to another scheme, host or port.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            attempt.error("a redirect to another origin is refused")
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

/// The freshness lifetime a response grants: `max-age`, or zero for `no-cache`/`no-store`.
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut lifetime = None;
    for directive in headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
    {
        let directive = directive.trim();
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") {
            lifetime = value
                .trim()
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    lifetime
}

async fn refresh_periodically(store: Weak<KeyStore>) {
    loop {
        let wait = {
            let Some(store) = store.upgrade() else { return };
            let Some(remote) = &store.remote else { return };
            remote.refresh_due_in(Instant::now())
        };
        tokio::time::sleep(wait).await;
        let Some(store) = store.upgrade() else { return };
        let Some(remote) = &store.remote else { return };
        if remote.refresh_due_in(Instant::now()) == Duration::ZERO {
            let seen = store.fetch_count();
            // A failure is logged and schedules the retry itself.
            let _ = store.fetch(seen, Trigger::Background).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CACHE_CONTROL, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn max_age_is_read_from_any_cache_control_header() {
        assert_eq!(
            max_age(&headers(&["public, max-age=600"])),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age(&headers(&["public", "Max-Age = 60"])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(max_age(&headers(&["public"])), None);
        assert_eq!(max_age(&headers(&["max-age=soon"])), None);
    }

    #[test]
    fn no_cache_and_no_store_mean_refresh_as_soon_as_allowed() {
        assert_eq!(
            max_age(&headers(&["max-age=600, no-cache"])),
            Some(Duration::ZERO)
        );
        assert_eq!(max_age(&headers(&["no-store"])), Some(Duration::ZERO));
    }
}
