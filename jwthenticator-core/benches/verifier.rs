//! Per-token cost of [`Verifier::verify`] for RS256, ES256 and EdDSA, beside the raw aws-lc-rs
//! signature check with a key parsed once (the difference is what the verifier adds: header and
//! claims parsing, checks, key lookup) and `jsonwebtoken::crypto::verify`, which builds the
//! aws-lc-rs key from the JWK components again on every call (as the verifier once did).
//!
//! `cargo bench -p jwthenticator-core --bench verifier`

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use jwthenticator_core::{Jwk, Jwks, Verifier};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWThenticator token signed by `key` with `algorithm` under `kid`, valid for an hour.
fn token(key: &EncodingKey, algorithm: Algorithm, kid: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = serde_json::json!({"alg": algorithm, "kid": kid, "typ": "JWT"});
    let claims = serde_json::json!({
        "token_id": "6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d",
        "identifier": "0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1",
        "iat": now,
        "exp": now + 3600,
    });
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key, algorithm).expect("signs the token");
    format!("{input}.{signature}")
}

/// What one algorithm's benchmark needs: the JWK, a token, and the raw public key.
struct Case {
    name: &'static str,
    algorithm: Algorithm,
    jwk: Jwk,
    token: String,
    raw_algorithm: &'static dyn VerificationAlgorithm,
    raw_public_key: Vec<u8>,
}

fn rs256() -> Case {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
        .expect("generates an RSA key");
    let pkcs8 = pair.as_der().expect("encodes PKCS#8");
    let private = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref()).expect("reads PKCS#8");
    let signing = EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("PKCS#1").as_bytes());
    Case {
        name: "RS256",
        algorithm: Algorithm::RS256,
        jwk: Jwk::rsa(
            "rsa",
            "RS256",
            b64(private.n().to_bytes_be()),
            b64(private.e().to_bytes_be()),
        ),
        token: token(&signing, Algorithm::RS256, "rsa"),
        raw_algorithm: &RSA_PKCS1_2048_8192_SHA256,
        raw_public_key: pair.public_key().as_ref().to_vec(),
    }
}

fn es256() -> Case {
    let pair =
        EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("generates a P-256 key");
    let point = pair.public_key().as_ref().to_vec();
    let pkcs8 = pair.to_pkcs8v1().expect("encodes PKCS#8");
    let signing = EncodingKey::from_ec_der(pkcs8.as_ref());
    Case {
        name: "ES256",
        algorithm: Algorithm::ES256,
        jwk: Jwk {
            kty: "EC".to_owned(),
            kid: Some("ec".to_owned()),
            alg: Some("ES256".to_owned()),
            use_: Some("sig".to_owned()),
            n: None,
            e: None,
            crv: Some("P-256".to_owned()),
            x: Some(b64(&point[1..33])),
            y: Some(b64(&point[33..])),
        },
        token: token(&signing, Algorithm::ES256, "ec"),
        raw_algorithm: &ECDSA_P256_SHA256_FIXED,
        raw_public_key: point,
    }
}

fn eddsa() -> Case {
    let pair = Ed25519KeyPair::generate().expect("generates an Ed25519 key");
    let public = pair.public_key().as_ref().to_vec();
    let pkcs8 = pair.to_pkcs8().expect("encodes PKCS#8");
    let signing = EncodingKey::from_ed_der(pkcs8.as_ref());
    Case {
        name: "EdDSA",
        algorithm: Algorithm::EdDSA,
        jwk: Jwk {
            kty: "OKP".to_owned(),
            kid: Some("ed".to_owned()),
            alg: Some("EdDSA".to_owned()),
            use_: Some("sig".to_owned()),
            n: None,
            e: None,
            crv: Some("Ed25519".to_owned()),
            x: Some(b64(&public)),
            y: None,
        },
        token: token(&signing, Algorithm::EdDSA, "ed"),
        raw_algorithm: &ED25519,
        raw_public_key: public,
    }
}

fn verify(c: &mut Criterion) {
    for case in [rs256(), es256(), eddsa()] {
        let verifier = Verifier::builder()
            .build(&Jwks {
                keys: vec![case.jwk.clone()],
            })
            .expect("builds the verifier");
        verifier.verify(&case.token).expect("the token verifies");

        let (input, signature_b64) = case.token.rsplit_once('.').expect("three segments");
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).expect("base64url");
        fn member(value: &Option<String>) -> &str {
            value.as_deref().expect("a JWK member")
        }
        let decoding = match case.jwk.kty.as_str() {
            "RSA" => DecodingKey::from_rsa_components(member(&case.jwk.n), member(&case.jwk.e)),
            "EC" => DecodingKey::from_ec_components(member(&case.jwk.x), member(&case.jwk.y)),
            _ => DecodingKey::from_ed_components(member(&case.jwk.x)),
        }
        .expect("a decoding key");
        let rebuilt_per_call = || {
            jsonwebtoken::crypto::verify(signature_b64, input.as_bytes(), &decoding, case.algorithm)
        };
        assert!(rebuilt_per_call().expect("runs"), "the signature verifies");
        let parsed = ParsedPublicKey::new(case.raw_algorithm, &case.raw_public_key)
            .expect("parses the public key");
        parsed
            .verify_sig(input.as_bytes(), &signature)
            .expect("the signature verifies");

        let mut group = c.benchmark_group(case.name);
        group.bench_function("Verifier::verify", |b| {
            b.iter(|| verifier.verify(black_box(&case.token)))
        });
        group.bench_function("raw aws-lc-rs, key parsed once", |b| {
            b.iter(|| parsed.verify_sig(black_box(input.as_bytes()), black_box(&signature)))
        });
        group.bench_function("jsonwebtoken::crypto::verify, key rebuilt per call", |b| {
            b.iter(rebuilt_per_call)
        });
        group.finish();
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
