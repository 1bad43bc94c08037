//! The resend after a 401 from the target service.

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::Full;
use reqwest::StatusCode;

use crate::support::Setup;

#[tokio::test]
async fn target_401_once_refreshes_and_resends_once_with_the_same_body() {
    let setup = Setup::new();
    let client = setup.default_client();
    setup.target.answer_401_once();

    let response = client
        .post(setup.target.url("things"))
        .body("the payload")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.server.refresh_calls(), 1);
    let seen = setup.target.seen();
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0].0, seen[1].0, "the resend carries the new JWT");
    assert_eq!(seen[0].1, "the payload");
    assert_eq!(seen[1].1, "the payload");
}

#[tokio::test]
async fn target_401_always_resends_exactly_once() {
    let setup = Setup::new();
    let client = setup.default_client();
    setup.target.answer_401_always();

    let response = client.get(setup.target.url("things")).send().await.unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(setup.target.requests(), 2);
    assert_eq!(setup.server.refresh_calls(), 1);
    assert_eq!(setup.server.authenticate_calls(), 1);
}

#[tokio::test]
async fn streaming_body_is_not_resent_after_401() {
    let setup = Setup::new();
    let client = setup.default_client();
    setup.target.answer_401_once();

    let body = reqwest::Body::wrap(Full::new(Bytes::from_static(b"streamed")));
    let response = client
        .post(setup.target.url("upload"))
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(setup.target.requests(), 1);
    assert_eq!(setup.target.seen()[0].1, "streamed");
    assert_eq!(setup.server.refresh_calls(), 0);
}

#[tokio::test]
async fn concurrent_401s_on_the_same_jwt_make_one_refresh() {
    let setup = Setup::new();
    let client = setup.default_client();
    client
        .get(setup.target.url("warm-up"))
        .send()
        .await
        .unwrap();
    // The target stops accepting every JWT issued so far; the client does not know yet.
    setup.target.reject_jwts_up_to(setup.server.jwts_issued());

    let responses =
        join_all((0..50).map(|i| client.get(setup.target.url(&format!("r/{i}"))).send())).await;

    for response in responses {
        assert_eq!(response.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(setup.server.refresh_calls(), 1);
    assert_eq!(setup.server.authenticate_calls(), 1);
    assert_eq!(setup.target.requests(), 1 + 50 + 50);
}
