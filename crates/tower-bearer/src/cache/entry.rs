//! A cached token and where it is in its life: the `Entry`, its `Phase`, the `Reader`
//! through which a service takes it on the fast path, and what becomes of it when a server
//! rejects it (`Rejected`, and the `Rejection` streak that holds off repeats).
//!
//! Entries are made by `Shared::store` (in `mod.rs`) when a fetch (`fetch.rs`) succeeds, and
//! moved through their phases by the timer and the background refresh (`refresh.rs`).

use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use tokio::time::Instant;

use super::{deadline, registry, Shared, TokenCache};
use crate::Token;

/// Where a cached token is in its life. Moved on by the cache's timer task, so the fast
/// path reads one byte instead of the clock.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Fresh = 0,
    /// Inside the refresh window; the first caller to see it starts a background refresh.
    RefreshDue = 1,
    /// Inside the refresh window, with the background refresh started.
    Refreshing = 2,
    /// Past expiry minus the skew, or invalidated: callers wait for a fetch.
    Expired = 3,
}

impl Phase {
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Fresh => "fresh",
            Phase::RefreshDue => "refresh due",
            Phase::Refreshing => "refreshing",
            Phase::Expired => "expired",
        }
    }
}

/// A [`Phase`] that the timer, the fast path and invalidation share.
pub(super) struct PhaseCell(AtomicU8);

impl PhaseCell {
    pub(super) fn new(phase: Phase) -> Self {
        PhaseCell(AtomicU8::new(phase as u8))
    }

    #[inline]
    pub(super) fn load(&self) -> Phase {
        match self.0.load(Ordering::Acquire) {
            0 => Phase::Fresh,
            1 => Phase::RefreshDue,
            2 => Phase::Refreshing,
            _ => Phase::Expired,
        }
    }

    /// Moves from `from` to `to`; false if the phase was not `from`.
    pub(super) fn advance(&self, from: Phase, to: Phase) -> bool {
        self.0
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Expires the entry; false if it already was.
    pub(super) fn expire(&self) -> bool {
        self.0.swap(Phase::Expired as u8, Ordering::AcqRel) != Phase::Expired as u8
    }
}

/// A cached token and where it is in its life.
pub(crate) struct Entry {
    /// How a response future names this entry (see `registry`).
    pub(super) id: NonZeroU64,
    pub(super) token: Token,
    pub(super) phase: PhaseCell,
    pub(super) expire_at: Option<Instant>,
    pub(super) stored_at: Instant,
    /// The cache, for a response future that sees this token rejected.
    pub(super) owner: Weak<Shared>,
}

impl Entry {
    pub(super) fn usable(&self, now: Instant) -> bool {
        self.phase.load() != Phase::Expired && self.expire_at.is_none_or(|at| now < at)
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// The number that names this entry for [`Entry::reject_by_id`].
    pub(crate) fn id(&self) -> NonZeroU64 {
        self.id
    }

    /// Tells the cache that a server rejected the token of the entry with this id. An entry
    /// that no longer exists has been replaced already.
    #[cold]
    pub(crate) fn reject_by_id(id: NonZeroU64) -> Rejected {
        let Some(entry) = registry::find(id) else {
            return Rejected::Replaced;
        };
        match entry.owner.upgrade() {
            Some(shared) => shared.reject(|current| current.id == id),
            None => Rejected::Replaced,
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        registry::unregister(self.id);
    }
}

/// A service's view of the cache: the fast path, without locks or clock reads.
#[derive(Clone)]
pub(crate) struct Reader {
    view: arc_swap::Cache<Arc<ArcSwapOption<Entry>>, Option<Arc<Entry>>>,
    cache: TokenCache,
}

impl Reader {
    /// The cached entry if its token can be used now; `None` if the caller must wait for a
    /// fetch.
    ///
    /// Reads one pointer and one phase byte. Inside the refresh window the first caller
    /// also starts the background refresh.
    #[inline]
    pub(crate) fn usable_entry(&mut self) -> Option<&Arc<Entry>> {
        let entry = self.view.load().as_ref()?;
        match entry.phase.load() {
            Phase::Fresh | Phase::Refreshing => Some(entry),
            Phase::RefreshDue => {
                self.cache.shared.refresh_if_due(entry);
                Some(entry)
            }
            Phase::Expired => None,
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

impl TokenCache {
    pub(crate) fn reader(&self) -> Reader {
        Reader {
            view: arc_swap::Cache::new(Arc::clone(&self.shared.current)),
            cache: self.clone(),
        }
    }
}

/// What became of a token a server rejected; see [`TokenCache::reject`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// It was the cached token and is now invalidated: the next caller fetches.
    Invalidated,
    /// The cache already holds another token, or is already fetching one.
    Replaced,
    /// It replaced a token that was rejected moments ago and is kept until the backoff
    /// has passed: a replay would be sent with the same token.
    HeldOff,
}

impl Rejected {
    /// Whether replaying the rejected request would carry another token: false while the
    /// cache holds the rejected one back from being replaced.
    pub(crate) fn replay_gets_another_token(self) -> bool {
        self != Rejected::HeldOff
    }
}

/// The last time a server rejected a cached token.
pub(super) struct Rejection {
    /// How many tokens in a row were rejected soon after they were cached.
    streak: u32,
    at: Instant,
    /// How long the token fetched to replace it is kept even if it is rejected too.
    hold: Duration,
}

impl Shared {
    /// A server rejected the cached entry if `is_rejected` says it is the one. Invalidates
    /// it, unless it was fetched to replace a token rejected moments ago and its hold has
    /// not passed; see [`Rejected`].
    pub(super) fn reject(&self, is_rejected: impl Fn(&Arc<Entry>) -> bool) -> Rejected {
        let mut flight = self.lock_flight();
        let current = self.current.load();
        let Some(entry) = current.as_ref().filter(|entry| is_rejected(entry)) else {
            return Rejected::Replaced;
        };
        if entry.phase.load() == Phase::Expired {
            return Rejected::Replaced;
        }
        let now = Instant::now();
        // A repeat: this token was cached after the last rejection, and is rejected before
        // it has been in use for long.
        let repeat = flight.rejection.as_ref().filter(|last| {
            entry.stored_at >= last.at
                && now.saturating_duration_since(entry.stored_at) < self.config.backoff_max
        });
        if let Some(last) = repeat {
            if now < deadline(entry.stored_at, last.hold) {
                tracing::debug!(
                    rejected_in_a_row = last.streak + 1,
                    "a freshly fetched token was rejected too; keeping it until the backoff passes"
                );
                return Rejected::HeldOff;
            }
        }
        let streak = repeat.map_or(1, |last| last.streak.saturating_add(1));
        flight.rejection = Some(Rejection {
            streak,
            at: now,
            hold: self.config.backoff_after(streak),
        });
        entry.phase.expire();
        crate::metrics::invalidated("rejected");
        tracing::debug!(
            rejected_in_a_row = streak,
            "the server rejected the cached token; invalidated it"
        );
        Rejected::Invalidated
    }
}
