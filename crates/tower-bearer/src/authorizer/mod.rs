//! What every transport asks of the library, decided in one place: whether a request gets
//! the token, what goes on it, and what its response says about the token.
//!
//! [`BearerAuth`](crate::BearerAuth) (tower, and through it hyper, axum and tonic) and the
//! reqwest crate's middleware both drive an [`Authorizer`]; they keep only their transport's
//! glue (how to wait, how to send, how to replay). A client for another transport does the
//! same in a page:
//!
//! 1. [`Authorizer::authorize`] the request (anything that is [`Outgoing`]). It answers
//!    [`Send`](Authorize::Send) with the token attached (or the request left alone: the
//!    caller's own `Authorization`, an origin outside the [`AllowedOrigins`]),
//!    [`Wait`](Authorize::Wait) for a token or a DPoP nonce (await the [`Pending`], then
//!    [`attach`](Ready::attach) what it yields), or [`Refuse`](Authorize::Refuse) (the error says why).
//! 2. Send it, keeping the [`Sent`] that came back.
//! 3. Read the response (anything that is [`Incoming`]) with [`Sent::verdict`]: it keeps the
//!    server's DPoP nonce, has the cache drop a token the server rejected, and answers with
//!    a [`Verdict`]. On [`Verdict::replay`], authorize a copy of the request again (as it was
//!    before step 1) and send it **once**; whatever its verdict, return its response.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use tower_bearer::authorizer::{Authorize, Authorizer, Verdict};
//! use tower_bearer::{source::StaticToken, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = TokenCache::new(StaticToken::new("my-token")?);
//! let mut authorizer = Authorizer::new(cache).allow_origins(["https://api.example.com"])?;
//!
//! let mut request = Request::get("https://api.example.com/v1/things").body(())?;
//! let sent = match authorizer.authorize(&mut request) {
//!     Authorize::Send(sent) => sent,
//!     Authorize::Wait(pending) => pending.await?.attach(&mut request)?,
//!     Authorize::Refuse(error) => return Err(error),
//! };
//! assert_eq!(request.headers()["authorization"], "Bearer my-token");
//!
//! // The transport sends it; here the server answers 401 with `invalid_token`.
//! let response = Response::builder()
//!     .status(StatusCode::UNAUTHORIZED)
//!     .header("www-authenticate", r#"Bearer error="invalid_token""#)
//!     .body(())?;
//! // The cache drops the token; a replay would carry a new one (a static source
//! // hands out the same value again).
//! assert_eq!(sent.verdict(&response), Verdict::ReplayWithNewToken);
//! # Ok(())
//! # }
//! ```
//!
//! # Responses from elsewhere
//!
//! A verdict is only ever about the token that was sent and the origin it was sent to. A
//! response whose [final URI](Incoming::final_uri) has another origin (the transport
//! followed a redirect there, and the token did not go with it) is [`Verdict::Keep`]
//! whatever it says: the token stays cached and nothing is replayed.

#[cfg(feature = "dpop")]
mod dpop;
mod origins;
mod sent;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, Version};

pub use origins::{AllowedOrigins, InvalidOrigin, Origin, RelativeUri};
#[cfg(feature = "dpop")]
pub(crate) use sent::fingerprint;
pub(crate) use sent::Attached;
pub use sent::{Sent, Verdict};

use crate::cache::Reader;
use crate::{BoxError, Token, TokenCache};

/// A request as the [`Authorizer`] sees it: its method and URI, and its headers to read and
/// to write. Implemented for `http::Request<B>`; an adapter implements it for its client's
/// request type (the reqwest crate wraps a `reqwest::Request` and its URL read as a `Uri`).
pub trait Outgoing {
    /// The request's method, which a DPoP proof signs.
    fn method(&self) -> &Method;
    /// The request's URI: its origin is checked against the allow-list, and a DPoP proof
    /// signs it. It must be absolute for either.
    fn uri(&self) -> &Uri;
    /// The request's headers.
    fn headers(&self) -> &HeaderMap;
    /// The request's headers, to attach `Authorization` (and `DPoP`) to.
    fn headers_mut(&mut self) -> &mut HeaderMap;
}

