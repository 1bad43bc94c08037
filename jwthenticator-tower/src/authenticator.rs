//! The decision for one request: find the bearer token, check it against the token cache and
//! the current keys, and only when the keys may be out of date, wait for a refetch.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jwthenticator_core::{
    BearerError, TokenCache, Verifier, VerifyErrorKind, now_unix, parse_bearer,
};
use serde::de::DeserializeOwned;

use crate::error::AuthError;
use crate::jwks::{KeyStore, Wanted};

/// The verification of a request that waits for a JWKS fetch.
pub(crate) type VerifyFuture<C> =
    Pin<Box<dyn Future<Output = Result<Option<C>, AuthError>> + Send + 'static>>;

/// What to do with a request.
pub(crate) enum Decision<C> {
    /// Let it through, with the claims of its token (none in optional mode without a token).
    Allow(Option<C>),
    /// Reject it.
    Deny(AuthError),
    /// Decide once the keys have been refetched.
    Wait(VerifyFuture<C>),
}

pub(crate) struct Authenticator<C> {
    pub(crate) keys: Arc<KeyStore>,
    pub(crate) tokens: Option<TokenCache<C>>,
    pub(crate) optional: bool,
}

impl<C> fmt::Debug for Authenticator<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("keys", &self.keys)
            .field("tokens", &self.tokens)
            .field("optional", &self.optional)
            .finish()
    }
}

/// The result of checking a token against the keys at hand.
enum Check<C> {
    Done(Result<C, AuthError>),
    /// The keys may be out of date; `seen` is the fetch count they were read at.
    Refetch {
        seen: u64,
        wanted: Wanted,
    },
}

impl<C> Authenticator<C>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    pub(crate) fn decide(self: &Arc<Self>, headers: &HeaderMap) -> Decision<C> {
        let token = match bearer_token(headers) {
            Ok(Some(token)) => token,
            Ok(None) if self.optional => return Decision::Allow(None),
            Ok(None) => return Decision::Deny(AuthError::missing_token()),
            Err(error) => return Decision::Deny(error),
        };
        match self.check(token, true) {
            Check::Done(Ok(claims)) => Decision::Allow(Some(claims)),
            Check::Done(Err(error)) => Decision::Deny(error),
            Check::Refetch { seen, wanted } => {
                let this = Arc::clone(self);
                // The copy of the token lives only as long as this future.
                let token = token.to_owned();
                Decision::Wait(Box::pin(async move {
                    this.keys.refetch(seen, wanted).await;
                    match this.check(&token, false) {
                        Check::Done(result) => result.map(Some),
                        Check::Refetch { .. } => {
                            Err(AuthError::keys_unavailable(this.keys.retry_after()))
                        }
                    }
                }))
            }
        }
    }

    fn check(&self, token: &str, may_refetch: bool) -> Check<C> {
        // Read before the keys, so a fetch that lands in between is noticed (see `refetch`).
        let seen = self.keys.fetch_count();
        let loaded = self.keys.load();
        let Some(keys) = self.keys.usable(&loaded) else {
            return match self.keys.may_refetch() {
                Ok(()) if may_refetch => Check::Refetch {
                    seen,
                    // The fetch must bring this token's key, not just any: a made-up `kid` at
                    // startup arms the cooldown too.
                    wanted: Verifier::peek_kid(token).map_or(Wanted::Keys, Wanted::Kid),
                },
                _ => Check::Done(Err(AuthError::keys_unavailable(self.keys.retry_after()))),
            };
        };
        // The verifier checks everything, required claims included, so what it accepts may be
        // cached.
        match keys.verifier.verify_cached_at(
            token,
            now_unix(),
            self.tokens.as_ref(),
            keys.epoch,
            |claims: C| claims,
        ) {
            Ok(claims) => Check::Done(Ok(claims)),
            Err(error)
                if error.kind() == VerifyErrorKind::UnknownKeyId
                    && may_refetch
                    && self.keys.may_refetch().is_ok() =>
            {
                // The verifier found a `kid` in the header, so it can be read again; an empty
                // one is in no key set, and its fetch arms the cooldown.
                let kid = Verifier::peek_kid(token).unwrap_or_default();
                Check::Refetch {
                    seen,
                    wanted: Wanted::Kid(kid),
                }
            }
            Err(error) => Check::Done(Err(error.into())),
        }
    }
}

/// The bearer token of a request, `None` when it has none (no `Authorization` header, or one
/// with another scheme, which another layer may handle).
fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid(
            VerifyErrorKind::Malformed,
            "the request has more than one Authorization header",
        ));
    }
    match parse_bearer(value.as_bytes()) {
        Ok(token) => Ok(Some(token)),
        Err(BearerError::NotBearer) => Ok(None),
        Err(error) => Err(AuthError::invalid(
            VerifyErrorKind::Malformed,
            error.to_string(),
        )),
    }
}
