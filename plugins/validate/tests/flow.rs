//! Request flows through the validate logic, driven natively by `MockHost`. Envoy runs the same
//! logic in tests/tests/validate.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_plugin_sdk::mock::{LocalReply, MockHost};
use kea_plugin_sdk::{Buffer, HeaderMap};
use kea_schema::{Bundle, Sources};
use kea_validate::plugin::{configure, Runtime};
use kea_validate::stream::{Action, ValidateStream};
use serde_json::{json, Value};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

fn edge_bundle() -> Bundle {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/tests/data/edge");
    let sources = Sources::load("api.yaml", |name| {
        std::fs::read(dir.join(name)).map_err(|e| e.to_string())
    })
    .unwrap();
    Bundle::compile(&sources).unwrap()
}

fn bundle_json() -> Value {
    serde_json::from_slice(&edge_bundle().to_json()).unwrap()
}

/// One proxy: its root host (metrics live in its shared state) and the configured runtime.
struct Proxy {
    root: MockHost,
    runtime: Rc<Runtime>,
}

impl std::ops::Deref for Proxy {
    type Target = Runtime;
    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

fn proxy(config: &Value) -> Proxy {
    let root = MockHost::new();
    let runtime = configure(&root, config.to_string().as_bytes()).unwrap();
    Proxy { root, runtime }
}

fn runtime(extra: Value) -> Proxy {
    let mut config = json!({"apis": [{"name": "edge", "bundle": bundle_json()}]});
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    proxy(&config)
}

const ID: (&str, &str) = ("x-correlation-id", "7d444840-9dc0-11d1-b245-5ffdce74fad2");

/// One request: headers (end of stream when there is no body), then the body in one piece.
fn send(
    runtime: &Proxy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (MockHost, Vec<Action>) {
    let host = MockHost::sharing_with(runtime.root.shared()).with_request(method, path, headers);
    let mut stream = ValidateStream::new();
    let mut actions = vec![stream.on_request_headers(&host, runtime, body.is_none())];
    if let (Some(body), Action::Wait) = (body, actions[0]) {
        host.set_body(Buffer::RequestBody, body.as_bytes());
        actions.push(stream.on_request_body(&host, runtime, body.len(), true));
    }
    (host, actions)
}

fn reply(host: &MockHost) -> LocalReply {
    let replies = host.replies();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0].header("content-type"),
        Some("application/problem+json")
    );
    replies[0].clone()
}

fn outcome(host: &MockHost) -> Option<String> {
    host.header_text(HeaderMap::RequestHeaders, "x-kea-validation")
}

#[test]
fn valid_requests_pass_and_are_marked() {
    let runtime = runtime(json!({}));
    let (host, actions) = send(&runtime, "GET", "/api/items?limit=3", &[ID], None);
    assert_eq!(actions, [Action::Continue]);
    assert!(host.replies().is_empty());
    assert_eq!(outcome(&host).as_deref(), Some("passed"));
    let item = json!({"name": "lamp", "price": 3}).to_string();
    let (host, actions) = send(
        &runtime,
        "POST",
        "/api/items",
        &[("content-type", "application/json")],
        Some(&item),
    );
    assert_eq!(actions, [Action::Wait, Action::Continue]);
    assert_eq!(outcome(&host).as_deref(), Some("passed"));
    assert_eq!(host.metric("kea_validate_passed_total"), Some(2));
}

#[test]
fn bodies_are_held_until_complete_then_rejected_with_every_problem() {
    let runtime = runtime(json!({}));
    let host = MockHost::new().with_request("POST", "/api/items", &[("content-type", "application/json")]);
    let mut stream = ValidateStream::new();
    assert_eq!(stream.on_request_headers(&host, &runtime, false), Action::Wait);
    let body = br#"{"name": "", "price": -1, "extra": true}"#;
    host.set_body(Buffer::RequestBody, &body[..10]);
    assert_eq!(stream.on_request_body(&host, &runtime, 10, false), Action::Wait);
    assert!(host.replies().is_empty());
    host.set_body(Buffer::RequestBody, body);
    assert_eq!(
        stream.on_request_body(&host, &runtime, body.len(), true),
        Action::Answered
    );
    let problem = reply(&host).json();
    assert_eq!(problem["status"], 400);
    assert_eq!(problem["type"], "https://kea.dev/problems/invalid-request");
    assert_eq!(problem["detail"], "3 problems with this POST /items request");
    let mut pointers: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(pointers, ["", "/name", "/price"]);
    assert!(problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["in"] == "body" && e["message"].is_string()));
    assert_eq!(outcome(&host).as_deref(), Some("failed"));
}

