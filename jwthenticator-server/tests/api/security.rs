//! Revocation, refresh-token rotation with reuse detection, identifier binding, failure limits,
//! and admin protection, on both backends.

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Backend, TestApp};

async fn revoking_a_key_stops_it_and_its_refresh_tokens_at_once(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (key, identifier) = app.register().await;
    let (_, tokens) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    let refresh_token = tokens["refresh_token"].as_str().expect("refresh token");

    let (status, body) = app.post("/revoke_key", json!({"key": key})).await;
    assert_eq!(
        (status, body),
        (200, json!({"keys_revoked": 1, "refresh_tokens_revoked": 1}))
    );
    let (status, body) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("the key is not valid for this identifier"))
    );
    let (status, _) = app.refresh(refresh_token, identifier).await;
    assert_eq!(status, 401, "the key's refresh tokens died with it");

    let (status, body) = app
        .post(
            "/register_key",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("key_revoked")),
        "revoked keys stay revoked"
    );
    let (status, body) = app.post("/revoke_key", json!({"key": key})).await;
    assert_eq!(
        (status, body["keys_revoked"].as_u64()),
        (200, Some(0)),
        "nothing left to revoke"
    );
}

async fn keys_are_listed_without_the_key_and_revocable_by_id(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (key, identifier) = app.register().await;
    let response = app
        .client
        .get(format!("/keys?identifier={identifier}"))
        .send()
        .await;
    response.assert_status_is_ok();
    let listed: Value = response.json().await.value().deserialize();
    let entry = &listed["keys"][0];
    let mut fields: Vec<&str> = entry
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "expires_at",
            "id",
            "identifier",
            "key_hash_scheme",
            "revoked_at"
        ],
        "no hash material: {entry}"
    );
    assert_eq!(entry["key_hash_scheme"], "hmac-sha512");
    assert_eq!(entry["identifier"], json!(identifier));
    assert_eq!(entry["revoked_at"], Value::Null);
    assert!(
        !listed.to_string().contains(&key),
        "the key itself is never listed"
    );
    let text = listed.to_string();
    let keyed = app.app.state().key_hasher().hashes(&key).current;
    for hash in [jwthenticator_server::store::hash_secret(&key), keyed] {
        assert!(
            !text.contains(&hash[..8]),
            "no part of a hash is listed: {text}"
        );
    }

    let id = entry["id"].as_i64().expect("id");
    let (status, body) = app.post("/revoke_key", json!({"key_id": id})).await;
    assert_eq!((status, body["keys_revoked"].as_u64()), (200, Some(1)));
    let listed: Value = app
        .client
        .get(format!("/keys?identifier={identifier}"))
        .send()
        .await
        .json()
        .await
        .value()
        .deserialize();
    assert!(listed["keys"][0]["revoked_at"].as_i64().is_some());

    for body in [json!({}), json!({"key": "k", "key_id": 1})] {
        let (status, answer) = app.post("/revoke_key", body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
    }
    assert_eq!(
        app.client
            .get("/keys?identifier=nope")
            .send()
            .await
            .0
            .status()
            .as_u16(),
        400
    );
}

async fn revoking_one_refresh_token_leaves_the_others(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (key, identifier) = app.register().await;
    let auth = json!({"key": key, "identifier": identifier});
    let (_, first) = app.post("/authenticate", auth.clone()).await;
    let (_, second) = app.post("/authenticate", auth).await;
    let first = first["refresh_token"].as_str().expect("token");
    let second = second["refresh_token"].as_str().expect("token");

    let (status, body) = app
        .post("/revoke_refresh_token", json!({"refresh_token": first}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"keys_revoked": 0, "refresh_tokens_revoked": 1}))
    );
    assert_eq!(app.refresh(first, identifier).await.0, 401);
    assert_eq!(app.refresh(second, identifier).await.0, 200);
}

