//! The token state shared by every request: the current JWT, readable without waiting, and the
//! key and refresh token, locked only while one request talks to the server for all of them.
//!
//! A JWT due for refresh but still valid is replaced in the background, so no request waits on
//! the server while it holds a valid JWT. Every call has a deadline and reads a bounded answer;
//! a failure that may pass (the server unreachable, slow, or a 401 that is not its own
//! refusal) keeps the credentials and makes the next attempt wait for a backoff.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use jwthenticator_core::routes::{AUTHENTICATE, REFRESH};
use jwthenticator_core::{AuthRequest, RefreshRequest, TokenResponse};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;
use uuid::Uuid;

use crate::AuthError;
use crate::jwt::Jwt;
use crate::server::{error_message, error_response};

/// The `error` code of the server's own refusal of a key (`/authenticate`).
const KEY_REFUSED: &str = "invalid_key";
/// The `error` code of the server's own refusal of a refresh token (`/refresh`).
const REFRESH_TOKEN_REFUSED: &str = "invalid_refresh_token";
/// Largest answer of a token route read: a JWT and a refresh token are a few kilobytes.
pub(crate) const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Wait before the attempt after a transient failure, doubled after each one ...
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// ... up to this: a fleet of clients does not hammer a sick server, and finds it again soon
/// after it recovers.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The tokens the middleware holds after they changed, as given to the listener set with
/// [`with_token_listener`](crate::JwtAuthMiddlewareBuilder::with_token_listener).
///
/// Persist the refresh token to survive restarts without the key: pass it to
/// [`with_refresh_token`](crate::JwtAuthMiddlewareBuilder::with_refresh_token) next time. When
/// [`refresh_token`](Self::refresh_token) is `None` the server rejected the stored one (or never
/// issued one), so a persisted copy should be deleted.
///
/// `Debug` shows whether each token is present, never the token.
#[derive(Clone, Copy)]
pub struct Tokens<'a> {
    jwt: Option<&'a str>,
    refresh_token: Option<&'a str>,
}

impl<'a> Tokens<'a> {
    /// The current JWT, if the middleware has one.
    pub fn jwt(&self) -> Option<&'a str> {
        self.jwt
    }

    /// The current refresh token, if the middleware has one.
    pub fn refresh_token(&self) -> Option<&'a str> {
        self.refresh_token
    }
}

impl fmt::Debug for Tokens<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("jwt", &self.jwt.map(|_| crate::REDACTED))
            .field(
                "refresh_token",
                &self.refresh_token.map(|_| crate::REDACTED),
            )
            .finish()
    }
}

/// The callback notified whenever the tokens change.
pub(crate) type TokenListener = Arc<dyn Fn(&Tokens<'_>) + Send + Sync>;

/// What requests read without locking: the current JWT and the outcome of the latest attempt
/// to replace it.
struct Snapshot {
    /// How many refresh attempts have finished; a request that waited for the lock compares it
    /// with what it saw before waiting to tell whether another request already did the work.
    attempt: u64,
    jwt: Option<Arc<Jwt>>,
    /// Why the latest attempt failed, handed to the requests that waited for it.
    failure: Option<AuthError>,
    /// Transient failures in a row.
    failures: u32,
    /// No attempt before this, after a transient failure; requests get `failure` meanwhile.
    retry_at: Option<Instant>,
}

impl Snapshot {
    fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|at| now < at)
    }

    fn lease(&self, jwt: &Arc<Jwt>) -> Lease {
        Lease {
            attempt: self.attempt,
            jwt: Arc::clone(jwt),
        }
    }
}

/// The long-lived secrets, touched only by the request doing the refresh.
struct Credentials {
    key: Option<String>,
    refresh_token: Option<String>,
}

/// A JWT handed to one request, and the attempt that produced it.
#[derive(Debug)]
pub(crate) struct Lease {
    attempt: u64,
    jwt: Arc<Jwt>,
}

impl Lease {
    /// `Bearer <jwt>`, marked sensitive.
    pub(crate) fn header(&self) -> HeaderValue {
        self.jwt.header()
    }

