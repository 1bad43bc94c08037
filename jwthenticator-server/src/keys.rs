//! Signing and verification keys: loading, generating, the JWKS and token signing.
//!
//! Keys are read and written with the `rsa` crate and generated with aws-lc-rs; every signature
//! is made by `jsonwebtoken` on the aws-lc-rs backend (never by the `rsa` crate, see
//! RUSTSEC-2023-0071).

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use jwthenticator_core::{Claims, Jwk, Jwks, Verifier, VerifyingKey};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::config::Config;

/// Why the configured keys cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A PEM value is not an RSA key of the expected kind.
    #[error("{0} is not a PEM RSA key (expected PKCS#1 or PKCS#8 / SPKI)")]
    Parse(&'static str),
    /// The public key given does not belong to the private key given.
    #[error("RSA_PUBLIC_KEY does not match RSA_PRIVATE_KEY")]
    Mismatch,
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

/// Signs JWThenticator JWTs with one private key.
pub struct Signer {
    kid: String,
    algorithm: Algorithm,
    key: EncodingKey,
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
    fn new(kid: String, algorithm: Algorithm, key: EncodingKey) -> Self {
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

    /// A signed token carrying these claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let payload = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = jsonwebtoken::crypto::sign(token.as_bytes(), &self.key, self.algorithm)?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }
}

/// The server's keys: the signer (absent when only a public key is configured) and the public
/// keys that verify tokens and make up the JWKS.
#[derive(Debug)]
pub struct KeySet {
    signer: Option<Signer>,
    jwks: Jwks,
    verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// The signer, or `None` when the server only validates.
    pub fn signer(&self) -> Option<&Signer> {
        self.signer.as_ref()
    }

    /// The public keys as published at `/jwks`.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// A verifier over these keys with the configured algorithm, audience, leeway and lifetime.
    pub fn verifier(&self, config: &Config) -> Verifier {
        Verifier::builder()
            .with_algorithms([config.jwt_algorithm])
            .with_audiences(config.jwt_audience.iter().cloned())
            .with_leeway(config.jwt_leeway)
            .with_max_lifetime(config.jwt_lease_time)
            .build_with_keys(self.verifying.clone())
    }

    fn from_rsa(
        algorithm: Algorithm,
        public: &RsaPublicKey,
        private: Option<&RsaPrivateKey>,
    ) -> Result<Self, KeyError> {
        let spki = public
            .to_public_key_der()
            .map_err(|e| KeyError::Invalid(format!("cannot encode the public key: {e}")))?;
        // The original's kid: base64url(SHA-1(SPKI DER)), so tokens it issued with the same key
        // keep their kid.
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
            spki.as_bytes(),
        );
        let kid = URL_SAFE_NO_PAD.encode(digest.as_ref());
        let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
        let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
        let jwk = Jwk::rsa(kid.clone(), &algorithm_name(algorithm), n, e);
        let verifying = VerifyingKey::from_jwk(&jwk, Some(algorithm))
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let signer = private
            .map(|key| {
                let der = key.to_pkcs1_der().map_err(|e| {
                    KeyError::Invalid(format!("cannot encode the private key: {e}"))
                })?;
                Ok::<_, KeyError>(Signer::new(
                    kid.clone(),
                    algorithm,
                    EncodingKey::from_rsa_der(der.as_bytes()),
                ))
            })
            .transpose()?;
        Ok(Self {
            signer,
            jwks: Jwks { keys: vec![jwk] },
            verifying: vec![verifying],
        })
    }
}

/// The JWA name of an algorithm (`RS256`, ...), as jsonwebtoken serialises it.
fn algorithm_name(algorithm: Algorithm) -> String {
    serde_json::to_value(algorithm)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_private(pem: &str, what: &'static str) -> Result<RsaPrivateKey, KeyError> {
    let pem = pem.trim();
    RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|_| KeyError::Parse(what))
}

fn parse_public(pem: &str, what: &'static str) -> Result<RsaPublicKey, KeyError> {
    let pem = pem.trim();
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| KeyError::Parse(what))
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

/// PKCS#8 PEM of a private key.
pub fn private_key_pem(key: &RsaPrivateKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.as_str().to_owned())
        .map_err(|e| KeyError::Invalid(format!("cannot encode the private key: {e}")))
}

/// SPKI PEM of a public key.
pub fn public_key_pem(key: &RsaPublicKey) -> Result<String, KeyError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Invalid(format!("cannot encode the public key: {e}")))
}

/// Writes a file readable by its owner only (the private key must not be world-readable).
fn write_private_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("creating the directory of", path))?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io_error("creating", path))?;
    file.write_all(contents.as_bytes())
        .map_err(io_error("writing", path))
}

fn read_file(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(io_error("reading", path))
}

