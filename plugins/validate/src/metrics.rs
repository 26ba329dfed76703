//! The validate plugin's proxy metrics (`wasmcustom.<name>` on `/stats`, `<name>` on
//! `/stats/prometheus`); all workers add to the same counters.

use kea_plugin_sdk::{Host, Metric};

#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateMetrics {
    pub passed: Metric,
    pub rejected: Metric,
    pub reported: Metric,
    pub skipped: Metric,
    pub unavailable: Metric,
    pub responses_invalid: Metric,
    pub bundle_updates: Metric,
    pub bundle_fetch_failures: Metric,
    /// How long the last configuration took to parse and compile (every worker sets it).
    pub configure_ms: Metric,
    /// The VM's linear memory after configuration: what the compiled APIs hold, plus the peak
    /// of compiling them (wasm memory never shrinks).
    pub vm_memory_bytes: Metric,
}

impl ValidateMetrics {
    pub fn define(host: &impl Host) -> Self {
        Self {
            passed: Metric::counter(host, "kea_validate_passed_total"),
            rejected: Metric::counter(host, "kea_validate_rejected_total"),
            reported: Metric::counter(host, "kea_validate_reported_total"),
            skipped: Metric::counter(host, "kea_validate_skipped_total"),
            unavailable: Metric::counter(host, "kea_validate_unavailable_total"),
            responses_invalid: Metric::counter(host, "kea_validate_responses_invalid_total"),
            bundle_updates: Metric::counter(host, "kea_validate_bundle_updates_total"),
            bundle_fetch_failures: Metric::counter(host, "kea_validate_bundle_fetch_failures_total"),
            configure_ms: Metric::gauge(host, "kea_validate_configure_ms"),
            vm_memory_bytes: Metric::gauge(host, "kea_validate_vm_memory_bytes"),
        }
    }
}
