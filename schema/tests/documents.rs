//! Documents as they come in the wild (issue 18): YAML numbers beyond 64 bits, other OpenAPI
//! versions, references where 3.0 does and does not allow them, keywords KEA does not check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_schema::bundle::MAX_WARNINGS;
use kea_schema::{compile_document, Api, BodyRejection, Bundle, DocumentError, Sources};
use serde_json::{json, Value};
use std::path::Path;

fn load(dir: &str, root: &str) -> Result<Bundle, DocumentError> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(dir);
    let sources = Sources::load(root, |name| {
        std::fs::read(base.join(name)).map_err(|e| e.to_string())
    })?;
    Bundle::compile(&sources)
}

fn compile(document: Value) -> Result<Bundle, DocumentError> {
    Bundle::compile(&Sources::single("api.json", document))
}

/// A 3.0.3 document with these paths.
fn with_paths(paths: Value) -> Value {
    json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": paths})
}

#[test]
fn yaml_integers_beyond_64_bits_load_as_in_json() {
    // `maximum: 18446744073709552000` is u64::MAX printed as a double, as generators write it.
    let yaml = "openapi: 3.0.3
info: {title: Big numbers, version: '1'}
paths:
  /counters:
    post:
      requestBody:
        content:
          application/json:
            schema:
              type: object
              properties:
                total: {type: integer, minimum: -18446744073709552000, maximum: 18446744073709552000}
                huge: {type: number, maximum: 340282366920938463463374607431768211456}
      responses: {'204': {description: ok}}
";
    let json = r#"{"openapi": "3.0.3", "info": {"title": "Big numbers", "version": "1"}, "paths": {"/counters": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
            "total": {"type": "integer", "minimum": -18446744073709552000, "maximum": 18446744073709552000},
            "huge": {"type": "number", "maximum": 340282366920938463463374607431768211456}}}}}},
        "responses": {"204": {"description": "ok"}}}}}}"#;
    let from_yaml = compile_document("api", yaml.as_bytes()).unwrap();
    let from_json = compile_document("api", json.as_bytes()).unwrap();
    assert_eq!(from_yaml, from_json);
    let total = &from_yaml.operations[0].body.as_ref().unwrap().content[0]
        .schema
        .as_ref()
        .unwrap()["properties"]["total"];
    assert_eq!(total["maximum"].as_f64(), Some(18446744073709552000.0));
    assert_eq!(total["minimum"].as_f64(), Some(-18446744073709552000.0));
    let api = Api::compile(&from_yaml).unwrap();
    let (operation, _) = api.route("POST", "/counters").unwrap();
    let check = |body: &str| api.check_body(operation, Some("application/json"), body.as_bytes(), 10);
    assert_eq!(check(r#"{"total": 18446744073709551615}"#), Ok(()));
    assert!(matches!(
        check(r#"{"total": 1.5}"#),
        Err(BodyRejection::Invalid(_))
    ));
}

#[test]
fn documents_of_other_versions_are_refused_by_name() {
    let swagger = json!({"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {},
        "definitions": {"Pet": {"type": "object"}}});
    let error = compile(swagger).unwrap_err();
    assert_eq!(error.pointer, "/swagger");
    assert_eq!(
        error.reason,
        "this is a Swagger/OpenAPI 2.0 document (swagger: \"2.0\"), which is not supported: KEA reads \
         OpenAPI 3.0.x documents; convert it to OpenAPI 3.0 first (e.g. with swagger2openapi)"
    );
    // 3.1 allows a document without `paths`: the version is named, not the missing field.
    let webhooks = json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "webhooks": {}});
    let error = compile(webhooks).unwrap_err();
    assert_eq!(
        error.to_string(),
        "api.json#/openapi: OpenAPI 3.1.0 is not supported: KEA reads OpenAPI 3.0.x documents (3.1 \
         changed the Schema Object to JSON Schema 2020-12); write the document as 3.0.x"
    );
    for version in ["3.0.0", "3.0.1", "3.0.2", "3.0.3", "3.0.4"] {
        let mut document = with_paths(json!({}));
        document["openapi"] = json!(version);
        assert!(compile(document).is_ok(), "{version}");
    }
    for (version, reason) in [
        (json!("3.2.0"), "OpenAPI 3.2.0 is not supported: KEA reads OpenAPI 3.0.x documents"),
        (json!("4.0.0"), "OpenAPI 4.0.0 is not supported: KEA reads OpenAPI 3.0.x documents"),
        (json!("2.0"), "OpenAPI 2.0 (Swagger 2.0) is not supported: KEA reads OpenAPI 3.0.x documents; convert it to OpenAPI 3.0 first (e.g. with swagger2openapi)"),
        (json!("banana"), "\"banana\" is not an OpenAPI version: KEA reads OpenAPI 3.0.x documents (openapi: 3.0.3)"),
        (json!("3.0"), "\"3.0\" is not a 3.0.x version (major.minor.patch): KEA reads OpenAPI 3.0.x documents (openapi: 3.0.3)"),
        (json!(3.0), "the version must be a string such as \"3.0.3\", not 3.0: KEA reads OpenAPI 3.0.x documents"),
    ] {
        let mut document = with_paths(json!({}));
        document["openapi"] = version.clone();
        let error = compile(document).unwrap_err();
        assert_eq!((error.pointer.as_str(), error.reason.as_str()), ("/openapi", reason), "{version}");
    }
    let error = compile(json!({"info": {"title": "t", "version": "1"}, "paths": {}})).unwrap_err();
    assert_eq!(error.pointer, "");
    assert!(error.reason.starts_with("no `openapi` field"), "{error}");
    // From YAML, where an unquoted `openapi: 3.1` is a number.
    let error = compile_document("api.yaml", b"openapi: 3.1\ninfo: {title: t, version: '1'}\n").unwrap_err();
    assert!(error.reason.contains("not 3.1"), "{error}");
}

