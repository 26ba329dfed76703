//! The gateway the operator runs itself (`GatewayBinding.spec.standalone`), for clusters without
//! Istio: Envoy Pods whose listener and clusters — the ones `kea render` writes into a file, from
//! the same renderer — come from the operator over xDS (REST-JSON polling, see the operator's
//! README for the choice), so a change is applied in place: no restart, no dropped request.

use super::envoy::{self, Address, Options};
use super::objects::{GATEWAY_LABEL, MANAGED_BY};
use super::Key;
use crate::crd::{PullPolicy, ResourceName, ServiceType, StandaloneGateway};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use tracing::instrument;

/// Label marking the ConfigMaps that hold a gateway's xDS resources (every replica serves them).
pub const XDS_LABEL: &str = "kea.dev/xds";
/// Keys of the listeners and clusters in that ConfigMap (JSON arrays of Envoy resources).
pub const LISTENERS_KEY: &str = "listeners.json";
pub const CLUSTERS_KEY: &str = "clusters.json";
/// Annotation holding the version of those resources (`version_info` over xDS).
pub const XDS_VERSION_ANNOTATION: &str = "kea.dev/xds-version";
/// Key of the Envoy bootstrap in the gateway's bootstrap ConfigMap.
pub const BOOTSTRAP_KEY: &str = "envoy.json";
/// Annotation on the Pod template: a changed bootstrap rolls the Pods (nothing else does).
pub const BOOTSTRAP_SHA_ANNOTATION: &str = "kea.dev/bootstrap-sha256";
/// The static cluster that reaches the operator's xDS endpoint.
pub const XDS_CLUSTER: &str = "kea-xds";
/// Envoy's own liveness endpoint (`/healthz`), answered by Envoy without any upstream.
pub const HEALTH_PORT: u16 = 15021;
/// Envoy's admin interface, on the Pod's loopback only.
pub const ADMIN_PORT: u16 = 15000;
/// Where the gateway image keeps the plugins.
pub const PLUGINS_DIR: &str = "/kea/plugins";
pub const DEFAULT_PORT: u16 = 8080;
const DEFAULT_REPLICAS: i32 = 2;
const DEFAULT_CONCURRENCY: u32 = 2;
/// How often the Envoys poll the operator for a new configuration.
pub const POLL_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Label selecting a gateway's Pods (with [`GATEWAY_LABEL`]).
pub const APP_LABEL: (&str, &str) = ("app.kubernetes.io/name", "kea-gateway");

/// Name of the gateway's Deployment, Service, PodDisruptionBudget and bootstrap ConfigMap.
pub fn object_name(gateway: &str) -> String {
    format!("kea-gateway-{gateway}")
}

/// Name of the ConfigMap holding the gateway's xDS resources.
pub fn xds_object_name(gateway: &str) -> String {
    format!("kea-gateway-{gateway}-xds")
}

/// What the gateway's Envoys say they are (`node.cluster`): `namespace/name` of the binding.
pub fn node_cluster(gateway: &Key) -> String {
    gateway.to_string()
}

/// The binding a `node.cluster` names.
pub fn gateway_of_node_cluster(node_cluster: &str) -> Option<Key> {
    let (namespace, name) = node_cluster.split_once('/')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then(|| Key::new(namespace, name))
}

/// The listener's address in the Pods.
pub fn listen_address(standalone: &StandaloneGateway) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], standalone.port.unwrap_or(DEFAULT_PORT)))
}

/// The renderer's options for a standalone gateway: plugins from the image unless `options`
/// says otherwise.
pub fn options(standalone: &StandaloneGateway, base: Options) -> Options {
    Options {
        listen: listen_address(standalone),
        admin: SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT)),
        plugins_dir: PLUGINS_DIR.into(),
        ..base
    }
}

/// Listeners and clusters served to a gateway's Envoys, and their version.
#[derive(Debug, Clone, PartialEq)]
pub struct Xds {
    pub listeners: Vec<Value>,
    pub clusters: Vec<Value>,
    pub version: String,
}

