use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::rejected::mark;
use crate::authorizer::{Pending, Sent};
use crate::{BoxError, FetchError};

pin_project! {
    /// Response future of [`BearerAuth`](super::BearerAuth).
    ///
    /// On the usual path it is the inner service's future and the [`Sent`] that reads its
    /// response (for a cached bearer token, a number and a fingerprint: no allocation);
    /// only a request that waits for its token holds the (boxed) wait and the request.
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
            // Taken when the response is read.
            sent: Option<Sent>,
        },
        // Boxed so that the usual `Sent` path does not carry a request's worth of bytes.
        Waiting {
            waiting: Box<Waiting<S, B>>,
        },
        Refused {
            error: Option<BoxError>,
        },
    }
}

/// A request waiting for its token: the wait, the service made ready for it, and the
/// request; both taken when the wait ends.
struct Waiting<S, B> {
    pending: Pending,
    service: Option<S>,
    request: Option<Request<B>>,
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    #[inline]
    pub(super) fn sent(future: S::Future, sent: Sent) -> Self {
        ResponseFuture {
            state: State::Sent {
                future,
                sent: Some(sent),
            },
        }
    }

    /// A request that is not sent: the future fails with `error`.
    #[cold]
    pub(super) fn refused(error: BoxError) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
        }
    }

    pub(super) fn waiting(pending: Pending, service: S, request: Request<B>) -> Self {
        ResponseFuture {
            state: State::Waiting {
                waiting: Box::new(Waiting {
                    pending,
                    service: Some(service),
                    request: Some(request),
                }),
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
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Sent { future, sent } => {
                    let mut response = ready!(future.poll(cx)).map_err(Into::into)?;
                    if let Some(sent) = sent.take() {
                        let verdict = sent.verdict(&response);
                        mark(&mut response, verdict);
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProj::Waiting { waiting } => {
                    let ready = ready!(Pin::new(&mut waiting.pending).poll(cx))?;
                    let (Some(mut service), Some(mut request)) =
                        (waiting.service.take(), waiting.request.take())
                    else {
                        return Poll::Ready(Err(polled_after_completion()));
                    };
                    let sent = ready.attach(&mut request)?;
                    let future = service.call(request);
                    this.state.set(State::Sent {
                        future,
                        sent: Some(sent),
                    });
                }
                StateProj::Refused { error } => {
                    return Poll::Ready(Err(error.take().unwrap_or_else(polled_after_completion)));
                }
            }
        }
    }
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
            State::Waiting { .. } => "waiting for a token",
            State::Sent { .. } => "sent",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
