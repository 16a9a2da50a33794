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
        if self.client_id.is_empty() {
            return Err(BuildError::invalid_credentials(
                "the client id is empty; pass the id the authorization server registered"
                    .to_owned(),
            ));
        }
        if self.client_auth == ClientAuth::PrivateKeyJwt {
            self.check_private_key()?;
        } else if mtls {
            self.check_client_certificate()?;
        } else if self.client_secret.expose_secret().is_empty() {
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
