//! A scriptable JWThenticator server on loopback that counts its calls.
//!
//! It speaks the real server's contract (`/authenticate`, `/refresh`, `/register_key`,
//! `/is_key_registered`, also under the `/prefix` path) with the core wire types, and issues
//! unsigned-looking JWTs whose payload is a core `Claims` plus a `seq` number. Its token routes
//! can also be made to hang, to answer too much, to redirect, or to answer 401 as a gateway in
//! front of the server would.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jwthenticator_core::{
    AuthRequest, BoolResponse, Claims, ErrorResponse, KeyRequest, RefreshRequest,
    RegisterKeyRequest, TokenResponse,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::serve;

pub(crate) struct FakeTokenServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
}

/// What the token routes can be told to do instead of answering.
#[derive(Debug, Clone)]
pub(crate) enum Misbehaviour {
    /// Accept the request and never answer.
    Hang,
    /// Answer 200 with a megabyte, streamed without `Content-Length`.
    Oversize,
    /// Answer 307 to this URL.
    Redirect(String),
    /// Answer 401 with an HTML page, as nginx in front of the server would.
    GatewayUnauthorized,
}

struct ServerState {
    identifier: Uuid,
    key: String,
    authenticate_calls: AtomicUsize,
    refresh_calls: AtomicUsize,
    reject_key: AtomicBool,
    reject_refresh: AtomicBool,
    rotate_refresh_tokens: AtomicBool,
    jwt_lifetime_secs: AtomicI64,
    refresh_delay_ms: AtomicU64,
    authenticate_failure: Mutex<Option<(StatusCode, ErrorResponse)>>,
    /// How the token routes misbehave, if they do.
    misbehaviour: Mutex<Option<Misbehaviour>>,
    jwts_issued: AtomicU64,
    refresh_tokens_issued: AtomicU64,
    valid_refresh_tokens: Mutex<HashSet<String>>,
    refresh_tokens_received: Mutex<Vec<String>>,
    registered_keys: Mutex<HashSet<String>>,
    register_failure: Mutex<Option<(StatusCode, Option<ErrorResponse>)>>,
}

impl FakeTokenServer {
    /// A server that knows one key for `identifier` and issues JWTs valid for an hour.
    pub(crate) fn start(identifier: Uuid) -> Self {
        let state = Arc::new(ServerState {
            identifier,
            key: format!("key-{}", Uuid::new_v4()),
            authenticate_calls: AtomicUsize::new(0),
            refresh_calls: AtomicUsize::new(0),
            reject_key: AtomicBool::new(false),
            reject_refresh: AtomicBool::new(false),
            rotate_refresh_tokens: AtomicBool::new(false),
            jwt_lifetime_secs: AtomicI64::new(3600),
            refresh_delay_ms: AtomicU64::new(0),
            authenticate_failure: Mutex::new(None),
            misbehaviour: Mutex::new(None),
            jwts_issued: AtomicU64::new(0),
            refresh_tokens_issued: AtomicU64::new(0),
            valid_refresh_tokens: Mutex::new(HashSet::new()),
            refresh_tokens_received: Mutex::new(Vec::new()),
            registered_keys: Mutex::new(HashSet::new()),
            register_failure: Mutex::new(None),
        });
        let routes = Router::new()
            .route("/authenticate", post(authenticate))
            .route("/refresh", post(refresh))
            .route("/register_key", post(register_key))
            .route("/is_key_registered", post(is_key_registered))
            .with_state(Arc::clone(&state));
        let app = Router::new().merge(routes.clone()).nest("/prefix", routes);
        Self {
            addr: serve(app),
            state,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The server under a path prefix, as with the real server's `URL_PREFIX`.
    pub(crate) fn prefixed_url(&self) -> String {
        format!("http://{}/prefix", self.addr)
    }

    pub(crate) fn key(&self) -> String {
        self.state.key.clone()
    }

    pub(crate) fn authenticate_calls(&self) -> usize {
        self.state.authenticate_calls.load(Ordering::SeqCst)
    }

    pub(crate) fn refresh_calls(&self) -> usize {
        self.state.refresh_calls.load(Ordering::SeqCst)
    }

    /// How many JWTs were issued; the `seq` claim of the latest one.
    pub(crate) fn jwts_issued(&self) -> u64 {
        self.state.jwts_issued.load(Ordering::SeqCst)
    }

    /// The refresh tokens `/refresh` was called with, in order.
    pub(crate) fn refresh_tokens_received(&self) -> Vec<String> {
        self.state
            .refresh_tokens_received
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// A refresh token the server accepts, as if from an earlier session.
    pub(crate) fn issue_refresh_token(&self) -> String {
        self.state.new_refresh_token()
    }

    /// A JWT for the identifier expiring `lifetime_secs` from now (negative: already expired).
    pub(crate) fn issue_jwt(&self, lifetime_secs: i64) -> String {
        self.state.new_jwt(lifetime_secs)
    }

    pub(crate) fn reject_key(&self) {
        self.state.reject_key.store(true, Ordering::SeqCst);
    }

    pub(crate) fn reject_refresh(&self) {
        self.state.reject_refresh.store(true, Ordering::SeqCst);
    }

    pub(crate) fn rotate_refresh_tokens(&self) {
        self.state
            .rotate_refresh_tokens
            .store(true, Ordering::SeqCst);
    }

    pub(crate) fn set_jwt_lifetime(&self, lifetime: Duration) {
        let secs = i64::try_from(lifetime.as_secs()).expect("small lifetime");
        self.state.jwt_lifetime_secs.store(secs, Ordering::SeqCst);
    }

    /// Makes `/refresh` take this long (on the test's clock), so concurrent requests pile up
    /// behind it.
    pub(crate) fn set_refresh_delay(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).expect("small delay");
        self.state.refresh_delay_ms.store(millis, Ordering::SeqCst);
    }

    /// Makes `/authenticate` answer `status` with a JSON error body.
    pub(crate) fn fail_authenticate(&self, status: StatusCode, message: &str) {
        *self
            .state
            .authenticate_failure
            .lock()
            .expect("not poisoned") = Some((status, ErrorResponse::new("test_error", message)));
    }

    /// Makes `/authenticate` and `/refresh` misbehave, or (`None`) behave again.
    pub(crate) fn misbehave(&self, misbehaviour: Option<Misbehaviour>) {
        *self.state.misbehaviour.lock().expect("not poisoned") = misbehaviour;
    }

    /// Makes `/register_key` answer `status`, with a JSON error body when `message` is given.
    pub(crate) fn fail_register_key(&self, status: StatusCode, message: Option<&str>) {
        *self.state.register_failure.lock().expect("not poisoned") = Some((
            status,
            message.map(|message| ErrorResponse::new("invalid_request", message)),
        ));
    }
}

impl ServerState {
    fn new_jwt(&self, lifetime_secs: i64) -> String {
        let seq = self.jwts_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let now = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_secs(),
        )
        .expect("fits");
        let mut extra = serde_json::Map::new();
        extra.insert("seq".to_owned(), json!(seq));
        let claims = Claims {
            token_id: Uuid::new_v4(),
            identifier: self.identifier,
            iat: now,
            exp: now + lifetime_secs,
            aud: None,
            iss: None,
            nbf: None,
            extra,
        };
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"test","typ":"JWT"}"#);
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signature = URL_SAFE_NO_PAD.encode("not-a-real-signature");
        format!("{header}.{payload}.{signature}")
    }

