//! jwthenticator-reqwest against the real server binary on loopback (embedded SQLite): the
//! admin client registers a key, the middleware authenticates, attaches (to allowed hosts
//! only), refreshes and retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jwthenticator_reqwest::{AdminClient, AuthError, JwtAuthMiddleware};
use jwthenticator_tests::TestServer;
use reqwest_middleware::ClientBuilder;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

/// `127.0.0.1:PORT` of the server, for the allow-list: the server's own `/validate_request` is
/// the protected target of these tests.
fn server_host(server: &TestServer) -> String {
    server.base_url().trim_start_matches("http://").to_owned()
}

/// Registers `device-key` for a new identifier, through the admin client.
async fn register_device_key(server: &TestServer) -> uuid::Uuid {
    let admin = AdminClient::new(server.base_url()).expect("admin client");
    let identifier = uuid::Uuid::new_v4();
    admin
        .register_key("device-key-0000001", identifier)
        .await
        .expect("register");
    identifier
}

fn is_key_rejected(err: &reqwest_middleware::Error) -> bool {
    matches!(
        err,
        reqwest_middleware::Error::Middleware(err)
            if matches!(err.downcast_ref::<AuthError>(), Some(AuthError::KeyRejected))
    )
}

#[tokio::test]
async fn admin_client_registers_and_checks_keys() {
    let server = TestServer::builder(BINARY).start().await;
    let admin = AdminClient::new(server.base_url()).expect("admin client");
    let identifier = uuid::Uuid::new_v4();
    assert!(
        !admin
            .is_key_registered("device-key-0000001")
            .await
            .expect("ask")
    );
    admin
        .register_key("device-key-0000001", identifier)
        .await
        .expect("register");
    assert!(
        admin
            .is_key_registered("device-key-0000001")
            .await
            .expect("ask")
    );
    let err = admin
        .register_key("", identifier)
        .await
        .expect_err("empty key refused");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    let err = admin
        .register_key("short-key", identifier)
        .await
        .expect_err("a key shorter than MIN_KEY_LENGTH is refused");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400));
    assert!(err.to_string().contains("MIN_KEY_LENGTH"), "{err}");
}

#[tokio::test]
async fn middleware_authenticates_then_refreshes_against_the_real_server() {
    // Two-second JWTs with a one-second margin, so the test sees a refresh quickly.
    let server = TestServer::builder(BINARY)
        .env("JWT_LEASE_TIME", "2")
        .start()
        .await;
    let identifier = register_device_key(&server).await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener_seen = seen.clone();
    let auth = JwtAuthMiddleware::builder(server.base_url(), identifier)
        .with_key("device-key-0000001")
        .with_allowed_hosts([server_host(&server)])
        .with_refresh_margin(Duration::from_secs(1))
        .with_token_listener(move |tokens| {
            listener_seen
                .lock()
                .expect("lock")
                .push(tokens.refresh_token().map(str::to_owned));
        })
        .build()
        .expect("middleware");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    // The server's own /validate_request is the protected target here.
    let first = client
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect("request");
    assert_eq!(first.status().as_u16(), 200);
    let refresh_token = seen.lock().expect("lock")[0]
        .clone()
        .expect("refresh token issued");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = client
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect("request");
    assert_eq!(second.status().as_u16(), 200);
    // The JWT, due for refresh but still valid, went with the request and is being replaced in
    // the background.
    for _ in 0..100 {
        if seen.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.len() >= 2,
        "the JWT was refreshed: {} token changes",
        seen.len()
    );
    assert_eq!(
        seen.last().cloned().flatten(),
        Some(refresh_token),
        "refresh keeps the token"
    );
    let logs = server.logs();
    assert!(
        logs.contains("operation=\"authenticate\"") && logs.contains("operation=\"refresh\""),
        "{logs}"
    );
}

#[tokio::test]
async fn an_unregistered_key_is_a_typed_error() {
    let server = TestServer::builder(BINARY).start().await;
    let auth = JwtAuthMiddleware::builder(server.base_url(), uuid::Uuid::new_v4())
        .with_key("never-registered")
        .with_allowed_hosts([server_host(&server)])
        .build()
        .expect("middleware");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let err = client
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect_err("the key is rejected");
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let auth_error = err.downcast_ref::<AuthError>().expect("an AuthError");
    assert!(
        matches!(auth_error, AuthError::KeyRejected),
        "{auth_error:?}"
    );
}

