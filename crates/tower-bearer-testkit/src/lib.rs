//! Test helpers for `tower-bearer`: a mock OAuth 2.0 authorization server and a mock
//! protected API, both in process on real `127.0.0.1` sockets.
//!
//! - [`AuthServer`] is a token endpoint (RFC 6749) with client authentication by `Basic`
//!   header, form parameters, `private_key_jwt` or mutual TLS, four grants
//!   (`client_credentials`; `refresh_token` with rotation and, optionally, reuse detection;
//!   token exchange, RFC 8693; JWT bearer, RFC 7523), revocation (RFC 7009), metadata (RFC
//!   8414), expiry on the tokio clock and injectable [`Fault`]s.
//! - [`ApiServer`] accepts the `AuthServer`'s access tokens (RFC 6750) and counts what it
//!   authorized and rejected.
//! - [`TestKey`] is an RS256 or ES256 key pair for `private_key_jwt` clients, which the
//!   `AuthServer` verifies.
//! - [`TestPki`] makes a test CA and certificates per test; with it the `AuthServer` serves
//!   HTTPS and requires a client certificate, for mutual-TLS clients (RFC 8705) registered
//!   by subject or, self-signed ([`TestCertificate::self_signed`]), by the certificate.
//! - [`capture_tracing`] records logs to prove no secret reaches them; [`StreamingBody`] is a
//!   body that cannot be replayed; [`http_client`] is a plain hyper client.
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use tower_bearer_testkit::{http_client, ApiServer, AuthServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AuthServer::start().await?;
//! let api = ApiServer::start(&auth).await?;
//! let client = http_client();
//!
//! let token_request = http::Request::post(auth.token_url())
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     // base64("client:secret")
//!     .header("authorization", "Basic Y2xpZW50OnNlY3JldA==")
//!     .body(Full::from("grant_type=client_credentials"))?;
//! let token_response = client.request(token_request).await?;
//! let body: serde_json::Value =
//!     serde_json::from_slice(&token_response.collect().await?.to_bytes())?;
//! let access_token = body["access_token"].as_str().unwrap();
//!
//! let api_request = http::Request::get(format!("{}/things", api.url()))
//!     .header("authorization", format!("Bearer {access_token}"))
//!     .body(Full::default())?;
//! assert_eq!(client.request(api_request).await?.status(), 200);
//! assert_eq!((auth.tokens_issued(), api.authorized()), (1, 1));
//! # Ok(())
//! # }
//! ```
//!
//! The servers need a tokio runtime with I/O and time enabled, which `#[tokio::test]`
//! provides; they stop when their last handle is dropped.
//!
//! # Features
//!
//! - `redis`: [`RedisServer`], [`RedisCluster`] and [`RedisSentinel`], private Redis
//!   deployments on free loopback ports (started from the system's `redis-server`, and
//!   `redis-cli` for a cluster) that can stop, restart and fail over, for testing a fleet
//!   sharing tokens through `tower-bearer-redis`.

mod api_server;
mod auth_server;
mod client_certificate;
mod fault;
mod http_client;
#[cfg(feature = "redis")]
mod redis_harness;
mod response;
mod server;
mod streaming_body;
mod test_key;
mod test_pki;
mod token_request;
mod token_store;
mod tracing_capture;

pub use api_server::ApiServer;
pub use auth_server::{AuthServer, AuthServerBuilder, Echo};
pub use fault::Fault;
pub use http_client::{http_client, HttpClient};
#[cfg(feature = "redis")]
pub use redis_harness::{
    RedisCluster, RedisSentinel, RedisServer, TlsFiles, REDIS_CLI_ENV, REDIS_SERVER_ENV,
    REQUIRE_REDIS_ENV,
};
pub use streaming_body::StreamingBody;
pub use test_key::TestKey;
pub use test_pki::{HttpsClient, TestCertificate, TestPki};
pub use token_request::{ClientAuthMethod, TokenRequest};
pub use tracing_capture::{capture_tracing, TracingCapture};

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, carrying on past poisoning: a test that panicked while holding the lock
/// must not turn every later assertion into a second, confusing panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
