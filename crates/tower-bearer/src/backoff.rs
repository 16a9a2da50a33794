//! Exponential backoff with "equal jitter", the one formula behind the cache's waits after
//! failed fetches and the OAuth crate's retries, and for sources of your own that retry.

use std::time::Duration;

/// Waits that double from `initial` up to `max`, each half fixed and half random ("equal
/// jitter"), so they never collapse to zero and clients that failed together spread out.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer::Backoff;
///
/// let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// let third = backoff.wait(3); // the 3rd wait: from 200 ms to 400 ms
/// assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
/// assert!(backoff.wait(u32::MAX) <= Duration::from_secs(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits from `initial`, doubling, up to `max` (at least `initial`).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
        }
    }

    /// The first wait's upper bound.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The wait before the `attempt`-th retry (1-based): between half and all of
    /// `initial × 2^(attempt - 1)`, capped at `max`.
    pub fn wait(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let full = self.initial.saturating_mul(1u32 << exponent).min(self.max);
        full / 2 + (full / 2).mul_f64(fastrand::f64())
    }
}
