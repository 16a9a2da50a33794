//! The token source that shares its tokens through a [`TokenStore`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{StoreError, StoreErrorKind, StoreKey, TokenStore};
use crate::source::{TokenFuture, TokenSource};
use crate::sync::lock;
use crate::{FetchError, Token};

/// How a [`StoreSource`] uses its store.
///
/// Every duration is at most a year ([`Token::MAX_LIFETIME`]); a longer one is shortened to
/// it, so no setting can overflow the clock.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    lease_ttl: Duration,
    poll_interval: Duration,
    max_poll_interval: Duration,
    max_wait: Duration,
    op_timeout: Duration,
    /// `None` scales it to the token's lifetime; see [`StoreConfig::min_remaining`].
    min_remaining: Option<Duration>,
    no_expiry_ttl: Duration,
    warn_interval: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            lease_ttl: Duration::from_secs(10),
            poll_interval: Duration::from_millis(50),
            max_poll_interval: Duration::from_secs(1),
            max_wait: Duration::from_secs(15),
            op_timeout: Duration::from_millis(500),
            min_remaining: None,
            no_expiry_ttl: Duration::from_secs(300),
            warn_interval: Duration::from_secs(60),
        }
    }
}

impl StoreConfig {
    /// The defaults: a 10 s lease, waits polled from every 50 ms backing off to every second,
    /// for at most 15 s, 500 ms per store operation, stored tokens taken with more than half
    /// their lifetime or 10 s left (whichever is less), a warning a minute at most.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long the fetch lease lasts (default 10 s): the longest a replica that dies while
    /// fetching can hold up the others. Make it longer than a token request takes, or a
    /// slow fetch lets a second replica fetch too (harmless, but not single flight).
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = at_most_a_year(ttl.max(Duration::from_millis(1)));
        self
    }

    /// How soon a replica waiting for another's fetch looks at the store again (default
    /// 50 ms); each look doubles the gap, up to
    /// [`max_poll_interval`](Self::max_poll_interval). Every gap is jittered by ±20%, so
    /// replicas that began waiting together do not poll together.
    ///
    /// Each look is two store operations: a read, and an attempt at the lease (which a
    /// waiter gets once the holder's has run out). The backoff bounds a waiter's load (with
    /// the defaults, 6 looks in its first 2 s, then one a second) at a latency in proportion
    /// to the wait: a token stored `t` into the wait is seen at most `1.5 × t + 1.2 ×
    /// poll_interval` later, and never more than `1.2 × max_poll_interval` later, so the
    /// token of a quick fetch is still seen quickly.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = at_most_a_year(interval.max(Duration::from_millis(1)));
        self
    }

    /// The longest a waiting replica goes between two looks at the store, before jitter
    /// (default 1 s); see [`poll_interval`](Self::poll_interval). A `poll_interval` above
    /// it is cut to it.
    ///
    /// Once backed off, each waiter makes two store operations per `max_poll_interval`:
    /// when many replicas wait (a cold fleet whose first fetch is slow), this sets the
    /// store's load. It also bounds, give or take the jitter, how late a waiter notices the
    /// token the holder stored, or a lease that ran out.
    #[must_use]
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = at_most_a_year(interval.max(Duration::from_millis(1)));
        self
    }

    /// How long a replica waits for others before fetching itself (default 15 s). No poll
    /// sleeps past it: the last look is at the deadline.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = at_most_a_year(wait);
        self
    }

    /// The time limit for each store operation (default 500 ms); past it the store counts
    /// as unavailable for that fetch.
    #[must_use]
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = at_most_a_year(timeout);
        self
    }

    /// A stored token with no more than this left is not taken: the replica fetches a new
    /// one instead (or waits for the lease holder's). Set here, it is used as given, whatever
    /// the token's lifetime. Each token passed over is logged at debug level and counted in
    /// [`StoreStats::passed_over`].
    ///
    /// By default it scales with the token's lifetime: the smaller of 10 s and half the
    /// lifetime. Half, because of the cache's windows (see
    /// [`CacheConfig`](crate::CacheConfig)): with its defaults, a token that lives less than
    /// ten minutes is refreshed once half its lifetime is left (the 5-minute refresh window
    /// is clamped to half the lifetime) and counts as expired at a quarter (the 30 s skew is
    /// clamped to a quarter). So a short-lived token taken with more than half its lifetime
    /// left is one the replica that fetched it still uses as it is, neither due nor expired,
    /// and the cache that takes it (which times its windows from what is left) uses it for
    /// more than a quarter of the lifetime before it refreshes. The 10 s cap is the fixed
    /// threshold this used to be, unchanged for tokens that live 20 s or more.
    ///
    /// A token does not carry the lifetime it was issued with, so the source goes by what
    /// it saw. A token that appeared in the store while this replica waited for it was
    /// fetched just now by the lease holder: its lifetime is what it has left. Any other is
    /// taken to live as long as the tokens this source fetched or saw appear before. A
    /// replica that has seen none yet and finds a token already stored cannot tell a fresh
    /// short-lived token from the last seconds of a long-lived one, and requires the full
    /// 10 s.
    #[must_use]
    pub fn min_remaining(mut self, remaining: Duration) -> Self {
        self.min_remaining = Some(at_most_a_year(remaining));
        self
    }

    /// How long a token without an expiry is kept in the store (default 5 min).
    #[must_use]
    pub fn no_expiry_ttl(mut self, ttl: Duration) -> Self {
        self.no_expiry_ttl = at_most_a_year(ttl);
        self
    }

    /// At most one warning about a failing store per this interval (default 1 min); the
    /// ones in between are counted and the count is reported with the next warning.
    #[must_use]
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        self.warn_interval = at_most_a_year(interval);
        self
    }
}

