//! Whole request flows through the audit plugin's logic, driven natively by `MockHost`.

// Test helpers may panic: a panic is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_audit::{AuditRoot, AuditStream, LogOutcome};
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use serde_json::{json, Value};
use std::time::Duration;

fn configured(host: &MockHost, config: Value) -> AuditRoot {
    let mut root = AuditRoot::new();
    root.configure(host, config.to_string().as_bytes()).unwrap();
    root
}

/// Runs one exchange and returns what on_log produced.
fn exchange(
    root: &AuditRoot,
    host: &MockHost,
    request_body: Option<&[u8]>,
    response_body: Option<&[u8]>,
) -> LogOutcome {
    let runtime = root.runtime().unwrap();
    let mut stream = AuditStream::new();
    stream.on_request_headers(host, &runtime.config);
    if let Some(body) = request_body {
        host.set_body(Buffer::RequestBody, body);
        stream.on_request_body(host, body.len());
    }
    stream.on_response_headers(host);
    if let Some(body) = response_body {
        host.set_body(Buffer::ResponseBody, body);
        stream.on_response_body(host, body.len());
    }
    host.advance(Duration::from_millis(12));
    stream.on_log(host, &runtime.config)
}

fn record(outcome: LogOutcome) -> Value {
    match outcome {
        LogOutcome::Record(line) => serde_json::from_str(&line).unwrap(),
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn records_every_field_with_secrets_redacted() {
    let host = MockHost::new()
        .with_request(
            "POST",
            "/pets/7?limit=3&access_token=tok-SECRET-1",
            &[
                ("x-request-id", "req-1"),
                ("authorization", "Bearer tok-SECRET-2"),
                ("cookie", "session=tok-SECRET-3"),
                ("x-api-key", "tok-SECRET-4"),
                ("user-agent", "curl/8"),
                ("content-type", "application/json"),
            ],
        )
        .with_response(
            201,
            &[
                ("content-type", "application/json"),
                ("set-cookie", "s=tok-SECRET-5"),
                ("x-kea-cache", "MISS"),
            ],
        );
    host.set_property(&["source", "address"], b"10.1.2.3:5555");
    host.set_property(&["xds", "route_name"], b"pets");
    let root = configured(&host, json!({"headers": {"request": true, "response": true}}));
    let runtime = root.runtime().unwrap();
    let mut stream = AuditStream::new();
    stream.on_request_headers(&host, &runtime.config);
    // The auth plugin, behind audit in the chain, sets the identity afterwards.
    host.set_header(HeaderMap::RequestHeaders, "x-kea-sub", Some(b"alice"));
    host.set_header(HeaderMap::RequestHeaders, "x-kea-session", Some(b"sess-hash"));
    host.set_header(HeaderMap::RequestHeaders, "x-kea-validation", Some(b"passed"));
    stream.on_request_body(&host, 10);
    stream.on_response_body(&host, 99);
    host.advance(Duration::from_millis(7));
    let line = match stream.on_log(&host, &runtime.config) {
        LogOutcome::Record(line) => line,
        other => panic!("{other:?}"),
    };
    assert!(!line.contains("SECRET"), "a secret leaked: {line}");
    let r: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(r["@timestamp"], "2026-01-01T00:00:00.000Z");
    assert_eq!(r["event.duration"], 7_000_000);
    assert_eq!(r["event.outcome"], "success");
    assert_eq!(r["http.request.id"], "req-1");
    assert_eq!(r["http.request.method"], "POST");
    assert_eq!(r["http.request.body.bytes"], 10);
    assert_eq!(r["http.response.body.bytes"], 99);
    assert_eq!(r["http.response.status_code"], 201);
    assert_eq!(r["url.domain"], "api.example.com");
    assert_eq!(r["url.path"], "/pets/7");
    assert!(r["url.query"]
        .as_str()
        .unwrap()
        .starts_with("limit=3&access_token=[REDACTED len=12 sha256="));
    assert_eq!(r["client.ip"], "10.1.2.3");
    assert_eq!(r["client.port"], 5555);
    assert_eq!(r["user_agent.original"], "curl/8");
    assert_eq!(r["user.id"], "alice");
    assert_eq!(r["kea.session.id"], "sess-hash");
    assert_eq!(r["kea.validation.result"], "passed");
    assert_eq!(r["kea.cache.status"], "MISS");
    assert_eq!(r["kea.route"], "pets");
    let request_headers: Vec<&str> = r["kea.request.headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(request_headers
        .iter()
        .any(|h| h.starts_with("authorization: [REDACTED len=19 sha256=")));
    assert!(request_headers.contains(&"user-agent: curl/8"));
    assert!(r["kea.response.headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h.as_str().unwrap().starts_with("set-cookie: [REDACTED")));
}

#[test]
fn a_hash_key_makes_markers_hmacs() {
    let host = MockHost::new()
        .with_request("GET", "/?token=abc", &[("authorization", "Bearer abc")])
        .with_response(200, &[]);
    let root = configured(
        &host,
        json!({"headers": {"request": true}, "redact": {"hashKey": "a-deployment-key-0123"}}),
    );
    let r = record(exchange(&root, &host, None, None));
    assert!(
        r["url.query"]
            .as_str()
            .unwrap()
            .starts_with("token=[REDACTED len=3 hmac="),
        "{r}"
    );
    assert!(
        r.to_string().contains("authorization: [REDACTED len=10 hmac="),
        "{r}"
    );
}

#[test]
fn client_supplied_identity_headers_are_stripped_and_flagged() {
    let host = MockHost::new()
        .with_request(
            "GET",
            "/",
            &[
                ("x-kea-sub", "admin"),
                ("X-Kea-Scopes", "all"),
                ("x_kea_client", "ops"),
            ],
        )
        .with_response(200, &[]);
    let root = configured(&host, json!({}));
    let r = record(exchange(&root, &host, None, None));
    assert!(
        r.get("user.id").is_none(),
        "a spoofed principal must not be recorded: {r}"
    );
    assert_eq!(r["kea.request.spoofed_identity"], true);
    assert_eq!(
        host.header(HeaderMap::RequestHeaders, "x-kea-sub"),
        None,
        "stripped before the upstream"
    );
    assert_eq!(host.header(HeaderMap::RequestHeaders, "x-kea-scopes"), None);
    // The underscore spelling reaches the same variable in CGI-style upstreams.
    assert_eq!(host.header(HeaderMap::RequestHeaders, "x_kea_client"), None);
}

#[test]
fn identity_is_not_trusted_when_the_request_phase_never_ran() {
    // Envoy rejected the request before the filter chain: only on_log runs.
    let host = MockHost::new()
        .with_request("GET", "/", &[("x-kea-sub", "admin")])
        .with_response(400, &[]);
    let root = configured(&host, json!({}));
    let runtime = root.runtime().unwrap();
    let r = record(AuditStream::new().on_log(&host, &runtime.config));
    assert!(r.get("user.id").is_none(), "{r}");
    assert_eq!(r["kea.request.spoofed_identity"], true);
}

#[test]
fn generates_a_request_id_when_missing() {
    let host = MockHost::new()
        .with_request("GET", "/", &[])
        .with_response(200, &[]);
    let root = configured(&host, json!({}));
    let r = record(exchange(&root, &host, None, None));
    let id = r["http.request.id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36);
    assert_eq!(id.as_bytes()[14], b'4', "version 4 UUID: {id}");
    assert_eq!(
        host.header_text(HeaderMap::RequestHeaders, "x-request-id"),
        Some(id),
        "propagated upstream"
    );
}

#[test]
fn captures_bodies_with_pointer_redaction_and_cap() {
    let host = MockHost::new()
        .with_request(
            "POST",
            "/login",
            &[("content-type", "application/json; charset=utf-8")],
        )
        .with_response(200, &[("content-type", "application/json")]);
    let root = configured(
        &host,
        json!({
            "body": {"request": true, "response": true, "maxBytes": 64},
            "redact": {"requestBodyPointers": ["/password"], "responseBodyPointers": ["/token"]}
        }),
    );
    let request = br#"{"user":"bob","password":"pw-SECRET"}"#;
    let response = br#"{"token":"tk-SECRET","expires":3600,"padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let r = record(exchange(&root, &host, Some(request), Some(response)));
    assert!(!r.to_string().contains("SECRET"), "{r}");
    let body: Value = serde_json::from_str(r["http.request.body.content"].as_str().unwrap()).unwrap();
    assert_eq!(body["user"], "bob");
    assert!(body["password"].as_str().unwrap().starts_with("[REDACTED len=9 "));
    // The response exceeds the cap, so it cannot be checked for the pointer: redacted whole.
    assert_eq!(r["kea.response.body.truncated"], true);
    assert!(r["http.response.body.content"]
        .as_str()
        .unwrap()
        .starts_with("[REDACTED len=64 "));
}

#[test]
fn body_capture_respects_content_types() {
    let host = MockHost::new()
        .with_request("POST", "/upload", &[("content-type", "image/png")])
        .with_response(200, &[("content-type", "text/plain")]);
    let root = configured(&host, json!({"body": {"request": true, "response": true}}));
    let r = record(exchange(&root, &host, Some(b"\x89PNG"), Some(b"ok")));
    assert!(r.get("http.request.body.content").is_none());
    assert!(r.get("http.response.body.content").is_none());
    assert_eq!(r["http.request.body.bytes"], 4);
}

#[test]
fn sampling_keeps_errors_and_rules_can_skip() {
    let config = json!({
        "sampling": {"percent": 0},
        "rules": [{"match": {"pathPrefix": "/healthz"}, "skip": true}]
    });
    let ok = MockHost::new()
        .with_request("GET", "/x", &[])
        .with_response(200, &[]);
    let root = configured(&ok, config.clone());
    assert_eq!(exchange(&root, &ok, None, None), LogOutcome::SampledOut);
    let failed = MockHost::new()
        .with_request("GET", "/x", &[])
        .with_response(503, &[]);
    assert_eq!(
        record(exchange(&root, &failed, None, None))["event.outcome"],
        "failure"
    );
    let health = MockHost::new()
        .with_request("GET", "/healthz", &[])
        .with_response(500, &[]);
    assert_eq!(exchange(&root, &health, None, None), LogOutcome::Skipped);
}

#[test]
fn sampling_percentage_is_roughly_honoured_and_stable() {
    let host = MockHost::new();
    let root = configured(&host, json!({"sampling": {"percent": 25}}));
    let mut kept = 0;
    for i in 0..4000 {
        let host = MockHost::new()
            .with_request("GET", "/", &[("x-request-id", &format!("id-{i}"))])
            .with_response(200, &[]);
        if matches!(exchange(&root, &host, None, None), LogOutcome::Record(_)) {
            kept += 1;
        }
    }
    assert!((800..1200).contains(&kept), "kept {kept} of 4000 at 25%");
    let again = MockHost::new()
        .with_request("GET", "/", &[("x-request-id", "id-7")])
        .with_response(200, &[]);
    let first = matches!(exchange(&root, &again, None, None), LogOutcome::Record(_));
    let again2 = MockHost::new()
        .with_request("GET", "/", &[("x-request-id", "id-7")])
        .with_response(200, &[]);
    assert_eq!(
        first,
        matches!(exchange(&root, &again2, None, None), LogOutcome::Record(_))
    );
}

#[test]
fn survives_non_utf8_headers_and_missing_response() {
    let host = MockHost::new().with_request("GET", "/", &[]);
    host.set_raw_header(HeaderMap::RequestHeaders, "x-weird", &[0xff, 0xfe, b'a']);
    host.set_raw_header(HeaderMap::RequestHeaders, ":path", &[b'/', 0xc3, 0x28]);
    host.set_raw_header(HeaderMap::RequestHeaders, "authorization", &[0xff, b'x']);
    host.set_property_i64(&["response", "code"], 502);
    let root = configured(&host, json!({"headers": {"request": true}}));
    let r = record(exchange(&root, &host, None, None));
    assert_eq!(
        r["http.response.status_code"], 502,
        "status from the response.code property"
    );
    assert!(r["kea.request.headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h == "x-weird: \u{fffd}\u{fffd}a"));
    assert_eq!(r["url.path"], "/\u{fffd}(");
    assert!(
        r.get("kea.response.headers").is_none(),
        "response headers not captured"
    );
    // Secret headers are hashed over their raw bytes, never decoded.
    assert!(r["kea.request.headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h.as_str().unwrap().starts_with("authorization: [REDACTED len=2 ")));
}

#[test]
fn log_sink_writes_one_json_line_per_record() {
    let host = MockHost::new()
        .with_request("GET", "/a", &[])
        .with_response(200, &[]);
    let root = configured(&host, json!({"sinks": {"log": {"level": "warn"}}}));
    let outcome = exchange(&root, &host, None, None);
    root.runtime().unwrap().emit(&host, outcome);
    let logs = host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].0, log::Level::Warn);
    assert_eq!(
        serde_json::from_str::<Value>(&logs[0].1).unwrap()["url.path"],
        "/a"
    );
    assert_eq!(host.metric("kea_audit_records_total"), Some(1));
}

fn clickhouse_config() -> Value {
    json!({
        "sinks": {
            "log": {"enabled": false},
            "http": {
                "cluster": "clickhouse", "format": "clickhouse", "table": "audit.records",
                "batchSize": 3, "flushInterval": "1s", "maxRetries": 2, "initialBackoff": "1s",
                "headers": {"X-ClickHouse-User": "default"},
                "buffer": {"maxRecords": 5}
            }
        }
    })
}

/// Emits `n` records and delivers Envoy's per-enqueue queue notification for each.
fn emit_requests(root: &mut AuditRoot, host: &MockHost, n: usize) {
    let runtime = root.runtime().unwrap();
    for i in 0..n {
        host.set_header(
            HeaderMap::RequestHeaders,
            "x-request-id",
            Some(format!("r{i}").as_bytes()),
        );
        let mut stream = AuditStream::new();
        stream.on_request_headers(host, &runtime.config);
        runtime.emit(host, stream.on_log(host, &runtime.config));
        if runtime.buffer.is_some() {
            root.on_queue_ready(host);
        }
    }
}

#[test]
fn http_sink_batches_to_clickhouse_and_retries_then_drops() {
    let host = MockHost::new()
        .with_request("GET", "/", &[])
        .with_response(200, &[]);
    let mut root = configured(&host, clickhouse_config());
    assert_eq!(root.tick_period(), Some(Duration::from_secs(1)));
    emit_requests(&mut root, &host, 2);
    assert!(host.calls().is_empty(), "no full batch yet");
    root.on_tick(&host);
    let calls = host.take_calls();
    assert_eq!(calls.len(), 1, "partial batch on tick");
    let call = &calls[0];
    assert_eq!(call.cluster, "clickhouse");
    assert_eq!(call.timeout, Duration::from_secs(5));
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(
        call.header(":path"),
        Some(
            "/?query=INSERT%20INTO%20audit.records%20FORMAT%20JSONEachRow&input_format_skip_unknown_fields=1"
        )
    );
    assert_eq!(call.header("x-clickhouse-user"), Some("default"));
    let body = String::from_utf8(call.body.clone().unwrap()).unwrap();
    let ids: Vec<String> = body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["http.request.id"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(ids, ["r0", "r1"]);

    // ClickHouse answers 200: counted as sent.
    host.answer_call(200, &[], b"");
    assert_eq!(
        root.on_call_response(&host, call.token, 1, 0),
        Some(kea_audit::sink::Delivery::Sent { records: 2 })
    );
    assert_eq!(host.metric("kea_audit_batches_sent_total"), Some(1));
    assert_eq!(host.metric("kea_audit_records_sent_total"), Some(2));

    // A full batch is sent as soon as the queue reports it, without waiting for the tick.
    emit_requests(&mut root, &host, 3);
    let call = host.take_calls().pop().expect("full batch sent early");
    // The store fails: retried after 1s, then 2s, then dropped (maxRetries = 2).
    host.answer_call(
        500,
        &[],
        b"Code: 60, DB::Exception: Table audit.records doesn't exist",
    );
    assert_eq!(
        root.on_call_response(&host, call.token, 1, 60),
        Some(kea_audit::sink::Delivery::WillRetry {
            after: Duration::from_secs(1)
        })
    );
    root.on_tick(&host);
    assert!(host.calls().is_empty(), "still backing off");
    host.advance(Duration::from_secs(1));
    root.on_tick(&host);
    let retry = host.take_calls().pop().expect("retried");
    assert_eq!(retry.body, call.body, "the same batch is retried");
    host.answer_call(503, &[], b"");
    assert_eq!(
        root.on_call_response(&host, retry.token, 1, 0),
        Some(kea_audit::sink::Delivery::WillRetry {
            after: Duration::from_secs(2)
        })
    );
    host.advance(Duration::from_secs(2));
    root.on_tick(&host);
    let last = host.take_calls().pop().expect("second retry");
    // A reset stream arrives as a response without headers (and the maps must not be read).
    assert_eq!(
        root.on_call_response(&host, last.token, 0, 0),
        Some(kea_audit::sink::Delivery::Dropped { records: 3 })
    );
    assert_eq!(host.metric("kea_audit_send_failures_total"), Some(3));
    assert_eq!(host.metric("kea_audit_records_dropped_total"), Some(3));
    assert_eq!(
        root.on_call_response(&host, 999, 1, 0),
        None,
        "unknown tokens are ignored"
    );
}

#[test]
fn buffer_stays_bounded_while_the_sink_is_down() {
    let host = MockHost::new()
        .with_request("GET", "/", &[])
        .with_response(200, &[]);
    host.fail_cluster("clickhouse");
    let mut root = configured(&host, clickhouse_config());
    emit_requests(&mut root, &host, 20);
    assert_eq!(
        host.queue_items("kea.audit.records").len(),
        5,
        "bounded at maxRecords"
    );
    // The first full batch (3 records) was taken out to send; the call failed, so it waits for
    // its retry. Every record is accounted for: 5 queued + 3 retrying + 12 dropped = 20.
    assert_eq!(host.metric("kea_audit_records_dropped_total"), Some(12));
    assert_eq!(
        host.metric("kea_audit_send_failures_total"),
        Some(1),
        "dispatch failure counted"
    );
    root.on_tick(&host);
    assert_eq!(host.metric("kea_audit_buffer_records"), Some(5));
    assert!(host.calls().is_empty(), "the failed batch waits for its backoff");
}

#[test]
fn reconfiguring_counts_a_held_batch_as_dropped() {
    let host = MockHost::new()
        .with_request("GET", "/", &[])
        .with_response(200, &[]);
    let mut root = configured(&host, clickhouse_config());
    emit_requests(&mut root, &host, 3);
    assert_eq!(host.calls().len(), 1, "a full batch is in flight");
    root.configure(&host, clickhouse_config().to_string().as_bytes())
        .unwrap();
    assert_eq!(host.metric("kea_audit_records_dropped_total"), Some(3));
    assert_eq!(
        root.on_call_response(&host, host.calls()[0].token, 1, 0),
        None,
        "the old call is not ours any more"
    );
}

#[test]
fn elastic_bulk_format_and_item_errors() {
    let host = MockHost::new()
        .with_request("GET", "/", &[])
        .with_response(200, &[]);
    let mut root = configured(
        &host,
        json!({"sinks": {"http": {"cluster": "es", "format": "elasticBulk", "index": "audit-7"}}}),
    );
    emit_requests(&mut root, &host, 1);
    root.on_tick(&host);
    let call = host.take_calls().pop().unwrap();
    assert_eq!(call.header(":path"), Some("/_bulk"));
    assert_eq!(call.header("content-type"), Some("application/x-ndjson"));
    let body = String::from_utf8(call.body.unwrap()).unwrap();
    assert!(
        body.starts_with("{\"create\":{\"_index\":\"audit-7\"}}\n{"),
        "{body}"
    );
    let answer = br#"{"took":3,"errors":true,"items":[{"create":{"status":400,"error":{"type":"mapper_parsing_exception"}}}]}"#;
    host.answer_call(200, &[], answer);
    root.on_call_response(&host, call.token, 1, answer.len());
    // The rejected item is dropped (not retried: that would duplicate accepted items).
    assert_eq!(host.metric("kea_audit_send_failures_total"), Some(1));
    assert_eq!(host.metric("kea_audit_records_dropped_total"), Some(1));
    assert_eq!(host.metric("kea_audit_records_sent_total"), Some(0));
    assert_eq!(host.metric("kea_audit_batches_sent_total"), Some(1));
}

#[test]
fn invalid_configurations_name_the_field() {
    let cases = [
        (json!({"sampling": {"percent": 101}}), "sampling.percent"),
        (json!({"sampling": {"percent": "all"}}), "sampling.percent"),
        (
            json!({"sampling": {"alwaysLogStatusAtLeast": 42}}),
            "sampling.alwaysLogStatusAtLeast",
        ),
        (
            json!({"rules": [{"match": {"pathPrefix": "x"}}]}),
            "rules[0].match",
        ),
        (
            json!({"rules": [{"match": {}, "sampling": {"percent": -1}}]}),
            "rules[0].sampling.percent",
        ),
        (json!({"rules": [{"match": {"paths": ["/"]}}]}), "rules[0].match"),
        (
            json!({"redact": {"headers": ["bad header"]}}),
            "redact.headers[0]",
        ),
        (
            json!({"redact": {"requestBodyPointers": ["password"]}}),
            "redact.requestBodyPointers[0]",
        ),
        (
            json!({"body": {"contentTypes": ["json"]}}),
            "body.contentTypes[0]",
        ),
        (json!({"body": {"maxBytes": "2GiB"}}), "body.maxBytes"),
        (json!({"body": {"maxBytes": "lots"}}), "body.maxBytes"),
        (json!({"sinks": {"log": {"enabled": false}}}), "sinks"),
        (json!({"sinks": {"log": {"level": "debug"}}}), "sinks.log.level"),
        (json!({"sinks": {"http": {"format": "clickhouse"}}}), "sinks.http"),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "csv"}}}),
            "sinks.http.format",
        ),
        (
            json!({"sinks": {"http": {"cluster": "", "format": "jsonLines"}}}),
            "sinks.http.cluster",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "batchSize": 0}}}),
            "sinks.http.batchSize",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "timeout": "0s"}}}),
            "sinks.http.timeout",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "timeout": "5"}}}),
            "sinks.http.timeout",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "clickhouse", "table": "x; DROP"}}}),
            "sinks.http.table",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "elasticBulk", "index": "_x"}}}),
            "sinks.http.index",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "path": "no-slash"}}}),
            "sinks.http.path",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "buffer": {"maxRecords": 10}}}}),
            "sinks.http.buffer.maxRecords",
        ),
        (
            json!({"sinks": {"http": {"cluster": "c", "format": "jsonLines", "headers": {":path": "/"}}}}),
            "sinks.http.headers",
        ),
        (json!({"redact": {"hashKey": "short"}}), "redact.hashKey"),
        (
            json!({"redact": {"hashKeyEnv": "KEA_TEST_NO_SUCH_VARIABLE"}}),
            "redact.hashKeyEnv",
        ),
        (
            json!({"redact": {"hashKey": "0123456789abcdef", "hashKeyEnv": "X"}}),
            "redact.hashKeyEnv",
        ),
        (json!({"unknown": 1}), "unknown"),
    ];
    for (config, field) in cases {
        let host = MockHost::new();
        let err = AuditRoot::new()
            .configure(&host, config.to_string().as_bytes())
            .unwrap_err();
        assert!(
            err.path.starts_with(field),
            "{config}: expected an error at {field}, got {err}"
        );
        assert!(!err.reason.is_empty());
    }
    let host = MockHost::new();
    assert!(AuditRoot::new().configure(&host, b"{not json").is_err());
    assert!(
        AuditRoot::new().configure(&host, b"").is_ok(),
        "empty config means defaults"
    );
}
