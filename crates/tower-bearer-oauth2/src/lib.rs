//! OAuth 2.0 token sources for [`tower-bearer`](tower_bearer).
//!
//! Four [`TokenSource`](tower_bearer::TokenSource)s talk to an authorization server's token
//! endpoint:
//!
//! - [`ClientCredentials`], the client credentials grant (RFC 6749 section 4.4): a service
//!   authenticating as itself.
//! - [`RefreshToken`], the refresh token grant (section 6): access tokens on behalf of a user
//!   who signed in once, with refresh token rotation and a hook to persist each new refresh
//!   token.
//! - [`TokenExchange`], token exchange (RFC 8693): trading a token the workload already has,
//!   such as a Kubernetes projected service account token read by a
//!   [`FileToken`](tower_bearer::source::FileToken) for each exchange, for one another API
//!   accepts, with `requested_token_type` and an optional actor token; [`token_type`] has
//!   the RFC's token type URIs.
//! - [`JwtBearer`], the JWT bearer grant (RFC 7523 section 2.1): a signed JWT is the grant,
//!   signed here with a `PrivateKey` (fresh `jti`, short `exp`) or by your own closure
//!   (a KMS), with or without client authentication.
//!
//! Each is configured from values you compose:
//!
//! - an [`Endpoint`]: where and how to talk to the server (token and revocation URLs, the
//!   [`HttpSettings`]: the [`HttpClient`] and its connection pool, timeout, size limit,
//!   plain `http://` or not; the [`RetryPolicy`]), built once per server and shared by
//!   every source on it; [`Discovery`] finds it from the issuer URL (RFC 8414, OpenID
//!   Connect Discovery), and hands its own [`HttpSettings`] on to it;
//! - a [`ClientAuth`]: who the client is and how it authenticates (a secret, a private key,
//!   a TLS client certificate, or none), and the DPoP key it proves possession of, if any
//!   ([`ClientAuth::dpop`], see [DPoP](#dpop));
//! - the grant's own parameters, and the [`TokenParams`] (scope, audience, resources, extra
//!   parameters) every grant takes.
//!
//! Put a source in a [`TokenCache`](tower_bearer::TokenCache) and the cache fetches once for
//! all callers, refreshes ahead of expiry and backs off when the authorization server has
//! trouble. The sources revoke what they hold (RFC 7009) when you are done.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
//! use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let auth = tower_bearer_testkit::AuthServer::builder().client("billing-service", "s3cret").start().await?;
//! # std::env::set_var("BILLING_CLIENT_SECRET", "s3cret");
//! let token_url = "https://auth.example.com/oauth2/token";
//! # let token_url = auth.token_url();
//! let endpoint = Endpoint::builder(token_url).build()?;
//! let client = ClientAuth::secret_basic(
//!     "billing-service",
//!     std::env::var("BILLING_CLIENT_SECRET")?,
//! )?;
//! let source = ClientCredentials::builder(endpoint, client)
//!     .params(TokenParams::new().scope("invoices:read invoices:write"))
//!     .build()?;
//!
//! let client = ServiceBuilder::new()
//!     .layer(RetryOn401Layer::new())
//!     .layer(BearerAuthLayer::new(TokenCache::new(source)))
//!     .service(service_fn(|request: Request<String>| async move {
//!         // Your HTTP client goes here, e.g. hyper-util's `Client`.
//! #       assert!(request.headers()["authorization"].to_str().unwrap().starts_with("Bearer "));
//!         Ok::<_, Infallible>(Response::new(String::new()))
//!     }));
//! let response = client
//!     .oneshot(Request::get("https://api.example.com/invoices").body(String::new())?)
//!     .await?;
//! # assert_eq!(response.status(), 200);
//! # assert_eq!(auth.tokens_issued(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # What it does for you
//!
//! - Client authentication per RFC 6749 section 2.3.1, the same for every grant:
//!   `client_secret_basic` ([`ClientAuth::secret_basic`]), with the id and secret
//!   form-urlencoded before base64 as the RFC says, or `client_secret_post`
//!   ([`ClientAuth::secret_post`]), or whichever of the two the server takes
//!   ([`ClientAuth::secret_auto`]: Basic, then post once after a 400 or 401
//!   `invalid_client`, the first that works remembered; from metadata,
//!   [`AuthServerMetadata::client_secret_auth`] picks from the methods the server
//!   lists); none ([`ClientAuth::public`]) where the grant allows
//!   it (token exchange, JWT bearer); `private_key_jwt` (RFC 7523 section 2.2) with an
//!   RS256 or ES256 `PrivateKey`: a fresh assertion per request (`iss` = `sub` = client
//!   id, `aud` = the token URL unless configured, random `jti`, one-minute `exp`); or
//!   mutual TLS (RFC 8705): [`ClientAuth::tls_client_auth`] with a certificate from a PKI
//!   the server trusts, or [`ClientAuth::self_signed_tls_client_auth`], where the request
//!   carries only `client_id` and the TLS client certificate authenticates (see
//!   [Mutual TLS](#mutual-tls)). A client id or secret that is empty is refused when the
//!   [`ClientAuth`] is made.
//! - Scope, `audience`, RFC 8707 `resource` and extra parameters ([`TokenParams`]).
//! - Token responses per section 5.1: `token_type` in any case, `expires_in` as a number or a
//!   numeric string, `refresh_token`, `scope`. Token exchange responses must also carry
//!   `issued_token_type` (RFC 8693 section 2.2.1); a `token_type` of `N_A` is taken as
//!   `Bearer` only for an issued access token or JWT, and refused with advice otherwise.
//!   Error responses per section 5.2 become an [`OAuthError`] with
//!   [`is_invalid_client`](OAuthError::is_invalid_client) and friends.
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
//! - Refresh token rotation: a new refresh token replaces the old one before the fetch
//!   returns, the [`on_rotate`](RefreshTokenBuilder::on_rotate) hook runs once per rotation,
//!   and refreshes are serialized so none presents a rotated-away token. Refreshes retry only
//!   what the server cannot have processed ([`RetryPolicy::for_refresh_tokens`]), as a
//!   replayed refresh trips reuse detection. A fleet shares one refresh token through a
//!   [`TokenStore`](tower_bearer::store::TokenStore) with
//!   [`share_through`](RefreshTokenBuilder::share_through): compare-and-set, so an older
//!   refresh token never overwrites a newer one.
//! - Revocation (RFC 7009) with the same client authentication:
//!   [`ClientCredentials::revoke_cached`] at shutdown revokes the cached access token,
//!   [`RefreshToken::revoke_refresh_token`] ends a user's grant.
//! - Discovery: [`Discovery::fetch`] reads the RFC 8414 metadata (or the OpenID Connect
//!   document), insists the `issuer` is exactly the one asked for (RFC 8414 section 3.3),
//!   and [`AuthServerMetadata::endpoint`] takes the token and revocation endpoints, and
//!   [`AuthServerMetadata::client_secret_auth`] a client secret method the server lists.
//!   With mutual TLS, the server's `mtls_endpoint_aliases` (RFC 8705 section 5) replace
//!   the token and revocation endpoints.
//! - DPoP (RFC 9449) for every grant, with server nonces: see [DPoP](#dpop).
//! - A plain `http://` URL is refused unless the host is loopback or you opt in.
//! - The client secret, refresh tokens, access tokens, subject and actor tokens and JWT bearer
//!   assertions never appear in `Debug`, `Display`, errors or logs.
//!
//! # One endpoint, many sources
//!
//! An [`Endpoint`] is cheap to clone, and clones share its [`HttpClient`]'s connection
//! pool. Build one per authorization server and give a clone to each source on it. An
//! endpoint built from [`Discovery`]'s metadata talks to the server with the
//! [`HttpSettings`] discovery used, over the same client, so metadata and tokens come over
//! one pool:
//!
//! ```
//! use tower_bearer::{TokenCache, TokenSource};
//! use std::time::Duration;
//! use tower_bearer_oauth2::{
//!     ClientAuth, ClientCredentials, Discovery, HttpSettings, RefreshToken, TokenParams,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let auth = tower_bearer_testkit::AuthServer::builder().client("billing-service", "s3cret").start().await?;
//! # std::env::set_var("BILLING_SECRET", "s3cret");
//! # std::env::set_var("DESKTOP_REFRESH_TOKEN", "rt-1");
//! let issuer = "https://auth.example.com";
//! # let issuer = auth.url();
//! let metadata = Discovery::new()
//!     .http_settings(HttpSettings::new().timeout(Duration::from_secs(10)))
//!     .fetch(&issuer)
//!     .await?;
//! // The discovery's client, pool and 10 s timeout.
//! let endpoint = metadata.endpoint().build()?;
//!
//! let service = ClientCredentials::builder(
//!     endpoint.clone(),
//!     metadata.client_secret_auth("billing-service", std::env::var("BILLING_SECRET")?)?,
//! )
//! .params(TokenParams::new().scope("invoices:read"))
//! .build()?;
//! let user = RefreshToken::builder(
//!     endpoint,
//!     ClientAuth::public("desktop-app"),
//!     std::env::var("DESKTOP_REFRESH_TOKEN")?,
//! )
//! .build()?;
//! # service.fetch().await?;
//! # assert_eq!((auth.metadata_requests(), auth.tokens_issued()), (1, 1));
//! # let _ = (TokenCache::new(service), TokenCache::new(user));
//! # Ok(())
//! # }
//! ```
//!
//! # Shutdown
//!
//! `Drop` cannot wait for a request, so revoking is an explicit, async step:
//!
//! ```
//! use tower_bearer::TokenCache;
//! use tower_bearer_oauth2::{ClientCredentials, Discovery};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let auth = tower_bearer_testkit::AuthServer::builder().client("billing-service", "s3cret").start().await?;
//! # std::env::set_var("BILLING_CLIENT_SECRET", "s3cret");
//! let issuer = "https://auth.example.com";
//! # let issuer = auth.url();
//! let metadata = Discovery::new().fetch(&issuer).await?;
//! let client =
//!     metadata.client_secret_auth("billing-service", std::env::var("BILLING_CLIENT_SECRET")?)?;
//! let source = ClientCredentials::builder(metadata.endpoint().build()?, client).build()?;
//! let cache = TokenCache::new(source.clone());
//!
//! // ... serve requests with `BearerAuthLayer::new(cache.clone())` until asked to stop ...
//! # cache.token().await?;
//!
//! match source.revoke_cached(&cache).await {
//!     Ok(revoked) => println!("access token revoked: {revoked}"),
//!     Err(error) => eprintln!("could not revoke the access token: {error}"),
//! }
//! # assert_eq!(auth.tokens_revoked(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Mutual TLS
//!
//! With [`ClientAuth::tls_client_auth`] or [`ClientAuth::self_signed_tls_client_auth`]
//! (RFC 8705 section 2) the client sends no secret: the transport presents a client
//! certificate in the TLS handshake and the server recognises the client by it (its subject
//! or SAN for `tls_client_auth`, the registered certificate itself for the self-signed
//! variant). The certificate belongs to the endpoint's [`HttpClient`], as the connections
//! it pools are made with it: the default client presents the `TlsClientIdentity` given in
//! a `ClientTls` (which can also add the roots of a private CA) to
//! `HttpClient::with_tls`, or your own client ([`HttpClient::from_service`]) presents it.
//! Building a grant with mutual TLS over a default client without an identity fails with
//! [`BuildError::is_invalid_tls`]. A server that refuses the certificate in the handshake
//! shows up as a transient transport error whose message says so; a certificate the server
//! does not accept for this client is an `invalid_client` [`OAuthError`], which is never
//! retried.
//!
//! ```
//! # #[cfg(feature = "hyper-client")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! use tower_bearer::TokenCache;
//! use tower_bearer_oauth2::{
//!     AuthMethod, ClientAuth, ClientCredentials, ClientTls, Endpoint, HttpClient,
//!     TlsClientIdentity,
//! };
//!
//! # let pki = tower_bearer_testkit::TestPki::new();
//! # let certificate = pki.client_certificate("billing-service");
//! # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # std::fs::write(dir.join("tls.crt"), certificate.certificate_pem())?;
//! # std::fs::write(dir.join("tls.key"), certificate.private_key_pem())?;
//! # std::fs::write(dir.join("auth-ca.crt"), pki.ca_pem())?;
//! # let auth = tower_bearer_testkit::AuthServer::builder()
//! #     .https(&pki)
//! #     .tls_client("billing-service", certificate.subject_dn())
//! #     .start()
//! #     .await?;
//! let etc = std::path::Path::new("/etc/billing");
//! let token_url = "https://mtls.auth.example.com/oauth2/token";
//! # let (etc, token_url) = (dir.as_path(), auth.token_url());
//! let tls = ClientTls::new()
//!     .identity(TlsClientIdentity::from_pem(
//!         std::fs::read(etc.join("tls.crt"))?,
//!         std::fs::read(etc.join("tls.key"))?,
//!     )?)
//!     .root_certificates_pem(std::fs::read(etc.join("auth-ca.crt"))?)?;
//! let endpoint = Endpoint::builder(token_url)
//!     .http_client(HttpClient::with_tls(tls)?)
//!     .build()?;
//! // ClientAuth::self_signed_tls_client_auth for a self-signed certificate.
//! let client = ClientAuth::tls_client_auth("billing-service")?;
//! let source = ClientCredentials::builder(endpoint, client).build()?;
//! assert_eq!(source.client_auth().method(), AuthMethod::TlsClientAuth);
//! let cache = TokenCache::new(source);
//! # cache.token().await?;
//! # assert_eq!(auth.tokens_issued(), 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "hyper-client"))]
//! # fn main() {}
//! ```
//!
//! # DPoP
//!
//! With DPoP (RFC 9449) the server binds the tokens it issues to a key the client holds,
//! so a token that leaks is of no use without the key. Give the client a
//! [`DpopKey`](tower_bearer::dpop::DpopKey) with [`ClientAuth::dpop`]: every grant made
//! with that client (client credentials, refresh token, token exchange, JWT bearer) then
//! sends a `DPoP` proof with each token request (`htm` `POST`, `htu` the token URL, no
//! `ath`), and its tokens are [`TokenType::DPoP`](tower_bearer::TokenType::DPoP) tokens
//! that carry the key, so `tower-bearer`'s auth layer sends `Authorization: DPoP` and a
//! proof with each request.
//!
//! ```
//! use tower_bearer::dpop::DpopKey;
//! use tower_bearer::TokenCache;
//! use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let auth = tower_bearer_testkit::AuthServer::builder().client("billing-service", "s3cret").start().await?;
//! # std::env::set_var("CLIENT_SECRET", "s3cret");
//! # let dir = std::env::temp_dir().join(format!("tower-bearer-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # std::fs::write(dir.join("dpop-key.pem"), tower_bearer_testkit::TestKey::es256().pkcs8_pem())?;
//! let key_path = "/run/secrets/dpop-key.pem";
//! let token_url = "https://auth.example.com/oauth2/token";
//! # let (key_path, token_url) = (dir.join("dpop-key.pem"), auth.token_url());
//! // Keep the key as long as its tokens: load it, or generate one per process.
//! let key = DpopKey::from_pkcs8_pem(&std::fs::read_to_string(key_path)?)?;
//! let client = ClientAuth::secret_basic("billing-service", std::env::var("CLIENT_SECRET")?)?
//!     .dpop(key);
//! let endpoint = Endpoint::builder(token_url).build()?;
//! let cache = TokenCache::new(ClientCredentials::builder(endpoint, client).build()?);
//! let token = cache.token().await?;
//! assert_eq!(token.header_value().to_str()?.split(' ').next(), Some("DPoP"));
//! # assert_eq!(auth.dpop_proofs_received(), 1);
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! - **Nonces** (RFC 9449 section 8). A server that wants its own nonce in proofs answers
//!   400 `use_dpop_nonce` with one in `DPoP-Nonce`. The request is then sent once more
//!   with a proof that carries it; that second request is part of the same attempt, not
//!   one of the [`RetryPolicy`]'s. The `DPoP-Nonce` of every token endpoint response, a
//!   success too, is kept on the key, per origin and for all its clones, so later proofs
//!   carry the latest nonce and a server that rotates them costs one extra request per
//!   rotation at most. A second `use_dpop_nonce` right after the retry ends the fetch with
//!   a transient error (the cache backs off); the request never loops.
//! - **Token types** (RFC 9449 section 5). When a proof was sent, a `token_type` other
//!   than `DPoP` is a permanent error ([`EndpointError::is_dpop_downgrade`]): the server
//!   ignored the proof, and the bearer token is never used. Without a key, a `DPoP` token
//!   is a permanent error ([`EndpointError::is_dpop_key_missing`]) that says to configure
//!   one, and so is a server that requires proofs (`invalid_dpop_proof`,
//!   [`OAuthError::is_invalid_dpop_proof`]).
//! - **Refresh tokens.** A server may bind the refresh token to the key too (RFC 9449
//!   section 5 has it do so for public clients); it then works with no other key, so keep
//!   the key with the refresh token, and give the replicas that share one the same key.
//!   [`ClientCredentials::store_key`] includes the key's thumbprint, so replicas with
//!   different keys never share access tokens they could not send.
//! - Proofs and nonces never appear in errors or logs.
//!
//! # Migrating from 0.1's constructors
//!
//! The URL, client and settings that 0.1 passed to a constructor per combination are now
//! three values: an [`Endpoint`] (built once, shared), a [`ClientAuth`], and the grant's
//! parameters. `endpoint` below is `Endpoint::builder(token_url).build()?`.
//!
//! | 0.1 | now |
//! | --- | --- |
//! | `ClientCredentials::builder(url, id, secret)` | `ClientCredentials::builder(endpoint, ClientAuth::secret_basic(id, secret)?)` |
//! | `.client_auth(ClientAuth::ClientSecretPost)` | `ClientAuth::secret_post(id, secret)?` |
//! | `ClientCredentials::builder_with_private_key(url, id, key)` (also on `RefreshToken`, `TokenExchange`) | `ClientCredentials::builder(endpoint, ClientAuth::private_key_jwt(id, key)?)` |
//! | `ClientCredentials::builder_with_tls_client_auth(url, id).tls(tls)` | `ClientAuth::tls_client_auth(id)?` with `Endpoint::builder(url).http_client(HttpClient::with_tls(tls)?)` |
//! | `.client_auth(ClientAuth::SelfSignedTlsClientAuth)` | `ClientAuth::self_signed_tls_client_auth(id)?` |
//! | `ClientCredentials::builder_from_metadata(&metadata, id, secret)` (also on `RefreshToken`) | `builder(metadata.endpoint().build()?, metadata.client_secret_auth(id, secret)?)` |
//! | `RefreshToken::builder(url, id, secret, refresh_token)` | `RefreshToken::builder(endpoint, ClientAuth::secret_basic(id, secret)?, refresh_token)` |
//! | `TokenExchange::builder(url, id, secret, subject, type)` | `TokenExchange::builder(endpoint, ClientAuth::secret_basic(id, secret)?, subject, type)` |
//! | `TokenExchange::public_client_builder(url, id, subject, type)` | `TokenExchange::builder(endpoint, ClientAuth::public(id), subject, type)` |
//! | `JwtBearer::builder(url, key, iss, sub)`, `JwtBearer::builder_with_assertion(url, f)` | `JwtBearer::builder(endpoint, key, iss, sub)`, `JwtBearer::builder_with_assertion(endpoint, f)` |
//! | `JwtBearerBuilder::client_secret(id, secret)`, `client_private_key(id, key)`, `client_id(id)` | `.client_auth(ClientAuth::secret_basic(id, secret)?)`, `ClientAuth::private_key_jwt(id, key)?`, `ClientAuth::public(id)` |
//! | `.scope(s)`, `.scopes(..)`, `.audience(a)`, `.resource(r)`, `.param(n, v)` on a grant's builder | `.params(TokenParams::new().scope(s).audience(a).resource(r).param(n, v))` |
//! | `.revocation_url(u)`, `.timeout(t)`, `.retry(p)`, `.max_response_size(n)`, `.default_lifetime(d)`, `.allow_insecure_http(b)`, `.assertion_audience(a)` on a grant's builder | the same on [`EndpointBuilder`] |
//! | `.http_client(service)` on a grant's builder or `Discovery` | `.http_client(HttpClient::from_service(service))` on [`EndpointBuilder`] or `Discovery`, or in the [`HttpSettings`] both take |
//! | `.tls(tls)` on a grant's builder or `Discovery` | `.http_client(HttpClient::with_tls(tls)?)` |
//! | `ClientCredentialsBuilder::DEFAULT_TIMEOUT` (and `DEFAULT_MAX_RESPONSE_SIZE`, `DEFAULT_LIFETIME`) | `Endpoint::DEFAULT_TIMEOUT` (and the others) |
//! | `source.client_id()`, `source.client_auth()` (the method) | `source.client_auth().client_id()`, `source.client_auth().method()` |
//! | the `ClientAuth` enum, `ClientAuth::None` | [`AuthMethod`], `AuthMethod::None` |
//! | `TokenTypeHint` | gone from the API: no public signature took it |
//!
//! # Features
//!
//! - `hyper-client` (default): the default HTTP client, hyper-util's pooled client speaking
//!   HTTP/1.1 over rustls with the `ring` provider (no C compiler or cmake needed beyond
//!   ring's own build) and the Mozilla root certificates compiled in by `webpki-roots`, so
//!   it behaves the same in a scratch container as on a laptop. A private CA and a client
//!   certificate for mutual TLS are set with `ClientTls` and `HttpClient::with_tls`. For
//!   the operating system's trust store or a proxy, turn the feature off and pass your own
//!   client with [`HttpClient::from_service`].
//! - `private-key-jwt`: `private_key_jwt` client authentication (RFC 7523 section 2.2):
//!   `ClientAuth::private_key_jwt` with a `PrivateKey` signs a short-lived client assertion
//!   per request with an RS256 or ES256 key, using `ring`; the key also signs the
//!   assertions of `JwtBearer::builder` (without the feature,
//!   [`JwtBearer::builder_with_assertion`] takes your own). On by default, as `ring` is
//!   built anyway, for DPoP.
//!
//! DPoP is always on: `tower-bearer`'s `dpop` feature, which signs proofs with `ring`.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod client_auth;
mod client_credentials;
mod discovery;
mod dpop;
mod endpoint;
mod error;
mod fleet;
mod http_client;
mod http_settings;
mod jwt_bearer;
mod messages;
#[cfg(feature = "private-key-jwt")]
mod private_key_jwt;
mod redact;
mod refresh_token;
mod response;
mod retry;
mod revocation;
mod server_url;
#[cfg(test)]
mod test_support;
#[cfg(feature = "hyper-client")]
mod tls;
mod token_exchange;
mod token_params;
mod token_request;
mod transport;

pub use client_auth::{AuthMethod, ClientAuth};
pub use client_credentials::{ClientCredentials, ClientCredentialsBuilder};
pub use discovery::{AuthServerMetadata, Discovery, DiscoveryError};
pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{BuildError, EndpointError, OAuthError};
pub use fleet::{FleetConfig, WhenStoreUnavailable};
pub use http_client::HttpClient;
pub use http_settings::HttpSettings;
pub use jwt_bearer::{JwtBearer, JwtBearerBuilder};
#[cfg(feature = "private-key-jwt")]
pub use private_key_jwt::PrivateKey;
pub use refresh_token::{RefreshToken, RefreshTokenBuilder};
pub use retry::RetryPolicy;
pub use revocation::RevocationError;
#[cfg(feature = "hyper-client")]
pub use tls::{ClientTls, TlsClientIdentity};
pub use token_exchange::{token_type, TokenExchange, TokenExchangeBuilder};
pub use token_params::TokenParams;
