//! The docs portal: one page listing every API and model a gateway serves, each with its OpenAPI
//! document rendered for people, downloads in JSON and YAML, curl examples, tensor tables for
//! models, and try-it — requests checked in the browser by the validate plugin's own code
//! (compiled with wasm-bindgen, `web/validator`) against the same bundle the gateway enforces.
//!
//! The same files are served live by the operator (`/docs/` on the binding's `docsHost`) and
//! written by `kea render --portal DIR` for Envoy to serve. The page itself is in `portal/`: plain
//! ES modules without a build step (why not Swagger UI, Redoc or Scalar: `portal/README.md`).

use super::envoy::DocsRoutes;
use super::model::openapi::Descriptions;
use super::plugins::{self, BoundApi};
use super::{Key, Problem};
use crate::crd::{ApiDefinitionSpec, DocsAccess, GatewayBindingSpec, ModelSpec, Policies, Tensor};
use kea_plugin_sdk::MatchSpec;
use kea_schema::Bundle;
use kea_validate::config::ValidateConfig;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::instrument;

/// Where the portal lives on the docs host.
pub const PREFIX: &str = "/docs/";
/// The catalog the page reads (and polls, so it follows the cluster).
pub const CATALOG: &str = "catalog.json";
/// Per entry, under `<namespace>/<name>/`.
pub const DOCUMENT_JSON: &str = "openapi.json";
pub const DOCUMENT_YAML: &str = "openapi.yaml";
pub const VALIDATOR_CONFIG: &str = "validator.json";

/// A file of the page itself.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Relative to [`PREFIX`].
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page: compiled into the binary, so the operator and `kea render` serve the same one.
pub const ASSETS: [Asset; 3] = [
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../../portal/index.html"),
    },
    Asset {
        path: "assets/portal.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../portal/portal.js"),
    },
    Asset {
        path: "assets/portal.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../portal/portal.css"),
    },
];

/// The in-browser validator (`scripts/web-build.sh` → `dist/web/`), served from `assets/`.
pub const VALIDATOR_FILES: [&str; 2] = ["kea_validator.js", "kea_validator_bg.wasm"];

/// Response headers of every portal file: no script but the portal's own may run (descriptions
/// come from API authors), WebAssembly allowed, nothing framed.
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// The media type of a portal file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "yaml" => "application/yaml",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// The requests the portal answers on the docs host, as the plugins' rules match them.
pub fn docs_match(gateway: &GatewayBindingSpec) -> Option<MatchSpec> {
    gateway.docs_host.as_ref().map(|host| MatchSpec {
        hosts: vec![host.to_ascii_lowercase()],
        path_prefix: Some(PREFIX.into()),
        ..MatchSpec::default()
    })
}

/// Routes of a gateway that passes the portal on to the operator (`cluster` reaches it).
pub fn proxied_routes(host: &str, cluster: &str) -> DocsRoutes {
    DocsRoutes {
        host: host.to_string(),
        routes: vec![
            redirect_to_prefix(),
            json!({
                "name": "kea-docs",
                "match": {"prefix": PREFIX},
                "route": {"cluster": cluster, "timeout": "15s"},
            }),
        ],
        max_direct_response_bytes: None,
    }
}

