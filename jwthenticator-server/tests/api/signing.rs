//! ES256 and EdDSA through the routes, the RFC 8725 items that depend on the configured key,
//! signing-key rotation through `PUBLISHED_PUBLIC_KEY_PATHS`, and `JWT_ISSUER`.

use std::sync::OnceLock;

use clap::Parser;
use jsonwebtoken::{Algorithm, EncodingKey};
use jwthenticator_core::{Jwks, Verifier};
use jwthenticator_server::keys::PrivateKey;
use jwthenticator_server::{App, Config};
use poem::test::TestClient;
use rsa::pkcs8::der::SecretDocument;
use serde_json::{Value, json};

use crate::support::{
    Backend, Database, TestApp, attacker_key_pem, b64, claims_json, private_key_pem, sign_hmac,
    sign_rsa,
};

/// One EC P-256 key for the whole test binary.
pub(crate) fn ec_private_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| generate_pem(Algorithm::ES256))
}

/// One Ed25519 key for the whole test binary.
pub(crate) fn ed_private_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| generate_pem(Algorithm::EdDSA))
}

/// The server's key for `algorithm`: RSA for RS*/PS*, else EC or Ed25519.
pub(crate) fn private_pem_for(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::ES256 => ec_private_pem(),
        Algorithm::EdDSA => ed_private_pem(),
        _ => private_key_pem(),
    }
}

/// A new PKCS#8 PEM private key for `algorithm`.
pub(crate) fn generate_pem(algorithm: Algorithm) -> String {
    PrivateKey::generate(algorithm, 2048)
        .expect("generate")
        .to_pem()
        .expect("pem")
        .to_string()
}

/// The SPKI PEM public key of a PEM private key.
pub(crate) fn public_pem(private_pem: &str) -> String {
    PrivateKey::from_pem(private_pem)
        .expect("private key")
        .public_key()
        .to_pem()
        .expect("pem")
}

/// The `kid` the server derives for a PEM private key.
pub(crate) fn kid_of(private_pem: &str) -> String {
    PrivateKey::from_pem(private_pem)
        .expect("private key")
        .public_key()
        .kid()
}

/// Signs `header.payload` with a PKCS#8 PEM key of any type.
pub(crate) fn sign_pem(pem: &str, alg: Algorithm, header: &Value, payload: &str) -> String {
    let key = match alg {
        Algorithm::ES256 | Algorithm::EdDSA => {
            let (_, der) = SecretDocument::from_pem(pem).expect("pem");
            if alg == Algorithm::ES256 {
                EncodingKey::from_ec_der(der.as_bytes())
            } else {
                EncodingKey::from_ed_der(der.as_bytes())
            }
        }
        _ => return sign_rsa(pem, alg, header, payload),
    };
    let message = format!("{}.{}", b64(header.to_string()), b64(payload));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, alg).expect("sign");
    format!("{message}.{signature}")
}

/// `header.payload.signature` with the given raw signature bytes.
fn with_signature(header: &Value, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(payload),
        b64(signature)
    )
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::RS256 => "RS256",
        Algorithm::PS256 => "PS256",
        other => panic!("no test uses {other:?}"),
    }
}

/// An app on `database` configured by `args` alone (no default RSA key).
pub(crate) async fn app_on(database: Database, args: &[&str]) -> TestApp {
    let app = App::new(&app_config(&database.url, args))
        .await
        .expect("app starts");
    let client = TestClient::new(app.endpoint());
    TestApp {
        app,
        client,
        database,
    }
}

pub(crate) fn app_config(database_url: &str, args: &[&str]) -> Config {
    let mut argv = vec!["jwthenticator-server", "--database-url", database_url];
    argv.extend_from_slice(crate::support::key_hash_args(database_url, args));
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).expect("valid test configuration")
}

/// An app on a fresh database signing with `algorithm` and the test key of its type.
async fn signing_app(backend: Backend, algorithm: Algorithm, extra: &[&str]) -> TestApp {
    let mut args = vec![
        "--jwt-algorithm",
        alg_name(algorithm),
        "--jwt-private-key",
        private_pem_for(algorithm),
    ];
    args.extend_from_slice(extra);
    app_on(Database::new(backend).await, &args).await
}

async fn jwks(app: &TestApp) -> Value {
    let response = app.client.get("/jwks").send().await;
    response.assert_status_is_ok();
    response.json().await.value().deserialize()
}

