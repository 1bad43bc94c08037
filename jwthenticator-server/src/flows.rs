//! The decisions behind `/authenticate` and `/refresh`: which key or refresh token is good, for
//! which identifier, and what rotation answers.

use chrono::{DateTime, Duration, Utc};
use jwthenticator_core::TokenResponse;
use jwthenticator_core::saturating_seconds;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{KeyRecord, NewRefreshToken, RefreshTokenRecord, hash_secret};

/// Why a key or refresh token was refused: the error code and message the client gets, and a
/// short reason for logs and metrics. Every refusal counts towards the failure limits.
///
/// Clients get one answer per endpoint whatever the reason: telling "expired" from "unknown"
/// would tell a guesser which keys exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) error: &'static str,
    /// A short stable name for logs and metrics.
    pub(crate) reason: &'static str,
    pub(crate) message: &'static str,
}

const fn key_refusal(reason: &'static str) -> Refusal {
    Refusal {
        error: "invalid_key",
        reason,
        message: "the key is not valid for this identifier",
    }
}

const fn refresh_refusal(reason: &'static str) -> Refusal {
    Refusal {
        error: "invalid_refresh_token",
        reason,
        message: "the refresh token is not valid for this identifier",
    }
}

const UNKNOWN_KEY: Refusal = key_refusal("unknown_key");
const EXPIRED_KEY: Refusal = key_refusal("expired_key");
const REVOKED_KEY: Refusal = key_refusal("revoked_key");
const KEY_IDENTIFIER_MISMATCH: Refusal = key_refusal("identifier_mismatch");
const UNKNOWN_REFRESH_TOKEN: Refusal = refresh_refusal("unknown_refresh_token");
const EXPIRED_REFRESH_TOKEN: Refusal = refresh_refusal("expired_refresh_token");
const REVOKED_REFRESH_TOKEN: Refusal = refresh_refusal("revoked_refresh_token");
const REFRESH_KEY_EXPIRED: Refusal = refresh_refusal("expired_key");
const REUSED_REFRESH_TOKEN: Refusal = refresh_refusal("reused_refresh_token");
const TOKEN_IDENTIFIER_MISMATCH: Refusal = refresh_refusal("identifier_mismatch");

/// The answer of a token endpoint: tokens, or a refusal.
pub(crate) type Outcome = Result<TokenResponse, Refusal>;

