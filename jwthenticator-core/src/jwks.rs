//! JSON Web Key Sets (RFC 7517) as the server publishes them at `/jwks`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// A JSON Web Key Set: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename = "JWKSResponse"))]
pub struct Jwks {
    /// The public keys that can verify a live token.
    pub keys: Vec<Jwk>,
}

/// One public key of a [`Jwks`]. Members this crate does not use (`x5c`, `key_ops`, ...) are
/// ignored when reading and never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename = "JWK", skip_serializing_if_is_none))]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id, matched against the `kid` header of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The one algorithm this key verifies, for example `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Intended use; `sig` for signature keys.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(rename = "use"))]
    pub use_: Option<String>,
    /// RSA modulus, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Curve of an `EC` or `OKP` key (`P-256`, `Ed25519`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// X coordinate (`EC`) or public key (`OKP`), base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Y coordinate of an `EC` key, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

/// The `kid` JWThenticator gives a public key: base64url(SHA-1(SubjectPublicKeyInfo DER)), the
/// Python original's scheme, so a key has the same `kid` on every replica, after every restart
/// and in both implementations. SHA-1 only names the key here; nothing is verified with it.
pub fn kid_of_spki(spki_der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, spki_der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

impl Jwk {
    /// An RSA signature key with the given key id, algorithm and base64url components.
    pub fn rsa(kid: impl Into<String>, alg: &str, n: String, e: String) -> Self {
        Self {
            kty: "RSA".to_owned(),
            kid: Some(kid.into()),
            alg: Some(alg.to_owned()),
            use_: Some("sig".to_owned()),
            n: Some(n),
            e: Some(e),
            crv: None,
            x: None,
            y: None,
        }
    }
}
