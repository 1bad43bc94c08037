//! The `WWW-Authenticate: Bearer` challenge of a refused request (RFC 6750 section 3).

use std::fmt;

/// Longest `error_description` sent, in characters; the rest of a long message is cut, so a
/// message that echoes attacker-chosen input cannot make the header large.
pub const MAX_ERROR_DESCRIPTION_LEN: usize = 200;

/// The `error` of a Bearer challenge (RFC 6750 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BearerErrorCode {
    /// The request is malformed (answered with 400).
    InvalidRequest,
    /// The token is expired, revoked, malformed or invalid for other reasons (answered with 401).
    InvalidToken,
    /// The token is valid but lacks a scope the resource needs (answered with 403), said with
    /// [`BearerChallenge::with_scope`].
    InsufficientScope,
}

impl BearerErrorCode {
    /// The code as the challenge spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

/// A `WWW-Authenticate: Bearer` challenge. Its [`Display`](fmt::Display) is the header value,
/// which always fits in one: whatever the inputs, it holds only visible ASCII and spaces.
///
/// - `realm` is a quoted-string (RFC 9110 section 5.6.4): `"` and `\` are escaped with `\`.
/// - `error_description` and each scope may not hold `"` or `\` even escaped (RFC 6750 section
///   3): in a description `"` becomes `'` and `\` becomes `/`; in a scope, which is matched by
///   its exact characters, such characters are dropped.
/// - Everywhere, what cannot be in a header value (CR, LF and other control characters) and
///   non-ASCII characters become `?` (dropped from scopes); a description is cut at
///   [`MAX_ERROR_DESCRIPTION_LEN`] characters.
///
/// # Example
///
/// ```
/// use jwthenticator_core::{BearerChallenge, BearerErrorCode};
///
/// let challenge = BearerChallenge::new()
///     .with_realm("orders")
///     .with_error(BearerErrorCode::InvalidToken)
///     .with_description("the token \"expired\"\r\n");
/// assert_eq!(
///     challenge.to_string(),
///     r#"Bearer realm="orders", error="invalid_token", error_description="the token 'expired'??""#
/// );
///
/// let insufficient = BearerChallenge::new()
///     .with_error(BearerErrorCode::InsufficientScope)
///     .with_scope(["orders:read", "orders:write"]);
/// assert_eq!(
///     insufficient.to_string(),
///     r#"Bearer error="insufficient_scope", scope="orders:read orders:write""#
/// );
/// assert_eq!(BearerChallenge::new().to_string(), "Bearer");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct BearerChallenge {
    realm: Option<String>,
    error: Option<BearerErrorCode>,
    description: Option<String>,
    scope: Option<String>,
}

impl BearerChallenge {
    /// A bare `Bearer` challenge, for a request that carried no token (RFC 6750 section 3.1:
    /// no error code then).
    pub fn new() -> Self {
        Self::default()
    }

    /// `Bearer error="invalid_token", error_description="…"`, the answer to a token that
    /// failed verification.
    pub fn invalid_token(description: &str) -> Self {
        Self::new()
            .with_error(BearerErrorCode::InvalidToken)
            .with_description(description)
    }

    /// The protection space (`realm="…"`).
    pub fn with_realm(mut self, realm: &str) -> Self {
        self.realm = Some(quoted_string_content(realm));
        self
    }

    /// The error code (`error="…"`).
    pub fn with_error(mut self, error: BearerErrorCode) -> Self {
        self.error = Some(error);
        self
    }

    /// A human-readable explanation (`error_description="…"`), made to fit and cut short.
    pub fn with_description(mut self, description: &str) -> Self {
        self.description = Some(error_description(description));
        self
    }

    /// The scopes the resource needs (`scope="a b"`), for
    /// [`InsufficientScope`](BearerErrorCode::InsufficientScope). Characters a scope cannot
    /// hold are dropped, and empty scopes left out.
    pub fn with_scope<S: AsRef<str>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        let scopes: Vec<String> = scopes
            .into_iter()
            .map(|scope| {
                scope
                    .as_ref()
                    .chars()
                    .filter(|c| is_scope_char(*c))
                    .collect::<String>()
            })
            .filter(|scope| !scope.is_empty())
            .collect();
        self.scope = Some(scopes.join(" "));
        self
    }
}

