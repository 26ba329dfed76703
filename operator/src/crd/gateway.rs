//! `GatewayBinding`: one per gateway. Says which gateway workload KEA's plugins attach to, how the
//! APIs bound to it are routed, its identity providers, audit sink and defaults.

use super::{api::Policies, optional_free_object, CommonStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A gateway that serves KEA APIs: KEA's WasmPlugin (the combined module, or one per plugin) attaches
/// to its workload, carrying the rules of every ApiDefinition bound to it.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kea.dev",
    version = "v1alpha1",
    kind = "GatewayBinding",
    doc = "A gateway served by KEA: the workload its plugins (audit, auth, validate, cache: one combined WasmPlugin, or one each) attach to, how its APIs are routed, its identity providers, audit sink and defaults. One per gateway.",
    namespaced,
    status = "GatewayBindingStatus",
    shortname = "kgw",
    category = "kea",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"APIs","type":"integer","jsonPath":".status.apis"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBindingSpec {
    /// Labels of the gateway pods the plugins attach to (Istio WasmPlugin `selector`), e.g.
    /// `istio: ingressgateway`. Give this or `targetRefs`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    /// Gateway API resources the plugins attach to (Istio WasmPlugin `targetRefs`, Istio 1.22+).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
    /// Which route objects the APIs bound to this gateway get.
    #[serde(default)]
    pub routing: Routing,
    /// JWT issuers the APIs' auth policies name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<IdentityProvider>,
    /// Audit records of every request through the gateway.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Policies of APIs that set none themselves.
    #[serde(default)]
    pub defaults: Policies,
    /// How the validate plugin gets the APIs' OpenAPI bundles.
    #[serde(default)]
    pub bundles: BundleDelivery,
    /// How the plugins are packaged (one combined module by default) and where the `.wasm`
    /// modules are published; unset ones use the operator's defaults (`--plugin-url`,
    /// `--plugin-digests`).
    #[serde(default)]
    pub plugins: PluginSources,
    /// Host name on which the gateway serves the docs portal (`/docs/`: every API and model bound
    /// to this gateway, their OpenAPI documents, and try-it), routed to the operator; none means
    /// not served. Try-it sends requests from the portal's origin, so APIs are tried on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub docs_host: Option<String>,
    /// Who may read the docs portal: `Public` (default: anyone who reaches the gateway) or
    /// `Login` (a single sign-on session of `plugins.auth.config.sso`, else a redirect to log in).
    #[serde(default)]
    pub docs_access: DocsAccess,
    /// Run the gateway itself, for clusters without Istio: an Envoy Deployment + Service +
    /// PodDisruptionBudget that the operator configures over xDS (no restart on change). With
    /// it, `selector`/`targetRefs` are not needed and no WasmPlugins or Istio routes are written
    /// (unless `routing` names them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standalone: Option<StandaloneGateway>,
}

/// A gateway the operator runs: Envoy with the KEA plugins, configured from the APIs bound to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneGateway {
    /// Gateway image (Envoy 1.40 with the KEA plugins under `/kea/plugins`); default: the
    /// operator's `--gateway-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// `Always`, `IfNotPresent` (default) or `Never`.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Envoy Pods (default 2; a PodDisruptionBudget keeps one available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: Option<i32>,
    /// Port of the gateway's listener and Service (default 8080).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Service type: `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default)]
    pub service_type: ServiceType,
    /// Envoy worker threads per Pod (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub concurrency: Option<u32>,
    /// CPU and memory of the Envoy container (default requests 100m / 128Mi, limit 512Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<GatewayResources>,
}

/// Who may read a gateway's docs portal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DocsAccess {
    /// Anyone who reaches the gateway.
    #[default]
    Public,
    /// Readers with a single sign-on session (the auth plugin's `sso`); others are sent to log in.
    Login,
}

/// Container image pull policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

/// How the standalone gateway's Service is exposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// Requests and limits of the gateway container, as Kubernetes quantities (`250m`, `256Mi`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayResources {
    /// `cpu` and `memory` requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<ResourceName, String>,
    /// `cpu` and `memory` limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<ResourceName, String>,
}

/// A resource the gateway container asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResourceName {
    Cpu,
    Memory,
}

/// A Gateway API object a WasmPlugin attaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Default `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Default `Gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
}

/// Route objects written for each API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Istio VirtualServices (the default when neither is given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<VirtualServiceRouting>,
    /// Gateway API HTTPRoutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteRouting>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceRouting {
    /// Istio Gateways the VirtualServices bind to (`namespace/name`), e.g.
    /// `istio-system/ingressgateway`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRouting {
    /// Gateways the HTTPRoutes attach to.
    #[schemars(length(min = 1))]
    pub parent_refs: Vec<ParentRef>,
}

