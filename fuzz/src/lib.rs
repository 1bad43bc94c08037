//! Fixtures shared by the fuzz targets: three fixed keys (RSA, EC P-256, Ed25519) made for
//! fuzzing only, the verifier every target uses, and an oracle that says independently whether
//! a token should have been accepted.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use jwthenticator_core::{Claims, Jwk, Jwks, Verifier};
use serde_json::Value;

/// The time every verification runs at, so runs are reproducible.
pub const NOW: i64 = 1_700_000_000;
/// Clock skew the verifier tolerates.
pub const LEEWAY: i64 = 30;
/// Longest lifetime the verifier accepts.
pub const MAX_LIFETIME: i64 = 3600;
/// The one accepted audience.
pub const AUDIENCE: &str = "svc";
/// The one accepted issuer.
pub const ISSUER: &str = "https://issuer.example";

/// PKCS#1 DER, base64 (openssl genpkey, 2048 bits). Never used outside fuzzing.
const RSA_PKCS1: &[&str] = &[
    "MIIEpAIBAAKCAQEAotWr+ZAooV2niJUSvifpCfz5Nfts91pf/wLe7OH5AQk7XDM3peC0I2+FZuanaNRd9JlWO42YhR18zQ8r",
    "7l9C2noXHiCNj9By5IhDw1YjFgTy+AbBAJ3SE7emuBlvxSRT0Mpgy+iL0AOzcOm/SQaIh9izaGzuJgK4DUUBBS4sjkV1gAib",
    "V3BFo8nTvxliiNc5h5N1h46KOYE77XclEL1EBEi/BGtbDhrORU++xolQ6v58mptDjwmoWnpVQIX/Vi3ltpA/dZXSrRy7WdiU",
    "0zbsWJGXRYIwdE+bjNEaCTOwWyJ31AdbsO54N+Md/H21DeOVD5M+mlZkv3/e2K0bHLb9twIDAQABAoIBABBqC5jvoDjhUPcN",
    "V+3/5eznfv5NvFE+3028g1j2T9HRQBZDj3N9hYsg6HNUAuzSo4SkRF4NIE0i3ia+8HBp/To6yRkfXPBx/x2XDYWjqYvEWfMI",
    "neyq/AyYHF/ofdeDREkCwuPV1ZTVcAGM09x6TR8B3YFETHQGcs6GSzEI04hPwkNtFSPaTLTxv6wAyOGMJdSQEXJxgcZSyeUH",
    "V5+F4/OamgKOvtEydM4C14xa4022JUkTbvTr2UBwr3+pF4PBoK/8kfLSPSfAMixiYVvVfxklw8fbXbrac30ZeDpiyoIrFy1e",
    "Yk9JZhlWcDcZlOPmVSgxTRUkaIP/oDgrcECI4uECgYEA1tn3BCiiRAiXOUx6rY5Fk64QwZEkKDmsF8tbQD/0nCOCzt+Xs9sJ",
    "7dr5Miv7zohBA63KzNjuIo4/dISoSDHV5nfNcfwGC9roG8sNSJoVAiCkeCSIn/icvL8Wh7Z4ieExyjT0WWZjhMNkO6QOtutt",
    "/zzxHNQVvuzLfmcKTh8PnFECgYEAwgVbLpjjFz7Zm5thgtx7/1YSd7lij0RIgaVPQ8/IP/fffV789bKcFPth+NBZAKAKCznm",
    "fFrvRouikG3TO6Y+U69Y+h0H1xIrWhTFx35mA/MmKleoyQMPj8hUxhLobZktAzd/a4Zl5z7ye10uk5cduOkamOB7C55IR5mG",
    "DqYB34cCgYBYwQfi5upJUoct+2L+STSC0jhHzi5yk4h899vFSeZBjgXecc1YVhbe9ENXL4ZBBlZdL7EEOGT/T2X1O0vNLxEe",
    "uMTc3nCc+xxBRvtAz634CAYJP4ZVFz2gVwv2mjFnO+j2kDOUrtBTqufAH4CYnd79vm4YK6CkE2vo1qYSKZCoUQKBgQCqRmEb",
    "p/nE8NexhNAzNKVuFW/nur8Q1PB9N0M1VCl+Wl+9e5utVa89itEUuGUj81BdQddR08yisPFep8P2WZPhhcYk202CJuP9DrX0",
    "uq11UfNwvbXXk+QYX8xmeTma1g92/0HIcA8Gv2u3cLPru3fOTGWXPYs/Sw5MKCRKvs5uCQKBgQDLtHSuQIdvvZs9nb0tchRo",
    "hrI3Ft/EQ9rZAWRSxx6Vi3BONg2qNMGqaX7ma/nH8vryeX/p0JlL+WkavP8XsVWZrzqf8f/rYQ6NYcJ2CDvQy4RFrsicdLqq",
    "/rWvl1wdb9i1+LByi8CxDFSauV26BeTHvS0xjiZUrENY8RRTxcr9zA==",
];
const RSA_N: &str = "otWr-ZAooV2niJUSvifpCfz5Nfts91pf_wLe7OH5AQk7XDM3peC0I2-FZuanaNRd9JlWO42YhR18zQ8r7l9C2noXHiCNj9By5IhDw1YjFgTy-AbBAJ3SE7emuBlvxSRT0Mpgy-iL0AOzcOm_SQaIh9izaGzuJgK4DUUBBS4sjkV1gAibV3BFo8nTvxliiNc5h5N1h46KOYE77XclEL1EBEi_BGtbDhrORU--xolQ6v58mptDjwmoWnpVQIX_Vi3ltpA_dZXSrRy7WdiU0zbsWJGXRYIwdE-bjNEaCTOwWyJ31AdbsO54N-Md_H21DeOVD5M-mlZkv3_e2K0bHLb9tw";
/// PKCS#8 DER, base64 (openssl genpkey, prime256v1). Never used outside fuzzing.
const EC_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg2f7BIqTM+Bt/43lPZ4N7t6EjeJ4bLI2ReownNCk9pBGhRANCAAQkrXqS86OxNavSwsjmhKbDW3EkbAAygnV0YMK/Jj/UzXhP84ijGmEa9NMaVyd+ZPzqWMZg9RpjZqzEXZ0yYlC2";
const EC_X: &str = "JK16kvOjsTWr0sLI5oSmw1txJGwAMoJ1dGDCvyY_1M0";
const EC_Y: &str = "eE_ziKMaYRr00xpXJ35k_OpYxmD1GmNmrMRdnTJiULY";
/// PKCS#8 DER, base64 (openssl genpkey, ED25519). Never used outside fuzzing.
const ED_PKCS8: &str = "MC4CAQAwBQYDK2VwBCIEIFIaLkumpINYsStR5SxxVlIw6KWBTKchDsFCUQuLC72X";
const ED_X: &str = "D19B6VwQ5esCWdwngvJD3-kwQPe-G8w5gF18rFWi7KY";

