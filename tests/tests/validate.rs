//! End-to-end: real Envoy with `dist/validate.wasm` in front of an upstream that counts requests.
//! Invalid requests are answered by the gateway and never reach the upstream — not even their
//! headers while the body is still arriving.

use anyhow::Result;
use kea_e2e::envoy::{Envoy, EnvoyBuilder};
use kea_e2e::http::{self, Response};
use kea_e2e::openapi::bundle_value;
use kea_e2e::upstream::Upstream;
use kea_e2e::wait_for;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn gateway(upstream: &Upstream, config: Value) -> Result<Envoy> {
    EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .plugin("validate", config)?
        .start()
}

fn edge_gateway(upstream: &Upstream) -> Result<Envoy> {
    gateway(
        upstream,
        json!({"apis": [{"name": "edge", "bundle": bundle_value("edge", "api.yaml")?}], "defaults": {"maxBodyBytes": "64KiB"}}),
    )
}

fn post(envoy: &Envoy, path: &str, content_type: &str, body: &[u8]) -> Result<Response> {
    http::send(
        "POST",
        &envoy.url(path),
        &[("content-type", content_type)],
        Some(body),
    )
}

fn assert_problem(response: &Response, status: u16) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{}",
        response.body
    );
    assert_eq!(response.json()["status"], status);
}

const ID: (&str, &str) = ("x-correlation-id", "7d444840-9dc0-11d1-b245-5ffdce74fad2");

#[test]
fn valid_requests_pass_and_invalid_ones_never_reach_the_upstream() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = edge_gateway(&upstream)?;
    let ok = http::send(
        "GET",
        &envoy.url("/api/items?limit=5&ids=1,2&filter[color]=red"),
        &[ID],
        None,
    )?;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let item = json!({"name": "lamp", "price": 9.5, "owner": {"login": "kea"}}).to_string();
    assert_eq!(upstream.hits(), 1);

    // The body arrives at the upstream untouched.
    let valid = post(&envoy, "/api/items", "application/json", item.as_bytes())?;
    assert_eq!(valid.status, 200, "{}", valid.body);
    assert_eq!(upstream.hits(), 2);

    let invalid = post(
        &envoy,
        "/api/items",
        "application/json",
        br#"{"name": "", "price": "free", "id": "x"}"#,
    )?;
    assert_problem(&invalid, 400);
    let problem = invalid.json();
    assert_eq!(problem["type"], "https://kea.dev/problems/invalid-request");
    let mut pointers: Vec<String> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap_or("").to_string())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/id", "/name", "/price"], "{problem}");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("readOnly"),
        "{problem}"
    );

    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let huge_array = format!(
        "{{\"value\": 1, \"children\": [{}]}}",
        vec!["{\"value\": 1}"; 10_000].join(",")
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("/api/items", "application/json", b"not json".to_vec(), 400),
        (
            "/api/items",
            "application/json",
            br#"{"name": "a", "name": "b", "price": 1}"#.to_vec(),
            400,
        ),
        (
            "/api/items",
            "application/json",
            b"{\"name\": \"\xff\xfe\", \"price\": 1}".to_vec(),
            400,
        ),
        ("/api/trees", "application/json", deep.into_bytes(), 400),
        (
            "/api/trees",
            "application/json",
            huge_array.clone().into_bytes(),
            413,
        ),
        ("/api/items", "text/csv", b"name,price".to_vec(), 415),
        ("/api/items", "application/json", Vec::new(), 400),
    ];
    for (path, content_type, body, status) in cases {
        let response = post(&envoy, path, content_type, &body)?;
        assert_problem(&response, status);
    }
    let wrong_method = http::send("DELETE", &envoy.url("/api/items"), &[], None)?;
    assert_problem(&wrong_method, 405);
    assert_eq!(wrong_method.header("allow"), Some("GET, POST"));
    assert_problem(&http::get(&envoy.url("/api/items?limit=0"))?, 400);
    assert_problem(&http::get(&envoy.url("/nowhere"))?, 404);
    assert_eq!(upstream.hits(), 2, "no rejected request reached the upstream");
    // Within maxBodyBytes, 2,000 items are checked and pass.
    let fits = format!(
        "{{\"value\": 1, \"children\": [{}]}}",
        vec!["{\"value\": 1}"; 2_000].join(",")
    );
    assert_eq!(
        post(&envoy, "/api/trees", "application/json", fits.as_bytes())?.status,
        200
    );
    assert!(envoy.stat("wasmcustom.kea_validate_rejected_total").unwrap_or(0) >= 11);
    Ok(())
}

