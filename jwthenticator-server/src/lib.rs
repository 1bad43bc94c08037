//! The JWThenticator server: clients registered with a secret key and a UUID authenticate for a
//! short-lived signed JWT and a refresh token; gateways validate tokens at `/validate_request`
//! or verify them locally against `/jwks`.
//!
//! `main.rs` only parses the configuration and calls [`run`]; [`App`] builds the same endpoint
//! for tests, which call it without a socket.
//!
//! ```no_run
//! use clap::Parser;
//! use jwthenticator_server::{App, Config};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let config = Config::parse_from(["jwthenticator-server", "--database-url", "sqlite://auth.db"]);
//! let app = App::new(&config).await?;
//! let client = poem::test::TestClient::new(app.endpoint());
//! client.get("/health").send().await.assert_status_is_ok();
//! # Ok(())
//! # }
//! ```

mod api;
pub mod app;
pub mod cli;
pub mod config;
mod error;
mod flows;
pub mod key_hash;
pub mod keys;
mod middleware;
mod private_files;
pub mod security;
mod serve;
mod state;
pub mod store;
mod telemetry;

pub use app::{App, ServeSettings, openapi_json, openapi_yaml, run};
pub use config::ConnectionConfig;
pub use config::{Config, Database};
pub use state::{AppState, IssueSettings};

/// Logs to stderr: plain text, or JSON lines with `LOG_FORMAT=json`; the level comes from
/// `RUST_LOG` (default `info`).
pub fn init_tracing(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Plain => builder.init(),
    }
}
