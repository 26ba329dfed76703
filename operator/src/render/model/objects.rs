//! The Kubernetes objects of a model: per version a build ConfigMap + Job (when KEA builds its
//! image), a Deployment and a Service; and the ApiDefinitions that publish it through the gateway.

use super::documented::{self, SourceDocs, SIGNATURE_CONTAINER};
use super::package::{self, fetch_args, Package, FILES_DIR, GRPC_PORT, HTTP_PORT, METRICS_PORT};
use super::{
    api_name, base_path, openapi, version_api_name, version_base_path, version_object_name, CheckedVersion,
    Source,
};
use crate::crd::{ModelSpec, PullPolicy, ResourceName};
use crate::render::objects::MANAGED_BY;
use crate::render::Key;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tracing::instrument;

/// Label on every object of a model: the model's name.
pub const MODEL_LABEL: &str = "kea.dev/model";
/// Label on every object of a version: the version's name.
pub const VERSION_LABEL: &str = "kea.dev/model-version";
/// Label on build Jobs: the package digest (first 16 hex digits) they build.
pub const PACKAGE_LABEL: &str = "kea.dev/package";
/// Label on build Pods: the model they build for (they do not carry [`MODEL_LABEL`]).
pub const BUILD_LABEL: &str = "kea.dev/model-build";
/// Annotation on the Pod template: the package the image was built from.
pub const PACKAGE_ANNOTATION: &str = "kea.dev/package-sha256";

/// Where KEA's images come from and go to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Images {
    /// `HOST[:PORT]/PATH` the built model images are pushed to (e.g. `10.250.0.1:15000/kea/models`).
    pub repository: String,
    /// The image of build Jobs (buildah).
    pub builder: String,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
}

fn labels(model: &str, version: Option<&str>) -> Value {
    let mut labels = json!({
        MANAGED_BY.0: MANAGED_BY.1,
        MODEL_LABEL: model,
        "app.kubernetes.io/name": model,
        "app.kubernetes.io/component": "model",
        "app.kubernetes.io/part-of": "kea",
    });
    if let (Some(version), Some(map)) = (version, labels.as_object_mut()) {
        map.insert(VERSION_LABEL.into(), json!(version));
        map.insert("app.kubernetes.io/version".into(), json!(version));
        map.insert(
            "app.kubernetes.io/instance".into(),
            json!(version_object_name(model, version)),
        );
    }
    labels
}

fn metadata(name: &str, model: &Key, version: Option<&str>, owner: &OwnerReference) -> Value {
    json!({"name": name, "namespace": model.namespace, "labels": labels(&model.name, version), "ownerReferences": [owner]})
}

/// The build Job's name (and its ConfigMap's): per model, version and package, at most 63 characters.
pub fn build_name(model: &str, version: &str, package: &Package) -> String {
    let mut stem = format!("kea-build-{model}-{version}");
    stem.truncate(53);
    format!("{}-{}", stem.trim_end_matches('-'), &package.digest()[..9])
}

/// The image reference a build pushes: one tag per package, so a rebuild of the same files is
/// never needed and an old tag is never overwritten.
pub fn built_image_tag(images: &Images, model: &Key, version: &str, package: &Package) -> String {
    format!(
        "{}/{}-{}:{version}-{}",
        images.repository.trim_end_matches('/'),
        model.namespace,
        model.name,
        &package.digest()[..12]
    )
}

/// How a build Job reads a `custom` version's serving class (a model without `spec.signature`):
/// the version's files, fetched as its Deployment fetches them, and the class `className` names,
/// read by the operator's own image (`kea model signature --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceReader<'a> {
    pub source: &'a Source,
    /// `module.Class`.
    pub class_name: &'a str,
    /// The operator's image (`--operator-image`).
    pub operator_image: &'a str,
}

/// The ConfigMap holding the build context (the package's files but the requirements, which the
/// runtime image already holds).
#[instrument(level = "debug", skip_all, fields(model = %model, version))]
pub fn build_context(model: &Key, version: &str, package: &Package, owner: &OwnerReference) -> Value {
    let data: Map<String, Value> = package
        .files
        .iter()
        .filter(|(name, _)| *name != "requirements.txt")
        .map(|(name, text)| (name.to_string(), json!(text)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(&build_name(&model.name, version, package), model, Some(version), owner),
        "data": data,
    })
}

