//! Signing keys shared through PostgreSQL: a replica with the wrong `KEY_ENCRYPTION_SECRET`
//! writes nothing, a key that does not open is skipped, no key signs past its retirement, and
//! keys sealed by the first scheme are re-sealed with every column bound.

use chrono::{NaiveDateTime, Utc};
use jwthenticator_server::{App, Config};
use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::signing::decode_segment;
use crate::support::{Backend, Database, KEY, KEY_HASH_SECRET, TestApp};

const SECRET: &str = "the-replicas-shared-secret";
const WRONG_SECRET: &str = "a-misconfigured-replica-secret";

/// A replica with no key configured, sharing generated ES256 keys sealed with `secret`.
fn shared(database: &Database, secret: &str, args: &[&str]) -> Config {
    let mut argv = vec![
        "jwthenticator-server",
        "--database-url",
        database.url.as_str(),
        "--key-hash-secret",
        KEY_HASH_SECRET,
        "--key-encryption-secret",
        secret,
        "--jwt-algorithm",
        "ES256",
    ];
    argv.extend_from_slice(args);
    <Config as clap::Parser>::try_parse_from(argv).expect("config")
}

/// Every stored signing key: kid, sealed key, activation, retirement.
async fn stored(database: &Database) -> Vec<(String, Vec<u8>, NaiveDateTime, NaiveDateTime)> {
    let mut db = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::query_as(
        "SELECT kid, private_key, activates_at, retires_at FROM signing_keys ORDER BY id",
    )
    .fetch_all(&mut db)
    .await
    .expect("signing keys")
}

async fn execute(database: &Database, sql: &str) {
    let mut db = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::raw_sql(sql).execute(&mut db).await.expect(sql);
}

/// Registers the test key at `app` and authenticates: the status and the token's `kid`.
async fn sign(app: &App, identifier: Uuid) -> (u16, Option<String>) {
    let client = poem::test::TestClient::new(app.endpoint());
    // A key of its own per identifier: keys serve only the identifier they were registered for.
    let body = json!({"key": format!("{KEY}-{identifier}"), "identifier": identifier});
    client.post("/register_key").body_json(&body).send().await;
    let response = client.post("/authenticate").body_json(&body).send().await;
    let status = response.0.status().as_u16();
    let answer: Value = response.json().await.value().deserialize();
    (status, answer["jwt"].as_str().map(kid_of))
}

/// The `kid` of a token's header.
fn kid_of(jwt: &str) -> String {
    decode_segment(jwt, 0)["kid"]
        .as_str()
        .expect("kid")
        .to_owned()
}

fn kids(app: &App) -> Vec<String> {
    app.state()
        .keys()
        .jwks()
        .keys
        .iter()
        .filter_map(|jwk| jwk.kid.clone())
        .collect()
}

