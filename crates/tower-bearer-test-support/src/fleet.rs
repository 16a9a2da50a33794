//! A member of the cross-process fleet: what the `fleet-member` binary runs.
//!
//! The Redis tests start a redis-server and the test kit's mock authorization server, then
//! run `fleet-member` processes, configured by environment variables (a [`MemberConfig`]).
//! A member builds a cold `TokenCache` over `StoreSource<ClientCredentials>` over
//! `RedisStore`, runs [`CALLERS`] concurrent callers, and prints machine-readable lines
//! (`FLEET READY`, `FLEET WARM`, `FLEET RESULT k=v ...`) that its parent parses.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tower_bearer::store::{StoreConfig, StoreKey, StoreSource};
use tower_bearer::{CacheConfig, TokenCache};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
use tower_bearer_redis::{RedisStore, RedisStoreBuilder};
use tower_bearer_testkit::{AuthServer, RedisServer};

/// How many callers each member runs at once.
pub const CALLERS: usize = 200;
/// The scope every member asks for, so all of them share one store key.
pub const SCOPE: &str = "fleet:read";
const ENCRYPTION_KEY: [u8; 32] = [42; 32];

/// What a member is started with.
#[derive(Clone, Debug)]
pub struct MemberConfig {
    /// `burst` (each caller asks once) or `continuous` (until its stdin closes).
    pub role: String,
    /// The Redis it shares tokens through.
    pub redis: FleetRedis,
    /// The token endpoint it fetches from.
    pub token_url: String,
    /// Its store's lease (`StoreConfig::lease_ttl`).
    pub lease: Duration,
}

const ROLE_ENV: &str = "TOWER_BEARER_FLEET_ROLE";
const REDIS_ENV: &str = "TOWER_BEARER_FLEET_REDIS";
const TOKEN_URL_ENV: &str = "TOWER_BEARER_FLEET_TOKEN_URL";
const LEASE_MS_ENV: &str = "TOWER_BEARER_FLEET_LEASE_MS";

impl MemberConfig {
    /// The environment variables that hand this configuration to a `fleet-member` process.
    pub fn env(&self) -> [(&'static str, String); 4] {
        [
            (ROLE_ENV, self.role.clone()),
            (REDIS_ENV, self.redis.encode()),
            (TOKEN_URL_ENV, self.token_url.clone()),
            (LEASE_MS_ENV, self.lease.as_millis().to_string()),
        ]
    }

    /// The configuration [`env`](Self::env) handed to this process.
    ///
    /// # Panics
    ///
    /// When a variable is missing or malformed: the binary is run by a test, not by hand.
    pub fn from_env() -> MemberConfig {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run by a test"))
        };
        MemberConfig {
            role: var(ROLE_ENV),
            redis: FleetRedis::decode(&var(REDIS_ENV)),
            token_url: var(TOKEN_URL_ENV),
            lease: Duration::from_millis(var(LEASE_MS_ENV).parse().expect("a lease in ms")),
        }
    }

    /// Runs the member: its callers, then the `FLEET RESULT` line.
    pub async fn run(&self) {
        // The three lines a user adds: the store, the key, the StoreSource around the source.
        let store = self
            .redis
            .builder()
            .encryption_key("fleet-1", ENCRYPTION_KEY)
            .reconnect_interval(Duration::from_millis(200))
            .build()
            .unwrap();
        let key = StoreKey::builder(&self.token_url, AuthServer::DEFAULT_CLIENT_ID)
            .scope(SCOPE)
            .build();
        let endpoint = Endpoint::builder(&self.token_url).build().unwrap();
        let client = ClientAuth::secret_basic(
            AuthServer::DEFAULT_CLIENT_ID,
            AuthServer::DEFAULT_CLIENT_SECRET,
        )
        .unwrap();
        let source = ClientCredentials::builder(endpoint, client)
            .params(TokenParams::new().scope(SCOPE))
            .build()
            .unwrap();
        let source = StoreSource::with_config(source, store, key, store_config(self.lease));
        let cache = TokenCache::with_config(source.clone(), cache_config());

        let continuous = self.role == "continuous";
        let stop = Arc::new(AtomicBool::new(false));
        if continuous {
            // The parent closes our stdin to stop us.
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                stop.store(true, Ordering::SeqCst);
            });
        }
        say("READY");

        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let warm = Arc::new(AtomicBool::new(false));
        let mut callers = Vec::new();
        for _ in 0..CALLERS {
            let (cache, ok, failed, warm, stop) = (
                cache.clone(),
                Arc::clone(&ok),
                Arc::clone(&failed),
                Arc::clone(&warm),
                Arc::clone(&stop),
            );
            callers.push(tokio::spawn(async move {
                loop {
                    match cache.token().await {
                        Ok(_) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if !warm.swap(true, Ordering::SeqCst) {
                                say("WARM");
                            }
                        }
                        Err(error) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("token failed: {error}");
                        }
                    }
                    if !continuous || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }));
        }
        for caller in callers {
            caller.await.unwrap();
        }
        let stats = source.stats();
        say(&format!(
            "RESULT ok={} failed={} fetched={} from_store={} fallbacks={} done_ms={}",
            ok.load(Ordering::SeqCst),
            failed.load(Ordering::SeqCst),
            stats.fetched,
            stats.from_store,
            stats.fallbacks,
            unix_ms(),
        ));
    }
}

