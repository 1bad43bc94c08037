//! [`AdminClient`]: the server's internal API (`register_key`, `is_key_registered`).

use std::fmt;

use jwthenticator_core::{BoolResponse, KeyRequest, RegisterKeyRequest};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use uuid::Uuid;

use crate::ConfigError;
use crate::error::message_suffix;
use crate::server::{base_url, error_message, post_json, redacted, route_url};

const REGISTER_KEY: &str = "/register_key";
const IS_KEY_REGISTERED: &str = "/is_key_registered";

/// A client for the JWThenticator server's internal API, the successor of the Python original's
/// `InternalClient`. Deployments usually expose that API only inside their network.
///
/// Cloning is cheap and clones share the connection pool.
///
/// # Example
///
/// ```no_run
/// use jwthenticator_reqwest::AdminClient;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = AdminClient::new("http://jwthenticator.internal:8080/")?;
/// let identifier = uuid::Uuid::new_v4();
/// admin.register_key("the-secret-key", identifier).await?;
/// assert!(admin.is_key_registered("the-secret-key").await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    server_url: Url,
    register_key_url: Url,
    is_key_registered_url: Url,
}

impl AdminClient {
    /// A client for the server at `server_url` (which may carry a path prefix), with a default
    /// `reqwest::Client`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidServerUrl`] or [`ConfigError::UnsupportedServerUrl`] for a bad URL;
    /// [`ConfigError::HttpClient`] if the HTTP client cannot be built.
    pub fn new(server_url: impl AsRef<str>) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(ConfigError::HttpClient)?;
        Self::with_http_client(server_url, http)
    }

    /// A client for the server at `server_url` that sends through `http`, for example one with
    /// custom root certificates or timeouts.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidServerUrl`] or [`ConfigError::UnsupportedServerUrl`] for a bad URL.
    pub fn with_http_client(
        server_url: impl AsRef<str>,
        http: reqwest::Client,
    ) -> Result<Self, ConfigError> {
        let server_url = base_url(server_url.as_ref())?;
        Ok(Self {
            register_key_url: route_url(&server_url, "register_key")?,
            is_key_registered_url: route_url(&server_url, "is_key_registered")?,
            server_url,
            http,
        })
    }

    /// Registers `key` for `identifier`, or extends its expiry if it is already registered.
    ///
    /// # Errors
    ///
    /// [`AdminError::Status`] unless the server answers 201; [`AdminError::Refused`] if it
    /// answers `"result": false`; [`AdminError::Transport`] or [`AdminError::InvalidResponse`]
    /// when there is no readable answer.
    pub async fn register_key(&self, key: &str, identifier: Uuid) -> Result<(), AdminError> {
        let request = RegisterKeyRequest {
            key: key.to_owned(),
            identifier,
        };
        let answer = self
            .call(
                REGISTER_KEY,
                &self.register_key_url,
                &request,
                StatusCode::CREATED,
            )
            .await?;
        if answer.result {
            Ok(())
        } else {
            Err(AdminError::Refused {
                route: REGISTER_KEY,
                message: answer.message,
            })
        }
    }

    /// Whether `key` is registered (and not expired).
    ///
    /// # Errors
    ///
    /// [`AdminError::Status`] unless the server answers 200; [`AdminError::Transport`] or
    /// [`AdminError::InvalidResponse`] when there is no readable answer.
    pub async fn is_key_registered(&self, key: &str) -> Result<bool, AdminError> {
        let request = KeyRequest {
            key: key.to_owned(),
        };
        let answer = self
            .call(
                IS_KEY_REGISTERED,
                &self.is_key_registered_url,
                &request,
                StatusCode::OK,
            )
            .await?;
        Ok(answer.result)
    }

    async fn call<T: Serialize>(
        &self,
        route: &'static str,
        url: &Url,
        body: &T,
        expected: StatusCode,
    ) -> Result<BoolResponse, AdminError> {
        let (status, body) = post_json(&self.http, url, body)
            .await
            .map_err(|source| AdminError::Transport { route, source })?;
        if status != expected {
            return Err(AdminError::Status {
                route,
                status,
                message: error_message(&body),
            });
        }
        serde_json::from_slice(&body)
            .map_err(|source| AdminError::InvalidResponse { route, source })
    }
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("server_url", &redacted(&self.server_url))
            .finish_non_exhaustive()
    }
}

/// Why a call of the [`AdminClient`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The server answered with a status other than the route's success status.
    #[error("the JWThenticator server answered {status} to {route}{}", message_suffix(.message))]
    Status {
        /// The route that was called, such as `/register_key`.
        route: &'static str,
        /// The status of the answer.
        status: StatusCode,
        /// The `message` of the server's JSON error body, when it sent one.
        message: Option<String>,
    },
    /// The server answered with its success status but `"result": false`.
    #[error("the JWThenticator server refused {route}{}", message_suffix(.message))]
    Refused {
        /// The route that was called.
        route: &'static str,
        /// The `message` of the answer, when it has one.
        message: Option<String>,
    },
    /// The server could not be reached, or its answer could not be read.
    #[error("could not get an answer from the JWThenticator server's {route}")]
    Transport {
        /// The route that was called.
        route: &'static str,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered its success status with something other than
    /// `{"result": bool, "message": ...}`.
    #[error("the JWThenticator server's answer to {route} is not a result")]
    InvalidResponse {
        /// The route that was called.
        route: &'static str,
        /// Why the body could not be read.
        #[source]
        source: serde_json::Error,
    },
}

impl AdminError {
    /// The HTTP status the server answered with, when that status is why the call failed.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::Refused { .. } | Self::Transport { .. } | Self::InvalidResponse { .. } => None,
        }
    }

    /// The server's explanation, when it gave one.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Self::Status { message, .. } | Self::Refused { message, .. } => message.as_deref(),
            Self::Transport { .. } | Self::InvalidResponse { .. } => None,
        }
    }
}