/// Routes of a gateway that serves the portal's files itself (`kea render --portal DIR`): one
/// `direct_response` per file, read by Envoy when it loads the configuration.
pub fn static_routes(host: &str, dir: &std::path::Path, files: &[String]) -> DocsRoutes {
    let headers: Vec<Value> = SECURITY_HEADERS
        .iter()
        .chain([("cache-control", "no-cache")].iter())
        .map(|(key, value)| json!({"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}))
        .collect();
    let header = |key: &str, value: &str| json!({"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"});
    let mut routes = vec![redirect_to_prefix()];
    let mut largest = 0u64;
    for relative in files.iter().filter(|file| !file.ends_with(".gz")) {
        let path = dir.join(relative);
        largest = largest.max(std::fs::metadata(&path).map(|m| m.len()).unwrap_or_default());
        let url = match relative.as_str() {
            "index.html" => PREFIX.to_string(),
            other => format!("{PREFIX}{other}"),
        };
        let mut response_headers = headers.clone();
        response_headers.push(header("content-type", content_type(relative)));
        response_headers.push(header("vary", "accept-encoding"));
        // The file's gzip twin (written beside it) for clients that take gzip.
        let compressed = format!("{relative}.gz");
        if files.contains(&compressed) {
            let mut gzip_headers = response_headers.clone();
            gzip_headers.push(header("content-encoding", "gzip"));
            routes.push(json!({
                "name": format!("kea-docs {compressed}"),
                "match": {"path": url, "headers": [{"name": "accept-encoding", "string_match": {"safe_regex": {"regex": GZIP_ACCEPTED}}}]},
                "direct_response": {"status": 200, "body": {"filename": dir.join(&compressed).display().to_string()}},
                "response_headers_to_add": gzip_headers,
            }));
        }
        routes.push(json!({
            "name": format!("kea-docs {relative}"),
            "match": {"path": url},
            "direct_response": {"status": 200, "body": {"filename": path.display().to_string()}},
            "response_headers_to_add": response_headers,
        }));
    }
    DocsRoutes {
        host: host.to_string(),
        routes,
        max_direct_response_bytes: Some(largest.max(4096)),
    }
}

fn redirect_to_prefix() -> Value {
    json!({
        "name": "kea-docs /docs",
        "match": {"path": PREFIX.trim_end_matches('/')},
        "redirect": {"path_redirect": PREFIX},
    })
}

/// What the page lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Catalog {
    /// `namespace/name` of the GatewayBinding (`*`: every gateway, when the host names none).
    pub gateway: String,
    pub access: DocsAccess,
    pub entries: Vec<Entry>,
}

/// One API or model.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub kind: EntryKind,
    pub namespace: String,
    pub name: String,
    /// `info.title` of its document.
    pub title: String,
    /// `info.version` of its document.
    pub version: String,
    pub hosts: Vec<String>,
    pub base_path: String,
    /// Versions and their share of traffic (percent).
    pub versions: Vec<Share>,
    pub auth: AuthSummary,
    /// `enforce`, `report` or `off`: what the gateway does with requests that do not match.
    pub validation: String,
    /// The resource's `Ready` condition; `None` when rendered offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Readiness>,
    pub operations: usize,
    /// sha256 of the bundle the gateway enforces: the page reloads an open document when it changes.
    pub sha256: String,
    /// Where its files are, relative to the portal: `<namespace>/<name>/`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelDoc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Api,
    Model,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    pub name: String,
    pub weight: u32,
}

/// What a caller must present (the effective auth policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSummary {
    /// Requests without credentials pass.
    pub anonymous: bool,
    /// Credentials (identity providers, API key sets, single sign-on) of which one must verify;
    /// empty: any the gateway knows.
    pub credentials: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// A model's page: its framework and tensors.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDoc {
    pub framework: String,
    pub inputs: Vec<TensorDoc>,
    pub outputs: Vec<TensorDoc>,
}

/// One tensor as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorDoc {
    #[serde(flatten)]
    pub tensor: Tensor,
    /// From the serving class's docstring, when the tensors were read from its source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The Model an ApiDefinition publishes.
#[derive(Debug, Clone, Copy)]
pub struct ModelSource<'a> {
    pub name: &'a str,
    /// With the signature the resource gives or the one read from its serving class.
    pub spec: &'a ModelSpec,
    pub descriptions: &'a Descriptions,
}

/// What the index shows of a document: read once per bundle (the operator keeps them by sha256).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub title: String,
    pub version: String,
    pub operations: usize,
}

