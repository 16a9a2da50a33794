use std::fmt;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use super::rejected::Protocol;
use super::{BearerAuthLayer, Origin, RelativeUri, ResponseFuture};
use crate::cache::Reader;
use crate::{BoxError, TokenCache};

/// What [`BearerAuth`] asks of the service it wraps: to be `Clone`. Every `Clone` type is
/// one; the trait exists so that wrapping a service that is not says so in the compiler's
/// error, with what to do about it.
///
/// The clone is what keeps a request that waits for a token from holding up the next
/// caller: the service made ready for it moves into its future, and a clone takes its place.
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
    fn origin_allowed<B>(&self, request: &Request<B>) -> Result<bool, RelativeUri> {
        match &self.allowed_origins {
            None => Ok(true),
            Some(origins) => check_origin(origins, request),
        }
    }
}

#[inline(never)]
fn check_origin<B>(origins: &[Origin], request: &Request<B>) -> Result<bool, RelativeUri> {
    let uri = request.uri();
    if uri.scheme().is_none() || uri.host().is_none() {
        if has_authorization(request.headers()) {
            // The caller's own credentials: not ours to check.
            return Ok(false);
        }
        return Err(RelativeUri::new(uri));
    }
    Ok(origins.iter().any(|o| o.matches(uri)))
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
        let protocol = Protocol::of(request.version());
        match self.prepare(&mut request) {
            Ok(Some(attached)) => {
                ResponseFuture::sent(self.inner.call(request), attached, protocol)
            }
            Ok(None) => self.call_after_fetch(request),
            Err(error) => ResponseFuture::refused(error),
        }
    }
}

impl<S> BearerAuth<S> {
    /// Gets `request` ready to send without waiting: attaches the cached token, or leaves the
    /// request alone when it is not ours to authorize. `Some` carries what the response
    /// future keeps to act on a rejection; `None` means a token must be fetched first.
    #[inline]
    fn prepare<B>(
        &mut self,
        request: &mut Request<B>,
    ) -> Result<Option<Option<NonZeroU64>>, RelativeUri> {
        if !self.origin_allowed(request)? || has_authorization(request.headers()) {
            return Ok(Some(None));
        }
        let Some(entry) = self.reader.usable_entry() else {
            return Ok(None);
        };
        insert_authorization(request.headers_mut(), entry.token().header_value().clone());
        Ok(Some(Some(entry.id())))
    }
}

impl<S> BearerAuth<S> {
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
