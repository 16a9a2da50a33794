//! Retries inside one token request: how many attempts, how long to wait between them, and
//! how much of a server's `Retry-After` to wait out before handing the failure to the cache;
//! and the loop that runs the attempts.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use http::StatusCode;
use tower_bearer::FetchError;

use crate::transport::{StatusClass, Target};

/// How a token source retries a failed token request before giving up on that fetch.
///
/// One [`fetch`](tower_bearer::TokenSource::fetch) makes up to
/// [`max_attempts`](Self::max_attempts) requests to the token endpoint. A request is tried
/// again only when the failure may be brief:
///
/// - the request could not be sent or the response not read (connection refused or reset,
///   TLS or DNS failure),
/// - no response within the [`timeout`](crate::EndpointBuilder::timeout),
/// - a 5xx status, 429 Too Many Requests or 408 Request Timeout: the statuses that say
///   asking again later may succeed, the same for every request of this crate and for
///   [`FetchError::is_transient`](tower_bearer::FetchError::is_transient).
///
/// With [`retry_processed(false)`](Self::retry_processed) (the default of the
/// [`RefreshToken`](crate::RefreshToken) source, [`for_refresh_tokens`](Self::for_refresh_tokens))
/// only failures to connect, 429 and 408 are retried: those the server cannot have acted on.
///
/// Every other answer is final at once: OAuth errors such as `invalid_client`,
/// `invalid_grant`, `unauthorized_client` and `invalid_scope` (they fail the same way until
/// someone changes the configuration, and repeating wrong credentials can lock a client out),
/// other 4xx statuses, and success responses that are not a usable token.
///
/// Between attempts it waits an exponential backoff with "equal jitter": the `n`-th retry
/// waits a random time between half and all of `initial_backoff × 2^(n-1)`, capped at
/// [`max_backoff`](Self::max_backoff). When the server sent `Retry-After` (seconds or an
/// HTTP date, RFC 9110 section 10.2.3), it waits at least that long. If the server asks for
/// more than [`max_retry_after`](Self::max_retry_after), or no attempt is left, the fetch
/// stops there and fails with the transient error, carrying the server's `Retry-After` in
/// [`FetchError::retry_after`](tower_bearer::FetchError::retry_after) so the
/// [`TokenCache`](tower_bearer::TokenCache) backs off for that long (while it keeps serving a
/// still-valid token) instead of holding callers in this fetch.
///
/// # Time bound
///
/// A fetch takes at most
/// `max_attempts × timeout + (max_attempts - 1) × max(max_backoff, max_retry_after)`;
/// [`max_total_wait`](Self::max_total_wait) is the second term. With the defaults and the
/// default 30 s timeout that is 3 × 30 s + 2 × 10 s = 110 s in the worst case (three
/// requests that each hang until the timeout); a server that answers at once with 503s
/// costs well under a second.
///
/// # Defaults and why
///
/// - [`DEFAULT_MAX_ATTEMPTS`](Self::DEFAULT_MAX_ATTEMPTS), 3 attempts in total: a blip
///   (a restarting pod, a dropped pooled connection) is ridden out inside the fetch, while a
///   real outage reaches the cache after a few hundred milliseconds; the cache then backs off
///   on its own and, if the token is still valid, nobody notices. Three is also what the AWS
///   and Azure SDKs use by default.
/// - [`DEFAULT_INITIAL_BACKOFF`](Self::DEFAULT_INITIAL_BACKOFF), 100 ms, doubling: long
///   enough for a reset connection or a load balancer to pick another backend, short enough
///   that callers waiting on an expired token barely notice.
/// - [`DEFAULT_MAX_BACKOFF`](Self::DEFAULT_MAX_BACKOFF), 5 s: only reached with a larger
///   `max_attempts`; longer pauses are the cache's backoff's job.
/// - [`DEFAULT_MAX_RETRY_AFTER`](Self::DEFAULT_MAX_RETRY_AFTER), 10 s: a short pause the
///   server asks for is cheaper to wait out than to turn into an error for callers waiting on
///   this fetch; a longer one goes to the cache, which fails waiting callers fast instead of
///   holding them and keeps serving a still-valid token meanwhile.
/// - Equal rather than full jitter: the wait never collapses to almost zero, so a struggling
///   server always gets at least half the pause, while replicas that failed together still
///   spread out. The cache's own backoff uses the same scheme.
///
/// ```
/// use std::time::Duration;
/// use tower_bearer_oauth2::{Endpoint, RetryPolicy};
///
/// let patient = RetryPolicy::new()
///     .max_attempts(5)
///     .initial_backoff(Duration::from_millis(200))
///     .max_retry_after(Duration::from_secs(30));
/// // Waits at most 4 × 30 s between attempts, plus 5 × the timeout for the requests.
/// assert_eq!(patient.max_total_wait(), Duration::from_secs(120));
///
/// let builder = Endpoint::builder("https://auth.example.com/token").retry(patient);
/// # let _ = builder;
///
/// // One request per fetch; the cache's backoff is the only retry.
/// let single = Endpoint::builder("https://auth.example.com/token").retry(RetryPolicy::none());
/// # let _ = single;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
    retry_processed: bool,
}

