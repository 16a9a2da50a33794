//! The fleet: real OS processes sharing tokens through one real redis-server.
//!
//! The parent's helpers here serve the cluster and Sentinel tests too: a member connects to
//! whatever [`FleetRedis`] its parent names.
//!
//! Each parent test starts a redis-server and the testkit's mock authorization server, then
//! runs `fleet-member` processes (this crate's binary, `tower_bearer_test_support::fleet`),
//! configured by environment variables, and parses the lines they print.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tower_bearer::store::StoreKey;
use tower_bearer_redis::RedisStore;
use tower_bearer_test_support::fleet::{unix_ms, MemberConfig};
pub(crate) use tower_bearer_test_support::fleet::{FleetRedis, CALLERS, SCOPE};
use tower_bearer_testkit::RedisServer;
use tower_bearer_testkit::{AuthServer, Fault};

pub(crate) const PROCESSES: usize = 8;
/// Every wait in these tests is bounded by this, so a broken fleet fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(90);

/// The fleet tests start many processes; one at a time keeps a small machine responsive.
static ONE_FLEET_AT_A_TIME: Mutex<()> = Mutex::new(());

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
        let config = MemberConfig {
            role: role.to_owned(),
            redis: redis.into(),
            token_url: auth.token_url(),
            lease,
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-member"))
            .envs(config.env())
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
                if let Some(said) = line.strip_prefix("FLEET ") {
                    if send.send(said.to_owned()).is_err() {
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
    let redis = RedisServer::start_for_test("fleet_cold");
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
    let redis = RedisServer::start_for_test("fleet_lifetimes");
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
    let redis = RedisServer::start_for_test("fleet_sigkill");
    let _one = fleet_lock();
    let (_runtime, auth) = auth_server(Duration::from_secs(3600));
    let lease = Duration::from_secs(2);
    // The others' leases are long: the one of them that takes over after the holder's has
    // expired keeps its lease for as long as a loaded machine could take to fetch, so no
    // third member fetches. Exactly 2 requests then holds however slow the machine is.
    let takeover_lease = Duration::from_secs(60);
    // The first token request hangs: its sender holds the lease and is stuck fetching.
    auth.fail_next(1, Fault::Delay(Duration::from_secs(120)));

    let mut holder = Member::spawn("burst", &redis, &auth, lease);
    wait_until("the holder is stuck in its token request", || {
        auth.token_requests() == 1
    });
    let others: Vec<Member> = (1..PROCESSES)
        .map(|_| Member::spawn("burst", &redis, &auth, takeover_lease))
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
    let mut redis = RedisServer::start_for_test("fleet_redis_down");
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
