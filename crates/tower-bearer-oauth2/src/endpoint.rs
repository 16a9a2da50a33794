//! One token request, any grant: build the form, send it with the client's credentials,
//! read the answer within the limits, retry what may be brief per the [`RetryPolicy`], and
//! turn the outcome into a token or a [`FetchError`] that says what to do.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Collected, Full, LengthLimitError, Limited};
use tower::ServiceExt;
use tower_bearer::{BoxError, FetchError, Token};
use zeroize::Zeroizing;

use crate::client_auth::{ClientSecret, Credentials};
use crate::error::is_transient_status;
use crate::http_client::{HttpClient, ResponseBody};
use crate::redact::Redactor;
use crate::response::{self, InvalidResponse, TokenResponseRules};
use crate::retry::{Decision, RetryReason};
use crate::token_url::TokenUrl;
use crate::{EndpointError, OAuthError, RetryPolicy};

/// The longest `Retry-After` honoured. A misconfigured proxy asking for a day must not stop
/// token refresh for a day; the cache's own backoff still applies on top.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

pub(crate) const USER_AGENT_VALUE: &str =
    concat!("tower-bearer-oauth2/", env!("CARGO_PKG_VERSION"));

/// Limits and defaults of a token request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_response_size: usize,
    pub(crate) default_lifetime: Duration,
}

/// A token endpoint and the client credentials to present there.
#[derive(Clone)]
pub(crate) struct TokenEndpoint {
    pub(crate) url: TokenUrl,
    /// The revocation endpoint (RFC 7009), when configured.
    pub(crate) revocation_url: Option<TokenUrl>,
    pub(crate) client: ClientSecret,
    pub(crate) http: HttpClient,
    pub(crate) limits: Limits,
    pub(crate) retry: RetryPolicy,
}

/// What to ask the token endpoint for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grant<'a> {
    pub(crate) grant_type: &'a str,
    /// Credentials the grant presents, such as `("refresh_token", value)`; sent right after
    /// `grant_type`, never logged, and redacted should the server echo them in an error.
    pub(crate) credentials: &'a [(&'a str, &'a str)],
    pub(crate) scope: Option<&'a str>,
    pub(crate) params: &'a [(String, String)],
    /// The rules a success response must follow.
    pub(crate) response: TokenResponseRules,
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

/// A failed attempt, and whether repeating it may help.
pub(crate) struct Failure {
    pub(crate) error: FetchError,
    /// `None` when another attempt would fail the same way.
    pub(crate) retry: Option<RetryReason>,
}

impl Failure {
    pub(crate) fn last(error: FetchError) -> Self {
        Failure { error, retry: None }
    }

    pub(crate) fn retryable(error: FetchError, reason: RetryReason) -> Self {
        Failure {
            error,
            retry: Some(reason),
        }
    }
}

impl TokenEndpoint {
    /// Asks for a token: one HTTP request, repeated per the [`RetryPolicy`] while the
    /// failure may be brief. Returns the last attempt's error.
    pub(crate) async fn request(&self, grant: Grant<'_>) -> Result<Token, FetchError> {
        tracing::debug!(
            token_url = %self.url,
            client_id = %self.client.id,
            grant_type = grant.grant_type,
            scope = grant.scope,
            "requesting a token"
        );
        let (token, attempt) = self
            .with_retries(self.target(), || self.exchange(grant))
            .await?;
        tracing::debug!(
            token_type = %token.token_type(),
            expires_at = ?token.expires_at(),
            attempt,
            "token endpoint issued a token"
        );
        Ok(token)
    }

