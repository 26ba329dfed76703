//! The validate plugin's configuration and its compiled form.
//!
//! ```json
//! {"apis": [{"name": "pets", "bundle": {…}}],
//!  "defaults": {"api": "pets", "mode": "enforce"},
//!  "rules": [{"match": {"pathPrefix": "/internal"}, "mode": "off"}]}
//! ```
//! An API comes as a compiled `bundle` (from `kea openapi bundle`), as an OpenAPI `document`
//! (JSON, compiled at configuration time), or from a `url` fetched through an Envoy `cluster`.
//! Every request is checked with `defaults`, or with the first rule that matches, whose fields
//! override the defaults. A single API with no rules applies to every request.

use kea_plugin_sdk::config::parse_sha256_hex;
use kea_plugin_sdk::host::split_url;
use kea_plugin_sdk::{ByteSize, ConfigDuration, ConfigError, MatchSpec, Matcher, RuleSet};
use kea_schema::{Api, Bundle, Sources};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ValidateConfig {
    pub apis: Vec<ApiSource>,
    pub defaults: Settings,
    pub rules: Vec<Rule>,
}

/// Where an API's bundle comes from: exactly one of `bundle`, `document`, `url`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiSource {
    pub name: String,
    /// A compiled bundle (`kea openapi bundle FILE`), inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Value>,
    /// An OpenAPI 3.0 document (JSON object), compiled when the configuration loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
    /// `http(s)` URL of a bundle, fetched through `cluster` and refreshed with `If-None-Match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Expected bundle digest (hex sha256); a fetched bundle with another one is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// How often a fetched bundle is checked for a new version (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<ConfigDuration>,
    /// Callout timeout (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ConfigDuration>,
}

/// What happens to requests that fail validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Rejected with 400/404/405/413/415 problem+json; nothing reaches the upstream.
    #[default]
    Enforce,
    /// Passed on, logged and marked `x-kea-validation: reported`.
    Report,
    /// Not checked (`x-kea-validation: skipped`).
    Off,
}

/// Requests for paths or methods the API does not describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unknown {
    /// 404 (no such path) or 405 with `Allow` (no such method).
    #[default]
    Reject,
    Pass,
}

/// Body media types that are parsed and checked against their schema. Others that the operation
/// documents pass unread; ones it does not document are refused with 415.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    /// `application/json` and `+json` types.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `text/*`.
    Text,
}

/// Settings a rule or the defaults give; unset fields fall back (rule → defaults → built-in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Settings {
    /// The API (an `apis[].name`) requests are checked against; none means not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_operations: Option<Unknown>,
    /// Largest request body read (default 1MiB); larger ones get 413.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<ByteSize>,
    /// Default `["json", "form", "text"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Vec<BodyKind>>,
    /// Check responses too, reporting (logging and `x-kea-response-validation`) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responses: Option<bool>,
    /// Errors listed in a rejection at most (default 20).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "match", default)]
    pub match_spec: MatchSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_operations: Option<Unknown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bodies: Option<Vec<BodyKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_errors: Option<u32>,
}

/// Which body kinds are read and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyKinds {
    pub json: bool,
    pub form: bool,
    pub text: bool,
}

impl BodyKinds {
    fn of(kinds: &[BodyKind]) -> Self {
        Self {
            json: kinds.contains(&BodyKind::Json),
            form: kinds.contains(&BodyKind::Form),
            text: kinds.contains(&BodyKind::Text),
        }
    }

    /// Whether a body of this content type is read and checked.
    pub fn covers(self, content_type: &str) -> bool {
        let essence = kea_schema::bundle::essence(content_type);
        if kea_schema::bundle::is_json(&essence) {
            self.json
        } else if essence == "application/x-www-form-urlencoded" {
            self.form
        } else if essence.starts_with("text/") {
            self.text
        } else {
            // Other media types are checked for being documented, never read.
            true
        }
    }
}

