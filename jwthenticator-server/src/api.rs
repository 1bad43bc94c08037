//! The HTTP API: one `#[OpenApi]` impl per route group, one response enum per endpoint.

use std::sync::Arc;

use chrono::{Duration, Utc};
use jwthenticator_core::{
    AuthRequest, BoolResponse, ErrorResponse, Jwks, JwtValidateRequest, KeyRequest, RefreshRequest,
    RegisterKeyRequest, TokenResponse, VerifyError, parse_bearer,
};
use poem::web::Data;
use poem::{Endpoint, Request};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::error::{ApiError, bad_request_body};
use crate::middleware::json_body;
use crate::state::AppState;
use crate::store::hash_secret;

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

macro_rules! json_body_transforms {
    ($($name:ident: $body:ty),* $(,)?) => {$(
        fn $name<E: Endpoint>(ep: E) -> impl Endpoint {
            json_body::<$body, E>(ep)
        }
    )*};
}

json_body_transforms!(
    register_key_body: RegisterKeyRequest,
    key_body: KeyRequest,
    auth_body: AuthRequest,
    refresh_body: RefreshRequest,
    validate_body: JwtValidateRequest,
);

macro_rules! bad_request_handler {
    ($response:ident) => {
        impl $response {
            fn bad_request(err: poem::Error) -> Self {
                Self::BadRequest(Json(bad_request_body(&err)))
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

/// Answer of `/jwks`.
#[derive(ApiResponse)]
pub(crate) enum JwksResponse {
    /// The public keys that verify live tokens.
    #[oai(status = 200)]
    Ok(Json<Jwks>, #[oai(header = "Cache-Control")] String),
}

/// Answer of `/register_key`.
#[derive(ApiResponse)]
#[oai(bad_request_handler = "RegisterKeyResponse::bad_request")]
pub(crate) enum RegisterKeyResponse {
    /// The key is registered (or its expiry extended).
    #[oai(status = 201)]
    Created(Json<BoolResponse>),
    /// The body is not JSON, or `key` or `identifier` is missing or invalid.
    #[oai(status = 400)]
    BadRequest(Json<ErrorResponse>),
}
bad_request_handler!(RegisterKeyResponse);

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
}
bad_request_handler!(IsKeyRegisteredResponse);

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
    /// The key or refresh token is unknown or expired.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorResponse>),
}
bad_request_handler!(TokenEndpointResponse);

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
    /// The JWT is invalid; `message` says why.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorResponse>),
}
bad_request_handler!(ValidateResponse);

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

    /// The public keys (JWKS, RFC 7517) that verify the server's tokens.
    #[oai(path = "/jwks", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: Data<&Arc<AppState>>) -> JwksResponse {
        JwksResponse::Ok(
            Json(state.keys.jwks().clone()),
            JWKS_CACHE_CONTROL.to_owned(),
        )
    }
}

/// `/register_key` and `/is_key_registered`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InternalApi;

fn seconds(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX / 1000))
}

#[OpenApi(tag = "Tag::Internal")]
impl InternalApi {
    /// Registers a key for an identifier; registering it again extends its expiry.
    #[oai(
        path = "/register_key",
        method = "post",
        operation_id = "register_key",
        transform = "register_key_body"
    )]
    async fn register_key(
        &self,
        state: Data<&Arc<AppState>>,
        body: Json<RegisterKeyRequest>,
    ) -> poem::Result<RegisterKeyResponse> {
        let expires_at = Utc::now() + seconds(state.key_expiry);
        state
            .store
            .register_key(&hash_secret(&body.key), body.identifier, expires_at)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(identifier = %body.identifier, "key registered");
        Ok(RegisterKeyResponse::Created(Json(BoolResponse::TRUE)))
    }

    /// Whether a key is registered.
    #[oai(
        path = "/is_key_registered",
        method = "post",
        operation_id = "is_key_registered",
        transform = "key_body"
    )]
    async fn is_key_registered(
        &self,
        state: Data<&Arc<AppState>>,
        body: Json<KeyRequest>,
    ) -> poem::Result<IsKeyRegisteredResponse> {
        let exists = state
            .store
            .key_exists(&hash_secret(&body.key))
            .await
            .map_err(ApiError::from)?;
        Ok(IsKeyRegisteredResponse::Ok(Json(BoolResponse::new(exists))))
    }
}

/// `/authenticate`, `/refresh`, `/validate` and `/validate_request`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExternalApi;

fn unauthorized(error: &str, message: impl Into<String>) -> TokenEndpointResponse {
    TokenEndpointResponse::Unauthorized(Json(ErrorResponse::new(error, message)))
}

