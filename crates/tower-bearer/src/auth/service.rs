use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response};
use tower_service::Service;

use super::{BearerAuthLayer, Origin, ResponseFuture};
use crate::cache::Reader;
use crate::used_token::{RejectedToken, UsedTokenSlot};
use crate::{BoxError, Token, TokenCache};

/// Adds a bearer token to each request; built by [`BearerAuthLayer`].
#[derive(Clone)]
pub struct BearerAuth<S> {
    inner: S,
    reader: Reader,
    allowed_origins: Option<Arc<[Origin]>>,
}

impl<S> BearerAuth<S> {
    /// Wraps `inner`, attaching tokens from `cache` to every request.
    pub fn new(inner: S, cache: TokenCache) -> Self {
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

    #[inline]
    fn origin_allowed<B>(&self, request: &Request<B>) -> bool {
        match &self.allowed_origins {
            None => true,
            Some(origins) => origins.iter().any(|o| o.matches(request.uri())),
        }
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
        match self.prepare(&mut request) {
            Prepared::Send(attached) => ResponseFuture::sent(self.inner.call(request), attached),
            Prepared::Fetch => self.call_after_fetch(request),
        }
    }
}

impl<S> BearerAuth<S> {
    /// Gets `request` ready to send if it can be without waiting: attaches the cached token,
    /// or leaves the request alone when it is not ours to authorize. `false` means a token
    /// must be fetched first.
    #[inline]
    fn prepare<B>(&mut self, request: &mut Request<B>) -> Prepared {
        // Extensions carry what the retry layer passes (see `used_token`); most requests
        // have none, and then there is nothing to look up.
        let extensions = !request.extensions().is_empty();
        if extensions {
            self.invalidate_rejected(request);
        }
        if !self.origin_allowed(request) {
            return Prepared::Send(None);
        }
        match self.reader.usable_token() {
            Some((token, cache, generation)) => {
                // One lookup: append, and in the rare case that the caller had set the
                // header, take ours out again.
                if append_authorization(request.headers_mut(), token.header_value().clone()) {
                    remove_last_authorization(request.headers_mut());
                    return Prepared::Send(None);
                }
                if extensions {
                    record_used(request, token, cache);
                }
                Prepared::Send(Some(RejectedToken { generation }))
            }
            None if request.headers().contains_key(AUTHORIZATION) => Prepared::Send(None),
            None => Prepared::Fetch,
        }
    }

    /// On a replay after a 401: invalidates the token the 401 rejected, if it came from this
    /// layer's cache.
    #[cold]
    #[inline(never)]
    fn invalidate_rejected<B>(&self, request: &mut Request<B>) {
        if let Some(rejected) = request.extensions_mut().remove::<RejectedToken>() {
            self.reader
                .cache()
                .invalidate_generation(rejected.generation);
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

/// Puts the token on the request, and tells a retry layer outside which token it was.
/// What `call` does with a request.
enum Prepared {
    /// Send it now; with the token attached, if one was.
    Send(Option<RejectedToken>),
    /// Wait for a token first.
    Fetch,
}

/// Attaches a token that was fetched for this request; the mark for a 401, if the token is
/// still the cached one.
pub(super) fn attach<B>(
    request: &mut Request<B>,
    token: &Token,
    cache: &TokenCache,
) -> Option<RejectedToken> {
    insert_authorization(request.headers_mut(), token.header_value().clone());
    record_used(request, token, cache);
    cache
        .generation_of(token)
        .map(|generation| RejectedToken { generation })
}

/// Tells a retry layer outside, if there is one, which token the request carries.
/// Appends the header; `true` if the caller had already set one (ours is then the last of
/// its values), as `HeaderMap::append` says.
///
/// In a function of its own: small enough that `HeaderMap::append` is inlined into it and
/// hashes the constant name at compile time, as `AddAuthorization` does. Inlined into the
/// larger `call`, it stays a call that hashes at run time (about 35 instructions more per
/// request in the `hot_path` bench).
#[inline(never)]
fn append_authorization(headers: &mut HeaderMap, value: HeaderValue) -> bool {
    headers.append(AUTHORIZATION, value)
}

/// Takes our value back out after the caller turned out to have set the header, keeping
/// the caller's values in their order.
#[cold]
#[inline(never)]
fn remove_last_authorization(headers: &mut HeaderMap) {
    if let http::header::Entry::Occupied(entry) = headers.entry(AUTHORIZATION) {
        let (_, values) = entry.remove_entry_mult();
        let mut values: Vec<HeaderValue> = values.collect();
        values.pop();
        for value in values {
            headers.append(AUTHORIZATION, value);
        }
    }
}

/// Inserts the header after a fetch (the caller's own header was checked before).
fn insert_authorization(headers: &mut HeaderMap, value: HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

#[inline]
fn record_used<B>(request: &Request<B>, token: &Token, cache: &TokenCache) {
    if let Some(slot) = request.extensions().get::<UsedTokenSlot>() {
        slot.record(token, cache);
    }
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
