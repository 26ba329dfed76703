//! OpenAPI test documents compiled into bundles for the validate plugin.

use anyhow::{anyhow, Result};
use kea_schema::{Bundle, Sources};
use serde_json::{json, Value};
use std::path::PathBuf;

/// `schema/tests/data/<dir>`: `openapi` (the OpenAPI Initiative's examples) or `edge`.
pub fn data_dir(dir: &str) -> PathBuf {
    crate::repo_root().join("schema/tests/data").join(dir)
}

/// Compiles `root` (and the documents it refers to) from a test-data folder.
pub fn bundle(dir: &str, root: &str) -> Result<Bundle> {
    let folder = data_dir(dir);
    let sources = Sources::load(root, |name| {
        std::fs::read(folder.join(name)).map_err(|e| e.to_string())
    })
    .map_err(|e| anyhow!("{e}"))?;
    Bundle::compile(&sources).map_err(|e| anyhow!("{e}"))
}

/// The bundle as the JSON value a plugin configuration embeds.
pub fn bundle_value(dir: &str, root: &str) -> Result<Value> {
    Ok(serde_json::from_slice(&bundle(dir, root)?.to_json())?)
}

/// An OpenAPI 3.0 document shaped like the large real ones (Stripe's: hundreds of operations
/// over hundreds of schemas that refer to each other, cycles included): `operations` POST
/// operations, each with a path and a query parameter, a JSON body, a form body and a JSON
/// response, over `schemas` object schemas that each refer to three others (the next one, one
/// through `nullable` + `allOf`, one as array items) — so every operation reaches every schema.
pub fn interlinked_document(operations: usize, schemas: usize) -> Value {
    let schemas = schemas.max(1);
    let reference = |i: usize| json!({"$ref": format!("#/components/schemas/S{}", i % schemas)});
    let components: serde_json::Map<String, Value> = (0..schemas)
        .map(|i| {
            let schema = json!({
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "maxLength": 64},
                    "amount": {"type": "integer", "minimum": 0},
                    "next": reference(i + 1),
                    "other": {"nullable": true, "allOf": [reference(i * 7 + 3)]},
                    "items": {"type": "array", "maxItems": 4, "items": reference(i * 13 + 5)},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            });
            (format!("S{i}"), schema)
        })
        .collect();
    let paths: serde_json::Map<String, Value> = (0..operations)
        .map(|o| {
            let operation = json!({"post": {
                "operationId": format!("update{o}"),
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[a-z0-9_]+$"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
                ],
                "requestBody": {"required": true, "content": {
                    "application/json": {"schema": reference(o)},
                    "application/x-www-form-urlencoded": {"schema": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "amount": {"type": "integer"}}
                    }}
                }},
                "responses": {"200": {"description": "the updated object", "content": {
                    "application/json": {"schema": reference(o + 2)}
                }}}
            }});
            (format!("/r{o}/{{id}}"), operation)
        })
        .collect();
    json!({
        "openapi": "3.0.3",
        "info": {"title": format!("interlinked {operations}x{schemas}"), "version": "1"},
        "paths": paths,
        "components": {"schemas": components}
    })
}
