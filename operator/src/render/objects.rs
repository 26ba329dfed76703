//! Kubernetes objects the operator writes: a gateway's Istio `WasmPlugin`s (one for the combined
//! module, or one per plugin), an Istio `VirtualService` and/or Gateway API `HTTPRoute` per API
//! with its weighted backends, and a ConfigMap per API holding its compiled bundle.

use super::plugins::{Module, Plugin};
use super::spec::{Checked, WeightedBackend};
use super::targets::{gateway_api_duration, http_route_hostnames, RouteTargets};
use super::Key;
use crate::crd::{ApiDefinitionSpec, GatewayBindingSpec, PluginSource};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kea_auth::split::config::{BACKEND_HEADER, MIRROR_HEADER};
use kea_schema::Bundle;
use serde_json::{json, Value};
use std::time::Duration;
use tracing::instrument;

/// Label on everything the operator writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kea-operator");
/// Label naming the GatewayBinding an object belongs to.
pub const GATEWAY_LABEL: &str = "kea.dev/gateway";
/// Label naming the ApiDefinition an object belongs to.
pub const API_LABEL: &str = "kea.dev/api";
/// Label marking bundle ConfigMaps (the bundle endpoint serves exactly these).
pub const BUNDLE_LABEL: &str = "kea.dev/bundle";
/// Key of the bundle in its ConfigMap.
pub const BUNDLE_KEY: &str = "bundle.json";
/// Key of the API's OpenAPI document (as served on the gateway) in the same ConfigMap.
pub const DOCUMENT_KEY: &str = "openapi.json";
/// Annotation holding a bundle's sha256 (the ETag of the bundle endpoint).
pub const BUNDLE_SHA_ANNOTATION: &str = "kea.dev/bundle-sha256";

pub const WASM_PLUGIN_API_VERSION: &str = "extensions.istio.io/v1alpha1";
pub const VIRTUAL_SERVICE_API_VERSION: &str = "networking.istio.io/v1beta1";
pub const HTTP_ROUTE_API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// A module's phase and priority in Istio's chain. The separate modules in chain order: audit
/// (AUTHN, first, so it also records requests auth rejects) → auth (AUTHN) → validate (AUTHZ) →
/// cache (STATS, last before the router, so only authorised, valid requests hit it). The combined
/// module runs that chain itself, in audit's place.
pub fn placement(module: Module) -> (&'static str, i32) {
    match module {
        Module::Combined | Module::Plugin(Plugin::Audit) => ("AUTHN", 1000),
        Module::Plugin(Plugin::Auth) => ("AUTHN", 100),
        Module::Plugin(Plugin::Validate) => ("AUTHZ", 100),
        Module::Plugin(Plugin::Cache) => ("STATS", 100),
    }
}

/// Where `module` is published: the binding's `spec.plugins.module` or `spec.plugins.<plugin>`
/// (`url` and `sha256`), else `default_url` with `{plugin}` replaced by the module's name (pinned
/// by `digests`, by module name).
pub fn plugin_source(
    gateway: &GatewayBindingSpec,
    module: Module,
    default_url: Option<&str>,
    digests: &std::collections::BTreeMap<String, String>,
) -> Option<PluginSource> {
    let sources = &gateway.plugins;
    let own = match module {
        Module::Combined => sources.module.as_ref().map(|settings| PluginSource {
            url: settings.url.clone(),
            sha256: settings.sha256.clone(),
        }),
        Module::Plugin(plugin) => plugin.settings(sources).and_then(|settings| {
            Some(PluginSource {
                url: settings.url.clone()?,
                sha256: settings.sha256.clone(),
            })
        }),
    };
    own.or_else(|| {
        default_url.map(|url| PluginSource {
            url: url.replace("{plugin}", module.name()),
            sha256: digests.get(module.name()).cloned(),
        })
    })
}

/// Name of a gateway's WasmPlugin for `module`: `kea-<gateway>-<module>` (`kea-edge-kea` for the
/// combined module, `kea-edge-auth`...). Every name ends in its module, so no gateway's name can
/// equal another's (`kea-<gateway>` alone would: gateway `edge-auth` against `edge`'s auth).
pub fn wasm_plugin_name(gateway: &str, module: Module) -> String {
    format!("kea-{gateway}-{}", module.name())
}

/// Name of an API's route objects and bundle ConfigMap.
pub fn api_object_name(api: &str) -> String {
    format!("kea-{api}")
}

