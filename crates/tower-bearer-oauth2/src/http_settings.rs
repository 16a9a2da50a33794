//! How requests reach the authorization server: the [`HttpSettings`] that an
//! [`EndpointBuilder`](crate::EndpointBuilder) and a [`Discovery`](crate::Discovery) both
//! take, and that discovered metadata hands on to the endpoint configured from it.

use std::time::Duration;

use crate::{BuildError, HttpClient};

/// How requests reach an authorization server: the [`HttpClient`], how long each request
/// may take, the largest response read, and whether plain `http://` to a host that is not
/// loopback is allowed.
///
/// One value configures both sides of a server: give it to
/// [`Discovery::http_settings`](crate::Discovery::http_settings), and the
/// [`AuthServerMetadata::endpoint`](crate::AuthServerMetadata::endpoint) built from what
/// discovery found talks to the server the same way, over the same client and connection
/// pool; or give it to [`EndpointBuilder::http_settings`](crate::EndpointBuilder::http_settings)
/// directly. The builders' `http_client`, `timeout`, `max_response_size` and
/// `allow_insecure_http` methods change one setting of the value they hold.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::TokenSource;
/// use tower_bearer_oauth2::{ClientCredentials, Discovery, HttpClient, HttpSettings};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let auth = tower_bearer_testkit::AuthServer::builder().client("my-service", "s3cret").start().await?;
/// # std::env::set_var("CLIENT_SECRET", "s3cret");
/// let issuer = "https://auth.example.com";
/// # let issuer = auth.url();
/// let http = HttpSettings::new()
///     .http_client(HttpClient::new()?)
///     .timeout(Duration::from_secs(5));
/// let metadata = Discovery::new().http_settings(http).fetch(&issuer).await?;
/// // Token requests go as the metadata request went: same client and pool, 5 s each.
/// let endpoint = metadata.endpoint().build()?;
/// let client = metadata.client_secret_auth("my-service", std::env::var("CLIENT_SECRET")?)?;
/// let source = ClientCredentials::builder(endpoint, client).build()?;
/// source.fetch().await?;
/// # assert_eq!((auth.metadata_requests(), auth.tokens_issued()), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "settings do nothing until given to an endpoint or a discovery"]
pub struct HttpSettings {
    /// `None`: a new default client, made when the endpoint is built or discovery fetches.
    http_client: Option<HttpClient>,
    timeout: Duration,
    /// `None`: each kind of request's own default.
    max_response_size: Option<usize>,
    allow_insecure_http: bool,
}

impl HttpSettings {
    /// The default [`timeout`](Self::timeout) of each request: 30 seconds, long enough for
    /// a server under load, short enough that a hung connection is given up while a cached
    /// token is still valid.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// The default settings: a new default [`HttpClient`] (the `hyper-client` feature),
    /// 30 s per request, each kind of request's own size limit, `https://` only (and
    /// `http://` to loopback).
    pub fn new() -> Self {
        HttpSettings {
            http_client: None,
            timeout: Self::DEFAULT_TIMEOUT,
            max_response_size: None,
            allow_insecure_http: false,
        }
    }

    /// The HTTP client to reach the server with (default: a new [`HttpClient::new`], from
    /// the `hyper-client` feature, made when the endpoint is built or discovery fetches,
    /// and handed from discovery on to the endpoint of its metadata). Pass a clone of one
    /// client to every endpoint and discovery on the same server to share its connection
    /// pool, or [`HttpClient::with_tls`] for a client certificate or a private CA.
    pub fn http_client(mut self, client: HttpClient) -> Self {
        self.http_client = Some(client);
        self
    }

    /// How long one request may take, from sending it to reading the whole response
    /// (default 30 s). At the token endpoint a request that takes longer fails as a
    /// transient error and is retried per the endpoint's
    /// [`retry`](crate::EndpointBuilder::retry) policy; the timeout applies to each
    /// attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest response body read, in bytes. By default each kind of request has its
    /// own: [`Endpoint::DEFAULT_MAX_RESPONSE_SIZE`](crate::Endpoint::DEFAULT_MAX_RESPONSE_SIZE)
    /// (64 KiB) for token and revocation responses,
    /// [`Discovery::DEFAULT_MAX_RESPONSE_SIZE`](crate::Discovery::DEFAULT_MAX_RESPONSE_SIZE)
    /// (256 KiB) for metadata documents; a size set here applies to all of them. A larger
    /// response fails as a permanent error.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.max_response_size = Some(bytes);
        self
    }

    /// Allows plain `http://` URLs to a host that is not loopback (default: refused), for
    /// the issuer and for the endpoints.
    ///
    /// The client secret and the tokens then cross the network unencrypted, which
    /// RFC 6749 section 3.2 forbids, and metadata fetched in the clear can be changed on
    /// the way to point the client at another server; only for networks you trust, such
    /// as a service mesh that adds TLS. Loopback hosts (`localhost`, 127.0.0.0/8, `::1`)
    /// are always allowed.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The client given, or a new default one.
    pub(crate) fn client_or_default(&self) -> Result<HttpClient, BuildError> {
        match &self.http_client {
            Some(client) => Ok(client.clone()),
            None => HttpClient::default_or_error(),
        }
    }

    /// The request timeout.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.timeout
    }

    /// The size limit set, else `default`, the limit of the kind of request asking.
    pub(crate) fn max_response_size_or(&self, default: usize) -> usize {
        self.max_response_size.unwrap_or(default)
    }

    pub(crate) fn allows_insecure_http(&self) -> bool {
        self.allow_insecure_http
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self::new()
    }
}
