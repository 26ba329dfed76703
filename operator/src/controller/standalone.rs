//! A standalone gateway's I/O (the renderer is `render::standalone`): where its plugins come
//! from (checked in their registry first), the cluster IPs of the Services its configuration
//! names, writing its objects and xDS resources, and reading back how its Pods are doing.

use super::api::Error;
use super::registry::Compiled;
use super::Context;
use crate::crd::{condition, GatewayBinding, PluginSource, StandaloneGateway, StandaloneStatus, Verdict};
use crate::render::envoy::{self, Options, RemoteModule, RoutedApi};
use crate::render::plugins::PluginConfigs;
use crate::render::standalone::{self as render, PdbVersion, Xds};
use crate::render::Key;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ListParams;
use kube::Api;
use serde_json::Value;
use sha2::Digest;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::instrument;

/// Media type of a layer that is the raw `.wasm` module (Istio's and Envoy Gateway's OCI wasm
/// artifact format): its digest is the module's sha256, so Envoy can fetch the blob directly.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.module.wasm.content.layer.v1+wasm";

/// What became of a standalone gateway in this reconcile.
#[derive(Debug)]
pub struct Outcome {
    /// `GatewayReady`, and `PluginsReady`/`RoutesReady` problems that stopped the update.
    pub verdicts: Vec<Verdict>,
    pub status: Option<StandaloneStatus>,
    /// Whether the new configuration was handed to the gateway (else it keeps the previous one).
    pub configured: bool,
}

impl Outcome {
    fn refused(kind: &'static str, reason: &str, message: String) -> Self {
        Self {
            verdicts: vec![Verdict::failed(kind, reason, message)],
            status: None,
            configured: false,
        }
    }
}

/// Renders and writes the gateway of `binding` serving `serving` with `configs`.
#[instrument(level = "debug", skip_all, fields(gateway = %key), err(Display))]
pub async fn reconcile(
    binding: &GatewayBinding,
    key: &Key,
    standalone: &StandaloneGateway,
    configs: &PluginConfigs,
    serving: &[(Key, Arc<Compiled>, bool)],
    owner: &OwnerReference,
    ctx: &Context,
) -> Result<Outcome, Error> {
    let Some(image) = standalone
        .image
        .clone()
        .or_else(|| ctx.settings.gateway_image.clone())
    else {
        return Ok(Outcome::refused(
            condition::GATEWAY_READY,
            "NoGatewayImage",
            "spec.standalone.image: give the gateway image (the operator was started without --gateway-image)".into(),
        ));
    };
    let remote_plugins = match plugin_modules(binding, configs, ctx).await {
        Ok(modules) => modules,
        Err(problem) => {
            return Ok(Outcome::refused(
                condition::PLUGINS_READY,
                &problem.reason,
                format!(
                    "{}; the gateway keeps its previous configuration",
                    problem.message
                ),
            ))
        }
    };
    let routed: Vec<RoutedApi<'_>> = serving
        .iter()
        .map(|(api_key, compiled, _)| RoutedApi {
            key: api_key,
            spec: &compiled.spec,
            checked: &compiled.checked,
        })
        .collect();
    let endpoint = ctx.endpoint(binding);
    let Some((_, xds_address)) = envoy::split_url(&endpoint.url) else {
        return Ok(Outcome::refused(
            condition::GATEWAY_READY,
            "InvalidBundleUrl",
            format!(
                "the operator's address {:?} (spec.bundles.url or --bundle-url) is not an http URL",
                endpoint.url
            ),
        ));
    };
    // The docs portal goes to the operator over the cluster the xDS polls use.
    let docs = binding
        .spec
        .docs_host
        .as_deref()
        .map(|host| crate::render::portal::proxied_routes(host, render::XDS_CLUSTER));
    let base = Options {
        remote_plugins,
        docs,
        ..Options::default()
    };
    let mut options = render::options(standalone, base);
    // The cluster may have no DNS for Service names (and Envoy's resolver may not search its
    // domains): clusters reaching `<service>.<namespace>.svc...` connect to its cluster IP.
    let first = match envoy::bootstrap(key, &routed, configs, &options) {
        Ok(first) => first,
        Err(problem) => {
            return Ok(Outcome::refused(
                problem.condition,
                &problem.reason,
                problem.message,
            ))
        }
    };
    let mut names = service_host_names(&first.config);
    names.push(xds_address.host.clone());
    options.hosts = resolve_services(&names, ctx).await?;
    let rendered = match envoy::bootstrap(key, &routed, configs, &options) {
        Ok(rendered) => rendered,
        Err(problem) => {
            return Ok(Outcome::refused(
                problem.condition,
                &problem.reason,
                problem.message,
            ))
        }
    };
    let xds = Xds::from_bootstrap(&rendered.config);
    make_clusters_first(key, &xds, owner, ctx).await?;
    let bootstrap = render::envoy_bootstrap(&xds_address, &options);
    let pdb = pdb_version(ctx).await;
    let mut wanted = vec![render::xds_config_map(key, &xds, owner)];
    wanted.extend(render::objects(key, standalone, &image, &bootstrap, pdb, owner));
    for object in &wanted {
        match ctx.apply(object).await {
            Ok(_) => {}
            Err(kube::Error::Api(status))
                if (400..500).contains(&status.code) && status.code != 409 && status.code != 429 =>
            {
                let kind = object
                    .pointer("/kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Ok(Outcome::refused(
                    condition::GATEWAY_READY,
                    "ApplyRejected",
                    format!("the API server refused the gateway's {kind}: {}", status.message),
                ));
            }
            Err(error) => return Err(error.into()),
        }
    }
    if standalone.replicas.unwrap_or(2) <= 1 {
        let name = render::object_name(&key.name);
        for version in ["policy/v1", "policy/v1beta1"] {
            ctx.applier
                .delete(version, "PodDisruptionBudget", &key.namespace, &name)
                .await?;
        }
    }
    let (verdict, mut status) = pods_state(key, ctx).await?;
    status.config_version = Some(xds.version);
    Ok(Outcome {
        verdicts: vec![verdict],
        status: Some(status),
        configured: true,
    })
}

