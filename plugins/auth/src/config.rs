//! The auth plugin's configuration and its compiled form.
//!
//! Providers (JWT issuers) and API-key sets are *credentials*, each with a unique name. Rules say,
//! per route, which credentials a request needs (`anyOf` / `allOf`), which scopes and claims they
//! must carry, and whether anonymous requests pass. A request no rule matches gets `defaults`, which
//! by default needs any configured credential: the plugin fails closed.

use crate::claims::{ClaimMatcher, ClaimPath};
use crate::sso::config::{Sso, SsoConfig};
use kea_plugin_sdk::config::parse_sha256_hex;
use kea_plugin_sdk::host::is_token;
use kea_plugin_sdk::{identity, ByteSize, ConfigDuration, ConfigError, MatchSpec, Matcher, RuleSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuthConfig {
    pub providers: Vec<ProviderConfig>,
    pub api_keys: Vec<ApiKeySetConfig>,
    /// Per-route requirements; the first rule whose `match` holds applies, else `defaults`.
    pub rules: Vec<RuleConfig>,
    pub defaults: Requirement,
    /// `realm` of the `WWW-Authenticate` challenges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    pub token_cache: TokenCacheConfig,
    pub jwks: JwksLimits,
    /// Longest token accepted (default 8KiB); longer ones are rejected before any parsing.
    pub max_token_bytes: ByteSize,
    /// Browser single sign-on with sessions in encrypted cookies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoConfig>,
    /// Exact (or sticky) traffic splits and mirroring marks, per route (first match applies).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<crate::split::config::SplitConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            api_keys: Vec::new(),
            rules: Vec::new(),
            defaults: Requirement::default(),
            realm: None,
            token_cache: TokenCacheConfig::default(),
            jwks: JwksLimits::default(),
            max_token_bytes: ByteSize::kib(8),
            sso: None,
            splits: Vec::new(),
        }
    }
}

/// A JWT issuer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique credential name used by rules.
    pub name: String,
    /// Exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one. Empty accepts any audience.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Where the verification keys come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwksSource>,
    /// Allowed `alg` values (default: the asymmetric ones, RS256/384/512, PS256/384/512, ES256/384,
    /// EdDSA). HS256/384/512 need `hmacSecretEnv`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Name of a VM environment variable holding the HMAC secret (Istio `vmConfig.env`), for HS*.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_secret_env: Option<String>,
    /// Tolerance for `exp`, `nbf` and `iat` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew: Option<ConfigDuration>,
    /// Tokens without `exp` are rejected unless this is false (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_expiration: Option<bool>,
    /// Where the token is read (default: `Authorization: Bearer`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TokenSource>,
    /// Claims copied to request headers, e.g. `{"claim": "email", "header": "x-user-email"}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_headers: Vec<ClaimHeader>,
    /// Header that receives the verified payload, base64url-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_header: Option<String>,
    /// Keep the token in the request to the upstream (default false: removed, like Envoy's
    /// `jwt_authn`).
    #[serde(default)]
    pub forward_token: bool,
}

/// One of `remote`, `discovery` or `inline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum JwksSource {
    /// A JWKS URL fetched through an Envoy cluster.
    Remote(RemoteJwks),
    /// OpenID Connect discovery: `<issuer>/.well-known/openid-configuration` names the JWKS URL.
    Discovery(DiscoveryJwks),
    /// A JWKS document (object with `keys`).
    Inline(Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteJwks {
    /// Envoy cluster that reaches the URL's host.
    pub cluster: String,
    pub uri: String,
    /// How long fetched keys are used before a refresh (default 10m; a shorter `max-age` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<ConfigDuration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscoveryJwks {
    /// Envoy cluster that reaches the issuer (and its `jwks_uri`).
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_duration: Option<ConfigDuration>,
}

/// Where a credential is read from: exactly one of `header`, `query`, `cookie`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Scheme before the value, e.g. `"Bearer "` (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimHeader {
    /// Claim path: `email`, `realm_access.roles`, or a JSON pointer `/https:~1~1example.com~1tenant`.
    pub claim: String,
    pub header: String,
}

