//! A [`TokenStore`] in this process's memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::{RefreshTokenStore, StoreFuture, StoreKey, StoredRefresh, TokenStore};
use crate::Token;

/// A [`TokenStore`] in memory: shares tokens between the caches of one process (several
/// clients of the same API, say), and stands in for a shared store in tests.
///
/// Cheap to clone; clones share the same entries. Expired tokens and leases are dropped when
/// read; the store holds at most one token, one lease and one refresh token per key.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<StoreKey, Slot>>>,
}

#[derive(Default)]
struct Slot {
    token: Option<(Token, Instant)>,
    lease: Option<(String, Instant)>,
    refresh: Option<StoredRefresh>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<StoreKey, Slot>> {
        crate::sync::lock(&self.inner)
    }
}

impl TokenStore for MemoryStore {
    fn get<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<Token>> {
        let mut slots = self.slots();
        let token = slots.get_mut(key).and_then(|slot| match &slot.token {
            Some((token, until)) if Instant::now() < *until => Some(token.clone()),
            Some(_) => {
                slot.token = None;
                None
            }
            None => None,
        });
        Box::pin(std::future::ready(Ok(token)))
    }

    fn put<'a>(
        &'a self,
        key: &'a StoreKey,
        token: &'a Token,
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        // Any TTL is accepted; like token lifetimes, it is at most a year.
        let ttl = ttl.min(Token::MAX_LIFETIME);
        let until = token.expires_at().unwrap_or_else(|| Instant::now() + ttl);
        self.slots().entry(key.clone()).or_default().token = Some((token.clone(), until));
        Box::pin(std::future::ready(Ok(())))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a StoreKey,
        holder: &'a str,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut slots = self.slots();
        let slot = slots.entry(key.clone()).or_default();
        let taken = match &slot.lease {
            Some((_, until)) if now < *until => false,
            _ => {
                slot.lease = Some((holder.to_owned(), now + ttl.min(Token::MAX_LIFETIME)));
                true
            }
        };
        Box::pin(std::future::ready(Ok(taken)))
    }

    fn release<'a>(&'a self, key: &'a StoreKey, holder: &'a str) -> StoreFuture<'a, ()> {
        if let Some(slot) = self.slots().get_mut(key) {
            if slot.lease.as_ref().is_some_and(|(h, _)| h == holder) {
                slot.lease = None;
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }
}

impl RefreshTokenStore for MemoryStore {
    fn refresh_token<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Option<StoredRefresh>> {
        let stored = self.slots().get(key).and_then(|slot| slot.refresh.clone());
        Box::pin(std::future::ready(Ok(stored)))
    }

    fn replace_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        expected: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        let mut slots = self.slots();
        let slot = slots.entry(key.clone()).or_default();
        let current = slot.refresh.as_ref().map_or(0, |r| r.generation);
        let replaced = current == expected;
        if replaced {
            slot.refresh = Some(StoredRefresh {
                refresh_token: refresh_token.clone(),
                generation: expected + 1,
            });
        }
        Box::pin(std::future::ready(Ok(replaced)))
    }

    fn put_refresh_token<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        refresh_token: &'a SecretString,
    ) -> StoreFuture<'a, bool> {
        let mut slots = self.slots();
        let slot = slots.entry(key.clone()).or_default();
        let stored = slot
            .refresh
            .as_ref()
            .is_none_or(|current| current.generation < generation);
        if stored {
            slot.refresh = Some(StoredRefresh {
                refresh_token: refresh_token.clone(),
                generation,
            });
        }
        Box::pin(std::future::ready(Ok(stored)))
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.slots().len())
            .finish()
    }
}
