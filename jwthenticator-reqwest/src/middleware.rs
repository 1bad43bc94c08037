//! [`JwtAuthMiddleware`]: authenticates, attaches the JWT, refreshes it and retries once on 401.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use http::header::AUTHORIZATION;
use jwthenticator_core::{base_url, redact_url, route_url, routes};
use reqwest::{Request, Response, StatusCode, Url};
use reqwest_middleware::{Error, Middleware, Next, Result};
use uuid::Uuid;

use crate::jwt::Jwt;
use crate::server::{default_client_builder, is_https_or_loopback, server_client};
use crate::tokens::{TokenConfig, TokenListener, TokenManager, Tokens};
use crate::{ConfigError, REDACTED};

/// How long before its expiry a JWT is replaced, unless set with
/// [`with_refresh_margin`](JwtAuthMiddlewareBuilder::with_refresh_margin).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The deadline of one call to the server, unless set with
/// [`JwtAuthMiddlewareBuilder::with_call_timeout`] or
/// [`AdminClientBuilder::with_call_timeout`](crate::AdminClientBuilder::with_call_timeout).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`reqwest_middleware::Middleware`] that authenticates requests with a JWT from a
/// JWThenticator server.
///
/// Per request it:
/// 1. leaves the request alone if it already carries an `Authorization` header, or if its host
///    is not on the [allow-list](JwtAuthMiddlewareBuilder::with_allowed_hosts) (unless
///    [any host](JwtAuthMiddlewareBuilder::with_any_host) was allowed);
/// 2. takes the current JWT while it has not expired; when it expires within the
///    [refresh margin](JwtAuthMiddlewareBuilder::with_refresh_margin), a new one is fetched in
///    the background meanwhile. Without a valid JWT the request waits for a new one: with the
///    refresh token, or, if the server refuses that (401 with its own error body), with the
///    key. A refused key is dropped and the request fails with
///    [`AuthError::KeyRejected`](crate::AuthError::KeyRejected), so a revoked client never
///    loops; any other failure keeps the credentials and is retried after a backoff;
/// 3. sends the request with `Authorization: Bearer <jwt>`, marked sensitive;
/// 4. if the target answers 401 while that JWT is still the current one, gets a new JWT and
///    sends the request once more. If another request replaced the JWT meanwhile, the resend
///    uses that one without calling the server.
///
/// However many requests run at once, one call to the server serves all that need a new JWT,
/// and reading the current JWT never waits behind that call. That call runs on a task of its
/// own (so, like reqwest, the middleware needs a tokio runtime): a request that is cancelled
/// does not cut it short. Clones share the same tokens.
///
/// Errors from the server are returned as [`reqwest_middleware::Error::Middleware`] holding an
/// [`AuthError`](crate::AuthError).
///
/// # Note
///
/// The resend after a 401 needs a copy of the request, made with [`Request::try_clone`]. A
/// request with a streaming body cannot be copied, so it is not resent: the caller gets the 401.
///
/// # Example
///
/// ```no_run
/// use jwthenticator_reqwest::JwtAuthMiddleware;
/// use reqwest_middleware::ClientBuilder;
///
/// # async fn run(identifier: uuid::Uuid) -> Result<(), Box<dyn std::error::Error>> {
/// let auth = JwtAuthMiddleware::builder("https://auth.example.com/", identifier)
///     .with_key("the-secret-key")
///     .with_allowed_hosts(["api.example.com"])
///     .with_token_listener(|tokens| {
///         if let Some(refresh_token) = tokens.refresh_token() {
///             // Persist it, and pass it to `with_refresh_token` after a restart.
///             # let _ = refresh_token;
///         }
///     })
///     .build()?;
/// let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
/// let response = client.get("https://api.example.com/things").send().await?;
/// # let _ = response;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwtAuthMiddleware {
    shared: Arc<Shared>,
}

struct Shared {
    server_url: Url,
    hosts: Hosts,
    tokens: Arc<TokenManager>,
}

/// Which requests get the JWT.
#[derive(Debug)]
enum Hosts {
    /// Those to a host on the list.
    Listed(Vec<AllowedHost>),
    /// Every request ([`JwtAuthMiddlewareBuilder::with_any_host`]).
    Any,
}

