//! The page and the gateway cannot differ: every request runs through the validate plugin twice,
//! once as a page does (`Engine` over `PageHost`) and once as the gateway's plugin tests drive it
//! (`MockHost`, body delivered in chunks like Envoy buffers it), and the replies must be the same
//! bytes — status, headers, problem+json — with the same `x-kea-validation` and log lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use kea_schema::{Bundle, Sources};
use kea_validate::plugin::{configure, Runtime};
use kea_validate::stream::{Action, ValidateStream};
use kea_web_validator::engine::{parse_headers, Engine, Outcome, PageRequest};
use serde_json::{json, Value};
use std::path::Path;
use std::rc::Rc;

fn bundle(relative: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    let dir = file.parent().unwrap().to_path_buf();
    let name = file.file_name().unwrap().to_str().unwrap();
    let sources = Sources::load(name, |n| std::fs::read(dir.join(n)).map_err(|e| e.to_string())).unwrap();
    serde_json::from_slice(&Bundle::compile(&sources).unwrap().to_json()).unwrap()
}

/// A configuration as the docs page builds it.
fn page_config(bundle: Value, defaults: Value) -> String {
    let mut all = json!({
        "api": "x", "mode": "enforce", "maxErrors": 20, "maxBodyBytes": 2048,
        "unknownOperations": "reject", "bodies": ["json", "form", "text"]
    });
    all.as_object_mut()
        .unwrap()
        .extend(defaults.as_object().unwrap().clone());
    json!({"apis": [{"name": "x", "bundle": bundle}], "defaults": all}).to_string()
}

fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> PageRequest {
    PageRequest {
        method: method.into(),
        target: target.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// The gateway's plugin, configured by its tests' `MockHost`.
struct Gateway {
    root: MockHost,
    runtime: Rc<Runtime>,
}

impl Gateway {
    fn new(config: &str) -> Self {
        let root = MockHost::new();
        let runtime = configure(&root, config.as_bytes()).unwrap();
        Self { root, runtime }
    }

    /// What the plugin does with the same request; and the request headers it leaves.
    fn send(&self, request: &PageRequest) -> (Outcome, Vec<(String, Vec<u8>)>) {
        let runtime = &self.runtime;
        let list = request.header_list().unwrap();
        let host =
            MockHost::sharing_with(self.root.shared()).with_request(&request.method, &request.target, &[]);
        for (name, value) in &list {
            match name.as_str() {
                ":method" | ":path" | ":authority" => {
                    host.set_header(HeaderMap::RequestHeaders, name, Some(value))
                }
                _ => host.add_header(HeaderMap::RequestHeaders, name, value),
            }
        }
        let body = &request.body;
        let mut stream = ValidateStream::new();
        let mut action = stream.on_request_headers(&host, runtime, body.is_empty());
        if action == Action::Wait {
            // Envoy delivers a buffered body in pieces, each call seeing all of it so far.
            let half = body.len() / 2;
            if half > 0 {
                host.set_body(Buffer::RequestBody, &body[..half]);
                action = stream.on_request_body(&host, runtime, half, false);
            }
            if action == Action::Wait {
                host.set_body(Buffer::RequestBody, body);
                stream.on_request_body(&host, runtime, body.len(), true);
            }
        }
        let replies = host.replies();
        assert!(replies.len() <= 1, "{replies:?}");
        let reply = replies.first();
        let outcome = Outcome {
            verdict: host.header_text(HeaderMap::RequestHeaders, "x-kea-validation"),
            status: reply.map(|r| r.status),
            headers: reply.map(|r| r.headers.clone()),
            problem: reply.map(|r| serde_json::from_slice(&r.body).unwrap()),
            body: None,
            log: host.logs().into_iter().map(|(_, line)| line).collect(),
            raw_body: reply.map(|r| r.body.clone()),
        };
        (outcome, host.headers(HeaderMap::RequestHeaders))
    }
}

/// Checks one request both ways and returns the page's outcome.
fn same(config: &str, request: &PageRequest) -> Outcome {
    let engine = Engine::new(config).unwrap();
    let page = engine.check(request).unwrap();
    let (expected, gateway_headers) = Gateway::new(config).send(request);
    assert_eq!(page, expected, "{request:?}");
    // The request the upstream would get carries the same headers.
    let mut page_headers = engine.run(request).unwrap().request_headers();
    let mut gateway_headers: Vec<_> = gateway_headers
        .into_iter()
        .filter(|(n, _)| n != ":scheme")
        .collect();
    page_headers.sort();
    gateway_headers.sort();
    assert_eq!(page_headers, gateway_headers, "{request:?}");
    page
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn petstore_requests_answer_like_the_gateway() {
    let config = page_config(
        bundle("schema/tests/data/openapi/petstore.yaml"),
        json!({"maxBodyBytes": 64}),
    );
    let cases: Vec<(PageRequest, &str, Option<u16>)> = vec![
        (request("GET", "/v1/pets?limit=10", &[], ""), "passed", None),
        (request("GET", "/v1/pets/7", &[], ""), "passed", None),
        (
            request("POST", "/v1/pets", &[JSON], r#"{"id": 1, "name": "Rex"}"#),
            "passed",
            None,
        ),
        (
            request("GET", "/v1/pets?limit=many", &[], ""),
            "failed",
            Some(400),
        ),
        (
            request("GET", "/v1/pets?limit=1000", &[], ""),
            "failed",
            Some(400),
        ),
        (
            request("POST", "/v1/pets", &[JSON], r#"{"id": "1"#),
            "failed",
            Some(400),
        ),
        (
            request("POST", "/v1/pets", &[JSON], r#"{"id": "one"}"#),
            "failed",
            Some(400),
        ),
        (request("POST", "/v1/pets", &[JSON], ""), "failed", Some(400)),
        (
            request("POST", "/v1/pets", &[("content-type", "text/plain")], "Rex"),
            "failed",
            Some(415),
        ),
        (
            request("POST", "/v1/pets", &[], r#"{"id": 1, "name": "Rex"}"#),
            "failed",
            Some(415),
        ),
        (
            request(
                "POST",
                "/v1/pets",
                &[JSON],
                &format!(r#"{{"id": 1, "name": "{}"}}"#, "x".repeat(64)),
            ),
            "failed",
            Some(413),
        ),
        (request("GET", "/v1/owners", &[], ""), "failed", Some(404)),
        (request("GET", "/pets", &[], ""), "failed", Some(404)),
        (request("DELETE", "/v1/pets", &[], ""), "failed", Some(405)),
        (request("GET", "/v1/pets/../pets", &[], ""), "failed", Some(400)),
        (
            request("GET", "/v1/pets/%2e%2e/pets", &[], ""),
            "failed",
            Some(400),
        ),
        (request("GET", "/v1/pets%2F7", &[], ""), "failed", Some(400)),
    ];
    for (request, verdict, status) in &cases {
        let outcome = same(&config, request);
        assert_eq!(
            (outcome.verdict.as_deref(), outcome.status),
            (Some(*verdict), *status),
            "{request:?}: {outcome:?}"
        );
    }
    let problem = |target: &str| same(&config, &request("GET", target, &[], "")).problem.unwrap();
    assert_eq!(
        problem("/v1/pets?limit=1000"),
        json!({
            "type": "https://kea.dev/problems/invalid-request",
            "title": "Request does not match the API description",
            "status": 400,
            "detail": "1 problem with this GET /pets request",
            "errors": [{"in": "query", "name": "limit", "message": "value is greater than the maximum of 100"}]
        })
    );
    let wrong_method = same(&config, &request("DELETE", "/v1/pets", &[], ""));
    assert!(wrong_method
        .headers
        .unwrap()
        .contains(&("allow".to_string(), "GET, POST".to_string())));
    let body = same(&config, &request("POST", "/v1/pets", &[JSON], r#"{"id": "one"}"#));
    assert_eq!(
        body.problem.unwrap()["errors"],
        json!([
            {"in": "body", "pointer": "", "message": "\"name\" is a required property"},
            {"in": "body", "pointer": "/id", "message": "value is not of type \"integer\""}
        ])
    );
}

#[test]
fn parameters_cookies_forms_and_path_templates_answer_like_the_gateway() {
    let config = page_config(bundle("schema/tests/data/edge/api.yaml"), json!({}));
    let id = ("X-Correlation-Id", "7d444840-9dc0-11d1-b245-5ffdce74fad2");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let cases = [
        request("GET", "/api/items?limit=3&ids=1,2", &[id], ""),
        request("GET", "/api/items?limit=0&ids=a&filter[color]=green", &[], ""),
        request("GET", "/api/items", &[id, ("cookie", "session=ab")], ""),
        request(
            "GET",
            "/api/items",
            &[id, ("cookie", "a=1"), ("Cookie", "session=abcd")],
            "",
        ),
        request("GET", "/api/items?where=%7B%7D", &[id], ""),
        request("GET", "/api/items/not-a-uuid", &[], ""),
        request("GET", "/api/items/7d444840-9dc0-11d1-b245-5ffdce74fad2", &[], ""),
        request("GET", "/api/items/latest", &[], ""),
        request("GET", "/api/files/report.pdf", &[], ""),
        request("POST", "/api/items", &[form], "name=lamp&price=3"),
        request("POST", "/api/items", &[form], "name=&price=-1&extra=1"),
        request(
            "POST",
            "/api/items",
            &[JSON],
            r#"{"name": "", "price": -1, "extra": true}"#,
        ),
        request(
            "POST",
            "/api/items",
            &[JSON],
            r#"{"name": "a", "name": "b", "price": 1}"#,
        ),
        request("POST", "/api/items", &[JSON], "[[[["),
        request("POST", "/api/pets", &[JSON], r#"{"petType": "Cat", "lives": 12}"#),
        request(
            "POST",
            "/api/trees",
            &[JSON],
            r#"{"value": 1, "children": [{"value": "x"}]}"#,
        ),
        request(
            "PUT",
            "/api/items/7d444840-9dc0-11d1-b245-5ffdce74fad2",
            &[JSON],
            "null",
        ),
    ];
    for request in &cases {
        same(&config, request);
    }
    // The page sees what the gateway sees through every mode and rule.
    let bundle = bundle("schema/tests/data/edge/api.yaml");
    let scoped = json!({
        "apis": [{"name": "x", "bundle": bundle}],
        "defaults": {"api": "x"},
        "rules": [
            {"match": {"hosts": ["internal.example.com"]}, "mode": "off"},
            {"match": {"pathPrefix": "/api/items", "methods": ["POST"]}, "mode": "report", "maxErrors": 1}
        ]
    })
    .to_string();
    let bad_item = request("POST", "/api/items", &[JSON], r#"{"name": "", "price": -1}"#);
    let reported = same(&scoped, &bad_item);
    assert_eq!(reported.verdict.as_deref(), Some("reported"));
    assert!(reported.status.is_none());
    assert_eq!(reported.log.len(), 1, "{reported:?}");
    assert!(reported.log[0].contains("report mode"), "{reported:?}");
    let mut internal = bad_item.clone();
    internal
        .headers
        .push(("Host".into(), "internal.example.com".into()));
    assert_eq!(same(&scoped, &internal).verdict.as_deref(), Some("skipped"));
    let mut elsewhere = request("GET", "/api/nothing", &[(":authority", "api.example.com")], "");
    assert_eq!(same(&scoped, &elsewhere).status, Some(404));
    elsewhere.headers = vec![(":authority".into(), "internal.example.com".into())];
    assert_eq!(same(&scoped, &elsewhere).verdict.as_deref(), Some("skipped"));
    let passing = page_config(bundle, json!({"unknownOperations": "pass"}));
    assert_eq!(
        same(&passing, &request("GET", "/api/nothing", &[], ""))
            .verdict
            .as_deref(),
        Some("skipped")
    );
}

#[test]
fn bad_configurations_are_refused_with_the_plugins_own_message() {
    let petstore = bundle("schema/tests/data/openapi/petstore.yaml");
    let mut tampered = petstore.clone();
    tampered["title"] = json!("Not the petstore");
    let cases = [
        "{".to_string(),
        json!({"apis": [{"name": "x", "bundle": {"format": "x"}}]}).to_string(),
        json!({"apis": [{"name": "x", "bundle": tampered}]}).to_string(),
        json!({"apis": [{"name": "x", "bundle": petstore, "sha256": "00"}]}).to_string(),
        json!({"apis": [{"name": "x", "bundle": petstore}], "defaults": {"api": "y"}}).to_string(),
        json!({"apis": [{"name": "x", "bundle": petstore}], "defaults": {"maxErrors": 0}}).to_string(),
        json!({"apis": [{"name": "x", "bundle": petstore}], "defaults": {"mode": "strict"}}).to_string(),
        json!({"apis": [{"name": "x", "bundle": petstore}], "extra": 1}).to_string(),
        json!({"apis": [{"name": "x"}]}).to_string(),
    ];
    for config in &cases {
        let page = Engine::new(config).unwrap_err().to_string();
        let plugin = configure(&MockHost::new(), config.as_bytes())
            .unwrap_err()
            .to_string();
        assert_eq!(page, plugin);
        assert!(page.starts_with("invalid configuration at "), "{page}");
    }
    let error = Engine::new(&cases[2]).unwrap_err();
    assert_eq!(error.path, "apis[0].bundle");
    assert!(error.reason.contains("sha256 mismatch"), "{error}");
    // A gateway would answer 503 until a fetched bundle arrives; a page fetches nothing.
    let fetched = json!({"apis": [{"name": "x", "url": "http://kea-operator/bundles/x", "cluster": "kea"}]});
    let error = Engine::new(&fetched.to_string()).unwrap_err();
    assert_eq!(error.path, "apis[0].url");
}

#[test]
fn documents_and_operations_are_listed() {
    let config = page_config(bundle("schema/tests/data/openapi/petstore.yaml"), json!({}));
    let engine = Engine::new(&config).unwrap();
    let listed = serde_json::to_value(engine.operations()).unwrap();
    assert_eq!(
        listed,
        json!([
            {"api": "x", "method": "GET", "path": "/v1/pets", "operationId": "listPets"},
            {"api": "x", "method": "POST", "path": "/v1/pets", "operationId": "createPets"},
            {"api": "x", "method": "GET", "path": "/v1/pets/{petId}", "operationId": "showPetById"}
        ])
    );
    let document = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {}}}}});
    let engine = Engine::new(&json!({"apis": [{"name": "d", "document": document}]}).to_string()).unwrap();
    assert_eq!(
        serde_json::to_value(engine.operations()).unwrap(),
        json!([{"api": "d", "method": "GET", "path": "/a", "operationId": null}])
    );
    assert_eq!(
        engine.check(&request("GET", "/b", &[], "")).unwrap().status,
        Some(404)
    );
}

#[test]
fn requests_are_taken_as_a_browser_sends_them() {
    let page = request(
        "POST",
        "/v1/pets?x=1#fragment",
        &[
            ("Host", "api.example.com:8443"),
            ("Content-Length", "999"),
            ("X-Note", "  a b \t"),
        ],
        "{}",
    );
    let list: Vec<(String, String)> = page
        .header_list()
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect();
    let expected: Vec<(String, String)> = [
        (":method", "POST"),
        (":path", "/v1/pets?x=1"),
        (":authority", "api.example.com:8443"),
        ("x-note", "a b"),
        ("content-length", "2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(list, expected);
    for bad in [
        request("GET POST", "/", &[], ""),
        request("", "/", &[], ""),
        request("GET", "pets", &[], ""),
        request("GET", "/a b", &[], ""),
        request("GET", "/caf\u{e9}", &[], ""),
        request("GET", "/", &[("bad name", "1")], ""),
        request("GET", "/", &[("x", "a\r\nb")], ""),
    ] {
        assert!(bad.header_list().is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_headers(r#"[["a", "1"], ["a", "2"], ["b", 3]]"#).unwrap(),
        [("a", "1"), ("a", "2"), ("b", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(
        parse_headers(r#"{"a": ["1", "2"], "b": "3"}"#).unwrap(),
        [("a", "1"), ("a", "2"), ("b", "3")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert!(parse_headers("").unwrap().is_empty() && parse_headers("null").unwrap().is_empty());
    for bad in ["[1]", "[[\"a\"]]", "{\"a\": {}}", "\"x\"", "[[\"a\", null]]", "{"] {
        assert!(parse_headers(bad).is_err(), "{bad}");
    }
}

#[test]
fn no_input_makes_it_panic() {
    let config = page_config(
        bundle("schema/tests/data/edge/api.yaml"),
        json!({"maxBodyBytes": 512}),
    );
    let engine = Engine::new(&config).unwrap();
    let gateway = Gateway::new(&config);
    // A small deterministic generator over the characters that matter to paths, queries,
    // headers and JSON.
    let state = std::cell::Cell::new(0x2545_f491_4f6c_dd1d_u64);
    let next = |n: usize| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        (x % n as u64) as usize
    };
    let pieces = [
        "/",
        "api",
        "items",
        "..",
        ".",
        "%",
        "%2e",
        "%2F",
        "%zz",
        "?",
        "&",
        "=",
        "[",
        "]",
        "{",
        "}",
        "\"",
        ",",
        ":",
        "1",
        "-1",
        "1e999",
        "null",
        "true",
        "\u{fffd}",
        "\u{1f980}",
        "limit",
        "ids",
        "filter",
        "where",
        "latest",
        "files",
        "x.json",
        "~",
        ";",
        "#",
        " ",
        "\t",
        "\\",
    ];
    let methods = ["GET", "POST", "PUT", "DELETE", "get", "PATCH", "OPTIONS", "X"];
    let types = [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "a/b;c=d",
        "*/*",
    ];
    for _ in 0..3000 {
        let text = |count: usize| -> String { (0..count).map(|_| pieces[next(pieces.len())]).collect() };
        let prefix = ["/", "/api/", "/api/items", "/api/items?", "/api/files/"][next(5)];
        let target = format!("{prefix}{}", text(next(8)));
        let body = if next(3) == 0 {
            String::new()
        } else {
            text(next(40))
        };
        let headers = vec![
            ("content-type".to_string(), types[next(types.len())].to_string()),
            ("x-correlation-id".to_string(), text(next(3))),
            ("cookie".to_string(), text(next(4))),
        ];
        let page = PageRequest {
            method: methods[next(methods.len())].into(),
            target,
            headers,
            body: body.into_bytes(),
        };
        // What a browser would not send is refused; everything else answers like the gateway.
        if let Ok(outcome) = engine.check(&page) {
            assert!(outcome.verdict.is_some(), "{page:?}");
            assert_eq!(outcome, gateway.send(&page).0, "{page:?}");
        }
    }
    // Bytes that are not UTF-8, and bodies at and over the limit.
    for body in [
        vec![0xff, 0xfe, b'{'],
        vec![b'['; 512],
        vec![b'['; 513],
        vec![0; 600],
    ] {
        let mut page = request("POST", "/api/items", &[JSON], "");
        page.body = body;
        assert_eq!(engine.check(&page).unwrap().verdict.as_deref(), Some("failed"));
    }
}
