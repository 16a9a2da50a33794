//! Configuring a [`RedisStore`].

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use redis::cluster::ClusterClientBuilder;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};

use crate::connection::{Client, Connection, ConnectionSettings};
use crate::envelope::{Codec, Key};
use crate::RedisStore;

/// The key prefix used unless [`RedisStoreBuilder::key_prefix`] sets another.
pub const DEFAULT_KEY_PREFIX: &str = "tower-bearer:";

const MAX_KEY_ID_LEN: usize = 64;

/// Configures a [`RedisStore`]; from [`RedisStore::builder`] (one node),
/// [`RedisStore::cluster_builder`] or [`RedisStore::sentinel_builder`]. Every setting applies
/// to each of them.
#[must_use = "a builder does nothing until `build` is called"]
pub struct RedisStoreBuilder {
    topology: Topology,
    username: Option<String>,
    password: Option<SecretString>,
    key_prefix: String,
    encryption_key: Option<(String, [u8; 32])>,
    decryption_keys: Vec<(String, [u8; 32])>,
    store_in_clear: bool,
    settings: ConnectionSettings,
    tls_root: Option<Vec<u8>>,
    tls_client: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
}

/// Where the store's Redis is. URLs are kept as secrets: they may hold passwords.
enum Topology {
    Single(SecretString),
    Cluster(Vec<SecretString>),
    Sentinel {
        sentinels: Vec<SecretString>,
        master_name: String,
    },
}

impl Topology {
    fn name(&self) -> &'static str {
        match self {
            Topology::Single(_) => "single node",
            Topology::Cluster(_) => "cluster",
            Topology::Sentinel { .. } => "sentinel",
        }
    }
}

fn secrets<S: AsRef<str>>(urls: impl IntoIterator<Item = S>) -> Vec<SecretString> {
    urls.into_iter()
        .map(|url| SecretString::from(url.as_ref().to_owned()))
        .collect()
}

