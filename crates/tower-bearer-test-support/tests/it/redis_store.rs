//! RedisStore against a real redis-server started by the test harness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::source::TokenSource;
use tower_bearer::store::{
    RefreshTokenStore, RefreshValue, RefreshWrite, StoreConfig, StoreErrorKind, StoreKey,
    StoreSource, TokenStore,
};
use tower_bearer::Token;
use tower_bearer_redis::{BuildError, RedisStore};
use tower_bearer_test_support::{assert_no_secret, NumberedSource};
use tower_bearer_testkit::RedisServer;

pub(crate) const KEY_1: [u8; 32] = [1; 32];
pub(crate) const KEY_2: [u8; 32] = [2; 32];

pub(crate) fn store_key(name: &str) -> StoreKey {
    StoreKey::builder("http://127.0.0.1/token", name).build()
}

pub(crate) fn token(secret: &str) -> Token {
    Token::builder(secret)
        .expires_in(Duration::from_secs(60))
        .scope("read")
        .build()
        .unwrap()
}

pub(crate) fn encrypted(redis: &RedisServer, id: &str, key: [u8; 32]) -> RedisStore {
    RedisStore::builder(&redis.url())
        .encryption_key(id, key)
        .build()
        .unwrap()
}

/// The raw bytes of a bulk-string reply.
fn raw_get(redis: &RedisServer, name: &str) -> Vec<u8> {
    redis.command(&[b"GET", name.as_bytes()]).unwrap()
}

/// The number in an integer reply (`:N\r\n`).
pub(crate) fn integer(reply: &[u8]) -> i64 {
    std::str::from_utf8(reply)
        .ok()
        .and_then(|text| text.strip_prefix(':')?.strip_suffix("\r\n")?.parse().ok())
        .unwrap_or_else(|| panic!("not an integer reply: {reply:?}"))
}

/// The remaining time to live of the key `name`, in milliseconds (-1: none, -2: no key).
pub(crate) fn pttl(redis: &RedisServer, name: &str) -> i64 {
    integer(&redis.command(&[b"PTTL", name.as_bytes()]).unwrap())
}

