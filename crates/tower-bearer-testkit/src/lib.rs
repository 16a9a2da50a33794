//! Test helpers for `tower-bearer`: a mock OAuth 2.0 authorization server and a mock
//! protected API, both in process on real `127.0.0.1` sockets.
//!
//! - [`AuthServer`] is a token endpoint (RFC 6749) with client authentication by `Basic`
//!   header, form parameters, `private_key_jwt` or mutual TLS, four grants
//!   (`client_credentials`; `refresh_token` with rotation and, optionally, reuse detection;
//!   token exchange, RFC 8693; JWT bearer, RFC 7523), revocation (RFC 7009), metadata (RFC
//!   8414), expiry on the tokio clock and injectable [`Fault`]s. It binds tokens to DPoP
//!   keys (RFC 9449) when a request carries a proof; see [DPoP](#dpop).
//! - [`ApiServer`] accepts the `AuthServer`'s access tokens (RFC 6750), DPoP-bound ones
//!   with their proofs, and counts what it authorized and rejected, and why.
//! - [`TestKey`] is an RS256 or ES256 key pair for `private_key_jwt` clients, which the
//!   `AuthServer` verifies.
//! - [`TestPki`] makes a test CA and certificates per test; with it the `AuthServer` serves
//!   HTTPS and requires a client certificate, for mutual-TLS clients (RFC 8705) registered
//!   by subject or, self-signed ([`TestCertificate::self_signed`]), by the certificate.
//! - [`capture_tracing`] records logs to prove no secret reaches them; [`StreamingBody`] is a
//!   body that cannot be replayed (and can count its polls, and lead with empty frames);
//!   [`http_client`] is a plain hyper client.
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
//! # DPoP
//!
//! Both servers verify DPoP proofs (RFC 9449) for real, with their own verifier, so a
//! client's proofs are checked as a strict server would check them. A proof in the `DPoP`
//! header is refused unless it is one compact JWS with `typ` `dpop+jwt`, `alg` `ES256` or
//! `EdDSA`, a public P-256 or Ed25519 `jwk` (no `d`) that verifies the signature, and
//! claims `jti` (not seen before within the window), `htm` (the request method), `htu` (the
//! request URI without query and fragment; scheme and host compared ignoring case) and
//! `iat` (by default within 60 seconds of the server's clock, either way); at the API `ath`
//! (base64url SHA-256 of the access token); and `nonce` where nonces are required. Each
//! failed check has its own [`DpopProblem`], sent as the `error_description`.
//!
//! - **Token endpoint.** On by default: a token request with a valid proof gets
//!   `"token_type": "DPoP"` and a token bound to the proof key's thumbprint
//!   ([`AuthServer::token_jkt`], the `cnf.jkt`; [`jwk_thumbprint`] computes it). A refresh
//!   token issued with it needs a proof from the same key, else `invalid_grant`. A bad
//!   proof is 400 `invalid_dpop_proof`. Requests without a proof get `Bearer` tokens.
//! - **API.** `Authorization: DPoP <token>` with a proof for that request and token whose
//!   key is the one the token is bound to gets 200; a bad proof is 401
//!   `WWW-Authenticate: DPoP error="invalid_dpop_proof", ...`, an unknown, expired,
//!   revoked or wrongly bound token `DPoP error="invalid_token", ...`, and a DPoP-bound
//!   token sent as `Bearer` is `invalid_token` too. Challenges name `algs="ES256 EdDSA"`.
//!   Unbound tokens keep working as `Bearer` tokens.
//! - **Options**, a [`DpopOptions`] for [`AuthServerBuilder::dpop`] or
//!   [`ApiServerBuilder::dpop`]: [`require_proof`](DpopOptions::require_proof) refuses
//!   requests without a proof; [`require_nonce`](DpopOptions::require_nonce) with a
//!   [`DpopNoncePolicy`] (rotation after a number of uses or a period, a grace for the
//!   previous nonce) answers `use_dpop_nonce` with a `DPoP-Nonce` header (400 at the token
//!   endpoint, 401 at the API) and sends `DPoP-Nonce` on success when it rotated;
//!   [`iat_window`](DpopOptions::iat_window) and
//!   [`replay_cache_capacity`](DpopOptions::replay_cache_capacity) tune freshness.
//!   [`AuthServerBuilder::without_dpop`] makes a server that ignores DPoP, as older
//!   servers do.
//! - **Observing.** [`AuthServer::dpop_proofs_received`], [`AuthServer::dpop_refusals`],
//!   [`AuthServer::token_jkt`], [`ApiServer::dpop_requests`], [`ApiServer::refusals`] (an
//!   [`ApiRefusal`] per refused request), and `dpop_nonce` / `rotate_dpop_nonce` on both.
//! - **Your own server.** [`DpopProofVerifier`] makes the same checks for a server a test
//!   writes itself, such as a resource server for another authorization server's tokens.
//!
//! ```
//! use http_body_util::{BodyExt, Full};
//! use tower_bearer_testkit::{http_client, AuthServer, DpopNoncePolicy, DpopOptions, DpopProblem};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let auth = AuthServer::builder()
//!     .dpop(
//!         DpopOptions::new()
//!             .require_proof(true)
//!             .require_nonce(DpopNoncePolicy::new().rotate_after_uses(100)),
//!     )
//!     .start()
//!     .await?;
//! let nonce = auth.dpop_nonce().unwrap(); // what proofs must carry as `nonce`
//!
//! // A token request without a proof is refused, and the reason recorded.
//! let request = http::Request::post(auth.token_url())
//!     .header("content-type", "application/x-www-form-urlencoded")
//!     .body(Full::from("grant_type=client_credentials&client_id=client&client_secret=secret"))?;
//! let response = http_client().request(request).await?;
//! assert_eq!(response.status(), 400);
//! let body: serde_json::Value = serde_json::from_slice(&response.collect().await?.to_bytes())?;
//! assert_eq!(body["error"], "invalid_dpop_proof");
//! assert_eq!(auth.dpop_refusals(), [DpopProblem::Missing]);
//! # assert!(!nonce.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `redis`: [`RedisServer`], [`RedisCluster`] and [`RedisSentinel`], private Redis
//!   deployments on free loopback ports (started from the system's `redis-server`, and
//!   `redis-cli` for a cluster) that can stop, restart and fail over, for testing a fleet
//!   sharing tokens through `tower-bearer-redis`; a cluster or Sentinel group can listen on
//!   TLS ports only ([`RedisCluster::start_tls`], [`RedisSentinel::start_tls`]).

mod api_server;
mod auth_server;
mod client_certificate;
mod dpop;
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

pub use api_server::{ApiRefusal, ApiServer, ApiServerBuilder};
pub use auth_server::{AuthServer, AuthServerBuilder, Echo};
pub use dpop::{jwk_thumbprint, DpopNoncePolicy, DpopOptions, DpopProblem, DpopProofVerifier};
pub use fault::Fault;
pub use http_client::{http_client, HttpClient};
#[cfg(feature = "redis")]
pub use redis_harness::{
    RedisCluster, RedisSentinel, RedisServer, TlsFiles, REDIS_CLI_ENV, REDIS_SERVER_ENV,
};
pub use streaming_body::{PollCount, StreamingBody};
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