#[test]
fn parameter_problems_are_rejected_before_the_body_arrives() {
    let runtime = runtime(json!({}));
    let (host, actions) = send(&runtime, "GET", "/api/items?limit=0&ids=a", &[], None);
    assert_eq!(actions, [Action::Answered]);
    let errors = reply(&host).json()["errors"].clone();
    assert_eq!(
        errors,
        json!([
            {"in": "query", "name": "limit", "message": "value is less than the minimum of 1"},
            {"in": "query", "name": "ids", "pointer": "/0", "message": "value is not of type \"integer\""},
            {"in": "header", "name": "X-Correlation-Id", "message": "required parameter is missing"}
        ])
    );
}

#[test]
fn unknown_paths_methods_sizes_and_media_types() {
    let runtime = runtime(json!({"defaults": {"maxBodyBytes": 64}}));
    let (host, _) = send(&runtime, "GET", "/api/nothing", &[], None);
    assert_eq!(reply(&host).status, 404);
    let (host, _) = send(&runtime, "DELETE", "/api/items", &[], None);
    let answer = reply(&host);
    assert_eq!((answer.status, answer.header("allow")), (405, Some("GET, POST")));
    let (host, actions) = send(
        &runtime,
        "POST",
        "/api/items",
        &[("content-type", "application/json"), ("content-length", "65")],
        None,
    );
    assert_eq!((actions[0], reply(&host).status), (Action::Answered, 413));
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(80));
    let (host, _) = send(
        &runtime,
        "POST",
        "/api/items",
        &[("content-type", "application/json")],
        Some(&big),
    );
    assert_eq!(reply(&host).status, 413);
    let (host, _) = send(
        &runtime,
        "POST",
        "/api/items",
        &[("content-type", "text/csv")],
        Some("a,b"),
    );
    let answer = reply(&host);
    assert_eq!(answer.status, 415);
    assert_eq!(
        answer.json()["accepted"],
        json!(["application/json", "application/x-www-form-urlencoded"])
    );
    for body in [
        "{\"name\": \"a\", \"name\": \"b\", \"price\": 1}",
        "{\"name\": \"\u{fffd}",
        "[[[[",
        "null",
    ] {
        let (host, _) = send(
            &runtime,
            "POST",
            "/api/items",
            &[("content-type", "application/json")],
            Some(body),
        );
        assert_eq!(reply(&host).status, 400, "{body}");
    }
    // Paths the upstream could resolve to another operation are refused.
    for ambiguous in [
        "/api/items/../pets",
        "/api/items/%2e%2e/pets",
        "/api/items%2Flatest",
    ] {
        let (host, _) = send(&runtime, "GET", ambiguous, &[], None);
        assert_eq!(reply(&host).status, 400, "{ambiguous}");
    }
    // Media types outside `bodies` are not read, but must still be documented.
    let json_only = self::runtime(json!({"defaults": {"bodies": ["json"]}}));
    let (host, _) = send(
        &json_only,
        "POST",
        "/api/items",
        &[("content-type", "text/plain")],
        Some("{}"),
    );
    assert_eq!(reply(&host).status, 415);
    let (host, actions) = send(
        &json_only,
        "POST",
        "/api/items",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("x=1"),
    );
    assert_eq!(
        (actions[1], outcome(&host).as_deref()),
        (Action::Continue, Some("passed"))
    );
    // Unknown operations may pass.
    let passing = self::runtime(json!({"defaults": {"unknownOperations": "pass"}}));
    let (host, actions) = send(&passing, "GET", "/api/nothing", &[], None);
    assert_eq!(
        (actions[0], outcome(&host).as_deref()),
        (Action::Continue, Some("skipped"))
    );
}

