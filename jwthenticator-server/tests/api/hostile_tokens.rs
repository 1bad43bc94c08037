//! Hostile tokens against `/validate` and `/validate_request`: every one is a 401, never a 5xx.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{
    Backend, TestApp, attacker_key_pem, b64, claims_json, private_key_pem, sign_hmac, sign_rsa,
};

fn public_key_forms() -> Vec<(&'static str, Vec<u8>)> {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(private_key_pem())
        .expect("key")
        .to_public_key();
    vec![
        (
            "SPKI PEM",
            key.to_public_key_pem(LineEnding::LF)
                .expect("pem")
                .into_bytes(),
        ),
        (
            "PKCS#1 PEM",
            key.to_pkcs1_pem(LineEnding::LF).expect("pem").into_bytes(),
        ),
        (
            "SPKI DER",
            key.to_public_key_der().expect("der").as_bytes().to_vec(),
        ),
        ("JWK n", b64(key.n().to_bytes_be()).into_bytes()),
    ]
}

/// Every hostile token, named.
fn hostile_tokens(kid: &str) -> Vec<(String, String)> {
    let ours = |header: Value, payload: &str| {
        sign_rsa(private_key_pem(), Algorithm::RS256, &header, payload)
    };
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let valid_payload = claims_json(600);
    let mut tokens: Vec<(String, String)> = Vec::new();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let unsigned = format!(
            "{}.{}.",
            b64(json!({"alg": alg, "kid": kid}).to_string()),
            b64(&valid_payload)
        );
        tokens.push((format!("alg {alg}, empty signature"), unsigned.clone()));
        tokens.push((
            format!("alg {alg}, junk signature"),
            format!("{unsigned}c2ln"),
        ));
    }
    for (form, secret) in public_key_forms() {
        tokens.push((
            format!("HS256 with the public key ({form}) as secret"),
            sign_hmac(
                &secret,
                &json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
                &valid_payload,
            ),
        ));
    }
    tokens.push((
        "another key's signature with our kid".into(),
        sign_rsa(
            attacker_key_pem(),
            Algorithm::RS256,
            &header,
            &valid_payload,
        ),
    ));
    tokens.push((
        "another key's signature with an unknown kid".into(),
        sign_rsa(
            attacker_key_pem(),
            Algorithm::RS256,
            &json!({"alg": "RS256", "kid": "attacker"}),
            &valid_payload,
        ),
    ));
    for (name, extra) in [
        ("jku", json!("http://127.0.0.1:1/jwks")),
        ("x5u", json!("http://127.0.0.1:1/cert")),
        ("jwk", json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        ("x5c", json!(["MIIB"])),
    ] {
        let mut attacker_header = header.clone();
        attacker_header[name] = extra;
        tokens.push((
            format!("`{name}` header pointing at the attacker's key"),
            sign_rsa(
                attacker_key_pem(),
                Algorithm::RS256,
                &attacker_header,
                &valid_payload,
            ),
        ));
    }
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut base = json!({"token_id": uuid::Uuid::new_v4(), "identifier": uuid::Uuid::new_v4(), "iat": now});
        for (k, v) in extra.as_object().expect("object") {
            base[k] = v.clone();
        }
        base.to_string()
    };
    for (name, payload) in [
        ("expired", claims(json!({"exp": now - 3600}))),
        (
            "nbf in the future",
            claims(json!({"exp": now + 600, "nbf": now + 3600})),
        ),
        ("exp missing", claims(json!({}))),
        (
            "exp a string",
            claims(json!({"exp": (now + 600).to_string()})),
        ),
        (
            "exp a float",
            claims(json!({"exp": (now + 600) as f64 + 0.5})),
        ),
        ("exp huge", claims(json!({"exp": 1e300}))),
        (
            "exp beyond the lease time",
            claims(json!({"exp": i64::MAX / 2})),
        ),
    ] {
        tokens.push((
            format!("signed by us, {name}"),
            ours(header.clone(), &payload),
        ));
    }
    let now_exp = format!(
        r#"{{"token_id":"{}","identifier":"{}","iat":{now},"exp":{}}}"#,
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        now + 600
    );
    tokens.push((
        "exp above 2^64".into(),
        ours(
            header.clone(),
            &now_exp.replace(
                &format!("\"exp\":{}", now + 600),
                "\"exp\":99999999999999999999999",
            ),
        ),
    ));
    tokens.push((
        "duplicate exp, the last one huge".into(),
        ours(
            header.clone(),
            &now_exp.replace('}', r#","exp":99999999999}"#),
        ),
    ));
    let mut crit = header.clone();
    crit["crit"] = json!(["exp"]);
    tokens.push(("crit header".into(), ours(crit, &valid_payload)));
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let mut other = header.clone();
        other["alg"] = json!(format!("{alg:?}"));
        tokens.push((
            format!("{alg:?} signed with the right key"),
            sign_rsa(private_key_pem(), alg, &other, &valid_payload),
        ));
    }
    for payload in ["[1,2,3]", "\"claims\"", "42", "null"] {
        tokens.push((format!("payload {payload}"), ours(header.clone(), payload)));
    }
    let valid = ours(header, &valid_payload);
    let parts: Vec<&str> = valid.split('.').collect();
    tokens.push(("2 segments".into(), format!("{}.{}", parts[0], parts[1])));
    tokens.push(("4 segments".into(), format!("{valid}.{}", parts[2])));
    tokens.push((
        "5 segments".into(),
        format!("{valid}.{}.{}", parts[2], parts[2]),
    ));
    tokens.push((
        "bad base64 header".into(),
        format!("!!!.{}.{}", parts[1], parts[2]),
    ));
    tokens.push((
        "padded base64 payload".into(),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
    ));
    tokens.push((
        "header not JSON".into(),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
    ));
    tokens.push((
        "truncated signature".into(),
        format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20]),
    ));
    tokens.push((
        "oversize".into(),
        format!("{}.{}.{}", parts[0], "A".repeat(9000), parts[2]),
    ));
    tokens.push(("empty".into(), String::new()));
    tokens.push(("dots only".into(), "..".into()));
    tokens
}

