//! Protection settings and mechanisms: identifier binding, refresh-token rotation, limits on
//! failed authentication attempts, the client address behind proxies, and the one guard over
//! the internal API.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use poem::http::header::{AUTHORIZATION, HOST, ORIGIN};
use poem::http::{HeaderMap, StatusCode};
use poem::{Addr, Request};
use uuid::Uuid;

mod shared_limits;

use crate::config::{Secret, SecurityConfig};

/// A fixed window of attempts for one key.
#[derive(Debug)]
struct Window {
    started: Instant,
    /// Attempts that failed in this window.
    failed: u32,
    /// Attempts of this window still being decided.
    deciding: u32,
}

/// One key's window and the attempts waiting for a place in it.
#[derive(Debug)]
struct Slot {
    window: Mutex<Window>,
    decided: tokio::sync::Notify,
}

/// Counts attempts per key in fixed windows, in a bounded cache: O(1) work per attempt, and
/// under a flood of keys the least useful entries are evicted instead of growing the map.
#[derive(Debug)]
struct FailureCounter<K> {
    limit: u32,
    slots: quick_cache::sync::Cache<K, Arc<Slot>>,
}

/// Keys tracked per counter.
const MAX_TRACKED: usize = 200_000;

/// The longest an attempt waits for the attempts ahead of it to be decided.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// What a window says to a new attempt.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Decide it: it counts as deciding in the window that started then.
    Decide(Instant),
    /// Wait: the attempts being decided could still use up the limit.
    Wait,
    /// Refuse it: the limit is used up for this long.
    Refuse(Duration),
}

fn admit(window: &mut Window, limit: u32, now: Instant, length: Duration) -> Admission {
    if now.saturating_duration_since(window.started) >= length {
        *window = Window {
            started: now,
            failed: 0,
            deciding: window.deciding,
        };
    }
    if window.failed >= limit {
        return Admission::Refuse(
            length.saturating_sub(now.saturating_duration_since(window.started)),
        );
    }
    if window.failed + window.deciding >= limit {
        return Admission::Wait;
    }
    window.deciding += 1;
    Admission::Decide(window.started)
}

