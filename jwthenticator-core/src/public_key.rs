//! Public keys as PEM gives them and as a JWKS publishes them: RSA, EC P-256 and Ed25519, the
//! key types of the algorithms JWThenticator signs with ([`SIGNING_ALGORITHMS`]).
//!
//! The server publishes its keys with [`PublicKey::to_jwk`]; the tower layer verifies against a
//! PEM key with [`PublicKey::from_pem`]; both give a key the same `kid`
//! ([`kid_of_spki`](crate::kid_of_spki)), so a token signed by one verifies in the other.

use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::der::Encode;
use rsa::pkcs8::der::asn1::{AnyRef, BitStringRef};
use rsa::pkcs8::{
    AlgorithmIdentifierRef, DecodePublicKey, Document, EncodePublicKey, LineEnding,
    ObjectIdentifier, SubjectPublicKeyInfoRef,
};
use rsa::traits::PublicKeyParts;

use crate::Jwk;

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// `prime256v1`, the curve of ES256 (RFC 5480).
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// `id-Ed25519` (RFC 8410).
const ED25519_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Every algorithm JWThenticator signs with: the one list the server's settings, its `keygen`
/// and the libraries accept.
pub const SIGNING_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// The JWA name of an algorithm (`RS256`, `EdDSA`, ...), as JWS headers and JWKs write it
/// (`unknown` for one a later `jsonwebtoken` adds).
pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// A signing algorithm by its JWA name, case-sensitive: one of [`SIGNING_ALGORITHMS`]. The
/// error names them all.
pub fn parse_signing_algorithm(name: &str) -> Result<Algorithm, String> {
    SIGNING_ALGORITHMS
        .into_iter()
        .find(|algorithm| algorithm_name(*algorithm) == name)
        .ok_or_else(|| {
            let names: Vec<&str> = SIGNING_ALGORITHMS.into_iter().map(algorithm_name).collect();
            format!(
                "`{name}` is not a supported signing algorithm ({})",
                names.join(", ")
            )
        })
}

/// The type of a key, which fixes the algorithms it signs and verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// RSA: RS256, RS384, RS512, PS256, PS384, PS512.
    Rsa,
    /// ECDSA on the P-256 curve: ES256.
    EcP256,
    /// Ed25519: EdDSA.
    Ed25519,
}

impl KeyType {
    /// The type of key `algorithm` signs with, or `None` for an algorithm outside
    /// [`SIGNING_ALGORITHMS`].
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

