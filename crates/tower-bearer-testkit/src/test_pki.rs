//! Certificates made fresh for each test: a test CA, the HTTPS mock server's certificate,
//! client certificates it issues (RFC 8705 section 2.1) and self-signed ones (section 2.2).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls_pki_types::CertificateDer;

/// A test certificate authority, and the server certificate it issued for `127.0.0.1` and
/// `localhost`; from [`TestPki::new`].
///
/// Give it to [`AuthServerBuilder::https`](crate::AuthServerBuilder::https) to serve HTTPS
/// with a required client certificate, issue client certificates with
/// [`client_certificate`](Self::client_certificate), and trust the server on the client
/// side with [`ca_pem`](Self::ca_pem).
///
/// ```
/// use tower_bearer_testkit::TestPki;
///
/// let pki = TestPki::new();
/// let billing = pki.client_certificate("billing");
/// assert_eq!(billing.subject_dn(), "CN=billing");
/// assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub struct TestPki {
    ca: CertifiedIssuer<'static, KeyPair>,
    server: TestCertificate,
}

/// The client [`TestPki::https_client`] builds: hyper-util's pooled client over rustls.
pub type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// Numbers the test CAs of one process, so each has its own subject.
static SERIAL: AtomicU64 = AtomicU64::new(1);

impl TestPki {
    /// Generates a CA (`CN=tower-bearer test CA <n>`) and a server certificate
    /// (`CN=tower-bearer test server <n>`) with ECDSA P-256 keys.
    ///
    /// # Panics
    ///
    /// If `rcgen` cannot generate a key or sign, which does not happen with its `ring`
    /// backend; this is test support.
    pub fn new() -> Self {
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name = common_name(&format!("tower-bearer test CA {serial}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, generate_key()).expect("a CA certificate");

        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
            .expect("valid server names");
        params.distinguished_name = common_name(&format!("tower-bearer test server {serial}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = generate_key();
        let certificate = params.signed_by(&key, &ca).expect("a server certificate");
        let server = TestCertificate::new(&certificate, key);
        TestPki { ca, server }
    }

    /// The CA certificate, PEM: the root a client trusts to reach the HTTPS server.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        self.ca.der()
    }

    /// A client certificate issued by this CA, with the subject `CN=<common_name>` (no
    /// other attribute), the `clientAuth` extended key usage and a fresh ECDSA P-256 key.
    ///
    /// # Panics
    ///
    /// If `rcgen` cannot sign; see [`new`](Self::new).
    pub fn client_certificate(&self, common_name_value: &str) -> TestCertificate {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name = common_name(common_name_value);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = generate_key();
        let certificate = params
            .signed_by(&key, &self.ca)
            .expect("a client certificate");
        TestCertificate::new(&certificate, key)
    }

    /// An HTTP/1.1 client for `https://` URLs (and `http://`) that trusts only this CA and
    /// presents `certificate`, if given, as its TLS client certificate: a transport that
    /// carries the client certificate itself, as a user's own client would.
    ///
    /// # Panics
    ///
    /// If `certificate` does not hold a matching key, which rcgen's do.
    pub fn https_client(&self, certificate: Option<&TestCertificate>) -> HttpsClient {
        use std::sync::Arc;

        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::PrivateKeyDer;

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der().clone())
            .expect("the test CA is a valid trust anchor");
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(ring_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(roots);
        let config = match certificate {
            None => builder.with_no_client_auth(),
            Some(certificate) => builder
                .with_client_auth_cert(
                    vec![certificate.der().clone()],
                    PrivateKeyDer::from_pem_slice(certificate.private_key_pem().as_bytes())
                        .expect("rcgen writes PKCS#8 PEM"),
                )
                .expect("the certificate matches its key"),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector)
    }

    /// The server's certificate (for `127.0.0.1` and `localhost`) and key, for a server
    /// other than the testkit's to serve HTTPS with.
    pub fn server_certificate(&self) -> &TestCertificate {
        &self.server
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki").finish_non_exhaustive()
    }
}

/// A certificate and its private key, PEM and DER; from [`TestPki::client_certificate`] or
/// [`TestCertificate::self_signed`]. `Debug` shows the subject, never the key.
#[derive(Clone)]
pub struct TestCertificate {
    der: CertificateDer<'static>,
    certificate_pem: String,
    key_pem: String,
    subject_dn: String,
}

impl TestCertificate {
    /// A self-signed client certificate with the subject `CN=<common_name>` and a fresh
    /// ECDSA P-256 key, for `self_signed_tls_client_auth` (RFC 8705 section 2.2).
    ///
    /// # Panics
    ///
    /// If `rcgen` cannot sign; see [`TestPki::new`].
    pub fn self_signed(common_name_value: &str) -> TestCertificate {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.distinguished_name = common_name(common_name_value);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = generate_key();
        let certificate = params.self_signed(&key).expect("a self-signed certificate");
        TestCertificate::new(&certificate, key)
    }

    fn new(certificate: &rcgen::Certificate, key: KeyPair) -> Self {
        let der = certificate.der().clone();
        let certificate_pem = certificate.pem();
        let subject_dn = crate::client_certificate::subject_dn(&der).unwrap_or_default();
        TestCertificate {
            der,
            certificate_pem,
            key_pem: key.serialize_pem(),
            subject_dn,
        }
    }

    /// The certificate, PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The subject distinguished name as RFC 4514 text, e.g. `CN=billing`: what a
    /// `tls_client_auth_subject_dn` registration names.
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// The public key as a JWK (RFC 7517) with the certificate in `x5c` and its `x5t#S256`:
    /// what a client registers in its `jwks` for `self_signed_tls_client_auth` (RFC 8705
    /// section 2.2). The keys are ECDSA P-256, so `kty` is `EC`.
    pub fn public_jwk(&self) -> serde_json::Value {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        use base64::Engine as _;

        let point = crate::client_certificate::public_key(&self.der).unwrap_or_default();
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let (x, y) = match point.get(1..65) {
            Some(coordinates) => coordinates.split_at(32),
            None => (&[][..], &[][..]),
        };
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "x5c": [STANDARD.encode(self.der.as_ref())],
            "x5t#S256": self.sha256_thumbprint(),
        })
    }

    /// The SHA-256 of the DER certificate, base64url without padding: the `x5t#S256`
    /// thumbprint (RFC 8705 section 3.1) a server binds tokens to.
    pub fn sha256_thumbprint(&self) -> String {
        crate::client_certificate::thumbprint(&self.der)
    }
}

impl fmt::Debug for TestCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCertificate")
            .field("subject_dn", &self.subject_dn)
            .field("private_key", &"[redacted]")
            .finish()
    }
}

fn common_name(value: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, value);
    name
}

fn generate_key() -> KeyPair {
    KeyPair::generate().expect("an ECDSA P-256 key")
}

/// rustls' `ring` provider, named rather than taken from the process-wide default so that
/// the kit works whichever providers a test program links. rustls 0.23.48 deprecated the
/// function for want of post-quantum key exchange, which tests on loopback do not need.
#[allow(deprecated)]
pub(crate) fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