/// One key of the fixture: its `kid`, the algorithm it is pinned to, the signing key and the
/// public key as an attacker would paste it into an HMAC.
pub struct TestKey {
    /// The `kid` in the JWKS.
    pub kid: &'static str,
    /// The algorithm the JWKS pins it to.
    pub algorithm: Algorithm,
    /// The private key.
    pub encoding: EncodingKey,
    /// The public key as published (JWK `n` or `x`), the usual HS/RS confusion secret.
    pub public: &'static [u8],
}

/// The verifier and the keys behind it.
pub struct Fixture {
    /// Pinned to the three keys, audience [`AUDIENCE`], issuer [`ISSUER`], leeway
    /// [`LEEWAY`], maximum lifetime [`MAX_LIFETIME`].
    pub verifier: Verifier,
    /// RSA (RS256), EC P-256 (ES256), Ed25519 (EdDSA), in this order.
    pub keys: [TestKey; 3],
    /// The JWKS the verifier was built from.
    pub jwks: Jwks,
}

fn der(base64: &str) -> Vec<u8> {
    STANDARD.decode(base64).expect("fixture key is base64")
}

fn jwk(kty: &str, kid: &str, alg: &str) -> Jwk {
    Jwk {
        kty: kty.to_owned(),
        kid: Some(kid.to_owned()),
        alg: Some(alg.to_owned()),
        use_: Some("sig".to_owned()),
        n: None,
        e: None,
        crv: None,
        x: None,
        y: None,
    }
}

