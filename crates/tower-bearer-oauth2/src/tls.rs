//! TLS settings of the default HTTP client: a client certificate to present for mutual-TLS
//! client authentication (RFC 8705), and extra trusted roots for a private token endpoint.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::BuildError;

/// A client certificate chain and its private key, which the default HTTP client presents
/// in the TLS handshake with the authorization server (RFC 8705).
///
/// Give it to [`ClientTls::identity`]. The private key is zeroized when the last clone is
/// dropped (rustls keeps its own parsed copy while the client lives) and never appears in
/// `Debug` output or errors.
///
/// ```
/// use tower_bearer_oauth2::TlsClientIdentity;
///
/// let error = TlsClientIdentity::from_pem(b"not a certificate", b"not a key").unwrap_err();
/// assert!(error.is_invalid_tls());
/// ```
#[derive(Clone)]
pub struct TlsClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<Zeroizing<PrivateKeyDer<'static>>>,
}

impl TlsClientIdentity {
    /// Reads the certificate chain (the client's certificate first, then any
    /// intermediates) and the private key (PKCS#8, PKCS#1 or SEC1) from PEM text, and checks
    /// that the key is one rustls can sign with (RSA, ECDSA P-256 or P-384, Ed25519).
    ///
    /// Fails with [`BuildError::is_invalid_tls`] when either holds no usable PEM section.
    pub fn from_pem(
        certificate_chain_pem: impl AsRef<[u8]>,
        private_key_pem: impl AsRef<[u8]>,
    ) -> Result<Self, BuildError> {
        let chain = certificates_from_pem(certificate_chain_pem.as_ref(), "client certificate")?;
        // The PEM error may quote the input, so it is not passed on.
        let key = PrivateKeyDer::from_pem_slice(private_key_pem.as_ref()).map_err(|_| {
            BuildError::invalid_tls(
                "the client private key is not a PEM private key (`BEGIN PRIVATE KEY`, \
                 `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`); check the key file"
                    .to_owned(),
            )
        })?;
        if rustls::crypto::ring::sign::any_supported_type(&key).is_err() {
            return Err(BuildError::invalid_tls(
                "the client private key is of a kind rustls cannot sign with; use an RSA, \
                 ECDSA P-256/P-384 or Ed25519 key"
                    .to_owned(),
            ));
        }
        Ok(TlsClientIdentity {
            chain,
            key: Arc::new(Zeroizing::new(key)),
        })
    }

    /// The certificate chain, the client's own certificate first, DER-encoded.
    pub fn certificate_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

impl fmt::Debug for TlsClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClientIdentity")
            .field("certificates", &self.chain.len())
            .field("private_key", &"[redacted]")
            .finish()
    }
}

/// The TLS settings of the default HTTP client beyond its defaults: a client certificate to
/// present (RFC 8705 mutual TLS, certificate-bound tokens) and root certificates to trust
/// besides the Mozilla roots (a token endpoint with a certificate from a private CA).
///
/// Give it to [`HttpClient::with_tls`](crate::HttpClient::with_tls), and that client to
/// the [`Endpoint`](crate::Endpoint) or [`Discovery`](crate::Discovery). It configures the
/// default client only: with your own client
/// ([`HttpClient::from_service`](crate::HttpClient::from_service)), set the certificate in
/// that client's TLS configuration.
///
/// ```
/// use tower_bearer_oauth2::{ClientTls, TlsClientIdentity};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let pki = tower_bearer_testkit::TestPki::new();
/// # let certificate = pki.client_certificate("billing-service");
/// # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # std::fs::write(dir.join("tls.crt"), certificate.certificate_pem())?;
/// # std::fs::write(dir.join("tls.key"), certificate.private_key_pem())?;
/// # std::fs::write(dir.join("auth-ca.crt"), pki.ca_pem())?;
/// let etc = std::path::Path::new("/etc/billing");
/// # let etc = dir.as_path();
/// let tls = ClientTls::new()
///     .identity(TlsClientIdentity::from_pem(
///         std::fs::read(etc.join("tls.crt"))?,
///         std::fs::read(etc.join("tls.key"))?,
///     )?)
///     .root_certificates_pem(std::fs::read(etc.join("auth-ca.crt"))?)?;
/// # assert!(format!("{tls:?}").contains("extra_roots: 1"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ClientTls {
    pub(crate) identity: Option<TlsClientIdentity>,
    pub(crate) roots: Vec<CertificateDer<'static>>,
}

impl ClientTls {
    /// No client certificate, no extra roots: the default client's behaviour.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client certificate to present when the server asks for one.
    #[must_use]
    pub fn identity(mut self, identity: TlsClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Adds the root certificates in `pem` (one or more `BEGIN CERTIFICATE` sections) to
    /// those the client trusts for the server's certificate. Repeatable.
    ///
    /// Fails with [`BuildError::is_invalid_tls`] when `pem` holds no certificate, or one
    /// that cannot be a trust anchor.
    pub fn root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Result<Self, BuildError> {
        let certificates = certificates_from_pem(pem.as_ref(), "root certificate")?;
        // Checked now rather than when the client is built, so the error points here.
        let mut store = rustls::RootCertStore::empty();
        for certificate in &certificates {
            store.add(certificate.clone()).map_err(|error| {
                BuildError::invalid_tls(
                    "a root certificate is not a usable trust anchor; pass the CA certificate \
                     that issued the server's certificate"
                        .to_owned(),
                )
                .with_source(error)
            })?;
        }
        self.roots.extend(certificates);
        Ok(self)
    }

    /// Whether a client certificate is set.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("identity", &self.identity)
            .field("extra_roots", &self.roots.len())
            .finish()
    }
}

/// Every certificate in `pem`; at least one.
fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            BuildError::invalid_tls(format!("the {what} PEM is malformed; check the file"))
                .with_source(error)
        })?;
    if certificates.is_empty() {
        return Err(BuildError::invalid_tls(format!(
            "the {what} PEM holds no `BEGIN CERTIFICATE` section; check the file"
        )));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_a_typed_error_that_does_not_quote_the_key() {
        let error =
            TlsClientIdentity::from_pem("", "-----BEGIN PRIVATE KEY-----\nhunter2").unwrap_err();
        assert!(error.is_invalid_tls());
        assert!(error.to_string().contains("client certificate"), "{error}");

        let certificate = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let error =
            TlsClientIdentity::from_pem(certificate, "-----BEGIN PRIVATE KEY-----\nhunter2")
                .unwrap_err();
        assert!(error.is_invalid_tls());
        assert!(error.to_string().contains("private key"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
    }

    #[test]
    fn roots_without_a_certificate_are_a_typed_error() {
        let error = ClientTls::new().root_certificates_pem("nope").unwrap_err();
        assert!(error.is_invalid_tls());
        assert!(error.to_string().contains("root certificate"), "{error}");
        assert!(!ClientTls::new().has_identity());
    }
}
