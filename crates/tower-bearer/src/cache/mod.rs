//! The token cache: one fetch for any number of callers, refresh ahead of expiry, backoff.
//!
//! [`TokenCache`] sits between [`BearerAuth`](crate::BearerAuth) and a
//! [`TokenSource`]. Each token it holds goes through three phases, moved
//! on by a timer rather than by reading the clock on every request:
//!
//! 1. **fresh**: callers take it with two atomic loads; no lock, no allocation, no await;
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
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::source::SharedSource;
use crate::{FetchError, Token, TokenSource};

mod config;

pub use config::CacheConfig;

const FRESH: u8 = 0;
const REFRESH_DUE: u8 = 1;
const REFRESHING: u8 = 2;
const EXPIRED: u8 = 3;

type FetchResult = Option<Result<Token, FetchError>>;

/// Caches tokens from a [`TokenSource`]; see the [module docs](self).
///
/// Cloning is cheap and clones share one cache. Background work (timers, a refresh in
/// progress) stops when the last clone is dropped.
#[derive(Clone)]
pub struct TokenCache {
    shared: Arc<Shared>,
}

struct Shared {
    source: SharedSource,
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

/// Generations of cached tokens, unique across all caches of the process and increasing:
/// a token cached after a read of this has a higher generation than the value read.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// The newest generation any cache has issued.
pub(crate) fn newest_generation() -> u64 {
    GENERATIONS.load(Ordering::Acquire)
}

#[derive(Default)]
struct Flight {
    in_flight: Option<(watch::Receiver<FetchResult>, AbortHandle)>,
    failure: Option<Failure>,
    timer: Option<AbortHandle>,
}

struct Failure {
    error: FetchError,
    retry_at: Instant,
    consecutive: u32,
}

/// A cached token and where it is in its life.
pub(crate) struct Entry {
    token: Token,
    phase: AtomicU8,
    expire_at: Option<Instant>,
    /// Which token this is, for invalidation from a marker that must not hold the token.
    generation: NonZeroU64,
}

impl Entry {
    fn usable(&self, now: Instant) -> bool {
        self.phase.load(Ordering::Acquire) != EXPIRED && self.expire_at.is_none_or(|at| now < at)
    }
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
                source: SharedSource::new(source),
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
    /// Needs a tokio runtime (fetches and timers run on tasks).
    pub async fn token(&self) -> Result<Token, FetchError> {
        let receiver = {
            let mut flight = self.shared.lock_flight();
            let now = Instant::now();
            if let Some(entry) = self.shared.current.load_full() {
                if entry.usable(now) {
                    self.shared.refresh_if_due(&entry);
                    return Ok(entry.token.clone());
                }
            }
            self.shared.waits.fetch_add(1, Ordering::Relaxed);
            match &flight.in_flight {
                Some((receiver, _)) => receiver.clone(),
                None => {
                    if let Some(failure) = &flight.failure {
                        if now < failure.retry_at {
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
    /// happens, so any number of concurrent 401s for one token cause one refresh. Returns
    /// whether the cached token was invalidated by this call.
    pub fn invalidate(&self, rejected: &Token) -> bool {
        let current = self.shared.current.load();
        match &*current {
            Some(entry) if entry.token.same_as(rejected) => {
                let invalidated = entry.phase.swap(EXPIRED, Ordering::AcqRel) != EXPIRED;
                if invalidated {
                    tracing::debug!("cached token invalidated after the server rejected it");
                }
                invalidated
            }
            _ => false,
        }
    }

    /// Like [`invalidate`](Self::invalidate), for a rejected token known only as "cached
    /// when the newest generation was `up_to`": invalidates the cached token if its
    /// generation is no higher (see `used_token::RejectedUpTo`).
    pub(crate) fn invalidate_up_to(&self, up_to: u64) -> bool {
        let current = self.shared.current.load();
        match &*current {
            Some(entry) if entry.generation.get() <= up_to => {
                let invalidated = entry.phase.swap(EXPIRED, Ordering::AcqRel) != EXPIRED;
                if invalidated {
                    tracing::debug!("cached token invalidated after the server rejected it");
                }
                invalidated
            }
            _ => false,
        }
    }

    /// The generation of `token` if it is the cached one.
    pub(crate) fn generation_of(&self, token: &Token) -> Option<NonZeroU64> {
        let current = self.shared.current.load();
        current
            .as_ref()
            .filter(|entry| entry.token.same_as(token))
            .map(|entry| entry.generation)
    }

    /// The cached token, if there is one and it is not expired. Never fetches.
    pub fn cached(&self) -> Option<Token> {
        let entry = self.shared.current.load_full()?;
        entry.usable(Instant::now()).then(|| entry.token.clone())
    }

    /// How many fetches were started and how many callers waited for one.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fetches: self.shared.fetches.load(Ordering::Relaxed),
            waits: self.shared.waits.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reader(&self) -> Reader {
        Reader {
            view: arc_swap::Cache::new(Arc::clone(&self.shared.current)),
            cache: self.clone(),
        }
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = self.shared.current.load().as_ref().map(|entry| {
            match entry.phase.load(Ordering::Relaxed) {
                FRESH => "fresh",
                REFRESH_DUE => "refresh due",
                REFRESHING => "refreshing",
                _ => "expired",
            }
        });
        f.debug_struct("TokenCache")
            .field("token", &phase.unwrap_or("none"))
            .field("stats", &self.stats())
            .field("config", &self.shared.config)
            .finish()
    }
}

/// A service's view of the cache: the fast path, without locks or clock reads.
#[derive(Clone)]
pub(crate) struct Reader {
    view: arc_swap::Cache<Arc<ArcSwapOption<Entry>>, Option<Arc<Entry>>>,
    cache: TokenCache,
}

impl Reader {
    /// The cached token if it can be used now; `None` if the caller must wait for a fetch.
    ///
    /// Reads one pointer and one phase byte. Inside the refresh window the first caller
    /// also starts the background refresh.
    #[inline]
    pub(crate) fn usable_token(&mut self) -> Option<(&Token, &TokenCache)> {
        let entry = self.view.load().as_ref()?;
        match entry.phase.load(Ordering::Acquire) {
            FRESH | REFRESHING => Some((&entry.token, &self.cache)),
            REFRESH_DUE => {
                self.cache.shared.refresh_if_due(entry);
                Some((&entry.token, &self.cache))
            }
            _ => None,
        }
    }

    pub(crate) fn cache(&self) -> &TokenCache {
        &self.cache
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cache.fmt(f)
    }
}

impl Shared {
    fn lock_flight(&self) -> MutexGuard<'_, Flight> {
        lock(&self.flight)
    }

    /// Starts the one fetch, on its own task. The caller holds the flight lock.
    fn start_fetch(
        self: &Arc<Self>,
        flight: &mut Flight,
    ) -> Result<watch::Receiver<FetchResult>, FetchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            FetchError::permanent(
                "the token cache needs a tokio runtime to fetch tokens; call it from within one",
            )
        })?;
        let (sender, receiver) = watch::channel(None);
        let source = self.source.clone();
        let shared = Arc::downgrade(self);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("fetching a new token");
        let task = runtime.spawn(async move {
            let result = source.fetch().await;
            if let Some(shared) = shared.upgrade() {
                shared.finish_fetch(&result);
            }
            // Nobody waiting is fine: the token is cached for the next caller.
            let _ = sender.send(Some(result));
        });
        flight.in_flight = Some((receiver.clone(), task.abort_handle()));
        Ok(receiver)
    }

    fn finish_fetch(self: &Arc<Self>, result: &Result<Token, FetchError>) {
        let mut flight = self.lock_flight();
        flight.in_flight = None;
        match result {
            Ok(token) => {
                if let Some(failure) = flight.failure.take() {
                    tracing::info!(
                        failed_attempts = failure.consecutive,
                        "token fetch succeeded after failures"
                    );
                }
                self.store(token.clone(), &mut flight);
            }
            Err(error) => {
                let consecutive = flight.failure.as_ref().map_or(0, |f| f.consecutive) + 1;
                let mut wait = self.config.backoff_after(consecutive);
                if error.is_permanent() {
                    wait = wait.max(self.config.permanent_error_ttl);
                }
                if let Some(retry_after) = error.retry_after() {
                    wait = wait.max(retry_after);
                }
                tracing::warn!(
                    error = %error,
                    consecutive_failures = consecutive,
                    retry_in_ms = wait.as_millis() as u64,
                    "token fetch failed"
                );
                flight.failure = Some(Failure {
                    error: error.clone(),
                    retry_at: Instant::now() + wait,
                    consecutive,
                });
            }
        }
    }

    /// Makes `token` the cached one and sets the timer that moves it through its phases.
    fn store(self: &Arc<Self>, token: Token, flight: &mut Flight) {
        let now = Instant::now();
        let mut refresh_at = None;
        let mut expire_at = None;
        if let Some(expires_at) = token.expires_at() {
            let deadlines = self
                .config
                .deadlines(expires_at.saturating_duration_since(now));
            refresh_at = Some(now + deadlines.refresh_in);
            expire_at = Some(now + deadlines.expire_in);
        }
        if let Some(hint) = token.refresh_after() {
            refresh_at = Some(refresh_at.map_or(hint, |at: Instant| at.min(hint)));
        }
        let phase = if expire_at.is_some_and(|at| at <= now) {
            EXPIRED
        } else if refresh_at.is_some_and(|at| at <= now) {
            REFRESH_DUE
        } else {
            FRESH
        };
        let entry = Arc::new(Entry {
            token,
            phase: AtomicU8::new(phase),
            expire_at,
            generation: NonZeroU64::MIN.saturating_add(GENERATIONS.fetch_add(1, Ordering::AcqRel)),
        });
        if let Some(timer) = flight.timer.take() {
            timer.abort();
        }
        if phase != EXPIRED && (refresh_at.is_some() || expire_at.is_some()) {
            flight.timer = Some(spawn_phase_timer(&entry, refresh_at, expire_at));
        }
        self.current.store(Some(entry));
        tracing::debug!(
            expires_in_s = expire_at.map(|at| at.saturating_duration_since(now).as_secs()),
            refresh_in_s = refresh_at.map(|at| at.saturating_duration_since(now).as_secs()),
            "new token cached"
        );
    }

    /// Inside the refresh window: the first caller to see it starts the background refresh.
    #[cold]
    #[inline(never)]
    fn refresh_if_due(self: &Arc<Self>, entry: &Arc<Entry>) {
        if entry
            .phase
            .compare_exchange(REFRESH_DUE, REFRESHING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Without a runtime we cannot refresh ahead; callers will wait at expiry instead.
            return;
        };
        tracing::debug!("token inside its refresh window; refreshing in the background");
        let shared = Arc::downgrade(self);
        let entry = Arc::downgrade(entry);
        let task = runtime.spawn(refresh_in_background(shared, entry));
        if let Some(previous) = lock(&self.refresher).replace(task.abort_handle()) {
            previous.abort();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let flight = self.flight.get_mut().unwrap_or_else(|p| p.into_inner());
        let tasks = [
            flight.in_flight.take().map(|(_, task)| task),
            flight.timer.take(),
            lock(&self.refresher).take(),
        ];
        for task in tasks.into_iter().flatten() {
            task.abort();
        }
    }
}

/// Keeps fetching, with backoff, until a new token is stored or the current one expires
/// (then callers take over and wait for the fetch themselves).
async fn refresh_in_background(shared: Weak<Shared>, entry: Weak<Entry>) {
    loop {
        let step = match (shared.upgrade(), entry.upgrade()) {
            (Some(shared), Some(entry)) => shared.next_refresh_step(&entry),
            _ => Step::Stop,
        };
        match step {
            Step::Wait(receiver) => {
                if wait_for(receiver).await.is_ok() {
                    return;
                }
            }
            Step::BackOff(until) => tokio::time::sleep_until(until).await,
            Step::Stop => return,
        }
    }
}

/// One turn of the background refresh loop.
enum Step {
    Wait(watch::Receiver<FetchResult>),
    BackOff(Instant),
    Stop,
}

impl Shared {
    fn next_refresh_step(self: &Arc<Self>, entry: &Arc<Entry>) -> Step {
        let still_current = self
            .current
            .load()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, entry));
        let now = Instant::now();
        if !still_current || !entry.usable(now) {
            return Step::Stop;
        }
        let mut flight = self.lock_flight();
        if let Some((receiver, _)) = &flight.in_flight {
            return Step::Wait(receiver.clone());
        }
        match flight.failure.as_ref().map(|f| f.retry_at) {
            Some(retry_at) if now < retry_at => Step::BackOff(retry_at),
            _ => self.start_fetch(&mut flight).map_or(Step::Stop, Step::Wait),
        }
    }
}

/// Moves an entry to "refresh due" and then to "expired" at the given instants.
fn spawn_phase_timer(
    entry: &Arc<Entry>,
    refresh_at: Option<Instant>,
    expire_at: Option<Instant>,
) -> AbortHandle {
    let entry = Arc::downgrade(entry);
    let timer = async move {
        if let Some(at) = refresh_at {
            tokio::time::sleep_until(at).await;
            let Some(entry) = entry.upgrade() else {
                return;
            };
            let _ = entry.phase.compare_exchange(
                FRESH,
                REFRESH_DUE,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        if let Some(at) = expire_at {
            tokio::time::sleep_until(at).await;
            if let Some(entry) = entry.upgrade() {
                entry.phase.store(EXPIRED, Ordering::Release);
            }
        }
    };
    // `store` runs inside a fetch task, so a runtime is always there.
    tokio::spawn(timer).abort_handle()
}

/// A panic while holding one of our locks leaves consistent data (every write is a single
/// field store), so a poisoned lock is safe to keep using.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn wait_for(mut receiver: watch::Receiver<FetchResult>) -> Result<Token, FetchError> {
    match receiver.wait_for(Option::is_some).await {
        Ok(result) => result
            .clone()
            .unwrap_or_else(|| Err(FetchError::transient("token fetch ended without a result"))),
        Err(_) => Err(FetchError::transient(
            "the token fetch was cancelled before it finished (the token source panicked or \
             the runtime is shutting down); the next request will try again",
        )),
    }
}