async fn hostile_tokens_are_rejected_with_401_never_5xx(backend: Backend) {
    let app = TestApp::new(backend).await;
    // The forging helpers are right: the same route accepts a token they sign properly.
    let good = sign_rsa(
        private_key_pem(),
        Algorithm::RS256,
        &json!({"alg": "RS256", "kid": app.kid(), "typ": "JWT"}),
        &claims_json(600),
    );
    assert_eq!(app.post("/validate", json!({"jwt": good})).await.0, 200);

    for (name, token) in hostile_tokens(&app.kid()) {
        let (status, body) = app.post("/validate", json!({"jwt": token})).await;
        assert_eq!(
            status, 401,
            "/validate accepted or failed on: {name}: {body}"
        );
        assert_eq!(body["error"], "invalid_token", "{name}");
        if token.is_empty() {
            continue;
        }
        let (status, challenge) = app.validate_request(Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 401, "/validate_request on: {name}");
        assert!(
            challenge.is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
            "{name}"
        );
    }
}

async fn a_token_longer_than_the_body_field_limit_is_a_400_at_validate_and_401_at_validate_request(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let huge = format!("a.{}.b", "A".repeat(20_000));
    assert_eq!(app.post("/validate", json!({"jwt": huge})).await.0, 400);
    assert_eq!(
        app.validate_request(Some(&format!("Bearer {huge}")))
            .await
            .0,
        401
    );
}

/// A token validated once is answered from the server's cache of validated tokens, but only
/// until its `exp`: the cache never outlives the token, and turning it off changes no answer.
async fn validated_tokens_are_remembered_only_until_they_expire(backend: Backend) {
    for cache_size in ["10000", "0"] {
        let app = TestApp::with_args(
            backend,
            &["--jwt-leeway", "0", "--validation-cache-size", cache_size],
        )
        .await;
        let header = json!({"alg": "RS256", "kid": app.kid(), "typ": "JWT"});
        let token = sign_rsa(
            private_key_pem(),
            Algorithm::RS256,
            &header,
            &claims_json(2),
        );
        let bearer = format!("Bearer {token}");
        for _ in 0..3 {
            assert_eq!(app.post("/validate", json!({"jwt": token})).await.0, 200);
            assert_eq!(app.validate_request(Some(&bearer)).await.0, 200);
        }
        // The same claims with another signature are not the cached token.
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(app.post("/validate", json!({"jwt": forged})).await.0, 401);

        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let (status, body) = app.post("/validate", json!({"jwt": token})).await;
        assert_eq!(status, 401, "cache size {cache_size}: {body}");
        assert_eq!(body["message"], "the token has expired", "{body}");
        assert_eq!(app.validate_request(Some(&bearer)).await.0, 401);
    }
}

on_both_backends!(
    validated_tokens_are_remembered_only_until_they_expire,
    hostile_tokens_are_rejected_with_401_never_5xx,
    a_token_longer_than_the_body_field_limit_is_a_400_at_validate_and_401_at_validate_request,
);
