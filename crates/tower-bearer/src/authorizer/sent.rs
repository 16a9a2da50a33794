//! What a request went out with, and what its response says about it.
//!
//! A rejection is a `401 Unauthorized` (RFC 6750 section 3) or, for gRPC, a `200` whose
//! headers carry `grpc-status: 16` (UNAUTHENTICATED): a trailers-only response, which is how
//! gRPC servers answer a call they refuse before running it. Only HTTP/2 responses are
//! looked at for the latter (gRPC is HTTP/2 only), so HTTP/1.1 traffic pays one comparison.

use std::fmt;
use std::num::NonZeroU64;

use http::uri::Scheme;
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

    /// Whether `response` needs reading at all: a response to a request with a cached or
    /// fetched bearer token needs it only if it may reject the token (a 401, or gRPC's
    /// UNAUTHENTICATED); a DPoP request's always does (it may carry a nonce). When this is
    /// false, [`verdict`](Self::verdict) would be [`Verdict::Keep`] and have no effect.
    #[inline]
    pub fn needs_reading<R: Incoming + ?Sized>(&self, response: &R) -> bool {
        match self.kind {
            Kind::NotOurs => false,
            Kind::Entry { .. } | Kind::Fetched(_) => may_reject(response),
            #[cfg(feature = "dpop")]
            Kind::Dpop(_) => true,
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

/// A [`Sent`] for a cached bearer token (or none of ours), with nothing to drop: what the
/// tower layer keeps in its response future on the usual path, where every instruction
/// shows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attached {
    id: Option<NonZeroU64>,
    origin: u64,
}

impl Attached {
    pub(super) fn not_ours() -> Self {
        Attached {
            id: None,
            origin: 0,
        }
    }

    #[inline]
    pub(super) fn entry(id: NonZeroU64, uri: &Uri) -> Self {
        Attached {
            id: Some(id),
            origin: fingerprint(uri),
        }
    }

    /// As [`Sent::needs_reading`].
    #[inline]
    pub(crate) fn needs_reading<R: Incoming + ?Sized>(&self, response: &R) -> bool {
        self.id.is_some() && may_reject(response)
    }

    /// The `Sent` it came from, to read a response with.
    pub(crate) fn into_sent(self) -> Sent {
        match self.id {
            Some(id) => Sent {
                kind: Kind::Entry {
                    id,
                    origin: self.origin,
                },
            },
            None => Sent::not_ours(),
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
pub(crate) fn fingerprint(uri: &Uri) -> u64 {
    let Some(authority) = uri.authority() else {
        return 0;
    };
    let authority = authority.as_str().as_bytes();
    // Each default port a constant, so that the suffix test is one comparison, not a call.
    match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => fold(2, strip(authority, b":443")),
        Some(scheme) if *scheme == Scheme::HTTP => fold(1, strip(authority, b":80")),
        Some(other) => fold(fold(3, other.as_str().as_bytes()), authority),
        None => fold(0, authority),
    }
}

/// `authority` without `port` at its end.
#[inline]
fn strip<'a, const N: usize>(authority: &'a [u8], port: &[u8; N]) -> &'a [u8] {
    match authority.split_last_chunk::<N>() {
        Some((rest, last)) if last == port => rest,
        _ => authority,
    }
}

/// Mixes `bytes`, case-folded, into `hash`: eight at a time, the last eight read again
/// where they overlap the ones before (so no copy), and the length.
#[inline]
fn fold(mut hash: u64, bytes: &[u8]) -> u64 {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let word = |at: usize| {
        let chunk: [u8; 8] = bytes
            .get(at..at + 8)
            .and_then(|chunk| chunk.try_into().ok())
            .unwrap_or_default();
        u64::from_le_bytes(chunk) | LOWER
    };
    let len = bytes.len();
    if len >= 8 {
        let mut at = 0;
        while at + 8 < len {
            hash = mix(hash, word(at));
            at += 8;
        }
        hash = mix(hash, word(len - 8));
    } else {
        let mut short = 0u64;
        for (i, byte) in bytes.iter().enumerate() {
            short |= u64::from(*byte | 0x20) << (8 * i);
        }
        hash = mix(hash, short);
    }
    mix(hash, len as u64)
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
