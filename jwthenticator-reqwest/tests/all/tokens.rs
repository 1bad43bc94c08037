//! Obtaining, reusing and replacing the JWT: the original's refresh logic.

use std::time::Duration;

use jwthenticator_reqwest::{AuthError, ConfigError, JwtAuthMiddleware};
use reqwest::StatusCode;

use crate::support::{Recorded, Setup, auth_error, http_client_builder, settle};

fn bearer(jwt: &str) -> Option<String> {
    Some(format!("Bearer {jwt}"))
}

#[tokio::test]
async fn first_request_authenticates_with_the_key() {
    let setup = Setup::new();
    let client = setup.default_client();

    let response = client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.server.refresh_calls(), 0);
    let authorization = setup.target.authorizations()[0].clone().unwrap();
    assert!(authorization.starts_with("Bearer ey"), "{authorization}");
}

#[tokio::test]
async fn later_requests_reuse_the_jwt() {
    let setup = Setup::new();
    let client = setup.default_client();

    for _ in 0..5 {
        let response = client.get(setup.target.url("things")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.server.refresh_calls(), 0);
    let authorizations = setup.target.authorizations();
    assert_eq!(authorizations.len(), 5);
    assert!(authorizations.iter().all(|auth| *auth == authorizations[0]));
}

#[tokio::test]
async fn path_prefix_of_the_server_url_is_kept() {
    let setup = Setup::new();
    let middleware = JwtAuthMiddleware::builder(setup.server.prefixed_url(), setup.identifier)
        .with_key(setup.server.key())
        .with_http_client(http_client_builder())
        .with_allowed_hosts([setup.target.addr().to_string()])
        .build()
        .unwrap();
    let client = setup.client(middleware);

    let response = client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.authenticate_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn jwt_within_the_refresh_margin_is_refreshed() {
    let setup = Setup::new();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    let middleware = setup
        .middleware()
        .with_refresh_margin(Duration::from_secs(60))
        .build()
        .unwrap();
    let client = setup.client(middleware);
    client.get(setup.target.url("a")).send().await.unwrap();

    // 600 s lifetime, 60 s margin: still reused at 530 s ...
    tokio::time::advance(Duration::from_secs(530)).await;
    client.get(setup.target.url("b")).send().await.unwrap();
    assert_eq!(setup.server.refresh_calls(), 0);

    // ... and at 545 s, before it expires, refreshed in the background while the request
    // goes on with it ...
    tokio::time::advance(Duration::from_secs(15)).await;
    client.get(setup.target.url("c")).send().await.unwrap();
    settle().await;
    assert_eq!(setup.server.refresh_calls(), 1);
    assert_eq!(setup.server.authenticate_calls(), 1);
    // ... so the next request has the new one.
    client.get(setup.target.url("d")).send().await.unwrap();
    assert_eq!(setup.server.refresh_calls(), 1);

    let authorizations = setup.target.authorizations();
    assert_eq!(authorizations[0], authorizations[1]);
    assert_eq!(authorizations[1], authorizations[2]);
    assert_ne!(authorizations[2], authorizations[3]);
}

#[tokio::test]
async fn jwt_given_up_front_is_used_without_calling_the_server() {
    let setup = Setup::new();
    let jwt = setup.server.issue_jwt(3600);
    let middleware = setup
        .middleware_without_key()
        .with_jwt(jwt.clone())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(setup.target.authorizations(), vec![bearer(&jwt)]);
    assert_eq!(setup.server.authenticate_calls(), 0);
    assert_eq!(setup.server.refresh_calls(), 0);
}

#[tokio::test]
async fn expired_jwt_given_up_front_is_refreshed_with_the_refresh_token() {
    let setup = Setup::new();
    let middleware = setup
        .middleware_without_key()
        .with_jwt(setup.server.issue_jwt(-10))
        .with_refresh_token(setup.server.issue_refresh_token())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    let response = client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.refresh_calls(), 1);
    assert_eq!(setup.server.authenticate_calls(), 0);
}

#[tokio::test]
async fn expired_jwt_alone_fails_with_no_credentials() {
    let setup = Setup::new();
    let middleware = setup
        .middleware_without_key()
        .with_jwt(setup.server.issue_jwt(-10))
        .build()
        .unwrap();
    let client = setup.client(middleware);

    let err = client
        .get(setup.target.url("things"))
        .send()
        .await
        .unwrap_err();

    assert!(
        matches!(auth_error(&err), Some(AuthError::NoCredentials)),
        "{err:?}"
    );
    assert_eq!(setup.target.requests(), 0);
}

#[tokio::test]
async fn rejected_refresh_token_falls_back_to_the_key() {
    let setup = Setup::new();
    let stale = setup.server.issue_refresh_token();
    setup.server.reject_refresh();
    let recorded = Recorded::default();
    let middleware = setup
        .middleware()
        .with_refresh_token(stale.clone())
        .with_token_listener(recorded.listener())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    let response = client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.refresh_tokens_received(), vec![stale.clone()]);
    assert_eq!(setup.server.authenticate_calls(), 1);
    let calls = recorded.calls();
    assert_eq!(calls.len(), 1);
    let new_refresh_token = calls[0].1.clone().unwrap();
    assert_ne!(new_refresh_token, stale);
}

