//! What every source's builder configures about the authorization server and the client:
//! the endpoints, the credentials, the limits, the HTTP client and the retry policy. Checked
//! once, by [`EndpointSettings::build`].

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::client_auth::ClientSecret;
use crate::endpoint::{Limits, TokenEndpoint};
use crate::http_client::HttpClient;
use crate::token_url::TokenUrl;
use crate::{AuthServerMetadata, BuildError, ClientAuth, RetryPolicy};

/// The default request timeout: 30 seconds.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The default response size limit: 64 KiB.
pub(crate) const DEFAULT_MAX_RESPONSE_SIZE: usize = 64 * 1024;
/// The default lifetime of a token whose response has no `expires_in`: 5 minutes.
pub(crate) const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// A builder's view of the authorization server and the client, before it is checked.
pub(crate) struct EndpointSettings {
    pub(crate) token_url: String,
    pub(crate) revocation_url: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) client_auth: ClientAuth,
    #[cfg(feature = "private-key-jwt")]
    pub(crate) private_key: Option<crate::PrivateKey>,
    pub(crate) assertion_audience: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_response_size: usize,
    pub(crate) default_lifetime: Duration,
    pub(crate) allow_insecure_http: bool,
    pub(crate) http_client: Option<HttpClient>,
    /// The client certificate and extra roots of the default HTTP client.
    #[cfg(feature = "hyper-client")]
    pub(crate) tls: crate::ClientTls,
    /// The RFC 8705 section 5 endpoints from the metadata, used with mutual TLS.
    pub(crate) mtls_aliases: MtlsAliases,
    pub(crate) retry: RetryPolicy,
}

/// The metadata's `mtls_endpoint_aliases` (RFC 8705 section 5), each with the plain URL it
/// stands in for, so a URL the user set afterwards is left alone.
#[derive(Clone, Debug, Default)]
pub(crate) struct MtlsAliases {
    token: Option<(String, String)>,
    revocation: Option<(String, String)>,
}

impl MtlsAliases {
    /// `alias` when `url` is still the plain URL it stands in for.
    fn pick<'a>(alias: &'a Option<(String, String)>, url: &'a str) -> &'a str {
        match alias {
            Some((plain, alias)) if plain == url => alias,
            _ => url,
        }
    }
}

impl EndpointSettings {
    pub(crate) fn new(
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        retry: RetryPolicy,
    ) -> Self {
        EndpointSettings {
            token_url,
            revocation_url: None,
            client_id,
            client_secret,
            client_auth: ClientAuth::default(),
            #[cfg(feature = "private-key-jwt")]
            private_key: None,
            assertion_audience: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            default_lifetime: DEFAULT_LIFETIME,
            allow_insecure_http: false,
            http_client: None,
            #[cfg(feature = "hyper-client")]
            tls: crate::ClientTls::new(),
            mtls_aliases: MtlsAliases::default(),
            retry,
        }
    }

    /// Takes the revocation endpoint and the mTLS aliases from discovered metadata.
    pub(crate) fn use_metadata(&mut self, metadata: &AuthServerMetadata) {
        self.revocation_url = metadata.revocation_endpoint().map(str::to_owned);
        let alias =
            |plain: Option<&str>, alias: Option<&str>| Some((plain?.to_owned(), alias?.to_owned()));
        self.mtls_aliases = MtlsAliases {
            token: alias(
                Some(metadata.token_endpoint()),
                metadata.mtls_token_endpoint(),
            ),
            revocation: alias(
                metadata.revocation_endpoint(),
                metadata.mtls_revocation_endpoint(),
            ),
        };
    }

