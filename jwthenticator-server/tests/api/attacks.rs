//! The moves of a hostile review, each repeated against the defaults: a key minting tokens for
//! other identifiers, the internal API reached from elsewhere, racing and spoofing the failure
//! limits, replaying rotated refresh tokens, refreshing past the key, and slow connections.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::support::{Backend, Served, TestApp};

/// One HTTP/1.1 request on a new connection; the status code of the answer.
async fn raw_request(address: std::net::SocketAddr, head: &str, body: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

async fn a_key_mints_tokens_only_for_its_own_identifier_by_default(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (key, a) = app.register().await;
    let b = Uuid::new_v4();
    let (status, _) = app
        .post("/authenticate", json!({"key": key, "identifier": b}))
        .await;
    assert_eq!(status, 401, "A's key gets no JWT for B");
    let (status, tokens) = app
        .post("/authenticate", json!({"key": key, "identifier": a}))
        .await;
    assert_eq!(status, 200);
    let refresh_token = tokens["refresh_token"].as_str().expect("token");
    assert_eq!(
        app.refresh(refresh_token, b).await.0,
        401,
        "A's refresh token gets no JWT for B"
    );

    // Revoking B stops every token for B: no other key can mint one.
    let (b_key, b) = (format!("key-{}", Uuid::new_v4()), b);
    let (status, _) = app
        .post("/register_key", json!({"key": b_key, "identifier": b}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .post("/revoke_identifier", json!({"identifier": b}))
        .await;
    assert_eq!(status, 200);
    for key in [&key, &b_key] {
        let (status, _) = app
            .post("/authenticate", json!({"key": key, "identifier": b}))
            .await;
        assert_eq!(status, 401, "no key gets a JWT for a revoked identifier");
    }

    let lax = TestApp::with_args(backend, &["--strict-identifier", "false"]).await;
    let (key, _) = lax.register().await;
    let (status, _) = lax
        .post("/authenticate", json!({"key": key, "identifier": b}))
        .await;
    assert_eq!(
        status, 200,
        "STRICT_IDENTIFIER=false restores the original's behaviour"
    );
}

async fn the_internal_api_refuses_proxied_rebound_and_cross_site_requests(backend: Backend) {
    let served = Served::start(backend, &[]).await;
    let body =
        json!({"key": format!("key-{}", Uuid::new_v4()), "identifier": Uuid::new_v4()}).to_string();
    let register = |extra: &'static str| {
        let body = body.clone();
        let address = served.address;
        async move {
            let head = format!("POST /register_key HTTP/1.1{extra}");
            raw_request(address, &head, &body).await
        }
    };
    assert_eq!(
        register("").await,
        201,
        "a loopback client, as in the quick start"
    );
    for (extra, what) in [
        ("\r\nX-Forwarded-For: 198.51.100.7", "forwarded by a proxy"),
        (
            "\r\nForwarded: for=198.51.100.7",
            "forwarded by a proxy (RFC 7239)",
        ),
        ("\r\nOrigin: https://evil.example", "a page of another site"),
        ("\r\nSec-Fetch-Site: cross-site", "a cross-site fetch"),
    ] {
        assert_eq!(register(extra).await, 403, "{what}");
    }
    // DNS rebinding: the browser sends the attacker's host name.
    let mut stream = tokio::net::TcpStream::connect(served.address)
        .await
        .expect("connect");
    let request = format!(
        "POST /register_key HTTP/1.1\r\nHost: evil.example:8080\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.contains("ADMIN_TOKEN") && answer.contains("INTERNAL_PORT"),
        "the refusal names the settings: {answer}"
    );
    let metrics = raw_request(
        served.address,
        "GET /metrics HTTP/1.1\r\nX-Real-IP: 198.51.100.7",
        "",
    )
    .await;
    assert_eq!(metrics, 403, "/metrics is internal too");
    assert_eq!(
        raw_request(
            served.address,
            "GET /health HTTP/1.1\r\nX-Real-IP: 198.51.100.7",
            ""
        )
        .await,
        200,
        "the external API is not affected"
    );
}

async fn a_short_admin_token_is_refused_at_start(backend: Backend) {
    let database = crate::support::Database::new(backend).await;
    let config = crate::support::config(&database.url, &["--admin-token", "0123456789abcdef"]);
    let err = jwthenticator_server::App::new(&config)
        .await
        .expect_err("a 16-character admin token");
    assert!(err.to_string().contains("ADMIN_TOKEN"), "{err}");
}

async fn is_key_registered_counts_against_the_failure_limits(backend: Backend) {
    let served = Served::start(backend, &["--auth-failures-per-address", "3"]).await;
    let ask = |key: String| {
        let address = served.address;
        async move {
            let body = json!({ "key": key }).to_string();
            raw_request(address, "POST /is_key_registered HTTP/1.1", &body).await
        }
    };
    for _ in 0..3 {
        assert_eq!(ask(format!("guess-{}", Uuid::new_v4())).await, 200);
    }
    assert_eq!(
        ask("guess".to_owned()).await,
        429,
        "an oracle for keys is limited too"
    );
}

async fn concurrent_guesses_never_pass_the_limit(backend: Backend) {
    let app = TestApp::with_args(backend, &["--auth-failures-per-identifier", "10"]).await;
    let (_, identifier) = app.register().await;
    let guesses = (0..150).map(|i| {
        app.post(
            "/authenticate",
            json!({"key": format!("guess-{i}"), "identifier": identifier}),
        )
    });
    let statuses: Vec<u16> = join_all(guesses)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let decided = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((decided, limited), (10, 140), "{statuses:?}");
}

async fn concurrent_correct_requests_are_not_limited(backend: Backend) {
    let app = TestApp::with_args(backend, &["--auth-failures-per-identifier", "3"]).await;
    let (key, identifier) = app.register().await;
    let logins = (0..20).map(|_| {
        app.post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
    });
    let statuses: Vec<u16> = join_all(logins).await.into_iter().map(|(s, _)| s).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

async fn a_spoofed_or_garbage_forwarding_header_does_not_escape_the_limit(backend: Backend) {
    let served = Served::start(
        backend,
        &[
            "--auth-failures-per-address",
            "3",
            "--auth-failures-per-identifier",
            "0",
            "--client-ip-header",
            "X-Forwarded-For",
            "--trusted-proxies",
            "127.0.0.1",
        ],
    )
    .await;
    let guess = |forwarded: String| {
        let address = served.address;
        async move {
            let body = json!({"key": "guess", "identifier": Uuid::new_v4()}).to_string();
            let head = format!("POST /authenticate HTTP/1.1\r\nX-Forwarded-For: {forwarded}");
            raw_request(address, &head, &body).await
        }
    };
    // The leftmost hops are the client's to choose; garbage or ip:port must not mean "no limit".
    let statuses = [
        guess("garbage".to_owned()).await,
        guess("not-an-address".to_owned()).await,
        guess(String::new()).await,
        guess("999.1.1.1:80".to_owned()).await,
    ];
    assert_eq!(
        statuses,
        [401, 401, 401, 429],
        "garbage counts for the proxy's address"
    );
    for i in 0..3 {
        guess(format!("10.9.9.{i}, 198.51.100.20")).await;
    }
    assert_eq!(
        guess("10.9.9.99, 198.51.100.20".to_owned()).await,
        429,
        "a client-chosen first hop does not reset the count of the real client"
    );
    assert_eq!(
        guess("198.51.100.21:4711".to_owned()).await,
        401,
        "ip:port is understood, and another client is not affected"
    );
}

async fn someone_elses_failures_do_not_lock_out_a_correct_client(backend: Backend) {
    let app = TestApp::with_args(backend, &["--client-ip-header", "X-Real-IP"]).await;
    let (key, victim) = app.register().await;
    for _ in 0..30 {
        let response = app
            .client
            .post("/refresh")
            .header("X-Real-IP", "198.51.100.66")
            .body_json(&json!({"refresh_token": "bogus", "identifier": victim}))
            .send()
            .await;
        assert!(matches!(response.0.status().as_u16(), 401 | 429));
    }
    let response = app
        .client
        .post("/authenticate")
        .header("X-Real-IP", "192.0.2.10")
        .body_json(&json!({"key": key, "identifier": victim}))
        .send()
        .await;
    assert_eq!(
        response.0.status().as_u16(),
        200,
        "the victim is not locked out"
    );
}

async fn every_refusal_looks_the_same_to_the_client(backend: Backend) {
    let app = TestApp::with_args(backend, &["--auth-failures-per-identifier", "0"]).await;
    let (revoked_key, revoked_for) = app.register().await;
    app.post("/revoke_key", json!({"key": revoked_key})).await;
    let (key, identifier) = app.register().await;
    let answers = [
        app.post(
            "/authenticate",
            json!({"key": "unknown-key-0123456789", "identifier": identifier}),
        )
        .await,
        app.post(
            "/authenticate",
            json!({"key": revoked_key, "identifier": revoked_for}),
        )
        .await,
        app.post(
            "/authenticate",
            json!({"key": key, "identifier": Uuid::new_v4()}),
        )
        .await,
    ];
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0].0, 401);
}

/// Each replay of a rotated token within the grace window gets the successor it was rotated
/// into, not a new chain: the attacker and the client cannot both live on.
async fn a_replay_within_the_grace_window_returns_the_same_successor(backend: Backend) {
    let app = TestApp::with_args(backend, &["--rotate-refresh-tokens"]).await;
    let (_, first, identifier) = app.authenticate().await;
    let (_, rotated) = app.refresh(&first, identifier).await;
    let successor = rotated["refresh_token"]
        .as_str()
        .expect("successor")
        .to_owned();
    let replays = join_all((0..5).map(|_| app.refresh(&first, identifier))).await;
    for (status, body) in &replays {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["refresh_token"].as_str(), Some(successor.as_str()));
    }
    assert_eq!(app.refresh(&successor, identifier).await.0, 200);
    assert_eq!(
        app.refresh(&first, identifier).await.0,
        401,
        "once the successor is used, a replay is reuse"
    );
    assert_eq!(
        app.refresh(&successor, identifier).await.0,
        401,
        "the family is revoked"
    );
}

