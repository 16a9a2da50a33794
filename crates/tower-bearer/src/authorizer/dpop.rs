//! DPoP-bound tokens (RFC 9449): a proof with every request, the server's nonces and
//! challenges read from every response, and the nonce gate that keeps a cold burst from
//! costing a `use_dpop_nonce` round trip per request.
//!
//! Requests with such a token take the authorizer's slower path (the one a request takes
//! when it waits for a token), which keeps the bearer path free of DPoP's work: a proof is
//! a signature, far more than the rest of the layer costs.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::Uri;

use super::sent::{fingerprint, from_origin, may_reject, rejected};
use super::{Incoming, Outgoing, Verdict};
use crate::challenge::{dpop_challenge, DpopChallenge};
use crate::dpop::nonces::Gate as NonceGate;
use crate::dpop::{DpopError, DpopKey};
use crate::{Token, TokenCache};

/// `DPoP`, the proof's header (RFC 9449 section 4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// How long a request waits for its origin's first response before it goes without the
/// nonce that response may bring (and, if the server wants one, pays a replay). A first
/// response that is slow to come (a long-running call) holds the others this long at most.
const NONCE_WAIT: Duration = Duration::from_secs(2);

/// A request's place at its origin's nonce gate: for the origin's first request, what
/// lets the others go once its response is read, or it is dropped unread; for the others,
/// the nonce the gate found (`None` inside when it was not asked).
#[derive(Default)]
pub(crate) struct Gate(Option<Probe>, Option<Option<Arc<str>>>);

impl Gate {
    fn open(nonce: Option<Arc<str>>) -> Self {
        Gate(None, Some(nonce))
    }
}

struct Probe {
    key: DpopKey,
    uri: Uri,
    answered: bool,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.key.release_nonce_gate(&self.uri, self.answered);
    }
}

/// Whether a request can get its proof now.
pub(super) enum GateNow {
    Go(Gate),
    Wait,
}

/// For a request with `token` to `uri`: go now, or wait for the origin's first response.
pub(super) fn gate(token: &Token, uri: &Uri) -> GateNow {
    let Some(key) = token.dpop_key() else {
        return GateNow::Go(Gate::default());
    };
    match key.nonce_gate(uri) {
        NonceGate::Open(nonce) => GateNow::Go(Gate::open(nonce)),
        NonceGate::Probe => GateNow::Go(probe(key, uri)),
        NonceGate::Wait(_) => GateNow::Wait,
    }
}

/// Waits until a request with `token` to `uri` may go: its origin has answered once, or
/// this request is to be its first, or [`NONCE_WAIT`] has passed.
pub(super) async fn wait_for_nonce(token: &Token, uri: &Uri) -> Gate {
    let Some(key) = token.dpop_key() else {
        return Gate::default();
    };
    let deadline = tokio::time::Instant::now() + NONCE_WAIT;
    loop {
        match key.nonce_gate(uri) {
            NonceGate::Open(nonce) => return Gate::open(nonce),
            NonceGate::Probe => return probe(key, uri),
            NonceGate::Wait(mut first) => {
                // Err once the first request is done: ask again.
                let woken = tokio::time::timeout_at(deadline, first.changed()).await;
                if woken.is_err() {
                    tracing::debug!(
                        "the origin's first DPoP response is slow to come; sending without \
                         waiting for its nonce"
                    );
                    return Gate::default();
                }
            }
        }
    }
}

fn probe(key: &DpopKey, uri: &Uri) -> Gate {
    let probe = Probe {
        key: key.clone(),
        uri: uri.clone(),
        answered: false,
    };
    // The origin has answered nothing yet, so there is no nonce to send.
    Gate(Some(probe), Some(None))
}

/// What a DPoP request keeps for its response.
pub(super) struct Sent {
    token: Token,
    cache: TokenCache,
    /// Where it went, for the nonce its response brings.
    uri: Uri,
    origin: u64,
    /// The nonce its proof had.
    nonce: Option<Arc<str>>,
    gate: Gate,
}

/// Adds the proof for `token` (DPoP-bound) to `request`: signed over the request's method
/// and URI, with the token's hash and the latest nonce from its origin. `None` for a token
/// that is not bound to a key.
pub(super) fn attach_proof<R: Outgoing + ?Sized>(
    request: &mut R,
    token: Token,
    cache: TokenCache,
    mut gate: Gate,
) -> Result<Result<Sent, (Token, TokenCache)>, DpopError> {
    let Some((key, ath)) = token.dpop_binding() else {
        return Ok(Err((token, cache)));
    };
    let uri = request.uri();
    let nonce = match gate.1.take() {
        Some(found) => found,
        None => key.nonce_for(uri),
    };
    let proof = key.proof_with_ath(request.method(), uri, ath, nonce.as_deref())?;
    let uri = uri.clone();
    request.headers_mut().insert(DPOP, proof);
    Ok(Ok(Sent {
        origin: fingerprint(&uri),
        uri,
        nonce,
        token,
        cache,
        gate,
    }))
}

impl Sent {
    /// Reads a DPoP request's response: keeps a `DPoP-Nonce` the server sent (for the
    /// origin that sent it), and for a rejection from the origin the request went to, asks
    /// for one replay when the server wants a nonce this request's proof did not have, or
    /// has the cache drop the token when the server says the token is bad.
    pub(super) fn verdict<R: Incoming + ?Sized>(mut self, response: &R) -> Verdict {
        let Some(key) = self.token.dpop_key() else {
            return Verdict::Keep;
        };
        let from = response.final_uri();
        key.update_nonce(from.as_ref().unwrap_or(&self.uri), response.headers());
        if let Some(probe) = self.gate.0.as_mut() {
            probe.answered = true;
        }
        // The gate opens here, before a replay is sent: the waiting requests get the nonce.
        drop(self.gate.0.take());
        if !may_reject(response) || !from_origin(response, self.origin) {
            return Verdict::Keep;
        }
        match dpop_challenge(response.headers()) {
            DpopChallenge::NonceRequired => {
                let fresh = key.nonce_for(&self.uri);
                if fresh.is_some() && fresh != self.nonce {
                    Verdict::ReplayWithNonce
                } else {
                    tracing::debug!(
                        "the server asked for a DPoP nonce without sending one this request \
                         lacked; returning its answer"
                    );
                    Verdict::HeldOff
                }
            }
            DpopChallenge::TokenRejected => rejected(self.cache.reject(&self.token)),
            DpopChallenge::Other => Verdict::Keep,
        }
    }
}