    /// Whether both leases carry the very same JWT.
    pub(crate) fn same_jwt(&self, other: &Lease) -> bool {
        Arc::ptr_eq(&self.jwt, &other.jwt)
    }
}

/// What a token route answered, short of an error.
enum Answer {
    Tokens(TokenResponse),
    /// The server's own refusal of the credential.
    Refused,
}

/// A token route: its name, for errors, its URL, and the `error` code of the server's refusal.
struct Route {
    name: &'static str,
    url: Url,
    refusal: &'static str,
}

/// The settings a [`TokenManager`] is made from.
pub(crate) struct TokenConfig {
    pub(crate) identifier: Uuid,
    pub(crate) authenticate_url: Url,
    pub(crate) refresh_url: Url,
    pub(crate) http: reqwest::Client,
    pub(crate) call_timeout: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) listener: Option<TokenListener>,
    pub(crate) key: Option<String>,
    pub(crate) refresh_token: Option<String>,
    pub(crate) jwt: Option<Jwt>,
}

/// Obtains, caches and replaces the JWT for all requests of a middleware.
pub(crate) struct TokenManager {
    identifier: Uuid,
    authenticate: Route,
    refresh: Route,
    http: reqwest::Client,
    call_timeout: Duration,
    refresh_margin: Duration,
    listener: Option<TokenListener>,
    current: ArcSwap<Snapshot>,
    /// Held for the whole of a refresh, so concurrent requests wait for one call to the server
    /// instead of each making their own.
    credentials: Arc<Mutex<Credentials>>,
}

impl TokenManager {
    pub(crate) fn new(config: TokenConfig) -> Self {
        Self {
            identifier: config.identifier,
            authenticate: Route {
                name: AUTHENTICATE,
                url: config.authenticate_url,
                refusal: KEY_REFUSED,
            },
            refresh: Route {
                name: REFRESH,
                url: config.refresh_url,
                refusal: REFRESH_TOKEN_REFUSED,
            },
            http: config.http,
            call_timeout: config.call_timeout,
            refresh_margin: config.refresh_margin,
            listener: config.listener,
            current: ArcSwap::from_pointee(Snapshot {
                attempt: 0,
                jwt: config.jwt.map(Arc::new),
                failure: None,
                failures: 0,
                retry_at: None,
            }),
            credentials: Arc::new(Mutex::new(Credentials {
                key: config.key,
                refresh_token: config.refresh_token,
            })),
        }
    }

    pub(crate) fn identifier(&self) -> Uuid {
        self.identifier
    }

    pub(crate) fn refresh_margin(&self) -> Duration {
        self.refresh_margin
    }

    pub(crate) fn has_listener(&self) -> bool {
        self.listener.is_some()
    }

    pub(crate) fn has_jwt(&self) -> bool {
        self.current.load().jwt.is_some()
    }

    /// A JWT for a request: the current one while it has not expired, and otherwise a new one
    /// that one request gets for all.
    ///
    /// A current JWT due for refresh is replaced in the background while requests go on using
    /// it: a server that is slow, hung or unreachable does not hold up requests that still
    /// have a valid token.
    pub(crate) async fn lease(self: &Arc<Self>) -> Result<Lease, AuthError> {
        let observed = {
            let snapshot = self.current.load();
            let now = Instant::now();
            match &snapshot.jwt {
                Some(jwt) if !jwt.is_expired(now) => {
                    if jwt.needs_refresh(now) {
                        self.refresh_ahead(snapshot.attempt);
                    }
                    return Ok(snapshot.lease(jwt));
                }
                _ => snapshot.attempt,
            }
        };
        self.refresh(observed).await
    }

