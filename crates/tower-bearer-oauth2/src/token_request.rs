//! One token request, any grant: build the form, send it with the client's credentials,
//! read the answer within the endpoint's limits, retry what may be brief per the
//! [`RetryPolicy`], and turn the outcome into a token or a [`FetchError`] that says what to
//! do.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Collected, Full, LengthLimitError, Limited};
use tower::ServiceExt;
use tower_bearer::dpop::DpopKey;
use tower_bearer::{BoxError, FetchError, Token};
use zeroize::Zeroizing;

use crate::client_auth::Placement;
use crate::error::is_transient_status;
use crate::http_client::ResponseBody;
use crate::redact::Redactor;
use crate::response::{self, DpopMismatch, InvalidResponse, TokenResponseRules};
use crate::retry::{Failure, RetryReason};
use crate::server_url::ServerUrl;
use crate::token_params::TokenParams;
use crate::AuthMethod;
use crate::{BuildError, ClientAuth, Endpoint, EndpointError, OAuthError, RetryPolicy};

/// The longest `Retry-After` honoured. A misconfigured proxy asking for a day must not stop
/// token refresh for a day; the cache's own backoff still applies on top.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

pub(crate) const USER_AGENT_VALUE: &str =
    concat!("tower-bearer-oauth2/", env!("CARGO_PKG_VERSION"));

/// The request header that carries a DPoP proof (RFC 9449 section 4.1).
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// What to do when the server wants DPoP from a client without a key.
const CONFIGURE_DPOP_KEY: &str = "configure one with `ClientAuth::dpop`, such as \
                                  `.dpop(DpopKey::generate_es256()?)` on the client's \
                                  `ClientAuth`";

/// An [`Endpoint`] as one client uses it: the URLs for its client authentication, the
/// client's credentials and the grant's retry policy. What every source sends its requests
/// through.
#[derive(Clone)]
pub(crate) struct TokenEndpoint {
    endpoint: Endpoint,
    pub(crate) url: ServerUrl,
    /// The revocation endpoint (RFC 7009), when configured.
    pub(crate) revocation_url: Option<ServerUrl>,
    pub(crate) client: ClientAuth,
    pub(crate) retry: RetryPolicy,
}

/// What to ask the token endpoint for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grant<'a> {
    pub(crate) grant_type: &'a str,
    /// The grant's parameters that carry a secret, such as `("refresh_token", value)`;
    /// sent right after `grant_type`, never logged, and redacted should the server echo
    /// them in an error.
    pub(crate) secret_params: &'a [(&'a str, &'a str)],
    pub(crate) params: &'a TokenParams,
    /// The rules a success response must follow.
    pub(crate) response: TokenResponseRules,
}

impl Grant<'_> {
    fn scope(&self) -> Option<&str> {
        self.params.scope.as_deref()
    }
}

/// Whether a token request carried a DPoP proof, for reading its answer.
#[derive(Clone, Copy, Debug)]
enum Proof<'a> {
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
    fn key(self) -> Option<&'a DpopKey> {
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
enum NonceReplay {
    Unused,
    Spent,
}

/// A response, read in full within the size limit.
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    /// Zeroized on drop: on success it holds the access token (best effort; the transport
    /// may have kept copies in its own buffers).
    pub(crate) body: Zeroizing<Vec<u8>>,
    /// The secrets the request sent, to remove from the server's texts.
    pub(crate) redactor: Redactor,
}

impl TokenEndpoint {
    /// Combines `endpoint` and `client` for a grant whose retry policy is `default_retry`
    /// unless the endpoint sets one: where an invalid combination is refused.
    ///
    /// A client that uses mutual TLS talks to the server's `mtls_endpoint_aliases` (RFC 8705
    /// section 5) and needs an HTTP client that can present its certificate.
    pub(crate) fn new(
        endpoint: Endpoint,
        client: ClientAuth,
        default_retry: RetryPolicy,
    ) -> Result<Self, BuildError> {
        let method = client.method();
        let (url, revocation_url) = if method.is_mutual_tls() {
            if !endpoint.http().may_present_certificate() {
                return Err(BuildError::invalid_tls(format!(
                    "client `{}` authenticates with {method} (RFC 8705) but the endpoint's \
                     default HTTP client has no client certificate to present; give it one \
                     with `HttpClient::with_tls(ClientTls::new().identity(..))`, or pass an \
                     `HttpClient::from_service` whose TLS presents the certificate",
                    client.client_id()
                )));
            }
            endpoint.mtls_urls()?
        } else {
            endpoint.urls()
        };
        Ok(TokenEndpoint {
            retry: endpoint.retry_or(default_retry),
            endpoint,
            url,
            revocation_url,
            client,
        })
    }

    /// The limits of each request.
    pub(crate) fn limits(&self) -> crate::endpoint::Limits {
        self.endpoint.limits()
    }