impl RetryPolicy {
    /// The default [`max_attempts`](Self::max_attempts): 3 requests in total.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
    /// The default [`initial_backoff`](Self::initial_backoff): 100 ms.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
    /// The default [`max_backoff`](Self::max_backoff): 5 s.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
    /// The default [`max_retry_after`](Self::max_retry_after): 10 s.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

    /// The default policy: 3 attempts, backoff from 100 ms doubling up to 5 s, `Retry-After`
    /// honoured up to 10 s. See the type's documentation for the reasons.
    pub const fn new() -> Self {
        RetryPolicy {
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
            retry_processed: true,
        }
    }

    /// The default policy of the [`RefreshToken`](crate::RefreshToken) source: like
    /// [`new`](Self::new), but with [`retry_processed(false)`](Self::retry_processed), so only
    /// connection failures (the request never left), 429 and 408 (the server says it did not
    /// act) are retried.
    ///
    /// Why: with refresh token rotation, a refresh request the server processed has already
    /// used up the refresh token it carried. If the answer is then lost (a timeout, a reset
    /// connection, a 502 from a proxy after the server acted), sending the same request
    /// again presents a refresh token the server has seen before; servers with reuse
    /// detection (RFC 9700 section 4.14.2, the OAuth 2.0 Security BCP) take that as theft
    /// and revoke the whole grant, logging the user out for good. Failing the fetch instead
    /// lets the cache back off and try again later, which costs the same replay but only
    /// once, and only when the caller still needs a token.
    pub const fn for_refresh_tokens() -> Self {
        Self::new().retry_processed(false)
    }

    /// No retries: each fetch makes exactly one request, and every failure goes straight to
    /// the cache, which backs off between fetches.
    pub const fn none() -> Self {
        Self::new().max_attempts(1)
    }

    /// How many requests one fetch may make in total, the first included (default 3).
    /// `1` means no retries. `0` is refused by
    /// [`EndpointBuilder::build`](crate::EndpointBuilder::build), as a fetch needs at least
    /// one request.
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The backoff before the first retry, doubling for each one after (default 100 ms).
    /// The actual wait is a random time between half and all of it.
    #[must_use]
    pub const fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest backoff between two attempts, before jitter (default 5 s). A value below
    /// [`initial_backoff`](Self::initial_backoff) caps every backoff at itself.
    #[must_use]
    pub const fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// The longest `Retry-After` waited out inside one fetch (default 10 s). When the server
    /// asks for more, the fetch fails at once with a transient error that carries the
    /// server's wait, and the cache backs off for it. `Duration::ZERO` waits out none: any
    /// `Retry-After` above zero ends the fetch.
    #[must_use]
    pub const fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Whether to retry failures after which the server may have processed the request
    /// (default `true`): timeouts, connections that broke after the request was sent, and
    /// 5xx answers. With `false` only failures to connect, 429 Too Many Requests and 408
    /// Request Timeout are retried, as each means the server did not act on the request. See
    /// [`for_refresh_tokens`](Self::for_refresh_tokens) for why a refresh wants that.
    #[must_use]
    pub const fn retry_processed(mut self, retry: bool) -> Self {
        self.retry_processed = retry;
        self
    }

