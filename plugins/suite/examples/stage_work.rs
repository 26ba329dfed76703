//! What the suite's stages cost per request by their own work, without a proxy: the benchmark's
//! suite (audit with defaults, auth with a cached token, validate checking the path, cache per
//! user) run through one `Chain` on a `MockHost`, in a loop, for a miss (the origin says
//! `no-store`) and a hit, and each stage alone on the miss. `bench/stage-work.sh` runs it
//! natively and built for wasm32-wasip1 in Node's V8 (the engine Envoy embeds); what the host
//! calls and callbacks cost is measured in Envoy by the bench's probe rows (bench/README.md,
//! "Where a suite miss goes"). The mock's own bookkeeping for each host call is in the time, so
//! it is an upper bound of the stages' work.
//!
//! Usage: `stage_work [requests per row]` (default 20,000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jwt_simple::prelude::*;
use kea_plugin_sdk::mock::{MockHost, SharedState};
use kea_plugin_sdk::{Buffer, CachingHost, Chain, Flow, Stages};
use serde_json::{json, Value};
use std::rc::Rc;
use std::time::{Duration as Elapsed, Instant};

const SECRET: &str = "0123456789abcdef0123456789abcdef-hs";
const SECRET_ENV: &str = "KEA_STAGE_WORK_HMAC";
const BODY: &[u8] = br#"{"id": 1, "name": "rex", "tag": "dog"}"#;
const MISS: (&str, &str) = ("/cacheable/bench?cc=no-store", "no-store");
const HIT: (&str, &str) = ("/cacheable/bench", "public, max-age=60");

/// The module configuration with these sections, as `kea-bench` configures the suite.
fn configuration(sections: &[&str]) -> Vec<u8> {
    let document = json!({"openapi": "3.0.3", "info": {"title": "pets", "version": "1"}, "paths": {
        "/cacheable/{name}": {"get": {
            "parameters": [
                {"name": "name", "in": "path", "required": true, "schema": {"type": "string", "maxLength": 64}},
                {"name": "cc", "in": "query", "schema": {"type": "string", "enum": ["no-store"]}}],
            "responses": {"200": {"description": "a cacheable document"}}}}}});
    let section = |name: &str| match name {
        "auth" => json!({"providers": [{"name": "internal", "issuer": "internal", "audiences": ["pets"],
            "algorithms": ["HS256"], "hmacSecretEnv": SECRET_ENV}]}),
        "validate" => json!({"apis": [{"name": "pets", "document": document}]}),
        "cache" => json!({"rules": [{"settings": {"perUser": true, "defaultTtl": "60s"}}]}),
        _ => json!({}),
    };
    let sections: serde_json::Map<String, Value> = sections
        .iter()
        .map(|name| (name.to_string(), section(name)))
        .collect();
    Value::Object(sections).to_string().into_bytes()
}

/// A request as Envoy hands it to the module (with an `x-request-id`), answered with `cache_control`.
fn request(shared: &Rc<SharedState>, bearer: &str, path: &str, cache_control: &str) -> CachingHost<MockHost> {
    let mock = MockHost::sharing_with(Rc::clone(shared)).with_request(
        "GET",
        path,
        &[
            ("authorization", bearer),
            ("accept", "application/json"),
            ("user-agent", "wrk"),
            ("x-request-id", "0b7d1f3e-1111-4222-8333-444455556666"),
        ],
    );
    mock.set_property(&["xds", "route_name"], b"pets");
    mock.set_now(std::time::SystemTime::now());
    mock.set_response(
        200,
        &[
            ("content-type", "application/json"),
            ("cache-control", cache_control),
        ],
    );
    mock.set_body(Buffer::ResponseBody, BODY);
    CachingHost::new(mock)
}

/// One request through every stage's stream, each callback entered as the proxy enters the VM.
fn exchange(host: &CachingHost<MockHost>, stages: &Stages<CachingHost<MockHost>>) {
    let mut chain = Chain::new(stages.iter().filter_map(|s| s.new_stream()).collect());
    host.begin();
    if chain.on_request_headers(host, true) == Flow::Continue {
        host.begin();
        chain.on_response_headers(host, false);
        host.begin();
        chain.on_response_body(host, BODY.len(), true);
    }
    host.begin();
    chain.on_log(host);
    host.begin();
    chain.on_done(host);
}

/// The stages' time per request, without building each request's mock.
fn per_request(sections: &[&str], (path, cache_control): (&str, &str), requests: u32) -> Elapsed {
    let claims = Claims::create(Duration::from_mins(10))
        .with_issuer("internal")
        .with_audience("pets")
        .with_subject("alice");
    let token = HS256Key::from_bytes(SECRET.as_bytes())
        .authenticate(claims)
        .unwrap();
    let bearer = format!("Bearer {token}");
    let shared = Rc::new(SharedState::default());
    let mut stages = kea_suite::stages();
    let first = request(&shared, &bearer, path, cache_control);
    kea_suite::configure(&mut stages, &first, &configuration(sections)).unwrap();
    // The steady state: the token verified and cached, a hit's response stored.
    exchange(&first, &stages);
    let mut spent = Elapsed::ZERO;
    for _ in 0..requests {
        let host = request(&shared, &bearer, path, cache_control);
        let start = Instant::now();
        exchange(&host, &stages);
        spent += start.elapsed();
    }
    spent / requests.max(1)
}

fn main() {
    std::env::set_var(SECRET_ENV, SECRET);
    let requests = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let suite = ["audit", "auth", "validate", "cache"];
    let mut rows: Vec<(String, Elapsed)> = suite
        .iter()
        .map(|stage| {
            (
                format!("{stage} alone, miss"),
                per_request(&[stage], MISS, requests),
            )
        })
        .collect();
    rows.push(("suite, miss".into(), per_request(&suite, MISS, requests)));
    rows.push(("suite, hit".into(), per_request(&suite, HIT, requests)));
    for (row, time) in rows {
        println!("{row:<20} {:>7.1} µs per request", time.as_secs_f64() * 1e6);
    }
}
