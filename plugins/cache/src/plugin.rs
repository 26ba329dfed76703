//! The root-level logic: configuration into a shared [`Runtime`].

use crate::config::CacheConfig;
use crate::metrics::CacheMetrics;
use crate::refresh::{self, Refresher};
use crate::stream::Runtime;
use kea_plugin_sdk::{parse_json, ConfigError, Host, Phase, SlotStore};
use std::rc::Rc;

/// Prefix of the store's shared-data keys.
pub const STORE_PREFIX: &str = "kea.cache";

/// Parses and compiles a configuration; errors name the field.
pub fn configure(host: &impl Host, raw: &[u8]) -> Result<Rc<Runtime>, ConfigError> {
    let _phase = Phase::enter("cache.configure");
    let config: CacheConfig = parse_json(raw)?;
    let compiled = config.compile()?;
    let metrics = CacheMetrics::define(host);
    let store = SlotStore::new(STORE_PREFIX, compiled.max_entries, compiled.max_entry_bytes)
        .with_held_bytes_gauge(metrics.shared_bytes);
    if let Err(err) = refresh::prepare_claims(host) {
        // Claims still work, created on first use (two workers may then both refresh once).
        log::warn!("cache: cannot prepare the refresh claims: {err}");
    }
    Ok(Rc::new(Runtime {
        config: compiled,
        store,
        metrics,
        refresh: Refresher::default(),
    }))
}
