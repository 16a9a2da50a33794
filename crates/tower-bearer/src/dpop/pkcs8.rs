//! Just enough PKCS#8 (RFC 5958) to tell which algorithm a private key is for, and the PEM
//! armour around it (RFC 7468).
//!
//! ring parses and checks the key itself. Reading the algorithm first picks which of ring's
//! parsers to call, and lets an RSA key say "unsupported" rather than "malformed".

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::key::Algorithm;
use super::DpopError;

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OBJECT_IDENTIFIER: u8 = 0x06;

/// 1.2.840.10045.2.1, `id-ecPublicKey` (RFC 5480).
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7, `secp256r1`, the named curve P-256 (RFC 5480).
const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.101.112, `id-Ed25519` (RFC 8410).
const ED25519: &[u8] = &[0x2b, 0x65, 0x70];

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// The algorithm named in a PKCS#8 `PrivateKeyInfo`'s `privateKeyAlgorithm`.
pub(super) fn algorithm(der: &[u8]) -> Result<Algorithm, DpopError> {
    let mut document = Der(der);
    let mut key_info = Der(document.element(SEQUENCE)?);
    key_info.element(INTEGER)?; // the version
    let mut algorithm_identifier = Der(key_info.element(SEQUENCE)?);
    match algorithm_identifier.element(OBJECT_IDENTIFIER)? {
        ED25519 => Ok(Algorithm::Ed25519),
        // The parameters name the curve; any other curve, or explicit curve parameters, is
        // a key we do not sign with.
        EC_PUBLIC_KEY => match algorithm_identifier.element(OBJECT_IDENTIFIER) {
            Ok(P256) => Ok(Algorithm::Es256),
            _ => Err(DpopError::UnsupportedKey),
        },
        _ => Err(DpopError::UnsupportedKey),
    }
}

/// The DER inside the first `PRIVATE KEY` PEM block, in memory that is zeroized on drop.
pub(super) fn pem_to_der(pem: &str) -> Result<Zeroizing<Vec<u8>>, DpopError> {
    let (_, after_begin) = pem.split_once(PEM_BEGIN).ok_or(DpopError::MalformedKey)?;
    let (body, _) = after_begin
        .split_once(PEM_END)
        .ok_or(DpopError::MalformedKey)?;
    // Both buffers hold the key; they get their full capacity up front so that no
    // reallocation leaves a copy behind.
    let mut base64_text = Zeroizing::new(Vec::with_capacity(body.len()));
    base64_text.extend(body.bytes().filter(|byte| !byte.is_ascii_whitespace()));
    let mut der = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(
        base64_text.len(),
    )));
    STANDARD
        .decode_vec(&*base64_text, &mut der)
        .map_err(|_| DpopError::MalformedKey)?;
    Ok(der)
}

/// A cursor over DER elements (X.690), for the few definite-length elements read here.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The contents of the next element, which must have this tag.
    fn element(&mut self, tag: u8) -> Result<&'a [u8], DpopError> {
        self.read_element(tag).ok_or(DpopError::MalformedKey)
    }

    fn read_element(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.0.split_first()?;
        if found != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            // Long form: the low bits count the length bytes that follow. Four cover any
            // key; more would be a length no key has.
            let (len_bytes, after) = rest.split_at_checked(usize::from(first & 0x7f))?;
            if len_bytes.is_empty() || len_bytes.len() > 4 {
                return None;
            }
            rest = after;
            len_bytes
                .iter()
                .fold(0, |len, &byte| (len << 8) | usize::from(byte))
        };
        let (contents, after) = rest.split_at_checked(len)?;
        self.0 = after;
        Some(contents)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_form_lengths_are_read() {
        let mut long = vec![SEQUENCE, 0x82, 0x01, 0x00];
        long.extend([7; 256]);
        assert_eq!(
            Der(&long).element(SEQUENCE).map(<[u8]>::len).ok(),
            Some(256)
        );
        let truncated = [SEQUENCE, 0x82, 0x01];
        assert!(Der(&truncated).element(SEQUENCE).is_err());
        let indefinite = [SEQUENCE, 0x80, 0x00, 0x00];
        assert!(Der(&indefinite).element(SEQUENCE).is_err());
        assert!(Der(&[INTEGER, 0x01, 0x00]).element(SEQUENCE).is_err());
    }

    #[test]
    fn pem_needs_a_private_key_block() {
        assert!(matches!(
            pem_to_der("MC4CAQAw"),
            Err(DpopError::MalformedKey)
        ));
        let bad_base64 = format!("{PEM_BEGIN}\n!!!!\n{PEM_END}\n");
        assert!(matches!(
            pem_to_der(&bad_base64),
            Err(DpopError::MalformedKey)
        ));
        let wrapped = format!("{PEM_BEGIN}\r\nAAEC\r\n  AwQF\n{PEM_END}");
        assert_eq!(
            pem_to_der(&wrapped).ok().as_deref().map(Vec::as_slice),
            Some(&[0, 1, 2, 3, 4, 5][..])
        );
    }
}
