//! The client's DPoP private key, and everything about it that no proof changes.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, Signature, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use zeroize::Zeroizing;

use http::{HeaderMap, Uri};

use super::error::KeyRejected;
use super::nonces::Nonces;
use super::{jwk, pkcs8, DpopError};

/// The private key a client proves possession of with each request (RFC 9449).
///
/// An ECDSA P-256 key signs proofs as `ES256`, an Ed25519 key as `EdDSA`. Generate one, or
/// load one from PKCS#8. The authorization server binds the tokens it issues to the key's
/// [thumbprint](Self::thumbprint), so keep the key for as long as you keep its tokens.
/// Replicas that share DPoP-bound tokens through a store load the same key and name it in
/// their [`StoreKey`](crate::store::StoreKey)
/// ([`StoreKeyBuilder::dpop_key`](crate::store::StoreKeyBuilder::dpop_key)): the store builds
/// a token it reads with the key carried there, and nothing keeps a table of keys.
///
/// Whatever no proof changes (the public JWK, the thumbprint, the proof header) is computed
/// once, here. `DpopKey` is cheap to clone (clones share one allocation), `Send` and `Sync`.
/// `Debug` shows the algorithm and the thumbprint, never the private key.
///
/// ```
/// use tower_bearer::dpop::DpopKey;
///
/// let key = DpopKey::generate_es256()?;
/// assert_eq!(key.algorithm(), "ES256");
/// // Sent as `dpop_jkt` to bind an authorization code to this key (RFC 9449 section 10).
/// assert_eq!(key.thumbprint().len(), 43);
/// assert!(!key.public_jwk().contains("\"d\""));
/// # Ok::<(), tower_bearer::dpop::DpopError>(())
/// ```
#[derive(Clone)]
pub struct DpopKey {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) signer: Signer,
    pub(super) rng: SystemRandom,
    /// `base64url(header) + "."`, the start of every proof.
    pub(super) header_prefix: String,
    public_jwk: String,
    thumbprint: String,
    /// The latest nonce each server sent.
    nonces: Nonces,
}

/// The signature algorithms a DPoP key can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Algorithm {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 section 3.4).
    Es256,
    /// Ed25519 (RFC 8037).
    Ed25519,
}

impl Algorithm {
    /// The JWS `alg` name.
    fn jws_name(self) -> &'static str {
        match self {
            Algorithm::Es256 => "ES256",
            Algorithm::Ed25519 => "EdDSA",
        }
    }
}

