//! Checks of an ApiDefinition's spec beyond what its OpenAPI schema can say (weights summing to
//! 100, durations, sizes, provider names), giving the values the renderers use.

use super::targets::{self, RouteTargets};
use super::Problem;
use crate::crd::{ApiDefinitionSpec, GatewayBindingSpec, Policies, SplitMode, StickyBy, StickySplit};
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
    /// The value of `x-kea-backend` that routes a request to it: its version, else its Service.
    pub key: String,
}

/// What the renderers need from a checked spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub backends: Vec<WeightedBackend>,
    pub timeout: Duration,
    pub split: SplitPlan,
}

/// How the backends share the requests, and the mirror.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitPlan {
    /// The auth plugin marks every request with its backend's key (`x-kea-backend`) and the ones
    /// to mirror (`x-kea-mirror`); the routes follow the marks. False: the routes' weights and
    /// mirror percentage are sampled at random (`mode: Random`, or one backend and no mirror).
    pub marks: bool,
    pub sticky: Option<StickySplit>,
    pub mirror: Option<MirrorTarget>,
}

/// The mirror of an API, its percent in hundredths (exact: `0.25` is 25).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTarget {
    pub service: String,
    pub port: u16,
    pub hundredths: u32,
}

impl MirrorTarget {
    pub fn percent(&self) -> f64 {
        f64::from(self.hundredths) / 100.0
    }
}

impl Checked {
    /// The HTTPRoute rules (and Envoy and VirtualService routes) the API takes: with marks, per
    /// backend a marked route (and a marked-for-mirroring one), then the weighted fallback.
    pub fn route_count(&self) -> usize {
        route_count(&self.backends, &self.split)
    }
}

fn route_count(backends: &[WeightedBackend], split: &SplitPlan) -> usize {
    match split.marks {
        true => backends.len() * (1 + usize::from(split.mirror.is_some())) + 1,
        false => 1,
    }
}

/// The backends (with keys) and the split of `spec`, checked.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn split(spec: &ApiDefinitionSpec) -> Result<(Vec<WeightedBackend>, SplitPlan), Problem> {
    let backends = weights(spec)?;
    let config = spec.split.clone().unwrap_or_default();
    let mirror = spec.mirror.as_ref().map(mirror).transpose()?;
    let marks = config.mode == SplitMode::Exact && (backends.len() > 1 || mirror.is_some());
    if let Some(sticky) = &config.sticky {
        if config.mode == SplitMode::Random {
            return Err(Problem::invalid(
                "InvalidSticky",
                "spec.split.sticky: sticky backends are picked by the gateway, which needs split.mode: Exact",
            ));
        }
        match (sticky.by, sticky.header.as_deref()) {
            (StickyBy::Header, None) => {
                return Err(Problem::invalid(
                    "InvalidSticky",
                    "spec.split.sticky.header: by: Header needs the header naming the client",
                ))
            }
            (StickyBy::Header, Some(header)) if !is_header_name(header) => {
                return Err(Problem::invalid(
                    "InvalidSticky",
                    format!("spec.split.sticky.header {header:?}: not a header name (letters, digits and !#$%&'*+-.^_`|~)"),
                ))
            }
            (StickyBy::Header, Some(header)) if kea_plugin_sdk::identity::is_kea_header(header) => {
                return Err(Problem::invalid(
                    "InvalidSticky",
                    format!("spec.split.sticky.header {header:?}: x-kea-* headers are set by the gateway, not by clients"),
                ))
            }
            (StickyBy::Principal, Some(_)) => {
                return Err(Problem::invalid(
                    "InvalidSticky",
                    "spec.split.sticky.header: only by: Header names a header",
                ))
            }
            _ => {}
        }
    }
    if marks {
        for (index, backend) in backends.iter().enumerate() {
            let key = &backend.key;
            if key.is_empty() || key.len() > 253 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Problem::invalid(
                    "InvalidBackendKey",
                    format!("spec.backends[{index}]: its key {key:?} (version, else service) is sent as a header value: 1-253 visible ASCII characters"),
                ));
            }
            if let Some(first) = backends
                .iter()
                .position(|other| other.key == *key)
                .filter(|&first| first < index)
            {
                return Err(Problem::invalid(
                    "DuplicateBackendKey",
                    format!("spec.backends[{index}]: key {key:?} (version, else service) is also backends[{first}]'s; exact splitting tells backends apart by key: give each a distinct version"),
                ));
            }
        }
    }
    Ok((
        backends,
        SplitPlan {
            marks,
            sticky: config.sticky.filter(|_| marks),
            mirror,
        },
    ))
}