/// Settings with every field decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    /// Index into [`Compiled::apis`].
    pub api: Option<usize>,
    pub mode: Mode,
    pub unknown_operations: Unknown,
    pub max_body_bytes: usize,
    pub bodies: BodyKinds,
    pub responses: bool,
    pub max_errors: usize,
}

/// How an API's bundle arrives.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Inline bundle or document: compiled once, here.
    Fixed(Rc<Api>),
    Fetched(Remote),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub sha256: Option<String>,
    pub refresh: Duration,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct CompiledApi {
    pub name: String,
    pub origin: Origin,
    /// What the inline bundle or document says that is not checked (logged once at configuration).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct Compiled {
    pub apis: Vec<CompiledApi>,
    pub defaults: Effective,
    pub rules: RuleSet<Effective>,
    /// No request can reach settings that check it: every request is skipped without reading
    /// any of it.
    pub checks_nothing: bool,
}

const DEFAULT_MAX_BODY: u64 = 1024 * 1024;
const DEFAULT_MAX_ERRORS: u32 = 20;
const DEFAULT_REFRESH: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

impl ValidateConfig {
    /// Checks and compiles everything once; errors name the field.
    pub fn compile(&self) -> Result<Compiled, ConfigError> {
        let mut apis: Vec<CompiledApi> = Vec::new();
        for (index, source) in self.apis.iter().enumerate() {
            let field = format!("apis[{index}]");
            if source.name.is_empty() {
                return Err(ConfigError::new(format!("{field}.name"), "must not be empty"));
            }
            if apis.iter().any(|a| a.name == source.name) {
                return Err(ConfigError::new(
                    format!("{field}.name"),
                    format!("{:?} is defined twice", source.name),
                ));
            }
            let (origin, warnings) = compile_source(source, &field)?;
            apis.push(CompiledApi {
                name: source.name.clone(),
                origin,
                warnings,
            });
        }
        let names: Vec<&str> = apis.iter().map(|a| a.name.as_str()).collect();
        let builtin = Effective {
            api: None,
            mode: Mode::Enforce,
            unknown_operations: Unknown::Reject,
            max_body_bytes: DEFAULT_MAX_BODY as usize,
            bodies: BodyKinds::of(&[BodyKind::Json, BodyKind::Form, BodyKind::Text]),
            responses: false,
            max_errors: DEFAULT_MAX_ERRORS as usize,
        };
        let mut defaults = resolve(&builtin, &self.defaults, &names, "defaults")?;
        // One API, no rules and no defaults.api: the API applies to every request. With rules,
        // requests no rule matches are checked only if defaults.api names an API.
        if self.defaults.api.is_none() && apis.len() == 1 && self.rules.is_empty() {
            defaults.api = Some(0);
        }
        let mut rules = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let field = format!("rules[{index}]");
            let matcher = Matcher::compile(&rule.match_spec)
                .map_err(|e| ConfigError::new(format!("{field}.match"), e.to_string()))?;
            let settings = Settings {
                api: rule.api.clone(),
                mode: rule.mode,
                unknown_operations: rule.unknown_operations,
                max_body_bytes: rule.max_body_bytes,
                bodies: rule.bodies.clone(),
                responses: rule.responses,
                max_errors: rule.max_errors,
            };
            rules.push((matcher, resolve(&defaults, &settings, &names, &field)?));
        }
        let rules = RuleSet::new(rules);
        let checks_nothing = rules
            .reachable(&defaults)
            .all(|settings| settings.api.is_none() || settings.mode == Mode::Off);
        Ok(Compiled {
            apis,
            defaults,
            rules,
            checks_nothing,
        })
    }
}

