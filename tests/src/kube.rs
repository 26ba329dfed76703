//! A real Kubernetes v1.20.2 control plane on loopback (the oldest version KEA supports): etcd,
//! kube-apiserver and kube-controller-manager, each on free ports, with a scratch directory for
//! data, certificates, keys, the kubeconfig and the components' logs.
//!
//! There is no kubelet and no scheduler: Deployments get ReplicaSets and Pods (owner references and
//! garbage collection are real), but Pods stay `Pending`. A test that needs "available" says so and
//! writes the Deployment status itself.
//!
//! Binaries: `$KEA_KUBE_BIN/kube-apiserver` and `kube-controller-manager` (default
//! `~/.cache/kea/kubernetes-1.20.2/bin`), `$KEA_ETCD` or `etcd` (Debian `etcd-server`). All of them
//! come from `scripts/kube-build.sh`.

use crate::free_port;
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersion;
use kube::discovery::{self, Scope};
use serde::Deserialize;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The field manager of every server-side apply the harness makes.
pub const FIELD_MANAGER: &str = "kea-tests";

/// The real Istio and Gateway API CRDs KEA writes objects of, vendored unchanged (provenance in
/// `manifests/third-party/README.md`).
pub const THIRD_PARTY_CRD_FILES: [&str; 2] = [
    "manifests/third-party/istio-1.30.3.yaml",
    "manifests/third-party/gateway-api-v1.6.1-standard-httproutes.yaml",
];

/// The CustomResourceDefinitions in [`THIRD_PARTY_CRD_FILES`].
pub const THIRD_PARTY_CRDS: [&str; 3] = [
    "wasmplugins.extensions.istio.io",
    "virtualservices.networking.istio.io",
    "httproutes.gateway.networking.k8s.io",
];

const BUILD_HINT: &str = "run scripts/kube-build.sh";

/// One of the control plane's processes; its log is `<name>.log` in the scratch directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Etcd,
    ApiServer,
    ControllerManager,
}

impl Component {
    pub fn name(self) -> &'static str {
        match self {
            Self::Etcd => "etcd",
            Self::ApiServer => "kube-apiserver",
            Self::ControllerManager => "kube-controller-manager",
        }
    }
}

/// A running control plane. Dropping it kills every process (the scratch directory goes with it).
#[derive(Debug)]
pub struct ControlPlane {
    etcd: Option<Child>,
    apiserver: Option<Child>,
    controller_manager: Option<Child>,
    etcd_port: u16,
    apiserver_port: u16,
    token: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver (waits for `/readyz`) and kube-controller-manager (waits until
    /// its service-account controllers have given `default/default` a token), ~15–25 s.
    pub fn start() -> Result<Self> {
        // Ports are picked free and released before the components bind them; a parallel test
        // can take one in between. A new pick fixes that.
        let mut attempt = 1;
        loop {
            match Self::start_once() {
                Err(err) if attempt < 3 && format!("{err:#}").contains("address already in use") => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    fn start_once() -> Result<Self> {
        // Checked first so that a missing component fails at once, with what to run.
        apiserver_binary()?;
        controller_manager_binary()?;
        etcd_binary()?;
        let dir = tempfile::tempdir()?;
        let token = random_hex()?;
        let mut plane = Self {
            etcd: None,
            apiserver: None,
            controller_manager: None,
            etcd_port: free_port()?,
            apiserver_port: free_port()?,
            token,
            kubeconfig: dir.path().join("kubeconfig"),
            dir,
        };
        plane.write_credentials()?;
        plane.launch_etcd()?;
        plane.launch_apiserver()?;
        plane.launch_controller_manager()?;
        Ok(plane)
    }

    /// The kubeconfig (server, CA file, bearer token of a `system:masters` user).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:<port>`.
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.apiserver_port)
    }

    /// The API server's secure port.
    pub fn port(&self) -> u16 {
        self.apiserver_port
    }

    /// The bearer token of the admin user (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The API server's self-signed serving certificate (with its CA), valid for 127.0.0.1.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("certs/apiserver.crt")
    }

    /// The scratch directory (data, keys, certificates, kubeconfig, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client authenticated as the admin user.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.kubeconfig).await
    }

