//! JSON bodies into every request type the server accepts, read the way the server reads them:
//! its `JsonBody` extractor reads the body into a `serde_json::Value`, deserialises that with
//! serde (refusing it with a 400 naming the field), then reads it with `ParseFromJSON` (with
//! the length validators). Never a panic; a body
//! both accept must mean the same value to both (the server and its Rust clients share these
//! types), and must survive `ToJSON` and back.
//!
//! poem-openapi alone is laxer than serde: it turns a JSON number or boolean into a `String`
//! field (`{"key": 407}` reads as the key `"407"`). The serde gate is what refuses those, so
//! this target only compares bodies that pass it.

#![no_main]

use jwthenticator_core::{
    AuthRequest, IdentifierRequest, JwtValidateRequest, KeyRequest, RefreshRequest,
    RegisterKeyRequest, RevokeKeyRequest, RevokeRefreshTokenRequest,
};
use libfuzzer_sys::fuzz_target;
use poem_openapi::types::{ParseFromJSON, ToJSON};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn check<T: ParseFromJSON + ToJSON + DeserializeOwned + PartialEq>(data: &[u8], value: &Value) {
    let Ok(by_serde) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let Ok(by_poem) = T::parse_from_json(Some(value.clone())) else {
        return;
    };
    let name = std::any::type_name::<T>();
    assert!(
        by_serde == by_poem,
        "serde and poem-openapi read {name} differently"
    );
    let json = by_poem.to_json().expect("a parsed body converts to JSON");
    let again = T::parse_from_json(Some(json)).unwrap_or_else(|_| panic!("{name} round trip"));
    assert!(again == by_poem, "round trip changed {name}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    check::<KeyRequest>(data, &value);
    check::<RegisterKeyRequest>(data, &value);
    check::<AuthRequest>(data, &value);
    check::<RefreshRequest>(data, &value);
    check::<JwtValidateRequest>(data, &value);
    check::<RevokeKeyRequest>(data, &value);
    check::<RevokeRefreshTokenRequest>(data, &value);
    check::<IdentifierRequest>(data, &value);
});
