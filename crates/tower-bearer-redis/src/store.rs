//! [`RedisStore`]: the [`TokenStore`] and [`RefreshTokenStore`] methods as Redis commands.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::Value;
use secrecy::{ExposeSecret, SecretString};
use tower_bearer::store::{
    RefreshRecord, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreError,
    StoreErrorKind, StoreFuture, StoreKey, TokenStore,
};
use tower_bearer::Token;

use crate::builder::RedisStoreBuilder;
use crate::connection::Connection;
use crate::envelope::{unreadable, Codec, Context, Kind, Unopened};
use crate::record;
use crate::scripts::{
    BEGIN_PRESENTING, END_PRESENTING, READ_REFRESH, READ_TOKEN, RELEASE, STORE_REFRESH, TRY_LEASE,
};

/// Generations at or above this are not exact in Lua's numbers; no record holds one.
const GENERATION_LIMIT: u64 = 1 << 53;

/// A [`TokenStore`] and [`RefreshTokenStore`] in Redis, shared by every replica that
/// connects to it.
///
/// Built with [`RedisStore::builder`]. Cheap to clone: clones share one connection and one
/// configuration, so one store can serve a
/// [`StoreSource`](tower_bearer::store::StoreSource) per token and a refresh-token grant's
/// `share_through` at once. See the [crate docs](crate) for the key layout, the encryption
/// and the refresh-token record.
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
}

struct Shared {
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
            shared: Arc::new(Shared {
                connection,
                prefix,
                codec,
            }),
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

