//! Shared building blocks of JWThenticator: the JSON wire types of the server's API, the JWT
//! [`Claims`], the JWKS types, `Authorization: Bearer` parsing, the one [`Verifier`] that the
//! server's `/validate`, its `/validate_request` and the tower layer all use, and the
//! [`TokenCache`] of tokens they have verified, with the one cache-then-verify protocol
//! ([`Verifier::verify_cached_at`]). What the server and both libraries would otherwise each
//! write again lives here too: the RFC 6750 [`BearerChallenge`], the server's [`routes`], base
//! URLs and [`redact_url`], and the clock ([`now_unix`]).
//!
//! Configurable types follow the convention of all the JWThenticator crates: consuming
//! `with_*` setters, on a `Type::builder()` finished by `build()` where the whole
//! configuration is checked ([`Verifier::builder`]), or on the value itself where there is
//! nothing to check ([`BearerChallenge`]).
//!
//! This crate does no I/O. With the `openapi` feature the wire types also derive
//! `poem_openapi::Object`, so the server's OpenAPI document is generated from these very structs
//! and a client built on them cannot drift from the server.
//!
//! # Example
//!
//! Verify a token against a JWKS, as a gateway or a service would:
//!
//! ```
//! use jwthenticator_core::{Jwks, Verifier, VerifyErrorKind};
//!
//! let jwks: Jwks = serde_json::from_str(r#"{"keys": [{
//!     "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
//!     "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
//!     "e": "AQAB"
//! }]}"#)?;
//! let verifier = Verifier::builder().build(&jwks)?;
//!
//! let err = verifier.verify("not.a.token").unwrap_err();
//! assert_eq!(err.kind(), VerifyErrorKind::Malformed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod bearer;
mod challenge;
mod claims;
mod host;
mod json_error;
mod jwks;
mod public_key;
pub mod routes;
mod server_url;
mod time;
mod token_cache;
mod verifier;
mod wire;

pub use bearer::{BearerError, parse_bearer};
pub use challenge::{BearerChallenge, BearerErrorCode, MAX_ERROR_DESCRIPTION_LEN};
pub use claims::{Audience, Claims};
pub use host::is_loopback_host;
pub use json_error::describe_json_error;
pub use jsonwebtoken::Algorithm;
pub use jwks::{Jwk, Jwks, kid_of_spki};
pub use public_key::{
    KeyType, PublicKey, PublicKeyError, SIGNING_ALGORITHMS, algorithm_name, parse_signing_algorithm,
};
pub use server_url::{BaseUrlError, base_url, redact_url, route_url};
pub use time::{MAX_SECONDS, now_unix, saturating_seconds};
pub use token_cache::{TokenCache, TokenHash};
pub use verifier::{
    DEFAULT_LEEWAY_SECS, KeyError, MAX_TOKEN_LEN, Verifier, VerifierBuilder, VerifyError,
    VerifyErrorKind, VerifyingKey,
};
pub use wire::{
    AuthRequest, BoolResponse, ErrorResponse, IdentifierRequest, JwtValidateRequest, KeyInfo,
    KeyListResponse, KeyRequest, RefreshRequest, RegisterKeyRequest, RevocationResponse,
    RevokeKeyRequest, RevokeRefreshTokenRequest, TokenResponse,
};

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
