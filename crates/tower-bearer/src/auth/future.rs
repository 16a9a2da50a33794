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
    /// Every path but the usual one, in the order it goes: an error that stops the request
    /// (a refusal, or the wait's failure), the wait for a token with the service made ready
    /// for it and the request, then the response and what reads it.
    struct Slow<S, B>
    where
        S: Service<Request<B>>,
    {
        error: Option<BoxError>,
        pending: Option<Pending>,
        service: Option<S>,
        request: Option<Request<B>>,
        #[pin]
        response: Awaited<S::Future>,
        sent: Option<Sent>,
    }
}

pin_project! {
    #[project = AwaitedProj]
    enum Awaited<F> {
        NotSent,
        Sent {
            #[pin]
            future: F,
        },
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
        Self::slow(Slow {
            error: None,
            pending: None,
            service: None,
            request: None,
            response: Awaited::Sent { future },
            sent: Some(sent),
        })
    }

    /// A request that is not sent: the future fails with `error`.
    #[cold]
    pub(super) fn refused(error: BoxError) -> Self {
        Self::slow(Slow {
            error: Some(error),
            pending: None,
            service: None,
            request: None,
            response: Awaited::NotSent,
            sent: None,
        })
    }

    pub(super) fn waiting(pending: Pending, service: S, request: Request<B>) -> Self {
        Self::slow(Slow {
            error: None,
            pending: Some(pending),
            service: Some(service),
            request: Some(request),
            response: Awaited::NotSent,
            sent: None,
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
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Response<ResBody>, BoxError>>
    where
        S: Service<Request<B>, Response = Response<ResBody>>,
        S::Error: Into<BoxError>,
    {
        let mut this = self.project();
        if let Some(error) = this.error.take() {
            return Poll::Ready(Err(error));
        }
        loop {
            if let AwaitedProj::Sent { future } = this.response.as_mut().project() {
                let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                let Some(sent) = this.sent.take() else {
                    return Poll::Ready(Err(polled_after_completion()));
                };
                if sent.needs_reading(&response) {
                    read(sent, &mut response);
                }
                return Poll::Ready(Ok(response));
            }
            let Some(pending) = this.pending.as_mut() else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            let ready = ready!(Pin::new(pending).poll(cx));
            *this.pending = None;
            let ready = ready?;
            let (Some(mut service), Some(mut request)) = (this.service.take(), this.request.take())
            else {
                return Poll::Ready(Err(polled_after_completion()));
            };
            *this.sent = Some(ready.attach(&mut request)?);
            this.response.set(Awaited::Sent {
                future: service.call(request),
            });
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
            State::Slow { slow } if slow.pending.is_some() => "waiting for a token",
            State::Slow { slow } if slow.error.is_some() => "refused",
            State::Sent { .. } | State::Slow { .. } => "sent",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
