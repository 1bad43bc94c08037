//! The client side of JWThenticator for [reqwest]: a [`reqwest_middleware`] middleware that
//! authenticates with a key, attaches the JWT, refreshes it before it expires, authenticates
//! again when the refresh token is gone and resends once on 401; and an [`AdminClient`] for the
//! server's internal API.
//!
//! It replaces the Python original's `Client` and `InternalClient`, against the same server
//! routes.
//!
//! # Example
//!
//! ```no_run
//! use jwthenticator_reqwest::JwtAuthMiddleware;
//! use reqwest_middleware::ClientBuilder;
//!
//! # async fn run(identifier: uuid::Uuid) -> Result<(), Box<dyn std::error::Error>> {
//! let auth = JwtAuthMiddleware::builder("https://auth.example.com/", identifier)
//!     .with_key("the-secret-key")
//!     .with_allowed_hosts(["api.example.com"]) // who may see the JWT
//!     .build()?;
//! let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
//! let response = client.get("https://api.example.com/things").send().await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! See [`JwtAuthMiddleware`] for what happens per request, and
//! [`JwtAuthMiddlewareBuilder`] for the options: the host allow-list, a refresh margin, a
//! listener that persists the refresh token across restarts, a call deadline.
//!
//! # Configuration
//!
//! Both types are made the same way, as the other JWThenticator crates' types are: a type that
//! checks its configuration as a whole is made by `Type::builder(..)`, configured with
//! consuming `with_*` setters (`with_http_client` among them, a `reqwest::ClientBuilder` here),
//! and finished by `build()`, which returns a [`ConfigError`] for a configuration that cannot
//! work: [`JwtAuthMiddleware::builder`] and [`AdminClient::builder`] (with
//! [`AdminClient::new`] as the shorthand for the defaults).
//!
//! # Security
//!
//! - The JWT goes only to the hosts you list ([`with_allowed_hosts`]); `build` fails without
//!   the list, unless you opt in to every host ([`with_any_host`]).
//! - The key and refresh tokens go only over `https://`, or plain `http://` to a loopback host,
//!   unless you opt in ([`with_insecure_http`]).
//! - Calls to the server never follow redirects (a 307 would re-send the key), have a 5 s
//!   connect timeout and a 10 s deadline ([`with_call_timeout`]), and read at most 64 KiB.
//! - A JWT due for refresh is renewed in the background: while the server is slow or down,
//!   requests go on with the JWT as long as it is valid.
//! - Only the server's own refusal (a 401 with its JSON error body) drops a key or a refresh
//!   token; any other failure keeps them and is retried after a backoff (1 s, doubling up to
//!   30 s).
//!
//! [`with_allowed_hosts`]: JwtAuthMiddlewareBuilder::with_allowed_hosts
//! [`with_any_host`]: JwtAuthMiddlewareBuilder::with_any_host
//! [`with_insecure_http`]: JwtAuthMiddlewareBuilder::with_insecure_http
//! [`with_call_timeout`]: JwtAuthMiddlewareBuilder::with_call_timeout
//!
//! # Features
//!
//! - `rustls` (default): TLS for `https://` URLs through reqwest's rustls backend. Without it,
//!   enable a TLS feature of `reqwest` yourself, or use plain `http://`.
//!
//! # Secrets
//!
//! Keys, refresh tokens and JWTs never appear in `Debug` output, errors or logs, and the
//! `Authorization` header is marked sensitive.

mod admin;
mod error;
mod jwt;
mod middleware;
mod server;
mod tokens;

pub use admin::{AdminClient, AdminClientBuilder, AdminError};
pub use error::{AuthError, ConfigError};
pub use jwt::MalformedJwt;
pub use middleware::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_REFRESH_MARGIN, JwtAuthMiddleware, JwtAuthMiddlewareBuilder,
};
pub use tokens::Tokens;

/// What `Debug` shows in place of a secret.
const REDACTED: &str = "[redacted]";

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
