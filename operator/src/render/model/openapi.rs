//! A model's OpenAPI 3.0 document, generated from its signature: the concrete Open Inference
//! Protocol paths (`/v2/models/<name>/...`, with and without version), request and response
//! schemas that fix each tensor's name and datatype and constrain `shape` and the nesting of
//! `data` by the declared rank, and examples. The validate plugin enforces it at the gateway.
//!
//! OpenAPI 3.0 has no positional array items (`prefixItems`), so a shape is constrained by its rank,
//! positive dimensions and "contains each fixed dimension"; a shape with no `-1` is pinned
//! exactly, and nested `data` is pinned at every depth. The serving class checks the rest.
//!
//! An optional input (`optional: true`) may be left out: the request's `inputs` then holds between
//! the number of required inputs and the number of all inputs, and its component says so.
//! [`Descriptions`] (from a custom model's source, [`super::source`]) add text only — the model's
//! `info.description`, the infer operations' `description`, each tensor component's
//! `description` — and change nothing else in the document.

use super::base_path;
use crate::crd::{Datatype, Framework, ModelSpec, Tensor};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use tracing::instrument;

/// Text about the model and its tensors, e.g. from a serving class's docstrings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptions {
    /// The model (the class docstring): leads `info.description`.
    pub model: Option<String>,
    /// The inference operation (`predict`'s docstring summary): each infer operation's
    /// `description`.
    pub operation: Option<String>,
    /// Per input tensor, by name.
    pub inputs: BTreeMap<String, String>,
    /// Per output tensor, by name.
    pub outputs: BTreeMap<String, String>,
}

impl Descriptions {
    #[instrument(level = "trace", skip_all)]
    pub fn is_empty(&self) -> bool {
        self.model.is_none() && self.operation.is_none() && self.inputs.is_empty() && self.outputs.is_empty()
    }
}

/// The whole model: `/`, `/ready`, `/infer`, and `/versions/<v>`, `/versions/<v>/ready`,
/// `/versions/<v>/infer` for every version.
#[instrument(level = "debug", skip(spec))]
pub fn document(model: &str, spec: &ModelSpec) -> Value {
    described_document(model, spec, &Descriptions::default())
}

/// [`document`] with the descriptions added.
#[instrument(level = "debug", skip(spec, descriptions))]
pub fn described_document(model: &str, spec: &ModelSpec, descriptions: &Descriptions) -> Value {
    let versions: Vec<&str> = spec
        .versions
        .iter()
        .map(|version| version.name.as_str())
        .collect();
    let mut paths = Map::new();
    add_paths(&mut paths, "", model, None, descriptions);
    for version in &versions {
        add_paths(
            &mut paths,
            &format!("/versions/{version}"),
            model,
            Some(version),
            descriptions,
        );
    }
    wrap(model, spec, &versions, base_path(model), paths, descriptions)
}

/// One version's pinned endpoints, relative to `/v2/models/<name>/versions/<v>`.
#[instrument(level = "debug", skip(spec))]
pub fn version_document(model: &str, spec: &ModelSpec, version: &str) -> Value {
    described_version_document(model, spec, version, &Descriptions::default())
}

/// [`version_document`] with the descriptions added.
#[instrument(level = "debug", skip(spec, descriptions))]
pub fn described_version_document(
    model: &str,
    spec: &ModelSpec,
    version: &str,
    descriptions: &Descriptions,
) -> Value {
    let mut paths = Map::new();
    add_paths(&mut paths, "", model, Some(version), descriptions);
    wrap(
        model,
        spec,
        &[version],
        super::version_base_path(model, version),
        paths,
        descriptions,
    )
}

fn wrap(
    model: &str,
    spec: &ModelSpec,
    versions: &[&str],
    server: String,
    paths: Map<String, Value>,
    descriptions: &Descriptions,
) -> Value {
    let framework = spec.framework.name();
    let checked = match (&spec.signature, spec.framework) {
        (Some(_), _) => "Requests whose tensors do not match the model's signature (names, datatypes, ranks, fixed dimensions, data nesting) are rejected by the gateway with application/problem+json before they reach the model.",
        (None, Framework::Custom) => "The Model resource declares no signature and none could be read from its serving class (the Model's `Documented` condition says why; `kea model signature FILE.py` shows what a class declares), so requests are checked against the generic Open Inference Protocol schema only.",
        (None, _) => "The model declares no signature (its ONNX file carries it: see the metadata endpoint), so requests are checked against the generic Open Inference Protocol schema only.",
    };
    let generated = format!(
        "Open Inference Protocol (REST) endpoints of the {framework} model `{model}`, versions {}. Generated by KEA from the Model resource. {checked}",
        versions.join(", ")
    );
    let description = match &descriptions.model {
        Some(text) => format!("{text}\n\n{generated}"),
        None => generated,
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": format!("{model} ({framework} model)"),
            "version": versions.join(", "),
            "description": description,
        },
        "servers": [{"url": server}],
        "tags": [{"name": "inference"}, {"name": "metadata"}, {"name": "health"}],
        "paths": paths,
        "components": {"schemas": schemas(model, spec, versions, descriptions)},
    })
}

