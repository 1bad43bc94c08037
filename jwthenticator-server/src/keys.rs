//! Signing and verification keys: loading, generating, the JWKS and token signing.
//!
//! The server signs with one key, of the type `JWT_ALGORITHM` needs: RSA for RS256 … PS512,
//! EC P-256 for ES256, Ed25519 for EdDSA. It publishes that key at `/jwks` together with the
//! public keys listed in `PUBLISHED_PUBLIC_KEY_PATHS`, and its verifier accepts tokens of all
//! of them. That list is how the signing key rotates without invalidating a live token:
//!
//! 1. Publish the next key: add its public key file to `PUBLISHED_PUBLIC_KEY_PATHS` on every
//!    replica and wait until the JWKS caches of gateways and services have picked it up.
//! 2. Sign with it: make it the signing key on every replica and list the previous public key
//!    in `PUBLISHED_PUBLIC_KEY_PATHS` instead.
//! 3. When the last token the previous key signed has expired (`JWT_LEASE_TIME` after step 2),
//!    remove it from the list.
//!
//! Keys are read with the PKCS#8 and SPKI types the `rsa` crate re-exports and generated with
//! aws-lc-rs; every signature is made by aws-lc-rs, the backend `jsonwebtoken` is built with
//! here (never by the `rsa` crate, see RUSTSEC-2023-0071), from a key parsed once at start.
//! Every `kid` is base64url(SHA-1(SPKI DER)), the Python
//! original's scheme, so a key has the same `kid` on every replica, after every restart and in
//! both implementations.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaEncoding, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jwthenticator_core::{Claims, Jwk, Jwks, Verifier, VerifyingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::der::asn1::{AnyRef, BitStringRef};
use rsa::pkcs8::der::zeroize::Zeroizing;
use rsa::pkcs8::der::{Encode, SecretDocument};
use rsa::pkcs8::{
    AlgorithmIdentifierRef, DecodePrivateKey, DecodePublicKey, Document, EncodePrivateKey,
    EncodePublicKey, LineEnding, ObjectIdentifier, PrivateKeyInfo, SubjectPublicKeyInfoRef,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::config::Config;

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `prime256v1`, the curve of ES256 (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `id-Ed25519` (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Why the configured keys cannot be used. Every message names the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written (the I/O error is the source).
    #[error("{action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM value is not a key this server can use.
    #[error("{what} {reason}")]
    Parse {
        /// The setting (and file) that holds the value.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The key's type does not fit `JWT_ALGORITHM`.
    #[error(
        "{what} holds an {found} key, but JWT_ALGORITHM {algorithm:?} signs with an {expected} \
         key: configure a matching key or change JWT_ALGORITHM"
    )]
    WrongType {
        /// The setting (and file) that holds the key.
        what: String,
        /// The type of the key given.
        found: KeyType,
        /// The type `JWT_ALGORITHM` needs.
        expected: KeyType,
        /// `JWT_ALGORITHM`.
        algorithm: Algorithm,
    },
    /// The public key given does not belong to the private key given.
    #[error("{public} does not match {private}: it is not that private key's public key")]
    Mismatch {
        /// The setting that holds the public key.
        public: String,
        /// The setting that holds the private key.
        private: String,
    },
    /// A setting and its neutral alias are both set, to different values.
    #[error("{original} and {alias} are the same setting but are set to different values: set one")]
    Conflict {
        /// The original's name, e.g. `RSA_PRIVATE_KEY`.
        original: &'static str,
        /// The alias, e.g. `JWT_PRIVATE_KEY`.
        alias: &'static str,
    },
    /// Any other invalid key configuration.
    #[error("{0}")]
    Invalid(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeyError {
    let path = path.to_owned();
    move |source| KeyError::Io {
        action,
        path,
        source,
    }
}

fn parse_error(what: &str, reason: impl Into<String>) -> KeyError {
    KeyError::Parse {
        what: what.to_owned(),
        reason: reason.into(),
    }
}

/// The type of a key, which fixes the algorithms it signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// RSA: RS256, RS384, RS512, PS256, PS384, PS512.
    Rsa,
    /// ECDSA on the P-256 curve: ES256.
    EcP256,
    /// Ed25519: EdDSA.
    Ed25519,
}

impl KeyType {
    /// The type of key `algorithm` signs with, or `None` for an algorithm the server does not
    /// sign with.
    pub fn for_algorithm(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Some(Self::Rsa),
            Algorithm::ES256 => Some(Self::EcP256),
            Algorithm::EdDSA => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The algorithm a published key of this type verifies when the server signs with
    /// `signing`: an RSA key keeps the configured RSA algorithm (RS256 when the server does not
    /// sign with RSA); EC P-256 and Ed25519 keys have only one.
    pub fn published_algorithm(self, signing: Algorithm) -> Algorithm {
        match self {
            Self::Rsa if Self::for_algorithm(signing) == Some(Self::Rsa) => signing,
            Self::Rsa => Algorithm::RS256,
            Self::EcP256 => Algorithm::ES256,
            Self::Ed25519 => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::Ed25519 => "Ed25519",
        })
    }
}

/// A public key: RSA, EC P-256 or Ed25519.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: PublicMaterial,
    /// The canonical SubjectPublicKeyInfo DER, from which the `kid` is derived.
    spki: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq)]
