//! OAuth 2.0 token sources for [`tower-bearer`](tower_bearer).
//!
//! [`ClientCredentials`] gets tokens with the client credentials grant (RFC 6749 section
//! 4.4): a service authenticating as itself with a client id and secret. It is a
//! [`TokenSource`](tower_bearer::TokenSource): put it in a
//! [`TokenCache`](tower_bearer::TokenCache) and the cache fetches once for all callers,
//! refreshes ahead of expiry and backs off when the authorization server has trouble.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
//! use tower_bearer_oauth2::{ClientAuth, ClientCredentials};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let source = ClientCredentials::builder(
//!     "https://auth.example.com/oauth2/token",
//!     "billing-service",
//!     std::env::var("BILLING_CLIENT_SECRET")?,
//! )
//! .client_auth(ClientAuth::ClientSecretBasic) // the default
//! .scope("invoices:read invoices:write")
//! .build()?;
//!
//! let client = ServiceBuilder::new()
//!     .layer(RetryOn401Layer::new())
//!     .layer(BearerAuthLayer::new(TokenCache::new(source)))
//!     .service(service_fn(|request: Request<String>| async move {
//!         // Your HTTP client goes here, e.g. hyper-util's `Client`.
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! let response = client
//!     .oneshot(Request::get("https://api.example.com/invoices").body(String::new())?)
//!     .await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```
//!
//! # What it does for you
//!
//! - Client authentication per RFC 6749 section 2.3.1: `client_secret_basic` (default), with
//!   the id and secret form-urlencoded before base64 as the RFC says, or `client_secret_post`.
//! - Scope, `audience`, RFC 8707 `resource` and extra parameters.
//! - Token responses per section 5.1: `token_type` in any case, `expires_in` as a number or a
//!   numeric string, `refresh_token`, `scope`. Error responses per section 5.2 become an
//!   [`OAuthError`] with [`is_invalid_client`](OAuthError::is_invalid_client) and friends.
//! - Transient failures (network, timeout, 5xx, 429, `Retry-After`) are told apart from
//!   permanent ones (wrong secret, unknown scope), so the cache knows whether to retry.
//! - Transient failures are retried inside the fetch, per a [`RetryPolicy`]: by default up
//!   to 3 attempts with exponential backoff and jitter from 100 ms, waiting at least as long
//!   as the server's `Retry-After` (seconds or HTTP date) up to 10 s. A longer `Retry-After`
//!   ends the fetch with a transient error that carries it, so the cache backs off for that
//!   long instead of holding callers. `invalid_client`, `invalid_grant`,
//!   `unauthorized_client`, `invalid_scope` and other 4xx answers (except 429) are never
//!   retried. Each retry logs a `WARN` event with the attempt number and the reason.
//! - Responses are read with a size limit and a timeout per attempt; a fetch's total time is
//!   bounded by `max_attempts × timeout +` [`RetryPolicy::max_total_wait`].
//! - A plain `http://` token URL is refused unless the host is loopback or you opt in.
//! - The client secret and tokens never appear in `Debug`, `Display`, errors or logs.
//!
//! # Features
//!
//! - `hyper-client` (default): the default HTTP client, hyper-util's pooled client speaking
//!   HTTP/1.1 over rustls with the `ring` provider (no C compiler or cmake needed beyond
//!   ring's own build) and the Mozilla root certificates compiled in by `webpki-roots`, so
//!   it behaves the same in a scratch container as on a laptop. For the operating system's
//!   trust store, a proxy or a custom CA, turn the feature off and pass your own client to
//!   [`http_client`](ClientCredentialsBuilder::http_client).
//! - `full`: everything.

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod client_auth;
mod client_credentials;
mod discovery;
mod endpoint;
mod error;
mod http_client;
mod refresh_token;
mod response;
mod retry;
mod revocation;
mod settings;
mod token_url;

pub use client_auth::ClientAuth;
pub use client_credentials::{ClientCredentials, ClientCredentialsBuilder};
pub use discovery::{AuthServerMetadata, Discovery, DiscoveryError};
pub use error::{BuildError, EndpointError, OAuthError};
pub use refresh_token::{RefreshToken, RefreshTokenBuilder};
pub use retry::RetryPolicy;
pub use revocation::{RevocationError, TokenTypeHint};
