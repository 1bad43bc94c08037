//! Tests of the [`Verifier`]. Every token is forged by hand (header and payload JSON, base64url,
//! signed by a chosen key and algorithm or not at all) so that each one breaks exactly one rule,
//! and every rejection is checked for its exact [`VerifyErrorKind`]. Time is always the fixed
//! [`NOW`], never the clock.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use jsonwebtoken::{EncodingKey, crypto};
use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey, LineEnding};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};

use super::*;

/// The moment every token is verified at, in seconds since the Unix epoch.
const NOW: i64 = 1_700_000_000;
const TOKEN_ID: &str = "6f1c6b3e-2f55-4bb4-9b43-4d1f3f1b2c3d";
const IDENTIFIER: &str = "0a9e0b54-8c1c-4c49-8bb6-0a5e0cf0f3a1";
const RSA_KID: &str = "rsa-1";
const EC_KID: &str = "ec-1";
const ED_KID: &str = "ed-1";
const LEEWAY: i64 = DEFAULT_LEEWAY_SECS as i64;

// ---------------------------------------------------------------------------------------------
// Keys, generated once per test binary.

struct RsaKey {
    signing: EncodingKey,
    public: RsaPublicKey,
}

impl RsaKey {
    fn generate() -> Self {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("generates an RSA key");
        let pkcs8 = pair.as_der().expect("encodes the RSA key as PKCS#8");
        let private = RsaPrivateKey::from_pkcs8_der(pkcs8.as_ref()).expect("reads PKCS#8");
        let pkcs1 = private.to_pkcs1_der().expect("encodes PKCS#1");
        Self {
            signing: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            public: private.to_public_key(),
        }
    }

    fn n(&self) -> String {
        b64(self.public.n().to_bytes_be())
    }

    fn jwk(&self, kid: &str, alg: &str) -> Jwk {
        Jwk::rsa(kid, alg, self.n(), b64(self.public.e().to_bytes_be()))
    }
}

struct EcKey {
    signing: EncodingKey,
    jwk: Jwk,
}

impl EcKey {
    fn generate() -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .expect("generates a P-256 key");
        let pkcs8 = pair.to_pkcs8v1().expect("encodes the P-256 key as PKCS#8");
        // An uncompressed point: 0x04, then x and y of 32 bytes each.
        let point = pair.public_key().as_ref();
        assert_eq!(point.len(), 65);
        let jwk = Jwk {
            kty: "EC".to_owned(),
            kid: Some(EC_KID.to_owned()),
            alg: None,
            use_: Some("sig".to_owned()),
            n: None,
            e: None,
            crv: Some("P-256".to_owned()),
            x: Some(b64(&point[1..33])),
            y: Some(b64(&point[33..])),
        };
        Self {
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            jwk,
        }
    }
}

struct EdKey {
    signing: EncodingKey,
    jwk: Jwk,
}

impl EdKey {
    fn generate() -> Self {
        let pair = Ed25519KeyPair::generate().expect("generates an Ed25519 key");
        let pkcs8 = pair.to_pkcs8().expect("encodes the Ed25519 key as PKCS#8");
        let jwk = Jwk {
            kty: "OKP".to_owned(),
            kid: Some(ED_KID.to_owned()),
            alg: None,
            use_: Some("sig".to_owned()),
            n: None,
            e: None,
            crv: Some("Ed25519".to_owned()),
            x: Some(b64(pair.public_key().as_ref())),
            y: None,
        };
        Self {
            signing: EncodingKey::from_ed_der(pkcs8.as_ref()),
            jwk,
        }
    }
}

struct Keys {
    /// The verifier's RSA key, published as `rsa-1`.
    ours: RsaKey,
    /// An RSA key the verifier does not know.
    attacker: RsaKey,
    ec: EcKey,
    ed: EdKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        ours: RsaKey::generate(),
        attacker: RsaKey::generate(),
        ec: EcKey::generate(),
        ed: EdKey::generate(),
    })
}

/// The verifier's key set: our RSA key (RS256), a P-256 key and an Ed25519 key.
fn jwks() -> Jwks {
    let keys = keys();
    Jwks {
        keys: vec![
            keys.ours.jwk(RSA_KID, "RS256"),
            keys.ec.jwk.clone(),
            keys.ed.jwk.clone(),
        ],
    }
}

fn verifier() -> Verifier {
    verifier_from(Verifier::builder())
}

fn verifier_from(builder: VerifierBuilder) -> Verifier {
    builder.build(&jwks()).expect("builds the verifier")
}

/// A verifier holding only our RSA key.
fn rsa_only_verifier() -> Verifier {
    let jwks = Jwks {
        keys: vec![keys().ours.jwk(RSA_KID, "RS256")],
    };
    Verifier::builder()
        .build(&jwks)
        .expect("builds the verifier")
}

// ---------------------------------------------------------------------------------------------
// Token forging.

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How a forged token gets its third segment.
#[derive(Clone, Copy)]
enum Sign<'a> {
    /// A real signature by this key with this algorithm, whatever the header says.
    With(&'a EncodingKey, Algorithm),
    /// This text, verbatim.
    Raw(&'a str),
}

fn by_our_rsa_key() -> Sign<'static> {
    Sign::With(&keys().ours.signing, Algorithm::RS256)
}

fn by_attacker_rsa_key() -> Sign<'static> {
    Sign::With(&keys().attacker.signing, Algorithm::RS256)
}

/// Joins two already-encoded segments and signs them exactly as they are.
fn sign_segments(header_b64: &str, payload_b64: &str, sign: Sign<'_>) -> String {
    let message = format!("{header_b64}.{payload_b64}");
    let signature = match sign {
        Sign::With(key, alg) => {
            jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).expect("signs the token")
        }
        Sign::Raw(text) => text.to_owned(),
    };
    format!("{message}.{signature}")
}

/// A token from header and payload text, which need not be JSON at all.
fn forge_text(header: &str, payload: &str, sign: Sign<'_>) -> String {
    sign_segments(&b64(header), &b64(payload), sign)
}

fn forge(header: &Value, payload: &Value, sign: Sign<'_>) -> String {
    forge_text(&header.to_string(), &payload.to_string(), sign)
}

fn rsa_header() -> Value {
    json!({"alg": "RS256", "kid": RSA_KID, "typ": "JWT"})
}

/// JWThenticator claims, issued 10 seconds ago and valid for another 5 minutes.
fn claims() -> Value {
    json!({
        "token_id": TOKEN_ID,
        "identifier": IDENTIFIER,
        "iat": NOW - 10,
        "exp": NOW + 300,
    })
}

/// JWThenticator claims expiring at `exp`, issued 5 minutes before.
fn claims_expiring_at(exp: i64) -> Value {
    json!({"token_id": TOKEN_ID, "identifier": IDENTIFIER, "iat": exp - 300, "exp": exp})
}

/// A payload whose `exp` is this raw JSON text, for numbers `serde_json::Value` cannot hold.
fn payload_with_raw_exp(exp: &str) -> String {
    format!(
        r#"{{"token_id":"{TOKEN_ID}","identifier":"{IDENTIFIER}","iat":{iat},"exp":{exp}}}"#,
        iat = NOW - 10
    )
}

