//! Counts, not times: how many token requests a cold cache makes for 10,000 concurrent
//! callers, and how many refreshes 100 concurrent 401s for one token cause. Both against
//! the testkit's authorization server over 127.0.0.1, with the OAuth 2.0 client credentials
//! source. Prints the counts and exits non-zero if they are not 1 and 1.
//!
//! `cargo bench -p benches --bench stampede`

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tower::{Layer, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer, TokenCache};
use tower_bearer_testkit::{ApiServer, AuthServer, Fault};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("stampede bench failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Error> {
    let auth = AuthServer::start().await?;
    let api = ApiServer::start(&auth).await?;
    let source = benches::default_client_source(&auth.token_url())?;

    // 1. A cold cache and 10,000 callers at once; the token endpoint takes 100 ms.
    auth.fail_next(1, Fault::Delay(Duration::from_millis(100)));
    let cache = TokenCache::new(source.clone());
    let service = BearerAuthLayer::new(cache.clone()).layer(benches::Noop);
    let mut callers = JoinSet::new();
    for _ in 0..10_000 {
        callers.spawn(service.clone().oneshot(Request::new(())));
    }
    let mut ok = 0;
    while let Some(done) = callers.join_next().await {
        if done?.is_ok() {
            ok += 1;
        }
    }
    let cold_requests = auth.token_requests();
    println!("stampede: 10000 concurrent callers on a cold cache: {ok} succeeded, {cold_requests} token request(s)");

    // 2. 100 concurrent requests whose token the API has stopped accepting.
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let cache = TokenCache::new(source);
    let client = RetryOn401Layer::new().layer(BearerAuthLayer::new(cache.clone()).layer(http));
    let warm = Request::get(api.url()).body(Full::default())?;
    client.clone().oneshot(warm).await?;
    let before = auth.token_requests();
    auth.revoke_all();
    auth.fail_next(1, Fault::Delay(Duration::from_millis(100)));
    let mut callers = JoinSet::new();
    for _ in 0..100 {
        let request = Request::get(api.url()).body(Full::default())?;
        callers.spawn(client.clone().oneshot(request));
    }
    let mut ok = 0;
    while let Some(done) = callers.join_next().await {
        if done?.map(|r| r.status().is_success()).unwrap_or(false) {
            ok += 1;
        }
    }
    let refreshes = auth.token_requests() - before;
    println!(
        "stampede: 100 concurrent calls, {} answered 401: {ok} succeeded after replay, {refreshes} refresh(es)",
        api.rejected()
    );
    Ok(cold_requests == 1 && refreshes == 1)
}
