//! How values are written to Redis: a versioned envelope, encrypted or (by explicit choice)
//! in clear, around a small JSON record.
//!
//! Encrypted layout: `0x01`, key id length (one byte), key id, 24-byte random nonce, then
//! the XChaCha20-Poly1305 ciphertext and tag. The associated data is the Redis key name (and,
//! for a refresh token, a NUL, `refresh`, a NUL and its generation in decimal), so a value
//! copied to another key or generation does not decrypt. Clear layout: `0x02`, then the plaintext.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tower_bearer::store::{StoreError, StoreErrorKind};
use zeroize::{Zeroize, Zeroizing};

const ENCRYPTED_V1: u8 = 0x01;
const CLEAR_V1: u8 = 0x02;
const NONCE_LEN: usize = 24;

/// One encryption key with the id stored next to the values it sealed.
pub(crate) struct Key {
    pub(crate) id: String,
    cipher: XChaCha20Poly1305,
}

impl Key {
    pub(crate) fn new(id: String, mut bytes: [u8; 32]) -> Self {
        let cipher = XChaCha20Poly1305::new(&bytes.into());
        bytes.zeroize();
        Key { id, cipher }
    }
}

/// Seals and opens values: with keys (the first one seals), or in clear.
pub(crate) enum Codec {
    Encrypted { current: Key, older: Vec<Key> },
    Clear,
}

impl Codec {
    /// `plaintext` sealed for the Redis key named `aad`.
    pub(crate) fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        match self {
            Codec::Clear => {
                let mut out = Vec::with_capacity(1 + plaintext.len());
                out.push(CLEAR_V1);
                out.extend_from_slice(plaintext);
                Ok(out)
            }
            Codec::Encrypted { current, .. } => {
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let ciphertext = current
                    .cipher
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: plaintext,
                            aad: aad.as_bytes(),
                        },
                    )
                    .map_err(|_| {
                        StoreError::new(StoreErrorKind::Config, "encrypting a value failed")
                    })?;
                let id = current.id.as_bytes();
                let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + ciphertext.len());
                out.push(ENCRYPTED_V1);
                // Key ids are checked to be at most 64 bytes when the store is built.
                out.push(id.len() as u8);
                out.extend_from_slice(id);
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&ciphertext);
                Ok(out)
            }
        }
    }

    /// The plaintext of `value`, read from the Redis key named `aad`.
    pub(crate) fn open(&self, aad: &str, value: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let (&format, rest) = value
            .split_first()
            .ok_or_else(|| unreadable("the stored value is empty"))?;
        match (format, self) {
            (CLEAR_V1, Codec::Clear) => Ok(Zeroizing::new(rest.to_vec())),
            (CLEAR_V1, Codec::Encrypted { .. }) => Err(unreadable(
                "the stored value is in clear, but this store is configured to encrypt; it \
                 was written by a replica set up with `store_in_clear`",
            )),
            (ENCRYPTED_V1, Codec::Clear) => Err(unreadable(
                "the stored value is encrypted, but this store has no keys; configure the \
                 same `encryption_key` on every replica",
            )),
            (ENCRYPTED_V1, Codec::Encrypted { current, older }) => {
                let (&id_len, rest) = rest
                    .split_first()
                    .ok_or_else(|| unreadable("the encrypted value is truncated"))?;
                let id_len = usize::from(id_len);
                if rest.len() < id_len + NONCE_LEN {
                    return Err(unreadable("the encrypted value is truncated"));
                }
                let (id, rest) = rest.split_at(id_len);
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                let key = std::iter::once(current)
                    .chain(older)
                    .find(|key| key.id.as_bytes() == id)
                    .ok_or_else(|| {
                        unreadable(format!(
                            "the value was encrypted with key id {:?}, which this store does \
                             not have; add it with `decryption_key`",
                            String::from_utf8_lossy(id)
                        ))
                    })?;
                key.cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: aad.as_bytes(),
                        },
                    )
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        unreadable(format!(
                            "the value does not decrypt with key id {:?}: a different key \
                             under the same id, or a corrupt or moved value",
                            key.id
                        ))
                    })
            }
            (other, _) => Err(unreadable(format!(
                "the stored value has an unknown format (first byte {other:#04x}); was it \
                 written by a newer version or another program?"
            ))),
        }
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Clear => f.write_str("Clear"),
            Codec::Encrypted { current, older } => f
                .debug_struct("XChaCha20Poly1305")
                .field("key_id", &current.id)
                .field(
                    "decryption_key_ids",
                    &older.iter().map(|key| key.id.as_str()).collect::<Vec<_>>(),
                )
                .finish(),
        }
    }
}

/// Whether `value` was sealed in a way this store cannot open at all: with a key id it does
/// not hold, or encrypted where it stores in clear and the other way round. Such a value may
/// be another deployment's good one; anything else that fails to open is damaged.
pub(crate) fn is_foreign(codec: &Codec, value: &[u8]) -> bool {
    match (value.first(), codec) {
        (Some(&CLEAR_V1), Codec::Encrypted { .. }) | (Some(&ENCRYPTED_V1), Codec::Clear) => true,
        (Some(&ENCRYPTED_V1), Codec::Encrypted { current, older }) => {
            let Some((&id_len, rest)) = value[1..].split_first() else {
                return false;
            };
            let Some(id) = rest.get(..usize::from(id_len)) else {
                return false;
            };
            !std::iter::once(current)
                .chain(older)
                .any(|key| key.id.as_bytes() == id)
        }
        _ => false,
    }
}

pub(crate) fn unreadable(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Unreadable, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(id: &str, byte: u8) -> Codec {
        Codec::Encrypted {
            current: Key::new(id.to_owned(), [byte; 32]),
            older: Vec::new(),
        }
    }

    #[test]
    fn seals_and_opens_and_hides_the_plaintext() {
        let codec = codec("k1", 7);
        let sealed = codec.seal("p:token:a", b"secret-value").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*codec.open("p:token:a", &sealed).unwrap(), b"secret-value");
    }

    #[test]
    fn a_value_moved_to_another_key_does_not_open() {
        let codec = codec("k1", 7);
        let sealed = codec.seal("p:token:a", b"secret-value").unwrap();
        let error = codec.open("p:token:b", &sealed).unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unreadable);
    }

    #[test]
    fn garbage_and_truncation_are_unreadable() {
        let codec = codec("k1", 7);
        let sealed = codec.seal("k", b"secret-value").unwrap();
        for value in [
            &b""[..],
            b"\x01",
            b"\x01\x02k1",
            &sealed[..sealed.len() - 1],
            b"\x7fxyz",
        ] {
            assert_eq!(
                codec.open("k", value).unwrap_err().kind(),
                StoreErrorKind::Unreadable
            );
        }
    }

    #[test]
    fn clear_and_encrypted_do_not_mix() {
        let sealed = codec("k1", 7).seal("k", b"v").unwrap();
        assert!(Codec::Clear.open("k", &sealed).is_err());
        let clear = Codec::Clear.seal("k", b"v").unwrap();
        assert!(codec("k1", 7).open("k", &clear).is_err());
        assert_eq!(&*Codec::Clear.open("k", &clear).unwrap(), b"v");
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let text = format!("{:?}", codec("k1", 7));
        assert!(text.contains("k1"));
        assert!(!text.contains("cipher"));
    }
}
