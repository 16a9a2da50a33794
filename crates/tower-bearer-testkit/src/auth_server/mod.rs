//! The mock OAuth 2.0 authorization server.

mod assertion;
mod builder;
mod client_auth;
mod dpop_proof;
mod echo;
mod form;
mod metadata;
mod rejection;
mod revocation;
mod router;
mod token_endpoint;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use builder::AuthServerBuilder;
pub use echo::Echo;

use crate::client_certificate::TlsClient;
use crate::dpop::DpopVerifier;
use crate::server::{self, Https, ServerTask};
use crate::token_store::TokenStore;
use crate::{lock, ClientAuthMethod, DpopProblem, Fault, TokenRequest};

/// A mock OAuth 2.0 authorization server (RFC 6749) listening on `127.0.0.1`.
///
/// Its token endpoint, `POST /token`, authenticates clients with `client_secret_basic`,
/// `client_secret_post` or `private_key_jwt` and grants `client_credentials` (section 4.4),
/// `refresh_token` (section 6, with rotation, and optionally reuse detection), token
/// exchange (RFC 8693, for the access tokens it issued and
/// [`subject_token`](AuthServerBuilder::subject_token)s) and the JWT bearer grant (RFC 7523
/// section 2.1, for [`jwt_bearer_issuer`](AuthServerBuilder::jwt_bearer_issuer)s); the last
/// two also from public clients (no client authentication, at most a `client_id`). `POST /revoke` is a revocation endpoint (RFC 7009) with the
/// same client authentication, and `GET /.well-known/oauth-authorization-server` serves the
/// server's metadata (RFC 8414) with the issuer [`url`](Self::url). Every other path
/// answers 404. Faults can be injected into token and revocation requests
/// ([`fail_next`](Self::fail_next), [`fail_always`](Self::fail_always)), tokens revoked and
/// expired, and each request inspected afterwards. With
/// [`https`](AuthServerBuilder::https) it serves HTTPS, requires a TLS client certificate and
/// authenticates mutual-TLS clients (RFC 8705) by it.
///
/// A token request with a valid DPoP proof (RFC 9449) gets a `DPoP` token bound to the
/// proof's key, and refresh tokens issued with it need proofs from the same key; a bad proof
/// gets 400 `invalid_dpop_proof`. [`dpop`](AuthServerBuilder::dpop) makes proofs or nonces
/// required, [`without_dpop`](AuthServerBuilder::without_dpop) turns DPoP off; see the
/// [crate documentation](crate#dpop).
///
/// The handle is cheap to clone; the clones control the same server. The server stops when
/// the last handle is dropped, or at once for every handle with [`shutdown`](Self::shutdown).
/// It needs a tokio runtime with I/O and time enabled, and logs nothing, so a
/// [`capture_tracing`](crate::capture_tracing) guard sees only the code under test.
///
/// ```
/// use http_body_util::{BodyExt, Full};
/// use tower_bearer_testkit::{http_client, AuthServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = AuthServer::start().await?;
/// let request = http::Request::post(auth.token_url())
///     .header("content-type", "application/x-www-form-urlencoded")
///     .body(Full::from("grant_type=client_credentials&client_id=client&client_secret=secret"))?;
/// let response = http_client().request(request).await?;
/// assert_eq!(response.status(), 200);
///
/// let body: serde_json::Value = serde_json::from_slice(&response.collect().await?.to_bytes())?;
/// assert!(auth.is_valid(body["access_token"].as_str().unwrap()));
/// assert_eq!(auth.tokens_issued(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AuthServer {
    state: Arc<AuthState>,
    task: Arc<ServerTask>,
    addr: SocketAddr,
    https: bool,
}

impl AuthServer {
    /// The client id registered when the builder is given no client.
    pub const DEFAULT_CLIENT_ID: &'static str = "client";
    /// The secret of [`DEFAULT_CLIENT_ID`](Self::DEFAULT_CLIENT_ID).
    pub const DEFAULT_CLIENT_SECRET: &'static str = "secret";
    /// The lifetime of issued access tokens unless configured: one hour.
    pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

    /// Starts a server with the defaults: one client `client` / `secret`, tokens valid for
    /// an hour, any scope allowed, no refresh tokens.
    pub async fn start() -> io::Result<AuthServer> {
        Self::builder().start().await
    }