fn at_most_a_year(duration: Duration) -> Duration {
    duration.min(Token::MAX_LIFETIME)
}

/// The most the default [`StoreConfig::min_remaining`] asks of a stored token.
const MIN_REMAINING_CAP: Duration = Duration::from_secs(10);

/// A [`TokenSource`] that shares the tokens of another source through a [`TokenStore`], so
/// that a fleet of replicas fetches one token per lifetime; see the [module docs](super).
///
/// Put it where the source would go: `TokenCache::new(StoreSource::new(source, store,
/// key))`. Cheap to clone; clones share their state.
pub struct StoreSource<S> {
    inner: Arc<Inner<S>>,
}

struct Inner<S> {
    source: S,
    store: Arc<dyn TokenStore>,
    key: StoreKey,
    config: StoreConfig,
    /// The token this source returned last: the one its cache is replacing when it asks.
    last: Mutex<Option<Token>>,
    /// How long this key's tokens live, as far as this source has seen: set by each token it
    /// fetched or saw appear in the store, raised by any it found there living longer.
    lifetime: Mutex<Option<Duration>>,
    warned_at: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
    from_store: AtomicU64,
    fetched: AtomicU64,
    fallbacks: AtomicU64,
    passed_over: AtomicU64,
}

/// What one fetch has seen of the store.
#[derive(Default)]
struct Sightings {
    /// What the store held at the fetch's first read, once it has read. Any other token
    /// appeared while the fetch waited: the lease holder fetched it just now.
    first: Option<Option<Token>>,
    /// The token passed over last, so that polling reports each one once.
    passed_over: Option<Token>,
}

/// What a [`StoreSource`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Tokens taken from the store, fetched by another replica (or an earlier one).
    pub from_store: u64,
    /// Tokens fetched from the source while holding the lease, and stored.
    pub fetched: u64,
    /// Tokens fetched from the source without the store, because it failed or because the
    /// lease holder took longer than `max_wait`.
    pub fallbacks: u64,
    /// Stored tokens not taken because they had too little time left (see
    /// [`StoreConfig::min_remaining`]); the replica fetched or waited for another. A token
    /// is counted once per fetch, however often a waiting replica reads it.
    pub passed_over: u64,
}

impl<S: TokenSource> StoreSource<S> {
    /// Shares `source`'s tokens under `key` in `store`, with the default [`StoreConfig`].
    pub fn new(source: S, store: impl TokenStore, key: StoreKey) -> Self {
        Self::with_config(source, store, key, StoreConfig::default())
    }