enum PublicMaterial {
    Rsa(RsaPublicKey),
    /// The uncompressed SEC1 point: `04 || x || y`.
    EcP256(Vec<u8>),
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("type", &self.key_type())
            .field("kid", &self.kid())
            .finish()
    }
}

impl PublicKey {
    fn rsa(key: RsaPublicKey) -> Result<Self, KeyError> {
        let spki = key
            .to_public_key_der()
            .map_err(|e| KeyError::Invalid(format!("cannot encode an RSA public key: {e}")))?;
        Ok(Self {
            material: PublicMaterial::Rsa(key),
            spki: spki.into_vec(),
        })
    }

    /// An EC P-256 key from its SEC1 point, which must be uncompressed and on the curve.
    fn ec_p256(point: &[u8], what: &str) -> Result<Self, KeyError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(parse_error(
                what,
                "is not an uncompressed P-256 point (compressed EC public keys are not \
                 supported: export it with `openssl pkey -pubin -pubout`)",
            ));
        }
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|_| parse_error(what, "is not a point on the P-256 curve"))?;
        let spki = encode_spki(EC_PUBLIC_KEY, Some(&P256), point)?;
        Ok(Self {
            material: PublicMaterial::EcP256(point.to_vec()),
            spki,
        })
    }

    fn ed25519(key: &[u8], what: &str) -> Result<Self, KeyError> {
        ParsedPublicKey::new(&ED25519, key)
            .ok()
            .filter(|_| key.len() == 32)
            .ok_or_else(|| parse_error(what, "is not a 32-byte Ed25519 public key"))?;
        let spki = encode_spki(ED25519_OID, None, key)?;
        Ok(Self {
            material: PublicMaterial::Ed25519(key.to_vec()),
            spki,
        })
    }

    /// Reads a PEM public key: SPKI (`PUBLIC KEY`) of an RSA, EC P-256 or Ed25519 key, or
    /// PKCS#1 (`RSA PUBLIC KEY`).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        Self::parse(pem, "the public key")
    }

    fn parse(pem: &str, what: &str) -> Result<Self, KeyError> {
        let (label, document) = Document::from_pem(pem.trim())
            .map_err(|_| parse_error(what, "is not a PEM document"))?;
        match label {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" => {
                let key = RsaPublicKey::from_pkcs1_der(document.as_bytes())
                    .map_err(|e| parse_error(what, format!("is not a PKCS#1 RSA key: {e}")))?;
                return Self::rsa(key);
            }
            "CERTIFICATE" => {
                return Err(parse_error(
                    what,
                    "is a certificate: extract its public key with \
                     `openssl x509 -pubkey -noout`",
                ));
            }
            label if label.contains("PRIVATE KEY") => {
                return Err(parse_error(
                    what,
                    "holds a private key where a public key belongs: export the public key \
                     with `openssl pkey -pubout`",
                ));
            }
            other => {
                return Err(parse_error(
                    what,
                    format!("is a PEM `{other}`, not a `PUBLIC KEY`"),
                ));
            }
        }
        let spki = SubjectPublicKeyInfoRef::try_from(document.as_bytes())
            .map_err(|e| parse_error(what, format!("is not a SubjectPublicKeyInfo: {e}")))?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| parse_error(what, "has a public key that is not whole bytes"))?;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => {
                let key = RsaPublicKey::from_public_key_der(document.as_bytes())
                    .map_err(|e| parse_error(what, format!("is not an RSA public key: {e}")))?;
                Self::rsa(key)
            }
            EC_PUBLIC_KEY => {
                check_curve(&spki.algorithm, what)?;
                Self::ec_p256(bits, what)
            }
            ED25519_OID => Self::ed25519(bits, what),
            other => Err(unsupported_algorithm(what, other)),
        }
    }

    /// SPKI PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        Document::try_from(self.spki.as_slice())
            .and_then(|doc| doc.to_pem("PUBLIC KEY", LineEnding::LF))
            .map_err(|e| KeyError::Invalid(format!("cannot encode the public key: {e}")))
    }

    /// The type of the key.
    pub fn key_type(&self) -> KeyType {
        match self.material {
            PublicMaterial::Rsa(_) => KeyType::Rsa,
            PublicMaterial::EcP256(_) => KeyType::EcP256,
            PublicMaterial::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The key's `kid`: base64url(SHA-1(SPKI DER)), as the Python original computes it.
    pub fn kid(&self) -> String {
        jwthenticator_core::kid_of_spki(&self.spki)
    }

    /// The JWK publishing this key for `algorithm`.
    fn jwk(&self, kid: String, algorithm: Algorithm) -> Jwk {
        let alg = algorithm_name(algorithm);
        let (kty, crv, x, y) = match &self.material {
            PublicMaterial::Rsa(key) => {
                let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
                let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
                return Jwk::rsa(kid, &alg, n, e);
            }
            PublicMaterial::EcP256(point) => (
                "EC",
                "P-256",
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            ),
            PublicMaterial::Ed25519(key) => ("OKP", "Ed25519", URL_SAFE_NO_PAD.encode(key), None),
        };
        Jwk {
            kty: kty.to_owned(),
            kid: Some(kid),
            alg: Some(alg),
            use_: Some("sig".to_owned()),
            n: None,
            e: None,
            crv: Some(crv.to_owned()),
            x: Some(x),
            y,
        }
    }
}

/// The DER SubjectPublicKeyInfo of a key, as OpenSSL writes it.
fn encode_spki(
    algorithm: ObjectIdentifier,
    parameters: Option<&ObjectIdentifier>,
    key: &[u8],
) -> Result<Vec<u8>, KeyError> {
    let encoding_failed = |e| KeyError::Invalid(format!("cannot encode a public key: {e}"));
    SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: algorithm,
            parameters: parameters.map(AnyRef::from),
        },
        subject_public_key: BitStringRef::from_bytes(key).map_err(encoding_failed)?,
    }
    .to_der()
    .map_err(encoding_failed)
}

