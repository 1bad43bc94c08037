//! A PostgreSQL database written by the Python original's server, taken over by this one; and the
//! takeover migration leaving a database of our own untouched.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use jwthenticator_server::store::hash_secret;
use jwthenticator_tests::TestServer;
use serde_json::{Value, json};
use sqlx::PgConnection;
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::BINARY;
use crate::support::{OriginalServer, schema_snapshot};
use jwthenticator_tests::PgDatabase;

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let response = client.post(url).json(&body).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The version of `migrations/postgres/*_take_over_python_schema.sql`.
const TAKEOVER_VERSION: i64 = 20261129000002;

fn migrations_dir() -> &'static Path {
    // CARGO_MANIFEST_DIR is tests/; the migrations live beside it.
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/postgres"
    ))
}

/// Our own schema: a fresh database with every migration applied.
async fn fresh_schema() -> Vec<String> {
    let database = PgDatabase::create("jwt_compat_fresh").await;
    let mut db = database.connect().await;
    Migrator::new(migrations_dir())
        .await
        .expect("read migrations")
        .run(&mut db)
        .await
        .expect("migrate");
    schema_snapshot(&mut db).await
}

/// A client of the original: a registered key, and what the original issued for it.
#[derive(Debug)]
struct Device {
    identifier: Uuid,
    key: String,
    jwt: String,
    refresh_token: String,
}

