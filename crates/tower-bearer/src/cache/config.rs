//! How long tokens are used, when they are refreshed, and how failures back off.

use std::time::Duration;

use crate::{FetchError, Token};

/// The shortest wait between fetches after a failure: a source that fails at once is never
/// asked in a loop, whatever the configured backoff.
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// Settings for a [`TokenCache`](super::TokenCache).
///
/// The defaults, and why:
///
/// - **Expiry skew 30 s.** A token is treated as expired 30 s before the server's
///   `expires_in` says, to cover clock differences between the authorization server and the
///   API, and the time a request spends in flight. Go's `x/oauth2` uses 10 s, which proved
///   too small in practice; Spring and Duende use 60 s. The skew only matters when refreshes
///   keep failing (the refresh window below normally replaces the token long before), so we
///   take the middle and keep using a valid token for longer during an outage.
/// - **Refresh window 5 minutes or 10 % of the lifetime, whichever is longer.** Inside it,
///   the first caller starts one background refresh and everyone keeps using the current
///   token, so nobody waits. Five minutes is what the Azure SDK uses; 10 % keeps the window
///   in proportion for tokens that live a day.
/// - **Up to 20 % jitter** added to the refresh window, so replicas that started together
///   do not all refresh in the same second.
/// - **Clamped for short-lived tokens:** the skew is at most a quarter of the lifetime and
///   the refresh window at most half of it, so a 60 s token is refreshed after 30 s and
///   used for 45 s, rather than refreshed on every call.
/// - **Backoff 1 s doubling to 60 s**, with jitter, honouring a server's `Retry-After`: an
///   unavailable authorization server sees at most one fetch per interval.
/// - **Permanent errors remembered for at least 5 s** (a wrong client secret): a burst of
///   callers gets the error at once without a burst of token requests.
/// - **Fetch timeout 5 minutes.** A source that never answers (a hung network mount, a
///   custom source waiting on something that never comes) is abandoned after this and
///   counts as a transient failure. It is longer than the OAuth crate's worst case with its
///   default settings (three attempts of 30 s and two backoffs of 10 s: 110 s), plus a
///   shared store's lease wait, so it never cuts a legitimate retry sequence short.
/// - **Repeated rejections back off too.** A token fetched because the server rejected the
///   previous one, and rejected again within the backoff interval, is kept (and the 401
///   returned) until that interval has passed; the interval grows like the fetch backoff.
///
/// Every duration may be anything up to `Duration::MAX`; none makes the cache panic. Token
/// lifetimes are at most [`Token::MAX_LIFETIME`] (a year), waits after a failure at most
/// the backoff maximum (a server's `Retry-After` included) or the permanent-error time, and
/// any wait is at most a year.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    pub(crate) expiry_skew: Duration,
    pub(crate) refresh_window: Duration,
    pub(crate) refresh_fraction: f64,
    pub(crate) refresh_jitter: f64,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) permanent_error_ttl: Duration,
    pub(crate) fetch_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            expiry_skew: Duration::from_secs(30),
            refresh_window: Duration::from_secs(300),
            refresh_fraction: 0.1,
            refresh_jitter: 0.2,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            permanent_error_ttl: Duration::from_secs(5),
            fetch_timeout: Duration::from_secs(300),
        }
    }
}

impl CacheConfig {
    /// The default settings, described above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Treat tokens as expired this long before their stated expiry (default 30 s).
    #[must_use]
    pub fn expiry_skew(mut self, skew: Duration) -> Self {
        self.expiry_skew = skew;
        self
    }

    /// Start a background refresh this long before expiry, or `fraction` of the lifetime
    /// before it if that is longer (defaults 5 minutes and 0.1).
    ///
    /// `fraction` is clamped to `0.0..=0.5`.
    #[must_use]
    pub fn refresh_window(mut self, window: Duration, fraction: f64) -> Self {
        self.refresh_window = window;
        self.refresh_fraction = clamp_fraction(fraction, 0.5);
        self
    }

    /// Lengthen the refresh window by a random part of itself, up to this fraction
    /// (default 0.2). `0.0` turns jitter off, which makes refresh times exact.
    #[must_use]
    pub fn refresh_jitter(mut self, fraction: f64) -> Self {
        self.refresh_jitter = clamp_fraction(fraction, 1.0);
        self
    }

