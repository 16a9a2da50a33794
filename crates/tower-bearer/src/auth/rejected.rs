//! What the auth layer does with a rejection: invalidate the token it attached, if the server
//! says that token is bad, and tell the retry layer whether a replay would carry another one.
//!
//! A rejection is a `401 Unauthorized` (RFC 6750 section 3) or, for gRPC, a `200` whose
//! headers carry `grpc-status: 16` (UNAUTHENTICATED): a trailers-only response, which is how
//! gRPC servers answer a call they refuse before running it. Only HTTP/2 requests are
//! looked at for the latter (gRPC is HTTP/2 only), so plain HTTP/1.1 traffic pays nothing.

use http::{Response, StatusCode, Version};

use crate::cache::Rejected;
use crate::challenge::{grpc_unauthenticated, token_rejected};

/// Put on a rejection's extensions by [`BearerAuth`](super::BearerAuth) when the server
/// rejected the token it attached. The retry layer replays only responses that carry it
/// with `replay` set, so a 401 for a token that was not ours (the caller's own header, an
/// origin outside the allow-list, no auth layer at all) is never replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenRejected {
    /// Whether a replay would go out with another token. False while the cache keeps a
    /// freshly fetched token that was rejected too (its backoff has not passed).
    pub(crate) replay: bool,
}

/// What the response future needs to know about its request to recognise a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Protocol {
    /// Only a 401 is a rejection.
    Http,
    /// An HTTP/2 request: a `200` with `grpc-status: 16` in its headers is one too.
    Http2,
}

impl Protocol {
    #[inline]
    pub(super) fn of(version: Version) -> Self {
        if version == Version::HTTP_2 {
            Protocol::Http2
        } else {
            Protocol::Http
        }
    }

    /// Whether `response` may be a rejection of the token; the challenge decides the rest.
    #[inline]
    pub(super) fn may_reject<B>(self, response: &Response<B>) -> bool {
        let status = response.status();
        status == StatusCode::UNAUTHORIZED
            || (self == Protocol::Http2
                && status == StatusCode::OK
                && grpc_unauthenticated(response.headers()))
    }
}

/// For a rejection of a request that carried our token: if the challenge says the token was
/// bad, has the cache invalidate it (`reject`) and marks the response for the retry layer.
/// A gRPC UNAUTHENTICATED usually has no `WWW-Authenticate`, which reads as "the token", as
/// a bare 401 does; one that names `insufficient_scope` is left alone.
#[cold]
#[inline(never)]
pub(super) fn on_rejection<B>(response: &mut Response<B>, reject: impl FnOnce() -> Rejected) {
    if !token_rejected(response.headers()) {
        return;
    }
    let replay = reject() != Rejected::HeldOff;
    response.extensions_mut().insert(TokenRejected { replay });
}
