//! A private `redis-server` for tests, examples and benches.
//!
//! [`RedisServer::start`] runs the `redis-server` binary on a free `127.0.0.1` port with an
//! empty temporary directory and no persistence, waits until it answers `PING`, and stops it
//! when dropped. It never connects to a Redis it did not start.
//!
//! [`RedisCluster::start_tls`] and [`RedisSentinel::start_tls`] start deployments whose every
//! TCP listener speaks TLS (`port 0`): clients, replication, the cluster bus and the
//! Sentinels' links all go over TLS. The harness controls those servers through Unix
//! sockets, so a client that reaches them over TCP cannot be talking plain Redis.
//!
//! ```no_run
//! use tower_bearer_testkit::RedisServer;
//!
//! // In a test: fails, saying which package to install, when redis-server is not installed.
//! let redis = RedisServer::start_for_test("my_test");
//! println!("{}", redis.url());
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The environment variable naming the `redis-server` binary (default: `redis-server` on
/// the `PATH`).
pub const REDIS_SERVER_ENV: &str = "TOWER_BEARER_REDIS_SERVER";

/// The environment variable naming the `redis-cli` binary (default: `redis-cli` on the
/// `PATH`), which [`RedisCluster`] uses to create the cluster.
pub const REDIS_CLI_ENV: &str = "TOWER_BEARER_REDIS_CLI";

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failover may take before the harness gives up: a hang guard, not a target.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// A cluster node that does not answer for this long is failed, and its replica promoted.
const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// Sentinel: a master that does not answer for this long is down ...
const SENTINEL_DOWN_AFTER_MS: u64 = 500;
/// ... and a failover that has not completed in this time is started again.
const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 2000;

/// A `redis-server` this process started; stopped when dropped.
pub struct RedisServer {
    binary: PathBuf,
    listeners: Listeners,
    dir: PathBuf,
    child: Option<Child>,
    role: Role,
}

/// What a server is started as, beyond a plain node.
#[derive(Clone, Debug, Default)]
enum Role {
    #[default]
    Plain,
    /// A Redis Cluster node, with its cluster bus on a port of its own.
    ClusterNode { bus_port: u16 },
    /// A replica of the node on `master_port`.
    Replica { master_port: u16 },
    /// A Sentinel with this configuration (written once: the Sentinel rewrites it).
    Sentinel { config: String },
}

/// The role to start with, before its ports are chosen.
#[derive(Clone, Debug)]
enum Launch {
    Plain,
    ClusterNode,
    Replica { master_port: u16 },
    Sentinel { config: String },
}

/// What a server speaks on TCP, before its ports are chosen.
#[derive(Clone, Debug)]
enum Transport {
    Plain,
    PlainAndTls(TlsFiles),
    TlsOnly(TlsFiles),
}

/// The ports a server listens on.
#[derive(Clone, Debug)]
enum Listeners {
    /// A plain TCP port.
    Plain { port: u16 },
    /// A plain TCP port, and a TLS port beside it.
    PlainAndTls { port: u16, tls: Tls },
    /// A TLS port only (`port 0`), so every TCP connection to the server is TLS; the harness
    /// talks to it through the Unix socket `socket` instead. Replication, the cluster bus
    /// and a Sentinel's links to the servers it watches go over TLS too.
    TlsOnly { socket: PathBuf, tls: Tls },
}

impl Listeners {
    fn tls(&self) -> Option<&Tls> {
        match self {
            Listeners::Plain { .. } => None,
            Listeners::PlainAndTls { tls, .. } | Listeners::TlsOnly { tls, .. } => Some(tls),
        }
    }
}

/// The PEM files of a TLS listener, see [`RedisServer::start_tls`],
/// [`RedisCluster::start_tls`] and [`RedisSentinel::start_tls`].
///
/// The servers of a cluster or Sentinel group share these files and present `cert` as
/// their client certificate when they connect to each other, as does the `redis-cli` that
/// creates a cluster: with `require_client_cert`, `cert` must allow client authentication
/// too (one without an extended key usage does).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain, valid for `127.0.0.1`.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
    /// Whether clients must present a certificate (mutual TLS).
    pub require_client_cert: bool,
}

