//! The HTTPS side of the mock servers: a rustls server that requires a client certificate,
//! and what the handlers learn about that certificate (RFC 8705).
//!
//! The handshake accepts any certificate whose holder proves it has the key, so that a
//! self-signed one (section 2.2) gets as far as the token endpoint, which then decides, as
//! a real server does: a `tls_client_auth` client needs a certificate that chains to the
//! test CA and has the registered subject; a `self_signed_tls_client_auth` client needs the
//! registered certificate itself. A client with no certificate fails the handshake.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::server::Https;
use crate::TestPki;

/// How a mutual-TLS client is registered (RFC 8705 section 2).
#[derive(Clone, Debug)]
pub(crate) enum TlsClient {
    /// `tls_client_auth` with `tls_client_auth_subject_dn`: a certificate from the test CA
    /// with this subject.
    SubjectDn(String),
    /// `self_signed_tls_client_auth`: this certificate, by its `x5t#S256` thumbprint.
    SelfSigned(String),
}

impl TlsClient {
    /// Whether `peer` is this client's certificate; says why not otherwise.
    pub(crate) fn check(&self, peer: Option<&PeerCertificate>) -> Result<(), &'static str> {
        let peer = peer.ok_or("no TLS client certificate was presented")?;
        match self {
            TlsClient::SubjectDn(_) if !peer.issued_by_test_ca => {
                Err("the TLS client certificate is not issued by a trusted CA")
            }
            TlsClient::SubjectDn(subject) if *subject != peer.subject_dn => {
                Err("the TLS client certificate's subject is not the one registered")
            }
            TlsClient::SelfSigned(thumbprint) if *thumbprint != peer.thumbprint => {
                Err("the TLS client certificate is not the one registered")
            }
            _ => Ok(()),
        }
    }
}

/// The client certificate of a connection, as the token endpoint sees it. Put in each
/// request's extensions by the HTTPS accept loop.
#[derive(Clone, Debug)]
pub(crate) struct PeerCertificate {
    /// RFC 4514 text of the subject, e.g. `CN=billing`.
    pub(crate) subject_dn: String,
    /// `x5t#S256`: base64url SHA-256 of the DER certificate.
    pub(crate) thumbprint: String,
    /// Whether it chains to the test CA (checked by webpki, with the `clientAuth` usage).
    pub(crate) issued_by_test_ca: bool,
}

/// TLS for a server with `pki`'s server certificate, requiring a client certificate.
pub(crate) fn https(pki: &TestPki) -> Https {
    let provider = Arc::new(crate::test_pki::ring_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(pki.ca_der().clone())
        .expect("the test CA is a valid trust anchor");
    let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("a client verifier for the test CA");
    let check = Arc::new(ChainCheck { webpki });
    let server = pki.server_certificate();
    let key = PrivateKeyDer::from_pem_slice(server.private_key_pem().as_bytes())
        .expect("rcgen writes PKCS#8 PEM");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_client_cert_verifier(check.clone())
        .with_single_cert(vec![server.der().clone()], key)
        .expect("the server certificate matches its key");
    Https {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        check,
    }
}

/// Requires a client certificate and proof of its key in the handshake; leaves the
/// decision whether it is a known client to the token endpoint (see the module docs).
#[derive(Debug)]
pub(crate) struct ChainCheck {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ChainCheck {
    /// What the token endpoint learns about the certificate chain a client presented.
    pub(crate) fn peer(&self, chain: &[CertificateDer<'_>]) -> Option<PeerCertificate> {
        let (end_entity, intermediates) = chain.split_first()?;
        let issued_by_test_ca = self
            .webpki
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok();
        Some(PeerCertificate {
            subject_dn: subject_dn(end_entity)?,
            thumbprint: thumbprint(end_entity),
            issued_by_test_ca,
        })
    }
}

impl ClientCertVerifier for ChainCheck {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    // No CA hints: a client with a self-signed certificate must still send it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The subject of a DER certificate as RFC 4514 text, e.g. `CN=billing`.
pub(crate) fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.subject().to_string())
}

/// The subject public key bits of a DER certificate.
pub(crate) fn public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(certificate.public_key().subject_public_key.data.to_vec())
}

/// The `x5t#S256` thumbprint: base64url SHA-256 of the DER certificate.
pub(crate) fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, der))
}
