//! The audit plugin's proxy metrics. Envoy shows them as `wasmcustom.<name>` on `/stats` and
//! under their own names on `/stats/prometheus`; all workers add to the same counters.

use crate::buffer::Occupancy;
use kea_plugin_sdk::{Host, Metric};

#[derive(Debug, Clone, Copy, Default)]
pub struct AuditMetrics {
    emitted: Metric,
    sampled_out: Metric,
    sent: Metric,
    batches_sent: Metric,
    send_failures: Metric,
    dropped: Metric,
    buffer_records: Metric,
    buffer_bytes: Metric,
    /// The largest linear memory among the plugin's VMs (`report_vm_memory` on every tick).
    pub vm_memory_bytes: Metric,
}

impl AuditMetrics {
    pub fn define(host: &impl Host) -> Self {
        Self {
            emitted: Metric::counter(host, "kea_audit_records_total"),
            sampled_out: Metric::counter(host, "kea_audit_records_sampled_out_total"),
            sent: Metric::counter(host, "kea_audit_records_sent_total"),
            batches_sent: Metric::counter(host, "kea_audit_batches_sent_total"),
            send_failures: Metric::counter(host, "kea_audit_send_failures_total"),
            dropped: Metric::counter(host, "kea_audit_records_dropped_total"),
            buffer_records: Metric::gauge(host, "kea_audit_buffer_records"),
            buffer_bytes: Metric::gauge(host, "kea_audit_buffer_bytes"),
            vm_memory_bytes: Metric::gauge(host, "kea_audit_vm_memory_bytes"),
        }
    }

    pub fn emitted(&self, host: &impl Host) {
        self.emitted.add(host, 1);
    }

    pub fn sampled_out(&self, host: &impl Host) {
        self.sampled_out.add(host, 1);
    }

    pub fn batch_sent(&self, host: &impl Host, records: usize) {
        self.batches_sent.add(host, 1);
        self.sent.add(host, records as i64);
    }

    pub fn send_failure(&self, host: &impl Host) {
        self.send_failures.add(host, 1);
    }

    pub fn dropped(&self, host: &impl Host, records: u64) {
        self.dropped.add(host, records as i64);
    }

    pub fn report_occupancy(&self, host: &impl Host, occupancy: Occupancy) {
        self.buffer_records.set(host, occupancy.records);
        self.buffer_bytes.set(host, occupancy.bytes);
    }
}
