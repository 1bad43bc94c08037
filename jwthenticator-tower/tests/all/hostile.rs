//! The hostile-token set of the server's tests, against the layer: every one gets 401
//! `invalid_token`, never another status, and the handler never runs.

use http::StatusCode;
use jsonwebtoken::EncodingKey;
use jwthenticator_core::{Algorithm, VerifyErrorKind};
use jwthenticator_tower::{AuthError, AuthErrorKind};
use serde_json::{Value, json};

use crate::support::*;

async fn assert_refused(name: &str, token: &str) -> VerifyErrorKind {
    let response = send(&layer(), request(Some(token))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    assert!(challenge(&response).contains("invalid_token"), "{name}");
    assert!(response.body().is_empty(), "{name}: the handler ran");
    match response
        .extensions()
        .get::<AuthError>()
        .map(AuthError::kind)
    {
        Some(AuthErrorKind::InvalidToken(kind)) => kind,
        other => panic!("{name}: {other:?}"),
    }
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut claims = claims();
    claims[name] = value;
    claims
}

fn ours(payload: &Value) -> String {
    signed(&keys().ours, KID, payload)
}

#[tokio::test]
async fn alg_none_in_any_case_is_refused() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({"alg": alg, "kid": KID, "typ": "JWT"});
        for token in [
            forge(&header, &claims(), None),
            // No signature at all, as `none` tokens are sent.
            forge(&header, &claims(), None)
                .rsplit_once('.')
                .expect("dot")
                .0
                .to_owned()
                + ".",
        ] {
            assert_eq!(
                assert_refused(alg, &token).await,
                VerifyErrorKind::UnsupportedAlgorithm
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_as_secret_is_refused() {
    let pem = keys().ours.pem();
    let n = keys().ours.jwk(KID).n.expect("modulus");
    for (name, secret) in [("PEM", pem.as_bytes()), ("JWK modulus", n.as_bytes())] {
        let hmac = EncodingKey::from_secret(secret).expect("HMAC key");
        let header = json!({"alg": "HS256", "kid": KID, "typ": "JWT"});
        let token = forge(&header, &claims(), Some((&hmac, Algorithm::HS256)));
        assert_eq!(
            assert_refused(name, &token).await,
            VerifyErrorKind::UnsupportedAlgorithm
        );
    }
}

#[tokio::test]
async fn crit_headers_are_refused() {
    let header = json!({"alg": "RS256", "kid": KID, "crit": ["exp"], "exp": 1});
    let token = forge(
        &header,
        &claims(),
        Some((&keys().ours.signing, Algorithm::RS256)),
    );
    assert_eq!(
        assert_refused("crit", &token).await,
        VerifyErrorKind::CriticalHeader
    );
}

#[tokio::test]
async fn keys_offered_by_the_token_itself_are_ignored() {
    let attacker_jwk = serde_json::to_value(keys().attacker.jwk(KID)).expect("JWK JSON");
    for (name, value) in [
        ("jku", json!("https://attacker.test/jwks")),
        ("jwk", attacker_jwk),
        ("x5u", json!("https://attacker.test/cert.pem")),
    ] {
        let mut header = header(KID);
        header[name] = value;
        let token = forge(
            &header,
            &claims(),
            Some((&keys().attacker.signing, Algorithm::RS256)),
        );
        assert_eq!(
            assert_refused(name, &token).await,
            VerifyErrorKind::InvalidSignature
        );
    }
}

#[tokio::test]
async fn exp_missing_or_of_the_wrong_type_is_refused() {
    let mut without_exp = claims();
    without_exp.as_object_mut().expect("object").remove("exp");
    let cases = [
        ("missing", without_exp),
        (
            "string",
            with_claim("exp", json!((now() + 900).to_string())),
        ),
        ("float", with_claim("exp", json!(now() as f64 + 900.5))),
        ("beyond i64", with_claim("exp", json!(1e30))),
        ("huge integer", with_claim("exp", json!(u64::MAX))),
        ("null", with_claim("exp", Value::Null)),
    ];
    for (name, payload) in cases {
        assert_eq!(
            assert_refused(name, &ours(&payload)).await,
            VerifyErrorKind::InvalidClaims,
            "{name}"
        );
    }
}

#[tokio::test]
async fn nbf_in_the_future_is_refused() {
    let token = ours(&with_claim("nbf", json!(now() + 3_600)));
    assert_eq!(
        assert_refused("nbf", &token).await,
        VerifyErrorKind::NotYetValid
    );
}

#[tokio::test]
async fn tokens_without_three_segments_are_refused() {
    let token = valid_token();
    let segments: Vec<&str> = token.split('.').collect();
    for count in [1, 2, 4, 5] {
        let parts: Vec<&str> = (0..count).map(|i| segments[i % 3]).collect();
        let token = parts.join(".");
        assert_eq!(
            assert_refused(&format!("{count} segments"), &token).await,
            VerifyErrorKind::Malformed
        );
    }
}

#[tokio::test]
async fn bad_base64_is_refused() {
    let token = valid_token();
    let (header, rest) = token.split_once('.').expect("dots");
    let (payload, signature) = rest.split_once('.').expect("dots");
    for (name, token) in [
        ("header", format!("{header}*.{payload}.{signature}")),
        ("payload", format!("{header}.{payload}=.{signature}")),
        ("signature", format!("{header}.{payload}.{signature}+/")),
    ] {
        assert_refused(name, &token).await;
    }
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_refused() {
    for payload in [json!([1, 2]), json!("exp"), json!(42)] {
        let token = ours(&payload);
        assert_eq!(
            assert_refused(&payload.to_string(), &token).await,
            VerifyErrorKind::InvalidClaims
        );
    }
}

#[tokio::test]
async fn oversize_tokens_are_refused_before_any_crypto() {
    let token = ours(&with_claim("padding", json!("x".repeat(16 * 1024))));
    assert_eq!(
        assert_refused("oversize", &token).await,
        VerifyErrorKind::Malformed
    );
}