    fn new_refresh_token(&self) -> String {
        let n = self.refresh_tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("refresh-{n}");
        self.valid_refresh_tokens
            .lock()
            .expect("not poisoned")
            .insert(token.clone());
        token
    }

    fn lifetime(&self) -> i64 {
        self.jwt_lifetime_secs.load(Ordering::SeqCst)
    }
}

/// The server's refusal, with the error code of the route (`invalid_key` or
/// `invalid_refresh_token`).
fn unauthorized(code: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(ErrorResponse::new(code, "rejected")),
    )
        .into_response()
}

/// The answer of a misbehaving token route, if it misbehaves.
async fn misbehaviour(state: &ServerState) -> Option<Response> {
    let misbehaviour = state.misbehaviour.lock().expect("not poisoned").clone()?;
    Some(match misbehaviour {
        Misbehaviour::Hang => std::future::pending().await,
        Misbehaviour::Oversize => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let chunks = std::iter::repeat_n(chunk, 16).map(Ok::<_, std::io::Error>);
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
        Misbehaviour::Redirect(location) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Misbehaviour::GatewayUnauthorized => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>401 Authorization Required</h1></body></html>",
        )
            .into_response(),
    })
}

async fn authenticate(
    State(state): State<Arc<ServerState>>,
    Json(request): Json<AuthRequest>,
) -> Response {
    state.authenticate_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(response) = misbehaviour(&state).await {
        return response;
    }
    let failure = state
        .authenticate_failure
        .lock()
        .expect("not poisoned")
        .clone();
    if let Some((status, body)) = failure {
        return (status, Json(body)).into_response();
    }
    if state.reject_key.load(Ordering::SeqCst)
        || request.key != state.key
        || request.identifier != state.identifier
    {
        return unauthorized("invalid_key");
    }
    Json(TokenResponse {
        jwt: state.new_jwt(state.lifetime()),
        refresh_token: Some(state.new_refresh_token()),
    })
    .into_response()
}

async fn refresh(
    State(state): State<Arc<ServerState>>,
    Json(request): Json<RefreshRequest>,
) -> Response {
    state.refresh_calls.fetch_add(1, Ordering::SeqCst);
    state
        .refresh_tokens_received
        .lock()
        .expect("not poisoned")
        .push(request.refresh_token.clone());
    if let Some(response) = misbehaviour(&state).await {
        return response;
    }
    let delay = state.refresh_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let known = state
        .valid_refresh_tokens
        .lock()
        .expect("not poisoned")
        .contains(&request.refresh_token);
    if state.reject_refresh.load(Ordering::SeqCst)
        || !known
        || request.identifier != state.identifier
    {
        return unauthorized("invalid_refresh_token");
    }
    let rotated = if state.rotate_refresh_tokens.load(Ordering::SeqCst) {
        state
            .valid_refresh_tokens
            .lock()
            .expect("not poisoned")
            .remove(&request.refresh_token);
        Some(state.new_refresh_token())
    } else {
        None
    };
    Json(TokenResponse {
        jwt: state.new_jwt(state.lifetime()),
        refresh_token: rotated,
    })
    .into_response()
}

async fn register_key(
    State(state): State<Arc<ServerState>>,
    Json(request): Json<RegisterKeyRequest>,
) -> Response {
    let failure = state.register_failure.lock().expect("not poisoned").clone();
    match failure {
        Some((status, Some(body))) => (status, Json(body)).into_response(),
        Some((status, None)) => (status, "no JSON here").into_response(),
        None => {
            state
                .registered_keys
                .lock()
                .expect("not poisoned")
                .insert(request.key);
            (StatusCode::CREATED, Json(BoolResponse::TRUE)).into_response()
        }
    }
}

async fn is_key_registered(
    State(state): State<Arc<ServerState>>,
    Json(request): Json<KeyRequest>,
) -> Json<BoolResponse> {
    let registered = state
        .registered_keys
        .lock()
        .expect("not poisoned")
        .contains(&request.key);
    Json(BoolResponse::new(registered))
}
