//! Randomised hostile input through the whole audit flow: arbitrary header bytes, paths, queries,
//! bodies and configurations of capture. Nothing may panic (a panic would trap the VM), every
//! record must be valid JSON, and a secret must never appear in it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use kea_audit::{AuditRoot, AuditStream, LogOutcome};
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, HeaderMap};
use serde_json::json;

/// xorshift64*: a tiny deterministic generator, so a failure is reproducible by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const SECRET: &str = "S3CRET-VALUE-42";

#[test]
fn random_requests_never_panic_and_never_leak() {
    let configs = [
        json!({}),
        json!({"headers": {"request": true, "response": true}}),
        json!({"headers": {"request": true, "response": true},
               "body": {"request": true, "response": true, "contentTypes": ["*/*"], "maxBytes": 64},
               "redact": {"requestBodyPointers": ["/password", "/*/token"], "responseBodyPointers": ["/token"]}}),
        json!({"sampling": {"percent": 37.5}, "rules": [{"match": {"pathTemplate": "/a/{x}"}, "skip": true}]}),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for seed in 0..4000 {
        let config = &configs[seed % configs.len()];
        let mut root = AuditRoot::new();
        let host = MockHost::new();
        root.configure(&host, config.to_string().as_bytes()).unwrap();
        let runtime = root.runtime().unwrap();

        let path = match rng.below(4) {
            0 => rng.bytes(40),
            1 => format!("/a/{}?access_token={SECRET}&x=%ZZ&&=&key", rng.next()).into_bytes(),
            2 => format!("/p?{}", String::from_utf8_lossy(&rng.bytes(30))).into_bytes(),
            _ => b"/".to_vec(),
        };
        let host =
            MockHost::new().with_request(rng.pick(&["GET", "POST", "", "PURGE", "g\u{e9}t"]), "/", &[]);
        host.set_raw_header(HeaderMap::RequestHeaders, ":path", &path);
        host.set_raw_header(HeaderMap::RequestHeaders, ":authority", &rng.bytes(20));
        host.set_raw_header(
            HeaderMap::RequestHeaders,
            "authorization",
            format!("Bearer {SECRET}").as_bytes(),
        );
        host.set_raw_header(
            HeaderMap::RequestHeaders,
            "cookie",
            format!("sid={SECRET}").as_bytes(),
        );
        for _ in 0..rng.below(6) {
            let name = rng.pick(&[
                "x-a",
                "x-kea-sub",
                "content-type",
                "user-agent",
                "x-request-id",
                "x-kea-session",
            ]);
            host.set_raw_header(HeaderMap::RequestHeaders, name, &rng.bytes(30));
        }
        if rng.below(2) == 0 {
            host.set_raw_header(HeaderMap::RequestHeaders, "content-type", b"application/json");
        }
        host.set_property(&["source", "address"], &rng.bytes(25));
        let mut stream = AuditStream::new();
        if rng.below(10) > 0 {
            stream.on_request_headers(&host, &runtime.config);
        }
        let body = match rng.below(3) {
            0 => format!(r#"{{"password":"{SECRET}","a":{{"token":"{SECRET}"}}}}"#).into_bytes(),
            1 => rng.bytes(200),
            _ => vec![],
        };
        if !body.is_empty() {
            host.set_body(Buffer::RequestBody, &body);
            stream.on_request_body(&host, body.len());
            stream.on_request_body(&host, rng.below(100));
        }
        match rng.below(3) {
            0 => host.set_response(rng.below(600) as u16, &[("content-type", "application/json")]),
            1 => host.set_raw_header(HeaderMap::ResponseHeaders, ":status", &rng.bytes(5)),
            _ => {}
        }
        host.set_raw_header(
            HeaderMap::ResponseHeaders,
            "set-cookie",
            format!("t={SECRET}").as_bytes(),
        );
        stream.on_response_headers(&host);
        let response = format!(r#"{{"token":"{SECRET}"}}"#);
        host.set_body(Buffer::ResponseBody, response.as_bytes());
        stream.on_response_body(&host, response.len());

        if let LogOutcome::Record(line) = stream.on_log(&host, &runtime.config) {
            let parsed: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {line}"));
            assert!(parsed.is_object());
            assert!(!line.contains(SECRET), "seed {seed} leaked a secret: {line}");
            runtime.emit(&host, LogOutcome::Record(line));
        }
    }
}
