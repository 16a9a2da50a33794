//! [`RedisStore`]: the [`TokenStore`] methods as Redis commands.

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{
    RefreshRecord, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreError,
    StoreFuture, StoreKey, TokenStore,
};
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

/// Reads the refresh-token record: `{kind}` for anything but a hash, else `{kind, gen, val,
/// presenting, settling}` (missing fields as empty strings, settling `1` or `0`).
static READ_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local kind = redis.call('TYPE', KEYS[1]).ok
          local settling = tostring(redis.call('EXISTS', KEYS[2]))
          if kind ~= 'hash' then
            return {kind, settling}
          end
          return {kind, settling, redis.call('HGET', KEYS[1], 'gen') or '',
                  redis.call('HGET', KEYS[1], 'val') or '',
                  redis.call('HGET', KEYS[1], 'presenting') or ''}",
    )
});

/// Records `ARGV[2]` as presenting generation `ARGV[1]`: only at that generation, with no
/// other holder recorded, and no settle running.
static BEGIN_PRESENTING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
          if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
          if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
          local holder = redis.call('HGET', KEYS[1], 'presenting')
          if holder and holder ~= ARGV[2] then return 0 end
          redis.call('HSET', KEYS[1], 'presenting', ARGV[2])
          return 1",
    )
});

/// Clears `ARGV[2]`'s intent on generation `ARGV[1]`.
static END_PRESENTING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
          if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return 0 end
          if redis.call('HGET', KEYS[1], 'presenting') ~= ARGV[2] then return 0 end
          redis.call('HDEL', KEYS[1], 'presenting')
          return 1",
    )
});