/// A Gateway API `parentRef`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// A JWT issuer (the auth plugin's provider).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProvider {
    /// Name the APIs' `auth.providers` use.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Exact `iss` value of the tokens.
    #[schemars(length(min = 1))]
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// JWKS URL. Without it, OpenID Connect discovery on the issuer finds the keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Envoy cluster that reaches the JWKS (or issuer) host, e.g.
    /// `outbound|443||idp.example.com`.
    #[schemars(length(min = 1))]
    pub cluster: String,
    /// Allowed `alg` values (default: RS*, PS*, ES256/384, EdDSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Claims forwarded to the backend as headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_headers: Vec<ClaimHeader>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimHeader {
    pub claim: String,
    pub header: String,
}

/// Audit settings of a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditSettings {
    /// Record requests (default true).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Batched HTTP sink, as the audit plugin's `sinks.http` (`cluster`, `url`, `format`
    /// `jsonLines`/`elasticBulk`/`clickhouse`, ...); records also go to the proxy log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_object")]
    pub sink: Option<Value>,
    /// Header names redacted in addition to the built-in ones (Authorization, Cookie, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact_headers: Vec<String>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: None,
            redact_headers: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}

/// How the validate plugin receives bundles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleDelivery {
    /// Put each bundle into the plugin configuration instead of fetching it (small gateways only:
    /// the WasmPlugin object must stay below the API server's 1.5 MB).
    #[serde(default)]
    pub inline: bool,
    /// Base URL of the operator's bundle endpoint (default: the operator's `--bundle-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Envoy cluster that reaches it (default: the operator's `--bundle-cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// Per plugin: where its module is published, and settings beyond what KEA's fields cover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSources {
    /// `Combined`: one module, `kea.wasm`, runs every plugin the gateway needs in one pass per
    /// request, as one Istio WasmPlugin (phase AUTHN, so the whole chain, the cache included,
    /// runs before Istio's AuthorizationPolicy) or one Envoy filter. `Separate`: one module per
    /// plugin (`audit.wasm`, `auth.wasm`...), each its own WasmPlugin (audit and auth at AUTHN,
    /// validate at AUTHZ, cache at STATS). Unset: `Combined`, unless a plugin's own `url` or
    /// `sha256` is set (a binding written for the separate modules), then `Separate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<Deployment>,
    /// Where the combined module is published (default: the operator's `--plugin-url` with
    /// `{plugin}` = `kea`); only with `deployment: Combined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<ModuleSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PluginSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<PluginSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validate: Option<PluginSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<PluginSettings>,
}

impl PluginSources {
    /// The deployment in effect: the one set, else `Separate` when a plugin's own module is
    /// named (what such a binding meant before the combined module existed), else `Combined`.
    pub fn effective_deployment(&self) -> Deployment {
        self.deployment.unwrap_or_else(|| {
            let names_own_module = [&self.audit, &self.auth, &self.validate, &self.cache]
                .into_iter()
                .flatten()
                .any(|settings| settings.url.is_some() || settings.sha256.is_some());
            match names_own_module {
                true => Deployment::Separate,
                false => Deployment::Combined,
            }
        })
    }
}

/// How a gateway's plugins are packaged into wasm modules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Deployment {
    /// One module, `kea.wasm`, for all the plugins.
    #[default]
    Combined,
    /// One module per plugin.
    Separate,
}

/// Where the combined module is published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModuleSettings {
    /// `oci://`, `https://` or `file://` URL of `kea.wasm`.
    #[schemars(length(min = 1))]
    pub url: String,
    /// Hex sha256 of the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
}

/// One plugin's module and base configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSettings {
    /// `oci://`, `https://` or `file://` URL of the plugin's own `.wasm` module (default: the
    /// operator's); only with `deployment: Separate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Hex sha256 of the module (default: the operator's, for its default URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: Option<String>,
    /// Base configuration in the plugin's own format (see the plugin's README), for settings KEA's
    /// fields do not cover (API keys, single sign-on, cache store size and purge, audit
    /// redaction...). The APIs' rules go before its `rules`; checked by the plugin's own compiler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_object")]
    pub config: Option<Value>,
}

/// Where a plugin module is, as written into a WasmPlugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginSource {
    pub url: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBindingStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// ApiDefinitions bound to this gateway whose rules the plugins carry.
    #[serde(default)]
    pub apis: u32,
    /// The WasmPlugins written, `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plugins: Vec<String>,
    /// The standalone gateway: its Service address and the configuration version it was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<StandaloneStatus>,
}

/// What the operator runs for a standalone gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StandaloneStatus {
    /// The gateway's Service, `namespace/name`.
    pub service: String,
    /// Its cluster IP and port, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Pods ready / wanted.
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub replicas: i32,
    /// sha256 (first 16 hex digits) of the listeners and clusters served over xDS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<String>,
}
