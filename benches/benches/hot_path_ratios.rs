//! The `hot_path` and `hot_path_contended` ratios, measured robustly on a noisy machine.
//!
//! Criterion measures one id after the other, so a neighbour that wakes up for ten seconds
//! skews whichever ids it overlaps. Here every round measures every id once, for a short
//! burst, in turn; each id's figure is its median over the rounds, and the ratios are taken
//! between medians of the same run. Prints a Markdown table.
//!
//! `cargo bench -p benches --bench hot_path_ratios`

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use benches::{call_now, request, warm_cache, NaiveMutex, NaiveRwLock, Noop, TOKEN};
use http::Request;
use tower::{Layer, Service};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};
use tower_http::auth::AddAuthorizationLayer;

const ROUNDS: usize = 41;
const CALLS_PER_BURST: u32 = 50_000;

/// Nanoseconds per call for one burst of `CALLS_PER_BURST` calls on each of `threads`
/// threads, each with its own clone of `service`.
fn burst<S>(service: &S, threads: usize) -> f64
where
    S: Service<Request<()>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(threads);
    let total: Duration = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (mut service, barrier) = (service.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let started = Instant::now();
                    for _ in 0..CALLS_PER_BURST {
                        black_box(call_now(&mut service, black_box(request())));
                    }
                    started.elapsed()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    total.as_nanos() as f64 / (threads as f64 * f64::from(CALLS_PER_BURST))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let cache = warm_cache(&runtime);
    let add_authorization = AddAuthorizationLayer::bearer(TOKEN).layer(Noop);
    let bearer_auth = BearerAuthLayer::new(cache.clone()).layer(Noop);
    let with_retry = RetryOn401Layer::new().layer(BearerAuthLayer::new(cache).layer(Noop));
    let naive_mutex = NaiveMutex::new(Noop);
    let naive_rwlock = NaiveRwLock::new(Noop);
    let ids = [
        "noop",
        "add_authorization",
        "bearer_auth",
        "bearer_auth_with_retry",
        "naive_mutex",
        "naive_rwlock",
    ];
    let cores = thread::available_parallelism().map_or(2, |n| n.get());

    println!("| benchmark | median ns/call | ratio to add_authorization |");
    println!("|---|---:|---:|");
    for (group, threads) in [("hot_path", 1), ("hot_path_contended", cores)] {
        let mut samples = vec![Vec::with_capacity(ROUNDS); ids.len()];
        for round in 0..ROUNDS {
            // Rotate the order each round so no id always runs right after another.
            for k in 0..ids.len() {
                let i = (k + round) % ids.len();
                let ns = match i {
                    0 => burst(&Noop, threads),
                    1 => burst(&add_authorization, threads),
                    2 => burst(&bearer_auth, threads),
                    3 => burst(&with_retry, threads),
                    4 => burst(&naive_mutex, threads),
                    _ => burst(&naive_rwlock, threads),
                };
                samples[i].push(ns);
            }
        }
        let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
        for (id, value) in ids.iter().zip(&medians) {
            println!("| {group}/{id} | {value:.1} | {:.2}x |", value / medians[1]);
        }
    }
    println!("\n{ROUNDS} rounds of {CALLS_PER_BURST} calls per id per thread; contended: {cores} threads.");
}