async fn validate(app: &TestApp, token: &str) -> u16 {
    app.post("/validate", json!({"jwt": token})).await.0
}

/// 401 at `/validate` and at `/validate_request`, with the RFC 6750 challenge.
async fn assert_rejected(app: &TestApp, name: &str, token: &str) {
    let (status, body) = app.post("/validate", json!({"jwt": token})).await;
    assert_eq!(status, 401, "/validate on {name}: {body}");
    let (status, challenge) = app.validate_request(Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, 401, "/validate_request on {name}");
    assert!(
        challenge.is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
        "{name}"
    );
}

pub(crate) fn decode_segment(token: &str, index: usize) -> Value {
    use base64::Engine;
    let segment = token.split('.').nth(index).expect("segment");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

async fn es256_and_eddsa_tokens_are_issued_and_validated_through_the_routes(backend: Backend) {
    for (algorithm, kty, crv, members) in [
        (
            Algorithm::ES256,
            "EC",
            "P-256",
            &["alg", "crv", "kid", "kty", "use", "x", "y"][..],
        ),
        (
            Algorithm::EdDSA,
            "OKP",
            "Ed25519",
            &["alg", "crv", "kid", "kty", "use", "x"][..],
        ),
    ] {
        let name = alg_name(algorithm);
        let app = signing_app(backend, algorithm, &[]).await;
        let (jwt, refresh_token, identifier) = app.authenticate().await;
        assert_eq!(
            decode_segment(&jwt, 0),
            json!({"alg": name, "kid": kid_of(private_pem_for(algorithm)), "typ": "JWT"})
        );
        assert_eq!(validate(&app, &jwt).await, 200, "{name}");
        assert_eq!(
            app.validate_request(Some(&format!("Bearer {jwt}"))).await.0,
            200,
            "{name}"
        );

        let (status, body) = app
            .post(
                "/refresh",
                json!({"refresh_token": refresh_token, "identifier": identifier}),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        let refreshed = body["jwt"].as_str().expect("jwt");
        assert_eq!(validate(&app, refreshed).await, 200, "{name}");

        let jwks = jwks(&app).await;
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1, "{jwks}");
        let key = keys[0].as_object().expect("object");
        let mut names: Vec<&str> = key.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, members, "{name}: {jwks}");
        assert_eq!(key["kty"], kty);
        assert_eq!(key["crv"], crv);
        assert_eq!(key["alg"], name);
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], app.kid().as_str());
        // The published JWKS is enough to verify the token, as the tower layer does.
        let jwks: Jwks = serde_json::from_value(jwks).expect("JWKS");
        let claims = Verifier::builder()
            .build(&jwks)
            .expect("verifier")
            .verify(&jwt)
            .expect("a token the JWKS verifies");
        assert_eq!(claims.identifier, identifier);
    }
}

