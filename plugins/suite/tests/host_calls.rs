//! Host calls per request: each is one crossing of the proxy-wasm boundary (`ProxyHost` maps
//! every `Host` method to one host call), the cost a plugin pays beyond a trivial filter. The
//! counts are asserted exactly, per plugin and for the whole suite in one module, so they
//! cannot grow unnoticed; bench/README.md ("One module") has the numbers before and after.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use jwt_simple::prelude::*;
use kea_plugin_sdk::mock::MockHost;
use kea_plugin_sdk::{Buffer, CachingHost, Chain, Flow, Host, Stages};
use kea_trivial::{Probe, ProbeKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::rc::Rc;

const SECRET: &str = "0123456789abcdef0123456789abcdef-hs";
const BODY: &[u8] = br#"{"id": 1, "name": "rex", "tag": "dog"}"#;

fn document() -> Value {
    json!({"openapi": "3.0.3", "info": {"title": "pets", "version": "1"}, "paths": {
        "/pets/{petId}": {"get": {
            "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "integer"}}],
            "responses": {"200": {"description": "a pet"}}}}}})
}

/// Each plugin configured as a gateway would run it.
fn section(name: &str) -> Value {
    match name {
        "audit" => json!({}),
        "auth" => json!({"providers": [{"name": "internal", "issuer": "internal", "audiences": ["pets"],
            "algorithms": ["HS256"], "hmacSecretEnv": "KEA_HOST_CALLS_HMAC"}]}),
        "validate" => json!({"apis": [{"name": "pets", "document": document()}]}),
        "cache" => json!({"rules": [{"settings": {"perUser": true}}]}),
        _ => Value::Null,
    }
}

fn stages<H: Host>(host: &H, sections: &[&str]) -> Stages<H> {
    std::env::set_var("KEA_HOST_CALLS_HMAC", SECRET);
    let config: serde_json::Map<String, Value> = sections
        .iter()
        .map(|name| (name.to_string(), section(name)))
        .collect();
    let mut stages = kea_suite::stages::<H>();
    kea_suite::configure(&mut stages, host, Value::Object(config).to_string().as_bytes()).unwrap();
    stages
}

fn token() -> String {
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("internal")
        .with_audience("pets")
        .with_subject("alice");
    HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims)
        .unwrap()
}

/// A GET with a bearer token.
fn request_host() -> MockHost {
    request_on(MockHost::new(), &[])
}

/// [`request_host`] on `proxy` (e.g. one sharing data with an earlier request's), with `extra`
/// headers besides.
fn request_on(proxy: MockHost, extra: &[(&str, &str)]) -> MockHost {
    let bearer = format!("Bearer {}", token());
    let mut headers = vec![
        (":authority", "api.example.com"),
        ("authorization", bearer.as_str()),
        ("accept", "application/json"),
        ("user-agent", "curl/8.5.0"),
    ];
    headers.extend_from_slice(extra);
    let host = proxy.with_request("GET", "/pets/1", &headers);
    host.set_now(std::time::SystemTime::now());
    host
}

/// The response of an exchange: 200 with these headers, and this body if any.
struct Response<'a> {
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
}

/// A cacheable JSON document.
const CACHEABLE: Response = Response {
    headers: &[
        ("content-type", "application/json"),
        ("cache-control", "public, max-age=60"),
        ("content-length", "38"),
    ],
    body: Some(BODY),
};

/// One request through `stages` on `host` (whose proxy is `mock`; `begin` runs where the proxy
/// enters the VM), answered with `response`: the host calls it made, by method.
fn exchange<H: Host>(
    host: &H,
    mock: &MockHost,
    begin: fn(&H),
    stages: &Stages<H>,
    response: &Response,
) -> BTreeMap<&'static str, u32> {
    mock.take_host_calls();
    let mut chain = Chain::new(stages.iter().filter_map(|s| s.new_stream()).collect());
    begin(host);
    assert_eq!(
        chain.on_request_headers(host, true),
        Flow::Continue,
        "{:?}",
        mock.replies()
    );
    mock.set_response(200, response.headers);
    begin(host);
    assert_eq!(
        chain.on_response_headers(host, response.body.is_none()),
        Flow::Continue
    );
    if let Some(body) = response.body {
        mock.set_body(Buffer::ResponseBody, body);
        begin(host);
        assert_eq!(chain.on_response_body(host, body.len(), true), Flow::Continue);
    }
    begin(host);
    chain.on_log(host);
    begin(host);
    chain.on_done(host);
    mock.take_host_calls()
}

/// [`exchange`] of the cacheable document through `sections` configured as a gateway runs them:
/// the host calls by method, in all, and the counters the proxy holds afterwards.
fn one_request<H: Host>(
    host: &H,
    mock: &MockHost,
    begin: fn(&H),
    sections: &[&str],
) -> (BTreeMap<&'static str, u32>, u32, BTreeMap<String, i64>) {
    let stages = stages(host, sections);
    let calls = exchange(host, mock, begin, &stages, &CACHEABLE);
    let total = calls.values().sum();
    (calls, total, mock.metrics())
}

