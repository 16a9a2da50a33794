//! A rotating refresh token shared through a real Redis is never presented twice, whatever
//! happens to Redis: the test kit's authorization server detects reuse (and then revokes
//! the grant), and every test ends by checking the grant is still valid.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::Barrier;
use tower_bearer::store::{StoreConfig, StoreSource, TokenStore};
use tower_bearer::{TokenCache, TokenSource};
use tower_bearer_oauth2::WhenStoreUnavailable;
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::RedisServer;

use crate::cases::{store_unavailable, Fleet, TestResult, Topology};

#[tokio::test]
async fn redis_down_fails_closed_and_the_grant_survives() -> TestResult {
    let mut redis = RedisServer::start_for_test("shared_refresh_redis_down");
    let fleet = Fleet::on(redis.builder()).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    // B takes A's rotated token from the store and rotates it again: A's copy is dead.
    b.fetch().await?;
    assert_eq!(fleet.stored().await.unwrap().0, 2);

    redis.stop();
    let error = a.fetch().await.unwrap_err();
    assert!(store_unavailable(&error), "{error}");
    // The same through the README's composition: the cache keeps nothing it could serve
    // here, so the caller gets the same clear error, and no refresh token is presented.
    let cache = TokenCache::new(StoreSource::with_config(
        a.clone(),
        fleet.store.clone(),
        fleet.key.clone(),
        StoreConfig::new(),
    ));
    let error = cache.token().await.unwrap_err();
    assert!(store_unavailable(&error), "{error}");
    let requests = fleet.auth.token_requests();

    redis.start_again()?;
    // Redis came back empty (no persistence): B, which holds the newest, puts it back, and
    // A takes it from there. The client reconnects within moments; until then B waits too.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match b.fetch().await {
            Ok(_) => break,
            Err(error) if store_unavailable(&error) => {
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
    let redis = RedisServer::start_for_test("shared_refresh_same_moment");
    take_turns(Fleet::on(redis.builder()).await).await
}

#[tokio::test]
async fn on_a_cluster_replicas_refreshing_at_the_same_moment_take_turns() -> TestResult {
    let cluster = tower_bearer_testkit::RedisCluster::start_for_test("shared_refresh_cluster");
    take_turns(Fleet::on(RedisStore::cluster_builder(cluster.urls())).await).await
}

#[tokio::test]
async fn through_sentinel_replicas_refreshing_at_the_same_moment_take_turns() -> TestResult {
    let sentinel =
        tower_bearer_testkit::RedisSentinel::start_for_test("shared_refresh_sentinel", 1);
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
    let redis = RedisServer::start_for_test("shared_refresh_data_loss");
    let fleet = Fleet::on(redis.builder()).await;
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
    let redis = RedisServer::start_for_test("shared_refresh_check");
    let fleet = Fleet::on(redis.builder()).await;
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
async fn a_lease_without_an_expiry_holds_the_fleet_up_for_one_lease_time_at_most() -> TestResult {
    let redis = RedisServer::start_for_test("shared_refresh_foreign_lease");
    let fleet = Fleet::on(redis.builder()).await;
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
    let mut redis = RedisServer::start_for_test("shared_refresh_own_copy");
    let fleet = Fleet::on(redis.builder()).await;
    let only = fleet
        .replica_builder_on(fleet.store.clone(), Fleet::config())
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
    let redis = RedisServer::start_for_test("shared_refresh_slow_redis");
    let fleet = Fleet::on(redis.builder()).await;
    let (a, b) = (fleet.replica(), fleet.replica());
    a.fetch().await?;
    b.fetch().await?;
    // Redis answers nobody for 2 s from here: a store operation sent within 1.6 s of this
    // line (the only real-time bound here) times out after the store's 400 ms.
    let paused_until = redis.pause_clients(Duration::from_secs(2))?;
    let requests = fleet.auth.token_requests();
    let error = a.fetch().await.unwrap_err();
    assert!(store_unavailable(&error), "{error}");
    assert_eq!(fleet.auth.token_requests(), requests, "nothing presented");
    tokio::time::sleep_until(paused_until.into()).await;
    fleet.assert_grant_valid().await;
    Ok(())
}
