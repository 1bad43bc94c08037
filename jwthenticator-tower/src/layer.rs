//! [`JwtAuth`], the layer and its configuration.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jwthenticator_core::{
    Algorithm, BaseUrlError, Claims, DEFAULT_LEEWAY_SECS, Jwks, KeyType, PublicKey, TokenCache,
    Verifier, base_url, route_url, routes,
};
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use url::Url;

use crate::authenticator::Authenticator;
use crate::error::{ConfigError, JwksError};
use crate::jwks::{KeyStore, RefreshPolicy};
use crate::rejection::{DefaultRejection, GrpcMode};
use crate::service::JwtAuthService;

/// Default number of verified tokens remembered.
const DEFAULT_TOKEN_CACHE_SIZE: usize = 10_000;

/// A [`tower::Layer`](tower_layer::Layer) that lets a request through only with a valid
/// `Authorization: Bearer` JWT, and puts the token's claims (type `C`, by default the
/// JWThenticator [`Claims`]) into the request extensions.
///
/// Tokens are verified locally, against the issuer's JWKS, which the layer fetches and keeps
/// fresh (see the [crate docs](crate) for how). Rejections are responses built by `R`, by
/// default the RFC 6750 answers of [`DefaultRejection`].
///
/// Configure it with the consuming `with_*` methods. Clones of a layer, and the services it
/// makes, share one key cache and one token cache; a `with_*` call starts a new configuration
/// with caches of its own.
#[must_use]
pub struct JwtAuth<C = Claims, R = DefaultRejection> {
    config: Arc<Config>,
    state: Arc<OnceLock<Arc<Authenticator<C>>>>,
    rejection: R,
    claims: PhantomData<fn() -> C>,
}

#[derive(Clone)]
struct Config {
    source: Source,
    algorithms: Vec<Algorithm>,
    audiences: Vec<String>,
    issuer: Option<String>,
    leeway: Duration,
    max_lifetime: Option<Duration>,
    required_claims: Vec<String>,
    optional: bool,
    client: Option<reqwest::Client>,
    refresh: RefreshPolicy,
    token_cache_size: usize,
}

#[derive(Debug, Clone)]
enum Source {
    Url(Url),
    Fixed(Jwks),
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source: &dyn fmt::Debug = match &self.source {
            Source::Url(url) => &jwthenticator_core::redact_url(url.as_str()),
            Source::Fixed(jwks) => jwks,
        };
        f.debug_struct("Config")
            .field("source", source)
            .field("algorithms", &self.algorithms)
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .field("required_claims", &self.required_claims)
            .field("optional", &self.optional)
            // A custom client may carry credentials in its default headers.
            .field("custom_client", &self.client.is_some())
            .field("refresh", &self.refresh)
            .field("token_cache_size", &self.token_cache_size)
            .finish()
    }
}

impl<C, R: Clone> Clone for JwtAuth<C, R> {
    fn clone(&self) -> Self {
        Self {
            config: Arc::clone(&self.config),
            state: Arc::clone(&self.state),
            rejection: self.rejection.clone(),
            claims: PhantomData,
        }
    }
}

