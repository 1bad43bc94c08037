//! The JWThenticator server: clients registered with a secret key and a UUID authenticate for a
//! short-lived signed JWT and a refresh token; gateways validate tokens at `/validate_request`
//! or verify them locally against `/jwks`.
//!
//! `main.rs` only parses the configuration and calls [`run`]; [`App`] builds the same endpoint
//! for tests, which call it without a socket.
//!
//! ```no_run
//! use clap::Parser;
//! use jwthenticator_server::{App, Config};
//!
//! # async fn example() -> anyhow::Result<()> {
//! let config = Config::parse_from(["jwthenticator-server", "--database-url", "sqlite://auth.db"]);
//! let app = App::new(&config).await?;
//! let client = poem::test::TestClient::new(app.endpoint());
//! client.get("/health").send().await.assert_status_is_ok();
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod config;
pub mod db_deadline;
pub mod key_hash;
pub mod keys;
pub mod store;

mod api;
mod error;
mod flows;
mod middleware;
mod private_files;
pub mod security;
mod serve;
pub mod shared_keys;
mod state;
mod telemetry;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};

pub use config::{Config, Database};
pub use serve::ConnectionConfig;
pub use state::{ActiveKeys, AppState};

use api::{ExternalApi, GeneralApi, InternalApi};
use key_hash::KeyHasher;
use keys::MissingKeyFiles;
use middleware::{MaxBodySize, RouteLabels, observe};
use security::{InternalAccess, InternalGuard};
use shared_keys::SharedKeys;

/// How often expired keys and refresh tokens are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// A configured server: database opened and migrated, keys loaded.
#[derive(Debug)]
pub struct App {
    state: Arc<AppState>,
    prefix: String,
    external: bool,
    internal: bool,
    /// `host:port` of the separate internal listener, when configured.
    internal_address: Option<String>,
    admin_token: Option<config::Secret>,
    max_body_size: usize,
    connections: ConnectionConfig,
    /// The keys shared through the database, kept current while serving.
    shared_keys: Option<(SharedKeys, Config)>,
}

