use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::head::RequestHead;
use super::{CloneBody, ReplayPolicy, ResponseFuture, RetryOn401Layer};

/// Retries once on a 401 for a rejected token; built by [`RetryOn401Layer`].
///
/// The replay goes through a clone of the inner service as it was when wrapped (kept
/// aside, and cloned again only when a replay happens), so the usual path clones nothing.
#[derive(Clone, Debug)]
pub struct RetryOn401<S, P = CloneBody> {
    inner: S,
    policy: P,
    /// What replays are sent through: cloned only on a 401, where `inner` would otherwise
    /// have to be cloned for every request in case one comes. In a `Mutex` only so that
    /// futures stay `Send` for services that are not `Sync` (a `BoxCloneService`); it is
    /// locked just to clone it.
    replayer: Arc<Mutex<S>>,
}

impl<S: Clone> RetryOn401<S> {
    /// Wraps `inner`, replaying `Clone` bodies.
    pub fn new(inner: S) -> Self {
        Self::with_policy(inner, CloneBody)
    }

    /// A layer that wraps services in `RetryOn401`.
    pub fn layer() -> RetryOn401Layer {
        RetryOn401Layer::new()
    }
}

impl<S: Clone, P> RetryOn401<S, P> {
    /// Wraps `inner`, keeping bodies for the replay with `policy`.
    pub fn with_policy(inner: S, policy: P) -> Self {
        RetryOn401 {
            replayer: Arc::new(Mutex::new(inner.clone())),
            inner,
            policy,
        }
    }
}

impl<S, P> RetryOn401<S, P> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Replays go through a clone of the service as it was
    /// wrapped, not through changes made here.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, P, B, ResBody> Service<Request<B>> for RetryOn401<S, P>
where
    P: ReplayPolicy<B> + Clone,
    S: Service<Request<P::Body>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, P, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let (body, saved) = self.policy.prepare(body);
        // A request with the caller's own credentials is never replayed.
        let head = RequestHead::copy_of(&parts);
        let future = self.inner.call(Request::from_parts(parts, body));
        let replay = head.map(|head| super::future::Replay {
            service: Arc::clone(&self.replayer),
            policy: self.policy.clone(),
            head,
            saved,
        });
        ResponseFuture::new(future, replay)
    }
}
