//! [`FleetConfig`]: the timings of the fleet's refresh protocol, as a value.

use std::time::Duration;

/// The timings of a fleet that shares one rotating refresh token, for
/// [`RefreshTokenBuilder::fleet`](crate::RefreshTokenBuilder::fleet); see
/// [`share_through`](crate::RefreshTokenBuilder::share_through) for the protocol.
///
/// The defaults suit a fleet of up to about 10,000 replicas on one Redis (the store load
/// is in the README's fleet section). Tests can make every timing short.
///
/// Every duration is at most a day; a longer one is shortened to it.
#[derive(Clone, Debug)]
pub struct FleetConfig {
    pub(crate) store_timeout: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) max_poll_interval: Duration,
    pub(crate) check_interval: Duration,
    pub(crate) settle: Option<Duration>,
    pub(crate) max_wait: Duration,
    pub(crate) replica_id: Option<String>,
}

const A_DAY: Duration = Duration::from_secs(24 * 60 * 60);

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            store_timeout: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            max_poll_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(5),
            settle: None,
            max_wait: Duration::from_secs(15),
            replica_id: None,
        }
    }
}

impl FleetConfig {
    /// The defaults: 500 ms per store operation, waits polled from every 50 ms backing off
    /// to every second, a check every 5 s, a settle computed from the check interval and
    /// the token endpoint's limits, 15 s of waiting per fetch, a random replica id.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time limit of each store operation (default 500 ms). Past it the store counts as
    /// unreachable for that step, and the replica does not present its own copy.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = at_most_a_day(timeout.max(Duration::from_millis(1)));
        self
    }

    /// How soon a replica that waits (for another replica's refresh, or for a settle) looks
    /// at the store again (default 50 ms); each look doubles it, with jitter, up to
    /// [`max_poll_interval`](Self::max_poll_interval).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = at_most_a_day(interval.max(Duration::from_millis(1)));
        self
    }

    /// The longest gap between two looks of a waiting replica (default 1 s).
    #[must_use]
    pub fn max_poll_interval(mut self, interval: Duration) -> Self {
        self.max_poll_interval = at_most_a_day(interval.max(Duration::from_millis(1)));
        self
    }

    /// How often every replica reads the store between refreshes (default 5 s, each gap
    /// jittered by ±20% so a fleet started together spreads out): it adopts a newer refresh
    /// token, finishes what a lost store reply left undone, and puts its copy back after a
    /// data loss. One read per replica per interval is the fleet's idle load on the store.
    #[must_use]
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = at_most_a_day(interval.max(Duration::from_millis(1)));
        self
    }

    /// How long nobody presents a refresh token after a replica found the store without
    /// the fleet's (a restart without persistence, a flush, an eviction, a damaged value)
    /// and put its own back: long enough for every live replica to put back its copy
    /// (the newest generation wins) and for a refresh that was in flight during the loss to
    /// publish its result.
    ///
    /// Default: 1.5 check intervals (the longest jittered gap is 1.2) plus the store
    /// timeout, plus the longest a refresh at the token endpoint can take with its retries
    /// (118 s with every default). A shorter settle is safe only if every replica that may
    /// hold a newer copy, or be presenting one, reaches the store within it. A brand-new
    /// fleet pays it at its first refresh unless the grant was put in the store with
    /// [`RefreshToken::seed_store`](crate::RefreshToken::seed_store).
    #[must_use]
    pub fn settle(mut self, settle: Duration) -> Self {
        self.settle = Some(at_most_a_day(settle));
        self
    }

    /// How long one fetch waits for another replica's refresh or for a settle before it
    /// fails with a transient error that says what it waited for (default 15 s). The cache
    /// keeps serving a still-valid access token and tries again after a backoff.
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.max_wait = at_most_a_day(wait);
        self
    }

    /// The name this replica records while it presents the fleet's refresh token (default:
    /// random for each process).
    ///
    /// Give each replica a name that is unique in the fleet and stable across its restarts
    /// (a StatefulSet pod name, a host name): a replica that dies while presenting then
    /// resumes its own unfinished refresh when it comes back. With random names, the refresh
    /// of a replica that died mid-request is never resumed by anyone, as nobody can tell a
    /// dead replica from one that is cut off and will still publish; the others report it
    /// (see the README's fleet section for what to do). Two live replicas must never share
    /// a name.
    #[must_use]
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.replica_id = Some(id.into());
        self
    }

    /// How long a replica watches the store before its first presentation: one and a half
    /// check intervals (the longest jittered gap is 1.2) and a store timeout, so that every
    /// other replica had the chance to put back a newer copy than the store's.
    pub(crate) fn watch_first(&self) -> Duration {
        self.check_interval
            .mul_f64(1.5)
            .saturating_add(self.store_timeout)
    }

    /// The settle in force: the configured one, or the default computed with the longest
    /// refresh can take (`longest_refresh`).
    pub(crate) fn settle_for(&self, longest_refresh: Duration) -> Duration {
        self.settle
            .unwrap_or_else(|| self.watch_first().saturating_add(longest_refresh))
    }
}

fn at_most_a_day(duration: Duration) -> Duration {
    duration.min(A_DAY)
}
