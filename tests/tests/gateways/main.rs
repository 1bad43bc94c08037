//! Real gateways in front of a service, with this server deciding at `/validate_request`: nginx
//! `auth_request` and Caddy `forward_auth`, each run from the configuration shipped in
//! `examples/` (its ports replaced by free loopback ones), so the examples cannot rot.
//!
//! Needs `nginx` (with the auth_request module: Debian's nginx-light) and `caddy` on `PATH`;
//! `.ci/setup` installs both. A missing gateway fails the test, it is never skipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, Uri};
use jwthenticator_test_support::ChildProcess;
use jwthenticator_tests::{TestServer, free_port};
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

/// The protected service: answers with the request's body, its method and URI in headers, and
/// counts the requests that reach it.
#[derive(Debug)]
struct Upstream {
    address: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
                counter.fetch_add(1, Ordering::SeqCst);
                let authorization = headers
                    .get(AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                async move {
                    (
                        [
                            ("x-upstream-method", method.to_string()),
                            ("x-upstream-uri", uri.to_string()),
                            ("x-upstream-authorization", authorization),
                        ],
                        body,
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the upstream");
        let address = listener.local_addr().expect("upstream address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("upstream");
        });
        Self {
            address,
            hits,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A gateway process on a loopback port, killed when dropped.
#[derive(Debug)]
struct Gateway {
    name: &'static str,
    port: u16,
    process: ChildProcess,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the gateway wrote to its log files.
    fn logs(&self) -> String {
        self.process.logs()
    }

    /// Waits until the gateway answers on its port, whatever the status.
    async fn wait_ready(mut self) -> Self {
        let url = self.url("/");
        self.process
            .wait_until_ready(&url, Duration::from_secs(30), |_| true)
            .await;
        self
    }

    async fn stop(mut self) {
        self.process.terminate(Duration::from_secs(10)).await;
    }
}

/// The program `name` on `PATH`, or a failure that says how to install it.
fn require(name: &str, version_flag: &str, package: &str) -> PathBuf {
    match std::process::Command::new(name)
        .arg(version_flag)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => PathBuf::from(name),
        Err(err) => panic!(
            "`{name}` is needed for this test and could not be run ({err}): install it with \
             `apt-get install -y {package}` (.ci/setup does)"
        ),
    }
}

/// The example file at `examples/<path>`, with each `(from, to)` replaced; every `from` must
/// occur in it, so an edited example cannot silently escape the test.
fn example(path: &str, replacements: &[(&str, String)]) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(path);
    let mut text = std::fs::read_to_string(&file)
        .unwrap_or_else(|err| panic!("read {}: {err}", file.display()));
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{} no longer contains `{from}`",
            file.display()
        );
        text = text.replace(from, to);
    }
    text
}

/// `host:port` of the test server.
fn authority(server: &TestServer) -> String {
    server
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// `command` as `name`, its output and (for nginx) its error log in `dir`.
fn spawn(command: Command, dir: &Path, name: &'static str) -> ChildProcess {
    ChildProcess::spawn(name, command, dir.join("output.log")).with_log(dir.join("logs/error.log"))
}

async fn start_nginx(server: &TestServer, upstream: &Upstream) -> Gateway {
    let nginx = require("nginx", "-v", "nginx-light");
    let dir = tempfile::tempdir().expect("temporary directory");
    for sub in ["logs", "temp"] {
        std::fs::create_dir_all(dir.path().join(sub)).expect("nginx directories");
    }
    let port = free_port();
    let config = example(
        "nginx/nginx.conf",
        &[
            ("127.0.0.1:8000", format!("127.0.0.1:{port}")),
            ("127.0.0.1:8080", authority(server)),
            ("127.0.0.1:3000", upstream.address.to_string()),
        ],
    );
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config).expect("write nginx.conf");
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&config_path)
        .arg("-e")
        .arg(dir.path().join("logs/error.log"))
        // In the foreground, one process, no privilege drop: the test owns it entirely.
        .args(["-g", "daemon off; master_process off;"]);
    Gateway {
        name: "nginx",
        port,
        process: spawn(command, dir.path(), "nginx"),
        _dir: dir,
    }
    .wait_ready()
    .await
}

