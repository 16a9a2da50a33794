use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::rejected::mark;
use crate::authorizer::{Attached, Pending, Sent};
use crate::{BoxError, FetchError};

pin_project! {
    /// Response future of [`BearerAuth`](super::BearerAuth).
    ///
    /// On the usual path (a cached bearer token) it is the inner service's future and what
    /// names the token sent: a number and a fingerprint of the origin, nothing to drop.
    /// Every other path (a request that waits for its token, a DPoP proof, a refusal) is
    /// boxed, so that the usual path's future stays small.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Sent {
            #[pin]
            future: S::Future,
            attached: Attached,
        },
        Slow {
            slow: Pin<Box<Slow<S, B>>>,
        },
    }
}

pin_project! {
    /// Every path but the usual one. Each state holds only what it needs, and
    /// [`Done`](Slow::Done) is what is left once a state gave its values away.
    #[project = SlowProj]
    #[project_replace = SlowOwned]
    enum Slow<S, B>
    where
        S: Service<Request<B>>,
    {
        /// Not sent: the future fails with the error (a refusal, or the wait's failure).
        Refused {
            error: BoxError,
        },
        /// Waiting for a token, with the service made ready for it and the request.
        Waiting {
            pending: Pending,
            service: S,
            request: Request<B>,
        },
        /// Sent: the response, and what reads it.
        Sent {
            #[pin]
            future: S::Future,
            sent: Sent,
        },
        Done,
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(super) fn attached(future: S::Future, attached: Attached) -> Self {
        ResponseFuture {
            state: State::Sent { future, attached },
        }
    }

    /// Sent with a token that is not the usual path's (a DPoP-bound one).
    #[cold]
    pub(super) fn sent(future: S::Future, sent: Sent) -> Self {
        Self::slow(Slow::Sent { future, sent })
    }

    /// A request that is not sent: the future fails with `error`.
    #[cold]
    pub(super) fn refused(error: BoxError) -> Self {
        Self::slow(Slow::Refused { error })
    }

    pub(super) fn waiting(pending: Pending, service: S, request: Request<B>) -> Self {
        Self::slow(Slow::Waiting {
            pending,
            service,
            request,
        })
    }

    fn slow(slow: Slow<S, B>) -> Self {
        ResponseFuture {
            state: State::Slow {
                slow: Box::pin(slow),
            },
        }
    }
}

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Sent { future, attached } => {
                let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                if attached.needs_reading(&response) {
                    read(attached.into_sent(), &mut response);
                }
                Poll::Ready(Ok(response))
            }
            StateProj::Slow { slow } => slow.as_mut().poll_slow(cx),
        }
    }
}

impl<S, B> Slow<S, B>
where
    S: Service<Request<B>>,
{
    fn poll_slow<ResBody>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResBody>, BoxError>>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
    {
        loop {
            match self.as_mut().project() {
                SlowProj::Sent { future, .. } => {
                    let result = ready!(future.poll(cx));
                    let SlowOwned::Sent { sent, .. } = self.as_mut().project_replace(Slow::Done)
                    else {
                        unreachable!("the state was Sent a moment ago")
                    };
                    let mut response = result.map_err(Into::into)?;
                    if sent.needs_reading(&response) {
                        read(sent, &mut response);
                    }
                    return Poll::Ready(Ok(response));
                }
                SlowProj::Waiting { pending, .. } => {
                    let ready = ready!(Pin::new(pending).poll(cx));
                    let SlowOwned::Waiting {
                        mut service,
                        mut request,
                        ..
                    } = self.as_mut().project_replace(Slow::Done)
                    else {
                        unreachable!("the state was Waiting a moment ago")
                    };
                    let sent = ready?.attach(&mut request)?;
                    let future = service.call(request);
                    self.as_mut().project_replace(Slow::Sent { future, sent });
                }
                SlowProj::Refused { .. } => {
                    let SlowOwned::Refused { error } = self.as_mut().project_replace(Slow::Done)
                    else {
                        unreachable!("the state was Refused a moment ago")
                    };
                    return Poll::Ready(Err(error));
                }
                SlowProj::Done => return Poll::Ready(Err(polled_after_completion())),
            }
        }
    }
}

/// Reads a response that may say something about the token, and marks it for the retry
/// layer if it rejected the token.
#[cold]
#[inline(never)]
fn read<B>(sent: Sent, response: &mut Response<B>) {
    let verdict = sent.verdict(&*response);
    mark(response, verdict);
}

fn polled_after_completion() -> BoxError {
    FetchError::permanent("BearerAuth's response future was polled after it completed").into()
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Sent { .. } => "sent",
            State::Slow { slow } => match **slow {
                Slow::Refused { .. } => "refused",
                Slow::Waiting { .. } => "waiting for a token",
                Slow::Sent { .. } => "sent",
                Slow::Done => "done",
            },
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
