//! [`RedisSentinel`]: a master, its replica and the Sentinels that watch them, and the
//! failover a test causes by killing the master.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use super::process::{started_for_test, wait_until, Launch, RedisServer};
use super::tls::{TlsFiles, Transport};

/// Sentinel: a master that does not answer for this long is down ...
const SENTINEL_DOWN_AFTER_MS: u64 = 500;
/// ... and a failover that has not completed in this time is started again.
const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 2000;

/// A private Sentinel group: a master, a replica and one to three Sentinels on free
/// loopback ports, with a short `down-after-milliseconds` (500) and `failover-timeout`
/// (2 s) so a failover completes in a few seconds; stopped when dropped.
///
/// ```no_run
/// use tower_bearer_testkit::RedisSentinel;
///
/// let mut group = RedisSentinel::start_for_test("my_test", 3);
/// let (sentinels, name) = (group.sentinel_urls(), group.master_name());
/// let took = group.fail_over("some-key").unwrap(); // kill the master, await the replica
/// # let _ = (sentinels, name, took);
/// ```
///
/// Over TLS, with [`start_tls`](Self::start_tls):
///
/// ```no_run
/// use tower_bearer_testkit::{RedisSentinel, TlsFiles};
///
/// let files = TlsFiles {
///     cert: "server.pem".into(), // for 127.0.0.1
///     key: "server.key".into(),
///     ca: "ca.pem".into(),
///     require_client_cert: true,
/// };
/// let group = RedisSentinel::start_tls_for_test("my_test", 3, files);
/// let sentinels = group.tls_sentinel_urls(); // they name the master's TLS port
/// # let _ = sentinels;
/// ```
pub struct RedisSentinel {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisServer>,
}

impl RedisSentinel {
    /// The name the Sentinels monitor the master under.
    pub const MASTER_NAME: &'static str = "tower-bearer";

    /// Starts a master, its replica and `sentinels` Sentinels (`redis-server --sentinel`;
    /// 1 to 3, with a majority as quorum), and waits until every Sentinel knows the replica
    /// and the other Sentinels.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `redis-server` is not installed.
    pub fn start(sentinels: usize) -> io::Result<Self> {
        Self::start_with(sentinels, Transport::Plain)
    }

    /// Starts a group as [`start`](Self::start) does, but whose only TCP listeners are TLS
    /// ports with `files` (`port 0`, `tls-port`), with replication and the Sentinels' links
    /// over TLS too (`tls-replication yes`): the Sentinels name the master's TLS port, and
    /// every TCP connection to the group is TLS. Give
    /// [`tls_sentinel_urls`](Self::tls_sentinel_urls) to a client.
    ///
    /// The harness's own queries ([`fail_over`](Self::fail_over), [`RedisServer::command`]
    /// on [`master`](Self::master)) go through each server's Unix socket. The servers read
    /// `files` again when [restarted](RedisServer::start_again): keep them until the group
    /// is dropped.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `redis-server` is not installed, and
    /// with [`io::ErrorKind::Unsupported`] where there are no Unix sockets.
    pub fn start_tls(sentinels: usize, files: TlsFiles) -> io::Result<Self> {
        Self::start_with(sentinels, Transport::TlsOnly(files))
    }

