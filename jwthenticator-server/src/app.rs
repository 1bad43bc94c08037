//! The server as a whole: built from its parts (settings, a store, keys), its routes on one or
//! two listeners, and serving them with the background tasks (purging expired rows, keeping
//! shared keys current, telemetry upkeep) until shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::endpoint::BoxEndpoint;
use poem::{EndpointExt, Route};
use poem_openapi::{OpenApi, OpenApiService};

use crate::api::{ExternalApi, GeneralApi, InternalApi};
use crate::config::ConnectionConfig;
use crate::config::{Config, ConfigError, Secret};
use crate::key_hash::KeyHasher;
use crate::keys::{KeySource, SharedKeySettings, SharedKeys};
use crate::middleware::{MaxBodySize, RouteLabels, observe};
use crate::security::{InternalAccess, InternalGuard};
use crate::serve;
use crate::state::{AppState, IssueSettings};
use crate::store::{self, Store};
use crate::telemetry;

/// How often expired keys and refresh tokens are deleted.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// How the server serves, derived once from the configuration.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// `URL_PREFIX`, normalised: empty, or starting with `/` and not ending with one.
    pub prefix: String,
    /// Whether the external API is served.
    pub external: bool,
    /// Whether the internal API and `/metrics` are served.
    pub internal: bool,
    /// `host:port` of the separate internal listener, when configured.
    pub internal_address: Option<String>,
    /// `ADMIN_TOKEN`.
    pub admin_token: Option<Secret>,
    /// `MAX_BODY_SIZE`.
    pub max_body_size: usize,
    /// Connection deadlines and limits.
    pub connections: ConnectionConfig,
    /// `SHUTDOWN_TIMEOUT`.
    pub shutdown_timeout: Duration,
}

impl ServeSettings {
    /// The settings `config` gives, or the one that cannot work.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        Ok(Self {
            prefix: config.url_prefix()?,
            external: !config.disable_external_api,
            internal: !config.disable_internal_api,
            internal_address: config
                .security
                .internal_port
                .map(|port| format!("{}:{port}", config.security.internal_host)),
            admin_token: config.security.admin_token.clone(),
            max_body_size: config.max_body_size,
            connections: config.connections.clone(),
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout),
        })
    }
}

/// A configured server: its settings, the shared state (a migrated store, the key hasher, the
/// keys in use) and, with shared keys, what keeps them current.
#[derive(Debug)]
pub struct App {
    state: Arc<AppState>,
    settings: ServeSettings,
    /// The keys shared through the database, kept current while serving.
    shared_keys: Option<SharedKeys>,
}

impl App {
    /// Opens the database the configuration names (creating and migrating it as configured)
    /// and builds the server on it.
    pub async fn new(config: &Config) -> anyhow::Result<Self> {
        let database = config.database()?;
        let store = store::connect(
            &database,
            config.db_max_connections,
            config.db_deadline.limit(),
        )
        .await
        .context("opening the database")?;
        Self::with_store(config, store).await
    }

    /// The server on an opened, migrated store, e.g. one a test made from its own pool with
    /// [`store::PostgresStore::from_pool`]: the key hasher and the keys set up as `config`
    /// says.
    pub async fn with_store(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let settings = ServeSettings::from_config(config)?;
        if let Some(problem) = config.security.problems().into_iter().next() {
            anyhow::bail!(problem);
        }
        for warning in config.security.warnings() {
            tracing::warn!("insecure setting: {warning}");
        }
        let database = config.database()?;
        let key_hasher = KeyHasher::open(&config.key_hashing, &database, store.as_ref())
            .await
            .context("setting up the key hashes")?;
        telemetry::handle();
        let (keys, shared_keys) = match KeySource::from_config(config, &database) {
            KeySource::Shared(secret) => {
                let shared = SharedKeys::open(
                    store.clone(),
                    SharedKeySettings::from_config(config, secret),
                )
                .await?;
                let keys = shared
                    .refresh()
                    .await
                    .context("loading the shared signing keys")?;
                (keys, Some(shared))
            }
            KeySource::Local(local) => {
                (local.load(config).context("loading the signing key")?, None)
            }
        };
        let state = AppState::new(
            IssueSettings::from_config(config),
            config.security.clone(),
            store,
            key_hasher,
            keys,
        );
        Ok(Self::from_parts(settings, state, shared_keys))
    }

