//! How values are written to Redis: a versioned envelope, encrypted or (by explicit choice)
//! in clear, bound to where the value lives.
//!
//! # Where a value lives: its context
//!
//! Every value is bound to a *context*: the Redis key name, the record kind (`token` or
//! `refresh`) and, for a refresh token, its generation. The context is encoded as
//! length-prefixed fields, each an 8-byte big-endian length and then the bytes:
//!
//! ```text
//! context = field("tower-bearer-redis value v2") || field(kind) || field(key name)
//!           [ || field(generation as 8 bytes big-endian) ]    (kind "refresh" only)
//! ```
//!
//! The kind decides whether the generation field follows, and every field carries its
//! length, so no two contexts encode to the same bytes.
//!
//! # Encrypted layout (`0x03`)
//!
//! ```text
//! 0x03 || id length (1 byte) || key id || commitment (16 bytes) || nonce (24 bytes)
//!      || XChaCha20-Poly1305 ciphertext and tag
//! ```
//!
//! The associated data is the header (every byte before the nonce) followed by the context,
//! so a value copied to another key, kind or generation, or given another header, does not
//! decrypt. The *commitment* is the first 16 bytes of SHA-256 over a domain-separation label
//! and the 32 key bytes. It tells a key this replica holds from another key under the same
//! id without trying to decrypt: a value whose id or commitment this replica does not know
//! was sealed by a replica configured differently ([`Unopened::Foreign`]), while one whose
//! commitment matches but fails authentication was damaged or moved ([`Unopened::Damaged`]).
//! The commitment reveals nothing usable about a random 256-bit key (finding a key from it
//! is a SHA-256 preimage search); a guessable key is no weaker for it than the ciphertext
//! already makes it, since each guess can be checked against the tag.
//!
//! # Clear layout (`0x04`)
//!
//! ```text
//! 0x04 || context length (8 bytes big-endian) || context || plaintext
//! ```
//!
//! In clear the context is stored, not authenticated: it catches a value moved by mistake,
//! not one forged by someone who can write to the Redis (anyone who can write there can
//! write anything in clear).
//!
//! A store that encrypts reads a clear value as [`Unopened::Foreign`], and a store in clear
//! reads an encrypted one the same way: they are two configurations, and neither replaces
//! the other's values. An empty value, an unknown first byte or a truncated envelope is
//! [`Unopened::Damaged`].

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use tower_bearer::store::{StoreError, StoreErrorKind};
use zeroize::{Zeroize, Zeroizing};

const ENCRYPTED: u8 = 0x03;
const CLEAR: u8 = 0x04;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const COMMITMENT_LEN: usize = 16;
const CONTEXT_LABEL: &[u8] = b"tower-bearer-redis value v2";
const COMMITMENT_LABEL: &[u8] = b"tower-bearer-redis key commitment v1\0";

/// What a stored value is: its kind, and for a refresh token its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An access-token record.
    Token,
    /// A refresh token of this generation.
    Refresh { generation: u64 },
}

/// Where a value lives, which its envelope is bound to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Context<'a> {
    /// The Redis key name.
    pub(crate) key_name: &'a str,
    pub(crate) kind: Kind,
}

impl Context<'_> {
    /// The context's bytes; see the module docs.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.key_name.len());
        let kind: &[u8] = match self.kind {
            Kind::Token => b"token",
            Kind::Refresh { .. } => b"refresh",
        };
        field(&mut out, CONTEXT_LABEL);
        field(&mut out, kind);
        field(&mut out, self.key_name.as_bytes());
        if let Kind::Refresh { generation } = self.kind {
            field(&mut out, &generation.to_be_bytes());
        }
        out
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// One encryption key with the id stored next to the values it sealed.
pub(crate) struct Key {
    pub(crate) id: String,
    commitment: [u8; COMMITMENT_LEN],
    cipher: XChaCha20Poly1305,
}

impl Key {
    pub(crate) fn new(id: String, mut bytes: [u8; 32]) -> Self {
        let cipher = XChaCha20Poly1305::new(&bytes.into());
        let commitment = commitment(&bytes);
        bytes.zeroize();
        Key {
            id,
            commitment,
            cipher,
        }
    }
}

