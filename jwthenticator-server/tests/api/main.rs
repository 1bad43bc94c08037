//! Every route of the API contract, success and failure, on SQLite and on PostgreSQL.

#[macro_use]
mod support;
mod architecture;
mod attacks;
mod hostile_tokens;
mod key_storage;
mod keys;
mod ops;
mod reliability;
mod request_errors;
mod routes;
mod security;
mod shared_keys;
mod signing;

use serde_json::{Value, json};
use support::{Backend, TestApp};
use uuid::Uuid;

async fn health_and_root_answer_the_original_true(backend: Backend) {
    let app = TestApp::new(backend).await;
    for path in ["/", "/health"] {
        let response = app.client.get(path).send().await;
        response.assert_status_is_ok();
        response
            .assert_json(json!({"result": true, "message": null}))
            .await;
    }
}

async fn register_key_answers_201_and_is_key_registered_sees_it(backend: Backend) {
    let app = TestApp::new(backend).await;
    let identifier = Uuid::new_v4();
    let (status, body) = app
        .post(
            "/register_key",
            json!({"key": "device-secret-0001", "identifier": identifier}),
        )
        .await;
    assert_eq!(
        (status, body),
        (201, json!({"result": true, "message": null}))
    );

    let (status, body) = app
        .post("/is_key_registered", json!({"key": "device-secret-0001"}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": null}))
    );
    let (status, body) = app
        .post("/is_key_registered", json!({"key": "other"}))
        .await;
    assert_eq!(
        (status, body),
        (200, json!({"result": false, "message": null}))
    );
}

async fn registering_a_key_again_extends_its_expiry(backend: Backend) {
    let database = support::Database::new(backend).await;
    let short = TestApp::on(database, &["--key-expiry", "0"]).await;
    let (key, identifier) = short.register().await;
    let (status, _) = short
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(
        status, 401,
        "a key registered with KEY_EXPIRY=0 has expired"
    );

    let long = TestApp::on(short.database, &["--key-expiry", "3600"]).await;
    let (status, _) = long
        .post(
            "/register_key",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = long
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 200, "registering again moved the expiry");
}

async fn authenticate_issues_a_jwt_and_refresh_token_that_work(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (jwt, refresh_token, identifier) = app.authenticate().await;

    let claims = app
        .app
        .state()
        .keys()
        .verifier()
        .verify(&jwt)
        .expect("valid jwt");
    assert_eq!(claims.identifier, identifier);
    assert_eq!(
        claims.exp - claims.iat,
        25 * 3600,
        "the original's default lease"
    );
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            jwt.split('.').next().expect("header"),
        )
        .expect("base64"),
    )
    .expect("json");
    assert_eq!(
        header,
        json!({"alg": "RS256", "kid": app.kid(), "typ": "JWT"})
    );

    let (status, body) = app.post("/validate", json!({"jwt": jwt})).await;
    assert_eq!(
        (status, body),
        (200, json!({"result": true, "message": null}))
    );
    assert_eq!(
        app.validate_request(Some(&format!("Bearer {jwt}"))).await.0,
        200
    );

    let (status, body) = app
        .post(
            "/refresh",
            json!({"refresh_token": refresh_token, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["refresh_token"], Value::Null);
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(2),
        "exactly jwt and refresh_token"
    );
    let refreshed = body["jwt"].as_str().expect("jwt");
    assert_ne!(refreshed, jwt);
    assert_eq!(
        app.post("/validate", json!({"jwt": refreshed})).await.0,
        200
    );
}