impl<C, R: fmt::Debug> fmt::Debug for JwtAuth<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("config", &self.config)
            .field("rejection", &self.rejection)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Verifies tokens issued by the JWThenticator server at `server_base_url`, whose JWKS is
    /// at `{server_base_url}/jwks`. The base URL may carry a path prefix (`URL_PREFIX`):
    /// `https://auth.example.com/auth` gives `https://auth.example.com/auth/jwks`.
    ///
    /// The JWKS is fetched only over `https://`, or plain `http://` to a loopback host, unless
    /// [`with_insecure_http`](Self::with_insecure_http) allows plain `http://` elsewhere.
    ///
    /// # Panics
    ///
    /// If `server_base_url` is not an absolute `http` or `https` URL; [`JwtAuth::try_new`]
    /// returns the error instead.
    pub fn new(server_base_url: impl AsRef<str>) -> Self {
        Self::try_new(server_base_url).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`JwtAuth::new`], with an error for a URL that is not an absolute `http` or `https` URL.
    pub fn try_new(server_base_url: impl AsRef<str>) -> Result<Self, ConfigError> {
        let text = server_base_url.as_ref();
        let url = base_url(text)
            .map_err(|error| match error {
                BaseUrlError::Invalid(error) => invalid_url(text, &error),
                _ => not_http(text),
            })
            .and_then(|base| {
                route_url(&base, routes::JWKS).map_err(|error| invalid_url(text, &error))
            })?;
        Ok(Self::with_source(Source::Url(url)))
    }

    /// Verifies tokens of any issuer that publishes its keys as a JWKS at `jwks_url`: an
    /// `https://` URL, or plain `http://` to a loopback host (see
    /// [`with_insecure_http`](Self::with_insecure_http)).
    ///
    /// # Panics
    ///
    /// If `jwks_url` is not an absolute `http` or `https` URL; [`JwtAuth::try_from_jwks_url`]
    /// returns the error instead.
    pub fn from_jwks_url(jwks_url: impl AsRef<str>) -> Self {
        Self::try_from_jwks_url(jwks_url).unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`JwtAuth::from_jwks_url`], with an error for a URL that is not an absolute `http` or
    /// `https` URL.
    pub fn try_from_jwks_url(jwks_url: impl AsRef<str>) -> Result<Self, ConfigError> {
        Ok(Self::with_source(Source::Url(parse_http_url(
            jwks_url.as_ref(),
        )?)))
    }

    /// Verifies tokens against a fixed key set that is never fetched nor refreshed, for tests
    /// and air-gapped deployments. Keys the layer cannot use (encryption keys, symmetric keys,
    /// algorithms not accepted) are skipped.
    pub fn from_jwks(jwks: Jwks) -> Self {
        Self::with_source(Source::Fixed(jwks))
    }

    /// Verifies tokens against one public key in PEM, such as the server's `JWT_PUBLIC_KEY`:
    /// SPKI `PUBLIC KEY` of an RSA, EC P-256 or Ed25519 key, or PKCS#1 `RSA PUBLIC KEY`, with
    /// `algorithm`, which must fit the key (`RS*`/`PS*` for RSA, `ES256`, `EdDSA`). The key gets
    /// the `kid` the JWThenticator server gives it (base64url of the SHA-1 of its SPKI DER), so
    /// the server's tokens find it; tokens without a `kid` are verified with it too.
    pub fn from_public_key_pem(pem: &str, algorithm: Algorithm) -> Result<Self, ConfigError> {
        let key = PublicKey::from_pem(pem).map_err(|e| ConfigError::InvalidKey(e.to_string()))?;
        if KeyType::for_algorithm(algorithm) != Some(key.key_type()) {
            return Err(ConfigError::InvalidKey(format!(
                "the public key is an {} key, which does not verify {}",
                key.key_type(),
                jwthenticator_core::algorithm_name(algorithm)
            )));
        }
        Ok(Self::from_jwks(Jwks {
            keys: vec![key.to_jwk(algorithm)],
        }))
    }

    /// [`JwtAuth::from_public_key_pem`] for an RSA key, its name before EC and Ed25519 keys
    /// were accepted.
    #[deprecated(note = "use `from_public_key_pem`, which takes RSA, EC P-256 and Ed25519 keys")]
    pub fn from_rsa_public_key_pem(pem: &str, algorithm: Algorithm) -> Result<Self, ConfigError> {
        Self::from_public_key_pem(pem, algorithm)
    }

    fn with_source(source: Source) -> Self {
        Self {
            config: Arc::new(Config {
                source,
                algorithms: Vec::new(),
                audiences: Vec::new(),
                issuer: None,
                leeway: Duration::from_secs(DEFAULT_LEEWAY_SECS),
                max_lifetime: None,
                required_claims: Vec::new(),
                optional: false,
                client: None,
                refresh: RefreshPolicy::default(),
                token_cache_size: DEFAULT_TOKEN_CACHE_SIZE,
            }),
            state: Arc::default(),
            rejection: DefaultRejection::new(),
            claims: PhantomData,
        }
    }
}