impl<B> Outgoing for http::Request<B> {
    #[inline]
    fn method(&self) -> &Method {
        self.method()
    }
    #[inline]
    fn uri(&self) -> &Uri {
        self.uri()
    }
    #[inline]
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    #[inline]
    fn headers_mut(&mut self) -> &mut HeaderMap {
        self.headers_mut()
    }
}

/// A response as [`Sent::verdict`] sees it. Implemented for `http::Response<B>`, whose final
/// URI is the one tower-http's `FollowRedirect` (0.7) records in its extensions, with the
/// default `follow-redirect` feature.
pub trait Incoming {
    /// The response's status: 401 may reject the token.
    fn status(&self) -> StatusCode;
    /// The response's HTTP version: gRPC's UNAUTHENTICATED is read from HTTP/2 responses.
    fn version(&self) -> Version;
    /// The response's headers: the challenge, a `DPoP-Nonce`, a `grpc-status`.
    fn headers(&self) -> &HeaderMap;
    /// Where the response came from, when the transport may have followed redirects;
    /// `None` when it came from where the request was sent. Read only for responses that
    /// may reject the token, and for DPoP nonces.
    fn final_uri(&self) -> Option<Uri>;
}

impl<B> Incoming for Response<B> {
    #[inline]
    fn status(&self) -> StatusCode {
        self.status()
    }
    #[inline]
    fn version(&self) -> Version {
        self.version()
    }
    #[inline]
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
    fn final_uri(&self) -> Option<Uri> {
        #[cfg(feature = "follow-redirect")]
        {
            self.extensions()
                .get::<tower_http::follow_redirect::RequestUri>()
                .map(|uri| uri.0.clone())
        }
        #[cfg(not(feature = "follow-redirect"))]
        {
            None
        }
    }
}

/// Attaches tokens from a [`TokenCache`] to requests and reads what their responses say
/// about them; see the [module docs](self) for the steps a transport takes.
///
/// Cloning it is cheap; clones share the cache and the allow-list. [`authorize`](Self::authorize)
/// takes `&mut self` because each clone keeps its own view of the cache (what makes the
/// usual path two atomic loads): a transport that serves concurrent requests through
/// `&self` clones the authorizer per request.
#[derive(Clone)]
pub struct Authorizer {
    reader: Reader,
    origins: Option<AllowedOrigins>,
}

impl Authorizer {
    /// Attaches tokens from `cache` to every request (that does not carry its own
    /// `Authorization`).
    pub fn new(cache: TokenCache) -> Self {
        Authorizer {
            reader: cache.reader(),
            origins: None,
        }
    }

