//! A device's side of JWThenticator: provision a key with the admin client (what a fleet's
//! provisioning system does once), then call a protected service through the middleware, which
//! authenticates, attaches the JWT, refreshes it before it expires and retries once on 401.
//!
//! ```text
//! cargo run -p jwthenticator-server                                   # the auth server, :8080
//! JWTHENTICATOR_URL=http://localhost:8080 cargo run -p example-protected-service   # :3000
//! cargo run -p example-client                                          # calls :3000/whoami
//! ```
//!
//! `JWTHENTICATOR_URL` (default `http://localhost:8080`), `SERVICE_URL` (default
//! `http://localhost:3000/whoami`) and `ADMIN_TOKEN` (when the server requires one) are read
//! from the environment. The service may also be the auth server's own `/validate_request`.
//!
//! Only the service's host gets the JWT. The key goes to the server only over `https://` or to
//! a loopback host; `JWTHENTICATOR_INSECURE_HTTP=true` allows plain `http://` to another host,
//! for a private network.

use std::error::Error;

use jwthenticator_reqwest::{AdminClient, JwtAuthMiddleware};
use reqwest_middleware::ClientBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server =
        std::env::var("JWTHENTICATOR_URL").unwrap_or_else(|_| "http://localhost:8080".to_owned());
    let service =
        std::env::var("SERVICE_URL").unwrap_or_else(|_| "http://localhost:3000/whoami".to_owned());

    // Provisioning: a new identity and a random key, registered through the internal API.
    let identifier = uuid::Uuid::new_v4();
    let key = uuid::Uuid::new_v4().simple().to_string();
    let mut admin = AdminClient::builder(&server);
    if let Ok(token) = std::env::var("ADMIN_TOKEN") {
        admin = admin.with_admin_token(token);
    }
    let admin = admin.build()?;
    admin.register_key(&key, identifier).await?;

    // The device: every request to the service carries a valid JWT, and nothing else gets it.
    let service_host = reqwest::Url::parse(&service)?
        .host_str()
        .ok_or("SERVICE_URL has no host")?
        .to_owned();
    let insecure_http = match std::env::var("JWTHENTICATOR_INSECURE_HTTP") {
        Ok(value) => value.parse()?,
        Err(_) => false,
    };
    let auth = JwtAuthMiddleware::builder(&server, identifier)
        .with_key(key)
        .with_allowed_hosts([service_host])
        .with_insecure_http(insecure_http)
        .build()?;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    for _ in 0..3 {
        let response = client.get(&service).send().await?;
        let status = response.status();
        let body = response.text().await?;
        let mut out = std::io::stdout().lock();
        std::io::Write::write_fmt(&mut out, format_args!("{status} {}\n", body.trim()))?;
    }
    Ok(())
}