    /// Checks the URLs, the credentials and the retry policy, and sets up the HTTP client.
    pub(crate) fn build(self) -> Result<TokenEndpoint, BuildError> {
        let mtls = self.client_auth.is_mutual_tls();
        let token_url = if mtls {
            MtlsAliases::pick(&self.mtls_aliases.token, &self.token_url)
        } else {
            &self.token_url
        };
        let url = TokenUrl::parse(token_url, "token", self.allow_insecure_http)?;
        let revocation_url = self
            .revocation_url
            .as_deref()
            .map(|text| {
                if mtls {
                    MtlsAliases::pick(&self.mtls_aliases.revocation, text)
                } else {
                    text
                }
            })
            .map(|text| TokenUrl::parse(text, "revocation", self.allow_insecure_http))
            .transpose()?;
        if self.client_id.is_empty() && self.client_auth != ClientAuth::None {
            return Err(BuildError::invalid_credentials(
                "the client id is empty; pass the id the authorization server registered"
                    .to_owned(),
            ));
        }
        if self.client_auth == ClientAuth::PrivateKeyJwt {
            self.check_private_key()?;
        } else if mtls {
            self.check_client_certificate()?;
        } else if self.client_auth != ClientAuth::None
            && self.client_secret.expose_secret().is_empty()
        {
            return Err(BuildError::invalid_credentials(format!(
                "the client secret of client `{}` is empty; check where it is read from \
                 (an unset environment variable?)",
                self.client_id
            )));
        }
        if self.retry.attempts() == 0 {
            return Err(BuildError::invalid_parameter(
                "the retry policy allows 0 attempts, so no token could ever be fetched; set \
                 `max_attempts` to 1 or more (1 means no retries)"
                    .to_owned(),
            ));
        }
        let http = match self.http_client {
            #[cfg(feature = "hyper-client")]
            Some(client) => {
                check_unused(&self.tls)?;
                client
            }
            #[cfg(not(feature = "hyper-client"))]
            Some(client) => client,
            #[cfg(feature = "hyper-client")]
            None => crate::http_client::default_client(&self.tls)?,
            #[cfg(not(feature = "hyper-client"))]
            None => default_http_client()?,
        };
        Ok(TokenEndpoint {
            url,
            revocation_url,
            client: ClientSecret {
                id: self.client_id,
                secret: self.client_secret,
                method: self.client_auth,
                #[cfg(feature = "private-key-jwt")]
                key: self.private_key,
                assertion_audience: self.assertion_audience,
            },
            http,
            limits: Limits {
                timeout: self.timeout,
                max_response_size: self.max_response_size,
                default_lifetime: self.default_lifetime,
            },
            retry: self.retry,
        })
    }

    #[cfg(feature = "private-key-jwt")]
    fn check_private_key(&self) -> Result<(), BuildError> {
        match self.private_key {
            Some(_) => Ok(()),
            None => Err(BuildError::invalid_credentials(format!(
                "client `{}` is set to authenticate with private_key_jwt but has no private                  key; build the source with `builder_with_private_key`",
                self.client_id
            ))),
        }
    }

    #[cfg(not(feature = "private-key-jwt"))]
    fn check_private_key(&self) -> Result<(), BuildError> {
        Err(BuildError::invalid_credentials(
            "private_key_jwt client authentication needs the `private-key-jwt` feature of \
             tower-bearer-oauth2"
                .to_owned(),
        ))
    }

    /// With mutual TLS, someone must present a certificate: the default client with an
    /// identity, or the user's own client. TLS settings for the default client are refused
    /// alongside a user's client, which would silently ignore them.
    fn check_client_certificate(&self) -> Result<(), BuildError> {
        #[cfg(feature = "hyper-client")]
        if self.http_client.is_none() && !self.tls.has_identity() {
            return Err(BuildError::invalid_tls(format!(
                "client `{}` is set to authenticate with {} (RFC 8705) but the default HTTP \
                 client has no client certificate to present; give it one with \
                 `.tls(ClientTls::new().identity(TlsClientIdentity::from_pem(..)?))`, or \
                 pass an `http_client` whose TLS presents the certificate",
                self.client_id, self.client_auth
            )));
        }
        Ok(())
    }

