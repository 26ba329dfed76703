//! Renderers: pure functions from KEA's resources to what the gateway needs — checked API specs,
//! OpenAPI bundles, the four plugins' configurations, Istio/Gateway API objects and (for
//! `kea render`) a whole Envoy configuration. The controllers and `kea render` share them.

pub mod envoy;
pub mod model;
pub mod objects;
pub mod plugins;
pub mod portal;
pub mod schema;
pub mod spec;
pub mod standalone;
pub mod targets;

use crate::crd::condition;

/// Why a resource cannot be served as written: the condition it fails, a CamelCase reason and a
/// message naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Problem {
    pub condition: &'static str,
    pub reason: String,
    pub message: String,
}

impl Problem {
    /// The spec is inconsistent (`Accepted=False`).
    pub fn invalid(reason: &str, message: impl Into<String>) -> Self {
        Self {
            condition: condition::ACCEPTED,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The OpenAPI document does not compile (`SchemaValid=False`).
    pub fn schema(message: impl Into<String>) -> Self {
        Self {
            condition: condition::SCHEMA_VALID,
            reason: "InvalidOpenAPI".into(),
            message: message.into(),
        }
    }
}

/// The order in which APIs are matched, the same in every plugin's rules and in Envoy's routes
/// (first match wins): longer base paths first, then by namespace/name.
pub fn precedence(
    a: (&crate::crd::ApiDefinitionSpec, &Key),
    b: (&crate::crd::ApiDefinitionSpec, &Key),
) -> std::cmp::Ordering {
    b.0.base_path
        .len()
        .cmp(&a.0.base_path.len())
        .then_with(|| a.1.cmp(b.1))
}

/// An object's namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
