//! What the HTTP clients of the libraries need to know about a host, without doing I/O.

use std::net::IpAddr;

/// Whether `host`, as [`url::Url::host_str`](https://docs.rs/url) spells it, is a loopback
/// host: `localhost`, an address in `127.0.0.0/8`, or `[::1]`. Plain `http://` to such a host
/// never leaves the machine, so the libraries allow it without an opt-in.
///
/// ```
/// use jwthenticator_core::is_loopback_host;
///
/// assert!(is_loopback_host("localhost") && is_loopback_host("127.8.9.10") && is_loopback_host("[::1]"));
/// assert!(!is_loopback_host("jwthenticator") && !is_loopback_host("10.0.0.1"));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    unbracketed.eq_ignore_ascii_case("localhost")
        || unbracketed
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_and_addresses_are_loopback() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.255.0.9",
            "[::1]",
            "::1",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "jwthenticator",
            "localhost.example.com",
            "evil-localhost",
            "128.0.0.1",
            "0.0.0.0",
            "[::]",
            "[::2]",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
