//! What a request went out with, and what its response says about it.
//!
//! A rejection is a `401 Unauthorized` (RFC 6750 section 3) or, for gRPC, a `200` whose
//! headers carry `grpc-status: 16` (UNAUTHENTICATED): a trailers-only response, which is how
//! gRPC servers answer a call they refuse before running it. Only HTTP/2 responses are
//! looked at for the latter (gRPC is HTTP/2 only), so HTTP/1.1 traffic pays one comparison.

use std::fmt;
use std::num::NonZeroU64;

use http::{StatusCode, Uri, Version};

use super::Incoming;
use crate::cache::{Entry, Rejected};
use crate::challenge::{grpc_unauthenticated, token_rejected};
use crate::{Token, TokenCache};

/// What a request was sent with, kept until its response is read with
/// [`verdict`](Self::verdict). Dropping it unread is fine (a request that failed before
/// any response); for a DPoP request that was its origin's first, it lets the requests
/// waiting for that origin's nonce go.
pub struct Sent {
    kind: Kind,
}

enum Kind {
    /// No token of ours went out: the caller's own `Authorization`, or an origin outside
    /// the allow-list.
    NotOurs,
    /// The usual path: the cache entry whose token went out, by number (see
    /// `cache::registry`), and a fingerprint of the origin it went to.
    Entry { id: NonZeroU64, origin: u64 },
    /// A token the request waited for.
    Fetched(Box<Fetched>),
    /// A DPoP-bound token and its proof.
    #[cfg(feature = "dpop")]
    Dpop(Box<super::dpop::Sent>),
}

struct Fetched {
    token: Token,
    cache: TokenCache,
    origin: u64,
}

impl Sent {
    pub(super) fn not_ours() -> Self {
        Sent {
            kind: Kind::NotOurs,
        }
    }

    #[inline]
    pub(super) fn entry(id: NonZeroU64, uri: &Uri) -> Self {
        Sent {
            kind: Kind::Entry {
                id,
                origin: fingerprint(uri),
            },
        }
    }

    pub(super) fn fetched(token: Token, cache: TokenCache, uri: &Uri) -> Self {
        Sent {
            kind: Kind::Fetched(Box::new(Fetched {
                token,
                cache,
                origin: fingerprint(uri),
            })),
        }
    }

    #[cfg(feature = "dpop")]
    pub(super) fn dpop(sent: super::dpop::Sent) -> Self {
        Sent {
            kind: Kind::Dpop(Box::new(sent)),
        }
    }

    /// Whether a token of ours went out with the request. When not, its response is never
    /// a rejection of ours and the request needs no copy for a replay.
    pub fn is_ours(&self) -> bool {
        !matches!(self.kind, Kind::NotOurs)
    }

    /// Reads the response to the request: keeps a `DPoP-Nonce` it carries, has the cache
    /// drop the token if the response rejects it, and says whether to replay the request.
    ///
    /// Only a response from the origin the token was sent to can reject it (see
    /// [`Incoming::final_uri`]). A 401 rejects the token when its challenge says the token
    /// is bad ([`token_rejected`], and for DPoP
    /// [`dpop_challenge`](crate::challenge::dpop_challenge)); `insufficient_scope` and
    /// other errors are [`Verdict::Keep`], as are 403s.
    #[inline]
    pub fn verdict<R: Incoming + ?Sized>(self, response: &R) -> Verdict {
        match self.kind {
            Kind::NotOurs => Verdict::Keep,
            Kind::Entry { id, origin } => {
                if !may_reject(response) {
                    return Verdict::Keep;
                }
                rejection(response, origin, || Entry::reject_by_id(id))
            }
            Kind::Fetched(fetched) => {
                if !may_reject(response) {
                    return Verdict::Keep;
                }
                rejection(response, fetched.origin, || {
                    fetched.cache.reject(&fetched.token)
                })
            }
            #[cfg(feature = "dpop")]
            Kind::Dpop(sent) => sent.verdict(response),
        }
    }
}

/// Whether `response` may be a rejection of the token; the challenge decides the rest.
#[inline]
pub(super) fn may_reject<R: Incoming + ?Sized>(response: &R) -> bool {
    let status = response.status();
    status == StatusCode::UNAUTHORIZED
        || (status == StatusCode::OK
            && response.version() == Version::HTTP_2
            && grpc_unauthenticated(response.headers()))
}

/// A response that may reject the token of a bearer request: it does if it came from the
/// origin the token went to and its challenge says the token is bad. A gRPC UNAUTHENTICATED
/// usually has no `WWW-Authenticate`, which reads as "the token", as a bare 401 does; one
/// that names `insufficient_scope` is left alone.
#[cold]
#[inline(never)]
fn rejection<R: Incoming + ?Sized>(
    response: &R,
    sent_to: u64,
    reject: impl FnOnce() -> Rejected,
) -> Verdict {
    if !from_origin(response, sent_to) || !token_rejected(response.headers()) {
        return Verdict::Keep;
    }
    rejected(reject())
}