async fn register_and_authenticate(client: &reqwest::Client, server: &OriginalServer) -> Device {
    let identifier = Uuid::new_v4();
    let key = format!("device-key-{}", Uuid::new_v4());
    let body = json!({"key": key, "identifier": identifier});
    let (status, answer) = post(client, server.url("/register_key"), body.clone()).await;
    assert_eq!(status, 201, "{answer}\n{}", server.logs());
    let (status, tokens) = post(client, server.url("/authenticate"), body).await;
    assert_eq!(status, 200, "{tokens}\n{}", server.logs());
    Device {
        identifier,
        key,
        jwt: tokens["jwt"].as_str().expect("jwt").to_owned(),
        refresh_token: tokens["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

/// Waits until every row the original wrote with a short lifetime has expired.
async fn wait_until_expired(db: &mut PgConnection, key_hash: &str, refresh_token: &str) {
    for _ in 0..200 {
        let expired: bool = sqlx::query_scalar(
            "SELECT (SELECT expires_at FROM keys WHERE key_hash = $1) < now() AT TIME ZONE 'UTC'
                AND (SELECT expires_at FROM refresh_tokens WHERE token = $2)
                    < now() AT TIME ZONE 'UTC'",
        )
        .bind(key_hash)
        .bind(refresh_token)
        .fetch_one(&mut *db)
        .await
        .expect("read expiries");
        if expired {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the short-lived rows did not expire within 20 s");
}

#[tokio::test]
async fn database_written_by_the_original_is_taken_over_in_place() {
    let database = PgDatabase::create("jwt_compat_takeover").await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let public_key = dir.path().join("public.pem");
    let private_key = dir.path().join("private.pem");
    let key_paths = [
        (
            "RSA_PUBLIC_KEY_PATH",
            public_key.to_str().expect("utf-8 path"),
        ),
        (
            "RSA_PRIVATE_KEY_PATH",
            private_key.to_str().expect("utf-8 path"),
        ),
    ];
    let client = reqwest::Client::new();

    // The original, as deployed: default lifetimes, its key pair in files (generated now).
    let original = OriginalServer::start(&database, dir.path(), &key_paths).await;
    let mut devices = Vec::new();
    for _ in 0..3 {
        devices.push(register_and_authenticate(&client, &original).await);
    }
    original.stop().await;

    // The original again, now issuing short-lived keys and refresh tokens.
    let mut short_lived = key_paths.to_vec();
    short_lived.extend([("KEY_EXPIRY", "1"), ("REFRESH_TOKEN_EXPIRY", "1")]);
    let original = OriginalServer::start(&database, dir.path(), &short_lived).await;
    let (status, tokens) = post(
        &client,
        original.url("/authenticate"),
        json!({"key": devices[0].key, "identifier": devices[0].identifier}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}\n{}", original.logs());
    let expired_refresh_token = tokens["refresh_token"].as_str().expect("token").to_owned();
    let expired_key = format!("expired-key-{}", Uuid::new_v4());
    let expired_identifier = Uuid::new_v4();
    let (status, _) = post(
        &client,
        original.url("/register_key"),
        json!({"key": expired_key, "identifier": expired_identifier}),
    )
    .await;
    assert_eq!(status, 201, "{}", original.logs());
    original.stop().await;

    // What the original left: its own schema, refresh tokens in plain text.
    let mut db = database.connect().await;
    let plain: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE token = ANY($1)")
            .bind(
                devices
                    .iter()
                    .map(|d| d.refresh_token.clone())
                    .collect::<Vec<_>>(),
            )
            .fetch_one(&mut db)
            .await
            .expect("the original's refresh_tokens.token column");
    assert_eq!(plain, 3, "the original stores refresh tokens in plain text");
    wait_until_expired(&mut db, &hash_secret(&expired_key), &expired_refresh_token).await;

    // This server on the same database and key files, configured as the original's
    // deployments are (`DB_URI` with the asyncpg driver suffix).
    let mut builder = TestServer::builder(BINARY).env("DB_URI", database.url("postgresql+asyncpg"));
    for (name, value) in key_paths {
        builder = builder.env(name, value);
    }
    let server = builder.start().await;

    for device in &devices {
        let body = json!({"key": device.key, "identifier": device.identifier});
        let (status, answer) = post(
            &client,
            server.url("/is_key_registered"),
            json!({"key": device.key}),
        )
        .await;
        assert_eq!((status, &answer["result"]), (200, &json!(true)), "{answer}");
        let (status, answer) = post(&client, server.url("/authenticate"), body).await;
        assert_eq!(status, 200, "a key the original registered: {answer}");
        let (status, answer) = post(
            &client,
            server.url("/refresh"),
            json!({"refresh_token": device.refresh_token, "identifier": device.identifier}),
        )
        .await;
        assert_eq!(status, 200, "a refresh token the original issued: {answer}");
        // Same key files, same kid: the original's JWTs keep validating.
        let (status, answer) =
            post(&client, server.url("/validate"), json!({"jwt": device.jwt})).await;
        assert_eq!(status, 200, "a JWT the original issued: {answer}");
        let response = client
            .get(server.url("/validate_request"))
            .bearer_auth(&device.jwt)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status().as_u16(), 200);
    }

    // Each key the original stored as its plain SHA-512 is stored under the keyed hash once used.
    let (unkeyed, keyed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE key_hash = ANY($1)),
                count(*) FILTER (WHERE key_hash_scheme = 'hmac-sha512')
         FROM keys",
    )
    .bind(
        devices
            .iter()
            .map(|d| hash_secret(&d.key))
            .collect::<Vec<_>>(),
    )
    .fetch_one(&mut db)
    .await
    .expect("key hashes");
    assert_eq!(
        (unkeyed, keyed),
        (0, 3),
        "the original's keys were upgraded"
    );

    let (status, _) = post(
        &client,
        server.url("/refresh"),
        json!({"refresh_token": expired_refresh_token, "identifier": devices[0].identifier}),
    )
    .await;
    assert_eq!(status, 401, "an expired refresh token of the original");
    let (status, _) = post(
        &client,
        server.url("/authenticate"),
        json!({"key": expired_key, "identifier": expired_identifier}),
    )
    .await;
    assert_eq!(status, 401, "an expired key of the original");
    // No refresh token in plain text any more: only SHA-512 hex hashes, and the schema is ours.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'refresh_tokens'
         ORDER BY column_name",
    )
    .fetch_all(&mut db)
    .await
    .expect("columns");
    assert!(
        columns.contains(&"token_hash".to_owned()) && !columns.contains(&"token".to_owned()),
        "{columns:?}"
    );
    // (The expired one may be purged already: the server purges expired rows at start.)
    for (token, live) in devices
        .iter()
        .map(|d| (d.refresh_token.as_str(), true))
        .chain([(expired_refresh_token.as_str(), false)])
    {
        let (hashed, plain): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE token_hash = $1), count(*) FILTER (WHERE token_hash = $2)
             FROM refresh_tokens",
        )
        .bind(hash_secret(token))
        .bind(token)
        .fetch_one(&mut db)
        .await
        .expect("refresh tokens");
        assert_eq!(plain, 0, "no refresh token stored in plain text");
        if live {
            assert_eq!(hashed, 1, "a live refresh token stored as its hash");
        }
    }
    assert_eq!(schema_snapshot(&mut db).await, fresh_schema().await);
    assert!(server.terminate().await);

    // Restarted with the original's default DB_URI form (pg8000 driver, empty password): the
    // migrations have nothing left to do, and the original's refresh tokens still work.
    let mut builder = TestServer::builder(BINARY).env(
        "DB_URI",
        database
            .url("postgresql+pg8000")
            .replacen("postgres@", "postgres:@", 1),
    );
    for (name, value) in key_paths {
        builder = builder.env(name, value);
    }
    let server = builder.start().await;
    let (status, answer) = post(
        &client,
        server.url("/refresh"),
        json!({"refresh_token": devices[2].refresh_token, "identifier": devices[2].identifier}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(server.terminate().await);
}

#[tokio::test]
async fn takeover_migration_changes_nothing_on_our_own_schema() {
    let database = PgDatabase::create("jwt_compat_noop").await;
    let mut db = database.connect().await;
    let migrator = || async {
        Migrator::new(migrations_dir())
            .await
            .expect("read migrations")
    };
    let (mut before_takeover, mut with_takeover) = (migrator().await, migrator().await);
    before_takeover.migrations = Cow::Owned(
        before_takeover
            .iter()
            .filter(|m| m.version < TAKEOVER_VERSION)
            .cloned()
            .collect(),
    );
    with_takeover.migrations = Cow::Owned(
        with_takeover
            .iter()
            .filter(|m| m.version <= TAKEOVER_VERSION)
            .cloned()
            .collect(),
    );
    assert!(
        with_takeover.iter().any(|m| m.version == TAKEOVER_VERSION),
        "the takeover migration exists"
    );
    before_takeover
        .run(&mut db)
        .await
        .expect("the migrations before the takeover");
    let before = schema_snapshot(&mut db).await;
    sqlx::raw_sql(
        "INSERT INTO keys (created, expires_at, key_hash, identifier)
         VALUES (now(), now() + interval '1 day', 'k', gen_random_uuid());
         INSERT INTO refresh_tokens (created, expires_at, token_hash, key_id)
         VALUES (now(), now() + interval '1 day', 't', lastval())",
    )
    .execute(&mut db)
    .await
    .expect("rows");
    let rows_before = rows(&mut db).await;

    with_takeover
        .run(&mut db)
        .await
        .expect("the takeover migration");
    assert_eq!(schema_snapshot(&mut db).await, before);
    assert_eq!(rows(&mut db).await, rows_before);
}

/// Every key with its refresh tokens, one line each.
async fn rows(db: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%s %s %s %s', k, r.id, r.token_hash, r.expires_at)
         FROM keys k JOIN refresh_tokens r ON r.key_id = k.id ORDER BY r.id",
    )
    .fetch_all(db)
    .await
    .expect("rows")
}

#[tokio::test]
async fn db_uri_with_a_python_driver_suffix_creates_and_migrates_the_database() {
    let database = PgDatabase::named("jwt_compat_db_uri");
    let server = TestServer::builder(BINARY)
        .env("DB_URI", database.url("postgresql+pg8000"))
        .start()
        .await;
    let client = reqwest::Client::new();
    let body = json!({"key": "a-device-secret-key", "identifier": Uuid::new_v4()});
    let (status, _) = post(&client, server.url("/register_key"), body.clone()).await;
    assert_eq!(status, 201);
    let (status, _) = post(&client, server.url("/authenticate"), body).await;
    assert_eq!(status, 200);
    let mut db = database.connect().await;
    assert_eq!(schema_snapshot(&mut db).await, fresh_schema().await);
    assert!(server.terminate().await);
}