#[derive(Clone, Debug)]
struct Tls {
    port: u16,
    files: TlsFiles,
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when the binary is not installed.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Transport::Plain, Launch::Plain)
    }

    /// Starts a server that also listens for TLS on a second free port, with `files`; its
    /// URL is [`tls_url`](Self::tls_url). The plain port stays open for [`command`](Self::command).
    pub fn start_tls(files: TlsFiles) -> io::Result<Self> {
        Self::start_with(Transport::PlainAndTls(files), Launch::Plain)
    }

    fn start_with(transport: Transport, launch: Launch) -> io::Result<Self> {
        if matches!(transport, Transport::TlsOnly(_)) && !cfg!(unix) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the harness controls a TLS-only redis-server through a Unix socket",
            ));
        }
        let binary = std::env::var_os(REDIS_SERVER_ENV)
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
        let dir = temp_dir()?;
        let mut last_error = None;
        // Another program may take the free port between our check and the server's bind.
        for _ in 0..3 {
            let tls = |files: &TlsFiles| -> io::Result<Tls> {
                Ok(Tls {
                    port: free_port()?,
                    files: files.clone(),
                })
            };
            let listeners = match &transport {
                Transport::Plain => Listeners::Plain { port: free_port()? },
                Transport::PlainAndTls(files) => Listeners::PlainAndTls {
                    port: free_port()?,
                    tls: tls(files)?,
                },
                Transport::TlsOnly(files) => Listeners::TlsOnly {
                    socket: dir.join("redis.sock"),
                    tls: tls(files)?,
                },
            };
            let role = match &launch {
                Launch::Plain => Role::Plain,
                Launch::ClusterNode => Role::ClusterNode {
                    bus_port: free_port()?,
                },
                Launch::Replica { master_port } => Role::Replica {
                    master_port: *master_port,
                },
                Launch::Sentinel { config } => Role::Sentinel {
                    config: config.clone(),
                },
            };
            let mut server = RedisServer {
                binary: binary.clone(),
                listeners,
                dir: dir.clone(),
                child: None,
                role,
            };
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    server.dir = PathBuf::new();
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(error);
                }
                Err(error) => {
                    server.dir = PathBuf::new();
                    last_error = Some(error);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// Starts a server for `test`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed, with a message naming the package to install:
    /// a test that cannot run must fail, not pass. Any other failure to start panics too.
    pub fn start_for_test(test: &str) -> Self {
        started_for_test(test, "redis-server", Self::start())
    }

    /// `redis://127.0.0.1:<port>`; for a server without a plain TCP port (a node of
    /// [`RedisCluster::start_tls`] or [`RedisSentinel::start_tls`]) `redis+unix://<path>`,
    /// the Unix socket the harness controls it through.
    pub fn url(&self) -> String {
        match &self.listeners {
            Listeners::Plain { port } | Listeners::PlainAndTls { port, .. } => {
                format!("redis://127.0.0.1:{port}")
            }
            Listeners::TlsOnly { socket, .. } => format!("redis+unix://{}", socket.display()),
        }
    }

    /// The `rediss://` URL of the TLS listener, if the server was started with
    /// [`start_tls`](Self::start_tls) or is a node of [`RedisCluster::start_tls`] or
    /// [`RedisSentinel::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.listeners
            .tls()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The loopback address it listens on: the plain port; for a server without one (a
    /// node of [`RedisCluster::start_tls`] or [`RedisSentinel::start_tls`]) the TLS port,
    /// which its cluster and Sentinels name it by.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// The port of [`addr`](Self::addr).
    fn port(&self) -> u16 {
        match &self.listeners {
            Listeners::Plain { port } | Listeners::PlainAndTls { port, .. } => *port,
            Listeners::TlsOnly { tls, .. } => tls.port,
        }
    }

    /// Whether the server is running (not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server and waits for it to exit. Its data is gone (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, after [`stop`](Self::stop), and waits
    /// until it answers `PING`.
    pub fn start_again(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        let mut command = Command::new(&self.binary);
        if let Role::Sentinel { config } = &self.role {
            // The configuration file comes first; a Sentinel needs one it can rewrite.
            let file = self.dir.join("sentinel.conf");
            if !file.exists() {
                std::fs::write(&file, config)?;
            }
            command.arg(&file).arg("--sentinel");
        }
        let plain_port = match &self.listeners {
            Listeners::Plain { port } | Listeners::PlainAndTls { port, .. } => *port,
            Listeners::TlsOnly { .. } => 0,
        };
        command
            .arg("--port")
            .arg(plain_port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        let tls_only = matches!(self.listeners, Listeners::TlsOnly { .. });
        match &self.role {
            Role::Plain | Role::Sentinel { .. } => {}
            Role::ClusterNode { bus_port } => {
                command
                    .args(["--cluster-enabled", "yes"])
                    .args(["--cluster-config-file", "nodes.conf"])
                    .arg("--cluster-port")
                    .arg(bus_port.to_string())
                    .args([
                        "--cluster-node-timeout",
                        &CLUSTER_NODE_TIMEOUT_MS.to_string(),
                    ]);
                if tls_only {
                    // The bus over TLS; and the node then names its TLS port in `CLUSTER
                    // SLOTS`, `CLUSTER NODES`, `MOVED` and `ASK`.
                    command.args(["--tls-cluster", "yes"]);
                }
            }
            Role::Replica { master_port } => {
                command
                    .args(["--replicaof", "127.0.0.1"])
                    .arg(master_port.to_string());
            }
        }
        if let Listeners::TlsOnly { socket, .. } = &self.listeners {
            // A replica (or a Sentinel) connects over TLS and announces its TLS port, so
            // the master and the Sentinels name that one.
            command
                .args(["--tls-replication", "yes"])
                .arg("--unixsocket")
                .arg(socket)
                .args(["--unixsocketperm", "700"]);
        }
        if let Some(tls) = self.listeners.tls() {
            command
                .arg("--tls-port")
                .arg(tls.port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.files.cert)
                .arg("--tls-key-file")
                .arg(&tls.files.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.files.ca)
                .arg("--tls-auth-clients")
                .arg(if tls.files.require_client_cert {
                    "yes"
                } else {
                    "no"
                });
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.ping() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                self.stop();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING (exited: {exited:?})",
                    self.port()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server answering every client for `how_long` (`CLIENT PAUSE ... ALL`), as
    /// behind an overloaded Redis: their commands wait until the pause is over. Returns once
    /// the pause is in effect, so a command sent after this returns waits; the `Instant`
    /// returned is no earlier than the end of the pause.
    pub fn pause_clients(&self, how_long: Duration) -> io::Result<Instant> {
        let millis = how_long.as_millis().to_string();
        let reply = self.command(&[b"CLIENT", b"PAUSE", millis.as_bytes(), b"ALL"])?;
        let ends = Instant::now() + how_long;
        if reply == b"+OK\r\n" {
            Ok(ends)
        } else {
            Err(io::Error::other(format!(
                "CLIENT PAUSE answered {:?}",
                String::from_utf8_lossy(&reply)
            )))
        }
    }

    /// Runs one command (given as its words) on the server with a plain RESP client and
    /// returns the raw reply, for tests that look at what is stored. It goes to the plain
    /// port, or, for a server without one, to the Unix socket of [`url`](Self::url).
    pub fn command(&self, words: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut stream = self.connect_plain(Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut request = format!("*{}\r\n", words.len()).into_bytes();
        for word in words {
            request.extend_from_slice(format!("${}\r\n", word.len()).as_bytes());
            request.extend_from_slice(word);
            request.extend_from_slice(b"\r\n");
        }
        stream.write_all(&request)?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        // Small replies only: read until a complete reply has arrived.
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
            if reply_len(&reply).is_some() {
                break;
            }
        }
        Ok(reply)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    /// A plain connection to the server: its plain TCP port, or its Unix socket.
    fn connect_plain(&self, timeout: Duration) -> io::Result<PlainStream> {
        match &self.listeners {
            Listeners::Plain { .. } | Listeners::PlainAndTls { .. } => Ok(PlainStream::Tcp(
                TcpStream::connect_timeout(&self.addr(), timeout)?,
            )),
            Listeners::TlsOnly { socket, .. } => PlainStream::unix(socket),
        }
    }

    /// Whether the server answers `PING`.
    fn ping(&self) -> bool {
        let Ok(mut stream) = self.connect_plain(Duration::from_millis(200)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// A connection of the `redis` crate's own to this server, for the harness's queries
    /// about topology (replies that [`command`](Self::command) does not parse).
    fn admin(&self) -> io::Result<redis::Connection> {
        let client = redis::Client::open(self.url()).map_err(io::Error::other)?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(io::Error::other)?;
        connection
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(io::Error::other)?;
        Ok(connection)
    }

    fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> io::Result<T> {
        command.query(&mut self.admin()?).map_err(io::Error::other)
    }
}

/// The harness's plain connection to a server.
enum PlainStream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl PlainStream {
    #[cfg(unix)]
    fn unix(socket: &Path) -> io::Result<Self> {
        Ok(PlainStream::Unix(std::os::unix::net::UnixStream::connect(
            socket,
        )?))
    }

    #[cfg(not(unix))]
    fn unix(_socket: &Path) -> io::Result<Self> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            PlainStream::Tcp(stream) => stream.set_read_timeout(timeout),
            #[cfg(unix)]
            PlainStream::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }
}

impl Read for PlainStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            PlainStream::Tcp(stream) => stream.read(buf),
            #[cfg(unix)]
            PlainStream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for PlainStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PlainStream::Tcp(stream) => stream.write(buf),
            #[cfg(unix)]
            PlainStream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            PlainStream::Tcp(stream) => stream.flush(),
            #[cfg(unix)]
            PlainStream::Unix(stream) => stream.flush(),
        }
    }
}

/// What `start` started for `test`; panics when it failed, saying what to install when
/// `binary` is missing.
fn started_for_test<T>(test: &str, binary: &str, started: io::Result<T>) -> T {
    match started {
        Ok(started) => started,
        Err(error) if error.kind() == io::ErrorKind::NotFound => panic!(
            "{test} needs {binary}, which is not installed: install the Debian packages \
             redis-server and redis-tools (`apt-get install redis-server redis-tools`), or run \
             `cargo xtask test`, which installs them; or set {REDIS_SERVER_ENV} and \
             {REDIS_CLI_ENV} to the binaries' paths"
        ),
        Err(error) => panic!("{test}: could not start {binary}: {error}"),
    }
}

/// The length of the complete RESP2 reply at the start of `reply` (a simple string, an
/// integer, an error, a bulk string, or an array of these), or `None` while more is to come.
fn reply_len(reply: &[u8]) -> Option<usize> {
    let line_end = reply.windows(2).position(|w| w == b"\r\n")?;
    let header = line_end + 2;
    // A malformed length ends the reply: `command` returns what came.
    let number = || -> i64 {
        std::str::from_utf8(&reply[1..line_end])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(-1)
    };
    match reply[0] {
        b'$' => match usize::try_from(number()) {
            Ok(len) => {
                let end = header + len + 2;
                (reply.len() >= end).then_some(end)
            }
            Err(_) => Some(header),
        },
        b'*' => {
            let mut end = header;
            for _ in 0..number().max(0) {
                end += reply_len(&reply[end..])?;
            }
            Some(end)
        }
        _ => Some(header),
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if !self.dir().as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port())
            .field("tls_port", &self.listeners.tls().map(|tls| tls.port))
            .field(
                "tls_only",
                &matches!(self.listeners, Listeners::TlsOnly { .. }),
            )
            .field("running", &self.is_running())
            .field("role", &self.role)
            .finish()
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

fn temp_dir() -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tower-bearer-redis-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

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

/// Polls `done` on `subject` until it holds, for at most [`FAILOVER_TIMEOUT`].
fn wait_until<T>(subject: &T, what: &str, done: impl Fn(&T) -> bool) -> io::Result<()> {
    let deadline = Instant::now() + FAILOVER_TIMEOUT;
    while !done(subject) {
        if Instant::now() >= deadline {
            return Err(io::Error::other(format!("timed out waiting until {what}")));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Runs `command` to its end, killing it after `limit`; an error unless it exits with 0.
fn run_bounded(command: &mut Command, limit: Duration) -> io::Result<()> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr);
            }
            return Err(io::Error::other(format!(
                "{command:?} failed ({status}): {stderr}"
            )));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{command:?} did not finish in {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