/// A set of API keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeySetConfig {
    pub name: String,
    /// Where the key is read (default: header `x-api-key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<TokenSource>,
    pub keys: Vec<ApiKeyConfig>,
    /// Keep the key in the request to the upstream (default false).
    #[serde(default)]
    pub forward_key: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Client name, forwarded as `x-kea-client` and `x-kea-sub`.
    pub client: String,
    /// SHA-256 of the key, 64 hex digits; the key itself never appears in configuration.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleConfig {
    #[serde(rename = "match", default)]
    pub match_spec: MatchSpec,
    #[serde(flatten)]
    pub requirement: Requirement,
}

/// What a request must present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Requirement {
    /// Requests without any credential pass (a credential that is presented must still be valid).
    pub allow_anonymous: bool,
    /// Credential names; one of them must verify. Default (both lists empty): any credential.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub any_of: Vec<String>,
    /// Credential names that must all verify.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub all_of: Vec<String>,
    /// Scopes that must all be granted (`scope`/`scp` claims, or the API key's scopes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Conditions on token claims; all must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimRule>,
}

/// A condition on one claim: exactly one of `equals`, `oneOf`, `contains`, `regex`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRule {
    pub claim: String,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// The claim is an array holding this value, or a string with this space-separated word.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub contains: Option<Value>,
    /// The (string) claim matches this regular expression (anchor it with `^...$` for equality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A member that is present is `Some`, even when it is `null` (so `equals: null` is a condition).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TokenCacheConfig {
    /// Verified tokens remembered per worker (default 4096; 0 disables the cache).
    pub max_entries: u32,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self { max_entries: 4096 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JwksLimits {
    /// Largest JWKS (or discovery) document accepted (default 256KiB).
    pub max_bytes: ByteSize,
    /// Keys kept per provider (default 32); more are ignored.
    pub max_keys: u32,
    /// Minimum time between refetches caused by tokens naming an unknown `kid` (default 30s).
    pub unknown_kid_refetch_interval: ConfigDuration,
    /// Timeout of each JWKS/discovery callout (default 5s).
    pub timeout: ConfigDuration,
}

impl Default for JwksLimits {
    fn default() -> Self {
        Self {
            max_bytes: ByteSize::kib(256),
            max_keys: 32,
            unknown_kid_refetch_interval: ConfigDuration::from_secs(30),
            timeout: ConfigDuration::from_secs(5),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled form

/// JOSE algorithms the plugin verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
    Hs256,
    Hs384,
    Hs512,
}

impl Algorithm {
    pub const ASYMMETRIC: [Algorithm; 9] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
        Self::EdDsa,
    ];

    /// The `alg` header value; matching is exact (RFC 7515 4.1.1: case-sensitive).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            "HS256" => Self::Hs256,
            "HS384" => Self::Hs384,
            "HS512" => Self::Hs512,
            _ => return None,
        })
    }

    pub fn is_hmac(self) -> bool {
        matches!(self, Self::Hs256 | Self::Hs384 | Self::Hs512)
    }
}

/// Where a credential is read from, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// Lowercase header name and optional lowercase scheme prefix (e.g. `bearer `).
    Header {
        name: String,
        prefix: Option<String>,
    },
    Query(String),
    Cookie(String),
}

/// How the provider's keys are obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    Remote {
        cluster: String,
        uri: String,
        cache_duration: Duration,
    },
    Discovery {
        cluster: String,
        cache_duration: Duration,
    },
    Inline(Value),
    /// HS* only: no JWKS.
    None,
}

impl KeySource {
    pub fn is_fetched(&self) -> bool {
        matches!(self, Self::Remote { .. } | Self::Discovery { .. })
    }
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub algorithms: Vec<Algorithm>,
    pub hmac_secret: Option<Vec<u8>>,
    pub clock_skew: Duration,
    pub require_expiration: bool,
    pub sources: Vec<Source>,
    pub claim_headers: Vec<(ClaimPath, String)>,
    pub payload_header: Option<String>,
    pub forward_token: bool,
}

#[derive(Debug)]
pub struct ApiKey {
    pub client: String,
    pub scopes: Vec<String>,
}

#[derive(Debug)]
pub struct ApiKeySet {
    pub name: String,
    pub sources: Vec<Source>,
    /// SHA-256 of the key → its client.
    pub keys: HashMap<[u8; 32], Rc<ApiKey>>,
    pub forward_key: bool,
}