    /// The type of the key an X.509 algorithm identifier names (of a SubjectPublicKeyInfo or a
    /// PKCS#8 private key), refusing other algorithms and EC curves other than P-256.
    pub fn of_algorithm_identifier(
        algorithm: &AlgorithmIdentifierRef<'_>,
    ) -> Result<Self, PublicKeyError> {
        match algorithm.oid {
            RSA_ENCRYPTION => Ok(Self::Rsa),
            EC_PUBLIC_KEY => match algorithm.parameters_oid() {
                Ok(P256) => Ok(Self::EcP256),
                Ok(other) => Err(PublicKeyError::new(format!(
                    "is an EC key on curve {other}; only P-256 (prime256v1, for ES256) is supported"
                ))),
                Err(_) => Err(PublicKeyError::new(
                    "is an EC key without a named curve; only P-256 (prime256v1) is supported",
                )),
            },
            ED25519_OID => Ok(Self::Ed25519),
            other => Err(PublicKeyError::new(format!(
                "is a key of algorithm {other}; supported are RSA (rsaEncryption), EC P-256 and \
                 Ed25519"
            ))),
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

/// Why a value is not a public key this crate can use. [`reason`](Self::reason) is a predicate
/// ("is not a PEM document"), to follow the name of the setting that held the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the public key {reason}")]
pub struct PublicKeyError {
    reason: String,
}

impl PublicKeyError {
    fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// What is wrong with the value, as a predicate ("is not a PEM document").
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A public key: RSA, EC P-256 or Ed25519. Two keys are equal when their SubjectPublicKeyInfo
/// is.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    material: Material,
    /// The canonical SubjectPublicKeyInfo DER, from which the `kid` is derived.
    spki: Vec<u8>,
}

#[derive(Clone, PartialEq, Eq)]
enum Material {
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
    /// An RSA public key.
    pub fn from_rsa(key: RsaPublicKey) -> Result<Self, PublicKeyError> {
        let spki = key
            .to_public_key_der()
            .map_err(|e| PublicKeyError::new(format!("cannot be encoded: {e}")))?;
        Ok(Self {
            material: Material::Rsa(key),
            spki: spki.into_vec(),
        })
    }

    /// An EC P-256 key from its SEC1 point, which must be uncompressed and on the curve.
    pub fn from_ec_p256_point(point: &[u8]) -> Result<Self, PublicKeyError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(PublicKeyError::new(
                "is not an uncompressed P-256 point (compressed EC public keys are not \
                 supported: export it with `openssl pkey -pubin -pubout`)",
            ));
        }
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .map_err(|_| PublicKeyError::new("is not a point on the P-256 curve"))?;
        Ok(Self {
            spki: encode_spki(EC_PUBLIC_KEY, Some(&P256), point)?,
            material: Material::EcP256(point.to_vec()),
        })
    }

    /// An Ed25519 key from its 32 bytes.
    pub fn from_ed25519(key: &[u8]) -> Result<Self, PublicKeyError> {
        ParsedPublicKey::new(&ED25519, key)
            .ok()
            .filter(|_| key.len() == 32)
            .ok_or_else(|| PublicKeyError::new("is not a 32-byte Ed25519 public key"))?;
        Ok(Self {
            spki: encode_spki(ED25519_OID, None, key)?,
            material: Material::Ed25519(key.to_vec()),
        })
    }

    /// Reads a PEM public key: SPKI (`PUBLIC KEY`) of an RSA, EC P-256 or Ed25519 key, or
    /// PKCS#1 (`RSA PUBLIC KEY`). A certificate or a private key is refused with the `openssl`
    /// command that extracts the public key.
    pub fn from_pem(pem: &str) -> Result<Self, PublicKeyError> {
        let (label, document) = Document::from_pem(pem.trim())
            .map_err(|_| PublicKeyError::new("is not a PEM document"))?;
        match label {
            "PUBLIC KEY" => {}
            "RSA PUBLIC KEY" => {
                let key = RsaPublicKey::from_pkcs1_der(document.as_bytes())
                    .map_err(|e| PublicKeyError::new(format!("is not a PKCS#1 RSA key: {e}")))?;
                return Self::from_rsa(key);
            }
            "CERTIFICATE" => {
                return Err(PublicKeyError::new(
                    "is a certificate: extract its public key with `openssl x509 -pubkey -noout`",
                ));
            }
            label if label.contains("PRIVATE KEY") => {
                return Err(PublicKeyError::new(
                    "holds a private key where a public key belongs: export the public key \
                     with `openssl pkey -pubout`",
                ));
            }
            other => {
                return Err(PublicKeyError::new(format!(
                    "is a PEM `{other}`, not a `PUBLIC KEY`"
                )));
            }
        }
        let spki = SubjectPublicKeyInfoRef::try_from(document.as_bytes())
            .map_err(|e| PublicKeyError::new(format!("is not a SubjectPublicKeyInfo: {e}")))?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| PublicKeyError::new("has a public key that is not whole bytes"))?;
        match KeyType::of_algorithm_identifier(&spki.algorithm)? {
            KeyType::Rsa => {
                let key = RsaPublicKey::from_public_key_der(document.as_bytes())
                    .map_err(|e| PublicKeyError::new(format!("is not an RSA public key: {e}")))?;
                Self::from_rsa(key)
            }
            KeyType::EcP256 => Self::from_ec_p256_point(bits),
            KeyType::Ed25519 => Self::from_ed25519(bits),
        }
    }