fn resolve(
    base: &Effective,
    settings: &Settings,
    names: &[&str],
    field: &str,
) -> Result<Effective, ConfigError> {
    let api = match &settings.api {
        Some(name) => Some(names.iter().position(|n| n == name).ok_or_else(|| {
            ConfigError::new(
                format!("{field}.api"),
                format!("{name:?} is not one of apis[].name ({})", names.join(", ")),
            )
        })?),
        None => base.api,
    };
    let max_errors = settings.max_errors.map_or(base.max_errors, |n| n as usize);
    if max_errors == 0 {
        return Err(ConfigError::new(
            format!("{field}.maxErrors"),
            "must be at least 1",
        ));
    }
    let max_body_bytes = settings
        .max_body_bytes
        .map_or(base.max_body_bytes, |b| b.as_usize());
    if max_body_bytes == 0 {
        return Err(ConfigError::new(
            format!("{field}.maxBodyBytes"),
            "must be more than 0",
        ));
    }
    Ok(Effective {
        api,
        mode: settings.mode.unwrap_or(base.mode),
        unknown_operations: settings.unknown_operations.unwrap_or(base.unknown_operations),
        max_body_bytes,
        bodies: settings.bodies.as_deref().map_or(base.bodies, BodyKinds::of),
        responses: settings.responses.unwrap_or(base.responses),
        max_errors,
    })
}

/// The API's origin, and the warnings of its bundle when it is inline (a fetched one brings its
/// own when it arrives).
fn compile_source(source: &ApiSource, field: &str) -> Result<(Origin, Vec<String>), ConfigError> {
    let given = [
        source.bundle.is_some(),
        source.document.is_some(),
        source.url.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ConfigError::new(
            field,
            "give exactly one of bundle, document, url",
        ));
    }
    if let Some(bundle) = &source.bundle {
        let bytes = serde_json::to_vec(bundle).unwrap_or_default();
        let bundle = Bundle::from_json(&bytes)
            .map_err(|e| ConfigError::new(format!("{field}.bundle"), e.to_string()))?;
        check_pin(source, &bundle.sha256, field)?;
        let api = compile_api(&bundle, &format!("{field}.bundle"))?;
        return Ok((Origin::Fixed(Rc::new(api)), bundle.warnings));
    }
    if let Some(document) = &source.document {
        let bundle = Bundle::compile(&Sources::single(&source.name, document.clone()))
            .map_err(|e| ConfigError::new(format!("{field}.document{}", e.pointer), e.reason))?;
        let api = compile_api(&bundle, &format!("{field}.document"))?;
        return Ok((Origin::Fixed(Rc::new(api)), bundle.warnings));
    }
    let url = source.url.as_deref().unwrap_or("");
    let (authority, path) = split_url(url)
        .ok_or_else(|| ConfigError::new(format!("{field}.url"), "must be an absolute http(s) URL"))?;
    let cluster = source.cluster.clone().filter(|c| !c.is_empty()).ok_or_else(|| {
        ConfigError::new(
            format!("{field}.cluster"),
            "the Envoy cluster that reaches url is required",
        )
    })?;
    if let Some(pin) = &source.sha256 {
        if parse_sha256_hex(pin).is_none() {
            return Err(ConfigError::new(
                format!("{field}.sha256"),
                "must be 64 hex digits",
            ));
        }
    }
    let refresh = source.refresh.map_or(DEFAULT_REFRESH, |d| d.get());
    if refresh.is_zero() || refresh > MAX_REFRESH {
        return Err(ConfigError::new(
            format!("{field}.refresh"),
            "must be between 1ms and 24h",
        ));
    }
    let timeout = source.timeout.map_or(DEFAULT_TIMEOUT, |d| d.get());
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ConfigError::new(
            format!("{field}.timeout"),
            "must be between 1ms and 60s",
        ));
    }
    let remote = Remote {
        cluster,
        authority: authority.to_string(),
        path: path.to_string(),
        sha256: source.sha256.as_ref().map(|s| s.to_ascii_lowercase()),
        refresh,
        timeout,
    };
    Ok((Origin::Fetched(remote), Vec::new()))
}

fn check_pin(source: &ApiSource, actual: &str, field: &str) -> Result<(), ConfigError> {
    match &source.sha256 {
        Some(pin) if !pin.eq_ignore_ascii_case(actual) => Err(ConfigError::new(
            format!("{field}.sha256"),
            format!("the bundle's digest is {actual}"),
        )),
        _ => Ok(()),
    }
}

