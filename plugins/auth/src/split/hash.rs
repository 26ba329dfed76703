//! A stable 64-bit hash for everything the split stage must agree on across workers, proxies and
//! releases (state keys, sticky picks). `std`'s `DefaultHasher` is not that: its algorithm may
//! change with any Rust release.

/// FNV-1a over the bytes, finished with MurmurHash3's `fmix64` so inputs that differ in one byte
/// spread over all 64 bits (FNV alone leaves the high bits nearly unchanged).
#[derive(Debug, Clone, Copy)]
pub struct StableHasher(u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Default for StableHasher {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl StableHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        self
    }

    /// A length-prefixed field, so `("ab", "c")` and `("a", "bc")` hash differently.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.write(&(bytes.len() as u64).to_le_bytes()).write(bytes)
    }

    pub fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// A hash mapped into the open interval (0, 1): its top 52 bits, centred in their cell (with 53,
/// the top cell's centre rounds to 1.0).
pub fn unit_interval(hash: u64) -> f64 {
    ((hash >> 12) as f64 + 0.5) / (1u64 << 52) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned_across_releases() {
        // Changing these moves every sticky client and restarts every cycle: do it knowingly.
        assert_eq!(StableHasher::new().finish(), fmix64(FNV_OFFSET));
        let h = StableHasher::new().field(b"alice").field(b"v1").finish();
        assert_eq!(h, StableHasher::new().field(b"alice").field(b"v1").finish());
        assert_ne!(h, StableHasher::new().field(b"alic").field(b"ev1").finish());
        assert_eq!(
            format!("{:016x}", StableHasher::new().write(b"kea").finish()),
            PINNED
        );
    }

    const PINNED: &str = "d197aa00c3fc6758";

    #[test]
    fn unit_interval_is_open() {
        for h in [0, 1, u64::MAX, u64::MAX >> 1] {
            let u = unit_interval(h);
            assert!(u > 0.0 && u < 1.0, "{h} -> {u}");
        }
    }
}