/// The Job that builds the version's image with buildah and pushes it; the pushed digest is its
/// container's termination message. With a [`SourceReader`] its init containers first fetch the
/// version's files and read the serving class: the [`documented::Report`] is the termination
/// message of the [`SIGNATURE_CONTAINER`] (which exits 0 either way: a class that declares nothing
/// still builds).
#[instrument(level = "debug", skip_all, fields(model = %model, version))]
pub fn build_job(
    model: &Key,
    version: &str,
    package: &Package,
    runtime_image: &str,
    images: &Images,
    reader: Option<SourceReader<'_>>,
    owner: &OwnerReference,
) -> Value {
    let name = build_name(&model.name, version, package);
    let mut meta = metadata(&name, model, Some(version), owner);
    if let Some(map) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        map.insert(PACKAGE_LABEL.into(), json!(&package.digest()[..16]));
    }
    let mut args = vec![
        "--from".to_string(),
        runtime_image.to_string(),
        "--context".into(),
        "/workspace".into(),
        "--dest".into(),
        built_image_tag(images, model, version, package),
    ];
    for registry in &images.insecure_registries {
        args.extend(["--insecure-registry".into(), registry.clone()]);
    }
    let mut volumes = vec![
        json!({"name": "workspace", "configMap": {"name": name}}),
        // vfs keeps a full copy of the runtime image's layers.
        json!({"name": "storage", "emptyDir": {"sizeLimit": "8Gi"}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}}),
    ];
    let init = match reader {
        Some(reader) => source_reading(reader, runtime_image, &mut volumes),
        None => vec![],
    };
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": 900,
            "template": {
                // Not the model's labels: its Services and Deployments select those.
                "metadata": {"labels": {BUILD_LABEL: model.name, "app.kubernetes.io/component": "model-build", MANAGED_BY.0: MANAGED_BY.1}},
                "spec": {
                    "restartPolicy": "Never",
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "initContainers": init,
                    "containers": [{
                        "name": "build",
                        "image": images.builder,
                        "imagePullPolicy": "IfNotPresent",
                        "args": args,
                        "terminationMessagePolicy": "File",
                        "volumeMounts": [
                            {"name": "workspace", "mountPath": "/workspace", "readOnly": true},
                            {"name": "storage", "mountPath": "/var/lib/containers"},
                            {"name": "tmp", "mountPath": "/tmp"},
                            {"name": "tmp", "mountPath": "/var/tmp", "subPath": "var-tmp"},
                        ],
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                        // buildah is root in the container, with only the capabilities that keep
                        // the layers' owners and modes (images/README.md): the Dockerfile has no
                        // RUN step, so nothing runs inside the image being built.
                        "securityContext": {
                            "runAsUser": 0,
                            "runAsGroup": 0,
                            "runAsNonRoot": false,
                            "privileged": false,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SYS_CHROOT"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }],
                    "volumes": volumes,
                },
            },
        },
    })
}

