//! Where and how the sources talk to an authorization server: its token and revocation
//! URLs, the [`HttpSettings`] of each request and the retry policy. One [`Endpoint`] serves
//! every source on the same server.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Uri;

use crate::server_url::ServerUrl;
use crate::transport::Transport;
use crate::{BuildError, HttpClient, HttpSettings, RetryPolicy};

/// An authorization server's token endpoint and how to talk to it: the token URL, the
/// revocation URL, the [`HttpSettings`] (the [`HttpClient`], the timeout and size limit of
/// each request, plain `http://` allowed or not), and the [`RetryPolicy`]. Every grant's
/// builder takes one, with a [`ClientAuth`](crate::ClientAuth) that says who is asking.
///
/// `Endpoint` is cheap to clone: clones share the configuration and the HTTP client's
/// connection pool, so sources on one server share one pool. Build it once per server,
/// from the URLs or from the server's metadata
/// ([`AuthServerMetadata::endpoint`](crate::AuthServerMetadata::endpoint)).
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::TokenSource;
/// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder().client("my-service", "s3cret").start().await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// let token_url = "https://auth.example.com/oauth2/token";
/// let revocation_url = "https://auth.example.com/oauth2/revoke";
/// # let (token_url, revocation_url) = (auth.token_url(), auth.revocation_url());
/// let endpoint = Endpoint::builder(token_url)
///     .revocation_url(revocation_url)
///     .timeout(Duration::from_secs(10))
///     .build()?;
/// let secret = std::env::var("CLIENT_SECRET")?;
/// let orders = ClientCredentials::builder(
///     endpoint.clone(),
///     ClientAuth::secret_basic("my-service", secret.as_str())?,
/// )
/// .params(TokenParams::new().scope("orders:read"))
/// .build()?;
/// let invoices = ClientCredentials::builder(endpoint, ClientAuth::secret_basic("my-service", secret)?)
///     .params(TokenParams::new().scope("invoices:read"))
///     .build()?;
/// # orders.fetch().await?;
/// # invoices.fetch().await?;
/// # assert_eq!(auth.tokens_issued(), 2);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Endpoint {
    config: Arc<Config>,
}

/// An [`Endpoint`]'s checked configuration.
struct Config {
    token_url: ServerUrl,
    revocation_url: Option<ServerUrl>,
    /// The metadata's `mtls_endpoint_aliases` (RFC 8705 section 5) that apply: checked when
    /// a client that uses mutual TLS is combined with the endpoint.
    mtls_aliases: MtlsAliases,
    allow_insecure_http: bool,
    transport: Transport,
    limits: Limits,
    /// `None`: each grant's own default.
    retry: Option<RetryPolicy>,
    assertion_audience: Option<String>,
}

/// Limits and defaults of a token response.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_response_size: usize,
    pub(crate) default_lifetime: Duration,
}

/// The metadata's `mtls_endpoint_aliases` (RFC 8705 section 5).
#[derive(Clone, Debug, Default)]
struct MtlsAliases {
    token: Option<String>,
    revocation: Option<String>,
}

impl Endpoint {
    /// The default [`timeout`](EndpointBuilder::timeout):
    /// [`HttpSettings::DEFAULT_TIMEOUT`], 30 seconds, as for [`Discovery`](crate::Discovery).
    pub const DEFAULT_TIMEOUT: Duration = HttpSettings::DEFAULT_TIMEOUT;

    /// The default [`max_response_size`](EndpointBuilder::max_response_size) of token and
    /// revocation responses: 64 KiB, far above any real token response (large JWTs are a
    /// few KiB) and small enough that a wrong URL serving a big page costs little.
    pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 64 * 1024;

    /// The default [`default_lifetime`](EndpointBuilder::default_lifetime): 5 minutes.
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