fn commitment(key: &[u8; 32]) -> [u8; COMMITMENT_LEN] {
    let digest = Sha256::new()
        .chain_update(COMMITMENT_LABEL)
        .chain_update(key)
        .finalize();
    let mut commitment = [0; COMMITMENT_LEN];
    commitment.copy_from_slice(&digest[..COMMITMENT_LEN]);
    commitment
}

/// Seals and opens values: with keys (the first one seals), or in clear.
pub(crate) enum Codec {
    Encrypted { current: Key, older: Vec<Key> },
    Clear,
}

/// Why a value did not open.
#[derive(Debug)]
pub(crate) enum Unopened {
    /// Not what any replica with this replica's configuration wrote there: malformed,
    /// truncated, moved, or failing authentication under a key this replica holds.
    Damaged(StoreError),
    /// Written by a replica configured otherwise: sealed with a key this replica does not
    /// hold, or in the other of clear and encrypted.
    Foreign(StoreError),
}

impl Unopened {
    /// The error, whichever the reason.
    pub(crate) fn into_error(self) -> StoreError {
        match self {
            Unopened::Damaged(error) | Unopened::Foreign(error) => error,
        }
    }
}

/// A stored value's parts, before anything is checked against this replica's keys.
enum Envelope<'a> {
    Encrypted {
        /// Every byte before the nonce, authenticated with the context.
        header: &'a [u8],
        id: &'a [u8],
        commitment: &'a [u8],
        nonce: &'a [u8],
        ciphertext: &'a [u8],
    },
    Clear {
        context: &'a [u8],
        plaintext: &'a [u8],
    },
}

impl<'a> Envelope<'a> {
    fn parse(value: &'a [u8]) -> Result<Self, Unopened> {
        let truncated = || damaged("the stored value is truncated");
        let (&format, rest) = value
            .split_first()
            .ok_or_else(|| damaged("the stored value is empty"))?;
        match format {
            ENCRYPTED => {
                let (&id_len, rest) = rest.split_first().ok_or_else(truncated)?;
                let id_len = usize::from(id_len);
                if id_len == 0 || rest.len() < id_len + COMMITMENT_LEN + NONCE_LEN + TAG_LEN {
                    return Err(truncated());
                }
                let (id, rest) = rest.split_at(id_len);
                let (commitment, rest) = rest.split_at(COMMITMENT_LEN);
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                Ok(Envelope::Encrypted {
                    header: &value[..2 + id_len + COMMITMENT_LEN],
                    id,
                    commitment,
                    nonce,
                    ciphertext,
                })
            }
            CLEAR => {
                let (length, rest) = rest.split_first_chunk::<8>().ok_or_else(truncated)?;
                let length = usize::try_from(u64::from_be_bytes(*length))
                    .ok()
                    .filter(|&length| length <= rest.len())
                    .ok_or_else(truncated)?;
                let (context, plaintext) = rest.split_at(length);
                Ok(Envelope::Clear { context, plaintext })
            }
            other => Err(damaged(format!(
                "the stored value has an unknown format (first byte {other:#04x}); was it \
                 written by another version or another program?"
            ))),
        }
    }
}

