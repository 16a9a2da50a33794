//! The token endpoint (RFC 6749 section 3.2): the grants, and the tokens they issue.

use std::sync::atomic::Ordering;

use http::{request, StatusCode};

use super::client_auth::HeaderCredentials;
use super::form::{param, reject_repeated, Params};
use super::rejection::{Answer, HttpResponse, Rejection};
use super::AuthState;
use crate::client_certificate::PeerCertificate;
use crate::lock;
use crate::response::{token_json, with_dpop_nonce};
use crate::token_store::RefreshRejected;

pub(super) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(super) const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Token types this server issues with `token_type` `N_A` when asked for them.
const NOT_ACCESS_TOKEN_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml2",
];

impl AuthState {
    /// A token request: the DPoP proof first, if any, then the grant; a token issued with
    /// a proof is bound to its key (RFC 9449 section 5).
    pub(super) fn token(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
        parts: &request::Parts,
    ) -> Answer {
        let proof = self.dpop_proof(parts)?;
        let jkt = proof.as_ref().map(|proof| proof.jkt.as_str());
        let mut response = self.answer(params, header, peer, jkt)?;
        if let (Some(verifier), Some(proof)) = (&self.dpop, &proof) {
            with_dpop_nonce(
                response.headers_mut(),
                verifier.nonce_to_send(proof.nonce.as_deref()),
            );
        }
        Ok(response)
    }

    /// The grant; `jkt` is the thumbprint of the request's accepted DPoP proof key.
    fn answer(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
        jkt: Option<&str>,
    ) -> Answer {
        reject_repeated(params)?;
        let grant_type = param(params, "grant_type");
        // RFC 8693 and RFC 7523 section 3.1 make client authentication optional.
        let public_allowed = matches!(grant_type, Some(TOKEN_EXCHANGE_GRANT | JWT_BEARER_GRANT));
        let unauthenticated = header.is_none()
            && param(params, "client_secret").is_none()
            && param(params, "client_assertion_type").is_none();
        let client_id = if public_allowed && unauthenticated {
            param(params, "client_id").unwrap_or_default().to_owned()
        } else {
            self.authenticate(params, header, peer)?
        };
        match grant_type {
            None => Err(Rejection::invalid_request(
                "the grant_type parameter is missing",
            )),
            Some("client_credentials") => self.client_credentials(&client_id, params, jkt),
            Some("refresh_token") => self.refresh(&client_id, params, jkt),
            Some(TOKEN_EXCHANGE_GRANT) => self.token_exchange(&client_id, params, jkt),
            Some(JWT_BEARER_GRANT) => self.jwt_bearer(params, jkt),
            Some(_) => Err(Rejection::bad_request(
                "unsupported_grant_type",
                "this server grants client_credentials, refresh_token, token exchange and \
                 jwt-bearer",
            )),
        }
    }

    /// RFC 6749 section 4.4; a refresh token, if issued, is bound to the same DPoP key as
    /// the access token.
    fn client_credentials(&self, client_id: &str, params: &Params, jkt: Option<&str>) -> Answer {
        let scope = param(params, "scope");
        if let Some(scope) = scope {
            self.check_scope(scope)?;
        }
        let refresh = self.issue_refresh_tokens.then(|| NewRefresh {
            family: self.tokens.new_family(),
            jkt: jkt.map(str::to_owned),
        });
        Ok(self.issue(client_id, scope.map(str::to_owned), jkt, refresh))
    }

    /// RFC 6749 section 6; the refresh token is rotated, the presented one dies. A
    /// DPoP-bound refresh token needs a proof with its key (RFC 9449 section 5), and its
    /// successor stays bound to that key.
    fn refresh(&self, client_id: &str, params: &Params, jkt: Option<&str>) -> Answer {
        let presented = param(params, "refresh_token")
            .ok_or_else(|| Rejection::invalid_request("the refresh_token parameter is missing"))?;
        let redeemed = self
            .tokens
            .redeem_refresh(
                presented,
                client_id,
                param(params, "scope"),
                jkt,
                self.rotate_refresh_tokens,
                self.detect_refresh_token_reuse,
            )
            .map_err(|rejected| match rejected {
                RefreshRejected::Reused => Rejection::invalid_grant(
                    "the refresh token was already used; the grant is revoked (reuse detection)",
                ),
                RefreshRejected::Unknown => Rejection::invalid_grant(
                    "the refresh token is unknown, revoked or already used",
                ),
                RefreshRejected::OtherClient => {
                    Rejection::invalid_grant("the refresh token was issued to another client")
                }
                RefreshRejected::ScopeExceeded => Rejection::invalid_scope(
                    "the requested scope exceeds the scope of the refresh token",
                ),
                RefreshRejected::DpopProofMissing => Rejection::invalid_grant(
                    "the refresh token is DPoP-bound; send a DPoP proof made with its key",
                ),
                RefreshRejected::DpopKeyMismatch => Rejection::invalid_grant(
                    "the refresh token is DPoP-bound to another key than the proof's",
                ),
            })?;
        let refresh = self.rotate_refresh_tokens.then_some(NewRefresh {
            family: redeemed.family,
            jkt: redeemed.jkt,
        });
        Ok(self.issue(client_id, redeemed.scope, jkt, refresh))
    }

