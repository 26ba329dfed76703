//! Human-friendly units in plugin configuration: durations (`"5s"`, `"250ms"`, `"1m"`) and byte
//! sizes (`"64KiB"`, `"1MB"`, `"512"`).

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written as text, e.g. `"5s"`, `"1m 30s"`, `"250ms"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for ConfigDuration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Self)
            .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. \"5s\", \"250ms\", \"1m\""))
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A byte size written as a whole number with an optional unit: `B`, `KB`/`MB`/`GB` (powers of
/// 1000), `KiB`/`MiB`/`GiB` (powers of 1024). Plain numbers are bytes.
///
/// Parsed by hand because the size crates accept fractions and round silently; a config value
/// should mean exactly what it says, and the parser is a dozen lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }
    pub fn get(self) -> u64 {
        self.0
    }
    /// As `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let bad = || format!("invalid size {text:?}; write e.g. \"512\", \"64KiB\", \"1MB\"");
        let number: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        number
            .checked_mul(multiplier)
            .map(Self)
            .ok_or_else(|| format!("size {text:?} is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size such as 4096 or \"64KiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            "5s".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_secs(5)
        );
        assert_eq!(
            "250ms".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(
            "1m 30s".parse::<ConfigDuration>().unwrap().get(),
            Duration::from_secs(90)
        );
        assert!("5"
            .parse::<ConfigDuration>()
            .unwrap_err()
            .contains("invalid duration"));
        assert!(
            serde_json::from_str::<ConfigDuration>("5").is_err(),
            "bare numbers are ambiguous"
        );
    }

    #[test]
    fn sizes() {
        let parse = |s: &str| s.parse::<ByteSize>().map(ByteSize::get);
        assert_eq!(parse("512"), Ok(512));
        assert_eq!(parse("64KiB"), Ok(65536));
        assert_eq!(parse("1 MB"), Ok(1_000_000));
        assert_eq!(parse("2MiB"), Ok(2 * 1024 * 1024));
        assert!(parse("1.5MB").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("99999999999999999999GiB").is_err());
        assert_eq!(serde_json::from_str::<ByteSize>("4096").unwrap().get(), 4096);
        assert_eq!(serde_json::from_str::<ByteSize>("\"4KiB\"").unwrap().get(), 4096);
        assert!(serde_json::from_str::<ByteSize>("-3").is_err());
    }
}