/// A token with these claims, correctly signed by our RSA key.
fn rsa_token(payload: &Value) -> String {
    forge(&rsa_header(), payload, by_our_rsa_key())
}

/// Why `verifier` rejects `token` at [`NOW`]; fails the test if it accepts it.
fn rejection(verifier: &Verifier, token: &str) -> VerifyErrorKind {
    match verifier.verify_at(token, NOW) {
        Ok(claims) => panic!("the token was accepted: {claims:?}"),
        Err(err) => err.kind(),
    }
}

fn accepted(verifier: &Verifier, token: &str) -> Claims {
    verifier
        .verify_at(token, NOW)
        .unwrap_or_else(|err| panic!("the token was rejected: {:?}: {err}", err.kind()))
}

/// Replaces segment `index` (0, 1 or 2) of a token.
fn with_segment(token: &str, index: usize, segment: &str) -> String {
    let mut segments: Vec<&str> = token.split('.').collect();
    segments[index] = segment;
    segments.join(".")
}

/// The same segment with `=` padding appended; the segment must need padding.
fn padded(segment: &str) -> String {
    let padding = (4 - segment.len() % 4) % 4;
    assert!(padding > 0, "the segment needs no padding: {segment}");
    format!("{segment}{}", "=".repeat(padding))
}

/// The same segment with one of the unused trailing bits of its last character set: a lenient
/// decoder reads the same bytes, a canonical one refuses it.
fn with_trailing_bits(segment: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_ne!(segment.len() % 4, 0, "the segment has no unused bits");
    let (head, last) = segment.split_at(segment.len() - 1);
    let value = ALPHABET
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .expect("a base64url character");
    assert_eq!(value & 1, 0, "the segment is not canonical to begin with");
    format!("{head}{}", char::from(ALPHABET[value | 1]))
}

// ---------------------------------------------------------------------------------------------
// Valid tokens.

#[test]
fn valid_rs256_token_verifies_and_returns_its_claims() {
    let mut payload = claims();
    payload["scope"] = "read".into();
    let claims = accepted(&verifier(), &rsa_token(&payload));
    assert_eq!(claims.token_id.to_string(), TOKEN_ID);
    assert_eq!(claims.identifier.to_string(), IDENTIFIER);
    assert_eq!(claims.iat, NOW - 10);
    assert_eq!(claims.exp, NOW + 300);
    assert_eq!(claims.aud, None);
    assert_eq!(claims.iss, None);
    assert_eq!(claims.nbf, None);
    assert_eq!(claims.extra.get("scope"), Some(&Value::from("read")));
    assert_eq!(claims.extra.len(), 1);
}

#[test]
fn es256_key_from_jwk_components_verifies_its_own_token() {
    let header = json!({"alg": "ES256", "kid": EC_KID, "typ": "JWT"});
    let token = forge(
        &header,
        &claims(),
        Sign::With(&keys().ec.signing, Algorithm::ES256),
    );
    assert_eq!(accepted(&verifier(), &token).exp, NOW + 300);
}

#[test]
fn eddsa_key_from_jwk_components_verifies_its_own_token() {
    let header = json!({"alg": "EdDSA", "kid": ED_KID, "typ": "JWT"});
    let token = forge(
        &header,
        &claims(),
        Sign::With(&keys().ed.signing, Algorithm::EdDSA),
    );
    assert_eq!(accepted(&verifier(), &token).exp, NOW + 300);
}

#[test]
fn verify_uses_the_clock_and_accepts_a_token_valid_now() {
    let now = now_unix();
    let token = rsa_token(&claims_expiring_at(now + 300));
    assert_eq!(
        verifier().verify(&token).expect("verifies now").exp,
        now + 300
    );
}

// ---------------------------------------------------------------------------------------------
// Algorithm confusion.

#[test]
fn alg_none_in_any_case_is_unsupported_with_or_without_a_signature() {
    let garbage = b64(b"not a signature at all, just some bytes");
    let verifier = verifier();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for signature in ["", garbage.as_str()] {
            for header in [
                json!({"alg": alg, "kid": RSA_KID, "typ": "JWT"}),
                json!({"alg": alg, "typ": "JWT"}),
            ] {
                let token = forge(&header, &claims(), Sign::Raw(signature));
                assert_eq!(
                    rejection(&verifier, &token),
                    VerifyErrorKind::UnsupportedAlgorithm,
                    "{header} with signature {signature:?}"
                );
            }
        }
    }
}

#[test]
fn hs256_signed_with_the_rsa_public_key_as_secret_is_never_accepted() {
    let public = &keys().ours.public;
    let spki_pem = public.to_public_key_pem(LineEnding::LF).expect("SPKI PEM");
    let pkcs1_pem = public.to_pkcs1_pem(LineEnding::LF).expect("PKCS#1 PEM");
    let spki_der = public.to_public_key_der().expect("SPKI DER");
    let pkcs1_der = public.to_pkcs1_der().expect("PKCS#1 DER");
    let n = keys().ours.n();
    let jwk_json = serde_json::to_string(&keys().ours.jwk(RSA_KID, "RS256")).expect("JWK JSON");
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        ("SPKI PEM without final newline", spki_pem.trim_end().into()),
        ("PKCS#1 PEM", pkcs1_pem.into_bytes()),
        ("SPKI DER", spki_der.into_vec()),
        ("PKCS#1 DER", pkcs1_der.into_vec()),
        ("JWK n", n.into_bytes()),
        ("raw modulus", public.n().to_bytes_be()),
        ("JWK JSON", jwk_json.into_bytes()),
    ];

    let verifier = verifier();
    for (name, secret) in secrets {
        let hmac = EncodingKey::from_secret(&secret).expect("HMAC key");
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let header = json!({"alg": format!("{alg:?}"), "kid": RSA_KID, "typ": "JWT"});
            let token = forge(&header, &claims(), Sign::With(&hmac, alg));
            // The forgery is a genuine HMAC: a verifier that let the token pick HS256 would pass it.
            let (message, signature) = token.rsplit_once('.').expect("three segments");
            let decoding = DecodingKey::from_secret(&secret).expect("HMAC key");
            assert!(crypto::verify(signature, message.as_bytes(), &decoding, alg).expect("runs"));

            assert_eq!(
                rejection(&verifier, &token),
                VerifyErrorKind::UnsupportedAlgorithm,
                "{alg:?} with the {name} as secret"
            );
        }
    }
}

#[test]
fn jwks_hmac_and_symmetric_keys_are_never_loaded() {
    let hs_jwk = keys().ours.jwk("hs", "HS256");
    let oct = Jwk {
        kty: "oct".to_owned(),
        kid: Some("oct".to_owned()),
        alg: None,
        use_: Some("sig".to_owned()),
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    };
    assert!(matches!(
        VerifyingKey::from_jwk(&hs_jwk, None),
        Err(KeyError::Unsupported(_))
    ));
    assert!(matches!(
        VerifyingKey::from_jwk(&oct, Some(Algorithm::HS256)),
        Err(KeyError::Unsupported(_))
    ));
    let verifier = Verifier::builder()
        .build(&Jwks {
            keys: vec![hs_jwk, oct],
        })
        .expect("builds");
    assert_eq!(verifier.key_count(), 0);
}