    /// RFC 8693 section 2: the subject (and actor) token must be one this server issued
    /// and still honours, or a configured one.
    fn token_exchange(&self, client_id: &str, params: &Params, jkt: Option<&str>) -> Answer {
        let required = |name: &'static str| {
            param(params, name).ok_or_else(|| {
                Rejection::invalid_request(format!("the {name} parameter is missing"))
            })
        };
        let subject = required("subject_token")?;
        required("subject_token_type")?;
        if !self.is_exchangeable(subject) {
            return Err(Rejection::invalid_grant(
                "the subject_token is unknown, expired or revoked",
            ));
        }
        if let Some(actor) = param(params, "actor_token") {
            required("actor_token_type")?;
            if !self.is_exchangeable(actor) {
                return Err(Rejection::invalid_grant(
                    "the actor_token is unknown, expired or revoked",
                ));
            }
        } else if param(params, "actor_token_type").is_some() {
            return Err(Rejection::invalid_request(
                "actor_token_type was sent without actor_token",
            ));
        }
        if let Some(allowed) = &self.exchange_targets {
            let targets = params
                .iter()
                .filter(|(name, _)| name == "audience" || name == "resource");
            if let Some((name, _)) = targets.clone().find(|(_, value)| !allowed.contains(value)) {
                return Err(Rejection::bad_request(
                    "invalid_target",
                    format!("this server issues no token for that {name}"),
                ));
            }
        }
        let scope = param(params, "scope");
        if let Some(scope) = scope {
            self.check_scope(scope)?;
        }
        let requested = param(params, "requested_token_type").unwrap_or(ACCESS_TOKEN_TYPE);
        let not_access_token = NOT_ACCESS_TOKEN_TYPES.contains(&requested);
        if requested != ACCESS_TOKEN_TYPE && !not_access_token {
            return Err(Rejection::invalid_request(
                "this server issues access tokens, JWTs, ID tokens and SAML 2 assertions",
            ));
        }
        let mut response = self.issue_body(client_id, scope.map(str::to_owned), jkt, None);
        if !self.omit_issued_token_type {
            response["issued_token_type"] = requested.into();
        }
        if not_access_token {
            response["token_type"] = "N_A".into();
        }
        Ok(token_json(StatusCode::OK, &response))
    }

    fn is_exchangeable(&self, token: &str) -> bool {
        self.subject_tokens.contains(token) || self.tokens.is_valid(token)
    }

    /// RFC 7523 sections 2.1 and 3: a signed assertion from a trusted issuer is the grant.
    fn jwt_bearer(&self, params: &Params, jkt: Option<&str>) -> Answer {
        let assertion = param(params, "assertion")
            .ok_or_else(|| Rejection::invalid_request("the assertion parameter is missing"))?;
        let claims = self.verify_jwt(
            assertion,
            &self.jwt_bearer_issuers,
            Rejection::invalid_grant,
        )?;
        let subject = claims["sub"]
            .as_str()
            .ok_or_else(|| Rejection::invalid_grant("the assertion has no sub"))?;
        let scope = param(params, "scope");
        if let Some(scope) = scope {
            self.check_scope(scope)?;
        }
        Ok(self.issue(subject, scope.map(str::to_owned), jkt, None))
    }

    fn check_scope(&self, scope: &str) -> Answer<()> {
        let Some(allowed) = &self.allowed_scopes else {
            return Ok(());
        };
        if scope.split_whitespace().all(|item| allowed.contains(item)) {
            Ok(())
        } else {
            Err(Rejection::invalid_scope(
                "the requested scope is not allowed",
            ))
        }
    }

    /// A successful token response (RFC 6749 section 5.1).
    fn issue(
        &self,
        client_id: &str,
        scope: Option<String>,
        jkt: Option<&str>,
        refresh: Option<NewRefresh>,
    ) -> HttpResponse {
        token_json(
            StatusCode::OK,
            &self.issue_body(client_id, scope, jkt, refresh),
        )
    }

    /// Issues an access token, bound to the DPoP key `jkt` if given (`token_type` `DPoP`,
    /// RFC 9449 section 5), and a refresh token if asked; returns the JSON of the response.
    fn issue_body(
        &self,
        client_id: &str,
        scope: Option<String>,
        jkt: Option<&str>,
        refresh: Option<NewRefresh>,
    ) -> serde_json::Value {
        let lifetime = *lock(&self.token_lifetime);
        let access_token =
            self.tokens
                .issue_access(client_id, scope.clone(), lifetime, jkt.map(str::to_owned));
        self.tokens_issued.fetch_add(1, Ordering::SeqCst);
        let mut body = serde_json::json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": lifetime.as_secs(),
        });
        if let Some(refresh) = refresh {
            body["refresh_token"] = self
                .tokens
                .issue_refresh(client_id, scope.clone(), refresh.family, refresh.jkt)
                .into();
        }
        if let Some(scope) = scope {
            body["scope"] = scope.into();
        }
        body
    }
}

/// A refresh token to issue with an access token: the family it joins, and the DPoP key
/// its grant is bound to.
struct NewRefresh {
    family: u64,
    jkt: Option<String>,
}
