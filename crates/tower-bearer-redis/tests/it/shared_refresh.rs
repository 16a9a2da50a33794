//! A rotating refresh token shared through a real Redis is never presented twice, whatever
//! happens to Redis: the test kit's authorization server detects reuse (and then revokes
//! the grant), and every test ends by checking the grant is still valid.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Barrier;
use tower_bearer::store::{RefreshTokenStore, StoreConfig, StoreKey, StoreSource, TokenStore};
use tower_bearer::{FetchError, TokenCache, TokenSource};
use tower_bearer_oauth2::{
    ClientAuth, Endpoint, RefreshToken, RefreshTokenBuilder, WhenStoreUnavailable,
};
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::AuthServer;
use tower_bearer_testkit::RedisServer;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

struct Fleet {
    auth: AuthServer,
    store: Arc<RedisStore>,
    key: StoreKey,
    seed: String,
}

impl Fleet {
    async fn start(redis: &RedisServer) -> Fleet {
        Fleet::on(RedisStore::builder(&redis.url())).await
    }

    /// A fleet whose store `builder` makes (one node, a cluster, Sentinel).
    async fn on(builder: tower_bearer_redis::RedisStoreBuilder) -> Fleet {
        let auth = AuthServer::builder()
            .detect_refresh_token_reuse(true)
            .start()
            .await
            .unwrap();
        let seed = auth.issue_refresh_token(AuthServer::DEFAULT_CLIENT_ID, None);
        let store = Arc::new(
            builder
                .encryption_key("k1", [9; 32])
                .reconnect_interval(Duration::from_millis(100))
                .build()
                .unwrap(),
        );
        let key = StoreKey::builder(auth.token_url(), AuthServer::DEFAULT_CLIENT_ID).build();
        Fleet {
            auth,
            store,
            key,
            seed,
        }
    }

    /// A replica configured as a deployment would be: its own endpoint, the seed refresh
    /// token, and the fleet's store.
    fn replica_builder(&self) -> RefreshTokenBuilder {
        let endpoint = Endpoint::builder(self.auth.token_url()).build().unwrap();
        let client = ClientAuth::secret_basic(
            AuthServer::DEFAULT_CLIENT_ID,
            AuthServer::DEFAULT_CLIENT_SECRET,
        )
        .unwrap();
        RefreshToken::builder(endpoint, client, self.seed.as_str())
            .share_through(Arc::clone(&self.store), self.key.clone())
            .fleet(
                tower_bearer_oauth2::FleetConfig::new()
                    .check_interval(Duration::from_millis(200))
                    .settle(Duration::from_millis(1000)),
            )
    }

    fn replica(&self) -> RefreshToken {
        self.replica_builder().build().unwrap()
    }

    /// The fleet's refresh token in the store.
    async fn stored(&self) -> Option<(u64, SecretString)> {
        let record = self.store.refresh_record(&self.key).await.unwrap().record?;
        match record.value {
            tower_bearer::store::RefreshValue::Readable(token) => Some((record.generation, token)),
            _ => None,
        }
    }

    /// The newest refresh token the server issued is still good: nothing was reused.
    async fn assert_grant_valid(&self) {
        let (_, current) = self.stored().await.expect("a stored refresh token");
        assert!(
            self.auth.is_refresh_token_valid(current.expose_secret()),
            "the grant was revoked"
        );
    }
}

fn transient_store_error(error: &FetchError) -> bool {
    error.is_transient() && error.to_string().contains("store cannot be reached")
}

#[tokio::test]
async fn redis_down_fails_closed_and_the_grant_survives() -> TestResult {
    let Some(mut redis) = RedisServer::start_or_skip("shared_refresh_redis_down") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    // B takes A's rotated token from the store and rotates it again: A's copy is dead.
    b.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 2);

    redis.stop();
    let error = a.fetch().await.unwrap_err();
    assert!(transient_store_error(&error), "{error}");
    // The same through the README's composition: the cache keeps nothing it could serve
    // here, so the caller gets the same clear error, and no refresh token is presented.
    let cache = TokenCache::new(StoreSource::with_config(
        a.clone(),
        Arc::clone(&fleet.store),
        fleet.key.clone(),
        StoreConfig::new(),
    ));
    let error = cache.token().await.unwrap_err();
    assert!(transient_store_error(&error), "{error}");
    let requests = fleet.auth.token_requests();

    redis.start_again()?;
    // Redis came back empty (no persistence): B, which holds the newest, puts it back, and
    // A takes it from there. The client reconnects within moments; until then B waits too.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match b.fetch().await {
            Ok(_) => break,
            Err(error) if transient_store_error(&error) => {
                assert!(std::time::Instant::now() < deadline, "never reconnected");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
    a.fetch().await?;
    assert_eq!(fleet.auth.token_requests(), requests + 2);
    fleet.assert_grant_valid().await;
    Ok(())
}

#[tokio::test]
async fn replicas_refreshing_at_the_same_moment_take_turns() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_same_moment") else {
        return Ok(());
    };
    take_turns(Fleet::start(&redis).await).await
}

#[tokio::test]
async fn on_a_cluster_replicas_refreshing_at_the_same_moment_take_turns() -> TestResult {
    let Some(cluster) = tower_bearer_testkit::RedisCluster::start_or_skip("shared_refresh_cluster")
    else {
        return Ok(());
    };
    take_turns(Fleet::on(RedisStore::cluster_builder(cluster.urls())).await).await
}

#[tokio::test]
async fn through_sentinel_replicas_refreshing_at_the_same_moment_take_turns() -> TestResult {
    let Some(sentinel) =
        tower_bearer_testkit::RedisSentinel::start_or_skip("shared_refresh_sentinel", 1)
    else {
        return Ok(());
    };
    let builder = RedisStore::sentinel_builder(sentinel.sentinel_urls(), sentinel.master_name());
    take_turns(Fleet::on(builder).await).await
}

