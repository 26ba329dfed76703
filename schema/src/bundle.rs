//! The bundle: an OpenAPI document compiled ahead of time into what the validator needs — every
//! `$ref` resolved, schemas converted to JSON Schema, operations with their route templates — as
//! versioned JSON carrying its own sha256, so the plugin loads it without YAML or reference work.

use crate::convert::{Converter, Direction};
use crate::error::DocumentError;
use crate::model::{
    MediaType, OpenApi, Operation, Parameter, ParameterIn, PathItem, RequestBody, Response, Server, Style,
    METHODS,
};
use crate::routes::{base_path, Template};
use crate::sources::{Location, Sources};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The bundle format this build writes and reads.
pub const FORMAT: &str = "kea.dev/openapi-bundle/v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// Hex sha256 of this bundle serialised with `sha256` empty.
    pub sha256: String,
    pub title: String,
    pub version: String,
    pub operations: Vec<OperationSpec>,
    /// Shared JSON Schema definitions the operations' schemas refer to (`#/definitions/<key>`).
    pub definitions: BTreeMap<String, Value>,
    /// What the document says that is not checked (keywords outside OpenAPI 3.0), one line each
    /// with its document and pointer; at most [`MAX_WARNINGS`] and a line counting the rest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Warnings a bundle carries: enough to fix a document, not so many that a generated one with a
/// keyword in every schema makes the bundle (and the ApiDefinition's status) huge.
pub const MAX_WARNINGS: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Upper case.
    pub method: String,
    /// The path template as written under `paths`.
    pub path: String,
    /// Base paths (from `servers`) the template is served under; `""` is the root.
    pub base_paths: Vec<String>,
    /// Where the operation is in the source document (`#/paths/~1pets/get`), for messages.
    pub pointer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<BodySpec>,
    /// By status code, `2XX`-style range or `default`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub responses: BTreeMap<String, Vec<MediaSpec>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParameterSpec {
    pub name: String,
    #[serde(rename = "in")]
    pub location: ParameterIn,
    pub required: bool,
    pub style: Style,
    pub explode: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty_value: bool,
    /// The value is a JSON document (`content: application/json`) rather than styled text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub json: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BodySpec {
    pub required: bool,
    pub content: Vec<MediaSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MediaSpec {
    /// Lower case; may be a range (`text/*`, `*/*`).
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// How the properties of a form body are written, where that is not the default (style
    /// `form`, exploded, plain text); by property name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub encoding: BTreeMap<String, EncodingSpec>,
}

/// One property's Encoding Object (OpenAPI 3.0.3 §4.7.14), defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncodingSpec {
    /// `form`, `spaceDelimited`, `pipeDelimited` or `deepObject`.
    pub style: Style,
    pub explode: bool,
    /// The value is a JSON document (`contentType: application/json`) rather than styled text.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub json: bool,
}

impl EncodingSpec {
    /// The encoding of properties the document says nothing about.
    pub const DEFAULT: Self = Self {
        style: Style::Form,
        explode: true,
        json: false,
    };
}

/// Why a bundle could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a bundle: {0}")]
    Malformed(String),
    #[error("bundle format {found:?} is not {FORMAT:?}")]
    Format { found: String },
    #[error("bundle sha256 mismatch: it says {stated}, its content hashes to {actual}")]
    Digest { stated: String, actual: String },
}

impl Bundle {
    /// Compiles the root document of `sources` (and the documents it refers to).
    pub fn compile(sources: &Sources) -> Result<Self, DocumentError> {
        log::debug!("compiling bundle from {}", sources.root_name());
        let bundle = Compiler::new(sources).compile()?;
        log::debug!(
            "compiled bundle {} with {} operations, {} warnings",
            bundle.sha256,
            bundle.operations.len(),
            bundle.warnings.len()
        );
        Ok(bundle)
    }

    /// Serialises to JSON (the digest is already set).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a bundle and checks its format and digest.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        let bundle: Bundle =
            kea_plugin_sdk::json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != FORMAT {
            return Err(BundleError::Format { found: bundle.format });
        }
        let actual = bundle.digest();
        if !actual.eq_ignore_ascii_case(&bundle.sha256) {
            return Err(BundleError::Digest {
                stated: bundle.sha256,
                actual,
            });
        }
        Ok(bundle)
    }

    fn digest(&self) -> String {
        let unsigned = Bundle {
            sha256: String::new(),
            ..self.clone()
        };
        let digest = Sha256::digest(serde_json::to_vec(&unsigned).unwrap_or_default());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct Compiler<'s> {
    sources: &'s Sources,
    converter: Converter<'s>,
}

impl<'s> Compiler<'s> {
    fn new(sources: &'s Sources) -> Self {
        Self {
            sources,
            converter: Converter::new(sources),
        }
    }

