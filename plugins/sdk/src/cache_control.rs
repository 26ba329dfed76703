//! `Cache-Control` parsing (RFC 9111 section 5.2), tolerant the way caches must be: unknown
//! directives are ignored, malformed values make that directive invalid, and conflicting
//! duplicates of a freshness directive make the response stale rather than fresh. The cache's
//! freshness rules and every callout that honours an answer's lifetime (auth's key sets) read
//! it here.

/// The directives a shared cache acts on. Absent means "not present".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub no_store: bool,
    /// Unqualified `no-cache`: every reuse needs revalidation.
    pub no_cache: bool,
    /// `no-cache="field, ..."` (RFC 9111 5.2.2.4): the response may be reused, those fields not;
    /// the cache stores the response without them. Lowercase.
    pub no_cache_fields: Vec<String>,
    /// Unqualified `private`: not for a shared cache.
    pub private: bool,
    /// `private="field, ..."` (5.2.2.7): a shared cache must not store those fields. Lowercase.
    pub private_fields: Vec<String>,
    /// `must-understand` (5.2.2.3): store only if the status code's caching rules are known.
    pub must_understand: bool,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub no_transform: bool,
    pub only_if_cached: bool,
    pub max_stale: Option<u64>,
    /// `max-stale` without a value: any staleness is acceptable.
    pub max_stale_any: bool,
    pub min_fresh: Option<u64>,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub immutable: bool,
    /// A freshness directive appeared twice with different values (RFC 9111 4.2.1): treat the
    /// response as stale.
    pub conflicting: bool,
}

/// Delta-seconds (RFC 9111 1.2.2): digits only; values too large saturate at 2^31.
fn delta_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    const CAP: u64 = 1 << 31;
    Some(value.parse::<u64>().map_or(CAP, |v| v.min(CAP)))
}

/// Splits a header value on commas that are not inside a quoted string.
fn split_directives(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(value.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or_default());
    parts
}

/// The field names of a qualified `no-cache`/`private`, lowercase; `None` for the unqualified
/// form, and for an argument that names no field (treated as unqualified: the stricter reading).
fn field_names(argument: Option<&str>) -> Option<Vec<String>> {
    let names: Vec<String> = argument?
        .split(',')
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    (!names.is_empty() && names.iter().all(|name| crate::host::is_token(name))).then_some(names)
}

