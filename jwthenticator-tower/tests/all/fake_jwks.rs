//! A JWKS server on loopback that counts its fetches and can be told to fail, to grow, to
//! redirect, or to insist on a header; and one that never answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jwthenticator_core::Jwks;
use tokio::net::TcpListener;

/// The header a custom client sends, see [`FakeJwks::fetches_with_client_header`].
pub(crate) const CLIENT_HEADER: &str = "x-jwks-client";

pub(crate) struct FakeJwks {
    addr: SocketAddr,
    state: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    body: Mutex<String>,
    cache_control: Mutex<Option<String>>,
    down: AtomicBool,
    chunked: AtomicBool,
    /// Where `/moved` redirects to (307).
    redirect_to: Mutex<String>,
    fetches: AtomicUsize,
    fetches_with_client_header: AtomicUsize,
    other_requests: AtomicUsize,
}

impl FakeJwks {
    /// Serves `jwks` at `/jwks` and `/prefix/jwks` on an ephemeral loopback port.
    pub(crate) async fn start(jwks: &Jwks) -> Self {
        let state = Arc::new(Shared::default());
        *state.body.lock().expect("lock") = serde_json::to_string(jwks).expect("JWKS JSON");
        let app = Router::new()
            .route("/jwks", get(serve_jwks))
            .route("/prefix/jwks", get(serve_jwks))
            .route("/moved", get(redirect))
            .fallback(count_other)
            .with_state(Arc::clone(&state));
        let addr = jwthenticator_test_support::serve(app);
        Self { addr, state }
    }

    /// The server's base URL, without the `/jwks` path.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn jwks_url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    /// `/moved`, which answers 307 to the location given to [`FakeJwks::redirect_to`].
    pub(crate) fn moved_url(&self) -> String {
        format!("http://{}/moved", self.addr)
    }

    pub(crate) fn redirect_to(&self, location: &str) {
        location.clone_into(&mut self.state.redirect_to.lock().expect("lock"));
    }

    pub(crate) fn publish(&self, jwks: &Jwks) {
        self.set_body(serde_json::to_string(jwks).expect("JWKS JSON"));
    }

    pub(crate) fn set_body(&self, body: String) {
        *self.state.body.lock().expect("lock") = body;
    }

    pub(crate) fn set_cache_control(&self, value: &str) {
        *self.state.cache_control.lock().expect("lock") = Some(value.to_owned());
    }

    /// Answer 503 to every fetch (they are still counted).
    pub(crate) fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Send the body in small chunks, without `Content-Length`.
    pub(crate) fn set_chunked(&self, chunked: bool) {
        self.state.chunked.store(chunked, Ordering::SeqCst);
    }

    pub(crate) fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    pub(crate) fn fetches_with_client_header(&self) -> usize {
        self.state.fetches_with_client_header.load(Ordering::SeqCst)
    }

    /// Requests for any other path than the JWKS.
    pub(crate) fn other_requests(&self) -> usize {
        self.state.other_requests.load(Ordering::SeqCst)
    }

    /// Lets the background tasks run for a few rounds (paused time moves on by a millisecond
    /// per round).
    pub(crate) async fn settle(&self) {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Lets the runtime run (paused time moves on by a millisecond per round) until `done`
    /// holds, for at most 1,000 rounds.
    pub(crate) async fn wait_until(&self, done: impl Fn(&Self) -> bool) {
        for _ in 0..1_000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

async fn serve_jwks(State(state): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    state.fetches.fetch_add(1, Ordering::SeqCst);
    if headers.contains_key(CLIENT_HEADER) {
        state
            .fetches_with_client_header
            .fetch_add(1, Ordering::SeqCst);
    }
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let body = state.body.lock().expect("lock").clone();
    let body = if state.chunked.load(Ordering::SeqCst) {
        let chunks: Vec<Result<String, std::io::Error>> = body
            .as_bytes()
            .chunks(512)
            .map(|chunk| Ok(String::from_utf8_lossy(chunk).into_owned()))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    if let Some(value) = state.cache_control.lock().expect("lock").as_deref() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_str(value).expect("header value"),
        );
    }
    response
}

async fn redirect(State(state): State<Arc<Shared>>) -> Response {
    let location = state.redirect_to.lock().expect("lock").clone();
    (
        StatusCode::TEMPORARY_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

/// A JWKS URL on loopback whose server accepts connections and never answers; the count of
/// accepted connections.
pub(crate) async fn hanging_jwks_url() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a loopback port");
    let addr = listener.local_addr().expect("local address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (format!("http://{addr}/jwks"), accepted)
}

async fn count_other(State(state): State<Arc<Shared>>) -> StatusCode {
    state.other_requests.fetch_add(1, Ordering::SeqCst);
    StatusCode::NOT_FOUND
}