impl<C, R> JwtAuth<C, R> {
    /// A copy with its own caches, whose configuration `change` has edited.
    fn configure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self.state = Arc::default();
        self
    }

    /// Accept only tokens signed with one of these algorithms. By default every asymmetric
    /// algorithm is accepted, each key verifying only the one it is pinned to; `none` and the
    /// `HS*` family are never accepted.
    pub fn with_algorithms(self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        let algorithms = algorithms.into_iter().collect();
        self.configure(|config| config.algorithms = algorithms)
    }

    /// Require the token's `aud` to name at least one of these. Without audiences, a token
    /// that carries `aud` is rejected (RFC 7519 section 4.1.3), as the server does.
    pub fn with_audiences<S: Into<String>>(self, audiences: impl IntoIterator<Item = S>) -> Self {
        let audiences = audiences.into_iter().map(Into::into).collect();
        self.configure(|config| config.audiences = audiences)
    }

    /// Require the token's `iss` to be this issuer.
    pub fn with_issuer(self, issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        self.configure(|config| config.issuer = Some(issuer))
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in whole seconds (30 s by default).
    pub fn with_leeway(self, leeway: Duration) -> Self {
        self.configure(|config| config.leeway = leeway)
    }

    /// Reject tokens whose `exp` lies further in the future than this (plus leeway).
    pub fn with_max_lifetime(self, lifetime: Duration) -> Self {
        self.configure(|config| config.max_lifetime = Some(lifetime))
    }

    /// Require these claims to be present (and not `null`) in every token.
    pub fn with_required_claims<S: Into<String>>(
        self,
        claims: impl IntoIterator<Item = S>,
    ) -> Self {
        let claims = claims.into_iter().map(Into::into).collect();
        self.configure(|config| config.required_claims = claims)
    }

    /// In optional mode a request without a bearer token passes through, without claims in its
    /// extensions; a request with a bad token is still rejected. Off by default.
    pub fn with_optional(self, optional: bool) -> Self {
        self.configure(|config| config.optional = optional)
    }

    /// The HTTP client for every JWKS fetch: the first, the scheduled refreshes and the
    /// refetches for unknown `kid`s. Give one to set proxies, root certificates or headers.
    ///
    /// The layer's own rules hold whatever the client: the
    /// [fetch deadline](Self::with_fetch_timeout), the [size limit](Self::with_max_jwks_size),
    /// and the refusal of plain `http://` to a host other than loopback
    /// ([`with_insecure_http`](Self::with_insecure_http)). The client's redirect policy decides
    /// where its requests go: an answer that comes from another origin than the JWKS URL's is
    /// refused, but the request has been sent by then. The default client follows redirects only
    /// within the origin; build yours with `.redirect(reqwest::redirect::Policy::none())` to send
    /// nothing elsewhere.
    pub fn with_http_client(self, client: reqwest::Client) -> Self {
        self.configure(|config| config.client = Some(client))
    }

    /// The deadline of one JWKS fetch, from sending the request to reading the last byte of
    /// the answer (5 s by default), whatever client makes it. A request waiting for a fetch
    /// that misses it gets 503 with `Retry-After`; the fetch fails with
    /// [`JwksErrorKind::Timeout`](crate::JwksErrorKind::Timeout). Fails for 0.
    pub fn with_fetch_timeout(self, timeout: Duration) -> Result<Self, ConfigError> {
        if timeout.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "the JWKS fetch timeout must be above 0".to_owned(),
            ));
        }
        Ok(self.configure(|config| config.refresh.fetch_timeout = timeout))
    }

    /// Allow a plain `http://` JWKS URL to a host other than loopback (off by default).
    ///
    /// Without TLS, anyone on the network path (a compromised router, a neighbour on a shared
    /// network, a DNS spoofer) can answer the fetch with keys of their own and then forge every
    /// token the layer accepts. Turn it on only on a network you trust end to end, such as a
    /// container network between the service and the issuer. Loopback hosts (`localhost`,
    /// `127.0.0.0/8`, `[::1]`) are always allowed. Without the opt-in, fetches from such a URL
    /// fail with [`JwksErrorKind::InsecureUrl`](crate::JwksErrorKind::InsecureUrl), without
    /// any network call, and requests get 503: call [`refresh_keys`](Self::refresh_keys) at
    /// startup to fail fast.
    pub fn with_insecure_http(self, allow: bool) -> Self {
        self.configure(|config| config.refresh.insecure_http = allow)
    }

    /// How often the JWKS is refreshed when its response has no `Cache-Control: max-age`
    /// (5 minutes by default).
    pub fn with_refresh_interval(self, interval: Duration) -> Self {
        self.configure(|config| config.refresh.interval = interval)
    }

    /// The range within which a `Cache-Control: max-age` of the JWKS response is honoured
    /// (30 s to 1 hour by default); `min` is also the first retry delay after a failed
    /// refresh. Fails unless `0 < min <= max`.
    pub fn with_refresh_bounds(self, min: Duration, max: Duration) -> Result<Self, ConfigError> {
        if min.is_zero() || min > max {
            return Err(ConfigError::InvalidSetting(format!(
                "refresh bounds need 0 < min <= max, got {min:?} and {max:?}"
            )));
        }
        Ok(self.configure(|config| {
            config.refresh.min_interval = min;
            config.refresh.max_interval = max;
        }))
    }

    /// The least time between two JWKS fetches that requests trigger, because their `kid` is
    /// unknown or no keys are usable (10 s by default). Requests that arrive while such a fetch
    /// is in flight wait for it. A fetch that failed, or that did not bring the `kid` its
    /// request was looking for, starts the cooldown: in it an unknown `kid` is rejected at
    /// once, so a flood of made-up `kid`s costs the JWKS server one fetch per cooldown. A fetch
    /// that found its `kid` (or the first one, that found keys at all) is no such sign and starts
    /// none, so a key published right after it is still accepted on its first request.
    pub fn with_refetch_cooldown(self, cooldown: Duration) -> Self {
        self.configure(|config| config.refresh.cooldown = cooldown)
    }

    /// How long past their refresh time the last good keys stay in use while refreshes fail
    /// (10 minutes by default). Past it requests get 503 with `Retry-After` until a fetch
    /// succeeds.
    ///
    /// The trade-off: a longer bound rides out a longer outage of the issuer, but also keeps
    /// trusting, for as long, a key the issuer has removed (after a leak, say) while an attacker
    /// blocks the fetches. With the defaults a removed key is trusted for at most the refresh
    /// interval (5 minutes) plus this bound. Every use of stale keys is logged (at most once a
    /// minute, with the count) and, with the `metrics` feature, counted in
    /// `jwthenticator_tower_stale_key_uses_total` (label `jwks`: the JWKS URL's origin).
    pub fn with_max_staleness(self, max_staleness: Duration) -> Self {
        self.configure(|config| config.refresh.max_staleness = max_staleness)
    }

    /// How many verified tokens to remember (10 000 by default; 0 turns the cache off). A
    /// remembered token skips the signature check until it expires, or until a refresh
    /// removes or replaces a key of the set that verified it.
    pub fn with_token_cache_size(self, size: usize) -> Self {
        self.configure(|config| config.token_cache_size = size)
    }

    /// The largest JWKS response read, in bytes (256 KiB by default); a larger one fails the
    /// fetch. Fails for 0.
    pub fn with_max_jwks_size(self, bytes: usize) -> Result<Self, ConfigError> {
        if bytes == 0 {
            return Err(ConfigError::InvalidSetting(
                "the maximum JWKS size must be above 0".to_owned(),
            ));
        }
        Ok(self.configure(|config| config.refresh.max_bytes = bytes))
    }

    /// Deserialise the token payload as `D` instead of `C`, for issuers whose claims differ
    /// from JWThenticator's. `D` is what goes into the request extensions.
    pub fn with_claims<D>(self) -> JwtAuth<D, R> {
        JwtAuth {
            config: self.config,
            state: Arc::default(),
            rejection: self.rejection,
            claims: PhantomData,
        }
    }

    /// Build rejection responses with `rejection` instead.
    pub fn with_rejection<R2>(self, rejection: R2) -> JwtAuth<C, R2> {
        JwtAuth {
            config: self.config,
            state: self.state,
            rejection,
            claims: PhantomData,
        }
    }
}