    fn compile(mut self) -> Result<Bundle, DocumentError> {
        let root = Location::new(self.sources.root_name(), "");
        // The version first: a 2.0 or 3.1 document fails the 3.0 model on some field ("missing
        // field `paths`") that tells nothing about the real reason.
        if let Some(document) = self.sources.get(&root) {
            check_version(&root, document)?;
        }
        let document: OpenApi = self.typed(&root)?;
        let document_bases = server_bases(&document.servers);
        let mut operations = Vec::new();
        for path in document.paths.keys() {
            let path_at = root.child("paths").child(path);
            if path.starts_with("x-") {
                continue;
            }
            Template::parse(path).map_err(|reason| path_at.error(reason))?;
            let (item_at, item_value) = self.sources.resolve(&path_at)?;
            let item: PathItem = self.typed(&item_at)?;
            let item_bases = if item.servers.is_empty() {
                document_bases.clone()
            } else {
                server_bases(&item.servers)
            };
            for method in METHODS {
                if item_value.get(method).is_none() {
                    continue;
                }
                // OpenAPI 3.0 does not allow an operation to be a `$ref`, but JSON Reference
                // tools (swagger-parser, Redocly, ...) resolve one anywhere and documents split
                // into files rely on it: refusing would reject what every other tool reads. So it
                // is followed like a Reference Object. The operation keeps the pointer where it
                // is declared (`/paths/~1pets/get`), while everything inside it (and its errors)
                // is addressed at the target, where the user has to look.
                let (operation_at, _) = self.sources.resolve(&item_at.child(method))?;
                let operation: Operation = self.typed(&operation_at)?;
                let bases = if operation.servers.is_empty() {
                    item_bases.clone()
                } else {
                    server_bases(&operation.servers)
                };
                let mut spec =
                    self.operation(path, method, &item_at, &item, &operation_at, &operation, bases)?;
                spec.pointer = item_at.child(method).pointer;
                operations.push(spec);
            }
        }
        let info = document.info;
        let mut warnings = self.converter.warnings();
        if warnings.len() > MAX_WARNINGS {
            let more = warnings.len() - MAX_WARNINGS;
            warnings.truncate(MAX_WARNINGS);
            warnings.push(format!("… and {more} more"));
        }
        let mut bundle = Bundle {
            format: FORMAT.to_string(),
            sha256: String::new(),
            title: info.title,
            version: info.version,
            operations,
            definitions: self.converter.into_definitions()?,
            warnings,
        };
        bundle.sha256 = bundle.digest();
        Ok(bundle)
    }

    #[allow(clippy::too_many_arguments)]
    fn operation(
        &mut self,
        path: &str,
        method: &str,
        item_at: &Location,
        item: &PathItem,
        at: &Location,
        operation: &Operation,
        base_paths: Vec<String>,
    ) -> Result<OperationSpec, DocumentError> {
        // Operation parameters override path-item ones with the same name and location.
        let mut parameters: Vec<ParameterSpec> = Vec::new();
        let listed = [
            (item_at.child("parameters"), item.parameters.len()),
            (at.child("parameters"), operation.parameters.len()),
        ];
        for (list_at, count) in listed {
            for index in 0..count {
                let spec = self.parameter(&list_at.child(&index.to_string()))?;
                parameters.retain(|p| !(p.name == spec.name && p.location == spec.location));
                parameters.push(spec);
            }
        }
        let template = Template::parse(path).map_err(|reason| item_at.error(reason))?;
        for variable in template.variables() {
            if !parameters
                .iter()
                .any(|p| p.location == ParameterIn::Path && p.name == variable)
            {
                return Err(at.error(format!("path variable {{{variable}}} has no path parameter")));
            }
        }
        for parameter in parameters.iter().filter(|p| p.location == ParameterIn::Path) {
            if !template.variables().any(|v| v == parameter.name) {
                return Err(at.error(format!(
                    "path parameter {:?} is not in the path {path:?}",
                    parameter.name
                )));
            }
        }
        let body = match &operation.request_body {
            Some(_) => Some(self.body(&at.child("requestBody"))?),
            None => None,
        };
        let mut responses = BTreeMap::new();
        for status in operation.responses.keys() {
            let valid_status = status == "default"
                || (status.len() == 3
                    && (status.chars().all(|c| c.is_ascii_digit())
                        || (status.ends_with("XX") && status.starts_with(['1', '2', '3', '4', '5']))));
            if !valid_status {
                continue;
            }
            let (response_at, _) = self.sources.resolve(&at.child("responses").child(status))?;
            let response: Response = self.typed(&response_at)?;
            let content = self.content(
                &response_at.child("content"),
                &response.content,
                Direction::Response,
            )?;
            responses.insert(status.to_ascii_uppercase(), content);
        }
        Ok(OperationSpec {
            id: operation.operation_id.clone(),
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            base_paths,
            pointer: at.pointer.clone(),
            parameters,
            body,
            responses,
        })
    }