    /// The server from its parts.
    pub fn from_parts(
        settings: ServeSettings,
        state: AppState,
        shared_keys: Option<SharedKeys>,
    ) -> Self {
        Self {
            state: Arc::new(state),
            settings,
            shared_keys,
        }
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
            self.settings.external,
            self.settings.internal && self.settings.internal_address.is_none(),
            false,
        )
    }

    /// The routes of the separate internal listener (`INTERNAL_PORT`), if there is one:
    /// `/health`, `/jwks` and the internal API.
    pub fn internal_endpoint(&self) -> Option<BoxEndpoint<'static>> {
        self.settings
            .internal_address
            .as_ref()
            .map(|_| self.routes(false, self.settings.internal, true))
    }

    /// The routes of one listener; `own_listener` when it serves the internal API alone.
    fn routes(&self, external: bool, internal: bool, own_listener: bool) -> BoxEndpoint<'static> {
        let prefix = &self.settings.prefix;
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
        let labels = RouteLabels::new(prefix, documented_operations());
        let guard = InternalGuard::new(
            internal_paths().map(|path| format!("{prefix}{path}")),
            InternalAccess::new(self.settings.admin_token.as_ref(), own_listener),
        );
        routes
            .before(move |mut req: poem::Request| {
                let checked = guard.check(&req);
                answer_any_method(&mut req, &validate_request);
                async move { checked.map(|()| req) }
            })
            .data(self.state.clone())
            .data(MaxBodySize(self.settings.max_body_size))
            .around(move |ep, req| observe(ep, req, labels.clone()))
            .boxed()
    }

    /// Serves on `listener` (and on the internal listener, when configured) until
    /// SIGTERM/SIGINT, then drains in-flight requests for at most `SHUTDOWN_TIMEOUT`. Expired
    /// rows are purged every hour meanwhile.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        self.serve_until(listener, shutdown_signal()).await
    }

    /// [`App::serve`] until `shutdown` completes instead of a signal.
    pub async fn serve_until(
        mut self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown_timeout = self.settings.shutdown_timeout;
        // Bound before anything is spawned, so a failure leaves nothing running.
        let internal = match (self.internal_endpoint(), &self.settings.internal_address) {
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
            .map(|shared| tokio::spawn(keep_current(shared, state)));
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
            &self.settings.connections,
            until_stopped(stopped.clone()),
            shutdown_timeout,
        );
        let result = match internal {
            Some((listener, endpoint)) => {
                let internal = serve::serve(
                    listener,
                    endpoint,
                    &self.settings.connections,
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
    poem::http::Method::TRACE,
];

/// Gateways may forward any method (`PROPFIND`, `TRACE`, ...) to `/validate_request`; it
/// answers them all, as a GET, since only the `Authorization` header matters.
fn answer_any_method(req: &mut poem::Request, validate_request: &str) {
    if req.uri().path() == validate_request && !VALIDATE_REQUEST_METHODS.contains(req.method()) {
        req.set_method(poem::http::Method::GET);
    }
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

/// The path of every documented operation (both groups), without the prefix, with its methods.
fn documented_operations() -> impl Iterator<Item = (String, Vec<poem::http::Method>)> {
    <(GeneralApi, ExternalApi, InternalApi) as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .map(|path| {
            let methods = path.operations.iter().map(|op| op.method.clone()).collect();
            (path.path, methods)
        })
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

/// Keeps a replica's shared keys current: refreshes them every interval; on a database error
/// keeps the keys it has (each signs until it retires) and tries again.
async fn keep_current(shared: SharedKeys, state: Arc<AppState>) {
    let mut ticks = tokio::time::interval(shared.refresh_interval());
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match shared.refresh().await {
            Ok(keys) => {
                let current = state.keys();
                let changed = keys.signer().map(|s| s.kid().to_owned())
                    != current.signer().map(|s| s.kid().to_owned())
                    || keys.jwks() != current.jwks();
                if changed {
                    tracing::info!(
                        signing_kid = keys.signer().map(|s| s.kid()),
                        published = keys.jwks().keys.len(),
                        "shared signing keys changed"
                    );
                }
                state.set_keys(keys);
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "refreshing the shared signing keys failed; keeping the current ones")
            }
        }
    }
}

/// Runs the server as configured until a shutdown signal.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let app = App::new(&config).await?;
    let address = format!("{}:{}", config.host, config.port);
    let settings = &app.settings;
    tracing::info!(
        %address,
        prefix = %settings.prefix,
        external_api = settings.external,
        internal_api = settings.internal,
        internal_address = settings.internal_address.as_deref().unwrap_or("(same listener)"),
        admin_token = settings.admin_token.is_some(),
        signing = app.state.keys().signer().is_some(),
        "listening"
    );
    if settings.internal && settings.admin_token.is_none() && settings.internal_address.is_none() {
        tracing::info!(
            "the internal API and /metrics answer loopback clients only; set ADMIN_TOKEN or \
             INTERNAL_PORT to serve them to others"
        );
    }
    let listener = tokio::net::TcpListener::bind(address.as_str())
        .await
        .with_context(|| format!("binding {address}"))?;
    app.serve(listener).await
}
