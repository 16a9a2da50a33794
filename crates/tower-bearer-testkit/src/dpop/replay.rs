//! Remembering proof `jti`s (RFC 9449 section 11.1), bounded in time and size.

use std::collections::{HashSet, VecDeque};

/// The `jti`s of accepted proofs, each until its proof's `iat` leaves the window.
#[derive(Debug)]
pub(crate) struct ReplayCache {
    capacity: usize,
    seen: HashSet<String>,
    /// Insertion order, with the wall-clock second (Unix time) after which each entry can go.
    order: VecDeque<(String, f64)>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `jti`, kept until `forget_after` (Unix seconds); `false` if it is already
    /// there. Expired entries at the front leave first, then the oldest while full.
    pub(crate) fn insert(&mut self, jti: &str, forget_after: f64, now: f64) -> bool {
        while let Some((old, _)) = self.order.front().filter(|(_, until)| *until < now) {
            self.seen.remove(old.as_str());
            self.order.pop_front();
        }
        if self.seen.contains(jti) {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some((old, _)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(jti.to_owned());
        self.order.push_back((jti.to_owned(), forget_after));
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_refused_until_it_expires() {
        let mut cache = ReplayCache::new(10);
        assert!(cache.insert("a", 160.0, 100.0));
        assert!(!cache.insert("a", 170.0, 110.0));
        assert!(
            cache.insert("b", 230.0, 170.0),
            "b pushes the expired a out"
        );
        assert!(cache.insert("a", 240.0, 180.0));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_full_cache_forgets_the_oldest() {
        let mut cache = ReplayCache::new(2);
        assert!(cache.insert("a", 1e9, 0.0));
        assert!(cache.insert("b", 1e9, 0.0));
        assert!(cache.insert("c", 1e9, 0.0));
        assert_eq!(cache.len(), 2);
        assert!(!cache.insert("b", 1e9, 0.0));
        assert!(!cache.insert("c", 1e9, 0.0));
        assert!(cache.insert("a", 1e9, 0.0), "evicted for room");
    }
}