    /// Configures a server before starting it.
    pub fn builder() -> AuthServerBuilder {
        AuthServerBuilder::new()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` (`https://` when built with
    /// [`https`](AuthServerBuilder::https)), without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The token endpoint, [`url`](Self::url) + `/token`.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.url(), router::TOKEN_PATH)
    }

    /// How many HTTP requests reached `/token`, whatever their outcome. A request is
    /// counted as it arrives, before any fault (a delay, a dropped connection) applies.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The revocation endpoint (RFC 7009), [`url`](Self::url) + `/revoke`.
    pub fn revocation_url(&self) -> String {
        format!("{}{}", self.url(), router::REVOCATION_PATH)
    }

    /// The metadata document (RFC 8414),
    /// [`url`](Self::url) + `/.well-known/oauth-authorization-server`.
    pub fn metadata_url(&self) -> String {
        format!("{}{}", self.url(), router::METADATA_PATH)
    }

    /// How many HTTP requests reached `/revoke`, whatever their outcome.
    pub fn revocation_requests(&self) -> u64 {
        self.state.revocation_requests.load(Ordering::SeqCst)
    }

    /// How many requests reached the mTLS endpoint aliases `/mtls/token` and `/mtls/revoke`
    /// of an HTTPS server (also counted in [`token_requests`](Self::token_requests) and
    /// [`revocation_requests`](Self::revocation_requests)).
    pub fn mtls_alias_requests(&self) -> u64 {
        self.state.mtls_alias_requests.load(Ordering::SeqCst)
    }

    /// How many live tokens a client revoked at `/revoke` (requests for unknown, already
    /// revoked or other clients' tokens are answered 200 but not counted).
    pub fn tokens_revoked(&self) -> u64 {
        self.state.tokens_revoked.load(Ordering::SeqCst)
    }

    /// How many times the metadata document was fetched.
    pub fn metadata_requests(&self) -> u64 {
        self.state.metadata_requests.load(Ordering::SeqCst)
    }

    /// Issues a refresh token to `client_id` for `scope`, as if the client had got it with an
    /// authorization code, so a test can start a `refresh_token` grant.
    pub fn issue_refresh_token(&self, client_id: &str, scope: Option<&str>) -> String {
        let family = self.state.tokens.new_family();
        self.state
            .tokens
            .issue_refresh(client_id, scope.map(str::to_owned), family, None)
    }

    /// Whether `refresh_token` would be accepted now: issued by this server, not revoked,
    /// not rotated away.
    pub fn is_refresh_token_valid(&self, refresh_token: &str) -> bool {
        self.state.tokens.is_refresh_live(refresh_token)
    }

    /// How many access tokens the server has issued, by either grant.
    pub fn tokens_issued(&self) -> u64 {
        self.state.tokens_issued.load(Ordering::SeqCst)
    }