#[test]
fn report_mode_passes_and_marks_off_skips() {
    let runtime = runtime(json!({"rules": [
        {"match": {"pathPrefix": "/api/pets"}, "mode": "off"},
        {"match": {"pathPrefix": "/api"}, "mode": "report", "api": "edge"}
    ]}));
    let (host, actions) = send(
        &runtime,
        "POST",
        "/api/items",
        &[("content-type", "application/json")],
        Some("{}"),
    );
    assert_eq!(actions, [Action::Wait, Action::Continue]);
    assert!(host.replies().is_empty());
    assert_eq!(outcome(&host).as_deref(), Some("reported"));
    assert!(
        host.logs()
            .iter()
            .any(|(_, line)| line.contains("report mode") && line.contains("body")),
        "{:?}",
        host.logs()
    );
    let (host, actions) = send(
        &runtime,
        "POST",
        "/api/pets",
        &[("content-type", "application/json")],
        Some("{}"),
    );
    assert_eq!(
        (actions, outcome(&host).as_deref()),
        (vec![Action::Continue], Some("skipped"))
    );
}

#[test]
fn errors_are_capped() {
    let runtime = runtime(json!({"defaults": {"maxErrors": 2}}));
    let (host, _) = send(&runtime, "GET", "/api/items?limit=0&ids=a&since=x", &[], None);
    let problem = reply(&host).json();
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2);
    assert_eq!(
        problem["detail"],
        "2 or more problems with this GET /items request"
    );
}

#[test]
fn responses_are_checked_in_report_mode() {
    let runtime = runtime(json!({"defaults": {"responses": true}}));
    let host = MockHost::sharing_with(runtime.root.shared()).with_request(
        "POST",
        "/api/items",
        &[("content-type", "application/json")],
    );
    let mut stream = ValidateStream::new();
    stream.on_request_headers(&host, &runtime, false);
    let item = json!({"name": "lamp", "price": 3}).to_string();
    host.set_body(Buffer::RequestBody, item.as_bytes());
    assert_eq!(
        stream.on_request_body(&host, &runtime, item.len(), true),
        Action::Continue
    );
    host.set_response(201, &[("content-type", "application/json")]);
    assert_eq!(stream.on_response_headers(&host, &runtime, false), Action::Wait);
    host.set_body(Buffer::ResponseBody, item.as_bytes()); // no readOnly id: invalid as a response
    assert_eq!(
        stream.on_response_body(&host, &runtime, item.len(), true),
        Action::Continue
    );
    assert_eq!(
        host.header_text(HeaderMap::ResponseHeaders, "x-kea-response-validation")
            .as_deref(),
        Some("failed")
    );
    assert_eq!(host.metric("kea_validate_responses_invalid_total"), Some(1));
}

#[test]
fn fetched_bundles_fail_closed_until_loaded_then_refresh_with_etags() {
    let config = json!({"apis": [{"name": "edge", "url": "http://bundles.internal/bundles/edge.json", "cluster": "operator", "refresh": "10s"}]});
    let runtime = proxy(&config);
    let root = &runtime.root;
    let (host, _) = send(&runtime, "GET", "/api/items/latest", &[], None);
    let answer = reply(&host);
    assert_eq!((answer.status, answer.header("retry-after")), (503, Some("5")));

    let started = runtime.on_tick(root);
    assert_eq!(started.len(), 1);
    let call = &root.calls()[0];
    assert_eq!(
        (
            call.cluster.as_str(),
            call.header(":path"),
            call.header(":authority")
        ),
        ("operator", Some("/bundles/edge.json"), Some("bundles.internal"))
    );
    assert_eq!(call.timeout, Duration::from_secs(5));
    assert!(runtime.on_tick(root).is_empty(), "one fetch at a time");
    let bundle = edge_bundle().to_json();
    root.answer_call(200, &[("etag", "\"v1\"")], &bundle);
    runtime.on_fetch_answer(root, 0, bundle.len());
    let (host, actions) = send(&runtime, "GET", "/api/items/latest", &[], None);
    assert_eq!(
        (actions[0], outcome(&host).as_deref()),
        (Action::Continue, Some("passed"))
    );

    // Not due yet; then revalidated with the ETag; a 304 keeps the bundle.
    assert!(runtime.on_tick(root).is_empty());
    root.advance(Duration::from_secs(11));
    runtime.on_tick(root);
    assert_eq!(
        root.calls().last().unwrap().header("if-none-match"),
        Some("\"v1\"")
    );
    root.answer_call(304, &[], b"");
    runtime.on_fetch_answer(root, 0, 0);
    // Same content under a rotated ETag: not reloaded, and the new ETag is used from now on.
    root.advance(Duration::from_secs(11));
    runtime.on_tick(root);
    root.answer_call(200, &[("etag", "\"v2\"")], &bundle);
    runtime.on_fetch_answer(root, 0, bundle.len());
    root.advance(Duration::from_secs(11));
    runtime.on_tick(root);
    assert_eq!(
        root.calls().last().unwrap().header("if-none-match"),
        Some("\"v2\"")
    );
    root.answer_call(304, &[], b"");
    runtime.on_fetch_answer(root, 0, 0);
    // A tampered bundle is refused and the last good one kept.
    root.advance(Duration::from_secs(11));
    runtime.on_tick(root);
    let tampered =
        String::from_utf8(bundle.clone())
            .unwrap()
            .replacen("\"maximum\":100", "\"maximum\":1000", 1);
    root.answer_call(200, &[], tampered.as_bytes());
    runtime.on_fetch_answer(root, 0, tampered.len());
    assert!(
        root.logs()
            .iter()
            .any(|(_, l)| l.contains("sha256 mismatch") && l.contains("keeping the last good bundle")),
        "{:?}",
        root.logs()
    );
    let (host, _) = send(&runtime, "GET", "/api/items?limit=1000", &[ID], None);
    assert_eq!(reply(&host).status, 400);
    assert_eq!(root.metric("kea_validate_bundle_fetch_failures_total"), Some(1));
    assert_eq!(root.metric("kea_validate_bundle_updates_total"), Some(1));
    // A failed fetch is retried soon, not after the refresh interval.
    root.advance(Duration::from_secs(1));
    assert_eq!(runtime.on_tick(root).len(), 1);
}