impl<C> JwtAuth<C, DefaultRejection> {
    /// When to answer with a gRPC status (`grpc-status: 16`, UNAUTHENTICATED) rather than an
    /// HTTP 401: by default for requests whose `content-type` is `application/grpc*`.
    pub fn with_grpc_mode(mut self, mode: GrpcMode) -> Self {
        self.rejection = self.rejection.with_grpc_mode(mode);
        self
    }
}

impl<C, R> JwtAuth<C, R>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Fetches the JWKS now, whatever the schedule: at startup, to fail fast when the
    /// issuer is unreachable, or to pick up a rotation at once. Does nothing for fixed keys.
    pub async fn refresh_keys(&self) -> Result<(), JwksError> {
        self.authenticator().keys.refresh_now().await
    }

    fn authenticator(&self) -> Arc<Authenticator<C>> {
        Arc::clone(
            self.state
                .get_or_init(|| Arc::new(self.config.authenticator())),
        )
    }
}

impl<S, C, R> Layer<S> for JwtAuth<C, R>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    R: Clone,
{
    type Service = JwtAuthService<S, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService::new(inner, self.authenticator(), self.rejection.clone())
    }
}

impl Config {
    fn authenticator<C: Clone>(&self) -> Authenticator<C> {
        let mut builder = Verifier::builder()
            .with_algorithms(self.algorithms.iter().copied())
            .with_audiences(self.audiences.iter().cloned())
            .with_leeway(self.leeway.as_secs())
            .with_required_claims(self.required_claims.iter().cloned());
        if let Some(issuer) = &self.issuer {
            builder = builder.with_issuer(issuer.clone());
        }
        if let Some(lifetime) = self.max_lifetime {
            builder = builder.with_max_lifetime(lifetime.as_secs());
        }
        let keys = match &self.source {
            Source::Fixed(jwks) => {
                // `build` skips the keys it cannot use and never fails.
                let verifier = builder
                    .clone()
                    .build(jwks)
                    .unwrap_or_else(|_| builder.build_with_keys(Vec::new()));
                KeyStore::fixed(verifier, jwks.clone())
            }
            Source::Url(url) => KeyStore::remote(
                url.clone(),
                self.client.clone().unwrap_or_else(default_client),
                self.refresh.clone(),
                builder,
            ),
        };
        Authenticator {
            keys: Arc::new(keys),
            tokens: (self.token_cache_size > 0).then(|| TokenCache::new(self.token_cache_size)),
            optional: self.optional,
        }
    }
}