    /// Like [`new`](Self::new), with `config`.
    pub fn with_config(
        source: S,
        store: impl TokenStore,
        key: StoreKey,
        config: StoreConfig,
    ) -> Self {
        StoreSource {
            inner: Arc::new(Inner {
                source,
                store: Arc::new(store),
                key,
                config,
                last: Mutex::new(None),
                lifetime: Mutex::new(None),
                warned_at: Mutex::new(None),
                suppressed: AtomicU64::new(0),
                from_store: AtomicU64::new(0),
                fetched: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
                passed_over: AtomicU64::new(0),
            }),
        }
    }

    /// The key the tokens are shared under.
    pub fn key(&self) -> &StoreKey {
        &self.inner.key
    }

    /// Counts of where this source's tokens came from.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            from_store: self.inner.from_store.load(Ordering::Relaxed),
            fetched: self.inner.fetched.load(Ordering::Relaxed),
            fallbacks: self.inner.fallbacks.load(Ordering::Relaxed),
            passed_over: self.inner.passed_over.load(Ordering::Relaxed),
        }
    }
}

impl<S> Clone for StoreSource<S> {
    fn clone(&self) -> Self {
        StoreSource {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: TokenSource> TokenSource for StoreSource<S> {
    fn fetch(&self) -> TokenFuture<'_> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let result = inner.fetch().await;
            if let Ok(token) = &result {
                *lock(&inner.last) = Some(token.clone());
            }
            result
        })
    }
}

impl<S: TokenSource> Inner<S> {
    async fn fetch(&self) -> Result<Token, FetchError> {
        let holder = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        let deadline = Instant::now() + self.config.max_wait;
        let mut seen = Sightings::default();
        let mut gaps = PollGaps::new(&self.config);
        loop {
            match self.op(self.store.get(&self.key)).await {
                Ok(stored) => {
                    if let Some(token) = self.take(stored, &mut seen) {
                        self.from_store.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(key = %self.key, "token taken from the shared store");
                        return Ok(token);
                    }
                }
                Err(error) => return self.fallback(&error).await,
            }
            let ttl = self.config.lease_ttl;
            match self.op(self.store.try_lease(&self.key, &holder, ttl)).await {
                Ok(true) => return self.fetch_holding_lease(&holder, &mut seen).await,
                Ok(false) => {}
                Err(error) => return self.fallback(&error).await,
            }
            let now = Instant::now();
            if now >= deadline {
                let waited = StoreError::new(
                    StoreErrorKind::Timeout,
                    format!(
                        "another replica held the fetch lease for longer than max_wait ({:?}) \
                         without storing a token",
                        self.config.max_wait
                    ),
                );
                return self.fallback(&waited).await;
            }
            tokio::time::sleep(gaps.next().min(deadline - now)).await;
        }
    }

    async fn fetch_holding_lease(
        &self,
        holder: &str,
        seen: &mut Sightings,
    ) -> Result<Token, FetchError> {
        // Another replica may have stored a token between our read and our lease.
        if let Ok(stored) = self.op(self.store.get(&self.key)).await {
            if let Some(token) = self.take(stored, seen) {
                self.release(holder).await;
                self.from_store.fetch_add(1, Ordering::Relaxed);
                return Ok(token);
            }
        }
        let result = self.source.fetch().await;
        if let Ok(token) = &result {
            self.fetched.fetch_add(1, Ordering::Relaxed);
            self.learn_lifetime(token, true);
            let ttl = self.config.no_expiry_ttl;
            match self.op(self.store.put(&self.key, token, ttl)).await {
                Ok(()) => tracing::debug!(key = %self.key, "fetched a token and shared it"),
                Err(error) => self.warn(&error),
            }
        }
        self.release(holder).await;
        result
    }

    async fn release(&self, holder: &str) {
        // A lease that cannot be released expires by itself.
        if let Err(error) = self.op(self.store.release(&self.key, holder)).await {
            tracing::debug!(key = %self.key, %error, "could not release the fetch lease");
        }
    }

    async fn fallback(&self, error: &StoreError) -> Result<Token, FetchError> {
        self.warn(error);
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        crate::metrics::store_fell_back();
        let result = self.source.fetch().await;
        if let Ok(token) = &result {
            self.learn_lifetime(token, true);
        }
        result
    }