    /// Sets the lifetime (`expires_in`, whole seconds) of access tokens issued from now on.
    /// Tokens already issued keep their expiry.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.token_lifetime) = lifetime;
    }

    /// Gives the next `count` requests to `/token` or `/revoke` `fault`, after any faults
    /// queued before.
    /// A `count` of zero does nothing.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        if count > 0 {
            lock(&self.state.faults).queued.push_back((fault, count));
        }
    }

    /// Gives every request to `/token` and `/revoke` `fault`, once the [`fail_next`](Self::fail_next) queue is
    /// used up, until [`heal`](Self::heal). Replaces an earlier `fail_always`.
    pub fn fail_always(&self, fault: Fault) {
        lock(&self.state.faults).always = Some(fault);
    }

    /// Clears every injected fault, queued or permanent.
    pub fn heal(&self) {
        let mut faults = lock(&self.state.faults);
        faults.queued.clear();
        faults.always = None;
    }

    /// Whether `access_token` was issued by this server and is neither expired (on the
    /// tokio clock) nor revoked.
    pub fn is_valid(&self, access_token: &str) -> bool {
        self.state.tokens.is_valid(access_token)
    }

    /// Revokes an access token, so the [`ApiServer`](crate::ApiServer) answers 401
    /// `invalid_token`, or a refresh token, so refreshing with it fails with
    /// `invalid_grant`. Unknown tokens are ignored.
    pub fn revoke(&self, access_token: &str) {
        self.state.tokens.revoke(access_token);
    }

    /// Revokes every access token issued so far. Refresh tokens stay usable, so a client
    /// can recover the way it would after a key rotation.
    pub fn revoke_all(&self) {
        self.state.tokens.revoke_all_access();
    }

    /// The last request to `/token` whose body was a form, as parsed, without the client
    /// secret. Faulted requests are recorded too.
    pub fn last_request(&self) -> Option<TokenRequest> {
        lock(&self.state.last_request).clone()
    }

    /// How each request to `/token` authenticated its client
    /// ([`TokenRequest::auth_method`]), in the order the server read them, faulted requests
    /// included; a request whose body is not a form is not listed. The `Basic` and `Post`
    /// entries are the requests that sent a client secret, so a test can count the secret
    /// sends per method.
    ///
    /// ```
    /// use http_body_util::Full;
    /// use tower_bearer_testkit::{http_client, AuthServer, ClientAuthMethod};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let auth = AuthServer::start().await?;
    /// let request = http::Request::post(auth.token_url())
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body(Full::from("grant_type=client_credentials&client_id=client&client_secret=secret"))?;
    /// http_client().request(request).await?;
    /// assert_eq!(auth.token_auth_methods(), [ClientAuthMethod::Post]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn token_auth_methods(&self) -> Vec<ClientAuthMethod> {
        lock(&self.state.token_auth_methods).clone()
    }

    /// Stops the server now, for every clone of the handle: no new connections, open ones
    /// closed, requests in flight unanswered. Returns once the server's tasks are gone.
    ///
    /// Dropping the last handle stops the server the same way, without waiting.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }

    /// How many requests to `/token` carried a `DPoP` header, whatever the server made of
    /// it (also when it was refused, faulted, or ignored by a server
    /// [`without_dpop`](AuthServerBuilder::without_dpop)). Counted as the request arrives.
    pub fn dpop_proofs_received(&self) -> u64 {
        self.state.dpop_proofs_received.load(Ordering::SeqCst)
    }

    /// Why each refused DPoP proof at `/token` was refused, in order of arrival: the
    /// requests answered 400 `invalid_dpop_proof` or `use_dpop_nonce`. A refresh refused
    /// because its token is bound to another key is an `invalid_grant`, not listed here.
    pub fn dpop_refusals(&self) -> Vec<DpopProblem> {
        lock(&self.state.dpop_refusals).clone()
    }

    /// The thumbprint (RFC 7638, the `jkt` of RFC 9449 section 6) of the DPoP key an access
    /// or refresh token issued by this server is bound to: its `cnf.jkt`. `None` for tokens
    /// issued without a proof, and for tokens this server does not know.
    pub fn token_jkt(&self, token: &str) -> Option<String> {
        self.state.tokens.jkt_of(token)
    }

    /// The nonce DPoP proofs at `/token` must carry now, if the server was built to require
    /// one ([`DpopOptions::require_nonce`](crate::DpopOptions::require_nonce)).
    pub fn dpop_nonce(&self) -> Option<String> {
        self.state.dpop.as_ref()?.current_nonce()
    }

    /// Issues a new DPoP nonce now and returns it, if the server requires nonces; the
    /// previous one stays accepted for the policy's grace.
    pub fn rotate_dpop_nonce(&self) -> Option<String> {
        self.state.dpop.as_ref()?.rotate_nonce()
    }

    /// The tokens, shared with an [`ApiServer`](crate::ApiServer) that checks them.
    pub(crate) fn tokens(&self) -> Arc<TokenStore> {
        Arc::clone(&self.state.tokens)
    }

    async fn spawn(https: Option<Https>, state: AuthState) -> io::Result<AuthServer> {
        let listener = server::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let scheme = if https.is_some() { "https" } else { "http" };
        let _ = state.issuer.set(format!("{scheme}://{addr}"));
        let _ = state.addr.set(addr);
        let state = Arc::new(state);
        let handler_state = Arc::clone(&state);
        let with_tls = https.is_some();
        let task = server::spawn_with_tls(listener, https, move |request| {
            router::handle(Arc::clone(&handler_state), request)
        });
        Ok(AuthServer {
            state,
            task: Arc::new(task),
            addr,
            https: with_tls,
        })
    }
}

