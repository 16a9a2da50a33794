//! Token cache behaviour on paused tokio time, with an in-process source for fault injection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tower_bearer::{CacheConfig, FetchError, Token, TokenCache, TokenSource};

/// A source that counts fetches, takes a while, and can be switched to failing.
#[derive(Clone)]
struct TestSource {
    state: Arc<State>,
}

struct State {
    fetches: AtomicU64,
    lifetime: Duration,
    latency: Duration,
    failing: AtomicBool,
    permanent: AtomicBool,
}

impl TestSource {
    fn new(lifetime: Duration, latency: Duration) -> Self {
        TestSource {
            state: Arc::new(State {
                fetches: AtomicU64::new(0),
                lifetime,
                latency,
                failing: AtomicBool::new(false),
                permanent: AtomicBool::new(false),
            }),
        }
    }

    fn fetches(&self) -> u64 {
        self.state.fetches.load(Ordering::SeqCst)
    }

    fn fail(&self, failing: bool) {
        self.state.failing.store(failing, Ordering::SeqCst);
    }
}

impl TokenSource for TestSource {
    fn fetch(&self) -> tower_bearer::source::TokenFuture<'_> {
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let n = state.fetches.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(state.latency).await;
            if state.failing.load(Ordering::SeqCst) {
                return Err(if state.permanent.load(Ordering::SeqCst) {
                    FetchError::permanent("invalid_client")
                } else {
                    FetchError::transient("authorization server unavailable")
                });
            }
            Ok(Token::builder(format!("token-{n}"))
                .expires_in(state.lifetime)
                .build()?)
        })
    }
}

fn exact_config() -> CacheConfig {
    CacheConfig::new().refresh_jitter(0.0)
}

#[tokio::test(start_paused = true)]
async fn ten_thousand_cold_callers_cause_one_fetch() {
    let source = TestSource::new(Duration::from_secs(3600), Duration::from_millis(50));
    let cache = TokenCache::new(source.clone());
    let callers: Vec<_> = (0..10_000)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        assert_eq!(token.header_value(), "Bearer token-1");
    }
    assert_eq!(source.fetches(), 1);
    assert_eq!(cache.stats().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_caller_does_not_cancel_the_fetch() {
    let source = TestSource::new(Duration::from_secs(3600), Duration::from_millis(100));
    let cache = TokenCache::new(source.clone());
    let first = tokio::spawn({
        let cache = cache.clone();
        async move { cache.token().await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let token = cache.token().await.unwrap();
    assert_eq!(token.header_value(), "Bearer token-1");
    assert_eq!(
        source.fetches(),
        1,
        "the second caller joined the first fetch"
    );
}

#[tokio::test(start_paused = true)]
async fn steady_traffic_never_waits_after_the_first_fetch() {
    let lifetime = Duration::from_secs(60);
    let source = TestSource::new(lifetime, Duration::from_millis(200));
    let cache = TokenCache::with_config(source.clone(), exact_config());
    cache.token().await.unwrap();
    let start = Instant::now();
    let mut calls = 0u64;
    // Twelve lifetimes of traffic, a call every 100 ms from each of 4 tasks.
    while start.elapsed() < lifetime * 12 {
        let batch: Vec<_> = (0..4)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.token().await.map(|_| ()) })
            })
            .collect();
        for call in batch {
            call.await.unwrap().unwrap();
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = cache.stats();
    assert!(calls > 20_000, "{calls}");
    assert_eq!(stats.waits, 1, "only the very first call waits: {stats:?}");
    // 60 s tokens are refreshed after 30 s: about two fetches per lifetime.
    assert!(
        (23..=26).contains(&source.fetches()),
        "{}",
        source.fetches()
    );
}

#[tokio::test(start_paused = true)]
async fn serves_a_valid_token_while_the_server_is_down_and_backs_off() {
    let lifetime = Duration::from_secs(600);
    let source = TestSource::new(lifetime, Duration::from_millis(10));
    let cache = TokenCache::with_config(source.clone(), exact_config());
    let first = cache.token().await.unwrap();
    source.fail(true);

    // Refresh window opens at 300 s, expiry (minus 30 s skew) at 570 s. Call every 100 ms
    // until just before expiry: every call gets the old token.
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed() < Duration::from_secs(565) {
        let token = cache.token().await.expect("a valid token is still cached");
        assert!(token.same_as(&first));
        calls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(calls > 5000);
    // 265 s of failures with backoff 1, 2, 4, ... capped at 60 s (each at least half of
    // that): no more than 12 attempts, however many calls.
    let attempts = source.fetches() - 1;
    assert!((5..=12).contains(&attempts), "{attempts} attempts");
}

#[tokio::test(start_paused = true)]
async fn after_expiry_failures_are_fast_and_bounded() {
    let source = TestSource::new(Duration::from_secs(60), Duration::from_millis(10));
    let cache = TokenCache::with_config(source.clone(), exact_config());
    source.fail(true);
    let first = cache.token().await.unwrap_err();
    assert!(first.is_transient());

    // 10 s of callers every 10 ms: each gets an error without waiting for a fetch, and the
    // server sees one attempt per backoff interval (0.5-1 s, 1-2 s, 2-4 s, 4-8 s).
    let start = Instant::now();
    let mut errors = 0;
    while start.elapsed() < Duration::from_secs(10) {
        let before = Instant::now();
        let error = cache.token().await.unwrap_err();
        assert_eq!(error.to_string(), "authorization server unavailable");
        assert!(
            before.elapsed() <= Duration::from_millis(10),
            "no long wait"
        );
        errors += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(errors > 900);
    assert!((3..=6).contains(&source.fetches()), "{}", source.fetches());

    source.fail(false);
    tokio::time::sleep(Duration::from_secs(60)).await;
    cache
        .token()
        .await
        .expect("recovers once the server is back");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_remembered() {
    let source = TestSource::new(Duration::from_secs(60), Duration::from_millis(10));
    source.state.permanent.store(true, Ordering::SeqCst);
    source.fail(true);
    let cache = TokenCache::new(source.clone());
    assert!(cache.token().await.unwrap_err().is_permanent());
    let burst: Vec<_> = (0..100)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    for caller in burst {
        assert!(caller.await.unwrap().unwrap_err().is_permanent());
    }
    assert_eq!(source.fetches(), 1);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = cache.token().await;
    assert_eq!(
        source.fetches(),
        2,
        "tried again after the permanent error's ttl"
    );
}

#[tokio::test(start_paused = true)]
async fn invalidate_only_the_rejected_token_once() {
    let source = TestSource::new(Duration::from_secs(3600), Duration::from_millis(10));
    let cache = TokenCache::new(source.clone());
    let first = cache.token().await.unwrap();
    let invalidated = (0..100).filter(|_| cache.invalidate(&first)).count();
    assert_eq!(invalidated, 1);
    let second = cache.token().await.unwrap();
    assert!(!second.same_as(&first));
    assert!(
        !cache.invalidate(&first),
        "an old token does not evict the new one"
    );
    assert!(cache.cached().unwrap().same_as(&second));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn background_tasks_end_with_the_last_handle() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let baseline = metrics.num_alive_tasks();
    let source = TestSource::new(Duration::from_secs(3600), Duration::from_millis(10));
    let cache = TokenCache::new(source.clone());
    cache.token().await.unwrap();
    assert_eq!(metrics.num_alive_tasks(), baseline + 1, "the phase timer");
    drop(cache);
    tokio::task::yield_now().await;
    assert_eq!(metrics.num_alive_tasks(), baseline);
}
