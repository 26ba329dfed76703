//! `kea render`: the operator's renderers, run offline on YAML files. One GatewayBinding and the
//! ApiDefinitions bound to it (with the ConfigMaps their schemas name) become a complete Envoy
//! configuration: the listener, a route per API split across its backends by weight, the
//! clusters, and the four plugins with the configurations the operator would write — bundles
//! inline, so the result runs without the operator.
//!
//! Every document is read with the CRD types; an invalid one is an error naming its file, its
//! place in the file and the field. A resource the operator would refuse is an error naming the
//! resource and the reason (the condition's reason and message the operator would set).

use crate::crd::{ApiDefinitionSpec, GatewayBindingSpec};
use crate::render::envoy::{self, Named, Options, RoutedApi};
use crate::render::plugins::{self, BoundApi, Module, PluginConfigs};
use crate::render::schema::DEFAULT_CONFIG_MAP_KEY;
use crate::render::targets::RouteTargets;
use crate::render::{schema, spec, Key};
use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tracing::instrument;

/// Arguments of `kea render`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// YAML files (several documents each) holding one GatewayBinding, the ApiDefinitions and
    /// Models bound to it (a Model as the ApiDefinitions the operator writes for it: its versions
    /// are the Services `<model>-<version>`, port 8080) and the ConfigMaps their
    /// `schema.configMapRef`s name.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Write the Envoy configuration (YAML) here instead of stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The gateway's listener.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Envoy's admin interface.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9901")]
    pub admin: SocketAddr,
    /// Where a backend Service is, instead of `NAME.NAMESPACE.svc.cluster.local:PORT`. NAME is the
    /// service, optionally with `.NAMESPACE` and/or `:PORT` (the most specific wins). Repeatable.
    #[arg(long = "service", value_name = "NAME=HOST:PORT")]
    pub services: Vec<Named>,
    /// Where a cluster the plugins call is (an identity provider's, the audit sink's), instead of
    /// the host and port of its URL. Repeatable.
    #[arg(long = "cluster", value_name = "NAME=HOST:PORT")]
    pub clusters: Vec<Named>,
    /// Directory of the modules as Envoy sees it (relative to Envoy's working directory):
    /// kea.wasm, or with `spec.plugins.deployment: Separate` audit.wasm, auth.wasm, validate.wasm
    /// and cache.wasm.
    #[arg(long, value_name = "DIR", default_value = "dist")]
    pub plugins_dir: PathBuf,
    /// Namespace of documents that name none.
    #[arg(short, long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,
    /// CA bundle that verifies the servers of TLS clusters (`https` JWKS or issuer URLs).
    #[arg(long, value_name = "FILE", default_value = envoy::DEFAULT_CA_FILE)]
    pub ca_file: PathBuf,
    /// Write the docs portal here — every API and model, their OpenAPI documents, try-it checked
    /// in the browser — and have Envoy serve it at `/docs/` on the GatewayBinding's `docsHost`.
    #[arg(long, value_name = "DIR")]
    pub portal: Option<PathBuf>,
    /// Where the portal's in-browser validator is (`scripts/web-build.sh` writes `dist/web`).
    #[arg(long, value_name = "DIR", default_value = "dist/web")]
    pub web_dir: PathBuf,
    /// Write the Kubernetes objects the operator writes for this gateway instead — its
    /// WasmPlugins, each API's VirtualService and/or HTTPRoute, the docs route — checked for the
    /// binding's route targets as the operator checks them (e.g. to try them with
    /// `kubectl apply --dry-run=server`).
    #[arg(long, requires = "plugin_url")]
    pub kubernetes: bool,
    /// With `--kubernetes`: where the modules are published (`{plugin}` becomes kea, or audit,
    /// auth, validate or cache), where the binding's `spec.plugins` does not say.
    #[arg(long, value_name = "URL")]
    pub plugin_url: Option<String>,
}

impl RenderArgs {
    /// The defaults of the command line, for `files`.
    pub fn new(files: Vec<PathBuf>) -> Self {
        Self {
            files,
            output: None,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            services: Vec::new(),
            clusters: Vec::new(),
            plugins_dir: PathBuf::from("dist"),
            namespace: "default".into(),
            ca_file: PathBuf::from(envoy::DEFAULT_CA_FILE),
            portal: None,
            web_dir: PathBuf::from("dist/web"),
            kubernetes: false,
            plugin_url: None,
        }
    }
}

