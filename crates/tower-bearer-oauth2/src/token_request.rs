//! One token request, any grant: build the form, send it with the client's credentials
//! (through the [DPoP exchange](crate::dpop) when the client has a key), retry what may be
//! brief per the [`RetryPolicy`], and turn the answer into a token or a [`FetchError`].

use std::error::Error as _;
use std::fmt;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use tower_bearer::{FetchError, Token};
use zeroize::Zeroizing;

use crate::client_auth::Placement;
use crate::dpop::{self, NonceReplay, Proof, DPOP};
use crate::messages::{self, Asked};
use crate::redact::Redactor;
use crate::response::{self, ErrorResponse, TokenResponseRules};
use crate::retry::{Failure, RetryReason};
use crate::server_url::ServerUrl;
use crate::token_params::TokenParams;
use crate::transport::{RawResponse, Target, Transport, TransportError};
use crate::AuthMethod;
use crate::{BuildError, ClientAuth, Endpoint, OAuthError, RetryPolicy};

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
            if !endpoint.transport().http().may_present_certificate() {
                return Err(messages::mtls_without_certificate(
                    client.client_id(),
                    method,
                ));
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

    /// The HTTP client and the timeout of each request.
    pub(crate) fn transport(&self) -> &Transport {
        self.endpoint.transport()
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

    /// One request within the timeout, or two when the client's DPoP key needs a new nonce
    /// ([`dpop::exchange`]), and its answer.
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
        let target = self.target();
        let (response, proof) = match client.dpop_key() {
            None => {
                let response = self.post_form(client, target, &form, &secrets).await?;
                (response, Proof::None)
            }
            Some(key) => {
                let (form, secrets) = (&form, &secrets);
                dpop::exchange(
                    key,
                    target,
                    client.client_id(),
                    nonce_replay,
                    move |proof| self.send_form(client, target, form, secrets, Some(proof)),
                )
                .await?
            }
        };
        self.interpret(grant, client, response, proof)
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
        let max_response_size = self.endpoint.limits().max_response_size;
        self.transport()
            .send(request, max_response_size, redactor)
            .await
            .map_err(|error| transport_failure(target, error))
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
            .map_err(|error| messages::unbuildable(target, error))?;
        // With client_secret_post the body holds the secret.
        let body = Zeroizing::new(form.finish());

        let mut request = Transport::request(Method::POST, target.url.uri().clone()).header(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if let Placement::Header(value) = placement {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(proof) = dpop_proof {
            request = request.header(DPOP, proof);
        }
        request
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .map_err(|error| messages::unbuildable(target, error))
    }

    /// The token, or the failure the answer says, and whether to try again.
    fn interpret(
        &self,
        grant: Grant<'_>,
        client: &ClientAuth,
        response: RawResponse,
        proof: Proof<'_>,
    ) -> Result<Token, Failure> {
        if response.status.is_success() {
            let limits = self.endpoint.limits();
            return response::parse_token(
                &response.body,
                grant.response,
                grant.scope(),
                limits.default_lifetime,
                proof.key(),
                &response.redactor,
            )
            .map_err(|invalid| {
                Failure::last(messages::unusable_token_response(
                    &self.url,
                    client,
                    response.status,
                    invalid,
                ))
            });
        }
        let refusal = ErrorResponse::read(&response);
        let asked = Asked {
            url: &self.url,
            client,
            grant_type: grant.grant_type,
            rules: grant.response,
            scope: grant.scope(),
        };
        let error = match refusal.oauth.clone() {
            Some(oauth) if response::is_dpop_error(&oauth) => messages::dpop_refused(
                &self.url,
                client,
                oauth,
                proof.key(),
                matches!(proof, Proof::AfterNonceReplay(_)),
            ),
            Some(oauth) => messages::token_refused(asked, oauth),
            None => messages::unexpected_status(self.target(), response.status),
        };
        Err(Failure {
            error: refusal.with_retry_after(error),
            retry: refusal.retry(),
        })
    }
}

/// A request that got no answer: whether the server may have seen it decides how the
/// retry policy treats it.
fn transport_failure(target: Target<'_>, error: TransportError) -> Failure {
    match error {
        TransportError::Connect(error) => {
            Failure::retryable(messages::unreachable(target, error), RetryReason::Connect)
        }
        TransportError::Send(error) | TransportError::Read(error) => {
            Failure::retryable(messages::unreachable(target, error), RetryReason::Transport)
        }
        TransportError::Timeout(after) => {
            Failure::retryable(messages::timed_out(target, after), RetryReason::Timeout)
        }
        TransportError::TooLarge { status, limit } => {
            Failure::last(messages::too_large(target, status, limit))
        }
    }
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use http::{HeaderMap, Response};
    use tower_bearer::dpop::DpopKey;

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