    /// Asks for a token: one HTTP request, repeated per the [`RetryPolicy`] while the
    /// failure may be brief. Returns the last attempt's error.
    pub(crate) async fn request(&self, grant: Grant<'_>) -> Result<Token, FetchError> {
        // Inside the cache's `token_fetch` span: which grant, at which server, and how it
        // ended. No secret goes in a span.
        let span = tracing::debug_span!(
            "token_request",
            grant_type = grant.grant_type,
            host = self.url.uri().host().unwrap_or_default(),
            outcome = tracing::field::Empty,
        );
        let result =
            tracing::Instrument::instrument(self.request_in_span(grant), span.clone()).await;
        span.record("outcome", if result.is_ok() { "issued" } else { "failed" });
        result
    }

    async fn request_in_span(&self, grant: Grant<'_>) -> Result<Token, FetchError> {
        tracing::debug!(
            token_url = %self.url,
            client_id = %self.client.client_id(),
            grant_type = grant.grant_type,
            scope = grant.scope(),
            dpop = self.client.dpop_key().map(|key| key.algorithm()),
            "requesting a token"
        );
        let (token, attempt) = self
            .retry
            .run(self.target(), || self.attempt(grant))
            .await?;
        tracing::debug!(
            token_type = %token.token_type(),
            expires_at = ?token.expires_at(),
            attempt,
            "token endpoint issued a token"
        );
        Ok(token)
    }

