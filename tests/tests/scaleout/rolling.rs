//! Rolling restarts with zero failed requests: three replicas on one PostgreSQL (shared keys),
//! restarted one by one with SIGTERM under a fixed-rate mixed load, behind nginx with the
//! shipped configuration (`examples/compose/nginx.conf`) and behind HAProxy routing by
//! `/health/ready` without retries. The drain (readiness 503 at once, the listener serving
//! `DRAIN_DELAY` more, then in-flight requests finished) is what keeps the second at zero.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use jwthenticator_tests::{PgDatabase, TestServer, enroll, free_port};
use serde_json::json;
use tokio::process::{Child, Command};

use crate::support::{Nginx, answers, authority, replica, replicas, which};

/// Requests per second of the load, spread over the operations below in turn.
const RATE: u64 = 100;
/// The whole of each test, restarts included.
const BOUND: Duration = Duration::from_secs(110);

/// One operation of the mixed load, as the balancer in front exposes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Authenticate,
    Refresh,
    Validate,
    ValidateRequest,
    Jwks,
}

const MIX: [Operation; 5] = [
    Operation::Authenticate,
    Operation::Refresh,
    Operation::Validate,
    Operation::ValidateRequest,
    Operation::Jwks,
];

/// Where the balancer serves the API: `prefix` before every route, and the URL that a
/// `/validate_request` check guards (nginx's `auth_request` in front of a service, or the route
/// itself).
struct Front {
    prefix: String,
    guarded: String,
}

/// What the load saw, per operation: answers by status, and transport errors.
#[derive(Debug, Default)]
struct Tally {
    statuses: BTreeMap<(Operation, u16), u64>,
    errors: Vec<String>,
}

impl Tally {
    fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.errors.len() as u64
    }

    fn failed(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|((_, status), _)| *status != 200)
            .map(|(_, count)| count)
            .sum::<u64>()
            + self.errors.len() as u64
    }

    fn server_errors(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|((_, status), _)| *status >= 500)
            .map(|(_, count)| count)
            .sum()
    }
}