/// A ring key pair of one of the supported algorithms.
pub(super) enum Signer {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl Signer {
    fn algorithm(&self) -> Algorithm {
        match self {
            Signer::Es256(_) => Algorithm::Es256,
            Signer::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Signs a JWS signing input. An ES256 signature is the fixed-size `r || s` that JWS
    /// wants (RFC 7518 section 3.4), not DER.
    pub(super) fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Result<Signature, DpopError> {
        match self {
            // ring's ECDSA signing fails only when it cannot draw the signature's nonce.
            Signer::Es256(key_pair) => key_pair
                .sign(rng, message)
                .map_err(|_| DpopError::Randomness),
            Signer::Ed25519(key_pair) => Ok(key_pair.sign(message)),
        }
    }

    fn public_jwk(&self) -> Result<String, DpopError> {
        match self {
            Signer::Es256(key_pair) => {
                // ring gives the uncompressed point: 0x04, then x and y, 32 bytes each.
                let coordinates = key_pair
                    .public_key()
                    .as_ref()
                    .strip_prefix(&[0x04])
                    .filter(|coordinates| coordinates.len() == 64)
                    .ok_or(DpopError::UnsupportedKey)?;
                let (x, y) = coordinates.split_at(32);
                Ok(jwk::p256_jwk(
                    &URL_SAFE_NO_PAD.encode(x),
                    &URL_SAFE_NO_PAD.encode(y),
                ))
            }
            Signer::Ed25519(key_pair) => Ok(jwk::ed25519_jwk(
                &URL_SAFE_NO_PAD.encode(key_pair.public_key()),
            )),
        }
    }
}

impl DpopKey {
    /// A new random ECDSA P-256 key, which signs proofs as `ES256`.
    ///
    /// `ES256` is the algorithm authorization servers most often accept
    /// (`dpop_signing_alg_values_supported` in their metadata).
    pub fn generate_es256() -> Result<Self, DpopError> {
        let rng = SystemRandom::new();
        // ring hands a new ECDSA key out only as a PKCS#8 document, which it does not zeroize
        // on drop and which cannot be wiped from safe code.
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopError::Randomness)?;
        Self::es256(pkcs8.as_ref(), rng)
    }

    /// A new random Ed25519 key, which signs proofs as `EdDSA`.
    pub fn generate_ed25519() -> Result<Self, DpopError> {
        let rng = SystemRandom::new();
        // An Ed25519 private key is 32 random bytes (RFC 8032 section 5.1.5). Drawing them here
        // keeps them in memory that is zeroized, where ring's `generate_pkcs8` would not.
        let mut seed = Zeroizing::new([0; 32]);
        rng.fill(&mut *seed).map_err(|_| DpopError::Randomness)?;
        let key_pair = Ed25519KeyPair::from_seed_unchecked(&*seed).map_err(rejected)?;
        Self::new(Signer::Ed25519(key_pair), rng)
    }

    /// Loads an unencrypted PKCS#8 private key from DER: ECDSA P-256 or Ed25519 (PKCS#8 v1
    /// as OpenSSL writes it, or v2).
    ///
    /// Another algorithm is [`DpopError::UnsupportedKey`]; bytes that are not PKCS#8 are
    /// [`DpopError::MalformedKey`]. The bytes are not copied, so zeroizing them is up to the
    /// caller.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, DpopError> {
        match pkcs8::algorithm(der)? {
            Algorithm::Es256 => Self::es256(der, SystemRandom::new()),
            Algorithm::Ed25519 => {
                // A v2 document's public key is checked against the private key; a v1
                // document has none, so it is derived.
                let key_pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                Self::new(Signer::Ed25519(key_pair), SystemRandom::new())
            }
        }
    }

    /// Loads an unencrypted PKCS#8 private key from PEM: the first
    /// `-----BEGIN PRIVATE KEY-----` block, as `openssl genpkey` writes it.
    ///
    /// The decoded bytes are zeroized once the key is loaded. Otherwise as
    /// [`from_pkcs8_der`](Self::from_pkcs8_der).
    ///
    /// ```
    /// use tower_bearer::dpop::DpopKey;
    ///
    /// let pem = "-----BEGIN PRIVATE KEY-----
    /// MC4CAQAwBQYDK2VwBCIEIKsGIpwkHGhowuEgFXUDf1laEu3FLEiGrPPVeAhbt+wH
    /// -----END PRIVATE KEY-----";
    /// let key = DpopKey::from_pkcs8_pem(pem)?;
    /// assert_eq!(key.algorithm(), "EdDSA");
    /// # Ok::<(), tower_bearer::dpop::DpopError>(())
    /// ```
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, DpopError> {
        let der = pkcs8::pem_to_der(pem)?;
        Self::from_pkcs8_der(&der)
    }

    fn es256(pkcs8: &[u8], rng: SystemRandom) -> Result<Self, DpopError> {
        let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(rejected)?;
        Self::new(Signer::Es256(key_pair), rng)
    }

    fn new(signer: Signer, rng: SystemRandom) -> Result<Self, DpopError> {
        let public_jwk = signer.public_jwk()?;
        let thumbprint = jwk::thumbprint(&public_jwk);
        // RFC 9449 section 4.2: the header names the proof type, the algorithm and the key.
        let header = format!(
            r#"{{"typ":"dpop+jwt","alg":"{}","jwk":{public_jwk}}}"#,
            signer.algorithm().jws_name()
        );
        let mut header_prefix = URL_SAFE_NO_PAD.encode(header);
        header_prefix.push('.');
        Ok(DpopKey {
            inner: Arc::new(Inner {
                signer,
                rng,
                header_prefix,
                public_jwk,
                thumbprint,
                nonces: Nonces::default(),
            }),
        })
    }

