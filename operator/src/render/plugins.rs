//! The four plugins' configurations for one gateway, aggregating every API bound to it. Built from
//! the plugins' own config types and compiled with the plugins' own code before anything is
//! written, so what the operator accepts is what the plugins load.

use super::{Key, Problem};
use crate::crd::ApiDefinitionSpec;
use crate::crd::{
    AuditPolicy, AuthPolicy, CachePolicy, CacheSetCookie, Deployment, DocsAccess, GatewayBindingSpec,
    IdentityProvider, PluginSettings, Policies, StickyBy, ValidationPolicy,
};
use kea_audit::config::{AuditConfig, AuditRule, BodyCapture, HttpSink, Sampling};
use kea_auth::config::{
    AuthConfig, ClaimHeader, DiscoveryJwks, JwksSource, ProviderConfig, RemoteJwks, Requirement, RuleConfig,
};
use kea_auth::split::config::{SplitBackend, SplitConfig, Sticky, StickyBy as SplitStickyBy};
use kea_cache::config::{CacheConfig, CacheRule, RuleSettings, SetCookiePolicy};
use kea_plugin_sdk::{ByteSize, ConfigDuration, MatchSpec};
use kea_schema::Bundle;
use kea_suite::SuiteConfig;
use kea_validate::config::{ApiSource, Mode, Rule as ValidateRule, Settings, ValidateConfig};
use tracing::instrument;

/// An API as the plugin renderer sees it: its spec and its compiled bundle.
#[derive(Debug, Clone, Copy)]
pub struct BoundApi<'a> {
    pub key: &'a Key,
    pub spec: &'a ApiDefinitionSpec,
    pub bundle: &'a Bundle,
}

/// Where the validate plugin fetches bundles: the operator's `/bundles/` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEndpoint {
    /// Base URL, e.g. `http://kea-operator.kea-system:8080`.
    pub url: String,
    /// Envoy cluster that reaches it.
    pub cluster: String,
}

impl BundleEndpoint {
    /// The URL of one API's bundle.
    pub fn bundle_url(&self, key: &Key) -> String {
        format!(
            "{}/bundles/{}/{}",
            self.url.trim_end_matches('/'),
            key.namespace,
            key.name
        )
    }
}

/// One configuration per plugin; `None` when the gateway does not need that plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginConfigs {
    pub audit: Option<AuditConfig>,
    pub auth: Option<AuthConfig>,
    pub validate: Option<ValidateConfig>,
    pub cache: Option<CacheConfig>,
    /// How they are packaged: one combined module or one module each.
    pub deployment: Deployment,
}

/// A plugin, in chain order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    Audit,
    Auth,
    Validate,
    Cache,
}

impl Plugin {
    pub const ALL: [Plugin; 4] = [Plugin::Audit, Plugin::Auth, Plugin::Validate, Plugin::Cache];

    pub fn name(self) -> &'static str {
        match self {
            Plugin::Audit => "audit",
            Plugin::Auth => "auth",
            Plugin::Validate => "validate",
            Plugin::Cache => "cache",
        }
    }
}

/// A wasm module a gateway loads: the combined module (`kea.wasm`) or one plugin's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Module {
    Combined,
    Plugin(Plugin),
}

impl Module {
    /// Every module a gateway may have loaded (the operator deletes those it no longer needs).
    pub const ALL: [Module; 5] = [
        Module::Combined,
        Module::Plugin(Plugin::Audit),
        Module::Plugin(Plugin::Auth),
        Module::Plugin(Plugin::Validate),
        Module::Plugin(Plugin::Cache),
    ];

    /// The module's file stem (`kea`, `audit`...): `dist/<name>.wasm`, `{plugin}` in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Module::Combined => "kea",
            Module::Plugin(plugin) => plugin.name(),
        }
    }

    /// The GatewayBinding field that says where the module is published.
    pub fn field(self) -> String {
        match self {
            Module::Combined => "spec.plugins.module".into(),
            Module::Plugin(plugin) => format!("spec.plugins.{}", plugin.name()),
        }
    }

    /// Whether the module may hold the request headers until the body is read (validate does;
    /// the combined module runs validate when the gateway validates).
    pub fn holds_headers(self) -> bool {
        matches!(self, Module::Combined | Module::Plugin(Plugin::Validate))
    }
}

impl Plugin {
    /// The binding's `spec.plugins.<plugin>` settings.
    pub fn settings(self, sources: &crate::crd::PluginSources) -> Option<&PluginSettings> {
        match self {
            Plugin::Audit => sources.audit.as_ref(),
            Plugin::Auth => sources.auth.as_ref(),
            Plugin::Validate => sources.validate.as_ref(),
            Plugin::Cache => sources.cache.as_ref(),
        }
    }
}

