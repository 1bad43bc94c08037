//! Single flight: however many requests need a new JWT at once, one call to the server.

use std::collections::HashSet;
use std::time::Duration;

use jwthenticator_reqwest::AuthError;
use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::support::{Setup, auth_error};

const REQUESTS: usize = 1000;

/// Sends `count` requests at once, each on its own task, and collects the outcomes.
async fn send_concurrently(
    client: &reqwest_middleware::ClientWithMiddleware,
    url: &str,
    count: usize,
) -> Vec<reqwest_middleware::Result<reqwest::Response>> {
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let request = client.get(url).send();
        tasks.spawn(request);
    }
    tasks.join_all().await
}

#[tokio::test(start_paused = true)]
async fn thousand_concurrent_requests_at_expiry_make_one_refresh_call() {
    let setup = Setup::new();
    setup.server.set_jwt_lifetime(Duration::from_secs(600));
    // The refresh answer takes a while (on real time), so every request is waiting for it.
    setup.server.set_refresh_delay(Duration::from_millis(200));
    let client = setup.default_client();
    client
        .get(setup.target.url("warm-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(setup.server.authenticate_calls(), 1);

    // The moment the JWT expires.
    tokio::time::advance(Duration::from_secs(600)).await;
    let outcomes = send_concurrently(&client, &setup.target.url("burst"), REQUESTS).await;

    let refresh_calls = setup.server.refresh_calls();
    let authenticate_calls = setup.server.authenticate_calls();
    eprintln!(
        "{REQUESTS} concurrent requests at expiry: {refresh_calls} refresh call(s), \
         {authenticate_calls} authenticate call(s) in total, {} target requests",
        setup.target.requests()
    );
    assert_eq!(refresh_calls, 1);
    assert_eq!(authenticate_calls, 1, "only the warm-up authenticated");
    for outcome in outcomes {
        assert_eq!(outcome.unwrap().status(), StatusCode::OK);
    }
    let burst_jwts: HashSet<_> = setup.target.authorizations()[1..].iter().cloned().collect();
    assert_eq!(
        burst_jwts.len(),
        1,
        "every request of the burst carried the one new JWT"
    );
    assert_ne!(
        burst_jwts.into_iter().next().unwrap(),
        setup.target.authorizations()[0]
    );
    assert_eq!(setup.target.requests(), 1 + REQUESTS);
}

#[tokio::test]
async fn thousand_concurrent_first_requests_make_one_authenticate_call() {
    let setup = Setup::new();
    let client = setup.default_client();

    let outcomes = send_concurrently(&client, &setup.target.url("first"), REQUESTS).await;

    eprintln!(
        "{REQUESTS} concurrent first requests: {} authenticate call(s), {} refresh call(s)",
        setup.server.authenticate_calls(),
        setup.server.refresh_calls()
    );
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.server.refresh_calls(), 0);
    for outcome in outcomes {
        assert_eq!(outcome.unwrap().status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn concurrent_requests_share_one_rejection_of_the_key() {
    let setup = Setup::new();
    setup.server.reject_key();
    let client = setup.default_client();

    let outcomes = send_concurrently(&client, &setup.target.url("x"), 100).await;

    assert_eq!(setup.server.authenticate_calls(), 1);
    for outcome in outcomes {
        let err = outcome.unwrap_err();
        assert!(
            matches!(
                auth_error(&err),
                Some(AuthError::KeyRejected | AuthError::NoCredentials)
            ),
            "{err:?}"
        );
    }
    assert_eq!(setup.target.requests(), 0);
}