async fn authenticate_rejects_unknown_and_expired_keys_with_401(backend: Backend) {
    let app = TestApp::with_args(backend, &["--key-expiry", "0"]).await;
    let (status, body) = app
        .post(
            "/authenticate",
            json!({"key": "never-registered", "identifier": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_key");
    let unknown = body;

    let (key, identifier) = app.register().await;
    let (status, body) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body, unknown,
        "an expired key is refused like an unknown one"
    );
}

async fn refresh_rejects_unknown_and_expired_tokens_with_401(backend: Backend) {
    let app = TestApp::with_args(backend, &["--refresh-token-expiry", "0"]).await;
    let (status, body) = app
        .post(
            "/refresh",
            json!({"refresh_token": "made-up", "identifier": Uuid::new_v4()}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_refresh_token");
    let unknown = body;

    let (_, refresh_token, identifier) = app.authenticate().await;
    let (status, body) = app
        .post(
            "/refresh",
            json!({"refresh_token": refresh_token, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body, unknown,
        "an expired refresh token is refused like an unknown one"
    );
}

async fn validate_request_answers_every_method(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (jwt, _, _) = app.authenticate().await;
    for method in [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "PROPFIND", "TRACE",
    ] {
        let method = poem::http::Method::from_bytes(method.as_bytes()).expect("method");
        let response = app
            .client
            .request(method.clone(), "/validate_request")
            .header("Authorization", format!("Bearer {jwt}"))
            .body("ignored body")
            .send()
            .await;
        assert_eq!(response.0.status().as_u16(), 200, "{method}");
        let response = app
            .client
            .request(method.clone(), "/validate_request")
            .send()
            .await;
        assert_eq!(
            response.0.status().as_u16(),
            403,
            "{method} without a token"
        );
    }
}

async fn validate_request_forbids_missing_or_non_bearer_headers(backend: Backend) {
    let app = TestApp::new(backend).await;
    for header in [
        None,
        Some("Basic dXNlcjpwYXNz"),
        Some("Bearer"),
        Some("Bearer   "),
        Some("Token abc"),
    ] {
        let (status, challenge) = app.validate_request(header).await;
        assert_eq!((status, challenge), (403, None), "{header:?}");
    }
    let (jwt, _, _) = app.authenticate().await;
    assert_eq!(
        app.validate_request(Some(&format!("bearer {jwt}"))).await.0,
        200,
        "scheme is case-insensitive"
    );
}

async fn validate_request_answers_401_with_an_rfc6750_challenge(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (status, challenge) = app.validate_request(Some("Bearer not.a.jwt")).await;
    assert_eq!(status, 401);
    let challenge = challenge.expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\", error_description=\""),
        "{challenge}"
    );
}

async fn validate_answers_401_for_invalid_tokens_and_400_for_bad_bodies(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (status, body) = app.post("/validate", json!({"jwt": "garbage"})).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
    let (status, body) = app.post("/validate", json!({})).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().expect("message").contains("jwt"),
        "{body}"
    );
}

async fn bad_bodies_get_a_json_400_naming_the_problem(backend: Backend) {
    let app = TestApp::new(backend).await;
    let uuid = Uuid::new_v4().to_string();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("/authenticate", b"not json".to_vec(), ""),
        ("/authenticate", b"".to_vec(), ""),
        ("/authenticate", b"\xff\xfe\x00{".to_vec(), ""),
        (
            "/authenticate",
            json!({"key": "k"}).to_string().into_bytes(),
            "identifier",
        ),
        (
            "/authenticate",
            json!({"key": "k", "identifier": "not-a-uuid"})
                .to_string()
                .into_bytes(),
            "identifier",
        ),
        (
            "/authenticate",
            json!({"key": 5, "identifier": uuid})
                .to_string()
                .into_bytes(),
            "key",
        ),
        (
            "/authenticate",
            json!({"key": "", "identifier": uuid})
                .to_string()
                .into_bytes(),
            "key",
        ),
        ("/authenticate", b"[1, 2]".to_vec(), ""),
        (
            "/refresh",
            json!({"identifier": uuid}).to_string().into_bytes(),
            "refresh_token",
        ),
        (
            "/register_key",
            json!({"key": "k", "identifier": 7})
                .to_string()
                .into_bytes(),
            "identifier",
        ),
        (
            "/register_key",
            json!({"identifier": uuid}).to_string().into_bytes(),
            "key",
        ),
        (
            "/is_key_registered",
            json!({"key": null}).to_string().into_bytes(),
            "key",
        ),
        (
            "/validate",
            json!({"jwt": ["a"]}).to_string().into_bytes(),
            "jwt",
        ),
        ("/validate", "[".repeat(10_000).into_bytes(), ""),
        (
            "/register_key",
            format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000)).into_bytes(),
            "",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.client.post(path).body(body.clone()).send().await;
        let status = response.0.status().as_u16();
        let json: Value = response.json().await.value().deserialize();
        assert_eq!(
            status,
            400,
            "{path} {:?}: {json}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(json["error"], "invalid_request", "{json}");
        let message = json["message"].as_str().expect("message");
        assert!(
            message.contains(field),
            "{path}: `{message}` should name `{field}`"
        );
        assert!(!message.to_lowercase().contains("sql"), "{message}");
    }
}

async fn json_is_accepted_whatever_the_content_type(backend: Backend) {
    let app = TestApp::new(backend).await;
    let identifier = Uuid::new_v4();
    let body = json!({"key": "curl-key-registered-0001", "identifier": identifier}).to_string();
    for content_type in [
        None,
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
    ] {
        let mut request = app.client.post("/register_key").body(body.clone());
        if let Some(content_type) = content_type {
            request = request.content_type(content_type);
        }
        assert_eq!(
            request.send().await.0.status().as_u16(),
            201,
            "{content_type:?}"
        );
    }
}

async fn oversized_bodies_get_413(backend: Backend) {
    let app = TestApp::with_args(backend, &["--max-body-size", "1024"]).await;
    let body = json!({"key": "k".repeat(2000), "identifier": Uuid::new_v4()}).to_string();
    let response = app.client.post("/register_key").body(body).send().await;
    assert_eq!(response.0.status().as_u16(), 413);
    let json: Value = response.json().await.value().deserialize();
    assert_eq!(json["error"], "payload_too_large");
    // validate_request never reads the body, so a large one cannot turn it into a 413.
    let response = app
        .client
        .post("/validate_request")
        .body("x".repeat(4096))
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 403);
}

async fn jwks_publishes_the_signing_key_with_cache_control(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.client.get("/jwks").send().await;
    response.assert_status_is_ok();
    let cache_control = response
        .0
        .headers()
        .get("cache-control")
        .expect("cache-control")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cache_control.contains("max-age="), "{cache_control}");
    let jwks: Value = response.json().await.value().deserialize();
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().expect("object");
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert_eq!(key["e"], "AQAB");
}