#[test]
fn host_calls_per_request() {
    let mut report = String::new();
    let mut totals = BTreeMap::new();
    for sections in [
        &["audit"][..],
        &["auth"],
        &["validate"],
        &["cache"],
        &["audit", "auth", "validate", "cache"],
    ] {
        // Every stage straight on the proxy (as before one module), and through the module's
        // host, which shares each header map read and the clock within a callback and batches
        // the counters.
        let mock = request_host();
        let (calls, direct, metrics) = one_request(&mock, &mock, |_| {}, sections);
        report.push_str(&format!("{} direct: {direct} {calls:?}\n", sections.join("+")));
        let host = CachingHost::new(request_host());
        let (calls, shared, unflushed) = one_request(&host, host.inner(), CachingHost::begin, sections);
        report.push_str(&format!("{} module: {shared} {calls:?}\n", sections.join("+")));
        // The module's counters wait for the root tick's flush, then read as the direct ones.
        assert!(unflushed.values().all(|v| *v == 0), "{unflushed:?}");
        host.flush_metrics();
        assert_eq!(host.inner().metrics(), metrics, "{}", sections.join("+"));
        assert!(metrics.values().any(|v| *v > 0), "{metrics:?}");
        totals.insert(sections.join("+"), (direct, shared));
    }
    println!("{report}");
    let expected: BTreeMap<String, (u32, u32)> = [
        // Through the module's host (every KEA module, one plugin or all): no counter crossings
        // (flushed on the root tick) and one clock read per callback.
        ("audit", (12, 11)),
        ("auth", (7, 5)),
        ("validate", (5, 4)),
        ("cache", (5, 4)),
        // More than the sum: behind auth the cache stores the per-user response.
        ("audit+auth+validate+cache", (47, 31)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(totals, expected, "host calls per request changed:\n{report}");
}

/// A plugin whose configuration lets no request reach a rule that acts reads nothing of the
/// request: each header read costs 3-9 µs, a fifth to a third of a whole trivial filter
/// (bench/README.md, "What a host call costs").
#[test]
fn floors_read_nothing_they_do_not_need() {
    for (name, section, expected) in [
        // `x-kea-cache: BYPASS`, and `Surrogate-Control` removed unread.
        ("cache", json!({"rules": [{"settings": {"enabled": false}}]}), 2),
        // `x-kea-validation: skipped`.
        (
            "validate",
            json!({"apis": [{"name": "pets", "document": document()}], "defaults": {"mode": "off"}}),
            1,
        ),
    ] {
        let host = CachingHost::new(request_host());
        let mut stages = kea_suite::stages();
        let config = json!({ name: section }).to_string();
        kea_suite::configure(&mut stages, &host, config.as_bytes()).unwrap();
        let response = Response {
            headers: &[("content-type", "application/json")],
            body: None,
        };
        let calls = exchange(&host, host.inner(), CachingHost::begin, &stages, &response);
        assert_eq!(
            calls.keys().copied().collect::<Vec<_>>(),
            ["set_header"],
            "{name}: {calls:?}"
        );
        assert_eq!(calls.values().sum::<u32>(), expected, "{name}: {calls:?}");
    }
}

/// The suite miss of the benchmark as Envoy sends it, in the steady state (a request before it
/// for the same path): Envoy's connection manager has given the request an `x-request-id`, the
/// route has a name, the origin says `no-store`. Through `kea.wasm`, these are the calls
/// `kea-bench`'s "probe: trivial + a suite miss's 18 host calls" row makes without the suite's
/// work (`kea_trivial::SUITE_MISS_HOST_CALLS`).
#[test]
fn suite_miss_as_envoy_sends_it() {
    let shared = MockHost::new().shared();
    let as_envoy_sends_it = || {
        let mock = request_on(
            MockHost::sharing_with(Rc::clone(&shared)),
            &[("x-request-id", "0b7d1f3e-1111-4222-8333-444455556666")],
        );
        mock.set_property(&["xds", "route_name"], b"pets");
        CachingHost::new(mock)
    };
    let no_store = Response {
        headers: &[
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
            ("content-length", "38"),
        ],
        body: Some(BODY),
    };
    let first = as_envoy_sends_it();
    let stages = stages(&first, &["audit", "auth", "validate", "cache"]);
    exchange(&first, first.inner(), CachingHost::begin, &stages, &no_store);
    let host = as_envoy_sends_it();
    let calls = exchange(&host, host.inner(), CachingHost::begin, &stages, &no_store);
    // The bench's probe of these calls, by the `Host` method each kind stands for.
    let mut expected = BTreeMap::new();
    for probe in Probe::parse(kea_trivial::SUITE_MISS_HOST_CALLS).unwrap() {
        let method = match probe.kind {
            ProbeKind::RequestHeaders | ProbeKind::ResponseHeaders => "headers",
            ProbeKind::Header => "header",
            ProbeKind::Clock => "now",
            ProbeKind::Property => "property",
            ProbeKind::SetHeader => "set_header",
            ProbeKind::Log => "log",
            ProbeKind::SharedData => "shared_data",
        };
        *expected.entry(method).or_insert(0) += probe.count;
    }
    assert_eq!(calls, expected, "{calls:?}");
}
