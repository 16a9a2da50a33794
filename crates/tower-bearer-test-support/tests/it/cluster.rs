//! RedisStore on a real local Redis Cluster (six nodes, three masters with a replica each).

use std::collections::HashSet;
use std::time::Duration;

use tower_bearer::store::StoreKey;
use tower_bearer_redis::RedisStore;
use tower_bearer_testkit::RedisCluster;

use crate::fleet::{self, FailingOver, FleetRedis};
use crate::redis_store;

fn topology(cluster: &RedisCluster) -> FleetRedis {
    FleetRedis::Cluster(cluster.urls())
}

impl FailingOver for RedisCluster {
    fn stored(&self, key: &str) -> Vec<u8> {
        self.command_for(key, &[b"GET", key.as_bytes()]).unwrap()
    }

    fn fail_over(&mut self, key: &str) -> Duration {
        RedisCluster::fail_over(self, key).unwrap()
    }
}

#[tokio::test]
async fn each_token_keeps_its_keys_in_one_slot_and_tokens_spread_over_the_slots() {
    let cluster = RedisCluster::start_for_test("cluster_slots");
    let store = RedisStore::cluster_builder(cluster.urls())
        .encryption_key("k1", [3; 32])
        .build()
        .unwrap();
    let keys: Vec<StoreKey> = (0..8)
        .map(|n| StoreKey::builder("http://127.0.0.1/token", format!("client-{n}")).build())
        .collect();
    let mut slots = HashSet::new();
    for key in &keys {
        let slot = cluster.slot(&store.token_key(key)).unwrap();
        assert_eq!(cluster.slot(&store.lease_key(key)).unwrap(), slot);
        assert_eq!(cluster.slot(&store.refresh_key(key)).unwrap(), slot);
        slots.insert(slot);
    }
    assert!(slots.len() > 1, "8 tokens in {} slot(s)", slots.len());
    let masters: HashSet<u16> = keys
        .iter()
        .map(|key| {
            cluster
                .master_of(&store.token_key(key))
                .unwrap()
                .addr()
                .port()
        })
        .collect();
    println!(
        "cluster slots: 8 tokens in {} slots on {} masters",
        slots.len(),
        masters.len()
    );
    assert!(masters.len() > 1, "tokens live on more than one master");

    // Every operation works whichever master holds the key (the client follows MOVED).
    for key in &keys {
        redis_store::exercise(&store, key, |name| {
            cluster
                .command_for(name, &[b"GET", name.as_bytes()])
                .unwrap()
        })
        .await;
    }
}

#[test]
fn a_fleet_on_the_cluster_shares_one_token_per_lifetime() {
    let cluster = RedisCluster::start_for_test("cluster_fleet");
    let (warm_up, _) = fleet::over_five_lifetimes("cluster lifetimes", topology(&cluster));
    assert_eq!(warm_up, 1, "one token request for the cold fleet");
}

#[test]
fn a_cluster_master_killed_mid_run_loses_no_token_and_fails_no_call() {
    let cluster = RedisCluster::start_for_test("cluster_failover");
    let topology = topology(&cluster);
    fleet::through_a_failover("cluster failover", cluster, topology);
}
