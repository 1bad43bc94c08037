//! The JWKS cache against a fake JWKS server on loopback that counts fetches, with paused
//! Tokio time: first fetch, rotation, floods of unknown `kid`s, outages, refresh schedule,
//! custom client, size limit and invalidation of cached tokens.

use std::time::Duration;

use futures_util::future::join_all;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, StatusCode};
use jwthenticator_core::{Claims, Jwks};
use jwthenticator_tower::{AuthError, AuthErrorKind, JwksErrorKind, JwtAuth};
use serde_json::json;

use crate::fake_jwks::{CLIENT_HEADER, FakeJwks};
use crate::support::*;

const COOLDOWN: Duration = Duration::from_secs(10);
const REFRESH_INTERVAL: Duration = Duration::from_secs(300);

fn remote_layer(server: &FakeJwks) -> JwtAuth {
    JwtAuth::new(server.base_url())
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER)
}

fn rotated_jwks() -> Jwks {
    Jwks {
        keys: vec![keys().ours.jwk(KID), keys().rotated.jwk(ROTATED_KID)],
    }
}

/// A token whose `kid` nobody published; its signature is never looked at.
fn token_with_unknown_kid(i: usize) -> String {
    forge(&header(&format!("made-up-{i}")), &claims(), None)
}

async fn status(layer: &JwtAuth, token: &str) -> StatusCode {
    send(layer, request(Some(token))).await.status()
}

#[tokio::test(start_paused = true)]
async fn keys_are_fetched_once_on_first_use_and_then_read_from_memory() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(
        server.fetches(),
        0,
        "nothing is fetched before a request needs it"
    );
    let token = valid_token();
    let first = join_all((0..50).map(|_| status(&layer, &token))).await;
    assert!(first.iter().all(|s| *s == StatusCode::OK), "{first:?}");
    for _ in 0..100 {
        assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    }
    assert_eq!(server.fetches(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_base_url_with_a_path_prefix_finds_the_jwks_below_it() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = JwtAuth::new(format!("{}/prefix", server.base_url()))
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    assert_eq!((server.fetches(), server.other_requests()), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_accepted_after_one_shared_refetch_and_no_request_fails() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    tokio::time::advance(COOLDOWN).await;

    server.publish(&rotated_jwks());
    let new_token = signed(&keys().rotated, ROTATED_KID, &claims());
    let old_token = valid_token();
    let statuses = join_all((0..200).map(|i| {
        let token = if i % 2 == 0 { &new_token } else { &old_token };
        status(&layer, token)
    }))
    .await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(
        server.fetches(),
        2,
        "one first fetch, one refetch for the new kid"
    );

    for _ in 0..100 {
        assert_eq!(status(&layer, &new_token).await, StatusCode::OK);
    }
    assert_eq!(server.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_unknown_kids_costs_at_most_one_fetch_per_cooldown() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    assert_eq!(server.fetches(), 1);

    for round in 1..=3 {
        tokio::time::advance(COOLDOWN).await;
        // 1,000 concurrent requests, then 1,000 more right after the refetch they shared.
        for burst in 0..2 {
            let tokens: Vec<String> = (0..1_000).map(token_with_unknown_kid).collect();
            let statuses = join_all(tokens.iter().map(|token| status(&layer, token))).await;
            assert!(
                statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
                "round {round} burst {burst}"
            );
            assert_eq!(server.fetches(), 1 + round, "round {round} burst {burst}");
        }
        // Known kids are unaffected.
        assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn a_refetch_that_meets_a_scheduled_refresh_shares_its_fetch() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    server.publish(&rotated_jwks());
    // The refresh falls due just as a token with the new kid arrives.
    tokio::time::advance(REFRESH_INTERVAL).await;
    let new_token = signed(&keys().rotated, ROTATED_KID, &claims());
    assert_eq!(status(&layer, &new_token).await, StatusCode::OK);
    server.settle().await;
    assert_eq!(server.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_kid_in_the_cooldown_is_rejected_at_once() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(
        status(&layer, &token_with_unknown_kid(0)).await,
        StatusCode::UNAUTHORIZED
    );
    let fetches = server.fetches();
    let response = send(&layer, request(Some(&token_with_unknown_kid(1)))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::InvalidToken(
            jwthenticator_core::VerifyErrorKind::UnknownKeyId
        ))
    );
    assert_eq!(server.fetches(), fetches);
}

#[tokio::test(start_paused = true)]
async fn when_the_jwks_server_is_down_cached_keys_serve_until_max_staleness_then_503() {
    let max_staleness = Duration::from_secs(30 * 60);
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server).with_max_staleness(max_staleness);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    assert_eq!(server.fetches(), 1);

    server.set_down(true);
    // Every minute for 29 minutes: the background refreshes fail, requests still pass,
    // with a cached token and with tokens verified afresh.
    for minute in 1..30 {
        tokio::time::advance(Duration::from_secs(60)).await;
        server.settle().await;
        assert_eq!(
            status(&layer, &valid_token()).await,
            StatusCode::OK,
            "minute {minute}"
        );
    }
    // The refresh due at 5 min fails, and the retries back off from 30 s up to the 5 min
    // interval: at 5:00, 5:30, 6:30, 8:30, 12:30, 17:30, 22:30 and 27:30.
    assert_eq!(server.fetches() - 1, 8, "failed refreshes");

    tokio::time::advance(Duration::from_secs(61)).await;
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry_after: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds");
    assert!(
        (1..=COOLDOWN.as_secs()).contains(&retry_after),
        "{retry_after}"
    );
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::KeysUnavailable)
    );

    server.set_down(false);
    tokio::time::advance(COOLDOWN).await;
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn with_the_jwks_server_unreachable_from_the_start_requests_get_503() {
    // Port 9 (discard) on loopback: nothing listens, every fetch fails at once.
    let layer = JwtAuth::from_jwks_url("http://127.0.0.1:9/jwks");
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));
    let error = layer.refresh_keys().await.expect_err("nothing listens");
    assert_eq!(error.kind(), JwksErrorKind::Request);
}