#[test]
fn other_algorithm_than_the_keys_is_an_algorithm_mismatch() {
    let verifier = verifier();
    let ours = &keys().ours.signing;
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let header = json!({"alg": format!("{alg:?}"), "kid": RSA_KID, "typ": "JWT"});
        let token = forge(&header, &claims(), Sign::With(ours, alg));
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::AlgorithmMismatch,
            "{alg:?}"
        );
    }
    // An EC signature presented for the RSA key, and an RSA one for the EC key.
    let header = json!({"alg": "ES256", "kid": RSA_KID});
    let token = forge(
        &header,
        &claims(),
        Sign::With(&keys().ec.signing, Algorithm::ES256),
    );
    assert_eq!(
        rejection(&verifier, &token),
        VerifyErrorKind::AlgorithmMismatch
    );
    let header = json!({"alg": "RS256", "kid": EC_KID});
    let token = forge(&header, &claims(), by_our_rsa_key());
    assert_eq!(
        rejection(&verifier, &token),
        VerifyErrorKind::AlgorithmMismatch
    );
}

#[test]
fn with_algorithms_drops_keys_of_other_algorithms() {
    let keys = keys();
    let jwks = Jwks {
        keys: vec![
            keys.ours.jwk(RSA_KID, "RS256"),
            keys.attacker.jwk("rsa-384", "RS384"),
            keys.ec.jwk.clone(),
            keys.ed.jwk.clone(),
        ],
    };
    assert_eq!(
        Verifier::builder()
            .build(&jwks)
            .expect("builds")
            .key_count(),
        4
    );

    let verifier = Verifier::builder()
        .with_algorithms([Algorithm::RS256])
        .build(&jwks)
        .expect("builds");
    assert_eq!(verifier.key_count(), 1);
    assert!(verifier.has_kid(RSA_KID));
    for kid in ["rsa-384", EC_KID, ED_KID] {
        assert!(!verifier.has_kid(kid), "{kid}");
    }
    let header = json!({"alg": "RS384", "kid": "rsa-384"});
    let token = forge(
        &header,
        &claims(),
        Sign::With(&keys.attacker.signing, Algorithm::RS384),
    );
    assert_eq!(rejection(&verifier, &token), VerifyErrorKind::UnknownKeyId);
    accepted(&verifier, &rsa_token(&claims()));
}

// ---------------------------------------------------------------------------------------------
// Keys and signatures.

#[test]
fn signature_by_another_rsa_key_with_our_kid_is_invalid() {
    let token = forge(&rsa_header(), &claims(), by_attacker_rsa_key());
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::InvalidSignature
    );
}

#[test]
fn unknown_kid_is_rejected() {
    let header = json!({"alg": "RS256", "kid": "attacker-1", "typ": "JWT"});
    let token = forge(&header, &claims(), by_attacker_rsa_key());
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::UnknownKeyId
    );
    let token = forge(&header, &claims(), by_our_rsa_key());
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::UnknownKeyId
    );
}

#[test]
fn missing_kid_uses_the_only_key_of_the_set() {
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let token = forge(&header, &claims(), by_our_rsa_key());
    accepted(&rsa_only_verifier(), &token);

    let mut jwk = keys().ours.jwk(RSA_KID, "RS256");
    jwk.kid = None;
    let verifier = Verifier::builder()
        .build(&Jwks { keys: vec![jwk] })
        .expect("builds");
    accepted(&verifier, &token);

    let forged = forge(&header, &claims(), by_attacker_rsa_key());
    assert_eq!(
        rejection(&rsa_only_verifier(), &forged),
        VerifyErrorKind::InvalidSignature
    );
}

#[test]
fn missing_kid_with_several_keys_is_rejected() {
    let keys = keys();
    let jwks = Jwks {
        keys: vec![
            keys.ours.jwk(RSA_KID, "RS256"),
            keys.attacker.jwk("rsa-2", "RS256"),
        ],
    };
    let verifier = Verifier::builder().build(&jwks).expect("builds");
    let header = json!({"alg": "RS256", "typ": "JWT"});
    let token = forge(&header, &claims(), by_our_rsa_key());
    assert_eq!(rejection(&verifier, &token), VerifyErrorKind::MissingKeyId);
}

/// Header members that would name a key or certificate of the token's choosing.
fn key_carrying_headers() -> Vec<(&'static str, Value)> {
    let attacker = &keys().attacker;
    let spki = attacker.public.to_public_key_der().expect("SPKI DER");
    vec![
        ("jku", json!("https://attacker.example/jwks.json")),
        (
            "jwk",
            serde_json::to_value(attacker.jwk(RSA_KID, "RS256")).expect("JWK"),
        ),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("x5c", json!([STANDARD.encode(spki.as_bytes())])),
    ]
}

#[test]
fn jku_jwk_x5u_x5c_headers_never_supply_the_key() {
    let verifier = verifier();
    let mut all = rsa_header();
    for (name, value) in key_carrying_headers() {
        all[name] = value.clone();
        let mut header = rsa_header();
        header[name] = value;
        let token = forge(&header, &claims(), by_attacker_rsa_key());
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::InvalidSignature,
            "{name}"
        );
    }
    let token = forge(&all, &claims(), by_attacker_rsa_key());
    assert_eq!(
        rejection(&verifier, &token),
        VerifyErrorKind::InvalidSignature
    );

    // Without a `kid`, the embedded key is not a fallback either.
    let mut header = json!({"alg": "RS256"});
    header["jwk"] = serde_json::to_value(keys().attacker.jwk(RSA_KID, "RS256")).expect("JWK");
    let token = forge(&header, &claims(), by_attacker_rsa_key());
    assert_eq!(
        rejection(&rsa_only_verifier(), &token),
        VerifyErrorKind::InvalidSignature
    );
}

#[test]
fn jku_jwk_x5u_x5c_headers_are_ignored_on_our_own_tokens() {
    let mut header = rsa_header();
    for (name, value) in key_carrying_headers() {
        header[name] = value;
    }
    let token = forge(&header, &claims(), by_our_rsa_key());
    accepted(&verifier(), &token);
}

#[test]
fn crit_header_is_rejected_even_when_empty() {
    let verifier = verifier();
    for crit in [json!([]), json!(["exp"]), json!(["b64"])] {
        let mut header = rsa_header();
        header["crit"] = crit.clone();
        header["exp"] = json!(NOW + 300);
        header["b64"] = json!(true);
        let token = forge(&header, &claims(), by_our_rsa_key());
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::CriticalHeader,
            "{crit}"
        );
    }
}