/// A credential a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    Provider(usize),
    ApiKeys(usize),
    /// The browser session of `sso`.
    Session,
}

/// Which credentials satisfy a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Needs {
    AnyOf(Vec<Credential>),
    AllOf(Vec<Credential>),
}

impl Needs {
    pub fn credentials(&self) -> &[Credential] {
        match self {
            Self::AnyOf(list) | Self::AllOf(list) => list,
        }
    }
}

#[derive(Debug)]
pub struct Policy {
    pub allow_anonymous: bool,
    pub needs: Needs,
    pub scopes: Vec<String>,
    pub claims: Vec<ClaimMatcher>,
}

#[derive(Debug)]
pub struct Compiled {
    pub providers: Vec<Provider>,
    pub api_keys: Vec<ApiKeySet>,
    pub rules: RuleSet<Rc<Policy>>,
    pub defaults: Rc<Policy>,
    pub realm: String,
    pub token_cache_entries: usize,
    pub max_token_bytes: usize,
    pub jwks_max_bytes: usize,
    pub jwks_max_keys: usize,
    pub unknown_kid_refetch_interval: Duration,
    pub callout_timeout: Duration,
    /// Lowercase names of headers the plugin sets from credentials; client copies are removed.
    pub forwarded_headers: Vec<String>,
    /// Whether some rule looks at the path (then ambiguous paths are refused, see `stream`).
    pub path_rules: bool,
    pub sso: Option<Sso>,
    /// Exact or sticky traffic splits and mirror marks (`crate::split`).
    pub splits: crate::split::compile::Splits,
}

impl Compiled {
    pub fn policy_for(&self, view: &kea_plugin_sdk::RequestView<'_>) -> &Rc<Policy> {
        self.rules.first_match(view).unwrap_or(&self.defaults)
    }
}

const DEFAULT_CACHE_DURATION: Duration = Duration::from_secs(600);
const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(60);

fn compile_source(at: &str, source: &TokenSource) -> Result<Source, ConfigError> {
    let err = |reason: String| ConfigError::new(at, reason);
    let given = [&source.header, &source.query, &source.cookie]
        .iter()
        .filter(|s| s.is_some())
        .count();
    if given != 1 {
        return Err(err("give exactly one of header, query, cookie".into()));
    }
    if source.prefix.is_some() && source.header.is_none() {
        return Err(ConfigError::new(
            format!("{at}.prefix"),
            "only a header source has a prefix",
        ));
    }
    if let Some(name) = &source.header {
        if !is_token(name) {
            return Err(ConfigError::new(
                format!("{at}.header"),
                format!("{name:?} is not a header name"),
            ));
        }
        return Ok(Source::Header {
            name: name.to_ascii_lowercase(),
            prefix: source.prefix.as_ref().map(|p| p.to_ascii_lowercase()),
        });
    }
    if let Some(name) = &source.query {
        if name.is_empty() || name.contains(['&', '=', '#', ';']) {
            return Err(ConfigError::new(
                format!("{at}.query"),
                format!("{name:?} is not a query parameter name"),
            ));
        }
        return Ok(Source::Query(name.clone()));
    }
    match &source.cookie {
        Some(name) if is_token(name) => Ok(Source::Cookie(name.clone())),
        other => Err(ConfigError::new(
            format!("{at}.cookie"),
            format!("{other:?} is not a cookie name"),
        )),
    }
}

fn compile_sources(at: &str, sources: &[TokenSource], default: Source) -> Result<Vec<Source>, ConfigError> {
    if sources.is_empty() {
        return Ok(vec![default]);
    }
    sources
        .iter()
        .enumerate()
        .map(|(i, s)| compile_source(&format!("{at}.sources[{i}]"), s))
        .collect()
}

fn checked_header(at: &str, name: &str) -> Result<String, ConfigError> {
    let lower = name.to_ascii_lowercase();
    if !is_token(&lower) || lower.starts_with(':') {
        return Err(ConfigError::new(at, format!("{name:?} is not a header name")));
    }
    if identity::is_kea_header(&lower) {
        return Err(ConfigError::new(
            at,
            format!("{name:?} is in KEA's reserved x-kea- namespace; pick another name"),
        ));
    }
    Ok(lower)
}

