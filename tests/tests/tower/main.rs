//! jwthenticator-tower in front of an axum service and a tonic (gRPC) service, verifying tokens
//! issued by the real server binary against its live JWKS, also across a restart of the server
//! with a new key.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use jwthenticator_tests::{TestServer, enroll, free_port};
use jwthenticator_tower::{JwtAuth, JwtClaims};

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

async fn serve_axum(app: Router) -> String {
    format!("http://{}", jwthenticator_test_support::serve(app))
}

#[tokio::test]
async fn an_axum_service_behind_the_layer_accepts_the_servers_tokens_and_rejects_others() {
    let server = TestServer::builder(BINARY).start().await;
    let enrolled = enroll(&reqwest::Client::new(), server.base_url()).await;
    let (jwt, identifier) = (enrolled.jwt, enrolled.identifier);
    let app = Router::new()
        .route(
            "/whoami",
            get(|JwtClaims(claims): JwtClaims| async move { claims.identifier.to_string() }),
        )
        .layer(JwtAuth::new(server.base_url()));
    let service = serve_axum(app).await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("{service}/whoami"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.expect("body"), identifier.to_string());

    let response = client
        .get(format!("{service}/whoami"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");

    let tampered = format!("{jwt}A");
    let response = client
        .get(format!("{service}/whoami"))
        .bearer_auth(tampered)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
}

/// The `kid` in a JWT's header.
fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().expect("a header");
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

#[tokio::test]
async fn a_token_of_the_server_restarted_with_a_new_key_is_accepted_on_its_first_request() {
    let port = free_port();
    let client = reqwest::Client::new();
    let first = TestServer::builder(BINARY).port(port).start().await;
    let before = enroll(&client, first.base_url()).await;
    let app = Router::new()
        .route(
            "/whoami",
            get(|JwtClaims(claims): JwtClaims| async move { claims.identifier.to_string() }),
        )
        // A cooldown far longer than the restart, so that only a first fetch that does not arm
        // it lets the new key in.
        .layer(JwtAuth::new(first.base_url()).with_refetch_cooldown(Duration::from_secs(3600)));
    let service = serve_axum(app).await;
    let whoami = |jwt: String| {
        client
            .get(format!("{service}/whoami"))
            .bearer_auth(jwt)
            .send()
    };
    assert_eq!(
        whoami(before.jwt.clone()).await.expect("request").status(),
        200
    );

    // The same server address, with a new data directory: a new signing key and database.
    assert!(first.terminate().await, "the server shuts down cleanly");
    let second = TestServer::builder(BINARY).port(port).start().await;
    let after = enroll(&client, second.base_url()).await;
    assert_ne!(kid(&after.jwt), kid(&before.jwt), "a new key");

    let response = whoami(after.jwt.clone()).await.expect("request");
    assert_eq!(response.status(), 200, "{:?}", response.headers());
    assert_eq!(
        response.text().await.expect("body"),
        after.identifier.to_string()
    );
}

#[tokio::test]
async fn a_tonic_service_behind_the_layer_answers_unauthenticated_without_a_token() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = TestServer::builder(BINARY).start().await;
    let jwt = enroll(&reqwest::Client::new(), server.base_url()).await.jwt;
    let (_, health_service) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let jwks_url = server.base_url().to_owned();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(JwtAuth::new(&jwks_url))
            .add_service(health_service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut anonymous = HealthClient::new(channel.clone());
    let status = anonymous
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect_err("no token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");

    let bearer: tonic::metadata::MetadataValue<_> =
        format!("Bearer {jwt}").parse().expect("metadata");
    let mut authorized =
        HealthClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        });
    let answer = authorized
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a valid token passes");
    assert_eq!(answer.into_inner().status, 1, "SERVING");
}
