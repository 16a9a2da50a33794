//! The `loopback` throughput ratio, measured robustly on a noisy machine: rounds that each
//! send one burst of requests without auth and one with it, in alternating order; each
//! side's figure is its median over the rounds. Prints a Markdown table.
//!
//! `cargo bench -p benches --bench loopback_ratios`

use benches::loopback::{run, server};
use benches::warm_cache;
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

    // Warm the connection pool for both.
    runtime.block_on(run(&http, &url, 1_000));
    runtime.block_on(run(&with_auth, &url, 1_000));
    let (mut bare, mut auth) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let per_second =
            |elapsed: std::time::Duration| REQUESTS_PER_BURST as f64 / elapsed.as_secs_f64();
        if round % 2 == 0 {
            bare.push(per_second(runtime.block_on(run(
                &http,
                &url,
                REQUESTS_PER_BURST,
            ))));
            auth.push(per_second(runtime.block_on(run(
                &with_auth,
                &url,
                REQUESTS_PER_BURST,
            ))));
        } else {
            auth.push(per_second(runtime.block_on(run(
                &with_auth,
                &url,
                REQUESTS_PER_BURST,
            ))));
            bare.push(per_second(runtime.block_on(run(
                &http,
                &url,
                REQUESTS_PER_BURST,
            ))));
        }
    }
    let (bare, auth) = (median(&mut bare), median(&mut auth));
    println!("| benchmark | median req/s | ratio to bare |");
    println!("|---|---:|---:|");
    println!("| loopback/bare | {bare:.0} | 1.000x |");
    println!("| loopback/bearer_auth | {auth:.0} | {:.3}x |", auth / bare);
    println!("\n{ROUNDS} rounds of {REQUESTS_PER_BURST} requests per side, 32 in flight.");
}
