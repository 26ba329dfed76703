//! The schema core against real OpenAPI documents (the OpenAPI Initiative's examples, see
//! data/openapi/LICENSE-NOTE.md), hand-made edge cases (data/edge) and documents written for KEA
//! in the shape of real APIs (data/stripe-like, data/asana-like).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_schema::bundle::EncodingSpec;
use kea_schema::model::Style;
use kea_schema::{Api, BodyRejection, Bundle, BundleError, In, Issue, RouteMatch, Sources};
use serde_json::json;
use std::path::Path;

const LIMIT: usize = 50;

fn data(relative: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(relative)
}

fn load(dir: &str, root: &str) -> Bundle {
    let sources = Sources::load(root, |name| {
        std::fs::read(data(dir).join(name)).map_err(|e| e.to_string())
    })
    .unwrap();
    Bundle::compile(&sources).unwrap()
}

fn api(dir: &str, root: &str) -> Api {
    let bundle = load(dir, root);
    // Every test goes through the serialised form the plugin loads.
    Api::compile(&Bundle::from_json(&bundle.to_json()).unwrap()).unwrap()
}

/// Routes and checks parameters; headers as (lower-case name, value).
fn check(api: &Api, method: &str, target: &str, headers: &[(&str, &str)]) -> Result<Vec<Issue>, RouteMatch> {
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    let (operation, params) = api.route(method, path)?;
    Ok(api.check_parameters(
        operation,
        &params,
        query,
        |name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        },
        LIMIT,
    ))
}