#[tokio::test]
async fn rejected_key_is_a_typed_error_and_is_never_sent_again() {
    let setup = Setup::new();
    setup.server.reject_key();
    let client = setup.default_client();

    let first = client.get(setup.target.url("a")).send().await.unwrap_err();
    assert!(
        matches!(auth_error(&first), Some(AuthError::KeyRejected)),
        "{first:?}"
    );
    assert_eq!(
        auth_error(&first).unwrap().status(),
        Some(StatusCode::UNAUTHORIZED)
    );

    // The key was dropped: later requests fail at once, without calling the server.
    for _ in 0..3 {
        let err = client.get(setup.target.url("b")).send().await.unwrap_err();
        assert!(
            matches!(auth_error(&err), Some(AuthError::NoCredentials)),
            "{err:?}"
        );
    }
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.server.refresh_calls(), 0);
    assert_eq!(setup.target.requests(), 0);
}

#[tokio::test]
async fn rejected_refresh_token_without_a_key_is_a_typed_error() {
    let setup = Setup::new();
    setup.server.reject_refresh();
    let middleware = setup
        .middleware_without_key()
        .with_refresh_token(setup.server.issue_refresh_token())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    let err = client.get(setup.target.url("a")).send().await.unwrap_err();
    assert!(
        matches!(auth_error(&err), Some(AuthError::RefreshTokenRejected)),
        "{err:?}"
    );
    let err = client.get(setup.target.url("a")).send().await.unwrap_err();
    assert!(
        matches!(auth_error(&err), Some(AuthError::NoCredentials)),
        "{err:?}"
    );
    assert_eq!(setup.server.refresh_calls(), 1);
}

