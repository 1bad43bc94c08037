//! Errors of the middleware: building it ([`ConfigError`]) and obtaining a JWT ([`AuthError`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;

use crate::jwt::MalformedJwt;

/// Why a [`JwtAuthMiddleware`](crate::JwtAuthMiddleware) or an
/// [`AdminClient`](crate::AdminClient) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// None of a key, a refresh token or a JWT was given, so no request could ever be
    /// authenticated. The Python original raised `MissingCredentialsError` here.
    #[error("no credentials: give at least one of a key, a refresh token or a JWT")]
    MissingCredentials,
    /// The server URL does not parse.
    #[error("the JWThenticator server URL is not a valid URL")]
    InvalidServerUrl(#[source] url::ParseError),
    /// The server URL parses but is not an `http` or `https` URL that can take a path.
    #[error("the JWThenticator server URL must be an http:// or https:// URL")]
    UnsupportedServerUrl,
    /// The server URL is plain `http://` to a host other than loopback, and
    /// [`with_insecure_http`](crate::JwtAuthMiddlewareBuilder::with_insecure_http) is off: the
    /// key and refresh tokens would cross the network in clear text.
    #[error(
        "the JWThenticator server URL is plain http:// to a host other than loopback; use https://, or opt in with `with_insecure_http(true)` on a network you trust"
    )]
    InsecureServerUrl,
    /// Neither [`with_allowed_hosts`](crate::JwtAuthMiddlewareBuilder::with_allowed_hosts) nor
    /// [`with_any_host`](crate::JwtAuthMiddlewareBuilder::with_any_host) was given, so the
    /// middleware does not know which hosts may receive the JWT.
    #[error(
        "say which hosts get the JWT: `with_allowed_hosts([...])`, or `with_any_host(true)` to send it to every host"
    )]
    NoAllowedHosts,
    /// A setting is out of range or contradicts another.
    #[error("invalid setting: {0}")]
    InvalidSetting(&'static str),
    /// The JWT given to [`with_jwt`](crate::JwtAuthMiddlewareBuilder::with_jwt) has no
    /// readable `exp` claim.
    #[error("the JWT given to `with_jwt` cannot be used")]
    InvalidJwt(#[source] MalformedJwt),
    /// An entry of the host allow-list is not a `host` or `host:port`.
    #[error("`{0}` is not a host or host:port for the allow-list")]
    InvalidAllowedHost(String),
    /// The admin token cannot be sent in an HTTP header (it has control characters).
    #[error("the admin token cannot be sent in an HTTP header")]
    InvalidAdminToken,
    /// The HTTP client for calls to the server could not be built (for example, no TLS
    /// backend could be initialised).
    #[error("the HTTP client for the JWThenticator server could not be built")]
    HttpClient(#[source] reqwest::Error),
}

/// Why the middleware could not obtain a JWT from the JWThenticator server.
///
/// The middleware returns it inside [`reqwest_middleware::Error::Middleware`]; find it with
/// `downcast_ref`:
///
/// ```
/// use jwthenticator_reqwest::AuthError;
///
/// fn key_was_rejected(err: &reqwest_middleware::Error) -> bool {
///     match err {
///         reqwest_middleware::Error::Middleware(err) => {
///             matches!(err.downcast_ref::<AuthError>(), Some(AuthError::KeyRejected))
///         }
///         _ => false,
///     }
/// }
/// ```
///
/// It is `Clone` because one refresh serves every request that waited for it, and each of them
/// gets its outcome.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// `/authenticate` answered 401 with the server's own refusal (`{"error": "invalid_key",
    /// ...}`): the key is unknown, expired or revoked. The middleware has dropped it and will not
    /// send it again, so a rejected key never causes a retry loop. A 401 without that body
    /// (from a gateway in front of the server, say) is an
    /// [`UnexpectedStatus`](Self::UnexpectedStatus) instead, and the key is kept.
    #[error(
        "the JWThenticator server rejected the key (401 Unauthorized); it has been dropped and will not be sent again"
    )]
    KeyRejected,
    /// `/refresh` answered 401 with the server's own refusal (`{"error":
    /// "invalid_refresh_token", ...}`) and there is no key to authenticate with instead. The
    /// refresh token has been dropped.
    #[error(
        "the JWThenticator server rejected the refresh token (401 Unauthorized) and no key is configured to authenticate with"
    )]
    RefreshTokenRejected,
    /// The JWT needs replacing but no key or refresh token is left: none was configured, or the
    /// server rejected them earlier.
    #[error("no key or refresh token is left to obtain a new JWT with")]
    NoCredentials,
    /// The runtime shut down while the JWT was being replaced.
    #[error("replacing the JWT was interrupted by the runtime shutting down")]
    Interrupted,
    /// The server answered with a status other than 200, or 401 without its own refusal body.
    /// The credentials are kept, and the next attempt waits for a backoff (1 s, doubling up to
    /// 30 s).
    #[error("the JWThenticator server answered {status} to {route}{}", message_suffix(.message))]
    UnexpectedStatus {
        /// The route that was called, `/authenticate` or `/refresh`.
        route: &'static str,
        /// The status of the answer.
        status: StatusCode,
        /// The `message` of the server's JSON error body, when it sent one.
        message: Option<String>,
    },
    /// The call did not finish within its deadline
    /// ([`with_call_timeout`](crate::JwtAuthMiddlewareBuilder::with_call_timeout)).
    #[error("the JWThenticator server's {route} did not answer within {after:?}")]
    Timeout {
        /// The route that was called, `/authenticate` or `/refresh`.
        route: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The server's answer is larger than a token response can be.
    #[error("the JWThenticator server's answer to {route} is larger than {limit} bytes")]
    TooLarge {
        /// The route that was called, `/authenticate` or `/refresh`.
        route: &'static str,
        /// The largest answer read, in bytes.
        limit: usize,
    },
    /// The server could not be reached, or its answer could not be read.
    #[error("could not get an answer from the JWThenticator server's {route}")]
    Transport {
        /// The route that was called, `/authenticate` or `/refresh`.
        route: &'static str,
        /// The underlying error.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The server answered 200 with something other than a token response carrying a readable
    /// JWT.
    #[error("the JWThenticator server's answer to {route} holds no usable JWT")]
    InvalidResponse {
        /// The route that was called, `/authenticate` or `/refresh`.
        route: &'static str,
        /// What was wrong with the answer.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
}

impl From<jwthenticator_core::BaseUrlError> for ConfigError {
    fn from(error: jwthenticator_core::BaseUrlError) -> Self {
        match error {
            jwthenticator_core::BaseUrlError::Invalid(error) => Self::InvalidServerUrl(error),
            _ => Self::UnsupportedServerUrl,
        }
    }
}

impl AuthError {
    /// The HTTP status the server answered with, when that status is why the call failed.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::KeyRejected | Self::RefreshTokenRejected => Some(StatusCode::UNAUTHORIZED),
            Self::UnexpectedStatus { status, .. } => Some(*status),
            Self::NoCredentials
            | Self::Interrupted
            | Self::Timeout { .. }
            | Self::TooLarge { .. }
            | Self::Transport { .. }
            | Self::InvalidResponse { .. } => None,
        }
    }

    /// Whether a later attempt may succeed with the same credentials: the server was
    /// unreachable, slow, sick or behind something that refused the call. Such failures make
    /// the next attempt wait for a backoff; refusals by the server itself do not, as they leave
    /// nothing to send again.
    pub(crate) fn is_transient(&self) -> bool {
        !matches!(
            self,
            Self::KeyRejected | Self::RefreshTokenRejected | Self::NoCredentials
        )
    }

    /// The `message` of the server's JSON error body, when it sent one.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Self::UnexpectedStatus { message, .. } => message.as_deref(),
            _ => None,
        }
    }
}

/// `": <message>"`, or nothing when the server sent no message.
pub(crate) fn message_suffix(message: &Option<String>) -> String {
    message
        .as_deref()
        .map(|message| format!(": {message}"))
        .unwrap_or_default()
}