    fn parameter(&mut self, at: &Location) -> Result<ParameterSpec, DocumentError> {
        let (at, _) = self.sources.resolve(at)?;
        let parameter: Parameter = self.typed(&at)?;
        let location = parameter.location;
        let style = parameter.style.unwrap_or(Style::default_for(location));
        if !style.allowed_in(location) {
            return Err(at
                .child("style")
                .error(format!("style {style:?} is not allowed in {}", location.as_str())));
        }
        if location == ParameterIn::Path && !parameter.required {
            return Err(at
                .child("required")
                .error("path parameters must be required: true"));
        }
        let (schema, json) = match (&parameter.schema, &parameter.content) {
            (Some(_), None) => (
                Some(self.converter.schema(&at.child("schema"), Direction::Request)?),
                false,
            ),
            (None, Some(content)) => {
                let Some(media_type) = content.keys().next().filter(|_| content.len() == 1) else {
                    return Err(at
                        .child("content")
                        .error("content must hold exactly one media type"));
                };
                let (media_at, _) = self.sources.resolve(&at.child("content").child(media_type))?;
                let media: MediaType = self.typed(&media_at)?;
                let schema = match media.schema {
                    Some(_) => Some(
                        self.converter
                            .schema(&media_at.child("schema"), Direction::Request)?,
                    ),
                    None => None,
                };
                (schema, is_json(media_type))
            }
            (None, None) => (None, false),
            (Some(_), Some(_)) => return Err(at.error("a parameter has schema or content, not both")),
        };
        Ok(ParameterSpec {
            name: parameter.name,
            location,
            required: parameter.required,
            style,
            explode: parameter.explode.unwrap_or(style == Style::Form),
            allow_empty_value: parameter.allow_empty_value,
            json,
            schema,
        })
    }

    fn body(&mut self, at: &Location) -> Result<BodySpec, DocumentError> {
        let (at, _) = self.sources.resolve(at)?;
        let body: RequestBody = self.typed(&at)?;
        let content = self.content(&at.child("content"), &body.content, Direction::Request)?;
        Ok(BodySpec {
            required: body.required,
            content,
        })
    }

    fn content(
        &mut self,
        at: &Location,
        content: &Map<String, Value>,
        direction: Direction,
    ) -> Result<Vec<MediaSpec>, DocumentError> {
        let mut media = Vec::new();
        for media_type in content.keys() {
            // Not allowed to be a `$ref` in 3.0 either, but followed like an operation is.
            let declared_at = at.child(media_type);
            let (media_at, _) = self.sources.resolve(&declared_at)?;
            let spec: MediaType = self.typed(&media_at)?;
            let schema = match spec.schema {
                Some(_) => Some(self.converter.schema(&media_at.child("schema"), direction)?),
                None => None,
            };
            let essence = essence(media_type);
            if !essence.contains('/') {
                return Err(declared_at.error("a media type is type/subtype"));
            }
            let encoding = if essence == FORM {
                form_encoding(&media_at, spec.encoding.as_ref())
            } else {
                BTreeMap::new()
            };
            media.push(MediaSpec {
                media_type: essence,
                schema,
                encoding,
            });
        }
        Ok(media)
    }

    /// Deserialises the node at `at` (after references), errors pointing inside it.
    fn typed<T: DeserializeOwned>(&self, at: &Location) -> Result<T, DocumentError> {
        let (at, value) = self.sources.resolve(at)?;
        serde_path_to_error::deserialize(value).map_err(|error| {
            let mut pointer = at.pointer.clone();
            for segment in error.path().iter() {
                let token = match segment {
                    serde_path_to_error::Segment::Seq { index } => index.to_string(),
                    serde_path_to_error::Segment::Map { key }
                    | serde_path_to_error::Segment::Enum { variant: key } => key.clone(),
                    serde_path_to_error::Segment::Unknown => "?".into(),
                };
                pointer = crate::error::pointer_push(&pointer, &token);
            }
            DocumentError::new(&at.document, &pointer, error.into_inner().to_string())
        })
    }
}