impl CacheControl {
    /// Whether a stale response must not be served without revalidation: `must-revalidate`,
    /// `proxy-revalidate` and `s-maxage` (which implies it, 5.2.2.10) all bind a shared cache.
    pub fn revalidate_when_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }

    /// Parses every `Cache-Control` field line of a message (they combine as one list).
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut cc = Self::default();
        for value in values {
            for directive in split_directives(value) {
                let directive = directive.trim();
                if directive.is_empty() {
                    continue;
                }
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name.trim(), Some(argument.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                cc.apply(&name.to_ascii_lowercase(), argument);
            }
        }
        cc
    }

    fn apply(&mut self, name: &str, argument: Option<&str>) {
        let seconds = argument.and_then(delta_seconds);
        let set_seconds = |slot: &mut Option<u64>, conflicting: &mut bool| match (seconds, *slot) {
            (Some(new), Some(old)) if new != old => *conflicting = true,
            (Some(new), _) => *slot = Some(new),
            // A freshness directive with a malformed value: the response cannot be trusted fresh.
            (None, _) => *conflicting = true,
        };
        match name {
            "max-age" => set_seconds(&mut self.max_age, &mut self.conflicting),
            "s-maxage" => set_seconds(&mut self.s_maxage, &mut self.conflicting),
            "no-store" => self.no_store = true,
            "no-cache" => match field_names(argument) {
                Some(names) => self.no_cache_fields.extend(names),
                None => self.no_cache = true,
            },
            "private" => match field_names(argument) {
                Some(names) => self.private_fields.extend(names),
                None => self.private = true,
            },
            "must-understand" => self.must_understand = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "no-transform" => self.no_transform = true,
            "only-if-cached" => self.only_if_cached = true,
            "immutable" => self.immutable = true,
            "max-stale" => match argument {
                None => self.max_stale_any = true,
                Some(_) => self.max_stale = seconds.or(self.max_stale),
            },
            "min-fresh" => self.min_fresh = seconds.or(self.min_fresh),
            "stale-while-revalidate" => self.stale_while_revalidate = seconds.or(self.stale_while_revalidate),
            "stale-if-error" => self.stale_if_error = seconds.or(self.stale_if_error),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_response_directives() {
        let cc = CacheControl::parse(["public, max-age=60, s-maxage=\"120\", stale-while-revalidate=30"]);
        assert!(cc.public);
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(120));
        assert_eq!(cc.stale_while_revalidate, Some(30));
        assert!(!cc.conflicting);
    }

    #[test]
    fn combines_field_lines_and_ignores_case_and_unknowns() {
        let cc = CacheControl::parse(["No-Store", "X-Custom=1, PRIVATE"]);
        assert!(cc.no_store && cc.private);
        assert_eq!(cc.max_age, None);
    }

    #[test]
    fn quoted_commas_do_not_split() {
        let cc = CacheControl::parse([r#"no-cache="Set-Cookie, x-a", max-age=5"#]);
        assert!(!cc.no_cache, "qualified: the response itself may be reused");
        assert_eq!(cc.no_cache_fields, vec!["set-cookie", "x-a"]);
        assert_eq!(cc.max_age, Some(5));
    }

    #[test]
    fn qualified_private_and_must_understand() {
        let cc = CacheControl::parse([r#"private="set-cookie", must-understand, no-store"#]);
        assert!(!cc.private && cc.must_understand && cc.no_store);
        assert_eq!(cc.private_fields, vec!["set-cookie"]);
        // An argument naming nothing, or not a field name: the stricter, unqualified reading.
        assert!(CacheControl::parse([r#"private="""#]).private);
        assert!(CacheControl::parse([r#"no-cache="a b""#]).no_cache);
        assert!(CacheControl::parse(["s-maxage=5"]).revalidate_when_stale());
        assert!(CacheControl::parse(["proxy-revalidate"]).revalidate_when_stale());
        assert!(!CacheControl::parse(["max-age=5"]).revalidate_when_stale());
    }

    #[test]
    fn malformed_and_conflicting_freshness_is_not_trusted() {
        assert!(CacheControl::parse(["max-age=abc"]).conflicting);
        assert!(CacheControl::parse(["max-age=-1"]).conflicting);
        assert!(CacheControl::parse(["max-age"]).conflicting);
        assert!(CacheControl::parse(["max-age=10, max-age=20"]).conflicting);
        let same = CacheControl::parse(["max-age=10", "max-age=10"]);
        assert!(!same.conflicting);
        assert_eq!(same.max_age, Some(10));
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(
            CacheControl::parse(["max-age=99999999999999999999999"]).max_age,
            Some(1 << 31)
        );
    }

    #[test]
    fn request_directives() {
        let cc = CacheControl::parse(["max-stale, min-fresh=5, only-if-cached"]);
        assert!(cc.max_stale_any && cc.only_if_cached);
        assert_eq!(cc.min_fresh, Some(5));
        assert_eq!(CacheControl::parse(["max-stale=7"]).max_stale, Some(7));
    }

    #[test]
    fn empty_and_garbage_values() {
        assert_eq!(CacheControl::parse([""]), CacheControl::default());
        assert_eq!(CacheControl::parse([",,, ,"]), CacheControl::default());
        let cc = CacheControl::parse(["\u{fffd}\u{0}=\"unterminated, max-age=3"]);
        assert_eq!(cc.max_age, None, "inside an unterminated quote");
    }
}
