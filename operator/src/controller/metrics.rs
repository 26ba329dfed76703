//! The operator's Prometheus metrics (`/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabel {
    pub controller: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub controller: &'static str,
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by controller and outcome (`ok`, `rejected`, `error`).
    pub reconciles: Family<OutcomeLabel, Counter>,
    /// Reconciles that failed with an error (API server unreachable, conflicts...), retried.
    pub errors: Family<ControllerLabel, Counter>,
    pub duration: Family<ControllerLabel, Histogram>,
    /// Work waiting: API definitions whose current generation is not evaluated yet.
    pub queue_depth: Gauge,
    pub in_flight: Family<ControllerLabel, Gauge>,
    /// 1 while this replica holds the lease.
    pub leader: Gauge,
    /// Objects written with server-side apply (skipped unchanged ones are not counted).
    pub writes: Counter,
    /// Bundle requests by result (`ok`, `not_modified`, `not_found`).
    pub bundle_requests: Family<ResultLabel, Counter>,
    /// xDS requests of standalone gateways by result (`ok`, `not_found`, `bad_request`).
    pub xds_requests: Family<ResultLabel, Counter>,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kea_operator");
        let reconciles = Family::<OutcomeLabel, Counter>::default();
        let errors = Family::<ControllerLabel, Counter>::default();
        let duration = Family::<ControllerLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let queue_depth = Gauge::default();
        let in_flight = Family::<ControllerLabel, Gauge>::default();
        let leader = Gauge::default();
        let writes = Counter::default();
        let bundle_requests = Family::<ResultLabel, Counter>::default();
        let xds_requests = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller and outcome",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and are retried",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            duration.clone(),
        );
        registry.register(
            "queue_depth",
            "API definitions whose current generation is not evaluated yet",
            queue_depth.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now",
            in_flight.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register("writes", "Objects written with server-side apply", writes.clone());
        registry.register(
            "bundle_requests",
            "Bundle endpoint requests by result",
            bundle_requests.clone(),
        );
        registry.register(
            "xds_requests",
            "xDS requests of standalone gateways by result",
            xds_requests.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            queue_depth,
            in_flight,
            leader,
            writes,
            bundle_requests,
            xds_requests,
        }
    }

    /// Records one reconcile's outcome and duration.
    pub fn observe(&self, controller: &'static str, outcome: &'static str, took: Duration) {
        self.reconciles
            .get_or_create(&OutcomeLabel { controller, outcome })
            .inc();
        if outcome == "error" {
            self.errors.get_or_create(&ControllerLabel { controller }).inc();
        }
        self.duration
            .get_or_create(&ControllerLabel { controller })
            .observe(took.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
