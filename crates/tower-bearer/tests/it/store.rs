//! Sharing tokens through a `TokenStore`: a fleet of caches, each with its own
//! `StoreSource`, over one `MemoryStore`, on paused tokio time. The same behaviour over Redis
//! and real processes is tested in `tower-bearer-redis`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_bearer::source::TokenFuture;
use tower_bearer::store::{
    MemoryStore, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreConfig,
    StoreError, StoreErrorKind, StoreFuture, StoreKey, StoreSource, StoreStats, TokenStore,
};
use tower_bearer::{CacheConfig, Token, TokenCache, TokenSource};

/// The authorization server, as far as the fleet can tell: counts every token request from
/// every replica.
#[derive(Clone)]
struct Server {
    requests: Arc<AtomicU64>,
    lifetime: Duration,
    latency: Duration,
}

impl Server {
    fn new(lifetime: Duration, latency: Duration) -> Self {
        Server {
            requests: Arc::new(AtomicU64::new(0)),
            lifetime,
            latency,
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl TokenSource for Server {
    fn fetch(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.latency).await;
            Ok(Token::builder(format!("secret-token-{n}"))
                .expires_in(self.lifetime)
                .build()?)
        })
    }
}

fn key() -> StoreKey {
    StoreKey::builder("https://auth.example.com/token", "fleet")
        .scope("api")
        .build()
}

/// One replica: its own cache and store source, sharing `store` and `server`.
fn replica(
    server: &Server,
    store: &MemoryStore,
    config: StoreConfig,
) -> (TokenCache, StoreSource<Server>) {
    let source = StoreSource::with_config(server.clone(), store.clone(), key(), config);
    (TokenCache::new(source.clone()), source)
}

/// A token stored by another replica, with `left` to live.
async fn store_token(store: &MemoryStore, name: &str, left: Duration) -> Token {
    let token = Token::builder(name).expires_in(left).build().unwrap();
    store.put(&key(), &token, Duration::ZERO).await.unwrap();
    token
}

/// Sums one figure over the replicas' stats.
fn total(replicas: &[(TokenCache, StoreSource<Server>)], figure: fn(StoreStats) -> u64) -> u64 {
    replicas
        .iter()
        .map(|(_, source)| figure(source.stats()))
        .sum()
}

#[tokio::test(start_paused = true)]
async fn eight_cold_replicas_with_200_callers_each_fetch_once() {
    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(200));
    let store = MemoryStore::new();
    let replicas: Vec<_> = (0..8)
        .map(|_| replica(&server, &store, StoreConfig::new()))
        .collect();
    let mut calls = JoinSet::new();
    for (cache, _) in &replicas {
        for _ in 0..200 {
            let cache = cache.clone();
            calls.spawn(async move { cache.token().await });
        }
    }
    let mut ok = 0;
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
        ok += 1;
    }
    assert_eq!(ok, 1600);
    assert_eq!(server.requests(), 1, "one token request for the fleet");
    let fetched: u64 = replicas.iter().map(|(_, s)| s.stats().fetched).sum();
    let from_store: u64 = replicas.iter().map(|(_, s)| s.stats().from_store).sum();
    assert_eq!((fetched, from_store), (1, 7));
}

#[tokio::test(start_paused = true)]
async fn the_fleet_fetches_once_per_lifetime() {
    // Hour-long tokens, default cache settings (refresh 5 to 6 minutes before expiry, with
    // jitter), 8 replicas calling every 10 s for 5 lifetimes. Each replica's refresh window
    // is anchored on the shared token's expiry, so a new token is fetched at most once per
    // 3240 s (3600 s less the widest window): at most 1 + 5 requests in 18,000 s.
    let lifetime = Duration::from_secs(3600);
    let server = Server::new(lifetime, Duration::from_millis(200));
    let store = MemoryStore::new();
    let replicas: Vec<_> = (0..8)
        .map(|_| replica(&server, &store, StoreConfig::new()))
        .collect();
    let end = Instant::now() + lifetime * 5;
    let mut fleet = JoinSet::new();
    for (cache, _) in &replicas {
        let cache = cache.clone();
        fleet.spawn(async move {
            let mut failed = 0u64;
            while Instant::now() < end {
                failed += u64::from(cache.token().await.is_err());
                tokio::time::sleep(Duration::from_secs(10)).await;
            }
            (failed, cache.stats().waits)
        });
    }
    while let Some(result) = fleet.join_next().await {
        let (failed, waits) = result.unwrap();
        assert_eq!(failed, 0);
        assert_eq!(waits, 1, "a replica waits only for its first token");
    }
    let requests = server.requests();
    eprintln!("token requests over 5 lifetimes for 8 replicas: {requests}");
    assert!((5..=6).contains(&requests), "{requests} token requests");
}