fn body(
    api: &Api,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Result<(), BodyRejection> {
    let (operation, _) = api.route(method, path).unwrap();
    api.check_body(operation, content_type, body.as_bytes(), LIMIT)
}

fn issues(result: Result<(), BodyRejection>) -> Vec<Issue> {
    match result {
        Err(BodyRejection::Invalid(issues)) => issues,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn pointers(issues: &[Issue]) -> Vec<String> {
    issues
        .iter()
        .map(|i| i.pointer.clone().unwrap_or_default())
        .collect()
}

#[test]
fn every_published_example_compiles_and_round_trips() {
    for file in [
        "api-with-examples.yaml",
        "callback-example.yaml",
        "link-example.yaml",
        "petstore-expanded.yaml",
        "petstore.yaml",
        "uspto.yaml",
    ] {
        let bundle = load("openapi", file);
        assert!(!bundle.operations.is_empty(), "{file}");
        assert_eq!(bundle.sha256.len(), 64);
        let again = Bundle::from_json(&bundle.to_json()).unwrap();
        assert_eq!(again, bundle, "{file}");
        // Deterministic: compiling twice gives the same digest.
        assert_eq!(load("openapi", file).sha256, bundle.sha256);
        Api::compile(&bundle).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn petstore_expanded_requests() {
    let api = api("openapi", "petstore-expanded.yaml");
    assert_eq!(
        check(&api, "GET", "/v2/pets?limit=10&tags=a&tags=b", &[]),
        Ok(vec![])
    );
    let wrong = check(&api, "GET", "/v2/pets?limit=ten", &[]).unwrap();
    assert_eq!(wrong.len(), 1);
    assert_eq!(
        (wrong[0].location, wrong[0].name.as_deref()),
        (In::Query, Some("limit"))
    );
    assert!(wrong[0].message.contains("integer"), "{}", wrong[0].message);
    // format int32 bounds the value.
    assert_eq!(
        check(&api, "GET", "/v2/pets?limit=2147483648", &[])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(check(&api, "GET", "/v2/pets/12", &[]), Ok(vec![]));
    let id = check(&api, "DELETE", "/v2/pets/twelve", &[]).unwrap();
    assert_eq!((id[0].location, id[0].name.as_deref()), (In::Path, Some("id")));
    assert_eq!(
        check(&api, "PUT", "/v2/pets", &[]),
        Err(RouteMatch::MethodNotAllowed {
            allow: vec!["GET".into(), "POST".into()]
        })
    );
    assert_eq!(check(&api, "GET", "/v1/pets", &[]), Err(RouteMatch::NotFound));
    assert_eq!(check(&api, "GET", "/v2/pets/1/2", &[]), Err(RouteMatch::NotFound));

    let json = Some("application/json");
    assert_eq!(
        body(&api, "POST", "/v2/pets", json, r#"{"name": "Rex", "tag": "dog"}"#),
        Ok(())
    );
    assert_eq!(
        body(
            &api,
            "POST",
            "/v2/pets",
            Some("application/json; charset=utf-8"),
            r#"{"name": "Rex"}"#
        ),
        Ok(())
    );
    let missing = issues(body(&api, "POST", "/v2/pets", json, r#"{"tag": 5}"#));
    assert_eq!(pointers(&missing), ["", "/tag"], "{missing:?}");
    assert!(missing.iter().any(|i| i.message.contains("name")));
    assert!(issues(body(
        &api,
        "POST",
        "/v2/pets",
        json,
        "{\"name\": \"a\", \"name\": \"b\"}"
    ))[0]
        .message
        .contains("duplicate key"));
    assert!(issues(body(&api, "POST", "/v2/pets", json, "not json"))[0]
        .message
        .contains("not valid JSON"));
    assert!(issues(body(&api, "POST", "/v2/pets", None, ""))[0]
        .message
        .contains("required"));
    assert_eq!(
        body(&api, "POST", "/v2/pets", Some("text/plain"), "Rex"),
        Err(BodyRejection::UnsupportedMediaType {
            allowed: vec!["application/json".into()]
        })
    );
}

#[test]
fn uspto_server_variables_and_form_bodies() {
    let api = api("openapi", "uspto.yaml");
    assert_eq!(check(&api, "GET", "/ds-api/", &[]), Ok(vec![]));
    assert_eq!(
        check(&api, "GET", "/ds-api/oa_citations/v1/fields", &[]),
        Ok(vec![])
    );
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(
        body(
            &api,
            "POST",
            "/ds-api/oa_citations/v1/records",
            form,
            "criteria=*:*&start=0&rows=100"
        ),
        Ok(())
    );
    let bad = issues(body(
        &api,
        "POST",
        "/ds-api/oa_citations/v1/records",
        form,
        "start=zero",
    ));
    assert_eq!(pointers(&bad), ["", "/start"], "{bad:?}");
}

#[test]
fn parameters_in_every_location_and_style() {
    let api = api("edge", "api.yaml");
    let id = ("x-correlation-id", "7d444840-9dc0-11d1-b245-5ffdce74fad2");
    let ok = "/api/items?limit=5&ids=1,2,3&filter[color]=red&filter[size]=3&since=2024-02-29&where=%7B%22field%22%3A1%7D";
    assert_eq!(
        check(&api, "GET", ok, &[id, ("cookie", "session=abcd; other=1")]),
        Ok(vec![])
    );
    let missing = check(&api, "GET", "/api/items", &[]).unwrap();
    assert_eq!(
        missing,
        vec![Issue {
            location: In::Header,
            name: Some("X-Correlation-Id".into()),
            pointer: None,
            message: "required parameter is missing".into()
        }]
    );
    let bad = "/api/items?limit=0&ids=1,x&filter[color]=green&since=2023-02-29&where=%7B%7D&limit=7";
    let found = check(
        &api,
        "GET",
        bad,
        &[("x-correlation-id", "nope"), ("cookie", "session=abc")],
    )
    .unwrap();
    let named: Vec<(In, &str, &str)> = found
        .iter()
        .map(|i| {
            (
                i.location,
                i.name.as_deref().unwrap_or(""),
                i.pointer.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (In::Query, "limit", ""),
            (In::Query, "ids", "/1"),
            (In::Query, "filter", "/color"),
            (In::Query, "since", ""),
            (In::Header, "X-Correlation-Id", ""),
            (In::Cookie, "session", ""),
            (In::Query, "where", ""),
        ],
        "{found:#?}"
    );
    assert!(found[0].message.contains("more than once"));
    // Values the upstream could read differently are refused: repeated JSON, deepObject keys, cookies.
    for twice in [
        "/api/items?where=%7B%22field%22%3A1%7D&where=%7B%7D",
        "/api/items?filter[size]=1&filter[size]=2",
    ] {
        let found = check(&api, "GET", twice, &[id]).unwrap();
        assert!(
            found.len() == 1 && found[0].message.contains("more than once"),
            "{twice}: {found:?}"
        );
    }
    let cookies = check(
        &api,
        "GET",
        "/api/items",
        &[id, ("cookie", "session=abcd; session=efgh")],
    )
    .unwrap();
    assert_eq!(cookies[0].message, "given more than once");
    // Without allowEmptyValue an empty value is checked as "" (and said to be empty).
    assert_eq!(
        check(&api, "GET", "/api/items?since=", &[id]).unwrap()[0].message,
        "value is not a \"date\" (the value is empty; allowEmptyValue is not set)"
    );
    // Literal /items/latest wins over /items/{id}; a path variable inside a segment.
    assert_eq!(check(&api, "GET", "/api/items/latest", &[]), Ok(vec![]));
    assert_eq!(
        check(&api, "GET", "/api/items/not-a-uuid", &[]).unwrap()[0]
            .name
            .as_deref(),
        Some("id")
    );
    assert_eq!(check(&api, "GET", "/api/files/report.csv", &[]), Ok(vec![]));
    assert_eq!(
        check(&api, "GET", "/api/files/report.exe", &[]).unwrap()[0]
            .name
            .as_deref(),
        Some("ext")
    );
}

#[test]
fn openapi_keywords_in_bodies() {
    let api = api("edge", "api.yaml");
    let json = Some("application/json");
    let item = json!({"name": "lamp", "price": 10.5, "quantity": 3, "note": null, "email": "a@example.com",
        "image": "aGVsbG8=", "secret": "s", "owner": {"login": "kea", "since": "2024-01-01T00:00:00Z"}});
    assert_eq!(body(&api, "POST", "/api/items", json, &item.to_string()), Ok(()));
    let wrong = json!({"id": "7d444840-9dc0-11d1-b245-5ffdce74fad2", "name": "", "price": 0, "quantity": 2147483648u64,
        "tags": ["a", "b", "c", "d", "e", "f"], "email": "nope", "image": "***", "owner": {"login": "Kea"}, "extra": 1});
    let found = issues(body(&api, "POST", "/api/items", json, &wrong.to_string()));
    let mut at = pointers(&found);
    at.sort();
    assert_eq!(
        at,
        [
            "",
            "/email",
            "/id",
            "/image",
            "/name",
            "/owner/login",
            "/price",
            "/quantity",
            "/tags"
        ],
        "{found:#?}"
    );
    // Form bodies are read by the schema's types.
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(
        body(&api, "POST", "/api/items", form, "name=lamp&price=2.5&quantity=1"),
        Ok(())
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/items",
            form,
            "name=lamp&price=free"
        ))),
        ["/price"]
    );
    // A required body is required whatever Content-Type says; an optional one may be empty.
    assert!(issues(body(
        &api,
        "POST",
        "/api/items",
        Some("application/octet-stream"),
        ""
    ))[0]
        .message
        .contains("required"));
    // PUT's body is optional: nothing sent is fine, something sent is checked.
    let uuid = "/api/items/7d444840-9dc0-11d1-b245-5ffdce74fad2";
    assert_eq!(body(&api, "PUT", uuid, None, ""), Ok(()));
    assert_eq!(body(&api, "PUT", uuid, json, ""), Ok(()));
    assert!(body(&api, "PUT", uuid, json, "{}").is_err());

    // discriminator: petType picks the schema; unknown values are named.
    assert_eq!(
        body(
            &api,
            "POST",
            "/api/pets",
            json,
            r#"{"petType": "Cat", "lives": 7}"#
        ),
        Ok(())
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/pets",
            json,
            r#"{"petType": "Cat", "lives": 10}"#
        ))),
        ["/lives"]
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/pets",
            json,
            r#"{"petType": "Dog", "bark": "yes"}"#
        ))),
        ["/bark"]
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/pets",
            json,
            r#"{"petType": "Cow"}"#
        ))),
        ["/petType"]
    );
    // Recursive schemas, deep documents, huge arrays.
    assert_eq!(
        body(
            &api,
            "POST",
            "/api/trees",
            json,
            r#"{"value": 1, "children": [{"value": 2, "children": []}]}"#
        ),
        Ok(())
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/trees",
            json,
            r#"{"value": 1, "children": [{"value": "2"}]}"#
        ))),
        ["/children/0/value"]
    );
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(issues(body(&api, "POST", "/api/trees", json, &deep))[0]
        .message
        .contains("recursion limit"));
    let huge = format!(
        r#"{{"value": 1, "children": [{}]}}"#,
        vec![r#"{"value": "x"}"#; 100_000].join(",")
    );
    assert_eq!(issues(body(&api, "POST", "/api/trees", json, &huge)).len(), LIMIT);
}

