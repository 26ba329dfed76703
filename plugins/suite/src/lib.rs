//! KEA's combined module, `dist/kea.wasm`: the audit, auth, validate and cache plugins as stages
//! of one HTTP context per request, in the gateway's chain order (audit sees every request as it
//! arrived, auth decides before validation, and the cache only serves or stores what was allowed
//! and valid). A gateway running all four pays the proxy-wasm crossing once per callback instead
//! of four times. Its configuration is one object whose sections are the plugins' own
//! configurations ([`SuiteConfig`]); a plugin without a section is not run.

pub mod config;

#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod wasm;

pub use config::{configure, stages, SuiteConfig, SECTIONS};
