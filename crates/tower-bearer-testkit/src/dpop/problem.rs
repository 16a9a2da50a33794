//! Why a DPoP proof was refused.

use std::fmt;

/// Why the mock servers refused a DPoP proof (RFC 9449 section 4.3), one variant per check.
///
/// The servers send [`error_code`](Self::error_code) as the OAuth `error` and the
/// [`Display`](fmt::Display) text as its `error_description`, and record each refusal for
/// [`AuthServer::dpop_refusals`](crate::AuthServer::dpop_refusals) and
/// [`ApiServer::refusals`](crate::ApiServer::refusals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpopProblem {
    /// The server requires DPoP and the request carried no `DPoP` header.
    Missing,
    /// The request carried more than one `DPoP` header.
    Multiple,
    /// The `DPoP` header is not a compact JWS: three base64url parts without padding, the
    /// first two JSON objects (or it is longer than 8 KiB).
    Malformed,
    /// The JOSE header's `typ` is not `dpop+jwt`.
    WrongType,
    /// The JOSE header's `alg` is missing or neither `ES256` nor `EdDSA`.
    UnsupportedAlgorithm,
    /// The JOSE header has no `jwk` object.
    MissingKey,
    /// The `jwk` holds a private key (a `d` member).
    PrivateKey,
    /// The `jwk` is neither a P-256 `EC` key nor an `Ed25519` `OKP` key.
    UnsupportedKey,
    /// The `jwk`'s coordinates are not base64url of 32 bytes each.
    MalformedKey,
    /// The `alg` does not fit the `jwk` (`ES256` needs P-256, `EdDSA` Ed25519).
    AlgorithmKeyMismatch,
    /// The signature does not verify with the `jwk`.
    BadSignature,
    /// A required claim is missing or has the wrong JSON type; holds the claim's name
    /// (`jti`, `htm`, `htu`, `iat`, or `ath` at a resource server).
    MissingClaim(&'static str),
    /// `htm` is not the request's method.
    WrongMethod,
    /// `htu` is not the request's URI (without query and fragment).
    WrongUri,
    /// `iat` is further in the past than the server's window allows.
    IssuedTooLongAgo,
    /// `iat` is further in the future than the server's window allows.
    IssuedInTheFuture,
    /// The `jti` was seen before, within the window.
    Replayed,
    /// `ath` is not the base64url SHA-256 of the access token presented with the proof.
    WrongAccessTokenHash,
    /// The server requires a nonce and the proof has no `nonce` claim.
    MissingNonce,
    /// The proof's `nonce` is not one the server currently accepts.
    StaleNonce,
}

impl DpopProblem {
    /// The OAuth error code for this problem (RFC 9449 sections 5, 7.1, 8 and 9):
    /// `use_dpop_nonce` for [`MissingNonce`](Self::MissingNonce) and
    /// [`StaleNonce`](Self::StaleNonce), else `invalid_dpop_proof`.
    pub fn error_code(self) -> &'static str {
        if self.is_nonce_problem() {
            "use_dpop_nonce"
        } else {
            "invalid_dpop_proof"
        }
    }

    /// Whether the client can fix this by retrying with the nonce from the `DPoP-Nonce`
    /// header of the refusal.
    pub fn is_nonce_problem(self) -> bool {
        matches!(self, DpopProblem::MissingNonce | DpopProblem::StaleNonce)
    }
}

impl fmt::Display for DpopProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            DpopProblem::Missing => "this server requires a DPoP proof in a DPoP header",
            DpopProblem::Multiple => "the request carried more than one DPoP header",
            DpopProblem::Malformed => {
                "the DPoP proof is not a compact JWS of base64url parts with a JSON header and claims"
            }
            DpopProblem::WrongType => "the DPoP proof's typ is not dpop+jwt",
            DpopProblem::UnsupportedAlgorithm => {
                "the DPoP proof's alg is not one this server supports (ES256, EdDSA)"
            }
            DpopProblem::MissingKey => "the DPoP proof's header has no jwk",
            DpopProblem::PrivateKey => "the DPoP proof's jwk contains a private key",
            DpopProblem::UnsupportedKey => {
                "the DPoP proof's jwk is neither a P-256 EC key nor an Ed25519 OKP key"
            }
            DpopProblem::MalformedKey => {
                "the DPoP proof's jwk coordinates are not base64url of 32 bytes"
            }
            DpopProblem::AlgorithmKeyMismatch => "the DPoP proof's alg does not fit its jwk",
            DpopProblem::BadSignature => "the DPoP proof's signature does not verify",
            DpopProblem::MissingClaim(claim) => {
                return write!(f, "the DPoP proof has no valid {claim} claim");
            }
            DpopProblem::WrongMethod => "the DPoP proof's htm is not the request's method",
            DpopProblem::WrongUri => "the DPoP proof's htu is not the request's URI",
            DpopProblem::IssuedTooLongAgo => "the DPoP proof's iat is too far in the past",
            DpopProblem::IssuedInTheFuture => "the DPoP proof's iat is too far in the future",
            DpopProblem::Replayed => "the DPoP proof's jti was used before",
            DpopProblem::WrongAccessTokenHash => {
                "the DPoP proof's ath is not the hash of the access token"
            }
            DpopProblem::MissingNonce => "this server requires a nonce in the DPoP proof",
            DpopProblem::StaleNonce => "the DPoP proof's nonce is not the current one",
        };
        f.write_str(text)
    }
}

impl std::error::Error for DpopProblem {}