    /// Starts configuring the token endpoint at `token_url`. Nothing is checked until
    /// [`build`](EndpointBuilder::build).
    pub fn builder(token_url: impl Into<String>) -> EndpointBuilder {
        EndpointBuilder {
            token_url: token_url.into(),
            revocation_url: None,
            mtls_aliases: Vec::new(),
            http: HttpSettings::new(),
            default_lifetime: Self::DEFAULT_LIFETIME,
            retry: None,
            assertion_audience: None,
        }
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> &Uri {
        self.config.token_url.uri()
    }

    /// The revocation endpoint URL, if one is configured.
    pub fn revocation_url(&self) -> Option<&Uri> {
        self.config.revocation_url.as_ref().map(ServerUrl::uri)
    }

    /// The HTTP client and the timeout of each request.
    pub(crate) fn transport(&self) -> &Transport {
        &self.config.transport
    }

    pub(crate) fn limits(&self) -> Limits {
        self.config.limits
    }

    /// The policy set on the endpoint, else the grant's `default`.
    pub(crate) fn retry_or(&self, default: RetryPolicy) -> RetryPolicy {
        self.config.retry.unwrap_or(default)
    }

    pub(crate) fn assertion_audience(&self) -> Option<&str> {
        self.config.assertion_audience.as_deref()
    }

    /// The token and revocation URLs a client that authenticates with mutual TLS uses: the
    /// server's `mtls_endpoint_aliases` where it has them (RFC 8705 section 5), checked
    /// like the plain ones.
    pub(crate) fn mtls_urls(&self) -> Result<(ServerUrl, Option<ServerUrl>), BuildError> {
        let config = &*self.config;
        let parse = |alias: &Option<String>, name| {
            alias
                .as_deref()
                .map(|text| ServerUrl::parse(text, name, config.allow_insecure_http))
                .transpose()
        };
        let token = parse(&config.mtls_aliases.token, "token")?;
        let revocation = parse(&config.mtls_aliases.revocation, "revocation")?;
        Ok((
            token.unwrap_or_else(|| config.token_url.clone()),
            revocation.or_else(|| config.revocation_url.clone()),
        ))
    }

    /// The plain token and revocation URLs.
    pub(crate) fn urls(&self) -> (ServerUrl, Option<ServerUrl>) {
        (
            self.config.token_url.clone(),
            self.config.revocation_url.clone(),
        )
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &*self.config;
        f.debug_struct("Endpoint")
            .field("token_url", &config.token_url)
            .field("revocation_url", &config.revocation_url)
            .field("mtls_aliases", &config.mtls_aliases)
            .field("transport", &config.transport)
            .field("limits", &config.limits)
            .field("retry", &config.retry)
            .field("assertion_audience", &config.assertion_audience)
            .finish_non_exhaustive()
    }
}

/// Configures an [`Endpoint`]; see [`Endpoint::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct EndpointBuilder {
    token_url: String,
    revocation_url: Option<String>,
    /// `(plain, alias)` pairs from the metadata: an alias stands in for its plain URL only
    /// while that is still the one configured.
    mtls_aliases: Vec<(String, String)>,
    http: HttpSettings,
    default_lifetime: Duration,
    retry: Option<RetryPolicy>,
    assertion_audience: Option<String>,
}

impl EndpointBuilder {
    /// The revocation endpoint (RFC 7009) that the sources' `revoke` methods send to
    /// (default: none, or the one the metadata names). Checked like the token URL.
    pub fn revocation_url(mut self, url: impl Into<String>) -> Self {
        self.revocation_url = Some(url.into());
        self
    }

    /// How requests reach the server: the HTTP client, the timeout, the size limit and
    /// whether plain `http://` is allowed (default: [`HttpSettings::new`], or the settings
    /// discovery fetched the metadata with). Replaces the four settings as set so far;
    /// [`http_client`](Self::http_client), [`timeout`](Self::timeout),
    /// [`max_response_size`](Self::max_response_size) and
    /// [`allow_insecure_http`](Self::allow_insecure_http) change one of them.
    pub fn http_settings(mut self, settings: HttpSettings) -> Self {
        self.http = settings;
        self
    }

