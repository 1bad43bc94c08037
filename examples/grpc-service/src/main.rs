//! A tonic gRPC server whose every call needs a JWThenticator token, verified locally by the
//! tower layer: without one, clients get `UNAUTHENTICATED` (grpc-status 16).
//!
//! ```text
//! JWTHENTICATOR_URL=http://localhost:8080 cargo run -p example-grpc-service     # :50051
//! grpcurl -plaintext localhost:50051 grpc.health.v1.Health/Check                 # Unauthenticated
//! grpcurl -plaintext -H "authorization: Bearer $JWT" localhost:50051 grpc.health.v1.Health/Check
//! ```
//!
//! Plain `http://` to a `JWTHENTICATOR_URL` host other than loopback needs
//! `JWTHENTICATOR_INSECURE_HTTP=true`: whoever answers the JWKS fetch could forge every token.

use std::error::Error;

use jwthenticator_tower::JwtAuth;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let server =
        std::env::var("JWTHENTICATOR_URL").unwrap_or_else(|_| "http://localhost:8080".to_owned());
    let address = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let insecure_http = match std::env::var("JWTHENTICATOR_INSECURE_HTTP") {
        Ok(value) => value.parse()?,
        Err(_) => false,
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    tonic::transport::Server::builder()
        .layer(JwtAuth::try_new(&server)?.with_insecure_http(insecure_http))
        .add_service(health)
        .serve(address.parse()?)
        .await?;
    Ok(())
}
