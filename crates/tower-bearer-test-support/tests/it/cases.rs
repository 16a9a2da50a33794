//! The fleet's refresh token against a real Redis, one test per way the earlier protocol lost
//! the grant (numbered as in the issue that found them), each with the test kit's
//! reuse-detecting authorization server. Every test ends the same way: the newest refresh
//! token the server issued is still good (a reuse would have revoked the whole grant), and
//! a replica started afterwards, from the long-dead refresh token in its configuration, gets
//! a token.
//!
//! Cases 1 and 2 run on one node, on a Cluster and behind Sentinel, and over TLS on both.
//! Case 5 (no replica trusts another's clock) is `redis_store`'s
//! `the_keys_time_to_live_not_the_writers_claim_decides_a_tokens_lifetime`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{
    RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreError, StoreErrorKind,
    StoreFuture, StoreKey, StoreSource, TokenStore,
};
use tower_bearer::{FetchError, Token, TokenCache, TokenSource};
use tower_bearer_oauth2::{ClientAuth, Endpoint, FleetConfig, RefreshToken, RefreshTokenBuilder};
use tower_bearer_redis::{RedisStore, RedisStoreBuilder};
use tower_bearer_testkit::{AuthServer, Fault, RedisCluster, RedisSentinel, RedisServer};

use crate::redis_tls::{tls_cluster, tls_sentinel, Pki};

pub(crate) type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The encryption key every replica of the fleet is configured with.
const FLEET_KEY: [u8; 32] = [9; 32];

/// Where the fleet's Redis runs, and how it loses its data.
pub(crate) trait Topology {
    /// A store builder for this Redis, without keys.
    fn builder(&self) -> RedisStoreBuilder;

    /// Redis loses every key, as a node that restarts without persistence does.
    fn lose_data(&mut self, key_name: &str) -> io::Result<()>;
}

impl Topology for RedisServer {
    fn builder(&self) -> RedisStoreBuilder {
        RedisStore::builder(&self.url())
    }

    fn lose_data(&mut self, _: &str) -> io::Result<()> {
        self.stop();
        self.start_again()
    }
}

impl Topology for RedisCluster {
    fn builder(&self) -> RedisStoreBuilder {
        RedisStore::cluster_builder(self.urls())
    }

    fn lose_data(&mut self, key_name: &str) -> io::Result<()> {
        self.command_for(key_name, &[b"FLUSHALL"]).map(drop)
    }
}

impl Topology for RedisSentinel {
    fn builder(&self) -> RedisStoreBuilder {
        RedisStore::sentinel_builder(self.sentinel_urls(), self.master_name())
    }

    fn lose_data(&mut self, _: &str) -> io::Result<()> {
        self.master().command(&[b"FLUSHALL"]).map(drop)
    }
}

/// A TLS-only topology (no plain port on any node) and the certificates its store trusts:
/// the store's every connection is TLS.
pub(crate) struct OverTls<T> {
    redis: T,
    pki: Pki,
}

impl Topology for OverTls<RedisCluster> {
    fn builder(&self) -> RedisStoreBuilder {
        self.pki
            .trusted_by(RedisStore::cluster_builder(self.redis.tls_urls()))
    }

    fn lose_data(&mut self, key_name: &str) -> io::Result<()> {
        self.redis.lose_data(key_name)
    }
}

impl Topology for OverTls<RedisSentinel> {
    fn builder(&self) -> RedisStoreBuilder {
        let sentinels = self.redis.tls_sentinel_urls();
        self.pki.trusted_by(RedisStore::sentinel_builder(
            sentinels,
            self.redis.master_name(),
        ))
    }

    fn lose_data(&mut self, key_name: &str) -> io::Result<()> {
        self.redis.lose_data(key_name)
    }
}

/// The fleet: an authorization server that revokes a grant whose refresh token is reused,
/// the grant's seed refresh token (what every replica is configured with), and its store.
pub(crate) struct Fleet {
    pub(crate) auth: AuthServer,
    pub(crate) store: RedisStore,
    pub(crate) key: StoreKey,
    seed: String,
}