pub fn compile_api(bundle: &Bundle, field: &str) -> Result<Api, ConfigError> {
    Api::compile(bundle).map_err(|e| ConfigError::new(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(config: Value) -> ConfigError {
        let parsed: ValidateConfig = serde_json::from_value(config).unwrap();
        parsed.compile().unwrap_err()
    }

    fn document() -> Value {
        json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"get": {"responses": {}}}}})
    }

    #[test]
    fn a_plugin_no_request_can_reach_checks_nothing() {
        let checks_nothing = |config: Value| {
            let parsed: ValidateConfig = serde_json::from_value(config).unwrap();
            parsed.compile().unwrap().checks_nothing
        };
        let api = json!([{"name": "a", "document": document()}]);
        assert!(!checks_nothing(json!({"apis": api})));
        assert!(checks_nothing(json!({"apis": api, "defaults": {"mode": "off"}})));
        assert!(checks_nothing(json!({"apis": api, "rules": [{"mode": "off"}]})));
        // Requests outside /live reach the defaults, which check when they name the API.
        let live_off = json!([{"match": {"pathPrefix": "/live"}, "mode": "off"}]);
        assert!(!checks_nothing(
            json!({"apis": api, "defaults": {"api": "a"}, "rules": live_off})
        ));
        assert!(checks_nothing(json!({"apis": api, "rules": live_off})));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(error(json!({"apis": [{"name": "a"}]})).path, "apis[0]");
        assert_eq!(
            error(json!({"apis": [{"name": "a", "url": "ftp://x", "cluster": "c"}]})).path,
            "apis[0].url"
        );
        assert_eq!(
            error(json!({"apis": [{"name": "a", "url": "http://x/b"}]})).path,
            "apis[0].cluster"
        );
        assert_eq!(error(json!({"apis": [{"name": "a", "document": document()}, {"name": "a", "document": document()}]})).path, "apis[1].name");
        let bad_document = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a/{id}": {"get": {"responses": {}}}}});
        assert_eq!(
            error(json!({"apis": [{"name": "a", "document": bad_document}]})).path,
            "apis[0].document/paths/~1a~1{id}/get"
        );
        assert_eq!(
            error(json!({"apis": [{"name": "a", "bundle": {"format": "x"}}]})).path,
            "apis[0].bundle"
        );
        assert_eq!(error(json!({"defaults": {"api": "nope"}})).path, "defaults.api");
        assert_eq!(
            error(json!({"rules": [{"match": {"pathPrefix": "x"}}]})).path,
            "rules[0].match"
        );
        assert_eq!(
            error(json!({"defaults": {"maxErrors": 0}})).path,
            "defaults.maxErrors"
        );
    }

    #[test]
    fn rules_override_defaults_and_one_api_alone_applies_everywhere() {
        let compile = |config: Value| {
            serde_json::from_value::<ValidateConfig>(config)
                .unwrap()
                .compile()
                .unwrap()
        };
        let alone = compile(json!({"apis": [{"name": "a", "document": document()}]}));
        assert_eq!(alone.defaults.api, Some(0));
        let rules = json!([{"match": {"pathPrefix": "/x"}, "mode": "report"}]);
        let scoped = compile(json!({"apis": [{"name": "a", "document": document()}], "rules": rules}));
        assert_eq!(
            scoped.defaults.api, None,
            "with rules, unmatched requests are not checked"
        );
        let compiled = compile(json!({
            "apis": [{"name": "a", "document": document()}],
            "defaults": {"maxErrors": 5, "api": "a"},
            "rules": rules
        }));
        assert_eq!(compiled.defaults.mode, Mode::Enforce);
        let view = kea_plugin_sdk::RequestView {
            path: "/x/1",
            method: "GET",
            ..Default::default()
        };
        let rule = compiled.rules.first_match(&view).unwrap();
        assert_eq!((rule.mode, rule.max_errors, rule.api), (Mode::Report, 5, Some(0)));
    }
}
