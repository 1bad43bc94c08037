//! What the middleware and the admin client share about talking to the JWThenticator server.

use std::time::Duration;

use jwthenticator_core::{ErrorResponse, is_loopback_host};
use reqwest::Url;

use crate::ConfigError;

/// Connect timeout of the default HTTP clients.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `url` may carry secrets without the plain-http opt-in: `https://`, or `http://` to a
/// loopback host.
pub(crate) fn is_https_or_loopback(url: &Url) -> bool {
    url.scheme() == "https" || url.host_str().is_some_and(is_loopback_host)
}

/// The builder of the default HTTP client for the server: a connect timeout, and a user agent.
pub(crate) fn default_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!(
            env!("CARGO_PKG_NAME"),
            "/",
            env!("CARGO_PKG_VERSION")
        ))
}

/// The client for calls to the server, from `builder`: it never follows a redirect, because
/// a 307 or 308 re-sends the body (a key, a refresh token) wherever it points, `http://`
/// included.
pub(crate) fn server_client(
    builder: reqwest::ClientBuilder,
) -> Result<reqwest::Client, ConfigError> {
    builder
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(ConfigError::HttpClient)
}

/// The server's JSON error body, if the body is one.
pub(crate) fn error_response(body: &[u8]) -> Option<ErrorResponse> {
    serde_json::from_slice(body).ok()
}

/// The `message` of the server's JSON error body, if the body is one.
pub(crate) fn error_message(body: &[u8]) -> Option<String> {
    error_response(body).map(|error| error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_and_loopback_http_carry_secrets_without_the_opt_in() {
        for url in [
            "https://auth.example.com/",
            "http://localhost:8080/",
            "http://127.0.0.1/",
            "http://[::1]:8080/",
        ] {
            assert!(
                is_https_or_loopback(&Url::parse(url).expect("valid")),
                "{url}"
            );
        }
        for url in [
            "http://jwthenticator:8080/",
            "http://10.0.0.1/",
            "http://localhost.evil.example/",
        ] {
            assert!(
                !is_https_or_loopback(&Url::parse(url).expect("valid")),
                "{url}"
            );
        }
    }
}
