//! Turning an [`AuthError`] into a response: the [`BuildRejection`] trait, and the
//! [`DefaultRejection`] that answers as RFC 6750 says, or with a gRPC status for gRPC calls.
//!
//! | error | HTTP | gRPC (HTTP 200) |
//! |---|---|---|
//! | [`MissingToken`](AuthErrorKind::MissingToken) | 401, `WWW-Authenticate: Bearer` | `grpc-status: 16` (UNAUTHENTICATED) |
//! | [`InvalidToken`](AuthErrorKind::InvalidToken) | 401, `WWW-Authenticate: Bearer error="invalid_token", error_description="…"` | `grpc-status: 16` |
//! | [`KeysUnavailable`](AuthErrorKind::KeysUnavailable) | 503, `Retry-After` | `grpc-status: 14` (UNAVAILABLE) |
//!
//! A custom builder is any `Fn(&AuthError, &http::request::Parts) -> Response<B> + Clone`, or a
//! type implementing [`BuildRejection`]; it can delegate to [`DefaultRejection`] for the cases
//! it does not change.

use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, request::Parts};
use jwthenticator_core::BearerChallenge;

use crate::error::{AuthError, AuthErrorKind};

/// Builds the response to a rejected request.
pub trait BuildRejection<ResBody>: Clone {
    /// The response for `error`; `request` is the rejected request without its body.
    fn build_rejection(&self, error: &AuthError, request: &Parts) -> Response<ResBody>;
}

impl<ResBody, F> BuildRejection<ResBody> for F
where
    F: Fn(&AuthError, &Parts) -> Response<ResBody> + Clone,
{
    fn build_rejection(&self, error: &AuthError, request: &Parts) -> Response<ResBody> {
        self(error, request)
    }
}

/// When [`DefaultRejection`] answers with a gRPC status instead of an HTTP status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrpcMode {
    /// For requests whose `content-type` starts with `application/grpc` (the default).
    #[default]
    Auto,
    /// Always: the service speaks only gRPC.
    Always,
    /// Never: the service speaks only HTTP.
    Never,
}

/// The default rejection: RFC 6750 responses with an empty body, or gRPC statuses.
#[derive(Debug, Clone, Copy, Default)]
#[must_use]
pub struct DefaultRejection {
    grpc: GrpcMode,
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

impl DefaultRejection {
    /// RFC 6750 responses, and gRPC statuses for gRPC requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// When to answer with a gRPC status.
    pub fn with_grpc_mode(mut self, mode: GrpcMode) -> Self {
        self.grpc = mode;
        self
    }

    /// The RFC 6750 response to `error`: 401 with a `WWW-Authenticate` challenge, or 503 with
    /// `Retry-After`.
    pub fn http_response<B: Default>(error: &AuthError) -> Response<B> {
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        match error.kind() {
            AuthErrorKind::KeysUnavailable => {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let seconds = error.retry_after().map_or(1, |d| d.as_secs().max(1));
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds));
            }
            AuthErrorKind::InvalidToken(_) => {
                let challenge = BearerChallenge::invalid_token(&error.to_string()).to_string();
                headers.insert(
                    WWW_AUTHENTICATE,
                    // A challenge is visible ASCII, so the fallback is never used.
                    HeaderValue::try_from(challenge)
                        .unwrap_or(HeaderValue::from_static("Bearer error=\"invalid_token\"")),
                );
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
            AuthErrorKind::MissingToken => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                *response.status_mut() = StatusCode::UNAUTHORIZED;
            }
        }
        response
    }

    /// The gRPC response to `error`: HTTP 200 with `grpc-status` 16 (UNAUTHENTICATED), or 14
    /// (UNAVAILABLE) when keys are unavailable, and a percent-encoded `grpc-message`.
    pub fn grpc_response<B: Default>(error: &AuthError) -> Response<B> {
        let mut response = Response::new(B::default());
        let code = match error.kind() {
            AuthErrorKind::KeysUnavailable => "14",
            AuthErrorKind::MissingToken | AuthErrorKind::InvalidToken(_) => "16",
        };
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from_static(code));
        if let Ok(message) = HeaderValue::try_from(grpc_message(&error.to_string())) {
            headers.insert(GRPC_MESSAGE, message);
        }
        response
    }
}

impl<B: Default> BuildRejection<B> for DefaultRejection {
    fn build_rejection(&self, error: &AuthError, request: &Parts) -> Response<B> {
        let grpc = match self.grpc {
            GrpcMode::Always => true,
            GrpcMode::Never => false,
            GrpcMode::Auto => request
                .headers
                .get(CONTENT_TYPE)
                .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc")),
        };
        if grpc {
            Self::grpc_response(error)
        } else {
            Self::http_response(error)
        }
    }
}

/// The rejection response for a request, with the error in its extensions.
pub(crate) fn reject<ReqBody, ResBody, R: BuildRejection<ResBody>>(
    builder: &R,
    error: AuthError,
    request: Request<ReqBody>,
) -> Response<ResBody> {
    tracing::debug!(reason = error.kind().as_str(), "request rejected");
    let (parts, _body) = request.into_parts();
    let mut response = builder.build_rejection(&error, &parts);
    response.extensions_mut().insert(error);
    response
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2 spec).
fn grpc_message(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (b' '..=b'~').contains(&byte) && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_is_percent_encoded() {
        assert_eq!(grpc_message("50% \u{e9}\n"), "50%25 %C3%A9%0A");
    }
}