    /// SPKI PEM (`PUBLIC KEY`).
    pub fn to_pem(&self) -> Result<String, PublicKeyError> {
        Document::try_from(self.spki.as_slice())
            .and_then(|doc| doc.to_pem("PUBLIC KEY", LineEnding::LF))
            .map_err(|e| PublicKeyError::new(format!("cannot be encoded: {e}")))
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// The type of the key.
    pub fn key_type(&self) -> KeyType {
        match self.material {
            Material::Rsa(_) => KeyType::Rsa,
            Material::EcP256(_) => KeyType::EcP256,
            Material::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The key's `kid`: base64url(SHA-1(SPKI DER)), as the Python original computes it.
    pub fn kid(&self) -> String {
        crate::kid_of_spki(&self.spki)
    }

    /// The JWK publishing this key for `algorithm`, with its [`kid`](Self::kid) and `use: sig`.
    pub fn to_jwk(&self, algorithm: Algorithm) -> Jwk {
        let alg = algorithm_name(algorithm);
        let (kty, crv, x, y) = match &self.material {
            Material::Rsa(key) => {
                let n = URL_SAFE_NO_PAD.encode(key.n().to_bytes_be());
                let e = URL_SAFE_NO_PAD.encode(key.e().to_bytes_be());
                return Jwk::rsa(self.kid(), alg, n, e);
            }
            Material::EcP256(point) => (
                "EC",
                "P-256",
                URL_SAFE_NO_PAD.encode(&point[1..33]),
                Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
            ),
            Material::Ed25519(key) => ("OKP", "Ed25519", URL_SAFE_NO_PAD.encode(key), None),
        };
        Jwk {
            kty: kty.to_owned(),
            kid: Some(self.kid()),
            alg: Some(alg.to_owned()),
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
) -> Result<Vec<u8>, PublicKeyError> {
    let failed = |e| PublicKeyError::new(format!("cannot be encoded: {e}"));
    SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: algorithm,
            parameters: parameters.map(AnyRef::from),
        },
        subject_public_key: BitStringRef::from_bytes(key).map_err(failed)?,
    }
    .to_der()
    .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn spki_encoding_is_the_one_aws_lc_writes() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
        let ours = PublicKey::from_ec_p256_point(ec.public_key().as_ref()).expect("key");
        assert_eq!(
            ours.spki_der(),
            ec.public_key().as_der().expect("der").as_ref()
        );
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().expect("ed");
        let ours = PublicKey::from_ed25519(ed.public_key().as_ref()).expect("key");
        assert_eq!(
            ours.spki_der(),
            ed.public_key().as_der().expect("der").as_ref()
        );
    }

    #[test]
    fn an_ec_public_key_off_the_curve_or_compressed_is_refused() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
        let mut point = ec.public_key().as_ref().to_vec();
        point[64] ^= 1;
        let spki = encode_spki(EC_PUBLIC_KEY, Some(&P256), &point).expect("der");
        let pem = Document::try_from(spki.as_slice())
            .and_then(|doc| doc.to_pem("PUBLIC KEY", LineEnding::LF))
            .expect("pem");
        let err = PublicKey::from_pem(&pem).expect_err("refused");
        assert!(
            err.reason().contains("not a point on the P-256 curve"),
            "{err}"
        );
        let mut compressed = vec![2];
        compressed.extend_from_slice(&point[1..33]);
        let err = PublicKey::from_ec_p256_point(&compressed).expect_err("refused");
        assert!(err.reason().contains("compressed"), "{err}");
    }

    #[test]
    fn every_type_round_trips_through_pem_and_publishes_a_jwk_the_verifier_takes() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
        let ed = aws_lc_rs::signature::Ed25519KeyPair::generate().expect("ed");
        let pair =
            aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair).expect("der");
        let rsa =
            <rsa::RsaPrivateKey as rsa::pkcs8::DecodePrivateKey>::from_pkcs8_der(der.as_ref())
                .expect("rsa");
        for (key, algorithm) in [
            (
                PublicKey::from_ec_p256_point(ec.public_key().as_ref()).expect("ec"),
                Algorithm::ES256,
            ),
            (
                PublicKey::from_ed25519(ed.public_key().as_ref()).expect("ed"),
                Algorithm::EdDSA,
            ),
            (
                PublicKey::from_rsa(rsa.to_public_key()).expect("rsa"),
                Algorithm::PS256,
            ),
        ] {
            let again = PublicKey::from_pem(&key.to_pem().expect("pem")).expect("parses");
            assert_eq!(again, key);
            let jwk = key.to_jwk(algorithm);
            assert_eq!(jwk.kid.as_deref(), Some(key.kid().as_str()));
            assert_eq!(jwk.alg.as_deref(), Some(algorithm_name(algorithm)));
            crate::VerifyingKey::from_jwk(&jwk, Some(algorithm)).expect("the verifier takes it");
        }
    }

    #[test]
    fn only_the_signing_algorithms_parse_and_have_a_key_type() {
        for algorithm in SIGNING_ALGORITHMS {
            assert_eq!(
                parse_signing_algorithm(algorithm_name(algorithm)),
                Ok(algorithm)
            );
            assert!(KeyType::for_algorithm(algorithm).is_some());
        }
        for name in [
            "ES384", "ES512", "HS256", "none", "rs256", "eddsa", "Ed25519",
        ] {
            let err = parse_signing_algorithm(name).expect_err(name);
            assert!(err.contains("RS256") && err.contains("EdDSA"), "{err}");
        }
        assert_eq!(KeyType::for_algorithm(Algorithm::ES384), None);
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