impl PluginConfigs {
    /// The plugins that have a configuration, in chain order.
    pub fn plugins(&self) -> impl Iterator<Item = Plugin> + '_ {
        Plugin::ALL.into_iter().filter(|plugin| match plugin {
            Plugin::Audit => self.audit.is_some(),
            Plugin::Auth => self.auth.is_some(),
            Plugin::Validate => self.validate.is_some(),
            Plugin::Cache => self.cache.is_some(),
        })
    }

    /// The modules the gateway loads, each with the configuration it reads: the combined module
    /// with one section per plugin (built as the module's own [`SuiteConfig`]), or one module per
    /// plugin. Empty when no plugin is needed.
    pub fn modules(&self) -> Vec<(Module, serde_json::Value)> {
        match self.deployment {
            Deployment::Separate => self
                .plugins()
                .filter_map(|plugin| Some((Module::Plugin(plugin), self.json(plugin)?)))
                .collect(),
            Deployment::Combined if self.plugins().next().is_none() => Vec::new(),
            Deployment::Combined => {
                let suite = SuiteConfig {
                    audit: self.audit.clone(),
                    auth: self.auth.clone(),
                    validate: self.validate.clone(),
                    cache: self.cache.clone(),
                };
                serde_json::to_value(suite)
                    .map(|config| vec![(Module::Combined, config)])
                    .unwrap_or_default()
            }
        }
    }

    /// The configuration of `plugin` as the JSON the plugin reads.
    pub fn json(&self, plugin: Plugin) -> Option<serde_json::Value> {
        let value = match plugin {
            Plugin::Audit => self.audit.as_ref().map(serde_json::to_value),
            Plugin::Auth => self.auth.as_ref().map(serde_json::to_value),
            Plugin::Validate => self.validate.as_ref().map(serde_json::to_value),
            Plugin::Cache => self.cache.as_ref().map(serde_json::to_value),
        };
        value.and_then(Result::ok)
    }
}

