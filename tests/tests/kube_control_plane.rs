//! End-to-end: the Kubernetes harness itself. A real v1.20.2 control plane (etcd, kube-apiserver,
//! kube-controller-manager) stores the real Istio and Gateway API CRDs and their objects, runs real
//! controllers, and keeps its data across an API server restart.

use anyhow::{bail, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kea_e2e::kube::ControlPlane;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn wasm_plugins(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("extensions.istio.io", "v1alpha1", "WasmPlugin");
    Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "wasmplugins"),
    )
}

fn wasm_plugin(name: &str, phase: &str) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "extensions.istio.io/v1alpha1",
        "kind": "WasmPlugin",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "url": "oci://registry.example/kea/validate:1.0.0",
            "phase": phase,
            "priority": 10,
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": {"bundle": {"paths": {}}, "mode": "enforce"},
            "vmConfig": {"env": [{"name": "KEA_LOG", "value": "info"}]},
            "match": [{"mode": "SERVER", "ports": [{"number": 8080}]}],
        },
    }))?)
}

#[tokio::test]
async fn control_plane_serves_crds_runs_controllers_and_survives_apiserver_restart() -> Result<()> {
    let started = Instant::now();
    let mut plane = ControlPlane::start()?;
    eprintln!(
        "control plane ready in {:?} at {}",
        started.elapsed(),
        plane.server()
    );

    let applied = plane.install_third_party_crds().await?;
    assert_eq!(applied.len(), 3);

    let client = plane.client().await?;
    let plugins = wasm_plugins(client.clone());
    plugins
        .create(&PostParams::default(), &wasm_plugin("kea-validate", "AUTHZ")?)
        .await?;
    let stored = plugins.get("kea-validate").await?;
    assert_eq!(stored.data["spec"]["phase"], "AUTHZ");
    assert_eq!(stored.data["spec"]["priority"], 10);
    assert_eq!(stored.data["spec"]["pluginConfig"]["mode"], "enforce");

    // The schema is structural and enforced: an unknown phase is rejected (422).
    match plugins
        .create(&PostParams::default(), &wasm_plugin("bad-phase", "BOGUS")?)
        .await
    {
        Err(kube::Error::Api(status)) if status.code == 422 => {}
        other => bail!("a WasmPlugin with phase BOGUS was not rejected with 422: {other:?}"),
    }

    // kube-controller-manager runs: a Deployment gets its ReplicaSet.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "shop", "image": "registry.example/shop:1"}]},
            },
        },
    }))?;
    deployments.create(&PostParams::default(), &deployment).await?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = replica_sets
            .list(&ListParams::default().labels("app=shop"))
            .await?;
        let owned = found.items.iter().any(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|owner| owner.kind == "Deployment" && owner.name == "shop")
        });
        if owned {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "no ReplicaSet for Deployment shop after 30 s; kube-controller-manager log:\n{}",
                plane.log_tail(kea_e2e::kube::Component::ControllerManager, 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // etcd keeps the data across an API server restart.
    let restarted = Instant::now();
    plane.restart_apiserver()?;
    eprintln!("API server restarted in {:?}", restarted.elapsed());
    let plugins = wasm_plugins(plane.client().await?);
    let again = plugins
        .get("kea-validate")
        .await
        .context("WasmPlugin after restart")?;
    assert_eq!(
        again.data["spec"]["url"],
        "oci://registry.example/kea/validate:1.0.0"
    );
    assert_eq!(again.metadata.uid, stored.metadata.uid);
    Ok(())
}