async fn a_psychic_ecdsa_signature_is_rejected_by_an_es256_server(backend: Backend) {
    let app = signing_app(backend, Algorithm::ES256, &[]).await;
    let kid = app.kid();
    let header = header("ES256", &kid);
    let payload = claims_json(600);
    // The helpers are right: the same header and payload signed properly pass.
    let good = sign_pem(ec_private_pem(), Algorithm::ES256, &header, &payload);
    assert_eq!(validate(&app, &good).await, 200);

    // The P-256 group order n: r = s = n is r = s = 0 modulo n (CVE-2022-21449).
    let order = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
        .expect("hex");
    let mut one = [0u8; 32];
    one[31] = 1;
    let signatures: Vec<(&str, Vec<u8>)> = vec![
        ("r = s = 0 (64 zero bytes)", vec![0; 64]),
        ("r = 0, s = 1", [[0u8; 32], one].concat()),
        ("r = 1, s = 0", [one, [0u8; 32]].concat()),
        ("r = s = n", [order.clone(), order].concat()),
        (
            "DER SEQUENCE {0, 0}",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("empty", Vec::new()),
        ("one zero byte", vec![0]),
        ("65 zero bytes", vec![0; 65]),
    ];
    for (name, signature) in signatures {
        assert_rejected(&app, name, &with_signature(&header, &payload, &signature)).await;
    }
}

async fn tokens_for_another_key_type_are_rejected(backend: Backend) {
    let es = signing_app(backend, Algorithm::ES256, &[]).await;
    let rs = signing_app(backend, Algorithm::RS256, &[]).await;
    let payload = claims_json(600);

    // RS256 against the ES256 server: signed by an RSA key, under the EC key's kid.
    let rs256_with_ec_kid = sign_rsa(
        private_key_pem(),
        Algorithm::RS256,
        &header("RS256", &es.kid()),
        &payload,
    );
    assert_rejected(&es, "RS256 under the ES256 kid", &rs256_with_ec_kid).await;
    let (rs_token, _, _) = rs.authenticate().await;
    assert_eq!(validate(&rs, &rs_token).await, 200);
    assert_rejected(&es, "a token of the RS256 server", &rs_token).await;

    // ES256 against the RS256 server: signed by an EC key, under the RSA key's kid.
    let es256_with_rsa_kid = sign_pem(
        ec_private_pem(),
        Algorithm::ES256,
        &header("ES256", &rs.kid()),
        &payload,
    );
    assert_rejected(&rs, "ES256 under the RS256 kid", &es256_with_rsa_kid).await;
    let (es_token, _, _) = es.authenticate().await;
    assert_eq!(validate(&es, &es_token).await, 200);
    assert_rejected(&rs, "a token of the ES256 server", &es_token).await;

    // EdDSA signed by an Ed25519 key under the ES256 server's kid.
    let eddsa_with_ec_kid = sign_pem(
        ed_private_pem(),
        Algorithm::EdDSA,
        &header("EdDSA", &es.kid()),
        &payload,
    );
    assert_rejected(&es, "EdDSA under the ES256 kid", &eddsa_with_ec_kid).await;
    // A valid ES256 signature relabelled as another algorithm.
    let mut relabelled = es_token.split('.').map(str::to_owned).collect::<Vec<_>>();
    relabelled[0] = b64(header("ES384", &es.kid()).to_string());
    assert_rejected(&es, "alg ES384", &relabelled.join(".")).await;
}

/// The EC and Ed25519 public key in every form an attacker might use as an HMAC secret.
fn public_key_forms(private_pem: &str) -> Vec<(&'static str, Vec<u8>)> {
    use rsa::pkcs8::{Document, SubjectPublicKeyInfoRef};
    let pem = public_pem(private_pem);
    let (_, der) = Document::from_pem(&pem).expect("SPKI PEM");
    let spki = SubjectPublicKeyInfoRef::try_from(der.as_bytes()).expect("SPKI");
    let raw = spki.subject_public_key.raw_bytes();
    let mut forms = vec![
        ("SPKI PEM", pem.clone().into_bytes()),
        (
            "SPKI PEM without newline",
            pem.trim_end().as_bytes().to_vec(),
        ),
        ("SPKI DER", der.as_bytes().to_vec()),
        ("raw public key", raw.to_vec()),
    ];
    if raw.len() == 65 {
        forms.push(("JWK x", b64(&raw[1..33]).into_bytes()));
        forms.push(("JWK y", b64(&raw[33..]).into_bytes()));
    } else {
        forms.push(("JWK x", b64(raw).into_bytes()));
    }
    forms
}

async fn hs256_signed_with_the_ec_or_ed25519_public_key_is_rejected(backend: Backend) {
    for algorithm in [Algorithm::ES256, Algorithm::EdDSA] {
        let app = signing_app(backend, algorithm, &[]).await;
        let payload = claims_json(600);
        for (form, secret) in public_key_forms(private_pem_for(algorithm)) {
            for alg in ["HS256", "HS384", "HS512"] {
                let token = sign_hmac(&secret, &header(alg, &app.kid()), &payload);
                assert_rejected(&app, &format!("{alg} with the {form}"), &token).await;
            }
        }
        for none in ["none", "None"] {
            let unsigned = format!(
                "{}.{}.",
                b64(header(none, &app.kid()).to_string()),
                b64(&payload)
            );
            assert_rejected(&app, none, &unsigned).await;
        }
    }
}

fn write_pem(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

async fn a_previous_key_is_accepted_while_published_and_rejected_once_removed(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let previous = private_key_pem();
    let next = attacker_key_pem();
    let previous_public = write_pem(dir.path(), "previous.pub.pem", &public_pem(previous));

    let before = app_on(
        Database::new(backend).await,
        &["--rsa-private-key", previous],
    )
    .await;
    let (old_token, _, _) = before.authenticate().await;

    // Rotated: the next key signs, the previous one is still published.
    let rotated = app_on(
        before.database,
        &[
            "--rsa-private-key",
            next,
            "--published-public-key-paths",
            &previous_public,
        ],
    )
    .await;
    assert_eq!(validate(&rotated, &old_token).await, 200);
    assert_eq!(
        rotated
            .validate_request(Some(&format!("Bearer {old_token}")))
            .await
            .0,
        200
    );
    let (new_token, _, _) = rotated.authenticate().await;
    assert_eq!(decode_segment(&new_token, 0)["kid"], kid_of(next).as_str());
    assert_eq!(validate(&rotated, &new_token).await, 200);
    let kids: Vec<Value> = jwks(&rotated).await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].clone())
        .collect();
    assert_eq!(kids, [json!(kid_of(next)), json!(kid_of(previous))]);

    // The previous key retired: its tokens die, the new ones live.
    let retired = app_on(rotated.database, &["--rsa-private-key", next]).await;
    assert_rejected(&retired, "a token of the retired key", &old_token).await;
    assert_eq!(validate(&retired, &new_token).await, 200);
    assert_eq!(
        jwks(&retired).await["keys"].as_array().expect("keys").len(),
        1
    );
}

