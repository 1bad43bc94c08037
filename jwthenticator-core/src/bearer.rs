//! `Authorization: Bearer <token>` parsing (RFC 6750 section 2.1).

/// Why an `Authorization` header value does not carry a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerError {
    /// The header uses another scheme (`Basic`, ...) or none at all.
    #[error("the Authorization header does not use the Bearer scheme")]
    NotBearer,
    /// The scheme is `Bearer` but no token follows it.
    #[error("the Authorization header has no token after `Bearer`")]
    MissingToken,
    /// The token contains characters a bearer token cannot hold (whitespace, non-ASCII, ...).
    #[error("the bearer token contains characters that are not allowed")]
    InvalidCharacters,
}

/// Extracts the token from an `Authorization` header value.
///
/// The scheme is matched case-insensitively (RFC 7235 section 2.1) and may be followed by one or
/// more spaces. The token itself must be a `b64token` (RFC 6750): visible ASCII without
/// whitespace. The value is taken as bytes because a header value need not be UTF-8.
///
/// ```
/// use jwthenticator_core::{parse_bearer, BearerError};
///
/// assert_eq!(parse_bearer(b"bearer abc.def.ghi"), Ok("abc.def.ghi"));
/// assert_eq!(parse_bearer(b"Basic dXNlcjpwYXNz"), Err(BearerError::NotBearer));
/// assert_eq!(parse_bearer(b"Bearer "), Err(BearerError::MissingToken));
/// ```
pub fn parse_bearer(header_value: &[u8]) -> Result<&str, BearerError> {
    const SCHEME: &[u8] = b"bearer";
    let value = header_value.trim_ascii();
    if value.len() < SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(BearerError::NotBearer);
    }
    let rest = &value[SCHEME.len()..];
    if rest.is_empty() {
        return Err(BearerError::MissingToken);
    }
    if rest[0] != b' ' {
        // `Bearerabc` is another scheme name, not `Bearer` followed by a token.
        return Err(BearerError::NotBearer);
    }
    let token = rest.trim_ascii_start();
    if token.is_empty() {
        return Err(BearerError::MissingToken);
    }
    // A fold rather than `all`: without the early exit the check is vectorised, and it is the
    // valid tokens, read to the end either way, that are worth making fast.
    if !token
        .iter()
        .fold(true, |valid, b| valid & b.is_ascii_graphic())
    {
        return Err(BearerError::InvalidCharacters);
    }
    // Only visible ASCII remains, so this cannot fail.
    std::str::from_utf8(token).map_err(|_| BearerError::InvalidCharacters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive() {
        for value in ["Bearer t", "bearer t", "BEARER t", "bEaReR t"] {
            assert_eq!(parse_bearer(value.as_bytes()), Ok("t"), "{value}");
        }
    }

    #[test]
    fn surrounding_and_repeated_spaces_are_tolerated() {
        assert_eq!(parse_bearer(b"  Bearer   a.b.c  "), Ok("a.b.c"));
    }

    #[test]
    fn other_schemes_and_glued_scheme_are_not_bearer() {
        assert_eq!(parse_bearer(b"Basic abc"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer(b"Bearerabc"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer(b"abc.def.ghi"), Err(BearerError::NotBearer));
        assert_eq!(parse_bearer(b""), Err(BearerError::NotBearer));
    }

    #[test]
    fn missing_token_is_reported() {
        assert_eq!(parse_bearer(b"Bearer"), Err(BearerError::MissingToken));
        assert_eq!(parse_bearer(b"Bearer    "), Err(BearerError::MissingToken));
    }

    #[test]
    fn tokens_with_inner_whitespace_or_non_ascii_are_rejected() {
        assert_eq!(
            parse_bearer(b"Bearer a b"),
            Err(BearerError::InvalidCharacters)
        );
        assert_eq!(
            parse_bearer("Bearer t\u{e9}".as_bytes()),
            Err(BearerError::InvalidCharacters)
        );
        assert_eq!(
            parse_bearer(b"Bearer \xff\xfe"),
            Err(BearerError::InvalidCharacters)
        );
    }
}