async fn start_caddy(server: &TestServer, upstream: &Upstream) -> Gateway {
    let caddy = require("caddy", "version", "caddy");
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let config = example(
        "caddy/Caddyfile",
        &[
            ("http://:8000", format!("http://:{port}")),
            ("127.0.0.1:8080", authority(server)),
            ("127.0.0.1:3000", upstream.address.to_string()),
        ],
    );
    let config_path = dir.path().join("Caddyfile");
    std::fs::write(&config_path, config).expect("write Caddyfile");
    let mut command = Command::new(caddy);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&config_path)
        // Caddy keeps state under HOME and the XDG directories: keep it in the test's.
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .env("XDG_DATA_HOME", dir.path().join("data"));
    Gateway {
        name: "caddy",
        port,
        process: spawn(command, dir.path(), "caddy"),
        _dir: dir,
    }
    .wait_ready()
    .await
}

async fn jwt_from(server: &TestServer) -> String {
    let client = reqwest::Client::new();
    let body = json!({"key": format!("gateway-key-{}", uuid::Uuid::new_v4()), "identifier": uuid::Uuid::new_v4()});
    let response = client
        .post(server.url("/register_key"))
        .json(&body)
        .send()
        .await
        .expect("register");
    assert_eq!(response.status().as_u16(), 201);
    let tokens: Value = client
        .post(server.url("/authenticate"))
        .json(&body)
        .send()
        .await
        .expect("authenticate")
        .json()
        .await
        .expect("tokens");
    tokens["jwt"].as_str().expect("jwt").to_owned()
}

/// Sends one request through the gateway; returns the status, the `WWW-Authenticate` headers and
/// whether it reached the upstream.
async fn through(
    gateway: &Gateway,
    upstream: &Upstream,
    method: Method,
    authorization: Option<HeaderValue>,
) -> (u16, Vec<String>, bool) {
    let before = upstream.hits();
    let mut request = reqwest::Client::new().request(method, gateway.url("/orders/42?page=1"));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    let response = request.send().await.expect("request through the gateway");
    let challenges = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .map(|value| value.to_str().unwrap_or("<not ascii>").to_owned())
        .collect();
    (
        response.status().as_u16(),
        challenges,
        upstream.hits() > before,
    )
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).expect("header value"))
}

