//! Adds `Authorization: Bearer <token>` to requests, with tokens from a [`TokenCache`](crate::TokenCache).
//!
//! [`BearerAuth`] is tower's driver of the [`Authorizer`](crate::authorizer::Authorizer),
//! which decides what each request gets and what each response says about the token; the
//! reqwest crate's middleware drives the same one.
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
//! # DPoP
//!
//! With the `dpop` feature, a token bound to a `dpop::DpopKey` (RFC 9449; see
//! `TokenBuilder::dpop_key`) goes out as
//! `Authorization: DPoP <token>` with a `DPoP` proof signed for each request: its method,
//! its URI without query and fragment, the token's hash, and the latest nonce the origin
//! sent. Responses' `DPoP-Nonce` headers are kept; a 401 whose `DPoP` challenge says
//! `use_dpop_nonce` is marked for one replay (the token stays), and one that says
//! `invalid_token` drops the token. A request with a relative URI cannot name its target in
//! a proof, and fails with a `dpop::DpopError` without being sent.
//!
//! # Where it goes in a stack
//!
//! Put [`RetryOn401Layer`](crate::RetryOn401Layer) outside it, so a rejected token is
//! replaced and the request replayed through this layer.
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
//!
//! # Redirects
//!
//! Put both layers outside tower-http's `FollowRedirectLayer`, with a policy that follows
//! only same-origin redirects. The header is then added once, to the caller's request;
//! same-origin hops keep it, and a redirect to another origin (another host or port, or
//! `https` to `http`) comes back to the caller unfollowed, so the token never leaves the
//! origin it was sent to.
//!
//! With tower-http 0.7, the default policy (`FollowRedirectLayer::new()`) in the same place
//! is safe too, and follows redirects to other origins: it strips `Authorization` from the
//! hop that leaves the origin and never puts it back on a later one. With the default
//! `follow-redirect` feature this layer reads the final URI `FollowRedirect` records
//! (`RequestUri`), so a 401 from another origin is never taken for a rejection of the token:
//! the token stays cached and the retry layer does not replay. On tower-http 0.6, keep
//! `SameOrigin`: its default policy puts the token back on a same-origin hop after one that
//! left, and its `RequestUri` is another type, which this layer does not read.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{header, Request, Response, StatusCode};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{source::StaticToken, BearerAuthLayer, RetryOn401Layer, TokenCache};
//! use tower_http::follow_redirect::policy::{Limited, PolicyExt, SameOrigin};
//! use tower_http::follow_redirect::FollowRedirectLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = TokenCache::new(StaticToken::new("my-token")?);
//! let client = ServiceBuilder::new()
//!     .layer(RetryOn401Layer::new())
//!     .layer(BearerAuthLayer::new(cache).allow_origins(["https://api.example.com"])?)
//!     .layer(FollowRedirectLayer::with_policy(
//!         Limited::default().and::<_, (), ()>(SameOrigin::new()),
//!     ))
//!     .service(service_fn(|request: Request<String>| async move {
//!         // `/old` moved to `/new`; `/away` moved to another host.
//!         let location = match request.uri().path() {
//!             "/old" => "/new",
//!             "/away" => "https://elsewhere.example/",
//!             _ => {
//!                 let auth = request.headers()["authorization"].to_str().unwrap().to_owned();
//!                 return Ok::<_, Infallible>(Response::new(auth));
//!             }
//!         };
//!         let mut response = Response::new(String::new());
//!         *response.status_mut() = StatusCode::FOUND;
//!         response.headers_mut().insert(header::LOCATION, location.parse().unwrap());
//!         Ok(response)
//!     }));
//!
//! let moved = Request::get("https://api.example.com/old").body(String::new())?;
//! assert_eq!(client.clone().oneshot(moved).await?.body(), "Bearer my-token");
//! let away = Request::get("https://api.example.com/away").body(String::new())?;
//! assert_eq!(client.oneshot(away).await?.status(), StatusCode::FOUND);
//! # Ok(())
//! # }
//! ```
//!
//! [`allow_origins`](BearerAuthLayer::allow_origins) is defence in depth here: in this
//! order it checks only the caller's request, since the hops never pass through this
//! layer. To follow redirects to other hosts, put `FollowRedirectLayer` outside both
//! layers instead, **with** `allow_origins`: every hop then passes through this layer,
//! which attaches the token only to the origins listed. Without the list, that order sends
//! the token to every hop, wherever it points.

mod future;
mod layer;
mod rejected;
mod service;

pub use crate::authorizer::{InvalidOrigin, Origin, RelativeUri};
pub use future::ResponseFuture;
pub use layer::BearerAuthLayer;
#[cfg(feature = "retry")]
pub(crate) use rejected::TokenRejected;
pub use service::{BearerAuth, CloneService};
