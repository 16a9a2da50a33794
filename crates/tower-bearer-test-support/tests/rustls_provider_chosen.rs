//! `RedisStoreBuilder::build` keeps the rustls provider a program installed as the
//! process-wide default, for every `rediss://` topology.
//!
//! A binary of its own: the default is process-wide and can be installed once, so this
//! test must be the only one in its process.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use tower_bearer_redis::RedisStore;

/// Nothing listens there, and nothing needs to: `build` does not connect.
const TLS_NODE: &str = "rediss://127.0.0.1:1";

#[test]
fn build_keeps_the_provider_the_program_installed() {
    // ring's, the provider the workspace links; rustls 0.23.48 deprecated its constructor
    // for want of post-quantum key exchange, and names no replacement built on ring.
    #[allow(deprecated)]
    let program_choice = rustls::crypto::ring::default_provider();
    program_choice
        .install_default()
        .expect("no provider is installed before this binary's only test");
    let chosen = Arc::clone(CryptoProvider::get_default().expect("installed just now"));

    let builders = [
        ("single node", RedisStore::builder(TLS_NODE)),
        ("cluster", RedisStore::cluster_builder([TLS_NODE])),
        (
            "sentinel",
            RedisStore::sentinel_builder([TLS_NODE], "master"),
        ),
    ];
    for (topology, builder) in builders {
        builder
            .store_in_clear()
            .build()
            .unwrap_or_else(|error| panic!("{topology}: {error}"));
        let default = CryptoProvider::get_default()
            .unwrap_or_else(|| panic!("{topology}: build uninstalled the provider"));
        assert!(
            Arc::ptr_eq(default, &chosen),
            "{topology}: build replaced the provider the program installed"
        );
    }
}
