//! The API's token check: bearer tokens (RFC 6750) and DPoP-bound tokens with their proofs
//! (RFC 9449 section 7).

use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{request, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::{ApiRefusal, ApiState};
use crate::dpop::{DpopVerifier, HttpUri, ProofContext};
use crate::response::{bearer_challenge, dpop_challenge, text, with_dpop_nonce};
use crate::token_store::AccessStatus;
use crate::{lock, DpopProblem};

/// What a request presented in its `Authorization` header.
enum Presented<'a> {
    /// No header, or another scheme (say `Basic`).
    Nothing,
    Bearer(&'a str),
    Dpop(&'a str),
}

/// The authentication scheme a challenge is written in.
#[derive(Clone, Copy)]
enum Scheme {
    Bearer,
    Dpop,
}

impl Scheme {
    /// The challenge with `params` (RFC 6750 section 3, RFC 9449 section 7.1).
    fn challenge(self, params: &str) -> HeaderValue {
        match self {
            Scheme::Bearer => bearer_challenge(params),
            Scheme::Dpop => dpop_challenge(params),
        }
    }

    fn invalid_token(self, description: &str) -> HeaderValue {
        self.challenge(&format!(
            r#"error="invalid_token", error_description="{description}""#
        ))
    }
}

/// A refused request: why, and the response that says so.
struct Refused {
    refusal: ApiRefusal,
    status: StatusCode,
    challenges: Vec<HeaderValue>,
    dpop_nonce: Option<String>,
}

impl Refused {
    fn unauthorized(refusal: ApiRefusal, challenge: HeaderValue) -> Refused {
        Refused {
            refusal,
            status: StatusCode::UNAUTHORIZED,
            challenges: vec![challenge],
            dpop_nonce: None,
        }
    }

    /// A token this server does not honour: unknown, expired or revoked.
    fn invalid_token(status: &AccessStatus, scheme: Scheme) -> Refused {
        let (refusal, description) = match status {
            AccessStatus::Expired => (ApiRefusal::ExpiredToken, "the access token expired"),
            AccessStatus::Revoked => (ApiRefusal::RevokedToken, "the access token was revoked"),
            _ => (ApiRefusal::UnknownToken, "the access token is unknown"),
        };
        Refused::unauthorized(refusal, scheme.invalid_token(description))
    }

    /// A refused proof: `invalid_dpop_proof`, or `use_dpop_nonce` with the current nonce.
    fn proof(problem: DpopProblem, verifier: &DpopVerifier) -> Refused {
        let params = format!(
            r#"error="{}", error_description="{problem}""#,
            problem.error_code()
        );
        Refused {
            dpop_nonce: problem
                .is_nonce_problem()
                .then(|| verifier.current_nonce())
                .flatten(),
            ..Refused::unauthorized(ApiRefusal::Proof(problem), dpop_challenge(&params))
        }
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = text(
            self.status,
            self.status.canonical_reason().unwrap_or_default(),
        );
        let headers = response.headers_mut();
        for challenge in self.challenges {
            headers.append(WWW_AUTHENTICATE, challenge);
        }
        with_dpop_nonce(headers, self.dpop_nonce);
        response
    }
}

impl ApiState {
    /// Checks the request's token (and proof), and the scope `/admin` needs; records why a
    /// request was refused.
    pub(super) fn authorize(&self, parts: &request::Parts) -> Response<Full<Bytes>> {
        match self.check(parts) {
            Ok(dpop_nonce) => {
                let mut response = text(StatusCode::OK, "hello");
                with_dpop_nonce(response.headers_mut(), dpop_nonce);
                response
            }
            Err(refused) => {
                lock(&self.refusals).push(refused.refusal);
                refused.into_response()
            }
        }
    }

    /// `Ok` with the `DPoP-Nonce` to send, if any.
    fn check(&self, parts: &request::Parts) -> Result<Option<String>, Refused> {
        match presented(&parts.headers) {
            Presented::Nothing if self.dpop.requires_proof() => Err(Refused::unauthorized(
                ApiRefusal::NoToken,
                dpop_challenge(""),
            )),
            Presented::Nothing => Err(Refused::unauthorized(
                ApiRefusal::NoToken,
                bearer_challenge(""),
            )),
            Presented::Bearer(token) => self.check_bearer(token, parts).map(|()| None),
            Presented::Dpop(token) => self.check_dpop(token, parts),
        }
    }

    /// RFC 6750, and RFC 9449 section 7.2: a DPoP-bound token is no bearer token.
    fn check_bearer(&self, token: &str, parts: &request::Parts) -> Result<(), Refused> {
        let scope = match self.tokens.access_status(token) {
            AccessStatus::Valid { jkt: Some(_), .. } => {
                let mut refused = Refused::unauthorized(
                    ApiRefusal::DpopBoundTokenAsBearer,
                    Scheme::Bearer.invalid_token(
                        "the access token is DPoP-bound; present it with the DPoP scheme and a DPoP proof",
                    ),
                );
                refused.challenges.push(dpop_challenge(""));
                return Err(refused);
            }
            AccessStatus::Valid { .. } if self.dpop.requires_proof() => {
                return Err(Refused::unauthorized(
                    ApiRefusal::BearerNotAccepted,
                    Scheme::Dpop.invalid_token("this API accepts only DPoP-bound access tokens"),
                ));
            }
            AccessStatus::Valid { scope, .. } => scope,
            status => return Err(Refused::invalid_token(&status, Scheme::Bearer)),
        };
        check_scope(parts, scope.as_deref(), Scheme::Bearer)
    }

    /// RFC 9449 section 7.1: the proof (with `ath` for this token), then the token, then
    /// that the token is bound to the proof's key.
    fn check_dpop(&self, token: &str, parts: &request::Parts) -> Result<Option<String>, Refused> {
        let proof = DpopVerifier::proof_header(&parts.headers)
            .and_then(|proof| {
                let proof = proof.ok_or(DpopProblem::Missing)?;
                let uri = HttpUri::of_request(self.https, self.addr, parts);
                let context = ProofContext {
                    method: &parts.method,
                    uri: &uri,
                    access_token: Some(token),
                };
                self.dpop.verify(proof, &context)
            })
            .map_err(|problem| Refused::proof(problem, &self.dpop))?;
        let scope = match self.tokens.access_status(token) {
            AccessStatus::Valid {
                jkt: Some(jkt),
                scope,
            } if jkt == proof.jkt => scope,
            AccessStatus::Valid { jkt: Some(_), .. } => {
                return Err(Refused::unauthorized(
                    ApiRefusal::KeyMismatch,
                    Scheme::Dpop.invalid_token(
                        "the access token is bound to another DPoP key than the proof's",
                    ),
                ));
            }
            AccessStatus::Valid { jkt: None, .. } => {
                return Err(Refused::unauthorized(
                    ApiRefusal::UnboundTokenAsDpop,
                    Scheme::Dpop.invalid_token(
                        "the access token is not DPoP-bound; present it with the Bearer scheme",
                    ),
                ));
            }
            status => return Err(Refused::invalid_token(&status, Scheme::Dpop)),
        };
        check_scope(parts, scope.as_deref(), Scheme::Dpop)?;
        Ok(self.dpop.nonce_to_send(proof.nonce.as_deref()))
    }
}

/// `/admin` and paths under it need the `admin` scope: else 403 `insufficient_scope`.
fn check_scope(parts: &request::Parts, scope: Option<&str>, scheme: Scheme) -> Result<(), Refused> {
    let path = parts.uri.path();
    let needs_admin = path == "/admin" || path.starts_with("/admin/");
    let has_admin = scope.is_some_and(|scope| scope.split_whitespace().any(|item| item == "admin"));
    if needs_admin && !has_admin {
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            ..Refused::unauthorized(
                ApiRefusal::InsufficientScope,
                scheme.challenge(
                    r#"error="insufficient_scope", error_description="this resource needs the admin scope", scope="admin""#,
                ),
            )
        });
    }
    Ok(())
}

/// The token of an `Authorization: Bearer` or `DPoP` header; schemes are
/// case-insensitive (RFC 9110 section 11.1).
fn presented(headers: &HeaderMap) -> Presented<'_> {
    let Some((scheme, token)) = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
    else {
        return Presented::Nothing;
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(token.trim())
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Presented::Dpop(token.trim())
    } else {
        Presented::Nothing
    }
}

/// Whether the request presents its token with the `DPoP` scheme.
pub(super) fn uses_dpop_scheme(headers: &HeaderMap) -> bool {
    matches!(presented(headers), Presented::Dpop(_))
}
