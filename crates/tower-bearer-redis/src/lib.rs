//! A shared token store over Redis for [`tower_bearer`]: a fleet of replicas fetches one
//! token per lifetime instead of one per replica, and keeps working when Redis does not.
//!
//! Three lines turn a replica's token cache into a fleet member: build a [`RedisStore`],
//! name the token with a [`StoreKey`](tower_bearer::store::StoreKey), and wrap the source
//! in a [`StoreSource`](tower_bearer::store::StoreSource):
//!
//! ```no_run
//! use tower_bearer::store::StoreSource;
//! use tower_bearer::TokenCache;
//! use tower_bearer_oauth2::{ClientAuth, ClientCredentials, Endpoint, TokenParams};
//! use tower_bearer_redis::RedisStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::builder("https://auth.example.com/oauth2/token").build()?;
//! let client = ClientAuth::secret_basic("billing", std::env::var("CLIENT_SECRET")?)?;
//! let source = ClientCredentials::builder(endpoint, client)
//!     .params(TokenParams::new().scope("invoices:read"))
//!     .build()?;
//! let key: [u8; 32] = [7; 32]; // load from your secret manager; the same on every replica
//!
//! let store = RedisStore::builder("rediss://redis.internal:6380").encryption_key("k1", key).build()?;
//! let token_key = source.store_key(); // token URL, client id, scope: never the secret
//! let cache = TokenCache::new(StoreSource::new(source, store, token_key));
//! # let _ = cache;
//! # Ok(())
//! # }
//! ```
//!
//! # What is stored
//!
//! For each [`StoreKey`](tower_bearer::store::StoreKey) (a SHA-256 of the token endpoint,
//! client id, scopes and parameters, never the secret), under the key prefix (default
//! `tower-bearer:`):
//!
//! - `{prefix}{<key>}:token`: the access token, its type, expiry and scope, expiring in
//!   Redis when the token does (`PX`);
//! - `{prefix}{<key>}:lease`: the fetch lease (`SET NX PX`), released by a
//!   compare-and-delete script, so only its holder can release it;
//! - `{prefix}{<key>}:refresh`: a hash of `gen` and `val`, replaced by a compare-and-set
//!   script on `gen`, so a replica holding an older refresh token never overwrites a newer
//!   one.
//!
//! The braces are literal: `{<key>}` is a Redis Cluster hash tag, so the three keys of one
//! token live in one slot (each script touches one slot) and different tokens spread over
//! the cluster. A key prefix with braces of its own would put every token in the prefix's
//! slot; the default has none.
//!
//! # Encryption
//!
//! Values are sealed with XChaCha20-Poly1305 under a 256-bit key you supply, with a random
//! 24-byte nonce per value and the Redis key name as associated data, so a value moved to
//! another key does not decrypt. Each value names its key id: rotate by adding the new key
//! as [`encryption_key`](RedisStoreBuilder::encryption_key) and keeping the old one as a
//! [`decryption_key`](RedisStoreBuilder::decryption_key). A value that does not decrypt, or
//! is not what this crate writes, is reported as unreadable, and the
//! [`StoreSource`](tower_bearer::store::StoreSource) fetches on its own. Storing in clear
//! needs the explicit [`store_in_clear`](RedisStoreBuilder::store_in_clear).
//!
//! # Connecting
//!
//! `redis://host:port/db` or, for TLS, `rediss://host:port/db`, with `user:password@` in
//! the URL or from [`username`](RedisStoreBuilder::username) and
//! [`password`](RedisStoreBuilder::password). TLS uses rustls and trusts the Mozilla roots
//! compiled in; a Redis with a certificate from your own CA needs
//! [`tls_root_certificate`](RedisStoreBuilder::tls_root_certificate), and one that
//! requires client certificates (`tls-auth-clients yes`) needs
//! [`tls_client_certificate`](RedisStoreBuilder::tls_client_certificate).
//!
//! # When Redis is down
//!
//! Building the store does not connect; the connection is made on first use and remade by
//! itself after Redis comes back. While Redis does not answer, operations fail at once (one
//! attempt per [`reconnect_interval`](RedisStoreBuilder::reconnect_interval)) and the
//! `StoreSource` fetches without it, so no request fails because of Redis.
//!
//! # Cluster and Sentinel
//!
//! A Redis Cluster is reached through the `redis` crate's cluster client: name some of its
//! nodes and the client finds the rest, follows `MOVED` and `ASK` redirections and picks up
//! a promoted replica after a failover.
//!
//! ```no_run
//! use tower_bearer_redis::RedisStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let key = [7; 32];
//! let nodes = ["redis://redis-0.internal:6379", "redis://redis-1.internal:6379"];
//! let store = RedisStore::cluster_builder(nodes).encryption_key("k1", key).build()?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! Behind Sentinel, name the Sentinels and the master's name as they know it. The store
//! asks them for the master on first use and again after the connection fails, so after a
//! failover it writes to the promoted replica. [`username`](RedisStoreBuilder::username)
//! and [`password`](RedisStoreBuilder::password) are the master's; the Sentinels' own
//! credentials, if any, go in their URLs.
//!
//! ```no_run
//! use tower_bearer_redis::RedisStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let key = [7; 32];
//! let sentinels = ["redis://sentinel-0.internal:26379", "redis://sentinel-1.internal:26379"];
//! let store = RedisStore::sentinel_builder(sentinels, "tokens")
//!     .password(std::env::var("REDIS_PASSWORD")?)
//!     .encryption_key("k1", key)
//!     .build()?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! Encryption, leases and the compare-and-set of refresh tokens work the same on every
//! topology. While a failover is under way, operations fail as they do while a single node
//! is down, and each replica fetches on its own until the new master answers. Writes are
//! acknowledged by the master alone (Redis replication is asynchronous), so a token stored
//! just before the master died may be lost with it; the next replica that needs it then
//! fetches a new one.
//!
//! # Testing against a real Redis
//!
//! `tower-bearer-testkit` (feature `redis`) starts private Redis deployments on free
//! loopback ports for your tests: `RedisServer`, `RedisCluster` and `RedisSentinel`.

mod builder;
mod connection;
mod envelope;
mod record;
mod scripts;
mod store;

pub use builder::{BuildError, RedisStoreBuilder, DEFAULT_KEY_PREFIX};
pub use store::RedisStore;
