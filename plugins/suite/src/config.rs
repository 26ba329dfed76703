//! The combined module's configuration and how it configures the stages.

use kea_audit::{AuditConfig, AuditStage};
use kea_auth::{AuthConfig, AuthStage};
use kea_cache::config::CacheConfig;
use kea_cache::stage::CacheStage;
use kea_plugin_sdk::{ConfigError, Host, Phase, Stages};
use kea_validate::config::ValidateConfig;
use kea_validate::stage::ValidateStage;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// The sections, in the order the stages run on a request.
pub const SECTIONS: [&str; 4] = ["audit", "auth", "validate", "cache"];

/// The combined module's configuration, as the operator and `kea render` write it: each section
/// is that plugin's own configuration type, so the two cannot drift.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<ValidateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
}

/// One stage per section, in [`SECTIONS`] order.
pub fn stages<H: Host>() -> Stages<H> {
    vec![
        Box::<AuditStage>::default(),
        Box::<AuthStage>::default(),
        Box::<ValidateStage>::default(),
        Box::<CacheStage>::default(),
    ]
}

/// Configures each stage from its section (each parsed by its own plugin, so errors name the
/// field as `auth.providers[0].issuer`) and unloads the stages without one.
///
/// Sections are applied in order: when one is rejected, the sections before it already hold
/// the new configuration. Envoy refuses a module whose first configuration fails, and gives a
/// changed configuration a new root context, so a half-applied configuration is not served.
pub fn configure<H: Host>(stages: &mut Stages<H>, host: &H, raw: &[u8]) -> Result<(), ConfigError> {
    let _phase = Phase::enter("suite.configure");
    // Raw sections: each plugin parses its own, with its own strictness and error paths.
    let sections: BTreeMap<String, &RawValue> =
        serde_json::from_slice(raw).map_err(|e| ConfigError::new("(root)", e.to_string()))?;
    if let Some(unknown) = sections.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        return Err(ConfigError::new(
            unknown.clone(),
            format!("unknown section, expected one of: {}", SECTIONS.join(", ")),
        ));
    }
    if sections.is_empty() {
        return Err(ConfigError::new(
            "(root)",
            format!(
                "no plugin configured: give at least one of {}",
                SECTIONS.join(", ")
            ),
        ));
    }
    for (name, stage) in SECTIONS.iter().zip(stages.iter_mut()) {
        match sections.get(*name) {
            Some(section) => stage
                .configure(host, section.get().as_bytes())
                .map_err(|e| ConfigError::new(prefixed(name, &e.path), e.reason))?,
            None => stage.unload(host),
        }
    }
    Ok(())
}

fn prefixed(section: &str, path: &str) -> String {
    match path {
        "(root)" => section.to_string(),
        _ if path.starts_with('[') => format!("{section}{path}"),
        _ => format!("{section}.{path}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kea_plugin_sdk::mock::MockHost;
    use serde_json::json;

    fn configured(config: serde_json::Value) -> (Stages<MockHost>, Result<(), ConfigError>) {
        let host = MockHost::new();
        let mut stages = stages::<MockHost>();
        let result = configure(&mut stages, &host, config.to_string().as_bytes());
        (stages, result)
    }

    #[test]
    fn only_the_sections_given_run() {
        let (stages, result) = configured(json!({"audit": {}, "cache": {}}));
        result.unwrap();
        let running: Vec<_> = stages
            .iter()
            .filter(|s| s.new_stream().is_some())
            .map(|s| s.name())
            .collect();
        assert_eq!(running, ["kea-audit", "kea-cache"]);
    }

    #[test]
    fn errors_name_the_section_and_field() {
        let (_, result) = configured(json!({"cache": {"maxEntries": "many"}}));
        let err = result.unwrap_err();
        assert_eq!(err.path, "cache.maxEntries");
        let (_, result) = configured(json!({"auth": []}));
        assert_eq!(result.unwrap_err().path, "auth");
        let (_, result) = configured(json!({"audit": {}, "ratelimit": {}}));
        let err = result.unwrap_err();
        assert_eq!(err.path, "ratelimit");
        assert!(err.reason.contains("audit, auth, validate, cache"), "{err}");
    }

    #[test]
    fn a_configuration_needs_an_object_with_a_section() {
        for bad in [json!({}), json!([{"audit": {}}]), json!("audit")] {
            let (_, result) = configured(bad.clone());
            assert!(result.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_section_dropped_later_is_unloaded() {
        let host = MockHost::new();
        let mut stages = stages::<MockHost>();
        configure(&mut stages, &host, br#"{"audit": {}, "cache": {}}"#).unwrap();
        configure(&mut stages, &host, br#"{"audit": {}}"#).unwrap();
        assert!(stages[3].new_stream().is_none() && stages[3].tick_period().is_none());
        assert!(stages[0].new_stream().is_some());
    }

    #[test]
    fn the_typed_configuration_is_what_the_module_reads() {
        let typed = SuiteConfig {
            audit: Some(AuditConfig::default()),
            cache: Some(CacheConfig::default()),
            ..SuiteConfig::default()
        };
        let (_, result) = configured(serde_json::to_value(&typed).unwrap());
        result.unwrap();
    }
}
