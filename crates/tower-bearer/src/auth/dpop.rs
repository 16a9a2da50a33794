//! DPoP-bound tokens (RFC 9449) in the auth layer: a proof with every request, and the
//! server's nonces and challenges read from every response.
//!
//! Requests with such a token take the auth layer's slower path (the one a request takes
//! when it waits for a token), which keeps the bearer path free of DPoP's work: a proof is
//! a signature, far more than the rest of the layer costs.

use http::header::HeaderName;
use http::{Request, Response, Uri};

use super::rejected::{invalidate, mark_for_replay, may_reject};
use crate::cache::Rejected;
use crate::challenge::{dpop_challenge, DpopChallenge};
use crate::dpop::DpopError;
use crate::Token;

/// `DPoP`, the proof's header (RFC 9449 section 4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// What a DPoP request keeps for its response: where it went, and the nonce its proof had.
/// The key is the token's, which the response future keeps too.
pub(super) struct Sent {
    uri: Uri,
    nonce: Option<std::sync::Arc<str>>,
}

/// Adds the proof for `token` to `request`, if the token is DPoP-bound: signed over the
/// request's method and URI, with the token's hash and the latest nonce from its origin.
pub(super) fn attach_proof<B>(
    request: &mut Request<B>,
    token: &Token,
) -> Result<Option<Sent>, DpopError> {
    let Some((key, ath)) = token.dpop_binding() else {
        return Ok(None);
    };
    let nonce = key.nonce_for(request.uri());
    let proof = key.proof_with_ath(request.method(), request.uri(), ath, nonce.as_deref())?;
    request.headers_mut().insert(DPOP, proof);
    Ok(Some(Sent {
        uri: request.uri().clone(),
        nonce,
    }))
}

/// Reads a DPoP request's response: keeps a `DPoP-Nonce` the server sent, and for a 401
/// (or gRPC's UNAUTHENTICATED) marks it for one replay when the server wants a nonce this
/// request's proof did not have, or has the cache drop the token when the server says the
/// token is bad.
pub(super) fn on_response<B>(
    response: &mut Response<B>,
    token: &Token,
    sent: &Sent,
    reject: impl FnOnce() -> Rejected,
) {
    let Some(key) = token.dpop_key() else {
        return;
    };
    key.update_nonce(&sent.uri, response.headers());
    if !may_reject(response) {
        return;
    }
    match dpop_challenge(response.headers()) {
        DpopChallenge::NonceRequired => {
            let fresh = key.nonce_for(&sent.uri);
            let replay = fresh.is_some() && fresh != sent.nonce;
            if !replay {
                tracing::debug!(
                    "the server asked for a DPoP nonce without sending one this request lacked; \
                     returning its answer"
                );
            }
            mark_for_replay(response, replay);
        }
        DpopChallenge::TokenRejected => invalidate(response, reject),
        DpopChallenge::Other => {}
    }
}
