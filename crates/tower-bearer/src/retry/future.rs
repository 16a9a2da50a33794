use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::head::RequestHead;
use super::ReplayPolicy;
use crate::auth::TokenRejected;

/// What is kept from a request to send it again.
pub(super) struct Replay<S, P: ReplayPolicy<B>, B> {
    /// Cloned for the replay, if there is one.
    pub(super) service: Arc<Mutex<S>>,
    /// Turns `saved` into the replay's body.
    pub(super) policy: P,
    /// The request's method, URI, version, headers and extensions, as the caller sent it.
    pub(super) head: RequestHead,
    /// What the policy kept of the body.
    pub(super) saved: P::Saved,
}

impl<S, P: ReplayPolicy<B>, B> Replay<S, P, B> {
    /// The service and request for the replay of a response the auth layer marked as
    /// `rejected`, or `None` to return the response as it is. Out of line: most responses
    /// never get here, and inlined into `poll` this code costs every one of them.
    #[inline(never)]
    fn start(self, rejected: TokenRejected, status: StatusCode) -> Option<(S, Request<P::Body>)>
    where
        S: Clone,
    {
        let request = replay_request(rejected, status, || {
            self.policy
                .replay(self.saved)
                .map(|body| self.head.into_request(body))
        })?;
        Some((crate::sync::lock(&self.service).clone(), request))
    }
}

pin_project! {
    /// Response future of [`RetryOn401`](super::RetryOn401).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, P, B>
    where
        P: ReplayPolicy<B>,
        S: Service<Request<P::Body>>,
    {
        #[pin]
        state: State<S, P, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, P, B>
    where
        P: ReplayPolicy<B>,
        S: Service<Request<P::Body>>,
    {
        First {
            #[pin]
            future: S::Future,
            replay: Option<Replay<S, P, B>>,
        },
        Readying {
            service: S,
            request: Option<Request<P::Body>>,
        },
        Replayed {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, P, B> ResponseFuture<S, P, B>
where
    P: ReplayPolicy<B>,
    S: Service<Request<P::Body>>,
{
    /// `replay` is `None` for a request that must not be replayed.
    pub(super) fn new(future: S::Future, replay: Option<Replay<S, P, B>>) -> Self {
        ResponseFuture {
            state: State::First { future, replay },
        }
    }
}

impl<S, P, B, ResBody> Future for ResponseFuture<S, P, B>
where
    P: ReplayPolicy<B>,
    S: Service<Request<P::Body>, Response = Response<ResBody>> + Clone,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::First { future, replay } => {
                    let output = ready!(future.poll(cx));
                    // The usual response is no rejection: it is returned as it came, and the
                    // replay is dropped where it is, without being moved out first.
                    let rejected = match &output {
                        Ok(response) => response
                            .extensions()
                            .get::<TokenRejected>()
                            .map(|&rejected| (rejected, response.status())),
                        Err(_) => None,
                    };
                    let Some((rejected, status)) = rejected else {
                        return Poll::Ready(output);
                    };
                    let Some((service, request)) = replay
                        .take()
                        .and_then(|replay| replay.start(rejected, status))
                    else {
                        return Poll::Ready(output);
                    };
                    this.state.set(State::Readying {
                        service,
                        request: Some(request),
                    });
                }
                StateProj::Readying { service, request } => {
                    ready!(service.poll_ready(cx))?;
                    let request = request
                        .take()
                        .expect("the replay request is taken only once, right here");
                    let future = service.call(request);
                    this.state.set(State::Replayed { future });
                }
                StateProj::Replayed { future } => return future.poll(cx),
            }
        }
    }
}

/// Decides on a first response that the auth layer inside marked as `rejected` (a 401, or
/// gRPC's UNAUTHENTICATED, for its own token): the replay, if it would carry another token;
/// `None` to return the response as it is.
fn replay_request<R>(
    rejected: TokenRejected,
    status: StatusCode,
    build: impl FnOnce() -> Option<Request<R>>,
) -> Option<Request<R>> {
    if !rejected.replay {
        tracing::debug!(
            %status,
            "access token rejected again right after a new one was fetched; returning the \
             response (the cache backs off before fetching another)"
        );
        return None;
    }
    let request = build();
    match &request {
        Some(_) => tracing::debug!(%status, "access token rejected; replaying with a new one"),
        None => tracing::debug!(
            %status,
            "access token rejected; the request body cannot be replayed, returning the response"
        ),
    }
    request
}

impl<S, P, B> fmt::Debug for ResponseFuture<S, P, B>
where
    P: ReplayPolicy<B>,
    S: Service<Request<P::Body>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::First { .. } => "first attempt",
            State::Readying { .. } => "waiting to replay",
            State::Replayed { .. } => "replayed",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
