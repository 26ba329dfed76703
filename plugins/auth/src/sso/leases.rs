//! One refresh per session per proxy.
//!
//! Providers that rotate refresh tokens treat a second use of the old one as theft and revoke the
//! whole grant (OAuth 2.0 Security BCP, RFC 9700 4.14.2), so concurrent requests of one browser
//! must not all refresh. A small fixed table of shared-data slots, claimed by compare-and-swap,
//! says which session is refreshing; requests that lose keep using their still-valid session.
//! The table is fixed-size (no per-session keys), so shared memory stays bounded; two sessions
//! hashing to one slot at the same moment only delay one refresh to a later request.

use kea_plugin_sdk::Host;
use sha2::{Digest, Sha256};

const SLOTS: u64 = 64;

#[derive(Debug, Default)]
pub struct RefreshLeases {
    enabled: bool,
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

    /// Claims the refresh of session `sid` until `until_ms`; false when another request holds it.
    pub fn take(&self, host: &impl Host, sid: &str, now_ms: u64, until_ms: u64) -> bool {
        if !self.enabled {
            return false;
        }
        let (key, tag) = slot_key(sid);
        let (value, cas) = host.shared_data(&key);
        let Some(cas) = cas else {
            return false;
        };
        let busy = value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split_once(':'))
            .and_then(|(_, until)| until.parse::<u64>().ok())
            .is_some_and(|until| now_ms < until && until <= until_ms);
        if busy {
            return false;
        }
        host.set_shared_data(&key, format!("{tag}:{until_ms}").as_bytes(), Some(cas))
            .is_ok()
    }

    /// Frees the slot if session `sid` still holds it.
    pub fn release(&self, host: &impl Host, sid: &str) {
        let (key, tag) = slot_key(sid);
        let (value, cas) = host.shared_data(&key);
        let ours = value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .is_some_and(|v| v.split_once(':').is_some_and(|(t, _)| t == tag));
        if ours {
            let _ = host.set_shared_data(&key, b"", cas);
        }
    }
}
