//! Arbitrary strings as tokens: `Verifier::verify` and `Verifier::peek_kid` never panic, and
//! whatever passes is canonical base64url in every segment.

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwthenticator_core::Verifier;
use jwthenticator_fuzz::{NOW, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    let _ = Verifier::peek_kid(token);
    let Ok(_claims) = fixture().verifier.verify_at(token, NOW) else {
        return;
    };
    for segment in token.split('.') {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .expect("accepted segment is base64url");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(bytes),
            segment,
            "accepted non-canonical base64url"
        );
    }
});
