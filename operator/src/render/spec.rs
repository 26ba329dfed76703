//! Checks of an ApiDefinition's spec beyond what its OpenAPI schema can say (weights summing to
//! 100, durations, sizes, provider names), giving the values the renderers use.

use super::Problem;
use crate::crd::{ApiDefinitionSpec, GatewayBindingSpec, Policies};
use kea_plugin_sdk::{ByteSize, ConfigDuration};
use std::time::Duration;
use tracing::instrument;

/// Upstream timeout when the spec gives none (the mission's inner-network limit).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A backend with its effective weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedBackend {
    pub service: String,
    pub port: u16,
    pub version: Option<String>,
    pub weight: u32,
}

/// What the renderers need from a checked spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub backends: Vec<WeightedBackend>,
    pub timeout: Duration,
}

/// Checks `spec` against the gateway it names.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn check(spec: &ApiDefinitionSpec, gateway: &GatewayBindingSpec) -> Result<Checked, Problem> {
    let backends = weights(spec)?;
    let timeout = match &spec.timeout {
        None => DEFAULT_TIMEOUT,
        Some(text) => duration("spec.timeout", text)?,
    };
    if timeout.is_zero() {
        return Err(Problem::invalid(
            "InvalidTimeout",
            "spec.timeout: must be more than 0s",
        ));
    }
    if !spec.base_path.starts_with('/') {
        return Err(Problem::invalid(
            "InvalidBasePath",
            format!("spec.basePath {:?}: must start with '/'", spec.base_path),
        ));
    }
    policies("spec", &spec.policies, gateway)?;
    for (index, operation) in spec.schema.operations.iter().enumerate() {
        policies(
            &format!("spec.schema.operations[{index}]"),
            &operation.policies,
            gateway,
        )?;
    }
    for (index, policy) in spec.operation_policies.iter().enumerate() {
        policies(
            &format!("spec.operationPolicies[{index}]"),
            &policy.policies,
            gateway,
        )?;
    }
    Ok(Checked { backends, timeout })
}

/// Weights in percent: a single backend may omit its weight; otherwise every backend gives one
/// and they sum to exactly 100 (a canary split that does not add up is refused, never guessed).
fn weights(spec: &ApiDefinitionSpec) -> Result<Vec<WeightedBackend>, Problem> {
    if spec.backends.is_empty() {
        return Err(Problem::invalid(
            "NoBackends",
            "spec.backends: at least one backend is needed",
        ));
    }
    let single = spec.backends.len() == 1;
    let mut out = Vec::with_capacity(spec.backends.len());
    for (index, backend) in spec.backends.iter().enumerate() {
        let weight = match (backend.weight, single) {
            (Some(weight), _) => weight,
            (None, true) => 100,
            (None, false) => {
                return Err(Problem::invalid(
                    "WeightsDoNotSumTo100",
                    format!(
                        "spec.backends[{index}].weight: every backend needs a weight when there are several"
                    ),
                ))
            }
        };
        out.push(WeightedBackend {
            service: backend.service.clone(),
            port: backend.port,
            version: backend.version.clone(),
            weight,
        });
    }
    let sum: u32 = out.iter().map(|backend| backend.weight).sum();
    if sum != 100 {
        return Err(Problem::invalid(
            "WeightsDoNotSumTo100",
            format!("spec.backends: weights sum to {sum}, they must sum to 100"),
        ));
    }
    Ok(out)
}

fn policies(at: &str, policies: &Policies, gateway: &GatewayBindingSpec) -> Result<(), Problem> {
    if let Some(auth) = &policies.auth {
        for (index, provider) in auth.providers.iter().enumerate() {
            if !gateway
                .identity_providers
                .iter()
                .any(|known| &known.name == provider)
            {
                return Err(Problem::invalid(
                    "UnknownIdentityProvider",
                    format!(
                        "{at}.auth.providers[{index}]: the gateway has no identity provider {provider:?}"
                    ),
                ));
            }
        }
        if !auth.anonymous && gateway.identity_providers.is_empty() {
            return Err(Problem::invalid(
                "NoIdentityProviders",
                format!("{at}.auth: the gateway has no identityProviders to check tokens with"),
            ));
        }
    }
    if let Some(validation) = &policies.validation {
        if let Some(size) = &validation.max_body_bytes {
            size.parse::<ByteSize>().map_err(|error| {
                Problem::invalid(
                    "InvalidSize",
                    format!("{at}.validation.maxBodyBytes {size:?}: {error}"),
                )
            })?;
        }
    }
    if let Some(cache) = &policies.cache {
        if let Some(ttl) = &cache.default_ttl {
            duration(&format!("{at}.cache.defaultTtl"), ttl)?;
        }
    }
    if let Some(percent) = policies.audit.as_ref().and_then(|audit| audit.sampling_percent) {
        if !(0.0..=100.0).contains(&percent) {
            return Err(Problem::invalid(
                "InvalidSampling",
                format!("{at}.audit.samplingPercent: {percent} is not within 0-100"),
            ));
        }
    }
    Ok(())
}

fn duration(at: &str, text: &str) -> Result<Duration, Problem> {
    text.parse::<ConfigDuration>()
        .map(ConfigDuration::get)
        .map_err(|error| Problem::invalid("InvalidDuration", format!("{at} {text:?}: {error}")))
}
