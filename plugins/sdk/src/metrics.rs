//! Proxy metrics defined once at configure time and updated by id on the hot path.

use crate::host::{Host, MetricKind};

/// A metric handle. Defining can fail on odd hosts; a failed metric is a no-op rather than an
/// error on the request path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metric {
    id: Option<u32>,
}

impl Metric {
    pub fn define(host: &impl Host, kind: MetricKind, name: &str) -> Self {
        match host.define_metric(kind, name) {
            Ok(id) => Self { id: Some(id) },
            Err(err) => {
                log::warn!("cannot define metric {name}: {err}");
                Self { id: None }
            }
        }
    }

    pub fn counter(host: &impl Host, name: &str) -> Self {
        Self::define(host, MetricKind::Counter, name)
    }

    pub fn gauge(host: &impl Host, name: &str) -> Self {
        Self::define(host, MetricKind::Gauge, name)
    }

    pub fn add(self, host: &impl Host, delta: i64) {
        if let Some(id) = self.id {
            if delta != 0 {
                let _ = host.increment_metric(id, delta);
            }
        }
    }

    /// The proxy's id of this metric, when it was defined.
    pub fn id(self) -> Option<u32> {
        self.id
    }

    pub fn set(self, host: &impl Host, value: u64) {
        if let Some(id) = self.id {
            let _ = host.record_metric(id, value);
        }
    }
}
