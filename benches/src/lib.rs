//! Shared pieces of the tower-bearer benchmarks: the inner no-op service, the hand-written
//! baselines a user would write instead of tower-bearer, and a way to drive a service call
//! to completion without a runtime, so the runtime's cost does not dilute the ratios.
//!
//! The benches themselves are in `benches/`; results are in `README.md`.

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use http::header::{ACCEPT, AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Request, Response};
use tower::Service;
use tower_bearer::dpop::DpopKey;
use tower_bearer::{source, FetchError, Token, TokenCache};
use tower_bearer_oauth2::{BuildError, ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::AuthServer;

pub mod alloc;
pub mod loopback;

/// The token value every bench uses.
pub const TOKEN: &str = "bench-token-0123456789abcdef0123456789abcdef";

/// The request every hot-path bench sends: a GET with the two headers a real client sets,
/// built the same way for every id so its cost cancels out in the ratios.
///
/// The headers matter for allocation counts: inserting into an empty `HeaderMap` allocates
/// its table, a cost of `http` that every header-adding layer would pay on a bare request.
pub fn request() -> Request<()> {
    let mut request = Request::new(());
    let headers = request.headers_mut();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static("tower-bearer-bench"));
    request
}

/// The URI the DPoP ids' requests go to: a proof names it (`htu`), so it must be absolute.
pub const DPOP_URI: &str = "https://api.example.com/v1/orders";

/// [`request`], to [`DPOP_URI`]: what the DPoP comparison sends, bearer and DPoP alike.
pub fn absolute_request() -> Request<()> {
    let mut request = request();
    *request.uri_mut() = http::Uri::from_static(DPOP_URI);
    request
}

/// An inner service that does nothing: the floor every layer is measured against.
#[derive(Clone, Copy, Debug, Default)]
pub struct Noop;

impl<B> Service<Request<B>> for Noop {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<B>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// Drives `service` through `poll_ready`, `call` and its future, all of which must be
/// ready at once (true of every service here on the fresh-token path).
///
/// # Panics
///
/// If a step is pending or fails: the bench set-up is wrong, not the code under test.
pub fn call_now<S, B>(service: &mut S, request: Request<B>) -> S::Response
where
    S: Service<Request<B>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        other => panic!("service not ready: {other:?}"),
    }
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(error)) => panic!("call failed: {error:?}"),
        Poll::Pending => panic!("call did not complete at once"),
    }
}

/// A token cache holding a fresh token valid for an hour, as on a service's usual path.
///
/// Needs a tokio runtime to fetch the token (once) and to run the expiry timer; keep
/// `runtime` alive while the cache is used.
pub fn warm_cache(runtime: &tokio::runtime::Runtime) -> TokenCache {
    let source = source::from_fn(|| async {
        Token::builder(TOKEN)
            .expires_in(Duration::from_secs(3600))
            .build()
            .map_err(FetchError::from)
    });
    let cache = TokenCache::new(source);
    runtime
        .block_on(cache.token())
        .expect("the bench source cannot fail");
    cache
}

/// A token cache holding a fresh DPoP-bound token (RFC 9449) valid for an hour, and its
/// key (ES256 unless `ed25519`); see [`warm_cache`].
///
/// Instruction counts use Ed25519: its signatures are deterministic, so two runs count the
/// same, where ES256 draws a random nonce per signature and its count moves by thousands.
pub fn warm_dpop_cache(runtime: &tokio::runtime::Runtime, ed25519: bool) -> (TokenCache, DpopKey) {
    let key = if ed25519 {
        DpopKey::generate_ed25519()
    } else {
        DpopKey::generate_es256()
    }
    .expect("ring generates a key");
    let bound = key.clone();
    let source = source::from_fn(move || {
        let key = bound.clone();
        async move {
            Token::builder(TOKEN)
                .expires_in(Duration::from_secs(3600))
                .dpop_key(key)
                .build()
                .map_err(FetchError::from)
        }
    });
    let cache = TokenCache::new(source);
    runtime
        .block_on(cache.token())
        .expect("the bench source cannot fail");
    (cache, key)
}

/// What a hand-written cache keeps: the header to send and when it stops being valid.
#[derive(Debug)]
pub struct Cached {
    header: HeaderValue,
    expires_at: std::time::Instant,
}

fn fresh_cached() -> Option<Cached> {
    let mut header = HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("valid header");
    header.set_sensitive(true);
    Some(Cached {
        header,
        expires_at: std::time::Instant::now() + Duration::from_secs(3600),
    })
}

/// How a hand-written cache reads its slot: through a `Mutex` or an `RwLock`.
pub trait Slot: Send + Sync + 'static {
    /// A slot holding a fresh token.
    fn fresh() -> Self;
    /// Runs `f` on the slot's contents under the lock.
    fn read<R>(&self, f: impl FnOnce(&Option<Cached>) -> R) -> R;
}

impl Slot for Mutex<Option<Cached>> {
    fn fresh() -> Self {
        Mutex::new(fresh_cached())
    }

    fn read<R>(&self, f: impl FnOnce(&Option<Cached>) -> R) -> R {
        f(&self.lock().expect("not poisoned"))
    }
}

impl Slot for RwLock<Option<Cached>> {
    fn fresh() -> Self {
        RwLock::new(fresh_cached())
    }

    fn read<R>(&self, f: impl FnOnce(&Option<Cached>) -> R) -> R {
        f(&self.read().expect("not poisoned"))
    }
}

/// Baseline: the `Mutex<Option<Token>>` with an expiry check that services write by hand.
pub type NaiveMutex<S> = Naive<S, Mutex<Option<Cached>>>;

/// Baseline: the same with an `RwLock`, which users reach for once the mutex shows up in
/// profiles.
pub type NaiveRwLock<S> = Naive<S, RwLock<Option<Cached>>>;

/// A hand-written token cache: a lock around an optional token, its expiry checked against
/// `Instant::now()` on every call.
#[derive(Debug)]
pub struct Naive<S, L> {
    inner: S,
    token: Arc<L>,
}

impl<S: Clone, L> Clone for Naive<S, L> {
    fn clone(&self) -> Self {
        Naive {
            inner: self.inner.clone(),
            token: Arc::clone(&self.token),
        }
    }
}

impl<S, L: Slot> Naive<S, L> {
    /// Wraps `inner`, with a fresh token already cached.
    pub fn new(inner: S) -> Self {
        Naive {
            inner,
            token: Arc::new(L::fresh()),
        }
    }
}

impl<S: Service<Request<B>>, B, L: Slot> Service<Request<B>> for Naive<S, L> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        let header = self.token.read(|cached| {
            cached
                .as_ref()
                .filter(|c| std::time::Instant::now() < c.expires_at)
                .map(|c| c.header.clone())
        });
        if let Some(header) = header {
            request.headers_mut().insert(AUTHORIZATION, header);
        }
        self.inner.call(request)
    }
}

/// A client credentials source for the mock authorization server's default client at
/// `token_url`, with every setting at its default.
pub fn default_client_source(token_url: &str) -> Result<ClientCredentials, BuildError> {
    let endpoint = Endpoint::builder(token_url).build()?;
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )?;
    ClientCredentials::builder(endpoint, client).build()
}