impl Fleet {
    /// A fleet whose store `builder` makes (one node, a cluster, Sentinel), sealing with
    /// the fleet's key.
    pub(crate) async fn on(builder: RedisStoreBuilder) -> Fleet {
        let auth = AuthServer::builder()
            .detect_refresh_token_reuse(true)
            .start()
            .await
            .unwrap();
        let seed = auth.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
        let store = Fleet::store(builder.encryption_key("k1", FLEET_KEY));
        let key = StoreKey::builder(auth.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
        Fleet {
            auth,
            store,
            key,
            seed,
        }
    }

    /// A store from `builder`, reconnecting quickly.
    pub(crate) fn store(builder: RedisStoreBuilder) -> RedisStore {
        builder
            .reconnect_interval(Duration::from_millis(100))
            .build()
            .unwrap()
    }

    /// The fleet's timings, short: a check every 200 ms, a 1 s settle.
    pub(crate) fn config() -> FleetConfig {
        FleetConfig::new()
            .check_interval(Duration::from_millis(200))
            .settle(Duration::from_millis(1000))
    }

    /// A replica configured as a deployment would be: its own endpoint, the seed refresh
    /// token, `config`, and `store` (the fleet's, or another with other keys).
    pub(crate) fn replica_on(
        &self,
        store: impl RefreshTokenStore,
        config: FleetConfig,
    ) -> RefreshToken {
        self.replica_builder_on(store, config).build().unwrap()
    }

    /// [`replica_on`](Self::replica_on)'s builder, for a test to configure further.
    pub(crate) fn replica_builder_on(
        &self,
        store: impl RefreshTokenStore,
        config: FleetConfig,
    ) -> RefreshTokenBuilder {
        let endpoint = Endpoint::builder(self.auth.token_url()).build().unwrap();
        let client = ClientAuth::secret_basic(
            AuthServer::DEFAULT_CLIENT_ID,
            AuthServer::DEFAULT_CLIENT_SECRET,
        )
        .unwrap();
        RefreshToken::builder(endpoint, client, self.seed.as_str())
            .share_through(store, self.key.clone())
            .fleet(config)
    }

    /// A replica on the fleet's store with the short timings.
    pub(crate) fn replica(&self) -> RefreshToken {
        self.replica_on(self.store.clone(), Fleet::config())
    }

    /// `refresh`'s cache as the README's composition has it: the access token shared
    /// through a `StoreSource` on the same store as the refresh token.
    pub(crate) fn cache(&self, refresh: &RefreshToken) -> TokenCache {
        TokenCache::new(StoreSource::new(
            refresh.clone(),
            self.store.clone(),
            self.key.derive("access"),
        ))
    }

    /// The fleet's refresh token in the store, if it is there and readable.
    pub(crate) async fn stored(&self) -> Option<(u64, SecretString)> {
        let record = self.store.refresh_record(&self.key).await.ok()?.record?;
        match record.value {
            RefreshValue::Readable(token) => Some((record.generation, token)),
            _ => None,
        }
    }

    /// The store's refresh-token key in Redis.
    pub(crate) fn refresh_key(&self) -> String {
        self.store.refresh_key(&self.key)
    }

    /// The newest refresh token the server issued is still good: nothing was reused.
    pub(crate) async fn assert_grant_valid(&self) {
        let (_, current) = self.stored().await.expect("a stored refresh token");
        assert!(
            self.auth.is_refresh_token_valid(current.expose_secret()),
            "the grant was revoked"
        );
    }

    /// How every case ends: the grant is valid, and a replica started now (from the seed,
    /// long rotated away) gets an access token through its cache and refreshes from the
    /// fleet's refresh token, after which the grant is still valid.
    pub(crate) async fn assert_grant_valid_and_a_new_replica_works(&self) -> TestResult {
        self.assert_grant_valid().await;
        let late = self.replica();
        let token = self.cache(&late).token().await?;
        assert!(self.auth.is_valid(token.secret().expose_secret()));
        late.fetch().await?;
        self.assert_grant_valid().await;
        Ok(())
    }
}

/// Whether `error` says the store could not be reached (or answered too late).
pub(crate) fn store_unavailable(error: &FetchError) -> bool {
    error.is_transient() && error.to_string().contains("store cannot be reached")
}

/// Runs `attempt` until it succeeds, for as long as it fails only because the store cannot
/// be reached, and for 30 s at most.
pub(crate) async fn once_the_store_answers<T, F>(mut attempt: impl FnMut() -> F) -> TestResult<T>
where
    F: std::future::Future<Output = Result<T, FetchError>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if store_unavailable(&error) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Case 1: a replica that never refreshed is the first to need a refresh after Redis lost
/// its data, and a replica started right after the loss refreshes at the same moment. The
/// earlier protocol took "nothing stored" from a generation-0 replica for a new fleet and
/// presented the long-rotated seed about 0.1 s after the restart.
pub(crate) async fn case_1(mut redis: impl Topology) -> TestResult {
    let fleet = Fleet::on(redis.builder()).await;
    let replicas: Vec<RefreshToken> = (0..3).map(|_| fleet.replica()).collect();
    let caches: Vec<TokenCache> = replicas.iter().map(|r| fleet.cache(r)).collect();
    // The first cache refreshes (a brand-new fleet: it settles first); the others read its
    // access token from the store and never refresh.
    for cache in &caches {
        cache.token().await?;
    }
    assert_eq!(fleet.auth.token_requests(), 1, "one refresh for the fleet");
    let (generation, newest) = fleet.stored().await.unwrap();
    assert_eq!(generation, 1);
    // The others never refreshed, but their checks keep their copies current.
    let deadline = Instant::now() + Duration::from_secs(10);
    while replicas[1..]
        .iter()
        .any(|r| r.refresh_token().expose_secret() != newest.expose_secret())
    {
        assert!(
            Instant::now() < deadline,
            "the checks never adopted generation 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let requests = fleet.auth.token_requests();
    redis.lose_data(&fleet.refresh_key())?;
    // At once, before any check ran: a replica that never refreshed needs a new access
    // token (the API rejected its own), and a replica started now refreshes too.
    let rejected = caches[1].token().await;
    let started_now = fleet.replica();
    let (first, second) = tokio::join!(
        once_the_store_answers(|| async {
            if let Ok(token) = &rejected {
                caches[1].invalidate(token);
            }
            caches[1].token().await
        }),
        once_the_store_answers(|| started_now.fetch()),
    );
    first?;
    second?;
    assert!(
        fleet.auth.token_requests() > requests,
        "the fleet refreshed after the loss"
    );
    let (generation, _) = fleet.stored().await.expect("the newest copy was put back");
    assert!(generation >= 2, "refreshed from generation 1: {generation}");
    fleet.assert_grant_valid_and_a_new_replica_works().await
}

/// One replica's way to the store, which a test can cut (every operation fails at once, as
/// with a refused connection) and heal: a network partition between that replica and Redis,
/// while the others reach it. Fault injection only: the operations are the real store's.
#[derive(Clone)]
pub(crate) struct Partitioned {
    store: RedisStore,
    cut: Arc<AtomicBool>,
}

impl Partitioned {
    pub(crate) fn new(store: RedisStore) -> Self {
        Partitioned {
            store,
            cut: Arc::default(),
        }
    }

    pub(crate) fn cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }

    fn through<'a, T: Send + 'a>(&'a self, operation: StoreFuture<'a, T>) -> StoreFuture<'a, T> {
        Box::pin(async move {
            if self.cut.load(Ordering::SeqCst) {
                return Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "the network between this replica and Redis is cut (test)",
                ));
            }
            operation.await
        })
    }
}

