//! A bounded key-value store in proxy shared data, for state every worker must see (cached
//! responses, verified tokens).
//!
//! Shared data has no TTL and no delete: every key ever written stays. So the store owns a fixed
//! set of `slots` keys (`<prefix>:<n>`), and an entry lives in one of two candidate slots chosen
//! by its hash. The full key is stored inside the entry and compared on read, so a collision is a
//! miss, never a wrong answer. A write takes the candidate that already holds the key, else an
//! empty or expired one, else the one written longest ago (evicting it). Entries over
//! `max_entry_bytes` are refused. Memory is therefore bounded by `slots × max_entry_bytes`,
//! whatever the key churn.

use crate::host::{Bytes, Host, HostError};
use crate::metrics::Metric;

const MAGIC: &[u8; 4] = b"KEA1";
/// magic, stored_at (u64), expires_at (u64), key length (u32)
const HEADER: usize = 4 + 8 + 8 + 4;
/// Compare-and-swap attempts of a write; the last one overwrites.
const WRITE_ATTEMPTS: u32 = 3;

/// A decoded slot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    stored_at: u64,
    expires_at: u64,
    key: Bytes,
    value: Bytes,
}

impl Entry {
    fn encode(key: &[u8], value: &[u8], stored_at: u64, expires_at: u64) -> Bytes {
        let mut out = Vec::with_capacity(HEADER + key.len() + value.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&stored_at.to_le_bytes());
        out.extend_from_slice(&expires_at.to_le_bytes());
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value);
        out
    }

    /// `None` for an empty slot, a tombstone or anything unreadable.
    fn decode(raw: &[u8]) -> Option<Self> {
        if raw.get(..4)? != MAGIC {
            return None;
        }
        let u64_at = |at: usize| {
            raw.get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes)
        };
        let stored_at = u64_at(4)?;
        let expires_at = u64_at(12)?;
        let key_len = raw
            .get(20..24)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)? as usize;
        let key = raw.get(HEADER..HEADER.checked_add(key_len)?)?.to_vec();
        let value = raw.get(HEADER + key_len..)?.to_vec();
        Some(Self {
            stored_at,
            expires_at,
            key,
            value,
        })
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored in a slot that was empty, expired or held the same key.
    Stored,
    /// Stored by evicting a live entry of another key.
    Evicted,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("entry of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("shared data: {0}")]
    Host(#[from] HostError),
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotStore {
    prefix: String,
    slots: u64,
    max_entry_bytes: usize,
    /// A gauge of the bytes the slots hold, moved by each write's difference (so every worker
    /// adds to one total). Writes are compare-and-swap, so the difference is the one applied;
    /// it can be off by an entry only when two workers fill a never-written slot at the same
    /// moment (no CAS value exists yet) or a write loses [`WRITE_ATTEMPTS`] − 1 races in a row
    /// and overwrites.
    held_bytes: Metric,
}

impl SlotStore {
    /// `slots` must be at least 1 (it is raised to 1 otherwise).
    pub fn new(prefix: &str, slots: u32, max_entry_bytes: usize) -> Self {
        Self {
            prefix: prefix.to_string(),
            slots: u64::from(slots.max(1)),
            max_entry_bytes,
            held_bytes: Metric::default(),
        }
    }

    /// Reports the bytes held in shared data on this gauge.
    pub fn with_held_bytes_gauge(mut self, gauge: Metric) -> Self {
        self.held_bytes = gauge;
        self
    }

    /// Upper bound of the memory the store can hold in shared data.
    pub fn capacity_bytes(&self) -> u64 {
        self.slots.saturating_mul(self.max_entry_bytes as u64)
    }

    fn candidates(&self, hash: u64) -> [String; 2] {
        let first = hash % self.slots;
        let second = (hash.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15) % self.slots;
        [
            format!("{}:{first}", self.prefix),
            format!("{}:{second}", self.prefix),
        ]
    }

    /// The live value stored under `key`, if any.
    pub fn get(&self, host: &impl Host, key: &[u8], hash: u64, now: u64) -> Option<Bytes> {
        self.candidates(hash).iter().find_map(|slot| {
            let entry = Entry::decode(&host.shared_data(slot).0?)?;
            (entry.key == key && now < entry.expires_at).then_some(entry.value)
        })
    }

    /// Stores `value` under `key` until `expires_at` (seconds since the epoch).
    pub fn put(
        &self,
        host: &impl Host,
        key: &[u8],
        hash: u64,
        value: &[u8],
        now: u64,
        expires_at: u64,
    ) -> Result<PutOutcome, StoreError> {
        let size = HEADER + key.len() + value.len();
        if size > self.max_entry_bytes {
            return Err(StoreError::TooLarge {
                size,
                limit: self.max_entry_bytes,
            });
        }
        let candidates = self.candidates(hash);
        let entry = Entry::encode(key, value, now, expires_at);
        for attempt in 1..=WRITE_ATTEMPTS {
            // (slot, bytes it holds now, its CAS)
            let mut oldest: Option<(&String, usize, Option<u32>, u64)> = None;
            let mut free: Option<(&String, usize, Option<u32>)> = None;
            let mut first = (0, None);
            for (i, slot) in candidates.iter().enumerate() {
                let (raw, cas) = host.shared_data(slot);
                let held = raw.as_ref().map_or(0, Vec::len);
                if i == 0 {
                    first = (held, cas);
                }
                match raw.as_deref().and_then(Entry::decode) {
                    Some(entry) if entry.key == key => {
                        free = Some((slot, held, cas));
                        break;
                    }
                    Some(entry) if now < entry.expires_at => {
                        if oldest.is_none_or(|(_, _, _, at)| entry.stored_at < at) {
                            oldest = Some((slot, held, cas, entry.stored_at));
                        }
                    }
                    _ => free = free.or(Some((slot, held, cas))),
                }
            }
            let (slot, held, cas, outcome) = match (free, oldest) {
                (Some((slot, held, cas)), _) => (slot, held, cas, PutOutcome::Stored),
                (None, Some((slot, held, cas, _))) => (slot, held, cas, PutOutcome::Evicted),
                (None, None) => (&candidates[0], first.0, first.1, PutOutcome::Stored),
            };
            // The last attempt overwrites whatever is there: a write never fails for contention.
            let cas = if attempt == WRITE_ATTEMPTS { None } else { cas };
            match host.set_shared_data(slot, &entry, cas) {
                Ok(()) => {
                    self.held_bytes.add(host, entry.len() as i64 - held as i64);
                    return Ok(outcome);
                }
                Err(HostError::CasMismatch) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Ok(PutOutcome::Stored)
    }

    /// Removes `key` by overwriting its slot with an empty value (shared data cannot delete).
    pub fn remove(&self, host: &impl Host, key: &[u8], hash: u64) -> Result<bool, StoreError> {
        for slot in self.candidates(hash) {
            for _ in 0..WRITE_ATTEMPTS {
                let (raw, cas) = host.shared_data(&slot);
                let raw = raw.unwrap_or_default();
                if Entry::decode(&raw).is_none_or(|entry| entry.key != key) {
                    break;
                }
                match host.set_shared_data(&slot, &[], cas) {
                    Ok(()) => {
                        self.held_bytes.add(host, -(raw.len() as i64));
                        return Ok(true);
                    }
                    // Someone wrote the slot meanwhile: look again.
                    Err(HostError::CasMismatch) => continue,
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;

    fn hash(key: &[u8]) -> u64 {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(key);
        u64::from_le_bytes(digest[..8].try_into().unwrap())
    }

    #[test]
    fn stores_reads_and_expires() {
        let host = MockHost::new();
        let store = SlotStore::new("t", 64, 1024);
        assert_eq!(
            store.put(&host, b"k", hash(b"k"), b"v", 100, 160),
            Ok(PutOutcome::Stored)
        );
        assert_eq!(
            store.get(&host, b"k", hash(b"k"), 159).as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(store.get(&host, b"k", hash(b"k"), 160), None, "expired");
        assert_eq!(
            store.get(&host, b"other", hash(b"k"), 100),
            None,
            "same slots, other key: a miss"
        );
        assert_eq!(store.remove(&host, b"k", hash(b"k")), Ok(true));
        assert_eq!(store.get(&host, b"k", hash(b"k"), 100), None);
    }

    #[test]
    fn refuses_oversized_entries() {
        let host = MockHost::new();
        let store = SlotStore::new("t", 4, 64);
        let err = store.put(&host, b"k", 1, &[0; 64], 0, 10).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { limit: 64, .. }));
    }

    #[test]
    fn evicts_the_oldest_live_candidate_and_prefers_expired_ones() {
        let host = MockHost::new();
        let store = SlotStore::new("t", 1, 1024); // both candidates are the one slot
        store.put(&host, b"a", 7, b"1", 10, 100).unwrap();
        assert_eq!(store.put(&host, b"b", 7, b"2", 20, 100), Ok(PutOutcome::Evicted));
        assert_eq!(store.get(&host, b"a", 7, 30), None);
        assert_eq!(
            store.put(&host, b"c", 7, b"3", 200, 300),
            Ok(PutOutcome::Stored),
            "b had expired"
        );
        assert_eq!(
            store.put(&host, b"c", 7, b"4", 201, 300),
            Ok(PutOutcome::Stored),
            "same key"
        );
        assert_eq!(store.get(&host, b"c", 7, 202).as_deref(), Some(&b"4"[..]));
    }

    #[test]
    fn memory_stays_bounded_under_a_million_distinct_keys() {
        let host = MockHost::new();
        let store = SlotStore::new("cache", 1024, 256);
        for i in 0..1_000_000u64 {
            let key = format!("GET\nhttp\nh\n/item/{i}");
            store
                .put(
                    &host,
                    key.as_bytes(),
                    hash(key.as_bytes()),
                    &[1; 100],
                    i,
                    i + 3600,
                )
                .unwrap();
        }
        let (keys, bytes) = host.shared_data_usage();
        assert!(keys <= 1024, "{keys} shared-data keys");
        assert!(bytes as u64 <= store.capacity_bytes(), "{bytes} bytes");
        // Recent keys are mostly still there (two-way placement keeps newer entries).
        let recent = (999_000..1_000_000u64)
            .filter(|i| {
                let key = format!("GET\nhttp\nh\n/item/{i}");
                store
                    .get(&host, key.as_bytes(), hash(key.as_bytes()), *i)
                    .is_some()
            })
            .count();
        assert!(recent > 500, "{recent} of the last 1000 keys still cached");
    }

    #[test]
    fn the_held_bytes_gauge_follows_what_shared_data_holds() {
        let host = MockHost::new();
        let gauge = Metric::gauge(&host, "held");
        let store = SlotStore::new("t", 16, 512).with_held_bytes_gauge(gauge);
        for i in 0..2_000u64 {
            let key = format!("k{}", i % 300);
            let value = vec![7; (i % 200) as usize];
            store
                .put(&host, key.as_bytes(), hash(key.as_bytes()), &value, i, i + 50)
                .unwrap();
            if i % 7 == 0 {
                store.remove(&host, key.as_bytes(), hash(key.as_bytes())).unwrap();
            }
            let (_, bytes) = host.shared_data_usage();
            assert_eq!(host.metric("held"), Some(bytes as i64), "after write {i}");
        }
    }

    #[test]
    fn garbage_in_a_slot_is_an_empty_slot() {
        let host = MockHost::new();
        let store = SlotStore::new("t", 1, 1024);
        host.set_shared_data("t:0", b"KEA1\x01", None).unwrap();
        assert_eq!(store.get(&host, b"k", 0, 0), None);
        host.set_shared_data("t:0", b"KEA1aaaaaaaabbbbbbbb\xff\xff\xff\xff", None)
            .unwrap();
        assert_eq!(store.get(&host, b"k", 0, 0), None);
        assert_eq!(store.put(&host, b"k", 0, b"v", 0, 10), Ok(PutOutcome::Stored));
    }
}
