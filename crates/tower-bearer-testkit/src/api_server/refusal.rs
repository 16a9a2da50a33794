//! Why the mock API refused a request.

use crate::DpopProblem;

/// Why the [`ApiServer`](crate::ApiServer) refused a request, as
/// [`ApiServer::refusals`](crate::ApiServer::refusals) lists them: every 401 and 403 its
/// token check answered (not the responses injected with
/// [`respond_next`](crate::ApiServer::respond_next)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiRefusal {
    /// No `Authorization` header with the `Bearer` or `DPoP` scheme: 401 with a bare
    /// challenge.
    NoToken,
    /// The access token was not issued by the [`AuthServer`](crate::AuthServer): 401
    /// `invalid_token`.
    UnknownToken,
    /// The access token expired: 401 `invalid_token`.
    ExpiredToken,
    /// The access token was revoked: 401 `invalid_token`.
    RevokedToken,
    /// A path under `/admin` without the `admin` scope: 403 `insufficient_scope`.
    InsufficientScope,
    /// A DPoP-bound token presented with the `Bearer` scheme: 401 `invalid_token`
    /// (RFC 9449 section 7.1).
    DpopBoundTokenAsBearer,
    /// A `Bearer` token at an API that requires DPoP
    /// ([`DpopOptions::require_proof`](crate::DpopOptions::require_proof)): 401
    /// `invalid_token` with a `DPoP` challenge.
    BearerNotAccepted,
    /// A token bound to no key presented with the `DPoP` scheme: 401 `invalid_token`.
    UnboundTokenAsDpop,
    /// The token is bound to another key than the proof's: 401 `invalid_token`.
    KeyMismatch,
    /// The `DPoP` proof was refused: 401 `invalid_dpop_proof`, or `use_dpop_nonce` with a
    /// `DPoP-Nonce` header.
    Proof(DpopProblem),
}
