//! The decisions behind `/authenticate` and `/refresh`: which key or refresh token is good, for
//! which identifier, and what rotation answers.

use chrono::{DateTime, Duration, Utc};
use jwthenticator_core::TokenResponse;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{KeyRecord, NewRefreshToken, RefreshTokenRecord, hash_secret};

/// Why a key or refresh token was refused: the error code and message the client gets, and a
/// short reason for logs and metrics. Every refusal counts towards the failure limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) error: &'static str,
    /// A short stable name for logs and metrics.
    pub(crate) reason: &'static str,
    pub(crate) message: &'static str,
}

const UNKNOWN_KEY: Refusal = Refusal {
    error: "invalid_key",
    reason: "unknown_key",
    message: "the key is not registered",
};
const EXPIRED_KEY: Refusal = Refusal {
    error: "invalid_key",
    reason: "expired_key",
    message: "the key has expired",
};
const REVOKED_KEY: Refusal = Refusal {
    error: "invalid_key",
    reason: "revoked_key",
    message: "the key has been revoked",
};
const KEY_IDENTIFIER_MISMATCH: Refusal = Refusal {
    error: "invalid_key",
    reason: "identifier_mismatch",
    message: "the key is registered for another identifier",
};
const UNKNOWN_REFRESH_TOKEN: Refusal = Refusal {
    error: "invalid_refresh_token",
    reason: "unknown_refresh_token",
    message: "the refresh token is not valid",
};
const EXPIRED_REFRESH_TOKEN: Refusal = Refusal {
    error: "invalid_refresh_token",
    reason: "expired_refresh_token",
    message: "the refresh token has expired",
};
const REVOKED_REFRESH_TOKEN: Refusal = Refusal {
    error: "invalid_refresh_token",
    reason: "revoked_refresh_token",
    message: "the refresh token has been revoked",
};
const REUSED_REFRESH_TOKEN: Refusal = Refusal {
    error: "invalid_refresh_token",
    reason: "reused_refresh_token",
    message: "the refresh token was already used; its family has been revoked",
};
const TOKEN_IDENTIFIER_MISMATCH: Refusal = Refusal {
    error: "invalid_refresh_token",
    reason: "identifier_mismatch",
    message: "the refresh token belongs to another identifier",
};

/// The answer of a token endpoint: tokens, or a refusal.
pub(crate) type Outcome = Result<TokenResponse, Refusal>;

/// A refresh token: 256 random bits, base64url.
fn new_refresh_token() -> Result<String, ApiError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiError::internal("random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn seconds(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX / 1000))
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
                expires_at: now + seconds(self.refresh_token_expiry),
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
                .answer_retired(&token, retired_at, identifier, now)
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
                NewRefreshToken {
                    token_hash: &hash_secret(&successor),
                    key_id: token.key_id,
                    expires_at: now + seconds(self.refresh_token_expiry),
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
                self.answer_retired(&token, retired_at, identifier, now)
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
        } else if self.security.strict_identifier && token.identifier != identifier {
            Some(TOKEN_IDENTIFIER_MISMATCH)
        } else {
            None
        }
    }

    /// A retired token: within the grace window, and while its successor is unused, a retry of
    /// a lost response gets a new token of the same family; otherwise it is reuse.
    async fn answer_retired(
        &self,
        token: &RefreshTokenRecord,
        retired_at: DateTime<Utc>,
        identifier: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Outcome, ApiError> {
        let grace = seconds(self.security.refresh_token_reuse_grace);
        if now - retired_at <= grace && !token.successor_used {
            let sibling = new_refresh_token()?;
            self.store
                .insert_refresh_token(NewRefreshToken {
                    token_hash: &hash_secret(&sibling),
                    key_id: token.key_id,
                    expires_at: now + seconds(self.refresh_token_expiry),
                    family_id: token.family_id.unwrap_or_else(Uuid::new_v4),
                })
                .await?;
            tracing::info!(%identifier, "retired refresh token presented within the grace window");
            return Ok(Ok(TokenResponse {
                jwt: self.issue_jwt(identifier)?,
                refresh_token: Some(sibling),
            }));
        }
        let revoked = self
            .store
            .revoke_refresh_family(token.id, token.family_id, now)
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
