//! The client credentials grant (RFC 6749 section 4.4): a confidential client asks for a
//! token on its own behalf, with its client id and secret.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use tower_bearer::source::TokenFuture;
use tower_bearer::store::StoreKey;
use tower_bearer::{Token, TokenCache, TokenSource};

use crate::endpoint::{Grant, TokenEndpoint};
use crate::response::TokenResponseRules;
use crate::settings::{self, EndpointSettings};
use crate::token_url::TokenUrl;
use crate::{AuthServerMetadata, BuildError, ClientAuth, RetryPolicy, RevocationError};

/// Parameters this crate sets itself, which `param` may not override.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "scope",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// A [`TokenSource`] for the OAuth 2.0 client credentials grant (RFC 6749 section 4.4).
///
/// Each [`fetch`](TokenSource::fetch) makes a `POST` to the token endpoint with
/// `grant_type=client_credentials`, the scope and extra parameters, and the client's
/// credentials ([`ClientAuth`](crate::ClientAuth)), and returns the token from the answer. When the request
/// fails in a way that may be brief (network error, timeout, 5xx, 429) it is sent again per
/// the [`RetryPolicy`] (by default up to 3 attempts with a short backoff, honouring
/// `Retry-After` up to 10 s). It does not cache: put it behind a
/// [`TokenCache`](tower_bearer::TokenCache), which fetches once for all callers, refreshes
/// ahead of expiry and backs off between fetches that failed.
///
/// Failures are [`FetchError`](tower_bearer::FetchError)s that say whether asking again may
/// help: network errors, timeouts, 5xx and 429 are transient (with the server's
/// `Retry-After`, capped at ten minutes); wrong credentials and other OAuth errors are
/// permanent, and never retried. The error's source is an [`OAuthError`](crate::OAuthError) when the server
/// sent an error response, an [`EndpointError`](crate::EndpointError) otherwise.
///
/// `ClientCredentials` is cheap to clone; clones share the HTTP client's connection pool.
///
/// ```no_run
/// use tower_bearer::{TokenCache, TokenSource};
/// use tower_bearer_oauth2::ClientCredentials;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let source = ClientCredentials::builder(
///     "https://auth.example.com/oauth2/token",
///     "my-service",
///     std::env::var("CLIENT_SECRET")?,
/// )
/// .scopes(["orders:read", "orders:write"])
/// .audience("https://api.example.com")
/// .build()?;
/// let cache = TokenCache::new(source);
/// let token = cache.token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ClientCredentials {
    pub(crate) endpoint: TokenEndpoint,
    scope: Option<String>,
    params: Vec<(String, String)>,
}

