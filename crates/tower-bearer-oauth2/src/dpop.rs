//! The DPoP exchange of a token request (RFC 9449): a proof with each request, carrying the
//! server's latest nonce; the nonce of every answer kept; and the one replay of a request
//! the server refused for want of a new nonce.

use std::future::Future;

use http::{HeaderName, HeaderValue, Method};
use tower_bearer::dpop::DpopKey;

use crate::messages;
use crate::response;
use crate::retry::Failure;
use crate::transport::{RawResponse, Target};

/// The request header that carries a DPoP proof (RFC 9449 section 4.1).
pub(crate) const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Whether a token request carried a DPoP proof, for reading its answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Proof<'a> {
    /// No proof: the client has no DPoP key.
    None,
    /// A proof signed with this key, in an attempt that has not replayed a request for a
    /// nonce yet.
    Sent(&'a DpopKey),
    /// A proof signed with this key, after the attempt's one replay for a nonce: this
    /// request is that replay, carrying the nonce the server had just given, or the
    /// `secret_auto` fallback after it, carrying the latest nonce. Not replayed again.
    AfterNonceReplay(&'a DpopKey),
}

impl<'a> Proof<'a> {
    pub(crate) fn key(self) -> Option<&'a DpopKey> {
        match self {
            Proof::None => None,
            Proof::Sent(key) | Proof::AfterNonceReplay(key) => Some(key),
        }
    }

    /// Whether a `use_dpop_nonce` answer to this request may be sent once more.
    fn may_replay(self) -> bool {
        matches!(self, Proof::Sent(_))
    }
}

/// Whether an attempt has used its one replay for a DPoP nonce (RFC 9449 section 8), so
/// that neither the retry policy nor the `secret_auto` fallback multiplies them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NonceReplay {
    Unused,
    Spent,
}

/// Sends a request to `target` through `send` with a proof signed with `key`, carrying the
/// server's latest nonce if it sent one, and returns the answer with the proof it
/// answered.
///
/// An answer of `use_dpop_nonce` with a new nonce (RFC 9449 section 8) is the server
/// refusing the proof before it looked at the grant, so the request is sent once more with
/// a proof that carries it, as part of the same attempt: the retry policy is for transient
/// failures, and this is none. That happens once per attempt, as `nonce_replay` records.
/// `client_id` names the client in the log.
pub(crate) async fn exchange<'k, F, Fut>(
    key: &'k DpopKey,
    target: Target<'_>,
    client_id: &str,
    nonce_replay: &mut NonceReplay,
    mut send: F,
) -> Result<(RawResponse, Proof<'k>), Failure>
where
    F: FnMut(HeaderValue) -> Fut,
    Fut: Future<Output = Result<RawResponse, Failure>>,
{
    let url = target.url.uri();
    let sent_nonce = key.nonce_for(url);
    let response = send_with_proof(key, target, sent_nonce.as_deref(), &mut send).await?;
    let proof = match nonce_replay {
        NonceReplay::Unused => Proof::Sent(key),
        NonceReplay::Spent => Proof::AfterNonceReplay(key),
    };
    let new_nonce = key
        .nonce_for(url)
        .filter(|nonce| Some(nonce) != sent_nonce.as_ref());
    let asks_for_nonce = response::asks_for_dpop_nonce(response.status, &response.body);
    let Some(new_nonce) = new_nonce.filter(|_| asks_for_nonce && proof.may_replay()) else {
        return Ok((response, proof));
    };
    *nonce_replay = NonceReplay::Spent;
    tracing::debug!(
        client_id = %client_id,
        "the token endpoint asked for a DPoP nonce (use_dpop_nonce); sending the request \
         once more with a proof that carries it"
    );
    let response = send_with_proof(key, target, Some(&new_nonce), &mut send).await?;
    Ok((response, Proof::AfterNonceReplay(key)))
}

/// `send` with a proof signed with `key` and carrying `nonce`; keeps the nonce of the
/// answer, whatever its status, as servers rotate them on successful answers too.
async fn send_with_proof<F, Fut>(
    key: &DpopKey,
    target: Target<'_>,
    nonce: Option<&str>,
    send: &mut F,
) -> Result<RawResponse, Failure>
where
    F: FnMut(HeaderValue) -> Fut,
    Fut: Future<Output = Result<RawResponse, Failure>>,
{
    let url = target.url.uri();
    let proof = key
        .proof(&Method::POST, url, None, nonce)
        .map_err(|error| Failure::last(messages::proof_failed(target, error)))?;
    let response = send(proof).await?;
    key.update_nonce(url, &response.headers);
    Ok(response)
}
