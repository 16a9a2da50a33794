//! Retries a request once when the server rejects its bearer token with a 401.
//!
//! [`RetryOn401Layer`] goes outside [`BearerAuthLayer`](crate::BearerAuthLayer). When a
//! response is `401 Unauthorized` and its `WWW-Authenticate` says the token was bad (RFC 6750
//! `invalid_token`, a bare `Bearer` challenge, or no challenge at all), it invalidates exactly
//! the token that was sent (compare-and-invalidate, so a hundred concurrent 401s for one
//! token cause one refresh) and replays the request once through the auth layer, which
//! fetches a new token.
//!
//! It does not retry:
//! - a second 401 (the replay's response is returned as it is);
//! - `insufficient_scope` or `invalid_request` (a new token would not help), nor 403;
//! - a request whose `Authorization` the caller set, since the token was not ours;
//! - a request whose body cannot be replayed.
//!
//! How it knows which token was sent, without costing the usual request anything: cached
//! tokens carry a generation, unique and increasing across all caches of the process. The
//! layer notes the newest generation when it sends a request; on a 401 it puts that on the
//! replay, and the auth layer invalidates its cached token if that token is no newer, which
//! means it was the one sent. (A token fetched for the request itself, because none was
//! cached, is newer; the auth layer then marks the 401 with that token's exact
//! generation.) In a race with a refresh that completes just as a request is sent, the
//! refreshed token can be invalidated in place of the rejected one, at the cost of one
//! extra fetch. With [`RetryOn401Layer::buffered`] the layer also needs the token when the
//! body cannot be replayed, so it passes a slot per request that the auth layer fills in,
//! and invalidation is exact. Either way the layer must wrap a
//! [`BearerAuthLayer`](crate::BearerAuthLayer): without one inside, a replay goes out
//! unchanged and its 401 comes back. The same happens, once, for a request to an origin
//! outside the auth layer's `allow_origins` that answers with such a 401.
//!
//! Bodies: with [`RetryOn401Layer::new`] the body type must be `Clone` and is cloned before
//! the first send. For streaming bodies, [`RetryOn401Layer::buffered`] records the body as it
//! is sent, up to a limit, and replays the recording; past the limit the 401 is returned
//! untouched. The wrapped service then receives a [`ReplayBody`].
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_bearer::{source::StaticToken, BearerAuthLayer, RetryOn401Layer, TokenCache};
//! # use std::convert::Infallible;
//! # use http::{Request, Response};
//! # use tower::service_fn;
//! # use tower_bearer::retry::ReplayBody;
//! # type Body = http_body_util::Full<bytes::Bytes>;
//!
//! # fn main() -> Result<(), tower_bearer::InvalidToken> {
//! let cache = TokenCache::new(StaticToken::new("token")?);
//! let client = ServiceBuilder::new()
//!     // Streaming bodies up to 64 KiB can be replayed.
//!     .layer(RetryOn401Layer::buffered(64 * 1024))
//!     .layer(BearerAuthLayer::new(cache))
//!     .service(service_fn(|_: Request<ReplayBody<Body>>| async { Ok::<_, Infallible>(Response::new(())) }));
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::{BufferBody, CloneBody, Recorder, ReplayBody, ReplayPolicy};
pub use future::ResponseFuture;
pub use layer::RetryOn401Layer;
pub use service::RetryOn401;
