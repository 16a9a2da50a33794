//! [`tower-bearer`](tower_bearer)'s token cache for [`reqwest`], which is not a tower service.
//!
//! [`BearerAuthMiddleware`] is a [`reqwest_middleware::Middleware`]: add it to a
//! [`ClientWithMiddleware`](reqwest_middleware::ClientWithMiddleware) and each request gets
//! `Authorization: Bearer <token>` from a [`TokenCache`](tower_bearer::TokenCache), with
//! everything the cache does for tower clients: one fetch for any number of concurrent
//! callers, refresh ahead of expiry, backoff while the authorization server is down.
//!
//! It drives the same [`Authorizer`](tower_bearer::authorizer::Authorizer) as the tower
//! pair `RetryOn401Layer` + `BearerAuthLayer`, and behaves like it:
//!
//! - a request that already carries an `Authorization` header is sent as it is, and never
//!   replayed;
//! - with an [origin allow-list](BearerAuthMiddleware::allow_origins) only those origins get
//!   the token;
//! - on a 401 whose challenge says the token is bad (RFC 6750 `invalid_token`, a bare
//!   `Bearer` challenge, or none; see [`token_rejected`](tower_bearer::challenge::token_rejected))
//!   the token that was sent is rejected in the cache, and the request is replayed **once**
//!   with a new token, if its body can be replayed (a streaming body cannot) and the cache
//!   will hand out another token. `insufficient_scope` and 403 are returned as they are;
//! - a 401 from another origin than the request's (reqwest followed a redirect there, and
//!   drops `Authorization` when the origin changes) is that origin's answer to a request
//!   without our token: returned as it is, the token kept, the request not replayed.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use tower_bearer::{source::EnvToken, TokenCache};
//! use tower_bearer_reqwest::BearerAuthMiddleware;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = TokenCache::new(EnvToken::new("API_TOKEN"));
//! let auth = BearerAuthMiddleware::new(cache).allow_origins(["https://api.example.com"])?;
//! let client = ClientBuilder::new(reqwest::Client::new()).with(auth).build();
//! let response = client.get("https://api.example.com/v1/things").send().await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! # When no token can be had
//!
//! If the cache cannot fetch a token, the request is not sent and `send` returns
//! [`reqwest_middleware::Error::Middleware`] wrapping the [`FetchError`](tower_bearer::FetchError).
//! [`fetch_error`] reads it back (it is `anyhow`'s `downcast_ref` on that variant):
//!
//! ```
//! use reqwest_middleware::ClientBuilder;
//! use tower_bearer::{source, FetchError, TokenCache};
//! use tower_bearer_reqwest::{fetch_error, BearerAuthMiddleware};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let cache = TokenCache::new(source::from_fn(|| async {
//!     Err(FetchError::permanent("the client secret was rejected"))
//! }));
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(BearerAuthMiddleware::new(cache))
//!     .build();
//! // Nothing listens on port 9 of the loopback: no request is sent anyway.
//! let error = client.get("http://127.0.0.1:9/").send().await.unwrap_err();
//! let fetch = fetch_error(&error).expect("the cache's error");
//! assert!(fetch.is_permanent());
//! # }
//! ```
//!
//! # TLS
//!
//! This crate turns on no reqwest features, so it picks no TLS stack for you: enable the
//! one you want on your own `reqwest` dependency (`rustls`, or `rustls-no-provider` with a
//! crypto provider you install).
//!
//! # Order among other middleware
//!
//! Middleware added before this one sees each request once, before the token is attached;
//! middleware added after it (a retry middleware, a logger) sees the request with the token,
//! and the replay too. A redirect followed by reqwest's own redirect policy happens below
//! all middleware; reqwest drops `Authorization` from a hop that changes host, port or
//! scheme.
//!
//! # Features
//!
//! - `dpop`: DPoP-bound tokens (RFC 9449). Each request with such a token carries a proof
//!   for its method and URL with the origin's latest nonce; a `DPoP-Nonce` header is kept,
//!   a `DPoP error="use_dpop_nonce"` 401 is replayed once with the new nonce (the token
//!   stays), and `DPoP error="invalid_token"` drops the token and replays once with a new
//!   one. The same as `tower-bearer`'s `dpop` feature, which turns it on wherever it is on.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod middleware;

pub use middleware::{fetch_error, BearerAuthMiddleware};
pub use tower_bearer::auth::InvalidOrigin;
