//! What every test needs: fake servers, HTTP clients and a middleware factory.

use std::sync::{Arc, Mutex};

use jwthenticator_reqwest::{JwtAuthMiddleware, JwtAuthMiddlewareBuilder, Tokens};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use uuid::Uuid;

use crate::fake_target::FakeTarget;
use crate::fake_token_server::FakeTokenServer;

/// Serves `app` on loopback on the test's runtime, so the servers share the test's clock.
pub(crate) use jwthenticator_test_support::serve;

/// A plain client builder for loopback. No idle-pool timer: with a paused clock the runtime
/// jumps to the next timer whenever it waits, and a pool timer would make time run away.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(None)
}

/// A plain client for loopback, see [`http_client_builder`].
pub(crate) fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("http client")
}

/// Lets tasks of the test's runtime (background refreshes, the fake servers) run for a few
/// rounds; a paused clock moves on by a millisecond a round.
pub(crate) async fn settle() {
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
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

    /// A middleware for the fake server with its key and the test HTTP client, that attaches
    /// the JWT to requests to the target.
    pub(crate) fn middleware(&self) -> JwtAuthMiddlewareBuilder {
        self.middleware_without_key().with_key(self.server.key())
    }

    /// [`Setup::middleware`] without credentials.
    pub(crate) fn middleware_without_key(&self) -> JwtAuthMiddlewareBuilder {
        JwtAuthMiddleware::builder(self.server.url(), self.identifier)
            .with_http_client(http_client_builder())
            .with_allowed_hosts([self.target.addr().to_string()])
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