fn add_paths(
    paths: &mut Map<String, Value>,
    prefix: &str,
    model: &str,
    version: Option<&str>,
    descriptions: &Descriptions,
) {
    let label = version.map(|v| format!(" (version {v})")).unwrap_or_default();
    let id = version
        .map(|v| format!("_{}", v.replace('-', "_")))
        .unwrap_or_default();
    let error = json!({"description": "Not found or not ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    paths.insert(
        if prefix.is_empty() { "/".into() } else { prefix.to_string() },
        json!({"get": {
            "operationId": format!("metadata{id}"),
            "tags": ["metadata"],
            "summary": format!("Metadata of {model}{label}: its versions, platform and tensors"),
            "responses": {
                "200": {"description": "Model metadata", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MetadataResponse"}}}},
                "404": error,
            },
        }}),
    );
    paths.insert(
        format!("{prefix}/ready"),
        json!({"get": {
            "operationId": format!("ready{id}"),
            "tags": ["health"],
            "summary": format!("Whether {model}{label} is ready for inference"),
            "responses": {"200": {"description": "Ready"}, "400": error.clone(), "404": error},
        }}),
    );
    let mut infer = json!({"post": {
        "operationId": format!("infer{id}"),
        "tags": ["inference"],
        "summary": format!("Run {model}{label} on the given tensors"),
        "requestBody": {
            "required": true,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/InferenceRequest"},
            }},
        },
        "responses": {
            "200": {"description": "The model's outputs", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}}}},
            "400": {
                "description": "The tensors do not match the model's signature",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}},
                },
            },
        },
    }});
    if let (Some(text), Some(operation)) = (
        &descriptions.operation,
        infer.get_mut("post").and_then(Value::as_object_mut),
    ) {
        operation.insert("description".into(), json!(text));
    }
    paths.insert(format!("{prefix}/infer"), infer);
}

fn schemas(model: &str, spec: &ModelSpec, versions: &[&str], descriptions: &Descriptions) -> Value {
    let mut schemas = Map::new();
    let (inputs, outputs): (&[Tensor], &[Tensor]) = match &spec.signature {
        Some(signature) => (&signature.inputs, &signature.outputs),
        None => (&[], &[]),
    };
    let input_refs = tensor_components(&mut schemas, "Input", inputs, true, &descriptions.inputs);
    let output_refs = tensor_components(&mut schemas, "Output", outputs, false, &descriptions.outputs);
    let required = inputs.iter().filter(|tensor| !tensor.optional).count();
    let mut request = json!({
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": false,
        "properties": {
            "id": {"type": "string", "description": "Echoed in the response"},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
            "inputs": tensor_list(&input_refs, required, inputs.len()),
            "outputs": {
                "type": "array",
                "description": "The outputs to return (default: all)",
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": false,
                    "properties": {
                        "name": names(outputs),
                        "parameters": {"$ref": "#/components/schemas/Parameters"},
                    },
                },
            },
        },
    });
    if !inputs.is_empty() {
        if let Some(map) = request.as_object_mut() {
            map.insert(
                "example".into(),
                json!({"inputs": inputs.iter().map(example).collect::<Vec<_>>()}),
            );
        }
    }
    schemas.insert("InferenceRequest".into(), request);
    schemas.insert(
        "InferenceResponse".into(),
        json!({
            "type": "object",
            "required": ["model_name", "outputs"],
            "properties": {
                "model_name": {"type": "string", "enum": [model]},
                "model_version": {"type": "string", "enum": versions},
                "id": {"type": "string"},
                "parameters": {"$ref": "#/components/schemas/Parameters"},
                "outputs": tensor_list(&output_refs, 0, 0),
            },
        }),
    );
    let metadata_tensor = json!({
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string", "enum": ALL_DATATYPES},
            "shape": {"type": "array", "items": {"type": "integer", "format": "int64", "minimum": -1}},
        },
    });
    let metadata_example = json!({
        "name": model,
        "versions": versions,
        "platform": platform(spec.framework),
        "inputs": inputs.iter().map(metadata).collect::<Vec<_>>(),
        "outputs": outputs.iter().map(metadata).collect::<Vec<_>>(),
    });
    schemas.insert(
        "MetadataResponse".into(),
        json!({
            "type": "object",
            "required": ["name", "platform"],
            "properties": {
                "name": {"type": "string", "enum": [model]},
                "versions": {"type": "array", "items": {"type": "string"}},
                "platform": {"type": "string"},
                "inputs": {"type": "array", "items": metadata_tensor},
                "outputs": {"type": "array", "items": metadata_tensor},
            },
            "example": metadata_example,
        }),
    );
    schemas.insert(
        "Parameters".into(),
        json!({"type": "object", "additionalProperties": true, "description": "Free-form parameters"}),
    );
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}),
    );
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": "RFC 9457 problem details, from the gateway",
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"},
            },
        }),
    );
    Value::Object(schemas)
}

