//! What the auth layer does with a 401: invalidate the token it attached, if the server says
//! that token is bad, and tell the retry layer whether a replay would carry another one.

use http::Response;

use crate::cache::Rejected;
use crate::challenge::token_rejected;

/// Put on a 401's extensions by [`BearerAuth`](super::BearerAuth) when the server rejected
/// the token it attached. The retry layer replays only responses that carry it with
/// `replay` set, so a 401 for a token that was not ours (the caller's own header, an origin
/// outside the allow-list, no auth layer at all) is never replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenRejected {
    /// Whether a replay would go out with another token. False while the cache keeps a
    /// freshly fetched token that was rejected too (its backoff has not passed).
    pub(crate) replay: bool,
}

/// For a 401 to a request that carried our token: if the challenge says the token was bad,
/// has the cache invalidate it (`reject`) and marks the response for the retry layer.
#[cold]
#[inline(never)]
pub(super) fn on_unauthorized<B>(response: &mut Response<B>, reject: impl FnOnce() -> Rejected) {
    if !token_rejected(response.headers()) {
        return;
    }
    let replay = reject() != Rejected::HeldOff;
    response.extensions_mut().insert(TokenRejected { replay });
}
