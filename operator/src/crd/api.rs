//! `ApiDefinition`: one API served by a gateway — hosts, base path, weighted backends, timeout,
//! its OpenAPI schema (inline, from a ConfigMap, or written as operations) and its policies.

use super::{free_object, optional_free_object, CommonStatus};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An API (or model endpoint) served through a KEA gateway.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kea.dev",
    version = "v1alpha1",
    kind = "ApiDefinition",
    doc = "An API (or model endpoint) served through a KEA gateway: hosts, base path, weighted backends, timeout, its OpenAPI 3.0 schema (inline, from a ConfigMap, or written as operations) and its auth, validation, cache and audit policies.",
    namespaced,
    status = "ApiDefinitionStatus",
    shortname = "kapi",
    category = "kea",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Base Path","type":"string","jsonPath":".spec.basePath"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ApiDefinitionSpec {
    /// The GatewayBinding (in this namespace unless `gatewayNamespace` says otherwise) that serves
    /// this API.
    #[schemars(length(min = 1))]
    pub gateway: String,
    /// Namespace of the GatewayBinding (default: this one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_namespace: Option<String>,
    /// Host names the API is served on (`api.example.com`, `*.example.com`).
    #[schemars(length(min = 1))]
    pub hosts: Vec<String>,
    /// Path prefix of the API on the gateway (default `/`); the schema's paths are relative to it.
    #[serde(default = "root")]
    #[schemars(regex(pattern = r"^/"))]
    pub base_path: String,
    /// Services behind the API and the share of requests each gets, in percent (sum 100).
    #[schemars(length(min = 1))]
    pub backends: Vec<Backend>,
    /// Upstream timeout of a request (default `5s`), e.g. `500ms`, `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How requests are shared across several backends (default: `mode: Exact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// A shadow backend that receives a copy of a share of the requests; its answers are discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// The API's OpenAPI 3.0 description: exactly one of `openapi`, `configMapRef`, `operations`.
    pub schema: ApiSchema,
    /// Policies for the whole API (fields left unset come from the GatewayBinding's `defaults`).
    #[serde(default, flatten)]
    pub policies: Policies,
    /// Policies for some operations only (first match wins, before the API's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operation_policies: Vec<OperationPolicy>,
}

fn root() -> String {
    "/".into()
}

/// A Service behind the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// Service name, in this namespace.
    #[schemars(length(min = 1))]
    pub service: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Version label, sent back to clients as `x-kea-backend-version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Percent of requests (0–100; the backends' weights sum to 100). A single backend may omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub weight: Option<u32>,
}

/// How requests are shared across the backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    /// `Exact` (the default): the gateway's auth plugin picks each request's backend by smooth
    /// weighted round-robin shared by all workers, so 90/10 is exactly 9 of every 10 requests;
    /// the routes follow its choice. `Random`: the routes' weights alone, sampled per request.
    #[serde(default)]
    pub mode: SplitMode,
    /// Keep a client on one backend while the weights stay the same (needs `mode: Exact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySplit>,
}

/// Who picks a request's backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SplitMode {
    /// Exactly by weight (the auth plugin marks each request with its backend's key).
    #[default]
    Exact,
    /// The routes' weights, sampled at random per request.
    Random,
}

/// What identifies a client for sticky splitting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StickySplit {
    /// `Principal`: the authenticated caller (anonymous requests are split exactly); `Header`:
    /// the value of `header` (requests without it are split exactly).
    pub by: StickyBy,
    /// With `by: Header`: the request header naming the client, e.g. `x-session-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

/// What keeps a client on one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StickyBy {
    /// The authenticated principal (token subject, API key, single sign-on session).
    #[default]
    Principal,
    /// A request header's value.
    Header,
}

/// A shadow backend: a copy of `percent` of the requests goes to it, its answers are discarded.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Service name, in this namespace.
    #[schemars(length(min = 1))]
    pub service: String,
    #[schemars(range(min = 1, max = 65535))]
    pub port: u16,
    /// Share of the requests copied, in percent: more than 0, at most 100, at most two decimals
    /// (e.g. `5`, `0.25`). Exact (p of every 100 requests) with `split.mode: Exact`.
    #[schemars(range(min = 0.01, max = 100))]
    pub percent: f64,
}