fn mirror(mirror: &crate::crd::Mirror) -> Result<MirrorTarget, Problem> {
    if mirror.service.is_empty() || mirror.port == 0 {
        return Err(Problem::invalid(
            "InvalidMirror",
            "spec.mirror: give the mirror's service and port",
        ));
    }
    let percent = mirror.percent;
    let hundredths = (percent * 100.0).round();
    if !(percent > 0.0 && percent <= 100.0) || (percent * 100.0 - hundredths).abs() > 1e-6 {
        return Err(Problem::invalid(
            "InvalidMirror",
            format!("spec.mirror.percent {percent}: must be more than 0 and at most 100, with at most two decimals"),
        ));
    }
    Ok(MirrorTarget {
        service: mirror.service.clone(),
        port: mirror.port,
        // 1..=10000 after the check above.
        hundredths: hundredths as u32,
    })
}

/// An HTTP header name (RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks `spec` against the gateway it names and the route objects it will be written as
/// (`routes`: none for `kea render`'s Envoy configuration).
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn check(
    spec: &ApiDefinitionSpec,
    gateway: &GatewayBindingSpec,
    routes: &RouteTargets,
) -> Result<Checked, Problem> {
    let (backends, split) = split(spec)?;
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
    targets::check_base_path(&spec.base_path)?;
    targets::check_hosts("spec.hosts", &spec.hosts, routes)?;
    if routes.http_route.is_some() {
        if backends.len() > targets::GATEWAY_API_MAX_ITEMS {
            return Err(Problem::invalid(
                "TooManyBackends",
                format!(
                    "spec.backends: an HTTPRoute rule holds at most {} backends",
                    targets::GATEWAY_API_MAX_ITEMS
                ),
            ));
        }
        let rules = route_count(&backends, &split);
        if rules > targets::GATEWAY_API_MAX_ITEMS {
            return Err(Problem::invalid(
                "TooManyRules",
                format!(
                    "spec.backends: exact splitting of {} backends{} takes {rules} HTTPRoute rules, an HTTPRoute holds at most {}; use fewer backends, or split.mode: Random",
                    backends.len(),
                    if split.mirror.is_some() { " with a mirror" } else { "" },
                    targets::GATEWAY_API_MAX_ITEMS
                ),
            ));
        }
        if timeout > targets::GATEWAY_API_MAX_DURATION {
            return Err(Problem::invalid(
                "InvalidTimeout",
                "spec.timeout: Gateway API durations end at 99999h59m59s999ms",
            ));
        }
    }
    policies("spec", &spec.policies, gateway)?;
    // Without an auth policy of its own the API gets the gateway's default, else a credential is
    // required: a gateway without any cannot serve it (fail closed, never open).
    let effective = spec
        .policies
        .auth
        .clone()
        .or_else(|| gateway.defaults.auth.clone())
        .unwrap_or_default();
    if !effective.anonymous && credentials(gateway).is_empty() {
        return Err(Problem::invalid(
            "NoIdentityProviders",
            "spec.auth: requests need a credential (no auth policy, and none in the gateway's defaults) but the gateway has no identityProviders; set auth.anonymous: true to serve the API publicly",
        ));
    }
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
    Ok(Checked {
        backends,
        timeout,
        split,
    })
}

/// Checks a GatewayBinding's own spec: how its plugins attach and its default policies.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn check_gateway(gateway: &GatewayBindingSpec) -> Result<(), Problem> {
    match &gateway.standalone {
        Some(standalone) => {
            if !gateway.selector.is_empty() || !gateway.target_refs.is_empty() {
                return Err(Problem::invalid(
                    "InvalidAttachment",
                    "spec.standalone: the operator runs this gateway; give neither spec.selector nor spec.targetRefs",
                ));
            }
            standalone_resources(standalone)?;
        }
        None if gateway.selector.is_empty() == gateway.target_refs.is_empty() => {
            return Err(Problem::invalid(
                "InvalidAttachment",
                "give exactly one of spec.selector and spec.targetRefs (or spec.standalone)",
            ));
        }
        None => {}
    }
    attachment(gateway)?;
    if let Some(docs_host) = &gateway.docs_host {
        let docs = RouteTargets::docs(gateway, "");
        targets::check_hosts("spec.docsHost", std::slice::from_ref(docs_host), &docs).map_err(|problem| {
            Problem {
                message: problem.message.replacen("spec.docsHost[0]", "spec.docsHost", 1),
                ..problem
            }
        })?;
    }
    policies("spec.defaults", &gateway.defaults, gateway)
}