    /// Attaches tokens only to requests whose URI has one of these origins (scheme, host and
    /// port, as in `https://api.example.com`); others pass through without one.
    ///
    /// By default every request gets the token, which suits a client that talks to one API.
    /// Once a list is set, a request with a relative URI (no scheme and host) cannot be
    /// checked against it: it is refused with a [`RelativeUri`] error (unless the caller
    /// set its own `Authorization`).
    pub fn allow_origins<I>(self, origins: I) -> Result<Self, InvalidOrigin>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Ok(self.with_allowed_origins(AllowedOrigins::new(origins)?))
    }

    /// As [`allow_origins`](Self::allow_origins), with a list parsed already.
    #[must_use]
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.origins = Some(origins);
        self
    }

    /// The allow-list, if one is set.
    pub fn allowed_origins(&self) -> Option<&AllowedOrigins> {
        self.origins.as_ref()
    }

    /// The cache tokens come from.
    pub fn cache(&self) -> &TokenCache {
        self.reader.cache()
    }

    /// Gets `request` ready to send without waiting, if it can be: attaches the cached
    /// token (and, for a DPoP-bound token, a proof with the origin's latest nonce), or
    /// leaves the request alone when it is not ours to authorize. See [`Authorize`].
    ///
    /// On the usual path (a fresh bearer token, no allow-list) this is two atomic loads and
    /// one header insert: no lock, no clock read, no allocation.
    #[inline]
    pub fn authorize<R: Outgoing + ?Sized>(&mut self, request: &mut R) -> Authorize {
        match self.attach(request) {
            Attach::Attached(attached) => Authorize::Send(attached.into_sent()),
            Attach::Other(authorize) => authorize,
        }
    }

    /// [`authorize`](Self::authorize), with the usual path's outcome as an [`Attached`]:
    /// what the tower layer keeps, so that its usual path never builds a [`Sent`].
    #[inline]
    pub(crate) fn attach<R: Outgoing + ?Sized>(&mut self, request: &mut R) -> Attach {
        if let Some(origins) = &self.origins {
            match origins.check(request.uri()) {
                origins::Check::Allowed => {}
                origins::Check::NotAllowed => return Attach::Attached(Attached::not_ours()),
                origins::Check::Relative => return Attach::Other(relative(request)),
            }
        }
        if has_authorization(request.headers()) {
            return Attach::Attached(Attached::not_ours());
        }
        let Some(entry) = self.reader.usable_entry() else {
            return Attach::Other(self.wait_for_token(request));
        };
        #[cfg(feature = "dpop")]
        if entry.token().is_dpop() {
            let token = entry.token().clone();
            return Attach::Other(self.authorize_dpop(token, request));
        }
        insert_authorization(request.headers_mut(), entry.token().header_value().clone());
        Attach::Attached(Attached::entry(entry.id(), request.uri()))
    }

    /// No usable token: the request waits for the cache's fetch (and for a DPoP-bound
    /// token, for the origin's nonce if a first request to it is out).
    #[cold]
    #[inline(never)]
    fn wait_for_token<R: Outgoing + ?Sized>(&self, request: &R) -> Authorize {
        let cache = self.reader.cache().clone();
        #[cfg(feature = "dpop")]
        let uri = request.uri().clone();
        #[cfg(not(feature = "dpop"))]
        let _ = request;
        Authorize::Wait(Pending(Box::pin(async move {
            let token = cache.token().await?;
            #[cfg(feature = "dpop")]
            let gate = dpop::wait_for_nonce(&token, &uri).await;
            #[cfg(not(feature = "dpop"))]
            let gate = Gate;
            Ok(Ready { token, cache, gate })
        })))
    }

    /// A DPoP-bound token: the proof is made now, unless the origin's first response is
    /// still out and this request should wait for the nonce it may bring.
    #[cfg(feature = "dpop")]
    #[cold]
    #[inline(never)]
    fn authorize_dpop<R: Outgoing + ?Sized>(&self, token: Token, request: &mut R) -> Authorize {
        let cache = self.reader.cache().clone();
        match dpop::gate(&token, request.uri()) {
            dpop::GateNow::Go(gate) => {
                let ready = Ready { token, cache, gate };
                match ready.attach(request) {
                    Ok(sent) => Authorize::Send(sent),
                    Err(error) => Authorize::Refuse(error),
                }
            }
            dpop::GateNow::Wait => {
                let uri = request.uri().clone();
                Authorize::Wait(Pending(Box::pin(async move {
                    let gate = dpop::wait_for_nonce(&token, &uri).await;
                    Ok(Ready { token, cache, gate })
                })))
            }
        }
    }
}

/// A request with a relative URI and an allow-list: refused, unless it carries the
/// caller's own credentials (not ours to check).
#[cold]
#[inline(never)]
fn relative<R: Outgoing + ?Sized>(request: &R) -> Authorize {
    if has_authorization(request.headers()) {
        return Authorize::Send(Sent::not_ours());
    }
    Authorize::Refuse(RelativeUri::new(request.uri()).into())
}

/// What [`Authorizer::attach`] did with a request.
pub(crate) enum Attach {
    /// The usual path: a cached bearer token, or none of ours.
    Attached(Attached),
    /// Anything else.
    Other(Authorize),
}

