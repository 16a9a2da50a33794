//! The mock protected API: a resource server (RFC 6750, RFC 9449 section 7) that trusts
//! one [`AuthServer`].

mod authorize;
mod builder;
mod refusal;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

pub use builder::ApiServerBuilder;
pub use refusal::ApiRefusal;

use crate::dpop::DpopVerifier;
use crate::response::text;
use crate::server::{self, DropConnection, Https, Reply, ServerTask};
use crate::token_store::TokenStore;
use crate::{lock, AuthServer, DpopOptions, TestPki};

/// A mock API on `127.0.0.1` that accepts the access tokens of one [`AuthServer`].
///
/// Any method and path: a valid `Authorization: Bearer` token gets 200 with the body
/// `hello`; no token gets 401 with `WWW-Authenticate: Bearer realm="testkit"`; an unknown,
/// expired or revoked token gets 401 with `error="invalid_token"` (RFC 6750 section 3.1).
/// `/admin` and paths under it also need the `admin` scope, else 403 with
/// `error="insufficient_scope", scope="admin"`. The request body is always read in full
/// first and kept for [`last_body`](Self::last_body).
///
/// A DPoP-bound token (RFC 9449 section 7.1) must come as `Authorization: DPoP <token>`
/// with a `DPoP` proof for this request whose `ath` hashes the token and whose key is the
/// one the token is bound to; a bad proof gets 401 with
/// `WWW-Authenticate: DPoP error="invalid_dpop_proof", ...`, a token it does not honour (or
/// one bound to another key) `DPoP error="invalid_token", ...`, and the same token sent as
/// `Bearer` gets `invalid_token` too. [`builder`](Self::builder) with
/// [`dpop`](ApiServerBuilder::dpop) makes proofs or nonces required; see the
/// [crate documentation](crate#dpop). [`refusals`](Self::refusals) says why each request was
/// refused.
///
/// For redirect tests, [`redirect`](Self::redirect) makes a path answer with a redirect
/// whatever the token, [`start_https`](Self::start_https) serves HTTPS, and
/// [`received`](Self::received) tells which `Authorization` value each request carried.
///
/// The handle is cheap to clone; the server stops when the last handle is dropped, or with
/// [`shutdown`](Self::shutdown). It keeps checking tokens after the `AuthServer` stops.
///
/// ```
/// use http_body_util::Full;
/// use tower_bearer_testkit::{http_client, ApiServer, AuthServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let auth = AuthServer::start().await?;
/// let api = ApiServer::start(&auth).await?;
/// let response = http_client()
///     .request(http::Request::get(api.url()).body(Full::default())?)
///     .await?;
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="testkit""#);
/// assert_eq!((api.requests(), api.rejected()), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiServer {
    state: Arc<ApiState>,
    task: Arc<ServerTask>,
    addr: SocketAddr,
    https: bool,
}

impl ApiServer {
    /// Binds `127.0.0.1` on a free port and serves tokens issued by `auth`.
    pub async fn start(auth: &AuthServer) -> io::Result<ApiServer> {
        Self::builder(auth).start().await
    }

    /// [`start`](Self::start), over HTTPS with `pki`'s server certificate (for `127.0.0.1`
    /// and `localhost`). Like the HTTPS [`AuthServer`], it requires a client certificate:
    /// connect with [`TestPki::https_client`] and one of `pki`'s client certificates.
    pub async fn start_https(auth: &AuthServer, pki: &TestPki) -> io::Result<ApiServer> {
        Self::builder(auth).https(pki).start().await
    }

    /// Configures a server for tokens issued by `auth` before starting it.
    pub fn builder(auth: &AuthServer) -> ApiServerBuilder {
        ApiServerBuilder::new(auth.tokens())
    }

