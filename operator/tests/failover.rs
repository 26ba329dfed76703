//! The operator's resilience against a real Kubernetes v1.20.2 API server: two replicas elect one
//! leader; killing the leader mid-reconcile hands over to the standby, which converges; a clean
//! shutdown releases the lease at once; an API server restart is survived.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn binding() -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "GatewayBinding",
        "metadata": {"name": "edge", "namespace": NAMESPACE},
        "spec": {"selector": {"istio": "ingressgateway"}},
    })
}

fn api(name: &str, generation_tag: &str) -> Value {
    json!({
        "apiVersion": "kea.dev/v1alpha1", "kind": "ApiDefinition",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "gateway": "edge", "hosts": [format!("{name}.example.com")], "basePath": "/",
            "backends": [{"service": "backend", "port": 8080}],
            "schema": {"operations": [{"path": "/items", "method": "GET", "summary": generation_tag}]},
            "auth": {"anonymous": true},
        },
    })
}

async fn holder(client: &kube::Client) -> anyhow::Result<Option<String>> {
    let lease = get(
        client,
        "coordination.k8s.io/v1",
        "Lease",
        OPERATOR_NAMESPACE,
        "kea-operator",
    )
    .await?;
    Ok(lease
        .and_then(|lease| lease["spec"]["holderIdentity"].as_str().map(str::to_string))
        .filter(|h| !h.is_empty()))
}

/// Every API Ready at its current generation, and the gateway's validation carrying all of them.
async fn all_ready(client: &kube::Client, count: usize) -> anyhow::Result<Option<()>> {
    let apis = list(client, "kea.dev/v1alpha1", "ApiDefinition", NAMESPACE).await?;
    let ready = apis
        .iter()
        .filter(|api| {
            api.pointer("/status/observedGeneration") == api.pointer("/metadata/generation")
                && condition(api, "Ready").is_some_and(|(status, ..)| status == "True")
        })
        .count();
    let carried = plugin_section(client, NAMESPACE, "edge", "validate")
        .await?
        .map(|validate| validate["apis"].as_array().map_or(0, Vec::len))
        .unwrap_or(0);
    Ok((apis.len() == count && ready == count && carried == count).then_some(()))
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_failover_restart_and_api_server_restart() {
    let (mut plane, client) = cluster().await.unwrap();
    apply(&client, &service("backend", 8080)).await.unwrap();
    apply(&client, &binding()).await.unwrap();

    // Two replicas: exactly one holds the lease; both serve health.
    let mut first = Operator::start(&plane, "replica-a").unwrap();
    let mut second = Operator::start(&plane, "replica-b").unwrap();
    let leader = eventually(Duration::from_secs(20), "a leader", || async {
        holder(&client).await
    })
    .await
    .unwrap();
    for replica in [&first, &second] {
        let health = kea_e2e::http::get(&replica.url("/healthz")).unwrap();
        assert_eq!(health.status, 200);
        let metrics = kea_e2e::http::get(&replica.url("/metrics")).unwrap().body;
        let leading = if replica.identity == leader {
            "kea_operator_leader 1"
        } else {
            "kea_operator_leader 0"
        };
        assert!(metrics.contains(leading), "{}: {metrics}", replica.identity);
    }

    // 40 APIs; kill the leader while it reconciles them.
    for index in 0..40 {
        apply(&client, &api(&format!("api-{index}"), "v1")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (killed, standby) = if first.identity == leader {
        (&mut first, &mut second)
    } else {
        (&mut second, &mut first)
    };
    killed.kill();
    let killed_at = Instant::now();
    let new_leader = eventually(Duration::from_secs(20), "the standby to take over", || async {
        Ok(holder(&client)
            .await?
            .filter(|holder| *holder == standby.identity))
    })
    .await
    .unwrap();
    let takeover = killed_at.elapsed();
    assert!(takeover < Duration::from_secs(10), "takeover took {takeover:?}");
    eventually(
        Duration::from_secs(60),
        "all 40 APIs Ready under the new leader",
        || all_ready(&client, 40),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", standby.logs()));
    eprintln!("{new_leader} took over {takeover:?} after the leader was killed");

    // The killed replica comes back as a standby; the leader keeps the lease.
    let name = killed.identity.clone();
    *killed = Operator::start(&plane, &name).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        holder(&client).await.unwrap().as_deref(),
        Some(standby.identity.as_str())
    );

    // A clean shutdown (SIGTERM) releases the lease: the other replica leads at once.
    let status = standby.terminate().unwrap();
    assert!(status.success(), "exit status {status}");
    let handed_over = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the restarted replica to lead",
        || async { Ok(holder(&client).await?.filter(|holder| *holder == name)) },
    )
    .await
    .unwrap();
    assert!(
        handed_over.elapsed() < Duration::from_secs(3),
        "released lease taken after {:?}",
        handed_over.elapsed()
    );

    // Kill it mid-update and start a fresh one: it converges on the latest specs.
    for index in 0..40 {
        apply(&client, &api(&format!("api-{index}"), "v2")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    killed.kill();
    let mut fresh = Operator::start(&plane, "replica-c").unwrap();
    eventually(Duration::from_secs(60), "convergence after a restart", || {
        all_ready(&client, 40)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fresh.logs()));

    // The API server restarts: the operator keeps running and serves changes made afterwards.
    plane.restart_apiserver().unwrap();
    apply(&client, &api("after-restart", "v1")).await.unwrap();
    eventually(
        Duration::from_secs(60),
        "an API created after the API server restart",
        || all_ready(&client, 41),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fresh.logs()));
    assert!(fresh.running(), "{}", fresh.logs());
    assert!(!fresh.logs().contains("panicked"));
}
