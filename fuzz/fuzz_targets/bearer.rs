//! `Authorization` header values into `parse_bearer`: never a panic, and a token it returns is
//! the non-empty visible-ASCII tail of a `Bearer` header.

#![no_main]

use jwthenticator_core::parse_bearer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|value: &[u8]| {
    let Ok(token) = parse_bearer(value) else {
        return;
    };
    assert!(!token.is_empty());
    assert!(token.bytes().all(|b| b.is_ascii_graphic()));
    let trimmed = value.trim_ascii();
    assert!(trimmed[..6].eq_ignore_ascii_case(b"bearer"));
    assert_eq!(trimmed[6], b' ');
    assert!(trimmed.ends_with(token.as_bytes()));
    assert_eq!(trimmed[6..].trim_ascii_start(), token.as_bytes());
});
