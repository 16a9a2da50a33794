//! The cache never wedges: whatever ends a fetch (a panic, a hang, an abort, a runtime that
//! shuts down, an absurd duration), a later caller starts a new one after the usual backoff.
//! Paused tokio time, except where a real thread or runtime is the point.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tower_bearer::source::{FileToken, TokenFuture};
use tower_bearer::store::{MemoryStore, StoreConfig, StoreKey, StoreSource};
use tower_bearer::{CacheConfig, FetchError, Token, TokenCache, TokenSource};

#[cfg(unix)]
use crate::support::{poll_once, Fifo};

/// A source whose `n`-th fetch (1-based) does what `script(n)` says.
#[derive(Clone)]
struct Scripted<F> {
    fetches: Arc<AtomicU64>,
    script: Arc<F>,
}

impl<F, Fut> Scripted<F>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    fn new(script: F) -> Self {
        Scripted {
            fetches: Arc::new(AtomicU64::new(0)),
            script: Arc::new(script),
        }
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl<F, Fut> TokenSource for Scripted<F>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Token, FetchError>> + Send + 'static,
{
    fn fetch(&self) -> TokenFuture<'_> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin((self.script)(n))
    }
}

fn token(n: u64, lifetime: Duration) -> Result<Token, FetchError> {
    Ok(Token::builder(format!("token-{n}"))
        .expires_in(lifetime)
        .build()?)
}

const HOUR: Duration = Duration::from_secs(3600);
/// Past the first backoff interval (1 s at most with the defaults).
const PAST_FIRST_BACKOFF: Duration = Duration::from_millis(1001);

