//! The mock servers' proof checks, for a server a test writes itself.

use http::{HeaderMap, Method};

use super::{DpopOptions, DpopProblem, DpopVerifier, HttpUri, ProofContext};

/// Checks DPoP proofs (RFC 9449 section 4.3) exactly as [`AuthServer`](crate::AuthServer)
/// and [`ApiServer`](crate::ApiServer) do, for a server of your own: say, a resource
/// server in a test that accepts tokens from another authorization server and must check
/// the proofs that come with them.
///
/// One verifier is one server: it remembers the `jti`s it accepted (so a replayed proof is
/// refused) and, with [`DpopOptions::require_nonce`], issues the nonces proofs must carry
/// ([`nonce`](Self::nonce); send it in a `DPoP-Nonce` header yourself). The key binding is
/// the caller's to check: compare the thumbprint [`verify`](Self::verify) returns with the
/// token's `cnf.jkt`.
///
/// ```
/// use http::{HeaderMap, Method};
/// use tower_bearer_testkit::{DpopOptions, DpopProblem, DpopProofVerifier};
///
/// let verifier = DpopProofVerifier::new(DpopOptions::new());
/// let refused = verifier.verify(
///     &Method::GET,
///     "http://127.0.0.1:8080/things",
///     &HeaderMap::new(),
///     Some("the-access-token"),
/// );
/// assert_eq!(refused, Err(DpopProblem::Missing));
/// ```
#[derive(Debug)]
pub struct DpopProofVerifier {
    verifier: DpopVerifier,
}

impl DpopProofVerifier {
    /// A verifier with these options; [`require_proof`](DpopOptions::require_proof) has no
    /// effect here, as [`verify`](Self::verify) always wants a proof.
    pub fn new(options: DpopOptions) -> DpopProofVerifier {
        DpopProofVerifier {
            verifier: DpopVerifier::new(options),
        }
    }

    /// Checks the one `DPoP` header in `headers` for a request of `method` to `uri` (the
    /// absolute URI the request was sent to; query and fragment are ignored) and returns
    /// the RFC 7638 thumbprint of the proof's key.
    ///
    /// `access_token` is the token presented with the proof at a resource server, whose
    /// hash `ath` must be; `None` at a token endpoint. No `DPoP` header is
    /// [`DpopProblem::Missing`]; a `uri` that is not an absolute `http` or `https` URI is
    /// [`DpopProblem::WrongUri`]. Otherwise the first check that fails, in the order of RFC
    /// 9449 section 4.3; an accepted proof's `jti` is remembered, and its nonce counted.
    pub fn verify(
        &self,
        method: &Method,
        uri: &str,
        headers: &HeaderMap,
        access_token: Option<&str>,
    ) -> Result<String, DpopProblem> {
        let proof = DpopVerifier::proof_header(headers)?.ok_or(DpopProblem::Missing)?;
        let uri = HttpUri::parse(uri).ok_or(DpopProblem::WrongUri)?;
        let context = ProofContext {
            method,
            uri: &uri,
            access_token,
        };
        self.verifier
            .verify(proof, &context)
            .map(|accepted| accepted.jkt)
    }

    /// The nonce proofs must carry now, when the options require nonces.
    pub fn nonce(&self) -> Option<String> {
        self.verifier.current_nonce()
    }
}
