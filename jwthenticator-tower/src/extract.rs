//! The axum extractor for the claims the layer put into the request extensions.

use std::ops::{Deref, DerefMut};

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use jwthenticator_core::Claims;

use crate::error::AuthError;
use crate::rejection::DefaultRejection;

/// The verified claims of the request's token, as an axum extractor.
///
/// It reads what [`JwtAuth`](crate::JwtAuth) put into the request extensions, so the route
/// must sit behind the layer, configured with the same claims type `C`. Without claims (no
/// layer, or optional mode and no token) it rejects with 401 `WWW-Authenticate: Bearer`;
/// `Option<JwtClaims<C>>` gives `None` instead.
///
/// ```
/// use jwthenticator_tower::JwtClaims;
///
/// async fn whoami(JwtClaims(claims): JwtClaims) -> String {
///     claims.identifier.to_string()
/// }
///
/// async fn greet(claims: Option<JwtClaims>) -> &'static str {
///     if claims.is_some() { "hello, client" } else { "hello, stranger" }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct JwtClaims<C = Claims>(pub C);

impl<C> Deref for JwtClaims<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> DerefMut for JwtClaims<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

impl<S, C> FromRequestParts<S> for JwtClaims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthError> {
        parts
            .extensions
            .get::<C>()
            .cloned()
            .map(Self)
            .ok_or_else(AuthError::missing_token)
    }
}

impl<S, C> OptionalFromRequestParts<S> for JwtClaims<C>
where
    S: Send + Sync,
    C: Clone + Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<C>().cloned().map(Self))
    }
}

/// The RFC 6750 response of [`DefaultRejection::http_response`], with the error in its
/// extensions.
impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = DefaultRejection::http_response(&self);
        response.extensions_mut().insert(self);
        response
    }
}