impl Slot {
    /// A place among the attempts being decided, waiting (up to [`MAX_WAIT`]) while those
    /// ahead could use up the limit: at most `limit` guesses are ever decided per window,
    /// however many arrive at once, and correct clients only wait for their turn.
    async fn enter(&self, limit: u32, length: Duration) -> Result<Instant, Duration> {
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let decided = self.decided.notified();
            tokio::pin!(decided);
            decided.as_mut().enable();
            let admission = {
                let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
                admit(&mut window, limit, Instant::now(), length)
            };
            match admission {
                Admission::Decide(started) => return Ok(started),
                Admission::Refuse(retry_after) => return Err(retry_after),
                Admission::Wait => {
                    if tokio::time::timeout_at(deadline, decided).await.is_err() {
                        return Err(Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// The attempt entered in the window that started at `started` was decided.
    fn leave(&self, started: Instant, failed: bool) {
        {
            let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
            window.deciding = window.deciding.saturating_sub(1);
            if failed && window.started == started {
                window.failed = window.failed.saturating_add(1);
            }
        }
        self.decided.notify_waiters();
    }
}

impl<K: std::hash::Hash + Eq + Clone> FailureCounter<K> {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            slots: quick_cache::sync::Cache::new(if limit == 0 { 1 } else { MAX_TRACKED }),
        }
    }

    fn slot(&self, key: &K) -> Arc<Slot> {
        let created = || {
            Ok::<_, std::convert::Infallible>(Arc::new(Slot {
                window: Mutex::new(Window {
                    started: Instant::now(),
                    failed: 0,
                    deciding: 0,
                }),
                decided: tokio::sync::Notify::new(),
            }))
        };
        match self.slots.get_or_insert_with(key, created) {
            Ok(slot) => slot,
            Err(never) => match never {},
        }
    }
}

/// One attempt being decided: it holds a place in its windows until its verdict. Dropped
/// without one (the database was unavailable, say), it leaves them as if it had succeeded.
#[derive(Debug)]
#[must_use = "an attempt counts as failed only through `failed()`"]
pub(crate) struct Attempt {
    entered: Vec<(Arc<Slot>, Instant)>,
    /// Its keys in the fleet's counts, on PostgreSQL.
    shared: Option<(shared_limits::SharedCounts, shared_limits::Counted)>,
}

impl Attempt {
    /// The credential was refused: the attempt counts as a failure, for the fleet too (before
    /// it leaves its place here, so the attempts waiting on this replica see the count).
    pub(crate) async fn failed(mut self) {
        if let Some((shared, counted)) = self.shared.take() {
            shared.failed(&counted).await;
        }
        for (slot, started) in self.entered.drain(..) {
            slot.leave(started, true);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        for (slot, started) in self.entered.drain(..) {
            slot.leave(started, false);
        }
    }
}

/// Limits failed `authenticate`/`refresh` attempts per identifier and client address, and per
/// client address. An attempt holds a place while it is decided, so concurrent guesses can
/// never exceed the limit (those beyond it wait for the verdicts ahead of them); successful
/// attempts cost a correct client nothing, and someone else's failures from another address
/// never lock it out. The counts live in the process and, on PostgreSQL, in the database too,
/// so that the limits hold for the whole fleet ([`shared_limits`]).
#[derive(Debug)]
pub struct FailureLimiter {
    window: Duration,
    by_identifier: FailureCounter<(Uuid, Option<IpAddr>)>,
    by_address: FailureCounter<IpAddr>,
    shared: Option<shared_limits::SharedCounts>,
}

impl FailureLimiter {
    /// A limiter as configured.
    pub fn new(config: &SecurityConfig) -> Self {
        Self {
            window: Duration::from_secs(config.auth_failure_window.max(1)),
            by_identifier: FailureCounter::new(config.auth_failures_per_identifier),
            by_address: FailureCounter::new(config.auth_failures_per_address),
            shared: None,
        }
    }

    /// The same limiter, counting for the fleet through `store` when servers share it
    /// (PostgreSQL); unchanged on SQLite.
    pub fn counting_through(mut self, store: &Arc<dyn crate::store::Store>) -> Self {
        if store.shares_failure_counts() {
            self.shared = Some(shared_limits::SharedCounts::new(
                store.clone(),
                self.window,
                self.by_identifier.limit,
                self.by_address.limit,
            ));
        }
        self
    }

    /// Starts an attempt for `identifier` (`None` for attempts that name none, such as
    /// `is_key_registered`) from `address`: `Err(retry_after)` when a limit is used up.
    pub(crate) async fn attempt(
        &self,
        identifier: Option<Uuid>,
        address: Option<IpAddr>,
    ) -> Result<Attempt, Duration> {
        let mut attempt = Attempt {
            entered: Vec::with_capacity(2),
            shared: None,
        };
        // Always the address first, then the pair: one order, so waiters cannot deadlock.
        let mut slots: Vec<(u32, Arc<Slot>)> = Vec::with_capacity(2);
        if let (Some(address), true) = (address, self.by_address.limit > 0) {
            slots.push((self.by_address.limit, self.by_address.slot(&address)));
        }
        if let (Some(identifier), true) = (identifier, self.by_identifier.limit > 0) {
            let key = (identifier, address);
            slots.push((self.by_identifier.limit, self.by_identifier.slot(&key)));
        }
        for (limit, slot) in slots {
            // On refusal, `attempt` is dropped and leaves what it entered so far.
            let started = slot.enter(limit, self.window).await?;
            attempt.entered.push((slot, started));
        }
        if let Some(shared) = &self.shared {
            let counted = shared.check(identifier, address).await?;
            attempt.shared = Some((shared.clone(), counted));
        }
        Ok(attempt)
    }
}

/// An address as the failure limits count it: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its
/// /64, since one host usually holds a whole /64.
fn limit_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// One entry of a forwarding header: an address, `ip:port` or `[ipv6]:port`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
}

/// How the client's address is found: the peer's, or behind proxies a header's.
#[derive(Debug, Clone)]
pub(crate) struct ClientAddress {
    header: Option<String>,
    trusted: Vec<IpNet>,
}

impl ClientAddress {
    pub(crate) fn new(config: &SecurityConfig) -> Self {
        Self {
            header: config.client_ip_header.clone(),
            trusted: config.trusted_proxies.clone(),
        }
    }

    fn trusted(&self, address: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&address))
    }

    /// The client's address, grouped as the failure limits count it. From the configured
    /// header only on a connection from a trusted proxy (any, when none are listed): its
    /// rightmost entry that is not a trusted proxy, since entries left of the proxies' own are
    /// the client's to choose. A missing or unparsable header means the peer's address: this
    /// fails closed, onto the proxy's address, rather than open.
    pub(crate) fn of(&self, req: &Request) -> Option<IpAddr> {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(std::net::SocketAddr::ip);
        self.resolve(peer, req.headers())
    }

    fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let from_header = self.header.as_deref().and_then(|name| {
            if !self.trusted.is_empty() && !peer.is_some_and(|p| self.trusted(p)) {
                return None;
            }
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut entries = values.iter().flat_map(|v| v.split(',')).rev();
            entries.find_map(|entry| match forwarded_address(entry) {
                Some(address) if self.trusted(address) => None,
                Some(address) => Some(Some(address)),
                None => Some(None),
            })?
        });
        from_header.or(peer).map(limit_key)
    }
}

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