/// The store's operations on any topology, for the cluster and Sentinel tests: an
/// encrypted round trip (the raw value, read with `raw_get`, hides the token), the lease
/// taken once and released only by its holder, and the refresh token's compare-and-set.
pub(crate) async fn exercise(
    store: &RedisStore,
    key: &StoreKey,
    raw_get: impl Fn(&str) -> Vec<u8>,
) {
    assert!(store.get(key).await.unwrap().is_none());
    store
        .put(key, &token("topology-secret"), Duration::ZERO)
        .await
        .unwrap();
    let back = store.get(key).await.unwrap().expect("a stored token");
    assert_eq!(back.secret().expose_secret(), "topology-secret");
    let raw = raw_get(&store.token_key(key));
    assert!(raw.len() > 40, "a sealed value is stored");
    assert!(!raw.windows(15).any(|w| w == b"topology-secret"));

    let lease = Duration::from_secs(30);
    assert!(store.try_lease(key, "holder-a", lease).await.unwrap());
    assert!(!store.try_lease(key, "holder-b", lease).await.unwrap());
    store.release(key, "holder-b").await.unwrap();
    assert!(
        !store.try_lease(key, "holder-b", lease).await.unwrap(),
        "b cannot release a's lease"
    );
    store.release(key, "holder-a").await.unwrap();
    assert!(store.try_lease(key, "holder-b", lease).await.unwrap());
    store.release(key, "holder-b").await.unwrap();

    let state = store.refresh_record(key).await.unwrap();
    assert!(state.record.is_none() && !state.settling);
    let first = SecretString::from("refresh-1".to_owned());
    let second = SecretString::from("refresh-2".to_owned());
    let write = |generation, refresh_token| RefreshWrite {
        generation,
        refresh_token,
        replacing_damaged: None,
        settle: None,
    };
    assert!(store.store_refresh(key, write(0, &first)).await.unwrap());
    assert!(
        !store.store_refresh(key, write(0, &second)).await.unwrap(),
        "not newer"
    );
    assert!(store.begin_presenting(key, 0, "holder-a").await.unwrap());
    assert!(!store.begin_presenting(key, 0, "holder-b").await.unwrap());
    let settling = RefreshWrite {
        settle: Some(Duration::from_secs(30)),
        ..write(1, &second)
    };
    assert!(store.store_refresh(key, settling).await.unwrap());
    let state = store.refresh_record(key).await.unwrap();
    assert!(state.settling);
    let record = state.record.expect("a refresh token");
    assert_eq!(record.generation, 1);
    assert_eq!(record.presenting, None, "a write clears the intent");
    match &record.value {
        RefreshValue::Readable(value) => assert_eq!(value.expose_secret(), "refresh-2"),
        other => panic!("not readable: {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_keeps_secret_type_scope_and_expiry() {
    let redis = RedisServer::start_for_test("round_trip");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("round-trip");
    assert!(store.get(&key).await.unwrap().is_none());
    let stored = token("round-trip-secret");
    let writing = tokio::time::Instant::now();
    store
        .put(&key, &stored, Duration::from_secs(1))
        .await
        .unwrap();
    // Redis starts the key's time to live when the write reaches it: up to the write's
    // round trip after the writer computed it. No later than that.
    let write_took = writing.elapsed();
    let back = store.get(&key).await.unwrap().expect("a stored token");
    assert_eq!(back.secret().expose_secret(), "round-trip-secret");
    assert_eq!(back.scope(), Some("read"));
    let (left, want) = (back.expires_at().unwrap(), stored.expires_at().unwrap());
    assert!(
        left <= want + write_took,
        "never later than the token (and its write): {:?} after, the write took {write_took:?}",
        left - want
    );
    assert!(want - left < Duration::from_secs(2), "expiry kept");
    // Redis expires the value with the token.
    let pttl = pttl(&redis, &store.token_key(&key));
    assert!(
        pttl > 50_000 && pttl <= 60_000,
        "PX from the lifetime: {pttl}"
    );
}

#[tokio::test]
async fn raw_value_hides_the_token_and_does_not_open_with_another_key() {
    let redis = RedisServer::start_for_test("raw_value");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("raw");
    store
        .put(&key, &token("raw-secret-value"), Duration::ZERO)
        .await
        .unwrap();
    let raw = raw_get(&redis, &store.token_key(&key));
    assert!(raw.starts_with(b"$"), "a bulk string: {raw:?}");
    assert!(!raw.windows(16).any(|w| w == b"raw-secret-value"));
    assert!(!raw.windows(6).any(|w| w == b"Bearer"));

    // Same id, different key: unreadable, and the secret is not in the error.
    let wrong = encrypted(&redis, "k1", KEY_2);
    let error = wrong.get(&key).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unreadable);
    assert!(!format!("{error} {error:?}").contains("raw-secret-value"));
    // Unknown id: unreadable, naming the id.
    let other = encrypted(&redis, "k9", KEY_1);
    let error = other.get(&key).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unreadable);
    assert!(error.to_string().contains("k1"));
}

#[tokio::test]
async fn a_value_moved_to_another_key_is_unreadable() {
    let redis = RedisServer::start_for_test("moved_value");
    let store = encrypted(&redis, "k1", KEY_1);
    let (a, b) = (store_key("a"), store_key("b"));
    store
        .put(&a, &token("moved-secret"), Duration::ZERO)
        .await
        .unwrap();
    let reply = redis
        .command(&[
            b"COPY",
            store.token_key(&a).as_bytes(),
            store.token_key(&b).as_bytes(),
        ])
        .unwrap();
    assert_eq!(reply, b":1\r\n");
    let error = store.get(&b).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unreadable);
}

