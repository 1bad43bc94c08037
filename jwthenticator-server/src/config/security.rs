//! Protection settings: identifier binding, refresh-token rotation, failure limits, the client
//! address behind proxies and the admin protection. The mechanisms are in `security.rs`.

use std::net::IpAddr;

use clap::Args;
use clap::builder::BoolishValueParser;
use ipnet::IpNet;

use super::Secret;

/// The shortest `ADMIN_TOKEN` accepted: guessing 32 random characters is out of reach.
pub const MIN_ADMIN_TOKEN_LEN: usize = 32;

/// Security settings. The defaults are the safe choice; each one that differs from the Python
/// original names the variable that restores the original's behaviour.
#[derive(Debug, Clone, Args)]
pub struct SecurityConfig {
    /// Keys and refresh tokens serve only the identifier they were registered for (on by
    /// default). `false` restores the original's behaviour, where any valid key minted a JWT for
    /// any identifier (deployments sharing one key across identifiers relied on it); the server
    /// warns at start.
    #[arg(long, env = "STRICT_IDENTIFIER", value_parser = BoolishValueParser::new(),
          default_value = "true", num_args = 0..=1, default_missing_value = "true")]
    pub strict_identifier: bool,

    /// Each `/refresh` returns a new refresh token and retires the old one; presenting a retired
    /// token again revokes its whole family. Off by default: the Python client ignores a new
    /// refresh token and would lock itself out.
    #[arg(long, env = "ROTATE_REFRESH_TOKENS", value_parser = BoolishValueParser::new(),
          default_value = "false", num_args = 0..=1, default_missing_value = "true")]
    pub rotate_refresh_tokens: bool,

    /// Seconds after a rotation during which the retired token is still answered, with the same
    /// successor it was rotated into (while that successor is unused), so a client that lost
    /// the response can retry.
    #[arg(long, env = "REFRESH_TOKEN_REUSE_GRACE", default_value_t = 10)]
    pub refresh_token_reuse_grace: u64,

    /// Failed authenticate/refresh attempts allowed per identifier from one client address
    /// within the window (0: no limit). Further attempts from that address for that identifier
    /// get 429 with Retry-After until the window ends; other addresses are not affected, so
    /// nobody can lock a correct client out.
    #[arg(long, env = "AUTH_FAILURES_PER_IDENTIFIER", default_value_t = 10)]
    pub auth_failures_per_identifier: u32,

    /// Failed authenticate/refresh/is_key_registered attempts allowed per client address (IPv6:
    /// per /64) within the window, whatever the identifier (0: no limit).
    #[arg(long, env = "AUTH_FAILURES_PER_ADDRESS", default_value_t = 100)]
    pub auth_failures_per_address: u32,

    /// Length of the failure-counting window, in seconds.
    #[arg(long, env = "AUTH_FAILURE_WINDOW", default_value_t = 60)]
    pub auth_failure_window: u64,

    /// Header that carries the client's address when behind a proxy (e.g. `X-Real-IP`, or
    /// `X-Forwarded-For`, whose rightmost address that is not a TRUSTED_PROXIES entry is used).
    /// A missing or unparsable header means the peer's address. Unset: the peer address.
    #[arg(long, env = "CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Comma-separated addresses or CIDR ranges of the proxies in front of the server (e.g.
    /// `10.0.0.0/8,127.0.0.1`). With CLIENT_IP_HEADER, the header is read only on connections
    /// from these, and their own hops are skipped. Empty: the header is read on every
    /// connection and its rightmost address is used.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_ip_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Bearer token (32 characters or more) required on the internal API and `/metrics`
    /// (`Authorization: Bearer <token>`). Unset: they answer only loopback clients (or are served
    /// on INTERNAL_PORT).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Serve the internal API and `/metrics` on this port only (and not on PORT), e.g. on
    /// loopback while the external API faces the gateway. Who can reach INTERNAL_HOST:INTERNAL_PORT
    /// can call them (without ADMIN_TOKEN).
    #[arg(long, env = "INTERNAL_PORT")]
    pub internal_port: Option<u16>,

    /// Address of the internal listener.
    #[arg(long, env = "INTERNAL_HOST", default_value = "127.0.0.1")]
    pub internal_host: String,
}

/// An address or a CIDR range; a bare address is a range of one.
fn parse_ip_net(value: &str) -> Result<IpNet, String> {
    let value = value.trim();
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{value}` is not an IP address or CIDR range"))
}

impl SecurityConfig {
    /// Settings the server refuses to start with, each naming its variable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self
            .admin_token
            .as_ref()
            .is_some_and(|token| token.expose().chars().count() < MIN_ADMIN_TOKEN_LEN)
        {
            problems.push(format!(
                "ADMIN_TOKEN must have at least {MIN_ADMIN_TOKEN_LEN} characters \
                 (generate one with `openssl rand -hex 32`)"
            ));
        }
        problems
    }

    /// Insecure choices the configuration makes, each naming the variable, for the start-up
    /// log and `check-config`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.strict_identifier {
            warnings.push(
                "STRICT_IDENTIFIER=false: any valid key or refresh token gets JWTs for any \
                 identifier (the Python original's behaviour)"
                    .to_owned(),
            );
        }
        if self.auth_failures_per_identifier == 0 || self.auth_failures_per_address == 0 {
            warnings.push(
                "AUTH_FAILURES_PER_IDENTIFIER or AUTH_FAILURES_PER_ADDRESS is 0: key guessing is \
                 not limited"
                    .to_owned(),
            );
        }
        if self.client_ip_header.is_some() && self.trusted_proxies.is_empty() {
            warnings.push(
                "CLIENT_IP_HEADER without TRUSTED_PROXIES: a client that reaches the server \
                 directly chooses its own address for the failure limits"
                    .to_owned(),
            );
        }
        warnings
    }
}
