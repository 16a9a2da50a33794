//! Moving a cached token through its phases: the timer that marks an `Entry` "refresh due"
//! and then "expired", and the background refresh that the first caller inside the refresh
//! window starts.
//!
//! Both hold the cache and the entry weakly, so neither keeps them alive. The refresh waits
//! on the same single fetch as callers do (`fetch.rs`).

use std::sync::{Arc, Weak};

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::entry::{Entry, Phase};
use super::fetch::{wait_for, FetchResult};
use super::Shared;
use crate::sync::lock;

impl Shared {
    /// Inside the refresh window: the first caller to see it starts the background refresh.
    #[cold]
    #[inline(never)]
    pub(super) fn refresh_if_due(self: &Arc<Self>, entry: &Arc<Entry>) {
        if !entry.phase.advance(Phase::RefreshDue, Phase::Refreshing) {
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
        if let Some(in_flight) = flight.in_flight.as_ref().filter(|f| f.is_running()) {
            return Step::Wait(in_flight.receiver.clone());
        }
        match flight.failure.as_ref().map(|f| f.retry_at) {
            Some(retry_at) if now < retry_at => Step::BackOff(retry_at),
            _ => self.start_fetch(&mut flight).map_or(Step::Stop, Step::Wait),
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

/// Moves an entry to "refresh due" and then to "expired" at the given instants.
pub(super) fn spawn_phase_timer(
    entry: &Arc<Entry>,
    refresh_at: Option<Instant>,
    expire_at: Option<Instant>,
) -> Option<AbortHandle> {
    let entry = Arc::downgrade(entry);
    let timer = async move {
        if let Some(at) = refresh_at {
            tokio::time::sleep_until(at).await;
            let Some(entry) = entry.upgrade() else {
                return;
            };
            entry.phase.advance(Phase::Fresh, Phase::RefreshDue);
        }
        if let Some(at) = expire_at {
            tokio::time::sleep_until(at).await;
            if let Some(entry) = entry.upgrade() {
                entry.phase.expire();
            }
        }
    };
    // `store` runs inside a fetch task, so a runtime is there; without one, `usable` still
    // checks the expiry against the clock, only the refresh ahead is lost.
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    Some(runtime.spawn(timer).abort_handle())
}
