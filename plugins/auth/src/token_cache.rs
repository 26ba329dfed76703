//! Verified tokens, remembered per worker so a repeated token costs a hash instead of a signature
//! check (RSA in wasm takes about a millisecond).
//!
//! Keyed by the provider and the SHA-256 of the token (two providers may accept the same token,
//! e.g. one issuer with different audiences), holding the claims. Entries are bounded
//! (oldest out first), re-checked for `exp`/`nbf` on every hit, and dropped when the provider's
//! keys change, so a key removed from the JWKS stops validating cached tokens too.

use crate::verify::Verified;
use sha2::{Digest, Sha256};
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::rc::Rc;

pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// The cache key of `token` verified by provider `provider`.
pub fn key(provider: usize, token: &str) -> TokenDigest {
    let mut hasher = Sha256::new();
    hasher.update((provider as u64).to_le_bytes());
    hasher.update(token.as_bytes());
    hasher.finalize().into()
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub verified: Rc<Verified>,
    /// Key-set generation the token was verified under.
    pub generation: u64,
}

/// Values remembered per worker, bounded, oldest out first.
#[derive(Debug)]
pub struct BoundedCache<K, V> {
    capacity: usize,
    entries: HashMap<K, V>,
    order: VecDeque<K>,
}

/// Verified tokens by [`key`].
pub type TokenCache = BoundedCache<TokenDigest, Entry>;

impl<K: Hash + Eq + Clone, V: Clone> BoundedCache<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::with_capacity(capacity.min(1024)),
            order: VecDeque::with_capacity(capacity.min(1024)),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).cloned()
    }

    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.remove(key);
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        // Removed entries leave their key in `order`; keep it from growing past the bound.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order.retain(|d| entries.contains_key(d));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl TokenCache {
    /// A cached token verified under the current key generation; stale ones are dropped.
    pub fn current(&mut self, digest: &TokenDigest, generation: u64) -> Option<Entry> {
        let entry = self.get(digest)?;
        if entry.generation == generation {
            return Some(entry);
        }
        self.remove(digest);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn entry(generation: u64) -> Entry {
        Entry {
            verified: Rc::new(Verified {
                claims: Map::new(),
                payload: String::new(),
                expires_at: None,
                not_before: None,
            }),
            generation,
        }
    }

    #[test]
    fn bounded_oldest_out() {
        let mut cache = TokenCache::new(3);
        for i in 0..10u8 {
            cache.insert(digest(&i.to_string()), entry(0));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.current(&digest("9"), 0).is_some());
        assert!(cache.current(&digest("0"), 0).is_none());
    }

    #[test]
    fn key_change_invalidates() {
        let mut cache = TokenCache::new(3);
        cache.insert(digest("t"), entry(1));
        assert!(cache.current(&digest("t"), 2).is_none());
        assert!(
            cache.current(&digest("t"), 1).is_none(),
            "dropped on the stale read"
        );
    }

    #[test]
    fn removals_do_not_grow_the_order() {
        let mut cache = TokenCache::new(2);
        for i in 0..1000u32 {
            let d = digest(&i.to_string());
            cache.insert(d, entry(0));
            cache.remove(&d);
        }
        assert!(cache.order.len() <= 4);
        assert!(cache.is_empty());
    }

    #[test]
    fn zero_capacity_disables() {
        let mut cache = TokenCache::new(0);
        cache.insert(digest("t"), entry(0));
        assert!(cache.is_empty());
    }
}
