//! A service the client calls: counts requests, records what they carried, and answers 401
//! when told to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::routing::any;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::support::serve;

pub(crate) struct FakeTarget {
    addr: SocketAddr,
    state: Arc<TargetState>,
}

#[derive(Default)]
struct TargetState {
    requests: AtomicUsize,
    /// The `Authorization` header and body of each request, in order.
    seen: Mutex<Vec<(Option<String>, Bytes)>>,
    unauthorized_once: AtomicBool,
    unauthorized_always: AtomicBool,
    /// JWTs whose `seq` claim is below this are rejected with 401.
    min_valid_seq: AtomicU64,
}

impl FakeTarget {
    pub(crate) fn start() -> Self {
        let state = Arc::new(TargetState::default());
        let app = Router::new()
            .route("/{*path}", any(handle))
            .with_state(Arc::clone(&state));
        Self {
            addr: serve(app),
            state,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of each request, in order.
    pub(crate) fn authorizations(&self) -> Vec<Option<String>> {
        self.seen().into_iter().map(|(auth, _)| auth).collect()
    }

    /// The `Authorization` header and body of each request, in order.
    pub(crate) fn seen(&self) -> Vec<(Option<String>, Bytes)> {
        self.state.seen.lock().expect("not poisoned").clone()
    }

    /// The next request gets 401, later ones are judged as usual.
    pub(crate) fn answer_401_once(&self) {
        self.state.unauthorized_once.store(true, Ordering::SeqCst);
    }

    /// Every request gets 401.
    pub(crate) fn answer_401_always(&self) {
        self.state.unauthorized_always.store(true, Ordering::SeqCst);
    }

    /// Rejects every JWT issued so far (those with `seq` up to `latest_seq`), as after a
    /// signing key rotation the client has not heard about.
    pub(crate) fn reject_jwts_up_to(&self, latest_seq: u64) {
        self.state
            .min_valid_seq
            .store(latest_seq + 1, Ordering::SeqCst);
    }
}

/// The `seq` claim of the bearer JWT, read without verification.
fn bearer_seq(authorization: Option<&str>) -> Option<u64> {
    let token = authorization?.strip_prefix("Bearer ")?;
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    claims.get("seq")?.as_u64()
}

async fn handle(
    State(state): State<Arc<TargetState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let authorization = headers
        .get(AUTHORIZATION)
        .map(|value| value.to_str().expect("ascii header").to_owned());
    state
        .seen
        .lock()
        .expect("not poisoned")
        .push((authorization.clone(), body));

    if state.unauthorized_always.load(Ordering::SeqCst)
        || state.unauthorized_once.swap(false, Ordering::SeqCst)
    {
        return StatusCode::UNAUTHORIZED;
    }
    match bearer_seq(authorization.as_deref()) {
        Some(seq) if seq < state.min_valid_seq.load(Ordering::SeqCst) => StatusCode::UNAUTHORIZED,
        _ => StatusCode::OK,
    }
}
