//! Adds `Authorization: Bearer <token>` to requests, with tokens from a [`TokenCache`](crate::TokenCache).
//!
//! [`BearerAuthLayer`] wraps any `Service<http::Request<B>>`. On the usual path the cached
//! token is fresh and attaching it costs an atomic load and a reference-counted clone of a
//! ready header value. When no usable token is cached, the request waits for the cache's
//! single fetch; if that fails, the request is not sent and the service returns the
//! [`FetchError`](crate::FetchError) (boxed; downcast to read it).
//!
//! An `Authorization` header the caller set is left alone. With an
//! [origin allow-list](BearerAuthLayer::allow_origins) the token goes only to those origins.
//!
//! # Where it goes in a stack
//!
//! Put [`RetryOn401Layer`](crate::RetryOn401Layer) outside it, so a rejected token is
//! replaced and the request replayed through this layer. Put both outside tower-http's
//! `FollowRedirectLayer`: then `FollowRedirect` sees the header and its default policy strips
//! it on cross-origin redirects. Placed inside, every hop would get a fresh token, wherever
//! the redirect points.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{source::StaticToken, BearerAuthLayer, RetryOn401Layer, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = TokenCache::new(StaticToken::new("my-token")?);
//! let client = ServiceBuilder::new()
//!     .layer(RetryOn401Layer::new())
//!     .layer(BearerAuthLayer::new(cache))
//!     .service(service_fn(|request: Request<String>| async move {
//!         let auth = request.headers()["authorization"].to_str().unwrap().to_owned();
//!         Ok::<_, Infallible>(Response::new(auth))
//!     }));
//! let response = client.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.body(), "Bearer my-token");
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod origin;
mod rejected;
mod service;

pub use future::ResponseFuture;
pub use layer::BearerAuthLayer;
pub use origin::{InvalidOrigin, Origin};
pub(crate) use rejected::TokenRejected;
pub use service::BearerAuth;
