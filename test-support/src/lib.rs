//! The fixtures every JWThenticator test suite shares, written once: a fresh database on
//! SQLite or PostgreSQL ([`TestDatabase`], [`PgDatabase`]), a free loopback port
//! ([`free_port`]), an axum app served on loopback ([`serve`]), and a child process with its
//! output in a log file that is waited for and stopped ([`ChildProcess`]).
//!
//! It depends on no JWThenticator crate, so the server's own tests can use it without a cycle;
//! what is specific to a crate (the server's configuration, its binary's variables) stays in
//! that crate's test support and hands this one what it needs.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

/// The PostgreSQL server of the tests; `TEST_POSTGRES_URL` overrides it.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Serves `app` on a free loopback port, on the caller's runtime, until the runtime ends.
///
/// On the caller's runtime, so servers share a test's clock: a paused clock jumps to the next
/// timer whenever the runtime has nothing to do, and only when the servers answer on the same
/// runtime is there always something to do until they have answered.
///
/// # Panics
///
/// Outside a tokio runtime, or if no loopback port can be bound.
pub fn serve(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        axum::serve(listener, app).await.expect("serve");
    });
    address
}

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the test PostgreSQL server.
    Postgres,
}

/// A fresh database: a temporary SQLite file, or a new PostgreSQL database, gone when dropped.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its URL (`sqlite://…` or `postgres://…`).
    pub url: String,
    _postgres: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// An empty database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                Self {
                    url: format!("sqlite://{}", dir.path().join("test.db").display()),
                    _postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let database = PgDatabase::create("jwt_test").await;
                Self {
                    url: database.url("postgres"),
                    _postgres: Some(database),
                    _dir: None,
                }
            }
        }
    }
}

/// A database of its own on the test PostgreSQL server, dropped (with its connections) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    name: String,
    /// `user[:pass]@host:port` of the server, without scheme or database.
    authority: String,
}

impl PgDatabase {
    /// A database name no other test uses; `create` makes it, `named` only names it.
    pub fn named(prefix: &str) -> Self {
        let admin = postgres_admin_url();
        let (_, rest) = admin
            .split_once("://")
            .expect("TEST_POSTGRES_URL has a scheme");
        let authority = rest.split('/').next().unwrap_or(rest).to_owned();
        Self {
            name: format!("{prefix}_{}", uuid::Uuid::new_v4().simple()),
            authority,
        }
    }

    /// Creates an empty database.
    pub async fn create(prefix: &str) -> Self {
        let database = Self::named(prefix);
        let mut admin = PgConnection::connect(&postgres_admin_url())
            .await
            .expect("PostgreSQL must run at TEST_POSTGRES_URL or 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {}", database.name))
            .execute(&mut admin)
            .await
            .expect("create database");
        database
    }

    /// The database's URL with the given scheme, e.g. `postgresql+asyncpg`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/{}", self.authority, self.name)
    }

    /// A connection to the database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the test database")
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop runs outside async; a short-lived thread with its own runtime cleans up.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A process a test started (a server, a gateway), its output in a log file; killed when
/// dropped.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
}

impl ChildProcess {
    /// Starts `command` as `name`, with no stdin and its stdout and stderr in the file `log`.
    ///
    /// # Panics
    ///
    /// If the log file cannot be made or the process cannot start.
    pub fn spawn(name: impl Into<String>, mut command: Command, log: PathBuf) -> Self {
        let name = name.into();
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("start {name}: {err}"));
        Self {
            name,
            child,
            logs: vec![log],
        }
    }

    /// Also shows the file `log`, which the process writes itself, in [`ChildProcess::logs`].
    #[must_use]
    pub fn with_log(mut self, log: PathBuf) -> Self {
        self.logs.push(log);
        self
    }

    /// Everything the process logged so far (each file under its name, when there are several).
    pub fn logs(&self) -> String {
        let read = |path: &PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        match self.logs.as_slice() {
            [only] => read(only),
            all => all
                .iter()
                .map(|path| format!("--- {}\n{}", path.display(), read(path)))
                .collect(),
        }
    }

    /// Polls `url` every 100 ms until an answer's status satisfies `ready`.
    ///
    /// # Panics
    ///
    /// With the logs, if the process exits first or `within` passes.
    pub async fn wait_until_ready(
        &mut self,
        url: &str,
        within: Duration,
        ready: impl Fn(reqwest::StatusCode) -> bool,
    ) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.logs());
            }
            if let Ok(response) = client.get(url).send().await
                && ready(response.status())
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} did not answer {url} within {within:?}:\n{}",
            self.name,
            self.logs()
        );
    }

    /// [`ChildProcess::wait_until_ready`] for a 2xx answer, the usual health check.
    pub async fn wait_until_healthy(&mut self, url: &str, within: Duration) {
        self.wait_until_ready(url, within, |status| status.is_success())
            .await;
    }

    /// Sends SIGTERM and waits up to `within` for the process to end, then kills it; returns
    /// whether it exited by itself, successfully.
    pub async fn terminate(&mut self, within: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => {
                let _ = self.child.kill().await;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_served_app_answers_on_loopback() {
        let address = serve(axum::Router::new().route("/", axum::routing::get(|| async { "hi" })));
        assert!(address.ip().is_loopback());
        let body = reqwest::get(format!("http://{address}/"))
            .await
            .expect("answers")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "hi");
    }

    #[tokio::test]
    async fn a_child_that_exits_early_fails_the_wait_with_its_logs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; exit 3"]);
        let mut child = ChildProcess::spawn("sh", command, dir.path().join("sh.log"));
        let url = format!("http://127.0.0.1:{}/", free_port());
        let waited = tokio::spawn(async move {
            child
                .wait_until_ready(&url, Duration::from_secs(10), |status| status.is_success())
                .await;
        })
        .await;
        let panic = waited.expect_err("the wait fails").into_panic();
        let message = panic.downcast_ref::<String>().expect("a message");
        assert!(
            message.contains("exited") && message.contains("started"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn terminate_stops_a_running_child() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new("sleep");
        command.arg("30");
        let mut child = ChildProcess::spawn("sleep", command, dir.path().join("sleep.log"));
        // SIGTERM ends `sleep` by signal, not successfully.
        assert!(!child.terminate(Duration::from_secs(5)).await);
        assert!(child.child.try_wait().expect("status").is_some());
    }
}
