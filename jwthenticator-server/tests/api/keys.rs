//! Where the signing key comes from: inline PEM, files, generated files, the embedded default,
//! an ephemeral key, or a public key alone.

use clap::Parser;
use jwthenticator_server::{App, Config};
use serde_json::json;

use crate::support::{Backend, Database, TestApp, private_key_pem};

fn sqlite_config(dir: &std::path::Path, args: &[&str]) -> Config {
    let url = format!("sqlite://{}", dir.join("test.db").display());
    let mut argv = vec!["jwthenticator-server", "--database-url", url.as_str()];
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).expect("config")
}

async fn token_from(app: &App) -> String {
    let client = poem::test::TestClient::new(app.endpoint());
    let identifier = uuid::Uuid::new_v4();
    client
        .post("/register_key")
        .body_json(&json!({"key": "k", "identifier": identifier}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    let response = client
        .post("/authenticate")
        .body_json(&json!({"key": "k", "identifier": identifier}))
        .send()
        .await;
    response.assert_status_is_ok();
    let body: serde_json::Value = response.json().await.value().deserialize();
    body["jwt"].as_str().expect("jwt").to_owned()
}

fn kid(app: &App) -> String {
    app.state().keys().jwks().keys[0].kid.clone().expect("kid")
}

#[tokio::test]
async fn inline_private_key_gives_a_stable_kid_and_tokens_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-private-key", private_key_pem()],
    ))
    .await
    .expect("app");
    let token = token_from(&first).await;
    let second = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-private-key", private_key_pem()],
    ))
    .await
    .expect("app");
    assert_eq!(kid(&first), kid(&second));
    assert!(second.state().verifier().verify(&token).is_ok());
}

#[tokio::test]
async fn pkcs1_private_keys_as_the_original_wrote_them_are_accepted() {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{DecodePrivateKey, LineEnding};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem()).expect("key");
    let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).expect("pem");
    assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let dir = tempfile::tempdir().expect("tempdir");
    let app = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-private-key", pkcs1.as_str()],
    ))
    .await
    .expect("app");
    token_from(&app).await;
}

#[tokio::test]
async fn existing_key_files_are_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("private.pem");
    std::fs::write(&private, private_key_pem()).expect("write");
    let private = private.to_str().expect("utf-8");
    let from_file = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-private-key-path", private],
    ))
    .await
    .expect("app");
    let inline = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-private-key", private_key_pem()],
    ))
    .await
    .expect("app");
    assert_eq!(kid(&from_file), kid(&inline));
}

#[tokio::test]
async fn missing_key_files_are_generated_written_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("keys/private.pem");
    let public = dir.path().join("keys/public.pem");
    let args = [
        "--rsa-private-key-path",
        private.to_str().expect("utf-8"),
        "--rsa-public-key-path",
        public.to_str().expect("utf-8"),
    ];
    let first = App::new(&sqlite_config(dir.path(), &args))
        .await
        .expect("app");
    assert!(
        std::fs::read_to_string(&private)
            .expect("private written")
            .contains("PRIVATE KEY")
    );
    assert!(
        std::fs::read_to_string(&public)
            .expect("public written")
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    let token = token_from(&first).await;
    let second = App::new(&sqlite_config(dir.path(), &args))
        .await
        .expect("app");
    assert_eq!(kid(&first), kid(&second));
    assert!(second.state().verifier().verify(&token).is_ok());
}

#[tokio::test]
async fn a_public_key_path_without_a_private_key_path_cannot_be_generated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = dir.path().join("public.pem");
    let err = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-public-key-path", public.to_str().expect("utf-8")],
    ))
    .await
    .expect_err("refused");
    assert!(
        format!("{err:#}").contains("RSA_PRIVATE_KEY_PATH"),
        "{err:#}"
    );
}

#[tokio::test]
async fn the_embedded_default_keeps_its_generated_key_beside_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = App::new(&sqlite_config(dir.path(), &[]))
        .await
        .expect("app");
    let key_file = dir.path().join("test.db.signing-key.pem");
    assert!(
        key_file.exists(),
        "generated key written beside the database"
    );
    let token = token_from(&first).await;
    let second = App::new(&sqlite_config(dir.path(), &[]))
        .await
        .expect("app");
    assert_eq!(kid(&first), kid(&second));
    assert!(
        second.state().verifier().verify(&token).is_ok(),
        "a restart keeps earlier tokens valid"
    );
}

#[tokio::test]
async fn without_any_key_on_postgres_each_process_generates_its_own() {
    let database = Database::new(Backend::Postgres).await;
    let config = Config::try_parse_from([
        "jwthenticator-server",
        "--database-url",
        database.url.as_str(),
    ])
    .expect("config");
    let first = App::new(&config).await.expect("app");
    let second = App::new(&config).await.expect("app");
    assert_ne!(kid(&first), kid(&second));
}

#[tokio::test]
async fn a_public_key_alone_validates_but_cannot_issue() {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    let public = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem())
        .expect("key")
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let database = Database::new(Backend::Sqlite).await;
    let issuer = TestApp::on(database, &[]).await;
    let (jwt, _, _) = issuer.authenticate().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let validator = App::new(&sqlite_config(
        dir.path(),
        &["--rsa-public-key", public.as_str()],
    ))
    .await
    .expect("app");
    assert!(validator.state().keys().signer().is_none());
    let client = poem::test::TestClient::new(validator.endpoint());
    client
        .post("/validate")
        .body_json(&json!({"jwt": jwt}))
        .send()
        .await
        .assert_status_is_ok();
    client
        .post("/register_key")
        .body_json(&json!({"key": "k", "identifier": uuid::Uuid::new_v4()}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    let response = client
        .post("/authenticate")
        .body_json(&json!({"key": "k", "identifier": uuid::Uuid::new_v4()}))
        .send()
        .await;
    response.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_public_key_that_does_not_match_the_private_key_is_refused() {
    let other = jwthenticator_server::keys::generate_rsa(2048).expect("key");
    let other_public =
        jwthenticator_server::keys::public_key_pem(&other.to_public_key()).expect("pem");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = App::new(&sqlite_config(
        dir.path(),
        &[
            "--rsa-private-key",
            private_key_pem(),
            "--rsa-public-key",
            other_public.as_str(),
        ],
    ))
    .await
    .expect_err("refused");
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");
}
