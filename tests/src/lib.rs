//! Starts the real server binary on a loopback port for end-to-end tests.
//!
//! Integration tests of this package pass `env!("CARGO_BIN_EXE_jwthenticator-server-e2e")`,
//! the server's own `main.rs` built as a binary of this package.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jwthenticator_test_support::ChildProcess;
pub use jwthenticator_test_support::{PgDatabase, free_port};
use tokio::process::Command;

/// Every configuration variable the server reads (from its clap definition, so a new one
/// cannot be missed), cleared so the caller's environment cannot leak into a test.
fn server_variables() -> Vec<String> {
    use clap::CommandFactory;
    jwthenticator_server::Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// The `KEY_HASH_SECRET` every [`TestServer`] gets unless the test sets its own: PostgreSQL
/// requires one, and a CLI command beside a server must use the same.
pub const KEY_HASH_SECRET: &str = "the-tests-key-hash-secret-of-32-characters-or-more";

/// A server process on 127.0.0.1, killed when dropped.
#[derive(Debug)]
pub struct TestServer {
    base_url: String,
    process: ChildProcess,
    dir: tempfile::TempDir,
}

/// Configures a [`TestServer`] before starting it.
#[derive(Debug)]
#[must_use]
pub struct TestServerBuilder {
    binary: PathBuf,
    env: Vec<(String, String)>,
    health_path: String,
    port: Option<u16>,
}

impl TestServer {
    /// Starts configuring a server run from `binary`.
    pub fn builder(binary: impl Into<PathBuf>) -> TestServerBuilder {
        TestServerBuilder {
            binary: binary.into(),
            env: Vec::new(),
            health_path: "/health".to_owned(),
            port: None,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The server's data directory (its embedded database and key live here).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.process.logs()
    }

    /// Sends SIGTERM and waits for the process to end; returns whether it exited successfully.
    pub async fn terminate(mut self) -> bool {
        self.process.terminate(Duration::from_secs(20)).await
    }
}

impl TestServerBuilder {
    /// Sets an environment variable of the server process (`KEY_HASH_SECRET` replaces the
    /// default [`KEY_HASH_SECRET`]).
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// The path polled until the server answers (`/health`; e.g. `/auth/health` with a
    /// `URL_PREFIX`).
    pub fn health_path(mut self, path: &str) -> Self {
        path.clone_into(&mut self.health_path);
        self
    }

    /// Listen on this loopback port instead of a free one, for example the port of a server
    /// that was terminated, to restart it.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Starts the server on a free loopback port (or the one given to
    /// [`TestServerBuilder::port`]), with its data in a temporary directory, and waits until its
    /// health path answers.
    pub async fn start(self) -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = self.port.unwrap_or_else(free_port);
        let mut command = Command::new(&self.binary);
        for name in server_variables() {
            command.env_remove(name);
        }
        command
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("DATA_DIR", dir.path())
            .env("RUST_LOG", "info")
            .env("KEY_HASH_SECRET", KEY_HASH_SECRET)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let process = ChildProcess::spawn("the server", command, dir.path().join("server.log"));
        let mut server = TestServer {
            base_url: format!("http://127.0.0.1:{port}"),
            process,
            dir,
        };
        let health = server.url(&self.health_path);
        server
            .process
            .wait_until_healthy(&health, Duration::from_secs(30))
            .await;
        server
    }
}

/// What [`enroll`] registered and received.
#[derive(Debug, Clone)]
pub struct Enrolled {
    /// The registered key.
    pub key: String,
    /// Its identifier.
    pub identifier: uuid::Uuid,
    /// The JWT `/authenticate` returned.
    pub jwt: String,
    /// The refresh token `/authenticate` returned.
    pub refresh_token: String,
}

/// POSTs `body` as JSON; returns the status and the JSON answer (null when there is none, and
/// status 0 when the server could not be reached).
pub async fn post_json(
    client: &reqwest::Client,
    url: String,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    match client.post(url).json(&body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (
                status,
                response.json().await.unwrap_or(serde_json::Value::Null),
            )
        }
        Err(_) => (0, serde_json::Value::Null),
    }
}

/// Registers a new random key for a new identifier at `base` and authenticates with it.
pub async fn enroll(client: &reqwest::Client, base: &str) -> Enrolled {
    let key = format!("key-{}", uuid::Uuid::new_v4());
    let identifier = uuid::Uuid::new_v4();
    let body = serde_json::json!({"key": key, "identifier": identifier});
    let (status, answer) = post_json(client, format!("{base}/register_key"), body.clone()).await;
    assert_eq!(status, 201, "register_key: {answer}");
    let (status, tokens) = post_json(client, format!("{base}/authenticate"), body).await;
    assert_eq!(status, 200, "authenticate: {tokens}");
    Enrolled {
        key,
        identifier,
        jwt: tokens["jwt"].as_str().expect("jwt").to_owned(),
        refresh_token: tokens["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}
