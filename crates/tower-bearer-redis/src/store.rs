//! [`RedisStore`]: the [`TokenStore`] methods as Redis commands.

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{RefreshTokenStore, StoreFuture, StoreKey, StoredRefresh, TokenStore};
use tower_bearer::Token;

use crate::builder::RedisStoreBuilder;
use crate::connection::Connection;
use crate::envelope::{unreadable, Codec};
use crate::record;

/// Deletes the lease only if `holder` still holds it.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
          end
          return 0",
    )
});

/// Replaces the refresh token only if the stored generation is the expected one.
static REPLACE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local current = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
          if current ~= tonumber(ARGV[1]) then
            return 0
          end
          redis.call('HSET', KEYS[1], 'gen', current + 1, 'val', ARGV[2])
          return 1",
    )
});

/// Takes the lease if nobody holds it. A lease key without an expiry (not written by us:
/// ours always have one) gets one, so it blocks the fleet for one lease time at most.
static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
            return 1
          end
          if redis.call('PTTL', KEYS[1]) == -1 then
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
          end
          return 0",
    )
});

/// Reads the refresh-token hash, saying what type the key holds so that a foreign value is
/// reported as unreadable rather than refused.
static READ_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local kind = redis.call('TYPE', KEYS[1]).ok
          if kind ~= 'hash' then
            return {kind}
          end
          return {kind, redis.call('HGET', KEYS[1], 'gen') or '', redis.call('HGET', KEYS[1], 'val') or ''}",
    )
});

/// Stores the refresh token as generation ARGV[1] unless the key holds a readable one of
/// that generation or newer. A generation counts as readable when it is a whole number
/// below 2^53 (exact in Lua's doubles); anything else, or a key of another type, is replaced.
static PUT_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('TYPE', KEYS[1]).ok == 'hash' then
            local current = tonumber(redis.call('HGET', KEYS[1], 'gen') or '')
            local value = redis.call('HGET', KEYS[1], 'val')
            if current and value and current == math.floor(current)
                and current < 9007199254740992 and current >= tonumber(ARGV[1]) then
              return 0
            end
          end
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'val', ARGV[2])
          return 1",
    )
});

/// A [`TokenStore`] in Redis, shared by every replica that connects to it.
///
/// Built with [`RedisStore::builder`]; cheap to share (`Arc` it, or hand it to one
/// [`StoreSource`](tower_bearer::store::StoreSource) per token). See the
/// [crate docs](crate) for the key layout and the encryption.
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    codec: Codec,
}