/// The build Job's init containers that read the serving class: the version's files into the
/// `model` volume (as the Deployment gets them: [`files`]), then `kea model signature --json` on
/// them, non-root, writing its report to its termination log.
#[instrument(level = "debug", skip_all, fields(class = reader.class_name))]
fn source_reading(reader: SourceReader<'_>, runtime_image: &str, volumes: &mut Vec<Value>) -> Vec<Value> {
    let Some(files) = files(reader.source, runtime_image, "IfNotPresent", "fetch-tmp") else {
        return vec![];
    };
    let non_root = |mut container: Value| {
        if let Some(security) = container
            .get_mut("securityContext")
            .and_then(Value::as_object_mut)
        {
            security.extend([
                ("runAsUser".to_string(), json!(65532)),
                ("runAsGroup".to_string(), json!(65532)),
                ("runAsNonRoot".to_string(), json!(true)),
                ("privileged".to_string(), json!(false)),
                ("seccompProfile".to_string(), json!({"type": "RuntimeDefault"})),
            ]);
        }
        container
    };
    volumes.push(files.volume);
    let mut init = vec![];
    if let Some(fetch) = files.fetch {
        volumes.push(json!({"name": "fetch-tmp", "emptyDir": {}}));
        init.push(non_root(fetch));
    }
    init.push(non_root(json!({
        "name": SIGNATURE_CONTAINER,
        "image": reader.operator_image,
        "imagePullPolicy": "IfNotPresent",
        // The image's entrypoint is `kea`.
        "args": [
            "model", "signature", "--json",
            "--termination-log", "/dev/termination-log",
            "--class", reader.class_name,
            FILES_DIR,
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [files.mount],
        // Parsing a source of the largest size allowed takes a deep stack.
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": container_security(),
    })));
    init
}

/// How a Pod gets a version's files at [`FILES_DIR`]: the `model` volume, its read-only mount,
/// and for http(s) and git sources the `fetch` init container (`python -m kea_runtime.fetch` in
/// `image`, scratch space in the volume `tmp`) that fills it. `None` for a ready image.
struct Files {
    volume: Value,
    mount: Value,
    fetch: Option<Value>,
}

#[instrument(level = "debug", skip_all)]
fn files(source: &Source, image: &str, policy: &str, tmp: &str) -> Option<Files> {
    match source {
        Source::Pvc { claim, path } => Some(Files {
            volume: json!({"name": "model", "persistentVolumeClaim": {"claimName": claim, "readOnly": true}}),
            mount: json!({"name": "model", "mountPath": FILES_DIR, "subPath": path, "readOnly": true}),
            fetch: None,
        }),
        Source::Http(_) | Source::Git { .. } => Some(Files {
            volume: json!({"name": "model", "emptyDir": {}}),
            mount: json!({"name": "model", "mountPath": FILES_DIR, "readOnly": true}),
            fetch: Some(json!({
                "name": "fetch",
                "image": image,
                "imagePullPolicy": policy,
                "command": fetch_args(source).unwrap_or_default(),
                // Its last log lines (the fetch error) become the reason the Model reports.
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [{"name": "model", "mountPath": FILES_DIR}, {"name": tmp, "mountPath": "/tmp"}],
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
                "securityContext": container_security(),
            })),
        }),
        Source::Image(_) => None,
    }
}

fn resources(version: &crate::crd::ModelVersion) -> Value {
    let mut out = json!({"requests": {"cpu": "100m", "memory": "256Mi"}});
    if let Some(resources) = &version.resources {
        let name = |resource: &ResourceName| match resource {
            ResourceName::Cpu => "cpu",
            ResourceName::Memory => "memory",
        };
        let convert = |map: &std::collections::BTreeMap<ResourceName, String>| -> Map<String, Value> {
            map.iter()
                .map(|(key, value)| (name(key).to_string(), json!(value)))
                .collect()
        };
        out = json!({"requests": convert(&resources.requests), "limits": convert(&resources.limits)});
    }
    out
}

fn pull_policy(policy: PullPolicy) -> &'static str {
    match policy {
        PullPolicy::Always => "Always",
        PullPolicy::IfNotPresent => "IfNotPresent",
        PullPolicy::Never => "Never",
    }
}

