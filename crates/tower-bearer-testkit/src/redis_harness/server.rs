//! One node as a test uses it: starting it, plain or with a TLS port beside; its URLs and
//! address; pausing its clients; and the harness's own connections to it, a plain RESP
//! client over TCP or the Unix socket and the `redis` crate's for topology queries.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::process::{started_for_test, Launch, RedisServer};
use super::tls::{Listeners, TlsFiles, Transport};

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
    /// [`RedisCluster::start_tls`](super::RedisCluster::start_tls) or
    /// [`RedisSentinel::start_tls`](super::RedisSentinel::start_tls)) `redis+unix://<path>`, the
    /// Unix socket the harness controls it through.
    pub fn url(&self) -> String {
        match &self.listeners {
            Listeners::Plain { port } | Listeners::PlainAndTls { port, .. } => {
                format!("redis://127.0.0.1:{port}")
            }
            Listeners::TlsOnly { socket, .. } => format!("redis+unix://{}", socket.display()),
        }
    }

    /// The `rediss://` URL of the TLS listener, if the server was started with
    /// [`start_tls`](Self::start_tls) or is a node of
    /// [`RedisCluster::start_tls`](super::RedisCluster::start_tls) or
    /// [`RedisSentinel::start_tls`](super::RedisSentinel::start_tls).
    pub fn tls_url(&self) -> Option<String> {
        self.listeners
            .tls()
            .map(|tls| format!("rediss://127.0.0.1:{}", tls.port))
    }

    /// The loopback address it listens on: the plain port; for a server without one (a
    /// node of [`RedisCluster::start_tls`](super::RedisCluster::start_tls) or
    /// [`RedisSentinel::start_tls`](super::RedisSentinel::start_tls)) the TLS port, which its
    /// cluster and Sentinels name it by.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port()))
    }

    /// The port of [`addr`](Self::addr).
    pub(super) fn port(&self) -> u16 {
        match &self.listeners {
            Listeners::Plain { port } | Listeners::PlainAndTls { port, .. } => *port,
            Listeners::TlsOnly { tls, .. } => tls.port,
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
    pub(super) fn ping(&self) -> bool {
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
    pub(super) fn admin(&self) -> io::Result<redis::Connection> {
        let client = redis::Client::open(self.url()).map_err(io::Error::other)?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(io::Error::other)?;
        connection
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(io::Error::other)?;
        Ok(connection)
    }

    pub(super) fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> io::Result<T> {
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
