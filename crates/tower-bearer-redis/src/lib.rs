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
//! A [`RedisStore`] is cheap to clone (clones share one connection), so one store serves
//! a `StoreSource` per token and a refresh-token grant's `share_through` at once.
//!
//! # What is stored
//!
//! For each [`StoreKey`](tower_bearer::store::StoreKey) (a SHA-256 of the token endpoint,
//! client id, scopes, parameters and DPoP key thumbprint, never the secret), under the key
//! prefix (default `tower-bearer:`):
//!
//! - `{prefix}{<key>}:token`: the access token, its type, scope, the lifetime it had when
//!   written and, for a DPoP-bound token, its key's thumbprint (`jkt`), expiring in Redis
//!   when the token does (`PX`, from the writer's monotonic clock);
//! - `{prefix}{<key>}:lease`: the fetch lease (`SET NX PX`), released by a
//!   compare-and-delete script, so only its holder can release it;
//! - `{prefix}{<key>}:refresh`: the fleet's refresh token, a hash of `gen` (its generation),
//!   `val` (the sealed token) and, while a replica presents it, `presenting` (that
//!   replica's holder id); see [Refresh tokens](#refresh-tokens);
//! - `{prefix}{<key>}:settle`: present (with `PX`) while a settle of the refresh token runs.
//!
//! The braces are literal: `{<key>}` is a Redis Cluster hash tag, so the keys of one token
//! live in one slot (each script touches one slot) and different tokens spread over the
//! cluster. A key prefix with braces of its own would put every token in the prefix's
//! slot; the default has none.
//!
//! No replica trusts another's wall clock. A token read back expires when its Redis key
//! does: its remaining lifetime is the key's `PTTL`, read in one script with the value
//! (never longer than the lifetime the writer recorded). A token without an expiry is kept
//! for the `StoreSource`'s time to live and read back without one.
//!
//! # Encryption
//!
//! Values are sealed with XChaCha20-Poly1305 under a 256-bit key you supply, with a random
//! 24-byte nonce per value. The associated data binds each value to where it lives: its
//! Redis key name, its kind (access or refresh token) and, for a refresh token, its
//! generation, so a value copied to another key, kind or generation does not decrypt.
//! Each value names its key id: rotate by adding the new key as
//! [`encryption_key`](RedisStoreBuilder::encryption_key) and keeping the old one as a
//! [`decryption_key`](RedisStoreBuilder::decryption_key). Storing in clear needs the
//! explicit [`store_in_clear`](RedisStoreBuilder::store_in_clear); a value in clear still
//! names where it belongs, which catches a moved value but not a forged one.
//!
//! Each value also carries a 16-byte commitment to its key (a truncated SHA-256 of a label
//! and the key, which reveals nothing usable about a random key), so a replica tells two
//! kinds of unreadable value apart:
//!
//! - *damaged*: not in this crate's format, truncated, or failing authentication under a
//!   key this replica holds (tampered with, or moved);
//! - *foreign*: sealed with a key id this replica does not hold, with a different key under
//!   an id it does hold, or in the other of clear and encrypted (a replica configured
//!   otherwise wrote it).
//!
//! An unreadable access token of either kind is an
//! [`Unreadable`](tower_bearer::store::StoreErrorKind::Unreadable) error, and the
//! [`StoreSource`](tower_bearer::store::StoreSource) fetches on its own. A refresh token
//! reads as [`RefreshValue::Damaged`](tower_bearer::store::RefreshValue::Damaged) or
//! [`RefreshValue::Foreign`](tower_bearer::store::RefreshValue::Foreign).
//!
//! # Refresh tokens
//!
//! [`RedisStore`] is a [`RefreshTokenStore`](tower_bearer::store::RefreshTokenStore), each
//! operation one Lua script, atomic on every topology:
//!
//! - `refresh_record` reads the hash and whether the settle marker exists, together. A key
//!   that holds something other than a *valid record* (a hash whose `gen` is decimal digits
//!   of a number below 2^53 and that has a `val`) reads as damaged, a bad generation as 0.
//! - `begin_presenting` records a holder's intent only while no settle runs, the record is
//!   valid and of the given generation, and no other holder's intent is recorded.
//! - `end_presenting` clears the intent only for its holder, at its generation.
//! - `store_refresh` writes a fresh record (no intent) if the key holds no valid record, a
//!   record of an older generation, or (with `replacing_damaged`) one still of the named
//!   generation; a newer record is never overwritten. A successful write with `settle`
//!   makes the settle marker's time to live the longer of what it has left and the settle.
//!
//! The scripts cannot decrypt, so they cannot tell a damaged value from a good or a foreign
//! one: only a caller that read the value as damaged names its generation in
//! `replacing_damaged`.
//!
//! # DPoP-bound tokens
//!
//! A stored DPoP-bound token (RFC 9449) names its key's thumbprint, never the key. A
//! replica reads it only with a store key that carries that key
//! ([`StoreKeyBuilder::dpop_key`](tower_bearer::store::StoreKeyBuilder::dpop_key)); a store
//! key without one, or with another, gets a
//! [`Config`](tower_bearer::store::StoreErrorKind::Config) error, not a token it cannot
//! prove. Replicas that share DPoP-bound tokens load the same key.
//!
//! # Connecting
//!
//! `redis://host:port/db` or, for TLS, `rediss://host:port/db`, with `user:password@` in
//! the URL or from [`username`](RedisStoreBuilder::username) and
//! [`password`](RedisStoreBuilder::password). TLS uses rustls and trusts the Mozilla roots
//! compiled in; a Redis with a certificate from your own CA needs
//! [`tls_root_certificate`](RedisStoreBuilder::tls_root_certificate), and one that
//! requires client certificates (`tls-auth-clients yes`) needs
//! [`tls_client_certificate`](RedisStoreBuilder::tls_client_certificate). rustls' crypto
//! provider is the program's process-wide default; when a `rediss://` store is built and the
//! program installed none, [`build`](RedisStoreBuilder::build) installs `ring` as that
//! default (why, and how to choose another, is in its documentation).
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
//! Encryption, leases and the refresh-token scripts work the same on every topology. While a failover is under way, operations fail as they do while a single node
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
