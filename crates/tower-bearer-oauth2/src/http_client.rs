//! The HTTP client a token source talks to its token endpoint through: any tower service,
//! type-erased, or the default hyper-util client.

use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};
use tower_bearer::BoxError;

/// The response body every client is erased to.
pub(crate) type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Any HTTP client, erased to one type so the token sources need no type parameter.
pub(crate) type HttpClient =
    BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody>, BoxError>;

/// Erases `client`: errors become [`BoxError`], bodies yield [`Bytes`].
pub(crate) fn erase<S, B>(client: S) -> HttpClient
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    let client = client
        .map_err(Into::into)
        .map_response(|response: Response<B>| response.map(erase_body));
    BoxCloneSyncService::new(client)
}

fn erase_body<B>(body: B) -> ResponseBody
where
    B: Body + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_frame(|frame| frame.map_data(|mut data| data.copy_to_bytes(data.remaining())))
        .map_err(Into::into)
        .boxed_unsync()
}

/// The default client: hyper-util's pooled legacy client, HTTP/1.1 over rustls with the
/// `ring` provider, trusting the Mozilla root store compiled in by `webpki-roots` plus the
/// extra roots of `tls`, and presenting its identity when the server asks for a client
/// certificate.
///
/// The provider is passed explicitly instead of relying on rustls' process-wide default, so
/// this works whichever other rustls providers the application links.
#[cfg(feature = "hyper-client")]
pub(crate) fn default_client(tls: &crate::ClientTls) -> Result<HttpClient, crate::BuildError> {
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
        crate::BuildError::http_client(
            "cannot set up TLS for the default HTTP client; pass your own with `http_client`"
                .to_owned(),
            error,
        )
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(setup_error)?
    .with_root_certificates(roots);
    let config = match &tls.identity {
        None => config.with_no_client_auth(),
        Some(identity) => config
            .with_client_auth_cert(identity.certificate_chain().to_vec(), identity.key())
            // rustls' error names the mismatch, never the key bytes.
            .map_err(|error| {
                crate::BuildError::invalid_tls(
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
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
    Ok(erase(client))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn erased_client_passes_requests_and_bodies_through() {
        let client = erase(tower::service_fn(
            |request: Request<Full<Bytes>>| async move {
                let body = request.into_body().collect().await?.to_bytes();
                Ok::<_, Infallible>(Response::new(Full::new(body)))
            },
        ));
        let response = client
            .oneshot(Request::new(Full::new(Bytes::from_static(b"echo"))))
            .await
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "echo");
    }

    #[cfg(feature = "hyper-client")]
    #[test]
    fn default_client_builds() {
        assert!(default_client(&crate::ClientTls::new()).is_ok());
    }
}