impl Codec {
    /// `plaintext` sealed for `context`.
    pub(crate) fn seal(
        &self,
        context: &Context<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let context = context.encode();
        match self {
            Codec::Clear => {
                let mut out = Vec::with_capacity(9 + context.len() + plaintext.len());
                out.push(CLEAR);
                out.extend_from_slice(&(context.len() as u64).to_be_bytes());
                out.extend_from_slice(&context);
                out.extend_from_slice(plaintext);
                Ok(out)
            }
            Codec::Encrypted { current, .. } => {
                let id = current.id.as_bytes();
                let mut out = Vec::with_capacity(
                    2 + id.len() + COMMITMENT_LEN + NONCE_LEN + plaintext.len() + TAG_LEN,
                );
                out.push(ENCRYPTED);
                // Key ids are checked to be 1 to 64 bytes when the store is built.
                out.push(id.len() as u8);
                out.extend_from_slice(id);
                out.extend_from_slice(&current.commitment);
                let mut aad = out.clone();
                aad.extend_from_slice(&context);
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let ciphertext = current
                    .cipher
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: plaintext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| {
                        StoreError::new(StoreErrorKind::Config, "encrypting a value failed")
                    })?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&ciphertext);
                Ok(out)
            }
        }
    }

    /// The plaintext of `value`, read from `context`.
    pub(crate) fn open(
        &self,
        context: &Context<'_>,
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Unopened> {
        match (Envelope::parse(value)?, self) {
            (
                Envelope::Clear {
                    context: stored,
                    plaintext,
                },
                Codec::Clear,
            ) => {
                if stored != context.encode() {
                    return Err(damaged(
                        "the value in clear was stored for another key, kind or generation",
                    ));
                }
                Ok(Zeroizing::new(plaintext.to_vec()))
            }
            (Envelope::Clear { .. }, Codec::Encrypted { .. }) => Err(foreign(
                "the stored value is in clear, but this store is configured to encrypt; it \
                 was written by a replica set up with `store_in_clear`",
            )),
            (Envelope::Encrypted { .. }, Codec::Clear) => Err(foreign(
                "the stored value is encrypted, but this store has no keys; configure the \
                 same `encryption_key` on every replica",
            )),
            (
                Envelope::Encrypted {
                    header,
                    id,
                    commitment,
                    nonce,
                    ciphertext,
                },
                Codec::Encrypted { current, older },
            ) => {
                let key = std::iter::once(current)
                    .chain(older)
                    .find(|key| key.id.as_bytes() == id)
                    .ok_or_else(|| {
                        foreign(format!(
                            "the value was encrypted with key id {:?}, which this store does \
                             not have; add it with `decryption_key`",
                            String::from_utf8_lossy(id)
                        ))
                    })?;
                if key.commitment[..] != *commitment {
                    return Err(foreign(format!(
                        "the value was encrypted with a different key under the id {:?}; \
                         every replica needs the same key under the same id",
                        key.id
                    )));
                }
                let mut aad = header.to_vec();
                aad.extend_from_slice(&context.encode());
                key.cipher
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: ciphertext,
                            aad: &aad,
                        },
                    )
                    .map(Zeroizing::new)
                    .map_err(|_| {
                        damaged(format!(
                            "the value does not authenticate under key id {:?}: tampered \
                             with, or moved from another key, kind or generation",
                            key.id
                        ))
                    })
            }
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

pub(crate) fn unreadable(message: impl Into<String>) -> StoreError {
    StoreError::new(StoreErrorKind::Unreadable, message)
}

fn damaged(message: impl Into<String>) -> Unopened {
    Unopened::Damaged(unreadable(message))
}

fn foreign(message: impl Into<String>) -> Unopened {
    Unopened::Foreign(unreadable(message))
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

    fn token(key_name: &str) -> Context<'_> {
        Context {
            key_name,
            kind: Kind::Token,
        }
    }

    fn refresh(key_name: &str, generation: u64) -> Context<'_> {
        Context {
            key_name,
            kind: Kind::Refresh { generation },
        }
    }

    fn is_damaged(result: Result<Zeroizing<Vec<u8>>, Unopened>) -> bool {
        matches!(result, Err(Unopened::Damaged(ref e)) if e.kind() == StoreErrorKind::Unreadable)
    }

    fn is_foreign(result: Result<Zeroizing<Vec<u8>>, Unopened>) -> bool {
        matches!(result, Err(Unopened::Foreign(ref e)) if e.kind() == StoreErrorKind::Unreadable)
    }

    #[test]
    fn seals_and_opens_and_hides_the_plaintext() {
        let codec = codec("k1", 7);
        let at = refresh("p:{a}:refresh", 3);
        let sealed = codec.seal(&at, b"secret-value").unwrap();
        assert_eq!(sealed[0], ENCRYPTED);
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(&*codec.open(&at, &sealed).unwrap(), b"secret-value");
    }

    #[test]
    fn a_value_moved_to_another_key_kind_or_generation_is_damaged() {
        for codec in [codec("k1", 7), Codec::Clear] {
            let sealed = codec.seal(&refresh("p:a", 3), b"secret-value").unwrap();
            assert!(is_damaged(codec.open(&refresh("p:b", 3), &sealed)));
            assert!(is_damaged(codec.open(&refresh("p:a", 4), &sealed)));
            assert!(is_damaged(codec.open(&token("p:a"), &sealed)));
            let sealed = codec.seal(&token("p:a"), b"secret-value").unwrap();
            assert!(is_damaged(codec.open(&refresh("p:a", 0), &sealed)));
            assert!(is_damaged(codec.open(&token("p:ab"), &sealed)));
        }
    }

    #[test]
    fn contexts_do_not_run_into_each_other() {
        let a = refresh("ab", 1).encode();
        assert_ne!(a, refresh("a", 1).encode());
        assert_ne!(token("ab").encode(), token("a").encode());
        assert_ne!(token("x").encode(), refresh("x", 0).encode());
    }

    #[test]
    fn garbage_truncation_and_tampering_are_damaged() {
        let codec = codec("k1", 7);
        let at = token("k");
        let sealed = codec.seal(&at, b"secret-value").unwrap();
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        // The header is authenticated too: the format byte of the old layout.
        let mut old_format = sealed.clone();
        old_format[0] = 0x01;
        for value in [
            &b""[..],
            b"\x03",
            b"\x03\x00",
            b"\x03\x02k1",
            &sealed[..sealed.len() - 1],
            &sealed[..30],
            &flipped,
            &old_format,
            b"\x7fxyz",
            b"\x04\x00\x00\x00\x00\x00\x00\x00\xffabc",
        ] {
            assert!(is_damaged(codec.open(&at, value)), "{value:?}");
        }
    }

    #[test]
    fn an_unknown_key_id_or_another_key_under_a_known_id_is_foreign() {
        let at = token("k");
        let sealed = codec("k1", 7).seal(&at, b"v").unwrap();
        assert!(is_foreign(codec("k2", 7).open(&at, &sealed)));
        let Err(Unopened::Foreign(error)) = codec("k1", 8).open(&at, &sealed) else {
            panic!("a different key under the same id is foreign");
        };
        assert!(error.to_string().contains("different key"), "{error}");
        // Tampering with a value of ours is damage, not a foreign value.
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(is_damaged(codec("k1", 7).open(&at, &tampered)));
    }

    #[test]
    fn a_rotated_store_opens_values_of_its_older_keys() {
        let at = token("k");
        let old = codec("2025", 1).seal(&at, b"v").unwrap();
        let rotated = Codec::Encrypted {
            current: Key::new("2026".to_owned(), [2; 32]),
            older: vec![Key::new("2025".to_owned(), [1; 32])],
        };
        assert_eq!(&*rotated.open(&at, &old).unwrap(), b"v");
    }

    #[test]
    fn clear_and_encrypted_read_each_other_as_foreign() {
        let at = token("k");
        let sealed = codec("k1", 7).seal(&at, b"v").unwrap();
        assert!(is_foreign(Codec::Clear.open(&at, &sealed)));
        let clear = Codec::Clear.seal(&at, b"v").unwrap();
        assert_eq!(clear[0], CLEAR);
        assert!(is_foreign(codec("k1", 7).open(&at, &clear)));
        assert_eq!(&*Codec::Clear.open(&at, &clear).unwrap(), b"v");
    }

    #[test]
    fn the_commitment_is_a_labelled_hash_not_the_key() {
        let key = [7; 32];
        let commitment = commitment(&key);
        assert_ne!(commitment[..], key[..COMMITMENT_LEN]);
        assert_ne!(commitment, super::commitment(&[8; 32]));
        let plain: [u8; 32] = Sha256::digest(key).into();
        assert_ne!(commitment[..], plain[..COMMITMENT_LEN], "domain-separated");
        let sealed = codec("k1", 7).seal(&token("k"), b"v").unwrap();
        assert!(!sealed.windows(8).any(|w| w == [7; 8]));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let text = format!("{:?}", codec("k1", 7));
        assert!(text.contains("k1"));
        assert!(!text.contains("cipher"));
        assert!(!text.contains("commitment"));
    }
}
