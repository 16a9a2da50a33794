//! The token endpoint (RFC 6749 section 3.2): client authentication, grants, faults.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{request, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::client_auth::{header_credentials, HeaderCredentials};
use super::echo;
use super::AuthState;
use crate::client_certificate::PeerCertificate;
use crate::dpop::{
    AcceptedProof, DpopProblem, DpopVerifier, HttpUri, ProofContext, DPOP_HEADER, SIGNING_ALGS,
};
use crate::response::{oauth_error, text, token_json, with_dpop_nonce};
use crate::server::{DropConnection, Reply};
use crate::token_store::RefreshRejected;
use crate::{lock, ClientAuthMethod, Fault, TestKey, TokenRequest};

pub(super) const TOKEN_PATH: &str = "/token";
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Token types this server issues with `token_type` `N_A` when asked for them.
const NOT_ACCESS_TOKEN_TYPES: &[&str] = &[
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml2",
];
pub(super) const REVOCATION_PATH: &str = "/revoke";
/// The mTLS endpoint aliases of an HTTPS server (RFC 8705 section 5).
const MTLS_TOKEN_PATH: &str = "/mtls/token";
const MTLS_REVOCATION_PATH: &str = "/mtls/revoke";
pub(super) const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Form parameters in the order sent, decoded.
type Params = Vec<(String, String)>;

type HttpResponse = Response<Full<Bytes>>;

/// A value, or the error that ends the request.
type Answer<T = HttpResponse> = Result<T, Rejection>;

/// An RFC 6749 section 5.2 error, before it becomes a response.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    /// A `DPoP-Nonce` to send with the error (RFC 9449 section 8).
    dpop_nonce: Option<String>,
}

impl Rejection {
    fn bad_request(error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            dpop_nonce: None,
        }
    }

    /// A refused DPoP proof (RFC 9449 sections 5 and 8): 400 `invalid_dpop_proof` or
    /// `use_dpop_nonce`, the latter with the nonce to use.
    fn dpop(problem: DpopProblem, nonce: Option<String>) -> Self {
        Self {
            dpop_nonce: nonce,
            ..Self::bad_request(problem.error_code(), problem.to_string())
        }
    }

    fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request("invalid_request", description)
    }

    fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::bad_request("invalid_grant", description)
    }

    fn invalid_scope(description: &'static str) -> Self {
        Self::bad_request("invalid_scope", description)
    }

    /// Failed client authentication: 401 with a `Basic` challenge.
    fn invalid_client(description: &'static str) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            dpop_nonce: None,
        }
    }

    fn into_response(self) -> HttpResponse {
        let mut response = oauth_error(self.status, self.error, &self.description);
        with_dpop_nonce(response.headers_mut(), self.dpop_nonce);
        response
    }
}

