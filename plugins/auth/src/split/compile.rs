//! The split configuration checked and compiled once, at configuration time.

use super::config::{SplitConfig, StickyBy};
use super::hash::StableHasher;
use kea_plugin_sdk::{ConfigError, Matcher, RequestView, RuleSet};

/// A checked split.
#[derive(Debug)]
pub struct Split {
    pub name: String,
    /// Backend keys (values of `x-kea-backend`) and their weights, in configuration order.
    pub keys: Vec<String>,
    pub weights: Vec<u32>,
    pub sticky: Option<StickyKey>,
    /// `mirrorPercent` in basis points (1..=10000).
    pub mirror_basis_points: Option<u32>,
    /// Shared-data key of the round-robin state: `kea.split.<name>.<fingerprint>`.
    pub state_key: String,
    /// Shared-data key of the mirror counter: `kea.mirror.<name>.<fingerprint>`.
    pub mirror_key: String,
}

/// Where the sticky identifier comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// The verified principal (`x-kea-sub`).
    Principal,
    /// A request header (lowercase name).
    Header(String),
}

/// The splits of a configuration, first match wins.
#[derive(Debug, Default)]
pub struct Splits {
    rules: RuleSet<usize>,
    all: Vec<Split>,
}

impl Splits {
    pub fn for_request(&self, view: &RequestView<'_>) -> Option<&Split> {
        self.rules
            .first_match(view)
            .and_then(|index| self.all.get(*index))
    }

    pub fn needs_route_name(&self) -> bool {
        self.rules.needs_route_name()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Split> {
        self.all.iter()
    }

    /// Checks every split; errors name the field (`splits[1].backends[0].key`).
    pub fn compile(
        splits: &[SplitConfig],
        header_name: impl Fn(&str, &str) -> Result<String, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut rules = Vec::with_capacity(splits.len());
        let mut all = Vec::with_capacity(splits.len());
        for (i, split) in splits.iter().enumerate() {
            let at = format!("splits[{i}]");
            let matcher = Matcher::compile(&split.match_spec)
                .map_err(|e| ConfigError::new(format!("{at}.match"), e.to_string()))?;
            rules.push((matcher, i));
            all.push(compile_split(&at, split, &header_name)?);
        }
        Ok(Self {
            rules: RuleSet::new(rules),
            all,
        })
    }
}

fn compile_split(
    at: &str,
    config: &SplitConfig,
    header_name: &impl Fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Split, ConfigError> {
    if config.name.is_empty() || config.name.chars().any(char::is_control) {
        return Err(ConfigError::new(
            format!("{at}.name"),
            "must be non-empty text without control characters",
        ));
    }
    if config.backends.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.backends"),
            "list at least one backend",
        ));
    }
    let mut keys: Vec<String> = Vec::with_capacity(config.backends.len());
    for (j, backend) in config.backends.iter().enumerate() {
        let field = format!("{at}.backends[{j}].key");
        if !is_header_value(&backend.key) {
            return Err(ConfigError::new(
                field,
                format!(
                    "{:?} is not a header value (visible ASCII, spaces only inside)",
                    backend.key
                ),
            ));
        }
        if keys.contains(&backend.key) {
            return Err(ConfigError::new(
                field,
                format!("{:?} is listed twice", backend.key),
            ));
        }
        keys.push(backend.key.clone());
    }
    let weights: Vec<u32> = config.backends.iter().map(|b| b.weight).collect();
    if weights.iter().all(|w| *w == 0) {
        return Err(ConfigError::new(
            format!("{at}.backends"),
            "at least one weight must be positive",
        ));
    }
    let sticky = match &config.sticky {
        None => None,
        Some(sticky) => match (sticky.by, &sticky.header) {
            (StickyBy::Principal, None) => Some(StickyKey::Principal),
            (StickyBy::Principal, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{at}.sticky.header"),
                    "only with by: Header",
                ))
            }
            (StickyBy::Header, None) => {
                return Err(ConfigError::new(
                    format!("{at}.sticky.header"),
                    "by: Header needs the header's name",
                ))
            }
            (StickyBy::Header, Some(name)) => Some(StickyKey::Header(header_name(
                &format!("{at}.sticky.header"),
                name,
            )?)),
        },
    };
    let mirror_basis_points = config
        .mirror_percent
        .map(|p| {
            basis_points(p).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}.mirrorPercent"),
                    format!("{p} is not a percent in (0, 100] with at most two decimals"),
                )
            })
        })
        .transpose()?;
    let fingerprint = fingerprint(&keys, &weights);
    Ok(Split {
        state_key: format!("kea.split.{}.{fingerprint:016x}", config.name),
        mirror_key: format!("kea.mirror.{}.{fingerprint:016x}", config.name),
        name: config.name.clone(),
        keys,
        weights,
        sticky,
        mirror_basis_points,
    })
}

/// Visible ASCII with spaces only inside: what survives every proxy unchanged in a header value.
fn is_header_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| (0x20..=0x7e).contains(b))
        && bytes.first() != Some(&b' ')
        && bytes.last() != Some(&b' ')
}

/// Identifies the backends and weights: a change gives new state keys, so the new split starts a
/// fresh cycle instead of inheriting the old one's position.
fn fingerprint(keys: &[String], weights: &[u32]) -> u64 {
    let mut hasher = StableHasher::new();
    for (key, weight) in keys.iter().zip(weights) {
        hasher.field(key.as_bytes()).write(&weight.to_le_bytes());
    }
    hasher.finish()
}

/// A percent with at most two decimals as basis points (1..=10000).
fn basis_points(percent: f64) -> Option<u32> {
    if !percent.is_finite() || percent <= 0.0 || percent > 100.0 {
        return None;
    }
    let scaled = percent * 100.0;
    let rounded = scaled.round();
    // 0.07 * 100 is 7.000000000000001: tolerate float noise, not a third decimal.
    ((scaled - rounded).abs() < 1e-6 && rounded >= 1.0).then_some(rounded as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_with_two_decimals_only() {
        assert_eq!(basis_points(20.0), Some(2000));
        assert_eq!(basis_points(0.5), Some(50));
        assert_eq!(basis_points(0.07), Some(7));
        assert_eq!(basis_points(100.0), Some(10_000));
        assert_eq!(basis_points(33.33), Some(3333));
        for bad in [0.0, -1.0, 100.01, 0.001, 12.345, f64::NAN, f64::INFINITY] {
            assert_eq!(basis_points(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_values() {
        assert!(is_header_value("v1") && is_header_value("canary v2"));
        for bad in ["", " v1", "v1 ", "v\u{e9}", "a\tb", "a\nb"] {
            assert!(!is_header_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_follow_keys_and_weights() {
        let keys = vec!["a".to_string(), "b".to_string()];
        assert_eq!(fingerprint(&keys, &[90, 10]), fingerprint(&keys, &[90, 10]));
        assert_ne!(fingerprint(&keys, &[90, 10]), fingerprint(&keys, &[80, 20]));
        let swapped = vec!["b".to_string(), "a".to_string()];
        assert_ne!(fingerprint(&keys, &[50, 50]), fingerprint(&swapped, &[50, 50]));
    }
}