    /// The token endpoint, for messages.
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            name: "token",
            url: &self.url,
        }
    }

    /// One attempt: an [`exchange`](Self::exchange), and for [`ClientAuth::secret_auto`]
    /// the fallback to post.
    ///
    /// `secret_auto` is resolved to one method for the attempt, so its answer is read for
    /// the method it sent, whatever other requests learn meanwhile. When Basic is refused
    /// with a 400 or 401 `invalid_client` (RFC 6749 section 5.2) and has not worked
    /// before, the request is sent once more with post within the attempt, sharing its one
    /// nonce replay; whatever becomes of it ends the fetch, so the fallback costs one
    /// request per fetch however many attempts the retry policy allows.
    async fn attempt(&self, grant: Grant<'_>) -> Result<Token, Failure> {
        let client = self.client.as_sent();
        let method = client.method();
        let mut nonce_replay = NonceReplay::Unused;
        let failure = match self.exchange(&client, grant, &mut nonce_replay).await {
            Ok(token) => {
                self.client.worked(method);
                return Ok(token);
            }
            Err(failure) => failure,
        };
        let Some(post) = self
            .client
            .fallback_after(method)
            .filter(|_| refused_client_authentication(&failure.error))
        else {
            return Err(failure);
        };
        tracing::debug!(
            client_id = %self.client.client_id(),
            "the token endpoint refused client_secret_basic (invalid_client); trying \
             client_secret_post once"
        );
        let token = self
            .exchange(&post, grant, &mut nonce_replay)
            .await
            .map_err(|failure| Failure::last(failure.error))?;
        self.client.worked(AuthMethod::ClientSecretPost);
        Ok(token)
    }

    /// One HTTP request within the timeout, and its answer.
    ///
    /// With a DPoP key, the request carries a proof, with the server's latest nonce if it
    /// sent one, and the nonce of every answer is kept. An answer of `use_dpop_nonce` with
    /// a new nonce (RFC 9449 section 8) is the server refusing the proof before it looked
    /// at the grant, so the request is sent once more with a proof that carries it, as part
    /// of the same attempt: the retry policy is for transient failures, and this is none.
    /// That happens once per attempt, as `nonce_replay` records.
    async fn exchange(
        &self,
        client: &ClientAuth,
        grant: Grant<'_>,
        nonce_replay: &mut NonceReplay,
    ) -> Result<Token, Failure> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", grant.grant_type)];
        form.extend(grant.secret_params.iter().copied());
        if let Some(scope) = grant.scope() {
            form.push(("scope", scope));
        }
        form.extend(
            grant
                .params
                .params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let secrets: Vec<&str> = grant
            .secret_params
            .iter()
            .map(|(_, value)| *value)
            .collect();
        let Some(key) = client.dpop_key() else {
            let response = self
                .post_form(client, self.target(), &form, &secrets)
                .await?;
            return self.interpret(grant, client, response, Proof::None);
        };
        let sent_nonce = key.nonce_for(self.url.uri());
        let response = self
            .post_with_proof(client, key, sent_nonce.as_deref(), &form, &secrets)
            .await?;
        let proof = match nonce_replay {
            NonceReplay::Unused => Proof::Sent(key),
            NonceReplay::Spent => Proof::AfterNonceReplay(key),
        };
        let new_nonce = key
            .nonce_for(self.url.uri())
            .filter(|nonce| Some(nonce) != sent_nonce.as_ref());
        let asks_for_nonce = response::asks_for_dpop_nonce(response.status, &response.body);
        let Some(new_nonce) = new_nonce.filter(|_| asks_for_nonce && proof.may_replay()) else {
            return self.interpret(grant, client, response, proof);
        };
        *nonce_replay = NonceReplay::Spent;
        tracing::debug!(
            client_id = %client.client_id(),
            "the token endpoint asked for a DPoP nonce (use_dpop_nonce); sending the request \
             once more with a proof that carries it"
        );
        let response = self
            .post_with_proof(client, key, Some(&new_nonce), &form, &secrets)
            .await?;
        self.interpret(grant, client, response, Proof::AfterNonceReplay(key))
    }

    /// [`post_form`](Self::post_form) to the token endpoint with a DPoP proof signed with
    /// `key` and carrying `nonce`; keeps the nonce of the answer, whatever its status, as
    /// servers rotate them on successful answers too.
    async fn post_with_proof(
        &self,
        client: &ClientAuth,
        key: &DpopKey,
        nonce: Option<&str>,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<RawResponse, Failure> {
        let target = self.target();
        let proof = key
            .proof(&Method::POST, self.url.uri(), None, nonce)
            .map_err(|error| {
                Failure::last(
                    FetchError::transient(format!(
                        "cannot make the DPoP proof for {target}; it will be tried again after \
                         a backoff"
                    ))
                    .with_source(error),
                )
            })?;
        let response = self
            .send_form(client, target, form, secrets, Some(proof))
            .await?;
        key.update_nonce(self.url.uri(), &response.headers);
        Ok(response)
    }

    /// Sends one form POST with the client's credentials to `target` within the timeout,
    /// and reads the answer within the size limit. `secrets` are the values in `form` that
    /// must never be printed; the answer carries them, with the client's, as its
    /// [`Redactor`].
    pub(crate) async fn post_form(
        &self,
        client: &ClientAuth,
        target: Target<'_>,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<RawResponse, Failure> {
        self.send_form(client, target, form, secrets, None).await
    }

    /// [`post_form`](Self::post_form), with a `DPoP` header when there is a proof.
    async fn send_form(
        &self,
        client: &ClientAuth,
        target: Target<'_>,
        form: &[(&str, &str)],
        secrets: &[&str],
        dpop_proof: Option<HeaderValue>,
    ) -> Result<RawResponse, Failure> {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.secret(secret);
        }
        let request = self
            .build_request(client, target, form, dpop_proof, &mut redactor)
            .map_err(Failure::last)?;
        tokio::time::timeout(self.limits().timeout, self.send(target, request, redactor))
            .await
            .map_err(|_| Failure::retryable(self.timeout_error(target), RetryReason::Timeout))?
    }

    fn build_request(
        &self,
        client: &ClientAuth,
        target: Target<'_>,
        fields: &[(&str, &str)],
        dpop_proof: Option<HeaderValue>,
        redactor: &mut Redactor,
    ) -> Result<Request<Full<Bytes>>, FetchError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        let token_url = self.url.to_string();
        let assertion_audience = self.endpoint.assertion_audience().unwrap_or(&token_url);
        let placement = client
            .apply(&mut form, assertion_audience, redactor)
            .map_err(|error| build_error(target, error))?;
        // With client_secret_post the body holds the secret.
        let body = Zeroizing::new(form.finish());

        let mut request = Request::builder()
            .method(Method::POST)
            .uri(target.url.uri().clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Placement::Header(value) = placement {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(proof) = dpop_proof {
            request = request.header(DPOP, proof);
        }
        request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|error| build_error(target, error))
    }

    async fn send(
        &self,
        target: Target<'_>,
        request: Request<Full<Bytes>>,
        redactor: Redactor,
    ) -> Result<RawResponse, Failure> {
        let response = self
            .endpoint
            .http()
            .service()
            .oneshot(request)
            .await
            .map_err(|error| {
                let reason = if is_connect_error(&*error) {
                    RetryReason::Connect
                } else {
                    RetryReason::Transport
                };
                Failure::retryable(transport_error(target, error), reason)
            })?;
        let (parts, body) = response.into_parts();
        let collected = read_limited(body, self.limits().max_response_size)
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    Failure::last(self.too_large_error(target, parts.status))
                } else {
                    Failure::retryable(transport_error(target, error), RetryReason::Transport)
                }
            })?;
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body: Zeroizing::new(Vec::from(collected.to_bytes())),
            redactor,
        })
    }

    fn interpret(
        &self,
        grant: Grant<'_>,
        client: &ClientAuth,
        response: RawResponse,
        proof: Proof<'_>,
    ) -> Result<Token, Failure> {
        let RawResponse {
            status,
            headers,
            body,
            redactor,
        } = response;
        if status.is_success() {
            return response::parse_token(
                &body,
                grant.response,
                grant.scope(),
                self.limits().default_lifetime,
                proof.key(),
                &redactor,
            )
            .map_err(|invalid| {
                Failure::last(self.invalid_response_error(client, status, invalid))
            });
        }
        let (mut error, retry) = match response::parse_error(status, &body, &redactor) {
            // Even on a 5xx or 429, these codes say the request itself is wrong.
            Some(oauth) if is_never_retried(&oauth) => {
                (self.oauth_error(grant, client, oauth), None)
            }
            Some(oauth) if is_dpop_error(&oauth) => (self.dpop_error(client, oauth, proof), None),
            Some(oauth) => (
                self.oauth_error(grant, client, oauth),
                RetryReason::for_status(status),
            ),
            None => (
                status_error(self.target(), status),
                RetryReason::for_status(status),
            ),
        };
        if error.is_transient() {
            error = with_retry_after(error, &headers);
        }
        Err(Failure { error, retry })
    }

    /// The server's error response to a request sent as `client`.
    fn oauth_error(&self, grant: Grant<'_>, client: &ClientAuth, oauth: OAuthError) -> FetchError {
        let url = &self.url;
        let client_id = client.client_id();
        // The method this request used: for `secret_auto`, Basic or post as sent.
        let method = client.method();
        let grant_type = grant.grant_type;
        // The server's code and description are the source's to print, so chain printers
        // show them once; this message says what the code means here and what to do.
        let message = match oauth.error() {
            "invalid_client" => format!(
                "the token endpoint {url} rejected the credentials of client `{client_id}`; \
                 check the client id and {}, and that the server accepts {method} client \
                 authentication for this client",
                if method.is_mutual_tls() {
                    "the TLS client certificate registered for it"
                } else {
                    "secret"
                },
            ),
            "invalid_grant" if grant.response == TokenResponseRules::TokenExchange => format!(
                "the token endpoint {url} refused the token exchange of client `{client_id}`; \
                 the subject or actor token is invalid, expired or not trusted there, so check \
                 where it comes from"
            ),
            "invalid_grant" => format!(
                "the token endpoint {url} rejected the {grant_type} grant of client \
                 `{client_id}`; the grant is invalid, expired or revoked, so get a new one"
            ),
            "unauthorized_client" => format!(
                "client `{client_id}` may not use the {grant_type} grant at {url}; allow that \
                 grant for the client at the authorization server"
            ),
            "invalid_scope" => format!(
                "the token endpoint {url} refused the scope {} for client `{client_id}`; \
                 request only scopes the client is allowed",
                grant.scope().map_or_else(
                    || "(none requested)".to_owned(),
                    |scope| format!("`{scope}`")
                )
            ),
            "unsupported_grant_type" => format!(
                "the token endpoint {url} does not support the {grant_type} grant; check the \
                 token URL and the authorization server's configuration"
            ),
            "invalid_target" => format!(
                "the token endpoint {url} will not issue a token for the requested audience or \
                 resource to client `{client_id}`; check the `audience` and `resource` values \
                 (RFC 8693 section 2.2.2)"
            ),
            "invalid_request" => format!(
                "the token endpoint {url} says the token request is malformed; check the extra \
                 parameters, audience and resource"
            ),
            _ if oauth.is_transient() => format!(
                "the token endpoint {url} could not issue a token just now; it will be asked \
                 again after a backoff"
            ),
            _ => format!(
                "the token endpoint {url} refused to issue a token to client `{client_id}`; see \
                 the authorization server's documentation of the error code it returned"
            ),
        };
        let fetch_error = if oauth.is_transient() {
            FetchError::transient(message)
        } else {
            FetchError::permanent(message)
        };
        fetch_error.with_source(oauth)
    }

    /// A refused DPoP proof (RFC 9449 sections 5 and 8), or a server that wants one from a
    /// client without a key. Never retried inside the fetch: the one nonce retry is done.
    fn dpop_error(&self, client: &ClientAuth, oauth: OAuthError, proof: Proof<'_>) -> FetchError {
        let url = &self.url;
        let client_id = client.client_id();
        let Some(key) = proof.key() else {
            return FetchError::permanent(format!(
                "the token endpoint {url} requires DPoP proofs (RFC 9449) from client \
                 `{client_id}`, which has no DPoP key; {CONFIGURE_DPOP_KEY}"
            ))
            .with_source(oauth);
        };
        if oauth.is_invalid_dpop_proof() {
            let algorithm = key.algorithm();
            return FetchError::permanent(format!(
                "the token endpoint {url} refused the DPoP proof of client `{client_id}`; \
                 check that the server accepts {algorithm} proofs (its metadata's \
                 `dpop_signing_alg_values_supported`) and DPoP for this client, and that this \
                 machine's clock is right, as each proof carries the time"
            ))
            .with_source(oauth);
        }
        match proof {
            // Asked again at once: the nonce it sent was no good for the very next request.
            Proof::AfterNonceReplay(_) => FetchError::transient(format!(
                "the token endpoint {url} asked for a new DPoP nonce (use_dpop_nonce) again, \
                 right after the request was sent once more with the nonce it had just \
                 given; the latest nonce is kept for the next fetch, after a backoff. If this \
                 persists, the server issues nonces that do not last for one request (several \
                 instances that do not share their nonce secret?)"
            ))
            .with_source(oauth),
            _ => FetchError::permanent(format!(
                "the token endpoint {url} asked for a DPoP nonce (use_dpop_nonce) without a new, \
                 valid one in a `DPoP-Nonce` header (RFC 9449 section 8), so no proof can \
                 carry it; check the server, and any proxy in front of it that may drop the \
                 header"
            ))
            .with_source(oauth),
        }
    }

    fn invalid_response_error(
        &self,
        client: &ClientAuth,
        status: StatusCode,
        invalid: InvalidResponse,
    ) -> FetchError {
        let url = &self.url;
        let client_id = client.client_id();
        match invalid.dpop {
            Some(DpopMismatch::KeyMissing) => {
                return FetchError::permanent(format!(
                    "the token endpoint {url} issued a DPoP-bound token (RFC 9449) to client \
                     `{client_id}`, which has no DPoP key, so no request could carry the \
                     token's proofs; {CONFIGURE_DPOP_KEY}"
                ))
                .with_source(EndpointError::dpop_key_missing(status));
            }
            Some(DpopMismatch::Downgrade(token_type)) => {
                return FetchError::permanent(format!(
                    "the token endpoint {url} issued a {token_type} token to client \
                     `{client_id}` though the request carried a DPoP proof (RFC 9449 section \
                     5), so the token is not used: the server ignores DPoP, or does not \
                     support it for this client. Enable DPoP for the client at the server \
                     (for example `dpop_bound_access_tokens`), or remove the DPoP key from the \
                     `ClientAuth` to use bearer tokens"
                ))
                .with_source(EndpointError::dpop_downgrade(
                    status,
                    token_type.to_string(),
                ));
            }
            None => {}
        }
        let transient = invalid.transient;
        let mut error = EndpointError::invalid_response(status, invalid.what, transient);
        if let Some(source) = invalid.source {
            error = error.with_source(source);
        }
        // What is wrong with the body is the source's to say.
        if transient {
            FetchError::transient(format!(
                "the token endpoint {url} sent no token response; it will be asked again after \
                 a backoff, and if this persists check that the URL is the token endpoint"
            ))
            .with_source(error)
        } else {
            FetchError::permanent(format!(
                "the token endpoint {url} sent a token response this client cannot use; check \
                 that the URL is an OAuth 2.0 token endpoint"
            ))
            .with_source(error)
        }
    }

    fn too_large_error(&self, target: Target<'_>, status: StatusCode) -> FetchError {
        let limit = self.limits().max_response_size;
        FetchError::permanent(format!(
            "{target} sent a response over the size limit; check the URL, or raise \
             `max_response_size` if its tokens really are that large"
        ))
        .with_source(EndpointError::too_large(status, limit))
    }

    fn timeout_error(&self, target: Target<'_>) -> FetchError {
        let timeout = self.limits().timeout;
        FetchError::transient(format!(
            "the request to {target} timed out; it will be asked again after a backoff (raise \
             `timeout` if the server is just slow)"
        ))
        .with_source(EndpointError::timeout(timeout))
    }
}

