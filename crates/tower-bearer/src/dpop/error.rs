//! Errors from loading a DPoP key or building a proof.

use std::error::Error as StdError;
use std::fmt;

/// Loading a DPoP key or building a proof failed.
///
/// The message says what was wrong and what to do. It never holds key material, an access
/// token or a nonce.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DpopError {
    /// The bytes are not an unencrypted PKCS#8 private key: not DER at all, an encrypted
    /// PKCS#8 key, a SEC1 (`EC PRIVATE KEY`) key, or PEM without a `PRIVATE KEY` block.
    MalformedKey,
    /// A PKCS#8 key for an algorithm other than ECDSA P-256 (`ES256`) or Ed25519 (`EdDSA`),
    /// such as RSA or P-384.
    UnsupportedKey,
    /// A P-256 or Ed25519 PKCS#8 key that ring refused: an invalid private key, or a public
    /// key that does not match it. Why is the [`source`](StdError::source).
    KeyRejected(KeyRejected),
    /// The request URI has no scheme or no host, so it cannot give the proof's `htu` claim.
    RelativeUri,
    /// The nonce is not `1*NQCHAR` (RFC 9449 section 8.1): it is empty, or has a byte that is
    /// not visible ASCII, or is `"` or `\`.
    InvalidNonce {
        /// Byte offset of the first bad byte; 0 for an empty nonce.
        position: usize,
    },
    /// The finished proof was not a valid header value. Proofs are base64url and dots, so
    /// this does not happen; it is an error rather than a panic all the same.
    InvalidHeaderValue,
    /// The operating system's random number generator failed. The proof's `jti`, an ECDSA
    /// signature and key generation all need it.
    Randomness,
    /// The system clock reads earlier than 1970, so the proof has no `iat` to give.
    ClockBeforeEpoch,
}

/// Why ring refused a private key, in ring's words (such as `InconsistentComponents`).
///
/// The [`source`](StdError::source) of [`DpopError::KeyRejected`]. It names the problem,
/// never the key.
#[derive(Clone, Copy, Debug)]
pub struct KeyRejected(pub(super) ring::error::KeyRejected);

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpopError::MalformedKey => f.write_str(
                "the DPoP key is not an unencrypted PKCS#8 private key; pass DER bytes, or PEM \
                 with a `-----BEGIN PRIVATE KEY-----` block (convert other formats with \
                 `openssl pkcs8 -topk8 -nocrypt`)",
            ),
            DpopError::UnsupportedKey => f.write_str(
                "the DPoP key is for an algorithm that is not supported; use an ECDSA P-256 \
                 (ES256) or an Ed25519 (EdDSA) key",
            ),
            DpopError::KeyRejected(_) => f.write_str(
                "the DPoP key is a P-256 or Ed25519 PKCS#8 key, but its private key is invalid \
                 or does not match its public key; check the key file or generate a new key",
            ),
            DpopError::RelativeUri => f.write_str(
                "a DPoP proof needs the request's absolute URI (scheme and host) for its `htu` \
                 claim, but the request URI is relative; build the request with a full URI \
                 such as `https://api.example.com/path`",
            ),
            // The nonce itself is left out: it comes from a server, and an invalid one may
            // hold line breaks or control characters that would forge lines in a log.
            DpopError::InvalidNonce { position } => write!(
                f,
                "the DPoP nonce is empty or has a character that is not allowed at byte \
                 {position} (a nonce is visible ASCII other than '\"' and '\\', RFC 9449 \
                 section 8.1); pass the server's `DPoP-Nonce` header value unchanged"
            ),
            DpopError::InvalidHeaderValue => f.write_str(
                "the DPoP proof is not a valid HTTP header value; this is a bug in \
                 tower-bearer, please report it",
            ),
            DpopError::Randomness => f.write_str(
                "the system random number generator failed, so no DPoP key or proof could be \
                 made; this is a problem with the operating system, try again later",
            ),
            DpopError::ClockBeforeEpoch => f.write_str(
                "the system clock reads earlier than 1970, so the DPoP proof has no `iat`; \
                 fix the system clock",
            ),
        }
    }
}

impl StdError for DpopError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DpopError::KeyRejected(reason) => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for KeyRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring rejected the key: {}", self.0)
    }
}

impl StdError for KeyRejected {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_key_carries_rings_reason_as_its_source() {
        let rejected = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[0; 3])
            .map(|_| ())
            .map_err(|reason| DpopError::KeyRejected(KeyRejected(reason)));
        let Err(error) = rejected else {
            panic!("a 3-byte seed was accepted");
        };
        let source = error.source().map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("ring rejected the key: InvalidEncoding")
        );
        assert!(!error.to_string().contains("InvalidEncoding"), "{error}");
    }

    #[test]
    fn messages_say_what_to_do() {
        assert!(DpopError::RelativeUri.to_string().contains("absolute URI"));
        assert!(DpopError::UnsupportedKey.to_string().contains("P-256"));
        let nonce = DpopError::InvalidNonce { position: 7 }.to_string();
        assert!(
            nonce.contains("byte 7") && nonce.contains("DPoP-Nonce"),
            "{nonce}"
        );
        assert!(DpopError::MalformedKey.source().is_none());
    }
}
