//! The cache plugin's proxy metrics (`wasmcustom.<name>` on `/stats`, `<name>` on
//! `/stats/prometheus`); all workers add to the same counters.

use kea_plugin_sdk::{Host, Metric};

#[derive(Debug, Clone, Copy, Default)]
pub struct CacheMetrics {
    pub hits: Metric,
    pub not_modified: Metric,
    pub misses: Metric,
    pub expired: Metric,
    pub bypass: Metric,
    pub stores: Metric,
    pub stored_bytes: Metric,
    pub evictions: Metric,
    pub too_large: Metric,
    pub purges: Metric,
    pub revalidated: Metric,
    pub stale_served: Metric,
    /// 206 answers from stored responses.
    pub partial: Metric,
    /// Misses answered with what a concurrent request for the same key stored.
    pub collapsed: Metric,
    /// Stale responses served inside their `stale-while-revalidate` window.
    pub stale_while_revalidate: Metric,
    /// Background refreshes that made an entry current again (304 or a new response stored).
    pub background_refresh: Metric,
    /// The largest linear memory among the plugin's VMs (`report_vm_memory` on every tick).
    pub vm_memory_bytes: Metric,
    /// Bytes the store holds in shared data (every worker's writes; bounded by the store size).
    pub shared_bytes: Metric,
}

impl CacheMetrics {
    pub fn define(host: &impl Host) -> Self {
        Self {
            hits: Metric::counter(host, "kea_cache_hits_total"),
            not_modified: Metric::counter(host, "kea_cache_not_modified_total"),
            misses: Metric::counter(host, "kea_cache_misses_total"),
            expired: Metric::counter(host, "kea_cache_expired_total"),
            bypass: Metric::counter(host, "kea_cache_bypass_total"),
            stores: Metric::counter(host, "kea_cache_stores_total"),
            stored_bytes: Metric::counter(host, "kea_cache_stored_bytes_total"),
            evictions: Metric::counter(host, "kea_cache_evictions_total"),
            too_large: Metric::counter(host, "kea_cache_too_large_total"),
            purges: Metric::counter(host, "kea_cache_purges_total"),
            revalidated: Metric::counter(host, "kea_cache_revalidated_total"),
            stale_served: Metric::counter(host, "kea_cache_stale_served_total"),
            partial: Metric::counter(host, "kea_cache_partial_total"),
            collapsed: Metric::counter(host, "kea_cache_collapsed_total"),
            stale_while_revalidate: Metric::counter(host, "kea_cache_stale_while_revalidate_total"),
            background_refresh: Metric::counter(host, "kea_cache_background_refresh_total"),
            vm_memory_bytes: Metric::gauge(host, "kea_cache_vm_memory_bytes"),
            shared_bytes: Metric::gauge(host, "kea_cache_shared_bytes"),
        }
    }
}