impl fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServer")
            .field("addr", &self.addr)
            .field("token_requests", &self.token_requests())
            .field("tokens_issued", &self.tokens_issued())
            .finish_non_exhaustive()
    }
}

/// Everything the token endpoint reads and the handle changes.
struct AuthState {
    /// Client secrets by client id.
    clients: HashMap<String, String>,
    /// Mutual-TLS clients by client id (RFC 8705 section 2).
    tls_clients: HashMap<String, TlsClient>,
    /// Public keys of `private_key_jwt` clients by client id.
    key_clients: HashMap<String, crate::TestKey>,
    /// Every client assertion `jti` accepted, so none is accepted twice.
    seen_jtis: Mutex<HashSet<String>>,
    /// `None` allows any scope.
    allowed_scopes: Option<HashSet<String>>,
    issue_refresh_tokens: bool,
    /// Whether the `refresh_token` grant issues a new refresh token and retires the old one.
    rotate_refresh_tokens: bool,
    /// Whether presenting a rotated-away refresh token revokes its successor.
    detect_refresh_token_reuse: bool,
    /// `None` accepts every client authentication method.
    auth_methods: Option<Vec<ClientAuthMethod>>,
    /// Keys of trusted JWT bearer assertion issuers, by `iss`.
    jwt_bearer_issuers: HashMap<String, crate::TestKey>,
    /// Subject and actor tokens accepted in token exchange besides issued access tokens.
    subject_tokens: HashSet<String>,
    /// `None` allows every token exchange `audience` and `resource`.
    exchange_targets: Option<HashSet<String>>,
    omit_issued_token_type: bool,
    /// `http://127.0.0.1:PORT` (or `https://`), set once the port is bound.
    issuer: OnceLock<String>,
    /// The address the server listens on, set once the port is bound.
    addr: OnceLock<SocketAddr>,
    /// `None` for a server that ignores DPoP.
    dpop: Option<DpopVerifier>,
    token_lifetime: Mutex<Duration>,
    tokens: Arc<TokenStore>,
    faults: Mutex<Faults>,
    token_requests: AtomicU64,
    revocation_requests: AtomicU64,
    metadata_requests: AtomicU64,
    tokens_issued: AtomicU64,
    tokens_revoked: AtomicU64,
    mtls_alias_requests: AtomicU64,
    dpop_proofs_received: AtomicU64,
    dpop_refusals: Mutex<Vec<DpopProblem>>,
    last_request: Mutex<Option<TokenRequest>>,
    /// How each form request to `/token` authenticated, in the order read.
    token_auth_methods: Mutex<Vec<ClientAuthMethod>>,
}

/// Injected faults, taken in the order requests arrive.
#[derive(Debug, Default)]
struct Faults {
    /// From [`AuthServer::fail_next`]: each fault with how many requests it still gets.
    queued: VecDeque<(Fault, usize)>,
    /// From [`AuthServer::fail_always`]: applies once `queued` is empty.
    always: Option<Fault>,
}

impl Faults {
    fn take(&mut self) -> Option<Fault> {
        let Some((fault, remaining)) = self.queued.front_mut() else {
            return self.always.clone();
        };
        *remaining -= 1;
        if *remaining == 0 {
            self.queued.pop_front().map(|(fault, _)| fault)
        } else {
            Some(fault.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_come_first_in_order_then_the_permanent_one() {
        let mut faults = Faults::default();
        faults.queued.push_back((Fault::BadJson, 2));
        faults.queued.push_back((Fault::DropConnection, 1));
        faults.always = Some(Fault::Status(http::StatusCode::BAD_GATEWAY));
        let taken: Vec<_> = std::iter::from_fn(|| Some(faults.take())).take(5).collect();
        assert_eq!(
            taken,
            [
                Some(Fault::BadJson),
                Some(Fault::BadJson),
                Some(Fault::DropConnection),
                Some(Fault::Status(http::StatusCode::BAD_GATEWAY)),
                Some(Fault::Status(http::StatusCode::BAD_GATEWAY)),
            ]
        );
    }
}