    /// The most one fetch can spend waiting between its attempts:
    /// `(max_attempts - 1) × max(max_backoff, max_retry_after)`. Add `max_attempts` times
    /// the request timeout for the bound on the whole fetch.
    pub fn max_total_wait(&self) -> Duration {
        self.max_backoff
            .max(self.max_retry_after)
            .saturating_mul(self.max_attempts.saturating_sub(1))
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// What to do after attempt `attempt` (1-based) failed for `reason`, given the server's
    /// `Retry-After`.
    fn decide(&self, attempt: u32, reason: RetryReason, retry_after: Option<Duration>) -> Decision {
        if !self.retry_processed && reason.may_have_been_processed() {
            return Decision::GiveUp(GiveUp::MayHaveBeenProcessed);
        }
        if attempt >= self.max_attempts {
            return Decision::GiveUp(GiveUp::NoAttemptsLeft);
        }
        match retry_after {
            Some(wait) if wait > self.max_retry_after => {
                Decision::GiveUp(GiveUp::RetryAfterTooLong)
            }
            Some(wait) => Decision::Retry(self.backoff(attempt).max(wait)),
            None => Decision::Retry(self.backoff(attempt)),
        }
    }

    /// Runs `attempt_once` until it succeeds, fails for good, or the policy says stop.
    /// Returns the value and the number of the attempt that produced it, or the last
    /// attempt's error. `target` names the endpoint in the log.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        target: Target<'_>,
        mut attempt_once: F,
    ) -> Result<(T, u32), FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let max_attempts = self.attempts().max(1);
        let mut attempt = 1;
        loop {
            let failure = match attempt_once().await {
                Ok(value) => return Ok((value, attempt)),
                Err(failure) => failure,
            };
            let Some(reason) = failure.retry else {
                tracing::debug!(error = %failure.error, attempt, "{} request failed", target.name);
                return Err(failure.error);
            };
            match self.decide(attempt, reason, failure.error.retry_after()) {
                Decision::Retry(wait) => {
                    tracing::warn!(
                        url = %target.url,
                        attempt,
                        max_attempts,
                        reason = %reason,
                        retry_in_ms = wait.as_millis() as u64,
                        error = %failure.error,
                        "{} request failed, retrying",
                        target.name
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Decision::GiveUp(why) => {
                    let retry_after = failure.error.retry_after();
                    tracing::debug!(
                        attempt,
                        reason = %reason,
                        retry_after_ms = retry_after.map(|wait| wait.as_millis() as u64),
                        not_retried_because = %why,
                        error = %failure.error,
                        "{} request failed",
                        target.name
                    );
                    return Err(failure.error);
                }
            }
        }
    }

    /// The wait before retry number `retry` (1-based), with equal jitter.
    fn backoff(&self, retry: u32) -> Duration {
        tower_bearer::Backoff::new(self.initial_backoff, self.max_backoff).wait(retry)
    }
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// A failed attempt, and whether repeating it may help.
pub(crate) struct Failure {
    pub(crate) error: FetchError,
    /// `None` when another attempt would fail the same way.
    pub(crate) retry: Option<RetryReason>,
}

impl Failure {
    pub(crate) fn last(error: FetchError) -> Self {
        Failure { error, retry: None }
    }

    pub(crate) fn retryable(error: FetchError, reason: RetryReason) -> Self {
        Failure {
            error,
            retry: Some(reason),
        }
    }
}

/// After a failed attempt that may be brief: wait and try again, or stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Retry(Duration),
    GiveUp(GiveUp),
}

/// Why a retryable failure ends the fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GiveUp {
    NoAttemptsLeft,
    RetryAfterTooLong,
    MayHaveBeenProcessed,
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GiveUp::NoAttemptsLeft => "no attempts left",
            GiveUp::RetryAfterTooLong => "Retry-After is longer than the policy waits out",
            GiveUp::MayHaveBeenProcessed => {
                "the server may have processed the request, and the policy does not replay such"
            }
        })
    }
}

/// Why a failed attempt may succeed if repeated, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RetryReason {
    /// No connection could be made, so the request never left.
    Connect,
    /// The request may have been sent before the connection failed.
    Transport,
    Timeout,
    Status(StatusCode),
}

impl RetryReason {
    /// The statuses retried inside a fetch: the [transient](StatusClass::of) ones, 5xx,
    /// 429 and 408.
    pub(crate) fn for_status(status: StatusCode) -> Option<Self> {
        StatusClass::of(status)
            .is_transient()
            .then_some(RetryReason::Status(status))
    }