#[test]
fn responses_are_checked_against_their_status() {
    let api = api("edge", "api.yaml");
    let (operation, _) = api.route("POST", "/api/items").unwrap();
    let json = Some("application/json");
    let created =
        json!({"id": "7d444840-9dc0-11d1-b245-5ffdce74fad2", "name": "lamp", "price": 1}).to_string();
    assert_eq!(
        api.check_response(operation, 201, json, created.as_bytes(), LIMIT),
        vec![]
    );
    // writeOnly properties must not come back; readOnly ones are required in responses.
    let leaked =
        json!({"id": "7d444840-9dc0-11d1-b245-5ffdce74fad2", "name": "lamp", "price": 1, "secret": "s"})
            .to_string();
    assert_eq!(
        pointers(&api.check_response(operation, 201, json, leaked.as_bytes(), LIMIT)),
        ["/secret"]
    );
    assert_eq!(
        pointers(&api.check_response(operation, 201, json, br#"{"name": "lamp", "price": 1}"#, LIMIT)),
        [""]
    );
    // 4XX from another document; undocumented statuses are reported.
    assert_eq!(
        api.check_response(
            operation,
            404,
            Some("application/problem+json"),
            br#"{"title": "x"}"#,
            LIMIT
        ),
        vec![]
    );
    assert!(api.check_response(operation, 500, None, b"", LIMIT)[0]
        .message
        .contains("not documented"));
}

fn compile_error(document: serde_json::Value) -> kea_schema::DocumentError {
    Bundle::compile(&Sources::single("bad.json", document)).unwrap_err()
}

#[test]
fn invalid_documents_are_rejected_with_a_pointer() {
    let base = |paths: serde_json::Value| json!({"openapi": "3.0.0", "info": {"title": "t", "version": "1"}, "paths": paths});
    let cyclic = base(
        json!({"/a": {"post": {"requestBody": {"$ref": "#/components/requestBodies/A"}, "responses": {}}}}),
    );
    let mut cyclic = cyclic;
    cyclic["components"] = json!({"requestBodies": {"A": {"$ref": "#/components/requestBodies/B"}, "B": {"$ref": "#/components/requestBodies/A"}}});
    let error = compile_error(cyclic);
    assert!(error.reason.contains("reference cycle"), "{error}");
    assert_eq!(error.pointer, "/paths/~1a/post/requestBody");

    let mut schema_cycle = base(
        json!({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}, "responses": {}}}}),
    );
    schema_cycle["components"] = json!({"schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}});
    assert!(compile_error(schema_cycle).reason.contains("reference cycle"));
    // A schema that is its own allOf member never reaches a value to check: refused, not a trap.
    let mut unguarded = base(
        json!({"/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}, "responses": {}}}}),
    );
    unguarded["components"] = json!({"schemas": {"A": {"type": "object", "allOf": [{"$ref": "#/components/schemas/B"}]},
        "B": {"anyOf": [{"$ref": "#/components/schemas/A"}, {"type": "string"}]}}});
    let error = compile_error(unguarded);
    assert!(
        error.reason.contains("refers to itself without nesting"),
        "{error}"
    );
    assert!(error.pointer.starts_with("/components/schemas/"), "{error}");

    let error = compile_error(base(json!({"/a/{id}": {"get": {"responses": {}}}})));
    assert_eq!(
        (error.pointer.as_str(), error.reason.as_str()),
        ("/paths/~1a~1{id}/get", "path variable {id} has no path parameter")
    );
    let error = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"name": "x", "in": "body"}], "responses": {}}}}),
    ));
    assert_eq!(error.pointer, "/paths/~1a/get/parameters/0/in");
    let error = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"name": "x", "in": "query", "schema": {"type": "int"}}], "responses": {}}}}),
    ));
    assert_eq!(error.pointer, "/paths/~1a/get/parameters/0/schema/type");
    let error = compile_error(base(
        json!({"/a": {"get": {"parameters": [{"$ref": "https://example.com/p.json"}], "responses": {}}}}),
    ));
    assert!(error.reason.contains("remote reference"));
    let mut version = base(json!({}));
    version["openapi"] = json!("3.1.0");
    assert_eq!(compile_error(version).pointer, "/openapi");
    let error = compile_error(json!({"openapi": "3.0.0", "paths": {}}));
    assert!(error.reason.contains("info"), "{error}");
    assert!(kea_schema::compile_document("x.yaml", b"openapi: [unclosed")
        .unwrap_err()
        .reason
        .contains("invalid YAML"));
}

