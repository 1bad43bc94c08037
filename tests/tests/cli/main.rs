//! The server binary's subcommands, on SQLite and on PostgreSQL.

use std::path::Path;
use std::process::Stdio;

use jwthenticator_tests::{PgDatabase, TestServer};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_jwthenticator-server-e2e");

/// Runs a subcommand with `env` and `stdin`; returns (success, stdout, stderr).
async fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BINARY)
        .args(args)
        .kill_on_drop(true)
        .env_remove("DATABASE_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("wait");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The server's `/jwks`.
async fn jwks(server: &TestServer) -> serde_json::Value {
    reqwest::get(server.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json")
}

async fn authenticate(server: &TestServer, key: &str, identifier: uuid::Uuid) -> u16 {
    reqwest::Client::new()
        .post(server.url("/authenticate"))
        .json(&json!({"key": key, "identifier": identifier}))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// register-key (key on stdin), the server authenticates it, revoke-key, it no longer does,
/// purge runs.
async fn key_lifecycle_through_the_cli(database_url: &str) {
    let env = [
        ("DATABASE_URL", database_url),
        ("KEY_HASH_SECRET", jwthenticator_tests::KEY_HASH_SECRET),
    ];
    let identifier = uuid::Uuid::new_v4();
    let id = identifier.to_string();
    let (ok, out, err) = run(&["register-key", "--identifier", &id], &env, "cli-key\n").await;
    assert!(!ok, "a key shorter than MIN_KEY_LENGTH: {out}");
    assert!(err.contains("MIN_KEY_LENGTH"), "{err}");
    let (ok, out, err) = run(
        &["register-key", "--identifier", &id],
        &env,
        "cli-key-000000001\n",
    )
    .await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("registered a key"), "{out}");

    let server = TestServer::builder(BINARY)
        .env("DATABASE_URL", database_url)
        .start()
        .await;
    assert_eq!(
        authenticate(&server, "cli-key-000000001", identifier).await,
        200
    );

    let (ok, out, err) = run(&["revoke-key", "--key", "cli-key-000000001"], &env, "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("revoked 1 key(s) and 1 refresh token(s)"),
        "{out}"
    );
    assert_eq!(
        authenticate(&server, "cli-key-000000001", identifier).await,
        401
    );
    let (ok, _, _) = run(&["revoke-key", "--key", "cli-key-000000001"], &env, "").await;
    assert!(!ok, "nothing left to revoke is a failure");

    let (ok, out, err) = run(&["purge"], &env, "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("purged 1 expired or revoked row(s)"),
        "the revoked refresh token: {out}"
    );
}

#[tokio::test]
async fn key_lifecycle_through_the_cli_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    key_lifecycle_through_the_cli(&format!("sqlite://{}", dir.path().join("cli.db").display()))
        .await;
}

#[tokio::test]
async fn key_lifecycle_through_the_cli_on_postgres() {
    let database = PgDatabase::create("jwt_cli").await;
    key_lifecycle_through_the_cli(&database.url("postgres")).await;
}

#[tokio::test]
async fn keygen_writes_keys_the_server_signs_with() {
    let dir = tempfile::tempdir().expect("dir");
    for (algorithm, marker) in [
        ("RS256", "BEGIN PRIVATE KEY"),
        ("ES256", "BEGIN PRIVATE KEY"),
        ("EdDSA", "BEGIN PRIVATE KEY"),
    ] {
        let private = dir.path().join(format!("{algorithm}.pem"));
        let public = dir.path().join(format!("{algorithm}.pub.pem"));
        let private_arg = private.to_str().expect("utf-8");
        let public_arg = public.to_str().expect("utf-8");
        let args = [
            "keygen",
            "--algorithm",
            algorithm,
            "--private-key-out",
            private_arg,
            "--public-key-out",
            public_arg,
        ];
        let (ok, out, err) = run(&args, &[], "").await;
        assert!(ok, "{out}{err}");
        assert!(
            std::fs::read_to_string(&private)
                .expect("private")
                .contains(marker)
        );
        assert!(
            std::fs::read_to_string(&public)
                .expect("public")
                .contains("BEGIN PUBLIC KEY")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&private)
                    .expect("meta")
                    .permissions()
                    .mode()
                    & 0o077,
                0
            );
        }
        let (ok, _, _) = run(&args, &[], "").await;
        assert!(!ok, "keygen refuses to overwrite a key");

        let server = TestServer::builder(BINARY)
            .env("JWT_ALGORITHM", algorithm)
            .env("RSA_PRIVATE_KEY_PATH", private_arg)
            .start()
            .await;
        let jwks = jwks(&server).await;
        assert_eq!(jwks["keys"][0]["alg"], algorithm);
        let kid = jwks["keys"][0]["kid"].as_str().expect("kid");
        assert!(
            out.contains(kid),
            "keygen printed the kid the server publishes: {out}"
        );
    }
}