async fn revoking_an_identifier_revokes_all_its_keys_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    let identifier = Uuid::new_v4();
    for key in [
        "first-key-of-the-identifier",
        "second-key-of-the-identifier",
    ] {
        assert_eq!(
            app.post(
                "/register_key",
                json!({"key": key, "identifier": identifier})
            )
            .await
            .0,
            201
        );
    }
    let (other_key, other) = app.register().await;
    let (status, body) = app
        .post("/revoke_identifier", json!({"identifier": identifier}))
        .await;
    assert_eq!((status, body["keys_revoked"].as_u64()), (200, Some(2)));
    for key in [
        "first-key-of-the-identifier",
        "second-key-of-the-identifier",
    ] {
        assert_eq!(
            app.post(
                "/authenticate",
                json!({"key": key, "identifier": identifier})
            )
            .await
            .0,
            401
        );
    }
    assert_eq!(
        app.post(
            "/authenticate",
            json!({"key": other_key, "identifier": other})
        )
        .await
        .0,
        200
    );
}

async fn rotation_returns_a_new_refresh_token_and_answers_a_lost_response_retry(backend: Backend) {
    let app = TestApp::with_args(backend, &["--rotate-refresh-tokens"]).await;
    let (_, first, identifier) = app.authenticate().await;
    let (status, rotated) = app.refresh(&first, identifier).await;
    assert_eq!(status, 200);
    let second = rotated["refresh_token"]
        .as_str()
        .expect("a new refresh token")
        .to_owned();
    assert_ne!(second, first);

    // The response was "lost": the client retries with the old token within the grace window.
    let (status, retry) = app.refresh(&first, identifier).await;
    assert_eq!(status, 200, "{retry}");
    let again = retry["refresh_token"]
        .as_str()
        .expect("a usable token")
        .to_owned();
    assert_eq!(again, second, "the same successor, not a second chain");
    assert_eq!(app.refresh(&again, identifier).await.0, 200);

    // Its successor has now been used, so the old token is reuse: the family is revoked.
    let (status, body) = app.refresh(&first, identifier).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            401,
            Some("the refresh token is not valid for this identifier")
        )
    );
    assert_eq!(
        app.refresh(&second, identifier).await.0,
        401,
        "the whole family is revoked"
    );
}

async fn reuse_after_the_grace_window_revokes_the_family(backend: Backend) {
    let app = TestApp::with_args(
        backend,
        &[
            "--rotate-refresh-tokens",
            "--refresh-token-reuse-grace",
            "0",
        ],
    )
    .await;
    let (_, first, identifier) = app.authenticate().await;
    let (_, rotated) = app.refresh(&first, identifier).await;
    let second = rotated["refresh_token"].as_str().expect("token").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.refresh(&first, identifier).await.0, 401);
    assert_eq!(
        app.refresh(&second, identifier).await.0,
        401,
        "the successor died with the family"
    );
    let (_, fresh, identifier) = app.authenticate().await;
    assert_eq!(
        app.refresh(&fresh, identifier).await.0,
        200,
        "other families are untouched"
    );
}

async fn concurrent_refreshes_of_one_token_rotate_it_exactly_once(backend: Backend) {
    let app = TestApp::with_args(backend, &["--rotate-refresh-tokens"]).await;
    let (_, token, identifier) = app.authenticate().await;
    let answers = join_all((0..16).map(|_| app.refresh(&token, identifier))).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "never a 5xx: {statuses:?}"
    );
    assert!(statuses.contains(&200));

    let retired = match backend {
        Backend::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_owned();
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{path}"))
                .await
                .expect("db");
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM refresh_tokens WHERE retired_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .expect("count")
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&app.database.url).await.expect("db");
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM refresh_tokens WHERE retired_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    assert_eq!(
        retired, 1,
        "exactly one refresh rotated the token; the others got the grace answer"
    );
}

