//! The whole of tower-bearer in one run, against a mock authorization server and a mock API
//! started in this process on 127.0.0.1. No setup:
//!
//! ```sh
//! cargo run -p examples --bin demo
//! ```
//!
//! Tokens live 6 seconds here so that a background refresh happens while you watch. The
//! demo checks every figure it prints and exits non-zero if one is not what it should be.

use std::error::Error;
use std::fmt::Display;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, CacheConfig, RetryOn401Layer, TokenCache};
use tower_bearer_oauth2::ClientCredentials;
use tower_bearer_testkit::{ApiServer, AuthServer};

type Result<T = (), E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

const TOKEN_LIFETIME: Duration = Duration::from_secs(6);

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("\ndemo failed: {error}");
        std::process::exit(1);
    }
}

async fn run() -> Result {
    let auth = AuthServer::builder()
        .token_lifetime(TOKEN_LIFETIME)
        .start()
        .await?;
    let api = ApiServer::start(&auth).await?;
    println!("tower-bearer demo");
    println!("  authorization server  {}", auth.token_url());
    println!("  API                   {}", api.url());
    println!("  tokens live {} s\n", TOKEN_LIFETIME.as_secs());

    let http: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let source = ClientCredentials::builder(
        auth.token_url(),
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
    .build()?;
    // Refresh 2 s before expiry, stop using a token 1 s before it; no jitter, so the
    // timeline below is exact.
    let config = CacheConfig::new()
        .expiry_skew(Duration::from_secs(1))
        .refresh_window(Duration::from_secs(2), 0.0)
        .refresh_jitter(0.0);
    let cache = TokenCache::with_config(source.clone(), config.clone());
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(http.clone());
    let get = || Request::get(api.url()).body(Full::<Bytes>::default());

    step(
        1,
        "The first call finds no token: the cache fetches one, the call waits for it.",
    );
    let started = Instant::now();
    let status = client.clone().oneshot(get()?).await?.status();
    show("status", status);
    show("token requests", auth.token_requests());
    expect(
        status == StatusCode::OK && auth.token_requests() == 1,
        "one fetch, then 200",
    )?;

    step(
        2,
        "50 more calls reuse the cached token: no token request, no waiting.",
    );
    let statuses = calls(&client, 50, get).await?;
    show("statuses", summary(&statuses));
    show("token requests", auth.token_requests());
    show("calls that waited for a token", cache.stats().waits);
    expect(
        auth.token_requests() == 1 && cache.stats().waits == 1,
        "the token was reused",
    )?;

    step(
        3,
        "4 s in, the token enters its refresh window. Calls keep using it while one \
             background fetch replaces it.",
    );
    sleep((started + Duration::from_millis(4100)).saturating_duration_since(Instant::now())).await;
    let mut during = Vec::new();
    for _ in 0..10 {
        during.extend(calls(&client, 5, get).await?);
        sleep(Duration::from_millis(50)).await;
    }
    show("statuses during the refresh", summary(&during));
    show("token requests", auth.token_requests());
    show("calls that waited for a token", cache.stats().waits);
    expect(
        auth.token_requests() == 2 && cache.stats().waits == 1,
        "one background refresh, nobody waited",
    )?;

    step(
        4,
        "The authorization server revokes every token it issued. The API answers 401 \
             invalid_token; the retry layer drops that token, fetches a new one and sends \
             the request again, once.",
    );
    auth.revoke_all();
    let rejected_before = api.rejected();
    let status = client.clone().oneshot(get()?).await?.status();
    show("status the caller sees", status);
    show("401s the API sent", api.rejected() - rejected_before);
    show("token requests", auth.token_requests());
    expect(
        status == StatusCode::OK
            && api.rejected() - rejected_before == 1
            && auth.token_requests() == 3,
        "one 401, one new token, one replay",
    )?;

    step(
        5,
        "A new, cold cache is hit by 1,000 concurrent calls at once: exactly one token \
             request, and every call succeeds.",
    );
    let cold = TokenCache::with_config(source, config);
    let burst_client = ServiceBuilder::new()
        .layer(RetryOn401Layer::new())
        .layer(BearerAuthLayer::new(cold.clone()))
        .service(http);
    let before = auth.token_requests();
    let statuses = calls(&burst_client, 1_000, get).await?;
    show("statuses", summary(&statuses));
    show(
        "token requests for the burst",
        auth.token_requests() - before,
    );
    expect(
        auth.token_requests() - before == 1 && statuses.iter().all(|s| *s == StatusCode::OK),
        "1,000 callers, one fetch",
    )?;

    println!(
        "\nAll done: {} token requests for {} API calls.",
        auth.token_requests(),
        api.requests()
    );
    Ok(())
}

/// `count` concurrent calls; their statuses, in completion order.
async fn calls<S>(
    client: &S,
    count: usize,
    request: impl Fn() -> Result<Request<Full<Bytes>>, http::Error>,
) -> Result<Vec<StatusCode>>
where
    S: tower::Service<Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>
        + Clone
        + Send
        + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    S::Future: Send,
{
    let mut set = JoinSet::new();
    for _ in 0..count {
        let call = client.clone().oneshot(request()?);
        set.spawn(async move { call.await.map(|r| r.status()).map_err(Into::into) });
    }
    let mut statuses = Vec::with_capacity(count);
    while let Some(joined) = set.join_next().await {
        let status: Result<StatusCode> = joined?;
        statuses.push(status?);
    }
    Ok(statuses)
}

fn summary(statuses: &[StatusCode]) -> String {
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    if ok == statuses.len() {
        format!("{ok} x 200 OK")
    } else {
        format!("{ok} x 200 OK, {} other", statuses.len() - ok)
    }
}

/// Prints a numbered step, wrapped to 88 columns.
fn step(number: u32, text: &str) {
    let mut line = format!("\n{number}.");
    for word in text.split_whitespace() {
        if line.len() + word.len() > 88 {
            println!("{line}");
            line = "  ".to_owned();
        }
        line.push(' ');
        line.push_str(word);
    }
    println!("{line}");
}

fn show(label: &str, value: impl Display) {
    println!("   {label:<32}{value}");
}

fn expect(ok: bool, what: &str) -> Result {
    if ok {
        println!("   ok: {what}");
        Ok(())
    } else {
        Err(format!("expected {what}, see the figures above").into())
    }
}
