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
    let key = format!("key-{identifier}");
    client
        .post("/register_key")
        .body_json(&json!({"key": key, "identifier": identifier}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    let response = client
        .post("/authenticate")
        .body_json(&json!({"key": key, "identifier": identifier}))
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
    assert!(second.state().keys().verifier().verify(&token).is_ok());
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
    assert!(second.state().keys().verifier().verify(&token).is_ok());
}

#[tokio::test]
async fn a_missing_key_file_on_postgres_is_refused_naming_keygen_not_generated() {
    let database = Database::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("mounted/private.pem");
    let public = dir.path().join("mounted/public.pem");
    let config = crate::signing::app_config(
        &database.url,
        &[
            "--rsa-private-key-path",
            private.to_str().expect("utf-8"),
            "--rsa-public-key-path",
            public.to_str().expect("utf-8"),
        ],
    );
    let err = App::new(&config).await.expect_err("refused");
    let message = format!("{err:#}");
    assert!(
        message.contains("RSA_PRIVATE_KEY_PATH")
            && message.contains(private.to_str().expect("utf-8"))
            && message.contains("jwthenticator-server keygen --algorithm RS256"),
        "{message}"
    );
    assert!(
        !private.exists() && !public.exists(),
        "no replica gets a key of its own"
    );
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
        second.state().keys().verifier().verify(&token).is_ok(),
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
        "--key-hash-secret",
        crate::support::KEY_HASH_SECRET,
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
    let identifier = uuid::Uuid::new_v4();
    client
        .post("/register_key")
        .body_json(&json!({"key": crate::support::KEY, "identifier": identifier}))
        .send()
        .await
        .assert_status(poem::http::StatusCode::CREATED);
    let response = client
        .post("/authenticate")
        .body_json(&json!({"key": crate::support::KEY, "identifier": identifier}))
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

// ES256 and EdDSA keys, the neutral aliases, key type checks and published keys.

/// Test-only keys written by OpenSSL 3.0 (`openssl genpkey`, `openssl ec`, `openssl pkey
/// -pubout`), with the `kid` OpenSSL's own SPKI DER gives:
/// `openssl pkey -pubout -outform DER | openssl dgst -sha1 -binary | basenc --base64url`.
mod openssl {
    pub(super) const EC_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2f7BIqTM+Bt/43lP
Z4N7t6EjeJ4bLI2ReownNCk9pBGhRANCAAQkrXqS86OxNavSwsjmhKbDW3EkbAAy
gnV0YMK/Jj/UzXhP84ijGmEa9NMaVyd+ZPzqWMZg9RpjZqzEXZ0yYlC2
-----END PRIVATE KEY-----
";
    pub(super) const EC_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEINn+wSKkzPgbf+N5T2eDe7ehI3ieGyyNkXqMJzQpPaQRoAoGCCqGSM49
AwEHoUQDQgAEJK16kvOjsTWr0sLI5oSmw1txJGwAMoJ1dGDCvyY/1M14T/OIoxph
GvTTGlcnfmT86ljGYPUaY2asxF2dMmJQtg==
-----END EC PRIVATE KEY-----
";
    pub(super) const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJK16kvOjsTWr0sLI5oSmw1txJGwA
MoJ1dGDCvyY/1M14T/OIoxphGvTTGlcnfmT86ljGYPUaY2asxF2dMmJQtg==
-----END PUBLIC KEY-----
";
    pub(super) const EC_KID: &str = "FLDtgMcFsYb3UUOPOQds-1ERj7I";
    pub(super) const ED_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIFIaLkumpINYsStR5SxxVlIw6KWBTKchDsFCUQuLC72X
-----END PRIVATE KEY-----
";
    pub(super) const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAD19B6VwQ5esCWdwngvJD3+kwQPe+G8w5gF18rFWi7KY=
-----END PUBLIC KEY-----
";
    pub(super) const ED_KID: &str = "Fm-8-OyYq2UYBbPRZ4Q80rCsd5M";
    pub(super) const P384_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEAMYMurhxc5lWfj3IoFw3Cw3mGbMlJ6EX
A3/leK0Daaozppl0iZXNmpMg1NPzqWFPoXmD+uDo9NVJgroUiobc0NKW4HPBJmb7
PUYkpCkC6LXtrBAlluz/YV3ppb5LP9/r
-----END PUBLIC KEY-----
";
    pub(super) const X25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VuBCIEIKCrDxsCSp5CQ+h13mItZYGkdox4ccWNHxro2jCYu6BY
-----END PRIVATE KEY-----
";
}

async fn start(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<App> {
    App::new(&sqlite_config(dir, args)).await
}

async fn start_error(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = start(dir.path(), args).await.expect_err("refused at start");
    format!("{err:#}")
}

#[tokio::test]
async fn openssl_ec_and_ed25519_keys_are_read_with_openssls_kid() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (algorithm, private, public, openssl_kid) in [
        (
            "ES256",
            openssl::EC_PKCS8,
            openssl::EC_PUBLIC,
            openssl::EC_KID,
        ),
        (
            "ES256",
            openssl::EC_SEC1,
            openssl::EC_PUBLIC,
            openssl::EC_KID,
        ),
        (
            "EdDSA",
            openssl::ED_PKCS8,
            openssl::ED_PUBLIC,
            openssl::ED_KID,
        ),
    ] {
        let app = start(
            dir.path(),
            &[
                "--jwt-algorithm",
                algorithm,
                "--jwt-private-key",
                private,
                "--jwt-public-key",
                public,
            ],
        )
        .await
        .expect("app");
        assert_eq!(kid(&app), openssl_kid, "{algorithm}");
        let token = token_from(&app).await;
        assert!(
            app.state().keys().verifier().verify(&token).is_ok(),
            "{algorithm}"
        );

        // The public key alone validates what the pair signed.
        let validator = start(
            dir.path(),
            &["--jwt-algorithm", algorithm, "--jwt-public-key", public],
        )
        .await
        .expect("app");
        assert!(validator.state().keys().signer().is_none());
        assert!(
            validator.state().keys().verifier().verify(&token).is_ok(),
            "{algorithm}"
        );
    }
}

#[tokio::test]
async fn es256_and_eddsa_key_files_are_read_or_generated_of_the_configured_type() {
    use jwthenticator_server::keys::{KeyType, PrivateKey, PublicKey};
    for (algorithm, key_type) in [("ES256", KeyType::EcP256), ("EdDSA", KeyType::Ed25519)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("keys/private.pem");
        let public = dir.path().join("keys/public.pem");
        let args = [
            "--jwt-algorithm",
            algorithm,
            "--jwt-private-key-path",
            private.to_str().expect("utf-8"),
            "--jwt-public-key-path",
            public.to_str().expect("utf-8"),
            // Used only for RSA keys.
            "--rsa-key-size",
            "1234",
        ];
        let first = start(dir.path(), &args).await.expect("app");
        let written = std::fs::read_to_string(&private).expect("private written");
        assert!(
            written.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{written}"
        );
        let generated = PrivateKey::from_pem(&written).expect("PKCS#8");
        assert_eq!(generated.key_type(), key_type);
        let written_public =
            PublicKey::from_pem(&std::fs::read_to_string(&public).expect("public written"))
                .expect("SPKI");
        assert_eq!(&written_public, generated.public_key());
        assert_eq!(kid(&first), written_public.kid());
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
        let second = start(dir.path(), &args).await.expect("app");
        assert_eq!(kid(&first), kid(&second));
        assert!(second.state().keys().verifier().verify(&token).is_ok());
    }
}

#[tokio::test]
async fn the_embedded_default_and_the_ephemeral_key_follow_jwt_algorithm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start(dir.path(), &["--jwt-algorithm", "EdDSA"])
        .await
        .expect("app");
    assert_eq!(app.state().keys().jwks().keys[0].kty, "OKP");
    let key_file = dir.path().join("test.db.signing-key.pem");
    let token = token_from(&app).await;
    let again = start(dir.path(), &["--jwt-algorithm", "EdDSA"])
        .await
        .expect("app");
    assert!(again.state().keys().verifier().verify(&token).is_ok());

    // The kept key is Ed25519: switching the algorithm must be a decision, not a silent new key.
    let err = start(dir.path(), &["--jwt-algorithm", "ES256"])
        .await
        .expect_err("refused");
    let message = format!("{err:#}");
    for needle in [
        key_file.to_str().expect("utf-8"),
        "Ed25519",
        "ES256",
        "EC P-256",
        "JWT_ALGORITHM",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }

    let config = Config::try_parse_from([
        "jwthenticator-server",
        "--database-url",
        "sqlite::memory:",
        "--jwt-algorithm",
        "ES256",
    ])
    .expect("config");
    let ephemeral = App::new(&config).await.expect("app");
    assert_eq!(ephemeral.state().keys().jwks().keys[0].kty, "EC");
    token_from(&ephemeral).await;
}

#[tokio::test]
async fn a_key_of_another_type_than_jwt_algorithm_needs_is_refused_at_start() {
    use crate::signing::{ec_private_pem, ed_private_pem, public_pem};
    let rsa_public = public_pem(private_key_pem());
    let ec_public = public_pem(ec_private_pem());
    let cases: [(&str, &str, &str, &str, &str); 6] = [
        (
            "ES256",
            "--rsa-private-key",
            private_key_pem(),
            "RSA_PRIVATE_KEY",
            "an RSA key",
        ),
        (
            "EdDSA",
            "--jwt-private-key",
            ec_private_pem(),
            "JWT_PRIVATE_KEY",
            "an EC P-256 key",
        ),
        (
            "RS256",
            "--jwt-private-key",
            ed_private_pem(),
            "JWT_PRIVATE_KEY",
            "an Ed25519 key",
        ),
        (
            "PS256",
            "--jwt-private-key",
            ec_private_pem(),
            "JWT_PRIVATE_KEY",
            "an EC P-256 key",
        ),
        (
            "ES256",
            "--rsa-public-key",
            &rsa_public,
            "RSA_PUBLIC_KEY",
            "an RSA key",
        ),
        (
            "RS256",
            "--jwt-public-key",
            &ec_public,
            "JWT_PUBLIC_KEY",
            "an EC P-256 key",
        ),
    ];
    for (algorithm, flag, pem, variable, found) in cases {
        let message = start_error(&["--jwt-algorithm", algorithm, flag, pem]).await;
        for needle in [variable, found, algorithm, "JWT_ALGORITHM"] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rsa.pem");
    std::fs::write(&path, private_key_pem()).expect("write");
    let message = start_error(&[
        "--jwt-algorithm",
        "EdDSA",
        "--rsa-private-key-path",
        path.to_str().expect("utf-8"),
    ])
    .await;
    for needle in [
        "RSA_PRIVATE_KEY_PATH",
        path.to_str().expect("utf-8"),
        "an RSA key",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

#[tokio::test]
async fn unsupported_keys_are_refused_with_the_reason() {
    for (algorithm, flag, pem, reason) in [
        ("ES256", "--jwt-public-key", openssl::P384_PUBLIC, "P-256"),
        (
            "EdDSA",
            "--jwt-private-key",
            openssl::X25519_PKCS8,
            "1.3.101.110",
        ),
        (
            "ES256",
            "--jwt-private-key",
            openssl::EC_PUBLIC,
            "public key where the private key belongs",
        ),
        (
            "ES256",
            "--jwt-public-key",
            openssl::EC_PKCS8,
            "private key where a public key belongs",
        ),
        (
            "ES256",
            "--jwt-private-key",
            "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----",
            "not a PEM document",
        ),
        (
            "ES256",
            "--jwt-private-key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----",
            "encrypted",
        ),
    ] {
        let message = start_error(&["--jwt-algorithm", algorithm, flag, pem]).await;
        assert!(message.contains(reason), "{reason}: {message}");
        assert!(message.contains("JWT_"), "names the variable: {message}");
    }
}

#[tokio::test]
async fn neutral_aliases_are_the_same_settings_and_conflicting_values_are_refused() {
    use clap::CommandFactory;
    let command = Config::command();
    for (id, env) in [
        ("jwt_private_key", "JWT_PRIVATE_KEY"),
        ("jwt_public_key", "JWT_PUBLIC_KEY"),
        ("jwt_private_key_path", "JWT_PRIVATE_KEY_PATH"),
        ("jwt_public_key_path", "JWT_PUBLIC_KEY_PATH"),
        ("published_public_key_paths", "PUBLISHED_PUBLIC_KEY_PATHS"),
        ("jwt_issuer", "JWT_ISSUER"),
    ] {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap_or_else(|| panic!("no --{id}"));
        assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env));
        assert!(arg.get_help().is_some(), "{id} is documented in --help");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let original = start(dir.path(), &["--rsa-private-key", private_key_pem()])
        .await
        .expect("app");
    let alias = start(dir.path(), &["--jwt-private-key", private_key_pem()])
        .await
        .expect("app");
    let both = start(
        dir.path(),
        &[
            "--rsa-private-key",
            private_key_pem(),
            "--jwt-private-key",
            private_key_pem(),
        ],
    )
    .await
    .expect("the same value under both names is one setting");
    assert_eq!(kid(&original), kid(&alias));
    assert_eq!(kid(&original), kid(&both));

    let other = crate::signing::generate_pem(jsonwebtoken::Algorithm::RS256);
    let message = start_error(&[
        "--rsa-private-key",
        private_key_pem(),
        "--jwt-private-key",
        other.as_str(),
    ])
    .await;
    assert!(
        message.contains("RSA_PRIVATE_KEY") && message.contains("JWT_PRIVATE_KEY"),
        "{message}"
    );
    assert!(
        !message.contains("PRIVATE KEY-----"),
        "no key in the message: {message}"
    );

    let path = dir.path().join("alias.pem");
    std::fs::write(&path, private_key_pem()).expect("write");
    let path = path.to_str().expect("utf-8");
    let from_alias_path = start(dir.path(), &["--jwt-private-key-path", path])
        .await
        .expect("app");
    assert_eq!(kid(&from_alias_path), kid(&original));
    let message = start_error(&[
        "--rsa-private-key-path",
        path,
        "--jwt-private-key-path",
        "/elsewhere.pem",
    ])
    .await;
    assert!(
        message.contains("RSA_PRIVATE_KEY_PATH") && message.contains("JWT_PRIVATE_KEY_PATH"),
        "{message}"
    );
}

#[tokio::test]
async fn published_key_files_must_exist_and_hold_public_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let message = start_error(&[
        "--rsa-private-key",
        private_key_pem(),
        "--published-public-key-paths",
        missing.to_str().expect("utf-8"),
    ])
    .await;
    assert!(message.contains("PUBLISHED_PUBLIC_KEY_PATHS"), "{message}");
    assert!(
        message.contains(missing.to_str().expect("utf-8")),
        "{message}"
    );

    let private = dir.path().join("private.pem");
    std::fs::write(&private, openssl::EC_PKCS8).expect("write");
    let message = start_error(&[
        "--rsa-private-key",
        private_key_pem(),
        "--published-public-key-paths",
        private.to_str().expect("utf-8"),
    ])
    .await;
    assert!(message.contains("PUBLISHED_PUBLIC_KEY_PATHS"), "{message}");
    assert!(
        message.contains("private key where a public key belongs"),
        "{message}"
    );
}

#[tokio::test]
async fn debug_output_never_shows_a_private_key() {
    use crate::signing::ec_private_pem;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = sqlite_config(
        dir.path(),
        &[
            "--jwt-algorithm",
            "ES256",
            "--jwt-private-key",
            ec_private_pem(),
        ],
    );
    let app = App::new(&config).await.expect("app");
    let base64_line = ec_private_pem().lines().nth(1).expect("a base64 line");
    for debug in [
        format!("{config:?}"),
        format!("{app:?}"),
        format!("{:?}", app.state().keys()),
    ] {
        assert!(!debug.contains(base64_line), "{debug}");
    }
}