    /// The Redis key holding the refresh-token record for `key` (a hash of `gen`, `val` and,
    /// while a replica presents it, `presenting`), in the same slot as its token.
    pub fn refresh_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "refresh")
    }

    /// The Redis key that marks a running settle of the refresh token for `key` (see
    /// [`RefreshState::settling`]), expiring when the settle ends; in the same slot as its
    /// token.
    pub fn settle_key(&self, key: &StoreKey) -> String {
        self.key_name(key, "settle")
    }

    fn key_name(&self, key: &StoreKey, what: &str) -> String {
        format!("{}{{{key}}}:{what}", self.shared.prefix)
    }

    fn connection(&self) -> &Connection {
        &self.shared.connection
    }

    fn codec(&self) -> &Codec {
        &self.shared.codec
    }

    async fn get(&self, key: &StoreKey) -> Result<Option<Token>, StoreError> {
        let name = self.token_key(key);
        // Redis counts the time to live from when it ran the read, after this instant.
        let asked = tokio::time::Instant::now();
        let reply: Vec<Value> = self
            .connection()
            .invoke("reading the token", &READ_TOKEN.key(&name))
            .await?;
        let (value, time_to_live) = match reply.as_slice() {
            [kind] if text(kind) == Some("none") => return Ok(None),
            [_, Value::BulkString(value), Value::Int(pttl)] => (value, *pttl),
            [kind, ..] => {
                return Err(unreadable(format!(
                    "the token key holds a {}, not a string",
                    text(kind).unwrap_or("value of unknown type")
                )))
            }
            [] => return Err(unreadable("Redis answered the token read with nothing")),
        };
        // -1: the key has no expiry. (-2, no key, cannot be: the value was read with it.)
        // Redis counts whole milliseconds: one less is never later than Redis drops the key.
        let time_to_live = u64::try_from(time_to_live)
            .ok()
            .map(|millis| Duration::from_millis(millis.saturating_sub(1)));
        let context = Context {
            key_name: &name,
            kind: Kind::Token,
        };
        let plaintext = self
            .codec()
            .open(&context, value)
            .map_err(Unopened::into_error)?;
        // Counted from `asked`: the reply's way back (and a stalled task) does not lengthen
        // the token's life past the key's. The 1 ms above covers what is left of building it.
        let time_to_live = time_to_live.map(|ttl| ttl.saturating_sub(asked.elapsed()));
        record::decode(&plaintext, time_to_live, key.dpop_key())
    }

    async fn put(&self, key: &StoreKey, token: &Token, ttl: Duration) -> Result<(), StoreError> {
        // From the monotonic clock: the key's time to live is what every reader trusts.
        let lifetime = token
            .expires_at()
            .map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
        let millis = record::millis(lifetime.unwrap_or(ttl).min(Token::MAX_LIFETIME));
        if millis == 0 {
            // Expired already: nothing worth sharing.
            return Ok(());
        }
        let name = self.token_key(key);
        let context = Context {
            key_name: &name,
            kind: Kind::Token,
        };
        let value = self
            .codec()
            .seal(&context, &record::encode(token, lifetime))?;
        self.connection()
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
        let millis = record::millis(ttl.min(Token::MAX_LIFETIME)).max(1);
        let mut invocation = TRY_LEASE.key(self.lease_key(key));
        invocation.arg(holder).arg(millis);
        let taken: i64 = self
            .connection()
            .invoke("taking the fetch lease", &invocation)
            .await?;
        Ok(taken == 1)
    }

    async fn release(&self, key: &StoreKey, holder: &str) -> Result<(), StoreError> {
        let mut invocation = RELEASE.key(self.lease_key(key));
        invocation.arg(holder);
        self.connection()
            .invoke::<i64>("releasing the fetch lease", &invocation)
            .await
            .map(drop)
    }

    async fn refresh_record(&self, key: &StoreKey) -> Result<RefreshState, StoreError> {
        let name = self.refresh_key(key);
        let mut invocation = READ_REFRESH.key(&name);
        invocation.key(self.settle_key(key));
        let reply: Vec<Value> = self
            .connection()
            .invoke("reading the refresh token", &invocation)
            .await?;
        let (kind, settling, fields) = match reply.as_slice() {
            [kind, Value::Int(settling), fields @ ..] => (text(kind), *settling == 1, fields),
            _ => {
                return Err(unreadable(
                    "Redis answered the refresh-token read in an unexpected shape",
                ))
            }
        };
        let record = match (kind, fields) {
            (Some("none"), _) => None,
            (Some("hash"), [generation, value, presenting]) => {
                Some(self.read_record(&name, generation, value, presenting))
            }
            (kind, _) => Some(RefreshRecord {
                generation: 0,
                value: RefreshValue::Damaged(unreadable(format!(
                    "the refresh-token key holds a {}, not a hash",
                    kind.unwrap_or("value of unknown type")
                ))),
                presenting: None,
            }),
        };
        Ok(RefreshState { record, settling })
    }

    /// The record in a hash's `gen`, `val` and `presenting` fields. One that is not a valid
    /// record (see the [crate docs](crate#refresh-tokens)) is damaged: a bad generation is
    /// reported as 0, and any write replaces it.
    fn read_record(
        &self,
        name: &str,
        generation: &Value,
        value: &Value,
        presenting: &Value,
    ) -> RefreshRecord {
        let presenting = match presenting {
            Value::BulkString(holder) => Some(String::from_utf8_lossy(holder).into_owned()),
            _ => None,
        };
        let Some(generation) = parse_generation(generation) else {
            return RefreshRecord {
                generation: 0,
                value: RefreshValue::Damaged(unreadable(
                    "the refresh token's generation is not a whole number below 2^53",
                )),
                presenting,
            };
        };
        let Value::BulkString(value) = value else {
            return RefreshRecord {
                generation,
                value: RefreshValue::Damaged(unreadable("the refresh-token record has no value")),
                presenting,
            };
        };
        let context = Context {
            key_name: name,
            kind: Kind::Refresh { generation },
        };
        let value = match self.codec().open(&context, value) {
            Ok(plaintext) => match std::str::from_utf8(&plaintext) {
                Ok(text) => RefreshValue::Readable(SecretString::from(text.to_owned())),
                Err(_) => {
                    RefreshValue::Damaged(unreadable("the stored refresh token is not UTF-8"))
                }
            },
            Err(Unopened::Damaged(error)) => RefreshValue::Damaged(error),
            Err(Unopened::Foreign(error)) => RefreshValue::Foreign(error),
        };
        RefreshRecord {
            generation,
            value,
            presenting,
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
            .connection()
            .invoke("announcing a refresh", &invocation)
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
            .connection()
            .invoke("withdrawing a refresh", &invocation)
            .await?;
        Ok(ended == 1)
    }

    async fn store_refresh(
        &self,
        key: &StoreKey,
        write: RefreshWrite<'_>,
    ) -> Result<bool, StoreError> {
        if write.generation >= GENERATION_LIMIT {
            return Err(StoreError::new(
                StoreErrorKind::Config,
                format!(
                    "refresh-token generation {} is too large to store (the limit is 2^53)",
                    write.generation
                ),
            ));
        }
        let name = self.refresh_key(key);
        let context = Context {
            key_name: &name,
            kind: Kind::Refresh {
                generation: write.generation,
            },
        };
        let value = self
            .codec()
            .seal(&context, write.refresh_token.expose_secret().as_bytes())?;
        let replacing_damaged = write
            .replacing_damaged
            .map_or_else(String::new, |generation| generation.to_string());
        let settle = write
            .settle
            .map(settle_millis)
            .filter(|&millis| millis > 0)
            .map_or_else(String::new, |millis| millis.to_string());
        let mut invocation = STORE_REFRESH.key(&name);
        invocation
            .key(self.settle_key(key))
            .arg(write.generation)
            .arg(value)
            .arg(replacing_damaged)
            .arg(settle);
        let written: i64 = self
            .connection()
            .invoke("storing the refresh token", &invocation)
            .await?;
        Ok(written == 1)
    }
}

