//! The DPoP proof of a token request (RFC 9449 section 4), checked before the grant.

use http::request;

use super::rejection::{Answer, Rejection};
use super::AuthState;
use crate::dpop::{AcceptedProof, DpopProblem, DpopVerifier, HttpUri, ProofContext};
use crate::lock;

impl AuthState {
    /// Checks the request's DPoP proof, if the server supports DPoP. `None` when there is
    /// none and none is required, or the server ignores DPoP.
    pub(super) fn dpop_proof(&self, parts: &request::Parts) -> Answer<Option<AcceptedProof>> {
        let Some(verifier) = &self.dpop else {
            return Ok(None);
        };
        let checked = DpopVerifier::proof_header(&parts.headers).and_then(|proof| match proof {
            None if verifier.requires_proof() => Err(DpopProblem::Missing),
            None => Ok(None),
            Some(proof) => {
                let uri = self.request_uri(parts);
                let context = ProofContext {
                    method: &parts.method,
                    uri: &uri,
                    access_token: None,
                };
                verifier.verify(proof, &context).map(Some)
            }
        });
        checked.map_err(|problem| {
            lock(&self.dpop_refusals).push(problem);
            let nonce = problem
                .is_nonce_problem()
                .then(|| verifier.current_nonce())
                .flatten();
            Rejection::dpop(problem, nonce)
        })
    }

    /// The URI the request was sent to, as a proof's `htu` must name it.
    fn request_uri(&self, parts: &request::Parts) -> HttpUri {
        let issuer = self.issuer.get().map(String::as_str).unwrap_or_default();
        let addr = self
            .addr
            .get()
            .copied()
            .unwrap_or(([127, 0, 0, 1], 0).into());
        HttpUri::of_request(issuer.starts_with("https://"), addr, parts)
    }
}