    /// Kills the API server (SIGKILL) and starts it again with the same port, flags and
    /// certificates; etcd keeps the data. Returns once `/readyz` answers 200 again.
    pub fn restart_apiserver(&mut self) -> Result<()> {
        kill(&mut self.apiserver);
        self.launch_apiserver()
    }

    /// The last `lines` lines of a component's log.
    pub fn log_tail(&self, component: Component, lines: usize) -> String {
        tail(&self.log_path(component), lines)
    }

    /// A component's log file.
    pub fn log_path(&self, component: Component) -> PathBuf {
        self.dir.path().join(format!("{}.log", component.name()))
    }

    /// Server-side applies (field manager [`FIELD_MANAGER`], forced) every YAML document of `path`,
    /// in order, to the resource its `apiVersion`/`kind` name (found by discovery, so custom
    /// resources work once their CRD is served). Namespaced objects without a namespace go to
    /// `default`. Returns the objects as the server stored them.
    pub async fn apply_manifests(&self, path: &Path) -> Result<Vec<DynamicObject>> {
        let client = self.client().await?;
        let mut applied = Vec::new();
        for (index, value) in yaml_documents(path)?.into_iter().enumerate() {
            let object = apply(&client, value)
                .await
                .with_context(|| format!("applying {} document {}", path.display(), index + 1))?;
            applied.push(object);
        }
        Ok(applied)
    }

    /// Installs the real Istio and Gateway API CRDs, in the form this 1.20 server can store
    /// ([`for_kubernetes_1_20`]), and waits until they are served.
    pub async fn install_third_party_crds(&self) -> Result<Vec<DynamicObject>> {
        let client = self.client().await?;
        let mut applied = Vec::new();
        for file in THIRD_PARTY_CRD_FILES {
            for (index, mut crd) in yaml_documents(&crate::repo_root().join(file))?
                .into_iter()
                .enumerate()
            {
                for_kubernetes_1_20(&mut crd);
                let object = apply(&client, crd)
                    .await
                    .with_context(|| format!("applying {file} document {}", index + 1))?;
                applied.push(object);
            }
        }
        self.wait_crds_established(&THIRD_PARTY_CRDS).await?;
        Ok(applied)
    }

