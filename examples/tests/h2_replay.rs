//! Replays that never race: over HTTP/2, a server that refuses the token before it reads the
//! request body (an auth proxy, say) may leave a body that was being recorded as it was sent
//! unfinished, and such a request could not be replayed. `RetryOn401Layer::collected` reads
//! small bodies before the first send, so every one of these replays.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{ServiceBuilder, ServiceExt};
use tower_bearer::{BearerAuthLayer, CacheConfig, RetryOn401Layer, TokenCache};
use tower_bearer_test_support::{current_token, NumberedSource};

/// Tokens the server refuses; it answers them with a 401 without reading the body.
type Revoked = Arc<Mutex<HashSet<String>>>;

/// An HTTP/2-only server on 127.0.0.1 that refuses revoked tokens at once and echoes the
/// body of every other request.
async fn early_refusing_server(revoked: Revoked) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let revoked = Arc::clone(&revoked);
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let revoked = Arc::clone(&revoked);
                async move {
                    let token = request.headers()["authorization"]
                        .to_str()
                        .unwrap()
                        .trim_start_matches("Bearer ")
                        .to_owned();
                    if revoked.lock().unwrap().contains(&token) {
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                        return Ok::<_, Infallible>(response);
                    }
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    Ok(Response::new(Full::new(body)))
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

/// `token-1`, `token-2`, ...; the source counts its fetches.
fn numbered_tokens() -> (TokenCache, NumberedSource) {
    let source = NumberedSource::new();
    // Revocations in quick succession look like an API that refuses every token, which the
    // cache answers by holding new tokens back; a short backoff, and requests spaced past
    // it, keep this test about bodies.
    let config = CacheConfig::new().backoff(Duration::from_millis(10), Duration::from_millis(40));
    (TokenCache::with_config(source.clone(), config), source)
}

/// A body that is not `Clone`, as a streaming request body is not.
fn streaming(bytes: &'static str) -> UnsyncBoxBody<Bytes, Infallible> {
    Full::new(Bytes::from_static(bytes.as_bytes())).boxed_unsync()
}

#[tokio::test]
async fn every_request_refused_before_its_body_was_read_is_replayed_over_h2() {
    const REQUESTS: usize = 50;
    const BODY: &str = "a thirty-byte JSON-ish payload";
    let revoked = Revoked::default();
    let addr = early_refusing_server(Arc::clone(&revoked)).await;
    let (cache, source) = numbered_tokens();
    let client = ServiceBuilder::new()
        .layer(RetryOn401Layer::collected(1024))
        .layer(BearerAuthLayer::new(cache.clone()))
        .service(
            Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build_http(),
        );
    cache.token().await.unwrap();

    for request in 0..REQUESTS {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let token = current_token(&cache);
        revoked.lock().unwrap().insert(token);
        let call = Request::post(format!("http://{addr}/echo"))
            .body(streaming(BODY))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), client.clone().oneshot(call))
            .await
            .expect("answered within 10 s")
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {request}");
        let echoed = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            echoed, BODY,
            "request {request}: the replay carried the whole body"
        );
    }
    assert_eq!(source.fetches(), REQUESTS as u64 + 1);
}