/// Family revocation is atomic with rotation: while a refresher rotates its chain as fast as
/// it can, a reuse of an old token revokes the family, and the chain's newest token is dead.
async fn a_family_revocation_never_misses_a_rotation_in_flight(backend: Backend) {
    let app = std::sync::Arc::new(TestApp::with_args(backend, &["--rotate-refresh-tokens"]).await);
    for trial in 0..12 {
        let (_, first, identifier) = app.authenticate().await;
        let (_, rotated) = app.refresh(&first, identifier).await;
        let second = rotated["refresh_token"]
            .as_str()
            .expect("second")
            .to_owned();
        let newest = std::sync::Arc::new(std::sync::Mutex::new(second));
        let rotations = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let refresher = {
            let (app, newest, rotations) = (app.clone(), newest.clone(), rotations.clone());
            tokio::spawn(async move {
                for _ in 0..1_000 {
                    let current = newest.lock().expect("lock").clone();
                    let (status, body) = app.refresh(&current, identifier).await;
                    if status != 200 {
                        return;
                    }
                    let next = body["refresh_token"].as_str().expect("rotated").to_owned();
                    *newest.lock().expect("lock") = next;
                    rotations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        // Once the family has moved past `first`'s successor, presenting `first` is reuse;
        // the refresher is then in the middle of its chain, at a point that varies by trial.
        while rotations.load(std::sync::atomic::Ordering::SeqCst) < 2 + trial {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(app.refresh(&first, identifier).await.0, 401, "reuse");
        refresher.await.expect("refresher");
        let last = newest.lock().expect("lock").clone();
        assert_eq!(
            app.refresh(&last, identifier).await.0,
            401,
            "trial {trial}: the chain's newest token outlived the family revocation"
        );
    }
}

async fn refresh_stops_with_the_key_and_rotation_does_not_extend_the_family(backend: Backend) {
    let app = TestApp::with_args(backend, &["--key-expiry", "2"]).await;
    let (_, refresh_token, identifier) = app.authenticate().await;
    assert_eq!(app.refresh(&refresh_token, identifier).await.0, 200);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(
        app.refresh(&refresh_token, identifier).await.0,
        401,
        "the key has expired, so its refresh tokens no longer refresh"
    );

    let app = TestApp::with_args(
        backend,
        &["--rotate-refresh-tokens", "--refresh-token-expiry", "3"],
    )
    .await;
    let (_, first, identifier) = app.authenticate().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, rotated) = app.refresh(&first, identifier).await;
    assert_eq!(status, 200);
    let successor = rotated["refresh_token"]
        .as_str()
        .expect("successor")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(2_600)).await;
    assert_eq!(
        app.refresh(&successor, identifier).await.0,
        401,
        "the successor expires with its family, not a full lifetime after the rotation"
    );
}

async fn slow_and_idle_connections_are_closed(backend: Backend) {
    let served = Served::start(
        backend,
        &[
            "--header-read-timeout",
            "1",
            "--keep-alive-timeout",
            "2",
            "--request-timeout",
            "1",
        ],
    )
    .await;
    let connect = || tokio::net::TcpStream::connect(served.address);
    let closed_within = |mut stream: tokio::net::TcpStream, limit: Duration| async move {
        let mut answer = Vec::new();
        tokio::time::timeout(limit, stream.read_to_end(&mut answer))
            .await
            .expect("the server closed the connection in time")
            .expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    };

    let mut partial = connect().await.expect("connect");
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("send");
    assert_eq!(
        closed_within(partial, Duration::from_secs(4)).await,
        "",
        "partial headers"
    );

    let mut idle = connect().await.expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let answer = closed_within(idle, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "answered, then closed when idle: {answer}"
    );

    let mut slow_body = connect().await.expect("connect");
    slow_body
        .write_all(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
        .await
        .expect("send");
    let answer = closed_within(slow_body, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a body that never completes: {answer}"
    );
}

async fn connections_beyond_the_cap_wait_for_a_free_one(backend: Backend) {
    let served = Served::start(backend, &["--max-connections", "2"]).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(served.address)
            .await
            .expect("connect");
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("send");
        let mut buffer = [0u8; 12];
        stream.read_exact(&mut buffer).await.expect("answered");
        held.push(stream);
    }
    let third = raw_request(served.address, "GET /health HTTP/1.1", "");
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), third.as_mut())
            .await
            .is_err(),
        "a third connection waits while two are open"
    );
    held.clear();
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served");
    assert_eq!(status, 200);
}

on_both_backends!(
    a_key_mints_tokens_only_for_its_own_identifier_by_default,
    the_internal_api_refuses_proxied_rebound_and_cross_site_requests,
    a_short_admin_token_is_refused_at_start,
    is_key_registered_counts_against_the_failure_limits,
    concurrent_guesses_never_pass_the_limit,
    concurrent_correct_requests_are_not_limited,
    a_spoofed_or_garbage_forwarding_header_does_not_escape_the_limit,
    someone_elses_failures_do_not_lock_out_a_correct_client,
    every_refusal_looks_the_same_to_the_client,
    a_replay_within_the_grace_window_returns_the_same_successor,
    refresh_stops_with_the_key_and_rotation_does_not_extend_the_family,
    slow_and_idle_connections_are_closed,
    connections_beyond_the_cap_wait_for_a_free_one,
);

mod a_family_revocation_never_misses_a_rotation_in_flight {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_family_revocation_never_misses_a_rotation_in_flight(
            crate::support::Backend::Sqlite,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::a_family_revocation_never_misses_a_rotation_in_flight(
            crate::support::Backend::Postgres,
        )
        .await;
    }
}