impl JwtAuthMiddleware {
    /// Starts configuring a middleware for the JWThenticator server at `server_url` (which may
    /// carry a path prefix, such as `https://example.com/auth/`), obtaining JWTs for
    /// `identifier`.
    ///
    /// Give at least one of [`with_key`](JwtAuthMiddlewareBuilder::with_key),
    /// [`with_refresh_token`](JwtAuthMiddlewareBuilder::with_refresh_token) or
    /// [`with_jwt`](JwtAuthMiddlewareBuilder::with_jwt), then
    /// [`build`](JwtAuthMiddlewareBuilder::build).
    pub fn builder(server_url: impl Into<String>, identifier: Uuid) -> JwtAuthMiddlewareBuilder {
        JwtAuthMiddlewareBuilder {
            server_url: server_url.into(),
            identifier,
            key: None,
            refresh_token: None,
            jwt: None,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            allowed_hosts: None,
            any_host: false,
            insecure_http: false,
            listener: None,
            http: None,
        }
    }

    /// Whether the middleware authenticates a request to `url`: its host is on the allow-list,
    /// or any host was allowed.
    pub fn is_allowed(&self, url: &Url) -> bool {
        match &self.shared.hosts {
            Hosts::Listed(hosts) => hosts.iter().any(|host| host.matches(url)),
            Hosts::Any => true,
        }
    }
}

#[async_trait::async_trait]
impl Middleware for JwtAuthMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if req.headers().contains_key(AUTHORIZATION) || !self.is_allowed(req.url()) {
            return next.run(req, extensions).await;
        }
        let tokens = &self.shared.tokens;
        let lease = tokens.lease().await.map_err(Error::middleware)?;
        req.headers_mut().insert(AUTHORIZATION, lease.header());
        let resend = req.try_clone();

        let response = next.clone().run(req, extensions).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(mut resend) = resend else {
            tracing::debug!("the target answered 401, but a streaming body cannot be resent");
            return Ok(response);
        };
        let renewed = tokens.renew(&lease).await.map_err(Error::middleware)?;
        if renewed.same_jwt(&lease) {
            return Ok(response);
        }
        drop(response);
        tracing::debug!("the target answered 401; resending once with a new JWT");
        resend.headers_mut().insert(AUTHORIZATION, renewed.header());
        next.run(resend, extensions).await
    }
}

impl fmt::Debug for JwtAuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("JwtAuthMiddleware")
            .field("server_url", &redact_url(shared.server_url.as_str()))
            .field("identifier", &shared.tokens.identifier())
            .field("refresh_margin", &shared.tokens.refresh_margin())
            .field("hosts", &shared.hosts)
            .field("jwt", &shared.tokens.has_jwt().then_some(REDACTED))
            .field("token_listener", &shared.tokens.has_listener())
            .finish_non_exhaustive()
    }
}

/// Configures a [`JwtAuthMiddleware`]; made by [`JwtAuthMiddleware::builder`].
///
/// `Debug` shows which credentials are set, never their values.
#[must_use]
pub struct JwtAuthMiddlewareBuilder {
    server_url: String,
    identifier: Uuid,
    key: Option<String>,
    refresh_token: Option<String>,
    jwt: Option<String>,
    refresh_margin: Duration,
    call_timeout: Duration,
    allowed_hosts: Option<Vec<String>>,
    any_host: bool,
    insecure_http: bool,
    listener: Option<TokenListener>,
    http: Option<reqwest::ClientBuilder>,
}

impl JwtAuthMiddlewareBuilder {
    /// The registered secret key, used with `/authenticate` when there is no refresh token or the
    /// server rejects it.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// A refresh token from an earlier `/authenticate` (for example one persisted by the
    /// [token listener](Self::with_token_listener)), used with `/refresh` before the key.
    pub fn with_refresh_token(mut self, refresh_token: impl Into<String>) -> Self {
        self.refresh_token = Some(refresh_token.into());
        self
    }

    /// A JWT to use until it is due for refresh. [`build`](Self::build) fails if its `exp`
    /// claim cannot be read.
    pub fn with_jwt(mut self, jwt: impl Into<String>) -> Self {
        self.jwt = Some(jwt.into());
        self
    }

