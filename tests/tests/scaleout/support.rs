//! What the scale-out tests start: a database, replicas, nginx in front, a PostgreSQL cluster
//! of their own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use jwthenticator_tests::{TestServer, free_port};
use tokio::process::{Child, Command};

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");
pub(crate) const SECRET: &str = "a-shared-secret-of-the-replicas";

/// Starts `count` replicas on one database, sharing their keys through it.
pub(crate) async fn replicas(
    database_url: &str,
    count: usize,
    env: &[(&str, &str)],
) -> Vec<TestServer> {
    let mut servers = Vec::with_capacity(count);
    for _ in 0..count {
        servers.push(replica(database_url, env, None).await);
    }
    servers
}

/// One replica on the database, on `port` (a replica's that was stopped) or a free one.
pub(crate) async fn replica(
    database_url: &str,
    env: &[(&str, &str)],
    port: Option<u16>,
) -> TestServer {
    let mut builder = TestServer::builder(BINARY)
        .env("DATABASE_URL", database_url)
        .env("KEY_ENCRYPTION_SECRET", SECRET)
        .env("RUST_LOG", "info");
    for (name, value) in env {
        builder = builder.env(name, *value);
    }
    if let Some(port) = port {
        builder = builder.port(port);
    }
    builder.start().await
}

pub(crate) fn authority(server: &TestServer) -> String {
    server.base_url().trim_start_matches("http://").to_owned()
}

/// nginx on a loopback port, round-robin over the replicas.
pub(crate) struct Nginx {
    child: Child,
    pub(crate) url: String,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub(crate) async fn round_robin(servers: &[TestServer]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let upstreams: String = servers
            .iter()
            .map(|s| format!("        server {};\n", authority(s)))
            .collect();
        let prefix = dir.path().display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n\
             fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n    scgi_temp_path {prefix}/scgi;\n\
             upstream replicas {{\n{upstreams}    }}\n\
             server {{\n        listen 127.0.0.1:{port};\n        location / {{ proxy_pass http://replicas; }}\n    }}\n}}\n"
        );
        Self::run(&config, dir, port, "/health").await
    }

    /// Runs nginx with `config` (which listens on 127.0.0.1:`port`) from `dir`, and waits until
    /// it answers `health` (a path) with a success.
    pub(crate) async fn run(config: &str, dir: tempfile::TempDir, port: u16, health: &str) -> Self {
        let nginx =
            which("nginx").expect("nginx is needed: run .ci/setup or apt-get install nginx-light");
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, config).expect("write nginx.conf");
        let child = Command::new(nginx)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        let url = format!("http://127.0.0.1:{port}");
        if answers(&format!("{url}{health}")).await {
            return Self {
                child,
                url,
                _dir: dir,
            };
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Whether `url` answers a GET with a success within 10 s (polled every 100 ms).
pub(crate) async fn answers(url: &str) -> bool {
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .chain([PathBuf::from("/usr/sbin").join(name)])
        .find(|path| path.is_file())
}

/// A PostgreSQL cluster of the test's own (initdb into a temporary directory, as the
/// `postgres` user), so the test can stop and start it without touching the shared one.
pub(crate) struct OwnCluster {
    dir: PathBuf,
    bin: PathBuf,
    pub(crate) port: u16,
}

fn postgres_bin() -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql");
    let mut dirs: Vec<PathBuf> = versions
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL version")
}

async fn as_postgres(command: &Path, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .arg("-u")
        .arg("postgres")
        .arg("--")
        .arg(command)
        .args(args)
        .output()
        .await
        .expect("runuser")
}

impl OwnCluster {
    pub(crate) async fn start() -> Self {
        let bin = postgres_bin();
        let dir = std::env::temp_dir().join(format!("jwt-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let chown = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&dir)
            .status()
            .await
            .expect("chown");
        assert!(chown.success());
        let data = dir.join("data");
        let output = as_postgres(
            &bin.join("initdb"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
        )
        .await;
        assert!(
            output.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self {
            dir,
            bin,
            port: free_port(),
        };
        cluster.up().await;
        cluster
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub(crate) async fn up(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        let output = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-o",
                &options,
                "-l",
                self.dir.join("log").to_str().expect("utf-8"),
                "-w",
                "start",
            ],
        )
        .await;
        assert!(
            output.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub(crate) async fn down(&self) {
        let data = self.dir.join("data");
        let output = as_postgres(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                data.to_str().expect("utf-8"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
        .await;
        assert!(
            output.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl OwnCluster {
    /// Sends `signal` (`STOP`, `CONT`) to the postmaster and every backend it forked.
    pub(crate) async fn signal_all(&self, signal: &str) {
        let pid_file = std::fs::read_to_string(self.dir.join("data").join("postmaster.pid"))
            .expect("postmaster.pid");
        let postmaster = pid_file
            .lines()
            .next()
            .expect("the postmaster's pid")
            .trim();
        let children = Command::new("pgrep")
            .arg("-P")
            .arg(postmaster)
            .output()
            .await
            .expect("pgrep");
        let mut pids: Vec<String> = String::from_utf8_lossy(&children.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        pids.push(postmaster.to_owned());
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .await
            .expect("kill");
        assert!(status.success(), "kill -{signal} {pids:?}");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