impl ClientCredentials {
    /// Starts building a source for the token endpoint at `token_url`, authenticating as
    /// `client_id` with `client_secret`.
    ///
    /// Nothing is checked until [`build`](ClientCredentialsBuilder::build).
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder {
            settings: EndpointSettings::new(
                token_url.into(),
                client_id.into(),
                client_secret.into(),
                RetryPolicy::new(),
            ),
            scope: None,
            params: Vec::new(),
        }
    }

    /// Starts building a source that authenticates with `private_key_jwt` (RFC 7523 section
    /// 2.2): each request carries a fresh assertion signed with `key`, with the token URL as
    /// its audience unless [`assertion_audience`](ClientCredentialsBuilder::assertion_audience)
    /// says otherwise.
    #[cfg(feature = "private-key-jwt")]
    pub fn builder_with_private_key(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        key: crate::PrivateKey,
    ) -> ClientCredentialsBuilder {
        let mut builder = Self::builder(token_url, client_id, String::new());
        builder.settings.client_auth = crate::ClientAuth::PrivateKeyJwt;
        builder.settings.private_key = Some(key);
        builder
    }

    /// Starts building a source that authenticates with mutual TLS (RFC 8705 section 2.1,
    /// `tls_client_auth`): the token request carries `client_id` and no secret, and the
    /// server recognises the client by the certificate the transport presents.
    ///
    /// Give the default HTTP client the certificate with `tls` (a `ClientTls` with an
    /// identity), or pass an [`http_client`](ClientCredentialsBuilder::http_client) whose
    /// TLS presents it. For a self-signed certificate (section 2.2), add
    /// `.client_auth(ClientAuth::SelfSignedTlsClientAuth)`.
    ///
    /// ```no_run
    /// use tower_bearer_oauth2::{ClientCredentials, ClientTls, TlsClientIdentity};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let identity = TlsClientIdentity::from_pem(
    ///     std::fs::read("/etc/billing/tls.crt")?,
    ///     std::fs::read("/etc/billing/tls.key")?,
    /// )?;
    /// let source = ClientCredentials::builder_with_tls_client_auth(
    ///     "https://mtls.auth.example.com/oauth2/token",
    ///     "billing-service",
    /// )
    /// .tls(ClientTls::new().identity(identity))
    /// .scope("invoices:read")
    /// .build()?;
    /// # let _ = source;
    /// # Ok(())
    /// # }
    /// ```
    pub fn builder_with_tls_client_auth(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
    ) -> ClientCredentialsBuilder {
        Self::builder(token_url, client_id, String::new()).client_auth(ClientAuth::TlsClientAuth)
    }

    /// Starts building a source from an authorization server's metadata (see
    /// [`Discovery`](crate::Discovery)): its token endpoint, its revocation endpoint if it
    /// has one, and the client authentication it accepts ([`ClientAuth::ClientSecretBasic`](crate::ClientAuth::ClientSecretBasic)
    /// when listed, else [`ClientAuth::ClientSecretPost`](crate::ClientAuth::ClientSecretPost) when listed, else the default
    /// `client_secret_basic`). Each can still be changed on the builder.
    pub fn builder_from_metadata(
        metadata: &AuthServerMetadata,
        client_id: impl Into<String>,
        client_secret: impl Into<SecretString>,
    ) -> ClientCredentialsBuilder {
        let mut builder = Self::builder(metadata.token_endpoint(), client_id, client_secret)
            .client_auth(metadata.preferred_client_auth().unwrap_or_default());
        builder.settings.use_metadata(metadata);
        builder
    }

    crate::settings::endpoint_getters!(endpoint);

    /// The scope requested, space-separated, if any.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The key that names this source's tokens in a shared
    /// [`TokenStore`](tower_bearer::store::TokenStore): built from everything that changes
    /// the token issued (token URL, client id, scope, audience, resources and extra
    /// parameters), never from the secret. Two sources share tokens exactly when their keys
    /// are equal.
    ///
    /// ```
    /// use tower_bearer::store::{MemoryStore, StoreSource};
    /// use tower_bearer::TokenCache;
    /// use tower_bearer_oauth2::ClientCredentials;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let source = ClientCredentials::builder("https://auth.example.com/token", "billing", "s3cret")
    ///     .scope("invoices:read")
    ///     .build()?;
    /// let key = source.store_key();
    /// let cache = TokenCache::new(StoreSource::new(source, MemoryStore::new(), key));
    /// # let _ = cache;
    /// # Ok(())
    /// # }
    /// ```
    pub fn store_key(&self) -> StoreKey {
        let mut key = StoreKey::builder(self.token_url().to_string(), self.client_id());
        if let Some(scope) = &self.scope {
            key = key.scope(scope);
        }
        for (name, value) in &self.params {
            key = key.param(name.as_str(), value.as_str());
        }
        key.build()
    }

    /// The revocation endpoint URL, if one is configured.
    pub fn revocation_url(&self) -> Option<&http::Uri> {
        self.endpoint.revocation_url.as_ref().map(TokenUrl::uri)
    }

    /// Revokes an access token this source issued (RFC 7009), with the same client
    /// authentication as token requests, so the server stops accepting it before it expires.
    ///
    /// Failures that may be brief are retried per the source's [`RetryPolicy`]. A token the
    /// server no longer knows (expired, revoked already) counts as revoked, as RFC 7009
    /// section 2.2 says. Fails with [`RevocationError::is_not_configured`] when the builder
    /// was given no [`revocation_url`](ClientCredentialsBuilder::revocation_url).
    pub async fn revoke(&self, token: &Token) -> Result<(), RevocationError> {
        self.endpoint.revoke_access_token(token).await
    }

    /// Revokes the token `cache` holds, if it holds one that has not expired, and drops it
    /// from the cache so no request uses it afterwards. For shutdown: an access token
    /// that dies with the process cannot leak from a log or a core dump later.
    ///
    /// Returns whether there was a token to revoke. The cache must be the one this source
    /// feeds; a token from elsewhere is sent to this source's revocation endpoint all the
    /// same, and the server is free to refuse it.
    ///
    /// Not for replicas that share a token through a
    /// [`TokenStore`](tower_bearer::store::TokenStore): the token is theirs too, and one replica
    /// stopping would revoke it under the others (they recover after a 401, at the cost of a
    /// failed request each).
    ///
    /// ```no_run
    /// use tower_bearer::TokenCache;
    /// use tower_bearer_oauth2::ClientCredentials;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// let source = ClientCredentials::builder(
    ///     "https://auth.example.com/oauth2/token",
    ///     "my-service",
    ///     std::env::var("CLIENT_SECRET")?,
    /// )
    /// .revocation_url("https://auth.example.com/oauth2/revoke")
    /// .build()?;
    /// let cache = TokenCache::new(source.clone());
    ///
    /// // ... serve until asked to stop ...
    ///
    /// if let Err(error) = source.revoke_cached(&cache).await {
    ///     eprintln!("could not revoke the access token at shutdown: {error}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn revoke_cached(&self, cache: &TokenCache) -> Result<bool, RevocationError> {
        self.endpoint.revoke_cached(cache).await
    }
}