/// `kea render`: writes the configuration to `--output` (or stdout) and a summary to stderr.
pub fn run(args: &RenderArgs) -> Result<()> {
    if args.kubernetes {
        let no_digests = BTreeMap::new();
        let objects = kubernetes_objects(&args.files, &args.namespace, &|gateway, plugin| {
            crate::render::objects::plugin_source(gateway, plugin, args.plugin_url.as_deref(), &no_digests)
                .unwrap_or_default()
        })?;
        let mut yaml = String::new();
        for object in &objects {
            yaml.push_str("---\n");
            yaml.push_str(&serde_yaml_ng::to_string(object).context("writing the objects as YAML")?);
        }
        return match &args.output {
            Some(path) => {
                std::fs::write(path, yaml).with_context(|| format!("cannot write {}", path.display()))
            }
            None => {
                use std::io::Write;
                std::io::stdout()
                    .write_all(yaml.as_bytes())
                    .context("writing the objects")
            }
        };
    }
    let rendered = render(args)?;
    for warning in &rendered.warnings {
        eprintln!("warning: {warning}");
    }
    let yaml = rendered.yaml(&args.files)?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, yaml).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("{}: {}", path.display(), rendered.summary());
        }
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(yaml.as_bytes())
                .context("writing the configuration")?;
            eprintln!("{}", rendered.summary());
        }
    }
    Ok(())
}

/// What `kea render` made.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub gateway: Key,
    /// The APIs served, by namespace/name, with their base paths.
    pub apis: Vec<(Key, String)>,
    pub plugins: PluginConfigs,
    /// The Envoy bootstrap.
    pub envoy: Value,
    /// Things that are probably mistakes but do not stop the rendering.
    pub warnings: Vec<String>,
    listen: SocketAddr,
}

impl Rendered {
    /// The configuration as YAML, headed by where it comes from.
    pub fn yaml(&self, files: &[PathBuf]) -> Result<String> {
        let sources: Vec<String> = files.iter().map(|file| file.display().to_string()).collect();
        let body = serde_yaml_ng::to_string(&self.envoy).context("writing the configuration as YAML")?;
        Ok(format!(
            "# Envoy configuration rendered by `kea render` from {}; edit those, not this.\n# {}\n{body}",
            sources.join(", "),
            self.summary()
        ))
    }

    /// One line: the gateway, its APIs, the plugins, the listener.
    pub fn summary(&self) -> String {
        let apis: Vec<String> = self
            .apis
            .iter()
            .map(|(key, base)| format!("{key} {base}"))
            .collect();
        let plugins: Vec<&str> = self.plugins.plugins().map(|plugin| plugin.name()).collect();
        format!(
            "GatewayBinding {} on {}: {} API(s) ({}); plugins: {}",
            self.gateway,
            self.listen,
            self.apis.len(),
            apis.join(", "),
            if plugins.is_empty() {
                "none".to_string()
            } else {
                plugins.join(", ")
            },
        )
    }
}

/// The Istio and Gateway API objects the operator writes for the GatewayBinding and ApiDefinitions
/// (and Models) of `files`, checked as the operator checks them for the binding's route targets:
/// the WasmPlugins (modules from `sources`, given the binding), each API's VirtualService and/or HTTPRoute, and the
/// docs VirtualService. A resource the operator would refuse is an error naming it and the reason.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn kubernetes_objects(
    files: &[PathBuf],
    namespace: &str,
    sources: &dyn Fn(&GatewayBindingSpec, Module) -> crate::crd::PluginSource,
) -> Result<Vec<Value>> {
    let mut documents = Documents::default();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        documents.read(file, &text, namespace)?;
    }
    let (gateway, apis) = documents.select(files)?;
    spec::check_gateway(&gateway.spec)
        .map_err(|problem| anyhow!("GatewayBinding {} ({}): {problem}", gateway.key, gateway.origin))?;
    let targets = RouteTargets::of(&gateway.spec, &gateway.key.namespace);
    let owner_of = |kind: &str, name: &str| OwnerReference {
        api_version: KEA_API_VERSION.into(),
        kind: kind.into(),
        name: name.into(),
        controller: Some(true),
        ..OwnerReference::default()
    };
    let mut objects = Vec::new();
    let mut bundles = Vec::with_capacity(apis.len());
    for api in &apis {
        let refused = |problem: crate::render::Problem| {
            anyhow!("ApiDefinition {} ({}): {problem}", api.key, api.origin)
        };
        let checked = spec::check(&api.spec, &gateway.spec, &targets).map_err(refused)?;
        let name = api.key.to_string();
        let document = schema::document(&name, &api.spec, documents.schema_text(api)?).map_err(refused)?;
        bundles.push(schema::compile(&name, document).map_err(refused)?);
        let owner = owner_of("ApiDefinition", &api.key.name);
        objects.extend(crate::render::objects::routes(
            &api.key, &api.spec, &checked, &targets, &owner,
        ));
    }
    if gateway.spec.standalone.is_some() {
        return Ok(objects);
    }
    let bound = bound_apis(&apis, &bundles);
    let configs = plugins::render(&gateway.spec, &bound, None)
        .map_err(|problem| anyhow!("GatewayBinding {} ({}): {problem}", gateway.key, gateway.origin))?;
    let owner = owner_of("GatewayBinding", &gateway.key.name);
    let source_of = |module: Module| sources(&gateway.spec, module);
    let plugins = crate::render::objects::wasm_plugins(
        &gateway.key,
        &gateway.spec,
        &configs.modules(),
        &source_of,
        &owner,
    );
    objects.extend(plugins.into_iter().map(|(_, object)| object));
    if let Some(host) = &gateway.spec.docs_host {
        let gateways = RouteTargets::docs(&gateway.spec, &gateway.key.namespace)
            .virtual_service
            .unwrap_or_default();
        objects.push(crate::render::objects::docs_virtual_service(
            &gateway.key,
            host,
            "kea-operator.kea-system.svc.cluster.local",
            8080,
            &gateways,
            &owner,
        ));
    }
    Ok(objects)
}

