//! Sealing the shared signing keys: the AES-256-GCM key derived from `KEY_ENCRYPTION_SECRET`
//! by Argon2id (its parameters and salt stored as a PHC string), its check value, and the first
//! scheme's key, kept to open and re-seal rows of that scheme.

use anyhow::{Context, anyhow, bail};
use argon2::password_hash::{ParamsString, PasswordHash, SaltString};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Prk, Salt};
use rsa::pkcs8::der::zeroize::Zeroizing;

use super::material::PrivateKey;
use crate::config::Secret;
use crate::store::SigningKeyRow;

/// `server_settings` row of the Argon2id parameters and salt (a PHC string without a hash).
pub(super) const KDF_SETTING: &str = "key_encryption_kdf";

/// `server_settings` row of the check value of the derived sealing key.
pub(super) const CHECK_SETTING: &str = "key_encryption_check";

/// Argon2id cost for new deployments (existing ones keep the parameters they stored).
const ARGON2_MEMORY_KIB: u32 = 64 * 1024;
const ARGON2_PASSES: u32 = 3;
const ARGON2_LANES: u32 = 1;

/// The first sealing scheme: HKDF-SHA-256 of the secret, the kid as associated data.
pub(super) const SEALING_V1: i16 = 1;
/// The current one: Argon2id of the secret, every column as associated data.
pub(super) const SEALING_V2: i16 = 2;

/// The associated data of a row of the current scheme: every column but the id and the
/// sealed key itself, each length-prefixed or fixed-size, so no two rows share it.
fn associated_data(row: &SigningKeyRow) -> Vec<u8> {
    let mut aad = b"jwthenticator signing key v2".to_vec();
    for text in [&row.kid, &row.algorithm] {
        aad.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
        aad.extend_from_slice(text.as_bytes());
    }
    for at in [
        row.created_at,
        row.activates_at,
        row.retires_at,
        row.expires_at,
    ] {
        aad.extend_from_slice(&at.and_utc().timestamp_micros().to_be_bytes());
    }
    aad
}

/// A key length for HKDF output.
struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// What the secret gives: the key of the current scheme, and its check value.
pub(super) struct Derived {
    pub(super) sealing_key: LessSafeKey,
    pub(super) check: String,
}

/// Stretches the secret by Argon2id with the stored parameters and salt (a PHC string), then
/// expands the result into the sealing key and the check value.
fn derive(secret: &Secret, kdf: &str) -> anyhow::Result<Derived> {
    let phc = PasswordHash::new(kdf).map_err(|e| anyhow!("the stored {KDF_SETTING} {e}"))?;
    if phc.algorithm != argon2::ARGON2ID_IDENT {
        bail!("the stored {KDF_SETTING} is not Argon2id");
    }
    let params = argon2::Params::try_from(&phc)
        .map_err(|e| anyhow!("the stored {KDF_SETTING} parameters: {e}"))?;
    let version = argon2::Version::try_from(phc.version.unwrap_or(0x13))
        .map_err(|e| anyhow!("the stored {KDF_SETTING} version: {e}"))?;
    let mut salt = [0u8; 64];
    let salt = phc
        .salt
        .ok_or_else(|| anyhow!("the stored {KDF_SETTING} has no salt"))?
        .decode_b64(&mut salt)
        .map_err(|e| anyhow!("the stored {KDF_SETTING} salt: {e}"))?;
    let mut stretched = Zeroizing::new([0u8; 32]);
    argon2::Argon2::new(argon2::Algorithm::Argon2id, version, params)
        .hash_password_into(secret.expose().as_bytes(), salt, stretched.as_mut())
        .map_err(|e| anyhow!("Argon2id failed: {e}"))?;
    let prk = Prk::new_less_safe(HKDF_SHA256, stretched.as_ref());
    let expand = |label: &[u8], len: usize| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; len]);
        prk.expand(&[label], Len(len))
            .and_then(|okm| okm.fill(&mut out))
            .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
        Ok(out)
    };
    let key = expand(b"jwthenticator signing keys aes-256-gcm v2", 32)?;
    let sealing_key = UnboundKey::new(&AES_256_GCM, &key)
        .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
    Ok(Derived {
        sealing_key: LessSafeKey::new(sealing_key),
        check: hex::encode(expand(b"jwthenticator signing keys check v2", 16)?.as_slice()),
    })
}

/// [`derive`] off the async threads (Argon2id takes a fraction of a second), logged once.
pub(super) async fn derive_once(secret: &Secret, kdf: &str) -> anyhow::Result<Derived> {
    let started = std::time::Instant::now();
    let (secret, kdf) = (secret.clone(), kdf.to_owned());
    let derived = tokio::task::spawn_blocking(move || derive(&secret, &kdf))
        .await
        .context("deriving the key sealing key")??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis(),
        "derived the key sealing key from KEY_ENCRYPTION_SECRET (Argon2id)"
    );
    Ok(derived)
}

/// Argon2id parameters and a new random salt, as the PHC string stored in `server_settings`.
pub(super) fn new_kdf_setting() -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow!("random generator failed"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow!("encoding the salt: {e}"))?;
    let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .map_err(|e| anyhow!("Argon2id parameters: {e}"))?;
    let phc = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(argon2::Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow!("{e}"))?,
        salt: Some(salt.as_salt()),
        hash: None,
    };
    Ok(phc.to_string())
}

/// The key of the first scheme.
pub(super) fn legacy_key(secret: &Secret) -> anyhow::Result<LessSafeKey> {
    let prk =
        Salt::new(HKDF_SHA256, b"jwthenticator signing keys").extract(secret.expose().as_bytes());
    let okm = prk
        .expand(&[b"aes-256-gcm v1"], &AES_256_GCM)
        .map_err(|_| anyhow!("deriving the key sealing key failed"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Seals `plaintext` (a PEM private key) for `row` with `key`: a random nonce, then the
/// ciphertext and tag, bound to every other column of the row.
pub(super) fn seal(
    key: &LessSafeKey,
    row: &SigningKeyRow,
    plaintext: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow!("random generator failed"))?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(associated_data(row)),
        &mut sealed,
    )
    .map_err(|_| anyhow!("sealing the signing key failed"))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The row's private key, opened with the key and associated data of its scheme: `legacy` for
/// the first, `current` (when known) for the current one.
pub(super) fn open_row(
    row: &SigningKeyRow,
    legacy: &LessSafeKey,
    current: Option<&LessSafeKey>,
) -> anyhow::Result<PrivateKey> {
    match (row.sealing, current) {
        (SEALING_V1, _) => open_sealed(legacy, row.kid.as_bytes().to_vec(), &row.sealed),
        (SEALING_V2, Some(current)) => open_sealed(current, associated_data(row), &row.sealed),
        (SEALING_V2, None) => bail!("the parameters of its sealing key are not stored"),
        (other, _) => bail!("sealing scheme {other} is unknown"),
    }
}

fn open_sealed(key: &LessSafeKey, aad: Vec<u8>, sealed: &[u8]) -> anyhow::Result<PrivateKey> {
    let (nonce, ciphertext) = sealed
        .split_at_checked(NONCE_LEN)
        .ok_or_else(|| anyhow!("the sealed key is truncated"))?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("bad nonce"))?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plaintext = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| anyhow!("it was sealed with another secret, or its row was changed"))?;
    let pem = std::str::from_utf8(plaintext).context("the stored signing key is not PEM")?;
    Ok(PrivateKey::from_pem(pem)?)
}