/// Sends the mixed load at [`RATE`] through `front` until `stop`; every request has a deadline.
async fn load(
    front: Arc<Front>,
    enrolled: jwthenticator_tests::Enrolled,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Tally {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut turn = 0usize;
    while !*stop.borrow() {
        ticks.tick().await;
        let operation = MIX[turn % MIX.len()];
        turn += 1;
        let (client, front, enrolled, tally) = (
            client.clone(),
            front.clone(),
            enrolled.clone(),
            tally.clone(),
        );
        in_flight.spawn(async move {
            let p = &front.prefix;
            let request = match operation {
                Operation::Authenticate => client
                    .post(format!("{p}/authenticate"))
                    .json(&json!({"key": enrolled.key, "identifier": enrolled.identifier})),
                Operation::Refresh => client.post(format!("{p}/refresh")).json(&json!({
                    "refresh_token": enrolled.refresh_token,
                    "identifier": enrolled.identifier,
                })),
                Operation::Validate => client
                    .post(format!("{p}/validate"))
                    .json(&json!({"jwt": enrolled.jwt})),
                Operation::ValidateRequest => client.get(&front.guarded).bearer_auth(&enrolled.jwt),
                Operation::Jwks => client.get(format!("{p}/jwks")),
            };
            let outcome = request.send().await;
            let mut tally = tally.lock().expect("tally");
            match outcome {
                Ok(response) => {
                    *tally
                        .statuses
                        .entry((operation, response.status().as_u16()))
                        .or_default() += 1;
                }
                Err(err) => tally.errors.push(format!("{operation:?}: {err}")),
            }
        });
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
    Arc::try_unwrap(tally)
        .expect("every request finished")
        .into_inner()
        .expect("tally")
}

/// Restarts each replica in turn: SIGTERM, a clean exit, started again on its port, ready,
/// and `settle` for the balancer to see it. Returns how long each was away (SIGTERM to ready).
async fn restart_one_by_one(
    servers: &mut Vec<TestServer>,
    database_url: &str,
    settle: Duration,
) -> Vec<Duration> {
    let mut away = Vec::new();
    for i in 0..servers.len() {
        let old = servers.remove(i);
        let port: u16 = authority(&old)
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        let stopped = Instant::now();
        assert!(old.terminate().await, "exit status 0 after SIGTERM");
        let new = replica(database_url, &[], Some(port)).await;
        assert!(answers(&new.url("/health/ready")).await, "ready again");
        away.push(stopped.elapsed());
        servers.insert(i, new);
        tokio::time::sleep(settle).await;
    }
    away
}

/// A service behind nginx's `auth_request`: answers 200 to whatever nginx lets through.
async fn protected_service() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let app = Router::new().fallback(get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// `examples/compose/nginx.conf` as shipped, but for loopback: the replicas for
/// `jwthenticator:8080`, the test's service for the protected one, its own port and files.
fn shipped_nginx(servers: &[TestServer], service: u16, port: u16, dir: &std::path::Path) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/compose/nginx.conf"
    );
    let mut config = std::fs::read_to_string(path).expect("examples/compose/nginx.conf");
    let dir = dir.display();
    let upstreams: String = servers
        .iter()
        .map(|s| format!("server {};\n        ", authority(s)))
        .collect();
    for (from, to) in [
        (
            "worker_processes auto;",
            "daemon off;\nworker_processes 1;".to_owned(),
        ),
        ("pid /tmp/nginx.pid;", format!("pid {dir}/nginx.pid;")),
        (
            "error_log /dev/stderr warn;",
            format!("error_log {dir}/error.log warn;"),
        ),
        (
            "access_log /dev/stdout;",
            format!(
                "access_log off;\n    client_body_temp_path {dir}/body;\n    \
                 proxy_temp_path {dir}/proxy;\n    fastcgi_temp_path {dir}/fastcgi;\n    \
                 uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;"
            ),
        ),
        ("server jwthenticator:8080;\n        ", upstreams),
        (
            "server 127.0.0.1:3000;",
            format!("server 127.0.0.1:{service};"),
        ),
        ("listen 80;", format!("listen 127.0.0.1:{port};")),
    ] {
        assert!(config.contains(from), "{path} still has `{from}`");
        config = config.replace(from, &to);
    }
    config
}

/// HAProxy from Debian in front of the replicas, as a balancer that routes by readiness and
/// never retries: `/health/ready` checked every 500 ms (out after 2 failures, in after 2
/// successes), `retries 0`, no redispatch.
struct Haproxy {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    async fn readiness_routed(servers: &[TestServer]) -> Self {
        let haproxy =
            which("haproxy").expect("haproxy is needed: run .ci/setup or apt-get install haproxy");
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let backends: String = servers
            .iter()
            .enumerate()
            .map(|(i, s)| format!("    server replica{i} {} check\n", authority(s)))
            .collect();
        let config = format!(
            "global\n    maxconn 1024\n\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    \
             timeout server 30s\n    retries 0\n    no option redispatch\n\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend replicas\n\n\
             backend replicas\n    balance roundrobin\n    option httpchk\n    \
             http-check send meth GET uri /health/ready\n    http-check expect status 200\n    \
             default-server inter 500ms fall 2 rise 2\n{backends}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log");
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start haproxy");
        let url = format!("http://127.0.0.1:{port}");
        if answers(&format!("{url}/health")).await {
            return Self {
                child,
                url,
                _dir: dir,
            };
        }
        panic!(
            "haproxy did not start: {}",
            std::fs::read_to_string(dir.path().join("haproxy.log")).unwrap_or_default()
        );
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[derive(Debug, Clone, Copy)]
enum Balancer {
    /// nginx with `examples/compose/nginx.conf`: passive checks, retries on a refused connect.
    Nginx,
    /// HAProxy routing by `/health/ready`, no retries.
    Haproxy,
}

/// Runs the restarts under load behind `balancer`; what the load saw, for the test to print.
async fn rolling_restart_under_load(balancer: Balancer) -> String {
    let database = PgDatabase::create("jwt_rolling").await;
    let database_url = database.url("postgres");
    let mut servers = replicas(&database_url, 3, &[]).await;
    let enrolled = enroll(&reqwest::Client::new(), servers[0].base_url()).await;
    let (front, nginx, haproxy) = match balancer {
        Balancer::Nginx => {
            let service = protected_service().await;
            let dir = tempfile::tempdir().expect("dir");
            let port = free_port();
            let config = shipped_nginx(&servers, service, port, dir.path());
            let nginx = Nginx::run(&config, dir, port, "/auth/health").await;
            let front = Front {
                prefix: format!("{}/auth", nginx.url),
                guarded: format!("{}/whoami", nginx.url),
            };
            (front, Some(nginx), None)
        }
        Balancer::Haproxy => {
            let haproxy = Haproxy::readiness_routed(&servers).await;
            let front = Front {
                prefix: haproxy.url.clone(),
                guarded: format!("{}/validate_request", haproxy.url),
            };
            (front, None, Some(haproxy))
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let load = tokio::spawn(load(Arc::new(front), enrolled, stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let away = restart_one_by_one(&mut servers, &database_url, Duration::from_secs(2)).await;
    let _ = stop.send(true);
    let tally = load.await.expect("load");
    let elapsed = started.elapsed();
    let summary = format!(
        "{balancer:?}: {} requests in {:.1} s at {RATE}/s, {} failed, {} 5xx; replicas away \
         (SIGTERM to ready again): {away:?}; by operation and status: {:?}",
        tally.requests(),
        elapsed.as_secs_f64(),
        tally.failed(),
        tally.server_errors(),
        tally.statuses,
    );
    if let Some(nginx) = nginx {
        nginx.stop().await;
    }
    if let Some(haproxy) = haproxy {
        haproxy.stop().await;
    }
    assert_eq!(tally.server_errors(), 0, "no 5xx: {tally:?}");
    assert_eq!(tally.failed(), 0, "no failed request: {tally:?}");
    assert!(
        tally.requests() >= RATE * 20,
        "the load ran through the restarts: {}",
        tally.requests()
    );
    drop(servers);
    summary
}

#[tokio::test]
async fn a_rolling_restart_behind_nginx_fails_no_request() {
    let summary = tokio::time::timeout(BOUND, rolling_restart_under_load(Balancer::Nginx))
        .await
        .expect("bounded in time");
    println!("{summary}");
}

#[tokio::test]
async fn a_rolling_restart_behind_haproxy_routing_by_readiness_fails_no_request() {
    let summary = tokio::time::timeout(BOUND, rolling_restart_under_load(Balancer::Haproxy))
        .await
        .expect("bounded in time");
    println!("{summary}");
}