pub(crate) fn status_error(target: Target<'_>, status: StatusCode) -> FetchError {
    let name = target.name;
    let error = EndpointError::unexpected_status(status);
    if is_transient_status(status) {
        let message = if status == StatusCode::TOO_MANY_REQUESTS {
            format!(
                "{target} is rate limiting {name} requests; it will be asked again after a \
                 backoff"
            )
        } else {
            format!(
                "{target} failed the {name} request; the authorization server may be down or \
                 overloaded, it will be asked again after a backoff"
            )
        };
        return FetchError::transient(message).with_source(error);
    }
    let endpoint_advice;
    let advice = if status.is_redirection() {
        "requests to it do not follow redirects, so configure the URL it redirects to"
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        "check the client id and secret and the client authentication method"
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
        endpoint_advice =
            format!("check that the URL is the authorization server's {name} endpoint");
        &endpoint_advice
    } else {
        endpoint_advice = format!("check the {name} URL and the request parameters");
        &endpoint_advice
    };
    FetchError::permanent(format!("{target} refused the {name} request; {advice}"))
        .with_source(error)
}

fn transport_error(target: Target<'_>, error: BoxError) -> FetchError {
    let hint = if refused_client_certificate(&*error) {
        " (the server wants a TLS client certificate it accepts: check the \
         identity given to `tls`, or the certificate your `http_client` presents)"
    } else {
        ""
    };
    FetchError::transient(format!(
        "cannot reach {target}{hint}; it will be asked again after a backoff"
    ))
    .with_source(EndpointError::transport(error))
}

