//! Benchmark (ignored by default; run it with a release build of the operator:
//! `cargo build --release -p kea-operator --bin kea && KEA_OPERATOR_BIN=<target>/release/kea
//! cargo test -p kea-operator --test scale -- --ignored --nocapture`): 1,000
//! ApiDefinitions on one gateway against a real Kubernetes v1.20.2 API server. Measures the time
//! from the first create to every API `Ready` (and the validate WasmPlugin carrying all of them),
//! and the operator's peak resident memory (VmHWM). `KEA_BENCH_WRITE=bench/README.md` replaces the
//! `operator-results` table there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use futures::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

const APIS: usize = 1000;

fn peak_memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: 1,000 APIs against a real API server (about a minute)"]
async fn thousand_apis_to_ready() {
    let (plane, client) = cluster().await.unwrap();
    apply(&client, &service("backend", 8080)).await.unwrap();
    apply(&client, &json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "GatewayBinding",
        "metadata": {"name": "edge", "namespace": NAMESPACE},
        "spec": {"selector": {"istio": "ingressgateway"},
                 "identityProviders": [{"name": "corp", "issuer": "https://idp.example.com", "cluster": "idp"}]},
    }))
    .await
    .unwrap();
    let operator = Operator::start(&plane, "bench").unwrap();
    let pid = operator.pid().unwrap();

    let started = Instant::now();
    futures::stream::iter(0..APIS)
        .map(|index| {
            let client = client.clone();
            async move {
                let api = json!({
                    "apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition",
                    "metadata": {"name": format!("api-{index}"), "namespace": NAMESPACE},
                    "spec": {
                        "gateway": "edge", "hosts": [format!("api-{index}.example.com")], "basePath": format!("/v1/api-{index}"),
                        "backends": [{"service": "backend", "port": 8080, "weight": 90}, {"service": "backend", "port": 8080, "version": "canary", "weight": 10}],
                        "schema": {"operations": [
                            {"path": "/items/{id}", "method": "GET", "parameters": [{"name": "id", "in": "path", "schema": {"type": "integer"}}]},
                            {"path": "/items", "method": "POST", "requestBody": {"required": true,
                             "schema": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 64}}}}},
                        ]},
                        "auth": {"providers": ["corp"]},
                    },
                });
                apply(&client, &api).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let created = started.elapsed();

    let mut peak = 0;
    let ready = loop {
        peak = peak.max(peak_memory_kib(pid));
        let apis = list(&client, "kea.dev/v1alpha1", "ApiDefinition", NAMESPACE)
            .await
            .unwrap();
        let ready = apis
            .iter()
            .filter(|api| condition(api, "Ready").is_some_and(|(status, ..)| status == "True"))
            .count();
        if ready == APIS {
            let carried = plugin_section(&client, NAMESPACE, "edge", "validate")
                .await
                .unwrap()
                .map(|validate| validate["apis"].as_array().map_or(0, Vec::len))
                .unwrap_or(0);
            assert_eq!(carried, APIS);
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready} of {APIS} Ready after 10 minutes\n{}",
            operator.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    peak = peak.max(peak_memory_kib(pid));
    let metrics = kea_e2e::http::get(&operator.url("/metrics")).unwrap().body;
    let writes = metrics
        .lines()
        .find(|line| line.starts_with("kea_operator_writes_total"))
        .unwrap_or_default()
        .to_string();
    let plugin = get(
        &client,
        "extensions.istio.io/v1alpha1",
        "WasmPlugin",
        NAMESPACE,
        "kea-edge-kea",
    )
    .await
    .unwrap()
    .unwrap();
    let config_bytes = plugin["spec"]["pluginConfig"].to_string().len();

    let table = format!(
        "| measure | value | goal |\n|---|---:|---:|\n\
         | ApiDefinitions created (16 concurrent clients) | {APIS} in {:.1} s | |\n\
         | first create → all {APIS} `Ready` (WasmPlugins carry all) | **{:.1} s** | < 60 s |\n\
         | operator peak resident memory (VmHWM) | **{:.0} MB** | < 150 MB |\n\
         | objects written (SSA, status included) | {} | |\n\
         | combined module's `pluginConfig` size (all four plugins) | {:.0} KB | < 1.5 MB (etcd object limit) |\n",
        created.as_secs_f64(),
        ready.as_secs_f64(),
        peak as f64 / 1024.0,
        writes.split_whitespace().last().unwrap_or("?"),
        config_bytes as f64 / 1024.0,
    );
    println!("{table}");
    if let Ok(path) = std::env::var("KEA_BENCH_WRITE") {
        let path = kea_e2e::repo_root().join(path);
        let text = std::fs::read_to_string(&path).unwrap();
        let (start, end) = (
            "<!-- operator-results:start -->\n",
            "<!-- operator-results:end -->",
        );
        let from = text.find(start).expect("operator-results markers") + start.len();
        let to = text.find(end).unwrap();
        std::fs::write(&path, format!("{}{table}{}", &text[..from], &text[to..])).unwrap();
    }
}