fn absolute_url(at: &str, uri: &str) -> Result<(), ConfigError> {
    match crate::fetch::split_url(uri) {
        Some(_) => Ok(()),
        None => Err(ConfigError::new(
            at,
            format!("{uri:?} is not an absolute http(s) URL"),
        )),
    }
}

fn compile_provider(at: &str, config: &ProviderConfig) -> Result<Provider, ConfigError> {
    let field = |name: &str| format!("{at}.{name}");
    if config.issuer.is_empty() {
        return Err(ConfigError::new(field("issuer"), "must not be empty"));
    }
    let mut algorithms = Vec::new();
    for (i, name) in config.algorithms.iter().enumerate() {
        let alg = Algorithm::parse(name).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.algorithms[{i}]"),
                format!(
                    "{name:?} is not supported (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, \
                     EdDSA, HS256, HS384, HS512; \"none\" is never accepted)"
                ),
            )
        })?;
        algorithms.push(alg);
    }
    if algorithms.is_empty() {
        algorithms = Algorithm::ASYMMETRIC.to_vec();
    }
    let wants_hmac = algorithms.iter().any(|a| a.is_hmac());
    let hmac_secret = match (&config.hmac_secret_env, wants_hmac) {
        (Some(_), false) => {
            return Err(ConfigError::new(
                field("hmacSecretEnv"),
                "list HS256/HS384/HS512 in algorithms to use a secret",
            ))
        }
        (None, true) => {
            return Err(ConfigError::new(
                field("hmacSecretEnv"),
                "HS* algorithms need a secret by reference",
            ))
        }
        (Some(name), true) => {
            let secret = kea_plugin_sdk::config::env_secret(&field("hmacSecretEnv"), name)?;
            // RFC 7518 3.2: the key must be at least as long as the hash output.
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    field("hmacSecretEnv"),
                    "the secret must be at least 32 bytes",
                ));
            }
            Some(secret.into_bytes())
        }
        (None, false) => None,
    };
    let wants_keys = algorithms.iter().any(|a| !a.is_hmac());
    let keys = match &config.jwks {
        None if wants_keys => {
            return Err(ConfigError::new(
                field("jwks"),
                "give remote, discovery or inline keys for asymmetric algorithms",
            ))
        }
        None => KeySource::None,
        Some(JwksSource::Remote(remote)) => {
            absolute_url(&field("jwks.remote.uri"), &remote.uri)?;
            KeySource::Remote {
                cluster: remote.cluster.clone(),
                uri: remote.uri.clone(),
                cache_duration: cache_duration(&field("jwks.remote.cacheDuration"), remote.cache_duration)?,
            }
        }
        Some(JwksSource::Discovery(discovery)) => {
            absolute_url(&field("issuer"), &config.issuer)?;
            KeySource::Discovery {
                cluster: discovery.cluster.clone(),
                cache_duration: cache_duration(
                    &field("jwks.discovery.cacheDuration"),
                    discovery.cache_duration,
                )?,
            }
        }
        Some(JwksSource::Inline(document)) => {
            let parsed = crate::jwks::KeySet::parse(document, usize::MAX)
                .map_err(|e| ConfigError::new(field("jwks.inline"), e.to_string()))?;
            if parsed.is_empty() {
                return Err(ConfigError::new(field("jwks.inline"), "no usable signing key"));
            }
            KeySource::Inline(document.clone())
        }
    };
    if let KeySource::Remote { cluster, .. } | KeySource::Discovery { cluster, .. } = &keys {
        if cluster.is_empty() {
            return Err(ConfigError::new(
                field("jwks"),
                "the cluster must name an Envoy cluster",
            ));
        }
    }
    let clock_skew = config.clock_skew.map_or(DEFAULT_CLOCK_SKEW, ConfigDuration::get);
    if clock_skew > Duration::from_secs(600) {
        return Err(ConfigError::new(field("clockSkew"), "at most 10m"));
    }
    let default_source = Source::Header {
        name: "authorization".into(),
        prefix: Some("bearer ".into()),
    };
    let sources = compile_sources(at, &config.sources, default_source)?;
    let mut claim_headers = Vec::new();
    for (i, mapping) in config.claim_headers.iter().enumerate() {
        let path = ClaimPath::parse(&mapping.claim)
            .map_err(|reason| ConfigError::new(format!("{at}.claimHeaders[{i}].claim"), reason))?;
        let header = checked_header(&format!("{at}.claimHeaders[{i}].header"), &mapping.header)?;
        claim_headers.push((path, header));
    }
    let payload_header = config
        .payload_header
        .as_deref()
        .map(|h| checked_header(&field("payloadHeader"), h))
        .transpose()?;
    Ok(Provider {
        name: config.name.clone(),
        issuer: config.issuer.clone(),
        audiences: config.audiences.clone(),
        keys,
        algorithms,
        hmac_secret,
        clock_skew,
        require_expiration: config.require_expiration.unwrap_or(true),
        sources,
        claim_headers,
        payload_header,
        forward_token: config.forward_token,
    })
}