/// Whether the TLS handshake failed because the server asked for a client certificate
/// (RFC 8705) and got none, or none it accepts.
fn refused_client_certificate(error: &(dyn StdError + 'static)) -> bool {
    #[cfg(feature = "hyper-client")]
    {
        use rustls::AlertDescription::{BadCertificate, CertificateRequired, UnknownCA};
        let mut cause = Some(error);
        while let Some(error) = cause {
            // `io::Error::source` skips the error it wraps, so look inside explicitly.
            let inner = error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            if let Some(rustls::Error::AlertReceived(
                CertificateRequired | BadCertificate | UnknownCA,
            )) = inner.or_else(|| error.downcast_ref::<rustls::Error>())
            {
                return true;
            }
            cause = error.source();
        }
    }
    #[cfg(not(feature = "hyper-client"))]
    let _ = error;
    false
}

fn build_error(target: Target<'_>, error: impl Into<BoxError>) -> FetchError {
    FetchError::permanent(format!(
        "cannot build the request for {target}; this is a bug in tower-bearer-oauth2"
    ))
    .with_source(error)
}

/// Adds the server's `Retry-After` (capped) to a transient error.
pub(crate) fn with_retry_after(error: FetchError, headers: &HeaderMap) -> FetchError {
    match response::retry_after(headers, SystemTime::now()) {
        Some(wait) => error.with_retry_after(wait.min(MAX_RETRY_AFTER)),
        None => error,
    }
}

/// An endpoint of the authorization server, named for messages: "the token endpoint
/// https://...".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) name: &'static str,
    pub(crate) url: &'a ServerUrl,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} endpoint {}", self.name, self.url)
    }
}