    /// The JWS algorithm the proofs are signed with: `"ES256"` or `"EdDSA"`.
    pub fn algorithm(&self) -> &'static str {
        self.inner.signer.algorithm().jws_name()
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url without padding.
    ///
    /// This is what the authorization server binds tokens to (their `cnf.jkt`), and the
    /// `dpop_jkt` an authorization request sends (RFC 9449 sections 6 and 10).
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK (RFC 7517): the required members only, in the order RFC 7638
    /// hashes them. It has no private members.
    pub fn public_jwk(&self) -> &str {
        &self.inner.public_jwk
    }

    /// The latest nonce the server at `uri`'s origin sent, for the next proof to it.
    ///
    /// Servers that want nonces (RFC 9449 sections 8 and 9) send them in `DPoP-Nonce`;
    /// [`update_nonce`](Self::update_nonce) keeps them, one per origin, for every clone of
    /// this key. The auth layer and the OAuth crate's token requests do both.
    pub fn nonce_for(&self, uri: &Uri) -> Option<Arc<str>> {
        self.inner.nonces.get(uri)
    }

    /// Keeps the `DPoP-Nonce` in a response's `headers` from `uri`'s origin, if there is a
    /// valid one (`1*NQCHAR`); returns whether it is a new nonce.
    pub fn update_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.inner.nonces.update(uri, headers)
    }

    /// Whether a request to `uri` goes now or waits for its origin's first response (the
    /// auth layer's nonce gate; see `Nonces::gate`).
    pub(crate) fn nonce_gate(&self, uri: &Uri) -> super::nonces::Gate {
        self.inner.nonces.gate(uri)
    }

    /// The gate's first request to `uri`'s origin is done (`answered` if its response was
    /// read).
    pub(crate) fn release_nonce_gate(&self, uri: &Uri, answered: bool) {
        self.inner.nonces.release(uri, answered);
    }
}

