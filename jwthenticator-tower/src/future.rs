//! [`ResponseFuture`], the future of [`JwtAuthService`](crate::JwtAuthService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::authenticator::VerifyFuture;
use crate::rejection::{BuildRejection, reject};

pin_project! {
    /// Response future of [`JwtAuthService`](crate::JwtAuthService).
    pub struct ResponseFuture<S, ReqBody, C, R>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, C, R, S::Future, S::Response>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, C, R, F, Res> {
        /// Waiting for a JWKS refetch before the token can be judged. Boxed, as it is rare,
        /// so that the future of every other request stays small.
        Verifying {
            verify: VerifyFuture<C>,
            pending: Option<Box<Pending<S, ReqBody, R>>>,
        },
        /// The token is valid; the inner service is answering.
        Authorized {
            #[pin]
            future: F,
        },
        /// The token was refused; the response is ready.
        Rejected {
            response: Option<Res>,
        },
    }
}

/// What a request waiting for a refetch needs once its token is judged.
struct Pending<S, ReqBody, R> {
    request: Request<ReqBody>,
    inner: S,
    rejection: R,
}

impl<S, ReqBody, C, R> ResponseFuture<S, ReqBody, C, R>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn verifying(
        verify: VerifyFuture<C>,
        request: Request<ReqBody>,
        inner: S,
        rejection: R,
    ) -> Self {
        Self {
            state: State::Verifying {
                verify,
                pending: Some(Box::new(Pending {
                    request,
                    inner,
                    rejection,
                })),
            },
        }
    }

    pub(crate) fn authorized(future: S::Future) -> Self {
        Self {
            state: State::Authorized { future },
        }
    }

    pub(crate) fn rejected(response: S::Response) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
}

impl<S, ReqBody, C, R, ResBody> Future for ResponseFuture<S, ReqBody, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    C: Clone + Send + Sync + 'static,
    R: BuildRejection<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Verifying { verify, pending } => {
                    let verdict = ready!(verify.as_mut().poll(cx));
                    let Pending {
                        mut request,
                        mut inner,
                        rejection,
                    } = *pending.take().expect("polled after completion");
                    match verdict {
                        Ok(claims) => {
                            if let Some(claims) = claims {
                                request.extensions_mut().insert(claims);
                            }
                            let future = inner.call(request);
                            this.state.set(State::Authorized { future });
                        }
                        Err(error) => {
                            let response = reject(&rejection, error, request);
                            this.state.set(State::Rejected { response: None });
                            return Poll::Ready(Ok(response));
                        }
                    }
                }
                StateProj::Authorized { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl<S, ReqBody, C, R> fmt::Debug for ResponseFuture<S, ReqBody, C, R>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the state's name: the pending request holds the token.
        let state = match &self.state {
            State::Verifying { .. } => "Verifying",
            State::Authorized { .. } => "Authorized",
            State::Rejected { .. } => "Rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
