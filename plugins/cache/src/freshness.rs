//! What RFC 9111 says about one response: may a shared cache store it (section 3), for how long
//! is it fresh (4.2.1), and how old is it now (4.2.3). Times are whole seconds since the epoch.

use crate::cache_control::CacheControl;
use crate::surrogate::SurrogateControl;

/// Status codes that are heuristically cacheable (RFC 9110 section 15.1).
pub const HEURISTICALLY_CACHEABLE: &[u16] = &[200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Status codes whose caching semantics this cache implements (the final statuses RFC 9110
/// defines, minus 206 and 304, which it never stores): what `must-understand` asks for.
pub const UNDERSTOOD: &[u16] = &[
    200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408,
    409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505,
];

/// Longest heuristic freshness, whatever `Last-Modified` says.
const MAX_HEURISTIC: u64 = 24 * 3600;

/// The response fields freshness depends on, parsed once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: u16,
    pub cache_control: CacheControl,
    pub date: Option<u64>,
    /// `Some(None)`: an `Expires` that is not a valid date, which means "already expired".
    pub expires: Option<Option<u64>>,
    pub age: Option<u64>,
    pub last_modified: Option<u64>,
    /// `Vary` field names, lowercase; `*` included as is.
    pub vary: Vec<String>,
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime) to epoch seconds.
pub fn http_date(value: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The largest age a cache needs to represent (RFC 9111 1.2.2: "infinity", over 68 years).
pub const AGE_CAP: u64 = 1 << 31;

/// An `Age` field value (RFC 9111 5.1): its first member as delta-seconds; anything else
/// (negative, fractional, signed, empty, not digits) is ignored as if absent. Too large a value
/// saturates at 2^31 (1.2.2).
pub fn parse_age(value: &str) -> Option<u64> {
    let first = value
        .split(',')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(first.parse::<u64>().map_or(AGE_CAP, |age| age.min(AGE_CAP)))
}

impl ResponseFacts {
    /// From a response's status and headers (names lowercase, as proxies give them).
    pub fn from_headers<'a>(status: u16, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::for_surrogate(status, headers, None)
    }

    /// The same, for the surrogate named `device_token`: what `Surrogate-Control` says for it
    /// takes precedence over `Cache-Control` (see `surrogate`).
    pub fn for_surrogate<'a>(
        status: u16,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        device_token: Option<&str>,
    ) -> Self {
        let mut surrogate_control = Vec::new();
        let mut facts = Self {
            status,
            ..Self::default()
        };
        let mut cache_control = Vec::new();
        let mut age_seen = false;
        for (name, value) in headers {
            match name {
                "cache-control" => cache_control.push(value),
                "surrogate-control" => surrogate_control.push(value),
                "date" => facts.date = http_date(value),
                // Several Expires lines: the response is treated as stale (RFC 9111 4.2.1).
                "expires" if facts.expires.is_some() => facts.expires = Some(None),
                "expires" => facts.expires = Some(http_date(value)),
                // RFC 9111 5.1: of a list (or repeated lines) the first member counts.
                "age" if !age_seen => {
                    age_seen = true;
                    facts.age = parse_age(value);
                }
                "last-modified" => facts.last_modified = http_date(value),
                "vary" => facts.vary.extend(
                    value
                        .split(',')
                        .map(|v| v.trim().to_ascii_lowercase())
                        .filter(|v| !v.is_empty()),
                ),
                _ => {}
            }
        }
        facts.cache_control = CacheControl::parse(cache_control);
        if let Some(surrogate) =
            device_token.and_then(|token| SurrogateControl::parse(surrogate_control, token))
        {
            facts.cache_control = surrogate.governs(&facts.cache_control);
        }
        facts.vary.sort();
        facts.vary.dedup();
        facts
    }

    /// Whether the origin gave explicit freshness information.
    pub fn has_explicit_freshness(&self) -> bool {
        let cc = &self.cache_control;
        cc.s_maxage.is_some() || cc.max_age.is_some() || self.expires.is_some() || cc.conflicting
    }

    /// Freshness lifetime for a shared cache. `default_ttl` is the operator's rule for responses
    /// that say nothing; without it a heuristic (10 % of the time since `Last-Modified`) applies to
    /// heuristically cacheable statuses.
    pub fn freshness_lifetime(&self, response_time: u64, default_ttl: Option<u64>) -> u64 {
        let cc = &self.cache_control;
        if cc.conflicting {
            return 0;
        }
        if let Some(s_maxage) = cc.s_maxage {
            return s_maxage;
        }
        if let Some(max_age) = cc.max_age {
            return max_age;
        }
        if let Some(expires) = self.expires {
            let Some(expires) = expires else { return 0 };
            return expires.saturating_sub(self.date.unwrap_or(response_time));
        }
        if let Some(ttl) = default_ttl {
            return ttl;
        }
        match (self.last_modified, HEURISTICALLY_CACHEABLE.contains(&self.status)) {
            (Some(modified), true) => {
                (self.date.unwrap_or(response_time).saturating_sub(modified) / 10).min(MAX_HEURISTIC)
            }
            _ => 0,
        }
    }

    /// The age of the response when it was received (RFC 9111 4.2.3, `corrected_initial_age`),
    /// from its `Date` and `Age` and the time the request was sent and the response received.
    pub fn initial_age(&self, request_time: u64, response_time: u64) -> u64 {
        let apparent_age = self.date.map_or(0, |date| response_time.saturating_sub(date));
        let response_delay = response_time.saturating_sub(request_time);
        let corrected_age_value = self.age.unwrap_or(0).saturating_add(response_delay);
        apparent_age.max(corrected_age_value).min(AGE_CAP)
    }
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    VaryStar,
    /// A `Vary` member that is not a field name: which requests the response fits is unknown.
    InvalidVary,
    NoFreshness,
    /// `must-understand` on a status code the cache does not implement.
    NotUnderstood,
}