    /// How long before its expiry a JWT is replaced; [`DEFAULT_REFRESH_MARGIN`] unless set.
    ///
    /// The margin is capped at half of the JWT's lifetime when it was received, so JWTs shorter
    /// than the margin are still reused.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Called with the current [`Tokens`] whenever they change: a new JWT, a new or rotated
    /// refresh token, or a refresh token dropped because the server rejected it.
    ///
    /// It runs while the middleware holds its refresh lock, so calls never overlap and come in
    /// order; it must return quickly (hand slow work, such as a write to disk, to a task or a
    /// channel).
    pub fn with_token_listener(
        mut self,
        listener: impl Fn(&Tokens<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }

    /// Only requests to these hosts get the JWT; others pass through untouched. Each entry is a
    /// `host` (any port) or `host:port`; IPv6 addresses in brackets, as in `[::1]:8443`. Calling
    /// this again adds to the list.
    ///
    /// [`build`](Self::build) needs either an allow-list or
    /// [`with_any_host(true)`](Self::with_any_host): a JWT sent to a third party lets it act as
    /// this client until the JWT expires. (Redirects are followed inside reqwest, which drops the
    /// `Authorization` header when a redirect leads to another host.)
    pub fn with_allowed_hosts<I>(mut self, hosts: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.allowed_hosts
            .get_or_insert_with(Vec::new)
            .extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Attach the JWT to every request, whatever its host, instead of only to the hosts of
    /// [`with_allowed_hosts`](Self::with_allowed_hosts) (off by default). Only for a client that
    /// talks to nothing but services that are meant to see the token.
    pub fn with_any_host(mut self, any_host: bool) -> Self {
        self.any_host = any_host;
        self
    }

    /// Allow a plain `http://` server URL to a host other than loopback (off by default).
    ///
    /// Over plain http the key and the refresh tokens cross the network in clear text: anyone
    /// on the path can copy them and obtain JWTs as this client for as long as they stay valid.
    /// Turn it on only on a network you trust end to end, such as a container network. Loopback
    /// hosts (`localhost`, `127.0.0.0/8`, `[::1]`) are always allowed.
    pub fn with_insecure_http(mut self, allow: bool) -> Self {
        self.insecure_http = allow;
        self
    }

    /// The deadline of one call to the server (`/authenticate` or `/refresh`), from sending
    /// the request to reading the last byte of the answer; [`DEFAULT_CALL_TIMEOUT`] unless set.
    /// A call that misses it fails with [`AuthError::Timeout`](crate::AuthError::Timeout).
    /// [`build`](Self::build) fails for 0.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The HTTP client for calls to the JWThenticator server, as a builder, for example with
    /// custom root certificates, a proxy or a connect timeout. By default a client with a 5 s
    /// connect timeout.
    ///
    /// The middleware turns its redirects off (a 307 or 308 would re-send the key or the
    /// refresh token wherever it points), and the [call deadline](Self::with_call_timeout) and
    /// a 64 KiB limit on the answer apply whatever the builder sets. Calls to the server never go
    /// through this middleware.
    pub fn with_http_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.http = Some(client);
        self
    }

    /// Checks the configuration and builds the middleware.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingCredentials`] when none of a key, a refresh token or a JWT was
    /// given; [`ConfigError::InvalidServerUrl`] or [`ConfigError::UnsupportedServerUrl`] for a
    /// bad server URL; [`ConfigError::InsecureServerUrl`] for plain `http://` to a host other
    /// than loopback without [`with_insecure_http`](Self::with_insecure_http);
    /// [`ConfigError::InvalidJwt`] for a JWT whose expiry cannot be read;
    /// [`ConfigError::NoAllowedHosts`] without [`with_allowed_hosts`](Self::with_allowed_hosts)
    /// or [`with_any_host`](Self::with_any_host), [`ConfigError::InvalidAllowedHost`] for a bad
    /// allow-list entry; [`ConfigError::InvalidSetting`] for both an allow-list and any host, or
    /// a zero call timeout; [`ConfigError::HttpClient`] if the HTTP client cannot be built.
    pub fn build(self) -> std::result::Result<JwtAuthMiddleware, ConfigError> {
        if self.key.is_none() && self.refresh_token.is_none() && self.jwt.is_none() {
            return Err(ConfigError::MissingCredentials);
        }
        if self.call_timeout.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "the call timeout must be above 0",
            ));
        }
        let server_url = base_url(&self.server_url)?;
        if !self.insecure_http && !is_https_or_loopback(&server_url) {
            return Err(ConfigError::InsecureServerUrl);
        }
        let authenticate_url =
            route_url(&server_url, routes::AUTHENTICATE).map_err(ConfigError::InvalidServerUrl)?;
        let refresh_url =
            route_url(&server_url, routes::REFRESH).map_err(ConfigError::InvalidServerUrl)?;
        let jwt = self
            .jwt
            .map(|jwt| Jwt::parse(jwt, self.refresh_margin))
            .transpose()
            .map_err(ConfigError::InvalidJwt)?;
        let hosts = match (self.allowed_hosts, self.any_host) {
            (Some(hosts), false) => Hosts::Listed(
                hosts
                    .iter()
                    .map(|host| AllowedHost::parse(host))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            (None, true) => Hosts::Any,
            (None, false) => return Err(ConfigError::NoAllowedHosts),
            (Some(_), true) => {
                return Err(ConfigError::InvalidSetting(
                    "`with_allowed_hosts` and `with_any_host(true)` contradict each other",
                ));
            }
        };
        let http = server_client(self.http.unwrap_or_else(default_client_builder))?;
        let tokens = Arc::new(TokenManager::new(TokenConfig {
            identifier: self.identifier,
            authenticate_url,
            refresh_url,
            http,
            call_timeout: self.call_timeout,
            refresh_margin: self.refresh_margin,
            listener: self.listener,
            key: self.key,
            refresh_token: self.refresh_token,
            jwt,
        }));
        Ok(JwtAuthMiddleware {
            shared: Arc::new(Shared {
                server_url,
                hosts,
                tokens,
            }),
        })
    }
}

