//! The errors of the layer: why a request was rejected ([`AuthError`]), why a configuration was
//! refused ([`ConfigError`]) and why a JWKS fetch failed ([`JwksError`]).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use jwthenticator_core::{VerifyError, VerifyErrorKind};

/// Why a request was rejected. It is put into the extensions of the rejection response, so
/// outer layers (logging, metrics) can read it; `Display` explains it without ever repeating
/// the token.
#[derive(Debug, Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
}

/// The class of an [`AuthError`], which decides the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The request carries no bearer token: no `Authorization` header, or one with another
    /// scheme. Answered with 401 and a bare `WWW-Authenticate: Bearer` challenge (RFC 6750
    /// section 3.1).
    MissingToken,
    /// The bearer token was refused, for the reason given. Answered with 401 and
    /// `error="invalid_token"`.
    InvalidToken(VerifyErrorKind),
    /// No verification keys are available: the JWKS was never fetched, or the last good copy is
    /// older than the maximum staleness. Answered with 503 and `Retry-After`.
    KeysUnavailable,
}

impl AuthErrorKind {
    /// A short stable name, suitable for metrics labels and log fields. For an invalid token it
    /// is the name of the [`VerifyErrorKind`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(kind) => kind.as_str(),
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl AuthError {
    pub(crate) fn missing_token() -> Self {
        Self {
            kind: AuthErrorKind::MissingToken,
            message: Cow::Borrowed("the request carries no bearer token"),
            retry_after: None,
        }
    }

    pub(crate) fn invalid(kind: VerifyErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: AuthErrorKind::InvalidToken(kind),
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn keys_unavailable(retry_after: Duration) -> Self {
        Self {
            kind: AuthErrorKind::KeysUnavailable,
            message: Cow::Borrowed("no verification keys are available"),
            retry_after: Some(retry_after),
        }
    }

    /// Why the request was rejected.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// When keys are unavailable, how long to wait before a retry can succeed.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl From<VerifyError> for AuthError {
    fn from(error: VerifyError) -> Self {
        Self::invalid(error.kind(), error.to_string())
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// A configuration the layer cannot work with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The server or JWKS URL is not an absolute `http` or `https` URL.
    #[error("invalid JWKS URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A public key could not be read.
    #[error("invalid public key: {0}")]
    InvalidKey(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

/// A JWKS fetch failed. The layer keeps using its last good keys; this error is logged and
/// returned by [`JwtAuth::refresh_keys`](crate::JwtAuth::refresh_keys).
#[derive(Debug)]
pub struct JwksError {
    kind: JwksErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// The class of a [`JwksError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwksErrorKind {
    /// The request could not be sent or the response not read (connection refused, reset,
    /// TLS failure, a timeout of the client's own).
    Request,
    /// The fetch missed its deadline
    /// ([`JwtAuth::with_fetch_timeout`](crate::JwtAuth::with_fetch_timeout)): the JWKS server
    /// accepted the connection but did not answer in time, or not all of it.
    Timeout,
    /// The JWKS URL is plain `http://` to a host other than loopback, and
    /// [`JwtAuth::with_insecure_http`](crate::JwtAuth::with_insecure_http) is off. Nothing was
    /// sent.
    InsecureUrl,
    /// The JWKS server redirected to another scheme, host or port, which is refused.
    Redirect,
    /// The server answered with a status other than 2xx.
    Status,
    /// The response is larger than the configured maximum.
    TooLarge,
    /// The response is not a JSON Web Key Set.
    InvalidJson,
    /// The key set holds no key this layer can verify with.
    NoUsableKeys,
}

impl JwksError {
    pub(crate) fn new(kind: JwksErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(
        kind: JwksErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// Why the fetch failed.
    pub fn kind(&self) -> JwksErrorKind {
        self.kind
    }
}

impl fmt::Display for JwksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JwksError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}