async fn strict_identifier_binds_keys_and_refresh_tokens(backend: Backend) {
    let app = TestApp::with_args(backend, &["--strict-identifier"]).await;
    let (key, identifier) = app.register().await;
    let (status, body) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (401, Some("the key is not valid for this identifier"))
    );
    let (_, tokens) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    let refresh_token = tokens["refresh_token"].as_str().expect("token");
    assert_eq!(app.refresh(refresh_token, Uuid::new_v4()).await.0, 401);
    assert_eq!(app.refresh(refresh_token, identifier).await.0, 200);

    let lax = TestApp::with_args(backend, &["--strict-identifier", "false"]).await;
    let (key, _) = lax.register().await;
    let (status, _) = lax
        .post(
            "/authenticate",
            json!({"key": key, "identifier": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(
        status, 200,
        "STRICT_IDENTIFIER=false restores the original's behaviour"
    );
}

async fn failed_attempts_are_limited_per_identifier_without_slowing_correct_clients(
    backend: Backend,
) {
    let app = TestApp::with_args(backend, &["--auth-failures-per-identifier", "3"]).await;
    let (key, identifier) = app.register().await;
    let (good_key, good_identifier) = app.register().await;
    for _ in 0..3 {
        let (status, _) = app
            .post(
                "/authenticate",
                json!({"key": "guess", "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 401);
    }
    let response = app
        .client
        .post("/authenticate")
        .body_json(&json!({"key": key, "identifier": identifier}))
        .send()
        .await;
    assert_eq!(
        response.0.status().as_u16(),
        429,
        "even the right key waits out the window"
    );
    let retry_after: u64 = response
        .0
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, _) = app.refresh("guess", identifier).await;
    assert_eq!(status, 429, "refresh shares the limit");

    for _ in 0..5 {
        let (status, _) = app
            .post(
                "/authenticate",
                json!({"key": good_key, "identifier": good_identifier}),
            )
            .await;
        assert_eq!(status, 200, "a correct client is not slowed");
    }
}

async fn failed_attempts_are_limited_per_client_address(backend: Backend) {
    let app = TestApp::with_args(
        backend,
        &[
            "--auth-failures-per-address",
            "2",
            "--auth-failures-per-identifier",
            "0",
            "--client-ip-header",
            "X-Real-IP",
        ],
    )
    .await;
    let attempt = |address: &'static str| {
        app.client
            .post("/authenticate")
            .header("X-Real-IP", address)
            .body_json(&json!({"key": "guess", "identifier": Uuid::new_v4()}))
            .send()
    };
    assert_eq!(attempt("203.0.113.7").await.0.status().as_u16(), 401);
    assert_eq!(attempt("203.0.113.7").await.0.status().as_u16(), 401);
    assert_eq!(attempt("203.0.113.7").await.0.status().as_u16(), 429);
    assert_eq!(
        attempt("203.0.113.8").await.0.status().as_u16(),
        401,
        "other addresses are not affected"
    );
}

/// An admin token of the shortest length accepted.
const ADMIN_TOKEN: &str = "adm1n-s3cret-adm1n-s3cret-adm1n!";

async fn the_admin_token_guards_the_internal_api_only(backend: Backend) {
    let app = TestApp::with_args(backend, &["--admin-token", ADMIN_TOKEN]).await;
    let body = json!({"key": crate::support::KEY, "identifier": Uuid::new_v4()});
    for authorization in [None, Some("Bearer wrong"), Some("Basic YWRtaW46YWRtaW4=")] {
        let mut request = app.client.post("/register_key").body_json(&body);
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await;
        assert_eq!(response.0.status().as_u16(), 401, "{authorization:?}");
        assert!(response.0.headers().contains_key("www-authenticate"));
    }
    let response = app
        .client
        .get(format!("/keys?identifier={}", Uuid::new_v4()))
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 401);
    let response = app
        .client
        .post("/register_key")
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body_json(&body)
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 201);
    assert_eq!(
        app.post("/authenticate", body).await.0,
        200,
        "the external API needs no admin token"
    );
}

/// Every operation of the internal tag in the generated spec: method, path and the operation.
fn internal_operations() -> Vec<(poem::http::Method, String, Value)> {
    let spec: Value = serde_json::from_str(&jwthenticator_server::openapi_json()).expect("spec");
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation["tags"]
                .as_array()
                .is_some_and(|tags| tags.contains(&json!("Internal")))
            {
                let method = method.to_uppercase().parse().expect("method");
                operations.push((method, path.clone(), operation.clone()));
            }
        }
    }
    operations
}

