//! The fresh-token path allocates nothing beyond what the no-op baseline does: counted with
//! a global allocator, not timed, on the calling thread only (other threads allocate when
//! they like; a process-wide count compared exactly failed now and then).

use benches::alloc::Counting;
use benches::{call_now, request, warm_cache, NaiveMutex, Noop, TOKEN};
use http::Request;
use tower::{Layer, Service};
use tower_bearer::{BearerAuthLayer, RetryOn401Layer};
use tower_http::auth::AddAuthorizationLayer;

#[global_allocator]
static ALLOC: Counting = Counting::new();

const CALLS: u64 = 10_000;

/// Allocations per call, over `CALLS` calls after a warm-up.
fn allocations_per_call<S>(mut service: S) -> f64
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..100 {
        call_now(&mut service, request());
    }
    let before = ALLOC.allocations_on_this_thread();
    for _ in 0..CALLS {
        call_now(&mut service, request());
    }
    (ALLOC.allocations_on_this_thread() - before) as f64 / CALLS as f64
}

#[test]
fn the_fresh_path_allocates_no_more_than_the_noop_baseline() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache = warm_cache(&runtime);

    let noop = allocations_per_call(Noop);
    let add_authorization = allocations_per_call(AddAuthorizationLayer::bearer(TOKEN).layer(Noop));
    let bearer_auth = allocations_per_call(BearerAuthLayer::new(cache.clone()).layer(Noop));
    let naive_mutex = allocations_per_call(NaiveMutex::new(Noop));
    let with_retry =
        allocations_per_call(RetryOn401Layer::new().layer(BearerAuthLayer::new(cache).layer(Noop)));
    println!(
        "allocations per call: noop {noop}, add_authorization {add_authorization}, \
         bearer_auth {bearer_auth}, naive_mutex {naive_mutex}, bearer_auth_with_retry {with_retry}"
    );

    assert_eq!(
        bearer_auth, noop,
        "the fresh path allocates nothing of its own"
    );
    assert_eq!(add_authorization, noop);
    // The counter works: building the request allocates its header table.
    assert!(noop >= 1.0, "{noop}");
    // The retry layer keeps the request's head for a replay in one allocation: the header
    // pairs, in a buffer of exactly their number (`retry/head.rs`). The method and URI are
    // cloned without allocating (a standard method, a URI made of shared bytes) and this
    // request has no extensions; a cloned `HeaderMap` cost two allocations here.
    assert_eq!(
        with_retry,
        noop + 1.0,
        "the retry layer allocates once per request"
    );
}
