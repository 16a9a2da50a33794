//! The `loopback` throughput ratios, measured robustly on a noisy machine: rounds that each
//! send one burst of requests without auth, one with a bearer token and one with a
//! DPoP-bound token, in rotating order; each side's figure is its median over the rounds.
//! Prints a Markdown table.
//!
//! `cargo bench -p benches --bench loopback_ratios`

use benches::loopback::{run, server};
use benches::{warm_cache, warm_dpop_cache};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::Layer;
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};

const ROUNDS: usize = 31;
const REQUESTS_PER_BURST: u64 = 4_000;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
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

    // Warm the connection pool for each.
    runtime.block_on(run(&http, &url, 1_000));
    runtime.block_on(run(&with_auth, &url, 1_000));
    runtime.block_on(run(&with_dpop, &url, 1_000));
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    let per_second =
        |elapsed: std::time::Duration| REQUESTS_PER_BURST as f64 / elapsed.as_secs_f64();
    for round in 0..ROUNDS {
        // Rotate the order each round so no side always runs right after another.
        for k in 0..3 {
            let i = (k + round) % 3;
            let elapsed = match i {
                0 => runtime.block_on(run(&http, &url, REQUESTS_PER_BURST)),
                1 => runtime.block_on(run(&with_auth, &url, REQUESTS_PER_BURST)),
                _ => runtime.block_on(run(&with_dpop, &url, REQUESTS_PER_BURST)),
            };
            samples[i].push(per_second(elapsed));
        }
    }
    let [mut bare, mut auth, mut dpop] = samples;
    let (bare, auth, dpop) = (median(&mut bare), median(&mut auth), median(&mut dpop));
    println!("| benchmark | median req/s | ratio to bare | ratio to bearer_auth |");
    println!("|---|---:|---:|---:|");
    println!("| loopback/bare | {bare:.0} | 1.000x | |");
    println!(
        "| loopback/bearer_auth | {auth:.0} | {:.3}x | 1.000x |",
        auth / bare
    );
    println!(
        "| loopback/dpop | {dpop:.0} | {:.3}x | {:.3}x |",
        dpop / bare,
        dpop / auth
    );
    println!("\n{ROUNDS} rounds of {REQUESTS_PER_BURST} requests per side, 32 in flight.");
}