/// Who may call the internal API and `/metrics` on a listener.
#[derive(Debug, Clone)]
pub(crate) enum InternalAccess {
    /// Callers that present `Authorization: Bearer <ADMIN_TOKEN>`.
    Token(Secret),
    /// Everybody who reaches the listener: the internal API has one of its own (INTERNAL_PORT).
    Listener,
    /// Loopback clients only, not forwarded by a proxy: the default.
    Loopback,
}

impl InternalAccess {
    pub(crate) fn new(admin_token: Option<&Secret>, own_listener: bool) -> Self {
        match (admin_token, own_listener) {
            (Some(token), _) => Self::Token(token.clone()),
            (None, true) => Self::Listener,
            (None, false) => Self::Loopback,
        }
    }
}

/// The one guard over the internal group: which paths it covers, and who may pass.
#[derive(Debug, Clone)]
pub(crate) struct InternalGuard {
    /// The internal operations' full paths (with the prefix), from the spec, and `/metrics`.
    paths: Arc<std::collections::HashSet<String>>,
    access: InternalAccess,
}

fn refusal(status: StatusCode, error: &str, message: &str) -> poem::Error {
    let mut response = crate::error::json_response(
        status,
        jwthenticator_core::ErrorResponse::new(error, message),
    );
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer realm=\"jwthenticator-admin\""),
        );
    }
    poem::Error::from_response(response)
}

/// A `Host` header value (`name[:port]`) that names this machine only.
fn is_loopback_host(host: &str) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(name, port)| !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name);
    jwthenticator_core::is_loopback_host(name)
}

fn is_loopback_peer(peer: &Addr) -> bool {
    match peer {
        Addr::SocketAddr(address) => {
            let ip = address.ip();
            ip.is_loopback()
                || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
        }
        #[cfg(unix)]
        Addr::Unix(_) => true,
        // Only the process itself builds requests without a socket (tests, embedding code).
        Addr::Custom(..) => true,
    }
}

/// Headers a proxy adds: such a request comes from wherever the proxy's client is.
const FORWARDING_HEADERS: &[&str] = &["forwarded", "x-forwarded-for", "x-real-ip"];

impl InternalGuard {
    pub(crate) fn new(paths: impl IntoIterator<Item = String>, access: InternalAccess) -> Self {
        Self {
            paths: Arc::new(paths.into_iter().collect()),
            access,
        }
    }

    /// Refuses what a browser sends from another site: a request a page elsewhere made
    /// (`Sec-Fetch-Site: cross-site` or `same-site`), or one whose `Origin` is not this
    /// server's own. Clients that are not browsers send neither header.
    fn cross_site(headers: &HeaderMap) -> bool {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if header("sec-fetch-site").is_some_and(|site| site != "same-origin" && site != "none") {
            return true;
        }
        match (header(ORIGIN.as_str()), header(HOST.as_str())) {
            (None, _) => false,
            (Some(origin), Some(host)) => origin
                .split_once("://")
                .is_none_or(|(_, authority)| !authority.eq_ignore_ascii_case(host)),
            (Some(_), None) => true,
        }
    }

    /// `Err` with the JSON answer when `req` is for the internal group and may not pass.
    pub(crate) fn check(&self, req: &Request) -> poem::Result<()> {
        self.check_parts(req.uri().path(), req.headers(), &req.remote_addr().0)
    }