impl Summary {
    pub fn of(document: &Value) -> Self {
        let info = |field: &str| {
            document
                .pointer(&format!("/info/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            title: info("title"),
            version: info("version"),
            operations: operation_count(document),
        }
    }
}

/// What one entry is made from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub key: &'a Key,
    pub spec: &'a ApiDefinitionSpec,
    /// The OpenAPI document the gateway serves for it, summarised.
    pub document: &'a Summary,
    pub sha256: &'a str,
    pub ready: Option<&'a Readiness>,
    /// The Model it publishes, if any.
    pub model: Option<ModelSource<'a>>,
}

/// One catalog entry.
#[instrument(level = "trace", skip_all, fields(api = %source.key))]
pub fn entry(gateway: &GatewayBindingSpec, source: &Source<'_>) -> Entry {
    let policy = |pick: fn(&Policies) -> bool| -> &Policies {
        if pick(&source.spec.policies) {
            &source.spec.policies
        } else {
            &gateway.defaults
        }
    };
    let auth = policy(|p| p.auth.is_some()).auth.clone().unwrap_or_default();
    let validation = policy(|p| p.validation.is_some())
        .validation
        .as_ref()
        .and_then(|validation| validation.mode.clone())
        .unwrap_or_else(|| "enforce".into());
    let (kind, name, versions, model) = match source.model {
        Some(model) => {
            let tensors =
                |tensors: &[Tensor], texts: &std::collections::BTreeMap<String, String>| -> Vec<TensorDoc> {
                    tensors
                        .iter()
                        .map(|tensor| TensorDoc {
                            tensor: tensor.clone(),
                            description: texts.get(&tensor.name).cloned(),
                        })
                        .collect()
                };
            let signature = model.spec.signature.clone().unwrap_or_default();
            (
                EntryKind::Model,
                model.name.to_string(),
                shares(model.spec.versions.iter().map(|v| (v.name.clone(), v.weight))),
                Some(ModelDoc {
                    framework: model.spec.framework.name().to_string(),
                    inputs: tensors(&signature.inputs, &model.descriptions.inputs),
                    outputs: tensors(&signature.outputs, &model.descriptions.outputs),
                }),
            )
        }
        None => (
            EntryKind::Api,
            source.key.name.clone(),
            shares(source.spec.backends.iter().map(|backend| {
                let name = backend.version.clone().unwrap_or_else(|| backend.service.clone());
                (name, backend.weight)
            })),
            None,
        ),
    };
    Entry {
        kind,
        namespace: source.key.namespace.clone(),
        title: match source.document.title.as_str() {
            "" => name.clone(),
            title => title.to_string(),
        },
        name,
        version: source.document.version.clone(),
        hosts: source.spec.hosts.clone(),
        base_path: source.spec.base_path.clone(),
        versions,
        auth: AuthSummary {
            anonymous: auth.anonymous,
            credentials: auth.providers,
            scopes: auth.scopes,
        },
        validation,
        ready: source.ready.cloned(),
        operations: source.document.operations,
        sha256: source.sha256.to_string(),
        path: entry_path(source.key),
        model,
    }
}

/// `<namespace>/<name>/`: Kubernetes names, safe in a URL as they are.
pub fn entry_path(key: &Key) -> String {
    format!("{}/{}/", key.namespace, key.name)
}

/// Weights as the router applies them: unset weights share what the set ones leave, equally.
fn shares(versions: impl Iterator<Item = (String, Option<u32>)>) -> Vec<Share> {
    let versions: Vec<(String, Option<u32>)> = versions.collect();
    let set: u32 = versions.iter().filter_map(|(_, weight)| *weight).sum();
    let unset = u32::try_from(versions.iter().filter(|(_, weight)| weight.is_none()).count()).unwrap_or(1);
    let left = 100u32.saturating_sub(set);
    let mut first_unset = true;
    versions
        .into_iter()
        .map(|(name, weight)| {
            let weight = weight.unwrap_or_else(|| {
                let mut share = left / unset.max(1);
                if std::mem::take(&mut first_unset) {
                    share += left % unset.max(1);
                }
                share
            });
            Share { name, weight }
        })
        .collect()
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn operation_count(document: &Value) -> usize {
    document
        .get("paths")
        .and_then(Value::as_object)
        .map(|paths| {
            paths
                .values()
                .filter_map(Value::as_object)
                .map(|item| item.keys().filter(|key| METHODS.contains(&key.as_str())).count())
                .sum()
        })
        .unwrap_or_default()
}

/// The validate plugin's configuration for one API, as the gateway runs it (its rules, operation
/// rules and defaults; the bundle inline): what the page's validator loads. `None` when the
/// gateway does not validate this API.
#[instrument(level = "debug", skip_all, fields(api = %key), err(level = "debug", Display))]
pub fn validator_config(
    gateway: &GatewayBindingSpec,
    key: &Key,
    spec: &ApiDefinitionSpec,
    bundle: &Bundle,
) -> Result<Option<ValidateConfig>, Problem> {
    let bound = BoundApi { key, spec, bundle };
    Ok(plugins::render(gateway, &[bound], None)?.validate)
}

/// Files smaller than this are sent as they are.
pub const GZIP_MIN_BYTES: usize = 1024;

/// `Accept-Encoding` values that take gzip (or `*`) with a weight above 0, as an RE2 pattern that
/// must match the whole value (Envoy's `safe_regex`); [`accepts_gzip`] is the same rule in code.
pub const GZIP_ACCEPTED: &str =
    r"(?i)(.*,)?\s*(gzip|\*)\s*(;\s*q\s*=\s*(1(\.0*)?|0\.0*[1-9][0-9]*))?\s*(,.*)?";

/// `bytes` gzip-compressed, for clients that accept it.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

/// Whether an `Accept-Encoding` value takes gzip (RFC 9110 12.5.3: `gzip;q=0` refuses it).
pub fn accepts_gzip(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|parameter| {
            let parameter = parameter.trim().replace(' ', "");
            parameter == "q=0"
                || parameter.starts_with("q=0.0")
                    && parameter.trim_start_matches("q=0.").chars().all(|c| c == '0')
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// The document as YAML, for the download link.
pub fn yaml(document: &Value) -> String {
    serde_yaml_ng::to_string(document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AuthPolicy, Backend};

    fn spec() -> ApiDefinitionSpec {
        ApiDefinitionSpec {
            gateway: "edge".into(),
            hosts: vec!["api.example.com".into()],
            base_path: "/pets".into(),
            backends: vec![
                Backend {
                    service: "pets-v1".into(),
                    port: 80,
                    version: Some("v1".into()),
                    weight: Some(90),
                },
                Backend {
                    service: "pets-v2".into(),
                    port: 80,
                    version: Some("v2".into()),
                    weight: None,
                },
            ],
            ..ApiDefinitionSpec::default()
        }
    }

    #[test]
    fn an_entry_says_what_a_caller_needs() {
        let document = json!({
            "openapi": "3.0.3",
            "info": {"title": "Pets", "version": "1.2.0"},
            "paths": {"/": {"get": {}, "post": {}, "parameters": []}, "/{id}": {"get": {}}},
        });
        let key = Key::new("shop", "pets");
        let mut gateway = GatewayBindingSpec::default();
        gateway.defaults.auth = Some(AuthPolicy {
            providers: vec!["idp".into()],
            scopes: vec!["pets:read".into()],
            anonymous: false,
        });
        let entry = entry(
            &gateway,
            &Source {
                key: &key,
                spec: &spec(),
                document: &Summary::of(&document),
                sha256: "abc",
                ready: None,
                model: None,
            },
        );
        assert_eq!(entry.title, "Pets");
        assert_eq!(entry.version, "1.2.0");
        assert_eq!(entry.operations, 3);
        assert_eq!(entry.path, "shop/pets/");
        assert_eq!(entry.validation, "enforce");
        assert_eq!(
            entry.versions,
            vec![
                Share {
                    name: "v1".into(),
                    weight: 90
                },
                Share {
                    name: "v2".into(),
                    weight: 10
                }
            ]
        );
        assert_eq!(entry.auth.credentials, vec!["idp".to_string()]);
        assert_eq!(entry.auth.scopes, vec!["pets:read".to_string()]);
        assert!(!entry.auth.anonymous);
    }

    #[test]
    fn unset_weights_share_the_rest_equally() {
        let weights: Vec<u32> = shares(
            [("a", None), ("b", None), ("c", None)]
                .into_iter()
                .map(|(name, weight)| (name.to_string(), weight)),
        )
        .into_iter()
        .map(|share| share.weight)
        .collect();
        assert_eq!(weights, vec![34, 33, 33]);
    }

    #[test]
    fn gzip_is_sent_to_clients_that_take_it() {
        for (accept, takes) in [
            ("gzip, deflate, br", true),
            ("br;q=1.0, gzip;q=0.8", true),
            ("*", true),
            ("identity", false),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("deflate", false),
        ] {
            assert_eq!(accepts_gzip(accept), takes, "{accept}");
        }
        let text = "portal ".repeat(1000);
        let mut plain = String::new();
        use std::io::Read as _;
        flate2::read::GzDecoder::new(gzip(text.as_bytes()).as_slice())
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, text);
    }

    #[test]
    fn the_page_is_compiled_in_and_typed() {
        assert!(ASSETS.iter().all(|asset| !asset.body.is_empty()));
        assert_eq!(content_type("kea_validator_bg.wasm"), "application/wasm");
        assert_eq!(content_type("a/b/openapi.yaml"), "application/yaml");
    }
}
