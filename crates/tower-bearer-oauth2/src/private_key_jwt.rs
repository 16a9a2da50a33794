//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OpenID Connect Core
//! section 9): instead of a shared secret, the client signs a short-lived JWT with its private
//! key, and the server checks it with the public key it registered.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};

use crate::BuildError;

/// How long a client assertion is valid: long enough for a slow network and some clock
/// skew, short enough that a leaked one is soon useless. Each request gets a fresh one.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 section 2.2).
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A private key that signs client assertions for `private_key_jwt`: RS256 (RSA PKCS#1 v1.5
/// with SHA-256, keys of 2048 bits or more) or ES256 (ECDSA on P-256 with SHA-256).
///
/// Register the matching public key with the authorization server (as a JWK in the client's
/// `jwks`, or at a `jwks_uri`), and set [`key_id`](Self::key_id) to its `kid` when it has
/// more than one. The key never appears in `Debug` output or errors.
///
/// ```
/// use tower_bearer::TokenSource;
/// use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, PrivateKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// # let test_key = tower_bearer_testkit::TestKey::es256();
/// # let auth = tower_bearer_testkit::AuthServer::builder()
/// #     .private_key_jwt_client("reporting-service", &test_key)
/// #     .start()
/// #     .await?;
/// # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// # std::fs::write(dir.join("client-key.pem"), test_key.pkcs8_pem())?;
/// let key_path = "/run/secrets/client-key.pem";
/// let token_url = "https://auth.example.com/oauth2/token";
/// # let (key_path, token_url) = (dir.join("client-key.pem"), auth.token_url());
/// let pem = std::fs::read_to_string(key_path)?;
/// let key = PrivateKey::es256_from_pem(&pem)?.key_id("2024-06");
/// let endpoint = Endpoint::builder(token_url).build()?;
/// let client = ClientAuth::private_key_jwt("reporting-service", key)?;
/// let source = ClientCredentials::builder(endpoint, client).build()?;
/// # source.fetch().await?;
/// # assert_eq!(auth.token_auth_methods(), [tower_bearer_testkit::ClientAuthMethod::PrivateKeyJwt]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PrivateKey {
    key: Arc<KeyPair>,
    key_id: Option<String>,
}

enum KeyPair {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
}

impl PrivateKey {
    /// An RSA key for RS256, from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`), unencrypted.
    pub fn rs256_from_pem(pem: &str) -> Result<Self, BuildError> {
        if let Ok(der) = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()) {
            return Self::rs256_from_pkcs8_der(der.secret_pkcs8_der());
        }
        let der = PrivatePkcs1KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            invalid_key(
                "RS256",
                "no unencrypted `PRIVATE KEY` or `RSA PRIVATE KEY` PEM section",
            )
        })?;
        RsaKeyPair::from_der(der.secret_pkcs1_der())
            .map(|pair| Self::new(KeyPair::Rs256(pair)))
            .map_err(|rejected| invalid_key("RS256", &rejected.to_string()))
    }

    /// An RSA key for RS256, from PKCS#8 DER.
    pub fn rs256_from_pkcs8_der(der: &[u8]) -> Result<Self, BuildError> {
        RsaKeyPair::from_pkcs8(der)
            .map(|pair| Self::new(KeyPair::Rs256(pair)))
            .map_err(|rejected| invalid_key("RS256", &rejected.to_string()))
    }

    /// A P-256 key for ES256, from PKCS#8 PEM (`BEGIN PRIVATE KEY`), unencrypted. A SEC1 key
    /// (`BEGIN EC PRIVATE KEY`) converts with `openssl pkcs8 -topk8 -nocrypt`.
    pub fn es256_from_pem(pem: &str) -> Result<Self, BuildError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            invalid_key(
                "ES256",
                "no unencrypted PKCS#8 `PRIVATE KEY` PEM section (convert a SEC1 `EC PRIVATE \
                 KEY` with `openssl pkcs8 -topk8 -nocrypt`)",
            )
        })?;
        Self::es256_from_pkcs8_der(der.secret_pkcs8_der())
    }

    /// A P-256 key for ES256, from PKCS#8 DER.
    pub fn es256_from_pkcs8_der(der: &[u8]) -> Result<Self, BuildError> {
        EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            der,
            &SystemRandom::new(),
        )
        .map(|pair| Self::new(KeyPair::Es256(pair)))
        .map_err(|rejected| invalid_key("ES256", &rejected.to_string()))
    }

    fn new(key: KeyPair) -> Self {
        PrivateKey {
            key: Arc::new(key),
            key_id: None,
        }
    }

    /// The `kid` header of each assertion: which of the client's registered keys to check
    /// it with.
    #[must_use]
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// The JWS algorithm: `RS256` or `ES256`.
    pub fn algorithm(&self) -> &'static str {
        match *self.key {
            KeyPair::Rs256(_) => "RS256",
            KeyPair::Es256(_) => "ES256",
        }
    }

    /// A fresh client assertion: `iss` and `sub` the client id, `aud` the given audience, a
    /// random `jti`, `iat` now and `exp` a minute later (RFC 7523 section 3).
    pub(crate) fn assertion(&self, client_id: &str, audience: &str) -> Result<String, SignError> {
        self.sign_claims(&AssertionClaims {
            issuer: client_id,
            subject: client_id,
            audience,
            lifetime: ASSERTION_LIFETIME,
            extra: None,
        })
    }

    /// A fresh signed JWT with `claims`, a random `jti` and `iat` now (RFC 7523 section 3).
    pub(crate) fn sign_claims(&self, claims: &AssertionClaims<'_>) -> Result<String, SignError> {
        let rng = SystemRandom::new();
        let mut jti = [0_u8; 16];
        rng.fill(&mut jti).map_err(|_| SignError)?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError)?
            .as_secs();
        let mut header = serde_json::json!({ "alg": self.algorithm(), "typ": "JWT" });
        if let Some(key_id) = &self.key_id {
            header["kid"] = key_id.as_str().into();
        }
        let mut payload = claims.extra.cloned().unwrap_or_default();
        payload.insert("iss".to_owned(), claims.issuer.into());
        payload.insert("sub".to_owned(), claims.subject.into());
        payload.insert("aud".to_owned(), claims.audience.into());
        payload.insert("jti".to_owned(), URL_SAFE_NO_PAD.encode(jti).into());
        payload.insert("iat".to_owned(), now.into());
        payload.insert("exp".to_owned(), (now + claims.lifetime.as_secs()).into());
        let mut jwt = URL_SAFE_NO_PAD.encode(header.to_string());
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::Value::Object(payload).to_string(), &mut jwt);
        let signature = match &*self.key {
            KeyPair::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    jwt.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| SignError)?;
                signature
            }
            KeyPair::Es256(pair) => pair
                .sign(&rng, jwt.as_bytes())
                .map_err(|_| SignError)?
                .as_ref()
                .to_vec(),
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }
}