const ALL_DATATYPES: [&str; 13] = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
    "BYTES",
];

/// The platform the runtime reports (`platform` in MLServer's model settings).
pub fn platform(framework: Framework) -> &'static str {
    match framework {
        Framework::Sklearn => "sklearn",
        Framework::Xgboost => "xgboost",
        Framework::Onnx => "onnx",
        Framework::Pytorch => "pytorch",
        Framework::Tensorflow => "tensorflow",
        Framework::Custom => "custom",
    }
}

/// A tensor as the metadata endpoint reports it (MLServer's `MetadataTensor`).
#[instrument(level = "trace", skip_all)]
fn metadata(tensor: &Tensor) -> Value {
    json!({"name": tensor.name, "datatype": tensor.datatype.name(), "shape": tensor.shape})
}

/// One component per declared tensor (`Input0`, `Output1`…); their `$ref`s.
fn tensor_components(
    schemas: &mut Map<String, Value>,
    prefix: &str,
    tensors: &[Tensor],
    request: bool,
    descriptions: &BTreeMap<String, String>,
) -> Vec<Value> {
    tensors
        .iter()
        .enumerate()
        .map(|(index, tensor)| {
            let name = format!("{prefix}{index}");
            let description = descriptions.get(&tensor.name).map(String::as_str);
            schemas.insert(name.clone(), tensor_schema(tensor, request, description));
            json!({"$ref": format!("#/components/schemas/{name}")})
        })
        .collect()
}

/// The `inputs`/`outputs` array: its items are the declared tensors; with `max > 0` it holds
/// between `min` (the required tensors) and `max` (all of them).
fn tensor_list(refs: &[Value], min: usize, max: usize) -> Value {
    let items = match refs {
        [] => generic_tensor(),
        [single] => single.clone(),
        many => json!({"oneOf": many}),
    };
    let mut list = json!({"type": "array", "items": items});
    if max > 0 {
        if let Some(map) = list.as_object_mut() {
            map.insert("minItems".into(), json!(min.max(1)));
            map.insert("maxItems".into(), json!(max));
        }
    }
    list
}

fn names(tensors: &[Tensor]) -> Value {
    if tensors.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": tensors.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()})
    }
}

fn generic_tensor() -> Value {
    json!({
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "format": "int64", "minimum": 0}},
            "datatype": {"type": "string", "enum": ALL_DATATYPES},
            "parameters": {"$ref": "#/components/schemas/Parameters"},
            "data": {"type": "array"},
        },
    })
}

/// A declared tensor: its name and datatype fixed, its shape and data constrained by the shape.
fn tensor_schema(tensor: &Tensor, request: bool, description: Option<&str>) -> Value {
    let mut properties = json!({
        "name": {"type": "string", "enum": [tensor.name]},
        "datatype": {"type": "string", "enum": [tensor.datatype.name()]},
        "shape": shape_schema(&tensor.shape),
        "parameters": {"$ref": "#/components/schemas/Parameters"},
        "data": data_schema(&tensor.shape, tensor.datatype),
    });
    if !request {
        // Models may return another batch size or a datatype they widened: responses are only
        // reported, and only the name and rank are promised.
        if let Some(map) = properties.as_object_mut() {
            map.insert(
                "datatype".into(),
                json!({"type": "string", "enum": ALL_DATATYPES}),
            );
            map.insert("data".into(), json!({"type": "array"}));
        }
    }
    let optional = if tensor.optional && request {
        " (optional)"
    } else {
        ""
    };
    let mut text = format!(
        "Tensor `{}`{optional}: {} of shape {:?}",
        tensor.name,
        tensor.datatype.name(),
        tensor.shape
    );
    if let Some(description) = description {
        text = format!("{text}. {description}");
    }
    let mut schema = json!({
        "type": "object",
        "description": text,
        "required": ["name", "shape", "datatype", "data"],
        "properties": properties,
    });
    if request {
        if let Some(map) = schema.as_object_mut() {
            map.insert("additionalProperties".into(), json!(false));
            map.insert("example".into(), example(tensor));
        }
    }
    schema
}

