//! The audit plugin's whole request flow (`AuditStream`, then the root's emit to the log and the
//! HTTP sink's batch) through `MockHost`, under a fixed configuration compiled once: headers and
//! JSON bodies captured, extra secret headers and query parameters, body pointers, a keyed
//! marker, a rule that skips health checks, an Elasticsearch `_bulk` sink.
//!
//! The harness plants known secrets (an `Authorization` token, an API key, a session cookie, an
//! `access_token` parameter, a `password` body member) at positions the configuration redacts.
//!
//! Property: no panic; every record is one line of JSON holding an object; no planted secret
//! appears in a record (unless the fuzzer wrote the same text somewhere unredacted itself).
#![no_main]

use arbitrary::Arbitrary;
use kea_audit::{AuditRoot, AuditStream, LogOutcome};
use kea_fuzz::{FuzzRequest, FuzzResponse};
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, HeaderMap, Host};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const SECRET: &str = "kea-fuzz-secret-7f3a9c";

thread_local! {
    static ROOT: (MockHost, AuditRoot) = {
        let host = MockHost::new();
        let config = serde_json::json!({
            "rules": [{"match": {"pathPrefix": "/health"}, "skip": true}],
            "headers": {"request": true, "response": true},
            "body": {"request": true, "response": true, "contentTypes": ["application/json", "application/*+json"], "maxBytes": "2KiB"},
            "redact": {"headers": ["x-secret"], "queryParams": ["session"],
                       "requestBodyPointers": ["/password", "/items/*/token"], "responseBodyPointers": ["/access_token"],
                       "hashKey": "a-deployment-key-0123"},
            "sinks": {"http": {"cluster": "es", "format": "elasticBulk", "index": "audit"}}
        });
        let mut root = AuditRoot::new();
        root.configure(&host, config.to_string().as_bytes()).unwrap();
        (host, root)
    };
}

#[derive(Debug, Arbitrary)]
struct Input {
    plant: u8,
    request: FuzzRequest,
    response: FuzzResponse,
}

/// Every byte the fuzzer chose, to tell a leak from the fuzzer writing the secret itself.
fn fuzz_bytes(input: &Input) -> Vec<u8> {
    let mut all = Vec::new();
    let request = &input.request;
    all.extend_from_slice(request.path.as_bytes());
    all.extend_from_slice(request.method().as_bytes());
    all.extend_from_slice(&request.body);
    for header in request.headers.iter().chain(&input.response.headers) {
        all.extend_from_slice(header.name.as_bytes());
        all.push(0);
        all.extend_from_slice(&header.value);
        all.push(0);
    }
    all.extend_from_slice(&input.response.body);
    all
}

fuzz_target!(|input: Input| {
    ROOT.with(|(root_host, root)| {
        let mut request = input.request.clone();
        let planted = input.plant % 6;
        match planted {
            1 => {
                // A parameter of its own: after `?`, or after `&` when the path has a query.
                let separator = if request.path.contains('?') { '&' } else { '?' };
                request.path = format!("{}{separator}access_token={SECRET}", request.path);
            }
            5 => {
                if let Ok(serde_json::Value::Object(mut body)) = serde_json::from_slice(&request.body) {
                    body.insert("password".into(), SECRET.into());
                    request.body = serde_json::to_vec(&body).unwrap();
                } else {
                    request.body = format!(r#"{{"password":"{SECRET}"}}"#).into_bytes();
                }
            }
            _ => {}
        }
        let fuzz_text = fuzz_bytes(&input);
        let host = request.host(Some(root_host.shared()));
        match planted {
            2 => host.set_header(
                HeaderMap::RequestHeaders,
                "authorization",
                Some(format!("Bearer {SECRET}").as_bytes()),
            ),
            3 => host.set_header(HeaderMap::RequestHeaders, "x-api-key", Some(SECRET.as_bytes())),
            4 => host.set_header(
                HeaderMap::RequestHeaders,
                "cookie",
                Some(format!("s={SECRET}").as_bytes()),
            ),
            5 => host.set_header(
                HeaderMap::RequestHeaders,
                "content-type",
                Some(b"application/json"),
            ),
            _ => {}
        }
        let runtime = root.runtime().unwrap();
        let mut stream = AuditStream::new();
        stream.on_request_headers(&host, &runtime.config);
        if !request.body.is_empty() {
            stream.on_request_body(&host, request.body.len());
        }
        let headers = input.response.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        host.set_response(input.response.status(), &headers);
        stream.on_response_headers(&host);
        if !input.response.body.is_empty() {
            host.set_body(Buffer::ResponseBody, &input.response.body);
            stream.on_response_body(&host, input.response.body.len());
        }
        host.advance(Duration::from_millis(3));
        let outcome = stream.on_log(&host, &runtime.config);
        if let LogOutcome::Record(line) = &outcome {
            assert!(!line.contains('\n'), "{line}");
            let record: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(record.is_object());
            if planted != 0 && !fuzz_text.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
                assert!(!line.contains(SECRET), "planted secret {planted} leaked: {line}");
            }
        }
        runtime.emit(&host, outcome);
        // Drain what was queued for the sink, so the proxy's queue does not grow across inputs.
        if let Some(queue) = root.queue_id() {
            while let Ok(Some(_)) = host.dequeue(queue) {}
        }
    });
});