/// The fixture, built once per process.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rsa = Jwk {
            n: Some(RSA_N.to_owned()),
            e: Some("AQAB".to_owned()),
            ..jwk("RSA", "rsa", "RS256")
        };
        let ec = Jwk {
            crv: Some("P-256".to_owned()),
            x: Some(EC_X.to_owned()),
            y: Some(EC_Y.to_owned()),
            ..jwk("EC", "ec", "ES256")
        };
        let ed = Jwk {
            crv: Some("Ed25519".to_owned()),
            x: Some(ED_X.to_owned()),
            ..jwk("OKP", "ed", "EdDSA")
        };
        let jwks = Jwks {
            keys: vec![rsa, ec, ed],
        };
        let verifier = Verifier::builder()
            .with_audiences([AUDIENCE])
            .with_issuer(ISSUER)
            .with_leeway(LEEWAY as u64)
            .with_max_lifetime(MAX_LIFETIME as u64)
            .build(&jwks)
            .expect("fixture JWKS");
        assert_eq!(verifier.key_count(), 3, "every fixture key is usable");
        let keys = [
            TestKey {
                kid: "rsa",
                algorithm: Algorithm::RS256,
                encoding: EncodingKey::from_rsa_der(&der(&RSA_PKCS1.concat())),
                public: RSA_N.as_bytes(),
            },
            TestKey {
                kid: "ec",
                algorithm: Algorithm::ES256,
                encoding: EncodingKey::from_ec_der(&der(EC_PKCS8)),
                public: EC_X.as_bytes(),
            },
            TestKey {
                kid: "ed",
                algorithm: Algorithm::EdDSA,
                encoding: EncodingKey::from_ed_der(&der(ED_PKCS8)),
                public: ED_X.as_bytes(),
            },
        ];
        Fixture {
            verifier,
            keys,
            jwks,
        }
    })
}

/// `b64(header).b64(payload)`, the signing input.
pub fn signing_input(header: &[u8], payload: &[u8]) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    )
}

/// The JWA name jsonwebtoken gives an algorithm.
pub fn algorithm_name(algorithm: Algorithm) -> String {
    serde_json::to_value(algorithm)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Panics unless a token the verifier accepted deserved it: signed by the key its `kid`
/// names, with that key's algorithm, no `crit`, and claims that are in time, for the
/// audience and from the issuer. `signed_by` is the key index and algorithm that made a real
/// signature, `None` when the signature was forged.
pub fn assert_deserved(
    header: &[u8],
    payload: &[u8],
    signed_by: Option<(usize, Algorithm)>,
    claims: &Claims,
) {
    let fixture = fixture();
    let header: Value = serde_json::from_slice(header).expect("accepted header is JSON");
    let header = header.as_object().expect("accepted header is an object");
    assert!(!header.contains_key("crit"), "accepted a crit header");
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .expect("accepted without a kid");
    let index = fixture
        .keys
        .iter()
        .position(|key| key.kid == kid)
        .expect("accepted an unknown kid");
    let key = &fixture.keys[index];
    assert_eq!(
        header.get("alg").and_then(Value::as_str),
        Some(algorithm_name(key.algorithm).as_str()),
        "accepted another algorithm than the key's"
    );
    assert_eq!(
        signed_by,
        Some((index, key.algorithm)),
        "accepted a signature that key did not make"
    );

    let payload: Value = serde_json::from_slice(payload).expect("accepted payload is JSON");
    let payload = payload.as_object().expect("accepted payload is an object");
    let integer = |name: &str| {
        payload.get(name).filter(|v| !v.is_null()).map(|v| {
            v.as_i64()
                .unwrap_or_else(|| panic!("accepted a non-integer `{name}`: {v}"))
        })
    };
    let exp = integer("exp").expect("accepted without exp");
    assert!(
        NOW < exp.saturating_add(LEEWAY),
        "accepted an expired token"
    );
    assert!(
        exp <= NOW + MAX_LIFETIME + LEEWAY,
        "accepted a lifetime beyond the maximum"
    );
    assert_eq!(claims.exp, exp, "claims disagree on exp");
    for name in ["nbf", "iat"] {
        if let Some(value) = integer(name) {
            assert!(value <= NOW + LEEWAY, "accepted a future `{name}`");
        }
    }
    let audience_ok = match payload.get("aud") {
        Some(Value::String(aud)) => aud == AUDIENCE,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(audience_ok, "accepted a wrong or missing aud");
    assert_eq!(
        payload.get("iss").and_then(Value::as_str),
        Some(ISSUER),
        "accepted a wrong iss"
    );
}
