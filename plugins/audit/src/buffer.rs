//! The bounded record buffer shared by every worker of the proxy.
//!
//! Records wait in a proxy shared queue (FIFO, visible to all workers' VMs). Shared queues are
//! unbounded in Envoy, so the buffer keeps its own count of records and bytes in shared data,
//! updated with compare-and-swap; a producer that would exceed the bound first dequeues and drops
//! the oldest records. A record is counted before it is enqueued, so the counters never fall
//! below the queue's real length, and memory stays bounded without any lock.

use kea_plugin_sdk::{Bytes, Host, HostError};

/// Name of the shared queue (scoped by the plugin's `vm_id`).
pub const QUEUE_NAME: &str = "kea.audit.records";
/// Shared-data key holding `(records, bytes)` as two little-endian u64.
pub const COUNTERS_KEY: &str = "kea.audit.buffer";
const CAS_ATTEMPTS: usize = 16;
/// Attempts to reserve room for one record (each eviction or lost CAS race uses one).
const PUSH_ATTEMPTS: usize = 64;

/// Occupancy of the buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub records: u64,
    pub bytes: u64,
}

impl Occupancy {
    fn decode(raw: Option<&[u8]>) -> Self {
        let read = |range: std::ops::Range<usize>| {
            raw.and_then(|r| r.get(range))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
        };
        Self {
            records: read(0..8),
            bytes: read(8..16),
        }
    }

    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.records.to_le_bytes());
        out[8..].copy_from_slice(&self.bytes.to_le_bytes());
        out
    }
}

/// Handle to the shared buffer, held by each worker.
#[derive(Debug, Clone, Copy)]
pub struct SharedBuffer {
    queue: u32,
    max_records: u64,
    max_bytes: u64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushOutcome {
    pub accepted: bool,
    /// Older records dropped to make room (plus this one when it alone exceeds the byte bound).
    pub dropped: u64,
    pub occupancy: Occupancy,
}

impl SharedBuffer {
    /// Registers the queue. Every worker does this; Envoy keeps one queue per name and `vm_id`
    /// and notifies the last registrant, and every worker also drains on its tick.
    pub fn register(host: &impl Host, max_records: u64, max_bytes: u64) -> Result<Self, HostError> {
        let queue = host.register_queue(QUEUE_NAME)?;
        // Create the counters once, so every later write can be a real compare-and-swap (a write
        // to a missing key cannot be). Workers racing here all write zeros.
        if host.shared_data(COUNTERS_KEY).1.is_none() {
            host.set_shared_data(COUNTERS_KEY, &Occupancy::default().encode(), None)?;
        }
        Ok(Self {
            queue,
            max_records,
            max_bytes,
        })
    }

    pub fn queue_id(&self) -> u32 {
        self.queue
    }

    pub fn occupancy(&self, host: &impl Host) -> Occupancy {
        Occupancy::decode(host.shared_data(COUNTERS_KEY).0.as_deref())
    }

    /// Adds a record, evicting the oldest ones first if the bound would be exceeded.
    ///
    /// The record is counted before it is enqueued, so a consumer can only take records that are
    /// already counted and the counters never fall below the queue's real length.
    pub fn push(&self, host: &impl Host, record: &[u8]) -> PushOutcome {
        let size = record.len() as u64;
        let mut outcome = PushOutcome::default();
        if size > self.max_bytes {
            outcome.dropped = 1;
            outcome.occupancy = self.occupancy(host);
            return outcome;
        }
        let mut reserved = None;
        for _ in 0..PUSH_ATTEMPTS {
            let (raw, cas) = host.shared_data(COUNTERS_KEY);
            let occupancy = Occupancy::decode(raw.as_deref());
            if occupancy.records + 1 > self.max_records || occupancy.bytes + size > self.max_bytes {
                match host.dequeue(self.queue) {
                    Ok(Some(oldest)) => {
                        outcome.dropped += 1;
                        self.adjust(host, -1, -(oldest.len() as i64));
                    }
                    // Counted as full but empty: the counters drifted (e.g. a worker stopped
                    // between counting and enqueueing). Start counting afresh — unless someone
                    // wrote since we read, in which case we simply look again.
                    _ => {
                        let zero = Occupancy::default();
                        let _ = host.set_shared_data(COUNTERS_KEY, &zero.encode(), Some(cas.unwrap_or(0)));
                    }
                }
                continue;
            }
            let next = Occupancy {
                records: occupancy.records + 1,
                bytes: occupancy.bytes + size,
            };
            // No CAS token means the key does not exist yet; 0 writes unconditionally.
            match host.set_shared_data(COUNTERS_KEY, &next.encode(), Some(cas.unwrap_or(0))) {
                Ok(()) => {
                    reserved = Some(next);
                    break;
                }
                Err(HostError::CasMismatch) => continue,
                Err(_) => break,
            }
        }
        let Some(occupancy) = reserved else {
            log::warn!("audit buffer: could not reserve room for a record; dropped");
            outcome.dropped += 1;
            outcome.occupancy = self.occupancy(host);
            return outcome;
        };
        if host.enqueue(self.queue, record).is_err() {
            outcome.dropped += 1;
            outcome.occupancy = self.adjust(host, -1, -(size as i64));
            return outcome;
        }
        outcome.accepted = true;
        outcome.occupancy = occupancy;
        outcome
    }

