//! [`JwtAuthService`], the middleware that [`JwtAuth`](crate::JwtAuth) wraps services in.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::authenticator::{Authenticator, Decision};
use crate::future::ResponseFuture;
use crate::rejection::{BuildRejection, reject};

/// Verifies the bearer token of each request before `S` sees it. Made by
/// [`JwtAuth`](crate::JwtAuth); cloning it is cheap, the caches are shared.
pub struct JwtAuthService<S, C, R> {
    inner: S,
    auth: Arc<Authenticator<C>>,
    rejection: R,
}

impl<S, C, R> JwtAuthService<S, C, R> {
    pub(crate) fn new(inner: S, auth: Arc<Authenticator<C>>, rejection: R) -> Self {
        Self {
            inner,
            auth,
            rejection,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, R: Clone> Clone for JwtAuthService<S, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            auth: Arc::clone(&self.auth),
            rejection: self.rejection.clone(),
        }
    }
}

impl<S: fmt::Debug, C, R: fmt::Debug> fmt::Debug for JwtAuthService<S, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthService")
            .field("inner", &self.inner)
            .field("auth", &self.auth)
            .field("rejection", &self.rejection)
            .finish()
    }
}

impl<S, C, R, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuthService<S, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    R: BuildRejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, C, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        match self.auth.decide(request.headers()) {
            Decision::Allow(claims) => {
                if let Some(claims) = claims {
                    request.extensions_mut().insert(claims);
                }
                ResponseFuture::authorized(self.inner.call(request))
            }
            Decision::Deny(error) => {
                ResponseFuture::rejected(reject(&self.rejection, error, request))
            }
            Decision::Wait(verify) => {
                // The service that was polled ready goes with the request; this one keeps a
                // clone (tower-service docs, "Be careful when cloning inner services").
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::verifying(verify, request, inner, self.rejection.clone())
            }
        }
    }
}
