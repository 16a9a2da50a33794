//! The whole of tower-bearer in one run of a few seconds, with nothing to set up:
//!
//! ```sh
//! cargo run -p examples --bin demo
//! ```
//!
//! It starts the testkit's mock OAuth 2.0 authorization server and mock API in this process
//! on 127.0.0.1, then calls the API through the stack you would use in production:
//! `RetryOn401Layer` outside `BearerAuthLayer` over hyper-util's client, with tokens from the
//! client credentials grant held in a `TokenCache`. In five numbered steps it shows, with
//! the servers' own counts: the first fetch, reuse, a background refresh that nobody waits
//! for, a revoked token that is replaced and the call replayed once, and a burst of 1,000
//! calls on a cold cache that makes exactly one token request.
//!
//! Tokens live 6 seconds here so that the refresh happens while you watch. The demo checks
//! every count it prints and exits with status 1 and a message if one is off.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bearer::TokenCache;
use tower_bearer::{BearerAuth, BearerAuthLayer, CacheConfig, RetryOn401, RetryOn401Layer};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint};
use tower_bearer_testkit::{ApiServer, AuthServer, Fault};

type BoxError = Box<dyn Error + Send + Sync>;

/// What the mock authorization server puts in `expires_in`.
const TOKEN_LIFETIME: Duration = Duration::from_secs(6);
/// The cache starts a background refresh this long before expiry...
const REFRESH_WINDOW: Duration = Duration::from_secs(3);
/// ...and stops using a token this long before it.
const EXPIRY_SKEW: Duration = Duration::from_secs(1);
/// How many calls step 2 makes with the cached token.
const REUSE_CALLS: usize = 50;
/// How many concurrent calls hit the cold cache in step 5.
const BURST_CALLS: usize = 1_000;
/// How long the authorization server takes to answer the token request of step 5.
const SLOW_TOKEN_RESPONSE: Duration = Duration::from_millis(300);
/// Requests on the wire at once; see [`Transport`].
const MAX_IN_FLIGHT: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => {
            println!("\nAll checks passed.");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("\ndemo failed: {}", error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let demo = Demo::start().await?;
    demo.first_call().await?;
    demo.reuse().await?;
    demo.background_refresh().await?;
    demo.revoked_token().await?;
    demo.cold_burst().await?;
    println!(
        "\nIn all: {} API requests, {} token requests.",
        demo.api.requests(),
        demo.auth.token_requests()
    );
    Ok(())
}

/// The mock servers and the client calling them.
struct Demo {
    auth: AuthServer,
    api: ApiServer,
    url: String,
    source: ClientCredentials,
    config: CacheConfig,
    transport: Transport,
    cache: TokenCache,
    client: Client,
}

impl Demo {
    async fn start() -> Result<Demo, BoxError> {
        let auth = AuthServer::builder()
            .token_lifetime(TOKEN_LIFETIME)
            .start()
            .await?;
        let api = ApiServer::start(&auth).await?;
        let url = format!("{}/orders", api.url());

        let endpoint = Endpoint::builder(auth.token_url()).build()?;
        let client = ClientAuth::secret_basic(
            AuthServer::DEFAULT_CLIENT_ID,
            AuthServer::DEFAULT_CLIENT_SECRET,
        )?;
        let source = ClientCredentials::builder(endpoint, client).build()?;
        // No jitter, so the timeline below is exact.
        let config = CacheConfig::new()
            .expiry_skew(EXPIRY_SKEW)
            .refresh_window(REFRESH_WINDOW, 0.0)
            .refresh_jitter(0.0);
        let cache = TokenCache::with_config(source.clone(), config.clone());
        let transport = Transport::new(MAX_IN_FLIGHT);
        let client = client_stack(&cache, &transport);

        println!("tower-bearer demo");
        println!("  mock authorization server  {}", auth.token_url());
        println!("  mock API                   {url}");
        println!(
            "  tokens live {} s; the cache refreshes them {} s before expiry",
            TOKEN_LIFETIME.as_secs(),
            REFRESH_WINDOW.as_secs()
        );
        println!(
            "  and stops using them {} s before it",
            EXPIRY_SKEW.as_secs()
        );
        Ok(Demo {
            auth,
            api,
            url,
            source,
            config,
            transport,
            cache,
            client,
        })
    }

    async fn first_call(&self) -> Result<(), BoxError> {
        step(
            1,
            "The first call finds the cache empty: it fetches a token and waits for it.",
        );
        let tally = calls(&self.client, &self.url, 1).await?;
        figure("GET /orders", &tally);
        self.show_counts(&self.cache);
        expect("calls answered 200", tally.ok, 1)?;
        expect("token requests", self.auth.token_requests(), 1)?;
        notice("One token request. This first call is the only one that waited for a token.");
        Ok(())
    }

    async fn reuse(&self) -> Result<(), BoxError> {
        step(
            2,
            &format!("{REUSE_CALLS} more calls, all at once, with the cached token."),
        );
        let tally = calls(&self.client, &self.url, REUSE_CALLS).await?;
        figure("GET /orders", &tally);
        self.show_counts(&self.cache);
        expect("calls answered 200", tally.ok, REUSE_CALLS)?;
        expect("token requests", self.auth.token_requests(), 1)?;
        expect("calls that waited for a token", self.cache.stats().waits, 1)?;
        notice("Still one token request, and no call waited: the token came from memory.");
        Ok(())
    }

    async fn background_refresh(&self) -> Result<(), BoxError> {
        let first_token = self
            .cache
            .cached()
            .ok_or("after step 2 the cache should hold a token")?;
        let refresh_due = first_token
            .expires_at()
            .and_then(|expires_at| expires_at.checked_sub(REFRESH_WINDOW))
            .ok_or("the token should have an expiry")?;
        let wait = refresh_due.saturating_duration_since(Instant::now());
        step(
            3,
            &format!(
                "Waiting {:.1} s, into the token's refresh window. Calls keep going while one \
                 background fetch replaces the token.",
                wait.as_secs_f64()
            ),
        );
        // A little past the start of the window, well before the token stops being used.
        tokio::time::sleep_until(refresh_due + Duration::from_millis(200)).await;
        let waits_before = self.cache.stats().waits;
        let mut tally = Tally::default();
        let mut rounds_with_new_token = 0;
        // Rounds of 10 calls every 25 ms until three rounds have used the new token; at
        // most 1.5 s, which ends before the old token's skew (2 s away).
        for _ in 0..60 {
            tally.add(calls(&self.client, &self.url, 10).await?);
            let replaced = self
                .cache
                .cached()
                .is_some_and(|token| !token.same_as(&first_token));
            if replaced {
                rounds_with_new_token += 1;
                if rounds_with_new_token == 3 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        figure("GET /orders during the refresh", &tally);
        figure(
            "slowest of those calls",
            format!("{} ms", tally.slowest.as_millis()),
        );
        self.show_counts(&self.cache);
        expect(
            "rounds of calls with the refreshed token",
            rounds_with_new_token,
            3,
        )?;
        expect("calls answered 200", tally.ok, tally.calls())?;
        expect("token requests", self.auth.token_requests(), 2)?;
        let waits = self.cache.stats().waits - waits_before;
        expect("calls that waited for a token in this step", waits, 0)?;
        notice(
            "One more token request, made in the background: not one of these calls waited \
             for it (the count of calls that waited is unchanged).",
        );
        Ok(())
    }

    async fn revoked_token(&self) -> Result<(), BoxError> {
        step(
            4,
            "The authorization server revokes every token it issued. The API answers the \
             next call 401 invalid_token; the retry layer drops exactly that token and \
             replays the call once, with a new one.",
        );
        self.auth.revoke_all();
        let (requests_before, rejected_before) = (self.api.requests(), self.api.rejected());
        let tally = calls(&self.client, &self.url, 1).await?;
        let requests = self.api.requests() - requests_before;
        let rejected = self.api.rejected() - rejected_before;
        figure("GET /orders, as the caller sees it", &tally);
        figure(
            "what the API saw for that call",
            format!("{requests} requests: {rejected} x 401, then 200"),
        );
        self.show_counts(&self.cache);
        expect("calls answered 200", tally.ok, 1)?;
        expect("API requests for the call", requests, 2)?;
        expect("401s for the call", rejected, 1)?;
        expect("token requests", self.auth.token_requests(), 3)?;
        notice(
            "The caller got 200. Behind it: one 401, one new token (the replay is the second \
             call that waited for one), one replay, no loop.",
        );
        Ok(())
    }

    async fn cold_burst(&self) -> Result<(), BoxError> {
        step(
            5,
            &format!(
                "A cold cache (a new TokenCache over the same source) hit by {BURST_CALLS} \
                 concurrent calls. The authorization server is slow this time ({} ms, \
                 injected), as real ones are under load, so the calls arrive while the \
                 fetch is in flight.",
                SLOW_TOKEN_RESPONSE.as_millis()
            ),
        );
        let cold_cache = TokenCache::with_config(self.source.clone(), self.config.clone());
        let cold_client = client_stack(&cold_cache, &self.transport);
        self.auth.fail_next(1, Fault::Delay(SLOW_TOKEN_RESPONSE));
        let token_requests_before = self.auth.token_requests();
        let tally = calls(&cold_client, &self.url, BURST_CALLS).await?;
        let token_requests = self.auth.token_requests() - token_requests_before;
        figure("GET /orders", &tally);
        figure("token requests for the burst", token_requests);
        self.show_counts(&cold_cache);
        expect("calls answered 200", tally.ok, BURST_CALLS)?;
        expect("token requests for the burst", token_requests, 1)?;
        expect("fetches by the cold cache", cold_cache.stats().fetches, 1)?;
        notice(&format!(
            "One token request for {BURST_CALLS} concurrent callers, not {BURST_CALLS}: \
             however many find no token, they share one fetch."
        ));
        Ok(())
    }

    /// The figures every step shows, read from the servers and the cache.
    fn show_counts(&self, cache: &TokenCache) {
        figure("token requests (auth server)", self.auth.token_requests());
        figure(
            "API requests",
            format!(
                "{} ({} x 200, {} x 401)",
                self.api.requests(),
                self.api.authorized(),
                self.api.rejected()
            ),
        );
        figure("calls that waited for a token", cache.stats().waits);
    }
}

/// The client stack: retry on 401 outside the auth layer, over the HTTP client.
type Client = RetryOn401<BearerAuth<Transport>>;

fn client_stack(cache: &TokenCache, transport: &Transport) -> Client {
    ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(transport.clone())
}

/// hyper-util's client, reading each response body in full, with at most a fixed number of
/// requests on the wire at once.
///
/// Without the cap the 1,000 calls of step 5 would open 1,000 connections, plus the mock
/// API's 1,000, in this one process: more than a default open-file limit (1,024 on Linux,
/// 256 on macOS) allows. The cap is taken in `call`, not `poll_ready`, so all the calls still
/// reach the token cache together.
#[derive(Clone)]
struct Transport {
    client: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    in_flight: Arc<Semaphore>,
}

impl Transport {
    fn new(max_in_flight: usize) -> Self {
        Transport {
            client: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
        }
    }
}

impl Service<Request<Full<Bytes>>> for Transport {
    type Response = Response<Bytes>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Bytes>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Full<Bytes>>) -> Self::Future {
        let client = self.client.clone();
        let in_flight = Arc::clone(&self.in_flight);
        Box::pin(async move {
            let _permit = in_flight.acquire_owned().await?;
            let (parts, body) = client.request(request).await?.into_parts();
            // Read to the end, so the connection goes back to the pool.
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// Sends `count` GET requests to `url`, all released at the same moment.
async fn calls(client: &Client, url: &str, count: usize) -> Result<Tally, BoxError> {
    let start_line = Arc::new(Barrier::new(count));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let call = client
            .clone()
            .oneshot(Request::get(url).body(Full::default())?);
        let start_line = Arc::clone(&start_line);
        tasks.spawn(async move {
            start_line.wait().await;
            let started = Instant::now();
            let response = call.await?;
            Ok::<_, BoxError>((response.status(), started.elapsed()))
        });
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        let (status, took) = joined??;
        tally.record(status, took);
    }
    Ok(tally)
}

/// The outcome of a batch of calls.
#[derive(Default)]
struct Tally {
    ok: usize,
    other: Vec<StatusCode>,
    slowest: Duration,
}

impl Tally {
    fn record(&mut self, status: StatusCode, took: Duration) {
        if status == StatusCode::OK {
            self.ok += 1;
        } else {
            self.other.push(status);
        }
        self.slowest = self.slowest.max(took);
    }

    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.other.extend(other.other);
        self.slowest = self.slowest.max(other.slowest);
    }

    fn calls(&self) -> usize {
        self.ok + self.other.len()
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x 200 OK", self.ok)?;
        if !self.other.is_empty() {
            write!(f, ", and {:?}", self.other)?;
        }
        Ok(())
    }
}

fn step(number: u32, text: &str) {
    println!();
    print_wrapped(&format!("{number}."), text);
}

fn figure(label: &str, value: impl fmt::Display) {
    println!("   {label:<36} {value}");
}

fn notice(text: &str) {
    print_wrapped("   ->", text);
}

/// Prints `text` after `lead`, wrapped at 90 columns and indented under its first word.
fn print_wrapped(lead: &str, text: &str) {
    let indent = " ".repeat(lead.len());
    let mut line = lead.to_owned();
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 90 && line.len() > indent.len() {
            println!("{line}");
            line.clone_from(&indent);
        }
        line.push(' ');
        line.push_str(word);
    }
    println!("{line}");
}

/// Fails the demo unless `actual` is `expected`.
fn expect<T>(what: &str, actual: T, expected: T) -> Result<(), BoxError>
where
    T: PartialEq + fmt::Display,
{
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected}, counted {actual}").into())
    }
}

/// An error and its causes, one after another.
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
