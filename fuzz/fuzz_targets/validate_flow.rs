//! The validate plugin's whole request flow (`ValidateStream`) through `MockHost`, under a fixed
//! configuration compiled once: two real APIs from the schema crate's test data (`edge`:
//! templates, `{name}.{ext}` segments, shared `$ref`s; `stripe-like`: form bodies, deepObject
//! query parameters), enforced, with response validation on. Fuzzed method, path (often under a
//! declared route), headers (content types, parameters), request body, and the upstream response.
//!
//! Property: no panic; every request ends in continue or a local reply with a valid status
//! (200..=599) whose body is `application/problem+json` JSON; a request answered locally sent
//! exactly one reply, a request that continued sent none.
#![no_main]

use arbitrary::Arbitrary;
use kea_fuzz::{assert_valid_replies, FuzzRequest, FuzzResponse};
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::Buffer;
use kea_schema::{Bundle, Sources};
use kea_validate::plugin::{configure, Runtime};
use kea_validate::stream::{Action, ValidateStream};
use libfuzzer_sys::fuzz_target;
use std::rc::Rc;

const PREFIXES: &[&str] = &[
    "",
    "/api/items",
    "/api/items/",
    "/api/pets",
    "/api/trees",
    "/api/files/",
    "/v1/customers",
    "/v1/customers/",
    "/v1/payment_intents",
    "/v1/checkout/sessions",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/merge-patch+json",
    "multipart/form-data; boundary=x",
];

fn bundle(files: &[(&str, &str)]) -> serde_json::Value {
    let sources = Sources::load(files[0].0, |name| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, text)| text.as_bytes().to_vec())
            .ok_or_else(|| format!("no {name}"))
    })
    .unwrap();
    serde_json::from_slice(&Bundle::compile(&sources).unwrap().to_json()).unwrap()
}

struct Proxy {
    root: MockHost,
    runtime: Rc<Runtime>,
}

thread_local! {
    static PROXY: Proxy = {
        let edge = bundle(&[
            ("api.yaml", include_str!("../../schema/tests/data/edge/api.yaml")),
            ("common.yaml", include_str!("../../schema/tests/data/edge/common.yaml")),
        ]);
        let stripe = bundle(&[("api.yaml", include_str!("../../schema/tests/data/stripe-like/api.yaml"))]);
        let config = serde_json::json!({
            "apis": [{"name": "edge", "bundle": edge}, {"name": "stripe", "bundle": stripe}],
            "defaults": {"api": "edge", "mode": "enforce", "responses": true, "maxBodyBytes": "16KiB"},
            "rules": [{"match": {"pathPrefix": "/v1"}, "api": "stripe", "responses": true}]
        });
        let root = MockHost::new();
        let runtime = configure(&root, config.to_string().as_bytes()).unwrap();
        Proxy { root, runtime }
    };
}

#[derive(Debug, Arbitrary)]
struct Input {
    prefix: u8,
    content_type: Option<u8>,
    request: FuzzRequest,
    response: FuzzResponse,
    response_content_type: Option<u8>,
}

fuzz_target!(|input: Input| {
    PROXY.with(|proxy| {
        let mut request = input.request.clone();
        request.path = format!(
            "{}{}",
            PREFIXES[usize::from(input.prefix) % PREFIXES.len()],
            request.path
        );
        if let Some(ct) = input.content_type {
            request.headers.insert(
                0,
                kea_fuzz::FuzzHeader {
                    known: None,
                    name: "content-type".into(),
                    value: CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()]
                        .as_bytes()
                        .to_vec(),
                },
            );
        }
        let host = request.host(Some(proxy.root.shared()));
        let runtime = &proxy.runtime;
        let mut stream = ValidateStream::new();
        let body = &request.body;
        let mut action = stream.on_request_headers(&host, runtime, body.is_empty());
        if action == Action::Wait && !body.is_empty() {
            let (first, rest) = body.split_at(body.len() / 2);
            host.set_body(Buffer::RequestBody, first);
            action = stream.on_request_body(&host, runtime, first.len(), false);
            if action == Action::Wait {
                host.set_body(Buffer::RequestBody, body);
                action = stream.on_request_body(&host, runtime, rest.len(), true);
            }
        }
        if action == Action::Wait {
            action = stream.on_request_trailers(&host, runtime);
        }
        let replies = host.replies();
        assert_valid_replies(&replies);
        match action {
            Action::Answered => {
                assert_eq!(replies.len(), 1, "{replies:?}");
                assert!(replies[0].json().is_object(), "{replies:?}");
            }
            Action::Continue => {
                assert!(replies.is_empty(), "{replies:?}");
                let response = &input.response;
                let mut headers = response.headers();
                if let Some(ct) = input.response_content_type {
                    headers.insert(
                        0,
                        (
                            "content-type".into(),
                            CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()].into(),
                        ),
                    );
                }
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                host.set_response(response.status(), &headers);
                let body = &response.body;
                let action = stream.on_response_headers(&host, runtime, body.is_empty());
                if action == Action::Wait && !body.is_empty() {
                    host.set_body(Buffer::ResponseBody, body);
                    let _ = stream.on_response_body(&host, runtime, body.len(), true);
                }
                assert_valid_replies(&host.replies());
            }
            Action::Wait => panic!("still waiting after the whole request"),
        }
    });
});