    /// Adds the settings to a builder's `Debug` output, without the secret.
    pub(crate) fn debug_fields(&self, f: &mut fmt::DebugStruct<'_, '_>) {
        f.field("token_url", &self.token_url)
            .field("revocation_url", &self.revocation_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("client_auth", &self.client_auth)
            .field("assertion_audience", &self.assertion_audience)
            .field("timeout", &self.timeout)
            .field("max_response_size", &self.max_response_size)
            .field("default_lifetime", &self.default_lifetime)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .field("http_client", &self.http_client.as_ref().map(|_| ".."));
        #[cfg(feature = "hyper-client")]
        f.field("tls", &self.tls);
        f.field("retry", &self.retry);
    }
}

/// Refuses TLS settings that `client`, the user's own, would silently ignore.
#[cfg(feature = "hyper-client")]
fn check_unused(tls: &crate::ClientTls) -> Result<(), BuildError> {
    if tls.is_default() {
        return Ok(());
    }
    Err(BuildError::invalid_tls(
        "`tls` configures the default HTTP client, but an `http_client` was given; set the \
         client certificate and roots in that client's TLS configuration instead"
            .to_owned(),
    ))
}

#[cfg(not(feature = "hyper-client"))]
pub(crate) fn default_http_client() -> Result<HttpClient, BuildError> {
    Err(BuildError::no_http_client())
}

/// The setters every source's builder shares, writing to its `settings:`
/// [`EndpointSettings`] field, so they are written (and documented) once. `$retry_default`
/// documents the builder's default [`RetryPolicy`] when it is not [`RetryPolicy::new`].
macro_rules! endpoint_setters {
    () => {
        $crate::settings::endpoint_setters!(
            retry_default = "[`RetryPolicy::new`]: 3 attempts, backoff from 100 ms, \
                             `Retry-After` honoured up to 10 s"
        );
    };
    (retry_default = $retry_default:literal) => {
        /// How the client authenticates:
        /// [`ClientAuth::ClientSecretBasic`](crate::ClientAuth::ClientSecretBasic) (the default
        /// for sources built with a secret),
        /// [`ClientAuth::ClientSecretPost`](crate::ClientAuth::ClientSecretPost),
        /// [`ClientAuth::None`](crate::ClientAuth::None) where the grant allows a public
        /// client, or mutual TLS
        /// ([`ClientAuth::TlsClientAuth`](crate::ClientAuth::TlsClientAuth),
        /// [`ClientAuth::SelfSignedTlsClientAuth`](crate::ClientAuth::SelfSignedTlsClientAuth),
        /// RFC 8705), which needs no secret but a client certificate on the transport. With
        /// mutual TLS and server metadata, the server's `mtls_endpoint_aliases` are used
        /// (RFC 8705 section 5).
        pub fn client_auth(mut self, client_auth: $crate::ClientAuth) -> Self {
            self.settings.client_auth = client_auth;
            self
        }

        /// The `aud` claim of `private_key_jwt` client assertions (default: the token URL).
        /// Some servers want their issuer identifier instead.
        #[cfg(feature = "private-key-jwt")]
        pub fn assertion_audience(mut self, audience: impl Into<String>) -> Self {
            self.settings.assertion_audience = Some(audience.into());
            self
        }

        /// How long one token request may take, from sending it to reading the whole
        /// response (default 30 s). A request that takes longer fails as a transient error,
        /// and is retried per the [`retry`](Self::retry) policy.
        ///
        /// The timeout applies to each attempt: a whole fetch takes at most
        /// `max_attempts × timeout` plus
        /// [`RetryPolicy::max_total_wait`](crate::RetryPolicy::max_total_wait).
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.settings.timeout = timeout;
            self
        }

        #[doc = concat!(
            "How a fetch retries failures that may be brief before it gives up and lets the \
             cache back off (default ",
            $retry_default,
            "). [`RetryPolicy::none`](crate::RetryPolicy::none) makes one request per fetch."
        )]
        pub fn retry(mut self, policy: $crate::RetryPolicy) -> Self {
            self.settings.retry = policy;
            self
        }

        /// The largest response body read from the token endpoint, in bytes (default
        /// 64 KiB). A larger response fails as a permanent error.
        pub fn max_response_size(mut self, bytes: usize) -> Self {
            self.settings.max_response_size = bytes;
            self
        }

        /// The lifetime assumed for a token whose response has no `expires_in` (or `0`)
        /// (default 5 minutes).
        ///
        /// RFC 6749 section 5.1 leaves the lifetime to the server's documentation when
        /// `expires_in` is missing. The default is short on purpose: guessing too short costs
        /// a few more token requests (twelve an hour), guessing too long sends an expired
        /// token until the API rejects it. Set your server's documented lifetime here.
        pub fn default_lifetime(mut self, lifetime: std::time::Duration) -> Self {
            self.settings.default_lifetime = lifetime;
            self
        }

        /// Allows a plain `http://` token URL to a host that is not loopback (default:
        /// refused).
        ///
        /// The client secret and the tokens then cross the network unencrypted, which
        /// RFC 6749 section 3.2 forbids; only for networks you trust, such as a service mesh
        /// that adds TLS. Loopback hosts (`localhost`, 127.0.0.0/8, `::1`) are always
        /// allowed.
        pub fn allow_insecure_http(mut self, allow: bool) -> Self {
            self.settings.allow_insecure_http = allow;
            self
        }

        /// The HTTP client to reach the token endpoint with, instead of the default one (from
        /// the `hyper-client` feature).
        ///
        /// Any tower service from `http::Request<Full<Bytes>>` to `http::Response<B>` works:
        /// hyper-util's client with your own TLS settings or proxy, a client with tracing or
        /// metrics layers, or a fake in tests. The request URI is absolute. Do not add a
        /// retry layer that retries 4xx responses.
        ///
        /// ```
        /// use std::convert::Infallible;
        /// use bytes::Bytes;
        /// use http::{Request, Response};
        /// use http_body_util::Full;
        /// use tower_bearer::TokenSource;
        /// use tower_bearer_oauth2::ClientCredentials;
        ///
        /// # #[tokio::main(flavor = "current_thread")]
        /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        /// // A fake authorization server that hands out the same token to everybody.
        /// let fake_server = tower::service_fn(|_request: Request<Full<Bytes>>| async {
        ///     let body = r#"{"access_token":"abc","token_type":"Bearer","expires_in":60}"#;
        ///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(body.as_bytes()))))
        /// });
        /// let source = ClientCredentials::builder("https://auth.example.com/token", "id", "secret")
        ///     .http_client(fake_server)
        ///     .build()?;
        /// let token = source.fetch().await?;
        /// assert_eq!(token.header_value(), "Bearer abc");
        /// # Ok(())
        /// # }
        /// ```
        pub fn http_client<S, B>(mut self, client: S) -> Self
        where
            S: tower::Service<
                    http::Request<http_body_util::Full<bytes::Bytes>>,
                    Response = http::Response<B>,
                > + Clone
                + Send
                + Sync
                + 'static,
            S::Future: Send + 'static,
            S::Error: Into<tower_bearer::BoxError>,
            B: http_body::Body + Send + 'static,
            B::Error: Into<tower_bearer::BoxError>,
        {
            self.settings.http_client = Some($crate::http_client::erase(client));
            self
        }

        /// The TLS settings of the default HTTP client: the client certificate it presents
        /// for mutual-TLS client authentication or certificate-bound tokens (RFC 8705), and
        /// extra roots for a private CA. Not for use with [`http_client`](Self::http_client):
        /// configure that client's TLS instead.
        #[cfg(feature = "hyper-client")]
        pub fn tls(mut self, tls: $crate::ClientTls) -> Self {
            self.settings.tls = tls;
            self
        }
    };
}

