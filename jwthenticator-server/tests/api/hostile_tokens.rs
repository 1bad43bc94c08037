//! Hostile tokens against `/validate` and `/validate_request`: every one is a 401, never a 5xx.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::{
    Backend, TestApp, attacker_key_pem, b64, claims_json, private_key_pem, sign_hmac, sign_rsa,
    sign_rsa_text,
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

/// Tokens signed with the server's key whose verdict once depended on
/// `VALIDATION_CACHE_SIZE`, or whose members carry `null` or another type than their RFC
/// gives them, with the verdict expected: whether the token is valid.
fn typed_member_tokens(kid: &str) -> Vec<(String, String, bool)> {
    let now = chrono::Utc::now().timestamp();
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let claims = || {
        json!({
            "token_id": uuid::Uuid::new_v4(),
            "identifier": uuid::Uuid::new_v4(),
            "iat": now,
            "exp": now + 600,
        })
    };
    let ours = |header: &Value, payload: &str| {
        sign_rsa(private_key_pem(), Algorithm::RS256, header, payload)
    };
    let mut tokens = vec![
        (
            "valid".to_owned(),
            ours(&header, &claims().to_string()),
            true,
        ),
        (
            "valid, with sub, jti and an extra claim".to_owned(),
            ours(&header, &{
                let mut payload = claims();
                payload["sub"] = json!("device-7");
                payload["jti"] = json!(uuid::Uuid::new_v4());
                payload["scope"] = json!(["read"]);
                payload.to_string()
            }),
            true,
        ),
    ];
    for name in ["iat", "token_id", "identifier"] {
        let mut payload = claims();
        payload.as_object_mut().expect("object").remove(name);
        tokens.push((
            format!("no {name}"),
            ours(&header, &payload.to_string()),
            false,
        ));
    }
    for (name, value) in [
        ("iat", json!(null)),
        ("iat", json!(now.to_string())),
        ("nbf", json!(null)),
        ("nbf", json!("0")),
        ("exp", json!(null)),
        ("aud", json!(null)),
        ("iss", json!(null)),
        ("sub", json!(null)),
        ("sub", json!(7)),
        ("jti", json!(null)),
        ("jti", json!(7)),
        ("token_id", json!(null)),
        ("token_id", json!("not-a-uuid")),
        ("identifier", json!(7)),
        ("identifier", json!("not-a-uuid")),
    ] {
        let mut payload = claims();
        payload[name] = value.clone();
        tokens.push((
            format!("claim {name}: {value}"),
            ours(&header, &payload.to_string()),
            false,
        ));
    }
    for (name, value) in [
        ("kid", json!(null)),
        ("crit", json!(null)),
        ("crit", json!(["b64"])),
        ("b64", json!(true)),
        ("typ", json!(null)),
        ("jwk", json!("key")),
        ("x5c", json!(null)),
    ] {
        let mut header = header.clone();
        header[name] = value.clone();
        tokens.push((
            format!("header {name}: {value}"),
            ours(&header, &claims().to_string()),
            false,
        ));
    }
    let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
    for (name, member) in [
        ("1,000-deep nesting", format!(r#""ext":{deep}"#)),
        ("a lone \\ud800 escape", r#""ext":"\ud800""#.to_owned()),
        ("a lone \\udc00 escape", r#""ext":["\udc00"]"#.to_owned()),
    ] {
        let payload = claims()
            .to_string()
            .replacen('{', &format!("{{{member},"), 1);
        tokens.push((
            format!("payload with {name}"),
            ours(&header, &payload),
            false,
        ));
        let header_text = header.to_string().replacen('{', &format!("{{{member},"), 1);
        tokens.push((
            format!("header with {name}"),
            sign_rsa_text(
                private_key_pem(),
                Algorithm::RS256,
                &header_text,
                &claims().to_string(),
            ),
            false,
        ));
    }
    tokens
}

/// Each token's verdict at `/validate` and at `/validate_request`, each asked twice, so that
/// with a cache the second answer is a hit: the four must agree.
async fn verdicts(app: &TestApp, tokens: &[(String, String, bool)]) -> Vec<bool> {
    let mut verdicts = Vec::new();
    for (name, token, _) in tokens {
        let mut answers = Vec::new();
        for _ in 0..2 {
            answers.push(app.post("/validate", json!({"jwt": token})).await.0);
            let status = app
                .validate_request(Some(&format!("Bearer {token}")))
                .await
                .0;
            answers.push(status);
        }
        assert!(
            answers == [200; 4] || answers == [401; 4],
            "{name}: answers {answers:?}"
        );
        verdicts.push(answers[0] == 200);
    }
    verdicts
}

/// `VALIDATION_CACHE_SIZE` is a performance setting: with the cache off and on (the default),
/// every token gets the same verdict, the expected one, on a first look and on a cache hit.
async fn the_validation_cache_size_changes_no_verdict(backend: Backend) {
    let uncached = TestApp::with_args(backend, &["--validation-cache-size", "0"]).await;
    let tokens = typed_member_tokens(&uncached.kid());
    let without_cache = verdicts(&uncached, &tokens).await;
    let cached = TestApp::on(uncached.database, &[]).await;
    let with_cache = verdicts(&cached, &tokens).await;
    let wrong: Vec<String> = tokens
        .iter()
        .zip(without_cache.iter().zip(&with_cache))
        .filter(|((_, _, valid), (without, with))| *without != valid || *with != valid)
        .map(|((name, _, valid), (without, with))| {
            format!("{name}: expected valid={valid}, without the cache {without}, with it {with}")
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

on_both_backends!(
    the_validation_cache_size_changes_no_verdict,
    validated_tokens_are_remembered_only_until_they_expire,
    hostile_tokens_are_rejected_with_401_never_5xx,
    a_token_longer_than_the_body_field_limit_is_a_400_at_validate_and_401_at_validate_request,
);