/// A refresh token: 256 random bits, base64url.
fn new_refresh_token() -> Result<String, ApiError> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ApiError::internal("random generator failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn rejected(err: &VerifyError) -> ErrorResponse {
    tracing::info!(reason = err.kind().as_str(), "token rejected");
    ErrorResponse::new("invalid_token", err.to_string())
}

#[OpenApi(tag = "Tag::External")]
impl ExternalApi {
    /// Exchanges a registered key for a JWT and a refresh token.
    #[oai(
        path = "/authenticate",
        method = "post",
        operation_id = "authenticate",
        transform = "auth_body"
    )]
    async fn authenticate(
        &self,
        state: Data<&Arc<AppState>>,
        body: Json<AuthRequest>,
    ) -> poem::Result<TokenEndpointResponse> {
        let store = &state.store;
        let key = store
            .find_key(&hash_secret(&body.key))
            .await
            .map_err(ApiError::from)?;
        let Some(key) = key else {
            tracing::info!(identifier = %body.identifier, "authentication failed: unknown key");
            return Ok(unauthorized("invalid_key", "the key is not registered"));
        };
        let now = Utc::now();
        if key.expires_at <= now {
            tracing::info!(identifier = %body.identifier, "authentication failed: expired key");
            return Ok(unauthorized("invalid_key", "the key has expired"));
        }
        let jwt = state.issue_jwt(body.identifier)?;
        let refresh_token = new_refresh_token()?;
        store
            .insert_refresh_token(
                &hash_secret(&refresh_token),
                key.id,
                now + seconds(state.refresh_token_expiry),
            )
            .await
            .map_err(ApiError::from)?;
        tracing::info!(identifier = %body.identifier, "authenticated");
        Ok(TokenEndpointResponse::Ok(Json(TokenResponse {
            jwt,
            refresh_token: Some(refresh_token),
        })))
    }

    /// Exchanges a refresh token for a new JWT.
    #[oai(
        path = "/refresh",
        method = "post",
        operation_id = "refresh",
        transform = "refresh_body"
    )]
    async fn refresh(
        &self,
        state: Data<&Arc<AppState>>,
        body: Json<RefreshRequest>,
    ) -> poem::Result<TokenEndpointResponse> {
        let token = state
            .store
            .find_refresh_token(&hash_secret(&body.refresh_token))
            .await
            .map_err(ApiError::from)?;
        let Some(token) = token else {
            tracing::info!(identifier = %body.identifier, "refresh failed: unknown refresh token");
            return Ok(unauthorized(
                "invalid_refresh_token",
                "the refresh token is not valid",
            ));
        };
        if token.expires_at <= Utc::now() {
            tracing::info!(identifier = %body.identifier, "refresh failed: expired refresh token");
            return Ok(unauthorized(
                "invalid_refresh_token",
                "the refresh token has expired",
            ));
        }
        let jwt = state.issue_jwt(body.identifier)?;
        tracing::info!(identifier = %body.identifier, "refreshed");
        Ok(TokenEndpointResponse::Ok(Json(TokenResponse {
            jwt,
            refresh_token: None,
        })))
    }

    /// Validates a JWT given in the body.
    #[oai(
        path = "/validate",
        method = "post",
        operation_id = "validate",
        transform = "validate_body"
    )]
    async fn validate(
        &self,
        state: Data<&Arc<AppState>>,
        body: Json<JwtValidateRequest>,
    ) -> ValidateResponse {
        match state.verifier.verify(&body.jwt) {
            Ok(_) => ValidateResponse::Ok(Json(BoolResponse::TRUE)),
            Err(err) => ValidateResponse::Unauthorized(Json(rejected(&err))),
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
        method = "options"
    )]
    async fn validate_request(
        &self,
        state: Data<&Arc<AppState>>,
        request: &Request,
    ) -> ValidateRequestResponse {
        let forbidden = |message: String| {
            tracing::info!(reason = %message, "validate_request: no bearer token");
            ValidateRequestResponse::Forbidden(Json(ErrorResponse::new("missing_token", message)))
        };
        let Some(header) = request.headers().get(poem::http::header::AUTHORIZATION) else {
            return forbidden("the request has no Authorization header".to_owned());
        };
        let token = match parse_bearer(header.as_bytes()) {
            Ok(token) => token,
            Err(err) => return forbidden(err.to_string()),
        };
        match state.verifier.verify(token) {
            Ok(_) => ValidateRequestResponse::Ok(Json(Empty {})),
            Err(err) => {
                let body = rejected(&err);
                let challenge = format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    body.message.replace(['"', '\\'], "'")
                );
                ValidateRequestResponse::Unauthorized(Json(body), challenge)
            }
        }
    }
}