#[test]
fn tampered_bundles_are_refused() {
    let bundle = load("openapi", "petstore.yaml");
    let mut text = String::from_utf8(bundle.to_json()).unwrap();
    text = text.replacen("\"maximum\":100", "\"maximum\":1000", 1);
    assert!(
        matches!(
            Bundle::from_json(text.as_bytes()),
            Err(BundleError::Digest { .. })
        ),
        "{text}"
    );
    let other_format = String::from_utf8(bundle.to_json())
        .unwrap()
        .replace(kea_schema::bundle::FORMAT, "kea.dev/openapi-bundle/v0");
    assert!(matches!(
        Bundle::from_json(other_format.as_bytes()),
        Err(BundleError::Format { .. })
    ));
    assert!(matches!(Bundle::from_json(b"{}"), Err(BundleError::Malformed(_))));
    // A bundle is a JSON object; serde alone would read its fields from an array in order.
    assert!(
        matches!(Bundle::from_json(br#"["kea.dev/openapi-bundle/v1"]"#), Err(BundleError::Malformed(m)) if m.contains("sequence"))
    );
}

#[test]
fn stripe_like_form_bodies_follow_their_encoding() {
    let bundle = load("stripe-like", "api.yaml");
    let create = bundle
        .operations
        .iter()
        .find(|o| o.id.as_deref() == Some("createCustomer"))
        .unwrap();
    let form = &create.body.as_ref().unwrap().content[0];
    assert_eq!(form.media_type, "application/x-www-form-urlencoded");
    assert_eq!(
        form.encoding.get("metadata"),
        Some(&EncodingSpec {
            style: Style::DeepObject,
            explode: true,
            json: false
        })
    );
    let api = api("stripe-like", "api.yaml");
    let form = Some("application/x-www-form-urlencoded");
    let customer =
        "name=Jenny+Rosen&balance=-100&metadata[order_id]=6735&address[city]=Berlin&address[country]=DE\
        &shipping[name]=Jenny&shipping[address][line1]=Main+St\
        &invoice_settings[custom_fields][0][name]=PO&invoice_settings[custom_fields][0][value]=42\
        &invoice_settings[custom_fields][1][name]=Desk&invoice_settings[custom_fields][1][value]=7\
        &invoice_settings[rendering_options][amount_tax_display]=exclude_tax";
    assert_eq!(body(&api, "POST", "/v1/customers", form, customer), Ok(()));
    // `a=` unsets: the empty string alternative of each anyOf.
    assert_eq!(
        body(
            &api,
            "POST",
            "/v1/customers/cus_1",
            form,
            "metadata=&address=&description="
        ),
        Ok(())
    );
    // The body is open, as Stripe's are: a flat `city=` is an unknown field, not the address.
    assert_eq!(body(&api, "POST", "/v1/customers", form, "city=Berlin"), Ok(()));
    let bad = issues(body(
        &api,
        "POST",
        "/v1/customers",
        form,
        "address=Berlin&balance=ten&shipping[phone]=1&tax_exempt=maybe&metadata[note]=",
    ));
    assert_eq!(
        pointers(&bad),
        ["/address", "/balance", "/shipping", "/tax_exempt"],
        "{bad:#?}"
    );
    // Array indices count from 0 without gaps.
    let gap = issues(body(
        &api,
        "POST",
        "/v1/customers",
        form,
        "invoice_settings[custom_fields][1][name]=PO&invoice_settings[custom_fields][1][value]=1",
    ));
    assert_eq!(pointers(&gap), ["/invoice_settings/custom_fields"], "{gap:#?}");

    let intent =
        "amount=2000&currency=eur&confirm=true&capture_method=manual&automatic_payment_methods[enabled]=true";
    assert_eq!(body(&api, "POST", "/v1/payment_intents", form, intent), Ok(()));
    let bad = issues(body(
        &api,
        "POST",
        "/v1/payment_intents",
        form,
        "amount=0&currency=EUR&confirm=yes&automatic_payment_methods[enabled]=1",
    ));
    assert_eq!(
        pointers(&bad),
        [
            "/amount",
            "/automatic_payment_methods/enabled",
            "/confirm",
            "/currency"
        ],
        "{bad:#?}"
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/v1/payment_intents",
            form,
            "currency=eur"
        ))),
        [""]
    );

    // Arrays of objects, Stripe's `items[0][price]`, and a nested "set or unset" list.
    let session = "mode=subscription&subscription_data[items][0][price]=price_1&subscription_data[items][0][quantity]=2\
        &subscription_data[items][1][price]=price_2&subscription_data[items][1][tax_rates][0]=txr_1\
        &subscription_data[items][1][tax_rates][1]=txr_2&subscription_data[items][2][price]=price_3\
        &subscription_data[items][2][tax_rates]=&subscription_data[trial_period_days]=14\
        &subscription_data[metadata][plan]=pro&subscription_data[invoice_settings][issuer][type]=self";
    assert_eq!(body(&api, "POST", "/v1/checkout/sessions", form, session), Ok(()));
    let bad = issues(body(
        &api,
        "POST",
        "/v1/checkout/sessions",
        form,
        "subscription_data[items][0][quantity]=0&subscription_data[trial_period_days]=two",
    ));
    assert_eq!(
        pointers(&bad),
        [
            "/subscription_data/items/0",
            "/subscription_data/items/0/quantity",
            "/subscription_data/trial_period_days"
        ],
        "{bad:#?}"
    );
    let twice = issues(body(
        &api,
        "POST",
        "/v1/checkout/sessions",
        form,
        "mode=payment&mode=setup",
    ));
    assert_eq!(
        (twice[0].pointer.as_deref(), twice[0].message.as_str()),
        (Some("/mode"), "given more than once")
    );
}

