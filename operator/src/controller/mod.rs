//! The operator: two controllers (ApiDefinition, GatewayBinding) run by the replica holding the
//! leader Lease; every replica serves `/healthz`, `/readyz`, `/metrics` and the bundles.

mod api;
pub mod apply;
mod gateway;
pub mod http;
pub mod lease;
pub mod metrics;
mod model;
pub mod portal;
mod registry;
mod standalone;

use crate::crd::{ApiDefinition, GatewayBinding, Model, PluginSource};
use crate::render::objects::BUNDLE_LABEL;
use crate::render::plugins::{BundleEndpoint, Module};
use crate::render::standalone::XDS_LABEL;
use anyhow::Context as _;
use apply::Applier;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client};
use metrics::Metrics;
use registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::instrument;

/// `kea operator` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "kea-system")]
    pub namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kea-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease (default: the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Lease duration: a standby takes over this long after the leader stops renewing.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// Address of the HTTP endpoint (health, metrics, bundles, docs).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Directory holding the docs portal's in-browser validator (`kea_validator.js`,
    /// `kea_validator_bg.wasm`, built by `scripts/web-build.sh` into `dist/web`); without it the
    /// portal works, but requests are only checked by the gateway.
    #[arg(long, env = "KEA_PORTAL_ASSETS")]
    pub portal_assets: Option<PathBuf>,
    /// URL of the published plugin modules; `{plugin}` becomes kea (the combined module), or
    /// audit, auth, validate or cache (e.g. `oci://registry.example.com/kea/plugins/{plugin}:0.1.0`, pushed by
    /// `scripts/publish-plugins.sh`). Without it, Istio gateways need `spec.plugins.<p>.url` and
    /// standalone gateways load the modules in their image.
    #[arg(long, env = "KEA_PLUGIN_URL")]
    pub plugin_url: Option<String>,
    /// `sha256sum` output for the modules (`dist/SHA256SUMS`), pinned into the WasmPlugins.
    #[arg(long)]
    pub plugin_digests: Option<PathBuf>,
    /// Base URL at which gateways reach this operator's bundle endpoint.
    #[arg(long, default_value = "http://kea-operator.kea-system.svc.cluster.local:8080")]
    pub bundle_url: String,
    /// Envoy cluster that reaches it from the gateway.
    #[arg(
        long,
        default_value = "outbound|8080||kea-operator.kea-system.svc.cluster.local"
    )]
    pub bundle_cluster: String,
    /// Objects are re-applied (repairing hand edits) and APIs re-evaluated at least this often.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5m")]
    pub resync: Duration,
    /// Reconciles running at once, per controller.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// Image of standalone gateways (Envoy with the KEA plugins), unless their binding names one.
    #[arg(long, env = "KEA_GATEWAY_IMAGE")]
    pub gateway_image: Option<String>,
    /// Registries (`HOST:PORT`) reached over plain HTTP when plugin modules are checked and
    /// downloaded (a registry inside the cluster without TLS).
    #[arg(long, value_delimiter = ',', env = "KEA_INSECURE_REGISTRIES")]
    pub insecure_registry: Vec<String>,
    /// Repository prefix the images of Models are pushed to (e.g. `registry.example.com/kea/models`);
    /// each version becomes `<prefix>/<namespace>-<model>:<version>-<package>`.
    #[arg(long, env = "KEA_MODEL_REGISTRY")]
    pub model_registry: Option<String>,
    /// Image of the build Jobs that package model versions (`kea/builder`: buildah).
    #[arg(long, env = "KEA_BUILDER_IMAGE")]
    pub builder_image: Option<String>,
    /// KEA's runtime image per framework, `FRAMEWORK=IMAGE` (sklearn, xgboost, onnx, pytorch,
    /// tensorflow, custom); model images are built on them.
    #[arg(long, value_delimiter = ',', value_parser = framework_image, env = "KEA_RUNTIME_IMAGES")]
    pub runtime_image: Vec<(String, String)>,
    /// This operator's own image (`kea`): the build Jobs of `custom` Models without
    /// `spec.signature` run it to read the tensors the serving class declares (`kea model signature
    /// --json`). Without it those models are served with the generic Open Inference Protocol
    /// document (condition `Documented=False`, `OperatorImageUnknown`).
    #[arg(long, env = "KEA_OPERATOR_IMAGE")]
    pub operator_image: Option<String>,
}