fn metadata(name: &str, namespace: &str, labels: Value, owner: &OwnerReference) -> Value {
    json!({
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner],
    })
}

/// The WasmPlugins of a gateway: one per module it loads (`PluginConfigs::modules`), with its
/// configuration.
#[instrument(level = "debug", skip_all, fields(gateway = %gateway_key))]
pub fn wasm_plugins(
    gateway_key: &Key,
    gateway: &GatewayBindingSpec,
    modules: &[(Module, Value)],
    sources: &dyn Fn(Module) -> PluginSource,
    owner: &OwnerReference,
) -> Vec<(Module, Value)> {
    modules
        .iter()
        .map(|&(module, ref config)| {
            let (phase, priority) = placement(module);
            let source = sources(module);
            let mut spec = json!({
                "url": source.url,
                "phase": phase,
                "priority": priority,
                "failStrategy": "FAIL_CLOSE",
                "type": "HTTP",
                "pluginConfig": config,
            });
            if let Some(map) = spec.as_object_mut() {
                if let Some(sha256) = source.sha256 {
                    map.insert("sha256".into(), json!(sha256));
                }
                if !gateway.selector.is_empty() {
                    map.insert("selector".into(), json!({"matchLabels": gateway.selector}));
                }
                if !gateway.target_refs.is_empty() {
                    let refs: Vec<Value> = gateway
                        .target_refs
                        .iter()
                        .map(|target| {
                            json!({
                                "group": target.group.clone().unwrap_or_else(|| "gateway.networking.k8s.io".into()),
                                "kind": target.kind.clone().unwrap_or_else(|| "Gateway".into()),
                                "name": target.name,
                            })
                        })
                        .collect();
                    map.insert("targetRefs".into(), Value::Array(refs));
                }
            }
            let labels = json!({MANAGED_BY.0: MANAGED_BY.1, GATEWAY_LABEL: gateway_key.name});
            let name = wasm_plugin_name(&gateway_key.name, module);
            (
                module,
                json!({
                    "apiVersion": WASM_PLUGIN_API_VERSION,
                    "kind": "WasmPlugin",
                    "metadata": metadata(&name, &gateway_key.namespace, labels, owner),
                    "spec": spec,
                }),
            )
        })
        .collect()
}

fn service_host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc.cluster.local")
}

/// Istio's duration format (`5s`, `1500ms`); never rounds a positive duration down to `0s`,
/// which would mean "no timeout".
pub fn istio_duration(duration: Duration) -> String {
    let millis = duration.as_nanos().div_ceil(1_000_000).max(1);
    if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}

/// Route matches for a base path by whole segments: `/pets` serves `/pets` and `/pets/...`, not
/// `/petshop` (the plugins' rules match the same way).
pub fn base_path_matches(base_path: &str) -> Value {
    if base_path == "/" || base_path.ends_with('/') {
        json!([{"uri": {"prefix": base_path}}])
    } else {
        json!([{"uri": {"exact": base_path}}, {"uri": {"prefix": format!("{base_path}/")}}])
    }
}

/// The routes of an API in order (first match wins): with marks, per backend key `k` a route for
/// requests marked `x-kea-backend: k` and `x-kea-mirror` (to `k`, mirrored) and one for requests
/// marked `k` (to `k`); then the fallback, weighted across all backends with the mirror sampled
/// at its percent — what a request without marks (a gateway without the splitter) gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteShape<'a> {
    /// Route name suffix (`""` for the fallback, `-<k>`, `-<k>-mirror`).
    pub suffix: String,
    /// The key matched in `x-kea-backend`, if any.
    pub key: Option<&'a str>,
    /// Whether `x-kea-mirror` is matched.
    pub mirror_mark: bool,
    /// The backends routed to (all of them on the fallback).
    pub backends: Vec<&'a WeightedBackend>,
    /// Mirror percent in hundredths (`10000` = all), when the route mirrors.
    pub mirror_hundredths: Option<u32>,
}