#[test]
fn stripe_like_created_filters_and_expand_lists() {
    let api = api("stripe-like", "api.yaml");
    for ok in [
        "/v1/customers?created[gte]=1600000000&created[lt]=1700000000&limit=10",
        "/v1/customers?created=1600000000",
        "/v1/payment_intents?created[gt]=0&customer=cus_1",
        "/v1/customers?expand[]=customer&expand[]=latest_charge",
        "/v1/customers?expand[0]=customer&expand[1]=latest_charge",
        "/v1/customers?expand=customer&expand=latest_charge",
        "/v1/customers/cus_1?expand[]=invoice_settings.default_payment_method",
    ] {
        assert_eq!(check(&api, "GET", ok, &[]), Ok(vec![]), "{ok}");
    }
    let named = |target: &str| -> Vec<(String, String)> {
        check(&api, "GET", target, &[])
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i.name.clone().unwrap_or_default(),
                    i.pointer.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    assert_eq!(
        named("/v1/customers?created[gte]=soon"),
        [("created".to_string(), String::new())]
    );
    assert_eq!(
        named("/v1/customers?created=1.5"),
        [("created".to_string(), String::new())]
    );
    assert_eq!(
        named("/v1/customers?expand[]=customer&expand[]=everything"),
        [("expand".to_string(), "/1".to_string())]
    );
    let both = check(&api, "GET", "/v1/customers?created=1&created[gte]=2", &[]).unwrap();
    assert!(both[0].message.contains("both"), "{both:?}");
    let twice = check(&api, "GET", "/v1/customers?created[gte]=1&created[gte]=2", &[]).unwrap();
    assert_eq!(
        (twice[0].pointer.as_deref(), twice[0].message.as_str()),
        (Some("/gte"), "given more than once")
    );
}

#[test]
fn asana_like_flags_and_field_lists() {
    let api = api("asana-like", "api.yaml");
    for ok in [
        "/api/1.0/tasks?opt_pretty",
        "/api/1.0/tasks?opt_pretty=&limit=20",
        "/api/1.0/tasks?opt_pretty=true&opt_fields=name,notes,due_on",
        "/api/1.0/tasks/1204?opt_pretty&opt_fields=name",
        "/api/1.0/projects?archived=false&opt_fields=name,owner",
        "/api/1.0/workspaces/1337/typeahead?resource_types=task,project&query=launch&count=5",
    ] {
        assert_eq!(check(&api, "GET", ok, &[]), Ok(vec![]), "{ok}");
    }
    let found = |target: &str| check(&api, "GET", target, &[]).unwrap();
    // A flag is true or false when it has a value.
    assert_eq!(
        found("/api/1.0/tasks?opt_pretty=yes")[0].name.as_deref(),
        Some("opt_pretty")
    );
    // Without allowEmptyValue an empty value is "", checked and said to be empty.
    let empty = found("/api/1.0/projects?archived=");
    assert_eq!(
        (empty[0].name.as_deref(), empty[0].message.as_str()),
        (
            Some("archived"),
            "value is not of type \"boolean\" (the value is empty; allowEmptyValue is not set)"
        )
    );
    assert!(found("/api/1.0/tasks?completed_since")[0]
        .message
        .contains("the value is empty"));
    // An empty list is one empty item, not an empty list: not in the enum.
    let list = found("/api/1.0/workspaces/1337/typeahead?resource_types=");
    assert_eq!(
        (list[0].name.as_deref(), list[0].pointer.as_deref()),
        (Some("resource_types"), Some("/0"))
    );
    assert_eq!(
        found("/api/1.0/tasks?opt_fields=name,bogus")[0]
            .pointer
            .as_deref(),
        Some("/1")
    );
    assert_eq!(
        found("/api/1.0/workspaces/1337/typeahead")[0].message,
        "required parameter is missing"
    );
    let json = Some("application/json");
    assert_eq!(
        body(
            &api,
            "POST",
            "/api/1.0/tasks",
            json,
            r#"{"data": {"name": "Launch", "due_on": null, "projects": ["1"]}}"#
        ),
        Ok(())
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/api/1.0/tasks",
            json,
            r#"{"data": {"completed": "yes"}}"#
        ))),
        ["/data/completed"]
    );
}