#[tokio::test]
async fn openapi_prints_the_committed_document() {
    let (ok, out, _) = run(&["openapi"], &[], "").await;
    assert!(ok);
    let committed =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml"))
            .expect("openapi.yaml");
    assert_eq!(out.trim_end(), committed.trim_end());
    let (ok, out, _) = run(&["openapi", "--format", "json"], &[], "").await;
    assert!(ok);
    let spec: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(spec["paths"]["/authenticate"].is_object());
}

#[tokio::test]
async fn check_config_redacts_secrets_and_fails_on_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let data_dir = dir.path().to_str().expect("utf-8");
    let key_hash_secret = "a-key-hash-secret-that-check-config-hides";
    let env = [
        ("DATA_DIR", data_dir),
        ("DB_HOST", "db.internal"),
        ("DB_PASS", "hunter2-db-pass"),
        ("ADMIN_TOKEN", "adm1n-s3cret-adm1n-s3cret-adm1n!"),
        ("KEY_HASH_SECRET", key_hash_secret),
    ];
    let (ok, out, err) = run(&["check-config"], &env, "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(
            "database: PostgreSQL at postgres://postgres:[redacted]@db.internal/jwthenticator"
        ),
        "{out}"
    );
    assert!(
        out.contains("key hashes: HMAC-SHA-512 under KEY_HASH_SECRET; new keys need at least 16"),
        "{out}"
    );
    for secret in ["hunter2-db-pass", "adm1n-s3cret", key_hash_secret] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} leaked:\n{out}{err}"
        );
    }
    assert!(out.contains("configuration OK"), "{out}");
    assert!(
        !dir.path().join("jwthenticator.db.signing-key.pem").exists(),
        "check-config writes nothing"
    );

    let (ok, out, _) = run(
        &["check-config"],
        &[("DATA_DIR", data_dir), ("DATABASE_URL", "mysql://u@h/d")],
        "",
    )
    .await;
    assert!(!ok, "a bad database URL is an error");
    assert!(
        out.contains("error: database: unsupported database URL scheme `mysql`"),
        "{out}"
    );
    let (ok, out, _) = run(
        &["check-config"],
        &[
            ("DATA_DIR", data_dir),
            (
                "RSA_PRIVATE_KEY",
                "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----",
            ),
        ],
        "",
    )
    .await;
    assert!(!ok, "an unreadable key is an error: {out}");
    assert!(out.contains("error: keys:"), "{out}");

    // On PostgreSQL: no KEY_HASH_SECRET, and a key file that does not exist, are errors that
    // name what to do.
    let missing = dir.path().join("signing.pem");
    let (ok, out, _) = run(
        &["check-config"],
        &[
            ("DATA_DIR", data_dir),
            ("DB_HOST", "db.internal"),
            ("RSA_PRIVATE_KEY_PATH", missing.to_str().expect("utf-8")),
        ],
        "",
    )
    .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("error: key hashes: KEY_HASH_SECRET is not set")
            && out.contains("LEGACY_KEY_HASHES=true"),
        "{out}"
    );
    assert!(
        out.contains("error: keys:") && out.contains("jwthenticator-server keygen"),
        "{out}"
    );
    assert!(!missing.exists(), "check-config writes nothing");

    // On the embedded default: the generated secret's place.
    let (ok, out, _) = run(&["check-config"], &[("DATA_DIR", data_dir)], "").await;
    assert!(ok, "{out}");
    assert!(
        out.contains("key hashes: HMAC-SHA-512 under the secret in")
            && out.contains("jwthenticator.db.key-hash-secret"),
        "{out}"
    );
}