/// What [`Authorizer::authorize`] did with a request.
#[must_use = "a request that is not sent as the authorizer says goes without its token"]
pub enum Authorize {
    /// Send it now, and read its response with the [`Sent`]. The token is attached, or the
    /// request is left as it was (see [`Sent::is_ours`]).
    Send(Sent),
    /// Await the [`Pending`] (the cache's fetch, or a DPoP nonce), then
    /// [`attach`](Ready::attach) what it yields to the request. It fails with the cache's
    /// [`FetchError`](crate::FetchError) when no token can be had: do not send the request.
    Wait(Pending),
    /// Do not send it: the error says why ([`RelativeUri`], or a `dpop::DpopError` for a
    /// proof that cannot be made).
    Refuse(BoxError),
}

impl fmt::Debug for Authorize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorize::Send(sent) => f.debug_tuple("Send").field(sent).finish(),
            Authorize::Wait(_) => f.write_str("Wait"),
            Authorize::Refuse(error) => f.debug_tuple("Refuse").field(error).finish(),
        }
    }
}

/// What a request that waits for its token awaits: the cache's fetch and, for a DPoP-bound
/// token, the origin's nonce. `'static` and `Send`, so a transport can keep it in a
/// response future or spawn it.
#[must_use = "futures do nothing unless polled"]
pub struct Pending(Pin<Box<dyn Future<Output = Result<Ready, BoxError>> + Send>>);

impl Future for Pending {
    type Output = Result<Ready, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pending")
    }
}

/// A token ready to attach, which [`Pending`] yields.
pub struct Ready {
    token: Token,
    cache: TokenCache,
    gate: Gate,
}

impl Ready {
    /// Attaches the token (and, for a DPoP-bound one, its proof) to the request that
    /// waited for it. Fails for a DPoP proof that cannot be made (a `dpop::DpopError`).
    pub fn attach<R: Outgoing + ?Sized>(self, request: &mut R) -> Result<Sent, BoxError> {
        let Ready { token, cache, gate } = self;
        insert_authorization(request.headers_mut(), token.header_value().clone());
        #[cfg(feature = "dpop")]
        let (token, cache) = match dpop::attach_proof(request, token, cache, gate)? {
            Ok(sent) => return Ok(Sent::dpop(sent)),
            // Not bound to a key: it goes as it is.
            Err(unbound) => unbound,
        };
        #[cfg(not(feature = "dpop"))]
        let _ = gate;
        Ok(Sent::fetched(token, cache, request.uri()))
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ready").field("token", &self.token).finish()
    }
}

/// For a DPoP request: its place at its origin's nonce gate (see `authorizer::dpop`).
#[cfg(feature = "dpop")]
type Gate = dpop::Gate;
/// Without DPoP, nothing.
#[cfg(not(feature = "dpop"))]
struct Gate;

/// Whether the caller already set an Authorization header: for the handful of headers
/// requests usually carry, comparing names costs less than hashing one (an earlier
/// `contains_key` was a third of this layer's cost in the `hot_path` bench). The entry API,
/// and appending and taking ours back out, both measured slower.
#[inline]
pub(crate) fn has_authorization(headers: &HeaderMap) -> bool {
    const SCAN_UP_TO: usize = 16;
    if headers.keys_len() <= SCAN_UP_TO {
        headers.keys().any(|name| name == AUTHORIZATION)
    } else {
        headers.contains_key(AUTHORIZATION)
    }
}

/// Inserts the header in a function of its own: small enough that `HeaderMap::insert` is
/// inlined into it and hashes the constant name at compile time, as it does in
/// `AddAuthorization`. Inlined into the larger `call`, the insert stays a call that hashes
/// at run time (about 35 instructions more per request in the `hot_path` bench).
#[inline(never)]
fn insert_authorization(headers: &mut HeaderMap, value: HeaderValue) {
    headers.insert(AUTHORIZATION, value);
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorizer")
            .field("cache", self.reader.cache())
            .field("allowed_origins", &self.origins)
            .finish()
    }
}
