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
//! stores the result, and everyone else polls the store until the token appears. A holder
//! that dies cannot block the others past the lease's time to live.
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
/// refresh tokens; see `tower-bearer-oauth2`'s `RefreshTokenBuilder::share_through`.
///
/// A [`TokenStore`] too: refreshing takes the fleet's lease with
/// [`try_lease`](TokenStore::try_lease). A store that only shares access tokens implements
/// [`TokenStore`] alone. Implementations: [`MemoryStore`] and `RedisStore`.
pub trait RefreshTokenStore: TokenStore {
    /// The stored refresh token for `key` and its generation, if any.
    fn refresh_token<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefresh>>;

    /// Replaces the refresh token for `key` with `refresh_token` if the stored generation is
    /// still `expected` (`0`: nothing stored yet); `true` if it was replaced, and the stored
    /// generation is then `expected + 1`.
    ///
    /// With refresh-token rotation every use issues a new refresh token and may invalidate
    /// the old one; compare-and-set means a replica that used an older one can never
    /// overwrite the newer one another replica stored meanwhile.
    fn replace_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool>;

    /// Stores `refresh_token` for `key` as generation `generation`, unless the store holds a
    /// readable refresh token of that generation or a newer one; `true` if it was stored.
    ///
    /// For putting a refresh token back when the store lost its data (a restart without
    /// persistence, `FLUSHALL`, eviction), holds an older generation than the caller's, or
    /// holds a value nobody can read (which is replaced). Every replica that notices puts
    /// back its own; the newest wins, whatever the order.
    fn put_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool>;
}

/// A refresh token read from a [`RefreshTokenStore`], with the generation that
/// [`replace_refresh_token`](RefreshTokenStore::replace_refresh_token) compares.
#[derive(Clone)]
pub struct StoredRefresh {
    /// The refresh token.
    pub refresh_token: SecretString,
    /// How many times it was replaced; the first stored one is generation 1.
    pub generation: u64,
}

impl fmt::Debug for StoredRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRefresh")
            .field("refresh_token", &"[redacted]")
            .field("generation", &self.generation)
            .finish()
    }
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
    fn refresh_token<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefresh>> {
        (**self).refresh_token(key)
    }

    fn replace_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        (**self).replace_refresh_token(key, expected, refresh_token)
    }

    fn put_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        (**self).put_refresh_token(key, generation, refresh_token)
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
