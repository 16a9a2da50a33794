//! What a server speaks on TCP: plain, TLS beside plain, or TLS only; the ports it listens
//! on, and the certificate files ([`TlsFiles`]) its TLS listener is given.

use std::path::PathBuf;

/// What a server speaks on TCP, before its ports are chosen.
#[derive(Clone, Debug)]
pub(super) enum Transport {
    Plain,
    PlainAndTls(TlsFiles),
    TlsOnly(TlsFiles),
}

/// The ports a server listens on.
#[derive(Clone, Debug)]
pub(super) enum Listeners {
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
    pub(super) fn tls(&self) -> Option<&Tls> {
        match self {
            Listeners::Plain { .. } => None,
            Listeners::PlainAndTls { tls, .. } | Listeners::TlsOnly { tls, .. } => Some(tls),
        }
    }
}

/// The PEM files of a TLS listener, see [`RedisServer::start_tls`](super::RedisServer::start_tls),
/// [`RedisCluster::start_tls`](super::RedisCluster::start_tls) and
/// [`RedisSentinel::start_tls`](super::RedisSentinel::start_tls).
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
pub(super) struct Tls {
    pub(super) port: u16,
    pub(super) files: TlsFiles,
}
