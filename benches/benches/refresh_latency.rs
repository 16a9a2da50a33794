//! Latency of calls while a background refresh is in flight, against calls outside one,
//! under steady load over more than 20 token lifetimes.
//!
//! Tokens live 2 s and the token endpoint takes 200 ms to answer, so each lifetime has a
//! 200 ms refresh in flight that traffic must not notice. Four tasks call `BearerAuth` over
//! a no-op service in a loop on a two-worker runtime; each call's latency goes into one of
//! two HDR histograms depending on whether a fetch was in flight when it started.
//!
//! `cargo bench -p benches --bench refresh_latency` (about 30 s). Prints both histograms'
//! percentiles and how many calls waited for a token after the first fetch (must be 0).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use http::Request;
use tower::{Layer, Service, ServiceExt};
use tower_bearer::{source, BearerAuthLayer, TokenCache, TokenSource};
use tower_bearer_testkit::{AuthServer, Fault};

const LIFETIME: Duration = Duration::from_secs(2);
const FETCH_TIME: Duration = Duration::from_millis(200);
const LIFETIMES: u64 = 21;
const TASKS: usize = 4;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("refresh_latency failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

async fn run() -> Result<bool, Error> {
    let auth = AuthServer::builder()
        .token_lifetime(LIFETIME)
        .start()
        .await?;
    auth.fail_always(Fault::Delay(FETCH_TIME));
    let oauth = Arc::new(benches::default_client_source(&auth.token_url())?);
    // The source raises a flag while a fetch is in flight, so calls can be told apart.
    let refreshing = Arc::new(AtomicBool::new(false));
    let source = {
        let refreshing = Arc::clone(&refreshing);
        source::from_fn(move || {
            let (oauth, refreshing) = (Arc::clone(&oauth), Arc::clone(&refreshing));
            async move {
                refreshing.store(true, Ordering::SeqCst);
                let result = oauth.fetch().await;
                refreshing.store(false, Ordering::SeqCst);
                result
            }
        })
    };
    let cache = TokenCache::new(source);
    let service = BearerAuthLayer::new(cache.clone()).layer(benches::Noop);
    service.clone().oneshot(Request::new(())).await?;
    let first_fetches = auth.token_requests();

    let deadline = Instant::now() + LIFETIME * LIFETIMES as u32;
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (mut service, refreshing, calls) =
            (service.clone(), Arc::clone(&refreshing), Arc::clone(&calls));
        tasks.push(tokio::spawn(async move {
            let (mut during, mut outside) = (histogram(), histogram());
            let mut count = 0u64;
            while Instant::now() < deadline {
                for _ in 0..64 {
                    let in_refresh = refreshing.load(Ordering::Relaxed);
                    let started = Instant::now();
                    let ready = ServiceExt::<Request<()>>::ready(&mut service).await?;
                    ready.call(Request::new(())).await?;
                    let nanos = started.elapsed().as_nanos() as u64;
                    let target = if in_refresh {
                        &mut during
                    } else {
                        &mut outside
                    };
                    target.saturating_record(nanos.max(1));
                    count += 1;
                }
                tokio::task::yield_now().await;
            }
            calls.fetch_add(count, Ordering::Relaxed);
            Ok::<_, tower::BoxError>((during, outside))
        }));
    }
    let (mut during, mut outside) = (histogram(), histogram());
    for task in tasks {
        let (d, o) = task.await?.map_err(|e| e.to_string())?;
        during.add(d)?;
        outside.add(o)?;
    }

    let waited = cache.stats().waits - 1;
    let refreshes = auth.token_requests() - first_fetches;
    println!(
        "refresh_latency: {} calls over {} s, {refreshes} background refreshes, {waited} calls waited after the first fetch",
        calls.load(Ordering::Relaxed),
        (LIFETIME * LIFETIMES as u32).as_secs()
    );
    for (name, h) in [("during refresh", &during), ("outside refresh", &outside)] {
        println!(
            "  {name:<16} n={:<10} p50={:>6} ns  p99={:>6} ns  p99.9={:>7} ns  max={:>9} ns",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    let ratio = during.value_at_quantile(0.999) as f64 / outside.value_at_quantile(0.999) as f64;
    println!("  p99.9 during / outside = {ratio:.2}x (bar: <= 1.10x)");
    Ok(waited == 0 && refreshes >= LIFETIMES - 2)
}
