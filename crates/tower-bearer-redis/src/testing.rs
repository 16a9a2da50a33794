//! A private `redis-server` for tests, examples and benches.
//!
//! [`RedisServer::start`] runs the `redis-server` binary on a free `127.0.0.1` port with an
//! empty temporary directory and no persistence, waits until it answers `PING`, and stops it
//! when dropped. It never connects to a Redis it did not start.
//!
//! ```no_run
//! use tower_bearer_redis::testing::RedisServer;
//!
//! // In a test: skips (with a printed reason) when redis-server is not installed, unless
//! // TOWER_BEARER_REQUIRE_REDIS=1 is set.
//! let Some(redis) = RedisServer::start_or_skip("my_test") else { return };
//! println!("{}", redis.url());
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that turns a missing `redis-server` from a skip into a failure.
pub const REQUIRE_REDIS_ENV: &str = "TOWER_BEARER_REQUIRE_REDIS";

/// The environment variable naming the `redis-server` binary (default: `redis-server` on
/// the `PATH`).
pub const REDIS_SERVER_ENV: &str = "TOWER_BEARER_REDIS_SERVER";

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` this process started; stopped when dropped.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
    tls: Option<Tls>,
}

/// The PEM files of a TLS listener, see [`RedisServer::start_tls`].
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
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
        Self::start_with(None)
    }

    /// Starts a server that also listens for TLS on a second free port, with `files`; its
    /// URL is [`tls_url`](Self::tls_url). The plain port stays open for [`command`](Self::command).
    pub fn start_tls(files: TlsFiles) -> io::Result<Self> {
        Self::start_with(Some(files))
    }

    fn start_with(tls: Option<TlsFiles>) -> io::Result<Self> {
        let binary = std::env::var_os(REDIS_SERVER_ENV)
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
        let dir = temp_dir()?;
        let mut last_error = None;
        // Another program may take the free port between our check and the server's bind.
        for _ in 0..3 {
            let port = free_port()?;
            let tls = match &tls {
                Some(files) => Some(Tls {
                    port: free_port()?,
                    files: files.clone(),
                }),
                None => None,
            };
            let mut server = RedisServer {
                binary: binary.clone(),
                port,
                dir: dir.clone(),
                child: None,
                tls,
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

    /// Starts a server, or, when `redis-server` is not installed, prints why `test` is
    /// skipped and returns `None`. With `TOWER_BEARER_REQUIRE_REDIS=1` a missing binary
    /// panics instead, so CI cannot skip silently. Any other failure to start panics.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if std::env::var(REQUIRE_REDIS_ENV).is_ok_and(|v| v == "1") {
                    panic!(
                        "{test}: redis-server is not installed, and {REQUIRE_REDIS_ENV}=1 \
                         requires it; install the redis-server package or set \
                         {REDIS_SERVER_ENV} to its path"
                    );
                }
                // Straight to stderr: the test harness captures print macros.
                let _ = writeln!(
                    io::stderr(),
                    "SKIPPED {test}: redis-server is not installed (install the redis-server \
                     package, or set {REDIS_SERVER_ENV}); set {REQUIRE_REDIS_ENV}=1 to fail \
                     instead"
                );
                None
            }
            Err(error) => panic!("{test}: could not start redis-server: {error}"),
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The `rediss://` URL of the TLS listener, if the server was started with
    /// [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> Option<String> {
        self.tls
            .as_ref()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The loopback address it listens on (the plain port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
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
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if let Some(tls) = &self.tls {
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
            if ping(self.addr()) {
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
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs one command (given as its words) on the server with a plain RESP client and
    /// returns the raw reply, for tests that look at what is stored.
    pub fn command(&self, words: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(2))?;
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
            if reply_complete(&reply) {
                break;
            }
        }
        Ok(reply)
    }

    fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether `reply` holds one complete simple, integer, error or bulk-string reply.
fn reply_complete(reply: &[u8]) -> bool {
    let Some(line_end) = reply.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    if reply[0] != b'$' {
        return true;
    }
    let len: i64 = std::str::from_utf8(&reply[1..line_end])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1);
    len < 0 || reply.len() >= line_end + 2 + len as usize + 2
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
            .field("port", &self.port)
            .field("running", &self.is_running())
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

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}