    /// Runs `attempt` until it succeeds, fails for good, or the [`RetryPolicy`] says stop.
    /// Returns the value and the number of the attempt that produced it.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        target: Target<'_>,
        mut attempt_once: F,
    ) -> Result<(T, u32), FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let max_attempts = self.retry.attempts().max(1);
        let mut attempt = 1;
        loop {
            let failure = match attempt_once().await {
                Ok(value) => return Ok((value, attempt)),
                Err(failure) => failure,
            };
            let Some(reason) = failure.retry else {
                tracing::debug!(error = %failure.error, attempt, "{} request failed", target.name);
                return Err(failure.error);
            };
            match self
                .retry
                .decide(attempt, reason, failure.error.retry_after())
            {
                Decision::Retry(wait) => {
                    tracing::warn!(
                        url = %target.url,
                        attempt,
                        max_attempts,
                        reason = %reason,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %failure.error,
                        "{} request failed, retrying",
                        target.name
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Decision::GiveUp(why) => {
                    let retry_after = failure.error.retry_after();
                    tracing::debug!(
                        attempt,
                        reason = %reason,
                        retry_after_ms = retry_after.map(|wait| wait.as_millis() as u64),
                        not_retried_because = %why,
                        error = %failure.error,
                        "{} request failed",
                        target.name
                    );
                    return Err(failure.error);
                }
            }
        }
    }

    /// The token endpoint, for messages.
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            name: "token",
            url: &self.url,
        }
    }

    /// One attempt: one HTTP request within the timeout, and its answer.
    async fn exchange(&self, grant: Grant<'_>) -> Result<Token, Failure> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", grant.grant_type)];
        form.extend(grant.credentials.iter().copied());
        if let Some(scope) = grant.scope {
            form.push(("scope", scope));
        }
        form.extend(
            grant
                .params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let secrets: Vec<&str> = grant.credentials.iter().map(|(_, value)| *value).collect();
        let response = self.post_form(self.target(), &form, &secrets).await?;
        self.interpret(grant, response)
    }

    /// Sends one form POST with the client's credentials to `target` within the timeout,
    /// and reads the answer within the size limit. `secrets` are the values in `form` that
    /// must never be printed; the answer carries them, with the client's, as its
    /// [`Redactor`].
    pub(crate) async fn post_form(
        &self,
        target: Target<'_>,
        form: &[(&str, &str)],
        secrets: &[&str],
    ) -> Result<RawResponse, Failure> {
        let mut redactor = Redactor::default();
        for secret in secrets {
            redactor.secret(secret);
        }
        let request = self
            .build_request(target, form, &mut redactor)
            .map_err(Failure::last)?;
        tokio::time::timeout(self.limits.timeout, self.send(target, request, redactor))
            .await
            .map_err(|_| Failure::retryable(self.timeout_error(target), RetryReason::Timeout))?
    }

    fn build_request(
        &self,
        target: Target<'_>,
        fields: &[(&str, &str)],
        redactor: &mut Redactor,
    ) -> Result<Request<Full<Bytes>>, FetchError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in fields {
            form.append_pair(name, value);
        }
        let credentials = self
            .client
            .apply(&mut form, &self.url.to_string(), redactor)
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
        if let Credentials::Header(value) = credentials {
            request = request.header(AUTHORIZATION, value);
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
        let response = self.http.clone().oneshot(request).await.map_err(|error| {
            let reason = if is_connect_error(&*error) {
                RetryReason::Connect
            } else {
                RetryReason::Transport
            };
            Failure::retryable(transport_error(target, error), reason)
        })?;
        let (parts, body) = response.into_parts();
        let collected = read_limited(body, self.limits.max_response_size)
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

    fn interpret(&self, grant: Grant<'_>, response: RawResponse) -> Result<Token, Failure> {
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
                grant.scope,
                self.limits.default_lifetime,
                &redactor,
            )
            .map_err(|invalid| Failure::last(self.invalid_response_error(status, invalid)));
        }
        let (mut error, retry) = match response::parse_error(status, &body, &redactor) {
            // Even on a 5xx or 429, these codes say the request itself is wrong.
            Some(oauth) if is_never_retried(&oauth) => (self.oauth_error(grant, oauth), None),
            Some(oauth) => (
                self.oauth_error(grant, oauth),
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

    fn oauth_error(&self, grant: Grant<'_>, oauth: OAuthError) -> FetchError {
        let url = &self.url;
        let client_id = &self.client.id;
        let grant_type = grant.grant_type;
        // The server's code and description are the source's to print, so chain printers
        // show them once; this message says what the code means here and what to do.
        let message = match oauth.error() {
            "invalid_client" => format!(
                "the token endpoint {url} rejected the credentials of client `{client_id}`; \
                 check the client id and {}, and that the server accepts {} client \
                 authentication for this client",
                if self.client.method.is_mutual_tls() {
                    "the TLS client certificate registered for it"
                } else {
                    "secret"
                },
                self.client.method
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
                grant.scope.map_or_else(
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

    fn invalid_response_error(&self, status: StatusCode, invalid: InvalidResponse) -> FetchError {
        let url = &self.url;
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
        let limit = self.limits.max_response_size;
        FetchError::permanent(format!(
            "{target} sent a response over the size limit; check the URL, or raise \
             `max_response_size` if its tokens really are that large"
        ))
        .with_source(EndpointError::too_large(status, limit))
    }

    fn timeout_error(&self, target: Target<'_>) -> FetchError {
        let timeout = self.limits.timeout;
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
    pub(crate) url: &'a TokenUrl,
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
            .field("limits", &self.limits)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
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