/// The version's Deployment: an init container fetches the files (or a claim is mounted), the
/// server container serves OIP on 8080; ready when the version's model is loaded.
#[instrument(level = "debug", skip_all, fields(model = %model, version = checked.name))]
pub fn deployment(
    model: &Key,
    spec: &ModelSpec,
    checked: &CheckedVersion,
    image: &str,
    package_digest: Option<&str>,
    owner: &OwnerReference,
) -> Value {
    let version = &checked.name;
    let name = version_object_name(&model.name, version);
    let declared = spec
        .versions
        .iter()
        .find(|v| &v.name == version)
        .cloned()
        .unwrap_or_default();
    let policy = pull_policy(declared.image_pull_policy);
    let selector = json!({MODEL_LABEL: model.name, VERSION_LABEL: version});
    let ready_path = format!("{}/ready", version_base_path(&model.name, version));
    let ready_image = matches!(checked.source, Source::Image(_));
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {}})];
    let mut mounts = vec![json!({"name": "tmp", "mountPath": "/tmp"})];
    let mut init = vec![];
    if let Some(files) = files(&checked.source, image, policy, "tmp") {
        volumes.push(files.volume);
        mounts.push(files.mount);
        init.extend(files.fetch);
    }
    let mut annotations = Map::new();
    if let Some(digest) = package_digest {
        annotations.insert(PACKAGE_ANNOTATION.into(), json!(digest));
    }
    let mut pod_labels = labels(&model.name, Some(version));
    if let (Some(map), Some(selector)) = (pod_labels.as_object_mut(), selector.as_object()) {
        map.extend(selector.clone());
    }
    let mut server = json!({
        "name": "server",
        "image": image,
        "imagePullPolicy": policy,
        "ports": [
            {"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"},
            {"name": "grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
        ],
        "env": [
            // MLServer writes its Prometheus multiprocess files and environments beside the
            // model by default; the root filesystem is read-only.
            {"name": "MLSERVER_METRICS_DIR", "value": "/tmp/mlserver-metrics"},
            {"name": "MLSERVER_ENVIRONMENTS_DIR", "value": "/tmp/mlserver-envs"},
            {"name": "HOME", "value": "/tmp"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "startupProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 2, "failureThreshold": 90},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": ready_path, "port": "http"}, "periodSeconds": 2, "timeoutSeconds": 2, "failureThreshold": 2},
        "resources": resources(&declared),
        "volumeMounts": mounts,
        "securityContext": container_security(),
    });
    if ready_image {
        // A ready image is the user's: only the OIP port and probes are assumed.
        if let Some(map) = server.as_object_mut() {
            map.remove("env");
            map.insert(
                "securityContext".into(),
                json!({"allowPrivilegeEscalation": false}),
            );
            map.insert("volumeMounts".into(), json!([]));
        }
        volumes.clear();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(&name, model, Some(version), owner),
        "spec": {
            "replicas": checked.replicas,
            "selector": {"matchLabels": selector},
            // A new Pod must be ready before an old one goes: a broken build never takes a
            // version down.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "progressDeadlineSeconds": 300,
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": {
                    // Service links would put `<SERVICE>_PORT` variables in the environment, which
                    // MLServer reads when a Service name starts with `mlserver`.
                    "enableServiceLinks": false,
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 15,
                    "securityContext": {"runAsNonRoot": !ready_image, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
                    "initContainers": init,
                    "containers": [server],
                    "volumes": volumes,
                },
            },
        },
    })
}

fn container_security() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

/// The version's Service: OIP REST (8080), gRPC (8081) and metrics (8082).
#[instrument(level = "debug", skip(owner))]
pub fn service(model: &Key, version: &str, owner: &OwnerReference) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&version_object_name(&model.name, version), model, Some(version), owner),
        "spec": {
            "type": "ClusterIP",
            "selector": {MODEL_LABEL: model.name, VERSION_LABEL: version},
            "ports": [
                {"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
                {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"},
            ],
        },
    })
}

/// The ApiDefinitions publishing the model: `model-<name>` for `/v2/models/<name>` split across
/// the versions by weight, and `model-<name>-<v>` for each version's pinned
/// `/v2/models/<name>/versions/<v>` (a longer base path, so matched first).
#[instrument(level = "debug", skip_all, fields(model = %model))]
pub fn api_definitions(
    model: &Key,
    spec: &ModelSpec,
    versions: &[CheckedVersion],
    owner: &OwnerReference,
) -> Vec<Value> {
    documented_api_definitions(model, spec, versions, &BTreeMap::new(), owner)
}

