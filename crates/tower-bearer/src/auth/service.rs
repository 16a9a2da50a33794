use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use super::{BearerAuthLayer, Origin, RelativeUri, ResponseFuture};
use crate::cache::Reader;
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
/// The inner service must be `Clone` (see [`CloneService`]).
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    reader: Reader,
    allowed_origins: Option<Arc<[Origin]>>,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner`, attaching tokens from `cache` to every request.
    pub fn new(inner: S, cache: TokenCache) -> Self
    where
        S: CloneService,
    {
        Self::from_parts(inner, &cache, None)
    }

    pub(super) fn from_parts(
        inner: S,
        cache: &TokenCache,
        allowed_origins: Option<Arc<[Origin]>>,
    ) -> Self {
        BearerAuth {
            inner,
            reader: cache.reader(),
            allowed_origins,
        }
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
        self.reader.cache()
    }

    /// Whether the request's origin may get the token. A relative URI cannot be checked
    /// against an allow-list: that is an error rather than a request silently sent without
    /// its token (tonic, for one, sends path-only URIs unless given an origin).
    #[inline]
    fn origin_check<B>(&self, request: &Request<B>) -> OriginCheck {
        match &self.allowed_origins {
            None => OriginCheck::Allowed,
            Some(origins) => check_origin(origins, request),
        }
    }
}

/// What the allow-list says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OriginCheck {
    Allowed,
    NotAllowed,
    /// A relative URI: it cannot be checked.
    Relative,
}

#[inline(never)]
fn check_origin<B>(origins: &[Origin], request: &Request<B>) -> OriginCheck {
    let uri = request.uri();
    if uri.scheme().is_none() || uri.host().is_none() {
        if has_authorization(request.headers()) {
            // The caller's own credentials: not ours to check.
            return OriginCheck::NotAllowed;
        }
        return OriginCheck::Relative;
    }
    if origins.iter().any(|o| o.matches(uri)) {
        OriginCheck::Allowed
    } else {
        OriginCheck::NotAllowed
    }
}

/// What [`BearerAuth::prepare`] did with a request.
enum Prepared {
    /// Ready to send; the number of the cache entry whose token it carries, if any.
    Send(Option<NonZeroU64>),
    /// A token must be fetched first.
    Fetch,
    /// Not to be sent: its URI is relative and an allow-list is set.
    Refuse,
    /// To be sent with this DPoP-bound token and a proof.
    #[cfg(feature = "dpop")]
    Dpop(crate::Token),
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
        match self.prepare(&mut request) {
            Prepared::Send(attached) => ResponseFuture::sent(self.inner.call(request), attached),
            Prepared::Fetch => self.call_after_fetch(request),
            Prepared::Refuse => self.refuse(&request),
            #[cfg(feature = "dpop")]
            Prepared::Dpop(token) => self.call_dpop(request, token),
        }
    }
}

impl<S> BearerAuth<S> {
    /// Gets `request` ready to send without waiting: attaches the cached token, or leaves the
    /// request alone when it is not ours to authorize.
    #[inline]
    fn prepare<B>(&mut self, request: &mut Request<B>) -> Prepared {
        match self.origin_check(request) {
            OriginCheck::Allowed => {}
            OriginCheck::NotAllowed => return Prepared::Send(None),
            OriginCheck::Relative => return Prepared::Refuse,
        }
        if has_authorization(request.headers()) {
            return Prepared::Send(None);
        }
        let Some(entry) = self.reader.usable_entry() else {
            return Prepared::Fetch;
        };
        // A DPoP-bound token needs a proof, made out of line (see `auth::dpop`).
        #[cfg(feature = "dpop")]
        if entry.token().is_dpop() {
            return Prepared::Dpop(entry.token().clone());
        }
        insert_authorization(request.headers_mut(), entry.token().header_value().clone());
        Prepared::Send(Some(entry.id()))
    }
}

impl<S> BearerAuth<S> {
    /// The future for a request that is not sent: see [`RelativeUri`].
    #[cold]
    #[inline(never)]
    fn refuse<B>(&self, request: &Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        let error = RelativeUri::new(request.uri());
        ResponseFuture::refused(self.reader.cache().clone(), error.into())
    }

    /// Sends `request` with a DPoP-bound token and a proof for it; refuses it when no
    /// proof can be made (a relative URI).
    #[cfg(feature = "dpop")]
    #[cold]
    #[inline(never)]
    fn call_dpop<B>(&mut self, mut request: Request<B>, token: crate::Token) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        insert_authorization(request.headers_mut(), token.header_value().clone());
        let cache = self.reader.cache().clone();
        match super::dpop::attach_proof(&mut request, &token) {
            Ok(Some(sent)) => {
                ResponseFuture::sent_dpop(cache, self.inner.call(request), token, sent)
            }
            // A `DPoP` token always has its key; were it not bound, it would go as it is.
            Ok(None) => ResponseFuture::sent(self.inner.call(request), None),
            Err(error) => ResponseFuture::refused(cache, error.into()),
        }
    }

    /// The slow path: no usable token. The returned future waits for the fetch, then calls
    /// the service that was made ready.
    #[cold]
    #[inline(never)]
    fn call_after_fetch<B>(&mut self, request: Request<B>) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        let cache = self.reader.cache().clone();
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        ResponseFuture::fetching(cache, ready, request)
    }
}

/// Whether the caller already set an Authorization header: for the handful of headers
/// requests usually carry, comparing names costs less than hashing one (an earlier
/// `contains_key` was a third of this layer's cost in the `hot_path` bench). The entry API,
/// and appending and taking ours back out, both measured slower.
#[inline]
fn has_authorization(headers: &HeaderMap) -> bool {
    const SCAN_UP_TO: usize = 16;
    if headers.keys_len() <= SCAN_UP_TO {
        headers.keys().any(|name| name == AUTHORIZATION)
    } else {
        headers.contains_key(AUTHORIZATION)
    }
}

/// Inserts the header in a function of its own: small enough that `HeaderMap::insert` is
/// inlined into it and hashes the constant name at compile time, as it does in
/// `AddAuthorization`. Inlined into the larger `call`, the insert stays a call that hashes
/// at run time (about 35 instructions more per request in the `hot_path` bench).
#[inline(never)]
pub(super) fn insert_authorization(headers: &mut HeaderMap, value: HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

impl<S: fmt::Debug> fmt::Debug for BearerAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("cache", self.reader.cache())
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}