fn framework_image(text: &str) -> Result<(String, String), String> {
    let (framework, image) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: FRAMEWORK=IMAGE"))?;
    let known = crate::crd::Framework::ALL.iter().any(|f| f.name() == framework);
    if !known || image.is_empty() {
        return Err(format!("{text:?}: FRAMEWORK=IMAGE with FRAMEWORK one of sklearn, xgboost, onnx, pytorch, tensorflow, custom"));
    }
    Ok((framework.to_string(), image.to_string()))
}

/// What both controllers share during one leadership term.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub applier: Applier,
    pub metrics: Arc<Metrics>,
    pub registry: Mutex<Registry>,
    pub apis: Store<ApiDefinition>,
    pub gateways: Store<GatewayBinding>,
    pub digests: BTreeMap<String, String>,
    /// Triggers: the API controller asks for its gateway's reconcile and vice versa.
    pub gateway_trigger: futures::channel::mpsc::UnboundedSender<ObjectRef<GatewayBinding>>,
    pub api_trigger: futures::channel::mpsc::UnboundedSender<ObjectRef<ApiDefinition>>,
    /// Which PodDisruptionBudget API the server has (asked once).
    pub pdb_version: tokio::sync::OnceCell<crate::render::standalone::PdbVersion>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Applies `object` with the operator's field manager and counts it in `writes_total` when it
    /// was written (an unchanged object within the refresh period is skipped).
    pub async fn apply(&self, object: &serde_json::Value) -> Result<bool, kube::Error> {
        let written = self.applier.apply(object).await?;
        if written {
            self.metrics.writes.inc();
        }
        Ok(written)
    }

    pub fn endpoint(&self, binding: &GatewayBinding) -> BundleEndpoint {
        BundleEndpoint {
            url: binding
                .spec
                .bundles
                .url
                .clone()
                .unwrap_or_else(|| self.settings.bundle_url.clone()),
            cluster: binding
                .spec
                .bundles
                .cluster
                .clone()
                .unwrap_or_else(|| self.settings.bundle_cluster.clone()),
        }
    }

    /// Where `module` is for `binding`: its own setting, else the operator's default; `None` when
    /// neither gives one.
    pub fn source(&self, binding: &GatewayBinding, module: Module) -> Option<PluginSource> {
        crate::render::objects::plugin_source(
            &binding.spec,
            module,
            self.settings.plugin_url.as_deref(),
            &self.digests,
        )
    }
}

/// Waits until both controllers' caches hold their first list: each controller only waits for
/// its own, and each reads the other's.
pub async fn caches_ready(ctx: &Context) {
    // `Store::wait_until_ready` keeps the waker of only the last task that polled it (a oneshot
    // underneath), so with several reconciles waiting some would never wake: poll it again.
    for store_ready in [
        Box::pin(async { ctx.apis.wait_until_ready().await.is_ok() })
            as std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + '_>>,
        Box::pin(async { ctx.gateways.wait_until_ready().await.is_ok() }),
    ] {
        let mut store_ready = store_ready;
        while tokio::time::timeout(Duration::from_millis(100), &mut store_ready)
            .await
            .is_err()
        {}
    }
}

/// Reads `sha256sum` output: `<hex>  <plugin>.wasm` per line.
fn read_digests(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (hex, file) = line.split_once(char::is_whitespace)?;
            let plugin = file.trim().trim_start_matches('*').strip_suffix(".wasm")?;
            Some((plugin.to_string(), hex.to_string()))
        })
        .collect())
}