#[tokio::test]
async fn rotation_reads_old_values_with_a_decryption_key() {
    let redis = RedisServer::start_for_test("rotation");
    let old = encrypted(&redis, "2025", KEY_1);
    let key = store_key("rotation");
    old.put(&key, &token("written-with-old"), Duration::ZERO)
        .await
        .unwrap();

    let rotated = RedisStore::builder(&redis.url())
        .encryption_key("2026", KEY_2)
        .decryption_key("2025", KEY_1)
        .build()
        .unwrap();
    let read = rotated.get(&key).await.unwrap().unwrap();
    assert_eq!(read.secret().expose_secret(), "written-with-old");
    // New values use the new key: the old setup cannot read them.
    rotated
        .put(&key, &token("written-with-new"), Duration::ZERO)
        .await
        .unwrap();
    let raw = raw_get(&redis, &rotated.token_key(&key));
    assert!(raw.windows(4).any(|w| w == b"2026"));
    assert_eq!(
        old.get(&key).await.unwrap_err().kind(),
        StoreErrorKind::Unreadable
    );
    let only_new = encrypted(&redis, "2026", KEY_2);
    assert_eq!(
        only_new
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .secret()
            .expose_secret(),
        "written-with-new"
    );
}

#[tokio::test]
async fn clear_storage_is_an_explicit_choice() {
    let error = RedisStore::builder("redis://127.0.0.1:1")
        .build()
        .unwrap_err();
    assert_eq!(error, BuildError::NoEncryptionChoice);
    assert!(error.to_string().contains("encryption_key"));
    assert!(error.to_string().contains("store_in_clear"));
    let both = RedisStore::builder("redis://127.0.0.1:1")
        .encryption_key("k1", KEY_1)
        .store_in_clear()
        .build()
        .unwrap_err();
    assert_eq!(both, BuildError::BothEncryptionAndClear);

    let redis = RedisServer::start_for_test("clear_mode");
    let clear = RedisStore::builder(&redis.url())
        .store_in_clear()
        .build()
        .unwrap();
    let key = store_key("clear");
    clear
        .put(&key, &token("clear-secret"), Duration::ZERO)
        .await
        .unwrap();
    let raw = raw_get(&redis, &clear.token_key(&key));
    assert!(
        raw.windows(12).any(|w| w == b"clear-secret"),
        "stored in clear as asked"
    );
    assert_eq!(
        clear
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .secret()
            .expose_secret(),
        "clear-secret"
    );
    // A store that encrypts refuses a clear value rather than trusting it.
    let error = encrypted(&redis, "k1", KEY_1).get(&key).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unreadable);
}

#[tokio::test]
async fn bad_settings_are_typed_errors() {
    assert_eq!(
        RedisStore::builder("http://nope")
            .store_in_clear()
            .build()
            .unwrap_err(),
        BuildError::InvalidUrl
    );
    let url_error = RedisStore::builder("redis://user:hunter2@[bad")
        .store_in_clear()
        .build()
        .unwrap_err();
    assert!(!url_error.to_string().contains("hunter2"));
    assert!(matches!(
        RedisStore::builder("redis://127.0.0.1")
            .encryption_key("", KEY_1)
            .build(),
        Err(BuildError::InvalidKeyId(_))
    ));
    assert!(matches!(
        RedisStore::builder("redis://127.0.0.1")
            .encryption_key("k", KEY_1)
            .decryption_key("k", KEY_2)
            .build(),
        Err(BuildError::DuplicateKeyId(_))
    ));
    // TLS URLs build (and connect lazily).
    let tls = RedisStore::builder("rediss://127.0.0.1:1")
        .username("app")
        .password("hunter2")
        .encryption_key("k", KEY_1)
        .build()
        .unwrap();
    assert!(!format!("{tls:?}").contains("hunter2"));
    let builder = RedisStore::builder("redis://u:hunter2@127.0.0.1").password("hunter3");
    let text = format!("{builder:?}");
    assert!(!text.contains("hunter2") && !text.contains("hunter3"));
}

