//! The mock protected API: a resource server (RFC 6750) that trusts one [`AuthServer`].

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use http::{request, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::response::{bearer_challenge, text};
use crate::server::{self, DropConnection, Https, Reply, ServerTask};
use crate::token_store::{AccessStatus, TokenStore};
use crate::{client_certificate, lock, AuthServer, TestPki};

/// A mock API on `127.0.0.1` that accepts the access tokens of one [`AuthServer`].
///
/// Any method and path: a valid `Authorization: Bearer` token gets 200 with the body
/// `hello`; no token gets 401 with `WWW-Authenticate: Bearer realm="testkit"`; an unknown,
/// expired or revoked token gets 401 with `error="invalid_token"` (RFC 6750 section 3.1).
/// `/admin` and paths under it also need the `admin` scope, else 403 with
/// `error="insufficient_scope", scope="admin"`. The request body is always read in full
/// first and kept for [`last_body`](Self::last_body).
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
        Self::spawn(auth, None).await
    }

    /// [`start`](Self::start), over HTTPS with `pki`'s server certificate (for `127.0.0.1`
    /// and `localhost`). Like the HTTPS [`AuthServer`], it requires a client certificate:
    /// connect with [`TestPki::https_client`] and one of `pki`'s client certificates.
    pub async fn start_https(auth: &AuthServer, pki: &TestPki) -> io::Result<ApiServer> {
        Self::spawn(auth, Some(client_certificate::https(pki))).await
    }

    async fn spawn(auth: &AuthServer, https: Option<Https>) -> io::Result<ApiServer> {
        let listener = server::bind_loopback().await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ApiState {
            tokens: auth.tokens(),
            requests: AtomicU64::new(0),
            authorized: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
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
    requests: AtomicU64,
    authorized: AtomicU64,
    rejected: AtomicU64,
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

    /// Checks the bearer token (RFC 6750) and the scope `/admin` needs.
    fn authorize(&self, parts: &request::Parts) -> Response<Full<Bytes>> {
        let Some(token) = bearer_token(&parts.headers) else {
            return challenge(StatusCode::UNAUTHORIZED, "");
        };
        let problem = match self.tokens.access_status(token) {
            AccessStatus::Valid { scope } => {
                let path = parts.uri.path();
                let needs_admin = path == "/admin" || path.starts_with("/admin/");
                let has_admin = scope
                    .as_deref()
                    .is_some_and(|scope| scope.split_whitespace().any(|item| item == "admin"));
                if needs_admin && !has_admin {
                    return challenge(
                        StatusCode::FORBIDDEN,
                        r#"error="insufficient_scope", error_description="this resource needs the admin scope", scope="admin""#,
                    );
                }
                return text(StatusCode::OK, "hello");
            }
            AccessStatus::Expired => "the access token expired",
            AccessStatus::Revoked => "the access token was revoked",
            AccessStatus::Unknown => "the access token is unknown",
        };
        challenge(
            StatusCode::UNAUTHORIZED,
            &format!(r#"error="invalid_token", error_description="{problem}""#),
        )
    }
}

async fn handle(state: Arc<ApiState>, request: Request<Incoming>) -> Reply {
    state.requests.fetch_add(1, Ordering::SeqCst);
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

/// The token of an `Authorization: Bearer` header; the scheme is case-insensitive.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn challenge(status: StatusCode, params: &str) -> Response<Full<Bytes>> {
    let mut response = text(status, status.canonical_reason().unwrap_or_default());
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, bearer_challenge(params));
    response
}