    /// Whether the server may have acted on the request: everything but a failure to
    /// connect, 429 (RFC 6585 section 4: the server refused it for the rate) and 408
    /// (RFC 9110 section 15.5.9: the server did not receive the whole request).
    fn may_have_been_processed(self) -> bool {
        !matches!(
            self,
            RetryReason::Connect
                | RetryReason::Status(StatusCode::TOO_MANY_REQUESTS | StatusCode::REQUEST_TIMEOUT)
        )
    }
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Connect => f.write_str("connection failed"),
            RetryReason::Transport => f.write_str("transport error"),
            RetryReason::Timeout => f.write_str("timeout"),
            RetryReason::Status(status) => write!(f, "HTTP {}", status.as_u16()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const T: RetryReason = RetryReason::Transport;

    #[test]
    fn backoff_doubles_with_equal_jitter_and_caps() {
        let policy = RetryPolicy::new().max_attempts(10);
        for _ in 0..200 {
            for (retry, full) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (6, 3200),
                (7, 5000),
                (9, 5000),
            ] {
                let wait = policy.backoff(retry);
                assert!(
                    wait >= full * MS / 2 && wait <= full * MS,
                    "{retry}: {wait:?}"
                );
            }
        }
        assert!(policy.backoff(u32::MAX) <= Duration::from_secs(5));
        let tiny_cap = RetryPolicy::new().max_backoff(Duration::ZERO);
        assert!(tiny_cap.backoff(5) <= 100 * MS);
    }

    #[test]
    fn decide_counts_attempts_and_honours_retry_after() {
        let policy = RetryPolicy::new();
        assert!(matches!(policy.decide(1, T, None), Decision::Retry(wait) if wait <= 100 * MS));
        assert!(matches!(policy.decide(2, T, None), Decision::Retry(wait) if wait <= 200 * MS));
        assert_eq!(
            policy.decide(3, T, None),
            Decision::GiveUp(GiveUp::NoAttemptsLeft)
        );
        assert_eq!(
            policy.decide(1, T, Some(Duration::from_secs(7))),
            Decision::Retry(Duration::from_secs(7))
        );
        assert_eq!(
            policy.decide(1, T, Some(Duration::from_secs(10))),
            Decision::Retry(Duration::from_secs(10))
        );
        assert_eq!(
            policy.decide(1, T, Some(Duration::from_secs(11))),
            Decision::GiveUp(GiveUp::RetryAfterTooLong)
        );
        // A Retry-After shorter than the backoff does not shorten it.
        assert!(
            matches!(policy.decide(2, T, Some(Duration::ZERO)), Decision::Retry(wait) if wait >= 100 * MS)
        );
        assert_eq!(
            RetryPolicy::none().decide(1, T, None),
            Decision::GiveUp(GiveUp::NoAttemptsLeft)
        );
    }

    #[test]
    fn refresh_policy_retries_only_what_the_server_did_not_process() {
        let policy = RetryPolicy::for_refresh_tokens();
        let too_many = RetryReason::Status(StatusCode::TOO_MANY_REQUESTS);
        assert!(matches!(
            policy.decide(1, RetryReason::Connect, None),
            Decision::Retry(_)
        ));
        assert_eq!(
            policy.decide(1, too_many, Some(Duration::from_secs(2))),
            Decision::Retry(Duration::from_secs(2))
        );
        let request_timeout = RetryReason::Status(StatusCode::REQUEST_TIMEOUT);
        assert!(matches!(
            policy.decide(1, request_timeout, None),
            Decision::Retry(_)
        ));
        for processed in [
            RetryReason::Transport,
            RetryReason::Timeout,
            RetryReason::Status(StatusCode::BAD_GATEWAY),
            RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE),
        ] {
            assert_eq!(
                policy.decide(1, processed, None),
                Decision::GiveUp(GiveUp::MayHaveBeenProcessed),
                "{processed}"
            );
            assert!(matches!(
                RetryPolicy::new().decide(1, processed, None),
                Decision::Retry(_)
            ));
        }
        assert_eq!(
            policy.decide(3, RetryReason::Connect, None),
            Decision::GiveUp(GiveUp::NoAttemptsLeft)
        );
    }

    #[test]
    fn total_wait_is_bounded() {
        assert_eq!(RetryPolicy::new().max_total_wait(), Duration::from_secs(20));
        assert_eq!(RetryPolicy::none().max_total_wait(), Duration::ZERO);
        assert_eq!(
            RetryPolicy::new().max_attempts(0).max_total_wait(),
            Duration::ZERO
        );
    }

    #[test]
    fn retried_statuses() {
        for status in [500, 502, 503, 504, 429, 408] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                RetryReason::for_status(status),
                Some(RetryReason::Status(status))
            );
        }
        for status in [400, 401, 403, 404, 409, 200, 302] {
            assert_eq!(
                RetryReason::for_status(StatusCode::from_u16(status).unwrap()),
                None
            );
        }
        assert_eq!(
            RetryReason::Status(StatusCode::SERVICE_UNAVAILABLE).to_string(),
            "HTTP 503"
        );
    }
}
