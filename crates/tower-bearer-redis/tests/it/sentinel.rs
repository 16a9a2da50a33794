//! RedisStore behind real local Sentinels (a master, its replica and three Sentinels).

// FLEET-REWRITE: used by the fleet tests only.
#[cfg(any())]
use std::time::Duration;

use tower_bearer::store::StoreKey;
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::RedisSentinel;

// FLEET-REWRITE: needs `crate::fleet`, excluded from main.rs until the rewrite lands.
#[cfg(any())]
use crate::fleet::{self, FailingOver, FleetRedis};
use crate::redis_store;

const SENTINELS: usize = 3;

// FLEET-REWRITE: needs `crate::fleet`, excluded from main.rs until the rewrite lands.
#[cfg(any())]
fn topology(group: &RedisSentinel) -> FleetRedis {
    FleetRedis::Sentinel {
        sentinels: group.sentinel_urls(),
        master_name: group.master_name().to_owned(),
    }
}

// FLEET-REWRITE: needs `crate::fleet`, excluded from main.rs until the rewrite lands.
#[cfg(any())]
impl FailingOver for RedisSentinel {
    fn stored(&self, key: &str) -> Vec<u8> {
        self.master().command(&[b"GET", key.as_bytes()]).unwrap()
    }

    fn fail_over(&mut self, key: &str) -> Duration {
        RedisSentinel::fail_over(self, key).unwrap()
    }
}

#[tokio::test]
async fn the_store_works_on_the_master_the_sentinels_name() {
    let Some(group) = RedisSentinel::start_or_skip("sentinel_store", SENTINELS) else {
        return;
    };
    let store = RedisStore::sentinel_builder(group.sentinel_urls(), group.master_name())
        .encryption_key("k1", [4; 32])
        .build()
        .unwrap();
    let key = StoreKey::builder("http://127.0.0.1/token", "sentinel-client").build();
    redis_store::exercise(&store, &key, |name| {
        group.master().command(&[b"GET", name.as_bytes()]).unwrap()
    })
    .await;
}

// FLEET-REWRITE: needs `crate::fleet`, excluded from main.rs until the rewrite lands.
#[cfg(any())]
#[test]
fn a_sentinel_master_killed_mid_run_loses_no_token_and_fails_no_call() {
    let Some(group) = RedisSentinel::start_or_skip("sentinel_failover", SENTINELS) else {
        return;
    };
    let topology = topology(&group);
    fleet::through_a_failover("sentinel failover", group, topology);
}