/// Whether the request failed before a connection was made, so the server never saw it:
/// hyper-util's connect errors, or an I/O error saying the connection was refused.
fn is_connect_error(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        #[cfg(feature = "hyper-client")]
        if let Some(error) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
            if error.is_connect() {
                return true;
            }
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            ) {
                return true;
            }
        }
        cause = error.source();
    }
    false
}

impl fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("url", &self.url)
            .field("revocation_url", &self.revocation_url)
            .field("client", &self.client)
            .field("endpoint", &self.endpoint)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// Whether the server refused the client's authentication: an `invalid_client` error
/// response with the status RFC 6749 section 5.2 gives it, 400 or 401. The same code with
/// a 5xx is a server or proxy failing, not a verdict on the method.
fn refused_client_authentication(error: &FetchError) -> bool {
    error
        .source()
        .and_then(|source| source.downcast_ref::<OAuthError>())
        .is_some_and(|oauth| {
            oauth.is_invalid_client()
                && matches!(
                    oauth.status(),
                    StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
                )
        })
}

/// The DPoP errors of RFC 9449 sections 5 and 8, which the token request handles itself.
fn is_dpop_error(oauth: &OAuthError) -> bool {
    oauth.is_invalid_dpop_proof() || oauth.is_use_dpop_nonce()
}

/// OAuth errors that fail the same way however often they are repeated, whatever the status:
/// wrong credentials, a revoked grant, a grant or scope the client may not have.
fn is_never_retried(oauth: &OAuthError) -> bool {
    oauth.is_invalid_client()
        || oauth.is_invalid_grant()
        || oauth.is_unauthorized_client()
        || oauth.is_invalid_scope()
}

