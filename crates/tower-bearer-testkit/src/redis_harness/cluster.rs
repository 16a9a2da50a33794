//! [`RedisCluster`]: six nodes joined by `redis-cli --cluster create`, their topology as
//! `CLUSTER NODES` tells it, and the faults a test gives them: a master's failover and a
//! slot moved to another master.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{
    run_bounded, started_for_test, wait_until, Launch, RedisServer, REDIS_CLI_ENV, START_TIMEOUT,
};
use super::tls::{TlsFiles, Transport};

/// A private Redis Cluster: six `redis-server` nodes on free loopback ports (three masters,
/// each with one replica), each in its own temporary directory with its own `nodes.conf`;
/// stopped when dropped.
///
/// ```no_run
/// use tower_bearer_testkit::RedisCluster;
///
/// let mut cluster = RedisCluster::start_for_test("my_test");
/// let nodes = cluster.urls(); // give these to RedisStore::cluster_builder
/// let took = cluster.fail_over("some-key").unwrap(); // kill its master, await the replica
/// # let _ = (nodes, took);
/// ```
///
/// Over TLS, with [`start_tls`](Self::start_tls):
///
/// ```no_run
/// use tower_bearer_testkit::{RedisCluster, TlsFiles};
///
/// let files = TlsFiles {
///     cert: "server.pem".into(), // for 127.0.0.1
///     key: "server.key".into(),
///     ca: "ca.pem".into(),
///     require_client_cert: false,
/// };
/// let cluster = RedisCluster::start_tls_for_test("my_test", files);
/// let nodes = cluster.tls_urls(); // rediss://127.0.0.1:<port>, the only TCP ports it has
/// # let _ = nodes;
/// ```
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    const NODES: usize = 6;

    /// Starts six nodes, joins them with `redis-cli --cluster create ... --cluster-replicas 1`
    /// and waits until every node reports `cluster_state:ok`.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `redis-server` or `redis-cli` is not
    /// installed.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Transport::Plain)
    }

    /// Starts six nodes as [`start`](Self::start) does, but whose only TCP listeners are
    /// TLS ports with `files` (`port 0`, `tls-port`), with the cluster bus and replication
    /// over TLS too (`tls-cluster yes`, `tls-replication yes`): the nodes name their TLS
    /// ports in `CLUSTER SLOTS`, `MOVED` and `ASK`, and every TCP connection to them is
    /// TLS. Give [`tls_urls`](Self::tls_urls) to a client.
    ///
    /// `redis-cli` creates the cluster over TLS, presenting `files.cert` as its client
    /// certificate; after that the harness's own queries ([`command_for`](Self::command_for),
    /// [`fail_over`](Self::fail_over), [`RedisServer::command`]) go through each node's
    /// Unix socket. The nodes read `files` again when [restarted](RedisServer::start_again):
    /// keep them until the cluster is dropped.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `redis-server` or `redis-cli` is not
    /// installed, and with [`io::ErrorKind::Unsupported`] where there are no Unix sockets.
    pub fn start_tls(files: TlsFiles) -> io::Result<Self> {
        Self::start_with(Transport::TlsOnly(files))
    }

    fn start_with(transport: Transport) -> io::Result<Self> {
        let nodes = (0..Self::NODES)
            .map(|_| RedisServer::start_with(transport.clone(), Launch::ClusterNode))
            .collect::<io::Result<Vec<_>>>()?;
        let cluster = RedisCluster { nodes };
        let cli = std::env::var_os(REDIS_CLI_ENV)
            .map_or_else(|| PathBuf::from("redis-cli"), PathBuf::from);
        let mut create = Command::new(cli);
        if let Transport::TlsOnly(files) = &transport {
            create
                .arg("--tls")
                .arg("--cacert")
                .arg(&files.ca)
                .arg("--cert")
                .arg(&files.cert)
                .arg("--key")
                .arg(&files.key);
        }
        create.args(["--cluster", "create"]);
        for node in &cluster.nodes {
            create.arg(node.addr().to_string());
        }
        create.args(["--cluster-replicas", "1", "--cluster-yes"]);
        run_bounded(&mut create, START_TIMEOUT * 3)?;
        wait_until(&cluster, "every node reports cluster_state:ok", |cluster| {
            cluster.state_ok()
        })?;
        Ok(cluster)
    }

    /// Starts a cluster for `test`.
    ///
    /// # Panics
    ///
    /// As [`RedisServer::start_for_test`] does, and when `redis-cli` is missing too.
    pub fn start_for_test(test: &str) -> Self {
        started_for_test(test, "redis-server or redis-cli", Self::start())
    }

    /// Starts a cluster over TLS for `test`, as [`start_tls`](Self::start_tls) does.
    ///
    /// # Panics
    ///
    /// As [`start_for_test`](Self::start_for_test) does.
    pub fn start_tls_for_test(test: &str, files: TlsFiles) -> Self {
        started_for_test(test, "redis-server or redis-cli", Self::start_tls(files))
    }

    /// The `redis://` URLs of the running nodes ([`RedisServer::url`]; for a cluster from
    /// [`start_tls`](Self::start_tls) their Unix sockets, which a cluster client cannot
    /// use: the nodes name TCP ports).
    pub fn urls(&self) -> Vec<String> {
        self.running().map(RedisServer::url).collect()
    }

    /// The `rediss://127.0.0.1:<port>` URLs of the running nodes, for a cluster from
    /// [`start_tls`](Self::start_tls); empty for one from [`start`](Self::start).
    pub fn tls_urls(&self) -> Vec<String> {
        self.running().filter_map(RedisServer::tls_url).collect()
    }

    /// The running nodes, masters and replicas, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = &RedisServer> {
        self.running()
    }

    /// The hash slot of `key`, as the cluster computes it (`CLUSTER KEYSLOT`).
    pub fn slot(&self, key: &str) -> io::Result<u16> {
        self.any_node()?
            .query(redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
    }

    /// The running master that serves `key`'s slot.
    pub fn master_of(&self, key: &str) -> io::Result<&RedisServer> {
        let slot = self.slot(key)?;
        let port = self
            .topology()?
            .into_iter()
            .find(|node| node.is_master && node.slots.iter().any(|r| r.contains(&slot)))
            .map(|node| node.port)
            .ok_or_else(|| io::Error::other(format!("no master serves slot {slot}")))?;
        self.node_on(port)
    }

    /// Runs `words` on the master that serves `key`'s slot, as [`RedisServer::command`].
    pub fn command_for(&self, key: &str, words: &[&[u8]]) -> io::Result<Vec<u8>> {
        self.master_of(key)?.command(words)
    }

    /// Kills the master that serves `key`'s slot, once its replica holds the same value of
    /// `key`, and waits until the replica has been promoted and every running node reports
    /// `cluster_state:ok`. Returns the time from the kill to then.
    pub fn fail_over(&mut self, key: &str) -> io::Result<Duration> {
        let master_port = self.master_of(key)?.port();
        let master_id = self
            .topology()?
            .into_iter()
            .find(|node| node.port == master_port)
            .map(|node| node.id)
            .ok_or_else(|| io::Error::other("the master left the topology"))?;
        let replica_port = self
            .topology()?
            .into_iter()
            .find(|node| node.master_id.as_deref() == Some(master_id.as_str()))
            .map(|node| node.port)
            .ok_or_else(|| {
                io::Error::other(format!("the master on {master_port} has no replica"))
            })?;
        let value: Option<Vec<u8>> = self
            .node_on(master_port)?
            .query(redis::cmd("GET").arg(key))?;
        wait_until(self, "the replica holds the master's value", |cluster| {
            let Ok(replica) = cluster.node_on(replica_port) else {
                return false;
            };
            let mut replica = match replica.admin() {
                Ok(connection) => connection,
                Err(_) => return false,
            };
            // A replica answers reads only after READONLY; else it redirects to the master.
            let copy: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("READONLY")
                .query::<()>(&mut replica)
                .and_then(|()| redis::cmd("GET").arg(key).query(&mut replica));
            copy.is_ok_and(|copy| copy == value)
        })?;

        let killed_at = Instant::now();
        self.node_on_mut(master_port)?.stop();
        wait_until(self, "the replica is promoted", |cluster| {
            let promoted = cluster.topology().is_ok_and(|nodes| {
                nodes.iter().any(|node| {
                    node.port == replica_port && node.is_master && !node.slots.is_empty()
                })
            });
            promoted && cluster.state_ok()
        })?;
        Ok(killed_at.elapsed())
    }

    /// Gives the hash slot of `key`, which must hold no keys, to another master, as a
    /// resharding does (`CLUSTER SETSLOT` `IMPORTING` on the new owner, `MIGRATING` on the
    /// old one, then `NODE` on the new owner, the old one and every other master), and waits
    /// until every running node names the new owner. A client that learned the slot map
    /// before is answered `MOVED` for that slot from then on. Returns the new master.
    pub fn move_slot(&self, key: &str) -> io::Result<&RedisServer> {
        let slot = self.slot(key)?;
        let topology = self.topology()?;
        let serves = |node: &ClusterNode| node.slots.iter().any(|r| r.contains(&slot));
        let from = topology
            .iter()
            .find(|node| node.is_master && serves(node))
            .ok_or_else(|| io::Error::other(format!("no master serves slot {slot}")))?;
        let to = topology
            .iter()
            .find(|node| node.is_master && !node.slots.is_empty() && node.id != from.id)
            .ok_or_else(|| io::Error::other("no other master to move the slot to"))?;
        let (old_owner, new_owner) = (self.node_on(from.port)?, self.node_on(to.port)?);
        let keys: u64 = old_owner.query(redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))?;
        if keys != 0 {
            return Err(io::Error::other(format!(
                "slot {slot} holds {keys} keys; move_slot moves only an empty slot"
            )));
        }
        let set_slot = |node: &RedisServer, state: &str, id: &str| {
            node.query::<()>(
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(state)
                    .arg(id),
            )
        };
        set_slot(new_owner, "IMPORTING", &from.id)?;
        set_slot(old_owner, "MIGRATING", &to.id)?;
        // The new owner first: it takes a new configuration epoch, so its claim wins.
        set_slot(new_owner, "NODE", &to.id)?;
        set_slot(old_owner, "NODE", &to.id)?;
        for master in topology
            .iter()
            .filter(|node| node.is_master && node.id != from.id && node.id != to.id)
        {
            set_slot(self.node_on(master.port)?, "NODE", &to.id)?;
        }
        wait_until(self, "every node names the slot's new master", |cluster| {
            cluster.running().all(|node| {
                node.query::<String>(redis::cmd("CLUSTER").arg("NODES"))
                    .is_ok_and(|nodes| {
                        let owners: Vec<String> = nodes
                            .lines()
                            .filter_map(ClusterNode::parse)
                            .filter(|node| node.is_master && serves(node))
                            .map(|node| node.id)
                            .collect();
                        owners == [to.id.as_str()]
                    })
            })
        })?;
        Ok(new_owner)
    }

    fn running(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|node| node.is_running())
    }

    fn any_node(&self) -> io::Result<&RedisServer> {
        self.running()
            .next()
            .ok_or_else(|| io::Error::other("no cluster node is running"))
    }

    fn node_on(&self, port: u16) -> io::Result<&RedisServer> {
        self.running()
            .find(|node| node.port() == port)
            .ok_or_else(|| io::Error::other(format!("no running cluster node on port {port}")))
    }

    fn node_on_mut(&mut self, port: u16) -> io::Result<&mut RedisServer> {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .ok_or_else(|| io::Error::other(format!("no cluster node on port {port}")))
    }

    fn state_ok(&self) -> bool {
        self.running().all(|node| {
            node.query::<String>(redis::cmd("CLUSTER").arg("INFO"))
                .is_ok_and(|info| info.lines().any(|line| line.trim() == "cluster_state:ok"))
        })
    }

    /// `CLUSTER NODES` as one running node sees it, without the failed nodes.
    fn topology(&self) -> io::Result<Vec<ClusterNode>> {
        let nodes: String = self.any_node()?.query(redis::cmd("CLUSTER").arg("NODES"))?;
        Ok(nodes.lines().filter_map(ClusterNode::parse).collect())
    }
}

impl fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCluster")
            .field("nodes", &self.nodes)
            .finish()
    }
}

/// One line of `CLUSTER NODES`: `<id> <ip:port@bus> <flags> <master> ... <slots>...`.
struct ClusterNode {
    id: String,
    port: u16,
    is_master: bool,
    master_id: Option<String>,
    slots: Vec<std::ops::RangeInclusive<u16>>,
}

impl ClusterNode {
    fn parse(line: &str) -> Option<ClusterNode> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (id, addr, flags, master) = (
            fields.first()?,
            fields.get(1)?,
            fields.get(2)?,
            fields.get(3)?,
        );
        if flags.contains("fail") || flags.contains("noaddr") {
            return None;
        }
        let port = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
        let slots = fields
            .iter()
            .skip(8)
            .filter_map(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                Some(start.parse().ok()?..=end.parse().ok()?)
            })
            .collect();
        Some(ClusterNode {
            id: (*id).to_owned(),
            port,
            is_master: flags.contains("master"),
            master_id: (*master != "-").then(|| (*master).to_owned()),
            slots,
        })
    }
}
