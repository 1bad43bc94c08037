//! How the middleware talks to the token server: over https or loopback only, without
//! following redirects, within a deadline, reading a bounded answer; not holding up requests
//! that still have a valid JWT; and keeping its credentials through failures that are not the
//! server's own refusal.

use std::time::Duration;

use jwthenticator_reqwest::{AuthError, ConfigError, JwtAuthMiddleware};
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::fake_token_server::{FakeTokenServer, Misbehaviour};
use crate::support::{Setup, auth_error, settle};

/// The `AuthError` of a request that failed with one.
async fn failure(client: &reqwest_middleware::ClientWithMiddleware, url: &str) -> AuthError {
    let err = client.get(url).send().await.expect_err("no JWT");
    auth_error(&err)
        .cloned()
        .unwrap_or_else(|| panic!("{err:?}"))
}

#[test]
fn plain_http_to_a_host_that_is_not_loopback_needs_the_explicit_opt_in() {
    let identifier = uuid::Uuid::new_v4();
    let builder = || {
        JwtAuthMiddleware::builder("http://jwthenticator:8080/", identifier)
            .with_key("the-key")
            .with_allowed_hosts(["api"])
    };
    let err = builder().build().expect_err("refused");
    assert!(matches!(err, ConfigError::InsecureServerUrl), "{err:?}");
    assert!(err.to_string().contains("with_insecure_http"), "{err}");
    builder()
        .with_insecure_http(true)
        .build()
        .expect("opted in");
    for url in [
        "https://auth.example.com/",
        "http://localhost:8080/",
        "http://127.0.0.1:8080/",
        "http://[::1]:8080/",
    ] {
        JwtAuthMiddleware::builder(url, identifier)
            .with_key("the-key")
            .with_any_host(true)
            .build()
            .unwrap_or_else(|err| panic!("{url}: {err}"));
    }
}

