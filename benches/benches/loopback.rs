//! Requests per second through a real hyper HTTP/1.1 keep-alive client to a hyper server on
//! 127.0.0.1, without auth (`bare`) and with the auth and retry layers (`bearer_auth`).
//!
//! Each iteration is one request; 32 are kept in flight so the figure is throughput, not
//! the latency of one round trip. The server answers 200 without checking the token, so
//! both ids do the same server work.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use benches::warm_cache;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{BoxError, Layer, Service, ServiceExt};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};

const IN_FLIGHT: u64 = 32;

/// A server on 127.0.0.1 answering every request with `200 ok`.
async fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|_: Request<Incoming>| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Sends `total` GETs to `url` through `client`, `IN_FLIGHT` at a time; the elapsed time.
async fn run<S>(client: &S, url: &str, total: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<Incoming>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    let started = Instant::now();
    let mut in_flight = JoinSet::new();
    for sent in 0..total {
        if sent >= IN_FLIGHT {
            in_flight
                .join_next()
                .await
                .expect("a request in flight")
                .expect("no panic");
        }
        let request = Request::get(url)
            .body(Full::default())
            .expect("valid request");
        let call = client.clone().oneshot(request);
        in_flight.spawn(async move {
            let response = call.await.map_err(Into::into).expect("request succeeds");
            assert!(response.status().is_success());
            response.into_body().collect().await.expect("body read");
        });
    }
    while let Some(done) = in_flight.join_next().await {
        done.expect("no panic");
    }
    started.elapsed()
}

fn loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = runtime.block_on(server());
    let url = format!("http://{addr}/");
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let cache = warm_cache(&runtime);
    let with_auth = RetryOn401Layer::new().layer(BearerAuthLayer::new(cache).layer(http.clone()));

    let mut group = c.benchmark_group("loopback");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| runtime.block_on(run(&http, &url, iters)))
    });
    group.bench_function("bearer_auth", |b| {
        b.iter_custom(|iters| runtime.block_on(run(&with_auth, &url, iters)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = loopback
}
criterion_main!(benches);