    fn start_with(sentinels: usize, transport: Transport) -> io::Result<Self> {
        if !(1..=3).contains(&sentinels) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a RedisSentinel has 1 to 3 Sentinels",
            ));
        }
        let master = RedisServer::start_with(transport.clone(), Launch::Plain)?;
        let replica = RedisServer::start_with(
            transport.clone(),
            Launch::Replica {
                master_port: master.port(),
            },
        )?;
        let quorum = sentinels / 2 + 1;
        let name = Self::MASTER_NAME;
        let config = format!(
            "sentinel monitor {name} 127.0.0.1 {} {quorum}\n\
             sentinel down-after-milliseconds {name} {SENTINEL_DOWN_AFTER_MS}\n\
             sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {name} 1\n",
            master.port()
        );
        let sentinels = (0..sentinels)
            .map(|_| {
                RedisServer::start_with(
                    transport.clone(),
                    Launch::Sentinel {
                        config: config.clone(),
                    },
                )
            })
            .collect::<io::Result<Vec<_>>>()?;
        let group = RedisSentinel {
            master,
            replica,
            sentinels,
        };
        let others = (group.sentinels.len() - 1).to_string();
        wait_until(
            &group,
            "every Sentinel knows the replica and the others",
            |group| {
                group.sentinels.iter().all(|sentinel| {
                    let master: io::Result<std::collections::HashMap<String, String>> =
                        sentinel.query(redis::cmd("SENTINEL").arg("MASTER").arg(name));
                    master.is_ok_and(|master| {
                        master.get("num-slaves").is_some_and(|n| n == "1")
                            && master.get("num-other-sentinels") == Some(&others)
                    })
                })
            },
        )?;
        Ok(group)
    }

    /// Starts a group for `test`.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start_for_test`] does.
    pub fn start_for_test(test: &str, sentinels: usize) -> Self {
        started_for_test(test, "redis-server", Self::start(sentinels))
    }

    /// Starts a group over TLS for `test`, as [`start_tls`](Self::start_tls) does.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start_for_test`] does.
    pub fn start_tls_for_test(test: &str, sentinels: usize, files: TlsFiles) -> Self {
        started_for_test(test, "redis-server", Self::start_tls(sentinels, files))
    }

    /// The `redis://` URLs of the Sentinels ([`RedisServer::url`]; for a group from
    /// [`start_tls`](Self::start_tls) their Unix sockets).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisServer::url).collect()
    }

    /// The `rediss://127.0.0.1:<port>` URLs of the Sentinels, for a group from
    /// [`start_tls`](Self::start_tls); empty for one from [`start`](Self::start).
    pub fn tls_sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .filter_map(RedisServer::tls_url)
            .collect()
    }

    /// The master's name, [`MASTER_NAME`](Self::MASTER_NAME).
    pub fn master_name(&self) -> &'static str {
        Self::MASTER_NAME
    }

    /// The current master (after [`fail_over`](Self::fail_over), the promoted replica).
    pub fn master(&self) -> &RedisServer {
        &self.master
    }

    /// The replica (after [`fail_over`](Self::fail_over), the killed former master).
    pub fn replica(&self) -> &RedisServer {
        &self.replica
    }

    /// Kills the master, once the replica holds the same value of `key`, and waits until
    /// every Sentinel names the replica as the master and the replica says it is one.
    /// Returns the time from the kill to then. The killed master stays stopped.
    pub fn fail_over(&mut self, key: &str) -> io::Result<Duration> {
        let value: Option<Vec<u8>> = self.master.query(redis::cmd("GET").arg(key))?;
        wait_until(self, "the replica holds the master's value", |group| {
            group
                .replica
                .query::<Option<Vec<u8>>>(redis::cmd("GET").arg(key))
                .is_ok_and(|copy| copy == value)
        })?;
        let killed_at = Instant::now();
        self.master.stop();
        let promoted = self.replica.port().to_string();
        wait_until(self, "the Sentinels promote the replica", |group| {
            let named = group.sentinels.iter().all(|sentinel| {
                sentinel
                    .query::<Vec<String>>(
                        redis::cmd("SENTINEL")
                            .arg("GET-MASTER-ADDR-BY-NAME")
                            .arg(Self::MASTER_NAME),
                    )
                    .is_ok_and(|addr| addr.get(1) == Some(&promoted))
            });
            named
                && group
                    .replica
                    .query::<String>(redis::cmd("INFO").arg("replication"))
                    .is_ok_and(|info| info.lines().any(|line| line.trim() == "role:master"))
        })?;
        std::mem::swap(&mut self.master, &mut self.replica);
        Ok(killed_at.elapsed())
    }
}

impl fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("master", &self.master)
            .field("replica", &self.replica)
            .field("sentinels", &self.sentinels)
            .finish()
    }
}