#[test]
fn pinned_digests_are_enforced() {
    let bundle = edge_bundle();
    let wrong = "0".repeat(64);
    let config = json!({"apis": [{"name": "edge", "bundle": bundle_json(), "sha256": wrong}]});
    let error = configure(&MockHost::new(), config.to_string().as_bytes()).unwrap_err();
    assert_eq!(error.path, "apis[0].sha256");
    let config = json!({"apis": [{"name": "edge", "url": "http://b/x", "cluster": "c", "sha256": wrong}]});
    let runtime = proxy(&config);
    let root = &runtime.root;
    runtime.on_tick(root);
    root.answer_call(200, &[], &bundle.to_json());
    runtime.on_fetch_answer(root, 0, bundle.to_json().len());
    assert!(runtime.api(0).is_none());
    assert!(root.logs().iter().any(|(_, l)| l.contains("is not the pinned")));
}

#[test]
fn schema_warnings_are_logged_once_when_a_bundle_loads() {
    let document = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/a": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {"type": "object", "propertyNames": {"pattern": "^a"}}}}},
        "responses": {}}}}});
    let bundle = Bundle::compile(&Sources::single("t.json", document.clone())).unwrap();
    let line = "t.json#/paths/~1a/post/requestBody/content/application~1json/schema/propertyNames: keyword \
                \"propertyNames\" is not part of OpenAPI 3.0 and is not checked";
    let bundle_json: Value = serde_json::from_slice(&bundle.to_json()).unwrap();
    let runtime = proxy(
        &json!({"apis": [{"name": "inline", "bundle": bundle_json}, {"name": "t.json", "document": document}]}),
    );
    let warnings = |host: &MockHost| -> Vec<String> {
        host.logs()
            .into_iter()
            .filter(|(level, _)| *level == log::Level::Warn)
            .map(|(_, line)| line)
            .collect()
    };
    assert_eq!(
        warnings(&runtime.root),
        [
            format!("kea-validate: API \"inline\": {line}"),
            format!("kea-validate: API \"t.json\": {line}")
        ]
    );

    // A fetched bundle's warnings are logged when it loads, not again while it stays the same.
    let runtime =
        proxy(&json!({"apis": [{"name": "t", "url": "http://b/t.json", "cluster": "c", "refresh": "10s"}]}));
    let root = &runtime.root;
    for _ in 0..2 {
        runtime.on_tick(root);
        root.answer_call(200, &[], &bundle.to_json());
        runtime.on_fetch_answer(root, 0, bundle.to_json().len());
        root.advance(Duration::from_secs(11));
    }
    assert!(runtime.api(0).is_some());
    assert_eq!(
        warnings(root),
        [format!("kea-validate: bundle from /t.json: {line}")]
    );
}