    /// Waits (up to 60 s) until every named CustomResourceDefinition has `Established=True`.
    pub async fn wait_crds_established(&self, names: &[&str]) -> Result<()> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client().await?);
        let deadline = Instant::now() + Duration::from_secs(60);
        for name in names {
            loop {
                let crd = crds.get_opt(name).await?;
                let established = crd
                    .as_ref()
                    .and_then(|crd| crd.status.as_ref())
                    .and_then(|status| status.conditions.as_ref())
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if established {
                    break;
                }
                if Instant::now() >= deadline {
                    let state = match crd {
                        None => "does not exist".to_string(),
                        Some(crd) => format!("status {:?}", crd.status),
                    };
                    bail!("CRD {name} not Established after 60 s: {state}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    fn write_credentials(&self) -> Result<()> {
        let dir = self.dir.path();
        fs::create_dir_all(dir.join("certs"))?;
        let key = dir.join("sa.key");
        run(Command::new("openssl")
            .arg("genrsa")
            .arg("-out")
            .arg(&key)
            .arg("2048"))?;
        run(Command::new("openssl")
            .arg("rsa")
            .arg("-in")
            .arg(&key)
            .arg("-pubout")
            .arg("-out")
            .arg(dir.join("sa.pub")))?;
        fs::write(
            dir.join("tokens.csv"),
            format!("{},admin,1,\"system:masters\"\n", self.token),
        )?;
        let kubeconfig = format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: kea-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n\
             users:\n\
             - name: admin\n  user:\n    token: {token}\n\
             contexts:\n\
             - name: kea-test\n  context:\n    cluster: kea-test\n    user: admin\n\
             current-context: kea-test\n",
            server = self.server(),
            ca = self.ca_path().display(),
            token = self.token,
        );
        fs::write(&self.kubeconfig, kubeconfig)?;
        Ok(())
    }

    fn launch_etcd(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let client_url = format!("http://127.0.0.1:{}", self.etcd_port);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let mut command = Command::new(etcd_binary()?);
        command
            .arg("--name=default")
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg("--logger=zap");
        self.etcd = Some(self.spawn(Component::Etcd, &mut command)?);
        let health = format!("{client_url}/health");
        self.wait(Component::Etcd, Duration::from_secs(30), || {
            let up = crate::http::get(&health)
                .ok()
                .filter(|r| r.status == 200 && r.body.contains("true"));
            async move { up.is_some() }
        })
    }

    fn launch_apiserver(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let mut command = Command::new(apiserver_binary()?);
        command
            .arg(format!("--etcd-servers=http://127.0.0.1:{}", self.etcd_port))
            .arg(format!("--secure-port={}", self.apiserver_port))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg("--insecure-port=0")
            .arg(format!("--cert-dir={}", dir.join("certs").display()))
            .arg(format!("--token-auth-file={}", dir.join("tokens.csv").display()))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!(
                "--service-account-key-file={}",
                dir.join("sa.pub").display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                dir.join("sa.key").display()
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            // The `kubernetes` Endpoints may not hold a loopback address: without this the server
            // logs "unable to sync kubernetes service" every 10 s.
            .arg("--endpoint-reconciler-type=none");
        self.apiserver = Some(self.spawn(Component::ApiServer, &mut command)?);
        let kubeconfig = self.kubeconfig.clone();
        self.wait(Component::ApiServer, Duration::from_secs(90), move || {
            let kubeconfig = kubeconfig.clone();
            async move { readyz(&kubeconfig).await.is_ok() }
        })
    }

    fn launch_controller_manager(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let mut command = Command::new(controller_manager_binary()?);
        command
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg("--leader-elect=false")
            .arg(format!(
                "--service-account-private-key-file={}",
                dir.join("sa.key").display()
            ))
            .arg(format!("--root-ca-file={}", self.ca_path().display()))
            .arg("--controllers=*,-csrsigning")
            .arg("--use-service-account-credentials=false")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={}", free_port()?))
            .arg("--port=0")
            .arg(format!("--cert-dir={}", dir.join("kcm-certs").display()));
        self.controller_manager = Some(self.spawn(Component::ControllerManager, &mut command)?);
        // Ready means its controllers run: the service-account controller made `default/default`
        // and the tokens controller gave it a token (Pods need both).
        let kubeconfig = self.kubeconfig.clone();
        self.wait(Component::ControllerManager, Duration::from_secs(60), move || {
            let kubeconfig = kubeconfig.clone();
            async move { default_service_account_has_token(&kubeconfig).await }
        })
    }

    fn spawn(&self, component: Component, command: &mut Command) -> Result<Child> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(component))?;
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} — {BUILD_HINT}", component.name()))
    }

    /// Polls `ready` until it holds, failing early (with the log's tail) if the process exits.
    fn wait<F, Fut>(&mut self, component: Component, timeout: Duration, ready: F) -> Result<()>
    where
        F: Fn() -> Fut + Send,
        Fut: Future<Output = bool> + Send,
    {
        let child = match component {
            Component::Etcd => self.etcd.as_mut(),
            Component::ApiServer => self.apiserver.as_mut(),
            Component::ControllerManager => self.controller_manager.as_mut(),
        }
        .ok_or_else(|| anyhow!("{} is not running", component.name()))?;
        let outcome = block_on(async move {
            let deadline = Instant::now() + timeout;
            loop {
                if let Some(status) = child.try_wait()? {
                    bail!("exited with {status}");
                }
                if ready().await {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    bail!("not ready after {timeout:?}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        outcome.with_context(|| {
            format!(
                "{} did not start; last lines of {}:\n{}",
                component.name(),
                self.log_path(component).display(),
                self.log_tail(component, 40)
            )
        })
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        kill(&mut self.controller_manager);
        kill(&mut self.apiserver);
        kill(&mut self.etcd);
    }
}

fn apiserver_binary() -> Result<PathBuf> {
    kube_binary("kube-apiserver")
}

fn controller_manager_binary() -> Result<PathBuf> {
    kube_binary("kube-controller-manager")
}

/// `$KEA_KUBE_BIN/<name>`, else `kubernetes-1.20.2/bin/<name>` under the cache (`$KEA_CACHE`,
/// default `~/.cache/kea`), as `scripts/lib.sh` sets it.
fn kube_binary(name: &str) -> Result<PathBuf> {
    let bin = match std::env::var_os("KEA_KUBE_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let cache = match std::env::var_os("KEA_CACHE") {
                Some(cache) => PathBuf::from(cache),
                None => {
                    PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".cache/kea")
                }
            };
            cache.join("kubernetes-1.20.2/bin")
        }
    };
    let path = bin.join(name);
    if !path.is_file() {
        bail!(
            "{name} not found at {} ($KEA_KUBE_BIN) — {BUILD_HINT}",
            path.display()
        );
    }
    Ok(path)
}