    fn check_parts(&self, path: &str, headers: &HeaderMap, peer: &Addr) -> poem::Result<()> {
        if !self.paths.contains(path) {
            return Ok(());
        }
        if Self::cross_site(headers) {
            tracing::warn!(path, "cross-site request to the internal API refused");
            return Err(refusal(
                StatusCode::FORBIDDEN,
                "cross_site_request",
                "the internal API does not answer requests a browser sends from another site",
            ));
        }
        match &self.access {
            InternalAccess::Token(expected) => {
                let presented = headers
                    .get(AUTHORIZATION)
                    .and_then(|v| jwthenticator_core::parse_bearer(v.as_bytes()).ok());
                match presented {
                    Some(token)
                        if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) =>
                    {
                        Ok(())
                    }
                    _ => {
                        tracing::warn!(path, "internal API call without the admin token");
                        Err(refusal(
                            StatusCode::UNAUTHORIZED,
                            "admin_token_required",
                            "the internal API requires Authorization: Bearer <ADMIN_TOKEN>",
                        ))
                    }
                }
            }
            InternalAccess::Listener => Ok(()),
            InternalAccess::Loopback => {
                let forwarded = FORWARDING_HEADERS
                    .iter()
                    .any(|name| headers.contains_key(*name));
                // The Host check stops DNS rebinding: a page of evil.example whose name now
                // points at 127.0.0.1 reaches a loopback listener from the local browser.
                let host_local = headers
                    .get(HOST)
                    .and_then(|v| v.to_str().ok())
                    .is_none_or(is_loopback_host);
                if is_loopback_peer(peer) && !forwarded && host_local {
                    return Ok(());
                }
                tracing::warn!(path, "internal API call from a non-loopback client refused");
                Err(refusal(
                    StatusCode::FORBIDDEN,
                    "internal_api_loopback_only",
                    "the internal API answers only loopback clients (not through a proxy); set \
                     ADMIN_TOKEN (32+ characters) to require a token instead, or INTERNAL_PORT \
                     to serve it on a listener of its own",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_admits_up_to_its_limit_counting_attempts_being_decided() {
        let length = Duration::from_secs(60);
        let start = Instant::now();
        let mut window = Window {
            started: start,
            failed: 0,
            deciding: 0,
        };
        assert_eq!(
            admit(&mut window, 2, start, length),
            Admission::Decide(start)
        );
        assert_eq!(
            admit(&mut window, 2, start, length),
            Admission::Decide(start)
        );
        assert_eq!(admit(&mut window, 2, start, length), Admission::Wait);
        window.deciding = 0;
        window.failed = 2;
        assert_eq!(
            admit(&mut window, 2, start + Duration::from_secs(10), length),
            Admission::Refuse(Duration::from_secs(50))
        );
        let later = start + length;
        assert_eq!(
            admit(&mut window, 2, later, length),
            Admission::Decide(later)
        );
    }

    fn security(args: &[&str]) -> SecurityConfig {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            security: SecurityConfig,
        }
        <Cli as clap::Parser>::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .expect("valid")
            .security
    }

    #[tokio::test]
    async fn successes_cost_nothing_and_concurrent_guesses_never_pass_the_limit() {
        let limiter = FailureLimiter::new(&security(&["--auth-failures-per-identifier", "2"]));
        let (identifier, address) = (Uuid::new_v4(), Some("192.0.2.1".parse().expect("ip")));
        for _ in 0..10 {
            let attempt = limiter.attempt(Some(identifier), address).await;
            drop(attempt.expect("successes cost nothing"));
        }
        limiter
            .attempt(Some(identifier), address)
            .await
            .expect("1")
            .failed()
            .await;
        let deciding = limiter.attempt(Some(identifier), address).await.expect("2");
        let waiting = limiter.attempt(Some(identifier), address);
        tokio::pin!(waiting);
        assert!(
            futures_util::poll!(waiting.as_mut()).is_pending(),
            "the third waits while the second could still use up the limit"
        );
        let other = Some("192.0.2.2".parse().expect("ip"));
        let elsewhere = limiter.attempt(Some(identifier), other).await;
        assert!(elsewhere.is_ok(), "another address is not locked out");
        deciding.failed().await;
        assert!(waiting.await.is_err(), "the limit is used up");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().expect("ip"));
        let b = limit_key("2001:db8:1:2:bbbb::2".parse().expect("ip"));
        assert_eq!(a, b);
        assert_ne!(a, limit_key("2001:db8:1:3::1".parse().expect("ip")));
        assert_eq!(
            limit_key("::ffff:192.0.2.7".parse().expect("ip")),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    poem::http::HeaderName::from_static(name),
                    value.parse().expect("header value"),
                )
            })
            .collect()
    }

