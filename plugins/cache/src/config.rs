//! The cache plugin's configuration and its compiled form. `{}` is a working config: GET and HEAD
//! cached per RFC 9111 for every route, 4096 entries of at most 1 MiB, no purge endpoint.

use crate::key::QueryFilter;
use kea_plugin_sdk::config::parse_sha256_hex;
use kea_plugin_sdk::host::is_token;
use kea_plugin_sdk::{ByteSize, ConfigDuration, ConfigError, MatchSpec, Matcher, RuleSet};
use serde::{Deserialize, Serialize};
use std::rc::Rc;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Per-route settings; the first rule whose `match` holds applies, else `defaults`.
    pub rules: Vec<CacheRule>,
    pub defaults: RuleSettings,
    pub store: StoreConfig,
    /// Purge with the `PURGE` method; absent means no purging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeConfig>,
    /// How this cache reads `Surrogate-Control` as a surrogate.
    pub surrogate: SurrogateConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SurrogateConfig {
    /// Honour `Surrogate-Control` and remove it from responses, as the surrogate it is addressed
    /// to (default true). When false this cache is no surrogate: it neither honours nor removes
    /// the field, which is left for a surrogate further out.
    pub enabled: bool,
    /// This cache's device token: directives targeted `;<token>` are for it (default `kea`).
    pub device_token: String,
}

impl Default for SurrogateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            device_token: "kea".into(),
        }
    }
}

