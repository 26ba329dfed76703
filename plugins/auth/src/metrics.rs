//! The auth plugin's proxy metrics (`wasmcustom.<name>` on `/stats`, `<name>` on
//! `/stats/prometheus`); all workers add to the same counters. Denials are counted per reason,
//! one counter each, because proxy-wasm metrics carry no labels.

use kea_plugin_sdk::{Host, Metric};

#[derive(Debug, Clone, Copy, Default)]
pub struct AuthMetrics {
    pub allowed: Metric,
    pub anonymous: Metric,
    pub denied_missing: Metric,
    pub denied_invalid: Metric,
    pub denied_expired: Metric,
    pub denied_forbidden: Metric,
    pub unavailable: Metric,
    pub rejected_paths: Metric,
    pub jwks_fetches: Metric,
    pub jwks_failures: Metric,
    pub kid_refetches: Metric,
    pub token_cache_hits: Metric,
    pub token_cache_misses: Metric,
    pub sso_logins_started: Metric,
    pub sso_logins_completed: Metric,
    pub sso_login_failures: Metric,
    pub sso_refreshes: Metric,
    pub sso_refresh_failures: Metric,
    pub sso_logouts: Metric,
    /// Requests the split stage marked with a backend.
    pub split_marked: Metric,
    /// Requests of a split route left unmarked (CAS conflicts exhausted, shared data failing):
    /// the route's weighted fallback served them.
    pub split_unmarked: Metric,
    pub mirror_marked: Metric,
    /// Requests whose mirror decision failed the same way (not mirrored).
    pub mirror_unmarked: Metric,
    /// The largest linear memory among the plugin's VMs (`report_vm_memory` on every tick).
    pub vm_memory_bytes: Metric,
}

impl AuthMetrics {
    pub fn define(host: &impl Host) -> Self {
        Self {
            allowed: Metric::counter(host, "kea_auth_allowed_total"),
            anonymous: Metric::counter(host, "kea_auth_anonymous_total"),
            denied_missing: Metric::counter(host, "kea_auth_denied_missing_total"),
            denied_invalid: Metric::counter(host, "kea_auth_denied_invalid_total"),
            denied_expired: Metric::counter(host, "kea_auth_denied_expired_total"),
            denied_forbidden: Metric::counter(host, "kea_auth_denied_forbidden_total"),
            unavailable: Metric::counter(host, "kea_auth_unavailable_total"),
            rejected_paths: Metric::counter(host, "kea_auth_rejected_paths_total"),
            jwks_fetches: Metric::counter(host, "kea_auth_jwks_fetches_total"),
            jwks_failures: Metric::counter(host, "kea_auth_jwks_failures_total"),
            kid_refetches: Metric::counter(host, "kea_auth_jwks_kid_refetches_total"),
            token_cache_hits: Metric::counter(host, "kea_auth_token_cache_hits_total"),
            token_cache_misses: Metric::counter(host, "kea_auth_token_cache_misses_total"),
            sso_logins_started: Metric::counter(host, "kea_auth_sso_logins_started_total"),
            sso_logins_completed: Metric::counter(host, "kea_auth_sso_logins_completed_total"),
            sso_login_failures: Metric::counter(host, "kea_auth_sso_login_failures_total"),
            sso_refreshes: Metric::counter(host, "kea_auth_sso_refreshes_total"),
            sso_refresh_failures: Metric::counter(host, "kea_auth_sso_refresh_failures_total"),
            sso_logouts: Metric::counter(host, "kea_auth_sso_logouts_total"),
            split_marked: Metric::counter(host, "kea_auth_split_marked_total"),
            split_unmarked: Metric::counter(host, "kea_auth_split_unmarked_total"),
            mirror_marked: Metric::counter(host, "kea_auth_mirror_marked_total"),
            mirror_unmarked: Metric::counter(host, "kea_auth_mirror_unmarked_total"),
            vm_memory_bytes: Metric::gauge(host, "kea_auth_vm_memory_bytes"),
        }
    }
}
