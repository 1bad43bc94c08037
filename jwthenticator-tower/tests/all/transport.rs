//! Where the layer fetches from: plain `http://` only to loopback unless opted in, and never
//! an answer from another origin than the JWKS URL's, whatever client makes the fetch.

use http::StatusCode;
use jwthenticator_core::Jwks;
use jwthenticator_tower::{JwksErrorKind, JwtAuth};

use crate::fake_jwks::FakeJwks;
use crate::support::*;

/// A JWKS URL on a host that is not loopback; the tests reach it through a client whose
/// proxy is the fake server, so no name is ever resolved.
const REMOTE_HTTP_JWKS: &str = "http://jwks.example/jwks";

/// A client that sends every `http://` request to `server`, as a forward proxy would.
fn proxied_to(server: &FakeJwks) -> reqwest::Client {
    reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(server.base_url()).expect("proxy URL"))
        .build()
        .expect("client")
}

fn layer_for(url: &str) -> JwtAuth {
    JwtAuth::from_jwks_url(url)
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER)
}

#[tokio::test(start_paused = true)]
async fn plain_http_to_a_host_that_is_not_loopback_is_refused_without_a_request() {
    let server = FakeJwks::start(&jwks()).await;
    for layer in [
        layer_for(REMOTE_HTTP_JWKS),
        layer_for(REMOTE_HTTP_JWKS).with_http_client(proxied_to(&server)),
    ] {
        let response = send(&layer, request(Some(&valid_token()))).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let error = layer.refresh_keys().await.expect_err("refused");
        assert_eq!(error.kind(), JwksErrorKind::InsecureUrl);
        assert!(error.to_string().contains("with_insecure_http"), "{error}");
    }
    assert_eq!(server.fetches(), 0, "nothing was sent");
}

#[tokio::test(start_paused = true)]
async fn plain_http_elsewhere_works_with_the_explicit_opt_in() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = layer_for(REMOTE_HTTP_JWKS)
        .with_http_client(proxied_to(&server))
        .with_insecure_http(true);
    assert_eq!(
        send(&layer, request(Some(&valid_token()))).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.fetches(), 1);
}

/// A JWKS server whose `/moved` redirects to another origin, which serves the attacker's key
/// under our `kid`; that other server.
async fn redirecting_to_forged_keys() -> (FakeJwks, FakeJwks) {
    let server = FakeJwks::start(&jwks()).await;
    let elsewhere = FakeJwks::start(&Jwks {
        keys: vec![keys().attacker.jwk(KID)],
    })
    .await;
    server.redirect_to(&elsewhere.jwks_url());
    (server, elsewhere)
}

/// Checks that `layer` accepts no forged token and that its fetch fails as redirected.
async fn assert_redirect_refused(layer: &JwtAuth) {
    let forged = signed(&keys().attacker, KID, &claims());
    assert_eq!(
        send(layer, request(Some(&forged))).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let error = layer.refresh_keys().await.expect_err("refused");
    assert_eq!(error.kind(), JwksErrorKind::Redirect);
}

#[tokio::test(start_paused = true)]
async fn a_redirect_to_another_origin_is_not_followed() {
    let (server, elsewhere) = redirecting_to_forged_keys().await;
    assert_redirect_refused(&layer_for(&server.moved_url())).await;
    assert_eq!(
        elsewhere.fetches(),
        0,
        "the default client does not go there"
    );
}

#[tokio::test(start_paused = true)]
async fn an_answer_from_another_origin_is_refused_whatever_the_client_followed() {
    let (server, elsewhere) = redirecting_to_forged_keys().await;
    // reqwest's default policy follows up to 10 redirects anywhere.
    let layer = layer_for(&server.moved_url()).with_http_client(reqwest::Client::new());
    assert_redirect_refused(&layer).await;
    assert_eq!(
        elsewhere.fetches(),
        2,
        "both fetches followed the redirect; their answers were refused"
    );
}

#[tokio::test(start_paused = true)]
async fn a_redirect_within_the_origin_is_followed() {
    let server = FakeJwks::start(&jwks()).await;
    server.redirect_to("/jwks");
    let layer = layer_for(&server.moved_url());
    assert_eq!(
        send(&layer, request(Some(&valid_token()))).await.status(),
        StatusCode::OK
    );
    assert_eq!(server.fetches(), 1);
}
