//! How registered keys are stored: a keyed hash with a secret outside the database, the
//! original's SHA-512 rows accepted and upgraded, a minimum length for new keys, private files.

use chrono::Utc;
use jwthenticator_server::App;
use jwthenticator_server::store::hash_secret;
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::support::{Backend, Database, KEY_HASH_SECRET, TestApp, config};

/// Inserts a key as the original stored it: the SHA-512 hex of the key, in the original's
/// columns only.
async fn insert_original_key(database: &Database, key: &str, identifier: Uuid) {
    let now = Utc::now();
    let expires_at = now + chrono::Duration::days(1);
    if database.url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query(
            "INSERT INTO keys (key_hash, identifier, created, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(hash_secret(key))
        .bind(identifier)
        .bind(now.naive_utc())
        .bind(expires_at.naive_utc())
        .execute(&mut db)
        .await
        .expect("insert");
    } else {
        let mut db = sqlx::SqliteConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query(
            "INSERT INTO keys (key_hash, identifier, created, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(hash_secret(key))
        .bind(identifier)
        .bind(now.timestamp())
        .bind(expires_at.timestamp())
        .execute(&mut db)
        .await
        .expect("insert");
    }
}

/// The stored `(key_hash, key_hash_scheme)` of every key of `identifier`.
async fn stored_keys(database: &Database, identifier: Uuid) -> Vec<(String, String)> {
    let sql = "SELECT key_hash, key_hash_scheme FROM keys WHERE identifier = $1 ORDER BY id";
    if database.url.starts_with("postgres") {
        let mut db = sqlx::PgConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query_as(sql)
            .bind(identifier)
            .fetch_all(&mut db)
            .await
            .expect("keys")
    } else {
        let mut db = sqlx::SqliteConnection::connect(&database.url)
            .await
            .expect("connect");
        sqlx::query_as(&sql.replace('$', "?"))
            .bind(identifier)
            .fetch_all(&mut db)
            .await
            .expect("keys")
    }
}

async fn authenticate(app: &TestApp, key: &str, identifier: Uuid) -> u16 {
    app.post(
        "/authenticate",
        json!({"key": key, "identifier": identifier}),
    )
    .await
    .0
}

async fn keys_of_the_original_keep_working_and_are_upgraded_on_their_next_use(backend: Backend) {
    let app = TestApp::new(backend).await;
    let keyed = |key: &str| app.app.state().key_hasher().hashes(key).current;

    // authenticate, concurrently: every attempt succeeds and the row is rewritten once.
    let (key, identifier) = ("a-key-the-original-registered", Uuid::new_v4());
    insert_original_key(&app.database, key, identifier).await;
    let (status, body) = app.post("/is_key_registered", json!({"key": key})).await;
    assert_eq!((status, &body["result"]), (200, &json!(true)), "{body}");
    let statuses =
        futures_util::future::join_all((0..8).map(|_| authenticate(&app, key, identifier))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        stored_keys(&app.database, identifier).await,
        [(keyed(key), "hmac-sha512".to_owned())],
        "one row, now under the keyed hash"
    );
    assert_eq!(authenticate(&app, key, identifier).await, 200);

    // register_key extends it (and upgrades it) rather than adding a second row.
    let (key, identifier) = ("another-key-of-the-original", Uuid::new_v4());
    insert_original_key(&app.database, key, identifier).await;
    let (status, _) = app
        .post(
            "/register_key",
            json!({"key": key, "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        stored_keys(&app.database, identifier).await,
        [(keyed(key), "hmac-sha512".to_owned())]
    );
    let listed: Value = app
        .client
        .get(format!("/keys?identifier={identifier}"))
        .send()
        .await
        .json()
        .await
        .value()
        .deserialize();
    assert!(
        listed["keys"][0]["expires_at"].as_i64().expect("expiry")
            > (Utc::now() + chrono::Duration::days(100)).timestamp(),
        "the expiry moved to KEY_EXPIRY from now: {listed}"
    );

    // revoke_key by key finds it.
    let (key, identifier) = ("a-third-key-of-the-original", Uuid::new_v4());
    insert_original_key(&app.database, key, identifier).await;
    let (status, body) = app.post("/revoke_key", json!({"key": key})).await;
    assert_eq!((status, body["keys_revoked"].as_u64()), (200, Some(1)));
    assert_eq!(authenticate(&app, key, identifier).await, 401);

    // A key shorter than MIN_KEY_LENGTH that the original accepted still authenticates.
    let identifier = Uuid::new_v4();
    insert_original_key(&app.database, "k", identifier).await;
    assert_eq!(authenticate(&app, "k", identifier).await, 200);
}

async fn new_keys_shorter_than_min_key_length_are_refused_with_400(backend: Backend) {
    let app = TestApp::new(backend).await;
    let identifier = Uuid::new_v4();
    for key in ["k", "device-secret", "fifteen-chars!!"] {
        let (status, body) = app
            .post(
                "/register_key",
                json!({"key": key, "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 400, "{key}: {body}");
        assert_eq!(body["error"], "invalid_request", "{body}");
        let message = body["message"].as_str().expect("message");
        assert!(
            message.contains("16") && message.contains("MIN_KEY_LENGTH"),
            "{message}"
        );
        assert!(
            key.len() < 4 || !message.contains(key),
            "the key is not echoed: {message}"
        );
    }
    assert!(stored_keys(&app.database, identifier).await.is_empty());
    let (status, _) = app
        .post(
            "/register_key",
            json!({"key": "sixteen-chars!!!", "identifier": identifier}),
        )
        .await;
    assert_eq!(status, 201);

    let relaxed = TestApp::with_args(backend, &["--min-key-length", "1"]).await;
    let (status, _) = relaxed
        .post(
            "/register_key",
            json!({"key": "k", "identifier": identifier}),
        )
        .await;
    assert_eq!(
        status, 201,
        "MIN_KEY_LENGTH restores the original's minimum"
    );
}

async fn a_replica_with_another_key_hash_secret_refuses_to_start(backend: Backend) {
    let first = TestApp::with_args(backend, &["--key-hash-secret", KEY_HASH_SECRET]).await;
    let (key, identifier) = first.register().await;
    let other = config(
        &first.database.url,
        &[
            "--key-hash-secret",
            "another-secret-of-at-least-32-characters",
        ],
    );
    let err = App::new(&other).await.expect_err("refused");
    let message = format!("{err:#}");
    assert!(message.contains("KEY_HASH_SECRET"), "{message}");
    assert!(
        !message.contains("another-secret"),
        "no secret in the message: {message}"
    );
    let legacy = config(&first.database.url, &["--legacy-key-hashes"]);
    let err = App::new(&legacy).await.expect_err("refused");
    assert!(format!("{err:#}").contains("KEY_HASH_SECRET"), "{err:#}");
    let again = TestApp::on(first.database, &["--key-hash-secret", KEY_HASH_SECRET]).await;
    assert_eq!(authenticate(&again, &key, identifier).await, 200);
}

on_both_backends!(
    keys_of_the_original_keep_working_and_are_upgraded_on_their_next_use,
    new_keys_shorter_than_min_key_length_are_refused_with_400,
    a_replica_with_another_key_hash_secret_refuses_to_start,
);

#[tokio::test]
async fn postgres_without_key_hash_secret_refuses_to_start_unless_legacy_hashes_are_asked_for() {
    let database = Database::new(Backend::Postgres).await;
    let args = [
        "jwthenticator-server",
        "--database-url",
        database.url.as_str(),
        "--rsa-private-key",
        crate::support::private_key_pem(),
    ];
    let bare =
        <jwthenticator_server::Config as clap::Parser>::try_parse_from(args).expect("config");
    let err = App::new(&bare).await.expect_err("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("KEY_HASH_SECRET") && message.contains("LEGACY_KEY_HASHES=true"),
        "{message}"
    );

    let legacy = TestApp::on(database, &["--legacy-key-hashes"]).await;
    let (key, identifier) = legacy.register().await;
    assert_eq!(
        stored_keys(&legacy.database, identifier).await,
        [(hash_secret(&key), "sha512".to_owned())],
        "the original's unkeyed SHA-512, as asked"
    );
    assert_eq!(authenticate(&legacy, &key, identifier).await, 200);
}

#[cfg(unix)]
#[tokio::test]
async fn the_embedded_data_directory_and_its_files_are_the_owner_s_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("jwthenticator-data");
    let argv = [
        "jwthenticator-server",
        "--data-dir",
        data.to_str().expect("utf-8"),
    ];
    let config =
        <jwthenticator_server::Config as clap::Parser>::try_parse_from(argv).expect("config");
    let app = App::new(&config).await.expect("app");
    let client = poem::test::TestClient::new(app.endpoint());
    client
        .post("/register_key")
        .body_json(&json!({"key": crate::support::KEY, "identifier": Uuid::new_v4()}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    assert_eq!(mode(&data), 0o700, "the data directory");
    for name in [
        "jwthenticator.db",
        "jwthenticator.db-wal",
        "jwthenticator.db-shm",
        "jwthenticator.db.signing-key.pem",
        "jwthenticator.db.key-hash-secret",
    ] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let secret = std::fs::read_to_string(data.join("jwthenticator.db.key-hash-secret"))
        .expect("secret file");
    assert!(secret.trim().len() >= 32);
    drop(client);
    drop(app);

    // A database file an earlier version left readable by others is restricted at start, and
    // the same secret is used again: the key registered before still authenticates.
    std::fs::set_permissions(
        data.join("jwthenticator.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let again = App::new(&config).await.expect("app");
    assert_eq!(mode(&data.join("jwthenticator.db")), 0o600);
    let response = poem::test::TestClient::new(again.endpoint())
        .post("/is_key_registered")
        .body_json(&json!({"key": crate::support::KEY}))
        .send()
        .await;
    let body: Value = response.json().await.value().deserialize();
    assert_eq!(body["result"], true, "{body}");
}