    #[test]
    fn the_client_address_is_the_rightmost_untrusted_hop_and_never_fails_open() {
        let behind = ClientAddress::new(&security(&[
            "--client-ip-header",
            "X-Forwarded-For",
            "--trusted-proxies",
            "10.0.0.0/8,127.0.0.1",
        ]));
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let proxy = ip("10.1.1.1");
        let xff = |value| headers(&[("x-forwarded-for", value)]);
        assert_eq!(
            behind.resolve(proxy, &xff("6.6.6.6, 198.51.100.9, 10.2.2.2")),
            ip("198.51.100.9"),
            "client-chosen hops are ignored"
        );
        assert_eq!(
            behind.resolve(proxy, &xff("198.51.100.9:4711")),
            ip("198.51.100.9")
        );
        assert_eq!(
            behind.resolve(proxy, &xff("garbage")),
            proxy,
            "garbage: the peer"
        );
        assert_eq!(
            behind.resolve(proxy, &HeaderMap::new()),
            proxy,
            "missing: the peer"
        );
        let direct = ip("203.0.113.5");
        assert_eq!(
            behind.resolve(direct, &xff("6.6.6.6")),
            direct,
            "a client that is not a proxy cannot choose its address"
        );
        let any_proxy = ClientAddress::new(&security(&["--client-ip-header", "X-Forwarded-For"]));
        assert_eq!(
            any_proxy.resolve(proxy, &xff("6.6.6.6, 198.51.100.9")),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn short_admin_tokens_are_refused_and_lax_settings_warned_about() {
        assert_eq!(security(&["--admin-token", "short"]).problems().len(), 1);
        assert!(
            security(&["--admin-token", &"x".repeat(32)])
                .problems()
                .is_empty()
        );
        assert!(security(&[]).warnings().is_empty(), "the defaults are safe");
        let lax = security(&["--strict-identifier", "false"]).warnings();
        assert!(lax[0].contains("STRICT_IDENTIFIER"), "{lax:?}");
    }

    #[test]
    fn the_guard_lets_loopback_through_and_refuses_others_proxies_and_browsers() {
        let guard = InternalGuard::new(["/register_key".to_owned()], InternalAccess::Loopback);
        let peer = |s: &str| Addr::SocketAddr(s.parse().expect("socket address"));
        let host = ("host", "localhost:8080");
        let check = |path, pairs: &[(&'static str, &str)], from: &str| {
            guard.check_parts(path, &headers(pairs), &peer(from))
        };
        assert!(check("/register_key", &[host], "127.0.0.1:4000").is_ok());
        assert!(check("/register_key", &[("host", "[::1]:8080")], "[::1]:4000").is_ok());
        assert!(check("/register_key", &[("host", "127.0.0.1")], "127.0.0.1:4000").is_ok());
        assert!(check("/register_key", &[host], "[::ffff:127.0.0.1]:4000").is_ok());
        for (pairs, from) in [
            (vec![host], "192.0.2.1:4000"),
            (
                vec![host, ("x-forwarded-for", "192.0.2.1")],
                "127.0.0.1:4000",
            ),
            (vec![("host", "evil.example:8080")], "127.0.0.1:4000"),
            (
                vec![host, ("origin", "http://evil.example")],
                "127.0.0.1:4000",
            ),
            (vec![host, ("origin", "null")], "127.0.0.1:4000"),
            (
                vec![host, ("sec-fetch-site", "cross-site")],
                "127.0.0.1:4000",
            ),
        ] {
            let refused = check("/register_key", &pairs, from).expect_err("refused");
            assert_eq!(
                refused.status(),
                StatusCode::FORBIDDEN,
                "{pairs:?} from {from}"
            );
        }
        let same_origin = [host, ("origin", "http://localhost:8080")];
        assert!(
            check("/register_key", &same_origin, "127.0.0.1:4000").is_ok(),
            "the /docs page"
        );
        assert!(
            check("/authenticate", &[host], "192.0.2.1:4000").is_ok(),
            "only the internal group"
        );

        let token = InternalGuard::new(
            ["/register_key".to_owned()],
            InternalAccess::Token(Secret::from("t".repeat(32).as_str())),
        );
        let bearer = format!("Bearer {}", "t".repeat(32));
        let from = peer("192.0.2.1:4000");
        let with = |pairs: &[(&'static str, &str)]| {
            token.check_parts("/register_key", &headers(pairs), &from)
        };
        assert!(with(&[("authorization", &bearer)]).is_ok());
        assert_eq!(
            with(&[]).expect_err("no token").status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            with(&[("authorization", &bearer), ("sec-fetch-site", "cross-site")])
                .expect_err("a browser carrying the token for a page elsewhere")
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
