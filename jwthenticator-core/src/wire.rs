//! The JSON bodies of the server's API, identical to the Python original's.
//!
//! Every secret-bearing field (`key`, `refresh_token`, `jwt`) is redacted in `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const REDACTED: &str = "[redacted]";

/// `POST /is_key_registered`: is this key known to the server?
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct KeyRequest {
    /// The client's secret key. Only its SHA-512 hash is stored.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub key: String,
}

/// `POST /register_key`: register a secret key for an identifier (or extend its expiry).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RegisterKeyRequest {
    /// The client's secret key. Only its SHA-512 hash is stored.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub key: String,
    /// The UUID the key is registered for.
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub identifier: Uuid,
}

/// `POST /authenticate`: exchange a registered key for a JWT and a refresh token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct AuthRequest {
    /// The client's secret key, as registered.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub key: String,
    /// The UUID the JWT is issued to (its `identifier` claim).
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub identifier: Uuid,
}

/// `POST /refresh`: exchange a refresh token for a new JWT.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RefreshRequest {
    /// A refresh token returned by `/authenticate`.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub refresh_token: String,
    /// The UUID the JWT is issued to (its `identifier` claim).
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub identifier: Uuid,
}

/// `POST /validate`: is this JWT valid?
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
#[cfg_attr(feature = "openapi", oai(rename = "JWTValidateRequest"))]
pub struct JwtValidateRequest {
    /// The JWT to validate.
    #[cfg_attr(feature = "openapi", oai(validator(max_length = 16384)))]
    pub jwt: String,
}

/// A JWT and, from `/authenticate` (or `/refresh` with rotation on), a refresh token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct TokenResponse {
    /// The signed JWT, to be sent as `Authorization: Bearer <jwt>`.
    pub jwt: String,
    /// A refresh token for `/refresh`, or `null` when none is issued.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub refresh_token: Option<String>,
}

/// The original's generic answer: `{"result": bool, "message": null}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct BoolResponse {
    /// The answer.
    pub result: bool,
    /// An optional explanation; `null` in every answer the original gives.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub message: Option<String>,
}

impl BoolResponse {
    /// `{"result": true, "message": null}`.
    pub const TRUE: Self = Self {
        result: true,
        message: None,
    };

    /// `{"result": value, "message": null}`.
    pub fn new(result: bool) -> Self {
        Self {
            result,
            message: None,
        }
    }
}

/// The body of every error answer: a short machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct ErrorResponse {
    /// A stable code such as `invalid_request`, `invalid_key` or `invalid_token`.
    pub error: String,
    /// What was wrong, for example which field failed to parse and why.
    pub message: String,
}

impl ErrorResponse {
    /// An error body with the given code and message.
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            message: message.into(),
        }
    }
}

/// `POST /revoke_key`: revoke a key, by the key itself or by the `id` that `GET /keys` lists.
/// Exactly one of the two must be given. The key's refresh tokens are revoked with it.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RevokeKeyRequest {
    /// The key to revoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub key: Option<String>,
    /// The id of the key to revoke, as listed by `GET /keys`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<i64>,
}

/// `POST /revoke_refresh_token`: revoke one refresh token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RevokeRefreshTokenRequest {
    /// The refresh token to revoke.
    #[cfg_attr(feature = "openapi", oai(validator(min_length = 1, max_length = 4096)))]
    pub refresh_token: String,
}

/// `POST /revoke_identifier`: revoke every key of an identifier and all their refresh tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct IdentifierRequest {
    /// The identifier whose keys are revoked.
    #[serde(deserialize_with = "crate::json_error::deserialize_uuid")]
    pub identifier: Uuid,
}

/// What a revocation revoked. Revoking what is already revoked counts nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct RevocationResponse {
    /// Keys newly revoked.
    pub keys_revoked: u64,
    /// Refresh tokens newly revoked.
    pub refresh_tokens_revoked: u64,
}

/// A registered key as `GET /keys` lists it: never the key, nor anything of its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct KeyInfo {
    /// The key's id, for `POST /revoke_key`.
    pub id: i64,
    /// How the key is stored: `hmac-sha512` (keyed), or `sha512` for a key the original
    /// registered that has not been presented since (it is upgraded when it is).
    pub key_hash_scheme: String,
    /// The identifier the key was registered for.
    pub identifier: Uuid,
    /// Registered at, seconds since the Unix epoch.
    pub created_at: i64,
    /// Expires at, seconds since the Unix epoch.
    pub expires_at: i64,
    /// Revoked at, seconds since the Unix epoch, or `null`.
    #[cfg_attr(feature = "openapi", oai(nullable))]
    pub revoked_at: Option<i64>,
}

/// `GET /keys`: the keys of an identifier, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(poem_openapi::Object))]
pub struct KeyListResponse {
    /// The keys.
    pub keys: Vec<KeyInfo>,
}

impl fmt::Debug for RevokeKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeKeyRequest")
            .field("key", &self.key.as_ref().map(|_| REDACTED))
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl fmt::Debug for RevokeRefreshTokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevokeRefreshTokenRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRequest")
            .field("key", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for RegisterKeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterKeyRequest")
            .field("key", &REDACTED)
            .field("identifier", &self.identifier)
            .finish()
    }
}

impl fmt::Debug for AuthRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRequest")
            .field("key", &REDACTED)
            .field("identifier", &self.identifier)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .field("identifier", &self.identifier)
            .finish()
    }
}

impl fmt::Debug for JwtValidateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidateRequest")
            .field("jwt", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("jwt", &REDACTED)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_secrets() {
        let identifier = Uuid::new_v4();
        let outputs = [
            format!(
                "{:?}",
                KeyRequest {
                    key: "s3cret-key".into()
                }
            ),
            format!(
                "{:?}",
                RegisterKeyRequest {
                    key: "s3cret-key".into(),
                    identifier
                }
            ),
            format!(
                "{:?}",
                AuthRequest {
                    key: "s3cret-key".into(),
                    identifier
                }
            ),
            format!(
                "{:?}",
                RefreshRequest {
                    refresh_token: "s3cret-refresh".into(),
                    identifier
                }
            ),
            format!(
                "{:?}",
                JwtValidateRequest {
                    jwt: "s3cret.jwt.x".into()
                }
            ),
            format!(
                "{:?}",
                TokenResponse {
                    jwt: "s3cret.jwt.x".into(),
                    refresh_token: Some("s3cret-refresh".into())
                }
            ),
        ];
        for output in outputs {
            assert!(!output.contains("s3cret"), "{output}");
            assert!(output.contains(REDACTED), "{output}");
        }
    }

    #[test]
    fn token_response_serialises_a_missing_refresh_token_as_null() {
        let json = serde_json::to_value(TokenResponse {
            jwt: "j".into(),
            refresh_token: None,
        })
        .expect("serialises");
        assert_eq!(json, serde_json::json!({"jwt": "j", "refresh_token": null}));
    }

    #[test]
    fn bool_response_matches_the_original_shape() {
        let json = serde_json::to_value(BoolResponse::TRUE).expect("serialises");
        assert_eq!(json, serde_json::json!({"result": true, "message": null}));
    }
}