/// Envoy polls listeners and clusters separately, so a listener routing to a cluster it does not
/// have yet would answer 503 for up to a poll interval. When `xds` adds clusters, the gateway first
/// gets them next to its current listeners, and the new listeners only after every Pod has polled
/// the clusters (make before break, as xDS asks of a management server).
#[instrument(level = "debug", skip_all, fields(gateway = %key), err(Display))]
async fn make_clusters_first(
    key: &Key,
    xds: &Xds,
    owner: &OwnerReference,
    ctx: &Context,
) -> Result<(), Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let Some(current) = config_maps.get_opt(&render::xds_object_name(&key.name)).await? else {
        return Ok(());
    };
    let parse = |name: &str| -> Vec<Value> {
        current
            .data
            .as_ref()
            .and_then(|data| data.get(name))
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default()
    };
    let (listeners, mut clusters) = (parse(render::LISTENERS_KEY), parse(render::CLUSTERS_KEY));
    let known: Vec<Value> = clusters.iter().map(|cluster| cluster["name"].clone()).collect();
    let added: Vec<&Value> = xds
        .clusters
        .iter()
        .filter(|cluster| !known.contains(&cluster["name"]))
        .collect();
    if added.is_empty() || listeners.is_empty() {
        return Ok(());
    }
    clusters.extend(added.into_iter().cloned());
    let step = Xds::new(listeners, clusters);
    ctx.apply(&render::xds_config_map(key, &step, owner)).await?;
    // Two poll intervals and a margin: every Pod has asked for clusters since.
    tokio::time::sleep(render::POLL_PERIOD * 2 + Duration::from_millis(500)).await;
    Ok(())
}

/// Host names of the rendered clusters that name an in-cluster Service
/// (`<service>.<namespace>.svc[.cluster.local]`).
fn service_host_names(config: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let clusters = config
        .pointer("/static_resources/clusters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for cluster in clusters {
        let endpoints = cluster
            .pointer("/load_assignment/endpoints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for endpoint in endpoints {
            for lb in endpoint
                .get("lb_endpoints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                if let Some(host) = lb
                    .pointer("/endpoint/address/socket_address/address")
                    .and_then(Value::as_str)
                {
                    if service_of_host(host).is_some() && !names.iter().any(|known| known == host) {
                        names.push(host.to_string());
                    }
                }
            }
        }
    }
    names
}

/// `(namespace, service)` of `<service>.<namespace>.svc` or `<service>.<namespace>.svc.cluster.local`.
fn service_of_host(host: &str) -> Option<(String, String)> {
    let host = host.to_ascii_lowercase();
    let rest = host
        .strip_suffix(".svc.cluster.local")
        .or_else(|| host.strip_suffix(".svc"))?;
    let (service, namespace) = rest.split_once('.')?;
    (!service.is_empty() && !namespace.is_empty() && !namespace.contains('.'))
        .then(|| (namespace.to_string(), service.to_string()))
}