/// The checks every gateway must pass with this server behind it.
async fn gateway_protects_the_upstream(
    gateway: &Gateway,
    server: &TestServer,
    upstream: &Upstream,
    other_server: &TestServer,
) {
    let context = |what: &str| format!("{}: {what}\n{}", gateway.name, gateway.logs());
    let jwt = jwt_from(server).await;
    let client = reqwest::Client::new();

    // A valid token: the upstream answers, with the token still on the request.
    let response = client
        .get(gateway.url("/orders/42?page=1"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("request");
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        context("valid token")
    );
    assert_eq!(response.headers()["x-upstream-method"], "GET");
    assert_eq!(response.headers()["x-upstream-uri"], "/orders/42?page=1");
    assert_eq!(
        response.headers()["x-upstream-authorization"],
        format!("Bearer {jwt}").as_str()
    );
    assert!(response.headers().get(WWW_AUTHENTICATE).is_none());

    // A POST with a body larger than the gateways' in-memory buffers: the check does not eat it.
    let body: String = (0..256 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let response = client
        .post(gateway.url("/orders"))
        .bearer_auth(&jwt)
        .body(body.clone())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200, "{}", context("POST"));
    assert_eq!(response.headers()["x-upstream-method"], "POST");
    assert!(
        response.text().await.expect("body") == body,
        "{}",
        context("the upstream got the POST body intact")
    );

    // Invalid tokens: 401 with the server's RFC 6750 challenge passed through, upstream untouched.
    let other_jwt = jwt_from(other_server).await;
    let (head, payload, signature) = {
        let mut parts = jwt.split('.');
        (
            parts.next().expect("header"),
            parts.next().expect("payload"),
            parts.next().expect("signature"),
        )
    };
    let tampered = format!("{head}.{payload}x.{signature}");
    for (what, token) in [
        ("garbage", "not-a-jwt"),
        ("three garbage parts", "a.b.c"),
        ("tampered payload", tampered.as_str()),
        ("signed by another server", other_jwt.as_str()),
        (
            "alg none",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpZGVudGlmaWVyIjoieCJ9.",
        ),
    ] {
        let (status, challenges, reached) =
            through(gateway, upstream, Method::GET, bearer(token)).await;
        assert_eq!(status, 401, "{}", context(what));
        let [challenge] = challenges.as_slice() else {
            panic!("{what}: one WWW-Authenticate header expected, got {challenges:?}");
        };
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(!reached, "{}", context(what));
    }

    // No bearer token: 403, upstream untouched.
    for (what, header) in [
        ("no Authorization header", None),
        (
            "Basic credentials",
            Some(HeaderValue::from_static("Basic dXNlcjpwYXNz")),
        ),
    ] {
        let (status, _, reached) = through(gateway, upstream, Method::GET, header).await;
        assert_eq!(status, 403, "{}", context(what));
        assert!(!reached, "{}", context(what));
    }

    // Nothing becomes a 5xx: odd headers and every method, with valid and invalid tokens.
    let long = "A".repeat(6000);
    let odd_headers: Vec<Option<HeaderValue>> = vec![
        Some(HeaderValue::from_static("Bearer")),
        Some(HeaderValue::from_static("Bearer ")),
        Some(HeaderValue::from_static("Bearer a b c")),
        Some(HeaderValue::from_str(&format!("bearer {jwt}")).expect("header")),
        Some(HeaderValue::from_str(&format!("Bearer  {jwt}")).expect("header")),
        Some(HeaderValue::from_str(&format!("Bearer {jwt} trailing")).expect("header")),
        Some(HeaderValue::from_bytes(b"Bearer \xff\xfe\x80").expect("header")),
        bearer(&long),
        Some(HeaderValue::from_static("Negotiate abc")),
    ];
    for header in odd_headers {
        let shown = format!("{header:?}");
        let (status, _, reached) = through(gateway, upstream, Method::GET, header).await;
        assert!(
            matches!(status, 200 | 401 | 403),
            "{}",
            context(&format!("{shown} -> {status}"))
        );
        assert_eq!(reached, status == 200, "{}", context(&shown));
    }
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND",
    ];
    for method in methods {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        for (token, expected) in [(jwt.as_str(), 200), ("not-a-jwt", 401)] {
            let (status, _, reached) =
                through(gateway, upstream, method.clone(), bearer(token)).await;
            assert_eq!(
                status,
                expected,
                "{}",
                context(&format!("{method} with {token:.12}"))
            );
            assert_eq!(reached, expected == 200, "{}", context(method.as_str()));
        }
    }
}

/// With the server gone, the gateway fails closed: an error, and the upstream is not reached.
async fn gateway_fails_closed(gateway: &Gateway, server: TestServer, upstream: &Upstream) {
    let jwt = jwt_from(&server).await;
    assert!(server.terminate().await);
    let (status, _, reached) = through(gateway, upstream, Method::GET, bearer(&jwt)).await;
    assert!(
        status >= 500,
        "{}: {status} without JWThenticator",
        gateway.name
    );
    assert!(!reached, "{}: the upstream was reached", gateway.name);
}

#[tokio::test]
async fn nginx_auth_request_lets_valid_tokens_through_and_answers_401_403() {
    let server = TestServer::builder(BINARY).start().await;
    let other_server = TestServer::builder(BINARY).start().await;
    let upstream = Upstream::start().await;
    let nginx = start_nginx(&server, &upstream).await;
    gateway_protects_the_upstream(&nginx, &server, &upstream, &other_server).await;
    gateway_fails_closed(&nginx, server, &upstream).await;
    nginx.stop().await;
}

#[tokio::test]
async fn caddy_forward_auth_lets_valid_tokens_through_and_answers_401_403() {
    let server = TestServer::builder(BINARY).start().await;
    let other_server = TestServer::builder(BINARY).start().await;
    let upstream = Upstream::start().await;
    let caddy = start_caddy(&server, &upstream).await;
    gateway_protects_the_upstream(&caddy, &server, &upstream, &other_server).await;
    gateway_fails_closed(&caddy, server, &upstream).await;
    caddy.stop().await;
}