fn rejected(reason: ring::error::KeyRejected) -> DpopError {
    DpopError::KeyRejected(KeyRejected(reason))
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("algorithm", &self.algorithm())
            .field("thumbprint", &self.thumbprint())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING;

    use super::*;

    // Test keys written by `openssl genpkey` (OpenSSL 3.0), with thumbprints computed apart
    // from this crate: `openssl pkey -pubout`, then Python's hashlib over the canonical JWK.
    const OPENSSL_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfkd0RGymuf3H1ehf
3VgrFFbo+1LEkDnyxLitbUZEe2OhRANCAARuRvmnoBeYjGoUmQC5wNUx758631NX
kpCMDyIChjQvETEFewcAKfNadOUnzq/JI5AyeMiZQIsnrSgm96mz2ZuK
-----END PRIVATE KEY-----
";
    const OPENSSL_P256_THUMBPRINT: &str = "2gPz4CvTCMymYljBXFkrr7NwNFNqcv_sV665TbI3auI";
    /// PKCS#8 v1: no public key in the document.
    const OPENSSL_ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIKsGIpwkHGhowuEgFXUDf1laEu3FLEiGrPPVeAhbt+wH
-----END PRIVATE KEY-----
";
    const OPENSSL_ED25519_THUMBPRINT: &str = "-Mjm9nH2TdIfqWdVc9v8-hIY9eiqG90coJHBInvG6No";
    /// The same P-256 key as SEC1 (`openssl ec`), which is not PKCS#8.
    const OPENSSL_P256_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIH5HdERsprn9x9XoX91YKxRW6PtSxJA58sS4rW1GRHtjoAoGCCqGSM49
AwEHoUQDQgAEbkb5p6AXmIxqFJkAucDVMe+fOt9TV5KQjA8iAoY0LxExBXsHACnz
WnTlJ86vySOQMnjImUCLJ60oJveps9mbig==
-----END EC PRIVATE KEY-----
";
    /// A 512-bit RSA key, small only to keep this file short.
    const OPENSSL_RSA: &str = "-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAukvEr6bL7g5ngrTL
uQqT5xJD2xCx/olR2HxXqKtUvvNOM4IcUTqQ3AMRDzfxkWX6hwiZr2kcWJRNEBeA
h4LIWQIDAQABAkAqtRPx8Jrvh/3SyP+q+/HMFzPXFIy5fWF174to714OJ/Rpej+j
zzAPbc9k6xNT50tt5NGKlo1gukAuErN5I+sBAiEA68GybOhBSkdzhaaSptJcpjSS
NWFGb+KTlv4GjU5WzXUCIQDKStkSaHLNjlOV/q/IuAoonOLoioWAt03ZpLE6/vm+
1QIhAIrsolLQ7iBySF3akZKiZZw/YGT6RIKL9sLEQGImZro9AiBiy7E+O0KuP291
FwC0z6UudoifN1/CIEPmInfoLzS7zQIhAMxTfYb5sPkzJILEa7kQ01Ho3G/XVuYU
ieYAC6fnAWwy
-----END PRIVATE KEY-----
";

    fn ring_p256_pkcs8() -> Vec<u8> {
        let rng = SystemRandom::new();
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn ring_ed25519_pkcs8() -> Vec<u8> {
        Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// The thumbprint of a public key as ring reports it, computed without `DpopKey`.
    fn thumbprint_of_ring_public_key(public_key: &[u8]) -> String {
        let jwk = match public_key {
            [0x04, coordinates @ ..] if coordinates.len() == 64 => jwk::p256_jwk(
                &URL_SAFE_NO_PAD.encode(&coordinates[..32]),
                &URL_SAFE_NO_PAD.encode(&coordinates[32..]),
            ),
            ed25519 if ed25519.len() == 32 => jwk::ed25519_jwk(&URL_SAFE_NO_PAD.encode(ed25519)),
            other => panic!("unexpected public key of {} bytes", other.len()),
        };
        jwk::thumbprint(&jwk)
    }

    fn to_pem(der: &[u8]) -> String {
        let base64 = STANDARD.encode(der);
        let lines: Vec<&str> = base64
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn a_generated_keys_thumbprint_is_that_of_its_public_jwk() {
        for key in [
            DpopKey::generate_es256().unwrap(),
            DpopKey::generate_ed25519().unwrap(),
        ] {
            let jwk: serde_json::Value = serde_json::from_str(key.public_jwk()).unwrap();
            let recomputed = match jwk["kty"].as_str() {
                Some("EC") => jwk::p256_jwk(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()),
                Some("OKP") => jwk::ed25519_jwk(jwk["x"].as_str().unwrap()),
                other => panic!("unexpected kty {other:?}"),
            };
            assert_eq!(key.thumbprint(), jwk::thumbprint(&recomputed));
            assert_eq!(key.thumbprint().len(), 43);
            assert!(jwk.get("d").is_none(), "{jwk}");
        }
        let two = [
            DpopKey::generate_es256().unwrap(),
            DpopKey::generate_es256().unwrap(),
        ];
        assert_ne!(two[0].thumbprint(), two[1].thumbprint());
    }

    #[test]
    fn a_ring_generated_p256_key_round_trips_through_pkcs8() {
        let pkcs8 = ring_p256_pkcs8();
        let rng = SystemRandom::new();
        let ring_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let expected = thumbprint_of_ring_public_key(ring_key.public_key().as_ref());

        let key = DpopKey::from_pkcs8_der(&pkcs8).unwrap();
        assert_eq!(key.algorithm(), "ES256");
        assert_eq!(key.thumbprint(), expected);
        let from_pem = DpopKey::from_pkcs8_pem(&to_pem(&pkcs8)).unwrap();
        assert_eq!(from_pem.thumbprint(), expected);
    }

    #[test]
    fn a_ring_generated_ed25519_key_round_trips_through_pkcs8() {
        let pkcs8 = ring_ed25519_pkcs8();
        let ring_key = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
        let expected = thumbprint_of_ring_public_key(ring_key.public_key().as_ref());

        let key = DpopKey::from_pkcs8_der(&pkcs8).unwrap();
        assert_eq!(key.algorithm(), "EdDSA");
        assert_eq!(key.thumbprint(), expected);
        let from_pem = DpopKey::from_pkcs8_pem(&to_pem(&pkcs8)).unwrap();
        assert_eq!(from_pem.thumbprint(), expected);
    }

    #[test]
    fn openssl_keys_load_with_independently_computed_thumbprints() {
        let p256 = DpopKey::from_pkcs8_pem(OPENSSL_P256).unwrap();
        assert_eq!(p256.algorithm(), "ES256");
        assert_eq!(p256.thumbprint(), OPENSSL_P256_THUMBPRINT);
        let ed25519 = DpopKey::from_pkcs8_pem(OPENSSL_ED25519).unwrap();
        assert_eq!(ed25519.algorithm(), "EdDSA");
        assert_eq!(ed25519.thumbprint(), OPENSSL_ED25519_THUMBPRINT);
    }

    #[test]
    fn garbage_is_a_malformed_key() {
        for garbage in [
            &b""[..],
            b"not a key",
            &[0x30, 0x03, 0x02, 0x01],
            &[0xff; 64],
        ] {
            let error = DpopKey::from_pkcs8_der(garbage).unwrap_err();
            assert!(matches!(error, DpopError::MalformedKey), "{error:?}");
        }
        for not_pkcs8_pem in [OPENSSL_P256_SEC1, "hello", ""] {
            let error = DpopKey::from_pkcs8_pem(not_pkcs8_pem).unwrap_err();
            assert!(matches!(error, DpopError::MalformedKey), "{error:?}");
        }
        // DER where PEM belongs, and PEM where DER belongs.
        let der_as_text = String::from_utf8_lossy(&ring_p256_pkcs8()).into_owned();
        assert!(matches!(
            DpopKey::from_pkcs8_pem(&der_as_text),
            Err(DpopError::MalformedKey)
        ));
        assert!(matches!(
            DpopKey::from_pkcs8_der(OPENSSL_P256.as_bytes()),
            Err(DpopError::MalformedKey)
        ));
    }

    #[test]
    fn rsa_and_other_curves_are_unsupported() {
        let rsa = DpopKey::from_pkcs8_pem(OPENSSL_RSA).unwrap_err();
        assert!(matches!(rsa, DpopError::UnsupportedKey), "{rsa:?}");
        assert!(rsa.to_string().contains("not supported"), "{rsa}");

        let p384 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let error = DpopKey::from_pkcs8_der(p384.as_ref()).unwrap_err();
        assert!(matches!(error, DpopError::UnsupportedKey), "{error:?}");
    }

    #[test]
    fn a_key_whose_public_half_does_not_match_is_rejected_by_ring() {
        for mut pkcs8 in [ring_p256_pkcs8(), ring_ed25519_pkcs8()] {
            // Both documents end with the public key; change its last byte.
            if let Some(last) = pkcs8.last_mut() {
                *last ^= 0x01;
            }
            let error = DpopKey::from_pkcs8_der(&pkcs8).unwrap_err();
            assert!(matches!(error, DpopError::KeyRejected(_)), "{error:?}");
            assert!(std::error::Error::source(&error).is_some());
        }
    }

    #[test]
    fn debug_shows_the_algorithm_and_thumbprint_and_no_key_bytes() {
        for pkcs8 in [ring_p256_pkcs8(), ring_ed25519_pkcs8()] {
            let key = DpopKey::from_pkcs8_der(&pkcs8).unwrap();
            let debug = format!("{key:?}");
            assert!(debug.contains(key.thumbprint()), "{debug}");
            assert!(debug.contains(key.algorithm()), "{debug}");
            // Any 12 bytes of the document, at any offset, in any encoding a careless Debug
            // could use.
            for window in pkcs8.windows(12) {
                let hex: String = window.iter().map(|byte| format!("{byte:02x}")).collect();
                for encoded in [URL_SAFE_NO_PAD.encode(window), STANDARD.encode(window), hex] {
                    assert!(!debug.contains(&encoded), "{debug} contains {encoded}");
                }
            }
        }
    }

    #[test]
    fn a_key_is_shared_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
        assert_send_sync::<DpopKey>();
        let key = DpopKey::generate_ed25519().unwrap();
        let clone = key.clone();
        assert!(Arc::ptr_eq(&key.inner, &clone.inner));
    }
}