pub(super) async fn handle(state: Arc<AuthState>, request: Request<Incoming>) -> Reply {
    let peer = request.extensions().get::<PeerCertificate>().cloned();
    if peer.is_some() && request.uri().path().starts_with("/mtls/") {
        state.mtls_alias_requests.fetch_add(1, Ordering::SeqCst);
    }
    let endpoint = match request.uri().path() {
        TOKEN_PATH => Endpoint::Token,
        REVOCATION_PATH => Endpoint::Revocation,
        MTLS_TOKEN_PATH if peer.is_some() => Endpoint::Token,
        MTLS_REVOCATION_PATH if peer.is_some() => Endpoint::Revocation,
        METADATA_PATH if request.method() == Method::GET => {
            state.metadata_requests.fetch_add(1, Ordering::SeqCst);
            return Ok(state.metadata());
        }
        _ => return Ok(text(StatusCode::NOT_FOUND, "not found")),
    };
    let counter = match endpoint {
        Endpoint::Token => &state.token_requests,
        Endpoint::Revocation => &state.revocation_requests,
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if matches!(endpoint, Endpoint::Token) && request.headers().contains_key(DPOP_HEADER) {
        state.dpop_proofs_received.fetch_add(1, Ordering::SeqCst);
    }
    let fault = lock(&state.faults).take();

    let (parts, body) = request.into_parts();
    // A client that goes away halfway through its body gets nothing back.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let form = parse_form(&parts, &body);
    let header = parts.headers.get(AUTHORIZATION).map(header_credentials);
    if let Ok(params) = &form {
        let sent = for_assertions(params, header.as_ref());
        if matches!(endpoint, Endpoint::Token) {
            lock(&state.token_auth_methods).push(sent.auth_method);
        }
        *lock(&state.last_request) = Some(sent);
    }

    let mut answer_after = None;
    match fault {
        None => {}
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::DelayAnswer(delay)) => answer_after = Some(delay),
        Some(Fault::DropConnection) => return Err(DropConnection),
        Some(Fault::Status(status)) => return Ok(injected_status(status)),
        Some(Fault::StatusRetryAfter(status, seconds)) => {
            let mut response = injected_status(status);
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
            return Ok(response);
        }
        Some(Fault::StatusRetryAfterDate(status, ahead)) => {
            let mut response = injected_status(status);
            let date = SystemTime::now()
                .checked_add(ahead)
                .map(httpdate::fmt_http_date);
            // An HTTP date is plain ASCII; a duration too long for the clock sends no header.
            if let Some(Ok(value)) = date.as_deref().map(HeaderValue::from_str) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
            return Ok(response);
        }
        Some(Fault::OAuthError { status, error }) => {
            return Ok(oauth_error(status, &error, "injected fault"));
        }
        Some(Fault::EchoRequest(echo)) => {
            let params = form.as_deref().unwrap_or_default();
            return Ok(echo::response(
                echo,
                &body,
                params,
                parts.headers.get(AUTHORIZATION),
            ));
        }
        Some(Fault::BadJson) => {
            // What a misrouted request gets from a proxy, labelled as JSON.
            let mut response = text(StatusCode::OK, "<html><body>502 Bad Gateway</body></html>");
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(response);
        }
    }

    if parts.method != Method::POST {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "this endpoint takes POST");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let answer = form.and_then(|params| match endpoint {
        Endpoint::Token => state.token(&params, header, peer.as_ref(), &parts),
        Endpoint::Revocation => state.revocation(&params, header, peer.as_ref()),
    });
    if let Some(delay) = answer_after {
        tokio::time::sleep(delay).await;
    }
    Ok(answer.unwrap_or_else(Rejection::into_response))
}

/// The endpoints that take client-authenticated form POSTs, and share the fault queue.
#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Revocation,
}

impl AuthState {
    /// RFC 7009 section 2: revokes `token` (access or refresh, whatever the hint says) and
    /// answers 200 with an empty body, also for tokens it does not know (section 2.2).
    fn revocation(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
    ) -> Answer {
        reject_repeated(params)?;
        let client_id = self.authenticate(params, header, peer)?;
        let token = param(params, "token")
            .ok_or_else(|| Rejection::invalid_request("the token parameter is missing"))?;
        match param(params, "token_type_hint") {
            None | Some("access_token" | "refresh_token") => {}
            Some(_) => {
                return Err(Rejection::bad_request(
                    "unsupported_token_type",
                    "this server revokes access_token and refresh_token",
                ))
            }
        }
        if self.tokens.revoke_as(token, &client_id) {
            self.tokens_revoked.fetch_add(1, Ordering::SeqCst);
        }
        Ok(text(StatusCode::OK, ""))
    }

