//! End-to-end: real Envoy loading `dist/audit.wasm`, a real upstream, a real ClickHouse.

use anyhow::{Context, Result};
use kea_e2e::clickhouse::{ClickHouse, AUDIT_TABLE_DDL};
use kea_e2e::envoy::{rejected_at, Envoy, EnvoyBuilder};
use kea_e2e::http::{self, Response};
use kea_e2e::upstream::Upstream;
use kea_e2e::wait_for;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SECRETS: [&str; 5] = [
    "tok-AUTH-s3cr3t",
    "tok-COOKIE-s3cr3t",
    "tok-QUERY-s3cr3t",
    "tok-APIKEY-s3cr3t",
    "tok-BODY-s3cr3t",
];

fn clickhouse_with_table() -> Result<ClickHouse> {
    let clickhouse = ClickHouse::start()?;
    clickhouse.query(AUDIT_TABLE_DDL)?;
    Ok(clickhouse)
}

fn clickhouse_sink(extra: Value) -> Value {
    let mut http = json!({
        "cluster": "clickhouse", "format": "clickhouse", "table": "kea_audit",
        "batchSize": 100, "flushInterval": "200ms", "initialBackoff": "200ms", "maxBackoff": "1s"
    });
    if let (Some(base), Some(extra)) = (http.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    json!({
        "headers": {"request": true, "response": true},
        "body": {"request": true, "maxBytes": "2KiB"},
        "redact": {"requestBodyPointers": ["/password"]},
        "sinks": {"log": {"enabled": false}, "http": http}
    })
}

/// One request of the mixed workload: method, path, headers, body, expected status.
fn mixed_request(i: usize, envoy: &Envoy) -> Result<Response> {
    let id = format!("req-{i:04}");
    let auth = format!("Bearer {}", SECRETS[0]);
    let cookie = format!("session={}", SECRETS[1]);
    match i % 5 {
        0 => http::send(
            "GET",
            &envoy.url("/pets?limit=5"),
            &[("x-request-id", &id), ("authorization", &auth)],
            None,
        ),
        1 => {
            let body = format!(r#"{{"user":"u{i}","password":"{}"}}"#, SECRETS[4]);
            let headers = [
                ("x-request-id", id.as_str()),
                ("content-type", "application/json"),
                ("cookie", cookie.as_str()),
            ];
            http::send("POST", &envoy.url("/echo/login"), &headers, Some(body.as_bytes()))
        }
        2 => http::send(
            "PUT",
            &envoy.url(&format!("/status/404?access_token={}", SECRETS[2])),
            &[("x-request-id", &id)],
            Some(b"{}"),
        ),
        3 => http::send(
            "DELETE",
            &envoy.url("/status/500"),
            &[("x-request-id", &id), ("x-api-key", SECRETS[3])],
            None,
        ),
        _ => http::send("GET", &envoy.url("/status/204"), &[("x-request-id", &id)], None),
    }
}

fn expected_status(i: usize) -> u16 {
    [200, 200, 404, 500, 204][i % 5]
}

/// Sends `n` requests from 4 client threads; returns each request's latency.
fn send_mixed(envoy: &Envoy, n: usize) -> Vec<Duration> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                scope.spawn(move || {
                    let mut latencies = Vec::new();
                    for i in (t..n).step_by(4) {
                        let started = Instant::now();
                        let response = mixed_request(i, envoy).unwrap();
                        latencies.push(started.elapsed());
                        assert_eq!(
                            response.status,
                            expected_status(i),
                            "request {i}: {}",
                            response.body
                        );
                    }
                    latencies
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The plugin's counters, for failure messages.
fn audit_stats(envoy: &Envoy) -> String {
    let names = [
        "records_total",
        "records_sent_total",
        "records_dropped_total",
        "send_failures_total",
        "buffer_records",
    ];
    let values: Vec<String> = names
        .iter()
        .map(|n| format!("{n}={:?}", envoy.stat(&format!("wasmcustom.kea_audit_{n}"))))
        .collect();
    values.join(" ")
}

fn assert_no_wasm_failure(envoy: &Envoy) {
    let logs = envoy.logs();
    for marker in ["panicked", "Function: proxy_on", "wasm trap", "Failed to"] {
        assert!(!logs.contains(marker), "the VM failed ({marker}):\n{logs}");
    }
}

#[test]
fn a_thousand_requests_become_exactly_a_thousand_redacted_rows() -> Result<()> {
    let clickhouse = clickhouse_with_table()?;
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .cluster("clickhouse", clickhouse.http_port)
        .plugin("audit", clickhouse_sink(json!({})))?
        .start()?;

    send_mixed(&envoy, 1000);
    wait_for(Duration::from_secs(30), "1000 rows in ClickHouse", || {
        (clickhouse.count("kea_audit").ok()? >= 1000).then_some(())
    })
    .with_context(|| {
        format!(
            "ClickHouse rows: {:?}; {}",
            clickhouse.count("kea_audit").ok(),
            audit_stats(&envoy)
        )
    })?;
    std::thread::sleep(Duration::from_millis(800)); // any duplicate would arrive within a flush
    assert_eq!(clickhouse.count("kea_audit")?, 1000);
    let distinct: u64 = clickhouse
        .query("SELECT uniqExact(`http.request.id`) FROM kea_audit")?
        .trim()
        .parse()?;
    assert_eq!(distinct, 1000, "one row per request");

    let by_status = clickhouse.query(
        "SELECT `http.request.method`, `http.response.status_code`, count() FROM kea_audit GROUP BY `http.request.method`, `http.response.status_code` ORDER BY `http.request.method`, `http.response.status_code` FORMAT TSV",
    )?;
    assert_eq!(
        by_status,
        "DELETE\t500\t200\nGET\t200\t200\nGET\t204\t200\nPOST\t200\t200\nPUT\t404\t200\n"
    );

    let all = clickhouse.query("SELECT * FROM kea_audit FORMAT JSONEachRow")?;
    for secret in SECRETS {
        assert!(!all.contains(secret), "secret {secret} stored in ClickHouse");
    }
    let login = &clickhouse.rows("SELECT * FROM kea_audit WHERE `http.request.id` = 'req-0001'")?[0];
    assert_eq!(login["url.path"], "/echo/login");
    // ClickHouse quotes 64-bit integers in JSON output.
    let login_body = format!(r#"{{"user":"u1","password":"{}"}}"#, SECRETS[4]);
    assert_eq!(login["http.request.body.bytes"], login_body.len().to_string());
    let body: Value = serde_json::from_str(login["http.request.body.content"].as_str().unwrap())?;
    assert_eq!(body["user"], "u1");
    assert!(body["password"]
        .as_str()
        .unwrap()
        .starts_with("[REDACTED len=15 sha256="));
    assert!(login["kea.request.headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h.as_str().unwrap().starts_with("cookie: [REDACTED")));
    let put = &clickhouse.rows("SELECT * FROM kea_audit WHERE `http.request.id` = 'req-0002'")?[0];
    assert!(put["url.query"]
        .as_str()
        .unwrap()
        .starts_with("access_token=[REDACTED len=16 sha256="));
    assert_eq!(put["client.ip"], "127.0.0.1");
    assert_eq!(put["kea.route"], "default");
    assert_eq!(put["url.domain"], "127.0.0.1");
    assert!(put["@timestamp"].as_str().unwrap().ends_with('Z'));

    assert_eq!(envoy.stat("wasmcustom.kea_audit_records_total"), Some(1000));
    assert_eq!(envoy.stat("wasmcustom.kea_audit_records_sent_total"), Some(1000));
    assert_eq!(envoy.stat("wasmcustom.kea_audit_records_dropped_total"), Some(0));
    assert!(envoy.stat("wasmcustom.kea_audit_batches_sent_total").unwrap() >= 10);
    assert_eq!(upstream.hits(), 1000);
    assert_no_wasm_failure(&envoy);
    Ok(())
}

#[test]
fn a_log_store_outage_never_slows_requests_and_the_buffer_stays_bounded() -> Result<()> {
    let mut clickhouse = clickhouse_with_table()?;
    let upstream = Upstream::start()?;
    let max_records = 300;
    let envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .cluster("clickhouse", clickhouse.http_port)
        .plugin(
            "audit",
            clickhouse_sink(json!({"batchSize": 50, "maxRetries": 1, "buffer": {"maxRecords": max_records}})),
        )?
        .start()?;

    // Baseline with the store up.
    let mut up = send_mixed(&envoy, 500);
    wait_for(Duration::from_secs(30), "baseline rows", || {
        (clickhouse.count("kea_audit").ok()? == 500).then_some(())
    })
    .with_context(|| {
        format!(
            "ClickHouse rows: {:?}; {}",
            clickhouse.count("kea_audit").ok(),
            audit_stats(&envoy)
        )
    })?;

    clickhouse.stop();
    let mut down = send_mixed(&envoy, 3000);
    up.sort();
    down.sort();
    let p99 = |l: &[Duration]| l[l.len() * 99 / 100];
    eprintln!("p99 with store up {:?}, down {:?}", p99(&up), p99(&down));
    assert!(
        p99(&down) < p99(&up) * 3 + Duration::from_millis(20),
        "requests slowed down while the sink is down"
    );

    let buffered = envoy.stat("wasmcustom.kea_audit_buffer_records").unwrap_or(0);
    let dropped = envoy.stat("wasmcustom.kea_audit_records_dropped_total").unwrap();
    assert!(
        buffered <= max_records + 2,
        "buffer holds {buffered} records, bound {max_records} (+1 per worker)"
    );
    // At most the bound stays queued and one batch per worker is held for its retry.
    assert!(dropped >= 3000 - max_records - 4 * 50, "dropped {dropped}");
    assert!(envoy.stat("wasmcustom.kea_audit_send_failures_total").unwrap() >= 1);

    // The store comes back: new records arrive.
    clickhouse.restart()?;
    for i in 0..100 {
        let response = http::send(
            "GET",
            &envoy.url("/after"),
            &[
                ("user-agent", "after-outage"),
                ("x-request-id", &format!("after-{i}")),
            ],
            None,
        )?;
        assert_eq!(response.status, 200);
    }
    wait_for(Duration::from_secs(30), "records after the outage", || {
        let n: u64 = clickhouse
            .query("SELECT count() FROM kea_audit WHERE `user_agent.original` = 'after-outage'")
            .ok()?
            .trim()
            .parse()
            .ok()?;
        (n == 100).then_some(())
    })
    .with_context(|| {
        format!(
            "ClickHouse rows: {:?}; {}",
            clickhouse.count("kea_audit").ok(),
            audit_stats(&envoy)
        )
    })?;

    // Every record is accounted for: sent (and stored) or counted as dropped.
    wait_for(Duration::from_secs(30), "the buffer to drain", || {
        (envoy.stat("wasmcustom.kea_audit_buffer_records")? == 0).then_some(())
    })
    .with_context(|| {
        format!(
            "ClickHouse rows: {:?}; {}",
            clickhouse.count("kea_audit").ok(),
            audit_stats(&envoy)
        )
    })?;
    std::thread::sleep(Duration::from_millis(500));
    let emitted = envoy.stat("wasmcustom.kea_audit_records_total").unwrap();
    let sent = envoy.stat("wasmcustom.kea_audit_records_sent_total").unwrap();
    let dropped = envoy.stat("wasmcustom.kea_audit_records_dropped_total").unwrap();
    assert_eq!(emitted, 3600);
    assert_eq!(
        sent + dropped,
        emitted,
        "sent {sent} + dropped {dropped} != emitted {emitted}"
    );
    // Every record counted as sent is stored. A few more may be: a batch ClickHouse committed just
    // as it was killed never got its answer, so the plugin counted it as failed (delivery is
    // at-least-once when an answer is lost; a retry that lands duplicates that batch).
    let stored = clickhouse.count("kea_audit")? as i64;
    assert!(stored >= sent, "stored {stored} < sent {sent}");
    assert!(
        stored <= sent + dropped && stored <= emitted + 50,
        "stored {stored}, sent {sent}, dropped {dropped}"
    );
    assert_no_wasm_failure(&envoy);
    Ok(())
}

#[test]
fn log_sink_records_and_identity_headers_cannot_be_spoofed() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .plugin("audit", json!({}))?
        .start()?;
    let response = http::send(
        "GET",
        &envoy.url("/echo/me?key=k-SECRET"),
        &[
            ("x-kea-sub", "admin"),
            ("authorization", "Basic YWRtaW46U0VDUkVU"),
            ("user-agent", "e2e"),
        ],
        None,
    )?;
    assert_eq!(response.status, 200);
    let echoed = response.json();
    assert!(
        echoed["headers"].get("x-kea-sub").is_none(),
        "spoofed identity reached the upstream"
    );
    let request_id = echoed["headers"]["x-request-id"].as_str().unwrap().to_string();

    let record = envoy.wait_for_record("url.path", "/echo/me")?;
    assert_eq!(record["http.request.id"], request_id.as_str());
    assert_eq!(record["kea.request.spoofed_identity"], true);
    assert!(record.get("user.id").is_none());
    assert_eq!(record["user_agent.original"], "e2e");
    assert_eq!(record["http.response.status_code"], 200);
    assert_eq!(
        record["http.response.body.bytes"].as_u64().unwrap() as usize,
        response.body.len()
    );
    assert!(!envoy.logs().contains("SECRET"), "a secret reached the proxy log");
    assert_no_wasm_failure(&envoy);
    Ok(())
}

#[test]
fn a_hash_key_from_the_vm_environment_keys_the_markers() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .plugin(
            "audit",
            json!({"headers": {"request": true}, "redact": {"hashKeyEnv": "KEA_AUDIT_HASH_KEY"}}),
        )?
        .plugin_env("KEA_AUDIT_HASH_KEY", "e2e-deployment-key-0123456789")
        .start()?;
    let response = http::send(
        "GET",
        &envoy.url("/keyed?token=abc"),
        &[("authorization", "Bearer abc")],
        None,
    )?;
    assert_eq!(response.status, 200);
    let record = envoy.wait_for_record("url.path", "/keyed")?;
    assert!(
        record["url.query"]
            .as_str()
            .unwrap()
            .starts_with("token=[REDACTED len=3 hmac="),
        "{record}"
    );
    // Without the variable the configuration is refused, naming the field.
    let log = EnvoyBuilder::new(upstream.port)
        .plugin("audit", json!({"redact": {"hashKeyEnv": "KEA_AUDIT_HASH_KEY"}}))?
        .start_expecting_failure()?;
    assert!(
        log.contains("redact.hashKeyEnv: the VM environment has no variable"),
        "{log}"
    );
    Ok(())
}

#[test]
fn envoy_refuses_an_invalid_configuration_and_says_which_field() -> Result<()> {
    let upstream = Upstream::start()?;
    let bad = json!({"sinks": {"http": {"cluster": "c", "format": "clickhouse", "batchSize": 0}}});
    let log = EnvoyBuilder::new(upstream.port)
        .plugin("audit", bad)?
        .start_expecting_failure()?;
    assert!(
        log.contains(&rejected_at("audit", "sinks.http.batchSize: must be at least 1")?),
        "{log}"
    );
    let unknown = json!({"sampling": {"percentage": 5}});
    let log = EnvoyBuilder::new(upstream.port)
        .plugin("audit", unknown)?
        .start_expecting_failure()?;
    assert!(log.contains("unknown field `percentage`"), "{log}");
    Ok(())
}

/// Sends raw bytes and returns the status line.
fn raw_request(port: u16, request: &[u8]) -> Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn hostile_requests_are_recorded_safely() -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .plugin(
            "audit",
            json!({"headers": {"request": true}, "body": {"request": true, "response": true, "contentTypes": ["*/*"], "maxBytes": 1024}}),
        )?
        .start()?;
    let port = envoy.spec.listen_port;

    // Header value bytes that are not UTF-8 (obs-text is legal HTTP).
    let line = raw_request(port, b"GET /raw HTTP/1.1\r\nhost: x\r\nx-bin: \xff\xfe\xc3(\r\nuser-agent: \xe2\x82\r\nconnection: close\r\n\r\n")?;
    assert!(line.contains("200"), "{line}");
    // A 50 KB header.
    let huge = format!(
        "GET /huge HTTP/1.1\r\nhost: x\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(50_000)
    );
    assert!(raw_request(port, huge.as_bytes())?.contains("200"));
    // A body far over the capture cap, and an invalid-UTF-8 body.
    let big = vec![b'z'; 3 * 1024 * 1024];
    let response = http::send(
        "POST",
        &envoy.url("/echo/big"),
        &[("content-type", "application/octet-stream")],
        Some(&big),
    )?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["bodyBytes"], big.len());
    let response = http::send(
        "POST",
        &envoy.url("/echo/bin"),
        &[("content-type", "text/plain")],
        Some(&[0xff, 0x00, 0xc3]),
    )?;
    assert_eq!(response.status, 200);
    // A request line Envoy itself rejects still yields a record, with the status Envoy sent.
    let line = raw_request(port, b"GET /bad\x01path HTTP/1.1\r\nhost: x\r\n\r\n")?;
    assert!(line.contains("400"), "{line}");

    let records = wait_for(Duration::from_secs(10), "records for all requests", || {
        let records = envoy.logged_json();
        let paths: Vec<&str> = records.iter().filter_map(|r| r["url.path"].as_str()).collect();
        ["/raw", "/huge", "/echo/big", "/echo/bin"]
            .iter()
            .all(|p| paths.contains(p))
            .then_some(records)
    })?;
    let find = |path: &str| records.iter().find(|r| r["url.path"] == path).unwrap().clone();
    let raw = find("/raw");
    assert!(
        raw["kea.request.headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == "x-bin: \u{fffd}\u{fffd}\u{fffd}("),
        "{raw}"
    );
    assert_eq!(find("/huge")["http.response.status_code"], 200);
    let big_record = find("/echo/big");
    assert_eq!(big_record["http.request.body.bytes"], big.len());
    assert_eq!(big_record["kea.request.body.truncated"], true);
    assert_eq!(
        big_record["http.request.body.content"].as_str().unwrap().len(),
        1024
    );
    assert_eq!(
        find("/echo/bin")["http.request.body.content"],
        "\u{fffd}\u{0}\u{fffd}"
    );
    assert_no_wasm_failure(&envoy);
    // Still serving.
    assert_eq!(http::get(&envoy.url("/after"))?.status, 200);
    Ok(())
}

/// Sends `n` GETs with request ids `<prefix>-<i>`.
fn send_ids(envoy: &Envoy, prefix: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let response = http::send(
            "GET",
            &envoy.url("/pets/1"),
            &[("x-request-id", &format!("{prefix}-{i}"))],
            None,
        )?;
        assert_eq!(response.status, 200);
    }
    Ok(())
}

#[test]
fn json_lines_and_elastic_bulk_sinks_deliver_every_record() -> Result<()> {
    let collector = Upstream::start()?;
    let upstream = Upstream::start()?;
    for (format, extra) in [
        ("jsonLines", json!({})),
        ("elasticBulk", json!({"index": "audit-e2e"})),
    ] {
        let mut http = json!({"cluster": "collector", "format": format, "path": "/ingest", "batchSize": 25, "flushInterval": "100ms"});
        if let (Some(base), Some(extra)) = (http.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        let envoy = EnvoyBuilder::new(upstream.port)
            .concurrency(2)
            .cluster("collector", collector.port)
            .plugin(
                "audit",
                json!({"sinks": {"log": {"enabled": false}, "http": http}}),
            )?
            .start()?;
        send_ids(&envoy, format, 200)?;
        let mine = || -> Vec<Value> {
            let prefix = format!("{format}-");
            collector
                .ingested()
                .into_iter()
                .filter(|d| {
                    d["http.request.id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with(&prefix))
                })
                .collect()
        };
        wait_for(Duration::from_secs(20), "records at the collector", || {
            (mine().len() >= 200).then_some(())
        })
        .with_context(|| format!("{format}: {} records; {}", mine().len(), audit_stats(&envoy)))?;
        std::thread::sleep(Duration::from_millis(300));
        let documents = mine();
        assert_eq!(documents.len(), 200, "{format}: every record exactly once");
        let mut ids: Vec<&str> = documents
            .iter()
            .filter_map(|d| d["http.request.id"].as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 200);
        if format == "elasticBulk" {
            assert!(
                documents.iter().all(|d| d["_index"] == "audit-e2e"),
                "every document under its bulk action"
            );
        }
        assert_eq!(envoy.stat("wasmcustom.kea_audit_records_sent_total"), Some(200));
        assert_eq!(envoy.stat("wasmcustom.kea_audit_send_failures_total"), Some(0));
        // The same counters in Prometheus form, as a scraper sees them.
        let prometheus = http::get(&envoy.admin_url("/stats/prometheus"))?.body;
        assert!(
            prometheus.contains("\nkea_audit_records_sent_total{} 200\n"),
            "{prometheus}"
        );
        assert_no_wasm_failure(&envoy);
    }
    Ok(())
}

#[test]
fn a_log_store_that_resets_connections_and_clients_that_hang_up_do_not_break_the_vm() -> Result<()> {
    // A "log store" that accepts connections and closes them without answering.
    let resetter = std::net::TcpListener::bind("127.0.0.1:0")?;
    let resetter_port = resetter.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in resetter.incoming().flatten() {
            drop(stream);
        }
    });
    let upstream = Upstream::start()?;
    let sink = json!({"cluster": "resetter", "format": "jsonLines", "batchSize": 5, "flushInterval": "100ms",
                      "maxRetries": 1, "initialBackoff": "100ms"});
    let envoy = EnvoyBuilder::new(upstream.port)
        .cluster("resetter", resetter_port)
        .plugin("audit", json!({"sinks": {"http": sink}}))?
        .start()?;
    send_ids(&envoy, "reset", 20)?;
    wait_for(Duration::from_secs(20), "failed sends to be counted", || {
        (envoy.stat("wasmcustom.kea_audit_send_failures_total")? >= 2).then_some(())
    })
    .with_context(|| audit_stats(&envoy))?;

    // Clients that hang up before the response: the exchange ends without response headers.
    for _ in 0..5 {
        let mut stream = TcpStream::connect(("127.0.0.1", envoy.spec.listen_port))?;
        stream.write_all(b"GET /delay/300 HTTP/1.1\r\nhost: x\r\nx-request-id: hung-up\r\n\r\n")?;
        drop(stream);
    }
    std::thread::sleep(Duration::from_millis(600));
    let record = envoy.wait_for_record("http.request.id", "hung-up")?;
    assert_ne!(record["http.response.status_code"], 200, "{record}");

    // The VM is alive: requests are still answered and still audited.
    send_ids(&envoy, "after", 5)?;
    envoy.wait_for_record("http.request.id", "after-4")?;
    assert_no_wasm_failure(&envoy);
    let emitted = envoy.stat("wasmcustom.kea_audit_records_total").unwrap();
    assert!(emitted >= 30, "{}", audit_stats(&envoy));
    Ok(())
}
