//! The HTTP API: one `#[OpenApi]` impl per route group, one response enum per endpoint.

use std::future::Future;
use std::sync::Arc;

use chrono::{Duration, Utc};
use jwthenticator_core::{
    AuthRequest, BoolResponse, ErrorResponse, IdentifierRequest, Jwks, JwtValidateRequest, KeyInfo,
    KeyListResponse, KeyRequest, RefreshRequest, RevocationResponse, RevokeRefreshTokenRequest,
    TokenResponse, VerifyError, parse_bearer,
};
use jwthenticator_core::{BearerChallenge, saturating_seconds};
use poem::web::Data;
use poem::{IntoResponse, Request};
use poem_openapi::param::Query;
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use uuid::Uuid;

mod bodies;

use bodies::{AdminToken, RegisterKeyBody, RevokeKeyBody};

use crate::error::{ApiError, InternalApiError, bad_request_body, payload_too_large_body};
use crate::flows::Outcome;
use crate::middleware::JsonBody;
use crate::state::AppState;
use crate::store::{KeySelector, Registration, Revoked, hash_secret};

/// How long gateways and the tower layer may cache `/jwks`.
const JWKS_CACHE_CONTROL: &str = "public, max-age=300";

#[derive(Tags)]
enum Tag {
    /// Liveness and the public keys.
    General,
    /// What clients and gateways call: authenticate, refresh, validate.
    External,
    /// Key registration, for trusted provisioning systems only.
    Internal,
}

/// An empty JSON object, the original's body for `/validate_request`.
#[derive(Debug, Object)]
pub(crate) struct Empty {}

/// The 400 (and, for a body over the limit, the 413) of an operation: its body or a
/// parameter could not be read.
macro_rules! bad_request_handler {
    ($response:ident) => {
        impl $response {
            fn bad_request(err: poem::Error) -> Self {
                Self::BadRequest(Json(bad_request_body(&err)))
            }
        }
    };
    ($response:ident with body) => {
        impl $response {
            fn bad_request(err: poem::Error) -> Self {
                if err.status() == poem::http::StatusCode::PAYLOAD_TOO_LARGE {
                    Self::PayloadTooLarge(Json(payload_too_large_body(&err)))
                } else {
                    Self::BadRequest(Json(bad_request_body(&err)))
                }
            }
        }
    };
}

/// Answer of `/`, `/health`.
#[derive(ApiResponse)]
pub(crate) enum HealthResponse {
    /// The server is up.
    #[oai(status = 200)]
    Ok(Json<BoolResponse>),
}

/// Answer of `/health/ready`.
#[derive(ApiResponse)]
pub(crate) enum ReadinessResponse {
    /// The database answers and the keys are loaded: ready for traffic.
    #[oai(status = 200)]
    Ready(Json<BoolResponse>),
    /// Not ready; `message` says why.
    #[oai(status = 503)]
    NotReady(Json<BoolResponse>),
}

/// How long readiness waits for the database.
const READINESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Answer of `/jwks`.
#[derive(ApiResponse)]
pub(crate) enum JwksResponse {
    /// The public keys that verify live tokens.
    #[oai(status = 200)]
    Ok(JwksJson, #[oai(header = "Cache-Control")] String),
}

/// The JWKS as JSON serialized once per key set, documented as `Json<Jwks>`: `Json` would clone
/// the key set and build a `serde_json::Value` of it on every request.
pub(crate) struct JwksJson(bytes::Bytes);

impl Payload for JwksJson {
    const CONTENT_TYPE: &'static str = <Json<Jwks> as Payload>::CONTENT_TYPE;

    fn schema_ref() -> MetaSchemaRef {
        Jwks::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Jwks::register(registry);
    }
}

impl IntoResponse for JwksJson {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(Self::CONTENT_TYPE)
            .body(self.0)
    }
}

/// Answer of `/register_key`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "RegisterKeyResponse::bad_request")]
pub(crate) enum RegisterKeyResponse {
    /// The key is registered (or its expiry extended).
    #[oai(status = 201)]
    Created(Json<BoolResponse>),
    /// The body is not JSON, `key` or `identifier` is missing or invalid, or `key` is shorter
    /// than `MIN_KEY_LENGTH` (16 characters by default).
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
    /// The body is larger than `MAX_BODY_SIZE`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>),
    /// The key was revoked; a revoked key cannot be registered again.
    #[oai(status = 409)]
    Conflict(Json<ErrorResponse>),
}
bad_request_handler!(RegisterKeyResponse with body);

