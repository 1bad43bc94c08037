//! Test apps on SQLite or PostgreSQL, each in a fresh database, and token forging.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use jwthenticator_server::{App, Config};
use poem::endpoint::BoxEndpoint;
use poem::test::TestClient;
use serde_json::Value;
use uuid::Uuid;

/// The fixtures every suite shares: a fresh database per test on either backend.
pub(crate) use jwthenticator_test_support::{
    Backend, TestDatabase as Database, postgres_admin_url,
};

/// A key long enough to register (`MIN_KEY_LENGTH` is 16 by default).
pub(crate) const KEY: &str = "a-device-secret-key";

/// The `KEY_HASH_SECRET` of every test app on PostgreSQL, where it is required.
pub(crate) const KEY_HASH_SECRET: &str = "a-test-key-hash-secret-of-32-characters-or-more";

/// One RSA key for the whole test binary (generation is the slow part).
pub(crate) fn private_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let key = jwthenticator_server::keys::generate_rsa(2048).expect("generate");
        jwthenticator_server::keys::private_key_pem(&key).expect("pem")
    })
}

/// A second key that the server does not know: the attacker's.
pub(crate) fn attacker_key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        let key = jwthenticator_server::keys::generate_rsa(2048).expect("generate");
        jwthenticator_server::keys::private_key_pem(&key).expect("pem")
    })
}

/// A configured app on a fresh database, with a client that calls it without a socket.
pub(crate) struct TestApp {
    pub(crate) app: App,
    pub(crate) client: TestClient<BoxEndpoint<'static>>,
    pub(crate) database: Database,
}

/// The test `KEY_HASH_SECRET` on PostgreSQL, where one is required, unless `args` configure
/// the key hashes themselves; nothing on SQLite, whose apps generate theirs beside the database
/// as the embedded default does.
pub(crate) fn key_hash_args(database_url: &str, args: &[&str]) -> &'static [&'static str] {
    let configured = args
        .iter()
        .any(|arg| arg.starts_with("--key-hash-secret") || arg.starts_with("--legacy-key-hashes"));
    if database_url.starts_with("postgres") && !configured {
        &["--key-hash-secret", KEY_HASH_SECRET]
    } else {
        &[]
    }
}

/// A test app's configuration: the test key, and on PostgreSQL the test `KEY_HASH_SECRET`
/// (SQLite apps generate theirs beside the database, as the embedded default does).
pub(crate) fn config(database_url: &str, args: &[&str]) -> Config {
    let mut argv = vec![
        "jwthenticator-server",
        "--database-url",
        database_url,
        "--rsa-private-key",
        private_key_pem(),
    ];
    argv.extend_from_slice(key_hash_args(database_url, args));
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).expect("valid test configuration")
}

