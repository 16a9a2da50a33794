//! Cost of adding the token on the fresh path, against `AddAuthorization` (a static header:
//! the physical limit) and the hand-written caches users write today.
//!
//! `hot_path`: one thread. `hot_path_contended`: every core calls clones of one service
//! sharing one cache. Each iteration builds a request, runs `poll_ready`, `call` and the
//! response future to completion, without a runtime.

// `criterion_group!` defines a public function it cannot document.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use benches::{
    absolute_request, call_now, request, warm_cache, warm_dpop_cache, NaiveMutex, NaiveRwLock,
    Noop, DPOP_URI, TOKEN,
};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use http::Request;
use tower::{Layer, Service};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};
use tower_http::auth::AddAuthorizationLayer;

type Response = http::Response<()>;

/// Registers `id` in `group`, measured with `service` (uncontended) or clones of it on
/// every core (contended).
fn bench<S>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    service: S,
    contended: bool,
) where
    S: Service<Request<()>, Response = Response> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
{
    if !contended {
        let mut service = service;
        group.bench_function(id, |b| {
            b.iter(|| black_box(call_now(&mut service, black_box(request()))))
        });
        return;
    }
    let threads = thread::available_parallelism().map_or(2, |n| n.get());
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(threads);
            thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        let mut service = service.clone();
                        let barrier = &barrier;
                        scope.spawn(move || {
                            barrier.wait();
                            let started = Instant::now();
                            for _ in 0..iters {
                                black_box(call_now(&mut service, black_box(request())));
                            }
                            started.elapsed()
                        })
                    })
                    .collect();
                // Per-call time as each thread saw it, averaged over the threads.
                let total: Duration = workers.into_iter().map(|w| w.join().expect("worker")).sum();
                total / threads as u32
            })
        })
    });
}

/// Registers `id`, measured with `service` on [`absolute_request`]s, uncontended.
fn bench_absolute<S>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    mut service: S,
) where
    S: Service<Request<()>, Response = Response>,
    S::Error: std::fmt::Debug,
{
    group.bench_function(id, |b| {
        b.iter(|| black_box(call_now(&mut service, black_box(absolute_request()))))
    });
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    for (name, contended) in [("hot_path", false), ("hot_path_contended", true)] {
        let mut group = c.benchmark_group(name);
        group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        bench(&mut group, "noop", Noop, contended);
        bench(
            &mut group,
            "add_authorization",
            AddAuthorizationLayer::bearer(TOKEN).layer(Noop),
            contended,
        );
        let cache = warm_cache(&runtime);
        bench(
            &mut group,
            "bearer_auth",
            BearerAuthLayer::new(cache.clone()).layer(Noop),
            contended,
        );
        let with_retry = RetryOn401Layer::new().layer(BearerAuthLayer::new(cache).layer(Noop));
        bench(&mut group, "bearer_auth_with_retry", with_retry, contended);
        bench(&mut group, "naive_mutex", NaiveMutex::new(Noop), contended);
        if !contended {
            // DPoP (RFC 9449): a proof per request, against the bearer path with the same
            // request (a proof needs an absolute URI); `dpop_proof` is the proof alone.
            let (dpop_cache, key) = warm_dpop_cache(&runtime, false);
            let bearer = BearerAuthLayer::new(warm_cache(&runtime)).layer(Noop);
            let dpop = BearerAuthLayer::new(dpop_cache).layer(Noop);
            bench_absolute(&mut group, "bearer_auth_absolute", bearer);
            bench_absolute(&mut group, "dpop", dpop);
            let uri = http::Uri::from_static(DPOP_URI);
            let ath = tower_bearer::dpop::access_token_hash(TOKEN);
            group.bench_function("dpop_proof", |b| {
                b.iter(|| black_box(key.proof_with_ath(&http::Method::GET, &uri, &ath, None)))
            });
        }
        bench(
            &mut group,
            "naive_rwlock",
            NaiveRwLock::new(Noop),
            contended,
        );
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = hot_path
}
criterion_main!(benches);