    async fn spawn(
        tokens: Arc<TokenStore>,
        https: Option<Https>,
        dpop: DpopOptions,
    ) -> io::Result<ApiServer> {
        let listener = server::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            tokens,
            addr,
            https: https.is_some(),
            dpop: DpopVerifier::new(dpop),
            requests: AtomicU64::new(0),
            authorized: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dpop_requests: AtomicU64::new(0),
            refusals: Mutex::default(),
            injected: Mutex::default(),
            redirects: Mutex::default(),
            received: Mutex::default(),
            last_body: Mutex::default(),
        });
        let handler_state = Arc::clone(&state);
        let handler = move |request| handle(Arc::clone(&handler_state), request);
        let with_tls = https.is_some();
        let task = match https {
            None => server::spawn(listener, handler),
            https => server::spawn_with_tls(listener, https, handler),
        };
        Ok(ApiServer {
            state,
            task: Arc::new(task),
            addr,
            https: with_tls,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` (`https://` when started with
    /// [`start_https`](Self::start_https)), without a trailing slash.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How many requests arrived, whatever the answer.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// How many requests were answered 200, injected responses included.
    pub fn authorized(&self) -> u64 {
        self.state.authorized.load(Ordering::SeqCst)
    }

    /// How many requests were answered 401, injected responses included.
    pub fn rejected(&self) -> u64 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// How many requests presented their token with the `DPoP` scheme, whatever the answer.
    pub fn dpop_requests(&self) -> u64 {
        self.state.dpop_requests.load(Ordering::SeqCst)
    }

    /// Why each request the token check refused was refused (every 401 and 403 it
    /// answered), in order of arrival. Injected responses and redirects are not listed.
    pub fn refusals(&self) -> Vec<ApiRefusal> {
        lock(&self.state.refusals).clone()
    }

    /// The nonce DPoP proofs must carry now, if the server was built to require one
    /// ([`DpopOptions::require_nonce`]).
    pub fn dpop_nonce(&self) -> Option<String> {
        self.state.dpop.current_nonce()
    }

    /// Issues a new DPoP nonce now and returns it, if the server requires nonces; the
    /// previous one stays accepted for the policy's grace.
    pub fn rotate_dpop_nonce(&self) -> Option<String> {
        self.state.dpop.rotate_nonce()
    }

    /// Answers the next `count` requests, after any injected before, with `status` and,
    /// if given, this `WWW-Authenticate` value, whatever token they carry.
    ///
    /// # Panics
    ///
    /// If `www_authenticate` is not a valid header value (say, it holds a newline).
    pub fn respond_next(&self, count: usize, status: StatusCode, www_authenticate: Option<&str>) {
        let www_authenticate = www_authenticate.map(|value| {
            HeaderValue::from_str(value)
                .unwrap_or_else(|_| panic!("not a valid WWW-Authenticate value: {value:?}"))
        });
        if count > 0 {
            let response = InjectedResponse {
                status,
                www_authenticate,
            };
            lock(&self.state.injected).push_back((response, count));
        }
    }

    /// Answers every later request for `path` (the path alone, any query) with `status` and
    /// `Location: location`, whatever token it carries, after any response injected with
    /// [`respond_next`](Self::respond_next). A redirect counts as neither authorized nor
    /// rejected.
    ///
    /// # Panics
    ///
    /// If `location` is not a valid header value.
    pub fn redirect(&self, path: &str, status: StatusCode, location: &str) {
        let location = HeaderValue::from_str(location)
            .unwrap_or_else(|_| panic!("not a valid Location value: {location:?}"));
        lock(&self.state.redirects).push((path.to_owned(), status, location));
    }

    /// Every request so far, in order of arrival: its path and the `Authorization` value
    /// it carried, if any. What a redirect test asserts on.
    pub fn received(&self) -> Vec<(String, Option<String>)> {
        lock(&self.state.received).clone()
    }

    /// The body of the last request received, read in full.
    pub fn last_body(&self) -> Option<Bytes> {
        lock(&self.state.last_body).clone()
    }

    /// Stops the server now, for every clone of the handle, and waits until its tasks are
    /// gone. Dropping the last handle stops it the same way, without waiting.
    pub async fn shutdown(self) {
        self.task.shutdown().await;
    }
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url())
            .field("requests", &self.requests())
            .field("authorized", &self.authorized())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

struct ApiState {
    tokens: Arc<TokenStore>,
    /// Where the server listens and whether over TLS: what a proof's `htu` names.
    addr: SocketAddr,
    https: bool,
    dpop: DpopVerifier,
    requests: AtomicU64,
    authorized: AtomicU64,
    rejected: AtomicU64,
    dpop_requests: AtomicU64,
    /// Why each refused request was refused; see [`ApiServer::refusals`].
    refusals: Mutex<Vec<ApiRefusal>>,
    /// From [`ApiServer::respond_next`]: each response with how many requests it still gets.
    injected: Mutex<VecDeque<(InjectedResponse, usize)>>,
    /// From [`ApiServer::redirect`]: path, status and `Location`.
    redirects: Mutex<Vec<(String, StatusCode, HeaderValue)>>,
    /// Path and `Authorization` value of each request; see [`ApiServer::received`].
    received: Mutex<Vec<(String, Option<String>)>>,
    last_body: Mutex<Option<Bytes>>,
}

#[derive(Clone)]
struct InjectedResponse {
    status: StatusCode,
    www_authenticate: Option<HeaderValue>,
}

impl ApiState {
    fn take_injected(&self) -> Option<InjectedResponse> {
        let mut injected = lock(&self.injected);
        let (response, remaining) = injected.front_mut()?;
        *remaining -= 1;
        if *remaining == 0 {
            injected.pop_front().map(|(response, _)| response)
        } else {
            Some(response.clone())
        }
    }

    fn redirect_for(&self, path: &str) -> Option<Response<Full<Bytes>>> {
        let redirects = lock(&self.redirects);
        let (_, status, location) = redirects.iter().find(|(from, ..)| from == path)?;
        let mut response = text(*status, "redirected");
        response.headers_mut().insert(LOCATION, location.clone());
        Some(response)
    }
}

async fn handle(state: Arc<ApiState>, request: Request<Incoming>) -> Reply {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if authorize::uses_dpop_scheme(request.headers()) {
        state.dpop_requests.fetch_add(1, Ordering::SeqCst);
    }
    let injected = state.take_injected();
    let (parts, body) = request.into_parts();
    let authorization = parts
        .headers
        .get(AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    lock(&state.received).push((parts.uri.path().to_owned(), authorization));
    // A client that goes away halfway through its body gets nothing back.
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    *lock(&state.last_body) = Some(body);

    let response = match injected {
        Some(injected) => {
            let mut response = text(injected.status, "injected response");
            if let Some(challenge) = injected.www_authenticate {
                response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
            }
            response
        }
        None => state
            .redirect_for(parts.uri.path())
            .unwrap_or_else(|| state.authorize(&parts)),
    };
    match response.status() {
        StatusCode::OK => state.authorized.fetch_add(1, Ordering::SeqCst),
        StatusCode::UNAUTHORIZED => state.rejected.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    Ok(response)
}
