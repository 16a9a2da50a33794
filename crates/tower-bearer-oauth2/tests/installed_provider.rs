//! The default HTTP client speaks TLS with the crypto provider the program installed as
//! rustls' process-wide default. A test binary of its own: the default can be installed
//! once per process, and every other test runs without one (so with `ring`).

use std::sync::atomic::{AtomicUsize, Ordering};

use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SupportedKxGroup};
use rustls::NamedGroup;
use tower_bearer::TokenSource;
use tower_bearer_oauth2::{
    ClientAuth, ClientCredentials, ClientTls, Endpoint, HttpClient, TlsClientIdentity,
};
use tower_bearer_testkit::{AuthServer, TestPki};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Key exchanges started by the installed provider's only key exchange group.
static KEY_EXCHANGES: AtomicUsize = AtomicUsize::new(0);

/// `ring`'s X25519, counting the key exchanges it starts: a group only the installed
/// provider has, which the test kit's server (`ring`'s defaults) accepts.
#[derive(Debug)]
struct CountingX25519;

impl SupportedKxGroup for CountingX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        KEY_EXCHANGES.fetch_add(1, Ordering::SeqCst);
        rustls::crypto::ring::kx_group::X25519.start()
    }

    fn name(&self) -> NamedGroup {
        rustls::crypto::ring::kx_group::X25519.name()
    }
}

/// `ring`'s provider with [`CountingX25519`] as its only key exchange group.
///
/// rustls 0.23.48 deprecated `ring::default_provider` for want of post-quantum key
/// exchange; the test needs a provider it can take apart, not a recommended one.
#[allow(deprecated)]
fn counting_provider() -> CryptoProvider {
    CryptoProvider {
        kx_groups: vec![&CountingX25519],
        ..rustls::crypto::ring::default_provider()
    }
}

#[tokio::test]
async fn the_default_client_uses_the_installed_provider() -> TestResult {
    counting_provider()
        .install_default()
        .expect("nothing else in this binary installs a provider");

    let pki = TestPki::new();
    let certificate = pki.client_certificate("billing-service");
    let auth = AuthServer::builder()
        .https(&pki)
        .tls_client("billing-service", certificate.subject_dn())
        .start()
        .await?;
    let tls = ClientTls::new()
        .identity(TlsClientIdentity::from_pem(
            certificate.certificate_pem(),
            certificate.private_key_pem(),
        )?)
        .root_certificates_pem(pki.ca_pem())?;
    let endpoint = Endpoint::builder(auth.token_url())
        .http_client(HttpClient::with_tls(tls)?)
        .build()?;
    let source =
        ClientCredentials::builder(endpoint, ClientAuth::tls_client_auth("billing-service")?)
            .build()?;
    assert_eq!(KEY_EXCHANGES.load(Ordering::SeqCst), 0);

    source.fetch().await?;
    // One connection, one handshake, its key exchange by the installed provider's group:
    // `ring`'s own X25519 would have left the count at 0.
    assert_eq!(KEY_EXCHANGES.load(Ordering::SeqCst), 1);
    assert_eq!(auth.tokens_issued(), 1);
    Ok(())
}