/// Eight replicas refresh at once through `fleet`'s store: they take turns.
async fn take_turns(fleet: Fleet) -> TestResult {
    let replicas: Vec<_> = (0..8).map(|_| fleet.replica()).collect();
    let barrier = Arc::new(Barrier::new(replicas.len()));
    let mut tasks = tokio::task::JoinSet::new();
    for replica in replicas {
        let barrier = Arc::clone(&barrier);
        tasks.spawn(async move {
            barrier.wait().await;
            replica.fetch().await.map(drop)
        });
    }
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    // Eight refreshes, one after another, each from the one before: eight rotations.
    assert_eq!(fleet.auth.token_requests(), 8);
    assert_eq!(fleet.stored().await.unwrap().0, 8);
    fleet.assert_grant_valid().await;
    Ok(())
}

#[tokio::test]
async fn after_redis_loses_its_data_sharing_resumes_and_a_late_replica_catches_up() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_data_loss") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    for _ in 0..2 {
        a.fetch().await?;
        b.fetch().await?;
    }
    assert_eq!(fleet.stored().await.unwrap().0, 4);

    redis.command(&[b"FLUSHALL"])?;
    // B holds the newest (it refreshed last): it puts it back and refreshes with it.
    b.fetch().await?;
    assert_eq!(
        fleet.stored().await.unwrap().0,
        5,
        "generation 4 republished, then 5"
    );
    a.fetch().await?;
    // A replica started now, from the long-dead seed in its configuration, takes the
    // fleet's instead of presenting the seed.
    let late = fleet.replica();
    late.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 7);
    fleet.assert_grant_valid().await;
    Ok(())
}

#[tokio::test]
async fn the_background_check_puts_the_newest_back_before_anyone_refreshes() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_check") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    b.fetch().await?;
    redis.command(&[b"FLUSHALL"])?;

    // Within a check interval or two (5 s each), both put their copies back by themselves,
    // in whichever order, and the newest (B's, generation 2) wins. A, whose copy is older,
    // then refreshes from it rather than presenting its own.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while fleet.stored().await.map(|(generation, _)| generation) != Some(2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the newest was never put back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.fetch().await?;
    fleet.assert_grant_valid().await;
    Ok(())
}

#[tokio::test]
async fn unreadable_values_are_replaced_under_the_lease() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_unreadable") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let replica = fleet.replica();
    replica.fetch().await?;
    let name = fleet.store.refresh_key(&fleet.key);
    // Each costs a settle (11 s): the replica cannot tell garbage from a data loss.
    let garbage: [&[&[u8]]; 3] = [
        &[b"HSET", name.as_bytes(), b"gen", b"not-a-number"],
        &[b"HSET", name.as_bytes(), b"gen", b"99999999999999999999999"],
        &[b"SET", name.as_bytes(), b"a string, not a hash"],
    ];
    for command in garbage {
        redis.command(&[b"DEL", name.as_bytes()])?;
        if command[0] == b"HSET" {
            // A hash like ours, with a good value, and then the bad field.
            let good = fleet.store.refresh_record(&fleet.key).await;
            assert!(good.is_ok());
            redis.command(&[b"HSET", name.as_bytes(), b"val", b"x"])?;
        }
        redis.command(command)?;
        replica.fetch().await?;
        fleet.assert_grant_valid().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_lease_without_an_expiry_holds_the_fleet_up_for_one_lease_time_at_most() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_foreign_lease") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let lease = fleet.store.lease_key(&fleet.key.derive("refresh"));
    redis.command(&[b"SET", lease.as_bytes(), b"someone-else"])?;
    let error = fleet
        .store
        .try_lease(
            &fleet.key.derive("refresh"),
            "me",
            Duration::from_millis(300),
        )
        .await;
    assert!(!error?, "held by the foreign value");
    // Our attempt gave the foreign lease an expiry; once it is gone, the lease is ours.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        fleet
            .store
            .try_lease(&fleet.key.derive("refresh"), "me", Duration::from_secs(1))
            .await?
    );
    Ok(())
}

#[tokio::test]
async fn a_single_replica_may_choose_to_refresh_with_its_own_copy() -> TestResult {
    let Some(mut redis) = RedisServer::start_or_skip("shared_refresh_own_copy") else {
        return Ok(());
    };
    let fleet = Fleet::start(&redis).await;
    let only = fleet
        .replica_builder()
        .when_store_unavailable(WhenStoreUnavailable::RefreshWithOwnCopy)
        .build()?;
    only.fetch().await?;
    redis.stop();
    only.fetch().await?;
    assert!(fleet
        .auth
        .is_refresh_token_valid(only.refresh_token().expose_secret()));
    Ok(())
}

#[tokio::test]
async fn redis_slower_than_the_store_timeout_fails_closed_too() -> TestResult {
    let Some(redis) = RedisServer::start_or_skip("shared_refresh_slow_redis") else {
        return Ok(());
    };
    let redis = Arc::new(redis);
    let fleet = Fleet::start(&redis).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    b.fetch().await?;
    // A script keeps Redis busy for 1.5 s: every store operation times out meanwhile.
    let busy = {
        let redis = Arc::clone(&redis);
        std::thread::spawn(move || redis.busy_for(Duration::from_millis(1500)))
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let requests = fleet.auth.token_requests();
    let error = a.fetch().await.unwrap_err();
    assert!(transient_store_error(&error), "{error}");
    assert_eq!(fleet.auth.token_requests(), requests, "nothing presented");
    busy.join().unwrap()?;
    fleet.assert_grant_valid().await;
    Ok(())
}
