//! Signing tokens with a private key parsed once.

use std::fmt;

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaEncoding, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwthenticator_core::{Algorithm, Claims};

/// A private key parsed once, ready to sign. `jsonwebtoken::crypto::sign` parses (and, for RSA,
/// validates) the key again on every call, which costs twice what an RSA-2048 signature does;
/// signing with the parsed key through the same aws-lc-rs calls gives the same bytes.
pub(crate) enum SigningKey {
    Rsa(RsaKeyPair),
    EcP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// The JWS signature of `message` (RFC 7518 section 3): PKCS#1 v1.5 or PSS for RSA,
    /// `r || s` for ECDSA, the Ed25519 signature for EdDSA.
    pub(super) fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Vec<u8>, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Rsa(pair) => {
                let padding: &'static dyn RsaEncoding = match algorithm {
                    Algorithm::RS256 => &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &aws_lc_rs::signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &aws_lc_rs::signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &aws_lc_rs::signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &aws_lc_rs::signature::RSA_PSS_SHA384,
                    Algorithm::PS512 => &aws_lc_rs::signature::RSA_PSS_SHA512,
                    other => return Err(format!("an RSA key cannot sign {other:?}")),
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut signature)
                    .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(signature)
            }
            Self::EcP256(pair) => Ok(pair
                .sign(&rng, message)
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec()),
            Self::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Signs JWThenticator JWTs with one private key.
pub struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: SigningKey,
    /// The base64url header, identical for every token, computed once.
    header_b64: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub(super) fn new(kid: String, algorithm: Algorithm, key: SigningKey) -> Self {
        let header = serde_json::json!({"alg": algorithm, "kid": kid, "typ": "JWT"});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Self {
            kid,
            algorithm,
            key,
            header_b64,
        }
    }

    /// The `kid` written into every token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm every token is signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A signed token carrying these claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let payload = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = self
            .key
            .sign(self.algorithm, token.as_bytes())
            .map_err(jsonwebtoken::errors::ErrorKind::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }
}