/// The APIs with their compiled bundles, as the plugins' renderers take them.
fn bound_apis<'a>(
    apis: &[&'a Found<ApiDefinitionSpec>],
    bundles: &'a [kea_schema::Bundle],
) -> Vec<BoundApi<'a>> {
    apis.iter()
        .zip(bundles)
        .map(|(api, bundle)| BoundApi {
            key: &api.key,
            spec: &api.spec,
            bundle,
        })
        .collect()
}

/// Reads the files and renders the Envoy configuration.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn render(args: &RenderArgs) -> Result<Rendered> {
    let mut documents = Documents::default();
    for file in &args.files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        documents.read(file, &text, &args.namespace)?;
    }
    let (gateway, apis) = documents.select(&args.files)?;
    let mut warnings = Vec::new();
    if apis.is_empty() {
        warnings.push(format!(
            "no ApiDefinition is bound to GatewayBinding {}: every request gets 404",
            gateway.key
        ));
    }

    let mut checked = Vec::with_capacity(apis.len());
    let mut bundles = Vec::with_capacity(apis.len());
    let mut served_documents = Vec::with_capacity(apis.len());
    for api in &apis {
        let refused = |problem: crate::render::Problem| {
            anyhow!("ApiDefinition {} ({}): {problem}", api.key, api.origin)
        };
        // The routes are this Envoy configuration's own: no Istio or Gateway API object is written.
        checked.push(spec::check(&api.spec, &gateway.spec, &RouteTargets::default()).map_err(refused)?);
        let text = documents.schema_text(api)?;
        let name = api.key.to_string();
        let document = schema::document(&name, &api.spec, text).map_err(refused)?;
        served_documents.push(document.clone());
        let bundle = schema::compile(&name, document).map_err(refused)?;
        warnings.extend(
            schema::warnings(&name, &bundle)
                .into_iter()
                .map(|warning| format!("ApiDefinition {} ({}): {warning}", api.key, api.origin)),
        );
        bundles.push(bundle);
    }
    let bound = bound_apis(&apis, &bundles);
    let refused = |problem: crate::render::Problem| {
        // The plugins' compilers read the secrets their `...Env` fields name from this process.
        let hint = if problem.message.contains("the VM environment has no variable") {
            " (kea render checks the configuration with its own environment: export the variable, which \
             Envoy's environment needs too)"
        } else {
            ""
        };
        anyhow!(
            "GatewayBinding {} ({}): {problem}{hint}",
            gateway.key,
            gateway.origin
        )
    };
    let configs = plugins::render(&gateway.spec, &bound, None).map_err(refused)?;

    let routed: Vec<RoutedApi<'_>> = apis
        .iter()
        .zip(&checked)
        .map(|(api, checked)| RoutedApi {
            key: &api.key,
            spec: &api.spec,
            checked,
        })
        .collect();
    let docs = match &args.portal {
        Some(dir) => {
            let host = gateway.spec.docs_host.as_deref().ok_or_else(|| {
                anyhow!(
                    "--portal: GatewayBinding {} ({}) has no docsHost, the host the portal is served on",
                    gateway.key,
                    gateway.origin
                )
            })?;
            let sources: Vec<PortalApi<'_>> = apis
                .iter()
                .zip(&bundles)
                .zip(&served_documents)
                .map(|((api, bundle), document)| PortalApi {
                    key: &api.key,
                    spec: &api.spec,
                    bundle,
                    document,
                    model: documents
                        .models
                        .get(&api.key)
                        .map(|(name, spec)| (name.as_str(), spec)),
                    pinned: documents.pinned.contains(&api.key),
                })
                .collect();
            let (files, missing) = write_portal(dir, &gateway.key, &gateway.spec, &sources, &args.web_dir)?;
            if missing {
                warnings.push(format!(
                    "{} has no in-browser validator (run scripts/web-build.sh): the portal works, but try-it is only \
                     checked by the gateway",
                    args.web_dir.display()
                ));
            }
            let dir = std::path::absolute(dir).with_context(|| format!("{}", dir.display()))?;
            Some(crate::render::portal::static_routes(host, &dir, &files))
        }
        None => None,
    };
    let options = Options {
        docs,
        listen: args.listen,
        admin: args.admin,
        plugins_dir: args.plugins_dir.display().to_string(),
        services: args.services.clone(),
        clusters: args.clusters.clone(),
        ca_file: args.ca_file.display().to_string(),
        ..Options::default()
    };
    let bootstrap = envoy::bootstrap(&gateway.key, &routed, &configs, &options).map_err(refused)?;
    warnings.extend(
        bootstrap
            .unused
            .iter()
            .map(|flag| format!("{flag} is not used by any backend or plugin")),
    );
    for (module, _) in configs.modules() {
        let file = args.plugins_dir.join(format!("{}.wasm", module.name()));
        if !file.exists() {
            warnings.push(format!(
                "{} does not exist here (Envoy loads it from its working directory)",
                file.display()
            ));
        }
    }
    Ok(Rendered {
        gateway: gateway.key.clone(),
        apis: apis
            .iter()
            .map(|api| (api.key.clone(), api.spec.base_path.clone()))
            .collect(),
        plugins: configs,
        envoy: bootstrap.config,
        warnings,
        listen: args.listen,
    })
}

