//! `Surrogate-Control` (W3C Edge Architecture Specification 1.0): the origin's instructions to
//! surrogates — a gateway cache is one. Directives may be targeted at one surrogate with
//! `;device-token` (`max-age=60;kea`); directives targeted at this cache win over untargeted
//! ones, and whatever the header says for this cache wins over `Cache-Control`, which is left for
//! the caches downstream. The header is removed before the response leaves the gateway.

use crate::cache_control::CacheControl;

/// What `Surrogate-Control` tells this cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SurrogateControl {
    pub no_store: bool,
    pub max_age: Option<u64>,
    /// A `max-age` with a malformed value: not trusted fresh.
    pub malformed: bool,
}

/// Delta-seconds with the spec's optional `+delta` suffix (ignored); saturating like
/// `Cache-Control`.
fn max_age_value(argument: &str) -> Option<u64> {
    let seconds = argument
        .trim()
        .trim_matches('"')
        .split('+')
        .next()
        .unwrap_or_default()
        .trim();
    if seconds.is_empty() || !seconds.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(seconds.parse::<u64>().map_or(1 << 31, |v| v.min(1 << 31)))
}

impl SurrogateControl {
    /// The directives of every `Surrogate-Control` line that concern `device_token` (untargeted
    /// ones, and ones targeted at it, which take precedence). `None` when none concern it.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>, device_token: &str) -> Option<Self> {
        let mut untargeted = Self::default();
        let mut targeted = Self::default();
        let (mut any_untargeted, mut any_targeted) = (false, false);
        for value in values {
            for directive in value.split(',') {
                let (directive, target) = match directive.rsplit_once(';') {
                    Some((directive, target)) => (directive.trim(), Some(target.trim())),
                    None => (directive.trim(), None),
                };
                if directive.is_empty() {
                    continue;
                }
                let into = match target {
                    None => {
                        any_untargeted = true;
                        &mut untargeted
                    }
                    Some(target) if target.eq_ignore_ascii_case(device_token) => {
                        any_targeted = true;
                        &mut targeted
                    }
                    Some(_) => continue,
                };
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name.trim(), Some(argument)),
                    None => (directive, None),
                };
                if name.eq_ignore_ascii_case("no-store") {
                    into.no_store = true;
                } else if name.eq_ignore_ascii_case("max-age") {
                    match argument.and_then(max_age_value) {
                        Some(seconds) if into.max_age.is_none_or(|known| known == seconds) => {
                            into.max_age = Some(seconds);
                        }
                        _ => into.malformed = true,
                    }
                }
            }
        }
        match (any_targeted, any_untargeted) {
            (true, _) => Some(targeted),
            (false, true) => Some(untargeted),
            (false, false) => None,
        }
    }

    /// The `Cache-Control` this cache acts on once `Surrogate-Control` is taken into account:
    /// `no-store` stores nothing; a `max-age` replaces the origin's freshness and lifts
    /// `private`/`no-cache`, which address the other caches.
    pub fn governs(&self, cache_control: &CacheControl) -> CacheControl {
        if self.no_store {
            return CacheControl {
                no_store: true,
                ..CacheControl::default()
            };
        }
        if self.malformed {
            return CacheControl {
                conflicting: true,
                ..CacheControl::default()
            };
        }
        match self.max_age {
            Some(max_age) => CacheControl {
                max_age: Some(max_age),
                stale_while_revalidate: cache_control.stale_while_revalidate,
                stale_if_error: cache_control.stale_if_error,
                ..CacheControl::default()
            },
            None => cache_control.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targeted_directives_win_over_untargeted_ones() {
        let parsed = SurrogateControl::parse(["max-age=10, max-age=300;kea, no-store;other"], "kea");
        assert_eq!(parsed.map(|s| s.max_age), Some(Some(300)));
        let parsed = SurrogateControl::parse(["max-age=10", "no-store;other"], "kea");
        assert_eq!(parsed.map(|s| (s.max_age, s.no_store)), Some((Some(10), false)));
        let parsed = SurrogateControl::parse(["no-store;KEA"], "kea");
        assert!(parsed.is_some_and(|s| s.no_store));
        assert_eq!(SurrogateControl::parse(["max-age=5;other"], "kea"), None);
        assert_eq!(SurrogateControl::parse([""], "kea"), None);
    }

    #[test]
    fn max_age_values() {
        let age = |v: &str| SurrogateControl::parse([v], "kea");
        assert_eq!(age("max-age=30+60").and_then(|s| s.max_age), Some(30));
        assert_eq!(age("max-age=\"30\"").and_then(|s| s.max_age), Some(30));
        assert!(age("max-age=-1").is_some_and(|s| s.malformed));
        assert!(age("max-age").is_some_and(|s| s.malformed));
        assert!(age("max-age=1, max-age=2").is_some_and(|s| s.malformed));
        assert_eq!(
            age("max-age=999999999999999999999").and_then(|s| s.max_age),
            Some(1 << 31)
        );
        assert!(age("content=\"ESI/1.0\"").is_some_and(|s| s.max_age.is_none() && !s.no_store));
    }

    #[test]
    fn surrogate_control_governs_this_cache() {
        let origin = CacheControl::parse(["private, no-cache, max-age=0, stale-if-error=60"]);
        let surrogate = SurrogateControl {
            max_age: Some(120),
            ..SurrogateControl::default()
        };
        let governed = surrogate.governs(&origin);
        assert_eq!(governed.max_age, Some(120));
        assert!(!governed.private && !governed.no_cache);
        assert_eq!(governed.stale_if_error, Some(60));
        let no_store = SurrogateControl {
            no_store: true,
            ..SurrogateControl::default()
        };
        assert!(
            no_store
                .governs(&CacheControl::parse(["public, max-age=60"]))
                .no_store
        );
        // Nothing about freshness: Cache-Control decides.
        let silent = SurrogateControl::default().governs(&origin);
        assert_eq!(silent, origin);
    }
}
