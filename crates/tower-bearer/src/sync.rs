//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also after a thread panicked while holding it.
///
/// Every lock in this crate guards data that is written whole (one field store, one
/// replaced value) while it is held, so a panic cannot leave it half-written and a
/// poisoned lock is safe to keep using. Refusing to would turn one panic into a cache
/// that fails every caller from then on.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