#[tokio::test]
async fn admin_client_revokes_and_lists_keys_with_the_admin_token() {
    let server = TestServer::builder(BINARY)
        .env("ADMIN_TOKEN", "adm1n-t0ken-adm1n-t0ken-adm1n-t0")
        .start()
        .await;
    let identifier = uuid::Uuid::new_v4();
    let anonymous = AdminClient::new(server.base_url()).expect("admin client");
    let err = anonymous
        .register_key("device-key-0000001", identifier)
        .await
        .expect_err("the admin token is required");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));

    let admin = AdminClient::builder(server.base_url())
        .with_admin_token("adm1n-t0ken-adm1n-t0ken-adm1n-t0")
        .build()
        .expect("admin client");
    admin
        .register_key("device-key-0000001", identifier)
        .await
        .expect("register");
    admin
        .register_key("spare-key-00000001", identifier)
        .await
        .expect("register");
    let keys = admin.list_keys(identifier).await.expect("list");
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.key_hash_scheme == "hmac-sha512" && k.revoked_at.is_none())
    );

    let device = || {
        let auth = JwtAuthMiddleware::builder(server.base_url(), identifier)
            .with_key("device-key-0000001")
            .with_allowed_hosts([server_host(&server)])
            .build()
            .expect("middleware");
        ClientBuilder::new(reqwest::Client::new())
            .with(auth)
            .build()
    };
    let status = device()
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status.as_u16(), 200);

    let revoked = admin
        .revoke_key("device-key-0000001")
        .await
        .expect("revoke");
    assert_eq!(
        (revoked.keys_revoked, revoked.refresh_tokens_revoked),
        (1, 1)
    );
    let err = device()
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect_err("a revoked key no longer authenticates");
    assert!(is_key_rejected(&err), "{err:?}");

    let spare = keys
        .iter()
        .find(|k| k.revoked_at.is_none())
        .map(|k| k.id)
        .expect("id");
    let revoked = admin
        .revoke_identifier(identifier)
        .await
        .expect("revoke identifier");
    assert_eq!(
        revoked.keys_revoked, 1,
        "only the spare key was still live (id {spare})"
    );
    let keys = admin.list_keys(identifier).await.expect("list");
    assert!(keys.iter().all(|k| k.revoked_at.is_some()));
}

/// A service on loopback that counts the requests that carried an `Authorization` header.
async fn third_party() -> (String, Arc<Mutex<Vec<Option<String>>>>) {
    use axum::http::HeaderMap;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = Arc::clone(&record);
        async move {
            let authorization = headers
                .get("authorization")
                .map(|value| value.to_str().unwrap_or("not ASCII").to_owned());
            record.lock().expect("lock").push(authorization);
            "ok"
        }
    });
    let address = jwthenticator_test_support::serve(app);
    (format!("http://localhost:{}", address.port()), seen)
}

#[tokio::test]
async fn the_jwt_goes_only_to_the_allowed_hosts_against_the_real_server() {
    let server = TestServer::builder(BINARY).start().await;
    let identifier = register_device_key(&server).await;
    let builder =
        || JwtAuthMiddleware::builder(server.base_url(), identifier).with_key("device-key-0000001");

    // Without an allow-list (or the explicit any-host opt-in) there is no middleware.
    let err = builder().build().expect_err("the hosts are required");
    assert!(
        matches!(err, jwthenticator_reqwest::ConfigError::NoAllowedHosts),
        "{err:?}"
    );

    let auth = builder()
        .with_allowed_hosts([server_host(&server)])
        .build()
        .expect("middleware");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let (elsewhere, seen) = third_party().await;
    let answer = client
        .get(format!("{elsewhere}/collect"))
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(
        *seen.lock().expect("lock"),
        vec![None],
        "no JWT for a third party"
    );

    let status = client
        .get(server.url("/validate_request"))
        .send()
        .await
        .expect("request")
        .status();
    assert_eq!(status.as_u16(), 200, "the allowed host gets a valid JWT");
}
