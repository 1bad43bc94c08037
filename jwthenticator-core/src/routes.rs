//! The paths of the JWThenticator server's routes, the Python original's and ours, relative to
//! the server's base URL (which may carry a `URL_PREFIX`). The clients join these onto the base
//! URL with [`route_url`](crate::route_url); the server's test suite checks that each is an
//! operation of its OpenAPI document, so they cannot drift apart.

/// `GET`: `{"result": true, "message": null}` while the server runs.
pub const ROOT: &str = "/";
/// `GET`: liveness, as [`ROOT`].
pub const HEALTH: &str = "/health";
/// `GET`: readiness (the database answers).
pub const HEALTH_READY: &str = "/health/ready";
/// `GET`: the public keys, as a JWKS.
pub const JWKS: &str = "/jwks";
/// `POST` (internal): registers a key for an identifier.
pub const REGISTER_KEY: &str = "/register_key";
/// `POST` (internal): whether a key is registered.
pub const IS_KEY_REGISTERED: &str = "/is_key_registered";
/// `POST` (internal): revokes a key and its refresh tokens.
pub const REVOKE_KEY: &str = "/revoke_key";
/// `POST` (internal): revokes one refresh token.
pub const REVOKE_REFRESH_TOKEN: &str = "/revoke_refresh_token";
/// `POST` (internal): revokes every key of an identifier.
pub const REVOKE_IDENTIFIER: &str = "/revoke_identifier";
/// `GET` (internal): the registered keys.
pub const KEYS: &str = "/keys";
/// `POST`: a key and its identifier get a JWT and a refresh token.
pub const AUTHENTICATE: &str = "/authenticate";
/// `POST`: a refresh token gets a new JWT.
pub const REFRESH: &str = "/refresh";
/// `POST`: whether a JWT (in the body) is valid.
pub const VALIDATE: &str = "/validate";
/// Any method: whether the request's `Authorization: Bearer` JWT is valid (for gateways).
pub const VALIDATE_REQUEST: &str = "/validate_request";

/// Every route above.
pub const ALL: &[&str] = &[
    ROOT,
    HEALTH,
    HEALTH_READY,
    JWKS,
    REGISTER_KEY,
    IS_KEY_REGISTERED,
    REVOKE_KEY,
    REVOKE_REFRESH_TOKEN,
    REVOKE_IDENTIFIER,
    KEYS,
    AUTHENTICATE,
    REFRESH,
    VALIDATE,
    VALIDATE_REQUEST,
];
