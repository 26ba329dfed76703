//! The machine's local Kubernetes cluster (`scripts/cluster.sh`): a real single-node v1.20.2 with
//! a kubelet, containerd, kube-proxy and an OCI registry, with KEA's images built and pushed
//! (`scripts/images.sh`, `scripts/publish-plugins.sh`) and KEA installed from them
//! (`scripts/install-kea.sh`). One cluster per machine: the first suite of a run brings it up
//! (each script is idempotent, `cluster.sh` holds a lock) and later ones share it;
//! `scripts/test.sh` takes it down at the end of the run, also when a test failed. Each test
//! works in a namespace of its own, deleted when the test ends.

use crate::repo_root;
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace as NamespaceObject, Pod, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, PostParams,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The local cluster with KEA installed.
#[derive(Debug)]
pub struct Cluster {
    kubeconfig: PathBuf,
    /// `KEY=VALUE` settings of the cluster (`env`) and of the images (`images.env`).
    settings: BTreeMap<String, String>,
}

static SHARED: OnceLock<std::result::Result<Cluster, String>> = OnceLock::new();

impl Cluster {
    /// The cluster, brought up with KEA installed on first use in this process.
    pub fn shared() -> Result<&'static Cluster> {
        SHARED
            .get_or_init(|| Self::bring_up().map_err(|error| format!("{error:#}")))
            .as_ref()
            .map_err(|error| anyhow!("the local cluster is not available: {error}"))
    }

    fn bring_up() -> Result<Self> {
        for script in [
            "cluster.sh up",
            "images.sh",
            "publish-plugins.sh",
            "install-kea.sh",
        ] {
            let mut words = script.split(' ');
            let file = words.next().unwrap_or_default();
            let started = Instant::now();
            let status = Command::new(repo_root().join("scripts").join(file))
                .args(words)
                .current_dir(repo_root())
                .status()
                .with_context(|| format!("cannot run scripts/{file}"))?;
            if !status.success() {
                bail!("scripts/{script} failed ({status})");
            }
            eprintln!("scripts/{script}: {:.1} s", started.elapsed().as_secs_f64());
        }
        let mut settings = BTreeMap::new();
        read_settings(&cluster_home()?.join("env"), &mut settings)?;
        read_settings(&cache()?.join("images/images.env"), &mut settings)?;
        let kubeconfig = settings
            .get("KUBECONFIG")
            .map(PathBuf::from)
            .context("the cluster's env file has no KUBECONFIG")?;
        Ok(Self { kubeconfig, settings })
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A setting of the cluster or of the images, e.g. `KEA_IMAGE_UPSTREAM`, `KEA_REGISTRY`.
    pub fn setting(&self, name: &str) -> Result<&str> {
        self.settings
            .get(name)
            .map(String::as_str)
            .with_context(|| format!("{name} is not set by the cluster's or the images' env file"))
    }

    /// A client with the cluster's admin credentials.
    pub async fn client(&self) -> Result<kube::Client> {
        crate::kube::client_from(&self.kubeconfig).await
    }

    /// `kubectl` (the v1.20.2 one `scripts/kube-build.sh` built) against the cluster; its
    /// output, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        let kubectl = crate::installed("KEA_KUBECTL", "kubernetes-1.20.2/bin/kubectl", "kubectl")?;
        let output = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .output()?;
        if !output.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Kills every container the kubelet runs (`scripts/cluster.sh kill-containers`), as a crash
    /// of the node's container runtime would; the kubelet restarts them.
    pub fn kill_all_containers(&self) -> Result<()> {
        cluster_script(&["kill-containers"])
    }

    /// Kills the API server (SIGKILL) and starts it again (`scripts/cluster.sh restart
    /// kube-apiserver`); returns once it is ready.
    pub fn restart_apiserver(&self) -> Result<()> {
        cluster_script(&["restart", "kube-apiserver"])
    }

    /// A fresh namespace `<prefix>-<random>`, deleted when the returned guard is dropped.
    pub async fn namespace(&'static self, prefix: &str) -> Result<Namespace> {
        let name = format!("{prefix}-{}", &random_suffix()?);
        let namespaces: Api<NamespaceObject> = Api::all(self.client().await?);
        let object: NamespaceObject =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
        namespaces.create(&PostParams::default(), &object).await?;
        Ok(Namespace { name, cluster: self })
    }
}

/// A namespace of the cluster that is deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct Namespace {
    pub name: String,
    cluster: &'static Cluster,
}