/// The routes of `checked`, in match order.
pub fn route_shapes(checked: &Checked) -> Vec<RouteShape<'_>> {
    let mut shapes = Vec::with_capacity(checked.route_count());
    let mirror = checked.split.mirror.as_ref();
    if checked.split.marks {
        for backend in &checked.backends {
            if mirror.is_some() {
                shapes.push(RouteShape {
                    suffix: format!("-{}-mirror", backend.key),
                    key: Some(&backend.key),
                    mirror_mark: true,
                    backends: vec![backend],
                    mirror_hundredths: Some(10_000),
                });
            }
            shapes.push(RouteShape {
                suffix: format!("-{}", backend.key),
                key: Some(&backend.key),
                mirror_mark: false,
                backends: vec![backend],
                mirror_hundredths: None,
            });
        }
    }
    shapes.push(RouteShape {
        suffix: String::new(),
        key: None,
        mirror_mark: false,
        backends: checked.backends.iter().collect(),
        mirror_hundredths: mirror.map(|mirror| mirror.hundredths),
    });
    shapes
}

/// The header matches of a route shape as `(name, exact value)`.
pub fn mark_headers(shape: &RouteShape<'_>) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(key) = shape.key {
        headers.push((BACKEND_HEADER, key.to_string()));
    }
    if shape.mirror_mark {
        headers.push((MIRROR_HEADER, "1".to_string()));
    }
    headers
}

/// The API's VirtualService: the routes of [`route_shapes`] for its base path, each with the
/// timeout and the backends' `x-kea-backend-version`. Written whole with server-side apply, so a
/// weight change replaces the whole route set at once.
#[instrument(level = "debug", skip_all, fields(api = %api_key))]
pub fn virtual_service(
    api_key: &Key,
    spec: &ApiDefinitionSpec,
    checked: &Checked,
    gateways: &[String],
    owner: &OwnerReference,
) -> Value {
    let http: Vec<Value> = route_shapes(checked)
        .iter()
        .map(|shape| {
            let destinations: Vec<Value> = shape
                .backends
                .iter()
                .map(|backend| {
                    let weight = if shape.key.is_some() { 100 } else { backend.weight };
                    let mut route = json!({
                        "destination": {"host": service_host(&backend.service, &api_key.namespace), "port": {"number": backend.port}},
                        "weight": weight,
                    });
                    if let (Some(version), Some(map)) = (&backend.version, route.as_object_mut()) {
                        map.insert("headers".into(), json!({"response": {"set": {"x-kea-backend-version": version}}}));
                    }
                    route
                })
                .collect();
            let headers: serde_json::Map<String, Value> = mark_headers(shape)
                .into_iter()
                .map(|(name, value)| (name.to_string(), json!({"exact": value})))
                .collect();
            let mut matches = base_path_matches(&spec.base_path);
            if let (false, Some(list)) = (headers.is_empty(), matches.as_array_mut()) {
                for entry in list.iter_mut().filter_map(Value::as_object_mut) {
                    entry.insert("headers".into(), Value::Object(headers.clone()));
                }
            }
            let mut route = json!({
                "name": format!("{}{}", api_key.name, shape.suffix),
                "match": matches,
                "route": destinations,
                "timeout": istio_duration(checked.timeout),
            });
            if let (Some(mirror), Some(hundredths), Some(map)) =
                (&checked.split.mirror, shape.mirror_hundredths, route.as_object_mut())
            {
                map.insert(
                    "mirror".into(),
                    json!({"host": service_host(&mirror.service, &api_key.namespace), "port": {"number": mirror.port}}),
                );
                map.insert("mirrorPercentage".into(), json!({"value": f64::from(hundredths) / 100.0}));
            }
            route
        })
        .collect();
    let mut vs_spec = json!({"hosts": spec.hosts, "http": http});
    if let (false, Some(map)) = (gateways.is_empty(), vs_spec.as_object_mut()) {
        map.insert("gateways".into(), json!(gateways));
    }
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, API_LABEL: api_key.name});
    json!({
        "apiVersion": VIRTUAL_SERVICE_API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata(&api_object_name(&api_key.name), &api_key.namespace, labels, owner),
        "spec": vs_spec,
    })
}

