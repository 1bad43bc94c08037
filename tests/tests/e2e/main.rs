//! The real server binary, on loopback: logs, configuration from the environment, shutdown.

use jwthenticator_tests::TestServer;
use serde_json::{Value, json};
use sqlx::Connection;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn logs_of_a_full_run_at_trace_level_contain_no_secret() {
    let server = TestServer::builder(BINARY)
        .env("RUST_LOG", "trace")
        .start()
        .await;
    let client = reqwest::Client::new();
    let key = format!("key-{}", uuid::Uuid::new_v4());
    let identifier = uuid::Uuid::new_v4();
    let body = json!({"key": key, "identifier": identifier});

    assert_eq!(
        post(&client, server.url("/register_key"), body.clone())
            .await
            .0,
        201
    );
    assert_eq!(
        post(
            &client,
            server.url("/is_key_registered"),
            json!({"key": key})
        )
        .await
        .0,
        200
    );
    let (status, tokens) = post(&client, server.url("/authenticate"), body.clone()).await;
    assert_eq!(status, 200);
    let jwt = tokens["jwt"].as_str().expect("jwt").to_owned();
    let refresh_token = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let (status, refreshed) = post(
        &client,
        server.url("/refresh"),
        json!({"refresh_token": refresh_token, "identifier": identifier}),
    )
    .await;
    assert_eq!(status, 200);
    let refreshed_jwt = refreshed["jwt"].as_str().expect("jwt").to_owned();
    assert_eq!(
        post(&client, server.url("/validate"), json!({"jwt": jwt}))
            .await
            .0,
        200
    );
    let response = client
        .get(server.url("/validate_request"))
        .bearer_auth(&refreshed_jwt)
        .header("X-Request-Id", "e2e-request-7")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 200);
    // Failures log too: a wrong key, a tampered token, a key in the wrong field type.
    let wrong_key = format!("wrong-{key}");
    assert_eq!(
        post(
            &client,
            server.url("/authenticate"),
            json!({"key": wrong_key, "identifier": identifier})
        )
        .await
        .0,
        401
    );
    let tampered = format!("{jwt}x");
    assert_eq!(
        post(&client, server.url("/validate"), json!({"jwt": tampered}))
            .await
            .0,
        401
    );
    assert_eq!(
        post(
            &client,
            server.url("/authenticate"),
            json!({"key": key, "identifier": key})
        )
        .await
        .0,
        400
    );
    // serde's own message would quote it: invalid type: string "key-…", expected i64.
    let (status, answer) = post(&client, server.url("/revoke_key"), json!({"key_id": key})).await;
    assert_eq!(status, 400);
    assert!(!answer.to_string().contains(&key), "{answer}");

    let logs = server.logs();
    assert!(
        logs.contains("tokens issued"),
        "the run was logged:\n{logs}"
    );
    assert!(
        logs.contains("request_id=e2e-request-7"),
        "the request id is on the request's log lines:\n{logs}"
    );
    assert!(
        logs.contains("token rejected"),
        "rejections are logged:\n{logs}"
    );
    let signature = |token: &str| token.rsplit('.').next().expect("signature").to_owned();
    for (name, secret) in [
        ("key", key.clone()),
        ("wrong key", wrong_key),
        ("refresh token", refresh_token),
        ("jwt", jwt.clone()),
        ("jwt signature", signature(&jwt)),
        ("refreshed jwt signature", signature(&refreshed_jwt)),
    ] {
        assert!(
            !logs.contains(&secret),
            "the {name} appears in the logs:\n{logs}"
        );
    }
}

#[tokio::test]
async fn db_variables_of_the_original_mean_postgres_and_create_the_database() {
    let name = format!("jwt_e2e_{}", uuid::Uuid::new_v4().simple());
    let server = TestServer::builder(BINARY)
        .env("DB_HOST", "127.0.0.1:5432")
        .env("DB_USER", "postgres")
        .env("DB_NAME", &name)
        .start()
        .await;
    let client = reqwest::Client::new();
    let body = json!({"key": "a-device-secret-key", "identifier": uuid::Uuid::new_v4()});
    assert_eq!(
        post(&client, server.url("/register_key"), body).await.0,
        201
    );

    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let mut db = sqlx::PgConnection::connect(&format!("postgres://postgres@127.0.0.1:5432/{name}"))
        .await
        .expect("the server created the database");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM keys")
        .fetch_one(&mut db)
        .await
        .expect("count");
    assert_eq!(keys, 1);
    db.close().await.expect("close");
    assert!(server.terminate().await);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop");
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let server = TestServer::builder(BINARY).start().await;
    assert!(server.terminate().await, "exit status 0 after SIGTERM");
}

#[tokio::test]
async fn a_bad_configuration_exits_with_a_clear_error() {
    let output = tokio::process::Command::new(BINARY)
        .env("DATABASE_URL", "mysql://u@h/d")
        .env("DATA_DIR", tempfile::tempdir().expect("dir").path())
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unsupported database URL scheme `mysql`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn help_documents_every_environment_variable() {
    let output = tokio::process::Command::new(BINARY)
        .arg("--help")
        .output()
        .await
        .expect("run");
    assert!(output.status.success());
    // Help text wraps at the terminal width: compare with whitespace folded.
    let help = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for variable in [
        "PORT",
        "URL_PREFIX",
        "DISABLE_EXTERNAL_API",
        "DISABLE_INTERNAL_API",
        "JWT_ALGORITHM",
        "JWT_LEASE_TIME",
        "JWT_AUDIENCE",
        "KEY_EXPIRY",
        "REFRESH_TOKEN_EXPIRY",
        "RSA_PUBLIC_KEY",
        "RSA_PRIVATE_KEY",
        "RSA_PUBLIC_KEY_PATH",
        "RSA_PRIVATE_KEY_PATH",
        "RSA_KEY_SIZE",
        "DB_USER",
        "DB_PASS",
        "DB_HOST",
        "DB_NAME",
        "DB_URI",
        "DATABASE_URL",
        "KEY_HASH_SECRET",
        "LEGACY_KEY_HASHES",
        "MIN_KEY_LENGTH",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "--help lacks {variable}:\n{help}"
        );
    }
}
