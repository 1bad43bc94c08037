//! Many stateless replicas on one PostgreSQL: shared signing keys, shared refresh tokens and
//! revocations, key rotation under load, and a database outage.

mod faults;
mod limits;
mod rolling;
mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use jwthenticator_reqwest::JwtAuthMiddleware;
use jwthenticator_tests::{PgDatabase, enroll, post_json as post};
use jwthenticator_tower::JwtAuth;
use serde_json::{Value, json};
use support::{Nginx, OwnCluster, replicas};

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64");
    let header: Value = serde_json::from_slice(&bytes).expect("json");
    header["kid"].as_str().expect("kid").to_owned()
}

async fn jwks_kids(client: &reqwest::Client, base: &str) -> BTreeSet<String> {
    let jwks: Value = client
        .get(format!("{base}/jwks"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

async fn serve(app: Router) -> String {
    format!("http://{}", jwthenticator_test_support::serve(app))
}

#[tokio::test]
async fn three_replicas_behind_nginx_share_keys_tokens_and_revocations() {
    let database = PgDatabase::create("jwt_scale").await;
    // Behind a proxy the internal API is not "loopback": it needs the admin token.
    let admin_token = "scale-out-admin-token-0123456789abcdef";
    let servers = replicas(
        &database.url("postgres"),
        3,
        &[("ADMIN_TOKEN", admin_token)],
    )
    .await;
    let nginx = Nginx::round_robin(&servers).await;
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {admin_token}");
    headers.insert(
        reqwest::header::AUTHORIZATION,
        bearer.parse().expect("header value"),
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("client");

    let kids: Vec<BTreeSet<String>> =
        futures_util::future::join_all(servers.iter().map(|s| jwks_kids(&client, s.base_url())))
            .await;
    assert!(
        kids.iter().all(|k| *k == kids[0]),
        "every replica publishes the same JWKS: {kids:?}"
    );

    // Tokens issued through nginx come from every replica in turn; each validates everywhere.
    let protected = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(JwtAuth::new(&nginx.url)),
    )
    .await;
    let mut refresh_tokens = Vec::new();
    for _ in 0..6 {
        let enrolled = enroll(&client, &nginx.url).await;
        let (identifier, jwt, refresh_token) =
            (enrolled.identifier, enrolled.jwt, enrolled.refresh_token);
        for server in &servers {
            let (status, _) = post(&client, server.url("/validate"), json!({"jwt": jwt})).await;
            assert_eq!(status, 200, "a token validates at every replica");
        }
        let status = client
            .get(&protected)
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status.as_u16(), 200, "and in the tower layer");
        refresh_tokens.push((identifier, refresh_token));
    }
    let issued_by: BTreeSet<usize> = servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.logs().contains("tokens issued"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        issued_by.len(),
        3,
        "nginx spread the authentications over the three replicas"
    );

    // A refresh token from any replica refreshes at another.
    for (i, (identifier, refresh_token)) in refresh_tokens.iter().enumerate() {
        let other = &servers[(i + 1) % servers.len()];
        let (status, _) = post(
            &client,
            other.url("/refresh"),
            json!({"refresh_token": refresh_token, "identifier": identifier}),
        )
        .await;
        assert_eq!(status, 200);
    }

    // A revocation at one replica is seen by the others at once.
    let enrolled = enroll(&client, servers[0].base_url()).await;
    let (key, identifier, refresh_token) =
        (enrolled.key, enrolled.identifier, enrolled.refresh_token);
    let (status, body) = post(&client, servers[2].url("/revoke_key"), json!({"key": key})).await;
    assert_eq!((status, body["keys_revoked"].as_u64()), (200, Some(1)));
    for server in &servers[..2] {
        let (status, _) = post(
            &client,
            server.url("/authenticate"),
            json!({"key": key, "identifier": identifier}),
        )
        .await;
        assert_eq!(status, 401);
        let (status, _) = post(
            &client,
            server.url("/refresh"),
            json!({"refresh_token": refresh_token, "identifier": identifier}),
        )
        .await;
        assert_eq!(status, 401);
    }
    nginx.stop().await;
    drop(servers);
}

#[tokio::test]
async fn clients_and_services_see_no_failure_while_the_key_rotates_twice() {
    let database = PgDatabase::create("jwt_scale").await;
    let rotation = [
        ("KEY_ROTATION_PERIOD", "3"),
        ("KEY_ROTATION_PREPUBLISH", "2"),
        ("KEY_REFRESH_INTERVAL", "1"),
        ("JWT_LEASE_TIME", "4"),
    ];
    let servers = replicas(&database.url("postgres"), 2, &rotation).await;
    let client = reqwest::Client::new();
    let enrolled = enroll(&client, servers[0].base_url()).await;
    let (key, identifier) = (enrolled.key, enrolled.identifier);

    // The service verifies against one replica's JWKS, the client gets its tokens from the other.
    let layer = JwtAuth::new(servers[1].base_url())
        .with_refetch_cooldown(Duration::from_millis(500))
        .with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(2))
        .expect("bounds");
    let service = serve(
        Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(layer),
    )
    .await;
    let kids = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = kids.clone();
    let auth = JwtAuthMiddleware::builder(servers[0].base_url(), identifier)
        .with_key(key)
        .with_allowed_hosts(["127.0.0.1"])
        .with_refresh_margin(Duration::from_secs(1))
        .with_token_listener(move |tokens| {
            if let Some(jwt) = tokens.jwt() {
                seen.lock().expect("lock").insert(kid_of(jwt));
            }
        })
        .build()
        .expect("middleware");
    let device = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();

    let started = Instant::now();
    let (mut ok, mut failed) = (0u32, Vec::new());
    while started.elapsed() < Duration::from_secs(12) {
        match device.get(&service).send().await {
            Ok(response) if response.status().is_success() => ok += 1,
            Ok(response) => failed.push(response.status().to_string()),
            Err(err) => failed.push(err.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kids = kids.lock().expect("lock").clone();
    println!(
        "rotation under load: {ok} requests succeeded, {} failed, {} signing keys seen",
        failed.len(),
        kids.len()
    );
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {failed:?}",
        failed.len(),
        ok as usize + failed.len()
    );
    assert!(
        kids.len() >= 3,
        "the key rotated at least twice during the run: {kids:?}"
    );
    assert!(ok > 100, "the loop ran: {ok} requests");
    drop(servers);
}

#[tokio::test]
async fn a_database_outage_keeps_validation_up_and_recovers_without_a_restart() {
    let cluster = OwnCluster::start().await;
    let server = jwthenticator_tests::TestServer::builder(support::BINARY)
        .env("DATABASE_URL", cluster.url())
        .env("KEY_ENCRYPTION_SECRET", support::SECRET)
        .env("KEY_REFRESH_INTERVAL", "1")
        .start()
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let enrolled = enroll(&client, server.base_url()).await;
    let (key, identifier, jwt) = (enrolled.key, enrolled.identifier, enrolled.jwt);
    let auth = json!({"key": key, "identifier": identifier});

    // A bounded load through the whole outage: validations and authentications, every status
    // recorded, every refresh token handed out kept to be checked afterwards.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, stop, auth, jwt) = (client.clone(), stop.clone(), auth.clone(), jwt.clone());
        let (validate, authenticate) = (server.url("/validate"), server.url("/authenticate"));
        tokio::spawn(async move {
            let (mut validations, mut authentications, mut issued) =
                (Vec::new(), Vec::new(), Vec::new());
            let started = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && started.elapsed() < Duration::from_secs(60)
            {
                validations.push(post(&client, validate.clone(), json!({"jwt": jwt})).await.0);
                let (status, body) = post(&client, authenticate.clone(), auth.clone()).await;
                authentications.push(status);
                if let Some(token) = body["refresh_token"].as_str() {
                    issued.push(token.to_owned());
                }
            }
            (validations, authentications, issued)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.down().await;
    let (status, body) = post(&client, server.url("/authenticate"), auth.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    let (status, _) = post(
        &client,
        server.url("/register_key"),
        json!({"key": "a-second-device-key", "identifier": identifier}),
    )
    .await;
    assert_eq!(status, 503);
    let ready = client
        .get(server.url("/health/ready"))
        .send()
        .await
        .expect("ready")
        .status()
        .as_u16();
    assert_eq!(ready, 503);
    for _ in 0..20 {
        assert_eq!(
            post(&client, server.url("/validate"), json!({"jwt": jwt}))
                .await
                .0,
            200,
            "validation answers from memory"
        );
        let status = client
            .get(server.url("/validate_request"))
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("request")
            .status();
        assert_eq!(status.as_u16(), 200);
        let status = client
            .get(server.url("/jwks"))
            .send()
            .await
            .expect("jwks")
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    tokio::time::sleep(Duration::from_secs(6)).await; // the load and the key refresher run on meanwhile

    cluster.up().await;
    let mut ready = 0;
    for _ in 0..100 {
        ready = client
            .get(server.url("/health/ready"))
            .send()
            .await
            .expect("ready")
            .status()
            .as_u16();
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ready, 200, "ready again without a restart");
    let (status, tokens) = post(&client, server.url("/authenticate"), auth).await;
    assert_eq!(status, 200);
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");
    let (status, _) = post(
        &client,
        server.url("/refresh"),
        json!({"refresh_token": refresh_token, "identifier": identifier}),
    )
    .await;
    assert_eq!(status, 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (validations, authentications, issued) = load.await.expect("load");
    let unavailable = authentications.iter().filter(|s| **s == 503).count();
    println!(
        "outage: {} validations (all 200: {}), {} authentications ({} issued, {unavailable} answered 503)",
        validations.len(),
        validations.iter().all(|s| *s == 200),
        authentications.len(),
        issued.len()
    );
    assert!(
        validations.iter().all(|s| *s == 200),
        "validation never failed: {validations:?}"
    );
    assert!(
        authentications.iter().all(|s| *s == 200 || *s == 503),
        "only 200 or 503: {authentications:?}"
    );
    assert!(unavailable > 0, "the load ran while the database was down");
    for token in &issued {
        let (status, _) = post(
            &client,
            server.url("/refresh"),
            json!({"refresh_token": token, "identifier": identifier}),
        )
        .await;
        assert_eq!(status, 200, "every refresh token handed out was stored");
    }
    let logs = server.logs();
    assert!(
        !logs.contains("status=500"),
        "no request ended in a 500:\n{logs}"
    );
}