/// [`api_definitions`]; a custom model without `spec.signature` is documented with the
/// signatures `read` from its versions' serving classes ([`documented::documented_spec`]).
#[instrument(level = "debug", skip_all, fields(model = %model))]
pub fn documented_api_definitions(
    model: &Key,
    spec: &ModelSpec,
    versions: &[CheckedVersion],
    read: &BTreeMap<String, SourceDocs>,
    owner: &OwnerReference,
) -> Vec<Value> {
    let backend = |version: &CheckedVersion, weight: u32| json!({"service": version_object_name(&model.name, &version.name), "port": HTTP_PORT, "version": version.name, "weight": weight});
    let common = |base: String, backends: Vec<Value>, document: Value| {
        let mut api = json!({
            "gateway": spec.gateway,
            "hosts": spec.hosts,
            "basePath": base,
            "backends": backends,
            "schema": {"openapi": document},
        });
        if let Some(map) = api.as_object_mut() {
            if let Some(namespace) = &spec.gateway_namespace {
                map.insert("gatewayNamespace".into(), json!(namespace));
            }
            if let Some(timeout) = &spec.timeout {
                map.insert("timeout".into(), json!(timeout));
            }
            if let Ok(Value::Object(policies)) = serde_json::to_value(&spec.policies) {
                map.extend(policies);
            }
            if !spec.operation_policies.is_empty() {
                map.insert("operationPolicies".into(), json!(spec.operation_policies));
            }
        }
        api
    };
    let (described, descriptions) = documented::documented_spec(spec, read, None);
    let mut apis = vec![json!({
        "apiVersion": "kea.dev/v1alpha1",
        "kind": "ApiDefinition",
        "metadata": metadata(&api_name(&model.name), model, None, owner),
        "spec": common(
            base_path(&model.name),
            versions.iter().filter(|v| v.weight > 0).map(|v| backend(v, v.weight)).collect(),
            openapi::described_document(&model.name, &described, &descriptions),
        ),
    })];
    for version in versions {
        let (described, descriptions) = documented::documented_spec(spec, read, Some(&version.name));
        apis.push(json!({
            "apiVersion": "kea.dev/v1alpha1",
            "kind": "ApiDefinition",
            "metadata": metadata(&version_api_name(&model.name, &version.name), model, Some(&version.name), owner),
            "spec": common(
                version_base_path(&model.name, &version.name),
                vec![backend(version, 100)],
                openapi::described_version_document(&model.name, &described, &version.name, &descriptions),
            ),
        }));
    }
    apis
}

/// The runtime image of a framework from the operator's settings (`framework=image` pairs).
pub fn runtime_image(runtime_images: &[(String, String)], framework: crate::crd::Framework) -> Option<&str> {
    runtime_images
        .iter()
        .find(|(name, _)| name == framework.name())
        .map(|(_, image)| image.as_str())
}