pub(crate) use endpoint_setters;

/// The `scope` and `param` setters of a builder with `scope: Option<String>` and
/// `params: Vec<(String, String)>` fields; `scope_doc` and `param_doc` say what is special
/// about them for the grant.
macro_rules! request_setters {
    (scope_doc = $scope_doc:literal, param_doc = $param_doc:literal) => {
        #[doc = $scope_doc]
        ///
        /// Replaces any scope set before. Runs of whitespace are collapsed; an empty scope
        /// requests none.
        pub fn scope(mut self, scope: impl Into<String>) -> Self {
            self.scope = Some(scope.into());
            self
        }

        /// An extra form parameter for the token request, for servers that want more than
        /// the RFC. Repeatable; parameters are sent in the order given.
        ///
        #[doc = $param_doc]
        pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.params.push((name.into(), value.into()));
            self
        }
    };
}

pub(crate) use request_setters;

/// A source's accessors for its endpoint settings, at `self.<path>`.
macro_rules! endpoint_getters {
    ($($path:ident).+) => {
        /// The token endpoint URL.
        pub fn token_url(&self) -> &http::Uri {
            self.$($path).+.url.uri()
        }

        /// The client id (empty when a source without client authentication was given none).
        pub fn client_id(&self) -> &str {
            &self.$($path).+.client.id
        }

        /// How the client authenticates.
        pub fn client_auth(&self) -> $crate::ClientAuth {
            self.$($path).+.client.method
        }
    };
}

pub(crate) use endpoint_getters;