/// Cluster IPs of the Services `names` name; names without one (headless, absent) are left to
/// DNS.
#[instrument(level = "debug", skip(ctx), err(Display))]
async fn resolve_services(names: &[String], ctx: &Context) -> Result<BTreeMap<String, IpAddr>, Error> {
    let mut hosts = BTreeMap::new();
    for name in names {
        let Some((namespace, service)) = service_of_host(name) else {
            continue;
        };
        let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
        let ip = services
            .get_opt(&service)
            .await?
            .and_then(|service| service.spec)
            .and_then(|spec| spec.cluster_ip)
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        if let Some(ip) = ip {
            hosts.insert(name.to_ascii_lowercase(), ip);
        }
    }
    Ok(hosts)
}

/// `policy/v1` when the API server serves it (Kubernetes ≥ 1.21), else `policy/v1beta1`.
async fn pdb_version(ctx: &Context) -> PdbVersion {
    *ctx.pdb_version
        .get_or_init(|| async {
            match ctx.client.list_api_group_resources("policy/v1").await {
                Ok(list) if list.resources.iter().any(|r| r.name == "poddisruptionbudgets") => PdbVersion::V1,
                _ => PdbVersion::V1Beta1,
            }
        })
        .await
}

/// A problem with a plugin module, as a condition reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleProblem {
    pub reason: String,
    pub message: String,
}

/// The modules the gateway downloads (by module name): those whose URL is `oci://` or
/// `http(s)://`, each checked in its registry first. Modules without a URL come from the image.
#[instrument(level = "debug", skip_all, err(level = "debug", Debug))]
async fn plugin_modules(
    binding: &GatewayBinding,
    configs: &PluginConfigs,
    ctx: &Context,
) -> Result<BTreeMap<String, RemoteModule>, ModuleProblem> {
    let mut modules = BTreeMap::new();
    for (module, _) in configs.modules() {
        let Some(source) = ctx.source(binding, module) else {
            continue;
        };
        if source.url.starts_with("file://") {
            continue;
        }
        let field = module.field();
        let Some(sha256) = source.sha256.clone() else {
            return Err(ModuleProblem {
                reason: "PluginDigestMissing".into(),
                message: format!(
                    "{field}.sha256: a module downloaded from {} must be pinned by its sha256",
                    source.url
                ),
            });
        };
        let url = match source.url.strip_prefix("oci://") {
            Some(reference) => {
                let reference = OciReference::parse(reference).ok_or_else(|| ModuleProblem {
                    reason: "InvalidPluginUrl".into(),
                    message: format!("{field}.url: {:?} is not oci://HOST/REPOSITORY[:TAG]", source.url),
                })?;
                let plain = ctx.settings.insecure_registry.contains(&reference.host);
                check_artifact(reference.clone(), sha256.clone(), plain)
                    .await
                    .map_err(|problem| ModuleProblem {
                        reason: problem.reason,
                        message: format!("{field} ({}): {}", source.url, problem.message),
                    })?;
                reference.blob_url(&sha256, plain)
            }
            None => source.url.clone(),
        };
        modules.insert(module.name().to_string(), RemoteModule { url, sha256 });
    }
    Ok(modules)
}

/// `HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciReference {
    pub host: String,
    pub repository: String,
    /// A tag or `sha256:...` digest (default `latest`).
    pub reference: String,
}

impl OciReference {
    pub fn parse(text: &str) -> Option<Self> {
        let (host, path) = text.split_once('/')?;
        let (repository, reference) = match path.split_once('@') {
            Some((repository, digest)) => (repository, digest.to_string()),
            None => match path.rsplit_once(':') {
                Some((repository, tag)) if !tag.contains('/') => (repository, tag.to_string()),
                _ => (path, "latest".to_string()),
            },
        };
        let valid = !host.is_empty()
            && !repository.is_empty()
            && !reference.is_empty()
            && repository
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c));
        valid.then(|| Self {
            host: host.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }

    fn base(&self, plain: bool) -> String {
        let scheme = if plain { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.host, self.repository)
    }

    /// The Distribution API URL of a blob of this repository.
    pub fn blob_url(&self, sha256: &str, plain: bool) -> String {
        format!("{}/blobs/sha256:{sha256}", self.base(plain))
    }

    fn manifest_url(&self, plain: bool) -> String {
        format!("{}/manifests/{}", self.base(plain), self.reference)
    }
}