fn cache_duration(at: &str, value: Option<ConfigDuration>) -> Result<Duration, ConfigError> {
    let duration = value.map_or(DEFAULT_CACHE_DURATION, ConfigDuration::get);
    if duration < Duration::from_secs(1) || duration > Duration::from_secs(24 * 3600) {
        return Err(ConfigError::new(at, "between 1s and 24h"));
    }
    Ok(duration)
}

fn compile_api_keys(at: &str, config: &ApiKeySetConfig) -> Result<ApiKeySet, ConfigError> {
    let default_source = Source::Header {
        name: "x-api-key".into(),
        prefix: None,
    };
    let sources = compile_sources(at, &config.sources, default_source)?;
    if config.keys.is_empty() {
        return Err(ConfigError::new(format!("{at}.keys"), "list at least one key"));
    }
    let mut keys = HashMap::with_capacity(config.keys.len());
    for (i, key) in config.keys.iter().enumerate() {
        if key.client.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.keys[{i}].client"),
                "must not be empty",
            ));
        }
        let digest = parse_sha256_hex(&key.sha256).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.keys[{i}].sha256"),
                "must be 64 hex digits (the SHA-256 of the key)",
            )
        })?;
        let entry = Rc::new(ApiKey {
            client: key.client.clone(),
            scopes: key.scopes.clone(),
        });
        if keys.insert(digest, entry).is_some() {
            return Err(ConfigError::new(
                format!("{at}.keys[{i}].sha256"),
                "the same key is listed twice",
            ));
        }
    }
    Ok(ApiKeySet {
        name: config.name.clone(),
        sources,
        keys,
        forward_key: config.forward_key,
    })
}

fn compile_requirement(
    at: &str,
    requirement: &Requirement,
    names: &HashMap<&str, Credential>,
) -> Result<Policy, ConfigError> {
    let resolve = |list: &[String], field: &str| -> Result<Vec<Credential>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, name)| {
                names.get(name.as_str()).copied().ok_or_else(|| {
                    ConfigError::new(
                        format!("{at}{field}[{i}]"),
                        format!("no provider, apiKeys set or sso is named {name:?}"),
                    )
                })
            })
            .collect()
    };
    let needs = match (&requirement.any_of[..], &requirement.all_of[..]) {
        ([], []) => {
            let mut all: Vec<Credential> = names.values().copied().collect();
            all.sort_by_key(|c| match c {
                Credential::Provider(i) => (0, *i),
                Credential::ApiKeys(i) => (1, *i),
                Credential::Session => (2, 0),
            });
            Needs::AnyOf(all)
        }
        (any, []) => Needs::AnyOf(resolve(any, "anyOf")?),
        ([], all) => Needs::AllOf(resolve(all, "allOf")?),
        _ => {
            return Err(ConfigError::new(
                format!("{at}anyOf"),
                "give anyOf or allOf, not both",
            ))
        }
    };
    if needs.credentials().is_empty() && !requirement.allow_anonymous {
        return Err(ConfigError::new(
            format!("{at}anyOf"),
            "no credential is configured; add providers or apiKeys, or set allowAnonymous",
        ));
    }
    let mut claims = Vec::with_capacity(requirement.claims.len());
    for (i, rule) in requirement.claims.iter().enumerate() {
        claims.push(
            ClaimMatcher::compile(rule)
                .map_err(|(field, reason)| ConfigError::new(format!("{at}claims[{i}]{field}"), reason))?,
        );
    }
    for (i, scope) in requirement.scopes.iter().enumerate() {
        // RFC 6750 3: scope-token characters, so the `scope="..."` challenge stays well-formed.
        let valid = !scope.is_empty()
            && scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !valid {
            return Err(ConfigError::new(
                format!("{at}scopes[{i}]"),
                "a scope is one word of printable ASCII without quotes or backslashes",
            ));
        }
    }
    Ok(Policy {
        allow_anonymous: requirement.allow_anonymous,
        needs,
        scopes: requirement.scopes.clone(),
        claims,
    })
}

