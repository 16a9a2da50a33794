//! Requests per second through a real hyper HTTP/1.1 keep-alive client to a hyper server on
//! 127.0.0.1, without auth (`bare`), with the auth and retry layers (`bearer_auth`), and
//! with a DPoP-bound token (`dpop`: a proof per request).
//!
//! Each iteration is one request; 32 are kept in flight so the figure is throughput, not
//! the latency of one round trip. The server answers 200 without checking the token, so
//! both ids do the same server work.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::time::Duration;

use benches::loopback::{run, server};
use benches::{warm_cache, warm_dpop_cache};
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::Layer;
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};

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
    let (dpop_cache, _key) = warm_dpop_cache(&runtime, false);
    let with_dpop =
        RetryOn401Layer::new().layer(BearerAuthLayer::new(dpop_cache).layer(http.clone()));

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
    // A DPoP-bound token (ES256): a proof signed for every request.
    group.bench_function("dpop", |b| {
        b.iter_custom(|iters| runtime.block_on(run(&with_dpop, &url, iters)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = loopback
}
criterion_main!(benches);
