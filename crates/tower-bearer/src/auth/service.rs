use std::fmt;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::{BearerAuthLayer, ResponseFuture};
use crate::authorizer::{Attach, Authorize, Authorizer, Pending};
use crate::{BoxError, TokenCache};

/// What [`BearerAuth`] asks of the service it wraps: to be `Clone`. Every `Clone` type is
/// one; the trait exists so that wrapping a service that is not says so in the compiler's
/// error, with what to do about it.
///
/// The clone is what keeps a request that waits for a token from holding up the next
/// caller: the service made ready for it moves into its future, and a clone takes its place.
///
/// A service that is not `Clone` does not compile under the layer, and the error names
/// this trait and says what to do:
///
/// ```compile_fail
/// use std::convert::Infallible;
/// use std::future::{ready, Ready};
/// use std::task::{Context, Poll};
/// use http::{Request, Response};
/// use tower::{Service, ServiceBuilder};
/// use tower_bearer::{source::StaticToken, BearerAuthLayer, TokenCache};
///
/// struct NotClone;
///
/// impl Service<Request<()>> for NotClone {
///     type Response = Response<()>;
///     type Error = Infallible;
///     type Future = Ready<Result<Response<()>, Infallible>>;
///     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
///         Poll::Ready(Ok(()))
///     }
///     fn call(&mut self, _: Request<()>) -> Self::Future {
///         ready(Ok(Response::new(())))
///     }
/// }
///
/// let cache = TokenCache::new(StaticToken::new("token").unwrap());
/// // error: `BearerAuth` needs the service it wraps to be `Clone`, and `NotClone` is not
/// let client = ServiceBuilder::new().layer(BearerAuthLayer::new(cache)).service(NotClone);
/// ```
#[diagnostic::on_unimplemented(
    message = "`BearerAuth` needs the service it wraps to be `Clone`, and `{Self}` is not",
    label = "not `Clone`",
    note = "hyper-util's `Client`, tonic's `Channel` and `tower::util::BoxCloneService` are \
            `Clone`; wrap any other service in `tower::buffer::Buffer` or make it `Clone`"
)]
pub trait CloneService: Clone {}

impl<T: Clone> CloneService for T {}

/// Adds a bearer token to each request; built by [`BearerAuthLayer`].
///
/// It drives an [`Authorizer`], which decides what each request gets and what each
/// response says; this type is its tower glue. The inner service must be `Clone` (see
/// [`CloneService`]).
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    authorizer: Authorizer,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner`, attaching tokens from `cache` to every request.
    pub fn new(inner: S, cache: TokenCache) -> Self
    where
        S: CloneService,
    {
        Self::with_authorizer(inner, Authorizer::new(cache))
    }

    /// Wraps `inner`, attaching tokens as `authorizer` says (its cache, its allow-list).
    pub fn with_authorizer(inner: S, authorizer: Authorizer) -> Self
    where
        S: CloneService,
    {
        BearerAuth { inner, authorizer }
    }

    /// A layer that wraps services in `BearerAuth`.
    pub fn layer(cache: TokenCache) -> BearerAuthLayer {
        BearerAuthLayer::new(cache)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The cache tokens come from.
    pub fn cache(&self) -> &TokenCache {
        self.authorizer.cache()
    }

    /// The authorizer this service drives.
    pub fn authorizer(&self) -> &Authorizer {
        &self.authorizer
    }
}

impl<S, B, ResBody> Service<Request<B>> for BearerAuth<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.authorizer.attach(&mut request) {
            Attach::Attached(attached) => {
                ResponseFuture::attached(self.inner.call(request), attached)
            }
            Attach::Other(Authorize::Send(sent)) => {
                ResponseFuture::sent(self.inner.call(request), sent)
            }
            Attach::Other(Authorize::Wait(pending)) => self.call_after(pending, request),
            Attach::Other(Authorize::Refuse(error)) => ResponseFuture::refused(error),
        }
    }
}

impl<S> BearerAuth<S> {
    /// The slow path: the request waits (for a token, or a DPoP nonce). The returned future
    /// waits, then calls the service that was made ready; a clone takes its place here.
    #[cold]
    #[inline(never)]
    fn call_after<B>(&mut self, pending: Pending, request: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture::waiting(pending, ready, request)
    }
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("authorizer", &self.authorizer)
            .finish()
    }
}