#[tokio::test(start_paused = true)]
async fn a_dead_lease_holder_holds_the_fleet_up_for_at_most_the_lease() {
    let lease = Duration::from_secs(10);
    let config = StoreConfig::new().lease_ttl(lease);
    let store = MemoryStore::new();
    // Replica A takes the lease and hangs in its fetch; then it dies.
    let stuck = Server::new(Duration::from_secs(3600), Duration::from_secs(86_400));
    let (cache_a, _) = replica(&stuck, &store, config.clone());
    let dying = tokio::spawn(async move { cache_a.token().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stuck.requests(), 1, "A holds the lease and is fetching");
    dying.abort();
    let _ = dying.await;

    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(200));
    let (cache_b, source_b) = replica(&server, &store, config);
    let started = Instant::now();
    cache_b
        .token()
        .await
        .expect("B gets a token once the lease expires");
    let waited = started.elapsed();
    assert_eq!(server.requests(), 1);
    assert_eq!(source_b.stats().fetched, 1);
    // Paused time: these bounds are exact arithmetic, not a measurement of the machine.
    assert!(waited >= lease - Duration::from_millis(100), "{waited:?}");
    assert!(
        waited <= lease + Duration::from_millis(1200 + 200),
        "within the lease, one backed-off gap (at most 1.2 × max_poll_interval) and one \
         fetch: {waited:?}"
    );
}

/// A `MemoryStore` that notes when each `get` was made.
#[derive(Clone, Default)]
struct CountingStore {
    store: MemoryStore,
    gets: Arc<Mutex<Vec<Instant>>>,
}

impl CountingStore {
    fn over(store: &MemoryStore) -> Self {
        CountingStore {
            store: store.clone(),
            gets: Arc::default(),
        }
    }

    fn gets(&self) -> Vec<Instant> {
        self.gets.lock().unwrap().clone()
    }
}

impl TokenStore for CountingStore {
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        self.gets.lock().unwrap().push(Instant::now());
        self.store.get(key)
    }
    fn put<'a>(
        &'a self,
        key: &'a StoreKey,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.store.put(key, token, ttl)
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.store.try_lease(key, holder, ttl)
    }
    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()> {
        self.store.release(key, holder)
    }
}

/// Replica A takes the lease and hangs in its fetch, holding the lease for `lease`.
async fn hang_holding_the_lease(store: &MemoryStore, lease: Duration) {
    let stuck = Server::new(Duration::from_secs(3600), Duration::from_secs(86_400));
    let (cache, _) = replica(&stuck, store, StoreConfig::new().lease_ttl(lease));
    tokio::spawn(async move { cache.token().await });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(stuck.requests(), 1, "A holds the lease and is fetching");
}

/// Tokio's timers fire on whole milliseconds, so a paused sleep ends up to 1 ms late.
const TIMER_TICK: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn a_waiter_backs_off_while_another_replica_holds_the_lease() {
    let store = MemoryStore::new();
    hang_holding_the_lease(&store, Duration::from_secs(60)).await;
    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(200));
    let counting = CountingStore::over(&store);
    let config = StoreConfig::new();
    let source = StoreSource::with_config(server.clone(), counting.clone(), key(), config);
    let started = Instant::now();
    source
        .fetch()
        .await
        .expect("B fetches itself after max_wait");
    let max_wait = Duration::from_secs(15);
    assert_eq!(started.elapsed(), max_wait + server.latency);
    assert_eq!(source.stats().fallbacks, 1);

    // Gaps of 50 ms doubling to 1 s, each 0.8 to 1.2 times that: the fastest schedule looks
    // at 0, 40, 120, 280, 600 and 1240 ms, then every 800 ms, and at the deadline: 24 looks
    // in 15 s. The slowest makes 17. A fixed 50 ms would make 301.
    let gets = counting.gets();
    assert!((17..=24).contains(&gets.len()), "{} looks", gets.len());
    let gaps: Vec<_> = gets.windows(2).map(|pair| pair[1] - pair[0]).collect();
    assert!(
        gaps[..3]
            .iter()
            .zip([50, 100, 200])
            .all(|(gap, nominal)| *gap <= Duration::from_millis(nominal * 6 / 5) + TIMER_TICK),
        "the first looks are quick: {gaps:?}"
    );
    assert!(
        gaps.iter()
            .all(|gap| *gap <= Duration::from_millis(1200) + TIMER_TICK),
        "{gaps:?}"
    );
    let last = *gets.last().unwrap();
    assert_eq!(last - started, max_wait, "the last look is at the deadline");
}