#[tokio::test(start_paused = true)]
async fn a_panicking_source_is_a_typed_error_and_the_next_fetch_runs() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            panic!("source bug while holding secret-payload-123");
        }
        token(n, HOUR)
    });
    let cache = TokenCache::new(source.clone());

    // Every caller waiting for the fetch gets the panic as an error.
    let callers: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.token().await })
        })
        .collect();
    for caller in callers {
        let error = caller.await.unwrap().unwrap_err();
        assert!(error.is_panic() && error.is_transient(), "{error}");
        assert!(!format!("{error} {error:?}").contains("secret-payload"));
    }
    // Within the backoff: the error again, without a fetch.
    assert!(cache.token().await.unwrap_err().is_panic());
    assert_eq!(source.fetches(), 1);

    tokio::time::advance(PAST_FIRST_BACKOFF).await;
    let token = cache.token().await.expect("a new fetch after the backoff");
    assert!(token.same_as(&Token::bearer("token-2").unwrap()));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_background_refresh_backs_off_instead_of_spinning() {
    // A 100 s token: refreshed from 50 s on, used until 75 s. Every refresh panics.
    let source = Scripted::new(|n| async move {
        if n > 1 {
            panic!("refresh bug");
        }
        token(n, Duration::from_secs(100))
    });
    let config = CacheConfig::new().refresh_jitter(0.0);
    let cache = TokenCache::with_config(source.clone(), config);
    cache.token().await.unwrap();

    tokio::time::advance(Duration::from_secs(51)).await;
    for _ in 0..23 {
        // Callers keep the valid token while the refresh keeps failing.
        assert!(cache.token().await.is_ok());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Backoff of about 1, 2, 4, 8 s (half of it random) in those 23 s: a handful of
    // fetches, where a spinning loop would make millions.
    let refreshes = source.fetches() - 1;
    assert!((3..=8).contains(&refreshes), "{refreshes} refreshes");

    // Past expiry, callers get the panic as an error, still at the backoff's pace.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let error = cache.token().await.unwrap_err();
    assert!(error.is_panic(), "{error}");
    assert!(source.fetches() - 1 <= 9);
}

#[tokio::test(start_paused = true)]
async fn a_source_that_never_answers_is_abandoned_after_the_fetch_timeout() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            std::future::pending::<()>().await;
        }
        token(n, HOUR)
    });
    let config = CacheConfig::new().fetch_timeout(Duration::from_secs(10));
    let cache = TokenCache::with_config(source.clone(), config);

    let error = cache.token().await.unwrap_err();
    assert!(error.is_timeout() && error.is_transient(), "{error}");
    assert!(error.to_string().contains("10s"), "{error}");

    tokio::time::advance(PAST_FIRST_BACKOFF).await;
    assert!(cache.token().await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[test]
fn the_default_fetch_timeout_outlasts_the_oauth_crates_worst_case() {
    // The OAuth crate's sources take at most 110 s with their defaults (three 30 s
    // attempts and two 10 s backoffs); a shared store's lease wait adds 15 s.
    let text = format!("{:?}", CacheConfig::default());
    assert!(text.contains("fetch_timeout: 300s"), "{text}");
}

#[test]
fn a_runtime_shut_down_mid_fetch_leaves_the_cache_usable_from_another() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            std::future::pending::<()>().await;
        }
        token(n, HOUR)
    });
    let cache = TokenCache::new(source.clone());

    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        let cache = cache.clone();
        // A waiter that is still waiting when the runtime goes away.
        drop(tokio::spawn(async move { cache.token().await }));
        while source.fetches() == 0 {
            tokio::task::yield_now().await;
        }
    });
    // The runtime goes away with the fetch and its waiter still running.
    drop(first);

    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    second.block_on(async {
        match cache.token().await {
            // Inside the backoff after the cancelled fetch.
            Err(error) => {
                assert!(error.is_cancelled(), "{error}");
                tokio::time::sleep(PAST_FIRST_BACKOFF).await;
            }
            Ok(_) => panic!("the cancelled fetch cannot have produced a token"),
        }
        assert!(cache.token().await.is_ok(), "a new fetch on this runtime");
    });
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_duration_max_is_honoured_up_to_the_backoff_maximum() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            return Err(FetchError::transient("busy").with_retry_after(Duration::MAX));
        }
        token(n, HOUR)
    });
    let cache = TokenCache::new(source.clone());
    assert!(cache.token().await.is_err());

    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(cache.token().await.is_err(), "still inside the wait");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(
        cache.token().await.is_ok(),
        "60 s at most, the backoff maximum"
    );
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn durations_of_duration_max_in_the_config_never_panic() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            return Err(FetchError::permanent("invalid_client"));
        }
        token(n, Duration::MAX)
    });
    let config = CacheConfig::new()
        .expiry_skew(Duration::MAX)
        .refresh_window(Duration::MAX, 0.5)
        .refresh_jitter(1.0)
        .backoff(Duration::MAX, Duration::MAX)
        .permanent_error_ttl(Duration::MAX)
        .fetch_timeout(Duration::MAX);
    let cache = TokenCache::with_config(source.clone(), config);
    assert!(cache.token().await.unwrap_err().is_permanent());
    assert!(
        cache.token().await.unwrap_err().is_permanent(),
        "remembered"
    );
    // Waits are at most a year.
    tokio::time::advance(Token::MAX_LIFETIME + Duration::from_secs(1)).await;
    assert!(cache.token().await.is_ok());
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_that_never_expires_is_still_refreshed_within_a_year() {
    let source = Scripted::new(|n| async move { token(n, Duration::MAX) });
    let cache = TokenCache::new(source.clone());
    let first = cache.token().await.unwrap();
    let expires_in = first
        .expires_at()
        .unwrap()
        .duration_since(tokio::time::Instant::now());
    assert_eq!(expires_in, Token::MAX_LIFETIME);

    tokio::time::advance(Token::MAX_LIFETIME).await;
    let second = cache.token().await.unwrap();
    assert!(!second.same_as(&first));
    assert_eq!(source.fetches(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_half_second_token_lives_half_a_second() {
    let source = Scripted::new(|n| async move { token(n, Duration::from_millis(500)) });
    let cache = TokenCache::with_config(source.clone(), CacheConfig::new().refresh_jitter(0.0));
    let first = cache.token().await.unwrap();
    // Used for 375 ms (a quarter of the lifetime is the skew), not 300 s.
    tokio::time::advance(Duration::from_millis(400)).await;
    let second = cache.token().await.unwrap();
    assert!(!second.same_as(&first));
}

#[tokio::test(start_paused = true)]
async fn a_token_expired_on_arrival_counts_as_a_failure_with_backoff() {
    let source = Scripted::new(|n| async move {
        if n == 1 {
            return token(n, Duration::ZERO);
        }
        token(n, HOUR)
    });
    let cache = TokenCache::new(source.clone());
    let error = cache.token().await.unwrap_err();
    assert!(error.to_string().contains("already expired"), "{error}");
    for _ in 0..100 {
        assert!(cache.token().await.is_err());
    }
    assert_eq!(source.fetches(), 1, "no fetch per caller");
    tokio::time::advance(PAST_FIRST_BACKOFF).await;
    assert!(cache.token().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn store_settings_of_duration_max_never_panic() {
    let source = Scripted::new(|n| async move { token(n, HOUR) });
    let config = StoreConfig::new()
        .lease_ttl(Duration::MAX)
        .poll_interval(Duration::MAX)
        .max_poll_interval(Duration::MAX)
        .max_wait(Duration::MAX)
        .op_timeout(Duration::MAX)
        .min_remaining(Duration::MAX)
        .no_expiry_ttl(Duration::MAX)
        .warn_interval(Duration::MAX);
    let key = StoreKey::builder("https://auth.example.com/token", "client").build();
    let store = MemoryStore::new();
    let cache = TokenCache::new(StoreSource::with_config(
        source.clone(),
        store.clone(),
        key,
        config,
    ));
    assert!(cache.token().await.is_ok());
    assert_eq!(source.fetches(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_token_file_on_a_fifo_times_out_and_a_later_file_is_read() {
    let fifo = Fifo::new("timeout");
    // Real time: the read blocks a thread of the blocking pool, which paused time waits for.
    let config = CacheConfig::new()
        .fetch_timeout(Duration::from_millis(200))
        .backoff(Duration::from_millis(10), Duration::from_millis(20));
    let source = FileToken::new(fifo.path());
    let cache = TokenCache::with_config(source.clone(), config);
    let error = cache.token().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");

    // The abandoned read is still in flight: a fetch joins it, and gets what is at last
    // written into the FIFO.
    let mut joined = source.fetch();
    assert!(poll_once(&mut joined).await.is_pending());
    let path = fifo.path().to_owned();
    tokio::task::spawn_blocking(move || std::fs::write(path, "fifo-token\n"))
        .await
        .unwrap()
        .unwrap();
    let token = joined.await.expect("the read in flight got the token");
    assert!(token.same_as(&Token::bearer("fifo-token").unwrap()));

    // That read is over: a regular file in the FIFO's place is read by the next fetch.
    std::fs::remove_file(fifo.path()).unwrap();
    std::fs::write(fifo.path(), "file-token\n").unwrap();
    // Past the cache's backoff (at most 20 ms) after the timeout.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let token = cache.token().await.expect("the regular file is read");
    assert!(token.same_as(&Token::bearer("file-token").unwrap()));
}

/// A file that hangs (a stuck network mount; here a FIFO nobody writes) holds one thread of
/// tokio's blocking pool however many fetches of it are abandoned, so the pool's other work
/// (DNS lookups, `tokio::fs`) goes on. With two blocking threads, one per abandoned read
/// would leave none.
#[cfg(unix)]
#[test]
fn abandoned_reads_of_a_hung_token_file_hold_one_blocking_thread() {
    let fifo = Fifo::new("hung");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .unwrap();
    let (abandoned, other_work, joined) = runtime.block_on(async {
        let source = FileToken::new(fifo.path());
        let clone = source.clone();
        let mut abandoned = 0;
        for n in 0..40 {
            // Half through a clone, which shares the read in flight.
            let source = if n % 2 == 0 { &source } else { &clone };
            let fetch = tokio::time::timeout(Duration::from_millis(10), source.fetch()).await;
            abandoned += u32::from(fetch.is_err());
        }
        let other_work = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(|| "done"),
        )
        .await;
        // Let the read in flight end: a fetch joins it, then the FIFO gets a token.
        let mut joined = source.fetch();
        let _ = poll_once(&mut joined).await;
        let path = fifo.path().to_owned();
        // Not joined: with no reader at all, opening the FIFO to write would block.
        drop(std::thread::spawn(move || {
            std::fs::write(path, "fifo-token\n")
        }));
        let joined = tokio::time::timeout(Duration::from_secs(10), joined).await;
        (abandoned, other_work, joined)
    });
    // Not dropped: dropping a runtime waits for every blocking thread, hung ones too.
    runtime.shutdown_timeout(Duration::from_secs(1));

    assert_eq!(abandoned, 40, "every fetch was abandoned");
    let other_work = other_work.expect(
        "blocking work ran while the file hung: the abandoned reads hold one thread, not one each",
    );
    assert_eq!(other_work.unwrap(), "done");
    let token = joined
        .expect("the fetch joined the one read in flight, which the write ended")
        .expect("the read got the token");
    assert!(token.same_as(&Token::bearer("fifo-token").unwrap()));
}