/// The app on `database` with `args` (and a 1 s shutdown timeout).
async fn start_app(database: &Database, args: &[&str]) -> App {
    let args: Vec<&str> = ["--shutdown-timeout", "1"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    App::new(&config(&database.url, &args))
        .await
        .expect("app starts")
}

/// A server on a real loopback socket, stopped when dropped.
pub(crate) struct Served {
    pub(crate) address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _database: Database,
}

impl Served {
    /// Serves an app with `args` on 127.0.0.1 (a free port) on a fresh database.
    pub(crate) async fn start(backend: Backend, args: &[&str]) -> Self {
        let database = Database::new(backend).await;
        let app = start_app(&database, args).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.serve_until(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            stop: Some(stop),
            _database: database,
        }
    }
}

impl Served {
    /// Signals shutdown, as SIGTERM would (drop does the same).
    pub(crate) fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestApp {
    pub(crate) async fn new(backend: Backend) -> Self {
        Self::with_args(backend, &[]).await
    }

    pub(crate) async fn with_args(backend: Backend, args: &[&str]) -> Self {
        let database = Database::new(backend).await;
        Self::on(database, args).await
    }

    pub(crate) async fn on(database: Database, args: &[&str]) -> Self {
        install_log_capture();
        let app = start_app(&database, args).await;
        let client = TestClient::new(app.endpoint());
        Self {
            app,
            client,
            database,
        }
    }

    /// POSTs a JSON body and returns the status and the JSON answer.
    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.client.post(path).body_json(&body).send().await;
        let status = response.0.status().as_u16();
        (status, response.json().await.value().deserialize())
    }

    /// POSTs `/refresh` with `token` for `identifier`.
    pub(crate) async fn refresh(&self, token: &str, identifier: Uuid) -> (u16, Value) {
        self.post(
            "/refresh",
            serde_json::json!({"refresh_token": token, "identifier": identifier}),
        )
        .await
    }

    /// Registers a new random key for a new identifier; returns both.
    pub(crate) async fn register(&self) -> (String, Uuid) {
        let key = format!("key-{}", Uuid::new_v4());
        let identifier = Uuid::new_v4();
        let (status, _) = self
            .post(
                "/register_key",
                serde_json::json!({"key": key, "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 201);
        (key, identifier)
    }

    /// Registers a key and authenticates with it: (jwt, refresh token, identifier).
    pub(crate) async fn authenticate(&self) -> (String, String, Uuid) {
        let (key, identifier) = self.register().await;
        let (status, body) = self
            .post(
                "/authenticate",
                serde_json::json!({"key": key, "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["jwt"].as_str().expect("jwt").to_owned(),
            body["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
            identifier,
        )
    }

    /// The status and `WWW-Authenticate` of `/validate_request` with this Authorization header.
    pub(crate) async fn validate_request(
        &self,
        authorization: Option<&str>,
    ) -> (u16, Option<String>) {
        let mut request = self.client.get("/validate_request");
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await;
        let challenge = response
            .0
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().expect("ascii").to_owned());
        (response.0.status().as_u16(), challenge)
    }

    /// The `kid` the server signs with.
    pub(crate) fn kid(&self) -> String {
        self.app.state().keys().jwks().keys[0]
            .kid
            .clone()
            .expect("kid")
    }
}

thread_local! {
    /// Where the log lines of this thread go, while a test captures them.
    static CAPTURE: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

/// Installs, once for the test binary, the subscriber behind [`CapturedLogs`]: every level,
/// for threads that capture. One global subscriber installed before any app runs, rather than a
/// scoped one per test: tracing caches whether a callsite is enabled when the callsite is first
/// hit, and a callsite first hit by one test while another registers its scoped subscriber can
/// stay disabled for it.
fn install_log_capture() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        // Dynamic, so asked on every event: a plain `filter_fn` is asked once per callsite.
        let capturing = tracing_subscriber::filter::dynamic_filter_fn(|_, _| {
            CAPTURE.with(|capture| capture.borrow().is_some())
        });
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ThreadCapture)
            .with_filter(capturing);
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber");
    });
}

/// Every log line, at every level, that the app logs on this thread while the capture lives:
/// the whole app, since `#[tokio::test]` runtimes are current-thread.
pub(crate) struct CapturedLogs {
    lines: Arc<Mutex<Vec<u8>>>,
}

impl CapturedLogs {
    pub(crate) fn start() -> Self {
        install_log_capture();
        let lines = Arc::new(Mutex::new(Vec::new()));
        CAPTURE.with(|capture| *capture.borrow_mut() = Some(Arc::clone(&lines)));
        Self { lines }
    }

    /// What has been logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.lines.lock().expect("lock")).into_owned()
    }
}

impl Drop for CapturedLogs {
    fn drop(&mut self) {
        CAPTURE.with(|capture| capture.borrow_mut().take());
    }
}

/// Writes to the capture of the thread that logs.
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(lines) = capture.borrow().as_ref() {
                lines.lock().expect("lock").extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.payload` with a PEM RSA key and the given algorithm.
pub(crate) fn sign_rsa(
    pem: &str,
    alg: jsonwebtoken::Algorithm,
    header: &Value,
    payload: &str,
) -> String {
    sign_rsa_text(pem, alg, &header.to_string(), payload)
}

/// [`sign_rsa`] with the header as text, for headers a `Value` cannot hold.
pub(crate) fn sign_rsa_text(
    pem: &str,
    alg: jsonwebtoken::Algorithm,
    header: &str,
    payload: &str,
) -> String {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).expect("pkcs8");
    let der = key.to_pkcs1_der().expect("der");
    let message = format!("{}.{}", b64(header), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_rsa_der(der.as_bytes()),
        alg,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

/// HS256 over `header.payload` with an arbitrary secret (the HS/RS confusion attack).
pub(crate) fn sign_hmac(secret: &[u8], header: &Value, payload: &str) -> String {
    let message = format!("{}.{}", b64(header.to_string()), b64(payload));
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret).expect("secret"),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("sign");
    format!("{message}.{signature}")
}

/// Valid claims for now, as JSON text, for forged tokens.
pub(crate) fn claims_json(exp_offset: i64) -> String {
    let now = chrono::Utc::now().timestamp();
    serde_json::json!({
        "token_id": Uuid::new_v4(),
        "identifier": Uuid::new_v4(),
        "iat": now,
        "exp": now + exp_offset,
    })
    .to_string()
}

/// Generates a `mod $name { sqlite, postgres }` pair of tests running `$name(backend)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    )*};
}