fn check_curve(algorithm: &AlgorithmIdentifierRef<'_>, what: &str) -> Result<(), KeyError> {
    match algorithm.parameters_oid() {
        Ok(P256) => Ok(()),
        Ok(other) => Err(parse_error(
            what,
            format!(
                "is an EC key on curve {other}; only P-256 (prime256v1, for ES256) is supported"
            ),
        )),
        Err(_) => Err(parse_error(
            what,
            "is an EC key without a named curve; only P-256 (prime256v1) is supported",
        )),
    }
}

fn unsupported_algorithm(what: &str, oid: ObjectIdentifier) -> KeyError {
    parse_error(
        what,
        format!(
            "is a key of algorithm {oid}; supported are RSA (rsaEncryption), EC P-256 and Ed25519"
        ),
    )
}

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
        let public = PublicKey::rsa(key.to_public_key())?;
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
            public: PublicKey::ec_p256(pair.public_key().as_ref(), what)?,
        })
    }

    fn ed25519(pair: &Ed25519KeyPair, what: &str) -> Result<Self, KeyError> {
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|_| parse_error(what, "cannot be encoded as PKCS#8"))?;
        Ok(Self {
            secret: SecretMaterial::Pkcs8(secret_document(pkcs8.as_ref(), what)?),
            public: PublicKey::ed25519(pair.public_key().as_ref(), what)?,
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

    fn parse(pem: &str, what: &str) -> Result<Self, KeyError> {
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
        match info.algorithm.oid {
            RSA_ENCRYPTION => {
                let key = RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| parse_error(what, format!("is not an RSA private key: {e}")))?;
                Self::rsa(key)
            }
            EC_PUBLIC_KEY => {
                check_curve(&info.algorithm, what)?;
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| parse_error(what, "is not a valid EC P-256 private key"))?;
                Self::ec_p256(&pair, what)
            }
            ED25519_OID => {
                let pair = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|_| parse_error(what, "is not a valid Ed25519 private key"))?;
                Self::ed25519(&pair, what)
            }
            other => Err(unsupported_algorithm(what, other)),
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
    fn signing_key(&self) -> Result<SigningKey, KeyError> {
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

/// A private key parsed once, ready to sign. `jsonwebtoken::crypto::sign` parses (and, for RSA,
/// validates) the key again on every call, which costs twice what an RSA-2048 signature does;
/// signing with the parsed key through the same aws-lc-rs calls gives the same bytes.
enum SigningKey {
    Rsa(RsaKeyPair),
    EcP256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// The JWS signature of `message` (RFC 7518 section 3): PKCS#1 v1.5 or PSS for RSA,
    /// `r || s` for ECDSA, the Ed25519 signature for EdDSA.
    fn sign(&self, algorithm: Algorithm, message: &[u8]) -> Result<Vec<u8>, String> {
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

fn secret_document(der: &[u8], what: &str) -> Result<SecretDocument, KeyError> {
    SecretDocument::try_from(der).map_err(|e| parse_error(what, format!("is not DER: {e}")))
}

fn unsupported_signing_algorithm(algorithm: Algorithm) -> KeyError {
    KeyError::Invalid(format!(
        "JWT_ALGORITHM {algorithm:?} is not supported: use RS256, RS384, RS512, PS256, PS384, \
         PS512, ES256 or EdDSA"
    ))
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
    fn new(kid: String, algorithm: Algorithm, key: SigningKey) -> Self {
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

/// When a key may sign: from `from` (included) until `until` (excluded), in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningWindow {
    /// The first second it signs.
    pub from: i64,
    /// The first second it no longer signs (its `retires_at`).
    pub until: i64,
}

impl SigningWindow {
    /// A configured key: it signs whenever the server runs.
    pub const ALWAYS: Self = Self {
        from: i64::MIN,
        until: i64::MAX,
    };

    fn contains(self, at: i64) -> bool {
        self.from <= at && at < self.until
    }
}

/// A private key that signs within a window, with its algorithm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScheduledKey<'a> {
    pub(crate) key: &'a PrivateKey,
    pub(crate) algorithm: Algorithm,
    pub(crate) window: SigningWindow,
}

/// The server's keys: the signers, each with the window in which it signs (none when only a
/// public key is configured), and the public keys that verify tokens and make up the JWKS, the
/// signers' first.
#[derive(Debug)]
pub struct KeySet {
    signers: Vec<(SigningWindow, Signer)>,
    jwks: Jwks,
    verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// The key that signs now, or `None` when the server only validates (or its last shared
    /// key has retired and no next one is loaded).
    pub fn signer(&self) -> Option<&Signer> {
        self.signer_at(chrono::Utc::now().timestamp())
    }

    /// The key that signs at `at` (Unix seconds): of the keys whose window holds it, the one
    /// whose window started last. No key signs outside its window.
    pub fn signer_at(&self, at: i64) -> Option<&Signer> {
        self.signers
            .iter()
            .filter(|(window, _)| window.contains(at))
            .max_by_key(|(window, _)| window.from)
            .map(|(_, signer)| signer)
    }

    /// The public keys as published at `/jwks`: the signing key first, then the published ones.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// A verifier over these keys, each pinned to its own algorithm, with the configured
    /// audience, issuer, leeway and lifetime.
    pub fn verifier(&self, config: &Config) -> Verifier {
        let builder = Verifier::builder()
            .with_algorithms(self.verifying.iter().map(VerifyingKey::algorithm))
            .with_audiences(config.jwt_audience.iter().cloned())
            .with_leeway(config.jwt_leeway)
            .with_max_lifetime(config.jwt_lease_time);
        match issuer(config) {
            Some(issuer) => builder.with_issuer(issuer),
            None => builder,
        }
        .build_with_keys(self.verifying.clone())
    }

    /// Keys that sign in their windows (each pinned to its algorithm, the first published
    /// first) and also publish `published`, RSA ones for `published_algorithm`.
    pub(crate) fn scheduled(
        signers: &[ScheduledKey<'_>],
        published: &[PublicKey],
        published_algorithm: Algorithm,
    ) -> Result<Self, KeyError> {
        let public = signers
            .iter()
            .map(|s| (s.key.public_key(), s.algorithm))
            .chain(published.iter().map(|key| {
                let algorithm = key.key_type().published_algorithm(published_algorithm);
                (key, algorithm)
            }));
        let signers = signers
            .iter()
            .map(|s| {
                let signer = Signer::new(s.key.public.kid(), s.algorithm, s.key.signing_key()?);
                Ok((s.window, signer))
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        Self::assemble(signers, public)
    }

    /// The signing key's public key first, then the published keys.
    fn new(
        algorithm: Algorithm,
        private: Option<&PrivateKey>,
        public: &PublicKey,
        published: &[PublicKey],
    ) -> Result<Self, KeyError> {
        let signers = private
            .map(|key| {
                let signer = Signer::new(public.kid(), algorithm, key.signing_key()?);
                Ok::<_, KeyError>((SigningWindow::ALWAYS, signer))
            })
            .transpose()?
            .into_iter()
            .collect();
        let keys = std::iter::once((public, algorithm)).chain(
            published
                .iter()
                .map(|key| (key, key.key_type().published_algorithm(algorithm))),
        );
        Self::assemble(signers, keys)
    }

    /// Publishes `public` in order, a key listed twice (same `kid`) once, and checks every
    /// signer against its public key.
    fn assemble<'a>(
        signers: Vec<(SigningWindow, Signer)>,
        public: impl Iterator<Item = (&'a PublicKey, Algorithm)>,
    ) -> Result<Self, KeyError> {
        let mut jwks = Jwks::default();
        let mut verifying = Vec::new();
        for (key, algorithm) in public {
            let kid = key.kid();
            if jwks.keys.iter().any(|jwk| jwk.kid.as_ref() == Some(&kid)) {
                continue;
            }
            let jwk = key.jwk(kid, algorithm);
            verifying.push(
                VerifyingKey::from_jwk(&jwk, Some(algorithm))
                    .map_err(|e| KeyError::Invalid(e.to_string()))?,
            );
            jwks.keys.push(jwk);
        }
        let keys = Self {
            signers,
            jwks,
            verifying,
        };
        for (_, signer) in &keys.signers {
            keys.check_signer(signer)?;
        }
        Ok(keys)
    }

    /// Signs a token and verifies it with the signer's public key, so a key that cannot work
    /// fails the start rather than the first `authenticate`.
    fn check_signer(&self, signer: &Signer) -> Result<(), KeyError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            token_id: uuid::Uuid::nil(),
            identifier: uuid::Uuid::nil(),
            iat: now,
            exp: now.saturating_add(60),
            aud: None,
            iss: None,
            nbf: None,
            extra: serde_json::Map::new(),
        };
        let failed = |reason: String| {
            KeyError::Invalid(format!(
                "the signing key cannot make a token its own public key verifies: {reason}"
            ))
        };
        let token = signer.sign(&claims).map_err(|e| failed(e.to_string()))?;
        Verifier::builder()
            .build_with_keys(self.verifying.clone())
            .verify_at(&token, now)
            .map_err(|e| failed(e.to_string()))?;
        Ok(())
    }
}

/// `JWT_ISSUER`, when set to a non-empty value.
pub(crate) fn issuer(config: &Config) -> Option<&str> {
    config.jwt_issuer.as_deref().filter(|s| !s.is_empty())
}

/// The JWA name of an algorithm (`RS256`, ...), as jsonwebtoken serialises it.
fn algorithm_name(algorithm: Algorithm) -> String {
    serde_json::to_value(algorithm)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
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

/// Writes a file readable by its owner only (the private key must not be world-readable).
fn write_private_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    crate::private_files::create_file(path, contents.as_bytes()).map_err(io_error("creating", path))
}

fn write_public_file(path: &Path, key: &PublicKey) -> Result<(), KeyError> {
    create_parent(path)?;
    fs::write(path, key.to_pem()?).map_err(io_error("writing", path))
}

fn create_parent(path: &Path) -> Result<(), KeyError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => crate::private_files::create_dir(parent)
            .map_err(io_error("creating the directory of", path)),
        None => Ok(()),
    }
}

fn read_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(io_error("reading", path))
}

/// A setting with the name it was given under.
struct Named<'a, T: ?Sized> {
    name: &'static str,
    value: &'a T,
}

// Derived impls would require `T: Copy`, which `str` and `Path` are not.
impl<T: ?Sized> Clone for Named<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Named<'_, T> {}

/// One setting given under the original's name or a neutral alias: either, or both when equal.
fn either<'a, T: ?Sized + PartialEq>(
    (original, original_value): (&'static str, Option<&'a T>),
    (alias, alias_value): (&'static str, Option<&'a T>),
) -> Result<Option<Named<'a, T>>, KeyError> {
    match (original_value, alias_value) {
        (Some(a), Some(b)) if a != b => Err(KeyError::Conflict { original, alias }),
        (Some(value), _) => Ok(Some(Named {
            name: original,
            value,
        })),
        (None, Some(value)) => Ok(Some(Named { name: alias, value })),
        (None, None) => Ok(None),
    }
}

