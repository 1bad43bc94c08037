//! Private signing keys: parsing PEM, generating, encoding. The public half is core's
//! [`PublicKey`], which also publishes it.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use jwthenticator_core::{Algorithm, KeyType, PublicKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::der::SecretDocument;
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding, PrivateKeyInfo};
use rsa::{RsaPrivateKey, RsaPublicKey};

use super::signer::SigningKey;
use super::{KeyError, parse_error, unsupported_signing_algorithm};

/// A private signing key: RSA, EC P-256 or Ed25519. `Debug` shows only its type and `kid`;
/// the key material is zeroed when dropped.
pub struct PrivateKey {
    secret: SecretMaterial,
    public: PublicKey,
}

enum SecretMaterial {
    Rsa(Box<RsaPrivateKey>),
    /// A PKCS#8 v1 document of an EC P-256 or Ed25519 key, as jsonwebtoken signs with it.
    Pkcs8(SecretDocument),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("type", &self.key_type())
            .field("kid", &self.public.kid())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    fn rsa(key: RsaPrivateKey) -> Result<Self, KeyError> {
        let public = PublicKey::from_rsa(key.to_public_key())
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self {
            secret: SecretMaterial::Rsa(Box::new(key)),
            public,
        })
    }

    fn ec_p256(pair: &EcdsaKeyPair, what: &str) -> Result<Self, KeyError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| parse_error(what, "cannot be encoded as PKCS#8"))?;
        Ok(Self {
            secret: SecretMaterial::Pkcs8(secret_document(pkcs8.as_ref(), what)?),
            public: PublicKey::from_ec_p256_point(pair.public_key().as_ref())
                .map_err(|e| parse_error(what, e.reason()))?,
        })
    }

    fn ed25519(pair: &Ed25519KeyPair, what: &str) -> Result<Self, KeyError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| parse_error(what, "cannot be encoded as PKCS#8"))?;
        Ok(Self {
            secret: SecretMaterial::Pkcs8(secret_document(pkcs8.as_ref(), what)?),
            public: PublicKey::from_ed25519(pair.public_key().as_ref())
                .map_err(|e| parse_error(what, e.reason()))?,
        })
    }

    /// A new key for `algorithm`: RSA of `rsa_bits` bits, EC P-256 or Ed25519.
    pub fn generate(algorithm: Algorithm, rsa_bits: u32) -> Result<Self, KeyError> {
        let what = "the generated key";
        match KeyType::for_algorithm(algorithm) {
            Some(KeyType::Rsa) => Self::rsa(generate_rsa(rsa_bits)?),
            Some(KeyType::EcP256) => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Invalid("EC key generation failed".to_owned()))?;
                Self::ec_p256(&pair, what)
            }
            Some(KeyType::Ed25519) => {
                let pair = Ed25519KeyPair::generate()
                    .map_err(|_| KeyError::Invalid("Ed25519 key generation failed".to_owned()))?;
                Self::ed25519(&pair, what)
            }
            None => Err(unsupported_signing_algorithm(algorithm)),
        }
    }

    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`) of an RSA, EC P-256 or Ed25519 key,
    /// PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::parse(pem, "the private key")
    }

    /// [`PrivateKey::from_pem`] of the value of the setting `what`, which errors name.
    pub(super) fn parse(pem: &str, what: &str) -> Result<Self, KeyError> {
        let (label, document) = SecretDocument::from_pem(pem.trim())
            .map_err(|_| parse_error(what, "is not a PEM document"))?;
        let der = document.as_bytes();
        match label {
            "PRIVATE KEY" => {}
            "RSA PRIVATE KEY" => {
                let key = RsaPrivateKey::from_pkcs1_der(der)
                    .map_err(|e| parse_error(what, format!("is not a PKCS#1 RSA key: {e}")))?;
                return Self::rsa(key);
            }
            "EC PRIVATE KEY" => {
                let pair =
                    EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                        .map_err(|_| {
                            parse_error(what, "is not an EC private key on the P-256 curve")
                        })?;
                return Self::ec_p256(&pair, what);
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(parse_error(
                    what,
                    "is encrypted: decrypt it with `openssl pkey`, and protect the file instead",
                ));
            }
            label if label.contains("PUBLIC KEY") => {
                return Err(parse_error(
                    what,
                    "holds a public key where the private key belongs",
                ));
            }
            other => {
                return Err(parse_error(
                    what,
                    format!("is a PEM `{other}`, not a `PRIVATE KEY`"),
                ));
            }
        }
        let info = PrivateKeyInfo::try_from(der)
            .map_err(|e| parse_error(what, format!("is not a PKCS#8 private key: {e}")))?;
        let key_type = KeyType::of_algorithm_identifier(&info.algorithm)
            .map_err(|e| parse_error(what, e.reason()))?;
        match key_type {
            KeyType::Rsa => {
                let key = RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| parse_error(what, format!("is not an RSA private key: {e}")))?;
                Self::rsa(key)
            }
            KeyType::EcP256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| parse_error(what, "is not a valid EC P-256 private key"))?;
                Self::ec_p256(&pair, what)
            }
            KeyType::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| parse_error(what, "is not a valid Ed25519 private key"))?;
                Self::ed25519(&pair, what)
            }
        }
    }

    /// PKCS#8 PEM (`PRIVATE KEY`), zeroed when dropped.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        let failed =
            |e: &dyn fmt::Display| KeyError::Invalid(format!("cannot encode the private key: {e}"));
        match &self.secret {
            SecretMaterial::Rsa(key) => key.to_pkcs8_pem(LineEnding::LF).map_err(|e| failed(&e)),
            SecretMaterial::Pkcs8(document) => document
                .to_pem("PRIVATE KEY", LineEnding::LF)
                .map_err(|e| failed(&e)),
        }
    }

    /// The type of the key.
    pub fn key_type(&self) -> KeyType {
        self.public.key_type()
    }

    /// The public half.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key parsed for signing, as jsonwebtoken's aws-lc-rs backend parses it.
    pub(super) fn signing_key(&self) -> Result<SigningKey, KeyError> {
        let rejected = |e: aws_lc_rs::error::KeyRejected| {
            KeyError::Invalid(format!("aws-lc-rs refuses the private key: {e}"))
        };
        Ok(match (&self.secret, self.key_type()) {
            (SecretMaterial::Rsa(key), _) => {
                let der = key.to_pkcs1_der().map_err(|e| {
                    KeyError::Invalid(format!("cannot encode the private key: {e}"))
                })?;
                SigningKey::Rsa(RsaKeyPair::from_der(der.as_bytes()).map_err(rejected)?)
            }
            (SecretMaterial::Pkcs8(document), KeyType::EcP256) => SigningKey::EcP256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_bytes())
                    .map_err(rejected)?,
            ),
            (SecretMaterial::Pkcs8(document), _) => SigningKey::Ed25519(
                Ed25519KeyPair::from_pkcs8(document.as_bytes()).map_err(rejected)?,
            ),
        })
    }
}

fn secret_document(der: &[u8], what: &str) -> Result<SecretDocument, KeyError> {
    SecretDocument::try_from(der).map_err(|e| parse_error(what, format!("is not DER: {e}")))
}

/// A new RSA key of `bits` bits, generated by aws-lc-rs.
pub fn generate_rsa(bits: u32) -> Result<RsaPrivateKey, KeyError> {
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        8192 => KeySize::Rsa8192,
        other => {
            return Err(KeyError::Invalid(format!(
                "RSA_KEY_SIZE {other} is not supported: use 2048, 3072, 4096 or 8192"
            )));
        }
    };
    let pair = KeyPair::generate(size)
        .map_err(|_| KeyError::Invalid("RSA key generation failed".to_owned()))?;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
        .map_err(|_| KeyError::Invalid("cannot encode the generated key".to_owned()))?;
    RsaPrivateKey::from_pkcs8_der(der.as_ref())
        .map_err(|e| KeyError::Invalid(format!("cannot read the generated key: {e}")))
}

/// PKCS#8 PEM of an RSA private key.
pub fn private_key_pem(key: &RsaPrivateKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.as_str().to_owned())
        .map_err(|e| KeyError::Invalid(format!("cannot encode the private key: {e}")))
}

/// SPKI PEM of an RSA public key.
pub fn public_key_pem(key: &RsaPublicKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Invalid(format!("cannot encode the public key: {e}")))
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::keys::KeySet;

    #[test]
    fn every_algorithm_signs_tokens_its_public_key_verifies_with_jsonwebtoken_s_bytes() {
        let rsa = PrivateKey::generate(Algorithm::RS256, 2048).expect("rsa");
        let ec = PrivateKey::generate(Algorithm::ES256, 0).expect("ec");
        let ed = PrivateKey::generate(Algorithm::EdDSA, 0).expect("ed");
        let message = b"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3MDAwMDAwMDB9";
        for (algorithm, key) in [
            (Algorithm::RS256, &rsa),
            (Algorithm::RS384, &rsa),
            (Algorithm::RS512, &rsa),
            (Algorithm::PS256, &rsa),
            (Algorithm::PS384, &rsa),
            (Algorithm::PS512, &rsa),
            (Algorithm::ES256, &ec),
            (Algorithm::EdDSA, &ed),
        ] {
            // Signs a token and verifies it with the core Verifier, or fails.
            KeySet::new(algorithm, Some(key), key.public_key(), &[])
                .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
            let ours = key
                .signing_key()
                .expect("parses")
                .sign(algorithm, message)
                .expect("signs");
            let encoding_key = match &key.secret {
                SecretMaterial::Rsa(rsa) => jsonwebtoken::EncodingKey::from_rsa_der(
                    rsa.to_pkcs1_der().expect("pkcs1").as_bytes(),
                ),
                SecretMaterial::Pkcs8(doc) if algorithm == Algorithm::ES256 => {
                    jsonwebtoken::EncodingKey::from_ec_der(doc.as_bytes())
                }
                SecretMaterial::Pkcs8(doc) => {
                    jsonwebtoken::EncodingKey::from_ed_der(doc.as_bytes())
                }
            };
            let theirs = jsonwebtoken::crypto::sign(message, &encoding_key, algorithm)
                .expect("jsonwebtoken signs");
            // PKCS#1 v1.5 and Ed25519 are deterministic; PSS and ECDSA are randomised.
            if matches!(
                algorithm,
                Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::EdDSA
            ) {
                assert_eq!(URL_SAFE_NO_PAD.encode(&ours), theirs, "{algorithm:?}");
            } else {
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(&theirs).expect("b64").len(),
                    ours.len()
                );
            }
        }
    }

    #[test]
    fn keys_round_trip_through_pem_with_the_same_kid() {
        for algorithm in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = PrivateKey::generate(algorithm, 0).expect("generate");
            let again = PrivateKey::from_pem(&key.to_pem().expect("pem")).expect("parse");
            assert_eq!(again.public_key(), key.public_key());
            let public = PublicKey::from_pem(&key.public_key().to_pem().expect("pem"))
                .expect("parse public");
            assert_eq!(&public, key.public_key());
            assert_eq!(public.kid(), key.public_key().kid());
        }
    }

    #[test]
    fn debug_output_never_shows_private_key_material() {
        let key = PrivateKey::generate(Algorithm::ES256, 0).expect("generate");
        let pem = key.to_pem().expect("pem");
        let body: String = pem
            .lines()
            .nth(1)
            .expect("base64 line")
            .chars()
            .take(24)
            .collect();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&body), "{debug}");
        assert!(debug.contains("EcP256"), "{debug}");
    }
}