/// Sends `method path` with `headers`; a POST with a body the operation cannot take, so that a
/// 400 shows the request passed the guard.
async fn send(
    app: &TestApp,
    method: &poem::http::Method,
    path: &str,
    headers: &[(&'static str, &str)],
) -> poem::test::TestResponse {
    let mut request = app.client.request(method.clone(), path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if *method == poem::http::Method::POST {
        request = request.body_json(&json!({}));
    }
    request.send().await
}

/// Walks the spec, not a list of routes: a new internal operation is covered the day it is
/// added. Each one documents the admin requirement (security scheme, 401, 403), and the guard
/// refuses it, with the documented status and a JSON error, to a request without the token
/// (with `ADMIN_TOKEN`) or through a proxy (without), and lets it through otherwise.
#[tokio::test]
async fn every_internal_operation_of_the_spec_is_guarded_as_documented() {
    let operations = internal_operations();
    assert!(operations.len() >= 6, "{operations:?}");
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let token = TestApp::with_args(Backend::Sqlite, &["--admin-token", ADMIN_TOKEN]).await;
    let loopback = TestApp::new(Backend::Sqlite).await;
    for (method, path, operation) in &operations {
        assert_eq!(
            operation["security"],
            json!([{"AdminToken": []}]),
            "{method} {path} documents the admin token"
        );
        for status in ["401", "403"] {
            assert!(
                operation["responses"].get(status).is_some(),
                "{method} {path} documents its {status}"
            );
        }
        let proxied = ("x-forwarded-for", "192.0.2.7");
        for (mode, app, headers, status, error) in [
            ("token", &token, vec![proxied], 401, "admin_token_required"),
            (
                "token",
                &token,
                vec![("authorization", "Bearer wrong")],
                401,
                "admin_token_required",
            ),
            (
                "loopback",
                &loopback,
                vec![proxied],
                403,
                "internal_api_loopback_only",
            ),
        ] {
            let response = send(app, method, path, &headers).await;
            assert_eq!(
                response.0.status().as_u16(),
                status,
                "{mode}: {method} {path} {headers:?}"
            );
            if status == 401 {
                assert!(response.0.headers().contains_key("www-authenticate"));
            }
            let body: Value = response.json().await.value().deserialize();
            assert_eq!(body["error"], error, "{mode}: {method} {path}: {body}");
            assert!(body["message"].is_string(), "{body}");
        }
        for (mode, app, headers) in [
            (
                "token",
                &token,
                vec![proxied, ("authorization", bearer.as_str())],
            ),
            ("loopback", &loopback, vec![]),
        ] {
            let status = send(app, method, path, &headers).await.0.status().as_u16();
            assert!(
                ![401, 403].contains(&status),
                "{mode}: {method} {path} is let through: {status}"
            );
        }
    }
}

async fn a_separate_internal_listener_takes_the_internal_routes_off_the_main_one(backend: Backend) {
    let app = TestApp::with_args(backend, &["--internal-port", "18999"]).await;
    let (status, _) = app
        .post(
            "/register_key",
            json!({"key": crate::support::KEY, "identifier": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 404, "not on the external listener");
    let internal =
        poem::test::TestClient::new(app.app.internal_endpoint().expect("internal endpoint"));
    let identifier = Uuid::new_v4();
    internal
        .post("/register_key")
        .body_json(&json!({"key": crate::support::KEY, "identifier": identifier}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    internal.get("/health").send().await.assert_status_is_ok();
    let response = internal
        .post("/authenticate")
        .body_json(&json!({"key": crate::support::KEY, "identifier": identifier}))
        .send()
        .await;
    assert_eq!(
        response.0.status().as_u16(),
        404,
        "the external API is not on the internal listener"
    );
    assert_eq!(
        app.post(
            "/authenticate",
            json!({"key": crate::support::KEY, "identifier": identifier})
        )
        .await
        .0,
        200
    );
}

async fn purge_removes_revoked_refresh_tokens(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (_, token, _) = app.authenticate().await;
    app.post("/revoke_refresh_token", json!({"refresh_token": token}))
        .await;
    let purged = app
        .app
        .state()
        .store()
        .purge_expired(chrono::Utc::now())
        .await
        .expect("purge");
    assert_eq!(purged, 1);
}

on_both_backends!(
    revoking_a_key_stops_it_and_its_refresh_tokens_at_once,
    keys_are_listed_without_the_key_and_revocable_by_id,
    revoking_one_refresh_token_leaves_the_others,
    revoking_an_identifier_revokes_all_its_keys_only,
    rotation_returns_a_new_refresh_token_and_answers_a_lost_response_retry,
    reuse_after_the_grace_window_revokes_the_family,
    concurrent_refreshes_of_one_token_rotate_it_exactly_once,
    strict_identifier_binds_keys_and_refresh_tokens,
    failed_attempts_are_limited_per_identifier_without_slowing_correct_clients,
    failed_attempts_are_limited_per_client_address,
    the_admin_token_guards_the_internal_api_only,
    a_separate_internal_listener_takes_the_internal_routes_off_the_main_one,
    purge_removes_revoked_refresh_tokens,
);