/// What the request side contributes to the storage decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub cache_control: Option<&'a CacheControl>,
    pub has_authorization: bool,
}

/// RFC 9111 section 3 for a shared cache, plus the rule: `methods` it caches, `per_user` (the key
/// includes the principal, so responses to authorised requests may be stored), `default_ttl`.
pub fn storable(
    request: &RequestFacts<'_>,
    response: &ResponseFacts,
    methods: &[String],
    per_user: bool,
    default_ttl: Option<u64>,
) -> Result<(), NotStorable> {
    if !methods.iter().any(|m| m.eq_ignore_ascii_case(request.method)) {
        return Err(NotStorable::Method);
    }
    // Partial content and 304 are not stored (ranges are answered from complete responses; a 304
    // only refreshes).
    if !(200..600).contains(&response.status) || matches!(response.status, 206 | 304) {
        return Err(NotStorable::Status);
    }
    let cc = &response.cache_control;
    if request.cache_control.is_some_and(|c| c.no_store) {
        return Err(NotStorable::NoStore);
    }
    // 5.2.2.3: with `must-understand`, a status whose caching rules the cache implements is
    // stored whatever `no-store` says (that is for caches that do not understand it); any
    // other status is not stored.
    if cc.must_understand {
        if !UNDERSTOOD.contains(&response.status) {
            return Err(NotStorable::NotUnderstood);
        }
    } else if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private && !per_user {
        return Err(NotStorable::Private);
    }
    // RFC 9111 3.5: a shared cache stores responses to authorised requests only when the origin
    // says so, or when the key separates users.
    if request.has_authorization && !per_user && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Err(NotStorable::Authorization);
    }
    if response.vary.iter().any(|v| v == "*") {
        return Err(NotStorable::VaryStar);
    }
    if response
        .vary
        .iter()
        .any(|name| !kea_plugin_sdk::host::is_token(name))
    {
        return Err(NotStorable::InvalidVary);
    }
    let explicit = response.has_explicit_freshness() || cc.public;
    let heuristic = HEURISTICALLY_CACHEABLE.contains(&response.status);
    if !(explicit || heuristic || default_ttl.is_some()) {
        return Err(NotStorable::NoFreshness);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Thu, 26 Nov 2026 06:00:00 GMT";
    const T: u64 = 1_795_672_800; // DATE as epoch seconds

    fn facts(status: u16, headers: &[(&str, &str)]) -> ResponseFacts {
        ResponseFacts::from_headers(status, headers.iter().copied())
    }

    fn get() -> RequestFacts<'static> {
        RequestFacts {
            method: "GET",
            cache_control: None,
            has_authorization: false,
        }
    }

    fn methods() -> Vec<String> {
        vec!["GET".into(), "HEAD".into()]
    }

    #[test]
    fn parses_dates_in_all_three_formats() {
        assert_eq!(http_date(DATE), Some(T));
        assert_eq!(http_date("Thursday, 26-Nov-26 06:00:00 GMT"), Some(T));
        assert_eq!(http_date("Thu Nov 26 06:00:00 2026"), Some(T));
        assert_eq!(http_date("0"), None);
    }

    #[test]
    fn lifetime_prefers_s_maxage_then_max_age_then_expires() {
        let f = facts(
            200,
            &[("cache-control", "max-age=60, s-maxage=30"), ("date", DATE)],
        );
        assert_eq!(f.freshness_lifetime(T, Some(999)), 30);
        let f = facts(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("expires", "Thu, 26 Nov 2026 07:00:00 GMT"),
            ],
        );
        assert_eq!(f.freshness_lifetime(T, None), 60);
        let f = facts(
            200,
            &[("expires", "Thu, 26 Nov 2026 06:10:00 GMT"), ("date", DATE)],
        );
        assert_eq!(
            f.freshness_lifetime(T + 5, None),
            600,
            "relative to Date, not to receipt"
        );
    }

    #[test]
    fn invalid_or_repeated_expires_means_stale() {
        assert_eq!(facts(200, &[("expires", "0")]).freshness_lifetime(T, Some(60)), 0);
        let twice = facts(200, &[("expires", DATE), ("expires", DATE)]);
        assert_eq!(twice.freshness_lifetime(T, Some(60)), 0);
        assert_eq!(
            facts(200, &[("cache-control", "max-age=1, max-age=2")]).freshness_lifetime(T, Some(60)),
            0
        );
    }

    #[test]
    fn default_ttl_then_heuristic_when_the_origin_is_silent() {
        let silent = facts(
            200,
            &[("date", DATE), ("last-modified", "Mon, 16 Nov 2026 06:00:00 GMT")],
        );
        assert_eq!(silent.freshness_lifetime(T, Some(42)), 42);
        assert_eq!(
            silent.freshness_lifetime(T, None),
            MAX_HEURISTIC,
            "10 days / 10 capped at a day"
        );
        let recent = facts(
            200,
            &[("date", DATE), ("last-modified", "Thu, 26 Nov 2026 05:00:00 GMT")],
        );
        assert_eq!(recent.freshness_lifetime(T, None), 360);
        assert_eq!(
            facts(500, &[("last-modified", DATE)]).freshness_lifetime(T, None),
            0
        );
    }

    #[test]
    fn age_follows_rfc_9111_4_2_3() {
        let f = facts(200, &[("date", DATE), ("age", "10")]);
        // Sent at T, requested at T+1, received at T+3: apparent 3, corrected 10 + 2 = 12.
        assert_eq!(f.initial_age(T + 1, T + 3), 12);
        let skewed = facts(200, &[("date", "Thu, 26 Nov 2026 05:00:00 GMT")]);
        assert_eq!(skewed.initial_age(T, T), 3600);
    }

    #[test]
    fn age_values_follow_rfc_9111_5_1() {
        // Invalid values are ignored: the age is what Date and the delay say.
        for invalid in ["garbage", "-1", "1.5", "+5", "", " ", "0x10", "١٢"] {
            assert_eq!(parse_age(invalid), None, "{invalid:?}");
            assert_eq!(
                facts(200, &[("age", invalid)]).initial_age(T, T + 2),
                2,
                "{invalid:?}"
            );
        }
        // A list, or repeated lines: the first member counts.
        assert_eq!(parse_age("30, 60"), Some(30));
        assert_eq!(parse_age(" 7 "), Some(7));
        assert_eq!(facts(200, &[("age", "100"), ("age", "5")]).age, Some(100));
        assert_eq!(
            facts(200, &[("age", "x"), ("age", "5")]).age,
            None,
            "the first line is invalid"
        );
        // Too large: 2^31, and so is every age computed from it.
        assert_eq!(parse_age("99999999999999999999999"), Some(AGE_CAP));
        assert_eq!(
            facts(200, &[("age", "2147483648")]).initial_age(T, T + 9),
            AGE_CAP
        );
    }

    #[test]
    fn storability_follows_section_3() {
        let ok = facts(200, &[("cache-control", "max-age=60")]);
        assert_eq!(storable(&get(), &ok, &methods(), false, None), Ok(()));
        let post = RequestFacts {
            method: "POST",
            ..get()
        };
        assert_eq!(
            storable(&post, &ok, &methods(), false, None),
            Err(NotStorable::Method)
        );
        assert_eq!(
            storable(&get(), &facts(206, &[]), &methods(), false, None),
            Err(NotStorable::Status)
        );
        let no_store = facts(200, &[("cache-control", "max-age=60, no-store")]);
        assert_eq!(
            storable(&get(), &no_store, &methods(), false, None),
            Err(NotStorable::NoStore)
        );
        let request_no_store = CacheControl::parse(["no-store"]);
        let req = RequestFacts {
            cache_control: Some(&request_no_store),
            ..get()
        };
        assert_eq!(
            storable(&req, &ok, &methods(), false, None),
            Err(NotStorable::NoStore)
        );
        let private = facts(200, &[("cache-control", "private, max-age=60")]);
        assert_eq!(
            storable(&get(), &private, &methods(), false, None),
            Err(NotStorable::Private)
        );
        assert_eq!(
            storable(&get(), &private, &methods(), true, None),
            Ok(()),
            "per-user keys may store private"
        );
        let star = facts(200, &[("cache-control", "max-age=60"), ("vary", "accept, *")]);
        assert_eq!(
            storable(&get(), &star, &methods(), false, None),
            Err(NotStorable::VaryStar)
        );
        for invalid in ["accept language", "x-a, \"q\"", "\u{e9}t\u{e9}"] {
            let odd = facts(200, &[("cache-control", "max-age=60"), ("vary", invalid)]);
            assert_eq!(
                storable(&get(), &odd, &methods(), false, None),
                Err(NotStorable::InvalidVary),
                "{invalid}"
            );
        }
        assert_eq!(
            storable(&get(), &facts(500, &[]), &methods(), false, None),
            Err(NotStorable::NoFreshness)
        );
        assert_eq!(
            storable(&get(), &facts(500, &[]), &methods(), false, Some(5)),
            Ok(())
        );
    }

    #[test]
    fn authorised_requests_need_the_origins_permission() {
        let auth = RequestFacts {
            has_authorization: true,
            ..get()
        };
        let plain = facts(200, &[("cache-control", "max-age=60")]);
        assert_eq!(
            storable(&auth, &plain, &methods(), false, None),
            Err(NotStorable::Authorization)
        );
        for allowed in ["public, max-age=60", "s-maxage=60", "must-revalidate, max-age=60"] {
            let f = facts(200, &[("cache-control", allowed)]);
            assert_eq!(storable(&auth, &f, &methods(), false, None), Ok(()), "{allowed}");
        }
        assert_eq!(
            storable(&auth, &plain, &methods(), true, None),
            Ok(()),
            "per-user key"
        );
    }

    #[test]
    fn vary_names_are_normalised() {
        let f = facts(200, &[("vary", "Accept-Encoding, accept"), ("vary", "X-Tenant")]);
        assert_eq!(f.vary, vec!["accept", "accept-encoding", "x-tenant"]);
    }
}