/// Checks that the artifact exists and that its module layer is the module pinned by `sha256`;
/// returns the manifest's own sha256 (hex), which is what Istio checks an `oci://` module against.
/// Blocking HTTP on a worker thread, 5 s at most.
async fn check_artifact(
    reference: OciReference,
    sha256: String,
    plain: bool,
) -> Result<String, ModuleProblem> {
    let url = reference.manifest_url(plain);
    let fetched = tokio::task::spawn_blocking(move || {
        let response = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(5))
            .build()
            .get(&url)
            .set(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
            )
            .call()
            .map_err(|error| match error {
                ureq::Error::Status(status, _) => format!("the registry answered {status} for {url}"),
                ureq::Error::Transport(transport) => format!("cannot reach {url}: {transport}"),
            })?;
        let mut bytes = Vec::new();
        let mut limited = std::io::Read::take(response.into_reader(), 4 * 1024 * 1024);
        std::io::Read::read_to_end(&mut limited, &mut bytes).map_err(|error| format!("reading {url}: {error}"))?;
        let manifest: Value =
            serde_json::from_slice(&bytes).map_err(|error| format!("{url} is not a JSON manifest: {error}"))?;
        let digest = render::hex(&sha2::Sha256::digest(&bytes));
        Ok::<_, String>((manifest, digest))
    })
    .await
    .map_err(|error| ModuleProblem {
        reason: "PluginArtifactUnavailable".into(),
        message: error.to_string(),
    })?;
    let (manifest, digest) = fetched.map_err(|message| ModuleProblem {
        reason: "PluginArtifactUnavailable".into(),
        message,
    })?;
    artifact_matches(&manifest, &sha256)?;
    Ok(digest)
}

/// The `url` and `sha256` an Istio WasmPlugin needs for `source`: for a pinned `oci://` module,
/// the artifact is checked in its registry and `sha256` becomes the manifest's digest (Istio
/// verifies an OCI image by its manifest, not by the module inside).
#[instrument(level = "debug", skip(ctx), err(level = "debug", Debug))]
pub async fn istio_source(
    source: PluginSource,
    field: &str,
    ctx: &Context,
) -> Result<PluginSource, ModuleProblem> {
    let (Some(reference), Some(sha256)) = (source.url.strip_prefix("oci://"), source.sha256.clone()) else {
        return Ok(source);
    };
    let reference = OciReference::parse(reference).ok_or_else(|| ModuleProblem {
        reason: "InvalidPluginUrl".into(),
        message: format!("{field}.url: {:?} is not oci://HOST/REPOSITORY[:TAG]", source.url),
    })?;
    let plain = ctx.settings.insecure_registry.contains(&reference.host);
    let manifest = check_artifact(reference, sha256, plain)
        .await
        .map_err(|problem| ModuleProblem {
            reason: problem.reason,
            message: format!("{field} ({}): {}", source.url, problem.message),
        })?;
    Ok(PluginSource {
        url: source.url,
        sha256: Some(manifest),
    })
}

/// Whether a manifest's wasm layer is the module `sha256` names.
pub fn artifact_matches(manifest: &Value, sha256: &str) -> Result<(), ModuleProblem> {
    let layers = manifest
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wasm: Vec<&Value> = layers
        .iter()
        .filter(|layer| layer.get("mediaType").and_then(Value::as_str) == Some(WASM_LAYER_MEDIA_TYPE))
        .collect();
    let [layer] = wasm.as_slice() else {
        return Err(ModuleProblem {
            reason: "PluginArtifactInvalid".into(),
            message: format!(
                "the artifact has {} layers of type {WASM_LAYER_MEDIA_TYPE} (the module itself); it needs exactly one",
                wasm.len()
            ),
        });
    };
    let digest = layer.get("digest").and_then(Value::as_str).unwrap_or_default();
    if digest != format!("sha256:{sha256}") {
        return Err(ModuleProblem {
            reason: "PluginDigestMismatch".into(),
            message: format!("the artifact's module is {digest}, the pinned sha256 is {sha256}"),
        });
    }
    Ok(())
}