/// Sends headers and the first part of a body, waits, and shows the upstream has seen nothing;
/// then the rest, and returns the status line.
fn slow_post(envoy: &Envoy, upstream: &Upstream, body: &str) -> Result<String> {
    let port: u16 = envoy
        .url("/")
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches('/')
        .parse()?;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let before = upstream.hits();
    let head = format!(
        "POST /api/items HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes())?;
    stream.write_all(first.as_bytes())?;
    stream.flush()?;
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        upstream.hits(),
        before,
        "headers reached the upstream before the body was checked"
    );
    stream.write_all(rest.as_bytes())?;
    let mut answer = [0u8; 4096];
    let read = stream.read(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

#[test]
fn headers_are_held_until_the_body_is_complete() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = edge_gateway(&upstream)?;
    let invalid = json!({"name": "lamp", "price": -3, "pad": "x".repeat(2000)}).to_string();
    assert!(slow_post(&envoy, &upstream, &invalid)?.starts_with("HTTP/1.1 400"));
    assert_eq!(upstream.hits(), 0);
    let valid = json!({"name": "lamp", "price": 3, "note": "x".repeat(2000)}).to_string();
    assert!(slow_post(&envoy, &upstream, &valid)?.starts_with("HTTP/1.1 200"));
    assert_eq!(upstream.hits(), 1);
    Ok(())
}

#[test]
fn published_documents_are_enforced() -> Result<()> {
    // petstore-expanded as an OpenAPI document in the configuration (compiled by the plugin).
    let yaml = std::fs::read(kea_e2e::openapi::data_dir("openapi").join("petstore-expanded.yaml"))?;
    let document = kea_schema::sources::parse_document("petstore-expanded.yaml", &yaml)?;
    let upstream = Upstream::start()?;
    let envoy = gateway(
        &upstream,
        json!({"apis": [{"name": "pets", "document": document}]}),
    )?;
    assert_eq!(
        http::get(&envoy.url("/v2/pets?tags=a&tags=b&limit=3"))?.status,
        200
    );
    assert_eq!(http::get(&envoy.url("/v2/pets/7"))?.status, 200);
    let wrong = http::get(&envoy.url("/v2/pets?limit=many"))?;
    assert_problem(&wrong, 400);
    assert_eq!(
        wrong.json()["errors"],
        json!([{"in": "query", "name": "limit", "message": "value is not of type \"integer\""}])
    );
    assert_eq!(
        post(
            &envoy,
            "/v2/pets",
            "application/json",
            br#"{"name": "Rex", "tag": "dog"}"#
        )?
        .status,
        200
    );
    assert_problem(
        &post(&envoy, "/v2/pets", "application/json", br#"{"tag": "dog"}"#)?,
        400,
    );
    assert_problem(&http::send("DELETE", &envoy.url("/v2/pets/x"), &[], None)?, 400);
    assert_eq!(upstream.hits(), 3);
    Ok(())
}

#[test]
fn bundles_fetched_over_http_fail_closed_then_update() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = gateway(
        &upstream,
        json!({"apis": [{"name": "edge", "url": "http://bundles.local/bundles/edge.json", "cluster": "upstream", "refresh": "1s"}]}),
    )?;
    // Nothing published yet: fail closed.
    let unavailable = http::get(&envoy.url("/api/items/latest"))?;
    assert_problem(&unavailable, 503);
    assert_eq!(unavailable.header("retry-after"), Some("5"));
    upstream.publish(
        "/bundles/edge.json",
        &kea_e2e::openapi::bundle("edge", "api.yaml")?.to_json(),
    );
    wait_for(
        Duration::from_secs(10),
        "the bundle to load on every worker",
        || {
            let all =
                (0..6).all(|_| http::get(&envoy.url("/api/items/latest")).is_ok_and(|r| r.status == 200));
            all.then_some(())
        },
    )?;
    // A worker whose fetch failed before the bundle was published retries within a second: after
    // 2.5 s every root context has loaded it. Unchanged bundles are then revalidated (304), not
    // reloaded.
    std::thread::sleep(Duration::from_millis(2500));
    let loads = envoy.stat("wasmcustom.kea_validate_bundle_updates_total");
    let fetches = upstream.file_fetches();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(upstream.file_fetches() > fetches);
    assert_eq!(
        envoy.stat("wasmcustom.kea_validate_bundle_updates_total"),
        loads,
        "revalidation reloaded the bundle"
    );
    // A new version replaces it; a corrupt one is refused and the last good one kept. Every root
    // context (one per worker, plus Envoy's main thread) loaded the first bundle once by now.
    let updates = "wasmcustom.kea_validate_bundle_updates_total";
    let failures = "wasmcustom.kea_validate_bundle_fetch_failures_total";
    let contexts = loads.unwrap_or(0);
    assert!(contexts >= 2, "every worker loads the bundle");
    upstream.publish(
        "/bundles/edge.json",
        &kea_e2e::openapi::bundle("openapi", "petstore.yaml")?.to_json(),
    );
    wait_for(
        Duration::from_secs(10),
        "every root context to load the new bundle",
        || envoy.stat(updates).filter(|n| *n >= 2 * contexts),
    )?;
    let failed = envoy.stat(failures).unwrap_or(0);
    upstream.publish(
        "/bundles/edge.json",
        b"{\"format\": \"kea.dev/openapi-bundle/v1\"}",
    );
    wait_for(
        Duration::from_secs(10),
        "every root context to refuse the corrupt bundle",
        || envoy.stat(failures).filter(|n| *n >= failed + contexts),
    )?;
    for _ in 0..6 {
        assert_eq!(http::get(&envoy.url("/v1/pets"))?.status, 200);
    }
    assert!(envoy.logs().contains("keeping the last good bundle"));
    Ok(())
}

#[test]
fn report_mode_passes_and_marks_invalid_requests() -> Result<()> {
    let upstream = Upstream::start()?;
    let config = json!({
        "apis": [{"name": "edge", "bundle": bundle_value("edge", "api.yaml")?}],
        "defaults": {"mode": "report", "unknownOperations": "pass"}
    });
    let envoy = gateway(&upstream, config)?;
    let echoed = http::send(
        "GET",
        &envoy.url("/echo/anything"),
        &[("x-kea-validation", "passed")],
        None,
    )?;
    assert_eq!(echoed.json()["headers"]["x-kea-validation"], "skipped");
    let reported = http::send("GET", &envoy.url("/api/items?limit=0"), &[], None)?;
    assert_eq!(reported.status, 200);
    assert!(envoy.logs().contains("does not match the API (report mode)"));
    Ok(())
}

#[test]
fn invalid_documents_are_refused_at_load_with_the_pointer() -> Result<()> {
    let upstream = Upstream::start()?;
    let document = json!({"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {
        "/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}, "responses": {}}}},
        "components": {"schemas": {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}}});
    let log = EnvoyBuilder::new(upstream.port)
        .plugin(
            "validate",
            json!({"apis": [{"name": "cyclic", "document": document}]}),
        )?
        .start_expecting_failure()?;
    assert!(
        log.contains(
            "apis[0].document/paths/~1a/post/requestBody/content/application~1json/schema: reference cycle"
        ),
        "{log}"
    );
    Ok(())
}

#[test]
fn the_audit_record_says_what_validation_decided() -> Result<()> {
    // The documented chain: audit first (it sees rejections too), then validate.
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .plugin("audit", json!({}))?
        .plugin(
            "validate",
            json!({"apis": [{"name": "edge", "bundle": bundle_value("edge", "api.yaml")?}]}),
        )?
        .start()?;
    // A client cannot claim the outcome: audit strips x-kea-* before validate sets it.
    let rejected = http::send(
        "GET",
        &envoy.url("/api/items?limit=0"),
        &[("x-kea-validation", "passed")],
        None,
    )?;
    assert_problem(&rejected, 400);
    let record = envoy.wait_for_record("url.query", "limit=0")?;
    assert_eq!(record["kea.validation.result"], "failed", "{record}");
    assert_eq!(record["http.response.status_code"], 400, "{record}");
    let passed = http::send("GET", &envoy.url("/api/items?limit=7"), &[ID], None)?;
    assert_eq!(passed.status, 200);
    assert_eq!(
        envoy.wait_for_record("url.query", "limit=7")?["kea.validation.result"],
        "passed"
    );
    Ok(())
}
