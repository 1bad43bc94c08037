//! RFC 6750 answers to requests without a valid token, with fixed keys and no sockets.

use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use jwthenticator_core::{Algorithm, VerifyErrorKind};
use jwthenticator_tower::{AuthError, AuthErrorKind, JwtAuth};
use serde_json::json;

use crate::support::*;

/// Sends `token` through the default layer and returns the reason it was refused.
async fn refusal(token: &str) -> VerifyErrorKind {
    let response = send(&layer(), request(Some(token))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&response).starts_with(r#"Bearer error="invalid_token", error_description=""#),
        "{}",
        challenge(&response)
    );
    match response
        .extensions()
        .get::<AuthError>()
        .map(AuthError::kind)
    {
        Some(AuthErrorKind::InvalidToken(kind)) => kind,
        other => panic!("not an invalid-token rejection: {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler() {
    let response = send(&layer(), request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.body().contains(IDENTIFIER), "{}", response.body());
}

#[tokio::test]
async fn no_authorization_header_gets_a_bare_bearer_challenge() {
    let response = send(&layer(), request(None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::MissingToken)
    );
}

#[tokio::test]
async fn another_authorization_scheme_counts_as_no_token() {
    let request = Request::builder()
        .header(AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(String::new())
        .expect("request");
    let response = send(&layer(), request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), "Bearer");
}

#[tokio::test]
async fn an_empty_or_garbled_bearer_credential_is_an_invalid_token() {
    for value in ["Bearer", "Bearer    ", "Bearer a b"] {
        let request = Request::builder()
            .header(AUTHORIZATION, value)
            .body(String::new())
            .expect("request");
        let response = send(&layer(), request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{value}");
        assert!(challenge(&response).contains("invalid_token"), "{value}");
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let request = Request::builder()
        .header(AUTHORIZATION, format!("Bearer {}", valid_token()))
        .header(AUTHORIZATION, "Bearer other")
        .body(String::new())
        .expect("request");
    let response = send(&layer(), request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains("invalid_token"));
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    assert_eq!(refusal("not-a-jwt").await, VerifyErrorKind::Malformed);
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let mut claims = claims();
    claims["iat"] = json!(now() - 7_200);
    claims["exp"] = json!(now() - 3_600);
    let token = signed(&keys().ours, KID, &claims);
    assert_eq!(refusal(&token).await, VerifyErrorKind::Expired);
}

#[tokio::test]
async fn tokens_for_another_audience_are_refused() {
    let mut claims = claims();
    claims["aud"] = json!(["billing"]);
    let token = signed(&keys().ours, KID, &claims);
    assert_eq!(refusal(&token).await, VerifyErrorKind::InvalidAudience);
}

#[tokio::test]
async fn tokens_of_another_issuer_are_refused() {
    let mut claims = claims();
    claims["iss"] = json!("https://evil.test");
    let token = signed(&keys().ours, KID, &claims);
    assert_eq!(refusal(&token).await, VerifyErrorKind::InvalidIssuer);
}

#[tokio::test]
async fn a_token_signed_with_another_algorithm_than_the_keys_is_refused() {
    let header = json!({"alg": "RS512", "kid": KID, "typ": "JWT"});
    let token = forge(
        &header,
        &claims(),
        Some((&keys().ours.signing, Algorithm::RS512)),
    );
    assert_eq!(refusal(&token).await, VerifyErrorKind::AlgorithmMismatch);
}

#[tokio::test]
async fn algorithms_not_configured_are_refused() {
    let layer = layer().with_algorithms([Algorithm::ES256]);
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // The only key verifies RS256, which is not accepted, so it is not loaded at all.
    assert_eq!(
        response
            .extensions()
            .get::<AuthError>()
            .map(AuthError::kind),
        Some(AuthErrorKind::InvalidToken(VerifyErrorKind::UnknownKeyId))
    );
}

#[tokio::test]
async fn tokens_signed_by_another_key_are_refused() {
    let with_our_kid = signed(&keys().attacker, KID, &claims());
    assert_eq!(
        refusal(&with_our_kid).await,
        VerifyErrorKind::InvalidSignature
    );
    let with_unknown_kid = signed(&keys().attacker, "attacker", &claims());
    assert_eq!(
        refusal(&with_unknown_kid).await,
        VerifyErrorKind::UnknownKeyId
    );
}

#[tokio::test]
async fn a_missing_required_claim_is_refused() {
    let layer = layer().with_required_claims(["scope"]);
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&response).contains("`scope`"),
        "{}",
        challenge(&response)
    );

    let mut claims = claims();
    claims["scope"] = json!(null);
    let with_null = signed(&keys().ours, KID, &claims);
    let response = send(&layer, request(Some(&with_null))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    claims["scope"] = json!("orders:read");
    let with_scope = signed(&keys().ours, KID, &claims);
    let response = send(&layer, request(Some(&with_scope))).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_repeated_token_is_still_accepted_and_an_expired_one_never_is() {
    let layer = layer();
    let token = valid_token();
    for _ in 0..3 {
        let response = send(&layer, request(Some(&token))).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut claims = claims();
    claims["exp"] = json!(now() - 3_600);
    let expired = signed(&keys().ours, KID, &claims);
    for _ in 0..2 {
        let response = send(&layer, request(Some(&expired))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn without_the_token_cache_tokens_are_verified_alike() {
    let layer = layer().with_token_cache_size(0);
    let response = send(&layer, request(Some(&valid_token()))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(
        &layer,
        request(Some(&signed(&keys().attacker, KID, &claims()))),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn error_description_never_carries_a_quote_from_the_token() {
    let header = json!({"alg": "RS256\" , error=\"none\\", "kid": KID});
    let token = forge(&header, &claims(), None);
    let response = send(&layer(), request(Some(&token))).await;
    let challenge = challenge(&response);
    let description = challenge
        .split_once("error_description=\"")
        .expect("has a description")
        .1;
    assert_eq!(description.matches('"').count(), 1, "{challenge}");
    assert!(
        description.ends_with('"') && !description.contains('\\'),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_pem_public_key_verifies_the_servers_tokens() {
    let layer = JwtAuth::from_public_key_pem(&keys().ours.pem(), Algorithm::RS256)
        .expect("reads the PEM")
        .with_audiences([AUDIENCE])
        .with_issuer(ISSUER);
    // The server's kid: base64url(SHA-1(SPKI DER)).
    let spki = rsa::pkcs8::EncodePublicKey::to_public_key_der(&keys().ours.public).expect("SPKI");
    let kid = b64(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.as_bytes(),
    ));
    let token = signed(&keys().ours, &kid, &claims());
    assert_eq!(
        send(&layer, request(Some(&token))).await.status(),
        StatusCode::OK
    );
    let without_kid = forge(
        &json!({"alg": "RS256"}),
        &claims(),
        Some((&keys().ours.signing, Algorithm::RS256)),
    );
    assert_eq!(
        send(&layer, request(Some(&without_kid))).await.status(),
        StatusCode::OK
    );
    let other_key = signed(&keys().attacker, &kid, &claims());
    assert_eq!(
        send(&layer, request(Some(&other_key))).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_pem_that_is_not_an_rsa_public_key_is_a_config_error() {
    assert!(JwtAuth::from_public_key_pem("-----BEGIN NOTHING-----", Algorithm::RS256).is_err());
    assert!(JwtAuth::from_public_key_pem(&keys().ours.pem(), Algorithm::ES256).is_err());
}

#[tokio::test]
async fn debug_output_never_shows_the_token() {
    let token = signed(&keys().attacker, KID, &claims());
    let response = send(&layer(), request(Some(&token))).await;
    let error = response.extensions().get::<AuthError>().expect("error");
    let signature = token.rsplit('.').next().expect("signature");
    for text in [
        format!("{error:?}"),
        error.to_string(),
        format!("{:?}", layer()),
    ] {
        assert!(
            !text.contains(signature) && !text.contains(&token),
            "{text}"
        );
    }
}

/// The server also signs with ES256 and EdDSA: a PEM public key of either type verifies its
/// tokens, found by the same `kid`, and a key that does not fit the algorithm is refused at
/// configuration.
#[tokio::test]
async fn ec_and_ed25519_pem_public_keys_verify_tokens_of_their_algorithm() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    };
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
    let ed = Ed25519KeyPair::generate().expect("ed");
    let cases = [
        (
            Algorithm::ES256,
            ec.public_key().as_der().expect("spki").as_ref().to_vec(),
            jsonwebtoken::EncodingKey::from_ec_der(ec.to_pkcs8v1().expect("pkcs8").as_ref()),
        ),
        (
            Algorithm::EdDSA,
            ed.public_key().as_der().expect("spki").as_ref().to_vec(),
            jsonwebtoken::EncodingKey::from_ed_der(ed.to_pkcs8v1().expect("pkcs8").as_ref()),
        ),
    ];
    for (algorithm, spki, signing) in cases {
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &spki);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).expect("base64"))
            .collect();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        );
        let layer = JwtAuth::from_public_key_pem(&pem, algorithm)
            .expect("reads the PEM")
            .with_audiences([AUDIENCE])
            .with_issuer(ISSUER);
        let kid = jwthenticator_core::kid_of_spki(&spki);
        let token = forge(
            &json!({"alg": algorithm, "kid": kid, "typ": "JWT"}),
            &claims(),
            Some((&signing, algorithm)),
        );
        assert_eq!(
            send(&layer, request(Some(&token))).await.status(),
            StatusCode::OK,
            "{algorithm:?}"
        );
        let err = JwtAuth::from_public_key_pem(&pem, Algorithm::RS256).expect_err("wrong type");
        assert!(err.to_string().contains("does not verify RS256"), "{err}");
    }
    let err = JwtAuth::from_public_key_pem("not a pem", Algorithm::ES256).expect_err("garbage");
    assert!(err.to_string().contains("not a PEM"), "{err}");
}