#[test]
fn es256_psychic_signature_is_invalid() {
    let header = json!({"alg": "ES256", "kid": EC_KID, "typ": "JWT"});
    let zeros = b64([0u8; 64]);
    let token = forge(&header, &claims(), Sign::Raw(&zeros));
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::InvalidSignature
    );
}

#[test]
fn empty_or_truncated_signature_is_invalid() {
    let token = rsa_token(&claims());
    let (message, signature) = token.rsplit_once('.').expect("three segments");
    let verifier = verifier();
    assert_eq!(
        rejection(&verifier, &format!("{message}.")),
        VerifyErrorKind::InvalidSignature
    );
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    bytes.pop();
    let truncated = b64(bytes);
    assert_eq!(
        rejection(&verifier, &format!("{message}.{truncated}")),
        VerifyErrorKind::InvalidSignature
    );
}

#[test]
fn tampered_payload_is_invalid() {
    let token = rsa_token(&claims());
    let mut longer = claims();
    longer["exp"] = json!(NOW + 86_400);
    let tampered = with_segment(&token, 1, &b64(longer.to_string()));
    assert_eq!(
        rejection(&verifier(), &tampered),
        VerifyErrorKind::InvalidSignature
    );
}

// ---------------------------------------------------------------------------------------------
// Time.

#[test]
fn expired_token_is_rejected() {
    let token = rsa_token(&claims_expiring_at(NOW - 3600));
    assert_eq!(rejection(&verifier(), &token), VerifyErrorKind::Expired);
}

#[test]
fn exp_is_valid_only_while_now_is_before_exp_plus_leeway() {
    let verifier = verifier();
    let last_valid = rsa_token(&claims_expiring_at(NOW - LEEWAY + 1));
    assert_eq!(accepted(&verifier, &last_valid).exp, NOW - LEEWAY + 1);
    let first_invalid = rsa_token(&claims_expiring_at(NOW - LEEWAY));
    assert_eq!(
        rejection(&verifier, &first_invalid),
        VerifyErrorKind::Expired
    );
}

#[test]
fn exp_boundary_follows_the_configured_leeway() {
    let strict = verifier_from(Verifier::builder().with_leeway(0));
    accepted(&strict, &rsa_token(&claims_expiring_at(NOW + 1)));
    assert_eq!(
        rejection(&strict, &rsa_token(&claims_expiring_at(NOW))),
        VerifyErrorKind::Expired
    );

    let lenient = verifier_from(Verifier::builder().with_leeway(120));
    accepted(&lenient, &rsa_token(&claims_expiring_at(NOW - 119)));
    assert_eq!(
        rejection(&lenient, &rsa_token(&claims_expiring_at(NOW - 120))),
        VerifyErrorKind::Expired
    );
}

#[test]
fn nbf_in_the_future_beyond_leeway_is_not_yet_valid() {
    let verifier = verifier();
    let mut payload = claims();
    payload["nbf"] = json!(NOW + LEEWAY + 1);
    assert_eq!(
        rejection(&verifier, &rsa_token(&payload)),
        VerifyErrorKind::NotYetValid
    );
    payload["nbf"] = json!(NOW + LEEWAY);
    assert_eq!(
        accepted(&verifier, &rsa_token(&payload)).nbf,
        Some(NOW + LEEWAY)
    );

    let strict = verifier_from(Verifier::builder().with_leeway(0));
    payload["nbf"] = json!(NOW + 1);
    assert_eq!(
        rejection(&strict, &rsa_token(&payload)),
        VerifyErrorKind::NotYetValid
    );
    payload["nbf"] = json!(NOW);
    accepted(&strict, &rsa_token(&payload));
}

#[test]
fn iat_in_the_future_beyond_leeway_is_not_yet_valid() {
    let verifier = verifier();
    let mut payload = claims();
    payload["iat"] = json!(NOW + LEEWAY + 1);
    assert_eq!(
        rejection(&verifier, &rsa_token(&payload)),
        VerifyErrorKind::NotYetValid
    );
    payload["iat"] = json!(NOW + LEEWAY);
    accepted(&verifier, &rsa_token(&payload));
}

#[test]
fn exp_beyond_the_max_lifetime_is_too_long() {
    let verifier = verifier_from(Verifier::builder().with_max_lifetime(3600));
    let mut payload = claims();
    payload["exp"] = json!(NOW + 3600 + LEEWAY);
    accepted(&verifier, &rsa_token(&payload));
    for exp in [NOW + 3600 + LEEWAY + 1, 99_999_999_999, i64::MAX] {
        payload["exp"] = json!(exp);
        assert_eq!(
            rejection(&verifier, &rsa_token(&payload)),
            VerifyErrorKind::LifetimeTooLong,
            "exp {exp}"
        );
    }
}

#[test]
fn exp_at_i64_max_does_not_overflow_without_a_max_lifetime() {
    let mut payload = claims();
    payload["exp"] = json!(i64::MAX);
    let lenient = verifier_from(Verifier::builder().with_leeway(u64::MAX));
    assert_eq!(accepted(&lenient, &rsa_token(&payload)).exp, i64::MAX);
    assert_eq!(accepted(&verifier(), &rsa_token(&payload)).exp, i64::MAX);
}

// ---------------------------------------------------------------------------------------------
// Claim types.

#[test]
fn missing_exp_is_invalid_claims() {
    let mut payload = claims();
    payload.as_object_mut().expect("an object").remove("exp");
    let token = rsa_token(&payload);
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::InvalidClaims
    );
    let as_value = verifier().verify_as_at::<Value>(&token, NOW);
    assert_eq!(
        as_value.expect_err("no exp").kind(),
        VerifyErrorKind::InvalidClaims
    );
}

#[test]
fn exp_that_is_not_an_integer_is_invalid_claims() {
    let verifier = verifier();
    let exp_plus_300 = (NOW + 300).to_string();
    for exp in [
        format!("\"{exp_plus_300}\""),
        "null".to_owned(),
        "true".to_owned(),
        format!("[{exp_plus_300}]"),
        "1.5e9".to_owned(),
        "1700000000.0".to_owned(),
        format!("{exp_plus_300}.0"),
        format!("{exp_plus_300}e0"),
    ] {
        let token = forge_text(
            &rsa_header().to_string(),
            &payload_with_raw_exp(&exp),
            by_our_rsa_key(),
        );
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::InvalidClaims,
            "exp {exp}"
        );
    }
}

#[test]
fn exp_too_large_for_i64_is_invalid_claims() {
    let verifier = verifier();
    for exp in [
        "1e400",
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775808",
        "99999999999999999999",
        "-9223372036854775809",
    ] {
        let token = forge_text(
            &rsa_header().to_string(),
            &payload_with_raw_exp(exp),
            by_our_rsa_key(),
        );
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::InvalidClaims,
            "exp {exp}"
        );
    }
}