impl fmt::Debug for JwtAuthMiddlewareBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server_url = Url::parse(&self.server_url)
            .map(|url| redact_url(url.as_str()))
            .unwrap_or_else(|_| REDACTED.to_owned());
        f.debug_struct("JwtAuthMiddlewareBuilder")
            .field("server_url", &server_url)
            .field("identifier", &self.identifier)
            .field("key", &self.key.as_ref().map(|_| REDACTED))
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .field("jwt", &self.jwt.as_ref().map(|_| REDACTED))
            .field("refresh_margin", &self.refresh_margin)
            .field("call_timeout", &self.call_timeout)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("any_host", &self.any_host)
            .field("insecure_http", &self.insecure_http)
            .field("token_listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// An allow-list entry: a normalised host and, optionally, a port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `host` or `host:port` with the same rules as request URLs, so that case, IDNA and
    /// IPv6 spellings compare equal.
    fn parse(entry: &str) -> std::result::Result<Self, ConfigError> {
        let invalid = || ConfigError::InvalidAllowedHost(entry.to_owned());
        if entry.is_empty() || entry.contains(['/', '?', '#', '@', '\\']) {
            return Err(invalid());
        }
        let url = Url::parse(&format!("http://{entry}/")).map_err(|_| invalid())?;
        let host = url.host_str().filter(|host| !host.is_empty());
        let host = host.ok_or_else(invalid)?.to_owned();
        // `Url` hides the scheme's default port, so an explicit `:80` is read back from the entry.
        let port = url.port().or_else(|| entry.ends_with(":80").then_some(80));
        Ok(Self { host, port })
    }

    fn matches(&self, url: &Url) -> bool {
        url.host_str() == Some(self.host.as_str())
            && self
                .port
                .is_none_or(|port| url.port_or_known_default() == Some(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: &str) -> Url {
        Url::parse(url).expect("valid URL")
    }

    fn allowed(entry: &str) -> AllowedHost {
        AllowedHost::parse(entry).expect("valid entry")
    }

    #[test]
    fn allowed_host_without_port_matches_any_port_and_any_case() {
        let entry = allowed("API.Example.com");
        assert!(entry.matches(&url("https://api.example.com/x")));
        assert!(entry.matches(&url("http://api.example.com:8080/x")));
        assert!(!entry.matches(&url("https://example.com/x")));
        assert!(!entry.matches(&url("https://api.example.com.evil.org/x")));
    }

    #[test]
    fn allowed_host_with_port_matches_only_that_port() {
        let entry = allowed("127.0.0.1:8443");
        assert!(entry.matches(&url("https://127.0.0.1:8443/")));
        assert!(!entry.matches(&url("https://127.0.0.1/")));
        let default_port = allowed("example.com:80");
        assert!(default_port.matches(&url("http://example.com/")));
        assert!(!default_port.matches(&url("https://example.com/")));
        let ipv6 = allowed("[0:0::1]:9000");
        assert!(ipv6.matches(&url("http://[::1]:9000/")));
        assert!(!ipv6.matches(&url("http://[::1]:9001/")));
    }

    #[test]
    fn allow_list_entries_that_are_not_hosts_are_rejected() {
        for entry in [
            "",
            "https://example.com",
            "example.com/path",
            "user@example.com",
            "a b",
        ] {
            assert!(
                matches!(
                    AllowedHost::parse(entry),
                    Err(ConfigError::InvalidAllowedHost(_))
                ),
                "{entry:?}"
            );
        }
    }
}
