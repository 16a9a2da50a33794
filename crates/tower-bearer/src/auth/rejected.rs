//! How the auth layer tells the retry layer outside it what a response said about the
//! token: a marker in the response's extensions, which the [`Authorizer`]'s verdict decides.
//!
//! [`Authorizer`]: crate::authorizer::Authorizer

use http::Response;

use crate::authorizer::Verdict;

/// Put on a rejection's extensions by [`BearerAuth`](super::BearerAuth) when the server
/// rejected the token it attached. The retry layer replays only responses that carry it
/// with `replay` set, so a 401 for a token that was not ours (the caller's own header, an
/// origin outside the allow-list, another origin after a redirect, no auth layer at all)
/// is never replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenRejected {
    /// Whether a replay would go out with something this request lacked: another token, or
    /// the server's nonce. False while the cache keeps a freshly fetched token that was
    /// rejected too (its backoff has not passed).
    pub(crate) replay: bool,
}

/// Marks a response the verdict says rejected the token.
pub(super) fn mark<B>(response: &mut Response<B>, verdict: Verdict) {
    if verdict != Verdict::Keep {
        response.extensions_mut().insert(TokenRejected {
            replay: verdict.replay(),
        });
    }
}
