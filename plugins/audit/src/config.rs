//! The audit plugin's configuration: the JSON an Envoy filter or an Istio `WasmPlugin.pluginConfig`
//! passes, and its compiled form. Every field has a documented default, so `{}` is a working
//! config (all requests, proxy-log sink, default redactions).

use crate::redact::{JsonPointerPattern, Marker, Redactor};
use kea_plugin_sdk::host::is_token;
use kea_plugin_sdk::{ByteSize, ConfigDuration, ConfigError, MatchSpec, Matcher, RuleSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

/// Headers always redacted, whatever the config adds.
pub const DEFAULT_REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-auth-token",
    "x-csrf-token",
];

/// Query parameters always redacted, whatever the config adds.
pub const DEFAULT_REDACTED_QUERY_PARAMS: &[&str] = &[
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "api_key",
    "apikey",
    "key",
    "code",
    "client_secret",
    "password",
    "secret",
    "signature",
    "sig",
];

/// Top level of the plugin configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Per-route overrides; the first rule whose `match` holds applies. Requests that match no
    /// rule use the top-level `sampling` and `body` settings.
    pub rules: Vec<AuditRule>,
    pub sampling: Sampling,
    pub redact: RedactConfig,
    /// Whether to record all request and response headers (secrets redacted) in
    /// `kea.request.headers` / `kea.response.headers` (default off: the ECS fields already carry
    /// what an audit needs, and each header costs bytes on every record).
    pub headers: HeaderCapture,
    pub body: BodyCapture,
    pub sinks: Sinks,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditRule {
    #[serde(rename = "match", default)]
    pub match_spec: MatchSpec,
    /// Do not audit matching requests at all (e.g. health checks).
    #[serde(default)]
    pub skip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<Sampling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodyCapture>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Sampling {
    /// Share of requests recorded, 0–100 (default 100). The decision hashes the request id, so it
    /// is stable for a request across retries and plugins.
    pub percent: f64,
    /// Responses with at least this status are always recorded (default 400); `null` disables.
    pub always_log_status_at_least: Option<u16>,
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            percent: 100.0,
            always_log_status_at_least: Some(400),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Header names redacted in addition to [`DEFAULT_REDACTED_HEADERS`].
    pub headers: Vec<String>,
    /// Query parameter names redacted in addition to [`DEFAULT_REDACTED_QUERY_PARAMS`].
    pub query_params: Vec<String>,
    /// JSON pointers (RFC 6901, `*` matches any key or index) redacted in captured request bodies.
    pub request_body_pointers: Vec<String>,
    /// JSON pointers redacted in captured response bodies.
    pub response_body_pointers: Vec<String>,
    /// Key for the marker's digest (HMAC-SHA256 instead of plain SHA-256), so short secrets cannot
    /// be recovered from records by trying candidates. At least 16 bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// Name of a VM environment variable holding the key instead (Envoy
    /// `vm_config.environment_variables`, Istio `WasmPlugin.vmConfig.env`), to keep it out of the
    /// plugin configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_key_env: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HeaderCapture {
    pub request: bool,
    pub response: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BodyCapture {
    /// Record request bodies (default false).
    pub request: bool,
    /// Record response bodies (default false).
    pub response: bool,
    /// Media types whose bodies are recorded (default `application/json`); `*/*` or `type/*` allowed.
    pub content_types: Vec<String>,
    /// Bytes kept per body (default 4KiB); longer bodies are truncated and flagged.
    pub max_bytes: ByteSize,
}

impl Default for BodyCapture {
    fn default() -> Self {
        Self {
            request: false,
            response: false,
            content_types: vec!["application/json".into()],
            max_bytes: ByteSize::kib(4),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Sinks {
    pub log: LogSink,
    /// Batched HTTP sink; absent by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSink>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LogSink {
    /// Write one JSON line per record to the proxy log (default true).
    pub enabled: bool,
    /// Level of those lines: `info` (default) or `warn`.
    pub level: LogLevel,
}

impl Default for LogSink {
    fn default() -> Self {
        Self {
            enabled: true,
            level: LogLevel::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
}

/// Wire format of the HTTP sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SinkFormat {
    /// Newline-delimited JSON (Fluentd/Fluent Bit/Vector/Logstash HTTP inputs).
    JsonLines,
    /// Elasticsearch / OpenSearch `_bulk` API.
    ElasticBulk,
    /// ClickHouse HTTP interface, `INSERT INTO <table> FORMAT JSONEachRow`.
    Clickhouse,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSink {
    /// Envoy cluster the batches go to (required).
    pub cluster: String,
    pub format: SinkFormat,
    /// `:authority` of the callout (default: the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Request path. Defaults: `/` (jsonLines), `/_bulk` (elasticBulk), and for clickhouse the
    /// `INSERT ... FORMAT JSONEachRow` query for `table`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// ClickHouse table (default `kea_audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Elasticsearch index or data stream (default `kea-audit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Extra headers on every batch (e.g. credentials for the log store).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Records per batch (default 500).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: u32,
    /// Bytes per batch (default 1MiB).
    #[serde(default = "defaults::batch_bytes")]
    pub batch_bytes: ByteSize,
    /// How often a partial batch is sent (default 1s).
    #[serde(default = "defaults::flush_interval")]
    pub flush_interval: ConfigDuration,
    /// Callout timeout (default 5s, the mission's inner-network limit).
    #[serde(default = "defaults::timeout")]
    pub timeout: ConfigDuration,
    /// Retries of a failed batch before it is dropped (default 3).
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// First retry delay, doubled per attempt (default 1s).
    #[serde(default = "defaults::initial_backoff")]
    pub initial_backoff: ConfigDuration,
    /// Longest retry delay (default 30s).
    #[serde(default = "defaults::max_backoff")]
    pub max_backoff: ConfigDuration,
    /// Bound of the buffer shared by all workers; the oldest records are dropped beyond it.
    #[serde(default)]
    pub buffer: BufferLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BufferLimits {
    /// Records held at most (default 10000).
    pub max_records: u32,
    /// Bytes held at most (default 16MiB).
    pub max_bytes: ByteSize,
}

impl Default for BufferLimits {
    fn default() -> Self {
        Self {
            max_records: 10_000,
            max_bytes: ByteSize::mib(16),
        }
    }
}

mod defaults {
    use kea_plugin_sdk::{ByteSize, ConfigDuration};
    pub fn batch_size() -> u32 {
        500
    }
    pub fn batch_bytes() -> ByteSize {
        ByteSize::mib(1)
    }
    pub fn flush_interval() -> ConfigDuration {
        ConfigDuration::from_secs(1)
    }
    pub fn timeout() -> ConfigDuration {
        ConfigDuration::from_secs(5)
    }
    pub fn max_retries() -> u32 {
        3
    }
    pub fn initial_backoff() -> ConfigDuration {
        ConfigDuration::from_secs(1)
    }
    pub fn max_backoff() -> ConfigDuration {
        ConfigDuration::from_secs(30)
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled form: everything the request path needs, checked once.

/// What applies to one request after rule matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub skip: bool,
    /// Sampling threshold in basis points (0..=10000).
    pub sample_basis_points: u32,
    pub always_log_status_at_least: Option<u16>,
    pub body: CompiledBodyCapture,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompiledBodyCapture {
    pub request: bool,
    pub response: bool,
    pub content_types: Vec<MediaRange>,
    pub max_bytes: usize,
}

impl CompiledBodyCapture {
    pub fn wants(&self, content_type: Option<&str>) -> bool {
        let Some(content_type) = content_type else {
            return false;
        };
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        self.content_types.iter().any(|range| range.matches(essence))
    }
}

/// `type/subtype`, `type/*` or `*/*`, lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRange {
    kind: String,
    subtype: String,
}

impl MediaRange {
    fn parse(raw: &str) -> Option<Self> {
        let (kind, subtype) = raw.trim().split_once('/')?;
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
        };
        (token(kind) && token(subtype)).then(|| Self {
            kind: kind.to_ascii_lowercase(),
            subtype: subtype.to_ascii_lowercase(),
        })
    }

    fn matches(&self, essence: &str) -> bool {
        let Some((kind, subtype)) = essence.split_once('/') else {
            return false;
        };
        (self.kind == "*" || self.kind.eq_ignore_ascii_case(kind))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }
}

/// The HTTP sink, checked and with its request line worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledHttpSink {
    pub cluster: String,
    pub format: SinkFormat,
    pub authority: String,
    pub path: String,
    pub index: String,
    pub headers: Vec<(String, String)>,
    pub batch_records: usize,
    pub batch_bytes: usize,
    pub flush_interval: Duration,
    pub timeout: Duration,
    pub max_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_records: u64,
    pub max_bytes: u64,
}

/// The whole compiled configuration.
#[derive(Debug)]
pub struct Compiled {
    pub rules: RuleSet<Rc<Policy>>,
    pub default_policy: Rc<Policy>,
    pub redactor: Redactor,
    pub headers: HeaderCapture,
    pub log_sink: Option<log::Level>,
    pub http_sink: Option<CompiledHttpSink>,
}

impl Compiled {
    pub fn policy_for(&self, view: &kea_plugin_sdk::RequestView<'_>) -> &Rc<Policy> {
        self.rules.first_match(view).unwrap_or(&self.default_policy)
    }
}

impl AuditConfig {
    /// Checks every field and compiles the config. Errors name the field and the reason.
    pub fn compile(&self) -> Result<Compiled, ConfigError> {
        let default_policy = Rc::new(compile_policy("", false, &self.sampling, &self.body)?);
        let mut rules: Vec<(Matcher, Rc<Policy>)> = Vec::with_capacity(self.rules.len());
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            let matcher = Matcher::compile(&rule.match_spec)
                .map_err(|e| ConfigError::new(format!("{at}.match"), e.to_string()))?;
            let sampling = rule.sampling.as_ref().unwrap_or(&self.sampling);
            let body = rule.body.as_ref().unwrap_or(&self.body);
            rules.push((
                matcher,
                Rc::new(compile_policy(&format!("{at}."), rule.skip, sampling, body)?),
            ));
        }
        let redactor = compile_redactor(&self.redact)?;
        let log_sink = self.sinks.log.enabled.then_some(match self.sinks.log.level {
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
        });
        let http_sink = self.sinks.http.as_ref().map(compile_http_sink).transpose()?;
        if log_sink.is_none() && http_sink.is_none() {
            return Err(ConfigError::new(
                "sinks",
                "no sink enabled: records would go nowhere",
            ));
        }
        Ok(Compiled {
            rules: RuleSet::new(rules),
            default_policy,
            redactor,
            headers: self.headers.clone(),
            log_sink,
            http_sink,
        })
    }
}

fn compile_policy(
    at: &str,
    skip: bool,
    sampling: &Sampling,
    body: &BodyCapture,
) -> Result<Policy, ConfigError> {
    if !(0.0..=100.0).contains(&sampling.percent) {
        return Err(ConfigError::new(
            format!("{at}sampling.percent"),
            "must be between 0 and 100",
        ));
    }
    if let Some(status) = sampling.always_log_status_at_least {
        if !(100..=599).contains(&status) {
            return Err(ConfigError::new(
                format!("{at}sampling.alwaysLogStatusAtLeast"),
                "must be an HTTP status 100-599",
            ));
        }
    }
    let content_types = body
        .content_types
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            MediaRange::parse(raw).ok_or_else(|| {
                ConfigError::new(
                    format!("{at}body.contentTypes[{i}]"),
                    format!("{raw:?} is not a media type like application/json"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if (body.request || body.response) && content_types.is_empty() {
        return Err(ConfigError::new(
            format!("{at}body.contentTypes"),
            "body capture is on but no content type is listed",
        ));
    }
    const MAX_CAPTURE: u64 = 1024 * 1024;
    if body.max_bytes.get() > MAX_CAPTURE {
        return Err(ConfigError::new(
            format!("{at}body.maxBytes"),
            "must be at most 1MiB (records are buffered in memory)",
        ));
    }
    Ok(Policy {
        skip,
        sample_basis_points: (sampling.percent * 100.0).round() as u32,
        always_log_status_at_least: sampling.always_log_status_at_least,
        body: CompiledBodyCapture {
            request: body.request,
            response: body.response,
            content_types,
            max_bytes: body.max_bytes.as_usize(),
        },
    })
}

fn compile_redactor(config: &RedactConfig) -> Result<Redactor, ConfigError> {
    for (i, name) in config.headers.iter().enumerate() {
        if !is_token(name) {
            return Err(ConfigError::new(
                format!("redact.headers[{i}]"),
                format!("{name:?} is not a header name"),
            ));
        }
    }
    for (i, name) in config.query_params.iter().enumerate() {
        if name.is_empty() {
            return Err(ConfigError::new(
                format!("redact.queryParams[{i}]"),
                "empty parameter name",
            ));
        }
    }
    let pointers = |field: &str, list: &[String]| {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                JsonPointerPattern::parse(p)
                    .map_err(|reason| ConfigError::new(format!("redact.{field}[{i}]"), reason))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let headers = DEFAULT_REDACTED_HEADERS
        .iter()
        .map(|s| s.to_string())
        .chain(config.headers.iter().map(|h| h.to_ascii_lowercase()));
    let params = DEFAULT_REDACTED_QUERY_PARAMS
        .iter()
        .map(|s| s.to_string())
        .chain(config.query_params.iter().cloned());
    let key = match (&config.hash_key, &config.hash_key_env) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "redact.hashKeyEnv",
                "give hashKey or hashKeyEnv, not both",
            ));
        }
        (Some(key), None) => Some(key.clone()),
        (None, Some(name)) => Some(kea_plugin_sdk::config::env_secret("redact.hashKeyEnv", name)?),
        (None, None) => None,
    };
    if let Some(key) = &key {
        if key.len() < 16 {
            let field = if config.hash_key.is_some() {
                "redact.hashKey"
            } else {
                "redact.hashKeyEnv"
            };
            return Err(ConfigError::new(field, "the key must be at least 16 bytes"));
        }
    }
    Ok(Redactor::new(
        headers.collect(),
        params.collect(),
        pointers("requestBodyPointers", &config.request_body_pointers)?,
        pointers("responseBodyPointers", &config.response_body_pointers)?,
        Marker::keyed(key.map(String::into_bytes)),
    ))
}

fn compile_http_sink(sink: &HttpSink) -> Result<CompiledHttpSink, ConfigError> {
    let err = |field: &str, reason: String| ConfigError::new(format!("sinks.http.{field}"), reason);
    if sink.cluster.is_empty() || sink.cluster.trim() != sink.cluster {
        return Err(err(
            "cluster",
            "must name the Envoy cluster of the log store (no surrounding spaces)".into(),
        ));
    }
    if sink.batch_size == 0 {
        return Err(err("batchSize", "must be at least 1".into()));
    }
    if sink.batch_bytes.get() < 1024 {
        return Err(err("batchBytes", "must be at least 1KiB".into()));
    }
    if sink.buffer.max_records < sink.batch_size {
        return Err(err(
            "buffer.maxRecords",
            format!("must be at least batchSize ({})", sink.batch_size),
        ));
    }
    if sink.buffer.max_bytes < sink.batch_bytes {
        return Err(err("buffer.maxBytes", "must be at least batchBytes".into()));
    }
    let timeout = sink.timeout.get();
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(err("timeout", "must be between 1ms and 60s".into()));
    }
    let flush = sink.flush_interval.get();
    if flush < Duration::from_millis(10) || flush > Duration::from_secs(300) {
        return Err(err("flushInterval", "must be between 10ms and 5m".into()));
    }
    if sink.max_backoff.get() > Duration::from_secs(3600) {
        return Err(err("maxBackoff", "must be at most 1h".into()));
    }
    if sink.initial_backoff.get().is_zero() || sink.initial_backoff > sink.max_backoff {
        return Err(err(
            "initialBackoff",
            "must be positive and at most maxBackoff".into(),
        ));
    }
    for name in sink.headers.keys() {
        if !is_token(name) || name.starts_with(':') {
            return Err(err("headers", format!("{name:?} is not a header name")));
        }
    }
    let table = sink.table.clone().unwrap_or_else(|| "kea_audit".into());
    let identifier = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                !part.is_empty()
                    && !part.starts_with(|c: char| c.is_ascii_digit())
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            })
    };
    if !identifier(&table) {
        return Err(err(
            "table",
            format!("{table:?} is not a ClickHouse table name ([db.]name)"),
        ));
    }
    let index = sink.index.clone().unwrap_or_else(|| "kea-audit".into());
    if index.is_empty()
        || index.starts_with(['_', '-', '+'])
        || index.chars().any(|c| c.is_uppercase())
        || index.contains(['"', '\\', ' ', ',', '/', '*', '?', '<', '>', '|', '#'])
    {
        return Err(err(
            "index",
            format!("{index:?} is not an Elasticsearch index name (lowercase, no spaces or \\/*?\"<>|,#)"),
        ));
    }
    let path = match (&sink.path, sink.format) {
        (Some(path), _) => path.clone(),
        (None, SinkFormat::JsonLines) => "/".into(),
        (None, SinkFormat::ElasticBulk) => "/_bulk".into(),
        (None, SinkFormat::Clickhouse) => {
            format!(
                "/?query=INSERT%20INTO%20{table}%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1"
            )
        }
    };
    if !path.starts_with('/') || path.contains([' ', '\r', '\n']) {
        return Err(err(
            "path",
            format!("{path:?} must be an absolute, percent-encoded request path"),
        ));
    }
    Ok(CompiledHttpSink {
        cluster: sink.cluster.clone(),
        format: sink.format,
        authority: sink.authority.clone().unwrap_or_else(|| sink.cluster.clone()),
        path,
        index,
        headers: sink
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        batch_records: sink.batch_size as usize,
        batch_bytes: sink.batch_bytes.as_usize(),
        flush_interval: flush,
        timeout,
        max_retries: sink.max_retries,
        initial_backoff: sink.initial_backoff.get(),
        max_backoff: sink.max_backoff.get(),
        max_records: u64::from(sink.buffer.max_records),
        max_bytes: sink.buffer.max_bytes.get(),
    })
}