/// Loads the keys the configuration names, generating and writing them where it says so.
///
/// In order: `RSA_PUBLIC_KEY_PATH`/`RSA_PRIVATE_KEY_PATH` (read, or generated and written when
/// missing); `RSA_PRIVATE_KEY`/`RSA_PUBLIC_KEY` inline; a key file beside the embedded SQLite
/// database (`persist_beside`), generated on first start; else a key generated for this process
/// only, with a warning, since its tokens die with it.
pub fn load(config: &Config, persist_beside: Option<&Path>) -> Result<KeySet, KeyError> {
    let alg = config.jwt_algorithm;
    let public_path = config.rsa_public_key_path.as_deref();
    let private_path = config.rsa_private_key_path.as_deref();
    if public_path.is_some() || private_path.is_some() {
        return load_from_files(config, public_path, private_path);
    }

    let inline_private = config
        .rsa_private_key
        .as_ref()
        .map(|s| s.expose())
        .filter(|s| !s.trim().is_empty());
    let inline_public = config
        .rsa_public_key
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    if inline_private.is_some() || inline_public.is_some() {
        let private = inline_private
            .map(|pem| parse_private(pem, "RSA_PRIVATE_KEY"))
            .transpose()?;
        let public = inline_public
            .map(|pem| parse_public(pem, "RSA_PUBLIC_KEY"))
            .transpose()?;
        return pair(alg, public, private.as_ref());
    }

    if let Some(path) = persist_beside {
        if path.exists() {
            let private = parse_private(&read_file(path)?, "the embedded signing key file")?;
            return pair(alg, None, Some(&private));
        }
        let private = generate_rsa(config.rsa_key_size)?;
        write_private_file(path, &private_key_pem(&private)?)?;
        tracing::info!(path = %path.display(), "generated a signing key beside the embedded database");
        return pair(alg, None, Some(&private));
    }

    tracing::warn!(
        "no signing key configured: generated one for this process only; tokens it signs \
         become invalid on restart and other replicas reject them. Set RSA_PRIVATE_KEY_PATH."
    );
    pair(alg, None, Some(&generate_rsa(config.rsa_key_size)?))
}

fn load_from_files(
    config: &Config,
    public_path: Option<&Path>,
    private_path: Option<&Path>,
) -> Result<KeySet, KeyError> {
    let alg = config.jwt_algorithm;
    let private = match private_path {
        Some(path) if path.exists() => {
            Some(parse_private(&read_file(path)?, "RSA_PRIVATE_KEY_PATH")?)
        }
        _ => None,
    };
    let public = match public_path {
        Some(path) if path.exists() => {
            Some(parse_public(&read_file(path)?, "RSA_PUBLIC_KEY_PATH")?)
        }
        _ => None,
    };
    match (private, public, private_path, public_path) {
        (Some(private), public, _, public_path) => {
            // A missing public key file is derived from the private key and written.
            if let (None, Some(path)) = (&public, public_path) {
                write_public_file(path, &private.to_public_key())?;
            }
            pair(alg, public, Some(&private))
        }
        (None, Some(public), None, _) => pair(alg, Some(public), None),
        (None, Some(_), Some(path), _) => Err(KeyError::Invalid(format!(
            "RSA_PRIVATE_KEY_PATH {} does not exist but RSA_PUBLIC_KEY_PATH does: refusing to \
             generate a private key that does not match the public key",
            path.display()
        ))),
        (None, None, Some(path), public_path) => {
            let private = generate_rsa(config.rsa_key_size)?;
            write_private_file(path, &private_key_pem(&private)?)?;
            if let Some(public_path) = public_path {
                write_public_file(public_path, &private.to_public_key())?;
            }
            tracing::info!(path = %path.display(), "generated and wrote a new signing key");
            pair(alg, None, Some(&private))
        }
        (None, None, None, Some(path)) => Err(KeyError::Invalid(format!(
            "RSA_PUBLIC_KEY_PATH {} does not exist and RSA_PRIVATE_KEY_PATH is not set, so \
             there is nowhere to write a generated private key",
            path.display()
        ))),
        (None, None, None, None) => Err(KeyError::Invalid("no key path configured".to_owned())),
    }
}

fn write_public_file(path: &Path, key: &RsaPublicKey) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_error("creating the directory of", path))?;
    }
    fs::write(path, public_key_pem(key)?).map_err(io_error("writing", path))
}

fn pair(
    alg: Algorithm,
    public: Option<RsaPublicKey>,
    private: Option<&RsaPrivateKey>,
) -> Result<KeySet, KeyError> {
    let derived = private.map(RsaPrivateKey::to_public_key);
    let public = match (public, derived) {
        (Some(given), Some(derived)) if given != derived => return Err(KeyError::Mismatch),
        (Some(key), _) | (None, Some(key)) => key,
        (None, None) => return Err(KeyError::Invalid("no key configured".to_owned())),
    };
    KeySet::from_rsa(alg, &public, private)
}
