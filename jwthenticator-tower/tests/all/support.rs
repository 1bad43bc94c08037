//! Keys, tokens and services shared by the tests. Keys are generated once per test binary.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, header::AUTHORIZATION};
use jsonwebtoken::{EncodingKey, crypto};
use jwthenticator_core::{Algorithm, Claims, Jwk, Jwks};
use jwthenticator_tower::{BuildRejection, JwtAuth};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt, service_fn};

pub(crate) const KID: &str = "key-1";
pub(crate) const ROTATED_KID: &str = "key-2";
pub(crate) const AUDIENCE: &str = "orders";
pub(crate) const ISSUER: &str = "https://auth.test";
pub(crate) const IDENTIFIER: &str = "0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1";

pub(crate) struct TestKey {
    pub(crate) signing: EncodingKey,
    pub(crate) public: RsaPublicKey,
}

impl TestKey {
    fn generate() -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("generates an RSA key");
        let pkcs8 = pair.as_der().expect("encodes the key as PKCS#8");
        let private = RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref()).expect("reads PKCS#8");
        let pkcs1 = private.to_pkcs1_der().expect("encodes PKCS#1");
        Self {
            signing: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            public: private.to_public_key(),
        }
    }

    pub(crate) fn jwk(&self, kid: &str) -> Jwk {
        Jwk::rsa(
            kid,
            "RS256",
            b64(self.public.n().to_bytes_be()),
            b64(self.public.e().to_bytes_be()),
        )
    }

    pub(crate) fn pem(&self) -> String {
        self.public
            .to_public_key_pem(LineEnding::LF)
            .expect("encodes SPKI PEM")
    }
}

pub(crate) struct Keys {
    /// Published as [`KID`].
    pub(crate) ours: TestKey,
    /// Published as [`ROTATED_KID`] once the issuer rotates.
    pub(crate) rotated: TestKey,
    /// Never published.
    pub(crate) attacker: TestKey,
}

pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ours: TestKey::generate(),
        rotated: TestKey::generate(),
        attacker: TestKey::generate(),
    })
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn now() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since_epoch.as_secs()).expect("fits")
}

/// The JWKS the issuer publishes before a rotation.
pub(crate) fn jwks() -> Jwks {
    Jwks {
        keys: vec![keys().ours.jwk(KID)],
    }
}

/// Claims the default test layer accepts.
pub(crate) fn claims() -> Value {
    json!({
        "token_id": "6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d",
        "identifier": IDENTIFIER,
        "iat": now(),
        "exp": now() + 900,
        "aud": [AUDIENCE],
        "iss": ISSUER,
    })
}

pub(crate) fn header(kid: &str) -> Value {
    json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
}

/// A token from raw header and payload JSON, signed with `signer`, or with a made-up signature.
pub(crate) fn forge(
    header: &Value,
    payload: &Value,
    signer: Option<(&EncodingKey, Algorithm)>,
) -> String {
    let message = format!(
        "{}.{}",
        b64(serde_json::to_vec(header).expect("header JSON")),
        b64(serde_json::to_vec(payload).expect("payload JSON"))
    );
    let signature = match signer {
        Some((key, alg)) => crypto::sign(message.as_bytes(), key, alg).expect("signs"),
        None => b64(b"not a signature"),
    };
    format!("{message}.{signature}")
}

/// A valid token, signed by `key` under `kid`, with `payload`.
pub(crate) fn signed(key: &TestKey, kid: &str, payload: &Value) -> String {
    forge(
        &header(kid),
        payload,
        Some((&key.signing, Algorithm::RS256)),
    )
}

/// A token the default test layer accepts.
pub(crate) fn valid_token() -> String {
    signed(&keys().ours, KID, &claims())
}

/// The default test layer: fixed keys, our audience and issuer.
pub(crate) fn layer() -> JwtAuth {
    JwtAuth::from_jwks(jwks())
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER)
}

pub(crate) fn request(token: Option<&str>) -> Request<String> {
    let mut request = Request::builder().uri("/orders");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(String::new()).expect("request")
}

/// Answers with the claims it finds in the request extensions as JSON, or `anonymous`.
pub(crate) async fn echo_claims(request: Request<String>) -> Result<Response<String>, Infallible> {
    let body = match request.extensions().get::<Claims>() {
        Some(claims) => serde_json::to_string(claims).expect("claims JSON"),
        None => "anonymous".to_owned(),
    };
    Ok(Response::new(body))
}

/// Sends one request through `layer` in front of [`echo_claims`].
pub(crate) async fn send<R>(
    layer: &JwtAuth<Claims, R>,
    request: Request<String>,
) -> Response<String>
where
    R: BuildRejection<String> + Send + 'static,
{
    ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(echo_claims))
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {})
}

/// The `WWW-Authenticate` header of a response, or "" without one.
pub(crate) fn challenge<B>(response: &Response<B>) -> &str {
    response
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map_or("", |value| value.to_str().expect("ASCII challenge"))
}

/// The message of the log line about stale keys.
pub(crate) const STALE_LOG: &str = "verifying tokens with keys past their refresh time";

/// The warnings of every test of the binary, from a subscriber installed once (a subscriber
/// per thread misses events when tests run in parallel); tests pick their own lines by the
/// JWKS URL in them.
#[derive(Clone)]
pub(crate) struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub(crate) fn global() -> Self {
        static LOGS: OnceLock<CapturedLogs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Self(Arc::default());
            let subscriber = tracing_subscriber::fmt()
                .with_writer(logs.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::WARN)
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            logs
        })
        .clone()
    }

    /// The lines that contain every one of `needles`.
    pub(crate) fn lines(&self, needles: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("lock"))
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A `metrics` recorder that counts `jwthenticator_tower_stale_key_uses_total` by its `jwks`
/// label; install it on the current thread with `metrics::set_default_local_recorder`.
#[cfg(feature = "metrics")]
#[derive(Default)]
pub(crate) struct StaleUseCounter(
    Mutex<std::collections::HashMap<String, Arc<std::sync::atomic::AtomicU64>>>,
);

#[cfg(feature = "metrics")]
impl StaleUseCounter {
    pub(crate) fn count(&self, jwks: &str) -> u64 {
        self.0
            .lock()
            .expect("lock")
            .get(jwks)
            .map_or(0, |count| count.load(std::sync::atomic::Ordering::SeqCst))
    }
}

#[cfg(feature = "metrics")]
impl metrics::Recorder for StaleUseCounter {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        if key.name() != "jwthenticator_tower_stale_key_uses_total" {
            return metrics::Counter::noop();
        }
        let jwks = key
            .labels()
            .find(|label| label.key() == "jwks")
            .map(|label| label.value().to_owned())
            .unwrap_or_default();
        let count = Arc::clone(self.0.lock().expect("lock").entry(jwks).or_default());
        metrics::Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}