    /// Takes up to `max_records` records and roughly `max_bytes` bytes (at least one record).
    pub fn pop_batch(&self, host: &impl Host, max_records: usize, max_bytes: usize) -> Vec<Bytes> {
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        while batch.len() < max_records && bytes < max_bytes {
            match host.dequeue(self.queue) {
                Ok(Some(item)) => {
                    bytes += item.len();
                    batch.push(item);
                }
                _ => break,
            }
        }
        if !batch.is_empty() {
            self.adjust(host, -(batch.len() as i64), -(bytes as i64));
        }
        batch
    }

    /// Adds deltas to the counters with a CAS loop; saturates at zero.
    fn adjust(&self, host: &impl Host, records: i64, bytes: i64) -> Occupancy {
        let apply = |value: u64, delta: i64| {
            if delta >= 0 {
                value.saturating_add(delta as u64)
            } else {
                value.saturating_sub(delta.unsigned_abs())
            }
        };
        let mut last = Occupancy::default();
        for _ in 0..CAS_ATTEMPTS {
            let (raw, cas) = host.shared_data(COUNTERS_KEY);
            let current = Occupancy::decode(raw.as_deref());
            last = Occupancy {
                records: apply(current.records, records),
                bytes: apply(current.bytes, bytes),
            };
            // No CAS token means the key does not exist yet; 0 writes unconditionally.
            match host.set_shared_data(COUNTERS_KEY, &last.encode(), Some(cas.unwrap_or(0))) {
                Err(HostError::CasMismatch) => continue,
                _ => return last,
            }
        }
        log::warn!("audit buffer counters: CAS contention, update skipped");
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;

    #[test]
    fn drops_oldest_beyond_record_bound() {
        let host = MockHost::new();
        let buffer = SharedBuffer::register(&host, 3, 1_000).unwrap();
        for i in 0..5u8 {
            buffer.push(&host, &[i]);
        }
        assert_eq!(host.queue_items(QUEUE_NAME), vec![vec![2], vec![3], vec![4]]);
        assert_eq!(buffer.occupancy(&host), Occupancy { records: 3, bytes: 3 });
    }

    #[test]
    fn drops_oldest_beyond_byte_bound_and_rejects_giants() {
        let host = MockHost::new();
        let buffer = SharedBuffer::register(&host, 100, 10).unwrap();
        assert_eq!(buffer.push(&host, &[0; 4]).dropped, 0);
        assert_eq!(buffer.push(&host, &[1; 4]).dropped, 0);
        let out = buffer.push(&host, &[2; 4]);
        assert_eq!((out.accepted, out.dropped), (true, 1));
        assert_eq!(out.occupancy, Occupancy { records: 2, bytes: 8 });
        let giant = buffer.push(&host, &[9; 11]);
        assert_eq!((giant.accepted, giant.dropped), (false, 1));
    }

    #[test]
    fn batches_respect_limits_and_update_counters() {
        let host = MockHost::new();
        let buffer = SharedBuffer::register(&host, 100, 1_000).unwrap();
        for i in 0..10u8 {
            buffer.push(&host, &[i; 10]);
        }
        assert_eq!(buffer.pop_batch(&host, 4, 1_000).len(), 4);
        assert_eq!(
            buffer.pop_batch(&host, 100, 25).len(),
            3,
            "stops once 25 bytes are reached"
        );
        assert_eq!(
            buffer.occupancy(&host),
            Occupancy {
                records: 3,
                bytes: 30
            }
        );
    }

    #[test]
    fn workers_share_one_bound() {
        let a = MockHost::new();
        let b = MockHost::sharing_with(a.shared());
        let buf_a = SharedBuffer::register(&a, 4, 1_000).unwrap();
        let buf_b = SharedBuffer::register(&b, 4, 1_000).unwrap();
        for i in 0..6u8 {
            buf_a.push(&a, &[i]);
            buf_b.push(&b, &[100 + i]);
        }
        assert_eq!(a.queue_items(QUEUE_NAME).len(), 4);
        assert_eq!(buf_b.occupancy(&b).records, 4);
    }

    #[test]
    fn recovers_from_drifted_counters() {
        let host = MockHost::new();
        let buffer = SharedBuffer::register(&host, 2, 1_000).unwrap();
        host.set_shared_data(COUNTERS_KEY, &Occupancy { records: 2, bytes: 2 }.encode(), None)
            .unwrap();
        let out = buffer.push(&host, b"x");
        assert!(out.accepted);
        assert_eq!(out.occupancy, Occupancy { records: 1, bytes: 1 });
    }
}