#[test]
fn empty_array_values_and_encodings_kea_cannot_read() {
    let document = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {
        "get": {"parameters": [
            {"name": "type", "in": "query", "required": true, "explode": false,
             "schema": {"type": "array", "items": {"enum": ["a", "b"]}}},
            {"name": "tag", "in": "query", "schema": {"type": "array", "minItems": 2, "items": {"type": "string"}}},
            {"name": "flag", "in": "query", "allowEmptyValue": true, "schema": {"type": "array", "items": {"enum": ["x"]}}}],
            "responses": {}},
        "post": {"requestBody": {"content": {"application/x-www-form-urlencoded": {
            "schema": {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "integer"}},
                "b": {"type": "object", "properties": {"c": {"type": "integer"}}}}},
            "encoding": {"a": {"style": "matrix"}, "b": {"contentType": "application/json"}}}}},
            "responses": {}}}}});
    let bundle = Bundle::compile(&Sources::single("a.json", document)).unwrap();
    let form = &bundle.operations[1].body.as_ref().unwrap().content[0];
    // An unknown style keeps the default; a JSON contentType is kept.
    assert_eq!(form.encoding.keys().collect::<Vec<_>>(), ["b"]);
    let api = Api::compile(&Bundle::from_json(&bundle.to_json()).unwrap()).unwrap();
    assert_eq!(check(&api, "GET", "/a?type=a,b", &[]), Ok(vec![]));
    // `?type=` is [""]: "" is not in the enum.
    let empty = check(&api, "GET", "/a?type=", &[]).unwrap();
    assert_eq!(
        (empty[0].name.as_deref(), empty[0].pointer.as_deref()),
        (Some("type"), Some("/0"))
    );
    // Exploded: one value is an array of one, two are two; minItems counts them.
    let one = check(&api, "GET", "/a?type=a&tag=x", &[]).unwrap();
    assert_eq!(one[0].name.as_deref(), Some("tag"), "{one:?}");
    assert_eq!(check(&api, "GET", "/a?type=a&tag=x&tag=", &[]), Ok(vec![]));
    // allowEmptyValue: an empty array value is accepted as present-and-empty.
    assert_eq!(check(&api, "GET", "/a?type=a&flag", &[]), Ok(vec![]));
    assert_eq!(
        check(&api, "GET", "/a?type=a&flag=y", &[]).unwrap()[0]
            .pointer
            .as_deref(),
        Some("/0")
    );
    let form = Some("application/x-www-form-urlencoded");
    assert_eq!(
        body(&api, "POST", "/a", form, "a=1&a=2&b=%7B%22c%22%3A3%7D"),
        Ok(())
    );
    assert_eq!(
        pointers(&issues(body(
            &api,
            "POST",
            "/a",
            form,
            "b=%7B%22c%22%3A%22x%22%7D"
        ))),
        ["/b/c"]
    );
}

#[test]
fn bundles_without_encoding_keep_their_bytes() {
    // `encoding` is left out when empty: bundles compiled before it existed keep their digest.
    for file in ["petstore.yaml", "uspto.yaml"] {
        let bundle = load("openapi", file);
        let text = String::from_utf8(bundle.to_json()).unwrap();
        assert!(!text.contains("\"encoding\""), "{file}");
    }
}