#[tokio::test]
async fn password_from_the_builder_authenticates() {
    let redis = RedisServer::start_for_test("password");
    let reply = redis
        .command(&[
            b"ACL", b"SETUSER", b"app", b"on", b">s3cret", b"~*", b"+@all",
        ])
        .unwrap();
    assert_eq!(reply, b"+OK\r\n");
    let key = store_key("acl");
    let store = RedisStore::builder(&redis.url())
        .username("app")
        .password("s3cret")
        .key_prefix("myapp:")
        .encryption_key("k1", KEY_1)
        .build()
        .unwrap();
    store
        .put(&key, &token("acl-secret"), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(store.token_key(&key), format!("myapp:{{{key}}}:token"));
    let in_url = format!("redis://app:s3cret@{}", redis.addr());
    let via_url = RedisStore::builder(&in_url)
        .key_prefix("myapp:")
        .encryption_key("k1", KEY_1)
        .build()
        .unwrap();
    assert!(via_url.get(&key).await.unwrap().is_some());
    let wrong = RedisStore::builder(&redis.url())
        .username("app")
        .password("pw-9f3k")
        .encryption_key("k1", KEY_1)
        .build()
        .unwrap();
    let error = wrong.get(&key).await.unwrap_err();
    assert!(!format!("{error} {error:?}").contains("pw-9f3k"));
}

#[tokio::test]
async fn the_lease_is_exclusive_until_released_or_expired() {
    let redis = RedisServer::start_for_test("lease");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("lease");
    let ttl = Duration::from_millis(300);
    assert!(store.try_lease(&key, "a", ttl).await.unwrap());
    assert!(!store.try_lease(&key, "b", ttl).await.unwrap());
    // Only the holder can release it.
    store.release(&key, "b").await.unwrap();
    assert!(!store.try_lease(&key, "b", ttl).await.unwrap());
    store.release(&key, "a").await.unwrap();
    assert!(store.try_lease(&key, "b", ttl).await.unwrap());
    // An abandoned lease expires by itself.
    let started = Instant::now();
    while !store.try_lease(&key, "c", ttl).await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Many concurrent takers: exactly one wins.
    let key = store_key("lease-race");
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (store, key) = (Arc::clone(&store), key.clone());
        tasks.push(tokio::spawn(async move {
            store
                .try_lease(&key, &format!("holder-{i}"), Duration::from_secs(30))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn garbage_values_are_unreadable_not_panics() {
    let redis = RedisServer::start_for_test("garbage");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("garbage");
    let name = store.token_key(&key);
    let garbage: [&[u8]; 5] = [
        b"",
        b"\x01",
        b"\x01\x02k1short",
        b"{\"access_token\":1}",
        &[0xff; 300],
    ];
    for value in garbage {
        redis.command(&[b"SET", name.as_bytes(), value]).unwrap();
        let error = store.get(&key).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Unreadable, "{value:?}");
    }
    // Garbage of the wrong Redis type is an error too, not a panic.
    redis.command(&[b"DEL", name.as_bytes()]).unwrap();
    redis.command(&[b"LPUSH", name.as_bytes(), b"x"]).unwrap();
    assert!(store.get(&key).await.is_err());
    let refresh = store.refresh_key(&key);
    redis
        .command(&[b"HSET", refresh.as_bytes(), b"gen", b"1", b"val", b"junk"])
        .unwrap();
    let record = store.refresh_record(&key).await.unwrap().record.unwrap();
    assert_eq!(record.generation, 1);
    assert!(
        matches!(&record.value, RefreshValue::Damaged(e) if e.kind() == StoreErrorKind::Unreadable),
        "{record:?}"
    );

    // A StoreSource over the garbage falls back and still hands out tokens.
    redis
        .command(&[b"SET", name.as_bytes(), b"\x01junk"])
        .unwrap();
    let counting = counting();
    let source = StoreSource::new(counting.clone(), store, key);
    let token = source.fetch().await.unwrap();
    assert_eq!(token.secret().expose_secret(), "fetched-1");
    assert_eq!(source.stats().fallbacks, 1);
}

#[tokio::test]
async fn redis_down_is_unavailable_fast_and_sharing_resumes_when_it_is_back() {
    let mut redis = RedisServer::start_for_test("redis_down");
    let store = Arc::new(
        RedisStore::builder(&redis.url())
            .encryption_key("k1", KEY_1)
            .reconnect_interval(Duration::from_millis(200))
            .build()
            .unwrap(),
    );
    let key = store_key("down");
    let counting = counting();
    let config = StoreConfig::new()
        .op_timeout(Duration::from_secs(2))
        .min_remaining(Duration::ZERO);
    let source =
        StoreSource::with_config(counting.clone(), Arc::clone(&store), key.clone(), config);
    source.fetch().await.unwrap();
    assert_eq!(source.stats().fetched, 1);

    redis.stop();
    let mut failures = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let error = store.get(&key).await.unwrap_err();
        assert!(
            matches!(
                error.kind(),
                StoreErrorKind::Unavailable | StoreErrorKind::Timeout
            ),
            "{error}"
        );
        // A hang guard, not a timing assertion: well past the 1 s response timeout.
        assert!(started.elapsed() < Duration::from_secs(5));
        if source.fetch().await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "no token fetch fails because Redis is down");
    assert!(source.stats().fallbacks >= 20);

    // Back again (empty: no persistence): the same store reconnects and shares again.
    redis.start_again().unwrap();
    let started = Instant::now();
    loop {
        let before = source.stats().fetched;
        source.fetch().await.unwrap();
        if source.stats().fetched > before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "sharing never resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "a token is stored again"
    );
}

#[tokio::test]
async fn a_slow_redis_times_out_and_the_source_falls_back() {
    let redis = RedisServer::start_for_test("slow_redis");
    let store = Arc::new(encrypted(&redis, "k1", KEY_1));
    let key = store_key("slow");
    store
        .put(&key, &token("slow-secret"), Duration::ZERO)
        .await
        .unwrap();
    // Redis answers nobody for 2 s from here. The store's 400 ms response timeout then
    // fails the read below, and its 1 s reconnect interval the fallback's read, as long as
    // both are sent within 1.6 s of this line: the only real-time bound here.
    let paused_until = redis.pause_clients(Duration::from_secs(2)).unwrap();
    let error = store.get(&key).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Timeout, "{error}");
    // The StoreSource falls back to its own source: the call does not fail.
    let counting = counting();
    let source = StoreSource::new(counting.clone(), Arc::clone(&store), key.clone());
    assert_eq!(
        source.fetch().await.unwrap().secret().expose_secret(),
        "fetched-1"
    );
    assert_eq!(source.stats().fallbacks, 1);
    tokio::time::sleep_until(paused_until.into()).await;
}

#[tokio::test]
async fn secrets_stay_out_of_logs_debug_and_errors() {
    let mut redis = RedisServer::start_for_test("no_secret_leaks");
    redis
        .command(&[
            b"ACL",
            b"SETUSER",
            b"app",
            b"on",
            b">pw-leak-check",
            b"~*",
            b"+@all",
        ])
        .unwrap();
    let logs = tower_bearer_testkit::capture_tracing();
    let store = Arc::new(
        RedisStore::builder(&format!("redis://app:pw-leak-check@{}", redis.addr()))
            .encryption_key("k1", KEY_1)
            .reconnect_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    );
    let key = store_key("leaks");
    let source = StoreSource::with_config(
        counting(),
        Arc::clone(&store),
        key.clone(),
        StoreConfig::new().warn_interval(Duration::ZERO),
    );
    let shared = source.fetch().await.unwrap();
    let mut seen = vec![format!("{store:?} {shared:?}")];
    // Garbage, then Redis gone: both warn, and the errors are printed.
    redis
        .command(&[b"SET", store.token_key(&key).as_bytes(), b"\x01junk"])
        .unwrap();
    let error = store.get(&key).await.unwrap_err();
    seen.push(format!("{error} {error:?}"));
    source.fetch().await.unwrap();
    redis.stop();
    let error = store.get(&key).await.unwrap_err();
    seen.push(format!("{error} {error:?}"));
    source.fetch().await.unwrap();
    let logged = logs.contents();
    assert!(
        logged.contains("token store failed"),
        "the fallbacks warned: {logged}"
    );
    seen.push(logged);
    assert_no_secret(
        &seen,
        &["fetched-1", "fetched-2", "fetched-3", "pw-leak-check"],
    );
}

/// A source that counts its fetches and hands out `fetched-N` tokens.
fn counting() -> NumberedSource {
    NumberedSource::named("fetched").lifetime(Duration::from_secs(60))
}

/// Two replicas that load one DPoP key (RFC 9449) share one DPoP-bound token: the second
/// takes it from the store, and the API accepts the proofs it signs with its copy of the key.
#[tokio::test]
async fn replicas_that_load_one_dpop_key_share_its_bound_token() {
    use tower_bearer::dpop::DpopKey;
    use tower_bearer::TokenCache;
    use tower_bearer_test_support::dpop_client_credentials_source;
    use tower_bearer_testkit::{ApiServer, AuthServer, DpopOptions};

    let redis = RedisServer::start_for_test("dpop_sharing");
    let auth = AuthServer::start().await.unwrap();
    let api = ApiServer::builder(&auth)
        .dpop(DpopOptions::new().require_proof(true))
        .start()
        .await
        .unwrap();
    // One secret, loaded by each replica: what a fleet mounts from its secret store.
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let replica = || {
        let key = DpopKey::from_pkcs8_der(pkcs8.as_ref()).unwrap();
        let store = encrypted(&redis, "k1", KEY_1);
        let store_key = StoreKey::builder("http://127.0.0.1/token", "dpop-fleet")
            .dpop_key(key.clone())
            .build();
        let source = StoreSource::new(
            dpop_client_credentials_source(&auth, key.clone()),
            store,
            store_key,
        );
        (TokenCache::new(source.clone()), source, key)
    };
    let (cache_a, source_a, key_a) = replica();
    let (cache_b, source_b, key_b) = replica();
    assert_eq!(key_a.thumbprint(), key_b.thumbprint());

    let token_a = cache_a.token().await.unwrap();
    let token_b = cache_b.token().await.unwrap();
    assert_eq!(auth.token_requests(), 1, "one token for the fleet");
    assert_eq!(source_a.stats().fetched, 1);
    assert_eq!(source_b.stats().from_store, 1);
    assert_eq!(
        token_b.secret().expose_secret(),
        token_a.secret().expose_secret()
    );
    assert_eq!(token_b.dpop_key().unwrap().thumbprint(), key_a.thumbprint());

    let client = tower::Layer::layer(
        &tower_bearer::BearerAuthLayer::new(cache_b),
        tower_bearer_testkit::http_client(),
    );
    let request = http::Request::get(format!("{}/orders", api.url()))
        .body(http_body_util::Full::<bytes::Bytes>::default())
        .unwrap();
    let response = tower::ServiceExt::oneshot(client, request).await.unwrap();
    assert_eq!(response.status(), 200, "{:?}", api.refusals());
    assert_eq!(api.dpop_requests(), 1);
}

/// A writer's claim cannot make a token outlive its Redis key: the key's own time to live,
/// read with the value, is what every replica trusts. Here the record says 630 s (as a
/// writer whose clock runs ahead would once have made it say) and Redis drops it in 60 s.
#[tokio::test]
async fn the_keys_time_to_live_not_the_writers_claim_decides_a_tokens_lifetime() {
    let redis = RedisServer::start_for_test("time_to_live");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("time-to-live");
    let claimed = Token::builder("claims-630-s")
        .expires_in(Duration::from_secs(630))
        .build()
        .unwrap();
    store.put(&key, &claimed, Duration::ZERO).await.unwrap();
    let name = store.token_key(&key);
    assert!(
        pttl(&redis, &name) > 600_000,
        "PX from the token's lifetime"
    );
    let reply = redis
        .command(&[b"PEXPIRE", name.as_bytes(), b"60000"])
        .unwrap();
    assert_eq!(integer(&reply), 1);

    let read = store.get(&key).await.unwrap().expect("a stored token");
    let left = read.expires_at().unwrap() - tokio::time::Instant::now();
    assert!(
        left <= Duration::from_secs(60),
        "expires within 60 s: {left:?}"
    );
    assert!(left > Duration::from_secs(50), "{left:?}");

    // A key whose time to live was removed (not written by this crate) is not trusted.
    redis.command(&[b"PERSIST", name.as_bytes()]).unwrap();
    assert_eq!(
        store.get(&key).await.unwrap_err().kind(),
        StoreErrorKind::Unreadable
    );
}

#[tokio::test]
async fn a_token_without_expiry_is_kept_for_the_ttl_and_read_without_expiry() {
    let redis = RedisServer::start_for_test("no_expiry");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("no-expiry");
    let forever = Token::builder("no-expiry-secret").build().unwrap();
    store
        .put(&key, &forever, Duration::from_secs(5))
        .await
        .unwrap();
    let ttl = pttl(&redis, &store.token_key(&key));
    assert!(ttl > 0 && ttl <= 5_000, "kept for the ttl: {ttl}");
    let read = store.get(&key).await.unwrap().expect("a stored token");
    assert_eq!(read.secret().expose_secret(), "no-expiry-secret");
    assert!(read.expires_at().is_none());
}

/// A stored DPoP-bound token is built with the DPoP key its store key carries; a store key
/// with no key, or with another one than the token is bound to, gets a typed Config error.
#[tokio::test]
async fn a_dpop_token_is_read_with_the_key_its_store_key_carries() {
    use tower_bearer::dpop::DpopKey;

    let redis = RedisServer::start_for_test("dpop_store_key");
    let store = encrypted(&redis, "k1", KEY_1);
    let dpop = DpopKey::generate_es256().unwrap();
    let bound = |secret: &str| {
        Token::builder(secret)
            .expires_in(Duration::from_secs(60))
            .dpop_key(dpop.clone())
            .build()
            .unwrap()
    };

    // Matching: the token comes back bound to the carried key.
    let key = StoreKey::builder("http://127.0.0.1/token", "dpop")
        .dpop_key(dpop.clone())
        .build();
    store
        .put(&key, &bound("dpop-secret-1"), Duration::ZERO)
        .await
        .unwrap();
    let read = store.get(&key).await.unwrap().expect("a stored token");
    assert_eq!(read.secret().expose_secret(), "dpop-secret-1");
    assert_eq!(read.dpop_key().unwrap().thumbprint(), dpop.thumbprint());

    // Missing: a store key built without the DPoP key its tokens are bound to.
    let missing = store_key("dpop-missing");
    store
        .put(&missing, &bound("dpop-secret-2"), Duration::ZERO)
        .await
        .unwrap();
    let error = store.get(&missing).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Config);
    assert!(error.to_string().contains("dpop_key"), "{error}");

    // Different: the store key carries another key than the token is bound to.
    let other = DpopKey::generate_es256().unwrap();
    let different = StoreKey::builder("http://127.0.0.1/token", "dpop")
        .dpop_key(other.clone())
        .build();
    store
        .put(&different, &bound("dpop-secret-3"), Duration::ZERO)
        .await
        .unwrap();
    let error = store.get(&different).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Config);
    let text = format!("{error} {error:?}");
    assert!(text.contains(dpop.thumbprint()) && text.contains(other.thumbprint()));
    assert!(!text.contains("dpop-secret"), "{text}");
}

/// One store serves a StoreSource and a refresh-token user at once: clones share the
/// connection; an `Arc` works as well.
#[tokio::test]
async fn one_store_serves_a_store_source_and_refresh_tokens_at_once() {
    let redis = RedisServer::start_for_test("shared_store");
    let store = encrypted(&redis, "k1", KEY_1);
    let key = store_key("shared-store");
    let source = StoreSource::new(counting(), store.clone(), key.clone());
    let refresh_user: Arc<dyn RefreshTokenStore> = Arc::new(store.clone());
    let refresh_token = SecretString::from("shared-refresh".to_owned());
    let written = refresh_user
        .store_refresh(
            &key,
            RefreshWrite {
                generation: 0,
                refresh_token: &refresh_token,
                replacing_damaged: None,
                settle: None,
            },
        )
        .await
        .unwrap();
    assert!(written);
    source.fetch().await.unwrap();
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "the source stored"
    );
    let record = store.refresh_record(&key).await.unwrap().record.unwrap();
    assert_eq!(record.generation, 0);
    let arc = Arc::new(store);
    assert!(TokenStore::get(&arc, &key).await.unwrap().is_some());
}