impl RedisStoreBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self::with_topology(Topology::Single(SecretString::from(url.to_owned())))
    }

    pub(crate) fn cluster<S: AsRef<str>>(nodes: impl IntoIterator<Item = S>) -> Self {
        Self::with_topology(Topology::Cluster(secrets(nodes)))
    }

    pub(crate) fn sentinel<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: &str,
    ) -> Self {
        Self::with_topology(Topology::Sentinel {
            sentinels: secrets(sentinels),
            master_name: master_name.to_owned(),
        })
    }

    fn with_topology(topology: Topology) -> Self {
        RedisStoreBuilder {
            topology,
            username: None,
            password: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            encryption_key: None,
            decryption_keys: Vec::new(),
            store_in_clear: false,
            settings: ConnectionSettings::default(),
            tls_root: None,
            tls_client: None,
        }
    }

    /// The ACL user name, overriding one in the URL. Behind Sentinel this is the master's;
    /// the Sentinels' own come from their URLs.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password, overriding one in the URL (behind Sentinel: the master's, as for
    /// [`username`](Self::username)). Kept as a secret: never printed.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(SecretString::from(password.into()));
        self
    }

    /// Put before every key name this store uses (default `tower-bearer:`), so several
    /// applications can share one Redis.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Encrypt stored tokens with this 256-bit key (XChaCha20-Poly1305), stored values
    /// naming `key_id` so that the key can be rotated. Every replica needs the same key
    /// under the same id. Key ids are 1 to 64 visible ASCII characters.
    pub fn encryption_key(mut self, key_id: impl Into<String>, key: [u8; 32]) -> Self {
        self.encryption_key = Some((key_id.into(), key));
        self
    }

    /// Also read values encrypted with this older key; call once per old key.
    ///
    /// To rotate: give every replica the new key as `encryption_key` and the old one as a
    /// `decryption_key`; once all run the new setup and the old tokens have expired, drop
    /// the old key.
    pub fn decryption_key(mut self, key_id: impl Into<String>, key: [u8; 32]) -> Self {
        self.decryption_keys.push((key_id.into(), key));
        self
    }

    /// Store tokens in clear, readable by anyone who can read the Redis. The explicit
    /// alternative to [`encryption_key`](Self::encryption_key), for a Redis that nobody
    /// else can read.
    pub fn store_in_clear(mut self) -> Self {
        self.store_in_clear = true;
        self
    }

    /// For `rediss://`: trust only this CA (PEM) for the server's certificate, instead of
    /// the Mozilla roots compiled in; for a Redis with a certificate from a private CA.
    pub fn tls_root_certificate(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(ca_pem.into());
        self
    }

    /// For `rediss://` with mutual TLS (`tls-auth-clients yes`): the client certificate
    /// chain and its private key, both PEM. The key is zeroed when the builder is dropped.
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls_client = Some((cert_pem.into(), Zeroizing::new(key_pem.into())));
        self
    }

    /// The time limit for connecting to Redis (default 400 ms, under the 500 ms that a
    /// [`StoreSource`](tower_bearer::store::StoreSource) allows each operation by default).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connection_timeout = timeout;
        self
    }

    /// The time limit for each answer from Redis (default 400 ms). Past it the store reports
    /// a timeout and fails at once for a [`reconnect_interval`](Self::reconnect_interval).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.settings.response_timeout = timeout;
        self
    }

    /// After Redis failed to answer, calls fail at once for this long (default 1 s) before
    /// the next one tries again: a Redis that is down is not hammered with reconnects.
    pub fn reconnect_interval(mut self, interval: Duration) -> Self {
        self.settings.reconnect_interval = interval;
        self
    }

    /// Checks the settings. Does not connect: a Redis that is down now is not an error
    /// (the store reports it per operation, and the fleet falls back to fetching alone).
    ///
    /// # TLS and rustls' process-wide provider
    ///
    /// For a `rediss://` topology, and only when the program has not installed a rustls
    /// [`CryptoProvider`](rustls::crypto::CryptoProvider) as the process-wide default, this
    /// installs rustls' `ring` provider as that default. The redis crate's TLS takes only the
    /// process-wide provider, and rustls panics on the first connection when it cannot
    /// choose one by itself, which it cannot in a program that links two providers (`ring`
    /// here, aws-lc-rs through another dependency). A program that wants another provider
    /// (aws-lc-rs for post-quantum key exchange, a FIPS build) installs it with
    /// `CryptoProvider::install_default` before building the store; this then changes
    /// nothing. A `redis://` topology never touches the default.
    pub fn build(mut self) -> Result<RedisStore, BuildError> {
        let client = match std::mem::replace(&mut self.topology, Topology::Single(empty())) {
            Topology::Single(url) => self.single_client(&url)?,
            Topology::Cluster(nodes) => self.cluster_client(&nodes)?,
            Topology::Sentinel {
                sentinels,
                master_name,
            } => self.sentinel_client(&sentinels, &master_name)?,
        };
        let codec = self.codec()?;
        Ok(RedisStore::new(
            Connection::new(client, self.settings.clone()),
            std::mem::take(&mut self.key_prefix),
            codec,
        ))
    }

    fn single_client(&mut self, url: &SecretString) -> Result<Client, BuildError> {
        let info = self.node_info(url)?;
        let client = match self.certificates(is_tls(&info))? {
            None => redis::Client::open(info).map_err(|_| BuildError::InvalidUrl)?,
            Some(certificates) => redis::Client::build_with_tls(info, certificates)
                .map_err(|_| BuildError::InvalidTlsCertificate)?,
        };
        Ok(Client::Single(client))
    }

    fn cluster_client(&mut self, nodes: &[SecretString]) -> Result<Client, BuildError> {
        let infos = nodes
            .iter()
            .map(|url| self.node_info(url))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = infos.first() else {
            return Err(BuildError::NoNodes);
        };
        let certificates = self.certificates(is_tls(first))?;
        let custom_tls = certificates.is_some();
        let mut builder = ClusterClientBuilder::new(infos)
            .connection_timeout(self.settings.connection_timeout)
            .response_timeout(self.settings.response_timeout);
        if let Some(certificates) = certificates {
            builder = builder.certs(certificates);
        }
        match builder.build() {
            Ok(client) => Ok(Client::Cluster(client)),
            Err(_) if custom_tls => Err(BuildError::InvalidTlsCertificate),
            Err(_) => Err(BuildError::InvalidUrl),
        }
    }

    fn sentinel_client(
        &mut self,
        sentinels: &[SecretString],
        master_name: &str,
    ) -> Result<Client, BuildError> {
        // The Sentinels' own credentials come from their URLs; `username` and `password`
        // are the master's.
        let infos = sentinels
            .iter()
            .map(parse_url)
            .collect::<Result<Vec<_>, _>>()?;
        let Some(first) = infos.first() else {
            return Err(BuildError::NoNodes);
        };
        let tls = is_tls(first);
        let sentinel_settings = first.redis_settings().clone();
        let certificates = self.certificates(tls)?;
        let addrs = infos.iter().map(|info| info.addr().clone());
        let mut builder =
            SentinelClientBuilder::new(addrs, master_name, SentinelServerType::Master)
                .map_err(|_| BuildError::InvalidUrl)?;
        if let Some(username) = sentinel_settings.username() {
            builder = builder.set_client_to_sentinel_username(username);
        }
        if let Some(password) = sentinel_settings.password() {
            builder = builder.set_client_to_sentinel_password(password);
        }
        if let Some(username) = &self.username {
            builder = builder.set_client_to_redis_username(username);
        }
        if let Some(password) = &self.password {
            builder = builder.set_client_to_redis_password(password.expose_secret());
        }
        if tls {
            builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        }
        let custom_tls = certificates.is_some();
        if let Some(certificates) = certificates {
            builder = builder
                .set_client_to_sentinel_certificates(certificates.clone())
                .set_client_to_redis_certificates(certificates);
        }
        match builder.build() {
            Ok(client) => Ok(Client::Sentinel(tokio::sync::Mutex::new(client))),
            Err(_) if custom_tls => Err(BuildError::InvalidTlsCertificate),
            Err(_) => Err(BuildError::InvalidUrl),
        }
    }

    /// A node's address and credentials: the URL's, with `username` and `password` over them.
    fn node_info(&self, url: &SecretString) -> Result<redis::ConnectionInfo, BuildError> {
        let info = parse_url(url)?;
        let mut redis_settings = info.redis_settings().clone();
        if let Some(username) = &self.username {
            redis_settings = redis_settings.set_username(username);
        }
        if let Some(password) = &self.password {
            redis_settings = redis_settings.set_password(password.expose_secret());
        }
        Ok(info.set_redis_settings(redis_settings))
    }

    /// The TLS certificates given, for a topology whose URLs are `rediss://` when `tls`.
    fn certificates(&mut self, tls: bool) -> Result<Option<redis::TlsCertificates>, BuildError> {
        if tls {
            // rediss:// uses rustls' process-wide provider: `ring`, unless the program chose
            // one (see `build`). An error here means it did, which is what the program wants.
            if rustls::crypto::CryptoProvider::get_default().is_none() {
                let _ = ring_provider().install_default();
            }
        }
        if self.tls_root.is_none() && self.tls_client.is_none() {
            return Ok(None);
        }
        if !tls {
            return Err(BuildError::TlsSettingsWithoutRediss);
        }
        Ok(Some(redis::TlsCertificates {
            client_tls: self
                .tls_client
                .take()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert,
                    client_key: key.to_vec(),
                }),
            root_cert: self.tls_root.take(),
        }))
    }

    fn codec(&mut self) -> Result<Codec, BuildError> {
        match (self.encryption_key.take(), self.store_in_clear) {
            (Some(_), true) => Err(BuildError::BothEncryptionAndClear),
            (None, false) => Err(BuildError::NoEncryptionChoice),
            (None, true) if !self.decryption_keys.is_empty() => {
                Err(BuildError::DecryptionKeyWithoutEncryption)
            }
            (None, true) => Ok(Codec::Clear),
            (Some((id, key)), false) => {
                let mut ids = vec![id.as_str()];
                for (old_id, _) in &self.decryption_keys {
                    if ids.contains(&old_id.as_str()) {
                        return Err(BuildError::DuplicateKeyId(old_id.clone()));
                    }
                    ids.push(old_id);
                }
                for id in ids {
                    check_key_id(id)?;
                }
                Ok(Codec::Encrypted {
                    current: Key::new(id, key),
                    older: std::mem::take(&mut self.decryption_keys)
                        .into_iter()
                        .map(|(id, key)| Key::new(id, key))
                        .collect(),
                })
            }
        }
    }
}

