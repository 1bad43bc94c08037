//! [`AdminClient`]: the server's internal API (key registration, revocation, listing).

use std::fmt;

use jwthenticator_core::{
    BoolResponse, IdentifierRequest, KeyInfo, KeyListResponse, KeyRequest, RegisterKeyRequest,
    RevocationResponse, RevokeKeyRequest, RevokeRefreshTokenRequest,
};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use std::time::Duration;

use crate::ConfigError;
use crate::error::message_suffix;
use crate::middleware::DEFAULT_CALL_TIMEOUT;
use crate::server::{default_client_builder, error_message, server_client};
use jwthenticator_core::routes::{
    IS_KEY_REGISTERED, KEYS, REGISTER_KEY, REVOKE_IDENTIFIER, REVOKE_KEY, REVOKE_REFRESH_TOKEN,
};
use jwthenticator_core::{base_url, redact_url, route_url};

/// The URL of every internal route, joined once onto the server's base URL.
#[derive(Clone)]
struct Routes {
    register_key: Url,
    is_key_registered: Url,
    revoke_key: Url,
    revoke_refresh_token: Url,
    revoke_identifier: Url,
    keys: Url,
}

impl Routes {
    fn new(base: &Url) -> Result<Self, ConfigError> {
        let route = |name: &str| route_url(base, name).map_err(ConfigError::InvalidServerUrl);
        Ok(Self {
            register_key: route(REGISTER_KEY)?,
            is_key_registered: route(IS_KEY_REGISTERED)?,
            revoke_key: route(REVOKE_KEY)?,
            revoke_refresh_token: route(REVOKE_REFRESH_TOKEN)?,
            revoke_identifier: route(REVOKE_IDENTIFIER)?,
            keys: route(KEYS)?,
        })
    }
}

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
/// let admin = AdminClient::builder("http://jwthenticator.internal:8080/")
///     .with_admin_token("the-admin-token-of-32-characters-or-more")
///     .build()?;
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
    routes: Routes,
    admin_token: Option<HeaderValue>,
}

impl AdminClient {
    /// Starts configuring a client for the server at `server_url` (which may carry a path
    /// prefix); [`build`](AdminClientBuilder::build) checks the URL.
    pub fn builder(server_url: impl Into<String>) -> AdminClientBuilder {
        AdminClientBuilder {
            server_url: server_url.into(),
            http: None,
            admin_token: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// A client for the server at `server_url` with the defaults: a 5 s connect and a 10 s
    /// call timeout, no redirects and no admin token. Shorthand for
    /// `AdminClient::builder(server_url).build()`.
    ///
    /// # Errors
    ///
    /// As for [`AdminClientBuilder::build`].
    pub fn new(server_url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(server_url).build()
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
            .post::<_, BoolResponse>(
                REGISTER_KEY,
                &self.routes.register_key,
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
            .post::<_, BoolResponse>(
                IS_KEY_REGISTERED,
                &self.routes.is_key_registered,
                &request,
                StatusCode::OK,
            )
            .await?;
        Ok(answer.result)
    }

    /// Revokes `key` and all its refresh tokens: the server refuses them at once.
    ///
    /// # Errors
    ///
    /// As for [`AdminClient::register_key`], with 200 as the success status.
    pub async fn revoke_key(&self, key: &str) -> Result<RevocationResponse, AdminError> {
        let request = RevokeKeyRequest {
            key: Some(key.to_owned()),
            key_id: None,
        };
        self.post(
            REVOKE_KEY,
            &self.routes.revoke_key,
            &request,
            StatusCode::OK,
        )
        .await
    }

    /// Revokes the key with this id (as [`AdminClient::list_keys`] shows it) and its refresh
    /// tokens.
    ///
    /// # Errors
    ///
    /// As for [`AdminClient::revoke_key`].
    pub async fn revoke_key_id(&self, key_id: i64) -> Result<RevocationResponse, AdminError> {
        let request = RevokeKeyRequest {
            key: None,
            key_id: Some(key_id),
        };
        self.post(
            REVOKE_KEY,
            &self.routes.revoke_key,
            &request,
            StatusCode::OK,
        )
        .await
    }

    /// Revokes one refresh token.
    ///
    /// # Errors
    ///
    /// As for [`AdminClient::revoke_key`].
    pub async fn revoke_refresh_token(
        &self,
        refresh_token: &str,
    ) -> Result<RevocationResponse, AdminError> {
        let request = RevokeRefreshTokenRequest {
            refresh_token: refresh_token.to_owned(),
        };
        let url = &self.routes.revoke_refresh_token;
        self.post(REVOKE_REFRESH_TOKEN, url, &request, StatusCode::OK)
            .await
    }

    /// Revokes every key of `identifier` and all their refresh tokens.
    ///
    /// # Errors
    ///
    /// As for [`AdminClient::revoke_key`].
    pub async fn revoke_identifier(
        &self,
        identifier: Uuid,
    ) -> Result<RevocationResponse, AdminError> {
        let request = IdentifierRequest { identifier };
        let url = &self.routes.revoke_identifier;
        self.post(REVOKE_IDENTIFIER, url, &request, StatusCode::OK)
            .await
    }

    /// The keys registered for `identifier`, oldest first: ids, hash prefixes and dates, never
    /// the keys.
    ///
    /// # Errors
    ///
    /// As for [`AdminClient::revoke_key`].
    pub async fn list_keys(&self, identifier: Uuid) -> Result<Vec<KeyInfo>, AdminError> {
        let mut url = self.routes.keys.clone();
        url.query_pairs_mut()
            .append_pair("identifier", &identifier.to_string());
        let answer: KeyListResponse = self.send(KEYS, self.http.get(url), StatusCode::OK).await?;
        Ok(answer.keys)
    }

    async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        route: &'static str,
        url: &Url,
        body: &T,
        expected: StatusCode,
    ) -> Result<R, AdminError> {
        self.send(route, self.http.post(url.clone()).json(body), expected)
            .await
    }

    async fn send<R: DeserializeOwned>(
        &self,
        route: &'static str,
        request: reqwest::RequestBuilder,
        expected: StatusCode,
    ) -> Result<R, AdminError> {
        let request = match &self.admin_token {
            Some(token) => request.header(AUTHORIZATION, token.clone()),
            None => request,
        };
        let transport = |source| AdminError::Transport { route, source };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
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
            .field("server_url", &redact_url(self.server_url.as_str()))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| crate::REDACTED),
            )
            .finish_non_exhaustive()
    }
}

