//! Retries a request once when the server rejects its bearer token with a 401.
//!
//! [`RetryOn401Layer`] goes outside [`BearerAuthLayer`](crate::BearerAuthLayer), which owns
//! invalidation: when a response to a request that carried its token is `401 Unauthorized`
//! and the `WWW-Authenticate` challenge says the token was bad (RFC 6750 `invalid_token`, a
//! bare `Bearer` challenge, or no challenge at all), the auth layer invalidates exactly that
//! token (compare-and-invalidate, so a hundred concurrent 401s for one token cause one
//! refresh) and marks the response. This layer replays a marked response's request once,
//! through the auth layer, which attaches a new token.
//!
//! It does not retry:
//! - a second 401 (the replay's response is returned as it is);
//! - `insufficient_scope` or `invalid_request` (a new token would not help), nor 403;
//! - a 401 for a request that carried no token of the auth layer's: the caller's own
//!   `Authorization`, an origin outside its `allow_origins`, or no auth layer inside at all;
//! - a 401 for a token that was fetched moments ago to replace a rejected one: the cache
//!   keeps such a token until its backoff has passed, so a replay would carry the same token
//!   (an API that rejects every token costs a few token requests, not one per request);
//! - a request whose body cannot be replayed (the rejected token is still invalidated).
//!
//! Bodies: with [`RetryOn401Layer::new`] the body type must be `Clone` and is cloned before
//! the first send. For streaming bodies, [`RetryOn401Layer::buffered`] records the body as it
//! is sent, up to a limit, and replays the recording; past the limit (in bytes, or in frames:
//! 1024 by default) the 401 is returned untouched. The wrapped service then receives a
//! [`ReplayBody`].
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
mod head;
mod layer;
mod policy;
mod service;

pub use body::ReplayBody;
pub use future::ResponseFuture;
pub use layer::RetryOn401Layer;
pub use policy::{BufferBody, CloneBody, CollectBody, MapBody, ReplayPolicy};
pub use service::RetryOn401;