impl Xds {
    /// Resources and their version (the sha256 of their JSON, so equal resources have equal
    /// versions).
    pub fn new(listeners: Vec<Value>, clusters: Vec<Value>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(json!([listeners, clusters]).to_string());
        let version = hex(&hasher.finalize())[..16].to_string();
        Self {
            listeners,
            clusters,
            version,
        }
    }

    /// The dynamic part of a bootstrap [`envoy::bootstrap`] rendered: its listeners and clusters,
    /// typed for xDS.
    pub fn from_bootstrap(config: &Value) -> Self {
        let typed = |pointer: &str, type_url: &str| -> Vec<Value> {
            config
                .pointer(pointer)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .map(|item| {
                            let mut typed = Map::new();
                            typed.insert("@type".into(), json!(type_url));
                            if let Some(fields) = item.as_object() {
                                typed.extend(fields.clone());
                            }
                            Value::Object(typed)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Self::new(
            typed("/static_resources/listeners", LISTENER_TYPE),
            typed("/static_resources/clusters", CLUSTER_TYPE),
        )
    }
}

/// Lower-case hex of `bytes` (sha256 digests as Kubernetes objects and OCI registries spell them).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Pods' Envoy bootstrap: admin on loopback, a liveness listener, and listeners and clusters
/// polled from the operator at `xds`.
pub fn envoy_bootstrap(xds: &Address, options: &Options) -> Value {
    let source = json!({
        "resource_api_version": "V3",
        "api_config_source": {
            "api_type": "REST",
            "transport_api_version": "V3",
            "cluster_names": [XDS_CLUSTER],
            "refresh_delay": envoy::duration(POLL_PERIOD),
            "request_timeout": "5s",
        },
    });
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
        "dynamic_resources": {"lds_config": source, "cds_config": source},
        "static_resources": {
            "listeners": [{
                "name": "kea-health",
                "address": {"socket_address": {"address": "0.0.0.0", "port_value": HEALTH_PORT}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "kea_health",
                        "route_config": {"virtual_hosts": [{
                            "name": "health",
                            "domains": ["*"],
                            "routes": [{"match": {"path": "/healthz"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                        }]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }],
            "clusters": [envoy::single_address_cluster(XDS_CLUSTER, xds, None, options)],
        },
    })
}

fn metadata(name: &str, gateway: &Key, owner: &OwnerReference, extra_labels: Value) -> Value {
    let mut labels = json!({MANAGED_BY.0: MANAGED_BY.1, GATEWAY_LABEL: gateway.name});
    if let (Some(labels), Some(extra)) = (labels.as_object_mut(), extra_labels.as_object()) {
        labels.extend(extra.clone());
    }
    json!({"name": name, "namespace": gateway.namespace, "labels": labels, "ownerReferences": [owner]})
}

fn pod_labels(gateway: &Key) -> Value {
    json!({APP_LABEL.0: APP_LABEL.1, GATEWAY_LABEL: gateway.name})
}

/// The ConfigMap every operator replica serves the gateway's xDS resources from.
pub fn xds_config_map(gateway: &Key, xds: &Xds, owner: &OwnerReference) -> Value {
    let mut metadata = metadata(
        &xds_object_name(&gateway.name),
        gateway,
        owner,
        json!({XDS_LABEL: "true"}),
    );
    if let Some(map) = metadata.as_object_mut() {
        map.insert("annotations".into(), json!({XDS_VERSION_ANNOTATION: xds.version}));
    }
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {
            LISTENERS_KEY: Value::Array(xds.listeners.clone()).to_string(),
            CLUSTERS_KEY: Value::Array(xds.clusters.clone()).to_string(),
        },
    })
}

/// The PodDisruptionBudget API: `policy/v1` from Kubernetes 1.21, `policy/v1beta1` before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdbVersion {
    V1,
    V1Beta1,
}

/// The Deployment, Service, PodDisruptionBudget (with more than one replica) and bootstrap
/// ConfigMap of a standalone gateway.
#[instrument(level = "debug", skip_all, fields(gateway = %gateway))]
pub fn objects(
    gateway: &Key,
    standalone: &StandaloneGateway,
    image: &str,
    bootstrap: &Value,
    pdb: PdbVersion,
    owner: &OwnerReference,
) -> Vec<Value> {
    let name = object_name(&gateway.name);
    let bootstrap_text = serde_json::to_string_pretty(bootstrap).unwrap_or_else(|_| bootstrap.to_string());
    let bootstrap_sha = hex(&Sha256::digest(bootstrap_text.as_bytes()));
    let port = standalone.port.unwrap_or(DEFAULT_PORT);
    let replicas = standalone.replicas.unwrap_or(DEFAULT_REPLICAS);
    let pull_policy = match standalone.image_pull_policy {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    };
    let service_type = match standalone.service_type {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let mut objects = vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(&name, gateway, owner, json!({})),
            "data": {BOOTSTRAP_KEY: bootstrap_text},
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(&name, gateway, owner, json!({APP_LABEL.0: APP_LABEL.1})),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": pod_labels(gateway)},
                // A new Pod is Ready (its listener is up) before an old one goes.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": pod_labels(gateway),
                        "annotations": {BOOTSTRAP_SHA_ANNOTATION: bootstrap_sha},
                    },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "enableServiceLinks": false,
                        "terminationGracePeriodSeconds": 30,
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532},
                        "containers": [{
                            "name": "envoy",
                            "image": image,
                            "imagePullPolicy": pull_policy,
                            "args": [
                                "-c", format!("/etc/kea/{BOOTSTRAP_KEY}"),
                                "--service-cluster", node_cluster(gateway),
                                "--service-node", "$(POD_NAME)",
                                "--concurrency", standalone.concurrency.unwrap_or(DEFAULT_CONCURRENCY).to_string(),
                                "--disable-hot-restart",
                                // A listener replaced by a new configuration closes its
                                // connections gradually (`Connection: close` on responses) over
                                // this time; none is cut mid-request.
                                "--drain-time-s", "10",
                                "--log-level", "warning",
                                "--component-log-level", "wasm:info",
                            ],
                            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                            "ports": [
                                // (`protocol` spelled out: server-side apply on 1.20 needs every key of the list)
                                {"name": "http", "containerPort": port, "protocol": "TCP"},
                                {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
                            ],
                            // Ready once the operator's listener is there (it listens on `http`).
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2, "failureThreshold": 2},
                            // Envoy opens its listeners only once every module is fetched and
                            // compiled (seconds for validate.wasm on a busy node): liveness starts
                            // after a startup allowance of up to 2 minutes instead of killing it.
                            "startupProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 2, "failureThreshold": 60},
                            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10, "failureThreshold": 3},
                            // The Service stops sending new connections before Envoy exits.
                            "lifecycle": {"preStop": {"exec": {"command": ["/bin/sleep", "5"]}}},
                            "resources": resources(standalone),
                            "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                            "volumeMounts": [
                                {"name": "bootstrap", "mountPath": "/etc/kea", "readOnly": true},
                                {"name": "tmp", "mountPath": "/tmp"},
                            ],
                        }],
                        "volumes": [
                            {"name": "bootstrap", "configMap": {"name": name}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(&name, gateway, owner, json!({APP_LABEL.0: APP_LABEL.1})),
            "spec": {
                "type": service_type,
                "selector": pod_labels(gateway),
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    ];
    if replicas > 1 {
        let api_version = match pdb {
            PdbVersion::V1 => "policy/v1",
            PdbVersion::V1Beta1 => "policy/v1beta1",
        };
        objects.push(json!({
            "apiVersion": api_version,
            "kind": "PodDisruptionBudget",
            "metadata": metadata(&name, gateway, owner, json!({})),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": pod_labels(gateway)}},
        }));
    }
    objects
}

fn resources(standalone: &StandaloneGateway) -> Value {
    let given = standalone.resources.clone().unwrap_or_default();
    let name = |resource: &ResourceName| match resource {
        ResourceName::Cpu => "cpu",
        ResourceName::Memory => "memory",
    };
    let map = |entries: &std::collections::BTreeMap<ResourceName, String>, defaults: &[(&str, &str)]| {
        let mut out = Map::new();
        for (key, value) in defaults {
            out.insert((*key).into(), json!(value));
        }
        for (resource, quantity) in entries {
            out.insert(name(resource).into(), json!(quantity));
        }
        Value::Object(out)
    };
    let requests_default: &[(&str, &str)] = if given.requests.is_empty() {
        &[("cpu", "100m"), ("memory", "128Mi")]
    } else {
        &[]
    };
    let limits_default: &[(&str, &str)] = if given.limits.is_empty() {
        &[("memory", "512Mi")]
    } else {
        &[]
    };
    json!({
        "requests": map(&given.requests, requests_default),
        "limits": map(&given.limits, limits_default),
    })
}

/// Whether `text` is a Kubernetes quantity (`100m`, `1.5`, `256Mi`, `1e3`), so that a typo is
/// a condition on the binding instead of a Deployment the API server refuses.
pub fn is_quantity(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let digits_end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return false;
    }
    const SUFFIXES: [&str; 17] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "K",
    ];
    if suffix == "K" {
        return false;
    }
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    // Decimal exponent: e3, E-2.
    let Some(exponent) = suffix.strip_prefix(['e', 'E']) else {
        return false;
    };
    let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    !exponent.is_empty() && exponent.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for good in ["100m", "1", "1.5", "256Mi", "2Gi", "1e3", "0.5", "+1", "1k"] {
            assert!(is_quantity(good), "{good}");
        }
        for bad in ["", "abc", "1..2", "Mi", "1MB", "1K", "1e", "one", "1 Mi", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn node_cluster_round_trips() {
        let key = Key::new("shop", "edge");
        assert_eq!(gateway_of_node_cluster(&node_cluster(&key)), Some(key));
        assert_eq!(gateway_of_node_cluster("edge"), None);
        assert_eq!(gateway_of_node_cluster("a/b/c"), None);
    }

    #[test]
    fn xds_resources_are_typed_and_versioned_by_content() {
        let config = json!({"static_resources": {
            "listeners": [{"name": "edge"}],
            "clusters": [{"name": "a"}, {"name": "b"}],
        }});
        let xds = Xds::from_bootstrap(&config);
        assert_eq!(
            xds.listeners,
            vec![json!({"@type": LISTENER_TYPE, "name": "edge"})]
        );
        assert_eq!(xds.clusters.len(), 2);
        assert_eq!(xds.clusters[1]["@type"], CLUSTER_TYPE);
        assert_eq!(xds.version.len(), 16);
        assert_eq!(Xds::from_bootstrap(&config).version, xds.version);
        let other = json!({"static_resources": {"listeners": [{"name": "edge2"}], "clusters": []}});
        assert_ne!(Xds::from_bootstrap(&other).version, xds.version);
    }

    #[test]
    fn one_replica_gets_no_disruption_budget_and_defaults_apply() {
        let key = Key::new("shop", "edge");
        let owner = OwnerReference::default();
        let single = StandaloneGateway {
            replicas: Some(1),
            ..Default::default()
        };
        let objects = objects(&key, &single, "img", &json!({}), PdbVersion::V1, &owner);
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment", "Service"]);
        let two = objects_for_default(&key, &owner);
        let pdb = two.iter().find(|o| o["kind"] == "PodDisruptionBudget").unwrap();
        assert_eq!(pdb["apiVersion"], "policy/v1beta1");
        let deployment = two.iter().find(|o| o["kind"] == "Deployment").unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["resources"]["requests"]["cpu"], "100m");
        assert_eq!(container["resources"]["limits"]["memory"], "512Mi");
        assert_eq!(deployment["spec"]["replicas"], 2);
        assert!(container["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|arg| arg == "shop/edge"));
    }

    fn objects_for_default(key: &Key, owner: &OwnerReference) -> Vec<Value> {
        objects(
            key,
            &StandaloneGateway::default(),
            "img",
            &json!({}),
            PdbVersion::V1Beta1,
            owner,
        )
    }
}
