//! Request collapsing: of concurrent misses for one key, on any worker, one goes to the origin
//! (the leader) and the others wait for what it stores (the followers).
//!
//! The leader is whoever claims the key's fill slot in shared data (compare-and-swap). The
//! slots are a fixed table (`SLOTS`), so memory stays bounded whatever the key churn; a slot held
//! for another key means "no collapsing" for this one (it goes to the origin), never a wait on
//! an unrelated response. A claim carries a deadline, so a leader that never finishes (its
//! client went away, its worker died) holds nobody up for longer than that.
//!
//! A leader whose response could not be stored leaves a pass mark instead (Varnish's
//! "hit-for-miss"): for `PASS_MS` the key's misses go to the origin side by side, none waiting
//! for another's answer that would not be stored either.

use kea_plugin_sdk::{Host, HostError};
use std::time::UNIX_EPOCH;

/// Fill slots in the table.
const SLOTS: u64 = 1024;
/// How long followers wait for a leader before going to the origin themselves.
pub const MAX_WAIT_MS: u64 = 10_000;
/// How long a key whose response was not storable is not collapsed.
pub const PASS_MS: u64 = 60_000;

/// What a slot holds for its key until its deadline.
const FILLING: u8 = 0;
const PASSING: u8 = 1;

/// Milliseconds since the epoch.
pub fn now_ms(host: &impl Host) -> u64 {
    host.now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn slot_key(key_hash: u64) -> String {
    format!("kea.cache.fill:{}", key_hash % SLOTS)
}

/// A slot's content: until when it is held, for which key, and whether it is being filled or
/// passed.
fn decode(raw: &[u8]) -> Option<(u64, u64, u8)> {
    let deadline = u64::from_le_bytes(raw.get(..8)?.try_into().ok()?);
    let key_hash = u64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
    Some((deadline, key_hash, *raw.get(16)?))
}

fn encode(deadline: u64, key_hash: u64, state: u8) -> [u8; 17] {
    let mut raw = [0u8; 17];
    raw[..8].copy_from_slice(&deadline.to_le_bytes());
    raw[8..16].copy_from_slice(&key_hash.to_le_bytes());
    raw[16] = state;
    raw
}

/// What a miss does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It claimed the key: it goes to the origin and releases the claim when done.
    Leader,
    /// Another request is fetching this key: wait for it until `deadline` (ms since the epoch).
    Follower { deadline: u64 },
    /// The slot is busy with another key (or shared data failed): go to the origin, no claim.
    Alone,
}

/// Claims the fill of `key_hash`, or says who has it.
pub fn claim(host: &impl Host, key_hash: u64) -> Role {
    let slot = slot_key(key_hash);
    let now = now_ms(host);
    let (raw, cas) = host.shared_data(&slot);
    match raw.as_deref().and_then(decode) {
        Some((deadline, holder, state)) if deadline > now => {
            return if holder == key_hash && state == FILLING {
                Role::Follower { deadline }
            } else {
                Role::Alone
            };
        }
        _ => {}
    }
    let mine = encode(now.saturating_add(MAX_WAIT_MS), key_hash, FILLING);
    // A slot never written has no version to compare: the first writers race, and the re-read
    // below tells each whether its write stood.
    match host.set_shared_data(&slot, &mine, Some(cas.unwrap_or(0))) {
        Ok(()) if cas.is_some() => Role::Leader,
        Ok(()) => match host.shared_data(&slot).0.as_deref() {
            Some(raw) if raw == mine.as_slice() => Role::Leader,
            _ => Role::Alone,
        },
        Err(HostError::CasMismatch) => Role::Alone,
        Err(_) => Role::Alone,
    }
}

/// Ends a leader's claim: its response is stored, or the exchange ended without one (`stored`
/// true), or its response could not be stored (false: the key is passed for `PASS_MS`).
pub fn release(host: &impl Host, key_hash: u64, stored: bool) {
    let slot = slot_key(key_hash);
    let (raw, cas) = host.shared_data(&slot);
    if raw
        .as_deref()
        .and_then(decode)
        .is_some_and(|(_, holder, _)| holder == key_hash)
    {
        let released = if stored {
            encode(0, key_hash, FILLING)
        } else {
            encode(now_ms(host).saturating_add(PASS_MS), key_hash, PASSING)
        };
        let _ = host.set_shared_data(&slot, &released, cas);
    }
}

/// Whether a follower should keep waiting: the leader still holds the claim and the wait has
/// not run out.
pub fn still_filling(host: &impl Host, key_hash: u64, deadline: u64) -> bool {
    let now = now_ms(host);
    now < deadline
        && host
            .shared_data(&slot_key(key_hash))
            .0
            .as_deref()
            .and_then(decode)
            .is_some_and(|(held_until, holder, state)| {
                holder == key_hash && state == FILLING && held_until > now
            })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kea_plugin_sdk::mock::MockHost;
    use std::rc::Rc;
    use std::time::{Duration, SystemTime};

    #[test]
    fn one_leader_per_key_and_the_claim_runs_out() {
        let first = MockHost::new();
        first.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        let second = MockHost::sharing_with(Rc::clone(&first.shared()));
        second.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(claim(&first, 7), Role::Leader);
        let follower = claim(&second, 7);
        assert_eq!(
            follower,
            Role::Follower {
                deadline: 1_000_000 + MAX_WAIT_MS
            }
        );
        assert!(still_filling(&second, 7, 1_000_000 + MAX_WAIT_MS));
        // Another key in the same slot: no waiting on it.
        assert_eq!(claim(&second, 7 + SLOTS), Role::Alone);
        release(&first, 7, true);
        assert!(!still_filling(&second, 7, 1_000_000 + MAX_WAIT_MS));
        assert_eq!(claim(&second, 7), Role::Leader);
        // A leader that never releases holds others up only until its deadline.
        second.set_now(SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + MAX_WAIT_MS + 1));
        assert!(!still_filling(&second, 7, u64::MAX));
        assert_eq!(claim(&second, 7), Role::Leader);
        // Releasing someone else's claim does nothing.
        release(&first, 7 + SLOTS, true);
        assert!(matches!(claim(&first, 7), Role::Follower { .. }));
    }

    #[test]
    fn an_unstorable_answer_passes_the_key_for_a_while() {
        let host = MockHost::new();
        host.set_now(SystemTime::UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(claim(&host, 9), Role::Leader);
        release(&host, 9, false);
        assert!(!still_filling(&host, 9, u64::MAX), "followers go on");
        assert_eq!(claim(&host, 9), Role::Alone, "new misses do not wait");
        host.set_now(SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000 + PASS_MS + 1));
        assert_eq!(claim(&host, 9), Role::Leader, "tried again once the pass ends");
    }
}
