//! Shared by the operator's end-to-end suites: a real Kubernetes 1.20 control plane with KEA's
//! CRDs and the real Istio / Gateway API CRDs, and `kea operator` processes against it.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use kea_e2e::kube::ControlPlane;
use kea_e2e::{free_port, repo_root};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NAMESPACE: &str = "shop";
pub const OPERATOR_NAMESPACE: &str = "kea-system";

/// A control plane with every CRD installed and the test namespaces created.
pub async fn cluster() -> Result<(ControlPlane, Client)> {
    let plane = ControlPlane::start()?;
    let root = repo_root();
    plane.apply_manifests(&root.join("manifests/crds.yaml")).await?;
    plane.install_third_party_crds().await?;
    plane
        .wait_crds_established(&["gatewaybindings.kea.dev", "apidefinitions.kea.dev"])
        .await?;
    let client = plane.client().await?;
    apply(
        &client,
        &serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    )
    .await?;
    // The install manifests as written (the Deployment's pods stay Pending: there is no kubelet);
    // the operator under test runs with the service account's token, so its RBAC is tested too.
    plane
        .apply_manifests(&root.join("manifests/install.yaml"))
        .await?;
    write_operator_kubeconfig(&plane, &client).await?;
    Ok((plane, client))
}

/// A kubeconfig with the `kea-operator` service account's token (created by the controller-manager).
async fn write_operator_kubeconfig(plane: &ControlPlane, client: &Client) -> Result<()> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let token = eventually(
        Duration::from_secs(30),
        "the operator's service account token",
        || async {
            let list = secrets.list(&Default::default()).await?;
            Ok(list.items.into_iter().find_map(|secret| {
                let annotations = secret.metadata.annotations.unwrap_or_default();
                let owner = annotations
                    .get("kubernetes.io/service-account.name")
                    .map(String::as_str);
                (owner == Some("kea-operator")).then_some(())?;
                let token = secret.data?.get("token")?.0.clone();
                String::from_utf8(token).ok()
            }))
        },
    )
    .await?;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
         users:\n- name: kea-operator\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: kea-operator\n\
         current-context: test\n",
        plane.server(),
        plane.ca_path().display()
    );
    std::fs::write(operator_kubeconfig(plane), kubeconfig)?;
    Ok(())
}

fn operator_kubeconfig(plane: &ControlPlane) -> PathBuf {
    plane.dir().join("operator-kubeconfig")
}

/// A `kea operator` process.
#[derive(Debug)]
pub struct Operator {
    child: Option<Child>,
    pub identity: String,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Operator {
    pub fn start(plane: &ControlPlane, identity: &str) -> Result<Self> {
        Self::start_on(plane, identity, free_port()?)
    }

    pub fn start_on(plane: &ControlPlane, identity: &str, port: u16) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("operator.log");
        let dist = repo_root().join("dist");
        // The benchmark points this at a release build.
        let binary = std::env::var_os("KEA_OPERATOR_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kea")), PathBuf::from);
        let child = Command::new(binary)
            .args([
                "operator",
                "--namespace",
                OPERATOR_NAMESPACE,
                "--identity",
                identity,
                "--lease-duration",
                "3s",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--plugin-url",
                &format!("file://{}/{{plugin}}.wasm", dist.display()),
            ])
            .arg("--plugin-digests")
            .arg(dist.join("SHA256SUMS"))
            .arg("--portal-assets")
            .arg(dist.join("web"))
            .args([
                // A host name, as in a cluster: Istio routes the docs VirtualService to it, and
                // istiod refuses an IP address as a destination host.
                "--bundle-url",
                &format!("http://localhost:{port}"),
                "--bundle-cluster",
                "kea-operator",
            ])
            .env("KUBECONFIG", operator_kubeconfig(plane))
            .env("RUST_LOG", "info,kea_operator=debug")
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .context("starting kea operator")?;
        Ok(Self {
            child: Some(child),
            identity: identity.into(),
            port,
            log,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The warnings and errors the operator logged (without colour codes).
    pub fn warnings(&self) -> String {
        self.logs()
            .lines()
            .filter(|line| line.contains("WARN") || line.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGKILL: no lease release, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("not running")
        };
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the operator did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|child| child.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The REST resource of an `apiVersion` + `kind`.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    kea_operator::controller::apply::resource(api_version, kind)
}

fn dynamic(client: &Client, api_version: &str, kind: &str, namespace: &str) -> Api<DynamicObject> {
    let resource = match kind {
        "Namespace" => {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Namespace"), "namespaces")
        }
        "Service" => {
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Service"), "services")
        }
        "GatewayBinding" => ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kea.dev", "v1alpha1", kind),
            "gatewaybindings",
        ),
        "ApiDefinition" => ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("kea.dev", "v1alpha1", kind),
            "apidefinitions",
        ),
        _ => resource(api_version, kind),
    };
    if kind == "Namespace" {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    }
}