/// Where the signing key comes from, each setting resolved against its alias; empty values
/// count as unset.
struct Sources<'a> {
    private: Option<Named<'a, str>>,
    public: Option<Named<'a, str>>,
    private_path: Option<Named<'a, Path>>,
    public_path: Option<Named<'a, Path>>,
}

impl<'a> Sources<'a> {
    fn of(config: &'a Config) -> Result<Self, KeyError> {
        fn text(value: Option<&str>) -> Option<&str> {
            value.map(str::trim).filter(|s| !s.is_empty())
        }
        fn path(value: Option<&PathBuf>) -> Option<&Path> {
            value
                .map(PathBuf::as_path)
                .filter(|p| !p.as_os_str().is_empty())
        }
        Ok(Self {
            private: either(
                (
                    "RSA_PRIVATE_KEY",
                    text(config.rsa_private_key.as_ref().map(|s| s.expose())),
                ),
                (
                    "JWT_PRIVATE_KEY",
                    text(config.jwt_private_key.as_ref().map(|s| s.expose())),
                ),
            )?,
            public: either(
                ("RSA_PUBLIC_KEY", text(config.rsa_public_key.as_deref())),
                ("JWT_PUBLIC_KEY", text(config.jwt_public_key.as_deref())),
            )?,
            private_path: either(
                (
                    "RSA_PRIVATE_KEY_PATH",
                    path(config.rsa_private_key_path.as_ref()),
                ),
                (
                    "JWT_PRIVATE_KEY_PATH",
                    path(config.jwt_private_key_path.as_ref()),
                ),
            )?,
            public_path: either(
                (
                    "RSA_PUBLIC_KEY_PATH",
                    path(config.rsa_public_key_path.as_ref()),
                ),
                (
                    "JWT_PUBLIC_KEY_PATH",
                    path(config.jwt_public_key_path.as_ref()),
                ),
            )?,
        })
    }
}