#[test]
fn operations_written_as_references_are_followed() {
    let mut document = with_paths(json!({"/pets": {"get": {"$ref": "#/x-operations/listPets"}}}));
    document["x-operations"] = json!({"listPets": {"operationId": "listPets",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 50}}],
        "responses": {"200": {"description": "ok"}}}});
    let bundle = compile(document.clone()).unwrap();
    let operation = &bundle.operations[0];
    assert_eq!(operation.id.as_deref(), Some("listPets"));
    assert_eq!(operation.pointer, "/paths/~1pets/get");
    assert_eq!(operation.parameters[0].name, "limit");
    // Errors inside the operation point at it, where it is written.
    document["x-operations"]["listPets"]["parameters"][0]["in"] = json!("body");
    let error = compile(document.clone()).unwrap_err();
    assert_eq!(error.pointer, "/x-operations/listPets/parameters/0/in");
    document["paths"]["/pets"]["get"]["$ref"] = json!("#/x-operations/nowhere");
    let error = compile(document).unwrap_err();
    assert_eq!(error.pointer, "/paths/~1pets/get/$ref");
    assert!(error.reason.contains("points to nothing"), "{error}");
}

#[test]
fn path_items_and_operations_in_other_files() {
    let bundle = load("refs", "api.yaml").unwrap();
    let summary: Vec<(String, String, String)> = bundle
        .operations
        .iter()
        .map(|o| (o.method.clone(), o.path.clone(), o.pointer.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("GET".into(), "/owners".into(), "/paths/~1owners/get".into()),
            ("GET".into(), "/pets/{id}".into(), "/item/get".into()),
            ("PUT".into(), "/pets/{id}".into(), "/item/put".into()),
        ]
    );
    let api = Api::compile(&Bundle::from_json(&bundle.to_json()).unwrap()).unwrap();
    let (operation, params) = api.route("PUT", "/pets/7").unwrap();
    assert_eq!(params, [("id".to_string(), "7".to_string())]);
    let check = |body: &str| api.check_body(operation, Some("application/json"), body.as_bytes(), 10);
    assert_eq!(check(r#"{"name": "Rex"}"#), Ok(()));
    assert!(matches!(check(r#"{"name": ""}"#), Err(BodyRejection::Invalid(_))));
}

#[test]
fn keywords_outside_openapi_3_0_are_warnings() {
    let mut document = with_paths(json!({"/pets": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}},
        "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}}}}));
    document["components"] = json!({"schemas": {"Pet": {
    "type": "object", "propertyNames": {"pattern": "^[a-z]+$"}, "x-internal": true, "example": {"name": "Rex"},
    "$defs": {"Tag": {"type": "string"}},
    "properties": {
        "name": {"type": "string", "const": "Rex", "examples": ["Rex"]},
        "kind": {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "integer"}},
    }}}});
    let bundle = compile(document).unwrap();
    // Once each, though the schema is converted for requests and for responses.
    let line = |pointer: &str, keyword: &str| {
        format!("api.json#/components/schemas/Pet{pointer}: keyword \"{keyword}\" is not part of OpenAPI 3.0 and is not checked")
    };
    assert_eq!(
        bundle.warnings,
        [
            line("/$defs", "$defs"),
            line("/properties/kind/else", "else"),
            line("/properties/kind/if", "if"),
            line("/properties/kind/then", "then"),
            line("/properties/name/const", "const"),
            line("/properties/name/examples", "examples"),
            line("/propertyNames", "propertyNames"),
        ]
    );
    let read = Bundle::from_json(&bundle.to_json()).unwrap();
    assert_eq!(read.warnings, bundle.warnings);
    // A bundle without warnings has no `warnings` field: plugins built before it read it.
    let clean = compile(with_paths(json!({"/a": {"get": {"responses": {}}}}))).unwrap();
    assert!(clean.warnings.is_empty());
    assert!(!String::from_utf8(clean.to_json()).unwrap().contains("warnings"));
}

#[test]
fn warnings_are_capped() {
    let properties: serde_json::Map<String, Value> = (0..MAX_WARNINGS + 50)
        .map(|i| (format!("p{i:03}"), json!({"const": i})))
        .collect();
    let bundle = compile(with_paths(json!({"/a": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": properties}}}},
        "responses": {}}}})))
    .unwrap();
    assert_eq!(bundle.warnings.len(), MAX_WARNINGS + 1);
    assert!(
        bundle.warnings[0].contains("/properties/p000/const"),
        "{}",
        bundle.warnings[0]
    );
    assert_eq!(bundle.warnings[MAX_WARNINGS], "… and 50 more");
}