/// Reads the whole body, failing with [`LengthLimitError`] past `limit` bytes.
///
/// Boxed so the future is checked for `Send` here, where its types are concrete: inside an
/// `async fn` the compiler fails to prove `Limited`'s `Into<BoxError>` bound for every
/// lifetime when it checks the whole future for `Send`.
fn read_limited(
    body: ResponseBody,
    limit: usize,
) -> Pin<Box<dyn Future<Output = Result<Collected<Bytes>, BoxError>> + Send>> {
    Box::pin(Limited::new(body, limit).collect())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::error::Error as _;

    use http::{Request, Response};

    use super::*;
    use crate::test_support::{endpoint_source, fake, oauth_source};
    use crate::{EndpointBuilder, HttpClient};

    const URL: &str = "https://auth.example.com/oauth2/token";
    const ID: &str = "my client:1";
    const SECRET: &str = "p@ss:w%rd+ ü";

    /// One request per fetch: the tests here check what a single answer becomes.
    fn endpoint() -> EndpointBuilder {
        Endpoint::builder(URL).retry(RetryPolicy::none())
    }

    fn token_endpoint(endpoint: EndpointBuilder) -> TokenEndpoint {
        let client = ClientAuth::secret_basic(ID, SECRET).unwrap();
        TokenEndpoint::new(endpoint.build().unwrap(), client, RetryPolicy::new()).unwrap()
    }

    /// A client credentials request.
    async fn request(endpoint: &TokenEndpoint) -> Result<Token, FetchError> {
        endpoint
            .request(Grant {
                grant_type: "client_credentials",
                secret_params: &[],
                params: &TokenParams::new(),
                response: TokenResponseRules::Standard,
            })
            .await
    }

    /// The outcome of a request answered with `status`, `headers` and `body`.
    async fn fetch_with(
        endpoint: EndpointBuilder,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &'static str,
    ) -> Result<Token, FetchError> {
        let (client, _) = fake(status, headers, body);
        request(&token_endpoint(endpoint.http_client(client))).await
    }

    fn assert_no_secrets(printed: &str) {
        for secret in [SECRET, "at-s3cr3t", "p%40ss", "cCU0MHNz"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }

    #[tokio::test]
    async fn invalid_client_is_permanent_with_oauth_source() {
        let body =
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
        let error = fetch_with(endpoint(), 401, &[], body).await.unwrap_err();
        assert!(error.is_permanent());
        let oauth = oauth_source(&error);
        assert!(oauth.is_invalid_client());
        assert_eq!(oauth.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(oauth.description(), Some("Client authentication failed"));
        let message = error.to_string();
        assert!(
            message.contains("rejected the credentials of client `my client:1`"),
            "{message}"
        );
        assert!(message.contains("client_secret_basic"), "{message}");
        assert_no_secrets(&format!("{error} {error:?}"));
    }

    #[tokio::test]
    async fn oauth_errors_map_to_permanent_or_transient() {
        let permanent = [
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "invalid_scope",
            "unsupported_grant_type",
            "invalid_request",
            "access_denied",
        ];
        for code in permanent {
            let body: &'static str = Box::leak(format!(r#"{{"error":"{code}"}}"#).into_boxed_str());
            let error = fetch_with(endpoint(), 400, &[], body).await.unwrap_err();
            assert!(error.is_permanent(), "{code}: {error}");
            assert_eq!(oauth_source(&error).error(), code);
            // The code is the source's to print, not repeated in the message.
            assert!(!error.to_string().contains(code), "{error}");
            assert!(oauth_source(&error).to_string().contains(code));
        }
        let busy = fetch_with(
            endpoint(),
            400,
            &[],
            r#"{"error":"temporarily_unavailable"}"#,
        )
        .await
        .unwrap_err();
        assert!(busy.is_transient(), "{busy}");
        let server = fetch_with(endpoint(), 500, &[], r#"{"error":"invalid_request"}"#)
            .await
            .unwrap_err();
        assert!(server.is_transient(), "{server}");
    }

    #[tokio::test]
    async fn echoed_secret_is_redacted() {
        let body = r#"{"error":"invalid_client","error_description":"bad secret p@ss:w%rd+ ü"}"#;
        let error = fetch_with(endpoint(), 401, &[], body).await.unwrap_err();
        let printed = format!("{error} {error:?} {}", error.source().unwrap());
        assert_no_secrets(&printed);
        assert!(printed.contains("bad secret [redacted]"), "{printed}");
    }

    #[tokio::test]
    async fn unavailable_with_retry_after_is_transient() {
        let error = fetch_with(endpoint(), 503, &[("retry-after", "7")], "")
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(endpoint_source(&error).is_unexpected_status());

        let error = fetch_with(endpoint(), 429, &[("retry-after", "86400")], "")
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert!(error.to_string().contains("rate limiting"), "{error}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(600)));

        let error = fetch_with(endpoint(), 502, &[], "<html>Bad Gateway</html>")
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), None);
        assert_eq!(
            endpoint_source(&error).status(),
            Some(StatusCode::BAD_GATEWAY)
        );
    }

    #[tokio::test]
    async fn retry_after_is_ignored_on_permanent_errors() {
        let error = fetch_with(
            endpoint(),
            401,
            &[("retry-after", "7")],
            r#"{"error":"invalid_client"}"#,
        )
        .await
        .unwrap_err();
        assert!(error.is_permanent());
        assert_eq!(error.retry_after(), None);
    }

    #[tokio::test]
    async fn unexpected_statuses_are_permanent() {
        for (status, advice) in [
            (404, "token endpoint"),
            (302, "redirect"),
            (401, "client id and secret"),
            (418, "token URL"),
        ] {
            let error = fetch_with(endpoint(), status, &[], "<html></html>")
                .await
                .unwrap_err();
            assert!(error.is_permanent(), "{status}");
            assert!(error.to_string().contains(advice), "{error}");
            assert!(endpoint_source(&error).is_unexpected_status());
        }
    }

    #[tokio::test]
    async fn bad_success_bodies() {
        let error = fetch_with(endpoint(), 200, &[], "<html>at-s3cr3t</html>")
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(endpoint_source(&error).is_invalid_response());
        assert_no_secrets(&format!("{error} {error:?}"));

        let error = fetch_with(endpoint(), 200, &[], r#"{"access_token":"at-s3cr3t"}"#)
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{error}");
        let cause = endpoint_source(&error).to_string();
        assert!(cause.contains("`token_type` is missing"), "{cause}");
        assert!(!error.to_string().contains("token_type"), "{error}");
        assert_no_secrets(&format!("{error} {error:?}"));

        let error = fetch_with(
            endpoint(),
            200,
            &[],
            r#"{"access_token":"at-s3cr3t","token_type":"MAC"}"#,
        )
        .await
        .unwrap_err();
        assert!(error.is_permanent(), "{error}");
        let cause = endpoint_source(&error).to_string();
        assert!(cause.contains("`MAC`"), "{cause}");
    }

    #[tokio::test]
    async fn responses_over_the_limit_are_refused() {
        let body: &'static str = Box::leak(
            format!(
                r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
                "a".repeat(2000)
            )
            .into_boxed_str(),
        );
        let error = fetch_with(endpoint().max_response_size(1024), 200, &[], body)
            .await
            .unwrap_err();
        assert!(error.is_permanent());
        assert!(endpoint_source(&error).is_too_large());
        assert!(error.to_string().contains("max_response_size"), "{error}");
        assert!(
            fetch_with(endpoint().max_response_size(4096), 200, &[], body)
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_is_transient() {
        let never = tower::service_fn(|_request: Request<Full<Bytes>>| async {
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
        });
        let source = token_endpoint(
            endpoint()
                .timeout(Duration::from_secs(2))
                .http_client(HttpClient::from_service(never)),
        );
        let started = tokio::time::Instant::now();
        let error = request(&source).await.unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert!(error.is_transient());
        assert!(endpoint_source(&error).is_timeout());
        assert!(error.to_string().contains("timed out"), "{error}");
        let cause = endpoint_source(&error).to_string();
        assert!(cause.contains("within 2s"), "{cause}");
    }

    #[tokio::test]
    async fn transport_errors_are_transient_and_name_the_cause() {
        let refused = tower::service_fn(|_request: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))
        });
        let source = token_endpoint(endpoint().http_client(HttpClient::from_service(refused)));
        let error = request(&source).await.unwrap_err();
        assert!(error.is_transient());
        assert!(endpoint_source(&error).is_transport());
        assert!(error.to_string().contains("cannot reach"), "{error}");
        let cause = endpoint_source(&error).source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("connection refused"));
    }

    /// The claims of a request's DPoP proof.
    fn proof_claims(headers: &HeaderMap) -> serde_json::Value {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let proof = headers["dpop"].to_str().unwrap();
        let claims = proof.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
    }

    fn dpop_endpoint(client: HttpClient, key: &DpopKey) -> TokenEndpoint {
        let auth = ClientAuth::secret_basic(ID, SECRET)
            .unwrap()
            .dpop(key.clone());
        // The default retry policy, with attempts to spare: DPoP errors are not for it.
        let endpoint = Endpoint::builder(URL).http_client(client).build().unwrap();
        TokenEndpoint::new(endpoint, auth, RetryPolicy::new()).unwrap()
    }

    #[tokio::test]
    async fn a_dpop_client_sends_a_sensitive_proof_for_the_token_url_and_keeps_the_nonce() {
        let key = DpopKey::generate_es256().unwrap();
        let (client, seen) = fake(
            200,
            &[("dpop-nonce", "n-1")],
            r#"{"access_token":"at-s3cr3t","token_type":"DPoP"}"#,
        );
        let token = request(&dpop_endpoint(client, &key)).await.unwrap();
        assert_eq!(token.header_value(), "DPoP at-s3cr3t");
        let seen = seen.lock().unwrap()[0].clone();
        assert!(seen.headers["dpop"].is_sensitive());
        let claims = proof_claims(&seen.headers);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], URL);
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
        // The nonce of a successful answer is kept for the next proof.
        let url: http::Uri = URL.parse().unwrap();
        assert_eq!(key.nonce_for(&url).as_deref(), Some("n-1"));
    }

    #[tokio::test]
    async fn use_dpop_nonce_is_retried_once_with_the_nonce_then_is_a_transient_error() {
        let key = DpopKey::generate_ed25519().unwrap();
        let (client, seen) = fake(
            400,
            &[("dpop-nonce", "n-1")],
            r#"{"error":"use_dpop_nonce","error_description":"nonce required"}"#,
        );
        let error = request(&dpop_endpoint(client, &key)).await.unwrap_err();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "one retry, whatever the retry policy allows");
        assert!(proof_claims(&seen[0].headers).get("nonce").is_none());
        assert_eq!(proof_claims(&seen[1].headers)["nonce"], "n-1");
        assert!(error.is_transient(), "{error}");
        assert!(oauth_source(&error).is_use_dpop_nonce());
        let printed = format!("{error} {error:?}");
        for sent in &seen {
            let proof = sent.headers["dpop"].to_str().unwrap();
            assert!(!printed.contains(proof), "{printed}");
        }
        assert!(!printed.contains("n-1"), "{printed}");

        // The same nonce again: nothing new to retry with, so one request and a permanent
        // error.
        let (client, seen) = fake(
            400,
            &[("dpop-nonce", "n-1")],
            r#"{"error":"use_dpop_nonce"}"#,
        );
        let error = request(&dpop_endpoint(client, &key)).await.unwrap_err();
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(error.is_permanent(), "{error}");
        assert!(error.to_string().contains("DPoP-Nonce"), "{error}");

        // No nonce, or one that is not `1*NQCHAR`: the same.
        for headers in [&[][..], &[("dpop-nonce", "not a \"nonce\"")]] {
            let key = DpopKey::generate_es256().unwrap();
            let (client, seen) = fake(400, headers, r#"{"error":"use_dpop_nonce"}"#);
            let error = request(&dpop_endpoint(client, &key)).await.unwrap_err();
            assert_eq!(seen.lock().unwrap().len(), 1, "{headers:?}");
            assert!(error.is_permanent(), "{error}");
            assert!(!format!("{error:?}").contains("not a"), "{error:?}");
        }
    }

    #[tokio::test]
    async fn dpop_errors_without_a_key_say_how_to_configure_one() {
        for body in [
            r#"{"error":"invalid_dpop_proof"}"#,
            r#"{"error":"use_dpop_nonce"}"#,
        ] {
            let error = fetch_with(endpoint(), 400, &[("dpop-nonce", "n-1")], body)
                .await
                .unwrap_err();
            assert!(error.is_permanent(), "{error}");
            assert!(error.to_string().contains("ClientAuth::dpop"), "{error}");
        }
        let key = DpopKey::generate_es256().unwrap();
        let (client, seen) = fake(400, &[], r#"{"error":"invalid_dpop_proof"}"#);
        let error = request(&dpop_endpoint(client, &key)).await.unwrap_err();
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(error.is_permanent(), "{error}");
        assert!(error.to_string().contains("ES256"), "{error}");
    }

    #[tokio::test]
    async fn missing_expires_in_uses_the_default_lifetime() {
        let token = fetch_with(
            endpoint().default_lifetime(Duration::from_secs(90)),
            200,
            &[],
            r#"{"access_token":"t","token_type":"Bearer"}"#,
        )
        .await
        .unwrap();
        let lifetime = token.expires_at().unwrap() - tokio::time::Instant::now();
        assert!(lifetime <= Duration::from_secs(90) && lifetime > Duration::from_secs(85));
    }
}