/// Refuses documents that are not OpenAPI 3.0.x, naming what they are. Any 3.0 patch release is
/// read: "the patch version SHOULD NOT be considered by tooling" (OpenAPI 3.0.3, Versions).
fn check_version(root: &Location, document: &Value) -> Result<(), DocumentError> {
    const READS: &str = "KEA reads OpenAPI 3.0.x documents";
    const CONVERT: &str = "convert it to OpenAPI 3.0 first (e.g. with swagger2openapi)";
    let Some(object) = document.as_object() else {
        return Err(root.error(format!("an OpenAPI document is an object: {READS}")));
    };
    let version = match (object.get("openapi"), object.get("swagger")) {
        (Some(Value::String(version)), _) => version.as_str(),
        // `openapi: 3.0` unquoted in YAML is the number 3.0.
        (Some(other), _) => {
            return Err(root.child("openapi").error(format!(
                "the version must be a string such as \"3.0.3\", not {other}: {READS}"
            )))
        }
        (None, Some(swagger)) => {
            return Err(root.child("swagger").error(format!(
                "this is a Swagger/OpenAPI 2.0 document (swagger: {swagger}), which is not supported: \
                 {READS}; {CONVERT}"
            )))
        }
        (None, None) => {
            return Err(root.error(format!(
                "no `openapi` field, so not an OpenAPI document: {READS} (openapi: 3.0.3)"
            )))
        }
    };
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = version.splitn(3, '.').collect();
    let reason = match parts.as_slice() {
        ["3", "0", patch] if numeric(patch) => return Ok(()),
        [major, ..] if !numeric(major) => {
            format!("{version:?} is not an OpenAPI version: {READS} (openapi: 3.0.3)")
        }
        ["2", ..] => format!("OpenAPI {version} (Swagger 2.0) is not supported: {READS}; {CONVERT}"),
        // 3.1 schemas are JSON Schema 2020-12 (type arrays, numeric exclusive bounds, `const`,
        // ...): read as 3.0 they would be checked wrongly, not just loosely.
        ["3", "1", ..] => format!(
            "OpenAPI {version} is not supported: {READS} (3.1 changed the Schema Object to JSON \
             Schema 2020-12); write the document as 3.0.x"
        ),
        ["3", "0", ..] => {
            format!("{version:?} is not a 3.0.x version (major.minor.patch): {READS} (openapi: 3.0.3)")
        }
        _ => format!("OpenAPI {version} is not supported: {READS}"),
    };
    Err(root.child("openapi").error(reason))
}

/// The media type of form bodies, the only one whose `encoding` changes how KEA reads it.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// The Encoding Objects of a form body that differ from the default. Entries KEA cannot read (an
/// unknown or misspelt style, a style for parameters in other locations) keep the default: a
/// document that compiled before `encoding` was read still compiles to the same checks.
fn form_encoding(at: &Location, encoding: Option<&Value>) -> BTreeMap<String, EncodingSpec> {
    let mut specs = BTreeMap::new();
    let Some(entries) = encoding.and_then(Value::as_object) else {
        return specs;
    };
    for (property, entry) in entries {
        let style = match entry.get("style").and_then(Value::as_str) {
            None | Some("form") => Some(Style::Form),
            Some("spaceDelimited") => Some(Style::SpaceDelimited),
            Some("pipeDelimited") => Some(Style::PipeDelimited),
            Some("deepObject") => Some(Style::DeepObject),
            Some(_) => None,
        };
        let Some(style) = style else {
            log::debug!(
                "{}: encoding of {property:?} has an unknown style, default kept",
                at.pointer
            );
            continue;
        };
        let spec = EncodingSpec {
            style,
            explode: entry
                .get("explode")
                .and_then(Value::as_bool)
                .unwrap_or(style == Style::Form),
            // `contentType` may list several types: JSON only when every one of them is.
            json: entry
                .get("contentType")
                .and_then(Value::as_str)
                .is_some_and(|types| types.split(',').all(is_json)),
        };
        if spec != EncodingSpec::DEFAULT {
            specs.insert(property.clone(), spec);
        }
    }
    specs
}

/// A media type without parameters, lower case: `Application/JSON; charset=utf-8` → `application/json`.
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// JSON media types: `application/json` and any `+json` suffix.
pub fn is_json(media_type: &str) -> bool {
    let essence = essence(media_type);
    essence == "application/json" || essence.ends_with("+json")
}

/// Base paths of `servers`, every allowed value of their variables substituted; `[""]` without servers.
fn server_bases(servers: &[Server]) -> Vec<String> {
    let mut bases = Vec::new();
    for server in servers {
        let mut urls = vec![server.url.clone()];
        for (name, variable) in &server.variables {
            let placeholder = format!("{{{name}}}");
            let mut values = vec![variable.default.clone()];
            values.extend(
                variable
                    .allowed
                    .iter()
                    .filter(|v| **v != variable.default)
                    .cloned(),
            );
            urls = urls
                .iter()
                .flat_map(|url| {
                    values
                        .iter()
                        .map(|v| url.replace(&placeholder, v))
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        bases.extend(urls.iter().map(|u| base_path(u)));
    }
    if bases.is_empty() {
        bases.push(String::new());
    }
    bases.sort();
    bases.dedup();
    bases
}