#[tokio::test]
async fn a_key_published_before_it_signs_is_in_the_jwks_and_its_tokens_are_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let next = generate_pem(Algorithm::ES256);
    let next_public = write_pem(dir.path(), "next.pub.pem", &public_pem(&next));
    let app = app_on(
        Database::new(Backend::Sqlite).await,
        &[
            "--jwt-algorithm",
            "ES256",
            "--jwt-private-key",
            ec_private_pem(),
            "--published-public-key-paths",
            &next_public,
        ],
    )
    .await;
    let (current_token, _, _) = app.authenticate().await;
    assert_eq!(
        decode_segment(&current_token, 0)["kid"],
        kid_of(ec_private_pem()).as_str(),
        "the current key still signs"
    );
    let jwks = jwks(&app).await;
    assert_eq!(jwks["keys"][1]["kid"], kid_of(&next).as_str(), "{jwks}");
    assert_eq!(jwks["keys"][1]["alg"], "ES256");

    // A replica that already signs with the next key issues tokens this one accepts.
    let token = sign_pem(
        &next,
        Algorithm::ES256,
        &header("ES256", &kid_of(&next)),
        &claims_json(600),
    );
    assert_eq!(validate(&app, &token).await, 200);
    assert_eq!(validate(&app, &current_token).await, 200);
}

#[tokio::test]
async fn rotating_to_another_algorithm_keeps_the_previous_keys_tokens_valid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rsa_public = write_pem(dir.path(), "rsa.pub.pem", &public_pem(private_key_pem()));
    let ed_public = write_pem(dir.path(), "ed.pub.pem", &public_pem(ed_private_pem()));
    let rs256 = app_on(
        Database::new(Backend::Sqlite).await,
        &["--rsa-private-key", private_key_pem()],
    )
    .await;
    let (rs256_token, _, _) = rs256.authenticate().await;

    let es256 = app_on(
        rs256.database,
        &[
            "--jwt-algorithm",
            "ES256",
            "--jwt-private-key",
            ec_private_pem(),
            "--published-public-key-paths",
            &format!("{rsa_public},{ed_public}"),
        ],
    )
    .await;
    assert_eq!(validate(&es256, &rs256_token).await, 200);
    let eddsa_token = sign_pem(
        ed_private_pem(),
        Algorithm::EdDSA,
        &header("EdDSA", &kid_of(ed_private_pem())),
        &claims_json(600),
    );
    assert_eq!(validate(&es256, &eddsa_token).await, 200);
    let jwks = jwks(&es256).await;
    let algs: Vec<&Value> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| &key["alg"])
        .collect();
    assert_eq!(algs, [&json!("ES256"), &json!("RS256"), &json!("EdDSA")]);

    // Each published key verifies its own algorithm only.
    let ps256 = sign_rsa(
        private_key_pem(),
        Algorithm::PS256,
        &header("PS256", &kid_of(private_key_pem())),
        &claims_json(600),
    );
    assert_rejected(&es256, "PS256 under the published RS256 key", &ps256).await;
    let es256_under_ed_kid = sign_pem(
        ec_private_pem(),
        Algorithm::ES256,
        &header("ES256", &kid_of(ed_private_pem())),
        &claims_json(600),
    );
    assert_rejected(&es256, "ES256 under the Ed25519 kid", &es256_under_ed_kid).await;
}

