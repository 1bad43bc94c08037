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
//! let auth = JwtAuthMiddleware::new("https://auth.example.com/", identifier).with_key("the-secret-key").build()?;
//! let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
//! let response = client.get("https://api.example.com/things").send().await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! See [`JwtAuthMiddleware`] for what happens per request, and
//! [`JwtAuthMiddlewareBuilder`] for the options: a refresh margin, a listener that persists the
//! refresh token across restarts, and a host allow-list.
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

pub use admin::{AdminClient, AdminError};
pub use error::{AuthError, ConfigError};
pub use jwt::MalformedJwt;
pub use middleware::{DEFAULT_REFRESH_MARGIN, JwtAuthMiddleware, JwtAuthMiddlewareBuilder};
pub use tokens::Tokens;

/// What `Debug` shows in place of a secret.
const REDACTED: &str = "[redacted]";

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