/// The package a version's build starts from.
#[instrument(level = "debug", skip_all, fields(model = %model, version = checked.name))]
pub fn version_package(
    model: &Key,
    spec: &ModelSpec,
    checked: &CheckedVersion,
    runtime_image: &str,
) -> Package {
    let class = spec
        .versions
        .iter()
        .find(|v| v.name == checked.name)
        .and_then(|v| v.class_name.as_deref());
    package::package(model, spec, &checked.name, &checked.source, class, runtime_image)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::super::check;
    use super::super::tests::iris;
    use super::*;

    #[test]
    fn objects_of_a_two_version_model() {
        let key = Key::new("ml", "iris");
        let spec = iris();
        let checked = check("iris", &spec).unwrap();
        let owner = OwnerReference::default();
        let apis = api_definitions(&key, &spec, &checked.versions, &owner);
        assert_eq!(apis.len(), 3);
        assert_eq!(apis[0]["metadata"]["name"], "model-iris");
        assert_eq!(apis[0]["spec"]["basePath"], "/v2/models/iris");
        assert_eq!(
            apis[0]["spec"]["backends"][1],
            json!({"service": "iris-v2", "port": 8080, "version": "v2", "weight": 10})
        );
        assert_eq!(apis[2]["spec"]["basePath"], "/v2/models/iris/versions/v2");
        assert_eq!(apis[2]["spec"]["backends"][0]["weight"], 100);
        // Both compile as ApiDefinitions (the operator's own parser).
        for api in &apis {
            let parsed: crate::crd::ApiDefinitionSpec = serde_json::from_value(api["spec"].clone()).unwrap();
            crate::render::schema::compile("m", parsed.schema.openapi.unwrap()).unwrap();
        }
        // The weighted one is split exactly by version (the default), its routes keyed by version.
        let weighted: crate::crd::ApiDefinitionSpec =
            serde_json::from_value(apis[0]["spec"].clone()).unwrap();
        let (backends, split) = crate::render::spec::split(&weighted).unwrap();
        assert!(split.marks);
        assert_eq!(
            backends
                .iter()
                .map(|b| (b.key.as_str(), b.weight))
                .collect::<Vec<_>>(),
            [("v1", 90), ("v2", 10)]
        );
        let pinned: crate::crd::ApiDefinitionSpec = serde_json::from_value(apis[2]["spec"].clone()).unwrap();
        assert!(!crate::render::spec::split(&pinned).unwrap().1.marks);

        let image = "reg/kea/models/ml-iris@sha256:00";
        let deployment = deployment(&key, &spec, &checked.versions[1], image, Some("abc"), &owner);
        let init = &deployment["spec"]["template"]["spec"]["initContainers"][0];
        assert_eq!(
            init["command"],
            json!([
                "python3",
                "-m",
                "kea_runtime.fetch",
                "--dest",
                "/mnt/models",
                "--git-url",
                "git://10.250.0.1/models",
                "--revision",
                "main",
                "--path",
                "iris"
            ])
        );
        let server = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            server["readinessProbe"]["httpGet"]["path"],
            "/v2/models/iris/versions/v2/ready"
        );
        assert_eq!(
            deployment["spec"]["selector"]["matchLabels"],
            json!({"kea.dev/model": "iris", "kea.dev/model-version": "v2"})
        );

        let images = Images {
            repository: "10.250.0.1:15000/kea/models".into(),
            builder: "b".into(),
            insecure_registries: vec!["10.250.0.1:15000".into()],
        };
        let package = version_package(&key, &spec, &checked.versions[0], "rt");
        let job = build_job(&key, "v1", &package, "rt", &images, None, &owner);
        assert!(job["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .is_empty());
        let name = job["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kea-build-iris-v1-") && name.len() <= 63,
            "{name}"
        );
        let dest = job["spec"]["template"]["spec"]["containers"][0]["args"][5]
            .as_str()
            .unwrap();
        assert!(
            dest.starts_with("10.250.0.1:15000/kea/models/ml-iris:v1-"),
            "{dest}"
        );
        let context = build_context(&key, "v1", &package, &owner);
        let files: Vec<&String> = context["data"].as_object().unwrap().keys().collect();
        assert_eq!(
            files,
            ["Dockerfile", "model-settings.json", "model.py", "settings.json"]
        );
    }

    /// A custom model without `spec.signature`: its build Job fetches the files as the Deployment
    /// does and reads the class with the operator's image; its published documents use what the
    /// versions read.
    #[test]
    fn build_jobs_read_custom_serving_classes() {
        let key = Key::new("ml", "scorer");
        let mut spec = iris();
        spec.framework = crate::crd::Framework::Custom;
        spec.signature = None;
        for version in &mut spec.versions {
            version.class_name = Some("serving.Scorer".into());
        }
        let checked = check("scorer", &spec).unwrap();
        let owner = OwnerReference::default();
        let images = Images {
            repository: "10.250.0.1:15000/kea/models".into(),
            builder: "kea/builder".into(),
            insecure_registries: vec![],
        };
        let git = &checked.versions[1];
        let package = version_package(&key, &spec, git, "kea/runtime-custom");
        let reader = SourceReader {
            source: &git.source,
            class_name: "serving.Scorer",
            operator_image: "reg/kea/operator@sha256:0f",
        };
        let job = build_job(
            &key,
            "v2",
            &package,
            "kea/runtime-custom",
            &images,
            Some(reader),
            &owner,
        );
        let pod = &job["spec"]["template"]["spec"];
        let init = pod["initContainers"].as_array().unwrap();
        assert_eq!(init.len(), 2);
        // The fetch is the Deployment's own, in the runtime image, as non-root.
        let deployment = deployment(&key, &spec, git, "built", None, &owner);
        let deployed = &deployment["spec"]["template"]["spec"]["initContainers"][0];
        assert_eq!(init[0]["name"], "fetch");
        assert_eq!(init[0]["image"], "kea/runtime-custom");
        assert_eq!(init[0]["command"], deployed["command"]);
        assert_eq!(init[0]["volumeMounts"][0], deployed["volumeMounts"][0]);
        assert_eq!(init[0]["volumeMounts"][1]["name"], "fetch-tmp");
        assert_eq!(init[0]["securityContext"]["runAsNonRoot"], true);
        assert_eq!(init[0]["securityContext"]["runAsUser"], 65532);
        // Then the operator's image reads the class and reports it as its termination message.
        let reader = &init[1];
        assert_eq!(reader["name"], SIGNATURE_CONTAINER);
        assert_eq!(reader["image"], "reg/kea/operator@sha256:0f");
        assert_eq!(
            reader["args"],
            json!([
                "model",
                "signature",
                "--json",
                "--termination-log",
                "/dev/termination-log",
                "--class",
                "serving.Scorer",
                "/mnt/models"
            ])
        );
        assert_eq!(reader["terminationMessagePolicy"], "File");
        assert_eq!(
            reader["volumeMounts"],
            json!([{"name": "model", "mountPath": "/mnt/models", "readOnly": true}])
        );
        let security = &reader["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true);
        assert_eq!(security["allowPrivilegeEscalation"], false);
        assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
        assert_eq!(security["runAsNonRoot"], true);
        assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
        let volumes: Vec<&str> = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|volume| volume["name"].as_str().unwrap())
            .collect();
        assert_eq!(volumes, ["workspace", "storage", "tmp", "model", "fetch-tmp"]);
        // The build itself is unchanged.
        assert_eq!(pod["containers"][0]["name"], "build");

        // A claim is mounted, as in the Deployment: nothing to fetch.
        let pvc = Source::Pvc {
            claim: "models".into(),
            path: "scorer".into(),
        };
        let reader = SourceReader {
            source: &pvc,
            class_name: "serving.Scorer",
            operator_image: "op",
        };
        let job = build_job(&key, "v1", &package, "rt", &images, Some(reader), &owner);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["initContainers"].as_array().unwrap().len(), 1);
        assert_eq!(pod["initContainers"][0]["volumeMounts"][0]["subPath"], "scorer");
        assert_eq!(
            pod["volumes"][3]["persistentVolumeClaim"],
            json!({"claimName": "models", "readOnly": true})
        );

        // The documents: the weighted one from the first version that read a signature, pinned
        // ones from their own.
        let status = crate::crd::VersionStatus {
            name: "v2".into(),
            signature: Some(crate::crd::Signature {
                inputs: vec![crate::crd::Tensor {
                    name: "x".into(),
                    datatype: crate::crd::Datatype::Fp64,
                    shape: vec![-1, 3],
                    optional: false,
                }],
                outputs: vec![],
            }),
            descriptions: Some(crate::crd::SignatureDescriptions {
                inputs: [("x".to_string(), "three features.".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let read = documented::from_status(&[status]);
        let apis = documented_api_definitions(&key, &spec, &checked.versions, &read, &owner);
        let schemas = |api: &Value| api["spec"]["schema"]["openapi"]["components"]["schemas"].clone();
        assert_eq!(
            schemas(&apis[0])["Input0"]["properties"]["name"]["enum"],
            json!(["x"])
        );
        assert!(schemas(&apis[0])["Input0"]["description"]
            .as_str()
            .unwrap()
            .ends_with(". three features."));
        assert!(schemas(&apis[1]).get("Input0").is_none(), "v1 read nothing");
        assert_eq!(
            schemas(&apis[2])["Input0"]["properties"]["name"]["enum"],
            json!(["x"])
        );
        for api in &apis {
            let parsed: crate::crd::ApiDefinitionSpec = serde_json::from_value(api["spec"].clone()).unwrap();
            crate::render::schema::compile("m", parsed.schema.openapi.unwrap()).unwrap();
        }
    }
}