#[test]
fn duplicate_exp_in_the_payload_is_invalid_claims() {
    let verifier = verifier();
    let base = payload_with_raw_exp(&(NOW + 300).to_string());
    for duplicate in [
        base.replace('}', &format!(r#","exp":{}}}"#, NOW - 3600)),
        base.replace('}', &format!(r#","exp":{}}}"#, NOW + 3600)),
    ] {
        let token = forge_text(&rsa_header().to_string(), &duplicate, by_our_rsa_key());
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::InvalidClaims,
            "{duplicate}"
        );
        assert_eq!(
            verifier
                .verify_as_at::<Value>(&token, NOW)
                .expect_err("duplicate exp")
                .kind(),
            VerifyErrorKind::InvalidClaims,
            "{duplicate}"
        );
    }
}

#[test]
fn payload_that_is_not_a_json_object_is_invalid_claims() {
    let verifier = verifier();
    let exp = NOW + 300;
    for payload in [
        "[]".to_owned(),
        // The registered claims in declaration order: exp, nbf, iat, aud, iss.
        format!("[{exp},null,null,null,null]"),
        "\"a string\"".to_owned(),
        exp.to_string(),
        "null".to_owned(),
        "true".to_owned(),
    ] {
        let token = forge_text(&rsa_header().to_string(), &payload, by_our_rsa_key());
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::InvalidClaims,
            "{payload}"
        );
        assert_eq!(
            verifier
                .verify_as_at::<Value>(&token, NOW)
                .expect_err("not an object")
                .kind(),
            VerifyErrorKind::InvalidClaims,
            "{payload}"
        );
    }
}

#[test]
fn payload_that_is_not_json_is_invalid_claims() {
    let token = forge_text(
        &rsa_header().to_string(),
        "not json at all",
        by_our_rsa_key(),
    );
    assert_eq!(
        rejection(&verifier(), &token),
        VerifyErrorKind::InvalidClaims
    );
}

// ---------------------------------------------------------------------------------------------
// Typed members, nesting and escapes: refused whatever type the caller reads the claims as.

/// The verdict on `token`, the same whichever type the claims are read as: the server reads
/// [`Claims`], the tower layer the application's type, which may ignore every member.
fn verdict_for_every_claims_type(verifier: &Verifier, token: &str) -> Result<(), VerifyErrorKind> {
    let as_claims = verifier
        .verify_at(token, NOW)
        .map(drop)
        .map_err(|e| e.kind());
    let as_value = verifier
        .verify_as_at::<Value>(token, NOW)
        .map(drop)
        .map_err(|e| e.kind());
    let ignored = verifier
        .verify_as_at::<serde::de::IgnoredAny>(token, NOW)
        .map(drop)
        .map_err(|e| e.kind());
    assert_eq!(as_claims, as_value, "Claims and Value differ");
    assert_eq!(as_claims, ignored, "Claims and IgnoredAny differ");
    as_claims
}

/// Registered header members (RFC 7515 section 4.1, RFC 7797) with a value of another type
/// than their RFC gives them, `null` first.
fn mistyped_header_members() -> Vec<(&'static str, Value)> {
    let mut members = Vec::new();
    for name in ["kid", "typ", "cty", "jku", "x5u", "x5t", "x5t#S256"] {
        members.extend([
            (name, json!(null)),
            (name, json!(7)),
            (name, json!([RSA_KID])),
        ]);
    }
    for name in ["crit", "x5c"] {
        members.extend([
            (name, json!(null)),
            (name, json!("b64")),
            (name, json!([7])),
            (name, json!({})),
        ]);
    }
    members.extend([
        ("jwk", json!(null)),
        ("jwk", json!("jwk")),
        ("jwk", json!([])),
        ("b64", json!(null)),
        ("b64", json!("false")),
        ("alg", json!(null)),
        ("alg", json!(["RS256"])),
    ]);
    members
}

#[test]
fn registered_header_members_of_another_type_or_null_are_malformed() {
    let verifier = verifier();
    for (name, value) in mistyped_header_members() {
        let mut header = rsa_header();
        header[name] = value.clone();
        let token = forge(&header, &claims(), by_our_rsa_key());
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &token),
            Err(VerifyErrorKind::Malformed),
            "{name}: {value}"
        );
    }
    // `kid: null` does not mean "no kid", even where a token without one is accepted.
    let token = forge(
        &json!({"alg": "RS256", "kid": null}),
        &claims(),
        by_our_rsa_key(),
    );
    assert_eq!(
        verdict_for_every_claims_type(&rsa_only_verifier(), &token),
        Err(VerifyErrorKind::Malformed)
    );
}

#[test]
fn b64_header_is_refused_without_crit_and_crit_with_it() {
    let verifier = verifier();
    for b64_value in [true, false] {
        let mut header = rsa_header();
        header["b64"] = json!(b64_value);
        let token = forge(&header, &claims(), by_our_rsa_key());
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &token),
            Err(VerifyErrorKind::Malformed),
            "b64 {b64_value} without crit"
        );
        header["crit"] = json!(["b64"]);
        let token = forge(&header, &claims(), by_our_rsa_key());
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &token),
            Err(VerifyErrorKind::CriticalHeader),
            "b64 {b64_value} in crit: no extension is understood"
        );
    }
}

#[test]
fn registered_header_members_of_their_own_type_are_accepted() {
    let mut header = rsa_header();
    for (name, value) in [
        ("cty", json!("JWT")),
        ("x5t", json!("dGh1bWI")),
        ("x5t#S256", json!("dGh1bWI")),
        ("x-vendor", json!(null)),
    ] {
        header[name] = value;
    }
    let token = forge(&header, &claims(), by_our_rsa_key());
    assert_eq!(verdict_for_every_claims_type(&verifier(), &token), Ok(()));
}

/// Registered claims (RFC 7519 section 4.1) with a value of another type than the RFC gives
/// them, `null` first.
fn mistyped_claims() -> Vec<(&'static str, Value)> {
    let mut claims = Vec::new();
    for name in ["exp", "nbf", "iat"] {
        claims.extend([
            (name, json!(null)),
            (name, json!((NOW - 10).to_string())),
            (name, json!([NOW - 10])),
            (name, json!(NOW as f64 - 9.5)),
        ]);
    }
    for name in ["iss", "sub", "jti"] {
        claims.extend([(name, json!(null)), (name, json!(7)), (name, json!(["a"]))]);
    }
    claims.extend([
        ("aud", json!(null)),
        ("aud", json!(7)),
        ("aud", json!([7])),
        ("aud", json!({"svc": true})),
    ]);
    claims
}

#[test]
fn registered_claims_of_another_type_or_null_are_invalid_claims() {
    let verifier = verifier();
    for (name, value) in mistyped_claims() {
        let mut payload = claims();
        payload[name] = value.clone();
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &rsa_token(&payload)),
            Err(VerifyErrorKind::InvalidClaims),
            "{name}: {value}"
        );
    }
    let mut payload = claims();
    payload["sub"] = json!("device-7");
    payload["jti"] = json!(TOKEN_ID);
    assert_eq!(
        verdict_for_every_claims_type(&verifier, &rsa_token(&payload)),
        Ok(())
    );
}