/// Answer of `/is_key_registered`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "IsKeyRegisteredResponse::bad_request")]
pub(crate) enum IsKeyRegisteredResponse {
    /// Whether the key is registered.
    #[oai(status = 200)]
    Ok(Json<BoolResponse>),
    /// The body is not JSON, or `key` is missing or invalid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
    /// The body is larger than `MAX_BODY_SIZE`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>),
    /// Too many unregistered keys asked about from this client address (a key-guessing
    /// oracle otherwise); retry after the `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorResponse>, #[oai(header = "Retry-After")] u64),
}
bad_request_handler!(IsKeyRegisteredResponse with body);

/// Answer of `/authenticate` and `/refresh`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "TokenEndpointResponse::bad_request")]
pub(crate) enum TokenEndpointResponse {
    /// A new JWT (and, from `/authenticate`, a refresh token).
    #[oai(status = 200)]
    Ok(Json<TokenResponse>),
    /// The body is not JSON, or a field is missing or invalid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
    /// The body is larger than `MAX_BODY_SIZE`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>),
    /// The key or refresh token is unknown, expired or revoked, bound to another identifier, or
    /// a reused rotated refresh token: one answer for every reason, so that it tells a guesser
    /// nothing (the reason is in the logs and metrics).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorResponse>),
    /// Too many failed attempts for this identifier or client address; retry after the
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorResponse>, #[oai(header = "Retry-After")] u64),
}
bad_request_handler!(TokenEndpointResponse with body);

/// Answer of the revocation routes.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "RevokeResponse::bad_request")]
pub(crate) enum RevokeResponse {
    /// What was revoked (zero when there was nothing to revoke).
    #[oai(status = 200)]
    Ok(Json<RevocationResponse>),
    /// The body is not JSON, or a field is missing or invalid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
    /// The body is larger than `MAX_BODY_SIZE`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>),
}
bad_request_handler!(RevokeResponse with body);

/// Answer of `GET /keys`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "KeyListAnswer::bad_request")]
pub(crate) enum KeyListAnswer {
    /// The identifier's keys.
    #[oai(status = 200)]
    Ok(Json<KeyListResponse>),
    /// `identifier` is missing or not a UUID.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
}
bad_request_handler!(KeyListAnswer);

/// Answer of `/validate`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "ValidateResponse::bad_request")]
pub(crate) enum ValidateResponse {
    /// The JWT is valid.
    #[oai(status = 200)]
    Ok(Json<BoolResponse>),
    /// The body is not JSON, or `jwt` is missing.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
    /// The body is larger than `MAX_BODY_SIZE`.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorResponse>),
    /// The JWT is invalid; `message` says why.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorResponse>),
}
bad_request_handler!(ValidateResponse with body);

/// Answer of `/validate_request`; only ever 200, 401 or 403, as nginx `auth_request` expects.
#[derive(ApiResponse)]
pub(crate) enum ValidateRequestResponse {
    /// The bearer token is valid.
    #[oai(status = 200)]
    Ok(Json<Empty>),
    /// The bearer token is invalid (RFC 6750 `invalid_token`).
    #[oai(status = 401)]
    Unauthorized(
        Json<ErrorResponse>,
        #[oai(header = "WWW-Authenticate")] String,
    ),
    /// No `Authorization: Bearer` header.
    #[oai(status = 403)]
    Forbidden(Json<ErrorResponse>),
}

/// `/`, `/health` and `/jwks`: always served.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GeneralApi;

#[OpenApi(tag = "Tag::General")]
impl GeneralApi {
    /// Liveness check.
    #[oai(path = "/", method = "get", operation_id = "root")]
    async fn root(&self) -> HealthResponse {
        HealthResponse::Ok(Json(BoolResponse::TRUE))
    }

    /// Liveness check.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> HealthResponse {
        HealthResponse::Ok(Json(BoolResponse::TRUE))
    }

    /// Readiness: the database answers (within 2 s) and the keys are loaded. 503 with the reason
    /// otherwise. `/health` stays the liveness check.
    #[oai(path = "/health/ready", method = "get", operation_id = "ready")]
    async fn ready(&self, state: Data<&Arc<AppState>>, req: &Request) -> ReadinessResponse {
        let not_ready = |message: &str| {
            tracing::warn!(reason = message, "not ready");
            ReadinessResponse::NotReady(Json(BoolResponse {
                result: false,
                message: Some(message.to_owned()),
            }))
        };
        if crate::serve::draining(req) {
            return not_ready("the server is shutting down");
        }
        if state.current_keys().jwks().keys.is_empty() {
            return not_ready("no verification key is loaded");
        }
        match tokio::time::timeout(READINESS_TIMEOUT, state.store.ping()).await {
            Ok(Ok(())) => ReadinessResponse::Ready(Json(BoolResponse::TRUE)),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: database check failed");
                not_ready("the database is unavailable")
            }
            Err(_) => not_ready("the database did not answer within 2 s"),
        }
    }

    /// The public keys (JWKS, RFC 7517) that verify the server's tokens.
    #[oai(path = "/jwks", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&Arc<AppState>>) -> JwksResponse {
        JwksResponse::Ok(
            JwksJson(state.current_keys().jwks_json().clone()),
            JWKS_CACHE_CONTROL.to_owned(),
        )
    }
}

