//! The public key as a JWK (RFC 7517) and its SHA-256 thumbprint (RFC 7638).
//!
//! The JWK is written in the thumbprint's canonical form, the required members only in
//! lexicographic order with no whitespace, so one string serves as the proof header's `jwk`
//! and as the thumbprint's input. Its values are base64url, which JSON needs no escaping for.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The JWK of a P-256 public key, from its base64url coordinates.
pub(super) fn p256_jwk(x: &str, y: &str) -> String {
    format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
}

/// The JWK of an Ed25519 public key, from its base64url bytes.
pub(super) fn ed25519_jwk(x: &str) -> String {
    format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#)
}

/// The RFC 7638 thumbprint of a JWK written by [`p256_jwk`] or [`ed25519_jwk`]: base64url,
/// without padding, of the SHA-256 of its canonical JSON.
pub(super) fn thumbprint(canonical_jwk: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical_jwk.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9449 section 6.1 gives this key's thumbprint as the `jkt` of its example.
    #[test]
    fn the_rfc_9449_example_key_has_the_rfcs_thumbprint() {
        let jwk = p256_jwk(
            "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        );
        assert_eq!(
            thumbprint(&jwk),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
    }

    #[test]
    fn the_jwks_are_json_in_canonical_member_order() {
        let p256 = p256_jwk("X", "Y");
        assert_eq!(p256, r#"{"crv":"P-256","kty":"EC","x":"X","y":"Y"}"#);
        let ed25519 = ed25519_jwk("X");
        assert_eq!(ed25519, r#"{"crv":"Ed25519","kty":"OKP","x":"X"}"#);
        for jwk in [p256, ed25519] {
            assert!(
                serde_json::from_str::<serde_json::Value>(&jwk).is_ok(),
                "{jwk}"
            );
        }
    }
}