fn parse_url(url: &SecretString) -> Result<redis::ConnectionInfo, BuildError> {
    url.expose_secret()
        .into_connection_info()
        .map_err(|_| BuildError::InvalidUrl)
}

fn is_tls(info: &redis::ConnectionInfo) -> bool {
    matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
}

fn empty() -> SecretString {
    SecretString::from(String::new())
}

fn check_key_id(id: &str) -> Result<(), BuildError> {
    let valid =
        !id.is_empty() && id.len() <= MAX_KEY_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(BuildError::InvalidKeyId(id.to_owned()))
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RedisStoreBuilder");
        debug.field("topology", &self.topology.name());
        if let Topology::Sentinel { master_name, .. } = &self.topology {
            debug.field("master_name", master_name);
        }
        debug
            .field("urls", &"[redacted]")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("key_prefix", &self.key_prefix)
            .field(
                "encryption_key_id",
                &self.encryption_key.as_ref().map(|(id, _)| id),
            )
            .field(
                "decryption_key_ids",
                &self
                    .decryption_keys
                    .iter()
                    .map(|(id, _)| id)
                    .collect::<Vec<_>>(),
            )
            .field("store_in_clear", &self.store_in_clear)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Drop for RedisStoreBuilder {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some((_, key)) = &mut self.encryption_key {
            key.zeroize();
        }
        for (_, key) in &mut self.decryption_keys {
            key.zeroize();
        }
    }
}

