//! The token cache: one fetch for any number of callers, refresh ahead of expiry, backoff.
//!
//! [`TokenCache`] sits between [`BearerAuth`](crate::BearerAuth) and a
//! [`TokenSource`]. Each token it holds goes through three phases, moved
//! on by a timer rather than by reading the clock on every request:
//!
//! 1. **fresh**: callers take it with two atomic loads; no lock, no allocation, no await
//!    (that is [`BearerAuth`](crate::BearerAuth)'s path; [`TokenCache::token`] also reads
//!    the clock, and takes a lock only when it must wait for a fetch);
//! 2. **refresh due** (inside the refresh window): the first caller starts one background
//!    fetch and everybody, that caller included, keeps using the still-valid token;
//! 3. **expired** (past expiry minus the skew, or [invalidated](TokenCache::invalidate)):
//!    callers wait for the single fetch in flight.
//!
//! A fetch runs on its own task, so a caller that gives up does not cancel it for the others.
//! After a failed fetch the next one waits for a backoff interval; until then callers that
//! need a new token get the last error at once, and callers that still hold a valid token
//! keep using it.
//!
//! Whatever ends a fetch, the cache can fetch again: a source that panics gives a
//! [`FetchError`] for which [`is_panic`](FetchError::is_panic) is true (the panic's message
//! is not kept, as it could carry a secret); one that does not answer within the
//! [fetch timeout](CacheConfig::fetch_timeout) is abandoned; a fetch whose task is aborted or
//! whose runtime shuts down ends [cancelled](FetchError::is_cancelled). Each counts as a
//! failed fetch, so the next one waits for the backoff.
//!
//! A token the server rejects (a 401 seen by [`BearerAuth`](crate::BearerAuth)) is
//! invalidated so the next caller fetches a new one, but a token fetched to replace a
//! rejected one, and rejected again soon after, is only invalidated once the backoff has
//! passed: an API that rejects every token (a wrong audience) sees its 401s returned, and
//! the authorization server sees a few token requests, not one per request.
//!
//! Time is tokio's: tests can use `#[tokio::test(start_paused = true)]` and advance through
//! token lifetimes instantly.
//!
//! ```
//! use std::time::Duration;
//! use tower_bearer::{source, CacheConfig, FetchError, Token, TokenCache};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), FetchError> {
//! let source = source::from_fn(|| async {
//!     Token::builder("abc").expires_in(Duration::from_secs(3600)).build().map_err(FetchError::from)
//! });
//! let cache = TokenCache::with_config(source, CacheConfig::new().expiry_skew(Duration::from_secs(60)));
//! let token = cache.token().await?;
//! assert_eq!(cache.stats().fetches, 1);
//! # let _ = token;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::sync::lock;
use crate::{FetchError, Token, TokenSource};

mod config;
mod entry;
mod fetch;
mod health;
mod refresh;
mod registry;

pub use config::CacheConfig;
pub(crate) use entry::{Entry, Reader, Rejected};
pub use health::{CacheHealth, FailureKind, HealthState};

use entry::{Phase, PhaseCell};
use fetch::{wait_for, Flight, InFlight};
use refresh::spawn_phase_timer;

/// Caches tokens from a [`TokenSource`]; see the [module docs](self).
///
/// Cloning is cheap and clones share one cache. Background work (timers, a refresh in
/// progress) stops when the last clone is dropped.
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

/// What the clones of one [`TokenCache`] share. Its methods live with the part they serve:
/// fetching in `fetch.rs`, the phase timer and the background refresh in `refresh.rs`,
/// rejections in `entry.rs`; storing a fetched token, which ties them together, is here.
struct Shared {
    source: Arc<dyn TokenSource>,
    config: CacheConfig,
    /// Behind its own `Arc` so each service clone can keep an `arc_swap::Cache` of it.
    current: Arc<ArcSwapOption<Entry>>,
    flight: Mutex<Flight>,
    /// The background refresh loop, if one runs. Its own lock: it is started from the fast
    /// path, which must not contend with fetches.
    refresher: Mutex<Option<AbortHandle>>,
    fetches: AtomicU64,
    waits: AtomicU64,
}

/// Counters a cache keeps, for tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Fetches started from the source.
    pub fetches: u64,
    /// Callers that had to wait for a fetch because no usable token was cached.
    pub waits: u64,
}

