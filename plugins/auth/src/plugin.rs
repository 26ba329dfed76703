//! The root-level logic: configuration into a shared [`Runtime`].

use crate::config::AuthConfig;
use crate::keystore::Keystore;
use crate::metrics::AuthMetrics;
use crate::sso::flow::SessionCache;
use crate::sso::leases::RefreshLeases;
use crate::stream::Runtime;
use crate::token_cache::TokenCache;
use kea_plugin_sdk::{parse_json, ConfigError, Host, Phase};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

/// How often each worker's root context syncs keys and checks whether a fetch is due.
pub const TICK: Duration = Duration::from_millis(500);

/// Opened sessions remembered per worker.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// Parses and compiles a configuration; errors name the field.
pub fn configure(host: &impl Host, raw: &[u8]) -> Result<Rc<Runtime>, ConfigError> {
    let _phase = Phase::enter("auth.configure");
    let config: AuthConfig = parse_json(raw)?;
    let compiled = config.compile()?;
    let keystore = Keystore::new(&compiled);
    keystore.prepare(host, &compiled);
    crate::split::stage::prepare(host, &compiled.splits);
    let token_cache = RefCell::new(TokenCache::new(compiled.token_cache_entries));
    let refresh_leases = if compiled.sso.is_some() {
        RefreshLeases::prepare(host)
    } else {
        RefreshLeases::default()
    };
    Ok(Rc::new(Runtime {
        config: compiled,
        keystore,
        token_cache,
        metrics: AuthMetrics::define(host),
        native_crypto: Cell::new(true),
        sessions: RefCell::new(SessionCache::new(SESSION_CACHE_ENTRIES)),
        refresh_leases,
    }))
}
