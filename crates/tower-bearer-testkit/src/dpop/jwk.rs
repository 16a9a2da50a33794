//! The public key in a DPoP proof's `jwk` header (RFC 7517), and its thumbprint (RFC 7638).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ED25519};
use serde_json::{Map, Value};

use super::DpopProblem;

/// A public key a DPoP proof may carry: P-256 for `ES256`, Ed25519 for `EdDSA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// `kty` `EC`, `crv` `P-256`; the coordinates as sent, and the uncompressed point.
    P256 {
        x: String,
        y: String,
        point: Vec<u8>,
    },
    /// `kty` `OKP`, `crv` `Ed25519` (RFC 8037); `x` as sent, and its 32 bytes.
    Ed25519 { x: String, bytes: Vec<u8> },
}

impl PublicKey {
    /// Reads the public members of `jwk`; other members (`alg`, `kid`, `use`, ...) are
    /// ignored. Does not look for private members: a caller that must refuse private keys
    /// checks for `d` first.
    pub(crate) fn from_jwk(jwk: &Map<String, Value>) -> Result<PublicKey, DpopProblem> {
        let member = |name: &str| jwk.get(name).and_then(Value::as_str);
        match (member("kty"), member("crv")) {
            (Some("EC"), Some("P-256")) => {
                let (x, y) = (member("x"), member("y"));
                let (Some(x), Some(y)) = (x, y) else {
                    return Err(DpopProblem::MalformedKey);
                };
                let mut point = vec![0x04];
                point.extend(coordinate(x)?);
                point.extend(coordinate(y)?);
                Ok(PublicKey::P256 {
                    x: x.to_owned(),
                    y: y.to_owned(),
                    point,
                })
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x = member("x").ok_or(DpopProblem::MalformedKey)?;
                Ok(PublicKey::Ed25519 {
                    x: x.to_owned(),
                    bytes: coordinate(x)?,
                })
            }
            _ => Err(DpopProblem::UnsupportedKey),
        }
    }

    /// The JWS `alg` that goes with this key.
    pub(crate) fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::P256 { .. } => "ES256",
            PublicKey::Ed25519 { .. } => "EdDSA",
        }
    }

    /// Whether `signature` is this key's signature over `message`: for P-256 the 64-byte
    /// `r || s` form JWS uses (RFC 7518 section 3.4), for Ed25519 the 64-byte signature.
    /// A point that is not on the curve verifies nothing.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let result = match self {
            PublicKey::P256 { point, .. } => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, signature)
            }
            PublicKey::Ed25519 { bytes, .. } => {
                UnparsedPublicKey::new(&ED25519, bytes).verify(message, signature)
            }
        };
        result.is_ok()
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the required members, in
    /// lexicographic order, without whitespace.
    pub(crate) fn thumbprint(&self) -> String {
        // The values passed `coordinate`, so they are base64url and need no JSON escaping.
        let canonical = match self {
            PublicKey::P256 { x, y, .. } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            PublicKey::Ed25519 { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
    }
}

/// The 32 bytes of a base64url (no padding, canonical) coordinate.
fn coordinate(encoded: &str) -> Result<Vec<u8>, DpopProblem> {
    URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()
        .filter(|bytes| bytes.len() == 32)
        .ok_or(DpopProblem::MalformedKey)
}

/// The RFC 7638 JWK thumbprint (the `jkt` of RFC 9449 section 6) of a P-256 `EC` or an
/// `Ed25519` `OKP` public key: what a DPoP-bound token's `cnf.jkt` holds and what
/// [`AuthServer::token_jkt`](crate::AuthServer::token_jkt) reports.
///
/// Members other than `kty`, `crv`, `x` and `y` are ignored, so a private JWK has the
/// thumbprint of its public half.
///
/// ```
/// // RFC 9449 section 6.1.
/// let jwk = serde_json::json!({
///     "kty": "EC",
///     "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
///     "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
///     "crv": "P-256",
/// });
/// assert_eq!(
///     tower_bearer_testkit::jwk_thumbprint(&jwk).unwrap(),
///     "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
/// );
/// ```
///
/// # Errors
///
/// [`DpopProblem::UnsupportedKey`] for any other kind of key (or a `jwk` that is not a
/// JSON object), [`DpopProblem::MalformedKey`] for coordinates that are not base64url of
/// 32 bytes.
pub fn jwk_thumbprint(jwk: &Value) -> Result<String, DpopProblem> {
    let jwk = jwk.as_object().ok_or(DpopProblem::UnsupportedKey)?;
    Ok(PublicKey::from_jwk(jwk)?.thumbprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(jwk: Value) -> Result<PublicKey, DpopProblem> {
        PublicKey::from_jwk(jwk.as_object().unwrap())
    }

    #[test]
    fn thumbprint_of_the_rfc_9449_example_key() {
        let jwk = serde_json::json!({
            "kty": "EC",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "crv": "P-256",
            "kid": "ignored",
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn thumbprint_of_the_rfc_8037_example_ed25519_key() {
        // RFC 8037 appendix A.2 and A.3.
        let jwk = serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        });
        assert_eq!(
            jwk_thumbprint(&jwk).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn verifies_the_rfc_8037_example_ed25519_signature() {
        // RFC 8037 appendix A.4: the JWS over "Example of Ed25519 signing".
        let key = key(serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        }))
        .unwrap();
        let signing_input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let signature = URL_SAFE_NO_PAD
            .decode(
                "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg",
            )
            .unwrap();
        assert!(key.verify(signing_input.as_bytes(), &signature));
        assert!(!key.verify(b"something else", &signature));
        assert_eq!(key.algorithm(), "EdDSA");
    }

    #[test]
    fn refuses_keys_it_cannot_use() {
        let x = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
        let cases = [
            (
                serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
                DpopProblem::UnsupportedKey,
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-384", "x": x, "y": x}),
                DpopProblem::UnsupportedKey,
            ),
            (
                serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
                DpopProblem::UnsupportedKey,
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x}),
                DpopProblem::MalformedKey,
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": "AQAB"}),
                DpopProblem::MalformedKey,
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": format!("{x}=")}),
                DpopProblem::MalformedKey,
            ),
            (
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": 7}),
                DpopProblem::MalformedKey,
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "+/+/"}),
                DpopProblem::MalformedKey,
            ),
            (
                serde_json::json!({"kty": "OKP", "crv": "X25519", "x": x}),
                DpopProblem::UnsupportedKey,
            ),
        ];
        for (jwk, problem) in cases {
            assert_eq!(key(jwk.clone()).err(), Some(problem), "{jwk}");
        }
        assert_eq!(
            jwk_thumbprint(&serde_json::json!("not an object")),
            Err(DpopProblem::UnsupportedKey)
        );
    }

    #[test]
    fn a_point_off_the_curve_verifies_nothing() {
        // Valid base64url of 32 bytes each, but (1, 1) is not on P-256.
        let one = URL_SAFE_NO_PAD.encode([[0_u8; 31].as_slice(), &[1]].concat());
        let key =
            key(serde_json::json!({"kty": "EC", "crv": "P-256", "x": one, "y": one})).unwrap();
        assert!(!key.verify(b"message", &[0x11; 64]));
    }
}
