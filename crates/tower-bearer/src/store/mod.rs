//! Sharing tokens between processes: a [`TokenStore`] and the [`StoreSource`] that uses it.
//!
//! A fleet of replicas that each fetch their own token multiplies the load on the
//! authorization server (many providers rate-limit token requests per client) and makes
//! every replica pay the first-request latency. Wrap the fleet's token source in a
//! [`StoreSource`] over a shared store and the fleet fetches one token per lifetime:
//!
//! ```
//! use tower_bearer::source::StaticToken;
//! use tower_bearer::store::{MemoryStore, StoreKey, StoreSource};
//! use tower_bearer::TokenCache;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let source = StaticToken::new("example")?;
//! // `source` is any TokenSource, for example tower-bearer-oauth2's ClientCredentials.
//! let key = StoreKey::builder("https://auth.example.com/oauth2/token", "billing-service")
//!     .scope("invoices:read")
//!     .build();
//! let cache = TokenCache::new(StoreSource::new(source, MemoryStore::new(), key));
//! # let _ = cache;
//! # Ok(())
//! # }
//! ```
//!
//! [`MemoryStore`] shares tokens between caches in one process; `tower-bearer-redis` shares
//! them between processes.
//!
//! # How the fleet fetches once
//!
//! When its cache asks for a token, a [`StoreSource`] first reads the store. A usable token
//! there, other than the one this source handed out last (which the cache is replacing
//! because it is due for refresh or was rejected), is taken as it is. Otherwise the source
//! takes a short lease on the key; the holder fetches from the authorization server and
//! stores the result, and everyone else polls the store until the token appears, backing
//! off with jitter (see [`StoreConfig::poll_interval`]) so that a fleet of waiters neither
//! loads the store much nor polls in step. A holder that dies cannot block the others past
//! the lease's time to live.
//!
//! # When the store fails
//!
//! The store is an optimisation, never a dependency: when it is unreachable, slow (every
//! operation has a timeout) or returns something it cannot read, the source warns (at most
//! once per [`warn_interval`](StoreConfig::warn_interval)) and fetches from its own source
//! as if there were no store.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use secrecy::SecretString;

use crate::{BoxError, Token};

mod key;
mod memory;
mod source;

pub use key::{StoreKey, StoreKeyBuilder};
pub use memory::MemoryStore;
pub use source::{StoreConfig, StoreSource, StoreStats};

/// The future a [`TokenStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where a fleet of token caches keeps the tokens they share.
///
/// Implementations: [`MemoryStore`] (one process) and `tower-bearer-redis`'s `RedisStore`.
/// The trait is object-safe; every method takes the [`StoreKey`] that identifies the token.
///
/// An implementation must keep secrets out of its errors and logs, and should store them
/// encrypted when the storage is shared with anyone else.
pub trait TokenStore: Send + Sync + 'static {
    /// The stored access token for `key`, if there is one that has not expired.
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>>;

    /// Stores `token` for `key` until the token expires (a token without an expiry is kept
    /// for `ttl`). Replaces any token stored before.
    fn put<'a>(&'a self, key: &'a StoreKey, token: &'a Token, ttl: Duration)
        -> StoreFuture<'a, ()>;

    /// Takes the fetch lease for `key` for `ttl` if nobody holds it; `true` if `holder` got it.
    ///
    /// The lease is the fleet's single flight: only its holder asks the authorization server.
    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Gives the lease back if `holder` still holds it; does nothing otherwise.
    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()>;
}

/// Where a fleet keeps the one refresh token its replicas share, for servers that rotate
/// refresh tokens; see `tower-bearer-oauth2`'s `RefreshTokenBuilder::share_through`, which
/// documents the protocol these operations serve.
///
/// The store holds one [`RefreshRecord`] per key: a refresh token, its generation (how many
/// rotations led to it; the generation is the fencing token of every write), and the
/// *intent* of the one replica presenting it right now, if any. Every operation must be
/// atomic: a Redis implementation runs each as one script.
///
/// Implementations: [`MemoryStore`] and `tower-bearer-redis`'s `RedisStore`.
pub trait RefreshTokenStore: TokenStore {
    /// What the store holds for `key`.
    fn refresh_record<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, RefreshState>;

    /// Records that `holder` is about to present the refresh token of `generation`: only if
    /// the stored record is of that generation, no other holder's intent is recorded, and
    /// no settle is running (see [`RefreshState::settling`]). `true` if the intent is
    /// `holder`'s now (it may have been already). The intent has no expiry: only its holder
    /// resolves it, with [`store_refresh`](Self::store_refresh) or
    /// [`end_presenting`](Self::end_presenting).
    fn begin_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Clears `holder`'s intent on the record of `generation`, which stays as it is (the
    /// server answered without consuming the refresh token). `true` if it was cleared.
    fn end_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool>;