/// The verdict on a token the cache was told about.
pub(super) fn rejected(rejected: Rejected) -> Verdict {
    if rejected.replay_gets_another_token() {
        Verdict::ReplayWithNewToken
    } else {
        Verdict::HeldOff
    }
}

/// Whether `response` came from the origin whose fingerprint is `sent_to`.
pub(super) fn from_origin<R: Incoming + ?Sized>(response: &R, sent_to: u64) -> bool {
    let Some(uri) = response.final_uri() else {
        return true;
    };
    let same = fingerprint(&uri) == sent_to;
    if !same {
        tracing::debug!(
            "a 401 from another origin than the token was sent to (a redirect was followed); \
             the token stays and the request is not replayed"
        );
    }
    same
}

/// A fingerprint of `uri`'s origin, cheap enough for the usual path: its scheme and its
/// authority, with ASCII letters folded to one case and the scheme's default port dropped,
/// so that `https://API.example.com:443` and `https://api.example.com` agree. Two origins
/// that differ get different fingerprints but for a 64-bit hash collision, or authorities
/// that differ only in punctuation folded together (`[` and `{`), which no redirect makes.
#[inline]
pub(super) fn fingerprint(uri: &Uri) -> u64 {
    let Some(authority) = uri.authority() else {
        return 0;
    };
    let scheme = uri.scheme_str().unwrap_or("").as_bytes();
    let mut authority = authority.as_str().as_bytes();
    let default_port: &[u8] = if scheme.eq_ignore_ascii_case(b"https") {
        b":443"
    } else {
        b":80"
    };
    if let Some(without) = authority.strip_suffix(default_port) {
        authority = without;
    }
    fold(fold(0x9e37_79b9_7f4a_7c15, scheme), authority)
}

/// Mixes `bytes`, case-folded, into `hash`, eight at a time.
#[inline]
fn fold(mut hash: u64, bytes: &[u8]) -> u64 {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        hash = mix(hash, word | LOWER);
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    mix(hash, (u64::from_le_bytes(last) | LOWER) ^ rest.len() as u64)
}

#[inline]
fn mix(hash: u64, word: u64) -> u64 {
    (hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// What a response says about the token its request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Not a rejection of our token (a success, another error, a response from another
    /// origin, a request that carried none): return the response.
    Keep,
    /// The server rejected the token and the cache dropped it: replay the request once,
    /// with a new token.
    ReplayWithNewToken,
    /// The server wants a DPoP nonce the proof lacked, and sent one: replay the request
    /// once, with the same token and a proof that carries it.
    ReplayWithNonce,
    /// A rejection that a replay would not get past: the token was fetched moments ago to
    /// replace a rejected one and is held until the cache's backoff passes, or the server
    /// asked for a nonce without sending one. Return the response.
    HeldOff,
}

impl Verdict {
    /// Whether to replay the request (once).
    pub fn replay(self) -> bool {
        matches!(self, Verdict::ReplayWithNewToken | Verdict::ReplayWithNonce)
    }

    /// Whether the response rejected the token, or asked for a nonce: the request was
    /// refused for what it carried, whether or not a replay would help.
    pub fn rejected(self) -> bool {
        self != Verdict::Keep
    }
}

impl fmt::Debug for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::NotOurs => "not ours",
            Kind::Entry { .. } => "cached token",
            Kind::Fetched(_) => "fetched token",
            #[cfg(feature = "dpop")]
            Kind::Dpop(_) => "DPoP-bound token",
        };
        f.debug_tuple("Sent").field(&kind).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(uri: &str) -> u64 {
        fingerprint(&uri.parse().unwrap())
    }

    #[test]
    fn fingerprints_agree_for_one_origin_written_differently() {
        let api = print("https://api.example.com/v1/things?x=1");
        assert_eq!(api, print("https://API.Example.COM:443/other"));
        assert_eq!(api, print("HTTPS://api.example.com"));
        assert_eq!(print("http://127.0.0.1/"), print("http://127.0.0.1:80/x"));
    }

    #[test]
    fn fingerprints_differ_across_origins() {
        let origins = [
            "https://api.example.com/",
            "http://api.example.com/",
            "https://api.example.com:8443/",
            "https://api.example.co/",
            "https://api.example.com.evil/",
            "https://xpi.example.com/",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8081/",
            "http://localhost:8080/",
            "http://[::1]:8080/",
            "https://a-very-long-host-name.internal.example.com/",
            "https://a-very-long-host-name.internal.example.org/",
        ];
        for (i, a) in origins.iter().enumerate() {
            for b in &origins[i + 1..] {
                assert_ne!(print(a), print(b), "{a} and {b}");
            }
        }
    }
}