/// The API's HTTPRoute (Gateway API): the same routes as the VirtualService, one rule each (Gateway
/// API orders them by specificity: more header matches first, as [`route_shapes`] lists them),
/// the backend's version in `x-kea-backend-version` on its responses, the timeout in Gateway API's
/// duration format, the mirror as a `RequestMirror` filter.
#[instrument(level = "debug", skip_all, fields(api = %api_key))]
pub fn http_route(
    api_key: &Key,
    spec: &ApiDefinitionSpec,
    checked: &Checked,
    parents: &[crate::crd::ParentRef],
    owner: &OwnerReference,
) -> Value {
    let parent_refs: Vec<Value> = parents
        .iter()
        .map(|parent| {
            let mut value = json!({"name": parent.name});
            if let Some(map) = value.as_object_mut() {
                if let Some(namespace) = &parent.namespace {
                    map.insert("namespace".into(), json!(namespace));
                }
                if let Some(section) = &parent.section_name {
                    map.insert("sectionName".into(), json!(section));
                }
            }
            value
        })
        .collect();
    let rules: Vec<Value> = route_shapes(checked)
        .iter()
        .map(|shape| {
            let backend_refs: Vec<Value> = shape
                .backends
                .iter()
                .map(|backend| {
                    let weight = if shape.key.is_some() { 100 } else { backend.weight };
                    let mut reference = json!({"name": backend.service, "port": backend.port, "weight": weight});
                    if let (Some(version), Some(map)) = (&backend.version, reference.as_object_mut()) {
                        map.insert(
                            "filters".into(),
                            json!([{
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {"set": [{"name": "x-kea-backend-version", "value": version}]},
                            }]),
                        );
                    }
                    reference
                })
                .collect();
            let mut matched = json!({"path": {"type": "PathPrefix", "value": spec.base_path}});
            let headers: Vec<Value> = mark_headers(shape)
                .into_iter()
                .map(|(name, value)| json!({"type": "Exact", "name": name, "value": value}))
                .collect();
            if let (false, Some(map)) = (headers.is_empty(), matched.as_object_mut()) {
                map.insert("headers".into(), json!(headers));
            }
            let mut rule = json!({"matches": [matched], "backendRefs": backend_refs});
            let Some(map) = rule.as_object_mut() else {
                return rule;
            };
            if let (Some(mirror), Some(hundredths)) = (&checked.split.mirror, shape.mirror_hundredths) {
                let mut request_mirror = json!({"backendRef": {"name": mirror.service, "port": mirror.port}});
                // All requests when no share is given (also what CRDs before `percent` take).
                if let (true, Some(fields)) = (hundredths < 10_000, request_mirror.as_object_mut()) {
                    if hundredths % 100 == 0 {
                        fields.insert("percent".into(), json!(hundredths / 100));
                    } else {
                        fields.insert("fraction".into(), json!({"numerator": hundredths, "denominator": 10_000}));
                    }
                }
                map.insert(
                    "filters".into(),
                    json!([{"type": "RequestMirror", "requestMirror": request_mirror}]),
                );
            }
            // The spec checks refuse a timeout Gateway API cannot write, so this is always present.
            if let Some(timeout) = gateway_api_duration(checked.timeout) {
                map.insert("timeouts".into(), json!({"request": timeout}));
            }
            rule
        })
        .collect();
    let mut route_spec = json!({"parentRefs": parent_refs, "rules": rules});
    let hostnames = http_route_hostnames(&spec.hosts);
    if let (false, Some(map)) = (hostnames.is_empty(), route_spec.as_object_mut()) {
        map.insert("hostnames".into(), json!(hostnames));
    }
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, API_LABEL: api_key.name});
    json!({
        "apiVersion": HTTP_ROUTE_API_VERSION,
        "kind": "HTTPRoute",
        "metadata": metadata(&api_object_name(&api_key.name), &api_key.namespace, labels, owner),
        "spec": route_spec,
    })
}

/// The API's route objects for the binding's targets (`targets`): a VirtualService, an HTTPRoute,
/// both, or none (a standalone gateway routes in its own Envoy configuration).
pub fn routes(
    api_key: &Key,
    spec: &ApiDefinitionSpec,
    checked: &Checked,
    targets: &RouteTargets,
    owner: &OwnerReference,
) -> Vec<Value> {
    let mut routes = Vec::new();
    if let Some(gateways) = &targets.virtual_service {
        routes.push(virtual_service(api_key, spec, checked, gateways, owner));
    }
    if let Some(parents) = &targets.http_route {
        routes.push(http_route(api_key, spec, checked, parents, owner));
    }
    routes
}

