//! Where the program installed no rustls provider, `RedisStoreBuilder::build` installs
//! rustls' `ring` provider as the process-wide default for a `rediss://` store, and leaves
//! the default unset for `redis://` stores.
//!
//! A binary of its own: the default is process-wide and can be installed once, so this
//! test must be the only one in its process. The `redis://` stores come first, while no
//! provider is installed.

use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, NamedGroup, SupportedCipherSuite};
use tower_bearer_redis::RedisStore;

/// Nothing listens at these, and nothing needs to: `build` does not connect.
const PLAIN_NODE: &str = "redis://127.0.0.1:1";
const TLS_NODE: &str = "rediss://127.0.0.1:1";

#[test]
fn build_installs_ring_for_rediss_only() {
    assert!(
        CryptoProvider::get_default().is_none(),
        "a provider was installed before this binary's only test"
    );

    let plain_builders = [
        ("single node", RedisStore::builder(PLAIN_NODE)),
        ("cluster", RedisStore::cluster_builder([PLAIN_NODE])),
        (
            "sentinel",
            RedisStore::sentinel_builder([PLAIN_NODE], "master"),
        ),
    ];
    for (topology, builder) in plain_builders {
        builder
            .store_in_clear()
            .build()
            .unwrap_or_else(|error| panic!("{topology}: {error}"));
        assert!(
            CryptoProvider::get_default().is_none(),
            "{topology}: a redis:// build installed a provider"
        );
    }

    RedisStore::builder(TLS_NODE)
        .store_in_clear()
        .build()
        .expect("a rediss:// single node");
    let installed = CryptoProvider::get_default().expect("a rediss:// build installs a provider");
    assert_eq!(
        algorithms(&installed.cipher_suites, &installed.kx_groups),
        algorithms(ring::DEFAULT_CIPHER_SUITES, ring::DEFAULT_KX_GROUPS),
        "the provider installed is not ring's default"
    );
}

/// What tells providers apart: their cipher suites and key exchange groups, in order.
fn algorithms(
    cipher_suites: &[SupportedCipherSuite],
    kx_groups: &[&dyn SupportedKxGroup],
) -> (Vec<CipherSuite>, Vec<NamedGroup>) {
    (
        cipher_suites.iter().map(|suite| suite.suite()).collect(),
        kx_groups.iter().map(|group| group.name()).collect(),
    )
}
