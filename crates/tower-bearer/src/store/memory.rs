//! A [`TokenStore`] in this process's memory.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use secrecy::SecretString;
use tokio::time::Instant;

use super::{
    RefreshRecord, RefreshState, RefreshTokenStore, RefreshValue, RefreshWrite, StoreFuture,
    StoreKey, TokenStore,
};
use crate::Token;

/// A [`TokenStore`] in memory: shares tokens between the caches of one process (several
/// clients of the same API, say), and stands in for a shared store in tests.
///
/// Cheap to clone; clones share the same entries. Expired tokens and leases are dropped when
/// read; the store holds at most one token, one lease and one refresh-token record per key.
/// Its refresh-token records are never [damaged](super::RefreshValue::Damaged): it holds them
/// in memory, in clear.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<HashMap<StoreKey, Slot>>>,
}

#[derive(Default)]
struct Slot {
    token: Option<(Token, Instant)>,
    lease: Option<(String, Instant)>,
    refresh: Option<Refresh>,
    settle_until: Option<Instant>,
}

struct Refresh {
    generation: u64,
    refresh_token: SecretString,
    presenting: Option<String>,
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
    fn refresh_record<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, RefreshState> {
        let now = Instant::now();
        let slots = self.slots();
        let slot = slots.get(key);
        let state = RefreshState {
            record: slot
                .and_then(|slot| slot.refresh.as_ref())
                .map(|refresh| RefreshRecord {
                    generation: refresh.generation,
                    value: RefreshValue::Readable(refresh.refresh_token.clone()),
                    presenting: refresh.presenting.clone(),
                }),
            settling: slot.is_some_and(|slot| slot.settling(now)),
        };
        Box::pin(std::future::ready(Ok(state)))
    }

    fn begin_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut slots = self.slots();
        let begun = slots.get_mut(key).is_some_and(|slot| {
            let settling = slot.settling(now);
            match &mut slot.refresh {
                Some(refresh) if refresh.generation == generation && !settling => {
                    match &refresh.presenting {
                        Some(other) => other == holder,
                        None => {
                            refresh.presenting = Some(holder.to_owned());
                            true
                        }
                    }
                }
                _ => false,
            }
        });
        Box::pin(std::future::ready(Ok(begun)))
    }

    fn end_presenting<'a>(
        &'a self,
        key: &'a StoreKey,
        generation: u64,
        holder: &'a str,
    ) -> StoreFuture<'a, bool> {
        let mut slots = self.slots();
        let ended = match slots.get_mut(key).and_then(|slot| slot.refresh.as_mut()) {
            Some(refresh)
                if refresh.generation == generation
                    && refresh.presenting.as_deref() == Some(holder) =>
            {
                refresh.presenting = None;
                true
            }
            _ => false,
        };
        Box::pin(std::future::ready(Ok(ended)))
    }

    fn store_refresh<'a>(
        &'a self,
        key: &'a StoreKey,
        write: RefreshWrite<'a>,
    ) -> StoreFuture<'a, bool> {
        let now = Instant::now();
        let mut slots = self.slots();
        let slot = slots.entry(key.clone()).or_default();
        // Nothing here is ever damaged, so `replacing_damaged` never applies.
        let written = slot
            .refresh
            .as_ref()
            .is_none_or(|current| current.generation < write.generation);
        if written {
            slot.refresh = Some(Refresh {
                generation: write.generation,
                refresh_token: write.refresh_token.clone(),
                presenting: None,
            });
            if let Some(settle) = write.settle {
                let until = now + settle.min(Token::MAX_LIFETIME);
                slot.settle_until = Some(slot.settle_until.map_or(until, |at| at.max(until)));
            }
        }
        Box::pin(std::future::ready(Ok(written)))
    }
}

impl Slot {
    fn settling(&self, now: Instant) -> bool {
        self.settle_until.is_some_and(|until| now < until)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.slots().len())
            .finish()
    }
}
