//! A `/health` endpoint that shows what the token cache knows before callers notice: it
//! turns `degraded` as soon as refreshing fails, while the cached token still works, and
//! `failing` only once that token has expired.
//!
//! ```sh
//! cargo run -p examples --bin health
//! ```
//!
//! The example serves `/health` on 127.0.0.1, takes tokens from a source it can switch off
//! (standing in for an authorization server that goes down), and walks through the four
//! states, printing what the endpoint answers at each. Point your readiness probe at such
//! an endpoint: answer 200 while `is_ready()`, 503 otherwise, and alert on `degraded`.

use std::convert::Infallible;
use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower_bearer::cache::CacheHealth;
use tower_bearer::{source, CacheConfig, FetchError, Token, TokenCache};

type BoxError = Box<dyn Error + Send + Sync>;

/// Short-lived tokens, refreshed a second before they expire, so the walk takes seconds.
const LIFETIME: Duration = Duration::from_secs(4);

/// The readiness answer: 200 while requests get a token, 503 otherwise, with the details.
fn health_response(health: &CacheHealth) -> Response<Full<Bytes>> {
    let status = if health.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = format!(
        "{{\"state\":\"{}\",\"token_valid_for_s\":{},\"consecutive_failures\":{},\
         \"last_failure\":{},\"next_attempt_in_s\":{}}}",
        health.state,
        seconds(health.token_valid_for),
        health.consecutive_failures,
        health
            .last_failure
            .map_or("null".to_owned(), |kind| format!("\"{kind}\"")),
        seconds(health.next_attempt_in),
    );
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response
}

fn seconds(duration: Option<Duration>) -> String {
    duration.map_or("null".to_owned(), |d| format!("{:.1}", d.as_secs_f64()))
}

/// Serves `/health` for `cache` on a free loopback port; returns its URL.
async fn serve_health(cache: TokenCache) -> Result<String, BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/health", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let cache = cache.clone();
            let service = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
                let response = health_response(&cache.health());
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The "authorization server": hands out tokens unless switched off.
    let up = Arc::new(AtomicBool::new(true));
    let issued = Arc::new(AtomicU64::new(0));
    let token_source = {
        let (up, issued) = (Arc::clone(&up), Arc::clone(&issued));
        source::from_fn(move || {
            let up = up.load(Ordering::SeqCst);
            let n = issued.fetch_add(u64::from(up), Ordering::SeqCst) + 1;
            async move {
                if !up {
                    return Err(FetchError::transient("authorization server unavailable"));
                }
                Ok(Token::builder(format!("token-{n}"))
                    .expires_in(LIFETIME)
                    .build()?)
            }
        })
    };
    let config = CacheConfig::new()
        .refresh_window(Duration::from_secs(2), 0.0)
        .refresh_jitter(0.0)
        .expiry_skew(Duration::from_millis(500))
        .backoff(Duration::from_millis(500), Duration::from_secs(1));
    let cache = TokenCache::with_config(token_source, config);
    let url = serve_health(cache.clone()).await?;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let probe = |what: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client.get(url.parse()?).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            println!(
                "{what:<44} GET /health -> {status} {}",
                String::from_utf8_lossy(&body)
            );
            Ok::<_, BoxError>(status)
        }
    };

    println!("/health at {url}\n");
    let mut seen = vec![probe("before the first request").await?];
    cache.token().await?;
    seen.push(probe("after the first token").await?);

    up.store(false, Ordering::SeqCst);
    // Into the refresh window (2 s before expiry): the background refresh fails.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let still = cache.token().await.is_ok();
    tokio::time::sleep(Duration::from_millis(100)).await;
    seen.push(probe("server down, token still valid").await?);
    println!("{:<44} callers still get a token: {still}", "");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let failing = cache.token().await.is_err();
    seen.push(probe("server down, token expired").await?);
    println!("{:<44} callers now get an error: {failing}", "");

    up.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cache.token().await?;
    seen.push(probe("server back").await?);

    let expected = [
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
    ];
    if seen != expected || !still || !failing {
        return Err(format!("unexpected walk: {seen:?}").into());
    }
    println!("\nstarting -> healthy -> degraded -> failing -> healthy, as expected.");
    Ok(())
}