/// Configures an [`AdminClient`]; made by [`AdminClient::builder`].
///
/// `Debug` shows whether an admin token is set, never its value.
#[must_use]
pub struct AdminClientBuilder {
    server_url: String,
    http: Option<reqwest::ClientBuilder>,
    admin_token: Option<String>,
    call_timeout: Duration,
}

impl AdminClientBuilder {
    /// Sends `Authorization: Bearer <token>` (marked sensitive) with every call, for a server
    /// configured with `ADMIN_TOKEN`.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// The HTTP client for the calls, as a builder, for example with custom root certificates
    /// or a proxy. By default a client with a 5 s connect timeout.
    ///
    /// The client never follows redirects whatever the builder sets (a 307 or 308 would
    /// re-send the key of `register_key` wherever it points), and the
    /// [call deadline](Self::with_call_timeout) replaces the builder's own timeout.
    pub fn with_http_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.http = Some(client);
        self
    }

    /// The deadline of one call, from sending the request to reading the last byte of the
    /// answer; [`DEFAULT_CALL_TIMEOUT`](crate::DEFAULT_CALL_TIMEOUT) (10 s) unless set.
    /// [`build`](Self::build) fails for 0.
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Checks the configuration and builds the client.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidServerUrl`] or [`ConfigError::UnsupportedServerUrl`] for a bad
    /// URL; [`ConfigError::InvalidAdminToken`] for a token that cannot be a header value;
    /// [`ConfigError::InvalidSetting`] for a zero call timeout; [`ConfigError::HttpClient`] if
    /// the HTTP client cannot be built.
    pub fn build(self) -> Result<AdminClient, ConfigError> {
        if self.call_timeout.is_zero() {
            return Err(ConfigError::InvalidSetting(
                "the call timeout must be above 0",
            ));
        }
        let server_url = base_url(&self.server_url)?;
        let admin_token = self
            .admin_token
            .map(|token| {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ConfigError::InvalidAdminToken)?;
                value.set_sensitive(true);
                Ok::<_, ConfigError>(value)
            })
            .transpose()?;
        let http = self.http.unwrap_or_else(default_client_builder);
        Ok(AdminClient {
            routes: Routes::new(&server_url)?,
            server_url,
            http: server_client(http.timeout(self.call_timeout))?,
            admin_token,
        })
    }
}

impl fmt::Debug for AdminClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClientBuilder")
            .field("server_url", &redact_url(&self.server_url))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| crate::REDACTED),
            )
            .field("custom_client", &self.http.is_some())
            .field("call_timeout", &self.call_timeout)
            .finish()
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
    /// The server answered its success status with a body that is not the route's answer.
    #[error("the JWThenticator server's answer to {route} could not be read")]
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
