//! schemathesis (PyPI) fuzzes real Envoy with `dist/validate.wasm` from OpenAPI documents: every
//! valid request it generates must pass the gateway, and every invalid one must be rejected with
//! a 4xx problem+json without reaching the upstream.

use anyhow::{Context, Result};
use kea_e2e::envoy::{Envoy, EnvoyBuilder};
use kea_e2e::installed;
use kea_e2e::openapi::{bundle_value, data_dir};
use kea_e2e::upstream::Upstream;
use serde_json::json;
use std::process::Command;

fn schemathesis() -> Result<std::path::PathBuf> {
    installed(
        "KEA_SCHEMATHESIS",
        "schemathesis-4.32.5/bin/schemathesis",
        "schemathesis",
    )
}

/// Outcome of one schemathesis run: whether its checks passed, its output, and the requests the
/// gateway let through (status below 400), from the run's HAR report.
struct Run {
    passed: bool,
    output: String,
    let_through: Vec<String>,
    /// Rejections (4xx) whose body is not `application/problem+json`.
    not_problems: Vec<String>,
}

/// Runs schemathesis in one mode with the checks that say whether the gateway decided right.
fn run(envoy: &Envoy, spec: &std::path::Path, base_path: &str, mode: &str, checks: &str) -> Result<Run> {
    let report = tempfile::tempdir()?;
    let har = report.path().join("run.har");
    let output = Command::new(schemathesis()?)
        .args([
            "run",
            &spec.display().to_string(),
            "--url",
            envoy.url(base_path).trim_end_matches('/'),
        ])
        .args([
            "--mode",
            mode,
            "--checks",
            checks,
            "--max-examples",
            "60",
            "--seed",
            "1",
            // One worker: schemathesis' workers are threads, and CPython 3.11's `ast.parse` is not
            // thread-safe (gh-106905, "AST constructor recursion depth mismatch"), which broke its
            // generator under load in CI.
            "--workers",
            "1",
        ])
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            "--continue-on-failure",
            "--generation-database",
            "none",
        ])
        .args([
            "--suppress-health-check",
            "all",
            "--report",
            "har",
            "--report-har-path",
            &har.display().to_string(),
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its caches go to the temporary folder, not into the repository.
        .current_dir(report.path())
        .output()
        .context("running schemathesis")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let entries: serde_json::Value = serde_json::from_slice(&std::fs::read(&har).context("the HAR report")?)?;
    let exchanges: Vec<&serde_json::Value> = entries["log"]["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let describe = |e: &&serde_json::Value| {
        let request = &e["request"];
        let headers: Vec<String> = request["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| format!("{}: {}", h["name"], h["value"]))
            .collect();
        format!(
            "{} → {} {} [{}] {}",
            e["response"]["status"],
            request["method"],
            request["url"],
            headers.join(", "),
            request["postData"]["text"]
        )
    };
    let status = |e: &&serde_json::Value| e["response"]["status"].as_u64().unwrap_or(0);
    let let_through = exchanges
        .iter()
        .filter(|e| status(e) < 400)
        .map(describe)
        .collect();
    let is_problem = |e: &&serde_json::Value| {
        e["response"]["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| {
                h["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case("content-type"))
                    && h["value"] == "application/problem+json"
            })
    };
    // Envoy's HTTP/1 codec refuses methods it does not know (schemathesis tries `QUERY`) before
    // any filter runs: those 400s are not the plugin's.
    let known_method = |e: &&serde_json::Value| {
        [
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE",
        ]
        .contains(&e["request"]["method"].as_str().unwrap_or(""))
    };
    let not_problems = exchanges
        .iter()
        .filter(|e| (400..500).contains(&status(e)) && known_method(e) && !is_problem(e))
        .map(describe)
        .collect();
    Ok(Run {
        passed: output.status.success(),
        output: text,
        let_through,
        not_problems,
    })
}

fn fuzz(dir: &str, file: &str, base_path: &str) -> Result<()> {
    let upstream = Upstream::start()?;
    let envoy = EnvoyBuilder::new(upstream.port)
        .concurrency(2)
        .plugin(
            "validate",
            json!({"apis": [{"name": file, "bundle": bundle_value(dir, file)?}]}),
        )?
        .start()?;
    let spec = data_dir(dir).join(file);
    let positive = run(
        &envoy,
        &spec,
        base_path,
        "positive",
        "not_a_server_error,positive_data_acceptance",
    )?;
    assert!(
        positive.passed,
        "valid requests were rejected:\n{}",
        positive.output
    );
    let reached = upstream.hits();
    assert!(
        reached > 0 && reached as usize == positive.let_through.len(),
        "{}",
        positive.output
    );
    // Negative mode also sends requests that are valid after all (unknown query parameters, which
    // OpenAPI allows): schemathesis' negative_data_rejection check knows which ones must fail.
    let negative = run(
        &envoy,
        &spec,
        base_path,
        "negative",
        "not_a_server_error,negative_data_rejection",
    )?;
    assert!(
        negative.passed,
        "invalid requests were accepted:\n{}\nlet through:\n{}",
        negative.output,
        negative.let_through.join("\n")
    );
    assert!(
        negative.not_problems.is_empty(),
        "rejections without problem+json:\n{}",
        negative.not_problems.join("\n")
    );
    // Exactly what the gateway let through reached the upstream: no rejected request did.
    assert_eq!(
        upstream.hits() - reached,
        negative.let_through.len() as u64,
        "{}",
        negative.let_through.join("\n")
    );
    Ok(())
}

#[test]
fn petstore_expanded() -> Result<()> {
    fuzz("openapi", "petstore-expanded.yaml", "/v2")
}

#[test]
fn edge_cases() -> Result<()> {
    fuzz("edge", "api.yaml", "/api")
}

/// Stripe's shapes (issue 18): form bodies with deepObject `metadata[key]`, nested
/// `address[city]` and `subscription_data[items][0][price]`, a `created` filter that is an integer
/// or a range object (`created[gte]=…`), `expand[]` lists.
#[test]
fn stripe_like() -> Result<()> {
    fuzz("stripe-like", "api.yaml", "/v1")
}

/// Asana's shapes (issue 18): flag parameters with `allowEmptyValue` (`?opt_pretty`), and
/// non-exploded lists (`opt_fields=a,b`).
#[test]
fn asana_like() -> Result<()> {
    fuzz("asana-like", "api.yaml", "/api/1.0")
}