/// A refresh token: 256 random bits, base64url.
fn new_refresh_token() -> Result<String, ApiError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiError::internal("random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

impl AppState {
    /// `/authenticate`: a registered, live, unrevoked key gets a JWT and a new refresh token.
    pub(crate) async fn authenticate(
        &self,
        key: &str,
        identifier: Uuid,
    ) -> Result<Outcome, ApiError> {
        let Some(record) = self.find_key(key).await? else {
            return Ok(Err(UNKNOWN_KEY));
        };
        let now = Utc::now();
        if record.revoked_at.is_some() {
            return Ok(Err(REVOKED_KEY));
        }
        if record.expires_at <= now {
            return Ok(Err(EXPIRED_KEY));
        }
        if self.security.strict_identifier && record.identifier != identifier {
            return Ok(Err(KEY_IDENTIFIER_MISMATCH));
        }
        let jwt = self.issue_jwt(identifier)?;
        let refresh_token = new_refresh_token()?;
        self.store
            .insert_refresh_token(NewRefreshToken {
                token_hash: &hash_secret(&refresh_token),
                key_id: record.id,
                expires_at: now
                    + Duration::seconds(saturating_seconds(self.issue.refresh_token_expiry)),
                family_id: Uuid::new_v4(),
            })
            .await?;
        Ok(Ok(TokenResponse {
            jwt,
            refresh_token: Some(refresh_token),
        }))
    }

    /// `/refresh`: a live refresh token gets a new JWT; with rotation on, also a successor
    /// token, and a retired token presented again revokes its family (after the grace window).
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        identifier: Uuid,
    ) -> Result<Outcome, ApiError> {
        let hash = hash_secret(refresh_token);
        let Some(token) = self.store.find_refresh_token(&hash).await? else {
            return Ok(Err(UNKNOWN_REFRESH_TOKEN));
        };
        let now = Utc::now();
        if let Some(refusal) = self.refusal(&token, identifier, now) {
            return Ok(Err(refusal));
        }
        if let Some(retired_at) = token.retired_at {
            return self
                .answer_retired(refresh_token, &token, retired_at, identifier, now)
                .await;
        }
        if !self.security.rotate_refresh_tokens {
            return Ok(Ok(TokenResponse {
                jwt: self.issue_jwt(identifier)?,
                refresh_token: None,
            }));
        }
        let successor = new_refresh_token()?;
        let rotated = self
            .store
            .rotate_refresh_token(
                token.id,
                &seal_successor(refresh_token, token.id, &successor)?,
                NewRefreshToken {
                    token_hash: &hash_secret(&successor),
                    key_id: token.key_id,
                    // The family's lifetime is fixed when its first token is issued: rotating
                    // does not extend it, so a stolen family dies with the original.
                    expires_at: token.expires_at,
                    family_id: token.family_id.unwrap_or_else(Uuid::new_v4),
                },
                now,
            )
            .await?;
        if rotated {
            return Ok(Ok(TokenResponse {
                jwt: self.issue_jwt(identifier)?,
                refresh_token: Some(successor),
            }));
        }
        // A concurrent refresh of the same token rotated it first: answer as to a retry.
        let Some(token) = self.store.find_refresh_token(&hash).await? else {
            return Ok(Err(UNKNOWN_REFRESH_TOKEN));
        };
        if let Some(refusal) = self.refusal(&token, identifier, now) {
            return Ok(Err(refusal));
        }
        match token.retired_at {
            Some(retired_at) => {
                self.answer_retired(refresh_token, &token, retired_at, identifier, now)
                    .await
            }
            None => Ok(Err(UNKNOWN_REFRESH_TOKEN)),
        }
    }

    fn refusal(
        &self,
        token: &RefreshTokenRecord,
        identifier: Uuid,
        now: DateTime<Utc>,
    ) -> Option<Refusal> {
        if token.key_revoked || token.revoked_at.is_some() {
            Some(REVOKED_REFRESH_TOKEN)
        } else if token.expires_at <= now {
            Some(EXPIRED_REFRESH_TOKEN)
        } else if token.key_expires_at <= now {
            Some(REFRESH_KEY_EXPIRED)
        } else if self.security.strict_identifier && token.identifier != identifier {
            Some(TOKEN_IDENTIFIER_MISMATCH)
        } else {
            None
        }
    }

    /// A retired token: within the grace window, and while its successor is unused, a retry of
    /// a lost response gets the same successor again (however often it is retried, one chain
    /// lives on); otherwise it is reuse, and the family is revoked.
    async fn answer_retired(
        &self,
        presented: &str,
        token: &RefreshTokenRecord,
        retired_at: DateTime<Utc>,
        identifier: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ApiError> {
        let grace = Duration::seconds(saturating_seconds(self.security.refresh_token_reuse_grace));
        let successor = token
            .successor_sealed
            .as_deref()
            .and_then(|sealed| open_successor(presented, token.id, sealed));
        if let (true, false, Some(successor)) =
            (now - retired_at <= grace, token.successor_used, successor)
        {
            tracing::info!(%identifier, "retired refresh token presented within the grace window");
            return Ok(Ok(TokenResponse {
                jwt: self.issue_jwt(identifier)?,
                refresh_token: Some(successor),
            }));
        }
        let revoked = self
            .store
            .revoke_refresh_family(token.id, token.key_id, now)
            .await?;
        tracing::warn!(%identifier, revoked, "refresh token reuse detected: its family is revoked");
        metrics::counter!("jwthenticator_refresh_token_reuse_total").increment(1);
        Ok(Err(REUSED_REFRESH_TOKEN))
    }
}

impl AppState {
    /// The registered key `key`, found by its keyed hash or, in a row the original wrote, by its
    /// SHA-512. Such a row is rewritten to the keyed hash now that its key has been presented,
    /// at most once; if that fails, the row stays usable as it is.
    pub(crate) async fn find_key(&self, key: &str) -> Result<Option<KeyRecord>, ApiError> {
        let hashes = self.key_hasher.hashes(key);
        let Some(record) = self.store.find_key(&hashes).await? else {
            return Ok(None);
        };
        if record.key_hash_scheme != hashes.scheme {
            match self.store.upgrade_key_hash(record.id, &hashes).await {
                Ok(true) => {
                    tracing::info!(
                        key_id = record.id,
                        "a key of the original is now stored under the keyed hash"
                    );
                    metrics::counter!("jwthenticator_key_hash_upgrades_total").increment(1);
                }
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(key_id = record.id, error = %err, "upgrading a key's hash failed; it stays usable");
                }
            }
        }
        Ok(Some(record))
    }
}

/// The AEAD key that seals a rotated token's successor: derived from the rotated token itself
/// (256 random bits), which the database holds only as a SHA-512 hash. Whoever can present the
/// rotated token may learn its successor within the grace window; nobody else can.
fn successor_key(rotated: &str) -> Option<aws_lc_rs::aead::LessSafeKey> {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    context.update(b"jwthenticator refresh successor v1\0");
    context.update(rotated.as_bytes());
    let key =
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, context.finish().as_ref())
            .ok()?;
    Some(aws_lc_rs::aead::LessSafeKey::new(key))
}

/// `nonce || ciphertext || tag` of `successor`, bound to the rotated token's row.
fn seal_successor(rotated: &str, row_id: i64, successor: &str) -> Result<Vec<u8>, ApiError> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    let failed = || ApiError::internal("sealing the refresh token failed");
    let key = successor_key(rotated).ok_or_else(failed)?;
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| failed())?;
    let mut sealed = successor.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(row_id.to_be_bytes()),
        &mut sealed,
    )
    .map_err(|_| failed())?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The successor sealed by [`seal_successor`], if `rotated` is the token it was sealed for.
fn open_successor(rotated: &str, row_id: i64, sealed: &[u8]) -> Option<String> {
    use aws_lc_rs::aead::{Aad, NONCE_LEN, Nonce};
    let key = successor_key(rotated)?;
    let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut ciphertext = ciphertext.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(row_id.to_be_bytes()), &mut ciphertext)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_successor_opens_only_with_its_rotated_token_and_row() {
        let sealed = seal_successor("rotated-token", 7, "successor").expect("sealed");
        assert!(
            !sealed.windows(9).any(|w| w == b"successor"),
            "sealed, not stored in the clear"
        );
        assert_eq!(
            open_successor("rotated-token", 7, &sealed).as_deref(),
            Some("successor")
        );
        assert_eq!(open_successor("another-token", 7, &sealed), None);
        assert_eq!(open_successor("rotated-token", 8, &sealed), None);
        assert_eq!(open_successor("rotated-token", 7, &sealed[..5]), None);
    }
}