#[tokio::test]
async fn a_replica_with_the_wrong_secret_inside_the_prepublish_window_writes_nothing() {
    let database = Database::new(Backend::Postgres).await;
    // The next key is due one second after the first one was made.
    let schedule = [
        "--key-rotation-period",
        "3600",
        "--key-rotation-prepublish",
        "3599",
    ];
    let first = App::new(&shared(&database, SECRET, &schedule))
        .await
        .expect("the first replica starts");
    let before = stored(&database).await;
    assert_eq!(before.len(), 1);
    while Utc::now().naive_utc() < before[0].2 + chrono::Duration::seconds(1) {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let err = App::new(&shared(&database, WRONG_SECRET, &schedule))
        .await
        .expect_err("the misconfigured replica refuses to start");
    let message = format!("{err:#}");
    assert!(message.contains("KEY_ENCRYPTION_SECRET"), "{message}");
    assert!(!message.contains(WRONG_SECRET), "{message}");
    assert_eq!(stored(&database).await, before, "it wrote nothing");

    let second = App::new(&shared(&database, SECRET, &schedule))
        .await
        .expect("correct replicas keep starting");
    assert_eq!(
        stored(&database).await.len(),
        2,
        "the correct replica published the next key"
    );
    for app in [&first, &second] {
        let (status, kid) = sign(app, Uuid::new_v4()).await;
        assert_eq!(
            (status, kid.as_deref()),
            (200, Some(before[0].0.as_str())),
            "every correct replica signs with the current key"
        );
    }
}

#[tokio::test]
async fn a_stored_key_that_does_not_open_is_skipped_with_a_metric_and_is_not_fatal() {
    let database = Database::new(Backend::Postgres).await;
    let first = App::new(&shared(&database, SECRET, &[]))
        .await
        .expect("the first replica starts");
    let current = stored(&database).await[0].0.clone();
    // A key sealed with something else, signing from now: what a misconfigured replica of an
    // earlier version could leave behind.
    execute(
        &database,
        "INSERT INTO signing_keys
             (kid, algorithm, private_key, sealing, created_at, activates_at, retires_at, expires_at)
         VALUES ('unreadable', 'ES256', '\\x000102030405060708090a0b0c0d0e0f101112131415', 2,
                 now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
                 now() AT TIME ZONE 'UTC' + interval '1 hour',
                 now() AT TIME ZONE 'UTC' + interval '2 hours')",
    )
    .await;
    let scrape = |app: &App| {
        let client = poem::test::TestClient::new(app.endpoint());
        async move {
            let response = client.get("/metrics").send().await;
            let text = response.0.into_body().into_string().await.expect("text");
            text.lines()
                .filter(|l| l.starts_with("jwthenticator_shared_key_unreadable_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
        }
    };
    let before = scrape(&first).await;
    let second = App::new(&shared(&database, SECRET, &[]))
        .await
        .expect("a correct replica starts despite the unreadable key");
    assert!(scrape(&second).await > before, "the skipped key is counted");
    assert!(!kids(&second).contains(&"unreadable".to_owned()));
    let (status, kid) = sign(&second, Uuid::new_v4()).await;
    assert_eq!((status, kid), (200, Some(current)));
}

#[tokio::test]
async fn no_replica_signs_past_a_key_s_retirement() {
    let database = Database::new(Backend::Postgres).await;
    // One-second keys, the next two stored ahead; no maintenance runs (the app does not serve).
    let app = App::new(&shared(
        &database,
        SECRET,
        &[
            "--key-rotation-period",
            "1",
            "--key-rotation-prepublish",
            "2",
            "--key-refresh-interval",
            "1",
        ],
    ))
    .await
    .expect("app");
    let keys = stored(&database).await;
    assert!(keys.len() >= 2, "{keys:?}");
    let last_retirement = keys.iter().map(|k| k.3).max().expect("keys");
    let client = poem::test::TestClient::new(app.endpoint());
    let identifier = Uuid::new_v4();
    let body = json!({"key": KEY, "identifier": identifier});
    client.post("/register_key").body_json(&body).send().await;
    let (mut kids_seen, mut refused_after_the_last) = (Vec::new(), 0);
    while Utc::now().naive_utc() < last_retirement + chrono::Duration::milliseconds(600) {
        let response = client.post("/authenticate").body_json(&body).send().await;
        let status = response.0.status().as_u16();
        let answer: Value = response.json().await.value().deserialize();
        match answer["jwt"].as_str() {
            Some(jwt) => {
                let claims = app.state().keys().verifier().verify(jwt).expect("valid");
                let kid = kid_of(jwt);
                let (_, _, from, until) = keys
                    .iter()
                    .find(|k| k.0 == kid)
                    .expect("a stored key signed");
                let iat = chrono::DateTime::from_timestamp(claims.iat, 0)
                    .expect("iat")
                    .naive_utc();
                assert!(
                    *from <= iat && iat < *until,
                    "{kid} signed at {iat}, outside its window {from} .. {until}"
                );
                kids_seen.push(kid);
            }
            None => {
                assert_eq!(status, 503, "{answer}");
                assert!(
                    Utc::now().naive_utc() >= last_retirement,
                    "refused while a key could sign: {answer}"
                );
                refused_after_the_last += 1;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    kids_seen.dedup();
    assert!(
        kids_seen.len() >= 2,
        "the next key took over at its activation: {kids_seen:?}"
    );
    assert!(
        refused_after_the_last > 0,
        "after the last key retired, nothing was signed"
    );
}

/// Seals `pem` as the first scheme did: AES-256-GCM under HKDF-SHA-256 of the secret, the kid
/// as associated data.
fn seal_first_scheme(secret: &str, kid: &str, pem: &str) -> Vec<u8> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    let prk = Salt::new(HKDF_SHA256, b"jwthenticator signing keys").extract(secret.as_bytes());
    let okm = prk
        .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
        .expect("hkdf");
    let key = LessSafeKey::new(UnboundKey::from(okm));
    let nonce = [7u8; NONCE_LEN];
    let mut sealed = pem.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(kid.as_bytes()),
        &mut sealed,
    )
    .expect("seal");
    [nonce.to_vec(), sealed].concat()
}

#[tokio::test]
async fn keys_of_the_first_sealing_scheme_are_resealed_binding_every_column() {
    let database = Database::new(Backend::Postgres).await;
    // The schema, from an app with a configured key (it does not touch signing_keys).
    let migrated = TestApp::on(database, &[]).await;
    let database = migrated.database;
    let key = jwthenticator_server::keys::PrivateKey::generate(jsonwebtoken::Algorithm::ES256, 0)
        .expect("key");
    let kid = key.public_key().kid();
    let pem = key.to_pem().expect("pem");
    let mut db = sqlx::PgConnection::connect(&database.url)
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO signing_keys (kid, algorithm, private_key, created_at, activates_at, retires_at, expires_at)
         VALUES ($1, 'ES256', $2, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' - interval '1 minute',
                 now() AT TIME ZONE 'UTC' + interval '1 hour', now() AT TIME ZONE 'UTC' + interval '2 hours')",
    )
    .bind(&kid)
    .bind(seal_first_scheme(SECRET, &kid, pem.as_str()))
    .execute(&mut db)
    .await
    .expect("a key of the first scheme");

    let err = App::new(&shared(&database, WRONG_SECRET, &[]))
        .await
        .expect_err("the wrong secret opens no key that signs now");
    assert!(
        format!("{err:#}").contains("KEY_ENCRYPTION_SECRET"),
        "{err:#}"
    );
    let settings: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM server_settings WHERE name LIKE 'key_encryption%'",
    )
    .fetch_one(&mut db)
    .await
    .expect("settings");
    assert_eq!(settings, 0, "the misconfigured replica wrote nothing");

    let app = App::new(&shared(&database, SECRET, &[]))
        .await
        .expect("the right secret opens it");
    assert_eq!(sign(&app, Uuid::new_v4()).await, (200, Some(kid.clone())));
    let (sealing, kdf): (i16, String) = sqlx::query_as(
        "SELECT k.sealing, s.value FROM signing_keys k, server_settings s
         WHERE k.kid = $1 AND s.name = 'key_encryption_kdf'",
    )
    .bind(&kid)
    .fetch_one(&mut db)
    .await
    .expect("re-sealed");
    assert_eq!(sealing, 2, "re-sealed with the Argon2id key");
    assert!(kdf.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{kdf}");
    let again = App::new(&shared(&database, SECRET, &[]))
        .await
        .expect("another replica");
    assert_eq!(sign(&again, Uuid::new_v4()).await, (200, Some(kid.clone())));

    // Every column is bound: a row whose retirement was moved in the database no longer opens,
    // and a replica schedules a key of its own instead of signing with it.
    sqlx::query(
        "UPDATE signing_keys SET retires_at = retires_at + interval '30 days' WHERE kid = $1",
    )
    .bind(&kid)
    .execute(&mut db)
    .await
    .expect("tamper");
    let after = App::new(&shared(&database, SECRET, &[]))
        .await
        .expect("a replica starts");
    let (status, signed_with) = sign(&after, Uuid::new_v4()).await;
    assert_eq!(status, 200);
    assert_ne!(
        signed_with,
        Some(kid.clone()),
        "the changed row is not used"
    );
    assert!(!kids(&after).contains(&kid), "nor published");
}
