//! DPoP (RFC 9449) as the mock servers check it: proofs, key thumbprints, nonces.
//!
//! A proof is a compact JWS in the request's `DPoP` header. A server refuses it (with the
//! [`DpopProblem`] of the first check that fails) unless:
//!
//! - there is one `DPoP` header, three base64url parts without padding, JSON header and
//!   claims;
//! - the header's `typ` is `dpop+jwt`, `alg` is `ES256` or `EdDSA`, and `jwk` is a public
//!   P-256 `EC` or `Ed25519` `OKP` key (no `d`) that fits `alg` and verifies the signature
//!   (for `ES256` the 64-byte `r || s` form);
//! - the claims hold a `jti`, `htm` equal to the request method, `htu` equal to the
//!   request's URI without query and fragment (scheme and host compared without regard to
//!   case, default ports dropped), and `iat` within the window of the wall clock;
//! - when the server requires nonces, `nonce` is one it issued and still accepts;
//! - at a resource server, `ath` is the base64url SHA-256 of the presented access token;
//! - the `jti` was not accepted before within the window.
//!
//! The proof's key is then named by its RFC 7638 thumbprint ([`jwk_thumbprint`]), the `jkt`
//! that a DPoP-bound token is bound to. [`DpopProofVerifier`] makes the same checks for a
//! server a test writes itself.

mod htu;
mod jwk;
mod nonce;
mod options;
mod problem;
mod proof_verifier;
mod replay;
mod verifier;

pub(crate) use htu::HttpUri;
pub use jwk::jwk_thumbprint;
pub use options::{DpopNoncePolicy, DpopOptions};
pub use problem::DpopProblem;
pub use proof_verifier::DpopProofVerifier;
pub(crate) use verifier::{
    AcceptedProof, DpopVerifier, ProofContext, DPOP_HEADER, DPOP_NONCE_HEADER,
};

/// The algorithms the servers verify, as `dpop_signing_alg_values_supported` (RFC 9449
/// section 5.1) and the `algs` of a `DPoP` challenge (section 7.1) name them.
pub(crate) const SIGNING_ALGS: [&str; 2] = ["ES256", "EdDSA"];