/// A settle in whole milliseconds, rounded up (a settle shorter than one still runs), at
/// most a year.
fn settle_millis(settle: Duration) -> u64 {
    let settle = settle.min(Token::MAX_LIFETIME);
    let millis = record::millis(settle);
    if Duration::from_millis(millis) < settle {
        millis + 1
    } else {
        millis
    }
}

/// A stored generation, read as the scripts read it: decimal digits of a number below 2^53.
fn parse_generation(value: &Value) -> Option<u64> {
    let Value::BulkString(digits) = value else {
        return None;
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|&generation| generation < GENERATION_LIMIT)
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
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
            .field("key_prefix", &self.shared.prefix)
            .field("values", &self.shared.codec)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn generations_read_as_the_scripts_read_them() {
        assert_eq!(parse_generation(&bulk("0")), Some(0));
        assert_eq!(parse_generation(&bulk("42")), Some(42));
        assert_eq!(parse_generation(&bulk("007")), Some(7));
        assert_eq!(
            parse_generation(&bulk("9007199254740991")),
            Some(GENERATION_LIMIT - 1)
        );
        for bad in [
            "",
            "9007199254740992",
            "99999999999999999999999",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "0x10",
            " 1",
            "1 ",
        ] {
            assert_eq!(parse_generation(&bulk(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_generation(&Value::Nil), None);
        assert_eq!(parse_generation(&Value::Int(1)), None);
    }

    #[test]
    fn settles_round_up_to_whole_milliseconds() {
        assert_eq!(settle_millis(Duration::ZERO), 0);
        assert_eq!(settle_millis(Duration::from_micros(1)), 1);
        assert_eq!(settle_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(settle_millis(Duration::from_micros(1_501)), 2);
        assert_eq!(
            settle_millis(Duration::MAX),
            record::millis(Token::MAX_LIFETIME)
        );
    }

    #[test]
    fn a_store_is_cheap_to_clone_and_shareable() {
        fn assert_store<T: RefreshTokenStore + Clone + Send + Sync + fmt::Debug>() {}
        assert_store::<RedisStore>();
        let store = RedisStore::builder("redis://127.0.0.1:1")
            .store_in_clear()
            .build()
            .unwrap();
        let clone = store.clone();
        assert!(Arc::ptr_eq(&store.shared, &clone.shared));
    }
}