/// An API as the portal lists it.
struct PortalApi<'a> {
    key: &'a Key,
    spec: &'a ApiDefinitionSpec,
    bundle: &'a kea_schema::Bundle,
    document: &'a Value,
    model: Option<(&'a str, &'a crate::crd::ModelSpec)>,
    /// A model's per-version API: reached from the model's page, not listed.
    pinned: bool,
}

/// Writes the portal's files into `dir`: the page, the catalog, each API's documents and
/// validator configuration, and the validator from `web_dir`. Returns the files written (relative
/// to `dir`) and whether the validator was missing.
#[instrument(level = "debug", skip_all, fields(dir = %dir.display()), err(level = "debug", Display))]
fn write_portal(
    dir: &Path,
    gateway_key: &Key,
    gateway: &GatewayBindingSpec,
    apis: &[PortalApi<'_>],
    web_dir: &Path,
) -> Result<(Vec<String>, bool)> {
    use crate::render::portal::{self, Catalog, Source};
    let mut files: Vec<(String, Vec<u8>)> = portal::ASSETS
        .iter()
        .map(|asset| (asset.path.to_string(), asset.body.as_bytes().to_vec()))
        .collect();
    let mut entries = Vec::new();
    // Offline, tensors come from the resources (kea render reads no serving classes).
    let no_descriptions = crate::render::model::openapi::Descriptions::default();
    for api in apis.iter().filter(|api| !api.pinned) {
        let summary = portal::Summary::of(api.document);
        let source = Source {
            key: api.key,
            spec: api.spec,
            document: &summary,
            sha256: &api.bundle.sha256,
            ready: None,
            model: api.model.map(|(name, spec)| portal::ModelSource {
                name,
                spec,
                descriptions: &no_descriptions,
            }),
        };
        let entry = portal::entry(gateway, &source);
        let validator = portal::validator_config(gateway, api.key, api.spec, api.bundle)
            .map_err(|problem| anyhow!("ApiDefinition {}: {problem}", api.key))?;
        files.push((
            format!("{}{}", entry.path, portal::DOCUMENT_JSON),
            serde_json::to_vec_pretty(api.document)?,
        ));
        files.push((
            format!("{}{}", entry.path, portal::DOCUMENT_YAML),
            portal::yaml(api.document).into_bytes(),
        ));
        files.push((
            format!("{}{}", entry.path, portal::VALIDATOR_CONFIG),
            serde_json::to_vec(&validator)?,
        ));
        entries.push(entry);
    }
    let catalog = Catalog {
        gateway: gateway_key.to_string(),
        access: gateway.docs_access,
        entries,
    };
    files.push((portal::CATALOG.to_string(), serde_json::to_vec(&catalog)?));
    let mut missing = false;
    for name in portal::VALIDATOR_FILES {
        match std::fs::read(web_dir.join(name)) {
            Ok(bytes) => files.push((format!("assets/{name}"), bytes)),
            Err(_) => missing = true,
        }
    }
    let compressed: Vec<(String, Vec<u8>)> = files
        .iter()
        .filter(|(_, bytes)| bytes.len() >= portal::GZIP_MIN_BYTES)
        .map(|(relative, bytes)| (format!("{relative}.gz"), portal::gzip(bytes)))
        .collect();
    files.extend(compressed);
    for (relative, bytes) in &files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok((files.into_iter().map(|(relative, _)| relative).collect(), missing))
}

/// Where a document is: its file and its position there (1 = the first document).
#[derive(Debug, Clone)]
struct Origin {
    file: PathBuf,
    index: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, document {}", self.file.display(), self.index)
    }
}

