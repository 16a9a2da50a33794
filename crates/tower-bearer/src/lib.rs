//! Outbound bearer-token auth for any HTTP client built on [`tower`](https://docs.rs/tower).
//!
//! Drop [`BearerAuthLayer`] into a `ServiceBuilder` and each request gets
//! `Authorization: Bearer <token>`, with tokens from a pluggable [`TokenSource`] held in a
//! [`TokenCache`] that:
//!
//! - fetches **once** for any number of concurrent callers (single flight, on its own task);
//! - refreshes **ahead of expiry** in the background while callers keep the valid token;
//! - keeps serving a still-valid token while the authorization server is down, and **backs
//!   off** instead of hammering it;
//! - costs two atomic loads and a reference-counted header clone per request when the token
//!   is fresh: no lock, no clock read, no allocation, no await.
//!
//! On a 401 that rejects the token (RFC 6750 `invalid_token`, or no error code) the auth layer
//! invalidates exactly the token it attached, so the next request gets a new one; tokens
//! that keep being rejected right after they were fetched back off instead of costing a
//! token request each. [`RetryOn401Layer`] goes outside it and replays such a request once.
//! It never loops and never replays a body it cannot.
//!
//! Both layers' decisions live in the [`authorizer`] module, which the reqwest adapter
//! drives too, so every transport behaves the same.
//!
//! Secrets never show up in `Debug`, `Display`, errors or logs, and the header value is
//! marked sensitive.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{source::EnvToken, BearerAuthLayer, RetryOn401Layer, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # std::env::set_var("API_TOKEN", "from-the-environment");
//! let cache = TokenCache::new(EnvToken::new("API_TOKEN"));
//! let client = ServiceBuilder::new()
//!     .layer(RetryOn401Layer::new())
//!     .layer(BearerAuthLayer::new(cache))
//!     .service(service_fn(|request: Request<String>| async move {
//!         // Your HTTP client goes here, e.g. hyper-util's `Client`.
//!         Ok::<_, Infallible>(Response::new(format!("{:?}", request.headers()["authorization"])))
//!     }));
//! let response = client.oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.body(), "Sensitive");
//! # Ok(())
//! # }
//! ```
//!
//! OAuth 2.0 grants (client credentials, refresh token, ...) live in the
//! `tower-bearer-oauth2` crate, so a user of a static or environment token compiles no HTTP
//! client.
//!
//! # Features
//!
//! - `retry` (default): [`RetryOn401Layer`] and the replayable request body. Adds the
//!   `http-body` dependency.
//! - `metrics`: counters and a histogram through the [`metrics`](https://docs.rs/metrics)
//!   facade (fetches by outcome, fetch latency, waits, invalidations, store fallbacks);
//!   the fresh path records nothing. See [`TokenCache::health`] for a readiness signal.
//! - `follow-redirect` (default): the auth layer reads the final URI tower-http's
//!   `FollowRedirect` (0.7) records on a response, so that a 401 from another origin after a
//!   redirect is never taken for a rejection of the token. Adds the `tower-http` dependency
//!   (its `follow-redirect` feature only).
//! - `dpop`: the `dpop` module, DPoP (RFC 9449) keys and per-request proofs. Adds the
//!   `ring` and `base64` dependencies.
//! - `oauth2-crate`: `source::oauth2_crate`, a [`TokenSource`] over a client of the `oauth2`
//!   crate (5.x), whose tokens and errors it converts. Adds the `oauth2` and `serde_json`
//!   dependencies.
//! - `full`: everything.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod authorizer;
mod backoff;
pub mod cache;
pub mod challenge;
#[cfg(feature = "dpop")]
pub mod dpop;
mod error;
mod metrics;
#[cfg(feature = "retry")]
pub mod retry;
pub mod source;
pub mod store;
mod sync;
mod token;

pub use auth::{BearerAuth, BearerAuthLayer};
pub use backoff::Backoff;
pub use cache::{CacheConfig, CacheStats, TokenCache};
pub use error::{BoxError, FetchError};
#[cfg(feature = "retry")]
pub use retry::{RetryOn401, RetryOn401Layer};
pub use source::TokenSource;
pub use token::{InvalidToken, Token, TokenBuilder, TokenType};

/// The `secrecy` crate, which [`Token::secret`] and [`Token::refresh_token`] return values
/// of: `use tower_bearer::ExposeSecret;` reads a token's value without adding the crate.
pub use secrecy;
pub use secrecy::ExposeSecret;
