//! The JWKS cache against a fake JWKS server on loopback that counts fetches, with paused
//! Tokio time: first fetch, rotation, floods of unknown `kid`s, outages and stale keys, hanging
//! servers, refresh schedule, custom client, size limit and invalidation of cached tokens.

use std::time::Duration;

use futures_util::future::join_all;
use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, StatusCode};
use jwthenticator_core::{Claims, Jwks};
use jwthenticator_tower::{AuthError, AuthErrorKind, JwksErrorKind, JwtAuth};
use serde_json::json;

use crate::fake_jwks::{CLIENT_HEADER, FakeJwks, hanging_jwks_url};
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
async fn a_key_published_right_after_the_first_fetch_is_accepted_on_its_first_request() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    // The issuer restarts with a new key, or publishes its next one, a second later.
    tokio::time::advance(Duration::from_secs(1)).await;
    server.publish(&rotated_jwks());
    let new_token = signed(&keys().rotated, ROTATED_KID, &claims());
    assert_eq!(status(&layer, &new_token).await, StatusCode::OK);
    assert_eq!(server.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_refetch_that_found_its_kid_does_not_delay_the_next_new_key() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    server.publish(&rotated_jwks());
    let rotated_token = signed(&keys().rotated, ROTATED_KID, &claims());
    assert_eq!(status(&layer, &rotated_token).await, StatusCode::OK);

    // Two seconds later a third key appears (the test's "attacker" key, published by the
    // issuer this time).
    tokio::time::advance(Duration::from_secs(2)).await;
    let mut three_keys = rotated_jwks();
    three_keys.keys.push(keys().attacker.jwk("key-3"));
    server.publish(&three_keys);
    let third_token = signed(&keys().attacker, "key-3", &claims());
    assert_eq!(status(&layer, &third_token).await, StatusCode::OK);
    assert_eq!(server.fetches(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_unknown_kids_right_after_the_first_fetch_costs_one_fetch() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    for burst in 0..3 {
        let tokens: Vec<String> = (0..1_000).map(token_with_unknown_kid).collect();
        let statuses = join_all(tokens.iter().map(|token| status(&layer, token))).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED),
            "burst {burst}"
        );
        assert_eq!(server.fetches(), 2, "burst {burst}");
    }
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

/// `per_minute` requests at the end of each of the next `minutes` minutes (plus the few
/// milliseconds that letting background fetches finish takes), each expected to pass.
async fn pass_every_minute(server: &FakeJwks, layer: &JwtAuth, minutes: u32, per_minute: u32) {
    for minute in 1..=minutes {
        pass_after(server, layer, Duration::from_secs(60), per_minute, minute).await;
    }
}

async fn pass_after(server: &FakeJwks, layer: &JwtAuth, wait: Duration, n: u32, label: u32) {
    tokio::time::advance(wait).await;
    server.settle().await;
    for _ in 0..n {
        assert_eq!(
            status(layer, &valid_token()).await,
            StatusCode::OK,
            "minute {label}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn by_default_stale_keys_serve_ten_minutes_past_their_refresh_time_then_503() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    assert_eq!(server.fetches(), 1);

    server.set_down(true);
    // The keys are due for refresh at 5:00; that refresh and its retries fail, and requests
    // pass, with a cached token and with tokens verified afresh, until 15:00.
    pass_every_minute(&server, &layer, 14, 1).await;
    pass_after(&server, &layer, Duration::from_secs(30), 1, 14).await;
    // The retries back off from 30 s up to the 5 min interval: 5:00, 5:30, 6:30, 8:30, 12:30.
    assert_eq!(server.fetches() - 1, 5, "failed refreshes");

    tokio::time::advance(Duration::from_secs(31)).await;
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
async fn the_staleness_bound_is_configurable() {
    let server = FakeJwks::start(&jwks()).await;
    let layer = remote_layer(&server).with_max_staleness(Duration::from_secs(60));
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    server.set_down(true);
    // Due at 5:00, kept until 6:00.
    pass_every_minute(&server, &layer, 5, 1).await;
    pass_after(&server, &layer, Duration::from_secs(30), 1, 5).await;
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        status(&layer, &valid_token()).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test(start_paused = true)]
async fn every_stale_use_is_counted_and_logged_at_most_once_a_minute() {
    let logs = CapturedLogs::global();
    #[cfg(feature = "metrics")]
    let metrics = StaleUseCounter::default();
    #[cfg(feature = "metrics")]
    let _metrics = metrics::set_default_local_recorder(&metrics);

    let server = FakeJwks::start(&jwks()).await;
    let stale_lines = || logs.lines(&[STALE_LOG, &server.jwks_url()]);
    let layer = remote_layer(&server);
    assert_eq!(status(&layer, &valid_token()).await, StatusCode::OK);
    server.set_down(true);
    // Until 5:00 the keys are fresh, whether or not the server is up.
    pass_every_minute(&server, &layer, 4, 3).await;
    assert_eq!(stale_lines(), Vec::<String>::new());

    // Due at 5:00, the refresh fails; three requests a minute from 5:00 to 14:00 use stale keys.
    pass_every_minute(&server, &layer, 10, 3).await;
    let lines = stale_lines();
    assert_eq!(lines.len(), 10, "one line a minute: {lines:#?}");
    assert!(lines[1].contains("uses=3"), "{lines:#?}");
    #[cfg(feature = "metrics")]
    assert_eq!(metrics.count(&server.base_url()), 30, "every use counted");

    // A successful refresh ends it.
    server.set_down(false);
    layer.refresh_keys().await.expect("refreshes");
    pass_every_minute(&server, &layer, 2, 3).await;
    assert_eq!(stale_lines().len(), 10);
    #[cfg(feature = "metrics")]
    assert_eq!(metrics.count(&server.base_url()), 30);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_jwks_server_costs_a_request_the_fetch_deadline_then_503() {
    let (url, accepted) = hanging_jwks_url().await;
    // A client without any timeout of its own.
    let layer = JwtAuth::from_jwks_url(&url).with_http_client(reqwest::Client::new());
    let started = tokio::time::Instant::now();
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        send(&layer, request(Some(&valid_token()))),
    )
    .await
    .expect("an answer within 60 s");
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(RETRY_AFTER));
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::KeysUnavailable)
    );
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(6)).contains(&waited),
        "the 5 s default deadline: {waited:?}"
    );
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);

    let layer = layer
        .with_fetch_timeout(Duration::from_secs(2))
        .expect("timeout");
    let started = tokio::time::Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(60), layer.refresh_keys())
        .await
        .expect("within 60 s")
        .expect_err("no answer");
    assert_eq!(error.kind(), JwksErrorKind::Timeout);
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(3)).contains(&started.elapsed()),
        "{:?}",
        started.elapsed()
    );
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
