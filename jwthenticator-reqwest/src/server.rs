//! What the middleware and the admin client share about talking to the JWThenticator server.

use std::time::Duration;

use jwthenticator_core::{ErrorResponse, is_loopback_host};
use reqwest::Url;

use crate::ConfigError;

/// Connect timeout of the default HTTP clients.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's base URL, ready for joining route names onto.
///
/// A path prefix (`https://example.com/auth`, the server's `URL_PREFIX`) is kept: the path gets a
/// trailing `/`, as the original's `fix_url_path` did, so `refresh` joins to `/auth/refresh`
/// rather than replacing `auth`. A query or fragment is dropped.
pub(crate) fn base_url(server_url: &str) -> Result<Url, ConfigError> {
    let mut url = Url::parse(server_url).map_err(ConfigError::InvalidServerUrl)?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(ConfigError::UnsupportedServerUrl);
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` joined with a route name such as `refresh`.
pub(crate) fn route_url(base: &Url, route: &str) -> Result<Url, ConfigError> {
    base.join(route).map_err(ConfigError::InvalidServerUrl)
}

/// A copy of `url` fit for `Debug`: a password in it is replaced.
pub(crate) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Cannot fail: the URL already has a password, so it can hold one.
        let _ = url.set_password(Some(crate::REDACTED));
    }
    url.to_string()
}

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

    fn route(server: &str, route: &str) -> String {
        route_url(&base_url(server).expect("valid base"), route)
            .expect("joins")
            .to_string()
    }

    #[test]
    fn routes_keep_the_path_prefix() {
        assert_eq!(
            route("http://localhost:8080", "refresh"),
            "http://localhost:8080/refresh"
        );
        assert_eq!(
            route("http://localhost:8080/", "refresh"),
            "http://localhost:8080/refresh"
        );
        assert_eq!(
            route("https://example.com/auth", "authenticate"),
            "https://example.com/auth/authenticate"
        );
        assert_eq!(
            route("https://example.com/a/b/?x=1#f", "register_key"),
            "https://example.com/a/b/register_key"
        );
    }

    #[test]
    fn rejects_urls_that_cannot_be_a_server() {
        assert!(matches!(
            base_url("not a url"),
            Err(ConfigError::InvalidServerUrl(_))
        ));
        for url in ["ftp://example.com/", "mailto:someone@example.com"] {
            assert!(
                matches!(base_url(url), Err(ConfigError::UnsupportedServerUrl)),
                "{url}"
            );
        }
    }

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

    #[test]
    fn redacts_a_password_in_the_url() {
        let url = Url::parse("https://user:s3cret@example.com/").expect("valid");
        let shown = redacted(&url);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("user"), "{shown}");
    }
}