/// `$KEA_ETCD`, else `etcd` on PATH, else Debian's `/usr/bin/etcd`.
fn etcd_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("KEA_ETCD") {
        let path = PathBuf::from(path);
        if !path.exists() {
            bail!("etcd not found at {} ($KEA_ETCD) — {BUILD_HINT}", path.display());
        }
        return Ok(path);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("etcd"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/bin/etcd")])
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow!("etcd not found on PATH or at /usr/bin/etcd — {BUILD_HINT} (Debian etcd-server)")
        })
}

/// A client for the cluster of a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let config = Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// `GET /readyz` with the admin token; an error unless 200.
async fn readyz(kubeconfig: &Path) -> Result<()> {
    let client = client_from(kubeconfig).await?;
    let request = http_request("/readyz")?;
    tokio::time::timeout(Duration::from_secs(5), client.request_text(request)).await??;
    Ok(())
}

fn http_request(path: &str) -> Result<::http::Request<Vec<u8>>> {
    Ok(::http::Request::builder()
        .method("GET")
        .uri(path)
        .body(Vec::new())?)
}

async fn default_service_account_has_token(kubeconfig: &Path) -> bool {
    let Ok(client) = client_from(kubeconfig).await else {
        return false;
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    match tokio::time::timeout(Duration::from_secs(5), accounts.get_opt("default")).await {
        Ok(Ok(Some(account))) => account.secrets.is_some_and(|secrets| !secrets.is_empty()),
        _ => false,
    }
}

/// Server-side applies one object (field manager [`FIELD_MANAGER`], forced) to the resource its
/// `apiVersion`/`kind` name; namespaced objects without a namespace go to `default`.
/// The YAML documents of `path` as JSON, empty ones left out.
pub fn yaml_documents(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value = serde_json::Value::deserialize(document)
            .with_context(|| format!("{} document {}", path.display(), index + 1))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// What a 1.20 API server cannot store of a current CRD, removed: `x-kubernetes-validations`
/// (CEL arrived in 1.25; server-side apply refuses the unknown keyword) and `default: ""` on
/// strings (refused as "null" by 1.20). The conformance checker applies both from the
/// unmodified files (`crate::conformance`).
pub fn for_kubernetes_1_20(node: &mut serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            if map.get("default").and_then(serde_json::Value::as_str) == Some("") {
                map.remove("default");
            }
            map.values_mut().for_each(for_kubernetes_1_20);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(for_kubernetes_1_20),
        _ => {}
    }
}

pub async fn apply(client: &kube::Client, value: serde_json::Value) -> Result<DynamicObject> {
    let object: DynamicObject = serde_json::from_value(value)?;
    let types = object.types.clone().context("document has no apiVersion/kind")?;
    let name = object
        .metadata
        .name
        .clone()
        .context("document has no metadata.name")?;
    let gv: GroupVersion = types.api_version.parse()?;
    let gvk = GroupVersionKind::gvk(&gv.group, &gv.version, &types.kind);
    // A kind whose CRD was applied a moment ago is served once the CRD is Established.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (resource, capabilities) = loop {
        match discovery::pinned_kind(client, &gvk).await {
            Ok(found) => break found,
            Err(err) if Instant::now() >= deadline => {
                return Err(
                    anyhow!(err).context(format!("{}/{} is not served", types.api_version, types.kind))
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Ok(api.patch(&name, &params, &Patch::Apply(&object)).await?)
}

/// Runs a future to completion on a fresh single-threaded runtime in its own thread, so the
/// blocking API works both from plain `#[test]`s and from inside `#[tokio::test]`s.
fn block_on<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(future)
            })
            .join()
            .map_err(|_| anyhow!("the harness thread panicked"))?
    })
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn run(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// 32 hex digits from the OS's randomness.
fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The last `lines` lines of a file (reading at most its last 256 KiB).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let length = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(256 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