/// `GatewayReady` from the Deployment and its Pods, and the status to report.
#[instrument(level = "debug", skip(ctx), err(Display))]
async fn pods_state(key: &Key, ctx: &Context) -> Result<(Verdict, StandaloneStatus), Error> {
    let name = render::object_name(&key.name);
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let deployment = deployments.get_opt(&name).await?;
    let service = services.get_opt(&name).await?;
    let wanted = deployment
        .as_ref()
        .and_then(|d| d.spec.as_ref())
        .and_then(|spec| spec.replicas)
        .unwrap_or(1);
    let status = deployment
        .as_ref()
        .and_then(|d| d.status.clone())
        .unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let address = service.and_then(|service| {
        let spec = service.spec?;
        let ip = spec.cluster_ip.filter(|ip| ip != "None")?;
        let port = spec.ports?.first()?.port;
        Some(format!("{ip}:{port}"))
    });
    let state = StandaloneStatus {
        service: format!("{}/{name}", key.namespace),
        address,
        ready_replicas: ready,
        replicas: wanted,
        config_version: None,
    };
    let current = status.observed_generation == deployment.as_ref().and_then(|d| d.metadata.generation);
    if current && ready >= wanted && updated >= wanted {
        let verdict = Verdict::ok(
            condition::GATEWAY_READY,
            "Available",
            format!("{ready}/{wanted} gateway Pods ready"),
        );
        return Ok((verdict, state));
    }
    // Why not: the first container of the gateway's Pods that waits or crashes.
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let selector = format!(
        "{}={},{}={}",
        render::APP_LABEL.0,
        render::APP_LABEL.1,
        crate::render::objects::GATEWAY_LABEL,
        key.name
    );
    let waiting = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|pod| {
            let pod_name = pod.metadata.name.clone().unwrap_or_default();
            let statuses = pod.status?.container_statuses?;
            statuses.into_iter().find_map(|container| {
                let waiting = container.state?.waiting?;
                let reason = waiting.reason.unwrap_or_default();
                (reason != "ContainerCreating" && !reason.is_empty()).then(|| {
                    (
                        reason.clone(),
                        format!(
                            "Pod {pod_name}: {reason}: {}",
                            waiting.message.unwrap_or_default()
                        ),
                    )
                })
            })
        })
        .next();
    let verdict = match waiting {
        Some((reason, message)) => Verdict::failed(
            condition::GATEWAY_READY,
            &reason,
            format!("{message}; {ready}/{wanted} Pods ready (the previous Pods keep serving)"),
        ),
        None => Verdict::failed(
            condition::GATEWAY_READY,
            "Progressing",
            format!("{ready}/{wanted} gateway Pods ready, {updated} updated"),
        ),
    };
    Ok((verdict, state))
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
    use serde_json::json;

    #[test]
    fn oci_references() {
        let r = OciReference::parse("10.250.0.1:15000/kea/plugins/auth:0.1.0").unwrap();
        assert_eq!(r.host, "10.250.0.1:15000");
        assert_eq!(r.repository, "kea/plugins/auth");
        assert_eq!(r.reference, "0.1.0");
        assert_eq!(
            r.blob_url("ab", true),
            "http://10.250.0.1:15000/v2/kea/plugins/auth/blobs/sha256:ab"
        );
        let untagged = OciReference::parse("ghcr.io/kea/auth").unwrap();
        assert_eq!(untagged.reference, "latest");
        assert_eq!(
            untagged.manifest_url(false),
            "https://ghcr.io/v2/kea/auth/manifests/latest"
        );
        let pinned = OciReference::parse("r:5000/kea/auth@sha256:00").unwrap();
        assert_eq!(pinned.reference, "sha256:00");
        assert!(OciReference::parse("no-repository").is_none());
        assert!(OciReference::parse("host/Upper:1").is_none());
    }

    #[test]
    fn artifacts_are_checked_by_their_module_layer() {
        let manifest = |digest: &str, media: &str| json!({"schemaVersion": 2, "layers": [{"mediaType": media, "digest": digest, "size": 1}]});
        assert!(artifact_matches(&manifest("sha256:aa", WASM_LAYER_MEDIA_TYPE), "aa").is_ok());
        let wrong = artifact_matches(&manifest("sha256:bb", WASM_LAYER_MEDIA_TYPE), "aa").unwrap_err();
        assert_eq!(wrong.reason, "PluginDigestMismatch");
        assert!(wrong.message.contains("sha256:bb"));
        let tar = artifact_matches(
            &manifest("sha256:aa", "application/vnd.oci.image.layer.v1.tar+gzip"),
            "aa",
        )
        .unwrap_err();
        assert_eq!(tar.reason, "PluginArtifactInvalid");
    }

    #[test]
    fn service_hosts() {
        assert_eq!(
            service_of_host("api.shop.svc.cluster.local"),
            Some(("shop".into(), "api".into()))
        );
        assert_eq!(
            service_of_host("api.shop.svc"),
            Some(("shop".into(), "api".into()))
        );
        assert_eq!(service_of_host("idp.example.com"), None);
        assert_eq!(service_of_host("a.b.c.svc"), None);
        let config = json!({"static_resources": {"clusters": [
            {"load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "api.shop.svc.cluster.local", "port_value": 80}}}}]}]}},
            {"load_assignment": {"endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}}]}]}},
        ]}});
        assert_eq!(
            service_host_names(&config),
            vec!["api.shop.svc.cluster.local".to_string()]
        );
    }
}