#[tokio::test]
async fn token_calls_do_not_follow_redirects_whatever_the_client() {
    let setup = Setup::new();
    let elsewhere = FakeTokenServer::start(setup.identifier);
    setup.server.misbehave(Some(Misbehaviour::Redirect(format!(
        "{}authenticate",
        elsewhere.url()
    ))));
    // reqwest's own default follows a 307, re-sending the body.
    let following = reqwest::Client::builder().no_proxy();
    for middleware in [
        setup.middleware(),
        setup.middleware().with_http_client(following),
    ] {
        let client = setup.client(middleware.build().unwrap());
        let error = failure(&client, &setup.target.url("x")).await;
        assert_eq!(
            error.status(),
            Some(StatusCode::TEMPORARY_REDIRECT),
            "{error:?}"
        );
    }
    assert_eq!(
        elsewhere.authenticate_calls(),
        0,
        "the key went nowhere else"
    );
    assert_eq!(setup.target.requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hung_token_server_fails_a_request_without_a_jwt_after_the_call_timeout() {
    let setup = Setup::new();
    setup.server.misbehave(Some(Misbehaviour::Hang));
    for (middleware, deadline) in [
        (setup.middleware(), Duration::from_secs(10)),
        (
            setup.middleware().with_call_timeout(Duration::from_secs(2)),
            Duration::from_secs(2),
        ),
    ] {
        let client = setup.client(middleware.build().unwrap());
        let started = Instant::now();
        let error = tokio::time::timeout(
            Duration::from_secs(60),
            failure(&client, &setup.target.url("x")),
        )
        .await
        .expect("an answer within 60 s");
        assert!(
            matches!(error, AuthError::Timeout { route: "/authenticate", after } if after == deadline),
            "{error:?}"
        );
        let waited = started.elapsed();
        assert!(
            (deadline..deadline + Duration::from_secs(1)).contains(&waited),
            "{waited:?}"
        );
    }
    let err = setup
        .middleware()
        .with_call_timeout(Duration::ZERO)
        .build()
        .expect_err("a zero deadline");
    assert!(matches!(err, ConfigError::InvalidSetting(_)), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn while_a_renewal_hangs_requests_go_on_with_the_jwt_that_is_still_valid() {
    let setup = Setup::new();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    let client = setup.default_client();
    client.get(setup.target.url("a")).send().await.unwrap();

    // From 550 s the JWT is due for refresh (60 s margin), and the server hangs.
    setup.server.misbehave(Some(Misbehaviour::Hang));
    tokio::time::advance(Duration::from_secs(550)).await;
    for i in 0..20 {
        let started = Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(1),
            client.get(setup.target.url(&format!("b/{i}"))).send(),
        )
        .await
        .expect("no request waits for the renewal")
        .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(100));
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let authorizations = setup.target.authorizations();
    assert!(
        authorizations.iter().all(|a| *a == authorizations[0]),
        "every request carried the first JWT"
    );
    // One renewal hung for its 10 s deadline, the next came after 1 s of backoff: two calls
    // (three if the clock rounds the other way), not one per request.
    let refresh_calls = setup.server.refresh_calls();
    assert!((2..=3).contains(&refresh_calls), "{refresh_calls}");

    // Once the server answers again (and the hung call and its backoff are over), the next
    // renewal brings a new JWT.
    setup.server.misbehave(None);
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
    }
    client.get(setup.target.url("c")).send().await.unwrap();
    settle().await;
    client.get(setup.target.url("d")).send().await.unwrap();
    let authorizations = setup.target.authorizations();
    assert_ne!(authorizations.last(), authorizations.first());
}

#[tokio::test]
async fn an_oversize_answer_is_refused() {
    let setup = Setup::new();
    setup.server.misbehave(Some(Misbehaviour::Oversize));
    let error = failure(&setup.default_client(), &setup.target.url("x")).await;
    assert!(
        matches!(
            error,
            AuthError::TooLarge {
                route: "/authenticate",
                limit: 65_536
            }
        ),
        "{error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_401_that_is_not_the_servers_refusal_keeps_the_key_and_backs_off() {
    let setup = Setup::new();
    setup
        .server
        .misbehave(Some(Misbehaviour::GatewayUnauthorized));
    let client = setup.default_client();
    let url = setup.target.url("x");

    let error = failure(&client, &url).await;
    assert!(
        matches!(
            error,
            AuthError::UnexpectedStatus {
                status: StatusCode::UNAUTHORIZED,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(setup.server.authenticate_calls(), 1);
    // In the backoff (1 s, then 2 s, ...) requests get the failure without a call.
    failure(&client, &url).await;
    assert_eq!(setup.server.authenticate_calls(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;
    failure(&client, &url).await;
    assert_eq!(setup.server.authenticate_calls(), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    failure(&client, &url).await;
    assert_eq!(setup.server.authenticate_calls(), 2);
    tokio::time::advance(Duration::from_secs(1)).await;
    failure(&client, &url).await;
    assert_eq!(setup.server.authenticate_calls(), 3);

    // The backoff is bounded: at most 30 s between attempts, however long it lasts.
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(30)).await;
        failure(&client, &url).await;
    }
    assert_eq!(setup.server.authenticate_calls(), 13);

    // The gateway lets calls through again: the key still works.
    setup.server.misbehave(None);
    tokio::time::advance(Duration::from_secs(30)).await;
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.authenticate_calls(), 14);
}

#[tokio::test(start_paused = true)]
async fn a_401_on_refresh_that_is_not_the_servers_refusal_keeps_the_refresh_token() {
    let setup = Setup::new();
    let refresh_token = setup.server.issue_refresh_token();
    let middleware = setup
        .middleware_without_key()
        .with_refresh_token(refresh_token.clone())
        .build()
        .unwrap();
    let client = setup.client(middleware);
    setup
        .server
        .misbehave(Some(Misbehaviour::GatewayUnauthorized));
    let error = failure(&client, &setup.target.url("x")).await;
    assert_eq!(error.status(), Some(StatusCode::UNAUTHORIZED), "{error:?}");

    setup.server.misbehave(None);
    tokio::time::advance(Duration::from_secs(1)).await;
    let response = client.get(setup.target.url("y")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        setup.server.refresh_tokens_received(),
        vec![refresh_token.clone(), refresh_token]
    );
}

#[tokio::test]
async fn the_servers_own_refusal_still_drops_the_key() {
    let setup = Setup::new();
    setup.server.reject_key();
    let client = setup.default_client();
    let error = failure(&client, &setup.target.url("x")).await;
    assert!(matches!(error, AuthError::KeyRejected), "{error:?}");
    let error = failure(&client, &setup.target.url("x")).await;
    assert!(matches!(error, AuthError::NoCredentials), "{error:?}");
    assert_eq!(setup.server.authenticate_calls(), 1);
}
