//! URLs of a server: the base URL that routes are joined onto, and a form of any URL fit for
//! logs and `Debug`.

use url::{Position, Url};

/// What replaces the password of a URL in [`redact_url`].
const REDACTED: &str = "[redacted]";

/// Why a text is not a server's base URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BaseUrlError {
    /// The text does not parse as a URL.
    #[error("invalid URL: {0}")]
    Invalid(#[from] url::ParseError),
    /// The URL is not an absolute `http` or `https` URL.
    #[error("not an absolute http or https URL")]
    Unsupported,
}

/// The base URL of a server, ready for [`route_url`].
///
/// A path prefix (`https://example.com/auth`, the server's `URL_PREFIX`) is kept: the path gets a
/// trailing `/`, as the Python original's `fix_url_path` did, so `refresh` joins to
/// `/auth/refresh` rather than replacing `auth`. A query or fragment is dropped.
///
/// ```
/// use jwthenticator_core::{base_url, route_url, routes};
///
/// let base = base_url("https://example.com/auth?x=1")?;
/// assert_eq!(base.as_str(), "https://example.com/auth/");
/// assert_eq!(route_url(&base, routes::JWKS)?.as_str(), "https://example.com/auth/jwks");
/// assert!(base_url("ftp://example.com/").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`BaseUrlError::Invalid`] for a text that is no URL, [`BaseUrlError::Unsupported`] for one
/// that is not `http` or `https`.
pub fn base_url(server_url: &str) -> Result<Url, BaseUrlError> {
    let mut url = Url::parse(server_url)?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(BaseUrlError::Unsupported);
    }
    url.set_query(None);
    url.set_fragment(None);
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `route` (such as [`routes::REFRESH`](crate::routes::REFRESH)) under `base`, a URL from
/// [`base_url`]: the route's leading `/` is taken as relative to the base, so a path prefix
/// stays.
///
/// # Errors
///
/// A [`url::ParseError`] for a route that cannot be joined (not for the [`routes`](crate::routes)).
pub fn route_url(base: &Url, route: &str) -> Result<Url, url::ParseError> {
    base.join(route.trim_start_matches('/'))
}

/// `url` with its password, if it has one, replaced by `[redacted]`, for logs, `Debug` and
/// error messages: `postgres://user:secret@host/db` gives `postgres://user:[redacted]@host/db`.
/// A URL without a password is returned as it is.
///
/// ```
/// use jwthenticator_core::redact_url;
///
/// assert_eq!(redact_url("https://u:s3cret@example.com/jwks"), "https://u:[redacted]@example.com/jwks");
/// assert_eq!(redact_url("sqlite://data.db"), "sqlite://data.db");
/// ```
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) if parsed.password().is_some() => format!(
            "{}://{}:{REDACTED}@{}",
            parsed.scheme(),
            parsed.username(),
            &parsed[Position::BeforeHost..]
        ),
        Ok(_) => url.to_owned(),
        // Not a URL to the parser, but perhaps to whoever reads it: hide anything that looks
        // like a password in `scheme://user:password@`.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let authority = scheme_end + 3;
                match url[authority..at].split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:{REDACTED}{}", &url[..authority], &url[at..])
                    }
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        },
    }
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
            route("http://localhost:8080", "/refresh"),
            "http://localhost:8080/refresh"
        );
        assert_eq!(
            route("http://localhost:8080/", "refresh"),
            "http://localhost:8080/refresh"
        );
        assert_eq!(
            route("https://example.com/auth", "/authenticate"),
            "https://example.com/auth/authenticate"
        );
        assert_eq!(
            route("https://example.com/a/b/?x=1#f", "/register_key"),
            "https://example.com/a/b/register_key"
        );
    }

    #[test]
    fn rejects_urls_that_cannot_be_a_server() {
        assert!(matches!(
            base_url("not a url"),
            Err(BaseUrlError::Invalid(_))
        ));
        for url in [
            "ftp://example.com/",
            "mailto:someone@example.com",
            "file:///x",
        ] {
            assert_eq!(base_url(url), Err(BaseUrlError::Unsupported), "{url}");
        }
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact_url("postgres://u:hunter2@h:5432/db"),
            "postgres://u:[redacted]@h:5432/db"
        );
        assert_eq!(
            redact_url("https://user:s3cret@example.com/x?y=1"),
            "https://user:[redacted]@example.com/x?y=1"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn redacts_a_password_the_parser_refuses() {
        let shown = redact_url("postgres://u:p@ss w0rd@[bad/db");
        assert!(!shown.contains("w0rd"), "{shown}");
        assert!(shown.starts_with("postgres://u:[redacted]@"), "{shown}");
    }
}