async fn every_route_works_under_url_prefix_and_not_at_the_root(backend: Backend) {
    let app = TestApp::with_args(backend, &["--url-prefix", "/auth/v1/"]).await;
    for path in [
        "/auth/v1/",
        "/auth/v1/health",
        "/auth/v1/jwks",
        "/auth/v1/openapi.json",
    ] {
        assert_eq!(
            app.client.get(path).send().await.0.status().as_u16(),
            200,
            "{path}"
        );
    }
    let identifier = Uuid::new_v4();
    let (status, _) = app
        .post(
            "/auth/v1/register_key",
            json!({"key": support::KEY, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = app
        .post(
            "/auth/v1/authenticate",
            json!({"key": support::KEY, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 200);
    let response = app
        .client
        .get("/auth/v1/validate_request")
        .header(
            "Authorization",
            format!("Bearer {}", body["jwt"].as_str().expect("jwt")),
        )
        .send()
        .await;
    assert_eq!(response.0.status().as_u16(), 200);
    for path in ["/health", "/jwks"] {
        assert_eq!(
            app.client.get(path).send().await.0.status().as_u16(),
            404,
            "{path}"
        );
    }
}

async fn disabled_api_groups_answer_404(backend: Backend) {
    let database = support::Database::new(backend).await;
    let no_external = TestApp::on(database, &["--disable-external-api"]).await;
    let (key, identifier) = no_external.register().await;
    for path in ["/authenticate", "/refresh", "/validate"] {
        let (status, body) = no_external.post(path, json!({})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not_found")),
            "{path}"
        );
    }
    assert_eq!(no_external.validate_request(None).await.0, 404);
    assert_eq!(
        no_external
            .client
            .get("/jwks")
            .send()
            .await
            .0
            .status()
            .as_u16(),
        200
    );

    let no_internal = TestApp::on(no_external.database, &["--disable-internal-api"]).await;
    for path in ["/register_key", "/is_key_registered"] {
        assert_eq!(
            no_internal.post(path, json!({"key": "k"})).await.0,
            404,
            "{path}"
        );
    }
    let (status, _) = no_internal
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 200, "the key registered before still authenticates");
}

async fn unknown_routes_and_methods_answer_json(backend: Backend) {
    let app = TestApp::new(backend).await;
    let response = app.client.get("/nope").send().await;
    assert_eq!(response.0.status().as_u16(), 404);
    let body: Value = response.json().await.value().deserialize();
    assert_eq!(body["error"], "not_found");
    let response = app.client.get("/authenticate").send().await;
    assert_eq!(response.0.status().as_u16(), 405);
    assert_eq!(
        response.0.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"POST"[..]),
        "a 405 says which methods the path answers (RFC 9110 15.5.6)"
    );
    let body: Value = response.json().await.value().deserialize();
    assert_eq!(body["error"], "method_not_allowed");
    let response = app.client.delete("/jwks").send().await;
    assert_eq!(
        response.0.headers().get("allow").map(|v| v.as_bytes()),
        Some(&b"GET, HEAD"[..])
    );
}

async fn refresh_tokens_and_keys_are_stored_only_as_hashes(backend: Backend) {
    let app = TestApp::new(backend).await;
    let (key, identifier) = app.register().await;
    let (_, body) = app
        .post(
            "/authenticate",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    let refresh_token = body["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let dump = match backend {
        Backend::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_owned();
            let mut bytes = std::fs::read(&path).expect("db file");
            bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&app.database.url)
                .await
                .expect("connect");
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT row_to_json(k)::text FROM keys k UNION ALL SELECT row_to_json(r)::text FROM refresh_tokens r",
            )
            .fetch_all(&mut conn)
            .await
            .expect("dump");
            rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
        }
    };
    let keyed = app.app.state().key_hasher().hashes(&key).current;
    assert!(dump.contains(&keyed), "the key's keyed hash is stored");
    assert!(
        !dump.contains(&jwthenticator_server::store::hash_secret(&key)),
        "not its unkeyed SHA-512, which a copy of the database would give up to guessing"
    );
    assert!(!dump.contains(&key), "the key itself is not stored");
    assert!(
        !dump.contains(&refresh_token),
        "the refresh token itself is not stored"
    );
}

async fn expired_rows_are_purged(backend: Backend) {
    let app = TestApp::with_args(
        backend,
        &["--key-expiry", "0", "--refresh-token-expiry", "0"],
    )
    .await;
    app.register().await;
    let store = app.app.state().store();
    let purged = store
        .purge_expired(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("purge");
    assert_eq!(purged, 1);
}

on_both_backends!(
    health_and_root_answer_the_original_true,
    register_key_answers_201_and_is_key_registered_sees_it,
    registering_a_key_again_extends_its_expiry,
    authenticate_issues_a_jwt_and_refresh_token_that_work,
    authenticate_rejects_unknown_and_expired_keys_with_401,
    refresh_rejects_unknown_and_expired_tokens_with_401,
    validate_request_answers_every_method,
    validate_request_forbids_missing_or_non_bearer_headers,
    validate_request_answers_401_with_an_rfc6750_challenge,
    validate_answers_401_for_invalid_tokens_and_400_for_bad_bodies,
    bad_bodies_get_a_json_400_naming_the_problem,
    json_is_accepted_whatever_the_content_type,
    oversized_bodies_get_413,
    jwks_publishes_the_signing_key_with_cache_control,
    every_route_works_under_url_prefix_and_not_at_the_root,
    disabled_api_groups_answer_404,
    unknown_routes_and_methods_answer_json,
    refresh_tokens_and_keys_are_stored_only_as_hashes,
    expired_rows_are_purged,
);

#[test]
fn committed_openapi_yaml_is_current() {
    let generated = jwthenticator_server::openapi_yaml();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write openapi.yaml");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.yaml is out of date: run `UPDATE_OPENAPI=1 cargo test -p jwthenticator-server --test api committed_openapi_yaml_is_current`"
    );
}