    /// Stores `write.refresh_token` as `write.generation`, with no intent, if the key holds
    /// nothing, a record of an older generation, or the [damaged](RefreshValue::Damaged)
    /// value of generation [`replacing_damaged`](RefreshWrite::replacing_damaged) it was
    /// read with. With [`settle`](RefreshWrite::settle), a successful write also starts (or
    /// lengthens) a settle of that length. `true` if it wrote.
    ///
    /// Newest-wins with the generation as fencing token: a replica holding an older refresh
    /// token can never overwrite a newer one, whenever its write arrives.
    fn store_refresh<'a>(
        &'a self,
        key: &'a StoreKey,
        write: RefreshWrite<'a>,
    ) -> StoreFuture<'a, bool>;
}

/// What a [`RefreshTokenStore`] holds for one key.
#[derive(Debug)]
pub struct RefreshState {
    /// The record, if the key holds one.
    pub record: Option<RefreshRecord>,
    /// Whether a settle is running: after a data loss, replicas put their copies back for
    /// this long before anyone presents one (newest wins).
    pub settling: bool,
}

/// The fleet's refresh token as a [`RefreshTokenStore`] holds it.
#[derive(Debug)]
pub struct RefreshRecord {
    /// How many rotations led to this refresh token: 0 for one a replica was configured with.
    pub generation: u64,
    /// The refresh token, if this replica can read it.
    pub value: RefreshValue,
    /// The replica presenting this generation right now, if one announced it.
    pub presenting: Option<String>,
}

/// A stored refresh token, as this replica can read it.
pub enum RefreshValue {
    /// Read and authenticated for its key, kind and generation.
    Readable(SecretString),
    /// Cannot be what any replica holding this replica's keys wrote there: malformed,
    /// truncated, or failing authentication under a key this replica holds (tampered with,
    /// or moved from another key or generation). Safe to replace with a good copy.
    Damaged(StoreError),
    /// Sealed with a key this replica does not hold. It may be the fleet's newest (and this
    /// replica misconfigured), so it is neither replaced nor presented.
    Foreign(StoreError),
}

impl fmt::Debug for RefreshValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshValue::Readable(_) => f.write_str("Readable([redacted])"),
            RefreshValue::Damaged(error) => f.debug_tuple("Damaged").field(error).finish(),
            RefreshValue::Foreign(error) => f.debug_tuple("Foreign").field(error).finish(),
        }
    }
}

/// A write of [`RefreshTokenStore::store_refresh`].
#[derive(Debug, Clone, Copy)]
pub struct RefreshWrite<'a> {
    /// The generation the refresh token is stored as.
    pub generation: u64,
    /// The refresh token.
    pub refresh_token: &'a SecretString,
    /// Also replace a [damaged](RefreshValue::Damaged) value, if the stored record is still
    /// of this generation.
    pub replacing_damaged: Option<u64>,
    /// Start a settle this long if the write succeeds, or lengthen a running one to it.
    pub settle: Option<Duration>,
}

impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        (**self).get(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a StoreKey,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        (**self).put(key, token, ttl)
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).try_lease(key, holder, ttl)
    }

    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()> {
        (**self).release(key, holder)
    }
}

impl<T: RefreshTokenStore + ?Sized> RefreshTokenStore for std::sync::Arc<T> {
    fn refresh_record<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, RefreshState> {
        (**self).refresh_record(key)
    }

    fn begin_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        (**self).begin_presenting(key, generation, holder)
    }

    fn end_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        (**self).end_presenting(key, generation, holder)
    }

    fn store_refresh<'a>(
        &'a self,
        key: &'a StoreKey,
        write: RefreshWrite<'a>,
    ) -> StoreFuture<'a, bool> {
        (**self).store_refresh(key, write)
    }
}

/// What went wrong with a [`TokenStore`]. Never contains a secret.
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<BoxError>,
}

/// The broad reason for a [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached, or the connection broke.
    Unavailable,
    /// The store did not answer in time.
    Timeout,
    /// The store returned a value that cannot be read: corrupt, from an unknown format, or
    /// encrypted with a key this process does not have.
    Unreadable,
    /// The store was set up wrongly (bad URL, missing key); retrying will not help.
    Config,
}

impl StoreError {
    /// A new error of `kind` with a message for people. Keep secrets out of `message`.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error. Keep secrets out of it, too.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The broad reason.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::Unavailable => "token store unavailable",
            StoreErrorKind::Timeout => "token store timed out",
            StoreErrorKind::Unreadable => "token store value unreadable",
            StoreErrorKind::Config => "token store misconfigured",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