/// A key with the setting it came from, for error messages.
struct Sourced<K> {
    key: K,
    what: String,
}

fn read_private(
    pem: &str,
    what: String,
    algorithm: Algorithm,
) -> Result<Sourced<PrivateKey>, KeyError> {
    let key = PrivateKey::parse(pem, &what)?;
    check_type(key.key_type(), &what, algorithm)?;
    Ok(Sourced { key, what })
}

fn read_public(
    pem: &str,
    what: String,
    algorithm: Algorithm,
) -> Result<Sourced<PublicKey>, KeyError> {
    let key = PublicKey::parse(pem, &what)?;
    check_type(key.key_type(), &what, algorithm)?;
    Ok(Sourced { key, what })
}

fn check_type(found: KeyType, what: &str, algorithm: Algorithm) -> Result<(), KeyError> {
    let expected = KeyType::for_algorithm(algorithm)
        .ok_or_else(|| unsupported_signing_algorithm(algorithm))?;
    if found == expected {
        Ok(())
    } else {
        Err(KeyError::WrongType {
            what: what.to_owned(),
            found,
            expected,
            algorithm,
        })
    }
}

fn file_setting(setting: Named<'_, Path>) -> String {
    format!("{} {}", setting.name, setting.value.display())
}

/// What to do when `RSA_PRIVATE_KEY_PATH` names a file that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeyFiles {
    /// Generate the key and write it there, with a warning: a single node (embedded SQLite)
    /// has no other replica that would need the same key.
    Generate,
    /// Refuse to start, naming `keygen`: on PostgreSQL the replicas must share one key, and a
    /// missing file usually means an unmounted secret, which would give each replica its own.
    Refuse,
}