/// A resource read from the files.
#[derive(Debug, Clone)]
struct Found<S> {
    key: Key,
    spec: S,
    origin: Origin,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object<S> {
    metadata: Metadata,
    spec: S,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfigMap {
    metadata: Metadata,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

/// Everything the files hold.
#[derive(Debug, Default)]
struct Documents {
    gateways: Vec<Found<GatewayBindingSpec>>,
    apis: Vec<Found<ApiDefinitionSpec>>,
    /// The Model an ApiDefinition publishes (by the ApiDefinition's key): its name and spec.
    models: BTreeMap<Key, (String, crate::crd::ModelSpec)>,
    /// A Model's per-version ApiDefinitions.
    pinned: std::collections::BTreeSet<Key>,
    config_maps: BTreeMap<Key, (BTreeMap<String, String>, Origin)>,
}

const KEA_API_VERSION: &str = "kea.dev/v1alpha1";

impl Documents {
    fn read(&mut self, file: &Path, text: &str, namespace: &str) -> Result<()> {
        for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let origin = Origin {
                file: file.to_path_buf(),
                index: index + 1,
            };
            let mut yaml =
                serde_yaml_ng::Value::deserialize(document).with_context(|| format!("{origin}: not YAML"))?;
            if yaml.is_null() {
                continue;
            }
            yaml.apply_merge()
                .with_context(|| format!("{origin}: YAML merge keys"))?;
            // Through JSON, as the API server reads it (numeric map keys such as `200:` become strings).
            let json = serde_json::to_value(&yaml)
                .with_context(|| format!("{origin}: not a JSON-compatible document"))?;
            let field = |name: &str| {
                json.get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            match (api_version.as_str(), kind.as_str()) {
                (KEA_API_VERSION, "GatewayBinding") => {
                    let found = resource(&json, &origin, &kind, namespace)?;
                    self.gateways.push(found);
                }
                (KEA_API_VERSION, "ApiDefinition") => {
                    let found = resource(&json, &origin, &kind, namespace)?;
                    self.apis.push(found);
                }
                // A Model is served through the ApiDefinitions the operator would write for it.
                (KEA_API_VERSION, "Model") => {
                    let model: Found<crate::crd::ModelSpec> = resource(&json, &origin, &kind, namespace)?;
                    let checked = crate::render::model::check(&model.key.name, &model.spec)
                        .map_err(|problem| anyhow!("{origin}: Model {}: {problem}", model.key))?;
                    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference::default();
                    for api in crate::render::model::objects::api_definitions(&model.key, &model.spec, &checked.versions, &owner) {
                        let name = api.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
                        let spec: ApiDefinitionSpec = serde_json::from_value(api.get("spec").cloned().unwrap_or_default())
                            .with_context(|| format!("{origin}: Model {}: ApiDefinition {name}", model.key))?;
                        let api_key = Key::new(model.key.namespace.clone(), name);
                        let version_label = format!("/metadata/labels/{}", crate::render::model::objects::VERSION_LABEL.replace('/', "~1"));
                        if api.pointer(&version_label).is_some() {
                            self.pinned.insert(api_key.clone());
                        } else {
                            self.models.insert(api_key.clone(), (model.key.name.clone(), model.spec.clone()));
                        }
                        self.apis.push(Found {
                            key: api_key,
                            spec,
                            origin: origin.clone(),
                        });
                    }
                }
                ("v1", "ConfigMap") => {
                    let config_map: ConfigMap = typed(&json, &origin, &kind)?;
                    let key = key(&config_map.metadata, &origin, &kind, namespace)?;
                    if let Some((_, first)) = self.config_maps.get(&key) {
                        bail!("{origin}: ConfigMap {key} is also in {first}");
                    }
                    self.config_maps.insert(key, (config_map.data, origin));
                }
                _ => bail!(
                    "{origin}: kind {kind:?} (apiVersion {api_version:?}) is not what kea render reads: GatewayBinding, \
                     ApiDefinition and Model ({KEA_API_VERSION}), ConfigMap (v1)"
                ),
            }
        }
        Ok(())
    }

    /// The one GatewayBinding and the ApiDefinitions bound to it, by namespace/name.
    fn select(
        &self,
        files: &[PathBuf],
    ) -> Result<(&Found<GatewayBindingSpec>, Vec<&Found<ApiDefinitionSpec>>)> {
        let gateway = match self.gateways.as_slice() {
            [gateway] => gateway,
            [] => {
                let files: Vec<String> = files.iter().map(|file| file.display().to_string()).collect();
                bail!("no GatewayBinding in {}: give exactly one", files.join(", "))
            }
            several => {
                let found: Vec<String> = several
                    .iter()
                    .map(|gateway| format!("{} ({})", gateway.key, gateway.origin))
                    .collect();
                bail!(
                    "several GatewayBindings: {}; kea render renders one gateway, give exactly one",
                    found.join(", ")
                )
            }
        };
        let mut apis: Vec<&Found<ApiDefinitionSpec>> = Vec::with_capacity(self.apis.len());
        for api in &self.apis {
            let namespace = api
                .spec
                .gateway_namespace
                .as_deref()
                .unwrap_or(&api.key.namespace);
            if api.spec.gateway != gateway.key.name || namespace != gateway.key.namespace {
                bail!(
                    "{}: ApiDefinition {} is bound to GatewayBinding {}/{}, not to {} ({})",
                    api.origin,
                    api.key,
                    namespace,
                    api.spec.gateway,
                    gateway.key,
                    gateway.origin
                );
            }
            if let Some(first) = apis.iter().find(|known| known.key == api.key) {
                bail!(
                    "{}: ApiDefinition {} is also in {}",
                    api.origin,
                    api.key,
                    first.origin
                );
            }
            apis.push(api);
        }
        apis.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((gateway, apis))
    }

    /// The text of the ConfigMap key an API's schema names, if it names one.
    fn schema_text(&self, api: &Found<ApiDefinitionSpec>) -> Result<Option<&str>> {
        let Some(reference) = &api.spec.schema.config_map_ref else {
            return Ok(None);
        };
        let key = Key::new(api.key.namespace.clone(), reference.name.clone());
        let Some((data, origin)) = self.config_maps.get(&key) else {
            bail!(
                "ApiDefinition {} ({}): spec.schema.configMapRef: ConfigMap {key} is not in the files given",
                api.key,
                api.origin
            );
        };
        let entry = reference.key.as_deref().unwrap_or(DEFAULT_CONFIG_MAP_KEY);
        match data.get(entry) {
            Some(text) => Ok(Some(text)),
            None => {
                let keys: Vec<&str> = data.keys().map(String::as_str).collect();
                bail!(
                    "ApiDefinition {} ({}): spec.schema.configMapRef: ConfigMap {key} ({origin}) has no key {entry:?} \
                     (it has: {})",
                    api.key,
                    api.origin,
                    if keys.is_empty() { "none".to_string() } else { keys.join(", ") }
                )
            }
        }
    }
}

/// A GatewayBinding or ApiDefinition: read with its CRD type; fields the type does not know are
/// errors (the API server would drop them, silently changing what the resource means).
fn resource<S>(json: &Value, origin: &Origin, kind: &str, namespace: &str) -> Result<Found<S>>
where
    S: DeserializeOwned + serde::Serialize,
{
    let object: Object<S> = typed(json, origin, kind)?;
    let key = key(&object.metadata, origin, kind, namespace)?;
    let written = serde_json::to_value(&object.spec).with_context(|| format!("{origin}: {kind} {key}"))?;
    let mut unknown = Vec::new();
    unknown_fields(
        json.get("spec").unwrap_or(&Value::Null),
        &written,
        "spec",
        &mut unknown,
    );
    if !unknown.is_empty() {
        bail!("{origin}: {kind} {key}: unknown field(s) {}", unknown.join(", "));
    }
    Ok(Found {
        key,
        spec: object.spec,
        origin: origin.clone(),
    })
}

fn typed<T: DeserializeOwned>(json: &Value, origin: &Origin, kind: &str) -> Result<T> {
    serde_path_to_error::deserialize(json.clone()).map_err(|error| {
        let path = error.path().to_string();
        if path == "." {
            anyhow!("{origin}: {kind}: {}", error.inner())
        } else {
            anyhow!("{origin}: {kind}: {path}: {}", error.inner())
        }
    })
}

fn key(metadata: &Metadata, origin: &Origin, kind: &str, namespace: &str) -> Result<Key> {
    if metadata.name.is_empty() {
        bail!("{origin}: {kind}: metadata.name is empty");
    }
    let namespace = metadata
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| namespace.to_string());
    Ok(Key::new(namespace, metadata.name.clone()))
}

/// Paths of members of `input` that reading and writing it back lost: fields the type does not
/// have. Empty values (`null`, `[]`, `{}`) are not reported: written back, they are left out.
fn unknown_fields(input: &Value, written: &Value, path: &str, out: &mut Vec<String>) {
    match (input, written) {
        (Value::Object(input), Value::Object(written)) => {
            for (name, value) in input {
                let at = format!("{path}.{name}");
                match written.get(name) {
                    Some(kept) => unknown_fields(value, kept, &at, out),
                    None if is_empty(value) => {}
                    None => out.push(at),
                }
            }
        }
        (Value::Array(input), Value::Array(written)) => {
            for (index, (value, kept)) in input.iter().zip(written).enumerate() {
                unknown_fields(value, kept, &format!("{path}[{index}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
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

    const GATEWAY: &str = r#"
apiVersion: kea.dev/v1alpha1
kind: GatewayBinding
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
"#;

    fn api(name: &str, extra: &str) -> String {
        format!(
            r#"
apiVersion: kea.dev/v1alpha1
kind: ApiDefinition
metadata: {{name: {name}}}
spec:
  gateway: edge
  hosts: [api.example.com]
  basePath: /{name}
  backends: [{{service: {name}, port: 8080}}]
  auth: {{anonymous: true}}
{extra}"#
        )
    }

    fn write(dir: &Path, name: &str, documents: &[&str]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, documents.join("\n---\n")).unwrap();
        path
    }

    fn render_text(documents: &[&str]) -> Result<Rendered> {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), "all.yaml", documents);
        render(&RenderArgs::new(vec![file]))
    }

    fn error(documents: &[&str]) -> String {
        format!("{:#}", render_text(documents).unwrap_err())
    }

    #[test]
    fn renders_a_gateway_with_a_config_map_schema() {
        let config_map = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: pets-openapi}
data:
  openapi.yaml: |
    openapi: 3.0.3
    info: {title: pets, version: "1"}
    paths:
      /{id}:
        get:
          parameters: [{name: id, in: path, required: true, schema: {type: integer, maximum: 18446744073709552000, const: 7}}]
          responses:
            200: {description: ok}
"#;
        let pets = api("pets", "  schema: {configMapRef: {name: pets-openapi}}\n");
        let rendered = render_text(&[GATEWAY, &pets, config_map]).unwrap();
        assert_eq!(rendered.gateway, Key::new("default", "edge"));
        assert_eq!(
            rendered.apis,
            [(Key::new("default", "pets"), "/pets".to_string())]
        );
        let validate = rendered.plugins.validate.as_ref().unwrap();
        assert!(validate.apis[0].bundle.is_some(), "bundles are inline");
        // A keyword the plugin does not check is said, with the API and the pointer.
        let unchecked: Vec<&String> = rendered
            .warnings
            .iter()
            .filter(|warning| warning.contains("keyword"))
            .collect();
        assert_eq!(unchecked.len(), 1, "{:?}", rendered.warnings);
        assert!(
            unchecked[0].starts_with("ApiDefinition default/pets (")
                && unchecked[0].ends_with(
                    "): /paths/~1{id}/get/parameters/0/schema/const: keyword \"const\" is not part of OpenAPI 3.0 and is not checked"
                ),
            "{}",
            unchecked[0]
        );
        let yaml = rendered.yaml(&[PathBuf::from("all.yaml")]).unwrap();
        assert!(yaml.starts_with("# Envoy configuration rendered by `kea render` from all.yaml"));
        let back: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(back, rendered.envoy);
    }

    #[test]
    fn the_demo_gateway_renders() {
        // The secrets its single sign-on names, as run.sh exports them (only this test reads them).
        std::env::set_var("KEA_OIDC_CLIENT_SECRET", "kea-web-secret-kea-web-secret-kea-web");
        std::env::set_var(
            "KEA_SESSION_KEY",
            "demo-session-key-replace-with-openssl-rand-base64-32",
        );
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy-examples/gateway");
        let mut args = RenderArgs::new(vec![demo.join("gateway.yaml"), demo.join("apis.yaml")]);
        args.services = vec!["sample-api=127.0.0.1:8081".parse().unwrap()];
        args.clusters = vec!["demo-idp=127.0.0.1:8082".parse().unwrap()];
        let rendered = render(&args).unwrap();
        let apis: Vec<String> = rendered
            .apis
            .iter()
            .map(|(key, base)| format!("{key} {base}"))
            .collect();
        assert_eq!(
            apis,
            ["default/admin /admin", "default/pets /pets", "default/sample /"]
        );
        assert_eq!(rendered.plugins.plugins().count(), 4);
        let auth = rendered.plugins.auth.as_ref().unwrap();
        let paths: Vec<String> = auth
            .rules
            .iter()
            .map(|rule| {
                rule.match_spec
                    .path_prefix
                    .clone()
                    .or(rule.match_spec.path_template.clone())
                    .unwrap()
            })
            .collect();
        // The docs portal's rule first (the demo binding has a docsHost), then the APIs'.
        assert_eq!(paths, ["/docs/", "/admin", "/pets", "/echo/me", "/"]);
        assert!(
            auth.rules[0].requirement.allow_anonymous,
            "the demo's docs are public"
        );
        assert!(
            rendered.warnings.iter().all(|warning| !warning.contains("--")),
            "{:?}",
            rendered.warnings
        );
    }

    #[test]
    fn invalid_documents_name_the_file_the_document_and_the_field() {
        let bad_port =
            api("pets", "  schema: {operations: [{path: /, method: GET}]}\n").replace("8080", "eighty");
        let message = error(&[GATEWAY, &bad_port]);
        assert!(
            message.contains("all.yaml, document 2: ApiDefinition: spec.backends[0].port"),
            "{message}"
        );

        let typo = api(
            "pets",
            "  schema: {operations: [{path: /, method: GET}]}\n  validaton: {mode: report}\n",
        );
        let message = error(&[GATEWAY, &typo]);
        assert!(
            message.contains("document 2: ApiDefinition default/pets: unknown field(s) spec.validaton"),
            "{message}"
        );

        let message = error(&[GATEWAY, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\n"]);
        assert!(message.contains("document 2: kind \"Service\""), "{message}");
    }

    #[test]
    fn exactly_one_gateway_and_only_its_apis() {
        let message = error(&[&api("pets", "  schema: {operations: [{path: /, method: GET}]}\n")]);
        assert!(message.contains("no GatewayBinding"), "{message}");
        let other = GATEWAY.replace("name: edge", "name: other");
        let message = error(&[GATEWAY, &other]);
        assert!(message.contains("several GatewayBindings"), "{message}");
        let elsewhere = api("pets", "  schema: {operations: [{path: /, method: GET}]}\n")
            .replace("gateway: edge", "gateway: other");
        let message = error(&[GATEWAY, &elsewhere]);
        assert!(
            message
                .contains("document 2: ApiDefinition default/pets is bound to GatewayBinding default/other"),
            "{message}"
        );
    }

    #[test]
    fn problems_name_the_resource_and_the_reason() {
        let missing = api("pets", "  schema: {configMapRef: {name: nowhere}}\n");
        let message = error(&[GATEWAY, &missing]);
        assert!(
            message.contains("ApiDefinition default/pets (")
                && message.contains("ConfigMap default/nowhere is not in"),
            "{message}"
        );

        let weights = api("pets", "  schema: {operations: [{path: /, method: GET}]}\n").replace(
            "backends: [{service: pets, port: 8080}]",
            "backends: [{service: a, port: 1, weight: 50}, {service: b, port: 1, weight: 40}]",
        );
        let message = error(&[GATEWAY, &weights]);
        assert!(
            message.contains("ApiDefinition default/pets") && message.contains("WeightsDoNotSumTo100"),
            "{message}"
        );

        let schema = api("pets", "  schema: {openapi: {openapi: 3.0.3, info: {title: t, version: '1'}, paths: {/x: {get: {responses: {}, parameters: [{in: body}]}}}}}\n");
        let message = error(&[GATEWAY, &schema]);
        assert!(
            message.contains("ApiDefinition default/pets") && message.contains("InvalidOpenAPI"),
            "{message}"
        );
    }
}
