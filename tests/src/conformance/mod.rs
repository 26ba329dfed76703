//! Is an object KEA writes accepted by a real cluster? Checks one object against the real,
//! vendored Istio and Gateway API CRDs (`manifests/third-party/`) the way an up-to-date API
//! server and istiod would: pruning, defaulting, the OpenAPI schema, the CRDs' CEL rules
//! (`x-kubernetes-validations`, which the 1.20 test API server ignores) and istiod's validating
//! webhook.

pub mod istio;

use std::fmt;

/// One reason a real cluster would refuse (or silently change) an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where in the object, as a JSON path (`spec.rules[0].timeouts.request`).
    pub path: String,
    /// Why, in the words of the rule that refuses it.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}