    /// Back off from `initial`, doubling after each failure up to `max`, between failed
    /// fetches (defaults 1 s and 60 s). A server's `Retry-After` is honoured up to `max`.
    ///
    /// Both are clamped to between 10 ms and a year: a source that fails at once is never
    /// asked in a loop.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial.clamp(MIN_BACKOFF, Token::MAX_LIFETIME);
        self.backoff_max = max.clamp(self.backoff_initial, Token::MAX_LIFETIME);
        self
    }

    /// Remember a permanent error (a wrong secret) for at least this long (default 5 s; at
    /// most a year).
    #[must_use]
    pub fn permanent_error_ttl(mut self, ttl: Duration) -> Self {
        self.permanent_error_ttl = ttl.min(Token::MAX_LIFETIME);
        self
    }

    /// Abandon a fetch that has not finished after this long (default 5 minutes); it then
    /// fails with an error for which [`FetchError::is_timeout`] is true, and counts as a
    /// transient failure.
    ///
    /// Keep it longer than the source's own bound on a fetch (for the OAuth crate's sources,
    /// `max_attempts × timeout +` the retry policy's total wait), or it cuts retries short.
    #[must_use]
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout.min(Token::MAX_LIFETIME);
        self
    }

    /// The wait after the `consecutive`-th failed fetch in a row that ended with `error`.
    pub(crate) fn wait_after_failure(&self, consecutive: u32, error: &FetchError) -> Duration {
        let mut wait = self.backoff_after(consecutive);
        if error.is_permanent() {
            wait = wait.max(self.permanent_error_ttl);
        }
        if let Some(retry_after) = error.retry_after() {
            wait = wait.max(retry_after.min(self.backoff_max));
        }
        wait
    }

    /// The two deadlines for a token that lives `lifetime` from now: when to start a
    /// background refresh, and when to stop using it. Both are offsets from now.
    pub(crate) fn deadlines(&self, lifetime: Duration) -> Deadlines {
        let lifetime = lifetime.min(Token::MAX_LIFETIME);
        let skew = self.expiry_skew.min(lifetime / 4);
        let proportional = lifetime.mul_f64(self.refresh_fraction);
        // No longer than the lifetime before the jitter multiplies it, so nothing overflows.
        let window = self.refresh_window.max(proportional).min(lifetime);
        let jitter = window.mul_f64(self.refresh_jitter * fastrand::f64());
        let window = window.saturating_add(jitter).min(lifetime / 2).max(skew);
        Deadlines {
            refresh_in: lifetime - window,
            expire_in: lifetime - skew,
        }
    }

    /// The wait after the `attempt`-th consecutive failure (1-based): exponential, with
    /// "equal jitter" (half fixed, half random) so waits never collapse to zero.
    pub(crate) fn backoff_after(&self, attempt: u32) -> Duration {
        crate::Backoff::new(self.backoff_initial, self.backoff_max).wait(attempt)
    }
}

fn clamp_fraction(fraction: f64, max: f64) -> f64 {
    if fraction.is_nan() {
        0.0
    } else {
        fraction.clamp(0.0, max)
    }
}

/// Offsets from the moment a token was received.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Deadlines {
    pub(crate) refresh_in: Duration,
    pub(crate) expire_in: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact() -> CacheConfig {
        CacheConfig::default().refresh_jitter(0.0)
    }

    #[test]
    fn half_hour_token_refreshes_five_minutes_early() {
        let d = exact().deadlines(Duration::from_secs(1800));
        assert_eq!(d.refresh_in, Duration::from_secs(1500));
        assert_eq!(d.expire_in, Duration::from_secs(1770));
    }

    #[test]
    fn day_long_token_uses_ten_percent() {
        let d = exact().deadlines(Duration::from_secs(86_400));
        assert_eq!(d.refresh_in, Duration::from_secs(86_400 - 8_640));
    }

    #[test]
    fn short_token_is_clamped() {
        let d = exact().deadlines(Duration::from_secs(60));
        assert_eq!(d.refresh_in, Duration::from_secs(30));
        assert_eq!(d.expire_in, Duration::from_secs(45));
        let d = exact().deadlines(Duration::ZERO);
        assert_eq!(d.expire_in, Duration::ZERO);
    }

    #[test]
    fn jitter_only_moves_refresh_earlier_within_bounds() {
        let config = CacheConfig::default();
        for _ in 0..1000 {
            let d = config.deadlines(Duration::from_secs(3600));
            // 10 % of an hour is 6 minutes, lengthened by up to 20 % of itself.
            assert!(d.refresh_in <= Duration::from_secs(3240));
            assert!(d.refresh_in >= Duration::from_secs(3168));
        }
    }

    #[test]
    fn huge_settings_and_lifetimes_do_not_overflow() {
        let config = CacheConfig::new()
            .expiry_skew(Duration::MAX)
            .refresh_window(Duration::MAX, 0.5)
            .refresh_jitter(1.0)
            .backoff(Duration::MAX, Duration::MAX)
            .permanent_error_ttl(Duration::MAX)
            .fetch_timeout(Duration::MAX);
        let d = config.deadlines(Duration::MAX);
        assert!(d.expire_in <= Token::MAX_LIFETIME && d.refresh_in <= d.expire_in);
        for attempt in [1, 2, 30, u32::MAX] {
            let error = FetchError::permanent("x").with_retry_after(Duration::MAX);
            assert!(config.wait_after_failure(attempt, &error) <= Token::MAX_LIFETIME);
        }
        assert!(config.fetch_timeout <= Token::MAX_LIFETIME);
    }

    #[test]
    fn zero_backoff_is_raised_and_retry_after_is_capped() {
        let config = CacheConfig::new().backoff(Duration::ZERO, Duration::ZERO);
        assert!(config.backoff_after(1) >= MIN_BACKOFF / 2);
        let config = CacheConfig::new().backoff(Duration::from_secs(1), Duration::from_secs(60));
        let asked = FetchError::transient("x").with_retry_after(Duration::from_secs(3600));
        assert_eq!(
            config.wait_after_failure(1, &asked),
            Duration::from_secs(60)
        );
        let asked = FetchError::transient("x").with_retry_after(Duration::from_secs(20));
        assert!(config.wait_after_failure(1, &asked) >= Duration::from_secs(20));
    }

    #[test]
    fn sub_second_lifetimes_keep_their_proportions() {
        let d = exact().deadlines(Duration::from_millis(500));
        assert_eq!(d.refresh_in, Duration::from_millis(250));
        assert_eq!(d.expire_in, Duration::from_millis(375));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let config = CacheConfig::default();
        for _ in 0..100 {
            let first = config.backoff_after(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let tenth = config.backoff_after(10);
            assert!(tenth >= Duration::from_secs(30) && tenth <= Duration::from_secs(60));
            assert!(config.backoff_after(u32::MAX) <= Duration::from_secs(60));
        }
    }
}