impl Namespace {
    /// Applies every YAML document of `text` (server-side, forced); namespaced objects without a
    /// namespace go to this one.
    pub async fn apply(&self, text: &str) -> Result<Vec<DynamicObject>> {
        let client = self.cluster.client().await?;
        let mut applied = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            let mut value = serde_json::Value::deserialize(document)?;
            if value.is_null() {
                continue;
            }
            if let Some(metadata) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                metadata
                    .entry("namespace")
                    .or_insert_with(|| serde_json::json!(self.name));
            }
            applied.push(crate::kube::apply(&client, value).await?);
        }
        Ok(applied)
    }

    /// A KEA resource's condition `type_` — `(kind, plural, name)` names the resource — as
    /// (status, reason, message).
    pub async fn condition(
        &self,
        (kind, plural, name): (&str, &str, &str),
        type_: &str,
    ) -> Result<Option<(String, String, String)>> {
        let client = self.cluster.client().await?;
        let gvk = GroupVersionKind::gvk("kea.dev", "v1alpha1", kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            client,
            &self.name,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        );
        let object = api.get(name).await?;
        let conditions = object
            .data
            .pointer("/status/conditions")
            .and_then(serde_json::Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(conditions.iter().find(|c| c["type"] == type_).map(|c| {
            let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
            (text("status"), text("reason"), text("message"))
        }))
    }

    /// Waits until a condition has `status` (and `reason`, when given); returns its message.
    pub async fn wait_condition(
        &self,
        resource: (&str, &str, &str),
        type_: &str,
        status: &str,
        reason: Option<&str>,
        timeout: Duration,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self.condition(resource, type_).await?;
            if let Some((s, r, m)) = &found {
                if s == status && reason.is_none_or(|wanted| wanted == r) {
                    return Ok(m.clone());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} {}: {type_} is {found:?} after {timeout:?}, wanted {status} {reason:?}",
                    resource.0,
                    resource.2
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the Deployment has all its replicas updated and ready.
    pub async fn wait_deployment_ready(&self, name: &str, timeout: Duration) -> Result<Deployment> {
        let deployments: Api<Deployment> = Api::namespaced(self.cluster.client().await?, &self.name);
        let deadline = Instant::now() + timeout;
        loop {
            let found = deployments.get_opt(name).await?;
            if let Some(deployment) = &found {
                let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                let status = deployment.status.clone().unwrap_or_default();
                let current = status.observed_generation == deployment.metadata.generation;
                if current
                    && status.ready_replicas.unwrap_or(0) >= wanted
                    && status.updated_replicas.unwrap_or(0) >= wanted
                    && status.replicas.unwrap_or(0) == wanted
                {
                    return Ok(deployment.clone());
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "Deployment {}/{name} not ready after {timeout:?}: {:?}\npods:\n{}",
                    self.name,
                    found.and_then(|d| d.status),
                    self.cluster
                        .kubectl(&["-n", &self.name, "get", "pods", "-o", "wide"])
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `ip:port` of a Service's first port (its cluster IP, reachable from the host).
    pub async fn service_address(&self, name: &str) -> Result<String> {
        let services: Api<Service> = Api::namespaced(self.cluster.client().await?, &self.name);
        let spec = services
            .get(name)
            .await?
            .spec
            .with_context(|| format!("Service {name} has no spec"))?;
        let ip = spec.cluster_ip.context("no cluster IP")?;
        let port = spec
            .ports
            .and_then(|ports| ports.first().map(|port| port.port))
            .context("no port")?;
        Ok(format!("{ip}:{port}"))
    }

    /// The Pods matching a label selector.
    pub async fn pods(&self, selector: &str) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.cluster.client().await?, &self.name);
        Ok(pods.list(&ListParams::default().labels(selector)).await?.items)
    }

    /// The logs of a Pod's container.
    pub async fn logs(&self, pod: &str, container: &str) -> Result<String> {
        let pods: Api<Pod> = Api::namespaced(self.cluster.client().await?, &self.name);
        Ok(pods
            .logs(
                pod,
                &LogParams {
                    container: Some(container.to_string()),
                    ..LogParams::default()
                },
            )
            .await?)
    }

    /// Deletes a Pod at once (no grace period), as a crash would.
    pub async fn kill_pod(&self, pod: &str) -> Result<()> {
        let pods: Api<Pod> = Api::namespaced(self.cluster.client().await?, &self.name);
        pods.delete(pod, &DeleteParams::default().grace_period(0)).await?;
        Ok(())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Background deletion: the namespace controller removes what is in it.
        let _ = self
            .cluster
            .kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

fn cluster_script(args: &[&str]) -> Result<()> {
    let status = Command::new(repo_root().join("scripts/cluster.sh"))
        .args(args)
        .status()
        .context("cannot run scripts/cluster.sh")?;
    if !status.success() {
        bail!("scripts/cluster.sh {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn cache() -> Result<PathBuf> {
    Ok(match std::env::var_os("KEA_CACHE") {
        Some(cache) => PathBuf::from(cache),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/kea"),
    })
}

/// `$KEA_CLUSTER_HOME`, default `$KEA_CACHE/cluster` (as `scripts/cluster.sh` sets it).
fn cluster_home() -> Result<PathBuf> {
    Ok(match std::env::var_os("KEA_CLUSTER_HOME") {
        Some(home) => PathBuf::from(home),
        None => cache()?.join("cluster"),
    })
}

/// Reads `KEY=VALUE` lines (comments and blank lines skipped, quotes removed).
fn read_settings(path: &Path, into: &mut BTreeMap<String, String>) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    for line in text.lines() {
        let line = line.trim().trim_start_matches("export ");
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            into.insert(key.to_string(), value.trim_matches(['"', '\'']).to_string());
        }
    }
    Ok(())
}

fn random_suffix() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
