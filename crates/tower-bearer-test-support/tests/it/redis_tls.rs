//! RedisStore over TLS (`rediss://`) against real redis-servers, with certificates from a
//! private CA made for each run: one node with a TLS listener beside its plain port, and a
//! cluster and a Sentinel group whose only TCP listeners are TLS ports.
//!
//! For other test modules: [`pki`] and [`files`] make the certificates, [`Pki::trusted_by`]
//! gives them to a store, and [`tls_cluster`] and [`tls_sentinel`] start the TLS-only
//! deployments with mutual TLS; [`assert_tls_only`] checks that a server has no plain port.

use std::future::Future;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use secrecy::ExposeSecret;
use tower_bearer::store::{StoreErrorKind, StoreKey, TokenStore};
use tower_bearer::Token;
use tower_bearer_redis::{BuildError, RedisStore, RedisStoreBuilder};
use tower_bearer_testkit::{RedisCluster, RedisSentinel, RedisServer, TlsFiles};

use crate::redis_store::{self, store_key};

const KEY: [u8; 32] = [7; 32];

/// How long a store may take to reach the new master after a failover: a hang guard.
const RECONNECT_GUARD: Duration = Duration::from_secs(30);

/// A private CA, a server certificate for `127.0.0.1` signed by it and a client
/// certificate signed by it; from [`pki`]. The CA and the server's certificate and key are
/// files in a temporary directory ([`files`]) that is removed on drop: keep the `Pki` as
/// long as the servers using it, which read the files again when restarted.
pub(crate) struct Pki {
    dir: tempdir::Dir,
    /// The CA certificate (PEM), for `tls_root_certificate`.
    pub(crate) ca: String,
    /// A client certificate (PEM, `CN=replica.test`) for mutual TLS.
    pub(crate) client_cert: String,
    /// The client certificate's private key (PEM).
    pub(crate) client_key: String,
}

/// The time limits of the TLS tests' stores, none of which is about a timeout: a first
/// command on a TLS cluster makes a handshake with each node it learns of, and ring's
/// crypto in a debug build on a loaded 2-core machine took longer than the default 400 ms
/// (a loaded run of the suite failed so).
const PATIENT: Duration = Duration::from_secs(10);

impl Pki {
    /// `builder` trusting only this CA and presenting the client certificate (which a
    /// server asks for only with mutual TLS), with [`PATIENT`] time limits.
    pub(crate) fn trusted_by(&self, builder: RedisStoreBuilder) -> RedisStoreBuilder {
        builder
            .tls_root_certificate(self.ca.clone())
            .tls_client_certificate(self.client_cert.clone(), self.client_key.clone())
            .connection_timeout(PATIENT)
            .response_timeout(PATIENT)
    }
}

mod tempdir {
    use std::path::{Path, PathBuf};

    /// A directory removed on drop.
    pub(crate) struct Dir(PathBuf);

