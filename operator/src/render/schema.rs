//! An ApiDefinition's OpenAPI document — inline, from a ConfigMap, or built from operations
//! written as CRD fields — and its compiled bundle.

use super::Problem;
use crate::crd::{ApiDefinitionSpec, Operation};
use kea_schema::{Api, Bundle, Sources};
use serde_json::{json, Map, Value};
use tracing::instrument;

/// Default key of the document in a referenced ConfigMap.
pub const DEFAULT_CONFIG_MAP_KEY: &str = "openapi.yaml";

/// The API's document. `config_map_text` is the referenced ConfigMap's value, when the spec
/// names one (the caller reads it). The document's `servers` become the API's base path: the
/// gateway serves the API there, so that is where the validate plugin finds its operations.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn document(
    name: &str,
    spec: &ApiDefinitionSpec,
    config_map_text: Option<&str>,
) -> Result<Value, Problem> {
    let schema = &spec.schema;
    let given = [
        schema.openapi.is_some(),
        schema.config_map_ref.is_some(),
        !schema.operations.is_empty(),
    ];
    if given.iter().filter(|given| **given).count() != 1 {
        return Err(Problem::invalid(
            "SchemaNotGiven",
            "spec.schema: give exactly one of openapi, configMapRef, operations",
        ));
    }
    let mut document = if let Some(inline) = &schema.openapi {
        inline.clone()
    } else if let Some(reference) = &schema.config_map_ref {
        let text = config_map_text.ok_or_else(|| {
            Problem::invalid(
                "ConfigMapNotFound",
                format!(
                    "spec.schema.configMapRef: ConfigMap {} or its key not found",
                    reference.name
                ),
            )
        })?;
        kea_schema::sources::parse_document(&reference.name, text.as_bytes()).map_err(|error| {
            Problem::schema(format!(
                "ConfigMap {}: {}: {}",
                reference.name, error.pointer, error.reason
            ))
        })?
    } else {
        from_operations(name, &schema.operations)?
    };
    let Some(object) = document.as_object_mut() else {
        return Err(Problem::schema(
            "the OpenAPI document is not an object".to_string(),
        ));
    };
    object.insert("servers".into(), json!([{"url": spec.base_path}]));
    Ok(document)
}

/// Compiles a document into the validate plugin's bundle, and the validators the plugin builds
/// from it, so a bundle that compiles here loads in the plugin.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
pub fn compile(name: &str, document: Value) -> Result<Bundle, Problem> {
    let bundle = Bundle::compile(&Sources::single(name, document))
        .map_err(|error| Problem::schema(format!("{}: {}", pointer_or_root(&error.pointer), error.reason)))?;
    Api::compile(&bundle).map_err(|error| Problem::schema(error.to_string()))?;
    Ok(bundle)
}

/// The bundle's warnings (what the document says that the gateway does not check) as the
/// conditions word schema errors: `/components/schemas/Pet/const: keyword …`, without the
/// document name, which is the API's own.
pub fn warnings(name: &str, bundle: &Bundle) -> Vec<String> {
    let prefix = format!("{name}#");
    bundle
        .warnings
        .iter()
        .map(|warning| warning.strip_prefix(&prefix).unwrap_or(warning).to_string())
        .collect()
}

fn pointer_or_root(pointer: &str) -> &str {
    if pointer.is_empty() {
        "/"
    } else {
        pointer
    }
}

/// "Define the API schema with CRDs": operations written as resource fields become an OpenAPI 3.0
/// document.
#[instrument(level = "debug", skip_all, err(level = "debug", Display))]
fn from_operations(name: &str, operations: &[Operation]) -> Result<Value, Problem> {
    let mut paths = Map::new();
    for (index, operation) in operations.iter().enumerate() {
        let method = operation.method.to_ascii_lowercase();
        let item = paths.entry(operation.path.clone()).or_insert_with(|| json!({}));
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        if item.contains_key(&method) {
            return Err(Problem::invalid(
                "DuplicateOperation",
                format!(
                    "spec.schema.operations[{index}]: {} {} is given twice",
                    operation.method, operation.path
                ),
            ));
        }
        item.insert(method, operation_object(operation));
    }
    Ok(json!({
        "openapi": "3.0.3",
        "info": {"title": name, "version": "1"},
        "paths": paths,
    }))
}

fn operation_object(operation: &Operation) -> Value {
    let mut object = Map::new();
    if let Some(id) = &operation.operation_id {
        object.insert("operationId".into(), json!(id));
    }
    if let Some(summary) = &operation.summary {
        object.insert("summary".into(), json!(summary));
    }
    if !operation.parameters.is_empty() {
        let parameters: Vec<Value> = operation
            .parameters
            .iter()
            .map(|parameter| {
                let mut value = json!({
                    "name": parameter.name,
                    "in": parameter.location,
                    "required": parameter.required || parameter.location == "path",
                    "schema": parameter.schema,
                });
                if let (Some(description), Some(map)) = (&parameter.description, value.as_object_mut()) {
                    map.insert("description".into(), json!(description));
                }
                value
            })
            .collect();
        object.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = &operation.request_body {
        let media = body
            .content_type
            .clone()
            .unwrap_or_else(|| "application/json".into());
        object.insert(
            "requestBody".into(),
            json!({"required": body.required, "content": {media: {"schema": body.schema}}}),
        );
    }
    let mut responses = Map::new();
    for (status, response) in &operation.responses {
        let mut value = json!({"description": response.description.clone().unwrap_or_default()});
        if let (Some(schema), Some(map)) = (&response.schema, value.as_object_mut()) {
            let media = response
                .content_type
                .clone()
                .unwrap_or_else(|| "application/json".into());
            map.insert("content".into(), json!({media: {"schema": schema}}));
        }
        responses.insert(status.clone(), value);
    }
    if responses.is_empty() {
        responses.insert("default".into(), json!({"description": ""}));
    }
    object.insert("responses".into(), Value::Object(responses));
    Value::Object(object)
}
