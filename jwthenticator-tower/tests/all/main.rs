//! Tests of the `JwtAuth` layer: RFC 6750 rejections and the hostile-token set with fixed keys
//! and no sockets, and the JWKS cache and its transport rules against fake JWKS servers on loopback.

mod claims;
#[cfg(feature = "axum")]
mod extractor;
mod fake_jwks;
mod hostile;
mod jwks_cache;
mod rejections;
mod responses;
mod support;
mod transport;