/// Why [`RedisStoreBuilder::build`] refused the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// Neither an encryption key nor `store_in_clear` was given.
    NoEncryptionChoice,
    /// Both an encryption key and `store_in_clear` were given.
    BothEncryptionAndClear,
    /// A decryption key was given without an encryption key.
    DecryptionKeyWithoutEncryption,
    /// A key id is empty, too long or has characters other than visible ASCII.
    InvalidKeyId(String),
    /// Two keys have the same id.
    DuplicateKeyId(String),
    /// The URL is not a Redis URL.
    InvalidUrl,
    /// A cluster or Sentinel builder was given no node URLs.
    NoNodes,
    /// A TLS root or client certificate was given for a `redis://` URL.
    TlsSettingsWithoutRediss,
    /// A TLS root or client certificate (or key) is not valid PEM.
    InvalidTlsCertificate,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoEncryptionChoice => f.write_str(
                "choose how tokens are stored in Redis: call `encryption_key(key_id, key)` with \
                 a 32-byte key shared by all replicas (recommended), or `store_in_clear()` if \
                 nobody else can read this Redis",
            ),
            BuildError::BothEncryptionAndClear => f.write_str(
                "`encryption_key` and `store_in_clear` were both called; keep one of them",
            ),
            BuildError::DecryptionKeyWithoutEncryption => f.write_str(
                "`decryption_key` was given but no `encryption_key`; set the current key with \
                 `encryption_key` and keep older ones as `decryption_key`",
            ),
            BuildError::InvalidKeyId(id) => write!(
                f,
                "key id {id:?} is not valid: use 1 to {MAX_KEY_ID_LEN} visible ASCII characters"
            ),
            BuildError::DuplicateKeyId(id) => write!(
                f,
                "key id {id:?} is used for two keys; give each key its own id"
            ),
            BuildError::InvalidUrl => f.write_str(
                "the Redis URL is not valid; expected redis://[user[:password]@]host[:port][/db] \
                 or rediss://... for TLS",
            ),
            BuildError::NoNodes => f.write_str(
                "no Redis node URLs were given; name at least one cluster node or Sentinel",
            ),
            BuildError::TlsSettingsWithoutRediss => f.write_str(
                "a TLS certificate was given but the URL is redis://; use rediss:// to connect \
                 with TLS",
            ),
            BuildError::InvalidTlsCertificate => f.write_str(
                "the TLS root or client certificate, or the client key, could not be read; \
                 pass PEM-encoded certificates and a PEM private key",
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// rustls' `ring` provider. rustls 0.23.48 deprecated the function for want of post-quantum
/// key exchange, which only its aws-lc-rs provider has, and names no replacement built on
/// `ring`; a program that wants it installs aws-lc-rs before building the store.
#[allow(deprecated)]
fn ring_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}
