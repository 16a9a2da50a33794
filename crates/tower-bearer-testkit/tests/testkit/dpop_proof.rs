//! DPoP proofs the tests sign themselves (RFC 9449 section 4.2): a tiny client written with
//! `ring` for these tests, independent of the servers' verifier, that can also make every
//! kind of bad proof.

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use serde_json::{json, Map, Value};

/// A proof key: a new P-256 or Ed25519 key pair.
pub(crate) struct ProofKey {
    signer: Signer,
    jwk: Value,
}

enum Signer {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl ProofKey {
    pub(crate) fn es256() -> ProofKey {
        let rng = SystemRandom::new();
        let algorithm = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(algorithm, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(algorithm, pkcs8.as_ref(), &rng).unwrap();
        // The uncompressed point: 0x04, x, y.
        let point = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        ProofKey {
            signer: Signer::Es256(pair),
            jwk,
        }
    }

    pub(crate) fn ed25519() -> ProofKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwk = json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        });
        ProofKey {
            signer: Signer::Ed25519(pair),
            jwk,
        }
    }

    pub(crate) fn algorithm(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Ed25519(_) => "EdDSA",
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// The RFC 7638 thumbprint, computed here rather than by the kit.
    pub(crate) fn thumbprint(&self) -> String {
        let member = |name: &str| self.jwk[name].as_str().unwrap().to_owned();
        let canonical = match self.signer {
            Signer::Es256(_) => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x"),
                member("y")
            ),
            Signer::Ed25519(_) => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, member("x"))
            }
        };
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
    }

    /// A proof for `method` and `htu`, issued now with a fresh `jti`, to adjust and sign.
    pub(crate) fn proof(&self, method: &str, htu: &str) -> Proof<'_> {
        let header = json!({ "typ": "dpop+jwt", "alg": self.algorithm(), "jwk": self.jwk() });
        let claims = json!({
            "jti": random_jti(),
            "htm": method,
            "htu": htu,
            "iat": unix_now(),
        });
        Proof {
            key: self,
            header: into_object(header),
            claims: into_object(claims),
            break_signature: false,
        }
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

/// A proof being put together.
pub(crate) struct Proof<'a> {
    key: &'a ProofKey,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    break_signature: bool,
}

impl Proof<'_> {
    pub(crate) fn nonce(self, nonce: &str) -> Self {
        self.claim("nonce", nonce.into())
    }

    /// `ath` for `access_token`: base64url(SHA-256(token)).
    pub(crate) fn ath(self, access_token: &str) -> Self {
        let hash = URL_SAFE_NO_PAD.encode(digest(&SHA256, access_token.as_bytes()));
        self.claim("ath", hash.into())
    }

    /// Moves `iat` by `seconds` from now.
    pub(crate) fn iat_offset(self, seconds: i64) -> Self {
        self.claim("iat", (unix_now() + seconds).into())
    }

    pub(crate) fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.to_owned(), value);
        self
    }

    pub(crate) fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    pub(crate) fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Flips a bit of the signature after signing.
    pub(crate) fn bad_signature(mut self) -> Self {
        self.break_signature = true;
        self
    }

    /// The compact JWS.
    pub(crate) fn sign(self) -> String {
        let encode =
            |object: Map<String, Value>| URL_SAFE_NO_PAD.encode(Value::Object(object).to_string());
        let signing_input = format!("{}.{}", encode(self.header), encode(self.claims));
        let mut signature = self.key.sign(signing_input.as_bytes());
        if self.break_signature {
            signature[10] ^= 0x01;
        }
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("built from an object literal"),
    }
}

fn random_jti() -> String {
    let mut bytes = [0_u8; 16];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}