/// `/register_key`, `/is_key_registered` and the revocation routes; with `ADMIN_TOKEN` set they
/// require `Authorization: Bearer <ADMIN_TOKEN>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InternalApi;

fn revocation(revoked: Revoked) -> RevokeResponse {
    metrics::counter!("jwthenticator_revocations_total", "kind" => "key").increment(revoked.keys);
    metrics::counter!("jwthenticator_revocations_total", "kind" => "refresh_token")
        .increment(revoked.refresh_tokens);
    RevokeResponse::Ok(Json(RevocationResponse {
        keys_revoked: revoked.keys,
        refresh_tokens_revoked: revoked.refresh_tokens,
    }))
}

#[OpenApi(tag = "Tag::Internal")]
impl InternalApi {
    /// Registers a key for an identifier; registering it again extends its expiry.
    #[oai(path = "/register_key", method = "post", operation_id = "register_key")]
    async fn register_key(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        body: JsonBody<RegisterKeyBody>,
    ) -> Result<RegisterKeyResponse, InternalApiError> {
        let RegisterKeyBody(body) = &body.0;
        let hashes = match state.key_hasher.for_registration(&body.key) {
            Ok(hashes) => hashes,
            Err(too_short) => {
                return Ok(RegisterKeyResponse::BadRequest(Json(ErrorResponse::new(
                    "invalid_request",
                    too_short.to_string(),
                ))));
            }
        };
        let expires_at = Utc::now() + Duration::seconds(saturating_seconds(state.issue.key_expiry));
        let registration = state
            .store
            .register_key(&hashes, body.identifier, expires_at)
            .await?;
        if registration == Registration::Revoked {
            tracing::warn!(identifier = %body.identifier, "refused to register a revoked key");
            return Ok(RegisterKeyResponse::Conflict(Json(ErrorResponse::new(
                "key_revoked",
                "this key was revoked and cannot be registered again; register a new key",
            ))));
        }
        tracing::info!(identifier = %body.identifier, "key registered");
        Ok(RegisterKeyResponse::Created(Json(BoolResponse::TRUE)))
    }