fn shape_schema(shape: &[i64]) -> Value {
    let rank = shape.len();
    let mut schema = json!({
        "type": "array",
        "minItems": rank,
        "maxItems": rank,
        "items": {"type": "integer", "format": "int64", "minimum": 1},
    });
    let Some(map) = schema.as_object_mut() else {
        return schema;
    };
    if shape.iter().all(|dim| *dim > 0) {
        map.insert("enum".into(), json!([shape]));
    } else {
        let mut fixed: Vec<i64> = shape.iter().copied().filter(|dim| *dim > 0).collect();
        fixed.sort_unstable();
        fixed.dedup();
        // "contains d" in OpenAPI 3.0: not every item differs from d.
        let contains: Vec<Value> = fixed
            .iter()
            .map(|dim| json!({"not": {"items": {"not": {"enum": [dim]}}}}))
            .collect();
        if !contains.is_empty() {
            map.insert("allOf".into(), json!(contains));
        }
    }
    schema
}

fn scalar(datatype: Datatype) -> Value {
    let int = |min: i64, max: i64, format: &str| json!({"type": "integer", "format": format, "minimum": min, "maximum": max});
    match datatype {
        Datatype::Bool => json!({"type": "boolean"}),
        Datatype::Uint8 => int(0, u8::MAX.into(), "int32"),
        Datatype::Uint16 => int(0, u16::MAX.into(), "int32"),
        Datatype::Uint32 => int(0, u32::MAX.into(), "int64"),
        Datatype::Uint64 => json!({"type": "integer", "minimum": 0}),
        Datatype::Int8 => int(i8::MIN.into(), i8::MAX.into(), "int32"),
        Datatype::Int16 => int(i16::MIN.into(), i16::MAX.into(), "int32"),
        Datatype::Int32 => int(i32::MIN.into(), i32::MAX.into(), "int32"),
        Datatype::Int64 => json!({"type": "integer", "format": "int64"}),
        Datatype::Fp16 | Datatype::Fp32 => json!({"type": "number", "format": "float"}),
        Datatype::Fp64 => json!({"type": "number", "format": "double"}),
        Datatype::Bytes => json!({"type": "string"}),
    }
}

/// `data`: row-major, flat (`[1, 2, 3, 4]`) or nested by the rank (`[[1, 2], [3, 4]]`).
fn data_schema(shape: &[i64], datatype: Datatype) -> Value {
    let element = scalar(datatype);
    let fixed: i64 = shape.iter().filter(|dim| **dim > 0).product();
    let mut flat = json!({"type": "array", "items": element, "minItems": fixed.max(1)});
    if shape.iter().all(|dim| *dim > 0) {
        if let Some(map) = flat.as_object_mut() {
            map.insert("maxItems".into(), json!(fixed.max(1)));
        }
    }
    if shape.len() < 2 {
        return flat;
    }
    json!({"oneOf": [flat, nested(shape, &element)]})
}

fn nested(dims: &[i64], element: &Value) -> Value {
    let Some((first, rest)) = dims.split_first() else {
        return element.clone();
    };
    let mut array = json!({"type": "array", "items": nested(rest, element), "minItems": (*first).max(1)});
    if *first > 0 {
        if let Some(map) = array.as_object_mut() {
            map.insert("maxItems".into(), json!(first));
        }
    }
    array
}