impl TokenStore for Partitioned {
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        self.through(self.store.get(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a StoreKey,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.through(self.store.put(key, token, ttl))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        self.through(self.store.try_lease(key, holder, ttl))
    }

    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()> {
        self.through(self.store.release(key, holder))
    }
}

impl RefreshTokenStore for Partitioned {
    fn refresh_record<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, RefreshState> {
        self.through(self.store.refresh_record(key))
    }

    fn begin_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        self.through(self.store.begin_presenting(key, generation, holder))
    }

    fn end_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        self.through(self.store.end_presenting(key, generation, holder))
    }

    fn store_refresh<'a>(
        &'a self,
        key: &'a StoreKey,
        write: RefreshWrite<'a>,
    ) -> StoreFuture<'a, bool> {
        self.through(self.store.store_refresh(key, write))
    }
}

/// Case 2: a replica is cut off from the store while it refreshes, for longer than the
/// earlier protocol's lease: it presents generation N, the server rotates, and the answer
/// arrives when the replica can no longer store N+1. The earlier protocol let another
/// replica take the expired lease and present N, still in the store.
pub(crate) async fn case_2(redis: impl Topology) -> TestResult {
    let fleet = Fleet::on(redis.builder()).await;
    let way = Partitioned::new(fleet.store.clone());
    let a = fleet.replica_on(way.clone(), Fleet::config().replica_id("replica-a"));
    let b = fleet.replica();
    // A third replica, with a short wait.
    let impatient = fleet.replica_on(
        fleet.store.clone(),
        Fleet::config().max_wait(Duration::from_millis(500)),
    );
    a.fetch().await?;
    b.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 2);

    // A presents generation 2; the server rotates at once and answers 300 ms later, by
    // when A is cut off.
    fleet
        .auth
        .fail_next(1, Fault::DelayAnswer(Duration::from_millis(300)));
    let presenting = {
        let a = a.clone();
        tokio::spawn(async move { a.fetch().await })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while fleet
        .store
        .refresh_record(&fleet.key)
        .await?
        .record
        .unwrap()
        .presenting
        .is_none()
    {
        assert!(Instant::now() < deadline, "A never recorded its intent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    way.cut(true);
    // A has its access token and generation 3, which only it holds.
    presenting.await??;
    assert_eq!(fleet.auth.token_requests(), 3);

    // The others reach the store and find generation 2 with A's intent: they never present
    // 2. With a short wait, a replica says whom it waits on.
    let error = impatient.fetch().await.unwrap_err();
    assert!(
        error.is_transient() && error.to_string().contains("replica-a"),
        "{error}"
    );
    // B waits meanwhile, for as long as the cut lasts, and refreshes once A, healed,
    // publishes generation 3 by itself (its background check keeps trying).
    let waiting = {
        let b = b.clone();
        tokio::spawn(async move { b.fetch().await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        fleet.auth.token_requests(),
        3,
        "nobody presented generation 2 again"
    );
    assert_eq!(fleet.stored().await.unwrap().0, 2);
    way.cut(false);
    waiting.await??;
    assert_eq!(
        fleet.stored().await.unwrap().0,
        4,
        "3 published, then B's 4"
    );
    a.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 5);
    fleet.assert_grant_valid_and_a_new_replica_works().await
}

#[tokio::test]
async fn case_1_a_replica_that_never_refreshed_goes_first_after_a_restart_empty() -> TestResult {
    let redis = RedisServer::start_for_test("case_1");
    case_1(redis).await
}

#[tokio::test]
async fn case_1_on_a_cluster() -> TestResult {
    let cluster = RedisCluster::start_for_test("case_1_cluster");
    case_1(cluster).await
}

#[tokio::test]
async fn case_1_behind_sentinel() -> TestResult {
    let group = RedisSentinel::start_for_test("case_1_sentinel", 1);
    case_1(group).await
}

#[tokio::test]
async fn case_2_the_store_cut_off_while_a_replica_refreshes() -> TestResult {
    let redis = RedisServer::start_for_test("case_2");
    case_2(redis).await
}

#[tokio::test]
async fn case_2_on_a_cluster() -> TestResult {
    let cluster = RedisCluster::start_for_test("case_2_cluster");
    case_2(cluster).await
}

#[tokio::test]
async fn case_2_behind_sentinel() -> TestResult {
    let group = RedisSentinel::start_for_test("case_2_sentinel", 1);
    case_2(group).await
}

#[tokio::test]
async fn case_1_on_a_cluster_over_tls() -> TestResult {
    let (redis, pki) = tls_cluster("case_1_cluster_tls");
    case_1(OverTls { redis, pki }).await
}

#[tokio::test]
async fn case_1_behind_sentinel_over_tls() -> TestResult {
    let (redis, pki) = tls_sentinel("case_1_sentinel_tls", 1);
    case_1(OverTls { redis, pki }).await
}

#[tokio::test]
async fn case_2_on_a_cluster_over_tls() -> TestResult {
    let (redis, pki) = tls_cluster("case_2_cluster_tls");
    case_2(OverTls { redis, pki }).await
}

#[tokio::test]
async fn case_2_behind_sentinel_over_tls() -> TestResult {
    let (redis, pki) = tls_sentinel("case_2_sentinel_tls", 1);
    case_2(OverTls { redis, pki }).await
}

/// Case 3: someone with write access to Redis, but without the encryption key, copies an
/// old sealed refresh token back under a higher generation. The earlier envelope bound the
/// key name only, so the old value decrypted and was presented.
#[tokio::test]
async fn case_3_an_old_sealed_value_copied_to_a_higher_generation_is_never_presented() -> TestResult
{
    let redis = RedisServer::start_for_test("case_3");
    let fleet = Fleet::on(redis.builder()).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    let name = fleet.refresh_key();
    let old = redis.command(&[b"HGET", name.as_bytes(), b"val"])?;
    a.fetch().await?;
    b.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 3);
    // Generation 1's value under generation 4: it does not open, so it is damaged, and the
    // next refresh puts the newest copy back (after a settle) and presents that.
    redis.command(&[b"HSET", name.as_bytes(), b"gen", b"4", b"val", bulk(&old)])?;
    assert!(fleet.stored().await.is_none(), "moved, it does not open");
    b.fetch().await?;
    fleet.assert_grant_valid().await;
    let (generation, _) = fleet.stored().await.unwrap();
    // Now under its own generation 1: it opens, but every replica has seen newer ones, so
    // it is a rollback, put right the same way, and never presented.
    redis.command(&[b"HSET", name.as_bytes(), b"gen", b"1", b"val", bulk(&old)])?;
    assert_eq!(fleet.stored().await.unwrap().0, 1, "an authentic old value");
    b.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, generation + 1);
    fleet.assert_grant_valid().await;
    a.fetch().await?;
    fleet.assert_grant_valid_and_a_new_replica_works().await
}

/// Case 4: a value no replica can open, at a higher generation, is replaced with the
/// newest copy (the earlier protocol waited a settle and failed, indefinitely); and a
/// replica deployed with the wrong key neither presents nor overwrites the fleet's values.
#[tokio::test]
async fn case_4_a_damaged_value_is_replaced_and_a_replica_with_the_wrong_key_changes_nothing(
) -> TestResult {
    let redis = RedisServer::start_for_test("case_4");
    let fleet = Fleet::on(redis.builder()).await;
    let replica = fleet.replica();
    replica.fetch().await?;
    let name = fleet.refresh_key();
    let damaged: [&[&[u8]]; 4] = [
        &[b"HSET", name.as_bytes(), b"gen", b"99", b"val", b"garbage"],
        &[b"HSET", name.as_bytes(), b"gen", b"not-a-number"],
        &[b"HSET", name.as_bytes(), b"gen", b"99999999999999999999999"],
        &[b"SET", name.as_bytes(), b"a string, not a hash"],
    ];
    for command in damaged {
        if command[0] == b"SET" {
            redis.command(&[b"DEL", name.as_bytes()])?;
        }
        redis.command(command)?;
        let started = Instant::now();
        replica.fetch().await?;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "replaced within a settle, not waited on"
        );
        fleet.assert_grant_valid().await;
    }

    // Two deployments with the wrong key: another key id, and the fleet's id with other
    // bytes (told apart from damage by the key commitment).
    let generation = fleet.stored().await.unwrap().0;
    for (id, key) in [("k2", [1; 32]), ("k1", [2; 32])] {
        let wrong = Fleet::store(redis.builder().encryption_key(id, key));
        let misconfigured = fleet.replica_on(wrong, Fleet::config());
        let requests = fleet.auth.token_requests();
        let error = misconfigured.fetch().await.unwrap_err();
        assert!(
            error.to_string().contains("key"),
            "says the value is sealed with a key this replica lacks: {error}"
        );
        // Its checks run for a while: they overwrite nothing.
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(fleet.auth.token_requests(), requests, "nothing presented");
        assert_eq!(
            fleet.stored().await.unwrap().0,
            generation,
            "nothing written"
        );
    }
    fleet.assert_grant_valid_and_a_new_replica_works().await
}

/// Redis's reply to `HGET`, as the value to write back.
fn bulk(reply: &[u8]) -> &[u8] {
    // A RESP bulk string: `$<len>\r\n<bytes>\r\n`.
    let start = reply.iter().position(|b| *b == b'\n').unwrap() + 1;
    &reply[start..reply.len() - 2]
}
