//! What a cache can tell a readiness probe or a dashboard: the signal that the
//! authorization server is failing, while the token it still holds keeps callers working.

use std::fmt;
use std::time::Duration;

use crate::FetchError;

/// A [`TokenCache`](super::TokenCache)'s state, from [`TokenCache::health`](super::TokenCache::health).
///
/// Nothing in it is secret: the last error is given by its kind, never its text.
///
/// ```
/// use tower_bearer::cache::HealthState;
/// # use tower_bearer::{source::StaticToken, TokenCache};
/// # let cache = TokenCache::new(StaticToken::new("t").unwrap());
/// let health = cache.health();
/// match health.state {
///     HealthState::Starting => { /* no token fetched yet: not ready */ }
///     HealthState::Healthy => { /* ready */ }
///     HealthState::Degraded => { /* ready, still serving: alert someone */ }
///     HealthState::Failing => { /* not ready: requests fail now */ }
///     _ => {}
/// }
/// assert!(!health.is_ready(), "nothing fetched yet");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheHealth {
    /// The summary a probe acts on.
    pub state: HealthState,
    /// How much longer the token held stays usable (expiry minus the skew); `None` without
    /// a usable token, or for a token without expiry.
    pub token_valid_for: Option<Duration>,
    /// Fetches that failed in a row, since the last one that succeeded.
    pub consecutive_failures: u32,
    /// What the last failed fetch failed with, if the last fetch failed.
    pub last_failure: Option<FailureKind>,
    /// How long until the cache tries the source again, while it backs off after a failure.
    pub next_attempt_in: Option<Duration>,
    /// Whether a fetch is running now.
    pub fetching: bool,
}

/// The summary in a [`CacheHealth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthState {
    /// No token fetched yet, and no failure either.
    Starting,
    /// A usable token, and the last fetch succeeded.
    Healthy,
    /// A usable token, but fetching its replacement keeps failing: callers are served, and
    /// will not be once [`token_valid_for`](CacheHealth::token_valid_for) runs out.
    Degraded,
    /// No usable token, and the last fetch failed: requests fail now.
    Failing,
}

/// What a failed fetch failed with, without its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// A failure that may go away by itself ([`FetchError::is_transient`]).
    Transient,
    /// A failure that needs a configuration change ([`FetchError::is_permanent`]).
    Permanent,
    /// The source panicked ([`FetchError::is_panic`]).
    Panic,
    /// The source took longer than the fetch timeout ([`FetchError::is_timeout`]).
    Timeout,
    /// The fetch was stopped before it finished ([`FetchError::is_cancelled`]).
    Cancelled,
}

impl FailureKind {
    pub(super) fn of(error: &FetchError) -> Self {
        if error.is_panic() {
            FailureKind::Panic
        } else if error.is_timeout() {
            FailureKind::Timeout
        } else if error.is_cancelled() {
            FailureKind::Cancelled
        } else if error.is_permanent() {
            FailureKind::Permanent
        } else {
            FailureKind::Transient
        }
    }

    /// A short lowercase name, for logs, metrics labels and health endpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Panic => "panic",
            FailureKind::Timeout => "timeout",
            FailureKind::Cancelled => "cancelled",
        }
    }
}

impl HealthState {
    /// A short lowercase name, for logs, metrics labels and health endpoints.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Starting => "starting",
            HealthState::Healthy => "healthy",
            HealthState::Degraded => "degraded",
            HealthState::Failing => "failing",
        }
    }
}

impl fmt::Display for HealthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl CacheHealth {
    /// Whether requests get a token now: the state is healthy or degraded.
    pub fn is_ready(&self) -> bool {
        matches!(self.state, HealthState::Healthy | HealthState::Degraded)
    }
}
