//! Plugin configurations (operator-supplied JSON, checked by the operator and loaded by every
//! proxy worker): `AuthConfig` (providers, inline JWKS, API keys, SSO, rules, claim matchers and
//! their regexes, splits), `CacheConfig`, `ValidateConfig` (inline bundles and documents),
//! `AuditConfig` — each parsed with `kea_plugin_sdk::parse_json` and compiled.
//! The first byte picks the plugin; the rest is the configuration.
//!
//! Property: no panic, and a configuration that parses re-serialises to JSON that parses to an
//! equal configuration; when the first one compiles, the re-parsed one compiles too.
#![no_main]

use kea_plugin_sdk::{parse_json, ConfigError};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

fn round_trip<T, C>(raw: &[u8], compile: impl Fn(&T) -> Result<C, ConfigError>)
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok(config) = parse_json::<T>(raw) else {
        return;
    };
    let compiled = compile(&config).is_ok();
    let json = serde_json::to_vec(&config).expect("a parsed configuration serialises");
    let again: T = parse_json(&json).unwrap_or_else(|e| {
        panic!(
            "re-serialised configuration does not parse ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(again, config, "{}", String::from_utf8_lossy(&json));
    if compiled {
        assert!(
            compile(&again).is_ok(),
            "the re-parsed configuration does not compile"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // Secrets named by environment variable resolve (the auth plugin's HMAC and session keys).
    std::env::set_var("KEA_FUZZ_SECRET", "0123456789abcdef0123456789abcdef-fuzz");
    let Some((&which, raw)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => round_trip::<kea_auth::config::AuthConfig, _>(raw, |c| c.compile()),
        1 => round_trip::<kea_cache::config::CacheConfig, _>(raw, |c| c.compile()),
        2 => round_trip::<kea_validate::config::ValidateConfig, _>(raw, |c| c.compile()),
        _ => round_trip::<kea_audit::config::AuditConfig, _>(raw, |c| c.compile()),
    }
});