impl TokenSource for ClientCredentials {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(self.endpoint.request(Grant {
            grant_type: "client_credentials",
            credentials: &[],
            scope: self.scope.as_deref(),
            params: &self.params,
            response: TokenResponseRules::Standard,
        }))
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.endpoint.url)
            .field("client_id", &self.endpoint.client.id)
            .field("client_secret", &"[redacted]")
            .field("client_auth", &self.endpoint.client.method)
            .field("scope", &self.scope)
            .field("params", &ParamNames(&self.params))
            .field("timeout", &self.endpoint.limits.timeout)
            .field("max_response_size", &self.endpoint.limits.max_response_size)
            .field("default_lifetime", &self.endpoint.limits.default_lifetime)
            .field("retry", &self.endpoint.retry)
            .finish()
    }
}

/// Builds a [`ClientCredentials`]; see [`ClientCredentials::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientCredentialsBuilder {
    settings: EndpointSettings,
    scope: Option<String>,
    params: Vec<(String, String)>,
}

impl ClientCredentialsBuilder {
    crate::settings::endpoint_setters!();

    /// The default [`timeout`](Self::timeout): 30 seconds.
    pub const DEFAULT_TIMEOUT: Duration = settings::DEFAULT_TIMEOUT;

    /// The default [`max_response_size`](Self::max_response_size): 64 KiB, far above any
    /// real token response (large JWTs are a few KiB) and small enough that a wrong URL
    /// serving a big page costs little.
    pub const DEFAULT_MAX_RESPONSE_SIZE: usize = settings::DEFAULT_MAX_RESPONSE_SIZE;

    /// The default [`default_lifetime`](Self::default_lifetime): 5 minutes.
    pub const DEFAULT_LIFETIME: Duration = settings::DEFAULT_LIFETIME;

    crate::settings::request_setters!(
        scope_doc = "The scope to request, as a space-separated list (RFC 6749 section 3.3).",
        param_doc = "The parameters this crate sets itself (`grant_type`, `scope`, `client_id`, \
                     `client_secret`, `client_assertion`, `client_assertion_type`) are refused \
                     by [`build`](Self::build): use the dedicated methods."
    );