/// Server-side apply as the test's own field manager.
pub async fn apply(client: &Client, object: &Value) -> Result<()> {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api = dynamic(
        client,
        &text("/apiVersion"),
        &text("/kind"),
        &text("/metadata/namespace"),
    );
    api.patch(
        &text("/metadata/name"),
        &PatchParams::apply("kea-tests").force(),
        &Patch::Apply(object),
    )
    .await
    .with_context(|| format!("applying {} {}", text("/kind"), text("/metadata/name")))?;
    Ok(())
}

pub async fn get(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>> {
    let found = dynamic(client, api_version, kind, namespace)
        .get_opt(name)
        .await?;
    Ok(found.map(|object| serde_json::to_value(object).unwrap_or_default()))
}

/// One plugin's section of the combined module's WasmPlugin of `gateway` (the default
/// deployment); `None` while there is no such WasmPlugin or section.
pub async fn plugin_section(
    client: &Client,
    namespace: &str,
    gateway: &str,
    plugin: &str,
) -> Result<Option<Value>> {
    let module = get(
        client,
        "extensions.istio.io/v1alpha1",
        "WasmPlugin",
        namespace,
        &format!("kea-{gateway}-kea"),
    )
    .await?;
    Ok(module.and_then(|module| module["spec"]["pluginConfig"].get(plugin).cloned()))
}

pub async fn delete(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<()> {
    dynamic(client, api_version, kind, namespace)
        .delete(name, &Default::default())
        .await?;
    Ok(())
}

pub async fn list(client: &Client, api_version: &str, kind: &str, namespace: &str) -> Result<Vec<Value>> {
    let objects = dynamic(client, api_version, kind, namespace)
        .list(&Default::default())
        .await?;
    Ok(objects
        .items
        .into_iter()
        .map(|object| serde_json::to_value(object).unwrap_or_default())
        .collect())
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A condition of an object's status: (status, reason, message).
pub fn condition(object: &Value, kind: &str) -> Option<(String, String, String)> {
    let conditions = object.pointer("/status/conditions")?.as_array()?;
    let found = conditions.iter().find(|condition| condition["type"] == kind)?;
    Some((
        found["status"].as_str()?.to_string(),
        found["reason"].as_str().unwrap_or_default().to_string(),
        found["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Waits until the resource's `Ready` condition is `True` at its current generation.
pub async fn wait_ready(client: &Client, kind: &str, name: &str, timeout: Duration) -> Result<Value> {
    eventually(timeout, &format!("{kind} {name} Ready"), || async {
        let Some(object) = get(client, "kea.dev/v1alpha1", kind, NAMESPACE, name).await? else {
            return Ok(None);
        };
        let generation = object.pointer("/metadata/generation").cloned();
        let observed = object.pointer("/status/observedGeneration").cloned();
        let ready = condition(&object, "Ready")
            .map(|(status, ..)| status == "True")
            .unwrap_or(false);
        Ok((ready && generation == observed).then_some(object))
    })
    .await
}

/// A Service (no pods: the control plane has no kubelet; routes only need it to exist).
pub fn service(name: &str, port: u16) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"ports": [{"port": port, "targetPort": port, "protocol": "TCP"}], "selector": {"app": name}},
    })
}

/// Asserts that every WasmPlugin, VirtualService and HTTPRoute in `namespace` — as the API server
/// stored them — is accepted by the real CRDs' schema and CEL rules and by istiod's webhook
/// checks (what this 1.20 API server cannot check itself).
pub async fn assert_written_objects_conform(client: &Client, namespace: &str) -> usize {
    static CRDS: std::sync::OnceLock<kea_e2e::conformance::Crds> = std::sync::OnceLock::new();
    let crds = CRDS.get_or_init(|| kea_e2e::conformance::Crds::vendored().expect("the vendored CRDs load"));
    let mut checked = 0;
    let mut violations = Vec::new();
    for (api_version, kind) in [
        ("extensions.istio.io/v1alpha1", "WasmPlugin"),
        ("networking.istio.io/v1beta1", "VirtualService"),
        ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ] {
        for mut object in list(client, api_version, kind, namespace).await.expect("list") {
            // Lists carry no apiVersion/kind per item.
            object["apiVersion"] = Value::from(api_version);
            object["kind"] = Value::from(kind);
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for violation in crds.check(&object) {
                violations.push(format!("{kind} {name}: {violation}"));
            }
            checked += 1;
        }
    }
    assert!(
        violations.is_empty(),
        "a real cluster refuses objects the operator wrote:\n{}",
        violations.join("\n")
    );
    checked
}
