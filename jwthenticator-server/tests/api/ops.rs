//! What operators look at: metrics that move, readiness that follows the database, request ids.

use serde_json::json;
use sqlx::Connection;

use crate::support::{Backend, TestApp, postgres_admin_url};

/// The sum of the samples of `metric` whose labels contain every `label="value"` given (other
/// tests in this process add series of their own, so one series cannot be singled out by
/// position).
fn sample(scrape: &str, metric: &str, labels: &[&str]) -> f64 {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.split(['{', ' ']).next() == Some(metric))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get("/metrics").send().await;
    response.assert_status_is_ok();
    response.0.into_body().into_string().await.expect("text")
}

async fn metrics_move_as_requests_are_made(backend: Backend) {
    let app = TestApp::new(backend).await;
    let before = scrape(&app).await;
    let (jwt, _, _) = app.authenticate().await;
    app.post(
        "/authenticate",
        json!({"key": "wrong", "identifier": uuid::Uuid::new_v4()}),
    )
    .await;
    app.post("/validate", json!({"jwt": jwt})).await;
    app.post("/validate", json!({"jwt": "x.y.z"})).await;
    let after = scrape(&app).await;

    // The recorder is shared by every test in this process, so counters only grow: compare
    // deltas with at-least.
    let grew = |metric: &str, labels: &[&str]| {
        sample(&after, metric, labels) - sample(&before, metric, labels)
    };
    assert!(
        grew(
            "jwthenticator_token_requests_total",
            &[r#"operation="authenticate""#, r#"outcome="issued""#]
        ) >= 1.0,
        "{after}"
    );
    assert!(
        grew(
            "jwthenticator_token_refusals_total",
            &[r#"reason="unknown_key""#]
        ) >= 1.0
    );
    assert!(
        grew(
            "jwthenticator_validations_total",
            &[r#"endpoint="validate""#, r#"outcome="valid""#]
        ) >= 1.0
    );
    assert!(
        grew(
            "jwthenticator_validations_total",
            &[
                r#"endpoint="validate""#,
                r#"outcome="invalid""#,
                r#"reason="malformed""#
            ]
        ) >= 1.0
    );
    assert!(
        grew(
            "http_requests_total",
            &[r#"route="/authenticate""#, r#"status="200""#]
        ) >= 1.0
    );
    assert!(
        grew(
            "http_request_duration_seconds_count",
            &[r#"route="/validate""#]
        ) >= 2.0
    );
    assert!(
        grew(
            "jwthenticator_db_query_duration_seconds_count",
            &[r#"operation="find_key""#]
        ) >= 2.0
    );
    if backend == Backend::Postgres {
        assert!(
            grew(
                "jwthenticator_db_batch_size_count",
                &[r#"statement="insert_refresh_token""#]
            ) >= 1.0,
            "{after}"
        );
    }
    for gauge in [
        "jwthenticator_db_pool_connections{",
        "jwthenticator_db_pool_max_connections",
        "jwthenticator_signing_key_age_seconds",
        "jwthenticator_build_info{",
    ] {
        assert!(after.contains(gauge), "{gauge} missing:\n{after}");
    }
}

/// Made-up methods and paths (a scanner, or `/validate_request`, which answers every method)
/// add no series: every label value comes from a fixed set.
async fn made_up_methods_and_paths_add_no_metric_series(backend: Backend) {
    let app = TestApp::new(backend).await;
    for i in 0..5_000 {
        let method = poem::http::Method::from_bytes(format!("MADEUP{i}").as_bytes())
            .expect("a valid method token");
        app.client.request(method, "/validate_request").send().await;
        app.client.get(format!("/scan/{i}")).send().await;
    }
    let long = poem::http::Method::from_bytes("X".repeat(10_000).as_bytes()).expect("method");
    app.client.request(long, "/validate_request").send().await;
    let scraped = scrape(&app).await;
    assert!(
        !scraped.contains("MADEUP"),
        "a made-up method became a label"
    );
    assert!(!scraped.contains("/scan/"), "a raw path became a label");
    assert!(!scraped.contains("XXXX"), "a long method became a label");
    let series = scraped
        .lines()
        .filter(|line| line.starts_with("http_requests_total{"))
        .count();
    // Routes x known methods x statuses of the whole test binary: far below 10,000.
    assert!(series < 300, "{series} series of http_requests_total");
    assert!(
        sample(
            &scraped,
            "http_requests_total",
            &[r#"method="other""#, r#"route="/validate_request""#]
        ) >= 5_000.0,
        "made-up methods are counted as other"
    );
}

async fn metrics_sit_with_the_internal_api(backend: Backend) {
    let token = "t0ken-of-the-operators-32-chars!";
    let app = TestApp::with_args(backend, &["--admin-token", token]).await;
    assert_eq!(
        app.client.get("/metrics").send().await.0.status().as_u16(),
        401
    );
    let response = app
        .client
        .get("/metrics")
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await;
    response.assert_status_is_ok();
    let split = TestApp::with_args(backend, &["--internal-port", "18998"]).await;
    assert_eq!(
        split
            .client
            .get("/metrics")
            .send()
            .await
            .0
            .status()
            .as_u16(),
        404,
        "not on the external listener"
    );
    let internal = poem::test::TestClient::new(split.app.internal_endpoint().expect("internal"));
    internal.get("/metrics").send().await.assert_status_is_ok();
}

async fn request_ids_are_echoed_or_generated(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app
        .client
        .get("/health")
        .header("X-Request-Id", "req-42")
        .send()
        .await;
    assert_eq!(response.0.headers()["x-request-id"], "req-42");
    let response = app.client.get("/health").send().await;
    let generated = response.0.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    let response = app
        .client
        .get("/health")
        .header("X-Request-Id", "bad id with spaces")
        .send()
        .await;
    assert_ne!(
        response.0.headers()["x-request-id"],
        "bad id with spaces",
        "unsafe ids are replaced"
    );
}

#[tokio::test]
async fn readiness_follows_the_database_and_recovers_without_a_restart() {
    let app = TestApp::new(Backend::Postgres).await;
    let ready = || async {
        app.client
            .get("/health/ready")
            .send()
            .await
            .0
            .status()
            .as_u16()
    };
    assert_eq!(ready().await, 200);

    let name = app
        .database
        .url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned();
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
        .await
        .expect("admin");
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .expect("block");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .expect("terminate");
    let response = app.client.get("/health/ready").send().await;
    assert_eq!(response.0.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.value().deserialize();
    assert_eq!(body["result"], false);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("database")),
        "{body}"
    );
    assert_eq!(
        app.client.get("/health").send().await.0.status().as_u16(),
        200,
        "liveness is unaffected"
    );

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .expect("unblock");
    let mut status = 0;
    for _ in 0..50 {
        status = ready().await;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = TestApp::new(Backend::Sqlite).await;
    let response = app.client.get("/docs").send().await;
    response.assert_status_is_ok();
    let html = response.0.into_body().into_string().await.expect("html");
    assert!(html.contains("swagger-ui"), "Swagger UI");
    assert!(!html.contains("cdn") && !html.contains("unpkg"), "no CDN");
}

on_both_backends!(
    metrics_move_as_requests_are_made,
    metrics_sit_with_the_internal_api,
    made_up_methods_and_paths_add_no_metric_series,
    request_ids_are_echoed_or_generated,
);