    impl Dir {
        pub(crate) fn new(name: &str) -> std::io::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "tower-bearer-redis-tls-{name}-{}-{:x}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Makes a [`Pki`]; `name` goes into its directory's name.
pub(crate) fn pki(name: &str) -> Pki {
    let dir = tempdir::Dir::new(name).unwrap();
    // Each certificate needs its own subject: OpenSSL (the server side) takes a certificate
    // whose subject equals its issuer's for self-signed.
    let named = |sans: Vec<String>, common_name: &str| {
        let mut params = CertificateParams::new(sans).unwrap();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params
    };
    let mut ca_params = named(Vec::new(), "tower-bearer test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let server = named(vec!["127.0.0.1".to_owned()], "127.0.0.1")
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = named(vec!["replica.test".to_owned()], "replica.test")
        .signed_by(&client_key, &ca)
        .unwrap();

    let write = |file: &str, pem: &str| std::fs::write(dir.path().join(file), pem).unwrap();
    write("ca.pem", &ca.pem());
    write("server.pem", &server.pem());
    write("server.key", &server_key.serialize_pem());
    Pki {
        ca: ca.pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
        dir,
    }
}

/// The server's files of `pki`, for the harness's TLS listeners; `require_client_cert`
/// asks for mutual TLS. The server certificate has no extended key usage, so the servers
/// may present it to each other as a client certificate too.
pub(crate) fn files(pki: &Pki, require_client_cert: bool) -> TlsFiles {
    let dir = pki.dir.path();
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
        require_client_cert,
    }
}

/// A TLS redis-server; a missing binary fails `test` with the harness's explanation.
fn start(test: &str, pki: &Pki, require_client_cert: bool) -> RedisServer {
    drop(RedisServer::start_for_test(test));
    RedisServer::start_tls(files(pki, require_client_cert)).unwrap()
}

/// A cluster whose only TCP ports are TLS ports with mutual TLS (see
/// [`RedisCluster::start_tls`]), and its [`Pki`]; a missing `redis-server`
/// or `redis-cli` fails `test` with the harness's explanation. Give a store
/// `pki.trusted_by(RedisStore::cluster_builder(cluster.tls_urls()))`.
pub(crate) fn tls_cluster(test: &str) -> (RedisCluster, Pki) {
    let pki = pki(test);
    let cluster = RedisCluster::start_tls_for_test(test, files(&pki, true));
    (cluster, pki)
}

/// A Sentinel group (a master, a replica and `sentinels` Sentinels) whose only TCP ports
/// are TLS ports with mutual TLS (see [`RedisSentinel::start_tls`]), and its [`Pki`]; a missing
/// `redis-server` fails `test` with the harness's explanation. Give a store
/// `pki.trusted_by(RedisStore::sentinel_builder(group.tls_sentinel_urls(), group.master_name()))`.
pub(crate) fn tls_sentinel(test: &str, sentinels: usize) -> (RedisSentinel, Pki) {
    let pki = pki(test);
    let group = RedisSentinel::start_tls_for_test(test, sentinels, files(&pki, true));
    (group, pki)
}

/// Asserts that `server` has no plain TCP port (`CONFIG GET port` is 0), so every TCP
/// connection to it, a store's included, is TLS.
pub(crate) fn assert_tls_only(server: &RedisServer) {
    let reply = server.command(&[b"CONFIG", b"GET", b"port"]).unwrap();
    assert_eq!(
        reply,
        b"*2\r\n$4\r\nport\r\n$1\r\n0\r\n",
        "{server:?} has a plain TCP port: {}",
        String::from_utf8_lossy(&reply)
    );
}

/// `urls` with `rediss://` made `redis://`: plain Redis to the TLS ports.
fn plain(urls: Vec<String>) -> Vec<String> {
    urls.iter()
        .map(|url| url.replacen("rediss://", "redis://", 1))
        .collect()
}

/// How many `MOVED` replies `node` has sent (`INFO errorstats`).
fn moved_replies(node: &RedisServer) -> u64 {
    let info = node.command(&[b"INFO", b"errorstats"]).unwrap();
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|line| line.strip_prefix("errorstat_MOVED:count="))
        .map_or(0, |count| count.trim().parse().unwrap())
}

/// Runs `attempt` until it returns `Some`, for at most [`RECONNECT_GUARD`].
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, attempt: impl Fn() -> F) -> T {
    let deadline = Instant::now() + RECONNECT_GUARD;
    loop {
        if let Some(done) = attempt().await {
            return done;
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key() -> StoreKey {
    StoreKey::builder("http://127.0.0.1/token", "tls").build()
}

fn token() -> Token {
    Token::builder("tls-secret-token")
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap()
}

#[tokio::test]
async fn rediss_with_a_private_ca_round_trips() {
    let pki = pki("private-ca");
    let redis = start("rediss_with_a_private_ca_round_trips", &pki, false);
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .tls_root_certificate(pki.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    store.put(&key(), &token(), Duration::ZERO).await.unwrap();
    let back = store.get(&key()).await.unwrap().expect("the stored token");
    assert_eq!(back.secret().expose_secret(), "tls-secret-token");
    // The value went over TLS into the same server the plain port reads.
    let raw = redis
        .command(&[b"EXISTS", store.token_key(&key()).as_bytes()])
        .unwrap();
    assert_eq!(raw, b":1\r\n");
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused() {
    let pki = pki("unknown-ca");
    let redis = start(
        "a_server_certificate_from_an_unknown_ca_is_refused",
        &pki,
        false,
    );
    // Only the compiled-in public roots: our private CA is not among them.
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    let error = store.get(&key()).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
    let other = self::pki("other-ca");
    let store = RedisStore::builder(&redis.tls_url().unwrap())
        .tls_root_certificate(other.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    let error = store.get(&key()).await.unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::Unavailable, "{error}");
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = pki("mutual");
    let redis = start("mutual_tls_needs_the_client_certificate", &pki, true);
    let url = redis.tls_url().unwrap();
    let without = RedisStore::builder(&url)
        .tls_root_certificate(pki.ca.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    assert!(
        without.get(&key()).await.is_err(),
        "no client certificate, no access"
    );

    let with = RedisStore::builder(&url)
        .tls_root_certificate(pki.ca.clone())
        .tls_client_certificate(pki.client_cert.clone(), pki.client_key.clone())
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    with.put(&key(), &token(), Duration::ZERO).await.unwrap();
    assert!(with.get(&key()).await.unwrap().is_some());
    assert!(
        !format!("{with:?}").contains("PRIVATE KEY"),
        "the client key stays out of Debug"
    );
}

#[test]
fn tls_settings_need_a_rediss_url_and_valid_pem() {
    let error = RedisStore::builder("redis://127.0.0.1:6379")
        .tls_root_certificate("not used")
        .store_in_clear()
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::TlsSettingsWithoutRediss),
        "{error}"
    );
    assert!(error.to_string().contains("rediss://"));

    let error = RedisStore::builder("rediss://127.0.0.1:6379")
        .tls_root_certificate("-----BEGIN CERTIFICATE-----\nnot base64\n")
        .store_in_clear()
        .build()
        .unwrap_err();
    assert!(
        matches!(error, BuildError::InvalidTlsCertificate),
        "{error}"
    );
}

#[tokio::test]
async fn a_store_on_a_tls_cluster_round_trips_and_follows_moved_over_tls() {
    let (cluster, pki) =
        tls_cluster("a_store_on_a_tls_cluster_round_trips_and_follows_moved_over_tls");
    cluster.nodes().for_each(assert_tls_only);
    let refused = RedisStore::cluster_builder(plain(cluster.tls_urls()))
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    assert!(
        refused.get(&key()).await.is_err(),
        "plain Redis to the TLS ports gets nowhere"
    );

    // One node to start from: the store learns the others from CLUSTER SLOTS over TLS.
    let seed = cluster.master_of("seed").unwrap();
    let store = pki
        .trusted_by(RedisStore::cluster_builder([seed.tls_url().unwrap()]))
        .encryption_key("k1", KEY)
        .build()
        .unwrap();
    let far = (0..64)
        .map(|n| store_key(&format!("tls-cluster-{n}")))
        .find(|key| cluster.master_of(&store.token_key(key)).unwrap().addr() != seed.addr())
        .expect("a key on another master than the seed");
    redis_store::exercise(&store, &far, |name| {
        cluster
            .command_for(name, &[b"GET", name.as_bytes()])
            .unwrap()
    })
    .await;

    // A slot moved after the store learned the map: its old owner answers MOVED with the
    // new owner's TLS port (its only TCP port), and the store follows.
    let moved = store_key("tls-cluster-moved");
    let name = store.token_key(&moved);
    let old_owner = cluster.master_of(&name).unwrap();
    let redirects_before = moved_replies(old_owner);
    let new_owner = cluster.move_slot(&name).unwrap();
    store.put(&moved, &token(), Duration::ZERO).await.unwrap();
    let back = store
        .get(&moved)
        .await
        .unwrap()
        .expect("the token in the moved slot");
    assert_eq!(back.secret().expose_secret(), "tls-secret-token");
    assert_eq!(
        new_owner.command(&[b"EXISTS", name.as_bytes()]).unwrap(),
        b":1\r\n"
    );
    assert!(
        moved_replies(old_owner) > redirects_before,
        "the store was sent MOVED"
    );
}

#[tokio::test]
async fn a_store_on_a_tls_cluster_reaches_the_promoted_replica_over_tls() {
    let (mut cluster, pki) =
        tls_cluster("a_store_on_a_tls_cluster_reaches_the_promoted_replica_over_tls");
    let store = pki
        .trusted_by(RedisStore::cluster_builder(cluster.tls_urls()))
        .encryption_key("k1", KEY)
        .reconnect_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let key = store_key("tls-cluster-failover");
    store.put(&key, &token(), Duration::ZERO).await.unwrap();
    let name = store.token_key(&key);
    let killed = cluster.master_of(&name).unwrap().addr();

    cluster.fail_over(&name).unwrap();
    let promoted = cluster.master_of(&name).unwrap();
    assert_ne!(promoted.addr(), killed);
    assert_tls_only(promoted);
    follows_the_failover(&store, &key, "tls-secret-token", promoted).await;
}

/// After a failover, `store` reads the token it stored before (`secret`) from
/// `new_master`, once it reconnects, and writes there too.
async fn follows_the_failover(
    store: &RedisStore,
    key: &StoreKey,
    secret: &str,
    new_master: &RedisServer,
) {
    let back = eventually("the store reads the token from the new master", || async {
        store.get(key).await.ok().flatten()
    })
    .await;
    assert_eq!(back.secret().expose_secret(), secret);
    assert!(store
        .try_lease(key, "after", Duration::from_secs(30))
        .await
        .unwrap());
    let lease = store.lease_key(key);
    assert_eq!(
        new_master.command(&[b"EXISTS", lease.as_bytes()]).unwrap(),
        b":1\r\n",
        "the write went to the new master"
    );
}

#[tokio::test]
async fn a_store_through_tls_sentinels_round_trips_and_reaches_the_new_master_over_tls() {
    let (mut group, pki) = tls_sentinel(
        "a_store_through_tls_sentinels_round_trips_and_reaches_the_new_master_over_tls",
        3,
    );
    assert_tls_only(group.master());
    assert_tls_only(group.replica());
    let refused =
        RedisStore::sentinel_builder(plain(group.tls_sentinel_urls()), group.master_name())
            .encryption_key("k1", KEY)
            .build()
            .unwrap();
    assert!(
        refused.get(&key()).await.is_err(),
        "plain Redis to the Sentinels' TLS ports gets nowhere"
    );

    let store = pki
        .trusted_by(RedisStore::sentinel_builder(
            group.tls_sentinel_urls(),
            group.master_name(),
        ))
        .encryption_key("k1", KEY)
        .reconnect_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let key = store_key("tls-sentinel");
    redis_store::exercise(&store, &key, |name| {
        group.master().command(&[b"GET", name.as_bytes()]).unwrap()
    })
    .await;

    let name = store.token_key(&key);
    let killed = group.master().addr();
    group.fail_over(&name).unwrap();
    assert_ne!(group.master().addr(), killed);
    assert_tls_only(group.master());
    follows_the_failover(&store, &key, "topology-secret", group.master()).await;
}
