//! Fetching a token: the one `Fetch` in flight for all callers, on its own task, and the
//! last `Failure`, which spaces fetches out by a backoff.
//!
//! `Flight` is the state under the cache's one lock. A fetch that succeeds hands its token
//! to `Shared::store` (in `mod.rs`), which makes it the cached `Entry` (`entry.rs`).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::entry::Rejection;
use super::{deadline, FailureKind, Shared};
use crate::error::Chain;
use crate::{FetchError, Token, TokenSource};

pub(super) type FetchResult = Option<Result<Token, FetchError>>;

/// What the cache's one lock guards: the fetch in flight, the last failure, the phase
/// timer of the cached entry and the last rejection.
#[derive(Default)]
pub(super) struct Flight {
    pub(super) in_flight: Option<InFlight>,
    pub(super) failure: Option<Failure>,
    pub(super) timer: Option<AbortHandle>,
    pub(super) rejection: Option<Rejection>,
}

pub(super) struct InFlight {
    pub(super) receiver: watch::Receiver<FetchResult>,
    pub(super) task: AbortHandle,
}

impl InFlight {
    /// A fetch that ended without clearing itself has dropped its sender. Not expected (the
    /// fetch's guard always clears it), but such a fetch must never be waited on.
    pub(super) fn is_running(&self) -> bool {
        self.receiver.has_changed().is_ok()
    }
}

pub(super) struct Failure {
    pub(super) error: FetchError,
    pub(super) retry_at: Instant,
    pub(super) consecutive: u32,
}

impl Shared {
    /// Starts the one fetch, on its own task. The caller holds the flight lock.
    pub(super) fn start_fetch(
        self: &Arc<Self>,
        flight: &mut Flight,
    ) -> Result<watch::Receiver<FetchResult>, FetchError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            FetchError::permanent(
                "the token cache needs a tokio runtime to fetch tokens; call it from within one",
            )
        })?;
        let (sender, receiver) = watch::channel(None);
        let fetch = Fetch {
            shared: Arc::downgrade(self),
            sender: Some(sender),
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::debug!("fetching a new token");
        let task = runtime.spawn(fetch.run(Arc::clone(&self.source), self.config.fetch_timeout));
        flight.in_flight = Some(InFlight {
            receiver: receiver.clone(),
            task: task.abort_handle(),
        });
        Ok(receiver)
    }

    /// Records how a fetch ended and returns what its waiters get.
    fn finish_fetch(
        self: &Arc<Self>,
        result: Result<Token, FetchError>,
    ) -> Result<Token, FetchError> {
        let mut flight = self.lock_flight();
        flight.in_flight = None;
        let result = result.and_then(|token| {
            if self.store(token.clone(), &mut flight) {
                Ok(token)
            } else {
                Err(FetchError::transient(
                    "the token source returned a token that had already expired (its lifetime \
                     was zero or in the past); the cache will ask again after a backoff",
                ))
            }
        });
        match &result {
            Ok(_) => {
                if let Some(failure) = flight.failure.take() {
                    tracing::info!(
                        failed_attempts = failure.consecutive,
                        "token fetch succeeded after failures"
                    );
                }
            }
            Err(error) => self.record_failure(error, &mut flight),
        }
        result
    }

    fn record_failure(&self, error: &FetchError, flight: &mut Flight) {
        let consecutive = flight
            .failure
            .as_ref()
            .map_or(0, |f| f.consecutive)
            .saturating_add(1);
        let wait = self.config.wait_after_failure(consecutive, error);
        tracing::warn!(
            error = %Chain(error),
            consecutive_failures = consecutive,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "token fetch failed"
        );
        flight.failure = Some(Failure {
            error: error.clone(),
            retry_at: deadline(Instant::now(), wait),
            consecutive,
        });
    }
}

/// One fetch from the source, on its own task.
///
/// Its result always reaches the cache and the waiters: if the task ends before the source
/// answers (aborted, or its runtime shut down), dropping it reports the fetch as cancelled.
struct Fetch {
    shared: Weak<Shared>,
    sender: Option<watch::Sender<FetchResult>>,
}

impl Fetch {
    async fn run(mut self, source: Arc<dyn TokenSource>, timeout: Duration) {
        let span = tracing::debug_span!("token_fetch", outcome = tracing::field::Empty);
        let started = Instant::now();
        let fetch = tracing::Instrument::instrument(
            CatchPanic {
                future: source.fetch(),
            },
            span.clone(),
        );
        let result = match tokio::time::timeout(timeout, fetch).await {
            Ok(Ok(result)) => result,
            Ok(Err(Panicked)) => Err(FetchError::source_panicked()),
            Err(_elapsed) => Err(FetchError::timed_out(timeout)),
        };
        let outcome = match &result {
            Ok(_) => "success",
            Err(error) => FailureKind::of(error).as_str(),
        };
        span.record("outcome", outcome);
        crate::metrics::fetched(outcome, started.elapsed());
        self.finish(result);
    }

    fn finish(&mut self, result: Result<Token, FetchError>) {
        let Some(sender) = self.sender.take() else {
            return;
        };
        let result = match self.shared.upgrade() {
            Some(shared) => shared.finish_fetch(result),
            None => result,
        };
        // Nobody waiting is fine: the token is cached for the next caller.
        let _ = sender.send(Some(result));
    }
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.finish(Err(FetchError::cancelled()));
    }
}

/// The source panicked; its payload is dropped unread, since it could hold a secret.
struct Panicked;

pin_project! {
    /// Turns a panic while polling `future` into `Err(Panicked)`.
    struct CatchPanic<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Panicked>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        // The future is not polled again after a panic, so no broken state is observed.
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(payload) => {
                // Dropping a payload can itself panic; that must not escape either.
                let _ = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Poll::Ready(Err(Panicked))
            }
        }
    }
}

pub(super) async fn wait_for(
    mut receiver: watch::Receiver<FetchResult>,
) -> Result<Token, FetchError> {
    match receiver.wait_for(Option::is_some).await {
        Ok(result) => result
            .clone()
            .unwrap_or_else(|| Err(FetchError::cancelled())),
        // The fetch's guard sends before the sender goes, so this is a fetch that vanished.
        Err(_) => Err(FetchError::cancelled()),
    }
}
