//! RedisStore behind real local Sentinels (a master, its replica and three Sentinels).

use std::time::Duration;

use tower_bearer::store::StoreKey;
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::RedisSentinel;

use crate::fleet::{self, FailingOver, FleetRedis};
use crate::redis_store;

const SENTINELS: usize = 3;

fn topology(group: &RedisSentinel) -> FleetRedis {
    FleetRedis::Sentinel {
        sentinels: group.sentinel_urls(),
        master_name: group.master_name().to_owned(),
    }
}

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
    let group = RedisSentinel::start_for_test("sentinel_store", SENTINELS);
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

#[test]
fn a_sentinel_master_killed_mid_run_loses_no_token_and_fails_no_call() {
    let group = RedisSentinel::start_for_test("sentinel_failover", SENTINELS);
    let topology = topology(&group);
    fleet::through_a_failover("sentinel failover", group, topology);
}
