//! JSON bodies into every wire type of jwthenticator-core through serde, as the client and the
//! tower layer read them: never a panic, and whatever parses survives a round trip.

#![no_main]

use jwthenticator_core::{
    Audience, AuthRequest, BoolResponse, Claims, ErrorResponse, IdentifierRequest, Jwks,
    JwtValidateRequest, KeyInfo, KeyListResponse, KeyRequest, RefreshRequest, RegisterKeyRequest,
    RevocationResponse, RevokeKeyRequest, RevokeRefreshTokenRequest, TokenResponse,
};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `data` as `T`; what parses must serialise and parse back to itself.
fn round_trip<T: DeserializeOwned + Serialize + PartialEq>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_vec(&value).expect("a parsed value serialises");
    let again: T = serde_json::from_slice(&json).expect("a serialised value parses");
    assert!(
        again == value,
        "round trip changed {}",
        std::any::type_name::<T>()
    );
}

fuzz_target!(|data: &[u8]| {
    round_trip::<KeyRequest>(data);
    round_trip::<RegisterKeyRequest>(data);
    round_trip::<AuthRequest>(data);
    round_trip::<RefreshRequest>(data);
    round_trip::<JwtValidateRequest>(data);
    round_trip::<RevokeKeyRequest>(data);
    round_trip::<RevokeRefreshTokenRequest>(data);
    round_trip::<IdentifierRequest>(data);
    round_trip::<TokenResponse>(data);
    round_trip::<BoolResponse>(data);
    round_trip::<ErrorResponse>(data);
    round_trip::<RevocationResponse>(data);
    round_trip::<KeyInfo>(data);
    round_trip::<KeyListResponse>(data);
    round_trip::<Jwks>(data);
    round_trip::<Audience>(data);
    // Claims keep unknown members as JSON values, whose floats need not survive a round trip
    // bit for bit; they must still parse and serialise.
    if let Ok(claims) = serde_json::from_slice::<Claims>(data) {
        let json = serde_json::to_vec(&claims).expect("claims serialise");
        serde_json::from_slice::<Claims>(&json).expect("serialised claims parse");
    }
});
