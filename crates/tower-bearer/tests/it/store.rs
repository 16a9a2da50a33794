//! Sharing tokens through a `TokenStore`: a fleet of caches, each with its own
//! `StoreSource`, over one `MemoryStore`, on paused tokio time. The same behaviour over Redis
//! and real processes is tested in `tower-bearer-redis`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_bearer::source::TokenFuture;
use tower_bearer::store::{
    MemoryStore, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreConfig,
    StoreError, StoreErrorKind, StoreFuture, StoreKey, StoreSource, TokenStore,
};
use tower_bearer::{Token, TokenCache, TokenSource};

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
        waited <= lease + Duration::from_millis(50 + 200),
        "within the lease, one poll and one fetch: {waited:?}"
    );
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
    let server = Server::new(Duration::from_secs(3600), Duration::from_millis(10));
    let store = MemoryStore::new();
    let old = Token::builder("nearly-expired")
        .expires_in(Duration::from_secs(5))
        .build()
        .unwrap();
    store.put(&key(), &old, Duration::ZERO).await.unwrap();
    let (cache, _) = replica(&server, &store, StoreConfig::new());
    let token = cache.token().await.unwrap();
    assert!(!token.same_as(&old));
    assert_eq!(server.requests(), 1);
    assert!(store.get(&key()).await.unwrap().unwrap().same_as(&token));
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

/// `MemoryStore`'s refresh-token record: the reference semantics that `RedisStore`'s
/// scripts follow (tested against Redis in `tower-bearer-redis`).
#[tokio::test(start_paused = true)]
async fn refresh_records_are_fenced_newest_wins_with_intents_and_settles() {
    let store = MemoryStore::new();
    let key = key();
    let write = |generation, refresh_token| RefreshWrite {
        generation,
        refresh_token,
        replacing_damaged: None,
        settle: None,
    };
    let (first, rival, newer) = (
        SecretString::from("refresh-1"),
        SecretString::from("refresh-1-rival"),
        SecretString::from("refresh-2"),
    );
    let state = store.refresh_record(&key).await.unwrap();
    assert!(state.record.is_none() && !state.settling);
    assert!(
        !store.begin_presenting(&key, 1, "a").await.unwrap(),
        "no record"
    );
    assert!(store.store_refresh(&key, write(1, &first)).await.unwrap());
    assert!(
        !store.store_refresh(&key, write(1, &rival)).await.unwrap(),
        "a second writer of the same generation loses"
    );
    assert!(!store.store_refresh(&key, write(0, &rival)).await.unwrap());

    assert!(
        !store.begin_presenting(&key, 0, "a").await.unwrap(),
        "another generation"
    );
    assert!(store.begin_presenting(&key, 1, "a").await.unwrap());
    assert!(
        store.begin_presenting(&key, 1, "a").await.unwrap(),
        "already a's"
    );
    assert!(!store.begin_presenting(&key, 1, "b").await.unwrap());
    assert!(
        !store.end_presenting(&key, 1, "b").await.unwrap(),
        "only by its holder"
    );
    let record = store.refresh_record(&key).await.unwrap().record.unwrap();
    assert_eq!(record.generation, 1);
    assert_eq!(record.presenting.as_deref(), Some("a"));
    assert!(matches!(&record.value, RefreshValue::Readable(v) if v.expose_secret() == "refresh-1"));
    assert!(!format!("{record:?}").contains("refresh-1"));
    assert!(store.end_presenting(&key, 1, "a").await.unwrap());
    assert!(store
        .refresh_record(&key)
        .await
        .unwrap()
        .record
        .unwrap()
        .presenting
        .is_none());

    // A newer write clears the intent and starts a settle, during which nobody presents.
    assert!(store.begin_presenting(&key, 1, "a").await.unwrap());
    let settling = RefreshWrite {
        settle: Some(Duration::from_secs(10)),
        ..write(2, &newer)
    };
    assert!(store.store_refresh(&key, settling).await.unwrap());
    let state = store.refresh_record(&key).await.unwrap();
    assert!(state.settling);
    let record = state.record.unwrap();
    assert_eq!((record.generation, record.presenting), (2, None));
    assert!(
        !store.begin_presenting(&key, 2, "a").await.unwrap(),
        "settling"
    );
    // A refused write does not lengthen the settle.
    let refused = RefreshWrite {
        settle: Some(Duration::from_secs(600)),
        ..write(2, &rival)
    };
    assert!(!store.store_refresh(&key, refused).await.unwrap());
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(!store.refresh_record(&key).await.unwrap().settling);
    assert!(store.begin_presenting(&key, 2, "a").await.unwrap());
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
