//! Signing keys for testing `private_key_jwt` client authentication: the private half for the
//! client, the public half for the mock server or a real one.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

/// A 2048-bit RSA key made with `openssl genpkey` for these tests only; it protects nothing.
/// Fixed because `ring` cannot generate RSA keys.
const TEST_RSA_KEY_PEM: &str = include_str!("test_rsa_key.pem");

/// A key pair for `private_key_jwt` tests: RS256 (a fixed test RSA key) or ES256 (a new P-256
/// key each time).
///
/// Give [`pkcs8_pem`](Self::pkcs8_pem) to the client, and the public half to the server:
/// [`AuthServerBuilder::private_key_jwt_client`](crate::AuthServerBuilder::private_key_jwt_client)
/// for the mock, [`public_jwk`](Self::public_jwk) for a real server's client registration.
///
/// ```
/// use tower_bearer_testkit::TestKey;
///
/// let key = TestKey::es256();
/// assert_eq!(key.algorithm(), "ES256");
/// assert!(key.pkcs8_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
/// assert_eq!(key.public_jwk()["kty"], "EC");
/// ```
#[derive(Clone)]
pub struct TestKey {
    inner: Arc<Inner>,
}

struct Inner {
    algorithm: &'static str,
    key_id: String,
    pkcs8_pem: String,
    /// RS256: the PKCS#1 `RSAPublicKey` DER; ES256: the uncompressed point.
    public_key: Vec<u8>,
    jwk: serde_json::Value,
}

impl TestKey {
    /// The fixed test RSA key, for RS256.
    pub fn rs256() -> TestKey {
        let der = PrivatePkcs8KeyDer::from_pem_slice(TEST_RSA_KEY_PEM.as_bytes())
            .expect("the bundled test key is PKCS#8 PEM");
        let pair = RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .expect("the bundled test key is a valid RSA key");
        let components = PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let key_id = "testkit-rs256".to_owned();
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&components.n),
            "e": URL_SAFE_NO_PAD.encode(&components.e),
            "alg": "RS256",
            "use": "sig",
            "kid": key_id,
        });
        TestKey::new(
            "RS256",
            key_id,
            TEST_RSA_KEY_PEM.to_owned(),
            pair.public().as_ref().to_vec(),
            jwk,
        )
    }

    /// A new P-256 key, for ES256.
    pub fn es256() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("the system random source works");
        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .expect("a key ring just made");
        let point = pair.public_key().as_ref().to_vec();
        // Uncompressed SEC1 point: 0x04, then 32 bytes of x and 32 of y.
        let key_id = format!("testkit-es256-{}", URL_SAFE_NO_PAD.encode(&point[1..7]));
        let jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "alg": "ES256",
            "use": "sig",
            "kid": key_id,
        });
        let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
        TestKey::new("ES256", key_id, pem, point, jwk)
    }

    fn new(
        algorithm: &'static str,
        key_id: String,
        pkcs8_pem: String,
        public_key: Vec<u8>,
        jwk: serde_json::Value,
    ) -> TestKey {
        TestKey {
            inner: Arc::new(Inner {
                algorithm,
                key_id,
                pkcs8_pem,
                public_key,
                jwk,
            }),
        }
    }

    /// `RS256` or `ES256`.
    pub fn algorithm(&self) -> &'static str {
        self.inner.algorithm
    }

    /// The key id, also the JWK's `kid`.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The private key as unencrypted PKCS#8 PEM.
    pub fn pkcs8_pem(&self) -> &str {
        &self.inner.pkcs8_pem
    }

    /// The public key as a JWK (RFC 7517) with `alg`, `use` and `kid`.
    pub fn public_jwk(&self) -> serde_json::Value {
        self.inner.jwk.clone()
    }

    /// Whether `signature` is this key's signature over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let algorithm: &dyn signature::VerificationAlgorithm = match self.inner.algorithm {
            "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
            _ => &signature::ECDSA_P256_SHA256_FIXED,
        };
        signature::UnparsedPublicKey::new(algorithm, &self.inner.public_key)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("algorithm", &self.inner.algorithm)
            .field("key_id", &self.inner.key_id)
            .finish_non_exhaustive()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}
