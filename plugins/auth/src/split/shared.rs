//! Read-modify-write of one shared-data value with compare-and-swap, the way every worker of a
//! proxy agrees on the next pick; and the compact encodings of the values.

use kea_plugin_sdk::{Host, HostError};

/// Attempts before giving up: conflicts need another worker to write between our read and write,
/// so 16 in a row means heavy contention, and the request is better served by the fallback now.
pub const MAX_TRIES: u32 = 16;

/// Why a shared update gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    #[error("{MAX_TRIES} compare-and-swap conflicts in a row")]
    Contended,
    #[error("shared data: {0}")]
    Host(#[from] HostError),
}

/// Reads `key`, lets `step` compute the new value (and a result) from the current one, and writes
/// it back only if nobody wrote in between; retries on a conflict.
pub fn update<T>(
    host: &impl Host,
    key: &str,
    mut step: impl FnMut(Option<&[u8]>) -> (Vec<u8>, T),
) -> Result<T, SharedError> {
    for _ in 0..MAX_TRIES {
        let (value, cas) = host.shared_data(key);
        let (next, result) = step(value.as_deref());
        // Without a CAS token (the key is new) the write is unconditional: two workers creating
        // the same key at once could both win. `prepare` creates keys at configuration time so
        // requests find them.
        match host.set_shared_data(key, &next, cas) {
            Ok(()) => return Ok(result),
            Err(HostError::CasMismatch) => continue,
            Err(err) => return Err(err.into()),
        }
    }
    Err(SharedError::Contended)
}

/// Writes `initial` under `key` unless the key exists (another worker or an earlier
/// configuration with the same backends and weights created it: its cycle goes on).
pub fn prepare(host: &impl Host, key: &str, initial: &[u8]) {
    if host.shared_data(key).0.is_none() {
        if let Err(err) = host.set_shared_data(key, initial, None) {
            log::warn!("kea-auth: cannot create shared split state {key}: {err}");
        }
    }
}

/// Smooth weighted round-robin state: one little-endian i64 per backend. A value of another
/// length (never written by this version) starts a fresh cycle.
pub fn decode_currents(raw: Option<&[u8]>, backends: usize) -> Vec<i64> {
    match raw {
        Some(raw) if raw.len() == backends * 8 => raw
            .chunks_exact(8)
            .map(|chunk| {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                i64::from_le_bytes(bytes)
            })
            .collect(),
        _ => vec![0; backends],
    }
}

pub fn encode_currents(currents: &[i64]) -> Vec<u8> {
    currents.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// The mirror counter: a little-endian u64 (0 when absent or malformed).
pub fn decode_counter(raw: Option<&[u8]>) -> u64 {
    raw.and_then(|raw| <[u8; 8]>::try_from(raw).ok())
        .map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;

    #[test]
    fn encodings_round_trip_and_reset_on_other_shapes() {
        let currents = [-90, 45, 45];
        let raw = encode_currents(&currents);
        assert_eq!(raw.len(), 24);
        assert_eq!(decode_currents(Some(&raw), 3), currents);
        assert_eq!(decode_currents(Some(&raw), 2), [0, 0]);
        assert_eq!(decode_currents(None, 2), [0, 0]);
        assert_eq!(decode_counter(Some(&7u64.to_le_bytes())), 7);
        assert_eq!(decode_counter(Some(b"x")), 0);
    }

    #[test]
    fn update_writes_and_prepare_keeps_existing_state() {
        let host = MockHost::new();
        prepare(&host, "k", &encode_currents(&[0, 0]));
        let n = update(&host, "k", |raw| {
            let n = decode_counter(raw);
            ((n + 1).to_le_bytes().to_vec(), n)
        });
        assert_eq!(n, Ok(0));
        prepare(&host, "k", &0u64.to_le_bytes());
        assert_eq!(decode_counter(host.shared_data("k").0.as_deref()), 1);
    }
}
