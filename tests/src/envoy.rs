//! Real Envoy on loopback with KEA plugins loaded from `dist/`.

use crate::{envoy_binary, free_port, http, plugin_wasm, wait_for};
use anyhow::{bail, Context, Result};
use kea_suite::SECTIONS;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A plugin in the filter chain: `dist/<name>.wasm` with its JSON configuration.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: String,
    pub wasm: PathBuf,
    pub config: Value,
    /// Environment variables of the plugin's VM (`vm_config.environment_variables`).
    pub env: Vec<(String, String)>,
}

impl PluginSpec {
    pub fn new(name: &str, config: Value) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            wasm: plugin_wasm(name)?,
            config,
            env: Vec::new(),
        })
    }
}

/// The combined module's name: `dist/kea.wasm`.
pub const COMBINED: &str = "kea";

/// How a gateway's plugins are deployed: each in its own filter and VM, or together as stages of
/// the combined module. The end-to-end suites run against both (`KEA_DEPLOYMENT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Deployment {
    #[default]
    Separate,
    Combined,
}

impl Deployment {
    /// `KEA_DEPLOYMENT=combined` or `separate` (the default).
    pub fn from_env() -> Result<Self> {
        match std::env::var("KEA_DEPLOYMENT").as_deref() {
            Err(_) | Ok("") | Ok("separate") => Ok(Self::Separate),
            Ok("combined") => Ok(Self::Combined),
            Ok(other) => bail!("KEA_DEPLOYMENT={other}: expected separate or combined"),
        }
    }

    /// The filters for `plugins`. Combined, KEA plugins in the module's order (each once) become
    /// one `kea.wasm` filter whose sections are their configurations; any other arrangement (a
    /// plugin twice, out of order, another module) cannot be one module and stays separate.
    pub fn deploy(self, plugins: &[PluginSpec]) -> Result<Vec<PluginSpec>> {
        let order: Option<Vec<usize>> = plugins
            .iter()
            .map(|p| SECTIONS.iter().position(|s| *s == p.name))
            .collect();
        let combinable = order.is_some_and(|order| order.windows(2).all(|w| w[0] < w[1]));
        if self == Self::Separate || plugins.is_empty() || !combinable {
            return Ok(plugins.to_vec());
        }
        let sections: serde_json::Map<String, Value> = plugins
            .iter()
            .map(|p| (p.name.clone(), p.config.clone()))
            .collect();
        Ok(vec![PluginSpec {
            name: COMBINED.into(),
            wasm: plugin_wasm(COMBINED)?,
            config: Value::Object(sections),
            env: plugins.iter().flat_map(|p| p.env.clone()).collect(),
        }])
    }
}

/// The start of the line Envoy logs when `plugin`'s configuration is refused at `path`, as the
/// plugins are deployed (`KEA_DEPLOYMENT`): the combined module names the section too.
pub fn rejected_at(plugin: &str, path: &str) -> Result<String> {
    Ok(match Deployment::from_env()? {
        Deployment::Separate => {
            format!("kea-{plugin}: configuration rejected: invalid configuration at {path}")
        }
        Deployment::Combined => {
            format!("{COMBINED}: configuration rejected: invalid configuration at {plugin}.{path}")
        }
    })
}

/// What the generated Envoy configuration contains.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub listen_port: u16,
    pub admin_port: u16,
    pub upstream_port: u16,
    pub plugins: Vec<PluginSpec>,
    /// Extra STATIC clusters (name, port on 127.0.0.1), e.g. a log store for the audit sink.
    pub clusters: Vec<(String, u16)>,
    /// Envoy's own HTTP filters (full filter entries), placed before the plugins; the benchmark
    /// compares plugins with them (e.g. `envoy.filters.http.jwt_authn`).
    pub native_filters: Vec<Value>,
    /// The virtual host's routes instead of one route to the upstream.
    pub routes: Option<Value>,
}

fn cluster(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
        ]}]}
    })
}

/// The wasm HTTP filter entry for one plugin. Each plugin gets its own VM (`vm_id`), shared by
/// every filter instance on a worker.
pub fn wasm_filter(plugin: &PluginSpec) -> Value {
    let id = format!("kea.{}", plugin.name);
    json!({
        "name": id,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": id,
                "root_id": id,
                "fail_open": false,
                // The validate plugin holds request headers until the body is checked: Envoy
                // must let its StopIteration stand instead of pausing the body too.
                "allow_on_headers_stop_iteration": plugin.name == "validate" || plugin.name == COMBINED,
                "vm_config": {
                    "vm_id": id,
                    "runtime": "envoy.wasm.runtime.v8",
                    "code": {"local": {"filename": plugin.wasm.display().to_string()}},
                    "environment_variables": {"key_values": plugin.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<String, Value>>()}
                },
                "configuration": {
                    "@type": "type.googleapis.com/google.protobuf.StringValue",
                    "value": plugin.config.to_string()
                }
            }
        }
    })
}