/// `RSA_PRIVATE_KEY_PATH` naming a file that does not exist: on PostgreSQL the server refuses to
/// start and names `keygen` (an unmounted secret must not give each replica a key of its own);
/// on SQLite it generates the key there, with a warning.
#[tokio::test]
async fn a_missing_key_file_is_refused_on_postgres_and_generated_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("secrets/signing.pem");
    let missing_arg = missing.to_str().expect("utf-8");
    let database = PgDatabase::create("jwt_cli_key_file").await;
    let url = database.url("postgres");
    let port = jwthenticator_tests::free_port().to_string();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KEY_HASH_SECRET", jwthenticator_tests::KEY_HASH_SECRET),
        ("RSA_PRIVATE_KEY_PATH", missing_arg),
        ("HOST", "127.0.0.1"),
        ("PORT", port.as_str()),
        ("DATA_DIR", dir.path().to_str().expect("utf-8")),
    ];
    let (ok, out, err) =
        tokio::time::timeout(std::time::Duration::from_secs(30), run(&[], &env, ""))
            .await
            .expect("the server refuses to start rather than serve");
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(missing_arg) && err.contains("jwthenticator-server keygen"),
        "{err}"
    );
    assert!(!missing.exists(), "no key was generated");

    let server = TestServer::builder(BINARY)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("single.db").display()),
        )
        .env("RSA_PRIVATE_KEY_PATH", missing_arg)
        .start()
        .await;
    assert!(missing.exists(), "generated on the single node");
    let logs = server.logs();
    assert!(
        logs.contains("WARN") && logs.contains("generated a new signing key"),
        "{logs}"
    );
}

/// On a PostgreSQL deployment whose replicas share generated keys (`KEY_ENCRYPTION_SECRET`, no
/// key configured), `check-config` reports the `kid` the servers sign with, read from the
/// database without writing to it, and refuses a secret other than the stored keys' one. (It
/// used to load the configuration as if no key were shared and report the `kid` of a key it
/// had just generated, which no server would ever use.)
#[tokio::test]
async fn check_config_reports_the_kid_the_shared_keys_sign_with() {
    let database = PgDatabase::create("jwt_cli_shared_kid").await;
    let url = database.url("postgres");
    let secret = "a-key-encryption-secret-for-check-config";
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("KEY_HASH_SECRET", jwthenticator_tests::KEY_HASH_SECRET),
        ("KEY_ENCRYPTION_SECRET", secret),
    ];
    let (ok, out, err) = run(&["check-config"], &env, "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("shared by the replicas through PostgreSQL")
            && out.contains("the first replica to start creates the first key"),
        "before any server started: {out}"
    );
    let mut conn = database.connect().await;
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('signing_keys') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert!(
        !migrated,
        "check-config writes nothing, not even the schema"
    );

    let server = TestServer::builder(BINARY)
        .env("DATABASE_URL", url.as_str())
        .env("KEY_HASH_SECRET", jwthenticator_tests::KEY_HASH_SECRET)
        .env("KEY_ENCRYPTION_SECRET", secret)
        .start()
        .await;
    let jwks = jwks(&server).await;
    let kid = jwks["keys"][0]["kid"].as_str().expect("a kid").to_owned();

    let (ok, out, err) = run(&["check-config"], &env, "").await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("signing with kid {kid}"))
            && out.contains("KEY_ENCRYPTION_SECRET matches"),
        "the server signs with {kid}: {out}"
    );
    let other = [
        ("DATABASE_URL", url.as_str()),
        ("KEY_HASH_SECRET", jwthenticator_tests::KEY_HASH_SECRET),
        ("KEY_ENCRYPTION_SECRET", "another-secret-that-seals-nothing"),
    ];
    let (ok, out, _) = run(&["check-config"], &other, "").await;
    assert!(!ok, "another secret: {out}");
    assert!(
        out.contains("error: keys:") && out.contains("KEY_ENCRYPTION_SECRET is not the secret"),
        "{out}"
    );
    assert!(!out.contains(secret), "{out}");
    drop(server);
}

#[tokio::test]
async fn healthcheck_reports_whether_the_server_answers() {
    let server = TestServer::builder(BINARY).start().await;
    let port = server
        .base_url()
        .rsplit(':')
        .next()
        .expect("port")
        .to_owned();
    let (ok, _, _) = run(&["healthcheck"], &[("PORT", &port)], "").await;
    assert!(ok, "the server answers /health");
    let free = jwthenticator_tests::free_port().to_string();
    let (ok, _, _) = run(&["healthcheck"], &[("PORT", &free)], "").await;
    assert!(!ok, "nothing listens there");
}
