//! A `redis-server` process: where the binary is, its command line for each role and
//! transport, waiting until it answers, stopping and starting it again, and the temporary
//! directory and free ports it runs with; with the bounded waits the deployments share.

use std::fmt;
use std::io::{self, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::tls::{Listeners, Tls, TlsFiles, Transport};

/// The environment variable naming the `redis-server` binary (default: `redis-server` on
/// the `PATH`).
pub const REDIS_SERVER_ENV: &str = "TOWER_BEARER_REDIS_SERVER";

/// The environment variable naming the `redis-cli` binary (default: `redis-cli` on the
/// `PATH`), which [`RedisCluster`](super::RedisCluster) uses to create the cluster.
pub const REDIS_CLI_ENV: &str = "TOWER_BEARER_REDIS_CLI";

pub(super) const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failover may take before the harness gives up: a hang guard, not a target.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// A cluster node that does not answer for this long is failed, and its replica promoted.
const CLUSTER_NODE_TIMEOUT_MS: u64 = 1000;

/// A `redis-server` this process started; stopped when dropped.
pub struct RedisServer {
    binary: PathBuf,
    pub(super) listeners: Listeners,
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
pub(super) enum Launch {
    Plain,
    ClusterNode,
    Replica { master_port: u16 },
    Sentinel { config: String },
}

impl RedisServer {
    pub(super) fn start_with(transport: Transport, launch: Launch) -> io::Result<Self> {
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

    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// What `start` started for `test`; panics when it failed, saying what to install when
/// `binary` is missing.
pub(super) fn started_for_test<T>(test: &str, binary: &str, started: io::Result<T>) -> T {
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

/// Polls `done` on `subject` until it holds, for at most [`FAILOVER_TIMEOUT`].
pub(super) fn wait_until<T>(subject: &T, what: &str, done: impl Fn(&T) -> bool) -> io::Result<()> {
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
pub(super) fn run_bounded(command: &mut Command, limit: Duration) -> io::Result<()> {
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