/// `depth` nested arrays.
fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn deep_nesting_and_lone_surrogates_are_refused_in_any_member() {
    let verifier = verifier();
    let header = rsa_header().to_string();
    let payload = claims().to_string();
    let with_member = |object: &str, member: &str| object.replacen('{', &format!("{{{member},"), 1);
    for member in [
        format!(r#""ext":{}"#, nested(1000)),
        format!(r#""ext":{}"#, nested(128)),
        format!(r#""ext":{{"a":{}}}"#, nested(127)),
        r#""ext":"\ud800""#.to_owned(),
        r#""ext":"\udc00""#.to_owned(),
        r#""ext":["\ud800x"]"#.to_owned(),
        r#""ext":{"k":"\ud800\u0041"}"#.to_owned(),
        r#""\ud800":1"#.to_owned(),
    ] {
        let in_header = forge_text(&with_member(&header, &member), &payload, by_our_rsa_key());
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &in_header),
            Err(VerifyErrorKind::Malformed),
            "header {member}"
        );
        let in_payload = forge_text(&header, &with_member(&payload, &member), by_our_rsa_key());
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &in_payload),
            Err(VerifyErrorKind::InvalidClaims),
            "payload {member}"
        );
    }
    // Nesting within the limit, and a surrogate pair, are fine.
    for member in [
        format!(r#""ext":{}"#, nested(126)),
        r#""ext":"\ud83d\ude00""#.to_owned(),
    ] {
        let token = forge_text(
            &with_member(&header, &member),
            &with_member(&payload, &member),
            by_our_rsa_key(),
        );
        assert_eq!(
            verdict_for_every_claims_type(&verifier, &token),
            Ok(()),
            "{member}"
        );
    }
}

