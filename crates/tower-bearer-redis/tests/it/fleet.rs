//! The fleet: real OS processes sharing tokens through one real redis-server.
//!
//! The member process and the parent's helpers here serve the cluster and Sentinel tests
//! too: a member connects to whatever [`FleetRedis`] its parent names.
//!
//! Each parent test starts a redis-server and the testkit's mock authorization server, then
//! re-executes this test binary as member processes (`--exact fleet_member`), configured
//! by environment variables. A member builds a cold `TokenCache` over
//! `StoreSource<ClientCredentials>` over `RedisStore`, runs 200 concurrent callers, and
//! prints machine-readable lines (`FLEET READY`, `FLEET WARM`, `FLEET RESULT k=v ...`) that
//! the parent parses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower_bearer::store::{StoreConfig, StoreKey, StoreSource};
use tower_bearer::{CacheConfig, TokenCache};
use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
use tower_bearer_redis::{RedisStore, RedisStoreBuilder};
use tower_bearer_testkit::RedisServer;
use tower_bearer_testkit::{AuthServer, Fault};

const ROLE_ENV: &str = "TOWER_BEARER_FLEET_MEMBER";
const REDIS_ENV: &str = "TOWER_BEARER_FLEET_REDIS";
const TOKEN_URL_ENV: &str = "TOWER_BEARER_FLEET_TOKEN_URL";
const LEASE_MS_ENV: &str = "TOWER_BEARER_FLEET_LEASE_MS";

pub(crate) const PROCESSES: usize = 8;
pub(crate) const CALLERS: usize = 200;
pub(crate) const SCOPE: &str = "fleet:read";
const ENCRYPTION_KEY: [u8; 32] = [42; 32];
/// Every wait in these tests is bounded by this, so a broken fleet fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(90);

