//! A JWT as the client holds it: the ready `Authorization` header and when to replace it.
//!
//! The client never verifies a JWT (the services it calls do); it only reads the `exp` claim,
//! as the Python original did with `verify_signature: False`, to know when to refresh.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;

/// base64url as JWTs use it: unpadded, but a padded payload is read too.
const PAYLOAD_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Farther expiries are clamped to this, so that `Instant` arithmetic cannot overflow.
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Why the expiry of a JWT could not be read.
///
/// The JWT itself is never part of the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed JWT: {reason}")]
pub struct MalformedJwt {
    reason: &'static str,
}

impl MalformedJwt {
    const fn new(reason: &'static str) -> Self {
        Self { reason }
    }
}

/// Only the claim the client needs. The full payload is `jwthenticator_core::Claims`; reading
/// just `exp` keeps the client working with tokens that carry fewer or other claims.
#[derive(Deserialize)]
struct Expiry {
    /// A NumericDate, which RFC 7519 allows to be fractional.
    exp: f64,
}

/// A JWT with its `Authorization` header value (marked sensitive) and its deadlines on the
/// `tokio::time` clock.
pub(crate) struct Jwt {
    token: Box<str>,
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

impl Jwt {
    /// Reads the token's `exp` without verifying the signature and anchors it to the
    /// `tokio::time` clock, so that a paused clock pauses expiry too.
    ///
    /// The token is due for refresh `margin` before it expires, but never earlier than half its
    /// remaining lifetime, so a server that issues JWTs shorter than the margin does not get a
    /// refresh call per request.
    pub(crate) fn parse(token: String, margin: Duration) -> Result<Self, MalformedJwt> {
        let mut parts = token.split('.');
        let (Some(_header), Some(payload), Some(_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MalformedJwt::new("not three dot-separated parts"));
        };
        let payload = PAYLOAD_ENGINE
            .decode(payload)
            .map_err(|_| MalformedJwt::new("payload is not base64url"))?;
        let Expiry { exp } = serde_json::from_slice(&payload)
            .map_err(|_| MalformedJwt::new("payload is not a JSON object with a numeric `exp`"))?;

        let mut header = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| MalformedJwt::new("contains characters not allowed in a header"))?;
        header.set_sensitive(true);

        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // A negative or unrepresentable remainder means the token has already expired.
        let lifetime = Duration::try_from_secs_f64(exp - now_unix)
            .unwrap_or_default()
            .min(MAX_LIFETIME);
        if lifetime.is_zero() {
            tracing::warn!(
                "received a JWT that has already expired; the client's and the server's clocks may differ"
            );
        }
        let now = Instant::now();
        let expires_at = now + lifetime;
        Ok(Self {
            token: token.into_boxed_str(),
            header,
            refresh_at: expires_at - margin.min(lifetime / 2),
            expires_at,
        })
    }

    /// The token itself, for the token listener.
    pub(crate) fn as_str(&self) -> &str {
        &self.token
    }

    /// `Bearer <token>`, marked sensitive.
    pub(crate) fn header(&self) -> HeaderValue {
        self.header.clone()
    }

    /// Whether the token is within the refresh margin of its expiry (or past it).
    pub(crate) fn needs_refresh(&self, now: Instant) -> bool {
        now >= self.refresh_at
    }

    /// Whether the token has expired.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("token", &crate::REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_expiring_in(seconds: i64) -> String {
        let now = jwthenticator_core::now_unix();
        let payload = PAYLOAD_ENGINE.encode(format!(r#"{{"exp":{}}}"#, now + seconds));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_margin_before_expiry_on_the_tokio_clock() {
        let jwt = Jwt::parse(token_expiring_in(600), Duration::from_secs(60)).expect("parses");
        let start = Instant::now();
        assert!(!jwt.needs_refresh(start));
        tokio::time::advance(Duration::from_secs(530)).await;
        assert!(!jwt.needs_refresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(jwt.needs_refresh(Instant::now()));
        assert!(!jwt.is_expired(Instant::now()));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(jwt.is_expired(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn margin_is_capped_at_half_the_lifetime() {
        let jwt = Jwt::parse(token_expiring_in(40), Duration::from_secs(60)).expect("parses");
        tokio::time::advance(Duration::from_secs(15)).await;
        assert!(!jwt.needs_refresh(Instant::now()));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(jwt.needs_refresh(Instant::now()));
    }

    #[tokio::test]
    async fn expired_token_needs_refresh_at_once() {
        let jwt = Jwt::parse(token_expiring_in(-10), Duration::ZERO).expect("parses");
        assert!(jwt.is_expired(Instant::now()));
        assert!(jwt.needs_refresh(Instant::now()));
    }

    #[test]
    fn malformed_tokens_are_rejected_without_echoing_them() {
        for token in [
            "s3cret",
            "a.s3cret",
            "a.b.c.d",
            "a.!!!.c",
            "a.eyJmb28iOjF9.c",
            "a.eyJleHAiOiJzb29uIn0.c",
        ] {
            let err = Jwt::parse(token.to_owned(), Duration::ZERO).expect_err(token);
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn header_is_bearer_and_sensitive_and_debug_is_redacted() {
        let token = token_expiring_in(600);
        let jwt = Jwt::parse(token.clone(), Duration::ZERO).expect("parses");
        let header = jwt.header();
        assert_eq!(header.to_str().expect("ascii"), format!("Bearer {token}"));
        assert!(header.is_sensitive());
        assert!(!format!("{jwt:?}").contains(&token));
    }
}