/// Renders and compiles the plugin configurations of a gateway. APIs with longer base paths come
/// first (first match wins in every plugin), each API's operation rules before its own.
/// `endpoint` is where bundles are fetched; without it (or with `bundles.inline`) they are inline.
#[instrument(level = "debug", skip_all, fields(apis = apis.len()), err(level = "debug", Display))]
pub fn render(
    gateway: &GatewayBindingSpec,
    apis: &[BoundApi<'_>],
    endpoint: Option<&BundleEndpoint>,
) -> Result<PluginConfigs, Problem> {
    let mut ordered: Vec<&BoundApi<'_>> = apis.iter().collect();
    ordered.sort_by(|a, b| super::precedence((a.spec, a.key), (b.spec, b.key)));
    let endpoint = if gateway.bundles.inline { None } else { endpoint };

    let bases = &gateway.plugins;
    check_sources(bases)?;
    let mut audit = match gateway.audit.enabled {
        true => Some(audit_base(gateway, base("audit", bases.audit.as_ref())?)?),
        false => None,
    };
    let auth_config: Option<AuthConfig> = base("auth", bases.auth.as_ref())?;
    let has_credentials = !gateway.identity_providers.is_empty() || auth_config.is_some();
    // Always built: a gateway without credentials drops the plugin below only when every rule
    // lets anonymous requests through; otherwise the plugin's compiler refuses it (fail closed).
    let mut auth = Some(auth_base(gateway, auth_config.unwrap_or_default()));
    let validate_config: Option<ValidateConfig> = base("validate", bases.validate.as_ref())?;
    let mut validate = match (apis.is_empty(), validate_config) {
        (true, None) => None,
        (_, config) => Some(validate_base(gateway, config.unwrap_or_default())),
    };
    let cache_config: Option<CacheConfig> = base("cache", bases.cache.as_ref())?;
    let mut caching = cache_config.is_some();
    let mut cache = cache_config.unwrap_or_default();
    // The APIs' rules go before the base configuration's own (first match wins).
    let audit_rules = audit
        .as_mut()
        .map(|config| std::mem::take(&mut config.rules))
        .unwrap_or_default();
    let auth_rules = auth
        .as_mut()
        .map(|config| std::mem::take(&mut config.rules))
        .unwrap_or_default();
    let validate_rules = validate
        .as_mut()
        .map(|config| std::mem::take(&mut config.rules))
        .unwrap_or_default();
    let cache_rules = std::mem::take(&mut cache.rules);

    for api in &ordered {
        for (matcher, policies) in scopes(api.spec) {
            let effective = |pick: fn(&Policies) -> bool| -> &Policies {
                if pick(policies) {
                    policies
                } else if pick(&api.spec.policies) {
                    &api.spec.policies
                } else {
                    &gateway.defaults
                }
            };
            if let Some(config) = auth.as_mut() {
                let policy = effective(|p| p.auth.is_some()).auth.clone().unwrap_or_default();
                config.rules.push(RuleConfig {
                    match_spec: matcher.clone(),
                    requirement: requirement(&policy),
                });
            }
            if let Some(config) = audit.as_mut() {
                if let Some(policy) = &effective(|p| p.audit.is_some()).audit {
                    config.rules.push(audit_rule(matcher.clone(), policy));
                }
            }
            if let Some(config) = validate.as_mut() {
                let policy = policies
                    .validation
                    .clone()
                    .or_else(|| api.spec.policies.validation.clone())
                    .unwrap_or_default();
                config
                    .rules
                    .push(validate_rule(matcher.clone(), api.key, &policy)?);
            }
            let policy = effective(|p| p.cache.is_some()).cache.clone().unwrap_or_default();
            let settings = cache_settings(&policy);
            caching |= settings.enabled;
            cache.rules.push(CacheRule {
                match_spec: matcher,
                settings,
            });
        }
        if let Some(config) = validate.as_mut() {
            config.apis.push(api_source(api, endpoint));
        }
        if let (Some(split), Some(config)) = (split_config(api)?, auth.as_mut()) {
            config.splits.push(split);
        }
    }
    if let Some(config) = audit.as_mut() {
        config.rules.extend(audit_rules);
    }
    if let Some(config) = auth.as_mut() {
        config.rules.extend(auth_rules);
    }
    if let Some(config) = validate.as_mut() {
        config.rules.extend(validate_rules);
    }
    if let Some(docs) = super::portal::docs_match(gateway) {
        // The portal's own rules come first: it is not an API, and its access is the binding's.
        if let Some(config) = auth.as_mut() {
            let requirement = docs_requirement(gateway, config)?;
            config.rules.insert(
                0,
                RuleConfig {
                    match_spec: docs.clone(),
                    requirement,
                },
            );
        }
        if let Some(config) = validate.as_mut() {
            let off = ValidateRule {
                match_spec: docs.clone(),
                mode: Some(Mode::Off),
                ..ValidateRule::default()
            };
            config.rules.insert(0, off);
        }
        let uncached = CachePolicy {
            enabled: Some(false),
            ..CachePolicy::default()
        };
        cache.rules.insert(
            0,
            CacheRule {
                match_spec: docs,
                settings: cache_settings(&uncached),
            },
        );
    }
    // Every rule `off` and no default API: the plugin would check nothing, so it is not loaded
    // (a wasm filter costs every request its VM crossings).
    let checks_nothing = validate.as_ref().is_some_and(|config| {
        config.defaults.api.is_none()
            && !config.rules.is_empty()
            && config.rules.iter().all(|rule| rule.mode == Some(Mode::Off))
    });
    if checks_nothing {
        validate = None;
    }
    cache.rules.extend(cache_rules);
    let all_anonymous = auth
        .as_ref()
        .is_none_or(|config| config.rules.iter().all(|rule| rule.requirement.allow_anonymous));
    // The splitter lives in the auth plugin: an API that splits exactly or mirrors needs it even
    // on a gateway without credentials.
    if !has_credentials && all_anonymous {
        match auth.as_mut() {
            // Only the splitter: requests no rule matches pass, as they would without the plugin.
            Some(config) if !config.splits.is_empty() => {
                config.defaults = Requirement {
                    allow_anonymous: true,
                    ..Requirement::default()
                };
            }
            _ => auth = None,
        }
    }
    let configs = PluginConfigs {
        audit,
        auth,
        validate,
        cache: caching.then_some(cache),
        deployment: bases.effective_deployment(),
    };
    compile(&configs)?;
    Ok(configs)
}

/// A module source that the deployment would not use is refused rather than ignored: a per-plugin
/// `url` or `sha256` names a module the combined deployment does not load, and `module` names one
/// the separate deployment does not load.
fn check_sources(sources: &crate::crd::PluginSources) -> Result<(), Problem> {
    let refused = |field: String, message: &str| {
        Err(Problem::invalid(
            "PluginSourceUnused",
            format!("{field}: {message}"),
        ))
    };
    match sources.effective_deployment() {
        Deployment::Combined => {
            for plugin in Plugin::ALL {
                let Some(settings) = plugin.settings(sources) else { continue };
                let field = format!("spec.plugins.{}", plugin.name());
                if settings.url.is_some() {
                    return refused(
                        format!("{field}.url"),
                        "the combined deployment loads one module, kea.wasm; set spec.plugins.module.url for it, or spec.plugins.deployment: Separate to load each plugin's own module",
                    );
                }
                if settings.sha256.is_some() {
                    return refused(
                        format!("{field}.sha256"),
                        "pins the plugin's own module, which the combined deployment does not load; set spec.plugins.module.sha256, or spec.plugins.deployment: Separate",
                    );
                }
            }
            Ok(())
        }
        Deployment::Separate if sources.module.is_some() => refused(
            "spec.plugins.module".into(),
            "is the combined module, which spec.plugins.deployment: Separate does not load; set spec.plugins.<plugin>.url instead",
        ),
        Deployment::Separate => Ok(()),
    }
}

/// Each plugin's own compiler, so a configuration the plugin would refuse is never written.
fn compile(configs: &PluginConfigs) -> Result<(), Problem> {
    let refused = |plugin: &str, error: kea_plugin_sdk::ConfigError| {
        Problem::invalid(
            "PluginConfigRejected",
            format!("the {plugin} plugin refuses the configuration: {error}"),
        )
    };
    if let Some(config) = &configs.audit {
        config.compile().map_err(|e| refused("audit", e))?;
    }
    if let Some(config) = &configs.auth {
        config.compile().map_err(|e| refused("auth", e))?;
    }
    if let Some(config) = &configs.validate {
        config.compile().map_err(|e| refused("validate", e))?;
    }
    if let Some(config) = &configs.cache {
        config.compile().map_err(|e| refused("cache", e))?;
    }
    Ok(())
}

/// The auth plugin's split of an API whose routes follow its marks: the same `match` as the API's
/// own auth rule (hosts and base path), its backends by key and weight, stickiness, the mirror.
fn split_config(api: &BoundApi<'_>) -> Result<Option<SplitConfig>, Problem> {
    let (backends, plan) = super::spec::split(api.spec)?;
    if !plan.marks {
        return Ok(None);
    }
    Ok(Some(SplitConfig {
        match_spec: MatchSpec {
            hosts: api.spec.hosts.clone(),
            path_prefix: Some(api.spec.base_path.clone()),
            ..MatchSpec::default()
        },
        name: api.key.to_string(),
        backends: backends
            .iter()
            .map(|backend| SplitBackend {
                key: backend.key.clone(),
                weight: backend.weight,
            })
            .collect(),
        sticky: plan.sticky.map(|sticky| Sticky {
            by: match sticky.by {
                StickyBy::Principal => SplitStickyBy::Principal,
                StickyBy::Header => SplitStickyBy::Header,
            },
            header: sticky.header,
        }),
        mirror_percent: plan.mirror.as_ref().map(super::spec::MirrorTarget::percent),
    }))
}

/// The request scopes of an API: its operations with policies of their own (from
/// `operationPolicies` and from operations written as fields), then the whole API.
fn scopes(spec: &ApiDefinitionSpec) -> Vec<(MatchSpec, &Policies)> {
    let mut out = Vec::new();
    for policy in &spec.operation_policies {
        out.push((
            operation_match(spec, &policy.path, &policy.methods),
            &policy.policies,
        ));
    }
    for operation in &spec.schema.operations {
        if operation.policies != Policies::default() {
            let methods = std::slice::from_ref(&operation.method);
            out.push((
                operation_match(spec, &operation.path, methods),
                &operation.policies,
            ));
        }
    }
    out.push((
        MatchSpec {
            hosts: spec.hosts.clone(),
            path_prefix: Some(spec.base_path.clone()),
            ..MatchSpec::default()
        },
        &spec.policies,
    ));
    out
}

fn operation_match(spec: &ApiDefinitionSpec, path: &str, methods: &[String]) -> MatchSpec {
    MatchSpec {
        hosts: spec.hosts.clone(),
        path_template: Some(join_path(&spec.base_path, path)),
        methods: methods.to_vec(),
        ..MatchSpec::default()
    }
}

/// `base` + `path`, with exactly one `/` between them.
pub fn join_path(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// A plugin's base configuration (`spec.plugins.<plugin>.config`), read with the plugin's type.
fn base<T: serde::de::DeserializeOwned>(
    plugin: &str,
    settings: Option<&PluginSettings>,
) -> Result<Option<T>, Problem> {
    let Some(config) = settings.and_then(|settings| settings.config.as_ref()) else {
        return Ok(None);
    };
    let text = config.to_string();
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut deserializer)
        .map(Some)
        .map_err(|error| {
            Problem::invalid(
                "InvalidPluginConfig",
                format!("spec.plugins.{plugin}.config.{}: {}", error.path(), error.inner()),
            )
        })
}

fn audit_base(gateway: &GatewayBindingSpec, base: Option<AuditConfig>) -> Result<AuditConfig, Problem> {
    let mut config = base.unwrap_or_default();
    config
        .redact
        .headers
        .extend(gateway.audit.redact_headers.iter().cloned());
    if let Some(sink) = &gateway.audit.sink {
        let sink: HttpSink = serde_json::from_value(sink.clone())
            .map_err(|error| Problem::invalid("InvalidAuditSink", format!("spec.audit.sink: {error}")))?;
        config.sinks.http = Some(sink);
    }
    Ok(config)
}

fn audit_rule(match_spec: MatchSpec, policy: &AuditPolicy) -> AuditRule {
    let sampling = policy.sampling_percent.map(|percent| Sampling {
        percent,
        ..Sampling::default()
    });
    let body = (policy.request_body.is_some() || policy.response_body.is_some()).then(|| BodyCapture {
        request: policy.request_body.unwrap_or(false),
        response: policy.response_body.unwrap_or(false),
        ..BodyCapture::default()
    });
    AuditRule {
        match_spec,
        skip: policy.skip.unwrap_or(false),
        sampling,
        body,
    }
}

fn auth_base(gateway: &GatewayBindingSpec, mut config: AuthConfig) -> AuthConfig {
    config
        .providers
        .extend(gateway.identity_providers.iter().map(provider));
    if let Some(policy) = &gateway.defaults.auth {
        config.defaults = requirement(policy);
    }
    config
}

fn provider(provider: &IdentityProvider) -> ProviderConfig {
    let jwks = match &provider.jwks_uri {
        Some(uri) => JwksSource::Remote(RemoteJwks {
            cluster: provider.cluster.clone(),
            uri: uri.clone(),
            cache_duration: None,
        }),
        None => JwksSource::Discovery(DiscoveryJwks {
            cluster: provider.cluster.clone(),
            cache_duration: None,
        }),
    };
    ProviderConfig {
        name: provider.name.clone(),
        issuer: provider.issuer.clone(),
        audiences: provider.audiences.clone(),
        jwks: Some(jwks),
        algorithms: provider.algorithms.clone(),
        claim_headers: provider
            .claim_headers
            .iter()
            .map(|mapping| ClaimHeader {
                claim: mapping.claim.clone(),
                header: mapping.header.clone(),
            })
            .collect(),
        ..ProviderConfig::default()
    }
}

/// Who may read the docs portal: anyone, or readers with a single sign-on session.
fn docs_requirement(gateway: &GatewayBindingSpec, auth: &AuthConfig) -> Result<Requirement, Problem> {
    match gateway.docs_access {
        DocsAccess::Public => Ok(Requirement {
            allow_anonymous: true,
            ..Requirement::default()
        }),
        DocsAccess::Login => match &auth.sso {
            Some(sso) => Ok(Requirement {
                any_of: vec![sso.name.clone()],
                ..Requirement::default()
            }),
            None => Err(Problem::invalid(
                "DocsLoginWithoutSso",
                "docsAccess Login needs single sign-on: plugins.auth.config.sso is not set",
            )),
        },
    }
}

fn requirement(policy: &AuthPolicy) -> Requirement {
    Requirement {
        allow_anonymous: policy.anonymous,
        any_of: policy.providers.clone(),
        scopes: policy.scopes.clone(),
        ..Requirement::default()
    }
}

fn validate_base(gateway: &GatewayBindingSpec, mut config: ValidateConfig) -> ValidateConfig {
    if let Some(policy) = &gateway.defaults.validation {
        // Sizes and modes were checked with the spec; an unparsable one cannot reach here.
        config.defaults = Settings {
            mode: policy.mode.as_deref().and_then(mode),
            responses: policy.responses,
            max_body_bytes: policy
                .max_body_bytes
                .as_deref()
                .and_then(|size| size.parse::<ByteSize>().ok()),
            ..Settings::default()
        };
    }
    config
}

fn validate_rule(
    match_spec: MatchSpec,
    key: &Key,
    policy: &ValidationPolicy,
) -> Result<ValidateRule, Problem> {
    let mode = match policy.mode.as_deref() {
        None => None,
        Some(text) => Some(mode(text).ok_or_else(|| {
            Problem::invalid(
                "InvalidValidationMode",
                format!("validation.mode {text:?}: must be enforce, report or off"),
            )
        })?),
    };
    let max_body_bytes = match policy.max_body_bytes.as_deref() {
        None => None,
        Some(size) => Some(size.parse::<ByteSize>().map_err(|error| {
            Problem::invalid(
                "InvalidSize",
                format!("validation.maxBodyBytes {size:?}: {error}"),
            )
        })?),
    };
    Ok(ValidateRule {
        match_spec,
        api: Some(key.to_string()),
        mode,
        responses: policy.responses,
        max_body_bytes,
        ..ValidateRule::default()
    })
}

fn mode(text: &str) -> Option<Mode> {
    match text {
        "enforce" => Some(Mode::Enforce),
        "report" => Some(Mode::Report),
        "off" => Some(Mode::Off),
        _ => None,
    }
}

fn api_source(api: &BoundApi<'_>, endpoint: Option<&BundleEndpoint>) -> ApiSource {
    let name = api.key.to_string();
    match endpoint {
        Some(endpoint) => ApiSource {
            name,
            url: Some(endpoint.bundle_url(api.key)),
            cluster: Some(endpoint.cluster.clone()),
            sha256: Some(api.bundle.sha256.clone()),
            ..ApiSource::default()
        },
        None => ApiSource {
            name,
            bundle: serde_json::to_value(api.bundle).ok(),
            ..ApiSource::default()
        },
    }
}

fn cache_settings(policy: &CachePolicy) -> RuleSettings {
    RuleSettings {
        enabled: policy.enabled.unwrap_or(false),
        // Checked with the spec.
        default_ttl: policy
            .default_ttl
            .as_deref()
            .and_then(|ttl| ttl.parse::<ConfigDuration>().ok()),
        key_headers: policy.key_headers.clone(),
        per_user: policy.per_user.unwrap_or(false),
        set_cookie: match policy.set_cookie {
            CacheSetCookie::Auto => None,
            CacheSetCookie::DoNotStore => Some(SetCookiePolicy::DoNotStore),
            CacheSetCookie::StoreWithout => Some(SetCookiePolicy::StoreWithout),
            CacheSetCookie::Replay => Some(SetCookiePolicy::Replay),
        },
        ..RuleSettings::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::crd::{ApiSchema, Backend, Operation, OperationPolicy};
    use serde_json::{json, Value};

    #[test]
    fn cache_policies_become_the_plugins_settings() {
        let settings = cache_settings(&CachePolicy {
            enabled: Some(true),
            set_cookie: CacheSetCookie::StoreWithout,
            ..CachePolicy::default()
        });
        assert_eq!(settings.set_cookie, Some(SetCookiePolicy::StoreWithout));
        let auto = cache_settings(&CachePolicy {
            per_user: Some(true),
            ..CachePolicy::default()
        });
        assert_eq!(auto.set_cookie, None, "the plugin's own default");
        assert!(auto.per_user);
    }

    fn api(base_path: &str, policies: Policies) -> ApiDefinitionSpec {
        ApiDefinitionSpec {
            gateway: "edge".into(),
            hosts: vec!["api.example.com".into()],
            base_path: base_path.into(),
            backends: vec![Backend {
                service: "svc".into(),
                port: 80,
                version: None,
                weight: None,
            }],
            schema: ApiSchema {
                operations: vec![Operation {
                    path: "/items".into(),
                    method: "GET".into(),
                    ..Operation::default()
                }],
                ..ApiSchema::default()
            },
            policies,
            ..ApiDefinitionSpec::default()
        }
    }

    fn bundle(spec: &ApiDefinitionSpec) -> Bundle {
        let document = super::super::schema::document("t", spec, None).unwrap();
        super::super::schema::compile("t", document).unwrap()
    }

    fn gateway() -> GatewayBindingSpec {
        GatewayBindingSpec {
            identity_providers: vec![IdentityProvider {
                name: "corp".into(),
                issuer: "https://idp.example.com".into(),
                cluster: "idp".into(),
                ..IdentityProvider::default()
            }],
            ..GatewayBindingSpec::default()
        }
    }

    #[test]
    fn a_validate_plugin_that_would_check_nothing_is_not_loaded() {
        let policies = |mode: &str| Policies {
            validation: Some(ValidationPolicy {
                mode: Some(mode.into()),
                ..ValidationPolicy::default()
            }),
            ..Policies::default()
        };
        let (off, on) = (api("/off", policies("off")), api("/on", policies("enforce")));
        let (off_key, on_key) = (Key::new("ns", "off"), Key::new("ns", "on"));
        let (off_bundle, on_bundle) = (bundle(&off), bundle(&on));
        let off_only = [BoundApi {
            key: &off_key,
            spec: &off,
            bundle: &off_bundle,
        }];
        assert!(render(&gateway(), &off_only, None).unwrap().validate.is_none());
        let both = [
            off_only[0],
            BoundApi {
                key: &on_key,
                spec: &on,
                bundle: &on_bundle,
            },
        ];
        assert!(render(&gateway(), &both, None).unwrap().validate.is_some());
    }

    #[test]
    fn longer_base_paths_first_operation_rules_before_api_rules() {
        let root = api(
            "/",
            Policies {
                auth: Some(AuthPolicy {
                    anonymous: true,
                    ..AuthPolicy::default()
                }),
                ..Policies::default()
            },
        );
        let mut admin = api("/admin", Policies::default());
        admin.operation_policies.push(OperationPolicy {
            path: "/items".into(),
            methods: vec!["GET".into()],
            policies: Policies {
                auth: Some(AuthPolicy {
                    scopes: vec!["read".into()],
                    ..AuthPolicy::default()
                }),
                ..Policies::default()
            },
        });
        let (root_key, admin_key) = (Key::new("ns", "root"), Key::new("ns", "admin"));
        let (root_bundle, admin_bundle) = (bundle(&root), bundle(&admin));
        let apis = [
            BoundApi {
                key: &root_key,
                spec: &root,
                bundle: &root_bundle,
            },
            BoundApi {
                key: &admin_key,
                spec: &admin,
                bundle: &admin_bundle,
            },
        ];
        let endpoint = BundleEndpoint {
            url: "http://kea:8080/".into(),
            cluster: "kea".into(),
        };
        let configs = render(&gateway(), &apis, Some(&endpoint)).unwrap();
        let auth = serde_json::to_value(configs.auth.unwrap()).unwrap();
        let rules: Vec<Value> = auth["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| rule["match"].clone())
            .collect();
        assert_eq!(
            rules,
            [
                json!({"hosts": ["api.example.com"], "pathTemplate": "/admin/items", "methods": ["GET"]}),
                json!({"hosts": ["api.example.com"], "pathPrefix": "/admin"}),
                json!({"hosts": ["api.example.com"], "pathPrefix": "/"}),
            ]
        );
        assert_eq!(auth["rules"][0]["scopes"], json!(["read"]));
        assert_eq!(auth["rules"][2]["allowAnonymous"], true);
        // No API enables caching: no cache plugin. Audit is on by default.
        assert!(configs.cache.is_none());
        assert!(configs.audit.is_some());
        let validate = configs.validate.unwrap();
        assert_eq!(
            validate.apis[0].url.as_deref(),
            Some("http://kea:8080/bundles/ns/admin")
        );
        assert_eq!(
            validate.apis[0].sha256.as_deref(),
            Some(admin_bundle.sha256.as_str())
        );
        // Without an endpoint, bundles are inline.
        let inline = render(&gateway(), &apis, None).unwrap().validate.unwrap();
        assert!(inline
            .apis
            .iter()
            .all(|source| source.bundle.is_some() && source.url.is_none()));
    }

    #[test]
    fn splitting_apis_get_a_split_in_the_auth_plugin_even_without_credentials() {
        use crate::crd::{Mirror, Split, SplitMode, StickySplit};
        let mut pets = api(
            "/pets",
            Policies {
                auth: Some(AuthPolicy {
                    anonymous: true,
                    ..AuthPolicy::default()
                }),
                ..Policies::default()
            },
        );
        let key = Key::new("shop", "pets");
        let bound = |spec: &ApiDefinitionSpec| {
            let bundle = bundle(spec);
            render(
                &GatewayBindingSpec::default(),
                &[BoundApi {
                    key: &key,
                    spec,
                    bundle: &bundle,
                }],
                None,
            )
            .unwrap()
        };
        // One backend, public, no credentials: no auth plugin at all.
        assert!(bound(&pets).auth.is_none());

        pets.backends = vec![
            Backend {
                service: "pets-v1".into(),
                port: 8080,
                version: Some("v1".into()),
                weight: Some(90),
            },
            Backend {
                service: "pets-v2".into(),
                port: 8080,
                version: None,
                weight: Some(10),
            },
        ];
        pets.split = Some(Split {
            mode: SplitMode::Exact,
            sticky: Some(StickySplit {
                by: StickyBy::Header,
                header: Some("x-session-id".into()),
            }),
        });
        pets.mirror = Some(Mirror {
            service: "shadow".into(),
            port: 8080,
            percent: 0.5,
        });
        let auth = bound(&pets).auth.expect("the splitter is in the auth plugin");
        assert_eq!(
            serde_json::to_value(&auth.splits).unwrap(),
            json!([{
                "match": {"hosts": ["api.example.com"], "pathPrefix": "/pets"},
                "name": "shop/pets",
                "backends": [{"key": "v1", "weight": 90}, {"key": "pets-v2", "weight": 10}],
                "sticky": {"by": "Header", "header": "x-session-id"},
                "mirrorPercent": 0.5,
            }])
        );
        // Nothing else changes: requests no rule matches pass, as without the plugin.
        assert!(auth.defaults.allow_anonymous);
        assert!(auth.providers.is_empty());

        // Random: the routes' weights alone, no splitter.
        pets.split = Some(Split {
            mode: SplitMode::Random,
            sticky: None,
        });
        assert!(bound(&pets).auth.is_none());

        // With credentials the split joins the gateway's own auth configuration.
        pets.split = None;
        let bundle = bundle(&pets);
        let configs = render(
            &gateway(),
            &[BoundApi {
                key: &key,
                spec: &pets,
                bundle: &bundle,
            }],
            None,
        )
        .unwrap();
        let auth = configs.auth.unwrap();
        assert_eq!(auth.splits.len(), 1);
        assert_eq!(auth.splits[0].sticky, None);
        assert!(!auth.defaults.allow_anonymous, "fail closed by default");
    }

    #[test]
    fn base_configs_are_read_with_the_plugins_own_types() {
        let mut gateway = gateway();
        gateway.plugins.cache = Some(PluginSettings {
            config: Some(json!({"store": {"maxEntries": "many"}})),
            ..PluginSettings::default()
        });
        let problem = render(&gateway, &[], None).unwrap_err();
        assert_eq!(problem.reason, "InvalidPluginConfig");
        assert!(
            problem
                .message
                .starts_with("spec.plugins.cache.config.store.maxEntries"),
            "{problem}"
        );
        gateway.plugins.cache = Some(PluginSettings {
            config: Some(json!({"store": {"maxEntries": 10}})),
            ..PluginSettings::default()
        });
        let configs = render(&gateway, &[], None).unwrap();
        assert_eq!(configs.cache.unwrap().store.max_entries, 10);
        // A sink the audit plugin refuses is reported, not written.
        gateway.audit.sink = Some(json!({"cluster": "", "format": "jsonLines"}));
        assert!(render(&gateway, &[], None).is_err());
    }

    #[test]
    fn a_module_source_the_deployment_does_not_load_is_refused_by_field() {
        let mut gateway = gateway();
        assert_eq!(
            render(&gateway, &[], None).unwrap().deployment,
            Deployment::Combined
        );
        gateway.plugins.auth = Some(PluginSettings {
            url: Some("oci://registry.example/kea/auth:1".into()),
            ..PluginSettings::default()
        });
        // Unset, a plugin's own module means the separate deployment (as before there was one).
        assert_eq!(
            render(&gateway, &[], None).unwrap().deployment,
            Deployment::Separate
        );
        gateway.plugins.deployment = Some(Deployment::Combined);
        let problem = render(&gateway, &[], None).unwrap_err();
        assert_eq!(problem.reason, "PluginSourceUnused");
        assert!(
            problem.message.starts_with("spec.plugins.auth.url: "),
            "{problem}"
        );
        gateway.plugins.deployment = Some(Deployment::Separate);
        let configs = render(&gateway, &[], None).unwrap();
        assert_eq!(configs.deployment, Deployment::Separate);
        gateway.plugins.module = Some(crate::crd::ModuleSettings {
            url: "oci://registry.example/kea/kea:1".into(),
            sha256: None,
        });
        let problem = render(&gateway, &[], None).unwrap_err();
        assert!(problem.message.starts_with("spec.plugins.module: "), "{problem}");
        gateway.plugins.auth = None;
        gateway.plugins.deployment = None;
        assert_eq!(
            render(&gateway, &[], None).unwrap().deployment,
            Deployment::Combined
        );
    }

    #[test]
    fn modules_are_one_combined_module_or_one_per_plugin_in_chain_order() {
        let mut configs = PluginConfigs {
            auth: Some(AuthConfig::default()),
            cache: Some(CacheConfig::default()),
            ..PluginConfigs::default()
        };
        let combined = configs.modules();
        assert_eq!(combined.len(), 1);
        assert_eq!(combined[0].0, Module::Combined);
        let sections: Vec<&String> = combined[0].1.as_object().unwrap().keys().collect();
        assert_eq!(sections, ["auth", "cache"]);
        configs.deployment = Deployment::Separate;
        let separate: Vec<Module> = configs.modules().into_iter().map(|(module, _)| module).collect();
        assert_eq!(
            separate,
            [Module::Plugin(Plugin::Auth), Module::Plugin(Plugin::Cache)]
        );
        assert!(PluginConfigs::default().modules().is_empty());
    }
}