    /// Whether a key is registered.
    #[oai(
        path = "/is_key_registered",
        method = "post",
        operation_id = "is_key_registered"
    )]
    async fn is_key_registered(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        request: &Request,
        body: JsonBody<KeyRequest>,
    ) -> Result<IsKeyRegisteredResponse, InternalApiError> {
        // An unregistered key is a failed guess, as at `/authenticate`.
        let address = state.client_address.of(request);
        let attempt = match state.limiter.attempt(None, address).await {
            Ok(attempt) => attempt,
            Err(retry_after) => {
                let (body, seconds) = too_many_attempts(retry_after);
                tracing::warn!(
                    ?address,
                    operation = "is_key_registered",
                    "too many failed attempts: refused"
                );
                return Ok(IsKeyRegisteredResponse::TooManyRequests(body, seconds));
            }
        };
        let exists = state.find_key(&body.key).await?.is_some();
        if !exists {
            attempt.failed().await;
        }
        Ok(IsKeyRegisteredResponse::Ok(Json(BoolResponse::new(exists))))
    }

    /// Revokes a key, given as `key` or as the `key_id` that `GET /keys` lists, with all its
    /// refresh tokens: `/authenticate` and `/refresh` refuse them at once, on every replica.
    /// JWTs already issued stay valid until they expire (`JWT_LEASE_TIME`).
    #[oai(path = "/revoke_key", method = "post", operation_id = "revoke_key")]
    async fn revoke_key(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        body: JsonBody<RevokeKeyBody>,
    ) -> Result<RevokeResponse, InternalApiError> {
        let RevokeKeyBody(body) = &body.0;
        let hashes = body.key.as_deref().map(|key| state.key_hasher.hashes(key));
        let selector = match (&hashes, body.key_id) {
            (Some(hashes), None) => KeySelector::Key(hashes),
            (None, Some(id)) => KeySelector::Id(id),
            _ => {
                return Ok(RevokeResponse::BadRequest(Json(ErrorResponse::new(
                    "invalid_request",
                    "give exactly one of `key` and `key_id`",
                ))));
            }
        };
        let revoked = state.store.revoke_keys(selector, Utc::now()).await?;
        tracing::warn!(
            key_id = body.key_id,
            keys = revoked.keys,
            refresh_tokens = revoked.refresh_tokens,
            "key revoked"
        );
        Ok(revocation(revoked))
    }

    /// Revokes one refresh token.
    #[oai(
        path = "/revoke_refresh_token",
        method = "post",
        operation_id = "revoke_refresh_token"
    )]
    async fn revoke_refresh_token(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        body: JsonBody<RevokeRefreshTokenRequest>,
    ) -> Result<RevokeResponse, InternalApiError> {
        let refresh_tokens = state
            .store
            .revoke_refresh_token(&hash_secret(&body.refresh_token), Utc::now())
            .await?;
        tracing::warn!(refresh_tokens, "refresh token revoked");
        Ok(revocation(Revoked {
            keys: 0,
            refresh_tokens,
        }))
    }

    /// Revokes every key of an identifier and all their refresh tokens.
    #[oai(
        path = "/revoke_identifier",
        method = "post",
        operation_id = "revoke_identifier"
    )]
    async fn revoke_identifier(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        body: JsonBody<IdentifierRequest>,
    ) -> Result<RevokeResponse, InternalApiError> {
        let revoked = state
            .store
            .revoke_keys(KeySelector::Identifier(body.identifier), Utc::now())
            .await?;
        tracing::warn!(
            identifier = %body.identifier,
            keys = revoked.keys,
            refresh_tokens = revoked.refresh_tokens,
            "identifier revoked"
        );
        Ok(revocation(revoked))
    }

    /// Lists the keys of an identifier: id, hash scheme, created, expires, revoked — no hash.
    #[oai(path = "/keys", method = "get", operation_id = "list_keys")]
    async fn list_keys(
        &self,
        _admin: AdminToken,
        state: Data<&Arc<AppState>>,
        /// The identifier whose keys to list.
        identifier: Query<Uuid>,
    ) -> Result<KeyListAnswer, InternalApiError> {
        let keys = state.store.list_keys(identifier.0).await?;
        Ok(KeyListAnswer::Ok(Json(KeyListResponse {
            keys: keys
                .into_iter()
                .map(|k| KeyInfo {
                    id: k.id,
                    key_hash_scheme: k.key_hash_scheme,
                    identifier: k.identifier,
                    created_at: k.created.timestamp(),
                    expires_at: k.expires_at.timestamp(),
                    revoked_at: k.revoked_at.map(|t| t.timestamp()),
                })
                .collect(),
        })))
    }
}

/// `/authenticate`, `/refresh`, `/validate` and `/validate_request`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExternalApi;

/// The 429 answer and its `Retry-After` seconds.
fn too_many_attempts(retry_after: std::time::Duration) -> (Json<ErrorResponse>, u64) {
    let seconds = retry_after.as_secs().max(1);
    let body = ErrorResponse::new(
        "too_many_attempts",
        format!("too many failed attempts; retry in {seconds} s"),
    );
    (Json(body), seconds)
}

/// Applies the failure limits around a token endpoint's decision, and logs the outcome. The
/// attempt counts while it is decided, so concurrent guesses cannot pass the limit.
async fn limited<F>(
    state: &AppState,
    request: &Request,
    identifier: Uuid,
    operation: &'static str,
    decide: F,
) -> Result<TokenEndpointResponse, ApiError>
where
    F: Future<Output = Result<Outcome, ApiError>>,
{
    let address = state.client_address.of(request);
    let attempt = match state.limiter.attempt(Some(identifier), address).await {
        Ok(attempt) => attempt,
        Err(retry_after) => {
            tracing::warn!(%identifier, ?address, operation, "too many failed attempts: refused");
            metrics::counter!("jwthenticator_token_requests_total", "operation" => operation, "outcome" => "rate_limited").increment(1);
            let (body, seconds) = too_many_attempts(retry_after);
            return Ok(TokenEndpointResponse::TooManyRequests(body, seconds));
        }
    };
    match decide.await? {
        Ok(tokens) => {
            drop(attempt);
            tracing::info!(%identifier, operation, "tokens issued");
            metrics::counter!("jwthenticator_token_requests_total", "operation" => operation, "outcome" => "issued").increment(1);
            Ok(TokenEndpointResponse::Ok(Json(tokens)))
        }
        Err(refusal) => {
            attempt.failed().await;
            tracing::info!(%identifier, ?address, operation, reason = refusal.reason, "refused");
            metrics::counter!("jwthenticator_token_requests_total", "operation" => operation, "outcome" => "refused").increment(1);
            metrics::counter!("jwthenticator_token_refusals_total", "operation" => operation, "reason" => refusal.reason).increment(1);
            Ok(TokenEndpointResponse::Unauthorized(Json(
                ErrorResponse::new(refusal.error, refusal.message),
            )))
        }
    }
}

