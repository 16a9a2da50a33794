use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::challenge::token_rejected;
use super::ReplayPolicy;
use crate::used_token::{RejectedUpTo, UsedTokenSlot};

/// What is kept from a request to send it again.
pub(super) struct Replay<S, P: ReplayPolicy<B>, B> {
    /// Cloned for the replay, if there is one.
    pub(super) service: Arc<Mutex<S>>,
    pub(super) policy: P,
    pub(super) request: Request<()>,
    pub(super) saved: P::Saved,
    /// `None` when the policy always replays; then `rejected` tells the token.
    pub(super) slot: Option<UsedTokenSlot>,
    pub(super) rejected: RejectedUpTo,
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
                    let response = ready!(future.poll(cx))?;
                    let Some(replay) = replay.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    let rejected = replay.rejected;
                    let Some(request) = replay_request(&response, replay.slot, rejected, || {
                        replay
                            .policy
                            .replay(replay.saved)
                            .map(|body| replay.request.map(|()| body))
                    }) else {
                        return Poll::Ready(Ok(response));
                    };
                    this.state.set(State::Readying {
                        service: replay
                            .service
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .clone(),
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

/// Decides on the first response: invalidate the rejected token and build the replay, or
/// `None` to return the response as it is.
fn replay_request<ResBody, R>(
    response: &Response<ResBody>,
    slot: Option<UsedTokenSlot>,
    rejected: RejectedUpTo,
    build: impl FnOnce() -> Option<Request<R>>,
) -> Option<Request<R>> {
    if response.status() != StatusCode::UNAUTHORIZED || !token_rejected(response.headers()) {
        return None;
    }
    let request = match slot {
        Some(slot) => {
            // No token recorded: the caller set its own Authorization (or the origin is
            // not one the auth layer serves, or no auth layer is inside).
            let used = slot.get()?;
            used.cache.invalidate(&used.token);
            build()
        }
        // The auth layer invalidates the rejected token when the replay passes through. A
        // token fetched for this very request is newer than `rejected` says; the auth layer
        // marked its 401 with the exact generation then.
        None => {
            let rejected = response
                .extensions()
                .get::<RejectedUpTo>()
                .copied()
                .unwrap_or(rejected);
            build().map(|mut request| {
                request.extensions_mut().insert(rejected);
                request
            })
        }
    };
    match &request {
        Some(_) => tracing::debug!("access token rejected with 401; replaying with a new one"),
        None => tracing::debug!(
            "access token rejected with 401; the request body cannot be replayed, returning the 401"
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