/// The Redis a member connects to, handed to it in one environment variable.
#[derive(Clone, Debug)]
pub enum FleetRedis {
    /// One server at this URL.
    Single(String),
    /// A cluster, by its nodes' URLs.
    Cluster(Vec<String>),
    /// A Sentinel group.
    Sentinel {
        /// The Sentinels' URLs.
        sentinels: Vec<String>,
        /// The name they know the master by.
        master_name: String,
    },
}

impl FleetRedis {
    /// `single <url>`, `cluster <url>...` or `sentinel <master name> <url>...`.
    fn encode(&self) -> String {
        match self {
            FleetRedis::Single(url) => format!("single {url}"),
            FleetRedis::Cluster(nodes) => format!("cluster {}", nodes.join(" ")),
            FleetRedis::Sentinel {
                sentinels,
                master_name,
            } => format!("sentinel {master_name} {}", sentinels.join(" ")),
        }
    }

    fn decode(text: &str) -> FleetRedis {
        let mut words = text.split_whitespace().map(str::to_owned);
        match words.next().as_deref() {
            Some("single") => FleetRedis::Single(words.next().unwrap()),
            Some("cluster") => FleetRedis::Cluster(words.collect()),
            Some("sentinel") => FleetRedis::Sentinel {
                master_name: words.next().unwrap(),
                sentinels: words.collect(),
            },
            other => panic!("unknown topology {other:?}"),
        }
    }

    /// A store builder for this deployment.
    pub fn builder(&self) -> RedisStoreBuilder {
        match self {
            FleetRedis::Single(url) => RedisStore::builder(url),
            FleetRedis::Cluster(nodes) => RedisStore::cluster_builder(nodes),
            FleetRedis::Sentinel {
                sentinels,
                master_name,
            } => RedisStore::sentinel_builder(sentinels, master_name),
        }
    }
}

impl From<&RedisServer> for FleetRedis {
    fn from(redis: &RedisServer) -> Self {
        FleetRedis::Single(redis.url())
    }
}

fn store_config(lease: Duration) -> StoreConfig {
    StoreConfig::new()
        .lease_ttl(lease)
        .poll_interval(Duration::from_millis(20))
        .max_wait(Duration::from_secs(60))
        .op_timeout(Duration::from_secs(2))
        .min_remaining(Duration::from_millis(100))
        .warn_interval(Duration::from_secs(1))
}

/// For 2 s tokens: a refresh starts 250 ms before expiry (no jitter), and a token is used
/// until 100 ms before it. So consecutive fetches are at least 1.75 s apart.
fn cache_config() -> CacheConfig {
    CacheConfig::new()
        .expiry_skew(Duration::from_millis(100))
        .refresh_window(Duration::from_millis(250), 0.0)
        .refresh_jitter(0.0)
        .backoff(Duration::from_millis(100), Duration::from_secs(1))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "FLEET {line}");
    let _ = out.flush();
}

/// Milliseconds since the Unix epoch: members and their parent compare these.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