impl TokenCache {
    /// A cache over `source` with the [default settings](CacheConfig).
    pub fn new(source: impl TokenSource) -> Self {
        Self::with_config(source, CacheConfig::default())
    }

    /// A cache over `source` with these settings.
    pub fn with_config(source: impl TokenSource, config: CacheConfig) -> Self {
        TokenCache {
            shared: Arc::new(Shared {
                source: Arc::new(source),
                config,
                current: Arc::new(ArcSwapOption::empty()),
                flight: Mutex::new(Flight::default()),
                refresher: Mutex::new(None),
                fetches: AtomicU64::new(0),
                waits: AtomicU64::new(0),
            }),
        }
    }

    /// A usable token: the cached one if it is not expired, or the result of the fetch in
    /// flight, which this call starts if there is none.
    ///
    /// Inside the refresh window this returns the cached token at once and starts a
    /// background refresh. While a failed fetch's backoff runs and no usable token is
    /// cached, this returns that fetch's error at once.
    ///
    /// Reads the clock, and takes a lock only when no usable token is cached. Needs a tokio
    /// runtime (fetches and timers run on tasks).
    pub async fn token(&self) -> Result<Token, FetchError> {
        if let Some(entry) = self.shared.usable_entry() {
            return Ok(entry.token.clone());
        }
        let receiver = {
            let mut flight = self.shared.lock_flight();
            // Again under the lock: a fetch may have finished since.
            if let Some(entry) = self.shared.usable_entry() {
                return Ok(entry.token.clone());
            }
            self.shared.waits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::waited();
            match flight.in_flight.as_ref().filter(|f| f.is_running()) {
                Some(in_flight) => in_flight.receiver.clone(),
                None => {
                    if let Some(failure) = &flight.failure {
                        if Instant::now() < failure.retry_at {
                            return Err(failure.error.clone());
                        }
                    }
                    self.shared.start_fetch(&mut flight)?
                }
            }
        };
        wait_for(receiver).await
    }

    /// Drops the cached token if it is `rejected`, so the next caller fetches a new one.
    ///
    /// Compare-and-invalidate: if the cache already holds a different (newer) token, nothing
    /// happens, so any number of concurrent calls for one token cause one refresh. Returns
    /// whether the cached token was invalidated by this call.
    ///
    /// This is unconditional, for code that knows the token is gone (it revoked it).
    /// [`BearerAuth`](crate::BearerAuth) invalidates the tokens that servers reject by
    /// itself, and backs off when the tokens it fetches keep being rejected.
    pub fn invalidate(&self, rejected: &Token) -> bool {
        let _flight = self.shared.lock_flight();
        let current = self.shared.current.load();
        match current.as_ref() {
            Some(entry) if entry.token.same_as(rejected) => {
                let invalidated = entry.phase.expire();
                if invalidated {
                    crate::metrics::invalidated("explicit");
                    tracing::debug!("cached token invalidated");
                }
                invalidated
            }
            _ => false,
        }
    }

    /// Tells the cache a server rejected `token` (it answered 401, and the challenge says the
    /// token is bad: see [`challenge::token_rejected`](crate::challenge::token_rejected)).
    ///
    /// Like [`invalidate`](Self::invalidate) (compare-and-invalidate: a newer cached token
    /// is left alone), except that a token fetched to replace a rejected one, and rejected
    /// again before the fetch backoff has passed, is kept: an API that rejects every token
    /// then costs a few token requests, not one per request. The authorizer's verdict calls
    /// it; adapters go through the authorizer.
    pub(crate) fn reject(&self, token: &Token) -> Rejected {
        self.shared.reject(|current| current.token.same_as(token))
    }

    /// The cached token, if there is one and it is not expired. Never fetches.
    pub fn cached(&self) -> Option<Token> {
        let entry = self.shared.current.load_full()?;
        entry.usable(Instant::now()).then(|| entry.token.clone())
    }