/// A request tensor with every `-1` as 1 and zeros (or `false`, `""`) as data.
fn example(tensor: &Tensor) -> Value {
    let shape: Vec<i64> = tensor.shape.iter().map(|dim| (*dim).max(1)).collect();
    let count = shape.iter().product::<i64>().clamp(1, 4096) as usize;
    let zero = match tensor.datatype {
        Datatype::Bool => json!(false),
        Datatype::Bytes => json!(""),
        Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64 => json!(0.0),
        _ => json!(0),
    };
    json!({"name": tensor.name, "datatype": tensor.datatype.name(), "shape": shape, "data": vec![zero; count]})
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
    use crate::crd::{ModelVersion, Signature};

    fn mnist() -> ModelSpec {
        ModelSpec {
            framework: Framework::Onnx,
            signature: Some(Signature {
                inputs: vec![Tensor {
                    name: "pixels".into(),
                    datatype: Datatype::Fp32,
                    shape: vec![-1, 784],
                    optional: false,
                }],
                outputs: vec![Tensor {
                    name: "label".into(),
                    datatype: Datatype::Int64,
                    shape: vec![-1],
                    optional: false,
                }],
            }),
            versions: vec![
                ModelVersion {
                    name: "v1".into(),
                    weight: Some(50),
                    ..Default::default()
                },
                ModelVersion {
                    name: "v2".into(),
                    weight: Some(50),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn validator(document: Value) -> kea_schema::Api {
        let bundle = kea_schema::Bundle::compile(&kea_schema::Sources::single("mnist", document)).unwrap();
        kea_schema::Api::compile(&bundle).unwrap()
    }

    #[test]
    fn the_document_names_the_concrete_paths() {
        let document = document("mnist", &mnist());
        let paths: Vec<&String> = document["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            paths,
            [
                "/",
                "/infer",
                "/ready",
                "/versions/v1",
                "/versions/v1/infer",
                "/versions/v1/ready",
                "/versions/v2",
                "/versions/v2/infer",
                "/versions/v2/ready"
            ]
        );
        assert_eq!(document["servers"][0]["url"], "/v2/models/mnist");
        let version = version_document("mnist", &mnist(), "v2");
        assert_eq!(version["servers"][0]["url"], "/v2/models/mnist/versions/v2");
        assert_eq!(
            version["components"]["schemas"]["InferenceResponse"]["properties"]["model_version"]["enum"],
            json!(["v2"])
        );
    }

    fn check(api: &kea_schema::Api, path: &str, body: Value) -> Result<(), String> {
        let (id, _) = api.route("POST", path).map_err(|miss| format!("{miss:?}"))?;
        api.check_body(id, Some("application/json"), body.to_string().as_bytes(), 1 << 20)
            .map_err(|rejection| format!("{rejection:?}"))
    }

    #[test]
    fn the_validator_takes_good_tensors_and_rejects_wrong_ones() {
        let api = validator(document("mnist", &mnist()));
        let pixels = |shape: Value, data: Value| json!({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": shape, "data": data}]});
        let flat = json!(vec![0.5; 784]);
        let nested = json!([vec![0.5; 784], vec![0.25; 784]]);
        for path in ["/v2/models/mnist/infer", "/v2/models/mnist/versions/v1/infer"] {
            check(&api, path, pixels(json!([1, 784]), flat.clone())).unwrap();
        }
        check(
            &api,
            "/v2/models/mnist/infer",
            pixels(json!([2, 784]), nested.clone()),
        )
        .unwrap();
        let example =
            document("mnist", &mnist())["components"]["schemas"]["InferenceRequest"]["example"].clone();
        check(&api, "/v2/models/mnist/infer", example).unwrap();

        let wrong = [
            json!({"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 784], "data": flat}]}),
            json!({"inputs": [{"name": "pixels", "datatype": "INT32", "shape": [1, 784], "data": flat}]}),
            pixels(json!([784]), flat.clone()),
            pixels(json!([1, 783]), flat.clone()),
            pixels(json!([1, 0, 784]), flat.clone()),
            pixels(json!([1, 784]), json!(vec!["a"; 784])),
            pixels(json!([1, 784]), json!(vec![0.5; 3])),
            pixels(json!([2, 784]), json!([vec![0.5; 784], vec![0.25; 783]])),
            json!({"inputs": []}),
            json!({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784], "data": flat, "extra": 1}]}),
        ];
        for body in wrong {
            assert!(
                check(&api, "/v2/models/mnist/infer", body.clone()).is_err(),
                "accepted {body}"
            );
        }
        // No infer endpoint for a version the model does not have.
        assert!(check(
            &api,
            "/v2/models/mnist/versions/v3/infer",
            pixels(json!([1, 784]), flat)
        )
        .is_err());
        // The metadata endpoint is the base path itself.
        assert!(api.route("GET", "/v2/models/mnist").is_ok());
        assert!(api.route("GET", "/v2/models/mnist/versions/v2").is_ok());
    }

    #[test]
    fn shapes_and_data_are_constrained_by_the_declared_rank() {
        let shape = json!(shape_schema(&[-1, 784]));
        assert_eq!(shape["minItems"], 2);
        assert_eq!(shape_schema(&[2, 3])["enum"], json!([[2, 3]]));
        let data = data_schema(&[-1, 2], Datatype::Int8);
        assert_eq!(data["oneOf"][0]["items"]["maximum"], 127);
        assert_eq!(data["oneOf"][1]["items"]["maxItems"], 2);
    }
}