/// The claims of a JWT this crate signs, besides the `jti` and `iat` it adds.
pub(crate) struct AssertionClaims<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) subject: &'a str,
    pub(crate) audience: &'a str,
    /// `exp` is `iat` plus this.
    pub(crate) lifetime: Duration,
    /// More claims; the registered ones above win over any of the same name.
    pub(crate) extra: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", &self.algorithm())
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Signing a client assertion failed (the system random source or clock failed).
#[derive(Debug)]
pub(crate) struct SignError;

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signing the client assertion failed (random source or system clock)")
    }
}

impl std::error::Error for SignError {}

fn invalid_key(algorithm: &str, problem: &str) -> BuildError {
    BuildError::invalid_credentials(format!(
        "the private key is not a usable {algorithm} key: {problem}; give an unencrypted \
         PKCS#8 PEM (RS256 also takes PKCS#1) of an {} key",
        if algorithm == "RS256" {
            "RSA (2048 bits or more)"
        } else {
            "EC P-256"
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn es256_assertion_has_the_rfc_7523_claims_and_verifies() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = PrivateKey::es256_from_pkcs8_der(pkcs8.as_ref())
            .unwrap()
            .key_id("k1");
        let jwt = key
            .assertion("my-client", "https://auth.example.com/token")
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "k1");
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "my-client");
        assert_eq!(claims["sub"], "my-client");
        assert_eq!(claims["aud"], "https://auth.example.com/token");
        let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
        assert_eq!(lifetime, 60);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 22);

        let pair = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        use ring::signature::KeyPair as _;
        let public = signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .unwrap();

        let again = key
            .assertion("my-client", "https://auth.example.com/token")
            .unwrap();
        assert_ne!(
            decode(again.split('.').nth(1).unwrap())["jti"],
            claims["jti"]
        );
    }

    #[test]
    fn bad_keys_are_refused_with_advice() {
        let error = PrivateKey::rs256_from_pem("not a key").unwrap_err();
        assert!(error.is_invalid_credentials(), "{error}");
        assert!(error.to_string().contains("PKCS#8"), "{error}");
        let error = PrivateKey::es256_from_pem(
            "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        )
        .unwrap_err();
        assert!(error.to_string().contains("openssl pkcs8"), "{error}");
        let error = PrivateKey::es256_from_pkcs8_der(b"\x30\x00").unwrap_err();
        assert!(error.is_invalid_credentials(), "{error}");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let key = PrivateKey::es256_from_pkcs8_der(pkcs8.as_ref()).unwrap();
        assert_eq!(
            format!("{key:?}"),
            "PrivateKey { algorithm: \"ES256\", key_id: None, .. }"
        );
    }
}