impl RedisStore {
    /// Starts configuring a store for the Redis at `url`: `redis://[user[:password]@]host[:port][/db]`,
    /// or `rediss://...` for TLS.
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder::new(url)
    }

    /// Starts configuring a store for the Redis Cluster that `nodes` belong to: one or more
    /// node URLs (any nodes: the rest of the cluster is discovered from them), all
    /// `redis://` or all `rediss://`. See the [crate docs](crate#cluster-and-sentinel).
    pub fn cluster_builder<S: AsRef<str>>(nodes: impl IntoIterator<Item = S>) -> RedisStoreBuilder {
        RedisStoreBuilder::cluster(nodes)
    }

    /// Starts configuring a store for the master that the Sentinels at `sentinels` (their
    /// URLs) know as `master_name`; with `rediss://` Sentinel URLs the master is reached
    /// over TLS too. See the [crate docs](crate#cluster-and-sentinel).
    pub fn sentinel_builder<S: AsRef<str>>(
        sentinels: impl IntoIterator<Item = S>,
        master_name: &str,
    ) -> RedisStoreBuilder {
        RedisStoreBuilder::sentinel(sentinels, master_name)
    }

    pub(crate) fn new(connection: Connection, prefix: String, codec: Codec) -> Self {
        RedisStore {
            connection,
            prefix,
            codec,
        }
    }

    /// The Redis key holding the access token for `key`: `{prefix}{<key>}:token`, in the
    /// cluster slot of `key` (the `{...}` is its hash tag).
    pub fn token_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "token")
    }

    /// The Redis key holding the fetch lease for `key`, in the same slot as its token.
    pub fn lease_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "lease")
    }

    /// The Redis key holding the refresh token hash (`gen`, `val`) for `key`, in the same
    /// slot as its token.
    pub fn refresh_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "refresh")
    }

    fn key_name(&self, key: &StoreKey, what: &str) -> String {
        format!("{}{{{key}}}:{what}", self.prefix)
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Token>, tower_bearer::store::StoreError> {
        let name = self.token_key(key);
        let value: Option<Vec<u8>> = self
            .connection
            .query("reading the token", redis::cmd("GET").arg(&name))
            .await?;
        match value {
            None => Ok(None),
            Some(value) => record::decode(&self.codec.open(&name, &value)?),
        }
    }

    async fn put(
        &self,
        key: &StoreKey,
        token: &Token,
        ttl: Duration,
    ) -> Result<(), tower_bearer::store::StoreError> {
        let lifetime = match token.expires_at_system() {
            Some(at) => at.duration_since(SystemTime::now()).unwrap_or_default(),
            None => ttl,
        };
        let millis = u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX);
        if millis == 0 {
            // Expired already: nothing worth sharing.
            return Ok(());
        }
        let name = self.token_key(key);
        let value = self.codec.seal(&name, &record::encode(token))?;
        self.connection
            .query::<()>(
                "storing the token",
                redis::cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(millis),
            )
            .await
    }

    async fn try_lease(
        &self,
        key: &StoreKey,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, tower_bearer::store::StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = TRY_LEASE.key(self.lease_key(key));
        invocation.arg(holder).arg(millis);
        let taken: i64 = self
            .connection
            .invoke("taking the fetch lease", &invocation)
            .await?;
        Ok(taken == 1)
    }

    async fn release(
        &self,
        key: &StoreKey,
        holder: &str,
    ) -> Result<(), tower_bearer::store::StoreError> {
        let mut invocation = RELEASE.key(self.lease_key(key));
        invocation.arg(holder);
        self.connection
            .invoke::<i64>("releasing the fetch lease", &invocation)
            .await
            .map(drop)
    }

    async fn refresh_token(
        &self,
        key: &StoreKey,
    ) -> Result<Option<StoredRefresh>, tower_bearer::store::StoreError> {
        let name = self.refresh_key(key);
        let invocation = READ_REFRESH.key(&name);
        let reply: Vec<Vec<u8>> = self
            .connection
            .invoke("reading the refresh token", &invocation)
            .await?;
        let (kind, generation, value) = match reply.as_slice() {
            [kind] if kind == b"none" => return Ok(None),
            [kind, generation, value] => (kind, generation, value),
            _ => {
                return Err(unreadable(
                    "the refresh-token key holds something else than a hash",
                ))
            }
        };
        debug_assert_eq!(kind, b"hash");
        if generation.is_empty() && value.is_empty() {
            return Ok(None);
        }
        let generation = std::str::from_utf8(generation)
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
            .filter(|generation| (1..1 << 53).contains(generation))
            .ok_or_else(|| {
                unreadable("the refresh token's generation is not a positive integer")
            })?;
        let plaintext = self.codec.open(&name, value)?;
        let text = std::str::from_utf8(&plaintext)
            .map_err(|_| unreadable("the stored refresh token is not UTF-8"))?;
        Ok(Some(StoredRefresh {
            refresh_token: SecretString::from(text.to_owned()),
            generation,
        }))
    }

    /// Stores `refresh_token` for `key` as generation `generation` unless a readable one of
    /// that generation or newer is stored.
    async fn put_refresh_token(
        &self,
        key: &StoreKey,
        generation: u64,
        refresh_token: &SecretString,
    ) -> Result<bool, tower_bearer::store::StoreError> {
        let what = "storing the refresh token";
        self.write_refresh(&PUT_REFRESH, what, key, generation, refresh_token)
            .await
    }

    async fn replace_refresh_token(
        &self,
        key: &StoreKey,
        expected: u64,
        refresh_token: &SecretString,
    ) -> Result<bool, tower_bearer::store::StoreError> {
        let what = "replacing the refresh token";
        self.write_refresh(&REPLACE_REFRESH, what, key, expected, refresh_token)
            .await
    }

    /// Runs one of the refresh-token scripts: `KEYS[1]` the hash, `ARGV[1]` a generation,
    /// `ARGV[2]` the sealed refresh token; `true` if it wrote.
    async fn write_refresh(
        &self,
        script: &Script,
        what: &str,
        key: &StoreKey,
        generation: u64,
        refresh_token: &SecretString,
    ) -> Result<bool, tower_bearer::store::StoreError> {
        let name = self.refresh_key(key);
        let value = self
            .codec
            .seal(&name, refresh_token.expose_secret().as_bytes())?;
        let mut invocation = script.key(&name);
        invocation.arg(generation).arg(value);
        let written: i64 = self.connection.invoke(what, &invocation).await?;
        Ok(written == 1)
    }
}

impl TokenStore for RedisStore {
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        Box::pin(self.get(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a StoreKey,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(self.put(key, token, ttl))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.try_lease(key, holder, ttl))
    }

    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(self.release(key, holder))
    }
}

impl RefreshTokenStore for RedisStore {
    fn refresh_token<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefresh>> {
        Box::pin(self.refresh_token(key))
    }

    fn replace_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.replace_refresh_token(key, expected, refresh_token))
    }

    fn put_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.put_refresh_token(key, generation, refresh_token))
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("key_prefix", &self.prefix)
            .field("values", &self.codec)
            .finish_non_exhaustive()
    }
}