#[tokio::test]
async fn server_error_status_and_message_are_reported() {
    let setup = Setup::new();
    setup
        .server
        .fail_authenticate(StatusCode::SERVICE_UNAVAILABLE, "database is down");
    let client = setup.default_client();

    let err = client.get(setup.target.url("a")).send().await.unwrap_err();

    let auth = auth_error(&err).unwrap();
    assert!(
        matches!(
            auth,
            AuthError::UnexpectedStatus {
                route: "/authenticate",
                ..
            }
        ),
        "{auth:?}"
    );
    assert_eq!(auth.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(auth.server_message(), Some("database is down"));
    assert!(auth.to_string().contains("database is down"), "{auth}");
}

#[tokio::test(start_paused = true)]
async fn rotated_refresh_token_is_stored_and_used_next() {
    let setup = Setup::new();
    setup.server.rotate_refresh_tokens();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    let recorded = Recorded::default();
    let middleware = setup
        .middleware()
        .with_token_listener(recorded.listener())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    client.get(setup.target.url("a")).send().await.unwrap();
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(590)).await;
        client.get(setup.target.url("b")).send().await.unwrap();
        settle().await;
    }

    // authenticate issued refresh-1, the first refresh rotated it to refresh-2, the second
    // refresh was made with refresh-2.
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(
        setup.server.refresh_tokens_received(),
        vec!["refresh-1".to_owned(), "refresh-2".to_owned()]
    );
    let refresh_tokens: Vec<_> = recorded.calls().into_iter().map(|(_, rt)| rt).collect();
    assert_eq!(
        refresh_tokens,
        vec![
            Some("refresh-1".to_owned()),
            Some("refresh-2".to_owned()),
            Some("refresh-3".to_owned())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn refresh_survives_the_request_that_started_it_being_cancelled() {
    let setup = Setup::new();
    setup.server.rotate_refresh_tokens();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    setup.server.set_refresh_delay(Duration::from_millis(300));
    let client = setup.default_client();
    client.get(setup.target.url("a")).send().await.unwrap();
    // Expired: the next request waits for the refresh.
    tokio::time::advance(Duration::from_secs(601)).await;

    // The caller gives up while the server is still answering the refresh (which rotates
    // refresh-1 into refresh-2).
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        client.get(setup.target.url("b")).send(),
    )
    .await;
    assert!(gave_up.is_err(), "the request was cut short");

    // The refresh finished anyway and kept refresh-2: no second refresh, no authenticate.
    let response = client.get(setup.target.url("c")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        setup.server.refresh_tokens_received(),
        vec!["refresh-1".to_owned()]
    );
    assert_eq!(setup.server.authenticate_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn token_listener_is_told_of_every_change() {
    let setup = Setup::new();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    let recorded = Recorded::default();
    let middleware = setup
        .middleware()
        .with_token_listener(recorded.listener())
        .build()
        .unwrap();
    let client = setup.client(middleware);

    client.get(setup.target.url("a")).send().await.unwrap();
    client.get(setup.target.url("b")).send().await.unwrap();
    tokio::time::advance(Duration::from_secs(590)).await;
    // Still with the JWT due for refresh, which is replaced in the background.
    client.get(setup.target.url("c")).send().await.unwrap();
    settle().await;
    client.get(setup.target.url("c2")).send().await.unwrap();
    // The refresh token is revoked and so is the key: the listener learns the refresh token is gone.
    setup.server.reject_refresh();
    setup.server.reject_key();
    tokio::time::advance(Duration::from_secs(700)).await;
    client.get(setup.target.url("d")).send().await.unwrap_err();

    let calls = recorded.calls();
    let authorizations = setup.target.authorizations();
    assert_eq!(calls.len(), 3, "{calls:?}");
    // After authenticate: the new JWT and refresh token.
    assert_eq!(bearer(calls[0].0.as_deref().unwrap()), authorizations[0]);
    assert_eq!(calls[0].1.as_deref(), Some("refresh-1"));
    // After refresh (no rotation): the new JWT, the same refresh token.
    assert_eq!(bearer(calls[1].0.as_deref().unwrap()), authorizations[3]);
    assert_eq!(calls[1].1.as_deref(), Some("refresh-1"));
    // After the refresh token was rejected: no refresh token left.
    assert_eq!(calls[2].1, None);
}

#[test]
fn building_without_credentials_fails_clearly() {
    let err = JwtAuthMiddleware::builder("http://127.0.0.1:1/", uuid::Uuid::new_v4())
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::MissingCredentials), "{err:?}");
    assert!(
        err.to_string().contains("key, a refresh token or a JWT"),
        "{err}"
    );
}

#[test]
fn building_with_a_malformed_jwt_or_url_fails() {
    let identifier = uuid::Uuid::new_v4();
    let err = JwtAuthMiddleware::builder("http://127.0.0.1:1/", identifier)
        .with_jwt("s3cret-not-a-jwt")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidJwt(_)), "{err:?}");
    assert!(!format!("{err:?} {err}").contains("s3cret"));

    let err = JwtAuthMiddleware::builder("not a url", identifier)
        .with_key("k")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidServerUrl(_)), "{err:?}");
}
