//! What every test needs: a runtime for the fake servers, HTTP clients and a middleware factory.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use jwthenticator_reqwest::{JwtAuthMiddleware, JwtAuthMiddlewareBuilder, Tokens};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use uuid::Uuid;

use crate::fake_target::FakeTarget;
use crate::fake_token_server::FakeTokenServer;

/// The fake servers run on their own runtime, on real time, so that tests may pause the
/// `tokio::time` clock of theirs without freezing the servers.
fn server_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime")
    })
}

/// Serves `app` on a fresh loopback port for the rest of the test binary's life.
pub(crate) fn serve(app: axum::Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("non-blocking");
    let addr = listener.local_addr().expect("local addr");
    server_runtime().spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        axum::serve(listener, app).await.expect("serve");
    });
    addr
}

/// A plain client for loopback. No idle-pool timer: with a paused clock the runtime jumps to the
/// next timer whenever it waits for I/O, and a pool timer would make time run away.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(None)
        .build()
        .expect("http client")
}

/// A token server, a target service and the identifier of the client under test.
pub(crate) struct Setup {
    pub(crate) server: FakeTokenServer,
    pub(crate) target: FakeTarget,
    pub(crate) identifier: Uuid,
}

impl Setup {
    pub(crate) fn new() -> Self {
        let identifier = Uuid::new_v4();
        Self {
            server: FakeTokenServer::start(identifier),
            target: FakeTarget::start(),
            identifier,
        }
    }

    /// A middleware for the fake server with its key and the test HTTP client.
    pub(crate) fn middleware(&self) -> JwtAuthMiddlewareBuilder {
        JwtAuthMiddleware::new(self.server.url(), self.identifier)
            .with_key(self.server.key())
            .with_http_client(http_client())
    }

    /// A client with `middleware` in front of the test HTTP client.
    pub(crate) fn client(&self, middleware: JwtAuthMiddleware) -> ClientWithMiddleware {
        ClientBuilder::new(http_client()).with(middleware).build()
    }

    /// A client with the default middleware.
    pub(crate) fn default_client(&self) -> ClientWithMiddleware {
        self.client(self.middleware().build().expect("middleware builds"))
    }
}

/// The JWT and refresh token a listener was told of.
pub(crate) type TokenPair = (Option<String>, Option<String>);

/// What a token listener was told, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recorded(Arc<Mutex<Vec<TokenPair>>>);

impl Recorded {
    /// A listener that records into this.
    pub(crate) fn listener(&self) -> impl Fn(&Tokens<'_>) + Send + Sync + 'static {
        let recorded = Arc::clone(&self.0);
        move |tokens: &Tokens<'_>| {
            recorded.lock().expect("not poisoned").push((
                tokens.jwt().map(str::to_owned),
                tokens.refresh_token().map(str::to_owned),
            ));
        }
    }

    pub(crate) fn calls(&self) -> Vec<TokenPair> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// The `AuthError` inside a middleware error, if that is what it holds.
pub(crate) fn auth_error(
    err: &reqwest_middleware::Error,
) -> Option<&jwthenticator_reqwest::AuthError> {
    match err {
        reqwest_middleware::Error::Middleware(err) => err.downcast_ref(),
        reqwest_middleware::Error::Reqwest(_) => None,
    }
}