/// The ConfigMap holding an API's compiled bundle (what the bundle endpoint serves) and its
/// OpenAPI document (what `/docs/` serves).
#[instrument(level = "debug", skip_all, fields(api = %api_key))]
pub fn bundle_config_map(api_key: &Key, bundle: &Bundle, document: &Value, owner: &OwnerReference) -> Value {
    let text = String::from_utf8_lossy(&bundle.to_json()).into_owned();
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, API_LABEL: api_key.name, BUNDLE_LABEL: "true"});
    let mut metadata = metadata(&api_object_name(&api_key.name), &api_key.namespace, labels, owner);
    if let Some(map) = metadata.as_object_mut() {
        map.insert(
            "annotations".into(),
            json!({BUNDLE_SHA_ANNOTATION: bundle.sha256}),
        );
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {BUNDLE_KEY: text, DOCUMENT_KEY: document.to_string()},
    })
}

/// The docs route of a gateway: `docsHost` → the operator's HTTP endpoint.
pub fn docs_virtual_service(
    gateway_key: &Key,
    docs_host: &str,
    operator_host: &str,
    operator_port: u16,
    gateways: &[String],
    owner: &OwnerReference,
) -> Value {
    let labels = json!({MANAGED_BY.0: MANAGED_BY.1, GATEWAY_LABEL: gateway_key.name});
    let mut spec = json!({
        "hosts": [docs_host],
        "http": [{
            "name": "docs",
            "match": [{"uri": {"prefix": "/docs/"}}, {"uri": {"exact": "/docs"}}],
            "route": [{"destination": {"host": operator_host, "port": {"number": operator_port}}, "weight": 100}],
            "timeout": "5s",
        }],
    });
    if let (false, Some(map)) = (gateways.is_empty(), spec.as_object_mut()) {
        map.insert("gateways".into(), json!(gateways));
    }
    json!({
        "apiVersion": VIRTUAL_SERVICE_API_VERSION,
        "kind": "VirtualService",
        "metadata": metadata(&format!("kea-{}-docs", gateway_key.name), &gateway_key.namespace, labels, owner),
        "spec": spec,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::crd::{Backend, Mirror};
    use crate::render::spec::{self, SplitPlan};

    /// pets: v1 90%, v2 10%, optionally mirrored to `shadow`.
    fn pets(mirror: Option<f64>) -> (ApiDefinitionSpec, Checked) {
        let backend = |version: &str, weight| Backend {
            service: format!("pets-{version}"),
            port: 8080,
            version: Some(version.into()),
            weight: Some(weight),
        };
        let spec = ApiDefinitionSpec {
            hosts: vec!["pets.example.com".into()],
            base_path: "/pets".into(),
            backends: vec![backend("v1", 90), backend("v2", 10)],
            mirror: mirror.map(|percent| Mirror {
                service: "shadow".into(),
                port: 9090,
                percent,
            }),
            ..ApiDefinitionSpec::default()
        };
        let (backends, split) = spec::split(&spec).unwrap();
        let checked = Checked {
            backends,
            timeout: Duration::from_secs(5),
            split,
        };
        (spec, checked)
    }

    fn key() -> Key {
        Key::new("shop", "pets")
    }

    fn destination(version: &str, weight: u32) -> Value {
        json!({"destination": {"host": format!("pets-{version}.shop.svc.cluster.local"), "port": {"number": 8080}},
               "weight": weight, "headers": {"response": {"set": {"x-kea-backend-version": version}}}})
    }

    fn vs_match(headers: Value) -> Value {
        json!([{"uri": {"exact": "/pets"}, "headers": headers}, {"uri": {"prefix": "/pets/"}, "headers": headers}])
    }

    #[test]
    fn an_exact_split_is_a_marked_route_per_key_then_the_weighted_one() {
        let (spec, checked) = pets(None);
        let vs = virtual_service(&key(), &spec, &checked, &[], &OwnerReference::default());
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"name": "pets-v1", "match": vs_match(json!({"x-kea-backend": {"exact": "v1"}})),
                 "route": [destination("v1", 100)], "timeout": "5s"},
                {"name": "pets-v2", "match": vs_match(json!({"x-kea-backend": {"exact": "v2"}})),
                 "route": [destination("v2", 100)], "timeout": "5s"},
                {"name": "pets", "match": base_path_matches("/pets"),
                 "route": [destination("v1", 90), destination("v2", 10)], "timeout": "5s"},
            ])
        );
        // Random: today's single weighted route.
        let random = Checked {
            split: SplitPlan::default(),
            ..checked
        };
        let vs = virtual_service(&key(), &spec, &random, &[], &OwnerReference::default());
        assert_eq!(vs["spec"]["http"].as_array().unwrap().len(), 1);
        assert_eq!(vs["spec"]["http"][0]["name"], "pets");
    }

    #[test]
    fn a_mirrored_split_mirrors_all_marked_requests_and_samples_the_fallback() {
        let (spec, checked) = pets(Some(2.5));
        let vs = virtual_service(&key(), &spec, &checked, &[], &OwnerReference::default());
        let mirror = json!({"host": "shadow.shop.svc.cluster.local", "port": {"number": 9090}});
        let marked = |key: &str| json!({"x-kea-backend": {"exact": key}, "x-kea-mirror": {"exact": "1"}});
        assert_eq!(
            vs["spec"]["http"],
            json!([
                {"name": "pets-v1-mirror", "match": vs_match(marked("v1")), "route": [destination("v1", 100)],
                 "mirror": mirror, "mirrorPercentage": {"value": 100.0}, "timeout": "5s"},
                {"name": "pets-v1", "match": vs_match(json!({"x-kea-backend": {"exact": "v1"}})),
                 "route": [destination("v1", 100)], "timeout": "5s"},
                {"name": "pets-v2-mirror", "match": vs_match(marked("v2")), "route": [destination("v2", 100)],
                 "mirror": mirror, "mirrorPercentage": {"value": 100.0}, "timeout": "5s"},
                {"name": "pets-v2", "match": vs_match(json!({"x-kea-backend": {"exact": "v2"}})),
                 "route": [destination("v2", 100)], "timeout": "5s"},
                {"name": "pets", "match": base_path_matches("/pets"),
                 "route": [destination("v1", 90), destination("v2", 10)],
                 "mirror": mirror, "mirrorPercentage": {"value": 2.5}, "timeout": "5s"},
            ])
        );
    }

    fn backend_ref(version: &str, weight: u32) -> Value {
        json!({"name": format!("pets-{version}"), "port": 8080, "weight": weight, "filters": [{
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {"set": [{"name": "x-kea-backend-version", "value": version}]}}]})
    }

    fn path_match(headers: &[(&str, &str)]) -> Value {
        let mut matched = json!({"path": {"type": "PathPrefix", "value": "/pets"}});
        if !headers.is_empty() {
            matched["headers"] = headers
                .iter()
                .map(|(name, value)| json!({"type": "Exact", "name": name, "value": value}))
                .collect();
        }
        json!([matched])
    }

    #[test]
    fn http_route_rules_follow_the_marks_with_request_mirror_filters() {
        let parents = [crate::crd::ParentRef {
            name: "public".into(),
            ..crate::crd::ParentRef::default()
        }];
        let (spec, checked) = pets(None);
        let route = http_route(&key(), &spec, &checked, &parents, &OwnerReference::default());
        assert_eq!(
            route["spec"]["rules"],
            json!([
                {"matches": path_match(&[("x-kea-backend", "v1")]), "backendRefs": [backend_ref("v1", 100)], "timeouts": {"request": "5s"}},
                {"matches": path_match(&[("x-kea-backend", "v2")]), "backendRefs": [backend_ref("v2", 100)], "timeouts": {"request": "5s"}},
                {"matches": path_match(&[]), "backendRefs": [backend_ref("v1", 90), backend_ref("v2", 10)], "timeouts": {"request": "5s"}},
            ])
        );

        let (spec, checked) = pets(Some(2.5));
        let route = http_route(&key(), &spec, &checked, &parents, &OwnerReference::default());
        let rules = route["spec"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 5);
        let all = json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 9090}}}]);
        assert_eq!(
            rules[0],
            json!({"matches": path_match(&[("x-kea-backend", "v1"), ("x-kea-mirror", "1")]),
                   "backendRefs": [backend_ref("v1", 100)], "filters": all, "timeouts": {"request": "5s"}})
        );
        assert!(rules[1].get("filters").is_none(), "{}", rules[1]);
        assert_eq!(
            rules[4]["filters"],
            json!([{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "shadow", "port": 9090},
                    "fraction": {"numerator": 250, "denominator": 10000}}}])
        );
        let (spec, checked) = pets(Some(5.0));
        let route = http_route(&key(), &spec, &checked, &parents, &OwnerReference::default());
        assert_eq!(
            route["spec"]["rules"][4]["filters"][0]["requestMirror"]["percent"],
            5
        );
    }
}