/// Runs the operator until SIGTERM/SIGINT.
#[instrument(level = "info", skip_all, err(Display))]
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    // Secrets the plugin configurations name (`...Env`) are in the gateways' VMs, not here.
    kea_plugin_sdk::config::check_without_secrets();
    let client = Client::try_default()
        .await
        .context("no Kubernetes configuration (KUBECONFIG or in-cluster)")?;
    let digests = match &settings.plugin_digests {
        Some(path) => read_digests(path)?,
        None => BTreeMap::new(),
    };
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });

    // Every replica serves bundles and standalone gateways' xDS resources from ConfigMaps.
    let ready = Arc::new(AtomicBool::new(false));
    let bundles = watch_config_maps(&client, BUNDLE_LABEL);
    let xds = watch_config_maps(&client, XDS_LABEL);
    {
        let (bundles, xds, ready) = (bundles.clone(), xds.clone(), ready.clone());
        tokio::spawn(async move {
            if bundles.wait_until_ready().await.is_ok() && xds.wait_until_ready().await.is_ok() {
                ready.store(true, Ordering::Relaxed);
            }
        });
    }
    let http_state = http::HttpState {
        bundles,
        apis: watch_all::<ApiDefinition>(&client),
        gateways: watch_all::<GatewayBinding>(&client),
        models: watch_all::<Model>(&client),
        portal_assets: settings.portal_assets.clone(),
        summaries: Arc::default(),
        gzipped: Arc::default(),
        xds,
        metrics: metrics.clone(),
        ready,
    };
    let server = tokio::spawn(http::serve(settings.listen, http_state, stopped(stop_rx.clone())));

    let identity = settings.identity.clone().unwrap_or_else(default_identity);
    let elector = lease::Elector::new(
        client.clone(),
        &settings.namespace,
        &settings.lease_name,
        &identity,
        settings.lease_duration,
    );
    tracing::info!(identity, lease = %format!("{}/{}", settings.namespace, settings.lease_name), "candidate for leadership");
    while !*stop_rx.borrow() {
        // The lease counts from before the request: the server may have written it long before
        // the answer arrives.
        let attempt = tokio::time::Instant::now();
        match tokio::time::timeout(elector.renew_deadline(), elector.try_acquire_or_renew())
            .await
            .unwrap_or(Ok(false))
        {
            Ok(true) => {
                tracing::info!(identity, "leading");
                metrics.leader.set(1);
                lead(
                    &client,
                    &settings,
                    &digests,
                    &metrics,
                    &elector,
                    attempt,
                    stop_rx.clone(),
                )
                .await;
                metrics.leader.set(0);
                tracing::info!(identity, "no longer leading");
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "cannot reach the leader Lease"),
        }
        let mut stop = stop_rx.clone();
        tokio::select! {
            _ = tokio::time::sleep(elector.retry_period()) => {}
            _ = stop.changed() => {}
        }
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "could not release the leader Lease");
    }
    let _ = server.await;
    Ok(())
}

/// A cache of every object of a kind, kept by a watch (the docs portal reads them on every replica).
fn watch_all<K>(client: &Client) -> Store<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let watch = watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
    tokio::spawn(watch);
    store
}

/// A cache of the ConfigMaps labelled `<label>=true` in every namespace, kept by a watch.
fn watch_config_maps(client: &Client, label: &str) -> Store<ConfigMap> {
    let (store, writer) = reflector::store();
    let config_maps: Api<ConfigMap> = Api::all(client.clone());
    let watch = watcher(
        config_maps,
        watcher::Config::default().labels(&format!("{label}=true")),
    )
    .default_backoff()
    .reflect(writer)
    .for_each(|_| async {});
    tokio::spawn(watch);
    store
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{host}-{}", std::process::id())
}