impl App {
    /// Opens the database (creating and migrating it as configured) and loads the keys.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let prefix = config.url_prefix()?;
        if let Some(problem) = config.security.problems().into_iter().next() {
            anyhow::bail!(problem);
        }
        for warning in config.security.warnings() {
            tracing::warn!("insecure setting: {warning}");
        }
        let database = config.database()?;
        let key_file = match &database {
            Database::Sqlite {
                file: Some(file), ..
            } => Some(embedded_key_path(file)),
            _ => None,
        };
        let store = store::connect(
            &database,
            config.db_max_connections,
            config.db_deadline.limit(),
        )
        .await
        .context("opening the database")?;
        let key_hasher = KeyHasher::open(&config.key_hashing, &database, store.as_ref())
            .await
            .context("setting up the key hashes")?;
        telemetry::handle();
        let (keys, shared_keys) = match (&database, &config.shared_keys.key_encryption_secret) {
            (Database::Postgres { url, .. }, Some(secret)) if !config.key_configured() => {
                let shared =
                    SharedKeys::connect(url.expose(), secret, config, store.as_ref()).await?;
                let keys = shared
                    .refresh(config)
                    .await
                    .context("loading the shared signing keys")?;
                (keys, Some(shared))
            }
            _ => {
                let keys = keys::load(
                    config,
                    key_file.as_deref(),
                    MissingKeyFiles::for_database(&database),
                )
                .context("loading the signing key")?;
                let key_path = config
                    .rsa_private_key_path
                    .as_deref()
                    .or(key_file.as_deref());
                let created = key_path
                    .and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                    .unwrap_or_else(std::time::SystemTime::now);
                (ActiveKeys::new(config, keys, created), None)
            }
        };
        let state = AppState::new(config, store, key_hasher, keys);
        Ok(Self {
            state: Arc::new(state),
            shared_keys: shared_keys.map(|shared| (shared, config.clone())),
            prefix,
            external: !config.disable_external_api,
            internal: !config.disable_internal_api,
            internal_address: config
                .security
                .internal_port
                .map(|port| format!("{}:{port}", config.security.internal_host)),
            admin_token: config.security.admin_token.clone(),
            max_body_size: config.max_body_size,
            connections: config.connections.clone(),
        })
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The routes of the main listener under the prefix: every enabled route, less the
    /// internal ones when they have a listener of their own; with the OpenAPI document at
    /// `/openapi.json` and `/openapi.yaml`, JSON errors and request logging.
    pub fn endpoint(&self) -> BoxEndpoint<'static> {
        self.routes(
            self.external,
            self.internal && self.internal_address.is_none(),
            false,
        )
    }

    /// The routes of the separate internal listener (`INTERNAL_PORT`), if there is one:
    /// `/health`, `/jwks` and the internal API.
    pub fn internal_endpoint(&self) -> Option<BoxEndpoint<'static>> {
        self.internal_address
            .as_ref()
            .map(|_| self.routes(false, self.internal, true))
    }

    /// The routes of one listener; `own_listener` when it serves the internal API alone.
    fn routes(&self, external: bool, internal: bool, own_listener: bool) -> BoxEndpoint<'static> {
        let prefix = &self.prefix;
        let routes = match (external, internal) {
            (true, true) => mount(openapi_service(
                (GeneralApi, ExternalApi, InternalApi),
                prefix,
            )),
            (true, false) => mount(openapi_service((GeneralApi, ExternalApi), prefix)),
            (false, true) => mount(openapi_service((GeneralApi, InternalApi), prefix)),
            (false, false) => mount(openapi_service(GeneralApi, prefix)),
        };
        let routes = if internal {
            routes.at("/metrics", telemetry::scrape)
        } else {
            routes
        };
        let routes = if prefix.is_empty() {
            routes
        } else {
            Route::new().nest(prefix, routes)
        };
        let validate_request = format!("{prefix}/validate_request");
        let labels = RouteLabels::new(prefix, documented_paths());
        let guard = InternalGuard::new(
            internal_paths().map(|path| format!("{prefix}{path}")),
            InternalAccess::new(self.admin_token.as_ref(), own_listener),
        );
        routes
            .before(move |mut req: poem::Request| {
                let checked = guard.check(&req);
                answer_any_method(&mut req, &validate_request);
                async move { checked.map(|()| req) }
            })
            .data(self.state.clone())
            .data(MaxBodySize(self.max_body_size))
            .around(move |ep, req| observe(ep, req, labels.clone()))
            .boxed()
    }

    /// Serves on `listener` (and on the internal listener, when configured) until
    /// SIGTERM/SIGINT, then drains in-flight requests for at most `shutdown_timeout`. Expired
    /// rows are purged every hour meanwhile.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<()> {
        self.serve_until(listener, shutdown_signal(), shutdown_timeout)
            .await
    }

    /// [`App::serve`] until `shutdown` completes instead of a signal.
    pub async fn serve_until(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        shutdown_timeout: Duration,
    ) -> anyhow::Result<()> {
        // Bound before anything is spawned, so a failure leaves nothing running.
        let internal = match (self.internal_endpoint(), &self.internal_address) {
            (Some(endpoint), Some(address)) => {
                let listener = tokio::net::TcpListener::bind(address.as_str())
                    .await
                    .with_context(|| format!("binding the internal listener {address}"))?;
                Some((listener, endpoint))
            }
            _ => None,
        };
        let store = self.state.store.clone();
        let purger = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PURGE_INTERVAL);
            loop {
                ticks.tick().await;
                match store.purge_expired(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(rows) => {
                        tracing::info!(rows, "purged expired keys and refresh tokens");
                        metrics::counter!("jwthenticator_purged_rows_total").increment(rows);
                    }
                    Err(err) => tracing::warn!(error = %err, "purging expired rows failed"),
                }
            }
        });
        let upkeep = tokio::spawn(telemetry::upkeep());
        let state = self.state.clone();
        let key_refresher = self
            .shared_keys
            .take()
            .map(|(shared, config)| tokio::spawn(shared_keys::keep_current(shared, config, state)));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let main = serve::serve(
            listener,
            self.endpoint(),
            &self.connections,
            until_stopped(stopped.clone()),
            shutdown_timeout,
        );
        let result = match internal {
            Some((listener, endpoint)) => {
                let internal = serve::serve(
                    listener,
                    endpoint,
                    &self.connections,
                    until_stopped(stopped),
                    shutdown_timeout,
                );
                tokio::try_join!(main, internal).map(|_| ())
            }
            None => main.await,
        };
        purger.abort();
        upkeep.abort();
        if let Some(refresher) = key_refresher {
            refresher.abort();
        }
        result.context("serving")
    }
}