    /// The scopes to request, one per item. Replaces any scope set before.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut joined = String::new();
        for scope in scopes {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(scope.as_ref());
        }
        self.scope = Some(joined);
        self
    }

    /// The revocation endpoint (RFC 7009) that [`ClientCredentials::revoke`] and
    /// [`revoke_cached`](ClientCredentials::revoke_cached) send to (default: none). Checked
    /// like the token URL: `https://`, or `http://` to loopback or with
    /// [`allow_insecure_http`](Self::allow_insecure_http).
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.settings.revocation_url = Some(url.into());
        self
    }

    /// The `audience` parameter: which API the token is for, as Auth0, Okta and token
    /// exchange (RFC 8693) spell it.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        self.param("audience", audience)
    }

    /// A `resource` parameter (RFC 8707): an absolute URI of an API the token is for, without
    /// a fragment. Repeatable, for a token meant for several resources.
    pub fn resource(self, resource: impl Into<String>) -> Self {
        self.param("resource", resource)
    }

    /// Checks the configuration and builds the source.
    ///
    /// Fails if the token URL is not absolute `https://` (or `http://` to loopback, or with
    /// [`allow_insecure_http`](Self::allow_insecure_http)), if the client id or secret is
    /// empty, if a scope, resource or parameter is malformed, if the retry policy allows no
    /// attempt, or if no HTTP client is available. With mutual TLS, fails if neither a
    /// `tls` identity nor an
    /// [`http_client`](Self::http_client) is given.
    pub fn build(self) -> Result<ClientCredentials, BuildError> {
        let scope = check_request(self.scope.as_deref(), &self.params, &[], "")?;
        Ok(ClientCredentials {
            endpoint: self.settings.build()?,
            scope,
            params: self.params,
        })
    }
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("ClientCredentialsBuilder");
        self.settings.debug_fields(&mut debug);
        debug
            .field("scope", &self.scope)
            .field("params", &ParamNames(&self.params))
            .finish()
    }
}

/// Prints parameter names only: a value may be a credential of some other kind.
pub(crate) struct ParamNames<'a>(pub(crate) &'a [(String, String)]);