#[test]
fn errors_name_the_member_and_its_type_but_never_its_value() {
    let verifier = verifier();
    let secret = "my-secret-claim-value";
    let mut header = rsa_header();
    header["kid"] = json!([secret]);
    let mut payload = claims();
    payload["nbf"] = json!(secret);
    let mut bad_uuid = claims();
    bad_uuid["identifier"] = json!(secret);
    for (token, expected) in [
        (
            forge(&header, &claims(), by_our_rsa_key()),
            "invalid type: sequence, expected a string",
        ),
        (rsa_token(&payload), "invalid type: string, expected i64"),
        (
            rsa_token(&bad_uuid),
            "invalid value: string, expected a UUID",
        ),
    ] {
        let err = verifier.verify_at(&token, NOW).expect_err("rejected");
        let text = err.to_string();
        assert!(text.contains(expected), "{text}");
        assert!(!text.contains(secret), "{text}");
        assert!(!format!("{err:?}").contains(secret), "{err:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Audience and issuer.

#[test]
fn aud_string_or_list_naming_a_configured_audience_is_accepted() {
    let verifier = verifier_from(Verifier::builder().with_audiences(["svc-a", "svc-b"]));
    for (aud, expected) in [
        (json!("svc-b"), vec!["svc-b"]),
        (json!(["svc-a"]), vec!["svc-a"]),
        (json!(["other", "svc-b"]), vec!["other", "svc-b"]),
    ] {
        let mut payload = claims();
        payload["aud"] = aud;
        let claims = accepted(&verifier, &rsa_token(&payload));
        let expected = Audience(expected.into_iter().map(str::to_owned).collect());
        assert_eq!(claims.aud, Some(expected));
    }
}

#[test]
fn aud_naming_no_configured_audience_is_rejected() {
    let verifier = verifier_from(Verifier::builder().with_audiences(["svc-a", "svc-b"]));
    for aud in [json!("svc-c"), json!(["x", "y"]), json!([]), json!("SVC-A")] {
        let mut payload = claims();
        payload["aud"] = aud.clone();
        assert_eq!(
            rejection(&verifier, &rsa_token(&payload)),
            VerifyErrorKind::InvalidAudience,
            "{aud}"
        );
    }
}

#[test]
fn aud_in_the_token_without_configured_audiences_is_rejected() {
    let verifier = verifier();
    for aud in [json!("svc-a"), json!(["svc-a"]), json!([])] {
        let mut payload = claims();
        payload["aud"] = aud.clone();
        assert_eq!(
            rejection(&verifier, &rsa_token(&payload)),
            VerifyErrorKind::InvalidAudience,
            "{aud}"
        );
    }
}

#[test]
fn missing_aud_with_configured_audiences_is_rejected() {
    let verifier = verifier_from(Verifier::builder().with_audiences(["svc-a"]));
    assert_eq!(
        rejection(&verifier, &rsa_token(&claims())),
        VerifyErrorKind::InvalidAudience
    );
}

#[test]
fn aud_of_the_wrong_type_is_invalid_claims() {
    let verifier = verifier_from(Verifier::builder().with_audiences(["svc-a"]));
    for aud in [json!(1), json!({"svc-a": true}), json!([1])] {
        let mut payload = claims();
        payload["aud"] = aud.clone();
        assert_eq!(
            rejection(&verifier, &rsa_token(&payload)),
            VerifyErrorKind::InvalidClaims,
            "{aud}"
        );
    }
}

#[test]
fn iss_must_equal_the_configured_issuer() {
    let verifier = verifier_from(Verifier::builder().with_issuer("https://auth.example"));
    let mut payload = claims();
    assert_eq!(
        rejection(&verifier, &rsa_token(&payload)),
        VerifyErrorKind::InvalidIssuer
    );
    for iss in ["https://evil.example", "https://auth.example/", ""] {
        payload["iss"] = json!(iss);
        assert_eq!(
            rejection(&verifier, &rsa_token(&payload)),
            VerifyErrorKind::InvalidIssuer,
            "{iss}"
        );
    }
    payload["iss"] = json!("https://auth.example");
    assert_eq!(
        accepted(&verifier, &rsa_token(&payload)).iss.as_deref(),
        Some("https://auth.example")
    );
}

// ---------------------------------------------------------------------------------------------
// Required claims.

fn required_claims_verifier() -> Verifier {
    // `scope` twice: listing a claim again must not make it impossible to satisfy.
    verifier_from(Verifier::builder().with_required_claims(["scope", "tenant", "scope"]))
}

#[test]
fn required_claims_must_be_present_and_not_null() {
    let verifier = required_claims_verifier();
    let mut payload = claims();
    payload["scope"] = json!("orders:read");
    let err = verifier
        .verify_at(&rsa_token(&payload), NOW)
        .expect_err("no tenant");
    assert_eq!(err.kind(), VerifyErrorKind::InvalidClaims);
    assert!(err.to_string().contains("`tenant`"), "{err}");

    payload["tenant"] = json!(null);
    assert_eq!(
        rejection(&verifier, &rsa_token(&payload)),
        VerifyErrorKind::InvalidClaims
    );

    for tenant in [json!("acme"), json!(0), json!(false), json!([]), json!({})] {
        payload["tenant"] = tenant.clone();
        let claims = accepted(&verifier, &rsa_token(&payload));
        assert_eq!(claims.extra.get("tenant"), Some(&tenant));
    }
}

#[test]
fn a_required_claim_is_found_by_its_unescaped_name_and_its_last_value() {
    let verifier = required_claims_verifier();
    let base = payload_with_raw_exp(&(NOW + 300).to_string());
    let with = |members: &str| {
        forge_text(
            &rsa_header().to_string(),
            &base.replace('}', &format!(",{members}}}")),
            by_our_rsa_key(),
        )
    };
    verifier
        .verify_at(&with(r#""\u0073cope":"a","tenant":"t""#), NOW)
        .expect("an escaped name is the same name");
    assert_eq!(
        rejection(&verifier, &with(r#""scope":"a","tenant":"t","scope":null"#)),
        VerifyErrorKind::InvalidClaims
    );
}

#[test]
fn other_checks_come_before_the_required_claims() {
    let verifier = required_claims_verifier();
    assert_eq!(
        rejection(&verifier, &rsa_token(&claims_expiring_at(NOW - 3600))),
        VerifyErrorKind::Expired
    );
}

#[test]
fn verify_as_with_exp_at_returns_the_exp_whatever_the_claims_type() {
    let (_, exp) = verifier()
        .verify_as_with_exp_at::<serde::de::IgnoredAny>(&rsa_token(&claims()), NOW)
        .expect("verifies");
    assert_eq!(exp, NOW + 300);
}

// ---------------------------------------------------------------------------------------------
// Malformed tokens.

#[test]
fn wrong_number_of_segments_is_malformed() {
    let verifier = verifier();
    let token = rsa_token(&claims());
    let (message, _) = token.rsplit_once('.').expect("three segments");
    for bad in [
        String::new(),
        "abc".to_owned(),
        message.to_owned(),
        format!("{token}."),
        format!("{token}.{}", b64("{}")),
        format!("{token}.a.b"),
        format!(".{token}"),
    ] {
        assert_eq!(
            rejection(&verifier, &bad),
            VerifyErrorKind::Malformed,
            "{} segments",
            bad.split('.').count()
        );
    }
}

#[test]
fn empty_segments_are_malformed() {
    let verifier = verifier();
    let empty_header_and_signature = format!(".{}.", b64("{}"));
    for bad in ["..", "..x", empty_header_and_signature.as_str()] {
        assert_eq!(
            rejection(&verifier, bad),
            VerifyErrorKind::Malformed,
            "{bad}"
        );
    }
}

#[test]
fn bad_base64_in_any_segment_is_malformed() {
    let verifier = verifier();
    let token = rsa_token(&claims());
    let segments: Vec<&str> = token.split('.').collect();
    for index in 0..3 {
        let segment = segments[index];
        let mut bad_segments = vec![
            format!("{segment}*"),
            format!("!{}", &segment[1..]),
            format!("{segment} "),
            // A length that no base64 text can have.
            format!("{}A", &segment[..segment.len() - segment.len() % 4]),
        ];
        // The standard alphabet's `+` and `/` instead of `-` and `_`.
        let standard = STANDARD_NO_PAD.encode(URL_SAFE_NO_PAD.decode(segment).expect("base64url"));
        if standard.contains(['+', '/']) {
            bad_segments.push(standard);
        }
        for bad in bad_segments {
            let forged = match index {
                // Re-sign so that only the encoding can be at fault.
                0 => sign_segments(&bad, segments[1], by_our_rsa_key()),
                1 => sign_segments(segments[0], &bad, by_our_rsa_key()),
                _ => with_segment(&token, 2, &bad),
            };
            assert_eq!(
                rejection(&verifier, &forged),
                VerifyErrorKind::Malformed,
                "segment {index}: {bad}"
            );
        }
    }
}

#[test]
fn padded_base64_is_malformed() {
    let verifier = verifier();
    let token = rsa_token(&claims());
    let segments: Vec<&str> = token.split('.').collect();
    let padded_header = sign_segments(&padded(segments[0]), segments[1], by_our_rsa_key());
    let padded_payload = sign_segments(segments[0], &padded(segments[1]), by_our_rsa_key());
    let padded_signature = with_segment(&token, 2, &padded(segments[2]));
    assert_eq!(
        URL_SAFE.decode(padded(segments[2])).expect("padded base64"),
        URL_SAFE_NO_PAD.decode(segments[2]).expect("base64")
    );
    for (name, bad) in [
        ("header", padded_header),
        ("payload", padded_payload),
        ("signature", padded_signature),
    ] {
        assert_eq!(
            rejection(&verifier, &bad),
            VerifyErrorKind::Malformed,
            "{name}"
        );
    }
}

#[test]
fn non_canonical_base64_with_trailing_bits_is_malformed() {
    let verifier = verifier();
    let token = rsa_token(&claims());
    let segments: Vec<&str> = token.split('.').collect();
    let header = with_trailing_bits(segments[0]);
    let payload = with_trailing_bits(segments[1]);
    let signature = with_trailing_bits(segments[2]);
    for (name, bad) in [
        (
            "header",
            sign_segments(&header, segments[1], by_our_rsa_key()),
        ),
        (
            "payload",
            sign_segments(segments[0], &payload, by_our_rsa_key()),
        ),
        ("signature", with_segment(&token, 2, &signature)),
    ] {
        assert_eq!(
            rejection(&verifier, &bad),
            VerifyErrorKind::Malformed,
            "{name}"
        );
    }
}

#[test]
fn header_or_payload_that_is_not_utf8_is_rejected_even_in_an_ignored_member() {
    // Found by the `verify_signed` fuzz target: serde_json skipped the unchecked bytes.
    let verifier = verifier();
    let mut bad_header = format!(r#"{{"alg":"RS256","kid":"{RSA_KID}","typ":""#).into_bytes();
    bad_header.extend_from_slice(&[0xe4, 0xe4]);
    bad_header.extend_from_slice(br#"JWT"}"#);
    let token = sign_segments(
        &b64(&bad_header),
        &b64(claims().to_string()),
        by_our_rsa_key(),
    );
    assert_eq!(rejection(&verifier, &token), VerifyErrorKind::Malformed);

    let mut bad_payload = claims().to_string().into_bytes();
    bad_payload.pop();
    bad_payload.extend_from_slice(br#","note":""#);
    bad_payload.extend_from_slice(&[0xff, 0xfe]);
    bad_payload.extend_from_slice(br#""}"#);
    let token = sign_segments(
        &b64(rsa_header().to_string()),
        &b64(&bad_payload),
        by_our_rsa_key(),
    );
    assert_eq!(rejection(&verifier, &token), VerifyErrorKind::InvalidClaims);
    assert_eq!(
        verifier
            .verify_as_at::<serde::de::IgnoredAny>(&token, NOW)
            .expect_err("not UTF-8")
            .kind(),
        VerifyErrorKind::InvalidClaims
    );
}

#[test]
fn header_that_is_not_a_json_object_with_alg_is_malformed() {
    let verifier = verifier();
    for header in [
        "not json".to_owned(),
        String::new(),
        "[]".to_owned(),
        // The header fields in declaration order: alg, kid, crit.
        format!(r#"["RS256","{RSA_KID}",null]"#),
        r#""RS256""#.to_owned(),
        format!(r#"{{"kid":"{RSA_KID}"}}"#),
        format!(r#"{{"alg":null,"kid":"{RSA_KID}"}}"#),
        format!(r#"{{"alg":256,"kid":"{RSA_KID}"}}"#),
        r#"{"alg":"RS256","kid":7}"#.to_owned(),
        // A second `alg` must not override the first.
        format!(r#"{{"alg":"RS256","alg":"none","kid":"{RSA_KID}"}}"#),
        format!(r#"{{"alg":"RS256","kid":"{RSA_KID}""#),
    ] {
        let token = forge_text(&header, &claims().to_string(), by_our_rsa_key());
        assert_eq!(
            rejection(&verifier, &token),
            VerifyErrorKind::Malformed,
            "{header}"
        );
    }
}

#[test]
fn tokens_up_to_max_token_len_are_read_and_longer_ones_are_malformed() {
    let verifier = verifier();
    let with_filler = |len: usize| {
        let mut payload = claims();
        payload["filler"] = "x".repeat(len).into();
        rsa_token(&payload)
    };
    // The token grows by one or two characters per filler byte; find the longest that fits
    // from the lengths alone, so only two tokens are signed.
    let base = with_filler(0);
    let payload_len = URL_SAFE_NO_PAD
        .decode(base.split('.').nth(1).expect("payload"))
        .expect("b64")
        .len();
    let fixed_len = base.len() - base.split('.').nth(1).expect("payload").len();
    let token_len = |filler: usize| fixed_len + (4 * (payload_len + filler)).div_ceil(3);
    let longest = (0..MAX_TOKEN_LEN)
        .take_while(|&filler| token_len(filler) <= MAX_TOKEN_LEN)
        .last()
        .expect("a filler fits");

    let fits = with_filler(longest);
    assert!(fits.len() <= MAX_TOKEN_LEN && fits.len() >= MAX_TOKEN_LEN - 1);
    accepted(&verifier, &fits);

    let too_long = with_filler(longest + 1);
    assert!(too_long.len() > MAX_TOKEN_LEN);
    assert_eq!(rejection(&verifier, &too_long), VerifyErrorKind::Malformed);
    let huge = "a.".repeat(MAX_TOKEN_LEN);
    assert_eq!(rejection(&verifier, &huge), VerifyErrorKind::Malformed);
}

// ---------------------------------------------------------------------------------------------
// Error reporting.

#[test]
fn error_messages_never_contain_the_token() {
    let verifier = verifier_from(Verifier::builder().with_audiences(["svc-a"]));
    let valid = rsa_token(&claims());
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("svc-b");
    let mut bad_uuid = claims();
    bad_uuid["aud"] = json!("svc-a");
    bad_uuid["token_id"] = json!("not-a-uuid");
    let tokens = [
        valid.replace('.', ""),
        format!("{valid}.extra"),
        "x".repeat(MAX_TOKEN_LEN + 1),
        forge(
            &json!({"alg": "none", "kid": RSA_KID}),
            &claims(),
            Sign::Raw(""),
        ),
        forge(&rsa_header(), &claims(), by_attacker_rsa_key()),
        forge(
            &json!({"alg": "RS256", "kid": "attacker-1"}),
            &claims(),
            by_our_rsa_key(),
        ),
        forge_text("not json", &claims().to_string(), by_our_rsa_key()),
        forge_text(
            &rsa_header().to_string(),
            &payload_with_raw_exp(&format!("\"{}\"", NOW + 300)),
            by_our_rsa_key(),
        ),
        rsa_token(&claims_expiring_at(NOW - 3600)),
        rsa_token(&wrong_aud),
        rsa_token(&bad_uuid),
    ];
    let mut kinds = std::collections::HashSet::new();
    for token in &tokens {
        let err = verifier.verify_at(token, NOW).expect_err("rejected");
        kinds.insert(err.kind());
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(token.as_str()), "{text}");
            for segment in token.split('.').filter(|s| s.len() >= 8) {
                assert!(!text.contains(segment), "{:?}: {text}", err.kind());
            }
        }
    }
    assert!(kinds.len() >= 6, "{kinds:?}");
}

// ---------------------------------------------------------------------------------------------
// The cache-then-verify protocol.

#[test]
fn verify_cached_remembers_successes_until_exp_and_never_failures() {
    let verifier = verifier();
    let cache = TokenCache::<()>::new(16);
    let good = rsa_token(&claims());
    let forged = forge(&rsa_header(), &claims(), by_attacker_rsa_key());
    let verify = |token: &str, now: i64| {
        verifier.verify_cached_at(token, now, Some(&cache), 0, |_: Claims| ())
    };

    assert_eq!(
        verify(&forged, NOW).map_err(|e| e.kind()),
        Err(VerifyErrorKind::InvalidSignature)
    );
    assert!(cache.is_empty(), "a failure was remembered");
    assert!(verify(&good, NOW).is_ok());
    assert_eq!(cache.len(), 1);
    // A hit answers under the same key set, and expires with the verifier's leeway.
    assert!(verify(&good, NOW + 300 + LEEWAY - 1).is_ok());
    assert_eq!(
        verify(&good, NOW + 300 + LEEWAY).map_err(|e| e.kind()),
        Err(VerifyErrorKind::Expired)
    );
}

#[test]
fn verify_cached_gives_every_verdict_a_full_verification_gives_whatever_the_cache() {
    let verifier = verifier();
    let tokens = [
        rsa_token(&claims()),
        forge(&rsa_header(), &claims(), by_attacker_rsa_key()),
        rsa_token(&claims_expiring_at(NOW - 3600)),
        rsa_token(&json!({"identifier": IDENTIFIER, "iat": NOW, "exp": NOW + 60})),
        "not.a.token".to_owned(),
    ];
    let caches = [
        None,
        Some(TokenCache::<()>::new(1)),
        Some(TokenCache::new(64)),
    ];
    for cache in &caches {
        // Twice: the second round is answered from the cache where it can be.
        for _ in 0..2 {
            for token in &tokens {
                let full = verifier
                    .verify_at(token, NOW)
                    .map(|_| ())
                    .map_err(|e| e.kind());
                let cached = verifier
                    .verify_cached_at(token, NOW, cache.as_ref(), 0, |_: Claims| ())
                    .map_err(|e| e.kind());
                assert_eq!(cached, full, "{token}");
            }
        }
    }
}

#[test]
fn verify_cached_returns_what_keep_made_of_the_claims() {
    let verifier = verifier();
    let cache = TokenCache::<String>::new(16);
    let token = rsa_token(&claims());
    let identifier = |claims: Claims| claims.identifier.to_string();
    for _ in 0..2 {
        let kept = verifier.verify_cached_at(&token, NOW, Some(&cache), 7, identifier);
        assert_eq!(kept.expect("valid"), IDENTIFIER);
    }
    // Under another key set epoch the entry is not used, and the token is verified again.
    assert_eq!(
        cache.get(&TokenCache::<String>::hash(&token), 8, NOW, 0),
        None
    );
}