/// The Redis a member connects to, handed to it in one environment variable.
#[derive(Clone, Debug)]
pub(crate) enum FleetRedis {
    Single(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
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

    pub(crate) fn builder(&self) -> RedisStoreBuilder {
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

/// The fleet tests start many processes; one at a time keeps a small machine responsive.
static ONE_FLEET_AT_A_TIME: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------------------
// The member process.

/// Runs as a fleet member when re-executed by a parent test; otherwise returns at once.
#[test]
fn fleet_member() {
    let Ok(role) = std::env::var(ROLE_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(member(&role));
}

async fn member(role: &str) {
    let redis = FleetRedis::decode(&std::env::var(REDIS_ENV).unwrap());
    let token_url = std::env::var(TOKEN_URL_ENV).unwrap();
    let lease = Duration::from_millis(std::env::var(LEASE_MS_ENV).unwrap().parse().unwrap());

    // The three lines a user adds: the store, the key, the StoreSource around the source.
    let store = redis
        .builder()
        .encryption_key("fleet-1", ENCRYPTION_KEY)
        .reconnect_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let key = StoreKey::builder(&token_url, AuthServer::DEFAULT_CLIENT_ID)
        .scope(SCOPE)
        .build();
    let endpoint = Endpoint::builder(&token_url).build().unwrap();
    let client = ClientAuth::secret_basic(
        AuthServer::DEFAULT_CLIENT_ID,
        AuthServer::DEFAULT_CLIENT_SECRET,
    )
    .unwrap();
    let source = ClientCredentials::builder(endpoint, client)
        .params(TokenParams::new().scope(SCOPE))
        .build()
        .unwrap();
    let source = StoreSource::with_config(source, store, key, store_config(lease));
    let cache = TokenCache::with_config(source.clone(), cache_config());

    let stop = Arc::new(AtomicBool::new(false));
    if role == "continuous" {
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
        let continuous = role == "continuous";
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// ---------------------------------------------------------------------------------------
// The parent side.

/// One member process; killed and reaped when dropped.
pub(crate) struct Member {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Member {
    /// `role` is `burst` (each caller asks once) or `continuous` (until [`stop`](Self::stop)).
    pub(crate) fn spawn(
        role: &str,
        redis: impl Into<FleetRedis>,
        auth: &AuthServer,
        lease: Duration,
    ) -> Member {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fleet::fleet_member",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ROLE_ENV, role)
            .env(REDIS_ENV, redis.into().encode())
            .env(TOKEN_URL_ENV, auth.token_url())
            .env(LEASE_MS_ENV, lease.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed the test's name on the same line first.
                if let Some(at) = line.find("FLEET ") {
                    if send.send(line[at + "FLEET ".len()..].to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let stdin = child.stdin.take();
        Member {
            child,
            stdin,
            lines,
        }
    }

    /// Waits for the line starting with `prefix`, skipping others.
    pub(crate) fn expect(&self, prefix: &str) -> String {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(error) => panic!("member never said {prefix:?}: {error}"),
            }
        }
    }

    /// Waits for the result line and the exit.
    pub(crate) fn result(mut self) -> MemberResult {
        let line = self.expect("RESULT");
        let fields: HashMap<&str, u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.split_once('='))
            .map(|(name, value)| (name, value.parse().unwrap()))
            .collect();
        let _ = self.child.wait();
        MemberResult {
            ok: fields["ok"],
            failed: fields["failed"],
            fetched: fields["fetched"],
            from_store: fields["from_store"],
            fallbacks: fields["fallbacks"],
            done_ms: fields["done_ms"],
        }
    }

    /// Closes stdin: a continuous member stops calling and reports.
    pub(crate) fn stop(&mut self) {
        self.stdin.take();
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MemberResult {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) fetched: u64,
    pub(crate) from_store: u64,
    pub(crate) fallbacks: u64,
    pub(crate) done_ms: u64,
}

pub(crate) fn total(results: &[MemberResult], field: impl Fn(&MemberResult) -> u64) -> u64 {
    results.iter().map(field).sum()
}

/// A runtime of its own for the mock authorization server, so the test thread can block.
pub(crate) fn auth_server(lifetime: Duration) -> (tokio::runtime::Runtime, AuthServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let auth = runtime
        .block_on(AuthServer::builder().token_lifetime(lifetime).start())
        .unwrap();
    (runtime, auth)
}

pub(crate) fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn fleet_lock() -> std::sync::MutexGuard<'static, ()> {
    ONE_FLEET_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn eight_cold_processes_with_200_callers_each_make_one_token_request() {
    let Some(redis) = RedisServer::start_or_skip("fleet_cold") else {
        return;
    };
    let _one = fleet_lock();
    let (_runtime, auth) = auth_server(Duration::from_secs(3600));
    let lease = Duration::from_secs(10);

    let members: Vec<Member> = (0..PROCESSES)
        .map(|_| Member::spawn("burst", &redis, &auth, lease))
        .collect();
    let results: Vec<MemberResult> = members.into_iter().map(Member::result).collect();

    println!(
        "fleet cold: {} processes x {CALLERS} callers: {} token request(s), {} fetched, \
         {} from the store, {} fallbacks",
        PROCESSES,
        auth.token_requests(),
        total(&results, |r| r.fetched),
        total(&results, |r| r.from_store),
        total(&results, |r| r.fallbacks),
    );
    assert_eq!(total(&results, |r| r.ok), (PROCESSES * CALLERS) as u64);
    assert_eq!(total(&results, |r| r.failed), 0);
    assert_eq!(total(&results, |r| r.fallbacks), 0);
    assert_eq!(total(&results, |r| r.fetched), 1);
    assert_eq!(auth.token_requests(), 1);
}

/// With 2 s tokens, fetches are at least 1.75 s apart (the cache refreshes 250 ms before
/// expiry, and every member takes the token the first one stored). A window of 5
/// lifetimes (10 s) therefore holds at most floor(10 / 1.75) + 1 = 6 fetch starts: the
/// bound asserted is lifetimes + 1 = 6 token requests inside the window.
#[test]
fn over_five_token_lifetimes_the_fleet_makes_at_most_six_token_requests() {
    let Some(redis) = RedisServer::start_or_skip("fleet_lifetimes") else {
        return;
    };
    over_five_lifetimes("fleet lifetimes", &redis);
}

/// The run behind the test above, on any topology: `PROCESSES` continuous members, 2 s
/// tokens, 5 lifetimes; asserts no failed call, no fallback and at most 6 token requests
/// in the window. Returns the requests made to warm up and those in the window.
pub(crate) fn over_five_lifetimes(label: &str, redis: impl Into<FleetRedis>) -> (u64, u64) {
    let redis = redis.into();
    let _one = fleet_lock();
    let lifetime = Duration::from_secs(2);
    let (_runtime, auth) = auth_server(lifetime);
    let lease = Duration::from_secs(5);

    let mut members = warm_members(PROCESSES, &redis, &auth, lease);
    let at_start = auth.token_requests();
    std::thread::sleep(lifetime * 5);
    let in_window = auth.token_requests() - at_start;
    for member in &mut members {
        member.stop();
    }
    let results: Vec<MemberResult> = members.into_iter().map(Member::result).collect();

    println!(
        "{label}: {at_start} request(s) to warm up, then {in_window} in 5 lifetimes \
         of {lifetime:?}; {} calls, {} failed, {} fallbacks, {} from the store",
        total(&results, |r| r.ok),
        total(&results, |r| r.failed),
        total(&results, |r| r.fallbacks),
        total(&results, |r| r.from_store),
    );
    // `at_start` is 1 unless starting the processes took longer than a lifetime; the cold
    // test asserts the 1, this one the window.
    assert_eq!(total(&results, |r| r.failed), 0);
    assert_eq!(total(&results, |r| r.fallbacks), 0);
    assert!(in_window >= 1, "tokens were refreshed in the window");
    assert!(
        in_window <= 6,
        "{in_window} token requests in 5 lifetimes, bound 6"
    );
    (at_start, in_window)
}

/// Starts `count` continuous members and waits until each has a token.
fn warm_members(
    count: usize,
    redis: &FleetRedis,
    auth: &AuthServer,
    lease: Duration,
) -> Vec<Member> {
    let members: Vec<Member> = (0..count)
        .map(|_| Member::spawn("continuous", redis.clone(), auth, lease))
        .collect();
    for member in &members {
        member.expect("WARM");
    }
    members
}

/// A Redis deployment whose master can be killed and replaced by its replica.
pub(crate) trait FailingOver {
    /// What the serving master holds under `key` (the raw reply).
    fn stored(&self, key: &str) -> Vec<u8>;
    /// Kills the master holding `key` once its replica has it; returns when the replica
    /// serves, with the time that took.
    fn fail_over(&mut self, key: &str) -> Duration;
}

/// How many members run through a failover: the deployments start several servers, and
/// the machine may have two cores.
const FAILOVER_PROCESSES: usize = 4;

/// Members run continuously with 6 s tokens. Right after a scheduled refresh stored a new
/// token, the master holding it is killed; the replica is promoted within a few seconds,
/// well before the next refresh (5.75 s after the last). Over the two lifetimes from the
/// kill two refreshes are scheduled: asserted are no failed call, the token kept through
/// the failover, new tokens stored on the promoted master, and at most one extra request.
pub(crate) fn through_a_failover(label: &str, mut redis: impl FailingOver, topology: FleetRedis) {
    let _one = fleet_lock();
    let lifetime = Duration::from_secs(6);
    let (_runtime, auth) = auth_server(lifetime);
    let lease = Duration::from_secs(5);
    let token_url = auth.token_url();
    let store_key = StoreKey::builder(&token_url, AuthServer::DEFAULT_CLIENT_ID)
        .scope(SCOPE)
        .build();
    let token_key = topology
        .builder()
        .store_in_clear()
        .build()
        .unwrap()
        .token_key(&store_key);
    let absent = b"$-1\r\n".to_vec();

    let mut members = warm_members(FAILOVER_PROCESSES, &topology, &auth, lease);
    let warm_requests = auth.token_requests();
    wait_until("the first token is stored", || {
        redis.stored(&token_key) != absent
    });
    let first = redis.stored(&token_key);
    wait_until("a refresh stored the next token", || {
        auth.token_requests() > warm_requests && redis.stored(&token_key) != first
    });
    // The other members take it within a few caller rounds (50 ms each); the kill is meant
    // to fall between refreshes, not inside this one.
    std::thread::sleep(Duration::from_secs(1));

    let before = redis.stored(&token_key);
    let requests_before = auth.token_requests();
    let killed_at = Instant::now();
    let failover = redis.fail_over(&token_key);
    let after = redis.stored(&token_key);
    std::thread::sleep((lifetime * 2).saturating_sub(killed_at.elapsed()));
    let in_window = auth.token_requests() - requests_before;
    let at_end = redis.stored(&token_key);
    for member in &mut members {
        member.stop();
    }
    let results: Vec<MemberResult> = members.into_iter().map(Member::result).collect();

    println!(
        "{label}: {FAILOVER_PROCESSES} processes x {CALLERS} callers, {lifetime:?} tokens; \
         failover took {failover:?}; {in_window} token requests in the 2 lifetimes after the \
         kill (2 scheduled, {} extra); {} calls, {} failed, {} fallbacks, {} from the store",
        in_window.saturating_sub(2),
        total(&results, |r| r.ok),
        total(&results, |r| r.failed),
        total(&results, |r| r.fallbacks),
        total(&results, |r| r.from_store),
    );
    assert_eq!(total(&results, |r| r.failed), 0, "no call failed");
    assert_eq!(after, before, "the promoted replica kept the token");
    assert_ne!(
        at_end, before,
        "later tokens were stored on the promoted master"
    );
    assert!(in_window >= 1, "tokens were refreshed after the failover");
    assert!(
        in_window <= 3,
        "{in_window} token requests in 2 lifetimes, 2 scheduled and at most 1 extra"
    );
}

#[test]
fn a_lease_holder_killed_mid_fetch_holds_the_fleet_up_only_until_the_lease_expires() {
    let Some(redis) = RedisServer::start_or_skip("fleet_sigkill") else {
        return;
    };
    let _one = fleet_lock();
    let (_runtime, auth) = auth_server(Duration::from_secs(3600));
    let lease = Duration::from_secs(2);
    // The first token request hangs: its sender holds the lease and is stuck fetching.
    auth.fail_next(1, Fault::Delay(Duration::from_secs(120)));

    let mut holder = Member::spawn("burst", &redis, &auth, lease);
    wait_until("the holder is stuck in its token request", || {
        auth.token_requests() == 1
    });
    let others: Vec<Member> = (1..PROCESSES)
        .map(|_| Member::spawn("burst", &redis, &auth, lease))
        .collect();
    for member in &others {
        member.expect("READY");
    }
    // Give them a moment to find the lease taken and start polling (not asserted).
    std::thread::sleep(Duration::from_millis(300));
    holder.child.kill().unwrap(); // SIGKILL
    let killed_at = unix_ms();
    let _ = holder.child.wait();

    let results: Vec<MemberResult> = others.into_iter().map(Member::result).collect();
    let recovered_after = results.iter().map(|r| r.done_ms).max().unwrap() - killed_at;
    println!(
        "fleet sigkill: lease {lease:?}; all {} callers of the {} other processes had a \
         token {recovered_after} ms after the holder was killed; {} token requests",
        total(&results, |r| r.ok),
        PROCESSES - 1,
        auth.token_requests(),
    );
    assert_eq!(
        total(&results, |r| r.ok),
        ((PROCESSES - 1) * CALLERS) as u64
    );
    assert_eq!(total(&results, |r| r.failed), 0);
    assert_eq!(total(&results, |r| r.fallbacks), 0);
    assert_eq!(
        auth.token_requests(),
        2,
        "the stuck one and one after the lease expired"
    );
    // A hang guard, not a timing assertion.
    assert!(Duration::from_millis(recovered_after) < lease * 10);
}

#[test]
fn redis_stopped_mid_run_fails_no_call_and_sharing_resumes_when_it_is_back() {
    let Some(mut redis) = RedisServer::start_or_skip("fleet_redis_down") else {
        return;
    };
    let _one = fleet_lock();
    let lifetime = Duration::from_secs(2);
    let (_runtime, auth) = auth_server(lifetime);
    let lease = Duration::from_secs(5);
    let token_url = auth.token_url();
    let store = RedisStore::builder(&redis.url())
        .store_in_clear()
        .build()
        .unwrap();
    let token_key = store.token_key(
        &StoreKey::builder(&token_url, AuthServer::DEFAULT_CLIENT_ID)
            .scope(SCOPE)
            .build(),
    );
    let stored = |redis: &RedisServer| {
        redis
            .command(&[b"EXISTS", token_key.as_bytes()])
            .is_ok_and(|reply| reply == b":1\r\n")
    };

    let mut members: Vec<Member> = (0..PROCESSES)
        .map(|_| Member::spawn("continuous", &redis, &auth, lease))
        .collect();
    for member in &members {
        member.expect("WARM");
    }
    wait_until("the shared token is in Redis", || stored(&redis));
    let before_outage = auth.token_requests();

    redis.stop();
    std::thread::sleep(lifetime * 2);
    let during_outage = auth.token_requests() - before_outage;
    redis.start_again().unwrap();
    let restarted = Instant::now();
    wait_until("a member stores a token in the restarted Redis", || {
        stored(&redis)
    });
    let resumed_after = restarted.elapsed();
    let at_resume = auth.token_requests();
    std::thread::sleep(lifetime * 2);
    let after_resume = auth.token_requests() - at_resume;
    for member in &mut members {
        member.stop();
    }
    let results: Vec<MemberResult> = members.into_iter().map(Member::result).collect();

    println!(
        "fleet redis down: {} calls, {} failed; {during_outage} token requests in 2 lifetimes \
         without Redis, sharing resumed {resumed_after:?} after the restart, then \
         {after_resume} token requests in 2 lifetimes; {} fallbacks in all",
        total(&results, |r| r.ok),
        total(&results, |r| r.failed),
        total(&results, |r| r.fallbacks),
    );
    assert_eq!(
        total(&results, |r| r.failed),
        0,
        "no call fails because of Redis"
    );
    assert!(
        total(&results, |r| r.fallbacks) >= 1,
        "members fetched alone meanwhile"
    );
}