/// The client of every fetch unless the user gives one; the fetch deadline bounds its calls.
fn default_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(crate::jwks::same_origin_redirects())
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot configure the JWKS HTTP client; using the defaults");
            reqwest::Client::new()
        })
}

fn parse_http_url(text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|e| invalid_url(text, &e))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(not_http(text));
    }
    Ok(url)
}

fn not_http(text: &str) -> ConfigError {
    ConfigError::InvalidUrl {
        url: text.to_owned(),
        reason: BaseUrlError::Unsupported.to_string(),
    }
}

fn invalid_url(text: &str, error: &url::ParseError) -> ConfigError {
    ConfigError::InvalidUrl {
        url: text.to_owned(),
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks_url(auth: &JwtAuth) -> String {
        match &auth.config.source {
            Source::Url(url) => url.to_string(),
            Source::Fixed(_) => String::new(),
        }
    }

    #[test]
    fn the_jwks_is_under_the_base_url_and_its_prefix() {
        assert_eq!(
            jwks_url(&JwtAuth::new("http://auth:8080")),
            "http://auth:8080/jwks"
        );
        assert_eq!(
            jwks_url(&JwtAuth::new("https://auth.example.com/prefix")),
            "https://auth.example.com/prefix/jwks"
        );
        assert_eq!(
            jwks_url(&JwtAuth::new("https://auth.example.com/prefix/")),
            "https://auth.example.com/prefix/jwks"
        );
    }

    #[test]
    fn a_jwks_url_is_taken_as_it_is() {
        assert_eq!(
            jwks_url(&JwtAuth::from_jwks_url(
                "https://idp.example.com/.well-known/jwks.json"
            )),
            "https://idp.example.com/.well-known/jwks.json"
        );
    }

    #[test]
    fn urls_that_are_not_absolute_http_are_refused() {
        for url in [
            "auth:8080",
            "/jwks",
            "ftp://auth/jwks",
            "file:///etc/jwks",
            "",
        ] {
            assert!(
                matches!(
                    JwtAuth::try_from_jwks_url(url),
                    Err(ConfigError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn debug_output_hides_url_passwords_and_the_client() {
        let client = reqwest::Client::builder()
            .default_headers(http::HeaderMap::from_iter([(
                http::header::AUTHORIZATION,
                http::HeaderValue::from_static("Basic c2VjcmV0"),
            )]))
            .build()
            .expect("client");
        let auth = JwtAuth::new("https://svc:hunter2@auth.example.com").with_http_client(client);
        let debug = format!("{auth:?}");
        assert!(debug.contains("auth.example.com"), "{debug}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("c2VjcmV0"),
            "{debug}"
        );
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        let auth = || JwtAuth::from_jwks(Jwks::default());
        assert!(
            auth()
                .with_refresh_bounds(Duration::from_secs(60), Duration::from_secs(10))
                .is_err()
        );
        assert!(
            auth()
                .with_refresh_bounds(Duration::ZERO, Duration::from_secs(10))
                .is_err()
        );
        assert!(auth().with_max_jwks_size(0).is_err());
        assert!(auth().with_fetch_timeout(Duration::ZERO).is_err());
    }
}
