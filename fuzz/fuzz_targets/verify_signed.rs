//! Structure-aware verification: the fuzzer writes the header and payload JSON, and the target
//! signs them for real (or forges the signature), so inputs get past the signature check into
//! the header and claims rules. An oracle independent of the verifier checks every token it
//! accepts.
//!
//! Input: `selector, header JSON, 0x00, payload JSON`. The selector picks the fixture key (RSA,
//! EC, Ed25519) and the signature: a real one by that key, 64 zero bytes (the psychic ECDSA
//! signature), HS256 keyed with the key's public JWK member (algorithm confusion), or a real
//! one by the next key (key confusion).

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, crypto};
use jwthenticator_fuzz::{NOW, assert_deserved, fixture, signing_input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (header, payload) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let fixture = fixture();
    let key_index = usize::from(selector % 3);
    let key = &fixture.keys[key_index];
    let input = signing_input(header, payload);
    let (signature, signed_by) = match (selector / 3) % 4 {
        0 => (
            crypto::sign(input.as_bytes(), &key.encoding, key.algorithm).expect("sign"),
            Some((key_index, key.algorithm)),
        ),
        1 => (URL_SAFE_NO_PAD.encode([0u8; 64]), None),
        2 => {
            let secret = EncodingKey::from_secret(key.public).expect("hmac key");
            (
                crypto::sign(input.as_bytes(), &secret, Algorithm::HS256).expect("sign"),
                None,
            )
        }
        _ => {
            let next_index = (key_index + 1) % 3;
            let next = &fixture.keys[next_index];
            (
                crypto::sign(input.as_bytes(), &next.encoding, next.algorithm).expect("sign"),
                Some((next_index, next.algorithm)),
            )
        }
    };
    let token = format!("{input}.{signature}");
    if let Ok(claims) = fixture.verifier.verify_at(&token, NOW) {
        assert_deserved(header, payload, signed_by, &claims);
    }
});