/// One leadership term: runs both controllers while renewing the lease; returns when the lease is
/// lost (not renewed within the deadline) or on shutdown, after the controllers stopped.
#[instrument(level = "info", skip_all)]
async fn lead(
    client: &Client,
    settings: &Settings,
    digests: &BTreeMap<String, String>,
    metrics: &Arc<Metrics>,
    elector: &lease::Elector,
    acquired: tokio::time::Instant,
    stop: watch::Receiver<bool>,
) {
    let (term_tx, term_rx) = watch::channel(false);
    let api_api: Api<ApiDefinition> = Api::all(client.clone());
    let gateway_api: Api<GatewayBinding> = Api::all(client.clone());
    let config = kube::runtime::controller::Config::default().concurrency(settings.concurrency);
    let api_controller =
        Controller::new(api_api.clone(), watcher::Config::default()).with_config(config.clone());
    let gateway_controller = Controller::new(gateway_api.clone(), watcher::Config::default())
        // Bursts of API changes become one gateway render.
        .with_config(config.clone().debounce(Duration::from_millis(300)));
    let (gateway_trigger, gateway_triggers) = futures::channel::mpsc::unbounded();
    let (api_trigger, api_triggers) = futures::channel::mpsc::unbounded();
    let context = Arc::new(Context {
        client: client.clone(),
        settings: settings.clone(),
        applier: Applier::new(client.clone(), settings.resync),
        metrics: metrics.clone(),
        registry: Mutex::new(Registry::default()),
        apis: api_controller.store(),
        gateways: gateway_controller.store(),
        digests: digests.clone(),
        gateway_trigger,
        api_trigger,
        pdb_version: tokio::sync::OnceCell::new(),
    });

    let apis_of_gateway = {
        let apis = context.apis.clone();
        move |binding: GatewayBinding| {
            let namespace = binding.metadata.namespace.clone().unwrap_or_default();
            let name = binding.metadata.name.clone().unwrap_or_default();
            apis.state()
                .iter()
                .filter(|api| {
                    api::gateway_key(api).name == name && api::gateway_key(api).namespace == namespace
                })
                .map(|api| ObjectRef::from(api.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let api_run = api_controller
        .watches(gateway_api, watcher::Config::default(), apis_of_gateway)
        .reconcile_on(api_triggers)
        .graceful_shutdown_on(stopped(term_rx.clone()))
        .run(api::reconcile, api::error_policy, context.clone())
        .for_each(|_| async {});
    // A standalone gateway's Deployment changing (Pods ready, failing) updates its binding.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client.clone());
    let gateway_run = gateway_controller
        .owns(
            deployments,
            watcher::Config::default().labels(&format!(
                "{}={}",
                crate::render::standalone::APP_LABEL.0,
                crate::render::standalone::APP_LABEL.1
            )),
        )
        .watches(
            api_api.clone(),
            watcher::Config::default(),
            |api: ApiDefinition| {
                let key = api::gateway_key(&api);
                Some(ObjectRef::<GatewayBinding>::new(&key.name).within(&key.namespace))
            },
        )
        .reconcile_on(gateway_triggers)
        .graceful_shutdown_on(stopped(term_rx.clone()))
        .run(gateway::reconcile, gateway::error_policy, context.clone())
        .for_each(|_| async {});
    // Models: what they own (build Jobs, Deployments, ApiDefinitions) changing wakes them.
    let model_label = watcher::Config::default().labels(crate::render::model::objects::MODEL_LABEL);
    let model_run = Controller::new(Api::<Model>::all(client.clone()), watcher::Config::default())
        .with_config(config.clone())
        .owns(
            Api::<k8s_openapi::api::batch::v1::Job>::all(client.clone()),
            model_label.clone(),
        )
        .owns(
            Api::<k8s_openapi::api::apps::v1::Deployment>::all(client.clone()),
            model_label.clone(),
        )
        .owns(api_api.clone(), model_label)
        .graceful_shutdown_on(stopped(term_rx.clone()))
        .run(model::reconcile, model::error_policy, context.clone())
        .for_each(|_| async {});
    let controllers = futures::future::join3(api_run, gateway_run, model_run);
    tokio::pin!(controllers);

    // Ends with `true` on shutdown, `false` when the lease is lost.
    let keep_lease = async {
        let mut stop = stop.clone();
        let mut last_renewal = acquired;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(elector.retry_period()) => {}
                _ = stop.changed() => return true,
            }
            if *stop.borrow() {
                return true;
            }
            // A renewal that hangs must not outlive the deadline either.
            let left = elector.renew_deadline().saturating_sub(last_renewal.elapsed());
            let attempt = tokio::time::Instant::now();
            match tokio::time::timeout(left, elector.try_acquire_or_renew()).await {
                Ok(Ok(true)) => last_renewal = attempt,
                Ok(Ok(false)) => {
                    tracing::warn!("another replica holds the lease");
                    return false;
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot renew the leader lease"),
                Err(_) => tracing::warn!("renewing the leader lease timed out"),
            }
            if last_renewal.elapsed() >= elector.renew_deadline() {
                tracing::warn!("lease not renewed within the deadline: stepping down");
                return false;
            }
        }
    };
    tokio::select! {
        _ = &mut controllers => {}
        shutdown = keep_lease => {
            if shutdown {
                // Let the reconciles in flight finish; the lease is still ours until released.
                let _ = term_tx.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut controllers).await;
            }
            // Lost: the controllers are dropped at once, before another replica can lead.
        }
    }
    context.applier.forget();
}

/// The condition message when the API server refuses to write `kind` for good — the object is
/// invalid (400, 422) or too large (413), or server-side apply's 500 for a field the cluster's
/// CRD does not declare (Kubernetes 1.20 answers 500 where later releases answer 400): retrying
/// cannot help, so it is a condition, not a retry loop. `None` for errors worth a retry:
/// conflicts, throttling, and 401/403/404, which a restarting API server answers while its RBAC
/// and CRD caches fill, and which an RBAC or CRD fix cures without a spec change.
pub fn refused_for_good(kind: &str, error: &kube::Error) -> Option<String> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    let undeclared = status.message.contains("field not declared in schema");
    let invalid = matches!(status.code, 400 | 413 | 422);
    if !(invalid || undeclared) {
        return None;
    }
    let hint = if undeclared {
        format!(
            " — the cluster's {kind} CRD is older than KEA needs (see the operator README, supported versions)"
        )
    } else {
        String::new()
    };
    Some(format!(
        "the API server refused the {kind}: {}{hint}",
        status.message
    ))
}