fn count_validation(endpoint: &'static str, outcome: &'static str, reason: &'static str) {
    metrics::counter!(
        "jwthenticator_validations_total",
        "endpoint" => endpoint,
        "outcome" => outcome,
        "reason" => reason
    )
    .increment(1);
}

fn rejected(endpoint: &'static str, err: &VerifyError) -> ErrorResponse {
    let reason = err.kind().as_str();
    tracing::info!(reason, "token rejected");
    count_validation(endpoint, "invalid", reason);
    ErrorResponse::new("invalid_token", err.to_string())
}

#[OpenApi(tag = "Tag::External")]
impl ExternalApi {
    /// Exchanges a registered key for a JWT and a refresh token.
    #[oai(path = "/authenticate", method = "post", operation_id = "authenticate")]
    async fn authenticate(
        &self,
        state: Data<&Arc<AppState>>,
        request: &Request,
        body: JsonBody<AuthRequest>,
    ) -> Result<TokenEndpointResponse, ApiError> {
        let decision = state.authenticate(&body.key, body.identifier);
        limited(&state, request, body.identifier, "authenticate", decision).await
    }

    /// Exchanges a refresh token for a new JWT (and, with ROTATE_REFRESH_TOKENS, a new refresh
    /// token that replaces it).
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&Arc<AppState>>,
        request: &Request,
        body: JsonBody<RefreshRequest>,
    ) -> Result<TokenEndpointResponse, ApiError> {
        let decision = state.refresh(&body.refresh_token, body.identifier);
        limited(&state, request, body.identifier, "refresh", decision).await
    }

    /// Validates a JWT given in the body.
    #[oai(path = "/validate", method = "post", operation_id = "validate")]
    async fn validate(
        &self,
        state: Data<&Arc<AppState>>,
        body: JsonBody<JwtValidateRequest>,
    ) -> ValidateResponse {
        match state.current_keys().validate(&body.jwt) {
            Ok(()) => {
                count_validation("validate", "valid", "none");
                ValidateResponse::Ok(Json(BoolResponse::TRUE))
            }
            Err(err) => ValidateResponse::Unauthorized(Json(rejected("validate", &err))),
        }
    }

    /// Validates the request's `Authorization: Bearer` token, for nginx `auth_request`,
    /// Caddy `forward_auth` and Traefik `forwardAuth`. Any method; the body is ignored.
    #[oai(
        path = "/validate_request",
        method = "get",
        method = "post",
        method = "put",
        method = "patch",
        method = "delete",
        method = "head",
        method = "options",
        method = "trace"
    )]
    async fn validate_request(
        &self,
        state: Data<&Arc<AppState>>,
        request: &Request,
    ) -> ValidateRequestResponse {
        let forbidden = |message: String| {
            tracing::info!(reason = %message, "validate_request: no bearer token");
            count_validation("validate_request", "missing_token", "none");
            ValidateRequestResponse::Forbidden(Json(ErrorResponse::new("missing_token", message)))
        };
        let Some(header) = request.headers().get(poem::http::header::AUTHORIZATION) else {
            return forbidden("the request has no Authorization header".to_owned());
        };
        let token = match parse_bearer(header.as_bytes()) {
            Ok(token) => token,
            Err(err) => return forbidden(err.to_string()),
        };
        match state.current_keys().validate(token) {
            Ok(()) => {
                count_validation("validate_request", "valid", "none");
                ValidateRequestResponse::Ok(Json(Empty {}))
            }
            Err(err) => {
                let body = rejected("validate_request", &err);
                let challenge = BearerChallenge::invalid_token(&body.message).to_string();
                ValidateRequestResponse::Unauthorized(Json(body), challenge)
            }
        }
    }
}