/// What Istio's WasmPlugin takes as an attachment (istiod 1.30 `validatePolicyTargetReference`
/// and `validateWorkloadSelector`, the CRD's CEL rules): targets that are Services, ServiceEntries,
/// Gateways or GatewayClasses, selector labels with a key and no `*`.
fn attachment(gateway: &GatewayBindingSpec) -> Result<(), Problem> {
    const TARGETS: [(&str, &str); 4] = [
        ("", "Service"),
        ("networking.istio.io", "ServiceEntry"),
        ("gateway.networking.k8s.io", "Gateway"),
        ("gateway.networking.k8s.io", "GatewayClass"),
    ];
    for (index, target) in gateway.target_refs.iter().enumerate() {
        let group = target.group.as_deref().unwrap_or("gateway.networking.k8s.io");
        let kind = target.kind.as_deref().unwrap_or("Gateway");
        if !TARGETS.contains(&(group, kind)) {
            return Err(Problem::invalid(
                "InvalidTargetRef",
                format!("spec.targetRefs[{index}]: Istio attaches WasmPlugins to a Service, ServiceEntry (networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io), not {group}/{kind}"),
            ));
        }
    }
    for (key, value) in &gateway.selector {
        if key.is_empty() || key.contains('*') || value.contains('*') {
            return Err(Problem::invalid(
                "InvalidAttachment",
                format!("spec.selector {key:?}: {value:?}: Istio selects workloads by exact labels (a key, no '*')"),
            ));
        }
    }
    Ok(())
}