#[tokio::test(start_paused = true)]
async fn waiters_that_begin_together_do_not_poll_together() {
    fastrand::seed(7);
    let store = MemoryStore::new();
    hang_holding_the_lease(&store, Duration::from_secs(60)).await;
    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(200));
    let counting = CountingStore::over(&store);
    let started = Instant::now();
    let mut waiters = JoinSet::new();
    for _ in 0..100 {
        let source =
            StoreSource::with_config(server.clone(), counting.clone(), key(), StoreConfig::new());
        waiters.spawn(async move { source.fetch().await });
    }
    while let Some(result) = waiters.join_next().await {
        result.unwrap().unwrap();
    }
    // Once backed off, 100 waiters spread evenly would make about 10 looks in each 100 ms;
    // in step, all 100 would look in the same one. (They do at the deadline, which they
    // share: the last look is at max_wait.)
    let mut per_window = std::collections::HashMap::<u128, u32>::new();
    for get in counting.gets() {
        let since = get - started;
        if (Duration::from_secs(5)..Duration::from_secs(15)).contains(&since) {
            *per_window.entry(since.as_millis() / 100).or_default() += 1;
        }
    }
    let busiest = per_window.values().copied().max().unwrap();
    eprintln!("100 waiters, from 5 s on: {busiest} looks in the busiest 100 ms");
    assert!(busiest <= 40, "{busiest} looks in the busiest 100 ms");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_sees_the_holders_token_soon_after_it_is_stored() {
    // The lease outlives every fetch here, so the waiter only ever waits for the token.
    let config = StoreConfig::new().lease_ttl(Duration::from_secs(60));
    for fetch in [50, 100, 300, 1000, 3000, 12_000].map(Duration::from_millis) {
        let store = MemoryStore::new();
        let server = Server::new(Duration::from_secs(3600), fetch);
        let (cache_a, _) = replica(&server, &store, config.clone());
        let holder = tokio::spawn(async move { cache_a.token().await });
        tokio::time::sleep(TIMER_TICK).await;
        let stored_at = Instant::now() + fetch - TIMER_TICK;
        let (cache_b, source_b) = replica(&server, &store, config.clone());
        let started = Instant::now();
        let token = cache_b.token().await.unwrap();
        assert!(token.same_as(&holder.await.unwrap().unwrap()));
        assert_eq!(server.requests(), 1, "{fetch:?}");
        assert_eq!(source_b.stats().from_store, 1, "{fetch:?}");
        // See `StoreConfig::poll_interval`: at most 1.5 × the wait + 1.2 × 50 ms late, and
        // at most 1.2 × 1 s.
        let waited = stored_at - started;
        let late = Instant::now() - stored_at;
        let bound =
            (waited.mul_f64(1.5) + Duration::from_millis(60)).min(Duration::from_millis(1200));
        assert!(
            late <= bound + TIMER_TICK * 2,
            "a token stored {waited:?} into the wait was seen {late:?} later"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejected_token_is_not_taken_from_the_store_again() {
    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(10));
    let store = MemoryStore::new();
    let (cache_a, _) = replica(&server, &store, StoreConfig::new());
    let (cache_b, source_b) = replica(&server, &store, StoreConfig::new());
    let first = cache_a.token().await.unwrap();
    assert!(cache_b.token().await.unwrap().same_as(&first));
    // The API rejects the token; B's retry layer invalidates it.
    assert!(cache_b.invalidate(&first));
    let second = cache_b.token().await.unwrap();
    assert!(
        !second.same_as(&first),
        "B asked for a new token, not the rejected one"
    );
    assert_eq!(server.requests(), 2);
    assert_eq!(source_b.stats().fetched, 1);
    // A, rejected too, finds B's new token in the store.
    assert!(cache_a.invalidate(&first));
    assert!(cache_a.token().await.unwrap().same_as(&second));
    assert_eq!(server.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_token_close_to_expiry_in_the_store_is_not_taken() {
    // A replica that has seen no token of its key cannot tell the last seconds of an hour
    // token from a fresh 4 s one, so it asks for the full 10 s either way.
    for (lifetime, left) in [(3600, 5), (4, 3)] {
        let capture = tower_bearer_testkit::capture_tracing();
        let server = Server::new(Duration::from_secs(lifetime), Duration::from_millis(10));
        let store = MemoryStore::new();
        let old = store_token(&store, "nearly-expired", Duration::from_secs(left)).await;
        let (cache, source) = replica(&server, &store, StoreConfig::new());
        let token = cache.token().await.unwrap();
        assert!(!token.same_as(&old));
        assert_eq!(server.requests(), 1);
        assert!(store.get(&key()).await.unwrap().unwrap().same_as(&token));
        assert_eq!(source.stats().passed_over, 1);
        assert!(
            capture.contains(&format!(
                "remaining_ms={} min_remaining_ms=10000",
                left * 1000
            )),
            "{}",
            capture.contents()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn three_cold_replicas_share_one_four_second_token() {
    let server = Server::new(Duration::from_secs(4), Duration::from_millis(100));
    let store = MemoryStore::new();
    let replicas: Vec<_> = (0..3)
        .map(|_| replica(&server, &store, StoreConfig::new()))
        .collect();
    let mut calls = JoinSet::new();
    for (cache, _) in &replicas {
        for _ in 0..10 {
            let cache = cache.clone();
            calls.spawn(async move { cache.token().await });
        }
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(server.requests(), 1, "one token request for the fleet");
    assert_eq!(total(&replicas, |s| s.fetched), 1);
    assert_eq!(total(&replicas, |s| s.from_store), 2);
    assert_eq!(total(&replicas, |s| s.passed_over), 0);
}

/// The token requests of `replicas` replicas sharing a store, each with a cache of
/// `cache_config` called every 100 ms, over `lifetimes` token lifetimes.
async fn requests_under_steady_load(
    lifetime: Duration,
    replicas: usize,
    lifetimes: u32,
    store_config: &StoreConfig,
    cache_config: &CacheConfig,
) -> u64 {
    let server = Server::new(lifetime, Duration::from_millis(100));
    let store = MemoryStore::new();
    let end = Instant::now() + lifetime * lifetimes;
    let mut fleet = JoinSet::new();
    for _ in 0..replicas {
        let source =
            StoreSource::with_config(server.clone(), store.clone(), key(), store_config.clone());
        let cache = TokenCache::with_config(source, cache_config.clone());
        fleet.spawn(async move {
            while Instant::now() < end {
                cache.token().await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            cache.stats().waits
        });
    }
    while let Some(waits) = fleet.join_next().await {
        assert_eq!(
            waits.unwrap(),
            1,
            "a replica waits only for its first token"
        );
    }
    server.requests()
}

#[tokio::test(start_paused = true)]
async fn a_fleet_on_four_second_tokens_fetches_as_often_as_one_replica() {
    let lifetime = Duration::from_secs(4);
    let lifetimes = 100;
    let shared = StoreConfig::new();
    let unshared = StoreConfig::new().min_remaining(Duration::from_secs(10));
    // The default cache refreshes a 4 s token with half its lifetime left (the refresh
    // window is clamped to half), so even a lone replica fetches about twice per lifetime.
    let default = CacheConfig::new();
    // This one refreshes half a second before expiry: a little over once per lifetime
    // (3.5 s, plus up to a call interval and a fetch).
    let late = CacheConfig::new()
        .refresh_window(Duration::from_millis(500), 0.0)
        .refresh_jitter(0.0)
        .expiry_skew(Duration::from_millis(250));
    let mut figures = Vec::new();
    for (name, cache) in [("default", &default), ("late", &late)] {
        let alone = requests_under_steady_load(lifetime, 1, lifetimes, &shared, cache).await;
        let fleet = requests_under_steady_load(lifetime, 3, lifetimes, &shared, cache).await;
        let apart = requests_under_steady_load(lifetime, 3, lifetimes, &unshared, cache).await;
        eprintln!(
            "{name} cache, {lifetimes} lifetimes of 4 s: 1 replica {alone} token requests, \
             3 sharing replicas {fleet}, 3 replicas with min_remaining 10 s {apart}"
        );
        assert!(fleet <= alone + 1, "{name}: fleet {fleet}, alone {alone}");
        assert!(
            apart + 3 >= 3 * alone,
            "{name}: unshared {apart}, alone {alone}"
        );
        figures.push(fleet);
    }
    let lifetimes = u64::from(lifetimes);
    assert!(
        (180..=200).contains(&figures[0]),
        "default: {} requests",
        figures[0]
    );
    assert!(
        (lifetimes..=lifetimes * 6 / 5).contains(&figures[1]),
        "late: {} requests",
        figures[1]
    );
}

#[tokio::test(start_paused = true)]
async fn an_explicit_min_remaining_is_used_as_given() {
    let capture = tower_bearer_testkit::capture_tracing();
    let server = Server::new(Duration::from_secs(4), Duration::from_millis(100));
    let store = MemoryStore::new();
    let config = StoreConfig::new().min_remaining(Duration::from_secs(10));
    let replicas: Vec<_> = (0..3)
        .map(|_| replica(&server, &store, config.clone()))
        .collect();
    let mut calls = JoinSet::new();
    for (cache, _) in &replicas {
        let cache = cache.clone();
        calls.spawn(async move { cache.token().await });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(server.requests(), 3, "4 s tokens never have 10 s left");
    assert_eq!(total(&replicas, |s| s.fetched), 3);
    assert_eq!(total(&replicas, |s| s.from_store), 0);
    let passed_over = total(&replicas, |s| s.passed_over);
    assert!(passed_over >= 2, "{passed_over} tokens passed over");
    let logs = capture.contents();
    let lines: Vec<_> = logs
        .lines()
        .filter(|line| line.contains("stored token has too little time left"))
        .collect();
    assert_eq!(lines.len() as u64, passed_over, "{logs}");
    let line = lines[0];
    assert!(line.contains("DEBUG"), "{line}");
    assert!(line.contains("min_remaining_ms=10000"), "{line}");
    assert!(line.contains(&format!("key={}", key())), "{line}");
    let remaining: u64 = line
        .split("remaining_ms=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no remaining_ms: {line}"));
    assert!((3000..=4000).contains(&remaining), "{line}");
    assert!(!logs.contains("secret-token"), "no token in the log");
}

#[tokio::test(start_paused = true)]
async fn the_default_minimum_is_half_the_lifetime_and_at_most_10_s() {
    for (lifetime, taken, passed_over) in [
        (4, Duration::from_millis(2100), Duration::from_millis(1900)),
        (
            3600,
            Duration::from_millis(10_100),
            Duration::from_millis(9900),
        ),
    ] {
        let server = Server::new(Duration::from_secs(lifetime), Duration::from_millis(10));
        let store = MemoryStore::new();
        let (cache, source) = replica(&server, &store, StoreConfig::new());
        // The replica learns the lifetime from the token it fetches.
        let first = cache.token().await.unwrap();
        let stored = store_token(&store, "stored-with-enough-left", taken).await;
        assert!(cache.invalidate(&first));
        let second = cache.token().await.unwrap();
        assert!(
            second.same_as(&stored),
            "{lifetime} s: taken with {taken:?} left"
        );
        let stored = store_token(&store, "stored-with-too-little-left", passed_over).await;
        assert!(cache.invalidate(&second));
        let third = cache.token().await.unwrap();
        assert!(
            !third.same_as(&stored),
            "{lifetime} s: passed over with {passed_over:?} left"
        );
        assert_eq!(server.requests(), 2, "{lifetime} s");
        let stats = source.stats();
        assert_eq!(
            (stats.from_store, stats.passed_over),
            (1, 1),
            "{lifetime} s"
        );
    }
}

/// A store that never answers, or answers with an error.
struct BrokenStore {
    hang: bool,
}

impl BrokenStore {
    fn fail<'a, T: Send + 'a>(&self) -> StoreFuture<'a, T> {
        if self.hang {
            Box::pin(std::future::pending())
        } else {
            Box::pin(std::future::ready(Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "connection refused",
            ))))
        }
    }
}

impl TokenStore for BrokenStore {
    fn get<'a>(&'a self, _: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        self.fail()
    }
    fn put<'a>(&'a self, _: &'a StoreKey, _: &'a Token, _: Duration) -> StoreFuture<'a, ()> {
        self.fail()
    }
    fn try_lease<'a>(&'a self, _: &'a StoreKey, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
        self.fail()
    }
    fn release<'a>(&'a self, _: &'a StoreKey, _: &'a str) -> StoreFuture<'a, ()> {
        self.fail()
    }
}

