//! One refresh per session per proxy.
//!
//! Providers that rotate refresh tokens treat a second use of the old one as theft and revoke the
//! whole grant (OAuth 2.0 Security BCP, RFC 9700 4.14.2), so concurrent requests of one browser
//! must not all refresh. A small fixed table of shared-data slots, claimed by compare-and-swap,
//! says which session is refreshing, and for a short while after, what the refresh produced:
//! requests that were sent with the old cookie pick up the new session instead of refreshing
//! again. The table is fixed-size (no per-session keys), so shared memory stays bounded; two
//! sessions hashing to one slot at the same moment only delay one refresh to a later request.

use kea_plugin_sdk::Host;
use sha2::{Digest, Sha256};

const SLOTS: u64 = 64;

#[derive(Debug, Default)]
pub struct RefreshLeases {
    enabled: bool,
}

/// What the slot of a session says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// This request refreshes.
    Taken,
    /// Another request is refreshing this session (or holds the slot).
    Busy,
    /// Another request refreshed this session a moment ago: its sealed result.
    Refreshed(String),
}

/// A slot's content: `<session tag>:<lease until ms>:<result until ms>:<sealed result>`.
#[derive(Debug, Default)]
struct Slot {
    tag: String,
    lease_until: u64,
    result_until: u64,
    sealed: String,
}

impl Slot {
    fn parse(raw: &[u8]) -> Self {
        let text = std::str::from_utf8(raw).unwrap_or_default();
        let mut parts = text.splitn(4, ':');
        let mut next = || parts.next().unwrap_or_default();
        let tag = next().to_owned();
        let lease_until = next().parse().unwrap_or(0);
        let result_until = next().parse().unwrap_or(0);
        Self {
            tag,
            lease_until,
            result_until,
            sealed: next().to_owned(),
        }
    }

    fn encode(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.tag, self.lease_until, self.result_until, self.sealed
        )
    }
}

fn slot_key(sid: &str) -> (String, String) {
    let digest = Sha256::digest(sid.as_bytes());
    let tag: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let slot = u64::from_le_bytes(
        digest
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .unwrap_or_default(),
    ) % SLOTS;
    (format!("kea.auth.refresh.{slot}"), tag)
}

impl RefreshLeases {
    /// Creates the slots (Envoy ignores compare-and-swap on keys that do not exist yet).
    pub fn prepare(host: &impl Host) -> Self {
        for slot in 0..SLOTS {
            let key = format!("kea.auth.refresh.{slot}");
            if host.shared_data(&key).1.is_none() {
                let _ = host.set_shared_data(&key, b"", None);
            }
        }
        Self { enabled: true }
    }

    /// Claims the refresh of session `sid` until `until_ms` (a time in the past or too far ahead
    /// — a clock step — frees a slot).
    pub fn take(&self, host: &impl Host, sid: &str, now_ms: u64, until_ms: u64) -> Lease {
        if !self.enabled {
            return Lease::Busy;
        }
        let (key, tag) = slot_key(sid);
        let (value, cas) = host.shared_data(&key);
        let Some(cas) = cas else {
            return Lease::Busy;
        };
        let slot = value.as_deref().map(Slot::parse).unwrap_or_default();
        let lease_window = until_ms.saturating_sub(now_ms);
        let leased = now_ms < slot.lease_until && slot.lease_until <= now_ms.saturating_add(lease_window);
        if leased {
            return Lease::Busy;
        }
        if slot.tag == tag && now_ms < slot.result_until && !slot.sealed.is_empty() {
            return Lease::Refreshed(slot.sealed);
        }
        let claim = Slot {
            tag,
            lease_until: until_ms,
            ..Slot::default()
        };
        match host.set_shared_data(&key, claim.encode().as_bytes(), Some(cas)) {
            Ok(()) => Lease::Taken,
            Err(_) => Lease::Busy,
        }
    }

    /// Ends the refresh of session `sid`: with its sealed result (kept until `keep_until_ms` for
    /// requests still carrying the old cookie), or without (the slot is freed).
    pub fn finish(&self, host: &impl Host, sid: &str, result: Option<&str>, keep_until_ms: u64) {
        let (key, tag) = slot_key(sid);
        let (value, cas) = host.shared_data(&key);
        let ours = value.as_deref().map(Slot::parse).is_some_and(|s| s.tag == tag);
        if !ours {
            return;
        }
        let slot = match result {
            Some(sealed) => Slot {
                tag,
                lease_until: 0,
                result_until: keep_until_ms,
                sealed: sealed.to_owned(),
            },
            None => Slot::default(),
        };
        let _ = host.set_shared_data(&key, slot.encode().as_bytes(), cas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;

    #[test]
    fn one_refresh_at_a_time_then_its_result_for_late_requests() {
        let host = MockHost::new();
        let leases = RefreshLeases::prepare(&host);
        assert_eq!(leases.take(&host, "s1", 1_000, 7_000), Lease::Taken);
        assert_eq!(leases.take(&host, "s1", 2_000, 8_000), Lease::Busy);
        leases.finish(&host, "s1", Some("k1.sealed"), 30_000);
        assert_eq!(
            leases.take(&host, "s1", 3_000, 9_000),
            Lease::Refreshed("k1.sealed".into())
        );
        // After the result expires the session may refresh again.
        assert_eq!(leases.take(&host, "s1", 31_000, 37_000), Lease::Taken);
        leases.finish(&host, "s1", None, 0);
        assert_eq!(leases.take(&host, "s1", 32_000, 38_000), Lease::Taken);
        // A lease left behind expires.
        assert_eq!(leases.take(&host, "s1", 39_000, 45_000), Lease::Taken);
    }
}