    /// RFC 8414 section 3.2: this server's metadata.
    fn metadata(&self) -> HttpResponse {
        let issuer = self.issuer.get().cloned().unwrap_or_default();
        let mut body = serde_json::json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
            "token_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "revocation_endpoint_auth_methods_supported": self.auth_methods_supported(),
            "grant_types_supported": [
                "client_credentials",
                "refresh_token",
                TOKEN_EXCHANGE_GRANT,
                JWT_BEARER_GRANT,
            ],
            "response_types_supported": [],
        });
        if self.dpop.is_some() {
            body["dpop_signing_alg_values_supported"] = SIGNING_ALGS.as_slice().into();
        }
        if issuer.starts_with("https://") {
            let methods = &mut body["token_endpoint_auth_methods_supported"];
            if let Some(methods) = methods.as_array_mut() {
                methods.push("tls_client_auth".into());
                methods.push("self_signed_tls_client_auth".into());
            }
            body["mtls_endpoint_aliases"] = serde_json::json!({
                "token_endpoint": format!("{issuer}{MTLS_TOKEN_PATH}"),
                "revocation_endpoint": format!("{issuer}{MTLS_REVOCATION_PATH}"),
            });
        }
        token_json(StatusCode::OK, &body)
    }

    fn auth_methods_supported(&self) -> Vec<&'static str> {
        [
            ClientAuthMethod::Basic,
            ClientAuthMethod::Post,
            ClientAuthMethod::PrivateKeyJwt,
        ]
        .into_iter()
        .filter(|method| self.accepts(*method))
        .map(|method| match method {
            ClientAuthMethod::Basic => "client_secret_basic",
            ClientAuthMethod::Post => "client_secret_post",
            _ => "private_key_jwt",
        })
        .collect()
    }

    fn accepts(&self, method: ClientAuthMethod) -> bool {
        self.auth_methods
            .as_ref()
            .is_none_or(|methods| methods.contains(&method))
    }

    /// A token request: the DPoP proof first, if any, then the grant; a token issued with
    /// a proof is bound to its key (RFC 9449 section 5).
    fn token(
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

    /// Checks the request's DPoP proof, if the server supports DPoP. `None` when there is
    /// none and none is required, or the server ignores DPoP.
    fn dpop_proof(&self, parts: &request::Parts) -> Answer<Option<AcceptedProof>> {
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

    /// Authenticates the client (RFC 6749 section 2.3.1, RFC 8705 section 2) and returns its
    /// id.
    fn authenticate(
        &self,
        params: &Params,
        header: Option<HeaderCredentials>,
        peer: Option<&PeerCertificate>,
    ) -> Answer<String> {
        let posted_id = param(params, "client_id");
        let posted_secret = param(params, "client_secret");
        if let Some(assertion_type) = param(params, "client_assertion_type") {
            if header.is_some() || posted_secret.is_some() {
                return Err(Rejection::invalid_request(
                    "the client used more than one authentication method",
                ));
            }
            if !self.accepts(ClientAuthMethod::PrivateKeyJwt) {
                return Err(Rejection::invalid_client(
                    "this server does not accept private_key_jwt",
                ));
            }
            if assertion_type != JWT_BEARER_ASSERTION {
                return Err(Rejection::invalid_client(
                    "unsupported client_assertion_type",
                ));
            }
            let assertion = param(params, "client_assertion").ok_or_else(|| {
                Rejection::invalid_request("the client_assertion parameter is missing")
            })?;
            return self.verify_assertion(assertion, posted_id);
        }
        let (client_id, client_secret) = match header {
            Some(HeaderCredentials::Basic(credentials)) => {
                if posted_secret.is_some() {
                    return Err(Rejection::invalid_request(
                        "the client authenticated with both Basic and client_secret; use one",
                    ));
                }
                if posted_id.is_some_and(|id| id != credentials.client_id) {
                    return Err(Rejection::invalid_request(
                        "the client_id parameter differs from the Basic credentials",
                    ));
                }
                if !self.accepts(ClientAuthMethod::Basic) {
                    return Err(Rejection::invalid_client(
                        "this server does not accept client_secret_basic",
                    ));
                }
                (credentials.client_id, credentials.client_secret)
            }
            Some(HeaderCredentials::Malformed(problem)) => {
                return Err(Rejection::invalid_client(problem))
            }
            Some(HeaderCredentials::OtherScheme) => {
                return Err(Rejection::invalid_client(
                    "unsupported Authorization scheme; use Basic or client_secret_post",
                ))
            }
            None => match (posted_id, posted_secret) {
                (Some(_), Some(_)) if !self.accepts(ClientAuthMethod::Post) => {
                    return Err(Rejection::invalid_client(
                        "this server does not accept client_secret_post",
                    ));
                }
                (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
                (Some(id), None) => return self.authenticate_tls(id, peer),
                (None, Some(_)) => {
                    return Err(Rejection::invalid_request(
                        "client_secret was sent without client_id",
                    ));
                }
                (None, None) => return Err(Rejection::invalid_client("no client authentication")),
            },
        };
        match self.clients.get(&client_id) {
            None => Err(Rejection::invalid_client("unknown client")),
            Some(secret) if *secret != client_secret => {
                Err(Rejection::invalid_client("wrong client secret"))
            }
            Some(_) => Ok(client_id),
        }
    }

    /// RFC 8705 section 2: a client that sent only its id is authenticated by its TLS
    /// client certificate, if it registered one.
    fn authenticate_tls(&self, client_id: &str, peer: Option<&PeerCertificate>) -> Answer<String> {
        let registered = self
            .tls_clients
            .get(client_id)
            .ok_or(Rejection::invalid_client("the client_secret is missing"))?;
        registered.check(peer).map_err(Rejection::invalid_client)?;
        Ok(client_id.to_owned())
    }

    /// Checks a `private_key_jwt` client assertion (RFC 7523 sections 2.2 and 3) and returns
    /// the client id.
    fn verify_assertion(&self, assertion: &str, posted_id: Option<&str>) -> Answer<String> {
        let reject = Rejection::invalid_client;
        let claims = self.verify_jwt(assertion, &self.key_clients, reject)?;
        let client_id = claims["iss"].as_str().unwrap_or_default().to_owned();
        if claims["sub"] != client_id.as_str() {
            return Err(reject("the assertion sub is not the client id"));
        }
        if posted_id.is_some_and(|posted| posted != client_id) {
            return Err(reject("client_id differs from the assertion's iss"));
        }
        Ok(client_id)
    }

    /// Checks a JWT assertion (RFC 7523 section 3) from one of `issuers`: signature and
    /// `alg`, `aud` naming this server, `exp` ahead, a `jti` never seen. Returns its claims;
    /// failures are rejected with `reject`.
    fn verify_jwt(
        &self,
        assertion: &str,
        issuers: &HashMap<String, TestKey>,
        reject: fn(&'static str) -> Rejection,
    ) -> Answer<serde_json::Value> {
        let mut parts = assertion.split('.');
        let (Some(header_part), Some(claims_part), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(reject("the assertion is not a compact JWS"));
        };
        let decode_json = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        };
        let header = decode_json(header_part).ok_or(reject("the assertion header is not JSON"))?;
        let claims = decode_json(claims_part).ok_or(reject("the assertion claims are not JSON"))?;
        let issuer = claims["iss"]
            .as_str()
            .ok_or(reject("the assertion has no iss"))?;
        let key = issuers
            .get(issuer)
            .ok_or(reject("the assertion's iss is not a trusted issuer"))?;
        if header["alg"] != key.algorithm() {
            return Err(reject(
                "the assertion alg is not the issuer's key algorithm",
            ));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| reject("the assertion signature is not base64url"))?;
        let signed = &assertion[..header_part.len() + 1 + claims_part.len()];
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(reject("the assertion signature does not verify"));
        }
        let server = self.issuer.get().cloned().unwrap_or_default();
        let accepted = [
            format!("{server}{TOKEN_PATH}"),
            format!("{server}{REVOCATION_PATH}"),
            server,
        ];
        let audience_ok = match &claims["aud"] {
            serde_json::Value::String(aud) => accepted.contains(aud),
            serde_json::Value::Array(auds) => auds.iter().any(|aud| {
                aud.as_str()
                    .is_some_and(|aud| accepted.iter().any(|a| a == aud))
            }),
            _ => false,
        };
        if !audience_ok {
            return Err(reject("the assertion aud does not name this server"));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if claims["exp"].as_u64().is_none_or(|exp| exp <= now) {
            return Err(reject("the assertion is expired or has no exp"));
        }
        let jti = claims["jti"]
            .as_str()
            .ok_or(reject("the assertion has no jti"))?;
        if !lock(&self.seen_jtis).insert(jti.to_owned()) {
            return Err(reject("the assertion jti was used before"));
        }
        Ok(claims)
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

fn injected_status(status: StatusCode) -> HttpResponse {
    text(status, format!("injected fault: {status}"))
}

fn parse_form(parts: &request::Parts, body: &Bytes) -> Answer<Params> {
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| {
            media_type
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(Rejection::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Ok(form_urlencoded::parse(body).into_owned().collect())
}

/// RFC 6749 section 3.1: parameters must not be included more than once, except those
/// RFC 8693 section 2.1 and RFC 8707 let repeat.
fn reject_repeated(params: &Params) -> Answer<()> {
    for (index, (name, _)) in params.iter().enumerate() {
        if name == "audience" || name == "resource" {
            continue;
        }
        if params[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(Rejection::invalid_request(format!(
                "the {name} parameter is repeated"
            )));
        }
    }
    Ok(())
}

fn for_assertions(params: &Params, header: Option<&HeaderCredentials>) -> TokenRequest {
    let auth_method = match header {
        Some(HeaderCredentials::Basic(_) | HeaderCredentials::Malformed(_)) => {
            ClientAuthMethod::Basic
        }
        _ if param(params, "client_assertion").is_some() => ClientAuthMethod::PrivateKeyJwt,
        _ if param(params, "client_secret").is_some() => ClientAuthMethod::Post,
        _ => ClientAuthMethod::None,
    };
    let client_id = match header {
        Some(HeaderCredentials::Basic(credentials)) => Some(credentials.client_id.clone()),
        _ => param(params, "client_id").map(str::to_owned),
    };
    TokenRequest {
        grant_type: param(params, "grant_type").unwrap_or_default().to_owned(),
        client_id,
        auth_method,
        scope: param(params, "scope").map(str::to_owned),
        params: params
            .iter()
            .filter(|(name, _)| name != "client_secret")
            .cloned()
            .collect(),
    }
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}