impl AuthConfig {
    pub fn compile(&self) -> Result<Compiled, ConfigError> {
        let mut names: HashMap<&str, Credential> = HashMap::new();
        let mut providers = Vec::with_capacity(self.providers.len());
        for (i, provider) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            if provider.name.is_empty() {
                return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
            }
            if names.insert(&provider.name, Credential::Provider(i)).is_some() {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("{:?} is used twice", provider.name),
                ));
            }
            providers.push(compile_provider(&at, provider)?);
        }
        let mut api_keys = Vec::with_capacity(self.api_keys.len());
        for (i, set) in self.api_keys.iter().enumerate() {
            let at = format!("apiKeys[{i}]");
            if set.name.is_empty() {
                return Err(ConfigError::new(format!("{at}.name"), "must not be empty"));
            }
            if names.insert(&set.name, Credential::ApiKeys(i)).is_some() {
                return Err(ConfigError::new(
                    format!("{at}.name"),
                    format!("{:?} is used twice", set.name),
                ));
            }
            api_keys.push(compile_api_keys(&at, set)?);
        }
        let sso = self.sso.as_ref().map(|sso| sso.compile(&providers)).transpose()?;
        if let Some(sso) = &sso {
            if names.insert(&sso.name, Credential::Session).is_some() {
                return Err(ConfigError::new(
                    "sso.name",
                    format!("{:?} is also a provider or apiKeys name", sso.name),
                ));
            }
        }
        let defaults = Rc::new(compile_requirement("defaults.", &self.defaults, &names)?);
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}].");
            let matcher = Matcher::compile(&rule.match_spec)
                .map_err(|e| ConfigError::new(format!("{at}match"), e.to_string()))?;
            rules.push((
                matcher,
                Rc::new(compile_requirement(&at, &rule.requirement, &names)?),
            ));
        }
        let realm = self.realm.clone().unwrap_or_else(|| "kea".into());
        if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
            return Err(ConfigError::new(
                "realm",
                "must not contain quotes, backslashes or control characters",
            ));
        }
        let max_token_bytes = self.max_token_bytes.as_usize();
        if max_token_bytes < 256 {
            return Err(ConfigError::new("maxTokenBytes", "at least 256 bytes"));
        }
        let timeout = self.jwks.timeout.get();
        if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(60) {
            return Err(ConfigError::new("jwks.timeout", "between 100ms and 60s"));
        }
        if self.jwks.unknown_kid_refetch_interval.get() < Duration::from_secs(1) {
            return Err(ConfigError::new("jwks.unknownKidRefetchInterval", "at least 1s"));
        }
        if self.jwks.max_keys == 0 {
            return Err(ConfigError::new("jwks.maxKeys", "at least 1"));
        }
        let mut forwarded_headers: Vec<String> = providers
            .iter()
            .flat_map(|p| {
                p.claim_headers
                    .iter()
                    .map(|(_, h)| h.clone())
                    .chain(p.payload_header.clone())
            })
            .collect();
        forwarded_headers.sort();
        forwarded_headers.dedup();
        let splits = crate::split::compile::Splits::compile(&self.splits, checked_header)?;
        let path_rules = self
            .rules
            .iter()
            .any(|r| r.match_spec.path_prefix.is_some() || r.match_spec.path_template.is_some());
        Ok(Compiled {
            sso,
            path_rules,
            providers,
            api_keys,
            rules: RuleSet::new(rules),
            defaults,
            realm,
            token_cache_entries: self.token_cache.max_entries as usize,
            max_token_bytes,
            jwks_max_bytes: self.jwks.max_bytes.as_usize(),
            jwks_max_keys: self.jwks.max_keys as usize,
            unknown_kid_refetch_interval: self.jwks.unknown_kid_refetch_interval.get(),
            callout_timeout: timeout,
            forwarded_headers,
            splits,
        })
    }
}
