//! Status shared by KEA's resources: `observedGeneration` and Kubernetes-style conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types every KEA resource reports.
pub mod condition {
    /// Everything below is true: the gateway serves this resource as written.
    pub const READY: &str = "Ready";
    /// The spec is consistent (weights, references, policies) and was taken into account.
    pub const ACCEPTED: &str = "Accepted";
    /// The OpenAPI schema compiled into a bundle.
    pub const SCHEMA_VALID: &str = "SchemaValid";
    /// The routes (VirtualService / HTTPRoute) are applied.
    pub const ROUTES_READY: &str = "RoutesReady";
    /// The gateway's WasmPlugins carry this resource's rules.
    pub const PLUGINS_READY: &str = "PluginsReady";
    /// The standalone gateway's Pods run the current configuration.
    pub const GATEWAY_READY: &str = "GatewayReady";
}

/// One condition as the reconciler decides it; turned into a Kubernetes [`Condition`] with
/// [`Conditions::merge`], which keeps `lastTransitionTime` when the status does not change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub kind: &'static str,
    pub ok: bool,
    /// CamelCase reason, e.g. `WeightsDoNotSumTo100`.
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn ok(kind: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            ok: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn failed(kind: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            ok: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Builds a condition list from verdicts, keeping the transition times of `previous`.
#[derive(Debug)]
pub struct Conditions;

impl Conditions {
    pub fn merge(previous: &[Condition], verdicts: &[Verdict], generation: Option<i64>) -> Vec<Condition> {
        verdicts
            .iter()
            .map(|verdict| {
                let status = if verdict.ok { "True" } else { "False" };
                let last_transition_time = previous
                    .iter()
                    .find(|old| old.type_ == verdict.kind && old.status == status)
                    .map(|old| old.last_transition_time.clone())
                    .unwrap_or_else(|| Time(Timestamp::now()));
                Condition {
                    type_: verdict.kind.to_string(),
                    status: status.to_string(),
                    reason: verdict.reason.clone(),
                    message: verdict.message.clone(),
                    observed_generation: generation,
                    last_transition_time,
                }
            })
            .collect()
    }

    /// `Ready`: true when every other verdict is; its reason and message are the first failure's.
    pub fn ready(verdicts: &[Verdict], ready_message: &str) -> Verdict {
        match verdicts.iter().find(|verdict| !verdict.ok) {
            Some(failed) => Verdict::failed(condition::READY, &failed.reason, failed.message.clone()),
            None => Verdict::ok(condition::READY, "Ready", ready_message),
        }
    }
}

/// Whether `conditions` hold `kind` with status `True`.
pub fn is_true(conditions: &[Condition], kind: &str) -> bool {
    conditions
        .iter()
        .any(|condition| condition.type_ == kind && condition.status == "True")
}

/// Status common to both resources (flattened into each one's status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Accepted`, `SchemaValid`, `RoutesReady`, `PluginsReady` (API definitions) or
    /// `Ready`, `Accepted`, `PluginsReady` (gateway bindings), each with a reason and a message.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