impl RefreshTokenStore for BrokenStore {
    fn refresh_record<'a>(&'a self, _: &'a StoreKey) -> StoreFuture<'a, RefreshState> {
        self.fail()
    }
    fn begin_presenting<'a>(
        &'a self,
        _: &'a StoreKey,
        _: u64,
        _: &'a str,
    ) -> StoreFuture<'a, bool> {
        self.fail()
    }
    fn end_presenting<'a>(&'a self, _: &'a StoreKey, _: u64, _: &'a str) -> StoreFuture<'a, bool> {
        self.fail()
    }
    fn store_refresh<'a>(&'a self, _: &'a StoreKey, _: RefreshWrite<'a>) -> StoreFuture<'a, bool> {
        self.fail()
    }
}

#[tokio::test(start_paused = true)]
async fn a_broken_store_fails_no_call_and_warns_once_per_interval() {
    for hang in [false, true] {
        let capture = tower_bearer_testkit::capture_tracing();
        let server = Server::new(Duration::from_secs(60), Duration::from_millis(10));
        let config = StoreConfig::new()
            .op_timeout(Duration::from_millis(100))
            .warn_interval(Duration::from_secs(60));
        let source = StoreSource::with_config(server.clone(), BrokenStore { hang }, key(), config);
        let cache = TokenCache::new(source.clone());
        // Ten minutes of calls every second; one-minute tokens are refreshed about 10 times.
        let mut failed = 0;
        for _ in 0..600 {
            failed += usize::from(cache.token().await.is_err());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(failed, 0, "hang: {hang}");
        let requests = server.requests();
        assert!((10..=25).contains(&requests), "{requests} requests");
        assert_eq!(source.stats().fallbacks, requests);
        let warnings = capture.contents().matches("token store failed").count();
        assert!(
            (1..=11).contains(&warnings),
            "at most one warning a minute: {warnings} (hang: {hang})"
        );
        assert!(!capture.contains("secret-token"), "no token in the log");
    }
}

/// What `MemoryStore` holds for `key`: generation, refresh token and intent, or `None`.
async fn refresh_record(store: &MemoryStore) -> Option<(u64, String, Option<String>)> {
    let state = store.refresh_record(&key()).await.unwrap();
    state.record.map(|record| {
        let RefreshValue::Readable(refresh_token) = record.value else {
            panic!("a MemoryStore record is always readable: {record:?}");
        };
        let refresh_token = refresh_token.expose_secret().to_owned();
        (record.generation, refresh_token, record.presenting)
    })
}

#[tokio::test(start_paused = true)]
async fn refresh_tokens_are_presented_by_one_replica_and_written_newest_wins() {
    let store = MemoryStore::new();
    let key = key();
    let write = |generation, refresh_token, settle| RefreshWrite {
        generation,
        refresh_token,
        replacing_damaged: None,
        settle,
    };
    let state = store.refresh_record(&key).await.unwrap();
    assert!(state.record.is_none() && !state.settling);
    assert!(
        !store.begin_presenting(&key, 0, "a").await.unwrap(),
        "nothing to present"
    );

    let configured = SecretString::from("refresh-0");
    assert!(store
        .store_refresh(&key, write(0, &configured, None))
        .await
        .unwrap());
    assert!(
        !store
            .store_refresh(&key, write(0, &configured, None))
            .await
            .unwrap(),
        "the same generation is not written twice"
    );

    // One replica's intent at a time; only its holder resolves it.
    assert!(store.begin_presenting(&key, 0, "a").await.unwrap());
    assert!(
        store.begin_presenting(&key, 0, "a").await.unwrap(),
        "already a's"
    );
    assert!(!store.begin_presenting(&key, 0, "b").await.unwrap());
    assert!(
        !store.begin_presenting(&key, 1, "b").await.unwrap(),
        "no such generation"
    );
    assert!(!store.end_presenting(&key, 0, "b").await.unwrap());
    assert!(store.end_presenting(&key, 0, "a").await.unwrap());
    assert_eq!(
        refresh_record(&store).await,
        Some((0, "refresh-0".into(), None))
    );

    // a presents and the server rotates: the new generation replaces the record and its intent.
    assert!(store.begin_presenting(&key, 0, "a").await.unwrap());
    let rotated = SecretString::from("refresh-1");
    assert!(store
        .store_refresh(&key, write(1, &rotated, None))
        .await
        .unwrap());
    assert_eq!(
        refresh_record(&store).await,
        Some((1, "refresh-1".into(), None))
    );
    assert!(
        !store.end_presenting(&key, 0, "a").await.unwrap(),
        "the old intent is gone"
    );
    let rival = SecretString::from("refresh-1-rival");
    let stale = SecretString::from("refresh-stale");
    assert!(
        !store
            .store_refresh(&key, write(1, &rival, None))
            .await
            .unwrap(),
        "a second writer of the same generation loses"
    );
    assert!(
        !store
            .store_refresh(&key, write(0, &stale, None))
            .await
            .unwrap(),
        "an older generation never clobbers a newer one"
    );
    assert_eq!(
        refresh_record(&store).await,
        Some((1, "refresh-1".into(), None))
    );

    // A write with a settle: nobody presents until it has passed, and writes during it
    // lengthen it but never shorten it.
    let newest = SecretString::from("refresh-3");
    let settle = Duration::from_secs(5);
    assert!(store
        .store_refresh(&key, write(3, &newest, Some(settle)))
        .await
        .unwrap());
    assert!(store.refresh_record(&key).await.unwrap().settling);
    assert!(
        !store.begin_presenting(&key, 3, "a").await.unwrap(),
        "settling"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let older = SecretString::from("refresh-2");
    assert!(
        !store
            .store_refresh(&key, write(2, &older, Some(settle)))
            .await
            .unwrap(),
        "a put-back older than the newest loses, and its settle does not start"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !store.refresh_record(&key).await.unwrap().settling,
        "the settle has passed"
    );
    let fourth = SecretString::from("refresh-4");
    assert!(store
        .store_refresh(&key, write(4, &fourth, Some(settle)))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fifth = SecretString::from("refresh-5");
    let short = Duration::from_secs(1);
    assert!(store
        .store_refresh(&key, write(5, &fifth, Some(short)))
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        store.refresh_record(&key).await.unwrap().settling,
        "a shorter settle does not cut a running one short"
    );
    assert!(!store.begin_presenting(&key, 5, "b").await.unwrap());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(store.begin_presenting(&key, 5, "b").await.unwrap());
    assert_eq!(
        refresh_record(&store).await,
        Some((5, "refresh-5".into(), Some("b".into())))
    );
    let shown = format!("{:?}", store.refresh_record(&key).await.unwrap());
    assert!(!shown.contains("refresh-5"), "{shown}");
}

#[tokio::test]
async fn debug_output_shows_no_secret() {
    let server = Server::new(Duration::from_secs(60), Duration::ZERO);
    let store = MemoryStore::new();
    let (cache, source) = replica(&server, &store, StoreConfig::new());
    let token = cache.token().await.unwrap();
    assert!(token.secret().expose_secret().starts_with("secret-token"));
    for shown in [
        format!("{source:?}"),
        format!("{store:?}"),
        format!("{cache:?}"),
        format!("{:?}", source.key()),
    ] {
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(!shown.contains("fleet"), "the client id is hashed: {shown}");
    }
}
