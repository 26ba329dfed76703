//! Documents as they come in the wild (issue 18): YAML numbers beyond 64 bits, other OpenAPI
//! versions, references where 3.0 does and does not allow them, keywords KEA does not check.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_schema::{compile_document, Api, BodyRejection};

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
