//! Runs one `hot_path` id a fixed number of times, for counting instructions with
//! cachegrind: a figure the machine's noise cannot move.
//!
//! `benches/instructions.sh` runs every id under `valgrind --tool=cachegrind` and prints the
//! ratios. By hand: `valgrind --tool=cachegrind <this binary> bearer_auth`.

use std::hint::black_box;
use std::process::ExitCode;

use benches::{
    absolute_request, call_now, request, warm_cache, warm_dpop_cache, NaiveMutex, NaiveRwLock,
    Noop, TOKEN,
};
use http::Request;
use tower::{Layer, Service};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};
use tower_http::auth::AddAuthorizationLayer;

/// Calls per run; the set-up (runtime, first fetch) is a fixed cost that the ratio script
/// removes by also running each id with zero calls.
const CALLS: u32 = 200_000;

fn run<S>(service: S, calls: u32)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    run_with(service, calls, request);
}

/// [`run`] with requests from `make`: the DPoP ids need an absolute URI.
fn run_with<S>(mut service: S, calls: u32, make: fn() -> Request<()>)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..calls {
        black_box(call_now(&mut service, black_box(make())));
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let id = args.next().unwrap_or_default();
    let calls = match args.next().map(|n| n.parse::<u32>()) {
        None => CALLS,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("the second argument is the number of calls, a whole number");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let cache = warm_cache(&runtime);
    match id.as_str() {
        "noop" => run(Noop, calls),
        "add_authorization" => run(AddAuthorizationLayer::bearer(TOKEN).layer(Noop), calls),
        "bearer_auth" => run(BearerAuthLayer::new(cache).layer(Noop), calls),
        "bearer_auth_with_retry" => run(
            RetryOn401Layer::new().layer(BearerAuthLayer::new(cache).layer(Noop)),
            calls,
        ),
        "naive_mutex" => run(NaiveMutex::new(Noop), calls),
        "naive_rwlock" => run(NaiveRwLock::new(Noop), calls),
        "noop_absolute" => run_with(Noop, calls, absolute_request),
        "bearer_auth_absolute" => run_with(
            BearerAuthLayer::new(cache).layer(Noop),
            calls,
            absolute_request,
        ),
        "dpop" => {
            let (dpop_cache, _key) = warm_dpop_cache(&runtime, true);
            run_with(
                BearerAuthLayer::new(dpop_cache).layer(Noop),
                calls,
                absolute_request,
            )
        }
        "dpop_proof" => {
            let (_cache, key) = warm_dpop_cache(&runtime, true);
            // What the layer signs: the token's hash is made once per token, not per proof.
            let ath = tower_bearer::dpop::access_token_hash(TOKEN);
            for _ in 0..calls {
                let request = black_box(absolute_request());
                let proof = key.proof_with_ath(request.method(), request.uri(), &ath, None);
                black_box(proof.expect("a proof"));
            }
        }
        _ => {
            eprintln!(
                "usage: hot_path_instructions <id> [calls]; ids: noop, add_authorization, \
                 bearer_auth, bearer_auth_with_retry, naive_mutex, naive_rwlock, \
                 noop_absolute, bearer_auth_absolute, dpop, dpop_proof"
            );
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