impl MissingKeyFiles {
    /// The policy for a database: generate on SQLite, refuse on PostgreSQL.
    pub fn for_database(database: &crate::Database) -> Self {
        match database {
            crate::Database::Sqlite { .. } => Self::Generate,
            crate::Database::Postgres { .. } => Self::Refuse,
        }
    }
}

/// Loads the keys the configuration names, generating and writing them where it says so.
///
/// The signing key comes from, in order: `RSA_PUBLIC_KEY_PATH`/`RSA_PRIVATE_KEY_PATH` (read;
/// when the private key file is missing, generated and written or refused as `missing_files`
/// says); `RSA_PRIVATE_KEY`/`RSA_PUBLIC_KEY` inline; a key file beside the embedded SQLite
/// database (`persist_beside`), generated on first start; else a key generated for this process
/// only, with a warning, since its tokens die with it. Each `RSA_*` setting may be given as
/// `JWT_*` instead. Generated keys are of the type `JWT_ALGORITHM` needs.
/// `PUBLISHED_PUBLIC_KEY_PATHS` adds verify-only public keys.
pub fn load(
    config: &Config,
    persist_beside: Option<&Path>,
    missing_files: MissingKeyFiles,
) -> Result<KeySet, KeyError> {
    let sources = Sources::of(config)?;
    let (private, public) = signing_key(config, &sources, persist_beside, missing_files)?;
    let published = config
        .published_public_key_paths
        .iter()
        .filter(|path| !path.as_os_str().is_empty())
        .map(|path| {
            let pem = fs::read_to_string(path).map_err(io_error(
                "reading the PUBLISHED_PUBLIC_KEY_PATHS entry",
                path,
            ))?;
            PublicKey::parse(
                &pem,
                &format!("PUBLISHED_PUBLIC_KEY_PATHS entry {}", path.display()),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeySet::new(config.jwt_algorithm, private.as_ref(), &public, &published)
}

/// The signing key pair (the private half absent when only a public key is configured).
fn signing_key(
    config: &Config,
    sources: &Sources<'_>,
    persist_beside: Option<&Path>,
    missing_files: MissingKeyFiles,
) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
    let alg = config.jwt_algorithm;
    if sources.private_path.is_some() || sources.public_path.is_some() {
        return from_files(config, sources, missing_files);
    }
    if sources.private.is_some() || sources.public.is_some() {
        let private = sources
            .private
            .map(|s| read_private(s.value, s.name.to_owned(), alg))
            .transpose()?;
        let public = sources
            .public
            .map(|s| read_public(s.value, s.name.to_owned(), alg))
            .transpose()?;
        return pair(private, public);
    }

    if let Some(path) = persist_beside {
        let what = format!("the embedded signing key file {}", path.display());
        if path.exists() {
            return pair(Some(read_private(&read_file(path)?, what, alg)?), None);
        }
        let key = PrivateKey::generate(alg, config.rsa_key_size)?;
        write_private_file(path, &key.to_pem()?)?;
        tracing::info!(path = %path.display(), kid = %key.public.kid(), "generated a signing key beside the embedded database");
        return pair(Some(Sourced { key, what }), None);
    }

    tracing::warn!(
        "no signing key configured: generated one for this process only; tokens it signs \
         become invalid on restart and other replicas reject them. Set RSA_PRIVATE_KEY_PATH \
         (or JWT_PRIVATE_KEY_PATH)."
    );
    let key = PrivateKey::generate(alg, config.rsa_key_size)?;
    pair(
        Some(Sourced {
            key,
            what: "the generated key".to_owned(),
        }),
        None,
    )
}

fn from_files(
    config: &Config,
    sources: &Sources<'_>,
    missing_files: MissingKeyFiles,
) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
    let alg = config.jwt_algorithm;
    fn existing(setting: Option<Named<'_, Path>>) -> Option<(Named<'_, Path>, String)> {
        setting
            .filter(|s| s.value.exists())
            .map(|s| (s, file_setting(s)))
    }
    let private = existing(sources.private_path)
        .map(|(s, what)| read_private(&read_file(s.value)?, what, alg))
        .transpose()?;
    let public = existing(sources.public_path)
        .map(|(s, what)| read_public(&read_file(s.value)?, what, alg))
        .transpose()?;
    match (private, public, sources.private_path, sources.public_path) {
        (Some(private), public, _, public_path) => {
            // A missing public key file is derived from the private key and written.
            if let (None, Some(path)) = (&public, public_path) {
                write_public_file(path.value, private.key.public_key())?;
            }
            pair(Some(private), public)
        }
        (None, Some(public), None, _) => pair(None, Some(public)),
        (None, Some(public), Some(private_path), _) => Err(KeyError::Invalid(format!(
            "{} does not exist but {} does: refusing to generate a private key that does not \
             match the public key",
            file_setting(private_path),
            public.what
        ))),
        (None, None, Some(path), public_path) if missing_files == MissingKeyFiles::Refuse => {
            Err(missing_key_file(alg, path, public_path))
        }
        (None, None, Some(path), public_path) => {
            let key = PrivateKey::generate(alg, config.rsa_key_size)?;
            write_private_file(path.value, &key.to_pem()?)?;
            if let Some(public_path) = public_path {
                write_public_file(public_path.value, key.public_key())?;
            }
            tracing::warn!(
                path = %path.value.display(),
                kid = %key.public.kid(),
                "{} did not exist: generated a new signing key and wrote it there; tokens \
                 signed with any other key no longer validate",
                path.name
            );
            pair(
                Some(Sourced {
                    key,
                    what: file_setting(path),
                }),
                None,
            )
        }
        (None, None, None, Some(path)) => Err(KeyError::Invalid(format!(
            "{} does not exist and RSA_PRIVATE_KEY_PATH (or JWT_PRIVATE_KEY_PATH) is not set, so \
             there is nowhere to write a generated private key",
            file_setting(path)
        ))),
        (None, None, None, None) => Err(KeyError::Invalid("no key path configured".to_owned())),
    }
}

/// The refusal of a missing private key file on PostgreSQL, with the command that makes one.
fn missing_key_file(
    algorithm: Algorithm,
    private: Named<'_, Path>,
    public: Option<Named<'_, Path>>,
) -> KeyError {
    let public_out = public
        .map(|p| format!(" --public-key-out {}", p.value.display()))
        .unwrap_or_default();
    KeyError::Invalid(format!(
        "{} does not exist. On PostgreSQL every replica must sign with the same key, so none is \
         generated (a missing file is usually an unmounted secret): create it once with \
         `jwthenticator-server keygen --algorithm {} --private-key-out {}{public_out}` and give \
         every replica that file, or configure no key and set KEY_ENCRYPTION_SECRET to share \
         generated keys through the database",
        file_setting(private),
        algorithm_name(algorithm),
        private.value.display(),
    ))
}

fn pair(
    private: Option<Sourced<PrivateKey>>,
    public: Option<Sourced<PublicKey>>,
) -> Result<(Option<PrivateKey>, PublicKey), KeyError> {
    match (private, public) {
        (Some(private), Some(public)) if private.key.public_key() != &public.key => {
            Err(KeyError::Mismatch {
                public: public.what,
                private: private.what,
            })
        }
        (Some(private), _) => {
            let public = private.key.public_key().clone();
            Ok((Some(private.key), public))
        }
        (None, Some(public)) => Ok((None, public.key)),
        (None, None) => Err(KeyError::Invalid("no key configured".to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_encoding_is_the_one_aws_lc_writes() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
        let ours = PrivateKey::ec_p256(&ec, "test").expect("key");
        assert_eq!(
            ours.public.spki,
            ec.public_key().as_der().expect("der").as_ref()
        );
        let ed = Ed25519KeyPair::generate().expect("ed");
        let ours = PrivateKey::ed25519(&ed, "test").expect("key");
        assert_eq!(
            ours.public.spki,
            ed.public_key().as_der().expect("der").as_ref()
        );
    }

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

    fn config(args: &[&str]) -> Result<Config, clap::Error> {
        use clap::Parser;
        Config::try_parse_from(std::iter::once("jwthenticator-server").chain(args.iter().copied()))
    }

    #[test]
    fn jwt_algorithm_accepts_es256_and_eddsa_and_still_refuses_the_rest() {
        for (name, algorithm) in [
            ("RS256", Algorithm::RS256),
            ("PS512", Algorithm::PS512),
            ("ES256", Algorithm::ES256),
            ("EdDSA", Algorithm::EdDSA),
        ] {
            let parsed = config(&["--jwt-algorithm", name]).expect(name);
            assert_eq!(parsed.jwt_algorithm, algorithm);
        }
        for name in ["ES384", "ES512", "HS256", "none", "eddsa", "Ed25519"] {
            assert!(config(&["--jwt-algorithm", name]).is_err(), "{name}");
        }
    }

    #[test]
    fn empty_key_settings_count_as_unset() {
        let parsed = config(&[
            "--rsa-private-key-path",
            "",
            "--jwt-public-key",
            "  ",
            "--published-public-key-paths",
            ",",
        ])
        .expect("empty values parse");
        let sources = Sources::of(&parsed).expect("no conflict");
        assert!(sources.private_path.is_none() && sources.public.is_none());
        assert!(
            parsed
                .published_public_key_paths
                .iter()
                .all(|p| p.as_os_str().is_empty())
        );
        assert_eq!(
            issuer(&config(&["--jwt-issuer", ""]).expect("parses")),
            None
        );
    }

    #[test]
    fn the_neutral_private_key_is_redacted_in_debug_output() {
        let parsed =
            config(&["--jwt-private-key", "-----BEGIN PRIVATE KEY-----SECRETPEM"]).expect("parses");
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("SECRETPEM"), "{debug}");
    }

    #[test]
    fn an_ec_public_key_off_the_curve_is_refused() {
        let key = PrivateKey::generate(Algorithm::ES256, 0).expect("generate");
        let PublicMaterial::EcP256(point) = &key.public.material else {
            panic!("an EC key");
        };
        let mut point = point.clone();
        point[64] ^= 1;
        let spki = encode_spki(EC_PUBLIC_KEY, Some(&P256), &point).expect("der");
        let pem = Document::try_from(spki.as_slice())
            .and_then(|doc| doc.to_pem("PUBLIC KEY", LineEnding::LF))
            .expect("pem");
        let err = PublicKey::parse(&pem, "JWT_PUBLIC_KEY").expect_err("refused");
        assert!(
            err.to_string().contains("not a point on the P-256 curve"),
            "{err}"
        );
        let mut compressed = vec![2];
        compressed.extend_from_slice(&point[1..33]);
        let err = PublicKey::ec_p256(&compressed, "JWT_PUBLIC_KEY").expect_err("refused");
        assert!(err.to_string().contains("compressed"), "{err}");
    }

    #[test]
    fn only_supported_algorithms_have_a_key_type() {
        assert_eq!(KeyType::for_algorithm(Algorithm::PS384), Some(KeyType::Rsa));
        assert_eq!(
            KeyType::for_algorithm(Algorithm::ES256),
            Some(KeyType::EcP256)
        );
        assert_eq!(
            KeyType::for_algorithm(Algorithm::EdDSA),
            Some(KeyType::Ed25519)
        );
        assert_eq!(KeyType::for_algorithm(Algorithm::ES384), None);
        assert_eq!(KeyType::for_algorithm(Algorithm::HS256), None);
    }

    #[test]
    fn published_rsa_keys_keep_the_configured_rsa_algorithm() {
        assert_eq!(
            KeyType::Rsa.published_algorithm(Algorithm::PS256),
            Algorithm::PS256
        );
        assert_eq!(
            KeyType::Rsa.published_algorithm(Algorithm::ES256),
            Algorithm::RS256
        );
        assert_eq!(
            KeyType::Ed25519.published_algorithm(Algorithm::RS256),
            Algorithm::EdDSA
        );
    }
}