impl fmt::Debug for ParamNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Collapses whitespace and checks each scope token's characters (RFC 6749 section 3.3:
/// visible ASCII except `"` and `\`). `None` for an empty scope.
pub(crate) fn normalize_scope(scope: &str) -> Result<Option<String>, BuildError> {
    let tokens: Vec<&str> = scope.split_ascii_whitespace().collect();
    if let Some(bad) = tokens.iter().find(|token| {
        !token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        return Err(BuildError::invalid_parameter(format!(
            "the scope `{}` has a character RFC 6749 does not allow in a scope (only visible \
             ASCII without `\"` and `\\`); check the scope names",
            bad.escape_debug()
        )));
    }
    Ok((!tokens.is_empty()).then(|| tokens.join(" ")))
}

/// Normalizes the scope and checks the extra parameters, for a builder's `build`.
/// `grant_params` are the names the grant sets itself, refused with `advice`.
pub(crate) fn check_request(
    scope: Option<&str>,
    params: &[(String, String)],
    grant_params: &[&str],
    advice: &str,
) -> Result<Option<String>, BuildError> {
    for (name, value) in params {
        if grant_params.contains(&name.as_str()) {
            return Err(BuildError::invalid_parameter(format!(
                "the extra parameter `{name}` is set by tower-bearer-oauth2 itself; {advice}"
            )));
        }
        check_param(name, value)?;
    }
    Ok(scope.map(normalize_scope).transpose()?.flatten())
}

pub(crate) fn check_param(name: &str, value: &str) -> Result<(), BuildError> {
    if name.is_empty() {
        return Err(BuildError::invalid_parameter(
            "an extra parameter has an empty name; give every `param` a name".to_owned(),
        ));
    }
    if RESERVED_PARAMS.contains(&name) {
        return Err(BuildError::invalid_parameter(format!(
            "the extra parameter `{name}` is set by tower-bearer-oauth2 itself; use the \
             builder's own method for it (`scope`, `client_auth`, ...)"
        )));
    }
    if name == "resource" && !is_absolute_uri_without_fragment(value) {
        return Err(BuildError::invalid_parameter(format!(
            "the resource `{}` is not an absolute URI without a fragment, as RFC 8707 \
             section 2 requires; give a full URI such as https://api.example.com/",
            value.escape_debug()
        )));
    }
    Ok(())
}

/// `scheme ":" rest`, no `#` (RFC 3986 section 4.3; the scheme per section 3.1).
fn is_absolute_uri_without_fragment(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !value.contains('#')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http::{Request, Response};
    use http_body_util::Full;
    use std::error::Error as _;
    use std::sync::{Arc, Mutex};

    use http::{HeaderMap, HeaderValue, Method, StatusCode};
    use http_body_util::BodyExt;
    use secrecy::ExposeSecret;
    use tower_bearer::FetchError;

    use super::*;
    use crate::{ClientAuth, EndpointError, OAuthError};

    const URL: &str = "https://auth.example.com/oauth2/token";
    const ID: &str = "my client:1";
    const SECRET: &str = "p@ss:w%rd+ ü";
    const TOKEN_BODY: &str =
        r#"{"access_token":"at-s3cr3t","token_type":"bearer","expires_in":"3600","scope":"a b"}"#;

    /// What the fake server saw.
    #[derive(Clone, Debug)]
    struct Seen {
        method: Method,
        uri: String,
        headers: HeaderMap,
        body: String,
    }

    type FakeServer =
        tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, Infallible>;

    /// A fake token endpoint answering every request with `status`, `headers` and `body`.
    fn fake(
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: impl Into<Bytes>,
    ) -> (FakeServer, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let body: Bytes = body.into();
        let headers: Vec<_> = headers.to_vec();
        let service = tower::service_fn(move |request: Request<Full<Bytes>>| {
            let log = log.clone();
            let body = body.clone();
            let headers = headers.clone();
            async move {
                let (parts, request_body) = request.into_parts();
                let request_body = request_body.collect().await?.to_bytes();
                log.lock().unwrap().push(Seen {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    headers: parts.headers,
                    body: String::from_utf8(request_body.to_vec()).unwrap(),
                });
                let mut response = Response::new(Full::new(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    response
                        .headers_mut()
                        .insert(name, HeaderValue::from_static(value));
                }
                Ok::<_, Infallible>(response)
            }
        });
        (FakeServer::new(service), seen)
    }

    /// One request per fetch: most tests here check what a single answer becomes.
    fn builder() -> ClientCredentialsBuilder {
        ClientCredentials::builder(URL, ID, SECRET).retry(RetryPolicy::none())
    }

    async fn fetch_with(
        builder: ClientCredentialsBuilder,
        status: u16,
        headers: &[(&'static str, &'static str)],
        body: &'static str,
    ) -> Result<tower_bearer::Token, FetchError> {
        let (service, _) = fake(status, headers, body);
        builder.http_client(service).build().unwrap().fetch().await
    }

    fn assert_no_secrets(printed: &str) {
        for secret in [SECRET, "at-s3cr3t", "p%40ss", "cCU0MHNz"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }

    fn oauth_source(error: &FetchError) -> &OAuthError {
        error
            .source()
            .unwrap()
            .downcast_ref::<OAuthError>()
            .unwrap()
    }

    fn endpoint_source(error: &FetchError) -> &EndpointError {
        error
            .source()
            .unwrap()
            .downcast_ref::<EndpointError>()
            .unwrap()
    }

    #[tokio::test]
    async fn basic_auth_request() {
        let (service, seen) = fake(200, &[], TOKEN_BODY);
        let source = builder()
            .scopes(["a", "b"])
            .audience("https://api.example.com")
            .resource("https://api.example.com/orders")
            .resource("urn:example:billing")
            .param("tenant", "ü&=")
            .http_client(service)
            .build()
            .unwrap();
        let token = source.fetch().await.unwrap();
        assert_eq!(token.secret().expose_secret(), "at-s3cr3t");
        assert_eq!(token.header_value(), "Bearer at-s3cr3t");
        assert_eq!(token.scope(), Some("a b"));

        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.method, Method::POST);
        assert_eq!(seen.uri, URL);
        assert_eq!(
            seen.headers["authorization"],
            "Basic bXkrY2xpZW50JTNBMTpwJTQwc3MlM0F3JTI1cmQlMkIrJUMzJUJD"
        );
        assert!(seen.headers["authorization"].is_sensitive());
        assert_eq!(
            seen.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(seen.headers["accept"], "application/json");
        assert_eq!(
            seen.body,
            "grant_type=client_credentials&scope=a+b\
             &audience=https%3A%2F%2Fapi.example.com\
             &resource=https%3A%2F%2Fapi.example.com%2Forders\
             &resource=urn%3Aexample%3Abilling\
             &tenant=%C3%BC%26%3D"
        );
    }

    #[tokio::test]
    async fn post_auth_request() {
        let (service, seen) = fake(200, &[], TOKEN_BODY);
        let source = builder()
            .client_auth(ClientAuth::ClientSecretPost)
            .http_client(service)
            .build()
            .unwrap();
        source.fetch().await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert!(!seen.headers.contains_key("authorization"));
        assert_eq!(
            seen.body,
            "grant_type=client_credentials\
             &client_id=my+client%3A1&client_secret=p%40ss%3Aw%25rd%2B+%C3%BC"
        );
    }

    #[tokio::test]
    async fn invalid_client_is_permanent_with_oauth_source() {
        let body =
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#;
        let error = fetch_with(builder(), 401, &[], body).await.unwrap_err();
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
            let error = fetch_with(builder().scope("x"), 400, &[], body)
                .await
                .unwrap_err();
            assert!(error.is_permanent(), "{code}: {error}");
            assert_eq!(oauth_source(&error).error(), code);
            // The code is the source's to print, not repeated in the message.
            assert!(!error.to_string().contains(code), "{error}");
            assert!(oauth_source(&error).to_string().contains(code));
        }
        let busy = fetch_with(
            builder(),
            400,
            &[],
            r#"{"error":"temporarily_unavailable"}"#,
        )
        .await
        .unwrap_err();
        assert!(busy.is_transient(), "{busy}");
        let server = fetch_with(builder(), 500, &[], r#"{"error":"invalid_request"}"#)
            .await
            .unwrap_err();
        assert!(server.is_transient(), "{server}");
    }

    #[tokio::test]
    async fn echoed_secret_is_redacted() {
        let body = r#"{"error":"invalid_client","error_description":"bad secret p@ss:w%rd+ ü"}"#;
        let error = fetch_with(builder(), 401, &[], body).await.unwrap_err();
        let printed = format!("{error} {error:?} {}", error.source().unwrap());
        assert_no_secrets(&printed);
        assert!(printed.contains("bad secret [redacted]"), "{printed}");
    }

    #[tokio::test]
    async fn unavailable_with_retry_after_is_transient() {
        let error = fetch_with(builder(), 503, &[("retry-after", "7")], "")
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        assert!(endpoint_source(&error).is_unexpected_status());

        let error = fetch_with(builder(), 429, &[("retry-after", "86400")], "")
            .await
            .unwrap_err();
        assert!(error.is_transient());
        assert!(error.to_string().contains("rate limiting"), "{error}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(600)));

        let error = fetch_with(builder(), 502, &[], "<html>Bad Gateway</html>")
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
            builder(),
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
            let error = fetch_with(builder(), status, &[], "<html></html>")
                .await
                .unwrap_err();
            assert!(error.is_permanent(), "{status}");
            assert!(error.to_string().contains(advice), "{error}");
            assert!(endpoint_source(&error).is_unexpected_status());
        }
    }

    #[tokio::test]
    async fn bad_success_bodies() {
        let error = fetch_with(builder(), 200, &[], "<html>at-s3cr3t</html>")
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(endpoint_source(&error).is_invalid_response());
        assert_no_secrets(&format!("{error} {error:?}"));

        let error = fetch_with(builder(), 200, &[], r#"{"access_token":"at-s3cr3t"}"#)
            .await
            .unwrap_err();
        assert!(error.is_permanent(), "{error}");
        let cause = endpoint_source(&error).to_string();
        assert!(cause.contains("`token_type` is missing"), "{cause}");
        assert!(!error.to_string().contains("token_type"), "{error}");
        assert_no_secrets(&format!("{error} {error:?}"));

        let error = fetch_with(
            builder(),
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
        let error = fetch_with(builder().max_response_size(1024), 200, &[], body)
            .await
            .unwrap_err();
        assert!(error.is_permanent());
        assert!(endpoint_source(&error).is_too_large());
        assert!(error.to_string().contains("max_response_size"), "{error}");
        assert!(
            fetch_with(builder().max_response_size(4096), 200, &[], body)
                .await
                .is_ok()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_is_transient() {
        let never = tower::service_fn(|_request: Request<Full<Bytes>>| async {
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
        });
        let source = builder()
            .timeout(Duration::from_secs(2))
            .http_client(never)
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        let error = source.fetch().await.unwrap_err();
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
        let source = builder().http_client(refused).build().unwrap();
        let error = source.fetch().await.unwrap_err();
        assert!(error.is_transient());
        assert!(endpoint_source(&error).is_transport());
        assert!(error.to_string().contains("cannot reach"), "{error}");
        let cause = endpoint_source(&error).source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("connection refused"));
    }

    #[tokio::test]
    async fn missing_expires_in_uses_the_default_lifetime() {
        let token = fetch_with(
            builder().default_lifetime(Duration::from_secs(90)),
            200,
            &[],
            r#"{"access_token":"t","token_type":"Bearer"}"#,
        )
        .await
        .unwrap();
        let lifetime = token.expires_at().unwrap() - tokio::time::Instant::now();
        assert!(lifetime <= Duration::from_secs(90) && lifetime > Duration::from_secs(85));
    }

    #[test]
    fn build_checks_the_configuration() {
        let (service, _) = fake(200, &[], TOKEN_BODY);
        let build =
            |builder: ClientCredentialsBuilder| builder.http_client(service.clone()).build();

        let error = build(ClientCredentials::builder(
            "http://auth.example.com/token",
            ID,
            SECRET,
        ))
        .unwrap_err();
        assert!(error.is_insecure_http(), "{error}");
        assert!(build(
            ClientCredentials::builder("http://auth.example.com/token", ID, SECRET)
                .allow_insecure_http(true)
        )
        .is_ok());
        assert!(build(ClientCredentials::builder(
            "http://127.0.0.1:8080/token",
            ID,
            SECRET
        ))
        .is_ok());
        assert!(build(ClientCredentials::builder("not a url", ID, SECRET))
            .unwrap_err()
            .is_invalid_url());
        assert!(build(ClientCredentials::builder(URL, "", SECRET))
            .unwrap_err()
            .is_invalid_credentials());
        let error = build(ClientCredentials::builder(URL, ID, "")).unwrap_err();
        assert!(error.is_invalid_credentials());
        assert!(error.to_string().contains("secret"), "{error}");

        for reserved in ["grant_type", "scope", "client_id", "client_secret"] {
            let error = build(builder().param(reserved, "x")).unwrap_err();
            assert!(error.is_invalid_parameter(), "{reserved}");
            assert!(!error.to_string().contains(SECRET));
        }
        assert!(build(builder().param("", "x"))
            .unwrap_err()
            .is_invalid_parameter());
        for resource in [
            "api",
            "https://api.example.com/#frag",
            "/relative",
            "https:",
        ] {
            assert!(
                build(builder().resource(resource))
                    .unwrap_err()
                    .is_invalid_parameter(),
                "{resource}"
            );
        }
        assert!(build(builder().scope("read \"write\""))
            .unwrap_err()
            .is_invalid_parameter());
        assert!(build(builder().scope("réad"))
            .unwrap_err()
            .is_invalid_parameter());

        let error = build(builder().retry(RetryPolicy::new().max_attempts(0))).unwrap_err();
        assert!(error.is_invalid_parameter(), "{error}");
        assert!(error.to_string().contains("max_attempts"), "{error}");
        assert!(build(builder().retry(RetryPolicy::new().max_attempts(1))).is_ok());
    }

    #[test]
    fn scopes_are_normalized() {
        let (service, _) = fake(200, &[], TOKEN_BODY);
        let scope = |builder: ClientCredentialsBuilder| {
            builder
                .http_client(service.clone())
                .build()
                .unwrap()
                .scope()
                .map(str::to_owned)
        };
        assert_eq!(scope(builder()), None);
        assert_eq!(scope(builder().scope("  a   b\tc ")), Some("a b c".into()));
        assert_eq!(scope(builder().scopes(["a", "b"])), Some("a b".into()));
        assert_eq!(scope(builder().scopes(Vec::<String>::new())), None);
        assert_eq!(scope(builder().scope("")), None);
    }

    #[test]
    fn debug_hides_secrets() {
        let (service, _) = fake(200, &[], TOKEN_BODY);
        let builder = builder()
            .param("assertion", "param-s3cr3t")
            .http_client(service);
        let printed = format!("{builder:?}");
        assert_no_secrets(&printed);
        assert!(!printed.contains("param-s3cr3t"), "{printed}");
        let source = builder.build().unwrap();
        let printed = format!("{source:?}");
        assert_no_secrets(&printed);
        assert!(!printed.contains("param-s3cr3t"), "{printed}");
        assert!(printed.contains("my client:1"), "{printed}");
        assert!(printed.contains("assertion"), "{printed}");
    }

    #[cfg(feature = "hyper-client")]
    #[test]
    fn builds_with_the_default_client() {
        let source = builder().build().unwrap();
        assert_eq!(source.token_url(), URL);
        assert_eq!(source.client_id(), ID);
        assert_eq!(source.client_auth(), ClientAuth::ClientSecretBasic);
    }
}