    /// The `stored` token, if it may be handed to the cache: it is not the token this
    /// source returned last (which the cache is replacing), and it has more than
    /// [`min_remaining`](StoreConfig::min_remaining) left.
    fn take(&self, stored: Option<Token>, seen: &mut Sightings) -> Option<Token> {
        let first = seen.first.get_or_insert_with(|| stored.clone());
        let token = stored?;
        let appeared = !first.as_ref().is_some_and(|first| first.same_as(&token));
        if lock(&self.last)
            .as_ref()
            .is_some_and(|last| last.same_as(&token))
        {
            return None;
        }
        let Some(expires_at) = token.expires_at() else {
            return Some(token);
        };
        let left = expires_at.saturating_duration_since(Instant::now());
        let min_remaining = self.min_remaining(left, appeared);
        if left > min_remaining {
            self.learn_lifetime(&token, appeared);
            return Some(token);
        }
        if !seen.passed_over.as_ref().is_some_and(|p| p.same_as(&token)) {
            self.passed_over.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                key = %self.key,
                remaining_ms = millis(left),
                min_remaining_ms = millis(min_remaining),
                "stored token has too little time left; not taking it"
            );
            seen.passed_over = Some(token);
        }
        None
    }

    /// What a stored token with `left` to live must have left to be taken; see
    /// [`StoreConfig::min_remaining`].
    fn min_remaining(&self, left: Duration, appeared: bool) -> Duration {
        if let Some(explicit) = self.config.min_remaining {
            return explicit;
        }
        let lifetime = if appeared {
            Some(left)
        } else {
            lock(&self.lifetime).map(|lifetime| lifetime.max(left))
        };
        lifetime.map_or(MIN_REMAINING_CAP, |lifetime| {
            MIN_REMAINING_CAP.min(lifetime / 2)
        })
    }

    /// Notes how long `token` lives: exactly what it has left if it was `issued_now`, at
    /// least that otherwise.
    fn learn_lifetime(&self, token: &Token, issued_now: bool) {
        let Some(expires_at) = token.expires_at() else {
            return;
        };
        let left = expires_at.saturating_duration_since(Instant::now());
        let mut lifetime = lock(&self.lifetime);
        *lifetime = match *lifetime {
            Some(known) if !issued_now => Some(known.max(left)),
            _ => Some(left),
        };
    }

    async fn op<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.config.op_timeout, operation).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Timeout,
                format!("no answer within {:?}", self.config.op_timeout),
            )),
        }
    }

    /// Warns about a failing store, at most once per `warn_interval`.
    fn warn(&self, error: &StoreError) {
        let now = Instant::now();
        let mut warned_at = lock(&self.warned_at);
        if warned_at.is_some_and(|at| now < at + self.config.warn_interval) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *warned_at = Some(now);
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        tracing::warn!(
            key = %self.key,
            %error,
            suppressed,
            "token store failed; fetching without it"
        );
    }
}

/// The gaps between a waiting fetch's looks at the store: from `poll_interval`, doubling up
/// to `max_poll_interval`, each jittered by ±20%.
struct PollGaps {
    nominal: Duration,
    max: Duration,
}

impl PollGaps {
    fn new(config: &StoreConfig) -> Self {
        PollGaps {
            nominal: config.poll_interval.min(config.max_poll_interval),
            max: config.max_poll_interval,
        }
    }

    fn next(&mut self) -> Duration {
        let gap = self.nominal.mul_f64(0.8 + 0.4 * fastrand::f64());
        self.nominal = self.nominal.saturating_mul(2).min(self.max);
        gap
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl<S> fmt::Debug for StoreSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSource")
            .field("key", &self.inner.key)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_gaps_double_from_the_poll_interval_to_the_maximum_with_jitter() {
        let config = StoreConfig::new();
        let mut gaps = PollGaps::new(&config);
        let nominal = [50, 100, 200, 400, 800, 1000, 1000, 1000];
        for millis in nominal {
            let nominal = Duration::from_millis(millis);
            let gap = gaps.next();
            assert!(
                gap >= nominal.mul_f64(0.8) && gap < nominal.mul_f64(1.2),
                "{gap:?} for {nominal:?}"
            );
        }
    }

    #[test]
    fn a_poll_interval_above_the_maximum_is_cut_to_it() {
        let config = StoreConfig::new()
            .poll_interval(Duration::MAX)
            .max_poll_interval(Duration::from_millis(200));
        let mut gaps = PollGaps::new(&config);
        for _ in 0..3 {
            assert!(gaps.next() < Duration::from_millis(240));
        }
    }
}