    /// The cache's state for a readiness probe or a dashboard: whether it holds a usable
    /// token and for how long, and whether fetching is failing. See [`CacheHealth`].
    ///
    /// A cache that keeps a valid token while the authorization server is down is
    /// [`Degraded`](HealthState::Degraded): callers notice nothing yet, operators should.
    pub fn health(&self) -> CacheHealth {
        let flight = self.shared.lock_flight();
        let now = Instant::now();
        let usable = self
            .shared
            .current
            .load_full()
            .filter(|entry| entry.usable(now));
        let failure = flight.failure.as_ref();
        let state = match (&usable, failure) {
            (Some(_), None) => HealthState::Healthy,
            (Some(_), Some(_)) => HealthState::Degraded,
            (None, Some(_)) => HealthState::Failing,
            (None, None) => HealthState::Starting,
        };
        CacheHealth {
            state,
            token_valid_for: usable
                .as_ref()
                .and_then(|entry| entry.expire_at)
                .map(|at| at.saturating_duration_since(now)),
            consecutive_failures: failure.map_or(0, |f| f.consecutive),
            last_failure: failure.map(|f| FailureKind::of(&f.error)),
            next_attempt_in: failure
                .map(|f| f.retry_at.saturating_duration_since(now))
                .filter(|wait| !wait.is_zero()),
            fetching: flight.in_flight.as_ref().is_some_and(InFlight::is_running),
        }
    }

    /// How many fetches were started and how many callers waited for one.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fetches: self.shared.fetches.load(Ordering::Relaxed),
            waits: self.shared.waits.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = self
            .shared
            .current
            .load()
            .as_ref()
            .map(|entry| entry.phase.load().name());
        f.debug_struct("TokenCache")
            .field("token", &phase.unwrap_or("none"))
            .field("stats", &self.stats())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Shared {
    fn lock_flight(&self) -> MutexGuard<'_, Flight> {
        lock(&self.flight)
    }

    /// The cached entry if it can be used now, starting a background refresh if it is due.
    fn usable_entry(self: &Arc<Self>) -> Option<Arc<Entry>> {
        let entry = self.current.load_full()?;
        if !entry.usable(Instant::now()) {
            return None;
        }
        if entry.phase.load() == Phase::RefreshDue {
            self.refresh_if_due(&entry);
        }
        Some(entry)
    }

    /// Makes `token` the cached one and sets the timer that moves it through its phases.
    /// Returns false if the token had expired on arrival (it is cached as expired).
    fn store(self: &Arc<Self>, token: Token, flight: &mut Flight) -> bool {
        let now = Instant::now();
        let mut refresh_at = None;
        let mut expire_at = None;
        if let Some(expires_at) = token.expires_at() {
            let deadlines = self
                .config
                .deadlines(expires_at.saturating_duration_since(now));
            refresh_at = Some(deadline(now, deadlines.refresh_in));
            expire_at = Some(deadline(now, deadlines.expire_in));
        }
        if let Some(hint) = token.refresh_after() {
            refresh_at = Some(refresh_at.map_or(hint, |at: Instant| at.min(hint)));
        }
        let phase = if expire_at.is_some_and(|at| at <= now) {
            Phase::Expired
        } else if refresh_at.is_some_and(|at| at <= now) {
            Phase::RefreshDue
        } else {
            Phase::Fresh
        };
        let entry = Arc::new(Entry {
            id: registry::next_id(),
            token,
            phase: PhaseCell::new(phase),
            expire_at,
            stored_at: now,
            owner: Arc::downgrade(self),
        });
        if let Some(timer) = flight.timer.take() {
            timer.abort();
        }
        if phase != Phase::Expired && (refresh_at.is_some() || expire_at.is_some()) {
            flight.timer = spawn_phase_timer(&entry, refresh_at, expire_at);
        }
        registry::register(&entry);
        self.current.store(Some(entry));
        tracing::debug!(
            expires_in_ms = expire_at.map(|at| millis(at.saturating_duration_since(now))),
            refresh_in_ms = refresh_at.map(|at| millis(at.saturating_duration_since(now))),
            "new token cached"
        );
        phase != Phase::Expired
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let flight = self
            .flight
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tasks = [
            flight.in_flight.take().map(|in_flight| in_flight.task),
            flight.timer.take(),
            lock(&self.refresher).take(),
        ];
        for task in tasks.into_iter().flatten() {
            task.abort();
        }
    }
}

/// `now + wait`, for any `wait`. Waits and lifetimes are clamped well below this (a year at
/// most), so the fallback is only a guard.
fn deadline(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or_else(|| now + Token::MAX_LIFETIME)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