#[tokio::test]
async fn published_rsa_keys_verify_with_the_configured_rsa_algorithm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let previous = write_pem(dir.path(), "prev.pub.pem", &public_pem(attacker_key_pem()));
    let app = app_on(
        Database::new(Backend::Sqlite).await,
        &[
            "--jwt-algorithm",
            "PS256",
            "--rsa-private-key",
            private_key_pem(),
            "--published-public-key-paths",
            &previous,
        ],
    )
    .await;
    let keys = jwks(&app).await["keys"].clone();
    assert_eq!(keys[0]["alg"], "PS256");
    assert_eq!(keys[1]["alg"], "PS256");
    let token = |alg| {
        sign_rsa(
            attacker_key_pem(),
            alg,
            &header(alg_name(alg), &kid_of(attacker_key_pem())),
            &claims_json(600),
        )
    };
    assert_eq!(validate(&app, &token(Algorithm::PS256)).await, 200);
    assert_rejected(&app, "RS256 under a PS256 key", &token(Algorithm::RS256)).await;
}

#[tokio::test]
async fn a_key_listed_twice_or_equal_to_the_signing_key_is_published_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let own = write_pem(dir.path(), "own.pub.pem", &public_pem(ec_private_pem()));
    let other = write_pem(dir.path(), "other.pub.pem", &public_pem(ed_private_pem()));
    let other_copy = write_pem(dir.path(), "copy.pub.pem", &public_pem(ed_private_pem()));
    let app = app_on(
        Database::new(Backend::Sqlite).await,
        &[
            "--jwt-algorithm",
            "ES256",
            "--jwt-private-key",
            ec_private_pem(),
            "--published-public-key-paths",
            &format!("{own},{other},{other_copy},{other},"),
        ],
    )
    .await;
    let kids: Vec<Value> = jwks(&app).await["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].clone())
        .collect();
    assert_eq!(
        kids,
        [
            json!(kid_of(ec_private_pem())),
            json!(kid_of(ed_private_pem()))
        ]
    );
}

async fn jwt_issuer_is_written_and_required(backend: Backend) {
    let issuer = "https://auth.example.com";
    let app = signing_app(backend, Algorithm::ES256, &["--jwt-issuer", issuer]).await;
    let (jwt, _, _) = app.authenticate().await;
    assert_eq!(decode_segment(&jwt, 1)["iss"], issuer);
    assert_eq!(validate(&app, &jwt).await, 200);
    assert_eq!(
        app.validate_request(Some(&format!("Bearer {jwt}"))).await.0,
        200
    );

    let signed = |iss: Option<&str>| {
        let mut claims: Value = serde_json::from_str(&claims_json(600)).expect("json");
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        sign_pem(
            ec_private_pem(),
            Algorithm::ES256,
            &header("ES256", &app.kid()),
            &claims.to_string(),
        )
    };
    assert_eq!(validate(&app, &signed(Some(issuer))).await, 200);
    assert_rejected(&app, "no iss", &signed(None)).await;
    assert_rejected(&app, "another iss", &signed(Some("https://evil.example"))).await;
    assert_rejected(
        &app,
        "iss with a trailing slash",
        &signed(Some("https://auth.example.com/")),
    )
    .await;
    let mut claims: Value = serde_json::from_str(&claims_json(600)).expect("json");
    claims["iss"] = json!([issuer]);
    let list = sign_pem(
        ec_private_pem(),
        Algorithm::ES256,
        &header("ES256", &app.kid()),
        &claims.to_string(),
    );
    assert_rejected(&app, "iss as a list", &list).await;

    // Without JWT_ISSUER nothing writes `iss`.
    let plain = signing_app(backend, Algorithm::ES256, &[]).await;
    let (jwt, _, _) = plain.authenticate().await;
    assert!(decode_segment(&jwt, 1).get("iss").is_none());
}

on_both_backends!(
    es256_and_eddsa_tokens_are_issued_and_validated_through_the_routes,
    a_psychic_ecdsa_signature_is_rejected_by_an_es256_server,
    tokens_for_another_key_type_are_rejected,
    hs256_signed_with_the_ec_or_ed25519_public_key_is_rejected,
    a_previous_key_is_accepted_while_published_and_rejected_once_removed,
    jwt_issuer_is_written_and_required,
);