/// What happens to responses that set cookies (RFC 9111 3: a cache may store them; a shared
/// cache must not hand one user's cookie to another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SetCookiePolicy {
    /// Not stored (the default without `perUser`).
    DoNotStore,
    /// Stored without its `Set-Cookie` fields: the client that caused the store gets its
    /// cookie, hits get none.
    StoreWithout,
    /// Stored with them and replayed on hits (the default with `perUser`, where every entry
    /// has one user; on shared entries only for cookies meant for everyone).
    Replay,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CacheRule {
    #[serde(rename = "match", default)]
    pub match_spec: MatchSpec,
    #[serde(default)]
    pub settings: RuleSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RuleSettings {
    /// `false` passes matching requests by (`x-kea-cache: BYPASS`).
    pub enabled: bool,
    /// Freshness for responses whose origin gives none (no `max-age`, `s-maxage`, `Expires`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<ConfigDuration>,
    /// Methods served from the cache (default GET and HEAD).
    pub methods: Vec<String>,
    /// Query parameters in the key: all (default), only `include`, or all but `exclude`.
    pub query: QueryConfig,
    /// Request headers whose values are part of the key (e.g. `accept-language`).
    pub key_headers: Vec<String>,
    /// Key by the verified principal (`x-kea-sub`): responses to authorised requests, and
    /// `private` ones, may then be stored, each user getting their own entry.
    pub per_user: bool,
    /// Responses with `Set-Cookie`: `doNotStore`, `storeWithout` or `replay` (default
    /// `replay` with `perUser`, else `doNotStore`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_cookie: Option<SetCookiePolicy>,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            default_ttl: None,
            methods: vec!["GET".into(), "HEAD".into()],
            query: QueryConfig::default(),
            key_headers: Vec::new(),
            per_user: false,
            set_cookie: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct QueryConfig {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Entries held at most, shared by every worker (default 4096).
    pub max_entries: u32,
    /// Largest cached response, headers and key included (default 1MiB); larger ones pass through.
    pub max_entry_bytes: ByteSize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            max_entry_bytes: ByteSize::mib(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurgeConfig {
    /// SHA-256 (hex) of the purge token, so the token itself is not in the configuration.
    pub token_sha256: String,
    /// Path prefixes that can be purged as a whole (`kea-purge: prefix`); each keeps a
    /// generation counter that is part of the keys below it.
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// A rule's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enabled: bool,
    pub default_ttl: Option<u64>,
    pub methods: Vec<String>,
    pub query: QueryFilter,
    pub key_headers: Vec<String>,
    pub per_user: bool,
    pub set_cookie: SetCookiePolicy,
}

#[derive(Debug)]
pub struct Compiled {
    pub rules: RuleSet<Rc<Policy>>,
    pub defaults: Rc<Policy>,
    pub max_entries: u32,
    pub max_entry_bytes: usize,
    pub purge_token_sha256: Option<[u8; 32]>,
    pub purge_prefixes: Vec<String>,
    /// The device token `Surrogate-Control` is read for; `None` when it is not honoured.
    pub surrogate_token: Option<String>,
    /// No request can reach a rule that caches, and purging is off: every request is bypassed
    /// without reading any of it.
    pub caches_nothing: bool,
}

impl Compiled {
    pub fn policy_for(&self, view: &kea_plugin_sdk::RequestView<'_>) -> &Rc<Policy> {
        self.rules.first_match(view).unwrap_or(&self.defaults)
    }
}

fn compile_settings(at: &str, settings: &RuleSettings) -> Result<Policy, ConfigError> {
    let err = |field: &str, reason: String| ConfigError::new(format!("{at}{field}"), reason);
    if settings.enabled && settings.methods.is_empty() {
        return Err(err(
            "methods",
            "list at least one method (or set enabled: false)".into(),
        ));
    }
    for (i, method) in settings.methods.iter().enumerate() {
        if !is_token(method) {
            return Err(err(
                &format!("methods[{i}]"),
                format!("{method:?} is not an HTTP method"),
            ));
        }
        if !matches!(method.to_ascii_uppercase().as_str(), "GET" | "HEAD") {
            return Err(err(
                &format!("methods[{i}]"),
                format!("{method} responses are not cacheable here (GET, HEAD)"),
            ));
        }
    }
    for (i, name) in settings.key_headers.iter().enumerate() {
        if !is_token(name) {
            return Err(err(
                &format!("keyHeaders[{i}]"),
                format!("{name:?} is not a header name"),
            ));
        }
    }
    let query = match (&settings.query.include[..], &settings.query.exclude[..]) {
        ([], []) => QueryFilter::All,
        (include, []) => QueryFilter::Include(include.to_vec()),
        ([], exclude) => QueryFilter::Exclude(exclude.to_vec()),
        _ => return Err(err("query", "give include or exclude, not both".into())),
    };
    let default_ttl = settings.default_ttl.map(|ttl| ttl.get().as_secs());
    if default_ttl == Some(0) {
        return Err(err(
            "defaultTtl",
            "must be at least 1s (omit it to cache only what the origin allows)".into(),
        ));
    }
    Ok(Policy {
        enabled: settings.enabled,
        default_ttl,
        methods: settings.methods.iter().map(|m| m.to_ascii_uppercase()).collect(),
        query,
        key_headers: settings
            .key_headers
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        per_user: settings.per_user,
        set_cookie: settings.set_cookie.unwrap_or(if settings.per_user {
            SetCookiePolicy::Replay
        } else {
            SetCookiePolicy::DoNotStore
        }),
    })
}

impl CacheConfig {
    pub fn compile(&self) -> Result<Compiled, ConfigError> {
        let defaults = Rc::new(compile_settings("defaults.", &self.defaults)?);
        let mut rules: Vec<(Matcher, Rc<Policy>)> = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let matcher = Matcher::compile(&rule.match_spec)
                .map_err(|e| ConfigError::new(format!("rules[{i}].match"), e.to_string()))?;
            rules.push((
                matcher,
                Rc::new(compile_settings(
                    &format!("rules[{i}].settings."),
                    &rule.settings,
                )?),
            ));
        }
        if self.store.max_entries == 0 || self.store.max_entries > 1 << 20 {
            return Err(ConfigError::new(
                "store.maxEntries",
                "must be between 1 and 1048576",
            ));
        }
        let max_entry = self.store.max_entry_bytes.get();
        if !(1024..=16 * 1024 * 1024).contains(&max_entry) {
            return Err(ConfigError::new(
                "store.maxEntryBytes",
                "must be between 1KiB and 16MiB",
            ));
        }
        let (purge_token_sha256, purge_prefixes) = match &self.purge {
            None => (None, Vec::new()),
            Some(purge) => {
                let digest = parse_sha256_hex(&purge.token_sha256).ok_or_else(|| {
                    ConfigError::new(
                        "purge.tokenSha256",
                        "must be 64 hex digits: the SHA-256 of the purge token",
                    )
                })?;
                for (i, prefix) in purge.prefixes.iter().enumerate() {
                    if !prefix.starts_with('/') {
                        return Err(ConfigError::new(
                            format!("purge.prefixes[{i}]"),
                            "must start with '/'",
                        ));
                    }
                }
                (Some(digest), purge.prefixes.clone())
            }
        };
        if !is_token(&self.surrogate.device_token) {
            return Err(ConfigError::new(
                "surrogate.deviceToken",
                format!("{:?} is not a token", self.surrogate.device_token),
            ));
        }
        let rules = RuleSet::new(rules);
        let surrogate_token = self
            .surrogate
            .enabled
            .then(|| self.surrogate.device_token.clone());
        let caches_nothing =
            purge_token_sha256.is_none() && rules.reachable(&defaults).all(|policy| !policy.enabled);
        Ok(Compiled {
            surrogate_token,
            caches_nothing,
            rules,
            defaults,
            max_entries: self.store.max_entries,
            max_entry_bytes: self.store.max_entry_bytes.as_usize(),
            purge_token_sha256,
            purge_prefixes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kea_plugin_sdk::parse_json;

    fn compile(json: &str) -> Result<Compiled, ConfigError> {
        parse_json::<CacheConfig>(json.as_bytes())?.compile()
    }

    #[test]
    fn empty_config_caches_get_and_head() {
        let compiled = compile("{}").unwrap();
        assert_eq!(compiled.defaults.methods, ["GET", "HEAD"]);
        assert_eq!(compiled.max_entries, 4096);
        assert!(compiled.purge_token_sha256.is_none());
        assert_eq!(compiled.defaults.set_cookie, SetCookiePolicy::DoNotStore);
        assert_eq!(compiled.surrogate_token.as_deref(), Some("kea"));
        let per_user =
            compile(r#"{"defaults": {"perUser": true}, "surrogate": {"enabled": false}}"#).unwrap();
        assert_eq!(per_user.defaults.set_cookie, SetCookiePolicy::Replay);
        assert_eq!(per_user.surrogate_token, None);
        let without = compile(r#"{"defaults": {"setCookie": "storeWithout"}}"#).unwrap();
        assert_eq!(without.defaults.set_cookie, SetCookiePolicy::StoreWithout);
    }

    #[test]
    fn a_cache_no_request_can_reach_caches_nothing() {
        let caches_nothing = |json: &str| compile(json).unwrap().caches_nothing;
        let off = r#"{"settings": {"enabled": false}}"#;
        assert!(!caches_nothing("{}"));
        assert!(caches_nothing(r#"{"defaults": {"enabled": false}}"#));
        // A catch-all rule hides the defaults and every rule after it.
        assert!(caches_nothing(&format!(
            r#"{{"rules": [{off}, {{"settings": {{"methods": ["GET"]}}}}]}}"#
        )));
        // A conditional rule does not: requests it does not match reach the defaults.
        assert!(!caches_nothing(
            r#"{"rules": [{"match": {"pathPrefix": "/live"}, "settings": {"enabled": false}}]}"#
        ));
        // Purging reads every request's method.
        let token = "0".repeat(64);
        assert!(!caches_nothing(&format!(
            r#"{{"rules": [{off}], "purge": {{"tokenSha256": "{token}"}}}}"#
        )));
    }

    #[test]
    fn rules_compile_with_settings() {
        let compiled = compile(
            r#"{"rules": [{"match": {"pathPrefix": "/pets"}, "settings": {"defaultTtl": "30s", "perUser": true,
                 "query": {"exclude": ["utm_source"]}, "keyHeaders": ["Accept-Language"]}}],
                "purge": {"tokenSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "prefixes": ["/pets"]}}"#,
        )
        .unwrap();
        let view = kea_plugin_sdk::RequestView {
            authority: "h",
            path: "/pets/1",
            method: "GET",
            route_name: None,
        };
        let policy = compiled.policy_for(&view);
        assert_eq!(policy.default_ttl, Some(30));
        assert!(policy.per_user);
        assert_eq!(policy.key_headers, ["accept-language"]);
        assert_eq!(policy.query, QueryFilter::Exclude(vec!["utm_source".into()]));
        assert!(compiled.purge_token_sha256.is_some());
    }

    #[test]
    fn invalid_configurations_name_the_field() {
        let cases = [
            (r#"{"defaults": {"methods": ["POST"]}}"#, "defaults.methods[0]"),
            (r#"{"defaults": {"methods": []}}"#, "defaults.methods"),
            (r#"{"defaults": {"defaultTtl": "0s"}}"#, "defaults.defaultTtl"),
            (r#"{"defaults": {"defaultTtl": "soon"}}"#, "defaults.defaultTtl"),
            (
                r#"{"rules": [{"settings": {"keyHeaders": ["a b"]}}]}"#,
                "rules[0].settings.keyHeaders[0]",
            ),
            (
                r#"{"rules": [{"settings": {"query": {"include": ["a"], "exclude": ["b"]}}}]}"#,
                "rules[0].settings.query",
            ),
            (
                r#"{"rules": [{"match": {"hosts": ["bad host"]}}]}"#,
                "rules[0].match",
            ),
            (r#"{"store": {"maxEntries": 0}}"#, "store.maxEntries"),
            (r#"{"store": {"maxEntryBytes": "100"}}"#, "store.maxEntryBytes"),
            (r#"{"purge": {"tokenSha256": "secret"}}"#, "purge.tokenSha256"),
            (
                r#"{"purge": {"tokenSha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "prefixes": ["pets"]}}"#,
                "purge.prefixes[0]",
            ),
            (r#"{"ttl": 5}"#, "ttl"),
            (r#"{"defaults": {"setCookie": "always"}}"#, "defaults.setCookie"),
            (
                r#"{"surrogate": {"deviceToken": "a b"}}"#,
                "surrogate.deviceToken",
            ),
        ];
        for (json, field) in cases {
            let err = compile(json).unwrap_err();
            assert!(err.path.starts_with(field), "{json}: expected {field}, got {err}");
        }
    }
}
