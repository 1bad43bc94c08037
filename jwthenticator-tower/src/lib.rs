//! A [tower](https://docs.rs/tower) layer that verifies JWTs locally, in any hyper, axum or
//! tonic service, against the JWKS of a [JWThenticator](https://pypi.org/project/jwthenticator/)
//! server or of any other issuer:
//!
//! ```no_run
//! # use axum::{Router, routing::get};
//! # use jwthenticator_tower::JwtAuth;
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "hello" }))
//!     .layer(JwtAuth::new("https://auth.example.com"));
//! ```
//!
//! A request passes only with a valid `Authorization: Bearer` token; its claims (by default
//! the JWThenticator [`Claims`], with other claims in [`Claims::extra`]) go into the request
//! extensions, where handlers find them (with the `axum` feature, through the `JwtClaims` extractor). No
//! request waits on the network while the keys are fresh: a token is checked in microseconds,
//! and a token seen before is found in a cache of verified tokens.
//!
//! # Configuration
//!
//! A layer is its own configuration, as tower-http's layers are: [`JwtAuth::new`] (or
//! `from_jwks_url`, `from_jwks`, ...) makes one, and consuming `with_*` methods configure it,
//! those that can refuse a value returning `Result<Self, ConfigError>`. The other JWThenticator
//! crates use the same `with_*` setters; a type that checks its whole configuration before it
//! can work is made there by `Type::builder(..)` and finished by `build()` (core's
//! `Verifier::builder()`, the reqwest crate's `JwtAuthMiddleware::builder`). `with_http_client`
//! is a setter everywhere; here it takes a `reqwest::Client`, because a layer is `Clone` and a
//! `reqwest::ClientBuilder` is not.
//!
//! # Rejections
//!
//! Rejections are responses, as RFC 6750 says (never 400 or 500): 401 with
//! `WWW-Authenticate: Bearer` when there is no token, 401 with `error="invalid_token"` and an
//! `error_description` when the token is refused, 503 with `Retry-After` when no keys are
//! available. gRPC requests get `grpc-status: 16` (UNAUTHENTICATED) instead. The [`AuthError`]
//! is in the response extensions; [`JwtAuth::with_rejection`] replaces the response builder.
//! See [`rejection`].
//!
//! # The key cache
//!
//! - Requests read the keys without a lock and never wait for a scheduled fetch.
//! - A background task refreshes the JWKS every 5 minutes, or as its `Cache-Control: max-age`
//!   says within 30 s to 1 hour ([`JwtAuth::with_refresh_interval`],
//!   [`JwtAuth::with_refresh_bounds`]).
//! - A token whose `kid` is unknown, as after a key rotation or a restart of the issuer with a
//!   new key, triggers one refetch that every request waiting for it shares: a new key is
//!   accepted on its first request. A refetch that does not find the `kid` it was triggered for
//!   (or fails) starts a cooldown (10 s, [`JwtAuth::with_refetch_cooldown`]) in which unknown
//!   `kid`s are rejected at once, so a flood of made-up `kid`s costs the JWKS server one fetch
//!   per cooldown.
//! - Every fetch has a deadline (5 s, [`JwtAuth::with_fetch_timeout`]), whatever HTTP client
//!   makes it: a JWKS server that hangs costs a waiting request at most that, then a 503.
//! - When refreshes fail, the last good keys stay in use for up to 10 minutes past their
//!   refresh time ([`JwtAuth::with_max_staleness`]), and every such use is logged (at most once
//!   a minute) and, with the `metrics` feature, counted; after that, and before the first
//!   successful fetch, requests get 503 with `Retry-After`.
//! - A JWKS response is read up to 256 KiB ([`JwtAuth::with_max_jwks_size`]).
//! - Verified tokens are remembered by their SHA-256 ([`JwtAuth::with_token_cache_size`]); a
//!   remembered token skips the signature check but not the `exp` check, and is forgotten
//!   when a refresh removes or replaces a key of the set that verified it.
//!
//! Every fetch uses the client of [`JwtAuth::with_http_client`] when one is given.
//!
//! # Security
//!
//! Whoever can answer the JWKS fetch can forge every token the layer accepts, so by default:
//!
//! - the JWKS is fetched over `https://`, or plain `http://` only to a loopback host
//!   (`localhost`, `127.0.0.0/8`, `[::1]`); anything else needs
//!   [`JwtAuth::with_insecure_http`], for networks you trust end to end;
//! - redirects are followed only within the JWKS URL's origin, and an answer that comes from
//!   another origin (through a client of yours that followed a redirect) is refused;
//! - keys of the token (`jku`, `x5u`, `jwk`) are never fetched nor used;
//! - stale keys are trusted for minutes, not hours: a key the issuer removed is not trusted much
//!   longer than a refresh interval while an attacker blocks the fetches;
//! - every fetch has a deadline and a size limit, and unknown `kid`s cannot make the layer
//!   fetch more than once per cooldown.
//!
//! # Features
//!
//! - `rustls` (default): TLS for `https://` JWKS URLs.
//! - `axum`: the `JwtClaims` extractor.
//! - `metrics`: the counter `jwthenticator_tower_stale_key_uses_total` (label `jwks`, the
//!   JWKS URL's origin), through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! # Example without a network
//!
//! ```
//! use http::{Request, StatusCode, header::WWW_AUTHENTICATE};
//! use jwthenticator_core::{Claims, Jwks};
//! use jwthenticator_tower::JwtAuth;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwks: Jwks = serde_json::from_str(r#"{"keys": []}"#)?; // the issuer's keys
//! let service = ServiceBuilder::new()
//!     .layer(JwtAuth::from_jwks(jwks).with_audiences(["my-service"]))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let claims = request.extensions().get::<Claims>().expect("verified claims");
//!         Ok::<_, std::convert::Infallible>(http::Response::new(claims.identifier.to_string()))
//!     }));
//!
//! let response = service.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
//! # Ok(())
//! # }
//! ```

mod authenticator;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod jwks;
mod layer;
pub mod rejection;
mod service;

pub use error::{AuthError, AuthErrorKind, ConfigError, JwksError, JwksErrorKind};
#[cfg(feature = "axum")]
pub use extract::JwtClaims;
pub use future::ResponseFuture;
pub use jwthenticator_core::{Algorithm, Claims, Jwks};
pub use layer::JwtAuth;
pub use rejection::{BuildRejection, DefaultRejection, GrpcMode};
pub use service::JwtAuthService;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
