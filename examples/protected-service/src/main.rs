//! An axum service whose `/whoami` route needs a token from a running JWThenticator server,
//! verified locally by `jwthenticator-tower`; `/health` stays open.
//!
//! ```text
//! JWTHENTICATOR_URL=http://localhost:8080 cargo run -p example-protected-service
//! curl -i localhost:3000/whoami                                  # 401, WWW-Authenticate: Bearer
//! curl -i -H "Authorization: Bearer $JWT" localhost:3000/whoami  # 200, the client's identifier
//! ```
//!
//! `JWT_AUDIENCE` (comma list) must match the server's when it sets one; `PORT` defaults to 3000.
//!
//! The layer fetches the JWKS only over `https://` or from a loopback host: whoever answers that
//! fetch could forge every token. `JWTHENTICATOR_INSECURE_HTTP=true` allows plain `http://` to
//! another host, for a private network such as the compose network of `examples/`.

use std::error::Error;

use axum::Router;
use axum::routing::get;
use jwthenticator_tower::{JwtAuth, JwtClaims};
use tracing_subscriber::EnvFilter;

async fn whoami(JwtClaims(claims): JwtClaims) -> String {
    format!("hello, {}\n", claims.identifier)
}

/// Whether `JWTHENTICATOR_INSECURE_HTTP` opts in to plain `http://` to a host other than
/// loopback.
fn insecure_http_allowed() -> Result<bool, Box<dyn Error>> {
    match std::env::var("JWTHENTICATOR_INSECURE_HTTP") {
        Ok(value) => Ok(value.parse()?),
        Err(_) => Ok(false),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let server =
        std::env::var("JWTHENTICATOR_URL").unwrap_or_else(|_| "http://localhost:8080".to_owned());
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port.parse()?,
        Err(_) => 3000,
    };

    let mut auth = JwtAuth::try_new(&server)?.with_insecure_http(insecure_http_allowed()?);
    if let Ok(audiences) = std::env::var("JWT_AUDIENCE") {
        auth = auth.with_audiences(
            audiences
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty()),
        );
    }
    // Not fatal: the layer answers 503 until the keys can be fetched, then recovers by itself.
    if let Err(error) = auth.refresh_keys().await {
        tracing::warn!(%error, "the JWKS is not reachable yet");
    }

    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(auth)
        // Routes added after the layer are not behind it.
        .route("/health", get(|| async { "ok\n" }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    tracing::info!(address = %listener.local_addr()?, %server, "protected service listening");
    axum::serve(listener, app).await?;
    Ok(())
}