    /// Starts replacing the JWT on a task of its own, unless a replacement is under way, one
    /// finished since `observed`, or the latest failed less than its backoff ago.
    fn refresh_ahead(self: &Arc<Self>, observed: u64) {
        let Ok(credentials) = Arc::clone(&self.credentials).try_lock_owned() else {
            return;
        };
        let snapshot = self.current.load_full();
        if snapshot.attempt != observed || snapshot.backing_off(Instant::now()) {
            return;
        }
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(error) = manager.replace(credentials, &snapshot).await {
                tracing::warn!(
                    error = %error,
                    "could not refresh the JWT ahead of its expiry; using it until it expires"
                );
            }
        });
    }

    /// Replaces the JWT the holder of `stale` was using, unless another request replaced it
    /// (or tried to) since: then that attempt's outcome is returned without calling the server.
    pub(crate) async fn renew(self: &Arc<Self>, stale: &Lease) -> Result<Lease, AuthError> {
        self.refresh(stale.attempt).await
    }

    /// Single flight: the first caller refreshes; callers that waited on the lock while it did
    /// share its outcome, seen through the attempt counter having moved past `observed`. In
    /// the backoff after a transient failure, callers get that failure without a call.
    async fn refresh(self: &Arc<Self>, observed: u64) -> Result<Lease, AuthError> {
        let credentials = Arc::clone(&self.credentials).lock_owned().await;
        let snapshot = self.current.load_full();
        if snapshot.attempt != observed {
            match (&snapshot.failure, &snapshot.jwt) {
                (Some(failure), _) => return Err(failure.clone()),
                (None, Some(jwt)) => return Ok(snapshot.lease(jwt)),
                (None, None) => {}
            }
        }
        if let Some(failure) = &snapshot.failure
            && snapshot.backing_off(Instant::now())
        {
            return Err(failure.clone());
        }

        // The calls run on their own task, so a caller that gives up (a timeout, a dropped
        // future) cannot cut them short: with rotation on, an unread answer would lose the new
        // refresh token, and the old one is already spent.
        let manager = Arc::clone(self);
        let replacing = tokio::spawn(async move { manager.replace(credentials, &snapshot).await });
        match replacing.await {
            Ok(result) => result,
            Err(error) => match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(AuthError::Interrupted),
            },
        }
    }

    /// Gets a new JWT, publishes it (or the failure) to every request and tells the listener.
    async fn replace(
        &self,
        mut credentials: OwnedMutexGuard<Credentials>,
        snapshot: &Snapshot,
    ) -> Result<Lease, AuthError> {
        let refresh_token_before = credentials.refresh_token.clone();
        let outcome = self.obtain(&mut credentials).await;
        let attempt = snapshot.attempt + 1;
        let (result, next) = match outcome {
            Ok(jwt) => {
                let jwt = Arc::new(jwt);
                let lease = Lease {
                    attempt,
                    jwt: Arc::clone(&jwt),
                };
                let next = Snapshot {
                    attempt,
                    jwt: Some(jwt),
                    failure: None,
                    failures: 0,
                    retry_at: None,
                };
                (Ok(lease), next)
            }
            Err(error) => {
                let (failures, retry_at) = if error.is_transient() {
                    let failures = snapshot.failures.saturating_add(1);
                    let backoff = FIRST_BACKOFF
                        .saturating_mul(1 << failures.min(16).saturating_sub(1))
                        .min(MAX_BACKOFF);
                    tracing::debug!(
                        error = %error,
                        retry_in_secs = backoff.as_secs(),
                        "could not get a JWT; the credentials are kept"
                    );
                    (failures, Some(Instant::now() + backoff))
                } else {
                    (0, None)
                };
                let next = Snapshot {
                    attempt,
                    jwt: snapshot.jwt.clone(),
                    failure: Some(error.clone()),
                    failures,
                    retry_at,
                };
                (Err(error), next)
            }
        };
        let changed = result.is_ok() || credentials.refresh_token != refresh_token_before;
        if changed && let Some(listener) = &self.listener {
            listener(&Tokens {
                jwt: next.jwt.as_deref().map(Jwt::as_str),
                refresh_token: credentials.refresh_token.as_deref(),
            });
        }
        self.current.store(Arc::new(next));
        result
    }

    /// The original's refresh logic: the refresh token first; if the server rejects it, drop it
    /// and authenticate with the key; if the key is rejected, drop it too and fail. Only the
    /// server's own refusal drops a credential.
    async fn obtain(&self, credentials: &mut Credentials) -> Result<Jwt, AuthError> {
        let mut refresh_failure = None;
        if let Some(refresh_token) = &credentials.refresh_token {
            tracing::debug!(identifier = %self.identifier, "refreshing the JWT");
            let request = RefreshRequest {
                refresh_token: refresh_token.clone(),
                identifier: self.identifier,
            };
            match self.call(&self.refresh, &request).await {
                Ok(Answer::Tokens(tokens)) => return self.accept(REFRESH, tokens, credentials),
                Ok(Answer::Refused) => {
                    tracing::info!("the server rejected the refresh token; dropping it");
                    credentials.refresh_token = None;
                    refresh_failure = Some(AuthError::RefreshTokenRejected);
                }
                // An unreachable or hung server will not take the key either.
                Err(error @ (AuthError::Transport { .. } | AuthError::Timeout { .. })) => {
                    return Err(error);
                }
                Err(error) => refresh_failure = Some(error),
            }
        }

        let Some(key) = &credentials.key else {
            return Err(refresh_failure.unwrap_or(AuthError::NoCredentials));
        };
        tracing::debug!(identifier = %self.identifier, "authenticating with the key");
        let request = AuthRequest {
            key: key.clone(),
            identifier: self.identifier,
        };
        match self.call(&self.authenticate, &request).await? {
            Answer::Tokens(tokens) => self.accept(AUTHENTICATE, tokens, credentials),
            Answer::Refused => {
                tracing::warn!("the server rejected the key; dropping it");
                credentials.key = None;
                Err(AuthError::KeyRejected)
            }
        }
    }

    /// Keeps a refresh token the server issued (from `/authenticate`, or rotated by
    /// `/refresh`) and reads the JWT.
    fn accept(
        &self,
        route: &'static str,
        tokens: TokenResponse,
        credentials: &mut Credentials,
    ) -> Result<Jwt, AuthError> {
        // Stored before the JWT is read: with rotation on, the old refresh token is already
        // spent, whatever is wrong with the JWT.
        if let Some(refresh_token) = tokens.refresh_token.filter(|token| !token.is_empty()) {
            credentials.refresh_token = Some(refresh_token);
        }
        Jwt::parse(tokens.jwt, self.refresh_margin).map_err(|error| AuthError::InvalidResponse {
            route,
            source: Arc::new(error),
        })
    }

    /// POSTs to a token route, within the call deadline: 200 with a token response, or 401
    /// with the server's own refusal of the credential. A 401 with any other body (from a
    /// gateway or proxy in front of the server) is an unexpected status: it says nothing about
    /// the credential.
    async fn call<T: Serialize>(&self, route: &Route, body: &T) -> Result<Answer, AuthError> {
        let (status, body) = tokio::time::timeout(self.call_timeout, self.post(route, body))
            .await
            .map_err(|_| AuthError::Timeout {
                route: route.name,
                after: self.call_timeout,
            })??;
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(Answer::Tokens)
                .map_err(|error| AuthError::InvalidResponse {
                    route: route.name,
                    source: Arc::new(error),
                }),
            StatusCode::UNAUTHORIZED
                if error_response(&body).is_some_and(|error| error.error == route.refusal) =>
            {
                Ok(Answer::Refused)
            }
            status => Err(AuthError::UnexpectedStatus {
                route: route.name,
                status,
                message: error_message(&body),
            }),
        }
    }

    /// POSTs `body` as JSON and reads at most [`MAX_ANSWER_BYTES`] of the answer.
    async fn post<T: Serialize>(
        &self,
        route: &Route,
        body: &T,
    ) -> Result<(StatusCode, Bytes), AuthError> {
        let transport = |error| AuthError::Transport {
            route: route.name,
            source: Arc::new(error),
        };
        let too_large = AuthError::TooLarge {
            route: route.name,
            limit: MAX_ANSWER_BYTES,
        };
        let mut response = self
            .http
            .post(route.url.clone())
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        if response
            .content_length()
            .is_some_and(|length| length > MAX_ANSWER_BYTES as u64)
        {
            return Err(too_large);
        }
        let status = response.status();
        let mut answer = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if answer.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(too_large);
            }
            answer.extend_from_slice(&chunk);
        }
        Ok((status, answer.freeze()))
    }
}