/// Methods the `/validate_request` operation is declared with.
const VALIDATE_REQUEST_METHODS: &[poem::http::Method] = &[
    poem::http::Method::GET,
    poem::http::Method::POST,
    poem::http::Method::PUT,
    poem::http::Method::PATCH,
    poem::http::Method::DELETE,
    poem::http::Method::HEAD,
    poem::http::Method::OPTIONS,
];

/// Gateways may forward any method (`PROPFIND`, `TRACE`, ...) to `/validate_request`; it
/// answers them all, as a GET, since only the `Authorization` header matters.
fn answer_any_method(req: &mut poem::Request, validate_request: &str) {
    if req.uri().path() == validate_request && !VALIDATE_REQUEST_METHODS.contains(req.method()) {
        req.set_method(poem::http::Method::GET);
    }
}

/// The generated signing key of the embedded database lives beside it.
pub(crate) fn embedded_key_path(database_file: &std::path::Path) -> PathBuf {
    beside_database(database_file, ".signing-key.pem")
}

/// A file beside the embedded database: its name with `suffix` appended.
pub(crate) fn beside_database(database_file: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = database_file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn openapi_service<T: OpenApi>(apis: T, prefix: &str) -> OpenApiService<T, ()> {
    OpenApiService::new(apis, "JWThenticator", env!("CARGO_PKG_VERSION"))
        .description(
            "Key-to-JWT authentication for services and IoT fleets: register a key, exchange it \
             for a short-lived JWT and a refresh token, validate tokens at the gateway or \
             locally against the JWKS.",
        )
        .server(if prefix.is_empty() { "/" } else { prefix })
}

/// The API with its OpenAPI document (`/openapi.json`, `/openapi.yaml`) and Swagger UI at
/// `/docs`, served from the binary (no CDN).
fn mount<T: OpenApi + 'static>(service: OpenApiService<T, ()>) -> Route {
    Route::new()
        .at("/openapi.json", service.spec_endpoint())
        .at("/openapi.yaml", service.spec_endpoint_yaml())
        .nest("/docs", service.swagger_ui())
        .nest("/", service)
}

/// The path of every documented operation (both groups), without the prefix.
fn documented_paths() -> impl Iterator<Item = String> {
    <(GeneralApi, ExternalApi, InternalApi) as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| path.path)
}

/// The paths of the internal group, which one guard covers: every operation of `InternalApi`
/// (so a new one cannot be forgotten) and `/metrics`.
fn internal_paths() -> impl Iterator<Item = String> {
    <InternalApi as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| path.path)
        .chain(std::iter::once("/metrics".to_owned()))
}

/// The OpenAPI document of every route (both groups enabled), as committed in `openapi.yaml`.
pub fn openapi_yaml() -> String {
    openapi_service((GeneralApi, ExternalApi, InternalApi), "").spec_yaml()
}

/// The same document as JSON, as served at `/openapi.json`.
pub fn openapi_json() -> String {
    openapi_service((GeneralApi, ExternalApi, InternalApi), "").spec()
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// Logs to stderr: plain text, or JSON lines with `LOG_FORMAT=json`; the level comes from
/// `RUST_LOG` (default `info`).
pub fn init_tracing(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Json => builder.json().init(),
        config::LogFormat::Plain => builder.init(),
    }
}

/// Runs the server as configured until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = App::new(&config).await?;
    let address = format!("{}:{}", config.host, config.port);
    tracing::info!(
        %address,
        prefix = %app.prefix,
        external_api = app.external,
        internal_api = app.internal,
        internal_address = app.internal_address.as_deref().unwrap_or("(same listener)"),
        admin_token = app.admin_token.is_some(),
        signing = app.state.keys().signer().is_some(),
        "listening"
    );
    if app.internal && app.admin_token.is_none() && app.internal_address.is_none() {
        tracing::info!(
            "the internal API and /metrics answer loopback clients only; set ADMIN_TOKEN or \
             INTERNAL_PORT to serve them to others"
        );
    }
    let listener = tokio::net::TcpListener::bind(address.as_str())
        .await
        .with_context(|| format!("binding {address}"))?;
    app.serve(listener, Duration::from_secs(config.shutdown_timeout))
        .await
}
