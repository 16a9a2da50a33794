//! What the auth layer does with a rejection: invalidate the token it attached, if the server
//! says that token is bad, and tell the retry layer whether a replay would carry another one.
//!
//! A rejection is a `401 Unauthorized` (RFC 6750 section 3) or, for gRPC, a `200` whose
//! headers carry `grpc-status: 16` (UNAUTHENTICATED): a trailers-only response, which is how
//! gRPC servers answer a call they refuse before running it. Only HTTP/2 responses are
//! looked at for the latter (gRPC is HTTP/2 only), so HTTP/1.1 traffic pays one comparison.

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

/// Whether `response` may be a rejection of the token; the challenge decides the rest.
#[inline]
pub(super) fn may_reject<B>(response: &Response<B>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        || (response.version() == Version::HTTP_2 && grpc_rejection(response))
}

/// Out of line, so that other responses pay only for the comparisons before it.
#[inline(never)]
fn grpc_rejection<B>(response: &Response<B>) -> bool {
    response.status() == StatusCode::OK && grpc_unauthenticated(response.headers())
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
    invalidate(response, reject);
}

/// Has the cache invalidate the token a response rejected, and marks it for the retry
/// layer; the challenge has been read already.
pub(super) fn invalidate<B>(response: &mut Response<B>, reject: impl FnOnce() -> Rejected) {
    let replay = reject() != Rejected::HeldOff;
    mark_for_replay(response, replay);
}

/// Marks a response for the retry layer: a replay would (or, with `false`, would not) go
/// out with something this request lacked, a new token or a server's nonce.
pub(super) fn mark_for_replay<B>(response: &mut Response<B>, replay: bool) {
    response.extensions_mut().insert(TokenRejected { replay });
}