    /// The HTTP client to reach the server with; see [`HttpSettings::http_client`].
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http = self.http.http_client(client);
        self
    }

    /// How long one request may take, from sending it to reading the whole response
    /// (default 30 s); see [`HttpSettings::timeout`].
    ///
    /// The timeout applies to each attempt: a whole fetch takes at most
    /// `max_attempts × timeout` plus [`RetryPolicy::max_total_wait`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.http = self.http.timeout(timeout);
        self
    }

    /// How a fetch retries failures that may be brief before it gives up and lets the cache
    /// back off. By default each grant uses its own: [`RetryPolicy::new`] (3 attempts,
    /// backoff from 100 ms, `Retry-After` honoured up to 10 s), and
    /// [`RetryPolicy::for_refresh_tokens`] for [`RefreshToken`](crate::RefreshToken), which
    /// retries only failures to connect and 429. A policy set here applies to every grant
    /// on this endpoint, refreshes included; see [`RefreshToken`](crate::RefreshToken) for
    /// why a refresh should not replay what the server may have processed.
    /// [`RetryPolicy::none`] makes one request per fetch.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The largest response body read, in bytes (default 64 KiB); see
    /// [`HttpSettings::max_response_size`].
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.http = self.http.max_response_size(bytes);
        self
    }

    /// The lifetime assumed for a token whose response has no `expires_in` (or `0`)
    /// (default 5 minutes).
    ///
    /// RFC 6749 section 5.1 leaves the lifetime to the server's documentation when
    /// `expires_in` is missing. The default is short on purpose: guessing too short costs
    /// a few more token requests (twelve an hour), guessing too long sends an expired
    /// token until the API rejects it. Set your server's documented lifetime here.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = lifetime;
        self
    }

    /// Allows plain `http://` URLs to a host that is not loopback (default: refused); see
    /// [`HttpSettings::allow_insecure_http`].
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.http = self.http.allow_insecure_http(allow);
        self
    }

    /// The `aud` claim of `private_key_jwt` client assertions sent to this server (default:
    /// the token URL). Some servers want their issuer identifier instead.
    #[cfg(feature = "private-key-jwt")]
    pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
        self.assertion_audience = Some(audience.into());
        self
    }

    /// Takes the `mtls_endpoint_aliases` of the metadata.
    pub(crate) fn mtls_alias(mut self, plain: Option<&str>, alias: Option<&str>) -> Self {
        if let (Some(plain), Some(alias)) = (plain, alias) {
            self.mtls_aliases.push((plain.to_owned(), alias.to_owned()));
        }
        self
    }

    /// Checks the configuration and builds the endpoint.
    ///
    /// Fails if a URL is not absolute `https://` (or `http://` to loopback, or with
    /// [`allow_insecure_http`](Self::allow_insecure_http)), if the retry policy allows no
    /// attempt, or if no HTTP client was given and the default one cannot be set up (or the
    /// `hyper-client` feature is off).
    pub fn build(self) -> Result<Endpoint, BuildError> {
        let allow_insecure_http = self.http.allows_insecure_http();
        let token_url = ServerUrl::parse(&self.token_url, "token", allow_insecure_http)?;
        let revocation_url = self
            .revocation_url
            .as_deref()
            .map(|text| ServerUrl::parse(text, "revocation", allow_insecure_http))
            .transpose()?;
        if self.retry.is_some_and(|retry| retry.attempts() == 0) {
            return Err(BuildError::invalid_parameter(
                "the retry policy allows 0 attempts, so no token could ever be fetched; set \
                 `max_attempts` to 1 or more (1 means no retries)"
                    .to_owned(),
            ));
        }
        let alias_of = |url: Option<&String>| {
            let url = url?;
            self.mtls_aliases
                .iter()
                .find(|(plain, _)| plain == url)
                .map(|(_, alias)| alias.clone())
        };
        let mtls_aliases = MtlsAliases {
            token: alias_of(Some(&self.token_url)),
            revocation: alias_of(self.revocation_url.as_ref()),
        };
        let transport = Transport::new(self.http.client_or_default()?, self.http.request_timeout());
        Ok(Endpoint {
            config: Arc::new(Config {
                token_url,
                revocation_url,
                mtls_aliases,
                allow_insecure_http,
                transport,
                limits: Limits {
                    max_response_size: self
                        .http
                        .max_response_size_or(Endpoint::DEFAULT_MAX_RESPONSE_SIZE),
                    default_lifetime: self.default_lifetime,
                },
                retry: self.retry,
                assertion_audience: self.assertion_audience,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(builder: EndpointBuilder) -> Result<Endpoint, BuildError> {
        builder
            .http_client(crate::test_support::fake(200, &[], "").0)
            .build()
    }

    #[test]
    fn build_checks_the_urls_and_the_retry_policy() {
        let error = build(Endpoint::builder("http://auth.example.com/token")).unwrap_err();
        assert!(error.is_insecure_http(), "{error}");
        assert!(build(
            Endpoint::builder("http://auth.example.com/token").allow_insecure_http(true)
        )
        .is_ok());
        assert!(build(Endpoint::builder("http://127.0.0.1:8080/token")).is_ok());
        assert!(build(Endpoint::builder("not a url"))
            .unwrap_err()
            .is_invalid_url());
        assert!(build(
            Endpoint::builder("https://auth.example.com/token")
                .revocation_url("http://auth.example.com/revoke")
        )
        .unwrap_err()
        .is_insecure_http());

        let url = "https://auth.example.com/token";
        let error =
            build(Endpoint::builder(url).retry(RetryPolicy::new().max_attempts(0))).unwrap_err();
        assert!(error.is_invalid_parameter(), "{error}");
        assert!(error.to_string().contains("max_attempts"), "{error}");
        assert!(build(Endpoint::builder(url).retry(RetryPolicy::new().max_attempts(1))).is_ok());
    }

    #[test]
    fn an_alias_stands_in_only_for_the_url_it_aliases() {
        let plain = "https://auth.example.com/revoke";
        let alias = "https://mtls.auth.example.com/revoke";
        let endpoint = build(
            Endpoint::builder("https://auth.example.com/token")
                .revocation_url(plain)
                .mtls_alias(Some(plain), Some(alias)),
        )
        .unwrap();
        let (token, revocation) = endpoint.mtls_urls().unwrap();
        assert_eq!(token.to_string(), "https://auth.example.com/token");
        assert_eq!(revocation.unwrap().to_string(), alias);

        let own = build(
            Endpoint::builder("https://auth.example.com/token")
                .mtls_alias(Some(plain), Some(alias))
                .revocation_url("https://auth.example.com/own-revoke"),
        )
        .unwrap();
        let (_, revocation) = own.mtls_urls().unwrap();
        assert_eq!(
            revocation.unwrap().to_string(),
            "https://auth.example.com/own-revoke"
        );
    }

    #[cfg(feature = "hyper-client")]
    #[test]
    fn builds_with_the_default_client() {
        let endpoint = Endpoint::builder("https://auth.example.com/token")
            .build()
            .unwrap();
        assert_eq!(endpoint.token_url(), "https://auth.example.com/token");
        assert_eq!(endpoint.revocation_url(), None);
        assert!(!endpoint.transport().http().may_present_certificate());
    }
}