impl fmt::Display for BearerChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer")?;
        let mut separator = " ";
        let error = self.error.map(BearerErrorCode::as_str);
        let parameters = [
            ("realm", self.realm.as_deref()),
            ("error", error),
            ("error_description", self.description.as_deref()),
            ("scope", self.scope.as_deref()),
        ];
        for (name, value) in parameters {
            if let Some(value) = value {
                write!(f, "{separator}{name}=\"{value}\"")?;
                separator = ", ";
            }
        }
        Ok(())
    }
}

/// `text` as the inside of a quoted-string: `"` and `\` escaped as quoted-pairs; control and
/// non-ASCII characters, which no header value may hold here, replaced by `?`.
fn quoted_string_content(text: &str) -> String {
    let mut content = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                content.push('\\');
                content.push(c);
            }
            ' '..='~' => content.push(c),
            _ => content.push('?'),
        }
    }
    content
}

/// `error_description` may hold only `%x20-21 / %x23-5B / %x5D-7E` (RFC 6750 section 3).
fn error_description(message: &str) -> String {
    message
        .chars()
        .take(MAX_ERROR_DESCRIPTION_LEN)
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            ' ' | '!' | '#'..='[' | ']'..='~' => c,
            _ => '?',
        })
        .collect()
}

/// A scope token is `%x21 / %x23-5B / %x5D-7E` (RFC 6749 section 3.3).
fn is_scope_char(c: char) -> bool {
    matches!(c, '!' | '#'..='[' | ']'..='~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_realm_escapes_quotes_and_backslashes_as_quoted_pairs() {
        let challenge = BearerChallenge::new().with_realm(r#"a "b" \c"#);
        assert_eq!(challenge.to_string(), r#"Bearer realm="a \"b\" \\c""#);
    }

    #[test]
    fn a_description_holds_no_quote_backslash_or_control_character() {
        let challenge = BearerChallenge::invalid_token("alg `\"x\\y\u{7}\u{e9}` is not accepted");
        assert_eq!(
            challenge.to_string(),
            "Bearer error=\"invalid_token\", error_description=\"alg `'x/y??` is not accepted\""
        );
    }

    #[test]
    fn cr_lf_and_non_ascii_never_reach_the_header() {
        let hostile = "x\r\nSet-Cookie: a=b\u{0}\u{7f}\u{e9}\u{1F600}\t";
        let challenge = BearerChallenge::new()
            .with_realm(hostile)
            .with_error(BearerErrorCode::InsufficientScope)
            .with_description(hostile)
            .with_scope([hostile, "\u{e9}"]);
        let value = challenge.to_string();
        assert!(
            value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
            "{value:?}"
        );
        assert_eq!(
            value,
            "Bearer realm=\"x??Set-Cookie: a=b?????\", error=\"insufficient_scope\", \
             error_description=\"x??Set-Cookie: a=b?????\", scope=\"xSet-Cookie:a=b\""
        );
    }

    #[test]
    fn every_output_is_a_valid_header_value() {
        let inputs = ["", "plain", "\"\\\"", "\r\n\r\n", "\u{e9}\u{0}", "a b"];
        for input in inputs {
            let value = BearerChallenge::invalid_token(input)
                .with_realm(input)
                .with_scope([input])
                .to_string();
            assert!(
                value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()),
                "{input:?} gave {value:?}"
            );
        }
    }

    #[test]
    fn a_description_is_cut_short() {
        assert_eq!(
            error_description(&"a".repeat(1_000)),
            "a".repeat(MAX_ERROR_DESCRIPTION_LEN)
        );
    }

    #[test]
    fn scopes_are_joined_by_single_spaces_and_empty_ones_left_out() {
        let challenge = BearerChallenge::new().with_scope(["read", "", "\"\\", "write"]);
        assert_eq!(challenge.to_string(), "Bearer scope=\"read write\"");
    }

    #[test]
    fn parameters_come_in_a_fixed_order_with_one_separator() {
        let challenge = BearerChallenge::new()
            .with_scope(["s"])
            .with_description("d")
            .with_error(BearerErrorCode::InvalidRequest)
            .with_realm("r");
        assert_eq!(
            challenge.to_string(),
            "Bearer realm=\"r\", error=\"invalid_request\", error_description=\"d\", scope=\"s\""
        );
    }
}