/// Stores `ARGV[2]` as generation `ARGV[1]` (no intent) if the key holds nothing, something
/// that is not a valid record, an older generation, or (with `ARGV[3]` not empty) the record
/// of generation `ARGV[3]`. On a write with `ARGV[4]` > 0, the settle key lasts at least
/// `ARGV[4]` ms.
static STORE_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local writable = true
          if redis.call('TYPE', KEYS[1]).ok == 'hash' then
            local current = tonumber(redis.call('HGET', KEYS[1], 'gen') or '')
            local value = redis.call('HGET', KEYS[1], 'val')
            if current and value and current == math.floor(current)
                and current >= 0 and current < 9007199254740992
                and current >= tonumber(ARGV[1])
                and not (ARGV[3] ~= '' and current == tonumber(ARGV[3])) then
              writable = false
            end
          elseif redis.call('EXISTS', KEYS[1]) == 0 then
            writable = true
          end
          if not writable then return 0 end
          redis.call('DEL', KEYS[1])
          redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'val', ARGV[2])
          local settle = tonumber(ARGV[4])
          if settle > 0 and redis.call('PTTL', KEYS[2]) < settle then
            redis.call('SET', KEYS[2], '1', 'PX', settle)
          end
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

    /// The Redis key whose presence means the fleet is settling after a data loss, in the
    /// same slot as its token.
    pub fn settle_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "settle")
    }

    fn key_name(&self, key: &StoreKey, what: &str) -> String {
        format!("{}{{{key}}}:{what}", self.prefix)
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Token>, StoreError> {
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

    async fn put(&self, key: &StoreKey, token: &Token, ttl: Duration) -> Result<(), StoreError> {
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
    ) -> Result<bool, StoreError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = TRY_LEASE.key(self.lease_key(key));
        invocation.arg(holder).arg(millis);
        let taken: i64 = self
            .connection
            .invoke("taking the fetch lease", &invocation)
            .await?;
        Ok(taken == 1)
    }

    async fn release(&self, key: &StoreKey, holder: &str) -> Result<(), StoreError> {
        let mut invocation = RELEASE.key(self.lease_key(key));
        invocation.arg(holder);
        self.connection
            .invoke::<i64>("releasing the fetch lease", &invocation)
            .await
            .map(drop)
    }

    async fn refresh_record(&self, key: &StoreKey) -> Result<RefreshState, StoreError> {
        let name = self.refresh_key(key);
        let mut invocation = READ_REFRESH.key(&name);
        invocation.key(self.settle_key(key));
        let reply: Vec<Vec<u8>> = self
            .connection
            .invoke("reading the refresh token", &invocation)
            .await?;
        let settling = reply.get(1).is_some_and(|flag| flag == b"1");
        let record = match reply.as_slice() {
            [kind, _] if kind == b"none" => None,
            [_, _] => Some(damaged(
                0,
                "the refresh-token key holds something else than a hash",
            )),
            [_, _, generation, value, presenting] => {
                let parsed = std::str::from_utf8(generation)
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
                    .filter(|generation| *generation < 1 << 53);
                match parsed {
                    None => Some(damaged(
                        0,
                        "the refresh token's generation is not a whole number",
                    )),
                    Some(generation) => Some(RefreshRecord {
                        generation,
                        value: self.open_refresh(&name, generation, value),
                        presenting: (!presenting.is_empty())
                            .then(|| String::from_utf8_lossy(presenting).into_owned()),
                    }),
                }
            }
            _ => Some(damaged(
                0,
                "the refresh-token record has an unexpected shape",
            )),
        };
        Ok(RefreshState { record, settling })
    }

    /// The sealed refresh token `value` of `generation`, as this store can read it.
    fn open_refresh(&self, name: &str, generation: u64, value: &[u8]) -> RefreshValue {
        let opened = self
            .codec
            .open(&refresh_aad(name, generation), value)
            .and_then(|plaintext| {
                std::str::from_utf8(&plaintext)
                    .map(|text| SecretString::from(text.to_owned()))
                    .map_err(|_| unreadable("the stored refresh token is not UTF-8"))
            });
        match opened {
            Ok(token) => RefreshValue::Readable(token),
            Err(error) if crate::envelope::is_foreign(&self.codec, value) => {
                RefreshValue::Foreign(error)
            }
            Err(error) => RefreshValue::Damaged(error),
        }
    }

    async fn begin_presenting(
        &self,
        key: &StoreKey,
        generation: u64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let mut invocation = BEGIN_PRESENTING.key(self.refresh_key(key));
        invocation
            .key(self.settle_key(key))
            .arg(generation)
            .arg(holder);
        let begun: i64 = self
            .connection
            .invoke("recording the intent to present", &invocation)
            .await?;
        Ok(begun == 1)
    }

    async fn end_presenting(
        &self,
        key: &StoreKey,
        generation: u64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let mut invocation = END_PRESENTING.key(self.refresh_key(key));
        invocation.arg(generation).arg(holder);
        let ended: i64 = self
            .connection
            .invoke("clearing the intent to present", &invocation)
            .await?;
        Ok(ended == 1)
    }

    async fn store_refresh(
        &self,
        key: &StoreKey,
        write: RefreshWrite<'_>,
    ) -> Result<bool, StoreError> {
        let name = self.refresh_key(key);
        let value = self.codec.seal(
            &refresh_aad(&name, write.generation),
            write.refresh_token.expose_secret().as_bytes(),
        )?;
        let settle_ms = write.settle.map_or(0, |settle| {
            u64::try_from(settle.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let mut invocation = STORE_REFRESH.key(&name);
        invocation
            .key(self.settle_key(key))
            .arg(write.generation)
            .arg(value)
            .arg(
                write
                    .replacing_damaged
                    .map(|g| g.to_string())
                    .unwrap_or_default(),
            )
            .arg(settle_ms);
        let written: i64 = self
            .connection
            .invoke("storing the refresh token", &invocation)
            .await?;
        Ok(written == 1)
    }
}

/// The associated data a refresh token of `generation` is sealed with: the Redis key name,
/// the record's kind and its generation, so a value moved to another key, kind or
/// generation does not open.
fn refresh_aad(name: &str, generation: u64) -> String {
    format!("{name}\0refresh\0{generation}")
}

fn damaged(generation: u64, message: &str) -> RefreshRecord {
    RefreshRecord {
        generation,
        value: RefreshValue::Damaged(unreadable(message)),
        presenting: None,
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
    fn refresh_record<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, RefreshState> {
        Box::pin(self.refresh_record(key))
    }

    fn begin_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.begin_presenting(key, generation, holder))
    }

    fn end_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.end_presenting(key, generation, holder))
    }

    fn store_refresh<'a>(
        &'a self,
        key: &'a StoreKey,
        write: RefreshWrite<'a>,
    ) -> StoreFuture<'a, bool> {
        Box::pin(self.store_refresh(key, write))
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
