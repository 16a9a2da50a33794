//! The HTTP client the sources talk to the authorization server through: any tower service,
//! type-erased, or the default hyper-util client.

use std::fmt;

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};
use tower_bearer::BoxError;

use crate::BuildError;

/// The response body every client is erased to.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Any HTTP client, erased to one type so the token sources need no type parameter.
pub(crate) type ErasedClient =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody>, BoxError>;

/// The HTTP client an [`Endpoint`](crate::Endpoint) or a [`Discovery`](crate::Discovery)
/// reaches the authorization server with. Clones share one connection pool, so give the
/// same client to every endpoint on one server (and to its discovery).
///
/// Either the default client (the `hyper-client` feature) with its TLS settings, or your
/// own tower service; there is no way to give TLS settings to a client that would ignore
/// them.
///
/// ```
/// use std::convert::Infallible;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower_bearer::TokenSource;
/// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, HttpClient};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// // A fake authorization server that hands out the same token to everybody.
/// let fake_server = tower::service_fn(|_request: Request<Full<Bytes>>| async {
///     let body = r#"{"access_token":"abc","token_type":"Bearer","expires_in":60}"#;
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(body.as_bytes()))))
/// });
/// let endpoint = Endpoint::builder("https://auth.example.com/token")
///     .http_client(HttpClient::from_service(fake_server))
///     .build()?;
/// let source = ClientCredentials::builder(endpoint, ClientAuth::secret_basic("id", "secret")?)
///     .build()?;
/// let token = source.fetch().await?;
/// assert_eq!(token.header_value(), "Bearer abc");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpClient {
    service: ErasedClient,
    /// The default client's TLS settings; `None` for the user's own client.
    #[cfg(feature = "hyper-client")]
    tls: Option<crate::ClientTls>,
}

impl HttpClient {
    /// The default client: hyper-util's pooled client speaking HTTP/1.1 over rustls with the
    /// Mozilla root certificates, presenting no client certificate. Its crypto provider is
    /// the program's process-wide rustls default if it installed one, `ring` otherwise.
    #[cfg(feature = "hyper-client")]
    pub fn new() -> Result<Self, BuildError> {
        Self::with_tls(crate::ClientTls::new())
    }

    /// The default client with TLS settings: a client certificate to present (mutual TLS,
    /// RFC 8705) and extra roots to trust (a private CA).
    ///
    /// Fails with [`BuildError::is_invalid_tls`] when the certificate and key do not belong
    /// together.
    #[cfg(feature = "hyper-client")]
    pub fn with_tls(tls: crate::ClientTls) -> Result<Self, BuildError> {
        let mut client = Self::from_service(default_client(&tls)?);
        client.tls = Some(tls);
        Ok(client)
    }

    /// Your own client: any tower service from `http::Request<Full<Bytes>>` to
    /// `http::Response<B>`, such as hyper-util's client with your TLS settings or proxy, a
    /// client with tracing or metrics layers, or a fake in tests. The request URI is
    /// absolute. Do not add a retry layer that retries 4xx responses.
    pub fn from_service<S, B>(service: S) -> Self
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = service
            .map_err(Into::into)
            .map_response(|response: Response<B>| response.map(erase_body));
        HttpClient {
            service: BoxCloneSyncService::new(service),
            #[cfg(feature = "hyper-client")]
            tls: None,
        }
    }

    /// The default client, or the error that says why there is none.
    pub(crate) fn default_or_error() -> Result<Self, BuildError> {
        #[cfg(feature = "hyper-client")]
        return Self::new();
        #[cfg(not(feature = "hyper-client"))]
        return Err(BuildError::no_http_client());
    }

    /// Whether this client can present a TLS client certificate: the default client with an
    /// identity, or the user's own client, whose TLS this crate cannot see.
    pub(crate) fn may_present_certificate(&self) -> bool {
        #[cfg(feature = "hyper-client")]
        return self.tls.as_ref().is_none_or(crate::ClientTls::has_identity);
        #[cfg(not(feature = "hyper-client"))]
        return true;
    }

    pub(crate) fn service(&self) -> ErasedClient {
        self.service.clone()
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("HttpClient");
        #[cfg(feature = "hyper-client")]
        match &self.tls {
            Some(tls) => debug.field("tls", tls),
            None => debug.field("own", &true),
        };
        debug.finish_non_exhaustive()
    }
}

/// Erases a body: its errors become [`BoxError`], its data [`Bytes`].
fn erase_body<B>(body: B) -> ResponseBody
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
        .map_err(Into::into)
        .boxed_unsync()
}

/// The default client: hyper-util's pooled legacy client, HTTP/1.1 over rustls, trusting the
/// Mozilla root store compiled in by `webpki-roots` plus the extra roots of `tls`, and
/// presenting its identity when the server asks for a client certificate.
///
/// The crypto provider is the one the program installed as rustls' process-wide default
/// (`CryptoProvider::install_default`: aws-lc-rs for post-quantum key exchange, or a FIPS
/// build), and rustls' `ring` provider when it installed none. This crate never installs one
/// itself, and works whichever other providers the program links.
#[cfg(feature = "hyper-client")]
fn default_client(tls: &crate::ClientTls) -> Result<DefaultClient, BuildError> {
    use std::sync::Arc;

    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // `ClientTls::root_certificates_pem` checked them.
    let (added, _ignored) = roots.add_parsable_certificates(tls.roots.iter().cloned());
    debug_assert_eq!(added, tls.roots.len());
    let setup_error = |error: rustls::Error| {
        BuildError::http_client(
            "cannot set up TLS for the default HTTP client; pass your own with `HttpClient::from_service`"
                .to_owned(),
            error,
        )
    };
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(ring_provider()));
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup_error)?
        .with_root_certificates(roots);
    let config = match &tls.identity {
        None => config.with_no_client_auth(),
        Some(identity) => config
            .with_client_auth_cert(identity.certificate_chain().to_vec(), identity.key())
            // rustls' error names the mismatch, never the key bytes.
            .map_err(|error| {
                BuildError::invalid_tls(
                    "the TLS client certificate and private key cannot be used together; \
                     check that the key belongs to the first certificate"
                        .to_owned(),
                )
                .with_source(error)
            })?,
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector))
}

/// The type of the default client.
#[cfg(feature = "hyper-client")]
type DefaultClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// rustls' `ring` provider, for a program that installed no process-wide default.
///
/// rustls 0.23.48 deprecated the function for want of post-quantum key exchange, which only
/// its aws-lc-rs provider has; it names no replacement built on `ring`. A program that wants
/// post-quantum key exchange installs aws-lc-rs as its default, and the default client uses
/// that instead.
#[cfg(feature = "hyper-client")]
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn erased_client_passes_requests_and_bodies_through() {
        let client = HttpClient::from_service(tower::service_fn(
            |request: Request<Full<Bytes>>| async move {
                let body = request.into_body().collect().await?.to_bytes();
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            },
        ));
        let response = client
            .service()
            .oneshot(Request::new(Full::new(Bytes::from_static(b"echo"))))
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "echo");
    }

    #[cfg(feature = "hyper-client")]
    #[test]
    fn default_client_builds() {
        let client = HttpClient::new().unwrap();
        assert!(!client.may_present_certificate());
        assert!(format!("{client:?}").contains("ClientTls"));
    }
}