/// Where the API's OpenAPI 3.0 description comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSchema {
    /// An OpenAPI 3.0 document, inline (its `servers` are replaced by the base path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_object")]
    pub openapi: Option<Value>,
    /// A ConfigMap key holding the document (JSON or YAML), in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
    /// The operations themselves, written as fields of this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in `data` (default `openapi.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// One operation of an API written as CRD fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Path template relative to the base path, e.g. `/pets/{petId}`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// HTTP method.
    #[schemars(extend("enum" = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"]))]
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RequestBody>,
    /// Responses by status code (`200`, `4XX`, `default`); none means `default` with no schema.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub responses: BTreeMap<String, Response>,
    /// Policies of this operation, overriding the API's.
    #[serde(default, flatten)]
    pub policies: Policies,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    pub name: String,
    /// `path`, `query`, `header` or `cookie`.
    #[serde(rename = "in")]
    #[schemars(extend("enum" = ["path", "query", "header", "cookie"]))]
    pub location: String,
    /// Path parameters are always required.
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OpenAPI 3.0 schema of the value.
    #[schemars(schema_with = "free_object")]
    pub schema: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestBody {
    /// Default `application/json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// OpenAPI 3.0 schema of the body.
    #[schemars(schema_with = "free_object")]
    pub schema: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Default `application/json` when a schema is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_free_object")]
    pub schema: Option<Value>,
}

/// The four plugins' settings for an API, an operation, or a gateway's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<ValidationPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CachePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditPolicy>,
}

/// Who may call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthPolicy {
    /// Identity providers (GatewayBinding `identityProviders[].name`); a token from any of them is
    /// accepted. Empty: any provider of the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// Scopes the token must all grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Requests without a token pass (a token that is sent must still be valid).
    #[serde(default)]
    pub anonymous: bool,
}

/// OpenAPI request validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidationPolicy {
    /// `enforce` (reject invalid requests with 4xx, the default), `report` (pass and mark them)
    /// or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["enforce", "report", "off"]))]
    pub mode: Option<String>,
    /// Check responses too (reported, never rejected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<bool>,
    /// Largest request body read, e.g. `1MiB` (default); larger ones get 413.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<String>,
}

/// HTTP response caching (RFC 9111).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CachePolicy {
    /// Cache responses (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Freshness of responses whose origin gives none, e.g. `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_ttl: Option<String>,
    /// Request headers that are part of the key (e.g. `accept-language`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_headers: Vec<String>,
    /// One entry per authenticated user (needed to cache responses to authorised requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_user: Option<bool>,
    /// Responses that set cookies: `Auto` (default: `DoNotStore`, or `Replay` with `perUser`),
    /// `DoNotStore`, `StoreWithout` (stored without their `Set-Cookie`, hits get none) or
    /// `Replay` (stored and replayed to every client: only for cookies meant for everyone).
    #[serde(default, skip_serializing_if = "CacheSetCookie::is_auto")]
    pub set_cookie: CacheSetCookie,
}

impl CacheSetCookie {
    fn is_auto(&self) -> bool {
        *self == Self::Auto
    }
}

/// What the cache does with responses that set cookies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum CacheSetCookie {
    #[default]
    Auto,
    DoNotStore,
    StoreWithout,
    Replay,
}

/// Audit records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPolicy {
    /// Record nothing (e.g. health checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<bool>,
    /// Share of requests recorded, 0–100 (errors are always recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub sampling_percent: Option<f64>,
    /// Record request bodies (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<bool>,
    /// Record response bodies (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<bool>,
}

/// Policies for the operations matching a path template and methods.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationPolicy {
    /// Path template relative to the base path, e.g. `/pets/{petId}`.
    #[schemars(regex(pattern = r"^/"))]
    pub path: String,
    /// Methods (default: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(flatten)]
    pub policies: Policies,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiDefinitionStatus {
    #[serde(flatten)]
    pub common: CommonStatus,
    /// sha256 of the compiled OpenAPI bundle the validate plugin enforces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    /// Operations in the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operations: Option<u32>,
    /// Where the bundle is served (the operator's `/bundles/...` URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_url: Option<String>,
    /// What the schema of `observedGeneration` says that the gateway does not check (keywords
    /// outside OpenAPI 3.0), one line each with its JSON pointer; at most 100 and a line counting
    /// the rest. `SchemaValid` is then `True` with reason `CompiledWithWarnings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The split in force (APIs with several backends or a mirror): who picks the backend, each
    /// backend's key and weight, the mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<SplitStatus>,
}

/// The split the gateway applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitStatus {
    /// `Exact` when the auth plugin picks each request's backend, `Random` when the route
    /// weights do.
    pub mode: SplitMode,
    /// Each backend with its key (the `x-kea-backend` value its routes match) and weight.
    #[serde(default)]
    pub backends: Vec<SplitBackendStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<StickySplit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}

/// A backend of the split in force.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitBackendStatus {
    /// Its `version`, else its Service name.
    pub key: String,
    pub service: String,
    pub port: u16,
    /// Percent of requests.
    pub weight: u32,
}
