//! End-to-end: real Envoy with `dist/validate.wasm` enforcing a document the size of the large
//! real APIs (500 operations over 500 schemas that refer to each other, like Stripe's): it
//! configures in seconds with bounded VM memory, on every worker, and checks requests as usual.

use anyhow::{Context, Result};
use kea_e2e::envoy::EnvoyBuilder;
use kea_e2e::http;
use kea_e2e::openapi::interlinked_document;
use kea_e2e::upstream::Upstream;
use serde_json::{json, Value};

/// The issue's goal is < 2 s per worker (bench/README.md has the measurement, ~0.85 s on an idle
/// machine); the bound here leaves room for a CI machine running other suites, and still fails
/// the copy-per-operation compilation this replaced (out of memory, Envoy refusing the config).
const CONFIGURE_MS_BOUND: i64 = 10_000;
/// The issue's goal: < 100 MB of VM memory.
const VM_MEMORY_GOAL: i64 = 100 * 1024 * 1024;

#[test]
fn a_stripe_size_document_configures_in_seconds_and_checks_requests() -> Result<()> {
    let document = interlinked_document(500, 500);
    let bundle = kea_schema::compile_document("interlinked.json", &serde_json::to_vec(&document)?)?;
    assert_eq!(bundle.operations.len(), 500);
    let bundle: Value = serde_json::from_slice(&bundle.to_json())?;
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .plugin(
            "validate",
            json!({"apis": [{"name": "interlinked", "bundle": bundle}]}),
        )?
        .start()?;
    let configure_ms = envoy
        .stat("wasmcustom.kea_validate_configure_ms")
        .context("the configure time gauge")?;
    let memory = envoy
        .stat("wasmcustom.kea_validate_vm_memory_bytes")
        .context("the VM memory gauge")?;
    eprintln!(
        "configured in {configure_ms} ms, VM memory {} MiB",
        memory / (1024 * 1024)
    );
    assert!(
        configure_ms < CONFIGURE_MS_BOUND,
        "configured in {configure_ms} ms"
    );
    assert!(memory > 0 && memory < VM_MEMORY_GOAL, "VM memory {memory} bytes");

    // A valid object three references deep passes, on both workers' connections.
    let valid = json!({"id": "a", "amount": 1, "next": {"id": "b", "next": {"id": "c", "amount": 3}},
        "items": [{"id": "d", "other": {"id": "e"}}], "metadata": {"k": "v"}});
    for _ in 0..4 {
        let passed = http::send(
            "POST",
            &envoy.url("/r499/obj_1?limit=10"),
            &[("content-type", "application/json")],
            Some(valid.to_string().as_bytes()),
        )?;
        assert_eq!(passed.status, 200, "{}", passed.body);
    }
    let reached = upstream.hits();

    // An error inside a shared definition, reached through references from another operation,
    // is reported where it is in the body.
    let invalid = json!({"id": "a", "next": {"id": "b", "next": {"id": "c", "amount": -1}},
        "items": [{"id": 7}]});
    let refused = http::send(
        "POST",
        &envoy.url("/r12/obj_1"),
        &[("content-type", "application/json")],
        Some(invalid.to_string().as_bytes()),
    )?;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let mut pointers: Vec<String> = refused.json()["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["pointer"].as_str().map(str::to_string))
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/items/0/id", "/next/next/amount"], "{}", refused.body);

    // Parameters and form bodies of the same document.
    for (path, content_type, body) in [
        ("/r3/NOT-LOWER", "application/json", r#"{"id": "a"}"#),
        ("/r3/ok?limit=0", "application/json", r#"{"id": "a"}"#),
        ("/r3/ok", "application/x-www-form-urlencoded", "id=a&amount=many"),
        ("/r3/ok", "application/json", r#"{"amount": 1}"#),
    ] {
        let refused = http::send(
            "POST",
            &envoy.url(path),
            &[("content-type", content_type)],
            Some(body.as_bytes()),
        )?;
        assert_eq!(refused.status, 400, "{path} {body}: {}", refused.body);
    }
    let form = http::send(
        "POST",
        &envoy.url("/r3/ok"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(b"id=a&amount=5"),
    )?;
    assert_eq!(form.status, 200, "{}", form.body);
    assert_eq!(
        upstream.hits(),
        reached + 1,
        "only the valid form reached the upstream"
    );
    Ok(())
}