/// Requests and limits must be Kubernetes quantities: a typo becomes a condition naming the field
/// rather than a Deployment the API server refuses (it still judges requests against limits).
fn standalone_resources(standalone: &crate::crd::StandaloneGateway) -> Result<(), Problem> {
    let Some(resources) = &standalone.resources else {
        return Ok(());
    };
    for (field, entries) in [("requests", &resources.requests), ("limits", &resources.limits)] {
        for (resource, quantity) in entries {
            if !super::standalone::is_quantity(quantity) {
                let name = serde_json::to_value(resource)
                    .ok()
                    .and_then(|value| value.as_str().map(String::from))
                    .unwrap_or_default();
                return Err(Problem::invalid(
                    "InvalidResources",
                    format!("spec.standalone.resources.{field}.{name}: {quantity:?} is not a Kubernetes quantity (e.g. 250m, 256Mi)"),
                ));
            }
        }
    }
    Ok(())
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
            key: backend.version.clone().unwrap_or_else(|| backend.service.clone()),
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

/// Credential names a policy may give: the identity providers, and the providers, API-key sets
/// and single sign-on of the auth plugin's base configuration.
fn credentials(gateway: &GatewayBindingSpec) -> Vec<String> {
    let mut names: Vec<String> = gateway
        .identity_providers
        .iter()
        .map(|provider| provider.name.clone())
        .collect();
    if let Some(base) = gateway
        .plugins
        .auth
        .as_ref()
        .and_then(|auth| auth.config.as_ref())
    {
        let listed = ["providers", "apiKeys"]
            .iter()
            .filter_map(|list| base.get(*list).and_then(|items| items.as_array()))
            .flatten();
        for named in listed.chain(base.get("sso")) {
            if let Some(name) = named.get("name").and_then(|name| name.as_str()) {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn policies(at: &str, policies: &Policies, gateway: &GatewayBindingSpec) -> Result<(), Problem> {
    if let Some(auth) = &policies.auth {
        let known = credentials(gateway);
        for (index, provider) in auth.providers.iter().enumerate() {
            if !known.contains(provider) {
                return Err(Problem::invalid(
                    "UnknownIdentityProvider",
                    format!(
                        "{at}.auth.providers[{index}]: the gateway has no identity provider, API-key set or single sign-on named {provider:?}"
                    ),
                ));
            }
        }
        if !auth.anonymous && known.is_empty() {
            return Err(Problem::invalid(
                "NoIdentityProviders",
                format!("{at}.auth: the gateway has no identityProviders to check tokens with"),
            ));
        }
    }
    if let Some(validation) = &policies.validation {
        if let Some(mode) = validation
            .mode
            .as_deref()
            .filter(|mode| !["enforce", "report", "off"].contains(mode))
        {
            return Err(Problem::invalid(
                "InvalidValidationMode",
                format!("{at}.validation.mode {mode:?}: must be enforce, report or off"),
            ));
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::crd::{AuthPolicy, Backend, IdentityProvider};

    fn spec(weights: &[Option<u32>]) -> ApiDefinitionSpec {
        ApiDefinitionSpec {
            gateway: "edge".into(),
            hosts: vec!["api.example.com".into()],
            base_path: "/v1".into(),
            backends: weights
                .iter()
                .enumerate()
                .map(|(index, weight)| Backend {
                    service: format!("svc-{index}"),
                    port: 80,
                    version: None,
                    weight: *weight,
                })
                .collect(),
            policies: Policies {
                auth: Some(AuthPolicy {
                    anonymous: true,
                    ..AuthPolicy::default()
                }),
                ..Policies::default()
            },
            ..ApiDefinitionSpec::default()
        }
    }

    #[test]
    fn weights_must_sum_to_100() {
        let gateway = GatewayBindingSpec::default();
        let checked = check(&spec(&[None]), &gateway, &RouteTargets::default()).unwrap();
        assert_eq!(checked.backends[0].weight, 100);
        assert_eq!(checked.timeout, DEFAULT_TIMEOUT);
        let split = check(&spec(&[Some(80), Some(20)]), &gateway, &RouteTargets::default()).unwrap();
        assert_eq!(
            split.backends.iter().map(|b| b.weight).collect::<Vec<_>>(),
            [80, 20]
        );
        let problem = check(&spec(&[Some(80), Some(10)]), &gateway, &RouteTargets::default()).unwrap_err();
        assert_eq!(problem.reason, "WeightsDoNotSumTo100");
        assert!(problem.message.contains("sum to 90"), "{problem}");
        let problem = check(&spec(&[Some(100), None]), &gateway, &RouteTargets::default()).unwrap_err();
        assert!(problem.message.contains("backends[1].weight"), "{problem}");
        assert_eq!(
            check(&spec(&[]), &gateway, &RouteTargets::default())
                .unwrap_err()
                .reason,
            "NoBackends"
        );
    }

    #[test]
    fn durations_sizes_and_providers_are_checked_with_their_field() {
        let mut gateway = GatewayBindingSpec::default();
        let mut api = spec(&[None]);
        api.timeout = Some("soon".into());
        let problem = check(&api, &gateway, &RouteTargets::default()).unwrap_err();
        assert!(problem.message.starts_with("spec.timeout"), "{problem}");
        api.timeout = Some("0s".into());
        assert_eq!(
            check(&api, &gateway, &RouteTargets::default())
                .unwrap_err()
                .reason,
            "InvalidTimeout"
        );
        api.timeout = Some("1500ms".into());
        assert_eq!(
            check(&api, &gateway, &RouteTargets::default()).unwrap().timeout,
            Duration::from_millis(1500)
        );

        api.policies.auth = Some(AuthPolicy {
            providers: vec!["corp".into()],
            ..AuthPolicy::default()
        });
        assert_eq!(
            check(&api, &gateway, &RouteTargets::default())
                .unwrap_err()
                .reason,
            "UnknownIdentityProvider"
        );
        gateway.identity_providers.push(IdentityProvider {
            name: "corp".into(),
            ..IdentityProvider::default()
        });
        check(&api, &gateway, &RouteTargets::default()).unwrap();
        api.policies.auth = Some(AuthPolicy::default());
        check(&api, &gateway, &RouteTargets::default()).unwrap();
        gateway.identity_providers.clear();
        assert_eq!(
            check(&api, &gateway, &RouteTargets::default())
                .unwrap_err()
                .reason,
            "NoIdentityProviders"
        );
        api.policies.auth = Some(AuthPolicy {
            anonymous: true,
            ..AuthPolicy::default()
        });
        check(&api, &gateway, &RouteTargets::default()).unwrap();
        // No auth policy: a credential is required, and this gateway has none (fail closed).
        api.policies.auth = None;
        assert_eq!(
            check(&api, &gateway, &RouteTargets::default())
                .unwrap_err()
                .reason,
            "NoIdentityProviders"
        );
        gateway.defaults.auth = Some(AuthPolicy {
            anonymous: true,
            ..AuthPolicy::default()
        });
        check(&api, &gateway, &RouteTargets::default()).unwrap();
    }

    #[test]
    fn what_the_route_targets_cannot_express_is_refused() {
        let gateway = GatewayBindingSpec::default();
        let mut api = spec(&[None]);
        api.hosts = vec!["*".into()];
        let mesh = RouteTargets {
            virtual_service: Some(vec![]),
            http_route: None,
        };
        let bound = RouteTargets {
            virtual_service: Some(vec!["istio-system/ingressgateway".into()]),
            http_route: None,
        };
        let gateway_api = RouteTargets {
            virtual_service: None,
            http_route: Some(vec![]),
        };
        let reason = |api: &ApiDefinitionSpec, routes: &RouteTargets| {
            check(api, &gateway, routes).err().map(|problem| problem.reason)
        };
        assert_eq!(reason(&api, &mesh).as_deref(), Some("WildcardHostOnMesh"));
        assert_eq!(reason(&api, &bound), None);
        assert_eq!(reason(&api, &gateway_api), None);
        assert_eq!(reason(&api, &RouteTargets::default()), None);

        api.base_path = "/a//b".into();
        assert_eq!(reason(&api, &bound).as_deref(), Some("InvalidBasePath"));
        api.base_path = "/pets".into();

        api.timeout = Some("100000h".into());
        assert_eq!(reason(&api, &gateway_api).as_deref(), Some("InvalidTimeout"));
        assert_eq!(reason(&api, &bound), None);
        api.timeout = None;

        let weights: Vec<Option<u32>> = (0..20).map(|i| Some(if i < 10 { 10 } else { 0 })).collect();
        let mut many = spec(&weights);
        many.hosts = vec!["*".into()];
        assert_eq!(reason(&many, &gateway_api).as_deref(), Some("TooManyBackends"));
        assert_eq!(reason(&many, &bound), None);
    }

    #[test]
    fn splits_mirrors_and_stickiness_are_checked_with_a_reason() {
        use crate::crd::{Mirror, Split};
        let gateway = GatewayBindingSpec::default();
        let reason = |api: &ApiDefinitionSpec, routes: &RouteTargets| {
            check(api, &gateway, routes).err().map(|problem| problem.reason)
        };
        let any = RouteTargets::default();
        let mut api = spec(&[Some(90), Some(10)]);
        let checked = check(&api, &gateway, &any).unwrap();
        assert!(checked.split.marks, "Exact by default with several backends");
        assert_eq!(
            checked
                .backends
                .iter()
                .map(|b| b.key.as_str())
                .collect::<Vec<_>>(),
            ["svc-0", "svc-1"],
            "the service names without versions"
        );
        assert!(!check(&spec(&[None]), &gateway, &any).unwrap().split.marks);

        // Keys: distinct, and header values.
        api.backends[1].service = "svc-0".into();
        api.backends[1].port = 81;
        assert_eq!(reason(&api, &any).as_deref(), Some("DuplicateBackendKey"));
        api.backends[1].version = Some("canary".into());
        check(&api, &gateway, &any).unwrap();
        api.backends[1].version = Some("v 2".into());
        assert_eq!(reason(&api, &any).as_deref(), Some("InvalidBackendKey"));
        api.split = Some(Split {
            mode: SplitMode::Random,
            sticky: None,
        });
        check(&api, &gateway, &any).unwrap();
        api.backends[1].version = Some("v2".into());

        // Stickiness needs the gateway's splitter, and a header name when by header.
        let sticky = |by, header: Option<&str>| {
            Some(Split {
                mode: SplitMode::Exact,
                sticky: Some(StickySplit {
                    by,
                    header: header.map(String::from),
                }),
            })
        };
        api.split = sticky(StickyBy::Principal, None);
        assert!(check(&api, &gateway, &any).unwrap().split.sticky.is_some());
        for (by, header) in [
            (StickyBy::Header, None),
            (StickyBy::Header, Some("x session")),
            (StickyBy::Header, Some("X-Kea-Sub")),
            (StickyBy::Principal, Some("x-session")),
        ] {
            api.split = sticky(by, header);
            assert_eq!(reason(&api, &any).as_deref(), Some("InvalidSticky"), "{header:?}");
        }
        api.split = sticky(StickyBy::Header, Some("x-session-id"));
        check(&api, &gateway, &any).unwrap();
        api.split.as_mut().unwrap().mode = SplitMode::Random;
        assert_eq!(reason(&api, &any).as_deref(), Some("InvalidSticky"));
        api.split = None;

        // Mirror: a service, a port, 0 < percent <= 100 with at most two decimals.
        for (percent, ok) in [
            (0.01, true),
            (2.5, true),
            (100.0, true),
            (0.0, false),
            (100.5, false),
            (0.125, false),
            (-1.0, false),
        ] {
            api.mirror = Some(Mirror {
                service: "shadow".into(),
                port: 80,
                percent,
            });
            match check(&api, &gateway, &any) {
                Ok(checked) => {
                    assert!(ok, "{percent}");
                    let mirror = checked.split.mirror.unwrap();
                    assert_eq!(mirror.percent(), percent);
                }
                Err(problem) => assert!(!ok && problem.reason == "InvalidMirror", "{percent}: {problem}"),
            }
        }
        api.mirror = Some(Mirror {
            service: String::new(),
            port: 80,
            percent: 1.0,
        });
        assert_eq!(reason(&api, &any).as_deref(), Some("InvalidMirror"));
        // A single backend with a mirror: the splitter marks the mirrored share exactly.
        let mut single = spec(&[None]);
        single.mirror = Some(Mirror {
            service: "shadow".into(),
            port: 80,
            percent: 10.0,
        });
        let checked = check(&single, &gateway, &any).unwrap();
        assert!(checked.split.marks);
        assert_eq!(checked.route_count(), 3);
    }

    #[test]
    fn an_http_route_holds_at_most_sixteen_rules() {
        use crate::crd::{Mirror, Split};
        let gateway = GatewayBindingSpec::default();
        let gateway_api = RouteTargets {
            virtual_service: None,
            http_route: Some(vec![]),
        };
        let weights = |count: u32| -> Vec<Option<u32>> {
            (0..count)
                .map(|i| Some(if i == 0 { 100 - (count - 1) } else { 1 }))
                .collect()
        };
        check(&spec(&weights(15)), &gateway, &gateway_api).unwrap();
        let mut sixteen = spec(&weights(16));
        let problem = check(&sixteen, &gateway, &gateway_api).unwrap_err();
        assert_eq!(problem.reason, "TooManyRules");
        assert!(problem.message.contains("takes 17 HTTPRoute rules"), "{problem}");
        check(&sixteen, &gateway, &RouteTargets::default()).unwrap();
        sixteen.split = Some(Split {
            mode: SplitMode::Random,
            sticky: None,
        });
        check(&sixteen, &gateway, &gateway_api).unwrap();
        let mut mirrored = spec(&weights(8));
        mirrored.mirror = Some(Mirror {
            service: "shadow".into(),
            port: 80,
            percent: 1.0,
        });
        assert_eq!(
            check(&mirrored, &gateway, &gateway_api).unwrap_err().reason,
            "TooManyRules"
        );
        mirrored.backends.pop();
        mirrored.backends[0].weight = Some(94);
        check(&mirrored, &gateway, &gateway_api).unwrap();
    }

    #[test]
    fn a_docs_host_the_docs_route_cannot_carry_is_refused() {
        let mut gateway = GatewayBindingSpec {
            selector: [("istio".to_string(), "ingressgateway".to_string())].into(),
            docs_host: Some("*".into()),
            ..GatewayBindingSpec::default()
        };
        let problem = check_gateway(&gateway).unwrap_err();
        assert_eq!(problem.reason, "WildcardHostOnMesh");
        assert!(problem.message.starts_with("spec.docsHost \"*\""), "{problem}");
        gateway.docs_host = Some("Docs.Example.com".into());
        assert_eq!(check_gateway(&gateway).unwrap_err().reason, "InvalidHost");
        gateway.docs_host = Some("docs.example.com".into());
        check_gateway(&gateway).unwrap();
    }

    #[test]
    fn attachments_istio_cannot_use_are_refused() {
        let mut gateway = GatewayBindingSpec {
            target_refs: vec![crate::crd::TargetRef {
                name: "public".into(),
                ..crate::crd::TargetRef::default()
            }],
            ..GatewayBindingSpec::default()
        };
        check_gateway(&gateway).unwrap();
        gateway.target_refs[0].kind = Some("HTTPRoute".into());
        assert_eq!(check_gateway(&gateway).unwrap_err().reason, "InvalidTargetRef");
        gateway.target_refs[0].group = Some(String::new());
        gateway.target_refs[0].kind = Some("Service".into());
        check_gateway(&gateway).unwrap();
        let selected = GatewayBindingSpec {
            selector: [("app".to_string(), "gw-*".to_string())].into(),
            ..GatewayBindingSpec::default()
        };
        assert_eq!(check_gateway(&selected).unwrap_err().reason, "InvalidAttachment");
    }
}