impl GatewaySpec {
    /// Envoy bootstrap as JSON (Envoy reads JSON config files directly).
    pub fn bootstrap(&self) -> Value {
        let mut filters: Vec<Value> = self.native_filters.clone();
        filters.extend(self.plugins.iter().map(wasm_filter));
        filters.push(json!({
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
        }));
        let mut clusters = vec![cluster("upstream", self.upstream_port)];
        clusters.extend(self.clusters.iter().map(|(name, port)| cluster(name, *port)));
        json!({
            "static_resources": {
                "listeners": [{
                    "name": "ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.listen_port}},
                    "filter_chains": [{"filters": [{
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": "ingress",
                            "route_config": {
                                "name": "local",
                                "virtual_hosts": [{
                                    "name": "all",
                                    "domains": ["*"],
                                    "routes": self.routes.clone().unwrap_or_else(|| json!([{"name": "default", "match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "5s"}}]))
                                }]
                            },
                            "http_filters": filters
                        }
                    }]}]
                }],
                "clusters": clusters
            },
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}}
        })
    }
}

/// Builder for a test gateway.
#[derive(Debug)]
pub struct EnvoyBuilder {
    upstream_port: u16,
    plugins: Vec<PluginSpec>,
    clusters: Vec<(String, u16)>,
    native_filters: Vec<Value>,
    concurrency: u32,
    wasm_log_level: String,
    listen_port: Option<u16>,
    routes: Option<Value>,
    deployment: Option<Deployment>,
}

impl EnvoyBuilder {
    pub fn new(upstream_port: u16) -> Self {
        Self {
            upstream_port,
            plugins: Vec::new(),
            clusters: Vec::new(),
            native_filters: Vec::new(),
            concurrency: 1,
            wasm_log_level: "info".into(),
            listen_port: None,
            routes: None,
            deployment: None,
        }
    }

    /// Deploys the plugins this way whatever `KEA_DEPLOYMENT` says (the benchmark compares both).
    pub fn deployment(mut self, deployment: Deployment) -> Self {
        self.deployment = Some(deployment);
        self
    }

    /// The virtual host's routes (Envoy route entries) instead of one route to the upstream.
    pub fn routes(mut self, routes: Value) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Listens on this port instead of a free one (when another component must know the
    /// gateway's address first, e.g. an identity provider's registered redirect URI).
    pub fn listen_port(mut self, port: u16) -> Self {
        self.listen_port = Some(port);
        self
    }

    pub fn plugin(mut self, name: &str, config: Value) -> Result<Self> {
        self.plugins.push(PluginSpec::new(name, config)?);
        Ok(self)
    }

    /// Adds an environment variable to the VM of the plugin added last.
    pub fn plugin_env(mut self, key: &str, value: &str) -> Self {
        if let Some(plugin) = self.plugins.last_mut() {
            plugin.env.push((key.into(), value.into()));
        }
        self
    }

    /// Adds one of Envoy's own HTTP filters (a complete filter entry) before the plugins.
    pub fn native_filter(mut self, filter: Value) -> Self {
        self.native_filters.push(filter);
        self
    }

    pub fn cluster(mut self, name: &str, port: u16) -> Self {
        self.clusters.push((name.into(), port));
        self
    }

    pub fn concurrency(mut self, workers: u32) -> Self {
        self.concurrency = workers;
        self
    }

    pub fn wasm_log_level(mut self, level: &str) -> Self {
        self.wasm_log_level = level.into();
        self
    }

    fn spec(&self) -> Result<GatewaySpec> {
        Ok(GatewaySpec {
            listen_port: match self.listen_port {
                Some(port) => port,
                None => free_port()?,
            },
            admin_port: free_port()?,
            upstream_port: self.upstream_port,
            plugins: match self.deployment {
                Some(deployment) => deployment,
                None => Deployment::from_env()?,
            }
            .deploy(&self.plugins)?,
            clusters: self.clusters.clone(),
            native_filters: self.native_filters.clone(),
            routes: self.routes.clone(),
        })
    }

    /// Starts Envoy and waits until it is ready; fails with the log if it does not come up.
    pub fn start(self) -> Result<Envoy> {
        // Ports are picked free and released before Envoy binds them; a parallel test can take one
        // in between. That shows as a bind failure, and a new pick fixes it.
        let mut attempt = 1;
        loop {
            match self.start_once() {
                Err(err) if attempt < 3 && format!("{err:#}").contains("ddress already in use") => {
                    attempt += 1
                }
                other => return other,
            }
        }
    }

    fn start_once(&self) -> Result<Envoy> {
        let (mut child, spec, dir) = self.launch()?;
        let ready = format!("http://127.0.0.1:{}/ready", spec.admin_port);
        let log_path = dir.path().join("envoy.log");
        let outcome = wait_for(Duration::from_secs(60), "Envoy to become ready", || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            http::get(&ready).ok().filter(|r| r.status == 200).map(|_| Ok(()))
        })?;
        if let Err(status) = outcome {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            bail!(
                "Envoy exited ({status}) before becoming ready:\n{}",
                tail(&log, 40)
            );
        }
        Ok(Envoy {
            child: Some(child),
            spec,
            dir,
            log_path,
        })
    }

