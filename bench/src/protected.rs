//! `protected`: the same axum handler, unprotected or behind one of the tower layers compared,
//! each given the same JWKS up front (no fetch during the run) and otherwise its defaults.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use jwthenticator_core::Jwks;
use jwthenticator_tower::JwtAuth;
use tower_oauth2_resource_server::claims::DefaultClaims;
use tower_oauth2_resource_server::server::OAuth2ResourceServer;
use tower_oauth2_resource_server::tenant::TenantConfiguration;

/// What protects the handler.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Layer {
    /// Nothing: the reference rate.
    None,
    /// `jwthenticator_tower::JwtAuth` with its defaults (10,000-token cache of verified tokens).
    Jwthenticator,
    /// `tower-oauth2-resource-server` with a static JWKS, on its aws-lc-rs backend.
    Oauth2,
}

async fn handler() -> &'static str {
    "ok"
}

/// Serves until SIGTERM or SIGINT, on a multi-threaded runtime with a worker per core.
pub(crate) fn run(listen: SocketAddr, jwks_path: &Path, layer: Layer) -> anyhow::Result<()> {
    anyhow::ensure!(
        listen.ip().is_loopback(),
        "the benchmark listens on loopback only"
    );
    let jwks_text = std::fs::read_to_string(jwks_path)
        .with_context(|| format!("reading {}", jwks_path.display()))?;
    tokio::runtime::Runtime::new()?.block_on(async move {
        let app = Router::new().route("/", get(handler));
        let app = match layer {
            Layer::None => app,
            Layer::Jwthenticator => {
                let jwks: Jwks = serde_json::from_str(&jwks_text)?;
                app.layer(JwtAuth::from_jwks(jwks))
            }
            Layer::Oauth2 => {
                let tenant = TenantConfiguration::static_builder(jwks_text).build()?;
                let server = <OAuth2ResourceServer<DefaultClaims>>::builder()
                    .add_tenant(tenant)
                    .build()
                    .await?;
                app.layer(server.into_layer())
            }
        };
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped())
            .await?;
        Ok(())
    })
}

async fn stopped() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
