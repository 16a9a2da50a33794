//! The HTTP client the examples call your API with: hyper-util's pooled client, HTTP/1.1,
//! `https://` over rustls (trusting the Mozilla root certificates that `webpki-roots`
//! compiles in) and plain `http://`.

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// hyper-util's client over an `http`-or-`https` connector.
pub(crate) type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds the client. The crypto provider is named rather than taken from the process-wide
/// default, so this works whichever rustls providers the rest of a program links.
pub(crate) fn https_client() -> Result<HttpsClient, rustls::Error> {
    let connector = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(ring_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// rustls' `ring` provider. rustls 0.23.48 deprecated the function for want of post-quantum
/// key exchange, which only its aws-lc-rs provider has; a program that wants it names
/// `rustls::crypto::aws_lc_rs::default_provider()` here instead (and links that feature).
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