    /// Starts Envoy expecting it to refuse the configuration; returns its log.
    pub fn start_expecting_failure(self) -> Result<String> {
        let (mut child, spec, dir) = self.launch()?;
        let ready = format!("http://127.0.0.1:{}/ready", spec.admin_port);
        let exited = wait_for(
            Duration::from_secs(60),
            "Envoy to reject the configuration",
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(Some(status));
                }
                http::get(&ready).ok().filter(|r| r.status == 200).map(|_| None)
            },
        )?;
        let log = fs::read_to_string(dir.path().join("envoy.log")).unwrap_or_default();
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "Envoy accepted a configuration it should have rejected:\n{}",
                tail(&log, 20)
            );
        }
        Ok(log)
    }

    fn launch(&self) -> Result<(Child, GatewaySpec, tempfile::TempDir)> {
        let spec = self.spec()?;
        let dir = tempfile::tempdir()?;
        let config_path = dir.path().join("envoy.json");
        fs::write(&config_path, serde_json::to_vec_pretty(&spec.bootstrap())?)?;
        let log = fs::File::create(dir.path().join("envoy.log"))?;
        let child = Command::new(envoy_binary()?)
            .arg("-c")
            .arg(&config_path)
            .args([
                "--use-dynamic-base-id",
                "--concurrency",
                &self.concurrency.to_string(),
            ])
            .args([
                "-l",
                "warning",
                "--component-log-level",
                &format!("wasm:{}", self.wasm_log_level),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start Envoy")?;
        Ok((child, spec, dir))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running Envoy; stopped when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Option<Child>,
    pub spec: GatewaySpec,
    dir: tempfile::TempDir,
    log_path: PathBuf,
}

impl Envoy {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.spec.listen_port, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.spec.admin_port, path)
    }

    /// Everything Envoy has logged so far.
    pub fn logs(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Audit records (or any JSON lines) the wasm VMs logged, parsed.
    pub fn logged_json(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter(|line| line.contains("[wasm]"))
            .filter_map(|line| line.find(": {").map(|at| &line[at + 2..]))
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect()
    }

    /// Waits (up to 10 s) for a logged JSON record whose `field` equals `value`.
    pub fn wait_for_record(&self, field: &str, value: &str) -> Result<Value> {
        wait_for(
            Duration::from_secs(10),
            &format!("a record with {field} = {value}"),
            || self.logged_json().into_iter().find(|r| r[field] == value),
        )
    }

    /// A stat (counter or gauge) by its full name, e.g. `wasmcustom.kea_audit_records_total`.
    /// KEA's own (`wasmcustom.`) are read after one flush of the counters each worker's VM
    /// accumulates (at most `METRICS_FLUSH_PERIOD` behind), so they include every request that
    /// was answered before the call.
    pub fn stat(&self, name: &str) -> Option<i64> {
        if name.starts_with("wasmcustom.") {
            std::thread::sleep(kea_plugin_sdk::caching::METRICS_FLUSH_PERIOD * 2);
        }
        let body = http::get(&self.admin_url(&format!("/stats?filter=^{}$", name.replace('.', "\\."))))
            .ok()?
            .body;
        body.lines().find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Memory Envoy has allocated (`server.memory_allocated`).
    pub fn memory_allocated(&self) -> Option<i64> {
        self.stat("server.memory_allocated")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Envoy running a configuration file (e.g. one `kea render` wrote) with two workers; killed
/// when dropped.
#[derive(Debug)]
pub struct EnvoyProcess {
    child: Child,
    log: PathBuf,
}

impl EnvoyProcess {
    /// Starts Envoy on `config` (its log in `log`, wasm logs at info) and waits until the admin
    /// interface on `admin` says ready; fails with the log's tail if it exits or never gets ready.
    pub fn start(config: &Path, admin: u16, log: &Path) -> Result<Self> {
        let file = fs::File::create(log)?;
        let child = Command::new(envoy_binary()?)
            .arg("-c")
            .arg(config)
            .args(["--use-dynamic-base-id", "--concurrency", "2", "-l", "warning"])
            .args(["--component-log-level", "wasm:info"])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("cannot start Envoy")?;
        let mut envoy = Self {
            child,
            log: log.to_path_buf(),
        };
        let ready = format!("http://127.0.0.1:{admin}/ready");
        let outcome = wait_for(Duration::from_secs(60), "Envoy to become ready", || {
            if let Ok(Some(status)) = envoy.child.try_wait() {
                return Some(Err(status));
            }
            http::get(&ready).ok().filter(|r| r.status == 200).map(|_| Ok(()))
        });
        match outcome {
            Ok(Ok(())) => Ok(envoy),
            Ok(Err(status)) => bail!("Envoy exited ({status}):\n{}", envoy.log_tail(40)),
            Err(error) => bail!("{error}:\n{}", envoy.log_tail(40)),
        }
    }

    /// The last `lines` lines of Envoy's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