#[tokio::test(start_paused = true)]
async fn refreshes_follow_max_age_within_the_bounds() {
    let server = FakeJwks::start(&jwks()).await;
    server.set_cache_control("public, max-age=120");
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    server.settle().await;
    assert_eq!(server.fetches(), 1);

    tokio::time::advance(Duration::from_secs(110)).await;
    server.wait_until(|s| s.fetches() > 1).await;
    assert_eq!(server.fetches(), 1, "not before max-age");
    tokio::time::advance(Duration::from_secs(10)).await;
    server.wait_until(|s| s.fetches() > 1).await;
    assert_eq!(server.fetches(), 2, "at max-age");

    // max-age=1 is raised to the 30 s minimum.
    server.set_cache_control("max-age=1");
    tokio::time::advance(Duration::from_secs(120)).await;
    server.wait_until(|s| s.fetches() > 2).await;
    assert_eq!(server.fetches(), 3);
    tokio::time::advance(Duration::from_secs(25)).await;
    server.wait_until(|s| s.fetches() > 3).await;
    assert_eq!(server.fetches(), 3, "not before the minimum");
    tokio::time::advance(Duration::from_secs(5)).await;
    server.wait_until(|s| s.fetches() > 3).await;
    assert_eq!(server.fetches(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_custom_client_makes_every_fetch() {
    let server = FakeJwks::start(&jwks()).await;
    let mut headers = HeaderMap::new();
    headers.insert(CLIENT_HEADER, HeaderValue::from_static("custom"));
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");
    let layer = remote_layer(&server).with_http_client(client);

    // First fetch.
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    // Scheduled refresh.
    tokio::time::advance(REFRESH_INTERVAL).await;
    server.wait_until(|s| s.fetches() >= 2).await;
    // Refetch for an unknown kid.
    server.publish(&rotated_jwks());
    let new_token = signed(&keys().rotated, ROTATED_KID, &claims());
    assert_eq!(status(&layer, &new_token).await, StatusCode::OK);
    // Explicit refresh.
    layer.refresh_keys().await.expect("refreshes");

    assert_eq!(server.fetches(), 4);
    assert_eq!(server.fetches_with_client_header(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_oversize_jwks_is_rejected_with_or_without_content_length() {
    let mut oversize = serde_json::to_value(jwks()).expect("JWKS JSON");
    oversize["padding"] = json!("x".repeat(8 * 1024));
    for chunked in [false, true] {
        let server = FakeJwks::start(&jwks()).await;
        server.set_body(oversize.to_string());
        server.set_chunked(chunked);
        let layer = remote_layer(&server)
            .with_max_jwks_size(4 * 1024)
            .expect("size");
        let response = send(&layer, request(Some(&valid_token()))).await;
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "chunked: {chunked}"
        );
        let error = layer.refresh_keys().await.expect_err("too large");
        assert_eq!(error.kind(), JwksErrorKind::TooLarge, "chunked: {chunked}");

        // The same key set without padding fits.
        server.publish(&jwks());
        layer.refresh_keys().await.expect("fits");
        assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn a_jwks_that_is_not_json_or_has_no_usable_key_keeps_the_last_good_keys() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    for (body, kind) in [
        ("<html>maintenance</html>", JwksErrorKind::InvalidJson),
        (r#"{"keys": []}"#, JwksErrorKind::NoUsableKeys),
        (
            r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#,
            JwksErrorKind::NoUsableKeys,
        ),
    ] {
        server.set_body(body.to_owned());
        let error = layer.refresh_keys().await.expect_err(body);
        assert_eq!(error.kind(), kind, "{body}");
        assert_eq!(
            status(&layer, &valid_token()).await,
            StatusCode::OK,
            "{body}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_key_removed_from_the_jwks_invalidates_the_tokens_it_verified() {
    let server = FakeJwks::start(&rotated_jwks()).await;
    let layer = remote_layer(&server);
    let old_token = valid_token();
    let new_token = signed(&keys().rotated, ROTATED_KID, &claims());
    assert_eq!(status(&layer, &old_token).await, StatusCode::OK);
    assert_eq!(status(&layer, &new_token).await, StatusCode::OK);

    server.publish(&Jwks {
        keys: vec![keys().rotated.jwk(ROTATED_KID)],
    });
    layer.refresh_keys().await.expect("refreshes");
    assert_eq!(status(&layer, &old_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&layer, &new_token).await, StatusCode::OK);

    // A key replaced under the same kid counts as removed too.
    server.publish(&Jwks {
        keys: vec![keys().attacker.jwk(ROTATED_KID)],
    });
    layer.refresh_keys().await.expect("refreshes");
    assert_eq!(status(&layer, &new_token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn header_urls_in_tokens_are_never_fetched() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    let mut header = header("attacker-kid");
    header["jku"] = json!(format!("{}/evil-jwks", server.base_url()));
    header["x5u"] = json!(format!("{}/evil-cert", server.base_url()));
    let token = forge(
        &header,
        &claims(),
        Some((
            &keys().attacker.signing,
            jwthenticator_core::Algorithm::RS256,
        )),
    );
    assert_eq!(status(&layer, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(server.other_requests(), 0);
    assert_eq!(server.fetches(), 1, "only the configured JWKS");
}

#[tokio::test(start_paused = true)]
async fn the_jwks_url_of_another_issuer_is_used_as_given() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = JwtAuth::from_jwks_url(server.jwks_url())
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER);
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let claims: Claims = serde_json::from_str(response.body()).expect("claims");
    assert_eq!(claims.identifier.to_string(), IDENTIFIER);
}
